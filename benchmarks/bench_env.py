"""Throughput of ``Janus-LOB-v0`` against named baselines, all measured in one run.

Rows (see benchmarks/README.md for where the targets come from):

* single ``Janus-LOB-v0`` through ``gym.make`` (default flow, random valid
  actions) vs Gymnasium's ``CartPole-v1`` through ``gym.make``;
  target ≥ 100,000 steps/s and ≥ 0.5× CartPole;
* the raw ``env_step`` kernel called from Python (no gym layer), and the same
  kernel looped inside numba (no Python at all; also in matching-engine messages/s);
* the native vector env (``gym.make_vec``) at N = 1, 16, 64, 256 with
  ``parallel`` False and True vs a ``SyncVectorEnv`` of 8 CartPoles;
  target ≥ 2,000,000 agent-steps/s at N = 256;
* gym-anytrading's ``stocks-v0`` and gym-trading-env's ``TradingEnv`` as named
  baselines, each in its own child process ("not installed" rows when absent).

Method: everything is warmed up (numba compiled) and calibrated so one timed
run lasts ``--min-time`` seconds; then ``--repeats`` rounds run every in-process
bench once each, round-robin, so that load from other processes spreads over
all rows alike; the median is reported. Third-party baselines run in child
processes with the same method (their own median of ``--repeats``).

```bash
python benchmarks/bench_env.py             # full run (~1 min on 2 cores)
python benchmarks/bench_env.py --quick     # smoke run (~10 s)
.bench-venv/bin/python benchmarks/bench_env.py   # with the third-party baselines
```
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

import envs_registry  # noqa: E402,F401  (registers Janus-LOB-v0)
from _baselines import (  # noqa: E402
    NOT_INSTALLED,
    PUBLISHED,
    Measurement,
    cartpole,
    cartpole_native,
    cartpole_sync8,
    measure,
    measure_in_subprocess,
    single_env_bench,
    vector_env_bench,
)
from janus_env.book import S_N_MESSAGES  # noqa: E402
from janus_env.regimes import scenario_config  # noqa: E402
from janus_env.rng import seed_state  # noqa: E402
from janus_env.simulator import O_TERMINATED, O_TRUNCATED, MarketArrays, env_reset, env_step  # noqa: E402

ENV_ID = "Janus-LOB-v0"
VECTOR_SIZES = (1, 16, 64, 256)
SINGLE_TARGET = 100_000.0
CARTPOLE_RATIO_TARGET = 0.5
VECTOR_TARGET = 2_000_000.0
VECTOR_TARGET_N = 256
LOT = 100  # Janus-LOB-v0 default lot: HOLD/BUY/SELL → 0/+100/-100 shares


class Row(NamedTuple):
    """One line of the results table."""

    name: str
    unit: str
    value: float | str
    baseline: str
    baseline_value: float | str | None
    target: str
    met: bool | None


# ------------------------------------------------------------------ JANUS benches


def janus_single() -> Callable[[int], float]:
    """``gym.make("Janus-LOB-v0")`` with default wrappers, flow and ``Discrete(3)`` actions."""
    return single_env_bench(gym.make(ENV_ID), 3)


def _raw_market(seed: int = 0) -> tuple[MarketArrays, tuple[np.ndarray, ...]]:
    arrays = MarketArrays(scenario_config("ou"), 1)
    arrays.rng[0] = seed_state(np.random.default_rng(seed))
    args = arrays.book(0)
    env_reset(*args)
    return arrays, args


def _order_pool(seed: int = 0, size: int = 65_536) -> np.ndarray:
    return np.array([0, LOT, -LOT], dtype=np.int64)[np.random.default_rng(seed).integers(0, 3, size)]


def raw_kernel() -> Callable[[int], float]:
    """``env_step`` called from Python per step (numba dispatch included, no gym layer)."""
    arrays, args = _raw_market()
    pool = _order_pool().tolist()
    out = arrays.out[0]
    state = {"i": 0}

    def run(k: int) -> float:
        i = state["i"]
        n = len(pool)
        for _ in range(k):
            env_step(*args, pool[i])
            i = i + 1 if i + 1 < n else 0
            if out[O_TERMINATED] != 0.0 or out[O_TRUNCATED] != 0.0:
                env_reset(*args)
        state["i"] = i
        return float(k)

    return run


@njit(cache=True)
def _kernel_loop(levels, orders, state, accounts, fills, log, rng, p, f, ib, obs, out, qty, k, start):
    """``k`` market steps inside numba; returns the matching-engine messages they processed."""
    messages = 0
    n = qty.shape[0]
    for j in range(k):
        before = state[S_N_MESSAGES]
        env_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, obs, out, qty[(start + j) % n])
        messages += state[S_N_MESSAGES] - before
        if out[O_TERMINATED] != 0.0 or out[O_TRUNCATED] != 0.0:
            env_reset(levels, orders, state, accounts, fills, log, rng, p, f, ib, obs, out)
    return messages


class KernelLoopBench:
    """The market steps of ``raw_kernel`` looped inside numba (no Python per step), on one book.

    ``steps(k)`` counts steps, ``messages(k)`` counts the matching-engine
    messages (submits, cancels, executions) those steps processed.
    """

    def __init__(self) -> None:
        _, self._args = _raw_market()
        self._pool = _order_pool()
        self._i = 0
        self.n_steps = 0
        self.n_messages = 0

    def _run(self, k: int) -> int:
        m = int(_kernel_loop(*self._args, self._pool, k, self._i))
        self._i = (self._i + k) % self._pool.shape[0]
        self.n_steps += k
        self.n_messages += m
        return m

    def steps(self, k: int) -> float:
        self._run(k)
        return float(k)

    def messages(self, k: int) -> float:
        return float(self._run(k))

    @property
    def messages_per_step(self) -> float:
        return self.n_messages / self.n_steps if self.n_steps else float("nan")


def janus_vector(num_envs: int, parallel: bool) -> Callable[[int], float]:
    """``gym.make_vec("Janus-LOB-v0", num_envs=N, parallel=...)`` (the native vector env)."""
    envs = gym.make_vec(ENV_ID, num_envs=num_envs, parallel=parallel)
    return vector_env_bench(envs, 3)


# ------------------------------------------------------------------ driver


def run_round_robin(benches: dict[str, Callable[[int], float]], min_time: float, repeats: int,
                    log: Callable[[str], None]) -> tuple[dict[str, Measurement], dict[str, float]]:
    """Warm up and calibrate each bench, then time ``repeats`` rounds of all of them.

    Returns the median rate per bench and the median ratio of process CPU time to
    wall time during its timed runs (≈ the number of busy threads).
    """
    calibrated: dict[str, int] = {}
    for name, run in benches.items():
        t0 = time.perf_counter()
        run(2)  # compile / first-call costs, outside any timing
        calibrated[name] = measure(run, min_time, 1).k
        log(f"  warmed up {name} ({time.perf_counter() - t0:.1f} s, k={calibrated[name]})")
    rates: dict[str, list[float]] = {name: [] for name in benches}
    busy: dict[str, list[float]] = {name: [] for name in benches}
    for r in range(repeats):
        for name, run in benches.items():
            k = calibrated[name]
            c0 = time.process_time()
            t0 = time.perf_counter()
            units = run(k)
            wall = time.perf_counter() - t0
            rates[name].append(units / wall)
            busy[name].append((time.process_time() - c0) / wall)
        log(f"  round {r + 1}/{repeats} done")
    medians = {name: Measurement(statistics.median(v), tuple(v), calibrated[name]) for name, v in rates.items()}
    return medians, {name: statistics.median(v) for name, v in busy.items()}


def shared_cache_entries() -> list[str]:
    """Serial/parallel kernel pairs that share one numba cache entry (numba issue #6845).

    ``njit(cache=True)`` and ``njit(cache=True, parallel=True)`` of the *same*
    Python function write one cache index, keyed without the target options, so
    whichever compiles first is loaded for both.
    """
    from janus_env import simulator

    pairs = [("vec_step", "vec_step_parallel"), ("vec_reset", "vec_reset_parallel")]
    shared = []
    for serial, parallel in pairs:
        a, b = getattr(simulator, serial, None), getattr(simulator, parallel, None)
        try:
            same = (a._cache._cache_file._index_path == b._cache._cache_file._index_path
                    and a.targetoptions.get("parallel", False) != b.targetoptions.get("parallel", False))
        except AttributeError:  # not numba dispatchers with a cache, or numba internals moved
            same = False
        if same:
            shared.append(f"{serial}/{parallel}")
    return shared


def machine_info() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": model,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "gymnasium": gym.__version__,
        "numba_threads": numba.get_num_threads(),
        "platform": platform.platform(),
        "load_before": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _fmt(x: float | str | None) -> str:
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    return f"{x:,.0f}"


def _ratio(value: float | str, base: float | str | None) -> str:
    if isinstance(value, str) or not isinstance(base, float) or base <= 0:
        return "—"
    return f"{value / base:.2f}×"


def markdown_table(rows: list[Row]) -> str:
    lines = ["| name | unit | value | baseline | ratio | target | met? |",
             "| --- | --- | ---: | --- | ---: | --- | --- |"]
    for r in rows:
        base = r.baseline if r.baseline_value is None else f"{r.baseline}: {_fmt(r.baseline_value)}"
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.name} | {r.unit} | {_fmt(r.value)} | {base} | {_ratio(r.value, r.baseline_value)} "
                     f"| {r.target} | {met} |")
    return "\n".join(lines)


def build_rows(m: dict[str, Measurement], third: dict[str, Measurement | str]) -> tuple[list[Row], list[Row]]:
    cp = m["cartpole"].median
    sync8 = m["cartpole-sync8"].median
    single = m["janus-single"].median
    single_ok = single >= SINGLE_TARGET and single / cp >= CARTPOLE_RATIO_TARGET

    def third_value(name: str) -> float | str:
        v = third[name]
        return v.median if isinstance(v, Measurement) else v

    rows = [
        Row(f"{ENV_ID} via gym.make", "steps/s", single, "CartPole-v1 via gym.make", cp,
            f"≥ {SINGLE_TARGET:,.0f} and ≥ {CARTPOLE_RATIO_TARGET}× CartPole", single_ok),
        Row(f"{ENV_ID} via gym.make", "steps/s", single, "gym-anytrading stocks-v0", third_value("gym-anytrading"),
            "—", None),
        Row(f"{ENV_ID} via gym.make", "steps/s", single, "gym-trading-env TradingEnv",
            third_value("gym-trading-env"), "—", None),
        Row("env_step kernel, called from Python", "steps/s", m["raw-kernel"].median,
            "CartPole-v1 via gym.make", cp, "— (reference)", None),
        Row("env_step looped inside numba", "steps/s", m["kernel-loop"].median, "CartPole-v1 via gym.make", cp,
            "— (reference)", None),
        Row("env_step looped inside numba", "messages/s", m["kernel-messages"].median, "ABIDES (published)",
            PUBLISHED["ABIDES"][0], "— (engine target: bench_engine.py)", None),
    ]
    for n in VECTOR_SIZES:
        for parallel in (False, True):
            value = m[f"vector-{n}-{'par' if parallel else 'ser'}"].median
            on_target = n == VECTOR_TARGET_N
            rows.append(Row(
                f"JanusLOBVectorEnv N={n} parallel={parallel}", "agent-steps/s", value,
                "SyncVectorEnv 8×CartPole-v1", sync8,
                f"≥ {VECTOR_TARGET:,.0f}" if on_target else "—",
                (value >= VECTOR_TARGET) if on_target else None,
            ))
    baselines = [
        Row("CartPole-v1 via gym.make", "steps/s", cp, "published (issue 2)", PUBLISHED["CartPole-v1"][0], "—",
            None),
        Row("SyncVectorEnv 8×CartPole-v1", "agent-steps/s", sync8, "published (issue 2)",
            PUBLISHED["SyncVectorEnv 8×CartPole-v1"][0], "—", None),
        Row("CartPoleVectorEnv N=256 (numpy, gymnasium's own)", "agent-steps/s", m["cartpole-native256"].median,
            "—", None, "—", None),
        Row("gym-anytrading stocks-v0 via gym.make", "steps/s", third_value("gym-anytrading"),
            "published (issue 2)", PUBLISHED["gym-anytrading stocks-v0"][0], "—", None),
        Row("gym-trading-env TradingEnv via gym.make", "steps/s", third_value("gym-trading-env"),
            "published (issue 2)", PUBLISHED["gym-trading-env TradingEnv"][0], "—", None),
    ]
    return rows, baselines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: short timings, one round")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per timed run (default 0.5)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the median is reported (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.min_time <= 0:
        parser.error(f"--min-time must be > 0, got {args.min_time}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    min_time, repeats = (0.05, 1) if args.quick else (args.min_time, args.repeats)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    info = machine_info()
    log(f"bench_env: min_time={min_time} s, repeats={repeats}, numba threads={info['numba_threads']}")
    loop = KernelLoopBench()
    benches: dict[str, Callable[[int], float]] = {
        "cartpole": cartpole(),
        "janus-single": janus_single(),
        "raw-kernel": raw_kernel(),
        "kernel-loop": loop.steps,
        "kernel-messages": loop.messages,
        "cartpole-sync8": cartpole_sync8(),
        "cartpole-native256": cartpole_native(256),
    }
    for n in VECTOR_SIZES:
        for parallel in (False, True):
            benches[f"vector-{n}-{'par' if parallel else 'ser'}"] = janus_vector(n, parallel)
    results, busy = run_round_robin(benches, min_time, repeats, log)
    third: dict[str, Measurement | str] = {}
    for name in ("gym-anytrading", "gym-trading-env"):
        log(f"  {name} (child process)")
        third[name] = measure_in_subprocess(name, min_time, repeats)
    info["load_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    try:
        info["numba_threading_layer"] = numba.threading_layer()
    except ValueError:
        info["numba_threading_layer"] = None
    msgs_per_step = loop.messages_per_step

    rows, baselines = build_rows(results, third)
    load = " / ".join(f"{x:.2f}" for x in (info["load_before"] or ())) + " → " + \
        " / ".join(f"{x:.2f}" for x in (info["load_after"] or ()))
    print(f"# JANUS env throughput — {info['date']}{' (--quick)' if args.quick else ''}\n")
    print(f"Machine: {info['cpu']}, {info['cores']} cores ({info['cores_usable']} usable), {info['platform']}; "
          f"Python {info['python']}, numpy {info['numpy']}, numba {info['numba']} "
          f"({info['numba_threads']} threads, layer {info['numba_threading_layer']}), "
          f"gymnasium {info['gymnasium']}; load average (1/5/15 min) {load}.")
    print(f"Method: median of {repeats} round-robin timed run(s) of ≥ {min_time} s each after warm-up; "
          f"random valid actions; {msgs_per_step:.1f} engine messages per market step.\n")
    print(markdown_table(rows))
    busy_cells = ", ".join(
        f"N={n} {busy[f'vector-{n}-ser']:.1f} / {busy[f'vector-{n}-par']:.1f}" for n in VECTOR_SIZES)
    print(f"\nBusy threads (process CPU time / wall time) in the vector rows, serial / parallel: {busy_cells}.")
    shared = shared_cache_entries()
    if shared:
        print(f"\n**Warning**: {', '.join(shared)} share one numba cache entry (numba issue #6845: the cache "
              "key ignores `parallel=`), so both load whichever was compiled first; `parallel=True` rows may be "
              "running the serial kernel (busy threads ≈ 1.0) or vice versa.")
    print("\nBaselines measured in this run (the published numbers are those quoted in issue 2):\n")
    print(markdown_table(baselines))
    missing = [name for name, v in third.items() if v == NOT_INSTALLED]
    if missing:
        print(f"\n{', '.join(missing)}: not installed in this interpreter; run with .bench-venv/bin/python "
              "(see benchmarks/README.md).")
    if args.json is not None:
        payload = {
            "machine": info,
            "min_time": min_time,
            "repeats": repeats,
            "messages_per_step": msgs_per_step,
            "results": {k: v._asdict() for k, v in results.items()},
            "third_party": {k: (v._asdict() if isinstance(v, Measurement) else v) for k, v in third.items()},
            "busy_threads": busy,
            "shared_cache_entries": shared,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
