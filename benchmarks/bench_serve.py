"""Load test of the decision service: N decisions from C concurrent clients against a real server.

Starts ``serve.py RUN --store <tmp>`` (uvicorn, one worker, ONNX Runtime by default) on 127.0.0.1, makes one key
(one account) per client, and plays C clients in a closed loop from one asyncio process: each sends its next
decision (a market body: 32 mids, volumes with their buy part, a 5-level book) as soon as the last answer
arrives, and reports the fill of every order at the book's best price (so the accounts, the shield and the
breakers work as in use). Measured:

* **client latency** of each decision (request sent → answer parsed), p50 / p90 / p99 / max: what a desk waits
  (the load generator is a minimal HTTP/1.1 keep-alive client on asyncio streams, :class:`Connection`, so that
  on a 2-core machine it leaves the CPU to the server);
* **server time** (the answers' ``latency_ms``: body parsed → answer built), p50 / p99: what the service spends;
* throughput (decisions/s), errors (any answer that is not 200, and any halted decision), and the
  ``janus_decision_latency_seconds`` histogram the server exported.

Without ``--run`` it trains a run of the default janus-dqn size (``configs/janus-dqn.yml``: ``JanusExtractor``,
``net_arch [64, 64]``; 300 steps, which do not change the network's cost) into the temporary folder first. The
first ``--warmup`` decisions of each client are not counted. Nothing here is a test: numbers depend on the
machine and its load (printed).

Usage::

    .venv/bin/python benchmarks/bench_serve.py                        # 5,000 decisions, 8 clients (~1-2 min)
    .venv/bin/python benchmarks/bench_serve.py --decisions 1000 --clients 4 --engine torch
    .venv/bin/python benchmarks/bench_serve.py --run runs/<run> --json benchmarks/out/bench_serve.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=None, help="run folder to serve (default: train a default-size one)")
    p.add_argument("--decisions", type=int, default=5000, help="decisions counted, all clients together")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (one account each)")
    p.add_argument("--warmup", type=int, default=20, help="decisions per client before counting")
    p.add_argument("--engine", default="onnx", choices=("onnx", "torch"))
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
    store = tmp / "store"
    keys = [make_key(store, f"client-{i}", "decide") for i in range(args.clients)]
    port = _free_port()
    log = open(tmp / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "serve.py", str(run), "--store", str(store), "--port", str(port),
                               "--engine", args.engine, "--rate-limit", "1e6", "--burst", "1e6"],
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
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "model_version": info["model_version"], "engine": args.engine, "clients": args.clients,
        "decisions": counted, "errors": len(out["errors"]), "first_errors": out["errors"][:5],
        "throughput_per_s": (counted + args.warmup * args.clients) / wall, "sides": out["sides"],
        "server_cpu_ms_per_decision": cpu_server / (counted + args.warmup * args.clients) * 1e3,
        "client_cpu_ms_per_decision": cpu_client / (counted + args.warmup * args.clients) * 1e3,
        "client_ms": _percentiles(out["client"]), "server_ms": _percentiles(out["server"]),
        "server_histogram": [line for line in metrics.splitlines()
                             if line.startswith("janus_decision_latency_seconds")],
    }
    c, s = result["client_ms"], result["server_ms"]
    print(f"{result['machine']}; load average {load_before[0]:.2f} before, {result['load_average_after'][0]:.2f} "
          f"after")
    print(f"{counted} decisions from {args.clients} clients ({args.engine}), {result['errors']} errors, "
          f"{result['throughput_per_s']:.0f} decisions/s (fills included in the loop); sides {out['sides']}")
    print(f"CPU per decision (its fill included): server {result['server_cpu_ms_per_decision']:.2f} ms, "
          f"load generator {result['client_cpu_ms_per_decision']:.2f} ms")
    print("| latency, ms | p50 | p90 | p99 | max |\n| --- | --- | --- | --- | --- |")
    print(f"| client (request → answer) | {c['p50']:.2f} | {c['p90']:.2f} | {c['p99']:.2f} | {c['max']:.1f} |")
    print(f"| server (body → answer) | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | {s['max']:.1f} |")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
