"""Risk metrics against hand-computed values on tiny series."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from agents.metrics import (
    conditional_value_at_risk,
    latency_percentiles,
    max_drawdown,
    returns,
    risk_metrics,
    sharpe,
    sortino,
    value_at_risk,
)

EQUITY = np.array([100.0, 110.0, 99.0, 108.9, 119.79])  # returns +10%, -10%, +10%, +10%
R = np.array([0.1, -0.1, 0.1, 0.1])


def test_returns() -> None:
    np.testing.assert_allclose(returns(EQUITY), R)


def test_sharpe_by_hand() -> None:
    mean, sd = 0.05, math.sqrt(((0.05**2) * 3 + 0.15**2) / 3)  # sample std, ddof = 1
    assert sharpe(R) == pytest.approx(mean / sd)
    assert sharpe(R, periods_per_year=252) == pytest.approx(mean / sd * math.sqrt(252))


def test_sortino_by_hand() -> None:
    downside = math.sqrt(0.1**2 / 4)  # only the -10% step, averaged over all 4
    assert sortino(R) == pytest.approx(0.05 / downside)


def test_max_drawdown_and_calmar_by_hand() -> None:
    assert max_drawdown(EQUITY) == pytest.approx(11.0 / 110.0)
    m = risk_metrics(EQUITY, periods_per_year=4)
    assert m.calmar == pytest.approx(0.05 * 4 / 0.1)
    assert m.total_return == pytest.approx(0.1979)


def test_var_and_cvar_by_hand() -> None:
    r = np.array([-0.05, -0.03, -0.01, 0.0, 0.01, 0.02, 0.02, 0.03, 0.04, 0.05] * 2)
    q = np.quantile(r, 0.05)  # numpy's linear interpolation: between the two -0.05s and -0.03
    assert value_at_risk(r) == pytest.approx(-q)
    assert conditional_value_at_risk(r) == pytest.approx(0.05)


def test_degenerate_series_stay_finite() -> None:
    flat = np.full(5, 100.0)
    m = risk_metrics(flat)
    assert all(math.isfinite(v) for v in m)
    assert m.sharpe == 0.0 and m.max_drawdown == 0.0 and m.calmar == 0.0


def test_latency_percentiles_in_microseconds() -> None:
    lat = np.arange(1, 1001) * 1e-6
    p = latency_percentiles(lat)
    assert p["latency_p50_us"] == pytest.approx(500.5)
    assert p["latency_p999_us"] == pytest.approx(999.001)


def test_bad_equity_curve() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected a 1-D equity curve of positive finite values")):
        returns(np.array([100.0, -1.0]))
