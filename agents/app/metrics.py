"""Performance and risk metrics, annualization and evaluation statistics, with the formulas the tests check by hand.

## Returns of one episode

An episode's equity curve is ``E_0 .. E_T``. Per-step simple returns are
``r_t = E_t / E_{t−1} − 1`` up to and including the first point with
``E_t ≤ 0`` (ruin: the account is gone, later points are not returns of
anything). The episode return is ``R = E_T / E_0 − 1`` (≤ −100% on ruin), in
basis points ``1e4·R``. Max drawdown is ``max_t (peak_t − E_t) / peak_t`` with
``peak_t = max_{s≤t} E_s`` (above 1 when equity went negative).

## Annualization (step duration → periods per year)

A :class:`TradingCalendar` says how much trading time a year holds:
``equities`` 252 sessions of 6.5 h (NYSE/NASDAQ regular hours), ``crypto``
365 days of 24 h (trades around the clock), ``fx`` 260 days of 24 h (five
days a week). With a step of ``Δ`` seconds, the periods per year are

* ``Δ < 1 day`` (intraday): ``P = sessions · session_seconds / Δ`` — trading
  time only, so a 1-minute bar of a stock is one of 390 per session and
  ``P = 98,280``; of a crypto pair one of 1,440 per day and ``P = 525,600``;
* ``1 day ≤ Δ < 2 days`` (daily bars: consecutive sessions are one day apart,
  weekends aside): ``P = sessions`` (252, 365 or 260);
* ``Δ ≥ 2 days`` (weekly, monthly bars): calendar time,
  ``P = 365.25 · 86,400 / Δ`` (weekly 52.18).

The step duration comes from the data (the median spacing of its time
stamps, :attr:`janus_env.historical.HistoricalSource.step_seconds`) or, in
the simulator, from ``MarketConfig.step_seconds``.

## Statistics across episodes (one strategy, K episodes of T nominal steps)

An episode is the unit of evaluation, like a trading day in a daily-returns
Sharpe: episodes are independent (separate seeds, or consecutive
non-overlapping walk-forward windows of the data), whereas the steps inside
one episode are not (fees, mean reversion, a position held for a while). A
Sharpe ratio of per-step returns annualized by ``sqrt(P)`` from one short
episode extrapolates those dependent steps to a year: an agent that pays one
fee and then sits flat for 20 steps scores about ``−sqrt(P/20)`` (−112 with
``P = 252,000``) for a −1.7 bps episode. So, with ``N = P / T`` episodes per
year and ``R_1 .. R_K`` the episode returns:

* mean episode return and its 95% t-interval:
  ``R̄ ± t_{0.975, K−1} · s / sqrt(K)`` (``s`` the sample std, ddof = 1);
* annualized return: the compound growth of a year of such episodes at their
  geometric mean, ``exp(N · mean(log(1 + R_k))) − 1`` (CAGR); never below −100%
  (a ruined episode, ``R_k = −1``, gives −100%), unlike the arithmetic ``R̄ · N``
  (−20 bps a 500-step episode is −101% a year arithmetically, −63.6% compounded);
* annualized volatility ``s · sqrt(N)``;
* Sharpe (1966) of episode returns: ``R̄ / s · sqrt(N)``, with the standard error of
  Lo (2002, iid returns) ``sqrt((1 + SR_e²/2) / K) · sqrt(N)``, ``SR_e = R̄ / s``:
  what a year of such episodes would give, known to about ``± sqrt(N / K)``.
  The per-episode Sharpe ``SR_e`` itself is what the printed table shows: a
  consistent loss of 20 bps an episode with a 3.6 bps spread is ``SR_e = −5.6``,
  and ``× sqrt(500)`` makes that −125 "a year" — right arithmetically, but a
  number no one can read (``SR_e · sqrt(K)`` is the t-statistic of the mean).
  Only from K ≥ 4 episodes (``MIN_SHARPE_EPISODES``): ``sqrt(K)·SR_e`` is a
  (noncentral) Student t with K − 1 degrees of freedom, whose variance is
  infinite for K − 1 ≤ 2 — with 2 or 3 episodes two nearly equal returns give
  any Sharpe at all;
* Sortino & van der Meer (1991): ``R̄ / DD · sqrt(N)``,
  ``DD = sqrt(mean(min(R, 0)²))`` (target 0), also from K ≥ 4;
* Calmar (Young, 1991): annualized return over the worst episode's max drawdown;
* historical VaR₉₅ ``−q₀.₀₅(r)`` and CVaR₉₅ ``−mean(r | r ≤ q₀.₀₅)`` of the
  per-step returns (a one-step horizon);
* paired comparison of two strategies on the same episodes (same seeds, same
  windows): differences ``d_k = R_k^a − R_k^b``, mean ``d̄``, 95% t-interval
  ``d̄ ± t_{0.975, K−1} · s_d / sqrt(K)`` and the two-sided p-value of the paired
  t-test ``t = d̄ / (s_d / sqrt(K))`` with K − 1 degrees of freedom (Student, 1908).

Values that are not defined are NaN, never a made-up 0: an interval from
one episode, a Sharpe or Sortino from fewer than four, a Sharpe without dispersion, a Sortino without a
losing episode, a Calmar without a drawdown, a p-value of identical results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from janus_env.checks import check_choice, check_fraction, check_number, check_positive

DAY_SECONDS = 86_400.0
YEAR_DAYS = 365.25
MIN_SHARPE_EPISODES = 4
"""Fewest episodes a Sharpe or Sortino of episode returns is reported from (module docstring)."""

_BAD_CURVE = "Expected a 1-D equity curve of finite values starting above 0, got shape {} with first value {!r}"
_BAD_PAIRS = "Expected two 1-D arrays of the same length (paired episodes), got shapes {} and {}"


@dataclass(frozen=True)
class TradingCalendar:
    """How much trading time a year holds.

    Attributes:
        name: ``"equities"``, ``"crypto"`` or ``"fx"``.
        sessions_per_year: trading sessions (days) per year.
        session_seconds: trading seconds per session.
    """

    name: str
    sessions_per_year: float
    session_seconds: float

    @property
    def seconds_per_year(self) -> float:
        """Trading seconds per year."""
        return self.sessions_per_year * self.session_seconds


CALENDARS: dict[str, TradingCalendar] = {
    "equities": TradingCalendar("equities", 252.0, 6.5 * 3600.0),  # NYSE/NASDAQ regular hours 9:30-16:00
    "crypto": TradingCalendar("crypto", 365.0, DAY_SECONDS),  # around the clock, every day
    "fx": TradingCalendar("fx", 260.0, DAY_SECONDS),  # 24 h, five days a week
}


def calendar(name: str | TradingCalendar) -> TradingCalendar:
    """The :class:`TradingCalendar` called ``name`` (a calendar is returned as is).

    Raises:
        ValueError: an unknown name.
    """
    if isinstance(name, TradingCalendar):
        return name
    return CALENDARS[check_choice("calendar", name, sorted(CALENDARS))]


def periods_per_year(step_seconds: float, trading_calendar: str | TradingCalendar = "equities") -> float:
    """Steps per year for a step of ``step_seconds`` (rules in the module docstring).

    Raises:
        TypeError: ``step_seconds`` is not a number.
        ValueError: ``step_seconds`` not finite and > 0, or an unknown calendar.
    """
    cal = calendar(trading_calendar)
    step = check_positive("step_seconds", step_seconds)
    if step < DAY_SECONDS:
        return cal.sessions_per_year * cal.session_seconds / step
    if step < 2.0 * DAY_SECONDS:
        return cal.sessions_per_year
    return YEAR_DAYS * DAY_SECONDS / step


def calendar_from_times(times: np.ndarray) -> str:
    """Guess the trading calendar of time-stamped data: ``"crypto"`` if any stamp is on a Saturday (UTC),
    else ``"fx"`` if any is on a Sunday (FX opens Sunday evening UTC), else ``"equities"``."""
    t = np.asarray(times).astype("datetime64[D]").astype(np.int64)
    weekday = (t + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    if np.any(weekday == 5):
        return "crypto"
    if np.any(weekday == 6):
        return "fx"
    return "equities"


# --------------------------------------------------------------------------- one episode


def returns(equity: np.ndarray) -> np.ndarray:
    """Per-step simple returns of an equity curve, up to and including the first point ≤ 0 (ruin).

    Raises:
        ValueError: not 1-D, empty, non-finite values, or a first value ≤ 0.
    """
    equity = np.asarray(equity, dtype=np.float64)
    if equity.ndim != 1 or equity.size == 0 or not np.all(np.isfinite(equity)) or equity[0] <= 0:
        raise ValueError(_BAD_CURVE.format(equity.shape, float(equity.flat[0]) if equity.size else None))
    gone = np.flatnonzero(equity <= 0)
    if gone.size:
        equity = equity[: gone[0] + 1]
    return equity[1:] / equity[:-1] - 1.0


def ruined(equity: np.ndarray) -> bool:
    """Whether equity ever reached 0 or below."""
    return bool(np.any(np.asarray(equity, dtype=np.float64) <= 0))


def episode_return(equity: np.ndarray) -> float:
    """``E_T / E_0 − 1`` (≤ −1 on ruin)."""
    equity = np.asarray(equity, dtype=np.float64)
    returns(equity)  # validates
    return float(equity[-1] / equity[0] - 1.0)


def max_drawdown(equity: np.ndarray) -> float:
    """``max_t (peak_t − E_t) / peak_t`` (0 for an empty curve; above 1 when equity went negative)."""
    equity = np.asarray(equity, dtype=np.float64)
    if equity.size == 0:
        return 0.0
    peak = np.maximum.accumulate(equity)
    return float(np.max((peak - equity) / peak))


def value_at_risk(r: np.ndarray, level: float = 0.95) -> float:
    """Historical VaR: ``−q_{1−level}(r)`` (NaN without returns)."""
    r = np.asarray(r, dtype=np.float64)
    return math.nan if r.size == 0 else float(-np.quantile(r, 1.0 - level))


def conditional_value_at_risk(r: np.ndarray, level: float = 0.95) -> float:
    """Expected shortfall: ``−mean(r | r ≤ q_{1−level})`` (NaN without returns)."""
    r = np.asarray(r, dtype=np.float64)
    if r.size == 0:
        return math.nan
    q = np.quantile(r, 1.0 - level)
    return float(-r[r <= q].mean())


def latency_percentiles(seconds: np.ndarray) -> dict[str, float]:
    """p50/p95/p99/p99.9 of decision latencies, in microseconds (NaN without any)."""
    us = np.asarray(seconds, dtype=np.float64) * 1e6
    keys = ("latency_p50_us", "latency_p95_us", "latency_p99_us", "latency_p999_us")
    if us.size == 0:
        return dict.fromkeys(keys, math.nan)
    return {k: float(v) for k, v in zip(keys, np.percentile(us, [50, 95, 99, 99.9]))}


# --------------------------------------------------------------------------- a series of returns


def sharpe(r: np.ndarray, periods_per_year: float = 1.0) -> float:
    """``mean(r) / std(r) · sqrt(P)`` (sample std, ddof = 1); NaN with fewer than two values or std 0."""
    r = np.asarray(r, dtype=np.float64)
    if r.size < 2:
        return math.nan
    sd = float(r.std(ddof=1))
    return math.nan if sd == 0 else float(r.mean() / sd * math.sqrt(periods_per_year))


def sharpe_standard_error(r: np.ndarray, periods_per_year: float = 1.0) -> float:
    """Lo (2002), iid returns: ``sqrt((1 + SR²/2) / n) · sqrt(P)`` with SR the per-period Sharpe."""
    r = np.asarray(r, dtype=np.float64)
    sr = sharpe(r)
    if math.isnan(sr):
        return math.nan
    return math.sqrt((1.0 + 0.5 * sr * sr) / r.size) * math.sqrt(periods_per_year)


def sortino(r: np.ndarray, periods_per_year: float = 1.0) -> float:
    """``mean(r) / sqrt(mean(min(r, 0)²)) · sqrt(P)``; NaN with fewer than two values or no loss."""
    r = np.asarray(r, dtype=np.float64)
    if r.size < 2:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    return math.nan if downside == 0 else float(r.mean() / downside * math.sqrt(periods_per_year))


def _student_t() -> Any:
    """``scipy.stats.t``, imported on first use: ``scipy.stats`` takes over a second to import, and ``train.py``
    (through the tournament) must answer ``--help`` and bad arguments without it."""
    from scipy import stats

    return stats.t


def mean_confidence_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """``(mean, half-width)`` of the Student-t interval ``mean ± t_{(1+level)/2, n−1} · s / sqrt(n)``.

    The half-width is NaN with fewer than two values.

    Raises:
        TypeError: ``level`` is not a number.
        ValueError: ``level`` outside (0, 1).
    """
    check_fraction("level", level, low_open=True, high_open=True)
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan
    half = float(_student_t().ppf(0.5 + 0.5 * level, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, half


class PairedComparison(NamedTuple):
    """Strategy a minus strategy b on the same episodes (units of the inputs)."""

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def paired_t_test(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> PairedComparison:
    """Paired t-test of ``a − b`` (module docstring); NaN interval and p-value with fewer than two pairs,
    NaN p-value when every difference is 0, p = 0 when every difference is the same non-zero value.

    Raises:
        ValueError: shapes that do not pair up, or a bad ``level``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(_BAD_PAIRS.format(a.shape, b.shape))
    d = a - b
    mean, half = mean_confidence_interval(d, level)
    n = int(d.size)
    if n < 2:
        return PairedComparison(mean, math.nan, math.nan, math.nan, n)
    sd = float(d.std(ddof=1))
    if sd == 0:
        p = math.nan if mean == 0 else 0.0
    else:
        t = mean / (sd / math.sqrt(n))
        p = float(2.0 * _student_t().sf(abs(t), n - 1))
    return PairedComparison(mean, mean - half, mean + half, p, n)


