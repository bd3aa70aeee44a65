"""What durability costs: env steps/s of the glass box with ``AuditLog`` at its settings, against no audit trail.

The documented stack ``AuditLog(Amygdala(LTNShield(env)))`` (records of ≈1.3-1.7 KB: breakers, LTN trace)
on ``Janus-LOB-v0`` (``scenario="ou"``), stepped with random actions drawn outside the timed region,
``reset()`` at every episode end. Two markets: the test suite's small one (40-step episodes after 8
warm-up steps, so an episode-end ``fsync`` every 40 decisions) and 1,000-step episodes. Rows:

* ``no audit``: ``Amygdala(LTNShield(env))`` alone, the baseline;
* ``buffered (issue 15)``: ``buffer_size=1000, fsync_every=None, fsync_seconds=None`` — the behaviour
  before issue 15 (1,000 records in memory, written and ``fsync``'d at each episode end: ``kill -9`` lost up
  to 1,000);
* ``default``: ``buffer_size=1`` (each record written before ``step`` returns), ``fsync_every=1000``,
  ``fsync_seconds=1.0``;
* ``fsync every 100``: ``fsync_every=100, fsync_seconds=None``;
* ``write only``: ``fsync_every=None, fsync_seconds=None`` (the default without the periodic ``fsync``);
* ``fsync each``: ``fsync_every=1`` (every decision forced to disk).

Repeats alternate between the rows; each row's figure is the median of its repeats (wall clock, and CPU
time of the process, which a loaded machine disturbs less but which leaves out the wait for ``fsync``), and
the slowdown of a row is the median of its per-repeat wall-clock ratios to ``no audit``. The log goes to a
temporary folder on the disk of ``--dir`` (default: the system's temporary folder); ``fsync`` costs what that
disk makes it cost.

Usage::

    .venv/bin/python benchmarks/bench_audit.py                 # ~2 min on 2 cores
    .venv/bin/python benchmarks/bench_audit.py --steps 2000 --repeats 3   # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from janus_env.lob_env import JanusLOBEnv  # noqa: E402
from wrappers import Amygdala, AuditLog, LTNShield  # noqa: E402

ROWS = {
    "no audit": None,
    "buffered (issue 15)": {"buffer_size": 1000, "fsync_every": None, "fsync_seconds": None},
    "default": {},
    "fsync every 100": {"fsync_every": 100, "fsync_seconds": None},
    "write only": {"fsync_every": None, "fsync_seconds": None},
    "fsync each": {"fsync_every": 1},
}


def _fsync_ms(folder: str, n: int = 50) -> float:
    """Median time of a 1.6 KB append + ``fsync`` in ``folder``, ms."""
    path = os.path.join(folder, "fsync.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, b"x" * 1600 + b"\n")
            os.fsync(fd)
            times.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        os.remove(path)
    return statistics.median(times) * 1e3


def run(settings: dict | None, market: dict, steps: int, folder: str, tag: str) -> tuple[float, float, int]:
    """Steps/s (wall clock, process CPU time) of the stack with ``AuditLog(**settings)`` (None: no audit trail)
    and the log's size in bytes."""
    env = Amygdala(LTNShield(JanusLOBEnv(scenario="ou", seed=0, **market)))
    path = os.path.join(folder, f"{tag}.jsonl")
    if settings is not None:
        env = AuditLog(env, path, **settings)
    actions = np.random.default_rng(0).integers(0, 3, steps)
    env.reset(seed=0)
    t, c = time.perf_counter(), time.process_time()
    for a in actions.tolist():
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    env.close()
    size = os.path.getsize(path) if settings is not None else 0
    if settings is not None:
        os.remove(path)
    return steps / elapsed, steps / cpu, size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=10_000, help="steps per measurement (10,000)")
    p.add_argument("--repeats", type=int, default=5, help="alternating repeats (5)")
    p.add_argument("--dir", default=None, help="folder on the disk to measure (default: the temporary folder)")
    args = p.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    markets = {"40-step episodes (tests' small market)": {"episode_steps": 40, "warmup": 8},
               "1000-step episodes": {"episode_steps": 1000}}
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        print(f"log folder {folder}: append + fsync of 1.6 KB = {_fsync_ms(folder):.2f} ms (median of 50)")
        run(None, {"episode_steps": 40, "warmup": 8}, 200, folder, "warm")  # numba caches, imports
        for label, market in markets.items():
            rates: dict[str, list[float]] = {name: [] for name in ROWS}
            cpu: dict[str, list[float]] = {name: [] for name in ROWS}
            sizes: dict[str, int] = {}
            for _ in range(args.repeats):
                for name, settings in ROWS.items():
                    rate, cpu_rate, size = run(settings, market, args.steps, folder, name.replace(" ", "_"))
                    rates[name].append(rate)
                    cpu[name].append(cpu_rate)
                    sizes[name] = size
            base = rates["no audit"]
            print(f"\n{label}, {args.steps} steps x {args.repeats} repeats")
            print("| row | steps/s (median) | CPU steps/s (median) | slowdown vs no audit | bytes per decision |")
            print("| --- | --- | --- | --- | --- |")
            for name in ROWS:
                ratio = statistics.median(b / r for b, r in zip(base, rates[name]))
                per = f"{sizes[name] / args.steps:.0f}" if ROWS[name] is not None else "-"
                print(f"| {name} | {statistics.median(rates[name]):,.0f} | {statistics.median(cpu[name]):,.0f} | "
                      f"{ratio:.2f}x | {per} |")


if __name__ == "__main__":
    main()
