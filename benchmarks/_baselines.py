"""Timing helper and the named baseline environments of ``bench_env.py``.

Every baseline is driven the same way as JANUS: built with ``gym.make`` (or a
vector constructor), default wrappers kept, a cyclic pool of pre-drawn random
valid actions (drawn outside the timed region), ``reset()`` whenever an episode
ends. A bench is a callable ``run(k) -> units`` (units: steps, agent-steps or
messages processed by ``k`` calls) that ``measure`` times.

gym-trading-env calls ``warnings.filterwarnings("error")`` when imported, which
would turn every later warning in the process into an exception, so it is only
ever imported in a child process::

    python benchmarks/_baselines.py gym-trading-env --min-time 0.5 --repeats 3

prints one JSON line ``{"name": ..., "median": ..., "rates": [...]}``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import cycle, islice
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

ACTION_POOL = 65_536
"""Pre-drawn random actions per bench, cycled through."""

PUBLISHED: dict[str, tuple[float, str]] = {
    "ABIDES": (14_217.0, "messages/s"),
    "CartPole-v1": (200_000.0, "steps/s"),
    "gym-anytrading stocks-v0": (385_000.0, "steps/s"),
    "gym-trading-env TradingEnv": (67_000.0, "steps/s"),
    "SyncVectorEnv 8×CartPole-v1": (160_000.0, "agent-steps/s"),
}
"""Reference numbers quoted in issue 2 (see benchmarks/README.md); not measured here."""

NOT_INSTALLED = "not installed"


class Measurement(NamedTuple):
    """Median rate over ``repeats`` timed runs of ``k`` calls each."""

    median: float
    rates: tuple[float, ...]
    k: int


def measure(run: Callable[[int], float], min_time: float, repeats: int) -> Measurement:
    """Warm up and calibrate ``k`` so one run lasts about ``min_time`` s, then time ``repeats`` runs.

    The calibration runs (doubling ``k`` from 1) are the warm-up: they trigger
    any remaining JIT compilation and fill caches before the timed runs.
    """
    k = 1
    while True:
        t0 = time.perf_counter()
        run(k)
        dt = time.perf_counter() - t0
        if dt >= 0.25 * min_time:
            break
        k *= 2
    k = max(1, int(k * min_time / max(dt, 1e-9)))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        units = run(k)
        dt = time.perf_counter() - t0
        rates.append(units / dt)
    return Measurement(statistics.median(rates), tuple(rates), k)


def is_installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    return importlib.util.find_spec(module) is not None


def single_env_bench(env: Any, n_actions: int, seed: int = 0) -> Callable[[int], float]:
    """Step one (wrapped) env with random valid ``Discrete(n_actions)`` actions; units = steps."""
    pool = np.random.default_rng(seed).integers(0, n_actions, size=ACTION_POOL).tolist()
    actions = cycle(pool)
    env.reset(seed=seed)

    def run(k: int) -> float:
        step, reset = env.step, env.reset
        for a in islice(actions, k):
            _, _, terminated, truncated, _ = step(a)
            if terminated or truncated:
                reset()
        return float(k)

    return run


def vector_env_bench(envs: Any, n_actions: int, seed: int = 0) -> Callable[[int], float]:
    """Step a vector env (autoreset) with random valid actions; units = agent-steps."""
    n = envs.num_envs
    pool = np.random.default_rng(seed).integers(0, n_actions, size=(max(1, ACTION_POOL // n), n))
    rows = cycle(list(pool))
    envs.reset(seed=seed)

    def run(k: int) -> float:
        step = envs.step
        for a in islice(rows, k):
            step(a)
        return float(k * n)

    return run


# ------------------------------------------------------------------ baselines


def cartpole() -> Callable[[int], float]:
    """Gymnasium's ``CartPole-v1`` through ``gym.make`` (default wrappers, TimeLimit 500)."""
    import gymnasium as gym

    return single_env_bench(gym.make("CartPole-v1"), 2)


