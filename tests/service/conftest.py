"""Fixtures of the decision-service tests: a tiny trained run, a real server (uvicorn in a subprocess), bodies.

The run is trained once per session by ``train.py``'s ``main`` in the test process (janus-dqn, 120 steps, a
small net: what it learned does not matter; it has a cerebellum, so the slippage predictor runs as in
evaluation). The server is ``python serve.py RUN --store DIR`` on 127.0.0.1 and a free port, stopped with
SIGTERM (uvicorn's graceful shutdown)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


BUY = 1


@pytest.fixture(scope="session")
def served_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A janus-dqn run trained for 120 steps on 60-step sessions (a 16-unit net, no sleep), whose Go head then
    prefers BUY by 5 (its last layer's bias) and whose No-Go head never vetoes BUY (bias −10): its orders are
    known whatever the few training steps learned, so fills, the logic gate's vetoes (position limit, cash
    reserve) and a drawdown can be driven through the service."""
    import train  # in this process (the imports are paid already): train.py's own main
    from agents.app.config import algo_class

    out = tmp_path_factory.mktemp("served")
    assert train.main(["--algo", "janus-dqn", "--timesteps", "120", "--run-dir", str(out), "--run-name", "tiny",
                       "--no-progress", "--hp", "learning_starts=100", "--hp", "env_kwargs.episode_steps=60",
                       "--hp", "sleep.every_n_steps=100000", "--hp", "policy_kwargs.net_arch=[16]"]) == 0

    run = out / "tiny"
    model = algo_class("janus-dqn").load(run / "model.zip", device="cpu")  # our own file, just written
    for net in (model.policy.q_net, model.policy.q_net_target):
        net.q_net[-1].bias.data[BUY] += 5.0
    model.policy.nogo_net.linear.bias.data[BUY] = -10.0  # No-Go ≈ 0 for BUY: only the logic gate holds it back
    model.save(run / "model.zip")
    return run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``serve.py RUN --store STORE`` in a subprocess; :meth:`start`, :meth:`stop`, :meth:`client`."""

    def __init__(self, run: Path, store: Path, *args: str) -> None:
        self.run, self.store, self.args = run, store, args
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log = store.parent / f"{store.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Server:
        self.port = _free_port()
        log = open(self.log, "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen([sys.executable, "serve.py", str(self.run), "--store", str(self.store),
                                      "--host", "127.0.0.1", "--port", str(self.port), *self.args],
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve.py exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/api/v1/ready", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"serve.py not ready after {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code, self.proc = self.proc.returncode, None
        return code

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30.0)


@pytest.fixture(scope="module")
def server(served_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for a test module: rate limit 5/s per key, bursts of 60 (the rate-limit test exceeds it), the
    slippage breaker off (the tests' fills at the best ask would trip it against the tiny run's cerebellum)."""
    store = tmp_path_factory.mktemp("store") / "svc"
    srv = Server(served_run, store, "--rate-limit", "5", "--burst", "60", "--breaker", "slippage_ratio=null").start()
    yield srv
    srv.stop()


class MarketWalk:
    """Market bodies a desk would send: a random walk of mids (seeded), a 5-level book around the last one."""

    def __init__(self, window: int = 32, seed: int = 0, mid: float = 100.0, spread: float = 0.02) -> None:
        self.rng = np.random.default_rng(seed)
        self.window = window
        self.spread = spread
        self.mids = [float(x) for x in mid + np.cumsum(self.rng.normal(0.0, 0.02, window))]

    def body(self) -> dict[str, Any]:
        m = round(float(self.mids[-1]), 4)
        half = self.spread / 2
        bids = [[round(m - half - 0.01 * i, 4), 500.0] for i in range(5)]
        asks = [[round(m + half + 0.01 * i, 4), 400.0] for i in range(5)]
        mid = 0.5 * (bids[0][0] + asks[0][0])
        return {"market": {"prices": [float(x) for x in self.mids[-self.window:-1]] + [mid],
                           "volumes": [300.0] * self.window, "buy_volumes": [140.0] * self.window,
                           "bids": bids, "asks": asks, "timestamp": "2026-01-02T10:00:00Z"}}

    def advance(self) -> None:
        self.mids.append(self.mids[-1] + float(self.rng.normal(0.0, 0.02)))


@pytest.fixture(scope="session")
def server_class() -> type[Server]:
    """:class:`Server`, for a test module that starts its own (another run, engine or limits)."""
    return Server


@pytest.fixture
def walk() -> MarketWalk:
    return MarketWalk()


@pytest.fixture
def new_key(server: Server) -> Callable[..., str]:
    """``new_key(name, scopes="decide")``: a key made in the server's store (what ``serve.py keygen`` does)."""
    from agents.app.service.keys import make_key

    def make(name: str, scopes: str = "decide") -> str:
        return make_key(server.store, name, scopes)

    return make


os.environ.setdefault("NO_PROXY", "127.0.0.1")


CYCLE = {"seq_len": 8, "n_sequences": 4}
"""A small SWR replay: the sleep-job tests check the plumbing, not the learning."""
FINAL = ("succeeded", "rejected", "failed", "interrupted")
"""A sleep job's final states."""


def wait_job(client, job_id: str, states: tuple[str, ...] = FINAL, timeout: float = 180.0) -> dict:
    """Poll ``GET /api/v1/jobs/{id}`` until the job is in one of ``states``; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = client.get(f"/api/v1/jobs/{job_id}").json()
        if row["state"] in states:
            return row
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {row['state']} after {timeout} s: {row}")


def queue_job(client, **body) -> dict:
    """``POST /api/v1/sleep-cycle`` with the small :data:`CYCLE` and ``body``; expect 202."""
    r = client.post("/api/v1/sleep-cycle", json={"cycle": CYCLE, **body})
    assert r.status_code == 202, r.text
    assert r.json()["state"] in ("queued", "running")
    return r.json()
