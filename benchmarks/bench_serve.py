"""Load test of the decision service: N decisions from C concurrent clients against a real server.

Starts ``serve.py RUN --store <tmp>`` (uvicorn, one worker, ONNX Runtime by default) on 127.0.0.1, makes one key
(one account) per client, and plays C clients in a closed loop from one asyncio process: each sends its next
decision (a market body: 32 mids, volumes with their buy part, a 5-level book) as soon as the last answer
arrives, and reports the fill of every order at the book's best price (so the accounts, the shield and the
breakers work as in use). Measured:

* **client latency** of each decision (request sent → answer parsed), p50 / p90 / p99 / max: what a desk waits
  (the load generator is a minimal HTTP/1.1 keep-alive client on asyncio streams, :class:`Connection`, so that
  on a 2-core machine it leaves the CPU to the server);
* **server time** (the answers' ``latency_ms``: request read → answer built), p50 / p99: what the service spends,
  its wait for the policy's worker thread included (decisions of other accounts queue there);
* throughput (decisions/s), errors (any answer that is not 200, and any halted decision), the
  ``janus_decision_latency_seconds`` histogram the server exported, the CPU the server and the load generator
  used per decision, and the share of one core the server got (its CPU time over the wall time: below ~0.9 the
  machine's other work, not the service, sets the latency).

``--breakdown`` measures instead, in this process and without HTTP, where a decision's CPU goes (thread CPU
time of each stage, the same decisions one account at a time); the server's CPU per decision in the load test
minus this total is what HTTP and the event loop cost.

Without ``--run`` it trains a run of the default janus-dqn size (``configs/janus-dqn.yml``: ``JanusExtractor``,
``net_arch [64, 64]``; 300 steps, which do not change the network's cost) into the temporary folder first. Such a
run (and most short runs) answers HOLD throughout; ``--trade`` serves a copy whose Go head is shifted so that it
buys in about half the states and sells in the others (the median of Q(BUY) − Q(SELL) over the load test's own
market states, HOLD lowered by 1, No-Go off for BUY and SELL: janus-dqn runs), so each decision also runs the
cerebellum's slippage prediction and most have a fill to report; its servers run with the slippage and drawdown
breakers off (``--breaker slippage_ratio=null --breaker max_drawdown=null``: a random walk traded at random would
trip them, and a halted decision counts as an error here). The first ``--warmup`` decisions of each client are
not counted. Nothing here is a test: numbers depend on the machine and its load (printed).

Usage::

    .venv/bin/python benchmarks/bench_serve.py                        # 5,000 decisions, 8 clients (~1 min)
    .venv/bin/python benchmarks/bench_serve.py --trade                # the same with a policy that trades
    .venv/bin/python benchmarks/bench_serve.py --breakdown 2000       # where a decision's CPU goes (no HTTP)
    .venv/bin/python benchmarks/bench_serve.py --decisions 1000 --clients 4 --engine torch
    .venv/bin/python benchmarks/bench_serve.py --run runs/<run> --json benchmarks/out/bench_serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Walk:
    """One client's market: a seeded random walk of mids (2 bps steps) and a 5-level book around the last one."""

    def __init__(self, seed: int, window: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.window = window
        self.mids = [float(x) for x in 100.0 + np.cumsum(self.rng.normal(0.0, 0.02, window))]

    def body(self) -> bytes:
        m = round(self.mids[-1], 4)
        bids = [[round(m - 0.01 - 0.01 * i, 4), 500.0] for i in range(5)]
        asks = [[round(m + 0.01 + 0.01 * i, 4), 400.0] for i in range(5)]
        prices = self.mids[-self.window:-1] + [0.5 * (bids[0][0] + asks[0][0])]
        self.mids.append(self.mids[-1] + float(self.rng.normal(0.0, 0.02)))
        body = {"market": {"prices": prices, "volumes": [300.0] * self.window,
                           "buy_volumes": [float(v) for v in self.rng.uniform(100, 200, self.window)],
                           "bids": bids, "asks": asks}}
        return json.dumps(body).encode()


class Connection:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: the load generator's CPU per request is a small
    fraction of the server's, so on a 2-core machine the numbers are the server's, not the client library's
    (httpx costs about as much CPU per request as the service itself)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = (f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                     "Connection: keep-alive\r\n").encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes) -> tuple[int, dict]:
        self.writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\n" + self.head
                          + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, json.loads(await self.reader.readexactly(length))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _client(port: int, key: str, seed: int, window: int, n: int, warmup: int, out: dict) -> None:
    walk = Walk(seed, window)
    conn = Connection("127.0.0.1", port, key)
    await conn.open()
    try:
        for i in range(n + warmup):
            body = walk.body()
            t0 = time.perf_counter()
            status, answer = await conn.post("/api/v1/decision", body)
            elapsed = time.perf_counter() - t0
            if status != 200 or answer.get("halted"):
                out["errors"].append((status, answer.get("halt_reason") or answer.get("detail")))
                continue
            if i >= warmup:
                out["client"].append(elapsed)
                out["server"].append(answer["latency_ms"] / 1e3)
                out["sides"][answer["side"]] = out["sides"].get(answer["side"], 0) + 1
            if answer["size"]:
                price = answer["mid"] + (0.01 if answer["size"] > 0 else -0.01)
                fill = json.dumps({"decision_id": answer["decision_id"], "qty": answer["size"], "price": price})
                status, reply = await conn.post("/api/v1/fills", fill.encode())
                if status != 200:
                    out["errors"].append((status, reply))
    finally:
        conn.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (Linux ``/proc``), seconds; NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentiles(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1e3
    return {"p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()), "mean": float(a.mean())}


def _service(run: Path, store: Path, extra: list[str]) -> Any:
    """The service ``serve.py RUN --store STORE [extra]`` would serve, built in this process."""
    import serve
    from agents.app.service.serving import build_service, resolve_service

    return build_service(resolve_service(serve.parse_args([str(run), "--store", str(store), *extra])))


HOLD, BUY, SELL = 0, 1, 2


def trading_copy(run: Path, dest: Path, n_states: int = 400) -> Path:
    """A copy of a janus-dqn ``run`` whose policy trades on the load test's markets (module docstring): Go scores
    shifted by the median of Q(BUY) − Q(SELL) over ``n_states`` of them, HOLD lowered by 1, No-Go off for BUY
    and SELL.

    Raises:
        ValueError: the run is not a janus-dqn one.
    """
    import torch as th

    from agents.app.service.accounts import Account
    from agents.app.service.schemas import DecisionRequest

    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("eval", "checkpoints", "tb_*"))
    service = _service(dest, dest / "probe-store", [])
    try:
        policy = service.engine.policy
        if not hasattr(policy, "q_net") or not hasattr(policy, "nogo_net"):
            raise ValueError(f"--trade shifts a janus-dqn policy's Q-head; {dest} has a {type(policy).__name__}")
        walk, account, diffs = Walk(12345, service.config.window), Account.new("probe", service.config), []
        for _ in range(n_states):
            built = service.builder.from_market(DecisionRequest.model_validate_json(walk.body()).market, account)
            tensor, _ = policy.obs_to_tensor(built.obs)
            with th.no_grad():
                q = policy.q_net(tensor)[0].numpy()
            diffs.append(float(q[BUY] - q[SELL]))
        shift = float(np.median(diffs))
        for net in (policy.q_net, policy.q_net_target):
            net.q_net[-1].bias.data[BUY] -= shift
            net.q_net[-1].bias.data[HOLD] -= 1.0
        policy.nogo_net.linear.bias.data[[BUY, SELL]] = -10.0
        service.engine.model.save(dest / "model.zip")
    finally:
        service.close()
        shutil.rmtree(dest / "probe-store", ignore_errors=True)
    return dest


def breakdown(run: Path, n: int, warmup: int = 100) -> dict[str, float]:
    """Where a decision's CPU goes, in this process without HTTP (module docstring): µs per decision by stage,
    thread CPU time, one account deciding ``n`` times after ``warmup`` decisions."""
    from agents.app.service.keys import Principal
    from agents.app.service.schemas import DecisionRequest

    tmp = Path(tempfile.mkdtemp(prefix="bench_serve_breakdown_"))
    service = _service(run, tmp / "store", ["--breaker", "slippage_ratio=null", "--breaker", "max_drawdown=null"])
    spent: dict[str, int] = {}
    clock = time.thread_time_ns

    labels: list[str] = []

    def timed(owner: Any, name: str, label: str) -> None:
        method: Callable[..., Any] = getattr(owner, name)
        labels.append(label)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return method(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0) + clock() - t0

        setattr(owner, name, wrapper)

    who = Principal("desk", ("decide",))
    walk = Walk(0, service.config.window)
    bodies = [walk.body() for _ in range(n + warmup)]
    try:
        for body in bodies[:warmup]:
            service.decide(who, DecisionRequest.model_validate_json(body), time.perf_counter())
        guard = service.slot("desk").guard
        timed(service.builder, "from_market", "observation (market body → the env's observation)")
        timed(guard, "begin", "glass box: the last step's end (breakers, sizing)")
        timed(guard.core, "masks", "LTN shield: scores of every action")
        timed(service.engine, "decide", "policy (ONNX Runtime + Go/No-Go gate)")
        if service.engine.session is not None:
            timed(service.engine.session, "run", "  of which ONNX Runtime")
        timed(guard.breakers, "before_action", "breakers' pre-action check (cerebellum's prediction)")
        timed(guard.core, "decide", "LTN shield: decision")
        timed(guard, "record", "audit record (AuditLog: JSON, write)")
        timed(service.experience, "observe", "store: account + experience, one commit")
        timed(service, "_answer", "answer dict")
        spent.clear()
        total = parse = dump = 0
        for body in bodies[warmup:]:
            t0 = clock()
            request = DecisionRequest.model_validate_json(body)
            t1 = clock()
            answer = service.decide(who, request, time.perf_counter())
            t2 = clock()
            json.dumps(answer, allow_nan=False, separators=(",", ":")).encode()
            t3 = clock()
            parse, dump, total = parse + t1 - t0, dump + t3 - t2, total + t3 - t0
    finally:
        service.close()
        shutil.rmtree(tmp, ignore_errors=True)
    rows = {"body parsing (pydantic)": parse, **{label: spent.get(label, 0) for label in labels},
            "answer JSON": dump}
    own = sum(v for k, v in rows.items() if not k.startswith("  "))
    rows["the rest (service bookkeeping, metrics, session)"] = total - own
    rows["total"] = total
    return {k: v / n / 1e3 for k, v in rows.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=None, help="run folder to serve (default: train a default-size one)")
    p.add_argument("--decisions", type=int, default=5000, help="decisions counted, all clients together")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (one account each)")
    p.add_argument("--warmup", type=int, default=20, help="decisions per client before counting")
    p.add_argument("--engine", default="onnx", choices=("onnx", "torch"))
    p.add_argument("--trade", action="store_true", help="serve a copy of the run that trades (janus-dqn runs)")
    p.add_argument("--breakdown", type=int, default=0, metavar="N",
                   help="instead of the load test: CPU per decision by stage, in process, over N decisions")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    import httpx

    from agents.app.service.keys import make_key

    tmp = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    run = args.run
    if run is None:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "train.py", "--algo", "janus-dqn", "--timesteps", "300", "--run-dir",
                        str(tmp), "--run-name", "bench", "--no-progress", "--hp", "learning_starts=100",
                        "--hp", "sleep.every_n_steps=100000"], cwd=ROOT, check=True, capture_output=True)
        run = tmp / "bench"
        print(f"trained a default-size janus-dqn run in {time.perf_counter() - t0:.0f} s: {run}")
    breakers: list[str] = []
    if args.trade:
        run = trading_copy(run, tmp / "trader")
        breakers = ["--breaker", "slippage_ratio=null", "--breaker", "max_drawdown=null"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    if args.breakdown:
        load = os.getloadavg()[0]
        rows = breakdown(run, args.breakdown)
        print(f"{machine}; load average {load:.2f}; {args.breakdown} decisions of one account, in process")
        print("| stage | CPU µs per decision |\n| --- | ---: |")
        for stage, us in rows.items():
            print(f"| {stage} | {us:.0f} |")
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"machine": machine, "load_average": load, "us_per_decision": rows},
                                            indent=2))
        return 0
    store = tmp / "store"
    keys = [make_key(store, f"client-{i}", "decide") for i in range(args.clients)]
    port = _free_port()
    log = open(tmp / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "serve.py", str(run), "--store", str(store), "--port", str(port),
                               "--engine", args.engine, "--rate-limit", "1e6", "--burst", "1e6", *breakers],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / "server.log").read_text())
            try:
                ready = httpx.get(f"{url}/api/v1/ready", timeout=2.0)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        info = ready.json()
        per_client = -(-args.decisions // args.clients)
        out: dict = {"client": [], "server": [], "errors": [], "sides": {}}
        load_before = os.getloadavg()
        cpu_server, cpu_client = _cpu_seconds(server.pid), time.process_time()
        t0 = time.perf_counter()

        async def play() -> None:
            await asyncio.gather(*(_client(port, key, seed, info["window"], per_client, args.warmup, out)
                                   for seed, key in enumerate(keys)))

        asyncio.run(play())
        wall = time.perf_counter() - t0
        cpu_server, cpu_client = _cpu_seconds(server.pid) - cpu_server, time.process_time() - cpu_client
        metrics = httpx.get(f"{url}/api/v1/metrics").text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()
    counted = len(out["client"])
    played = counted + args.warmup * args.clients
    result = {
        "machine": machine,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "model_version": info["model_version"], "engine": args.engine, "clients": args.clients,
        "trade": args.trade, "decisions": counted, "errors": len(out["errors"]), "first_errors": out["errors"][:5],
        "throughput_per_s": played / wall, "sides": out["sides"],
        "server_cpu_ms_per_decision": cpu_server / played * 1e3,
        "client_cpu_ms_per_decision": cpu_client / played * 1e3,
        "server_core_share": cpu_server / wall,
        "client_ms": _percentiles(out["client"]), "server_ms": _percentiles(out["server"]),
        "server_histogram": [line for line in metrics.splitlines()
                             if line.startswith("janus_decision_latency_seconds")],
    }
    c, s = result["client_ms"], result["server_ms"]
    print(f"{machine}; load average {load_before[0]:.2f} before, {result['load_average_after'][0]:.2f} after")
    print(f"{counted} decisions from {args.clients} clients ({args.engine}{', trading' if args.trade else ''}), "
          f"{result['errors']} errors, {result['throughput_per_s']:.0f} decisions/s (fills included in the loop); "
          f"sides {out['sides']}")
    print(f"CPU per decision (its fill included): server {result['server_cpu_ms_per_decision']:.2f} ms, "
          f"load generator {result['client_cpu_ms_per_decision']:.2f} ms; the server had "
          f"{result['server_core_share']:.2f} of a core")
    print("| latency, ms | p50 | p90 | p99 | max |\n| --- | --- | --- | --- | --- |")
    print(f"| client (request → answer) | {c['p50']:.2f} | {c['p90']:.2f} | {c['p99']:.2f} | {c['max']:.1f} |")
    print(f"| server (body → answer) | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | {s['max']:.1f} |")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