def cartpole_sync8() -> Callable[[int], float]:
    """Gymnasium's ``SyncVectorEnv`` of 8 ``CartPole-v1`` (each through ``gym.make``)."""
    import gymnasium as gym

    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(8)])
    return vector_env_bench(envs, 2)


def cartpole_native(num_envs: int = 256) -> Callable[[int], float]:
    """Gymnasium's own numpy-vectorized ``CartPoleVectorEnv`` (its ``vector_entry_point``)."""
    import gymnasium as gym

    envs = gym.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="vector_entry_point")
    return vector_env_bench(envs, 2)


def anytrading() -> Callable[[int], float]:
    """gym-anytrading's ``stocks-v0`` (bundled GOOGL daily data, window 30) through ``gym.make``."""
    import gym_anytrading  # noqa: F401  (registers stocks-v0)
    import gymnasium as gym

    return single_env_bench(gym.make("stocks-v0"), 2)


def ohlcv_frame(n_rows: int = 20_000, seed: int = 0) -> Any:
    """A synthetic hourly OHLCV DataFrame with the ``feature_*`` columns gym-trading-env's docs build."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n_rows)))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0.0, 0.004, (2, n_rows)))
    df = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + wick[0]),
            "low": np.minimum(open_, close) * (1.0 - wick[1]),
            "close": close,
            "volume": rng.lognormal(10.0, 0.5, n_rows),
        },
        index=pd.date_range("2020-01-01", periods=n_rows, freq="h", name="date_open"),
    )
    df["feature_close"] = df["close"].pct_change()
    df["feature_open"] = df["open"] / df["close"]
    df["feature_high"] = df["high"] / df["close"]
    df["feature_low"] = df["low"] / df["close"]
    df["feature_volume"] = df["volume"] / df["volume"].rolling(7 * 24).max()
    return df.dropna()


def trading_env() -> Callable[[int], float]:
    """gym-trading-env's ``TradingEnv`` as in its docs: positions (-1, 0, 1), 0.01% fees.

    Only call this in a child process (see the module docstring).
    """
    import gym_trading_env  # noqa: F401  (registers TradingEnv; sets warnings to "error")
    import gymnasium as gym

    env = gym.make(
        "TradingEnv",
        name="SYNTH",
        df=ohlcv_frame(),
        positions=[-1, 0, 1],
        trading_fees=0.01 / 100,
        borrow_interest_rate=0.0003 / 100,
        verbose=0,
    )
    return single_env_bench(env, 3)


BASELINES: dict[str, tuple[str, Callable[[], Callable[[int], float]]]] = {
    "cartpole": ("gymnasium", cartpole),
    "cartpole-sync8": ("gymnasium", cartpole_sync8),
    "cartpole-native256": ("gymnasium", cartpole_native),
    "gym-anytrading": ("gym_anytrading", anytrading),
    "gym-trading-env": ("gym_trading_env", trading_env),
}
"""Baseline name → (module it needs, bench factory)."""


def measure_in_subprocess(name: str, min_time: float, repeats: int, timeout_s: float = 600.0) -> Measurement | str:
    """Measure baseline ``name`` in a fresh interpreter; a string explains why there is no number."""
    module, _ = BASELINES[name]
    if not is_installed(module):
        return NOT_INSTALLED
    cmd = [sys.executable, str(Path(__file__).resolve()), name, "--min-time", str(min_time),
           "--repeats", str(repeats)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout_s:.0f} s"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"failed: {tail[:120]}"
    data = json.loads(lines[-1])
    return Measurement(data["median"], tuple(data["rates"]), data["k"])


def _main() -> None:
    parser = argparse.ArgumentParser(description="Measure one baseline env and print its rate as JSON.")
    parser.add_argument("name", choices=sorted(BASELINES))
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the median is reported)")
    args = parser.parse_args()
    _, factory = BASELINES[args.name]
    m = measure(factory(), args.min_time, args.repeats)
    print(json.dumps({"name": args.name, "median": m.median, "rates": list(m.rates), "k": m.k}))


if __name__ == "__main__":
    _main()