def annualized_return(episode_returns: np.ndarray, episodes_per_year: float) -> float:
    """``exp(N · mean(log(1 + R))) − 1``: the CAGR of the episodes' geometric mean (−1 after a ruin, NaN if empty)."""
    r = np.asarray(episode_returns, dtype=np.float64)
    if r.size == 0:
        return math.nan
    if np.any(r <= -1.0):
        return -1.0
    try:
        return math.expm1(episodes_per_year * float(np.mean(np.log1p(r))))
    except OverflowError:
        return math.inf


class EpisodeStatistics(NamedTuple):
    """One strategy's statistics across K episodes (module docstring); returns are fractions."""

    episodes: int
    mean_return: float
    return_ci: float
    annualized_return: float
    annualized_volatility: float
    sharpe: float
    sharpe_se: float
    sharpe_episode: float
    sortino: float
    calmar: float
    worst_drawdown: float


def episode_statistics(episode_returns: np.ndarray, drawdowns: np.ndarray, periods_per_year: float,
                       steps_per_episode: float, level: float = 0.95) -> EpisodeStatistics:
    """Statistics of K episode returns, each over ``steps_per_episode`` nominal steps.

    ``N = periods_per_year / steps_per_episode`` episodes make a year.

    Raises:
        TypeError: ``steps_per_episode``, ``periods_per_year`` or ``level`` is not a number.
        ValueError: ``steps_per_episode`` < 1, ``periods_per_year`` not finite and > 0, or a bad ``level``.
    """
    check_number("steps_per_episode", steps_per_episode, low=1)
    check_positive("periods_per_year", periods_per_year)
    r = np.asarray(episode_returns, dtype=np.float64)
    n_year = periods_per_year / float(steps_per_episode)
    mean, half = mean_confidence_interval(r, level)
    worst = float(np.max(drawdowns)) if np.size(drawdowns) else math.nan
    annual = annualized_return(r, n_year)
    vol = float(r.std(ddof=1)) * math.sqrt(n_year) if r.size >= 2 else math.nan
    enough = r.size >= MIN_SHARPE_EPISODES
    return EpisodeStatistics(
        episodes=int(r.size),
        mean_return=mean,
        return_ci=half,
        annualized_return=annual,
        annualized_volatility=vol,
        sharpe=sharpe(r, n_year) if enough else math.nan,
        sharpe_se=sharpe_standard_error(r, n_year) if enough else math.nan,
        sharpe_episode=sharpe(r) if enough else math.nan,
        sortino=sortino(r, n_year) if enough else math.nan,
        calmar=annual / worst if worst > 0 else math.nan,
        worst_drawdown=worst,
    )
