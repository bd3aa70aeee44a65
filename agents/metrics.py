"""Performance and risk metrics of an equity curve, with the formulas the tests check by hand.

Returns are simple per-step returns of equity, ``r_t = E_t / E_{t−1} − 1``.
``periods_per_year`` annualizes (one session of ``steps`` decisions counts as
a trading day in ``evaluate.py``: ``periods_per_year = 252·steps``).

* Sharpe (1966): ``mean(r) / std(r) · sqrt(P)`` (sample std, ddof = 1).
* Sortino & van der Meer (1991): ``mean(r) / DD · sqrt(P)`` with downside
  deviation ``DD = sqrt(mean(min(r, 0)²))`` (target 0).
* Max drawdown: ``max_t (peak_t − E_t) / peak_t``.
* Calmar (Young, 1991): annualized return ``mean(r)·P`` over max drawdown.
* Historical VaR₉₅: ``−q₀.₀₅(r)``; CVaR₉₅ (expected shortfall): ``−mean(r | r ≤ q₀.₀₅)``.

Degenerate inputs (fewer than two returns, zero dispersion, no drawdown)
give 0.0 rather than inf/NaN, so tables stay finite.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

_BAD_CURVE = "Expected a 1-D equity curve of positive finite values, got shape {} with min {!r}"


def returns(equity: np.ndarray) -> np.ndarray:
    """Per-step simple returns of an equity curve."""
    equity = np.asarray(equity, dtype=np.float64)
    if equity.ndim != 1 or equity.size == 0 or not np.all(np.isfinite(equity)) or equity.min() <= 0:
        raise ValueError(_BAD_CURVE.format(equity.shape, float(equity.min()) if equity.size else None))
    return equity[1:] / equity[:-1] - 1.0


def sharpe(r: np.ndarray, periods_per_year: float = 1.0) -> float:
    r = np.asarray(r, dtype=np.float64)
    if r.size < 2:
        return 0.0
    sd = r.std(ddof=1)
    return 0.0 if sd == 0 else float(r.mean() / sd * math.sqrt(periods_per_year))


def sortino(r: np.ndarray, periods_per_year: float = 1.0) -> float:
    r = np.asarray(r, dtype=np.float64)
    if r.size < 2:
        return 0.0
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    return 0.0 if downside == 0 else float(r.mean() / downside * math.sqrt(periods_per_year))


def max_drawdown(equity: np.ndarray) -> float:
    equity = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(equity)
    return float(np.max((peak - equity) / peak)) if equity.size else 0.0


def calmar(r: np.ndarray, equity: np.ndarray, periods_per_year: float = 1.0) -> float:
    mdd = max_drawdown(equity)
    r = np.asarray(r, dtype=np.float64)
    return 0.0 if mdd == 0 or r.size == 0 else float(r.mean() * periods_per_year / mdd)


def value_at_risk(r: np.ndarray, level: float = 0.95) -> float:
    r = np.asarray(r, dtype=np.float64)
    return 0.0 if r.size == 0 else float(-np.quantile(r, 1.0 - level))


def conditional_value_at_risk(r: np.ndarray, level: float = 0.95) -> float:
    r = np.asarray(r, dtype=np.float64)
    if r.size == 0:
        return 0.0
    q = np.quantile(r, 1.0 - level)
    return float(-r[r <= q].mean())


def latency_percentiles(seconds: np.ndarray) -> dict[str, float]:
    """p50/p95/p99/p99.9 of decision latencies, in microseconds."""
    us = np.asarray(seconds, dtype=np.float64) * 1e6
    if us.size == 0:
        return {"latency_p50_us": 0.0, "latency_p95_us": 0.0, "latency_p99_us": 0.0, "latency_p999_us": 0.0}
    p = np.percentile(us, [50, 95, 99, 99.9])
    return {"latency_p50_us": float(p[0]), "latency_p95_us": float(p[1]), "latency_p99_us": float(p[2]),
            "latency_p999_us": float(p[3])}


class RiskMetrics(NamedTuple):
    total_return: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    var_95: float
    cvar_95: float


def risk_metrics(equity: np.ndarray, periods_per_year: float = 1.0) -> RiskMetrics:
    """Every metric above for one equity curve."""
    equity = np.asarray(equity, dtype=np.float64)
    r = returns(equity)
    return RiskMetrics(
        total_return=float(equity[-1] / equity[0] - 1.0),
        sharpe=sharpe(r, periods_per_year),
        sortino=sortino(r, periods_per_year),
        calmar=calmar(r, equity, periods_per_year),
        max_drawdown=max_drawdown(equity),
        var_95=value_at_risk(r),
        cvar_95=conditional_value_at_risk(r),
    )
