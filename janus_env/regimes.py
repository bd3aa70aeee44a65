"""Latent fundamental processes and the named market scenarios.

The fundamental is ``V_t = V_0 · exp(f_t)``; informed traders trade toward it.

* OU (mean-reverting): ``f ← f − κ·f + σ·ε``.
* GBM (momentum): ``f ← f + (μ − σ²/2) + σ·ε``.
* Markov regime switching (Hamilton, 1989): a calm/turbulent chain with
  per-step switching probabilities; the turbulent regime multiplies σ, and a
  weak OU pull (κ/10) keeps the price on the grid.
* Stress events layered on any process: ``flash_crash`` (2010-style liquidity
  withdrawal, sell cascade and recovery: the fundamental dips by
  ``event_depth`` over the first third of the event and recovers over the
  rest, market makers pull their quotes and cascade sell orders arrive) and
  ``squeeze`` (a short squeeze: the fundamental jumps up by ``event_depth``
  with a buy cascade of short covering).

The fundamental is reflected at ``±P_FUND_LIMIT`` so the book stays on its grid.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from janus_env.config import (
    EVENT_FLASH_CRASH,
    EVENT_NONE,
    EVENT_SQUEEZE,
    P_DRIFT,
    P_EVENT_DEPTH,
    P_EVENT_KIND,
    P_EVENT_LENGTH,
    P_EVENT_START,
    P_FUND_LIMIT,
    P_KAPPA,
    P_P_CALM_TO_TURBULENT,
    P_P_TURBULENT_TO_CALM,
    P_PROCESS,
    P_REGIME_VOL_MULT,
    P_SIGMA,
    PROCESS_GBM,
    PROCESS_MARKOV,
    MarketConfig,
)
from janus_env.rng import normal, seed_state, uniform

SCENARIOS: dict[str, dict[str, object]] = {
    "ou": {"process": "ou"},
    "gbm": {"process": "gbm", "drift": 2e-5, "kappa": 0.0},
    "regime": {"process": "markov"},
    "flash_crash": {"process": "ou", "event": "flash_crash"},
    "high_vol": {"process": "markov", "sigma": 0.0009, "lambda_market": 0.8, "mm_half_spread": 4,
                 "p_calm_to_turbulent": 0.02, "p_turbulent_to_calm": 0.02},
    "squeeze": {"process": "gbm", "kappa": 0.0, "event": "squeeze", "event_depth": 0.08,
                "momentum_rate": 0.3},
}
"""Named scenarios: overrides applied on top of ``MarketConfig()`` defaults."""

_BAD_SCENARIO = "Unknown scenario {!r}; expected one of {}"


def scenario_config(scenario: str, **overrides: object) -> MarketConfig:
    """The ``MarketConfig`` of a named scenario with user ``overrides`` on top."""
    if not isinstance(scenario, str):
        raise TypeError(_BAD_SCENARIO.format(scenario, sorted(SCENARIOS) + ["historical"]))
    if scenario not in SCENARIOS:
        raise ValueError(_BAD_SCENARIO.format(scenario, sorted(SCENARIOS) + ["historical"]))
    return MarketConfig().replace(**{**SCENARIOS[scenario], **overrides})


@njit(cache=True)
def event_offset(p, t):
    """Deterministic log-price offset of the stress event at step ``t`` (0 outside it)."""
    kind = p[P_EVENT_KIND]
    if kind == EVENT_NONE:
        return 0.0
    start = p[P_EVENT_START]
    length = p[P_EVENT_LENGTH]
    x = (t - start) / length
    if x < 0.0 or x > 1.0:
        return 0.0
    depth = p[P_EVENT_DEPTH]
    if kind == EVENT_FLASH_CRASH:
        if x < 1.0 / 3.0:
            return -depth * (3.0 * x)
        return -depth * (1.0 - (x - 1.0 / 3.0) * 1.5)
    if kind == EVENT_SQUEEZE:
        if x < 0.5:
            return depth * (2.0 * x)
        return depth
    return 0.0


@njit(cache=True)
def event_phase(p, t):
    """0 outside the event, 1 in its shock phase (crash or squeeze), 2 in its recovery phase."""
    if p[P_EVENT_KIND] == EVENT_NONE:
        return 0
    x = (t - p[P_EVENT_START]) / p[P_EVENT_LENGTH]
    if x < 0.0 or x > 1.0:
        return 0
    split = 1.0 / 3.0 if p[P_EVENT_KIND] == EVENT_FLASH_CRASH else 0.5
    return 1 if x < split else 2


@njit(cache=True)
def advance_fundamental(p, rng, f, regime):
    """One step of the base process; returns ``(f, regime)`` (event offsets are added by the caller)."""
    sigma = p[P_SIGMA]
    kind = p[P_PROCESS]
    if kind == PROCESS_MARKOV:
        u = uniform(rng)
        if regime == 0 and u < p[P_P_CALM_TO_TURBULENT]:
            regime = 1
        elif regime == 1 and u < p[P_P_TURBULENT_TO_CALM]:
            regime = 0
        if regime == 1:
            sigma *= p[P_REGIME_VOL_MULT]
        f = f - 0.1 * p[P_KAPPA] * f + sigma * normal(rng)
    elif kind == PROCESS_GBM:
        f = f + p[P_DRIFT] - 0.5 * sigma * sigma + sigma * normal(rng)
    else:
        f = f - p[P_KAPPA] * f + sigma * normal(rng)
    limit = p[P_FUND_LIMIT] * 0.8
    if f > limit:
        f = 2.0 * limit - f
    elif f < -limit:
        f = -2.0 * limit - f
    return f, regime


def fundamental_path(config: MarketConfig, n_steps: int, seed: int) -> np.ndarray:
    """Sample ``n_steps`` of the log fundamental (event included) — for plots and tests."""
    p = config.to_params()
    rng = seed_state(np.random.default_rng(seed))
    out = np.empty(int(n_steps), dtype=np.float64)
    _fill_path(p, rng, out)
    return out


@njit(cache=True)
def _fill_path(p, rng, out):
    f = 0.0
    regime = 0
    for t in range(out.shape[0]):
        f, regime = advance_fundamental(p, rng, f, regime)
        out[t] = f + event_offset(p, t)

