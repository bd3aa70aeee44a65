"""Stylized facts of simulated returns: heavy tails, volatility clustering, no linear predictability.

Cont (2001), "Empirical properties of asset returns: stylized facts and
statistical issues". Used by the tests and by ``benchmarks/stylized_facts.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from janus_env.regimes import scenario_config
from janus_env.rng import seed_state
from janus_env.simulator import O_MID, MarketArrays, env_reset, env_step


class StylizedFacts(NamedTuple):
    excess_kurtosis: float
    acf_returns: np.ndarray  # lags 1..10
    acf_abs_returns: dict[int, float]  # lag -> autocorrelation of |r|
    zero_fraction: float
    n_returns: int


def autocorrelation(x: np.ndarray, lag: int) -> float:
    """Sample autocorrelation ``corr(x_t, x_{t+lag})``."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    denom = float(np.dot(x, x))
    return 0.0 if denom == 0 else float(np.dot(x[:-lag], x[lag:]) / denom)


def simulate_mids(scenario: str = "ou", n_steps: int = 100_000, seed: int = 0, **market: object) -> np.ndarray:
    """Mid prices of one long session with a passive agent (raw kernels, no gym layer)."""
    config = scenario_config(scenario, episode_steps=int(n_steps) + 1, **market)
    arrays = MarketArrays(config, 1)
    arrays.rng[0] = seed_state(np.random.default_rng(seed))
    args = arrays.book(0)
    env_reset(*args)
    mids = np.empty(int(n_steps), dtype=np.float64)
    out = arrays.out[0]
    for t in range(int(n_steps)):
        env_step(*args, 0)
        mids[t] = out[O_MID]
    return mids


def stylized_facts(mids: np.ndarray, abs_lags: tuple[int, ...] = (1, 2, 5, 10, 20)) -> StylizedFacts:
    """Kurtosis and autocorrelations of one-step log returns of ``mids``."""
    from scipy import stats

    r = np.diff(np.log(np.asarray(mids, dtype=np.float64)))
    return StylizedFacts(
        excess_kurtosis=float(stats.kurtosis(r)),
        acf_returns=np.array([autocorrelation(r, k) for k in range(1, 11)]),
        acf_abs_returns={k: autocorrelation(np.abs(r), k) for k in abs_lags},
        zero_fraction=float(np.mean(r == 0)),
        n_returns=int(r.size),
    )
