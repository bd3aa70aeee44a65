"""Metrics, annualization and the evaluation statistics against hand-computed values on tiny series."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats

from agents.app.metrics import (
    CALENDARS,
    MIN_SHARPE_EPISODES,
    annualized_return,
    calendar_from_times,
    conditional_value_at_risk,
    episode_return,
    episode_statistics,
    latency_percentiles,
    max_drawdown,
    mean_confidence_interval,
    paired_t_test,
    periods_per_year,
    returns,
    ruined,
    sharpe,
    sharpe_standard_error,
    sortino,
    value_at_risk,
)
from janus_env.checks import BAD_VALUE

EQUITY = np.array([100.0, 110.0, 99.0, 108.9, 119.79])  # returns +10%, -10%, +10%, +10%
R = np.array([0.1, -0.1, 0.1, 0.1])


def test_returns() -> None:
    np.testing.assert_allclose(returns(EQUITY), R)
    assert episode_return(EQUITY) == pytest.approx(0.1979)


def test_returns_stop_at_ruin_and_the_metrics_do_not_fail() -> None:
    curve = np.array([100.0, 50.0, -10.0, 20.0])  # ruined at the third point; the 20 is not a return of anything
    np.testing.assert_allclose(returns(curve), [-0.5, -1.2])
    assert ruined(curve) and not ruined(EQUITY)
    assert episode_return(curve) == pytest.approx(-0.8)  # the last point, as the env reported it
    assert max_drawdown(curve) == pytest.approx(110.0 / 100.0)  # (100 − (−10)) / 100: more than everything
    assert episode_return(np.array([100.0, -5.0])) == pytest.approx(-1.05)


@pytest.mark.parametrize("curve", [np.array([100.0, np.nan]), np.array([0.0, 1.0]), np.ones((2, 2)), np.array([])])
def test_bad_equity_curve(curve: np.ndarray) -> None:
    with pytest.raises(ValueError, match=re.escape("Expected a 1-D equity curve of finite values starting above 0")):
        returns(curve)


def test_sharpe_by_hand() -> None:
    mean, sd = 0.05, math.sqrt(((0.05**2) * 3 + 0.15**2) / 3)  # sample std, ddof = 1
    assert sharpe(R) == pytest.approx(mean / sd)
    assert sharpe(R, periods_per_year=252) == pytest.approx(mean / sd * math.sqrt(252))
    sr = mean / sd
    assert sharpe_standard_error(R, 252) == pytest.approx(math.sqrt((1 + sr * sr / 2) / 4) * math.sqrt(252))


def test_sortino_by_hand() -> None:
    downside = math.sqrt(0.1**2 / 4)  # only the -10% step, averaged over all 4
    assert sortino(R) == pytest.approx(0.05 / downside)
    assert sortino(R, 9) == pytest.approx(0.05 / downside * 3)


def test_undefined_ratios_are_nan_not_zero() -> None:
    assert math.isnan(sharpe(np.array([0.01])))
    assert math.isnan(sharpe(np.zeros(5)))  # never traded: no dispersion
    assert math.isnan(sortino(np.array([0.01, 0.02])))  # no loss
    assert math.isnan(value_at_risk(np.array([]))) and math.isnan(conditional_value_at_risk(np.array([])))


def test_max_drawdown_by_hand() -> None:
    assert max_drawdown(EQUITY) == pytest.approx(11.0 / 110.0)
    assert max_drawdown(np.full(4, 100.0)) == 0.0


def test_var_and_cvar_by_hand() -> None:
    r = np.array([-0.05, -0.03, -0.01, 0.0, 0.01, 0.02, 0.02, 0.03, 0.04, 0.05] * 2)
    q = np.quantile(r, 0.05)  # numpy's linear interpolation: between the two -0.05s and -0.03
    assert value_at_risk(r) == pytest.approx(-q)
    assert conditional_value_at_risk(r) == pytest.approx(0.05)


def test_latency_percentiles_in_microseconds() -> None:
    lat = np.arange(1, 1001) * 1e-6
    p = latency_percentiles(lat)
    assert p["latency_p50_us"] == pytest.approx(500.5)
    assert p["latency_p999_us"] == pytest.approx(999.001)
    assert all(math.isnan(v) for v in latency_percentiles(np.array([])).values())


# ------------------------------------------------------------------ annualization


@pytest.mark.parametrize(
    ("step_seconds", "name", "expected"),
    [
        (3600.0, "crypto", 365 * 24),  # hourly bars, around the clock: 8,760
        (3600.0, "equities", 252 * 6.5),  # hourly bars of a stock: 6.5 per session, 1,638
        (1.0, "equities", 252 * 6.5 * 3600),  # 5,896,800 trading seconds a year
        (1.0, "crypto", 365 * 86400),  # 31,536,000
        (60.0, "equities", 252 * 390),  # 1-minute bars: 390 per session
        (23.4, "equities", 252 * 1000),  # the simulator's default: 1000 steps per session
        (86400.0, "equities", 252),  # daily bars: one per session
        (86400.0, "crypto", 365),
        (86400.0, "fx", 260),
        (7 * 86400.0, "equities", 365.25 / 7),  # weekly bars: calendar time
        (7 * 86400.0, "crypto", 365.25 / 7),
    ],
)
def test_periods_per_year_by_hand(step_seconds: float, name: str, expected: float) -> None:
    assert periods_per_year(step_seconds, name) == pytest.approx(expected)


def test_hourly_versus_one_second_steps() -> None:
    for name in CALENDARS:
        assert periods_per_year(1.0, name) / periods_per_year(3600.0, name) == pytest.approx(3600.0)
    # the old rule (252 · episode_steps) overstated the Sharpe of hourly crypto bars by sqrt(252·1000/8760) ≈ 5.4
    # for 1000-step episodes; with a per-step ratio s the annualized Sharpe is s·sqrt(8760) now
    r = np.array([0.002, -0.001, 0.003, 0.0, 0.001])
    assert sharpe(r, periods_per_year(3600.0, "crypto")) == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(8760))


@pytest.mark.parametrize(("value", "error", "message"), [
    (0.0, ValueError, "Expected `step_seconds` to be a finite number > 0, got 0.0"),
    (math.inf, ValueError, "Expected `step_seconds` to be a finite number > 0, got inf"),
    (math.nan, ValueError, "Expected `step_seconds` to be a finite number > 0, got nan"),
    ("x", TypeError, "Expected `step_seconds` to be a finite number > 0, got 'x'"),  # ValueError before
    ("60", TypeError, "Expected `step_seconds` to be a finite number > 0, got '60'"),  # read as 60.0 before
    (True, TypeError, "Expected `step_seconds` to be a finite number > 0, got True"),  # read as 1.0 before
])
def test_bad_step_seconds(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        periods_per_year(value)  # type: ignore[arg-type]


def test_unknown_calendar() -> None:
    message = BAD_VALUE.format(name="calendar", expected="one of ('crypto', 'equities', 'fx')", value="moon")
    with pytest.raises(ValueError, match=re.escape(message)):
        periods_per_year(60.0, "moon")


def test_calendar_from_times() -> None:
    sat, sun, mon, tue = (np.datetime64(d) for d in ("2021-04-17T10:00", "2021-04-18T22:00", "2021-04-19T15:00",
                                                     "2021-04-20T15:00"))
    assert calendar_from_times(np.array([mon, tue, sat])) == "crypto"
    assert calendar_from_times(np.array([sun, mon, tue])) == "fx"
    assert calendar_from_times(np.array([mon, tue])) == "equities"


# ------------------------------------------------------------------ across episodes


def test_mean_confidence_interval_by_hand() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0])
    sd = math.sqrt((1.5**2 + 0.5**2 + 0.5**2 + 1.5**2) / 3)
    t_975_3 = 3.182446305284263  # Student t quantile, 3 degrees of freedom (printed tables: 3.182)
    mean, half = mean_confidence_interval(x)
    assert mean == 2.5
    assert half == pytest.approx(t_975_3 * sd / 2.0)
    lo, hi = stats.t.interval(0.95, 3, loc=2.5, scale=stats.sem(x))
    assert (mean - half, mean + half) == pytest.approx((lo, hi))
    assert math.isnan(mean_confidence_interval(np.array([3.0]))[1])
    with pytest.raises(ValueError, match=re.escape("Expected `level` to be a number in (0, 1), got 1.5")):
        mean_confidence_interval(x, 1.5)
    with pytest.raises(ValueError, match=re.escape("Expected `level` to be a number in (0, 1), got nan")):
        mean_confidence_interval(x, math.nan)


def test_paired_t_test_by_hand_and_against_scipy() -> None:
    a, b = np.array([1.0, 2.0, 4.0]), np.array([0.0, 1.0, 2.0])  # differences 1, 1, 2
    c = paired_t_test(a, b)
    mean, sd = 4.0 / 3.0, math.sqrt(((1 / 3) ** 2 * 2 + (2 / 3) ** 2) / 2)
    t = mean / (sd / math.sqrt(3))
    assert t == pytest.approx(4.0)
    t_975_2 = 4.302652729911275  # Student t quantile, 2 degrees of freedom (tables: 4.303)
    assert c.mean_diff == pytest.approx(mean)
    half = t_975_2 * sd / math.sqrt(3)
    assert (c.ci_low, c.ci_high) == pytest.approx((mean - half, mean + half))
    assert c.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert c.p_value == pytest.approx(2 * (1 - (0.5 + t / (2 * math.sqrt(2 + t * t)))))  # t-CDF, 2 dof, closed form
    assert c.n == 3


def test_paired_t_test_degenerate_cases() -> None:
    one = paired_t_test(np.array([1.0]), np.array([0.0]))
    assert one.mean_diff == 1.0 and math.isnan(one.ci_low) and math.isnan(one.p_value)
    same = paired_t_test(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    assert same.mean_diff == 0.0 and math.isnan(same.p_value)  # identical results: no test
    shifted = paired_t_test(np.array([1.0, 2.0]), np.array([0.0, 1.0]))
    assert shifted.p_value == 0.0 and shifted.ci_low == shifted.ci_high == 1.0
    with pytest.raises(ValueError, match=re.escape("Expected two 1-D arrays of the same length")):
        paired_t_test(np.array([1.0, 2.0]), np.array([1.0]))


def test_episode_statistics_by_hand() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0])
    dd = np.array([0.01, 0.03, 0.02, 0.005])
    s = episode_statistics(r, dd, periods_per_year=252_000.0, steps_per_episode=1000)  # N = 252 episodes a year
    n_year = 252.0
    mean = 0.005
    sd = math.sqrt((0.005**2 + 0.025**2 + 0.025**2 + 0.005**2) / 3)
    assert s.episodes == 4
    assert s.mean_return == pytest.approx(mean)
    assert s.return_ci == pytest.approx(3.182446305284263 * sd / 2.0)
    assert s.annualized_return == pytest.approx(math.expm1(252 * np.mean(np.log1p(r))))  # compounded
    assert s.annualized_return == pytest.approx(2.3747, abs=1e-4)  # +237% a year (arithmetic 0.005·252 = 126%)
    assert s.annualized_volatility == pytest.approx(sd * math.sqrt(n_year))
    assert s.sharpe == pytest.approx(mean / sd * math.sqrt(n_year))
    assert s.sharpe == pytest.approx(3.8129, abs=1e-4)
    sr = mean / sd
    assert s.sharpe_episode == pytest.approx(sr)  # unannualized: the printed table's number
    assert s.sharpe_se == pytest.approx(math.sqrt((1 + sr * sr / 2) / 4) * math.sqrt(n_year))
    assert s.sortino == pytest.approx(mean / math.sqrt(0.02**2 / 4) * math.sqrt(n_year))
    assert s.worst_drawdown == 0.03
    assert s.calmar == pytest.approx(s.annualized_return / 0.03)


def test_annualized_return_compounds_and_stops_at_ruin() -> None:
    # the make-run mean-reversion row: -20 bps per 500-step episode, 504 episodes a year
    assert annualized_return(np.full(6, -0.0020), 504.0) == pytest.approx((1 - 0.002) ** 504 - 1)
    assert annualized_return(np.full(6, -0.0020), 504.0) == pytest.approx(-0.6354, abs=1e-4)  # not -100.8%
    assert annualized_return(np.array([0.01, -1.0, 0.02]), 52.0) == -1.0  # a ruined episode
    assert math.isnan(annualized_return(np.array([]), 52.0))


def test_sharpe_needs_enough_episodes() -> None:
    assert MIN_SHARPE_EPISODES == 4
    # two nearly equal losing episodes (a fee, then flat): any Sharpe at all, so none is reported
    s = episode_statistics(np.array([-1.7e-4, -1.71e-4, -1.69e-4]), np.zeros(3), 252_000.0, 500)
    assert math.isnan(s.sharpe) and math.isnan(s.sortino) and math.isnan(s.sharpe_se)
    assert math.isnan(s.sharpe_episode)
    assert s.mean_return == pytest.approx(-1.7e-4)
    assert s.annualized_return == pytest.approx(math.expm1(504 * np.mean(np.log1p([-1.7e-4, -1.71e-4, -1.69e-4]))))
    one = episode_statistics(np.array([0.01]), np.array([0.0]), 252.0, 1)
    assert math.isnan(one.return_ci) and math.isnan(one.annualized_volatility) and math.isnan(one.calmar)
    with pytest.raises(ValueError, match=re.escape("Expected `steps_per_episode` to be a finite number >= 1, got 0")):
        episode_statistics(np.array([0.01]), np.array([0.0]), 252.0, 0)
    # the message named `step_seconds` before
    with pytest.raises(ValueError, match=re.escape("Expected `periods_per_year` to be a finite number > 0, got 0.0")):
        episode_statistics(np.array([0.01]), np.array([0.0]), 0.0, 1)
