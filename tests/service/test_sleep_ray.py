"""Sleep jobs on Ray (``serve.py RUN --ray-address``): the refusals (fast), and a real server with a private
local Ray (``--ray-address local``: 1 CPU, no dashboard) whose job makes the same version as a worker process
on the same store, and whose killed task fails its job while the model keeps serving (slow)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from agents.app.service.keys import make_key
from agents.app.service.ray_jobs import NO_RAY, check_address, connect_ray
from tests.service.conftest import ROOT, MarketWalk, Server, queue_job, wait_job



def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


@pytest.mark.parametrize("address", ["nowhere", "host:", "host:0", "host:99999", "http://host:6379", "ray://"])
def test_bad_address_format(address: str) -> None:
    with pytest.raises(ValueError) as err:
        check_address(address)
    assert str(err.value) == f"Expected --ray-address local, auto, HOST:PORT or ray://HOST:PORT, got {address!r}"


def test_good_address_formats() -> None:
    assert check_address("local") is None and check_address("auto") is None
    assert check_address("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert check_address("ray://head.example:10001") == ("head.example", 10001)
    assert check_address("[::1]:6379") == ("::1", 6379)


def test_no_cluster_there_is_refused_at_once() -> None:
    port = _closed_port()
    start = time.monotonic()
    with pytest.raises(ConnectionError) as err:
        connect_ray(f"127.0.0.1:{port}")
    assert time.monotonic() - start < 10.0  # ray.init alone would retry for minutes
    assert str(err.value).startswith(f"cannot join the Ray cluster at '127.0.0.1:{port}': ")


def test_without_ray_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ValueError) as err:
        connect_ray("local")
    assert str(err.value) == NO_RAY


def test_serve_with_a_bad_ray_address_exits_2_before_anything(served_run, tmp_path) -> None:
    port = _closed_port()
    for address, message in ((f"127.0.0.1:{port}", f"cannot join the Ray cluster at '127.0.0.1:{port}': "),
                             ("nowhere", "Expected --ray-address local, auto, HOST:PORT or ray://HOST:PORT, got "
                                         "'nowhere'")):
        store = tmp_path / "svc"
        out = subprocess.run([sys.executable, "serve.py", str(served_run), "--store", str(store), "--port",
                              str(_closed_port()), "--ray-address", address], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"serve.py: error: {message}"), out.stderr
        assert "serving" not in out.stdout and not store.exists()  # refused before the store or a socket


def _descendants(pid: int) -> list[int]:
    """The pids of ``pid``'s descendants (Linux ``/proc``)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115 - /proc
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _ray_task_worker(server: Server, timeout: float = 60.0) -> int:
    """The pid of the Ray worker (a descendant of the server: its private Ray) running the job's task."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in _descendants(server.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"ray::run_shipped_job" in f.read():
                        return pid
            except OSError:
                continue
        time.sleep(0.1)
    raise AssertionError("no Ray worker is running the job's task")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the Ray worker through /proc")
def test_a_job_on_ray_makes_the_worker_process_version_and_a_dead_task_fails(served_run, tmp_path) -> None:
    store = tmp_path / "svc"
    admin = make_key(store, "ops", "decide,admin")
    desk = make_key(store, "desk-r", "decide")
    walk = MarketWalk(seed=3)
    # the reference: a job in a worker process (no Ray)
    srv = Server(served_run, store, "--breaker", "slippage_ratio=null").start()
    try:
        with srv.client(desk) as c:
            for _ in range(30):
                a = c.post("/api/v1/decision", json=walk.body()).json()
                if a["size"]:
                    fill = {"decision_id": a["decision_id"], "qty": a["size"], "price": a["mid"] + 0.01}
                    assert c.post("/api/v1/fills", json=fill).status_code == 200
                walk.advance()
        with srv.client(admin) as c:
            root = c.get("/api/v1/model").json()["root"]
            reference = wait_job(c, queue_job(c, seed=7, tolerance=1.0)["id"])
            assert reference["state"] == "succeeded", reference
            assert c.post("/api/v1/model/rollback").json()["model_version"] == root
    finally:
        srv.stop()
    shutil.rmtree(store / "models" / reference["new_version"])  # the Ray job's outcome must bring its files back

    # the same job (same store, experience, base version and seed) as a Ray task
    srv = Server(served_run, store, "--breaker", "slippage_ratio=null", "--ray-address", "local").start()
    try:
        with srv.client(admin) as c:
            queued = queue_job(c, seed=7, tolerance=1.0)
            row = wait_job(c, queued["id"])
            assert row["state"] == "succeeded" and row["progress"] == 1.0, row
            assert row["pid"] is None  # no process of this machine's service ran it
            assert row["new_version"] == reference["new_version"] != root  # the same weights digest
            wall = ("sleep/elapsed_s",)  # the one metric that is a wall-clock time
            assert {**row["result"], "sleep": {k: v for k, v in row["result"]["sleep"].items() if k not in wall}} == {
                **reference["result"], "sleep": {k: v for k, v in reference["result"]["sleep"].items()
                                                 if k not in wall}}  # the same sleep metrics and evaluation
            assert set(row["result"]["sleep"]) == set(reference["result"]["sleep"])
            assert c.get("/api/v1/model").json()["model_version"] == row["new_version"]
            folder = store / "models" / row["new_version"]
            assert {"model.zip", "config.yaml", "policy.onnx", "sleep.json"} <= {p.name for p in folder.iterdir()}
            assert not list((store / "models").glob(".tmp-*"))

            killed = queue_job(c, seed=8, tolerance=1.0)
            os.kill(_ray_task_worker(srv), signal.SIGKILL)
            row = wait_job(c, killed["id"])
            assert row["state"] == "failed" and row["error"].startswith("the Ray task ") and row["error"].endswith(
                "; the version served stays"), row
            with srv.client(desk) as d:
                a = d.post("/api/v1/decision", json=walk.body())
            assert a.status_code == 200 and a.json()["model_version"] == reference["new_version"]
    finally:
        assert srv.stop() in (0, -15)  # as without Ray: uvicorn's graceful shutdown, then the signal re-raised
    assert "decision service stopped" in srv.log.read_text().rsplit("serving ", 1)[1]
