"""Trading knowledge base: rule edge cases, trade history, and numpy ≡ numba kernel."""

from __future__ import annotations

import math
import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import envs_registry  # noqa: F401
from janus_env.samples import sample_path
from wrappers.logic import and_, exists, forall, not_
from wrappers.shield import LTNShield
from janus_env.data.ohlcv import OHLCVBars
from janus_env.historical import load_source
from wrappers.rules import (
    K_LOG_VOL_RATIO,
    K_VOL_SLOPE,
    N_STATE,
    RULE_NAMES,
    S_BOOK_ENCODED,
    S_CASH,
    S_EQUITY,
    S_FEE_BPS,
    S_LOT,
    S_MAX_POSITION,
    S_MEAN_VOLUME,
    S_MID,
    S_POSITION,
    S_RECENT_LOSS_SALE,
    S_VOL_BASELINE,
    S_VOLATILITY,
    S_VPIN,
    TradeHistory,
    TradingKnowledgeBase,
    volatile_truth,
)

WASH, IMPACT, VPIN, POSITION, CASH = range(5)
KB = TradingKnowledgeBase()
Q = np.array([0.0, 100.0, -100.0, 300.0, -300.0])


def deep_book(mid: float = 100.0, qty: float = 1e9) -> np.ndarray:
    """One huge level at mid on each side: no impact, exact cash arithmetic."""
    book = np.full((5, 4), np.nan)
    book[:, 1] = book[:, 3] = 0.0
    book[0] = [mid, qty, mid, qty]
    return book


def make_state(**overrides: float) -> np.ndarray:
    s = np.zeros(N_STATE)
    s[S_POSITION] = 0.0
    s[S_CASH] = 100_000.0
    s[S_EQUITY] = 100_000.0
    s[S_MID] = 100.0
    s[S_VPIN] = 0.3
    s[S_VOLATILITY] = 1e-4
    s[S_MEAN_VOLUME] = 500.0
    s[S_RECENT_LOSS_SALE] = 0.0
    s[S_MAX_POSITION] = 1000.0
    s[S_LOT] = 100.0
    s[S_FEE_BPS] = 0.0
    s[S_BOOK_ENCODED] = 0.0
    s[S_VOL_BASELINE] = 1e-4  # σ_t = σ_hist: a calm market
    names = {"position": S_POSITION, "cash": S_CASH, "equity": S_EQUITY, "mid": S_MID, "vpin": S_VPIN,
             "volatility": S_VOLATILITY, "mean_volume": S_MEAN_VOLUME, "recent": S_RECENT_LOSS_SALE,
             "max_position": S_MAX_POSITION, "lot": S_LOT, "fee_bps": S_FEE_BPS, "sigma_hist": S_VOL_BASELINE}
    for key, value in overrides.items():
        s[names[key]] = value
    return s


def both(q, book, state, kb: TradingKnowledgeBase = KB):
    """Evaluate with numba and numpy, check they agree, return the numba result."""
    fast = kb.evaluate(q, book, state, backend="numba")
    ref = kb.evaluate(q, book, state, backend="numpy")
    np.testing.assert_allclose(fast.truths, ref.truths, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.sat, ref.sat, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.graded, ref.graded, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.graded_sat, ref.graded_sat, rtol=0, atol=1e-12)
    return fast


# ----------------------------------------------------------------------------- HOLD and shapes
def test_rule_names_and_shapes() -> None:
    res = both(Q, deep_book(), make_state())
    assert res.truths.shape == (5, len(RULE_NAMES)) and res.sat.shape == (5,)
    assert list(res.rules(0)) == list(RULE_NAMES)
    assert all(isinstance(v, float) for v in res.rules(1).values())


def test_calm_market_permits_everything() -> None:
    res = both(Q, deep_book(), make_state())
    np.testing.assert_array_equal(res.sat, np.ones(5))


# ----------------------------------------------------------------------------- wash sale
def test_wash_sale_blocks_buys_only() -> None:
    res = both(Q, deep_book(), make_state(recent=1.0))
    np.testing.assert_array_equal(res.truths[:, WASH], [1, 0, 1, 0, 1])
    assert res.sat[1] == pytest.approx(math.sqrt(4 / 5))


def test_wash_sale_forall_equals_negated_exists() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        losses = (rng.random(30) < 0.2).astype(float)
        for buy in (0.0, 1.0):
            lhs = forall(not_(and_(losses, buy)))
            rhs = not_(and_(exists(losses), buy))
            assert lhs == rhs


def _history_with_loss_sale(at_step: int, sell_price: float = 99.0) -> TradeHistory:
    h = TradeHistory(wash_sale_window=30)
    h.reset({"volume": 0.0, "step": 0, "volatility": 0.0})
    h.update({"exec_qty": 100.0, "exec_price": 100.0, "volume": 100.0, "volatility": 0.0, "step": 1})
    for step in range(2, at_step):
        h.update({"exec_qty": 0.0, "exec_price": 0.0, "volume": 0.0, "volatility": 0.0, "step": step})
    h.update({"exec_qty": -100.0, "exec_price": sell_price, "volume": 100.0, "volatility": 0.0, "step": at_step})
    return h


def test_empty_history_has_no_loss_sale() -> None:
    h = TradeHistory()
    assert h.recent_loss_sale() == 0.0
    h.reset({"volume": 10.0, "step": 0, "volatility": 0.0})
    assert h.recent_loss_sale() == 0.0 and h.mean_volume == 10.0 and h.max_trades == 256 and h.trades == []


def test_sale_at_zero_pnl_is_not_a_loss() -> None:
    h = _history_with_loss_sale(5, sell_price=100.0)
    assert h.last_loss_sale_step is None and h.recent_loss_sale() == 0.0
    assert h.trades[-1].realized_pnl == 0.0 and h.position == 0.0


def test_sale_at_a_loss_window_edges() -> None:
    h = _history_with_loss_sale(5)
    assert h.last_loss_sale_step == 5 and h.trades[-1].realized_pnl == pytest.approx(-100.0)
    assert h.recent_loss_sale() == 1.0  # the next step, k = 1
    assert h.recent_loss_sale(step=5 + 30) == 1.0  # last step of the window, k = 30
    assert h.recent_loss_sale(step=5 + 31) == 0.0  # first step after it
    for step in range(6, 35):
        h.update({"exec_qty": 0.0, "exec_price": 0.0, "volume": 0.0, "volatility": 0.0, "step": step})
    assert h.last_step == 34 and h.recent_loss_sale() == 1.0  # deciding step 35 = 5 + 30
    h.update({"exec_qty": 0.0, "exec_price": 0.0, "volume": 0.0, "volatility": 0.0, "step": 35})
    assert h.recent_loss_sale() == 0.0  # deciding step 36


def test_average_cost_and_flips() -> None:
    h = TradeHistory()
    h.reset({"volume": 0.0, "step": 0, "volatility": 0.0})
    fills = [(100.0, 100.0), (100.0, 102.0), (-50.0, 103.0), (-250.0, 100.5), (100.0, 101.0)]
    for step, (qty, price) in enumerate(fills, start=1):
        h.update({"exec_qty": qty, "exec_price": price, "volume": abs(qty), "volatility": 0.0, "step": step})
        if step == 2:
            assert h.average_cost == pytest.approx(101.0)
        if step == 3:
            assert h.trades[-1].realized_pnl == pytest.approx(100.0) and h.last_loss_sale_step is None
    # step 4 sold 150 long at 100.5 < 101 (a loss sale) and opened 100 short at 100.5
    assert h.last_loss_sale_step == 4
    assert h.trades[3].realized_pnl == pytest.approx(-75.0)
    # step 5 covered the short at a loss: a buy, not a sale at a loss
    assert h.trades[4].realized_pnl == pytest.approx(-50.0) and h.last_loss_sale_step == 4
    assert h.position == 0.0 and h.average_cost == 0.0
    assert h.unrealized_pnl(100.0) == 0.0


def test_short_sale_is_not_a_loss_sale() -> None:
    h = TradeHistory()
    h.reset({"volume": 0.0, "step": 0, "volatility": 0.0})
    h.update({"exec_qty": -100.0, "exec_price": 100.0, "volume": 100.0, "volatility": 0.0, "step": 1})
    h.update({"exec_qty": -100.0, "exec_price": 90.0, "volume": 100.0, "volatility": 0.0, "step": 2})
    assert h.last_loss_sale_step is None and h.average_cost == pytest.approx(95.0)


def test_mean_volume_window() -> None:
    h = TradeHistory(volume_window=3)
    h.reset({"volume": 100.0, "step": 0, "volatility": 0.0})
    for step, volume in enumerate([200.0, 300.0, 400.0, 500.0], start=1):
        h.update({"exec_qty": 0.0, "exec_price": 0.0, "volume": volume, "volatility": 0.0, "step": step})
    assert h.mean_volume == pytest.approx(400.0)


def test_history_bad_arguments() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `wash_sale_window` to be an int >= 1, got 0")):
        TradeHistory(wash_sale_window=0)
    with pytest.raises(TypeError, match=re.escape("Expected `volume_window` to be an int >= 1, got 2.5")):
        TradeHistory(volume_window=2.5)
    with pytest.raises(TypeError, match=re.escape("Expected `max_trades` to be an int >= 1, got True")):
        TradeHistory(max_trades=True)
    with pytest.raises(TypeError, match=re.escape("Expected `vol_halflife` to be a finite number > 0, got '500'")):
        TradeHistory(vol_halflife="500")
    h = TradeHistory(wash_sale_window=np.int64(5), volume_window=np.int32(3))  # numpy ints are ints
    assert (type(h.wash_sale_window), h.wash_sale_window, h.volume_window) == (int, 5, 3)
    with pytest.raises(KeyError, match="info has no 'volume' key"):
        TradeHistory().update({"exec_qty": 0.0})


# ----------------------------------------------------------------------------- VPIN
def test_vpin_exactly_at_threshold_is_not_toxic() -> None:
    res = both(Q, deep_book(), make_state(vpin=0.7))
    np.testing.assert_array_equal(res.truths[:, VPIN], np.ones(5))


def test_vpin_above_threshold_permits_only_hold() -> None:
    res = both(Q, deep_book(), make_state(vpin=np.nextafter(0.7, 1.0)))
    np.testing.assert_array_equal(res.truths[:, VPIN], [1, 0, 0, 0, 0])
    assert res.sat[0] == 1.0 and np.all(res.sat[1:] < 0.9)


# ----------------------------------------------------------------------------- Almgren–Chriss
def _volatile(sigma: float, sigma_hist: float, kb: TradingKnowledgeBase = KB) -> float:
    return volatile_truth(sigma, sigma_hist, kb.params[K_LOG_VOL_RATIO], kb.params[K_VOL_SLOPE])


def test_volatile_is_relative_to_the_baseline_and_matches_predicate() -> None:
    # 0.5 at c·σ_hist whatever the scale; sigmoid(6·ln(r/2)) = 1/(1 + (r/2)^−6) computed independently
    for sigma_hist in (1e-5, 4e-4, 0.04):
        assert _volatile(KB.volatility_ratio * sigma_hist, sigma_hist) == pytest.approx(0.5)
        for ratio in (0.5, 1.0, 2.46, 3.0, 4.0):
            expected = 1.0 / (1.0 + (ratio / 2.0) ** -6.0)
            assert _volatile(ratio * sigma_hist, sigma_hist) == pytest.approx(expected, rel=1e-12)
    assert _volatile(1e-4, 1e-4) == pytest.approx(1 / 65)  # calm: σ_t = σ_hist
    pred = KB.volatile_predicate()
    for ratio in (0.1, 1.0, 2.0, 3.0, 50.0):
        expected = _volatile(ratio * 3e-4, 3e-4)
        assert pred(torch.tensor([[math.log(ratio)]])).item() == pytest.approx(expected, abs=1e-6)
    assert _volatile(0.0, 1e-4) < 1e-12
    assert _volatile(0.05, 0.0) == 0.0  # no baseline yet: not volatile


def test_volatile_same_truth_at_every_scale() -> None:
    """σ_t and σ_hist both per step: scaling every reading by k (another bar size) changes no truth value."""
    rng = np.random.default_rng(1)
    base = 1e-3 * np.exp(rng.normal(0.0, 0.2, 300))
    base[200:215] *= 6.0  # a volatility spike
    truths = []
    for k in (1.0, math.sqrt(24.0), 40.0):
        h = KB.history()
        h.reset({"volume": 1e3, "step": 0, "volatility": k * base[0]})
        series = []
        for step, sigma in enumerate(k * base[1:], start=1):
            h.update({"exec_qty": 0.0, "exec_price": 0.0, "volume": 1e3, "volatility": sigma, "step": step})
            series.append(_volatile(sigma, h.sigma_hist))
        truths.append(np.array(series))
    np.testing.assert_allclose(truths[1], truths[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(truths[2], truths[0], rtol=0, atol=1e-12)
    assert np.median(truths[0][:199]) < 0.05 and np.all(truths[0][199:214] > 0.99)  # base[200:215] is the spike


def test_sigma_hist_follows_the_breaker_recursion() -> None:
    """σ_hist: seeded at reset, each reading judged before it is folded in, events (> 3σ_hist) and zeros left out."""
    h = KB.history()
    h.reset({"volume": 0.0, "step": 0, "volatility": 2e-4})
    assert h.sigma_hist == pytest.approx(2e-4)
    readings = [3e-4, 0.0, 1e-4, 5e-3, 2e-4]
    var, n = 4e-8, 1
    for step, sigma in enumerate(readings, start=1):
        h.update({"exec_qty": 0.0, "exec_price": 0.0, "volume": 0.0, "volatility": sigma, "step": step})
        assert h.sigma_hist == pytest.approx(math.sqrt(var), rel=1e-12)  # the baseline sigma is judged against
        if sigma > 1e-9 and sigma * sigma <= 9.0 * var:  # fold after judging, as the amygdala does
            n += 1
            var += max(1.0 / n, 1.0 - 2.0 ** (-1.0 / 500)) * (sigma * sigma - var)
    assert n == 4  # 0.0 (no move) and 5e-3 (25× σ_hist: an event) were left out
    fresh = KB.history()
    fresh.reset({"volume": 0.0, "step": 0, "volatility": 0.0})
    assert fresh.sigma_hist == 0.0  # no move yet: no baseline


@pytest.mark.parametrize("name", ["btc_usd_hourly", "btc_usd_daily"])
def test_real_btc_is_calm_on_its_own_scale(name: str) -> None:
    """A fixed 5 bps threshold made every BTC bar volatile; measured against its own history, BTC is mostly calm."""
    env = gym.make("Janus-LOB-v0", scenario="historical", data=sample_path(name), lot=1, max_position=5,
                   initial_cash=1e6, episode_steps=300)
    obs, info = env.reset(seed=0)
    h = KB.history()
    h.reset(info)
    relative, fixed = [], []
    for _ in range(300):
        obs, _, terminated, truncated, info = env.step(0)
        h.update(info)
        relative.append(_volatile(info["volatility"], h.sigma_hist))
        fixed.append(1.0 / (1.0 + (info["volatility"] / 5e-4) ** -6.0))  # the old sigmoid(6·ln(σ/5 bps))
        if terminated or truncated:
            break
    assert np.median(fixed) > 0.99 and np.median(relative) < 0.05, (np.median(fixed), np.median(relative))


def test_same_path_at_two_bar_sizes_same_truths_and_a_spike_is_volatile() -> None:
    """One OHLCV path replayed with its log returns scaled by sqrt(24) (hourly → daily bars): the same
    ``almgren_chriss_impact`` truths of an order beyond the visible depth (= 1 − Volatile), step by step."""
    rng = np.random.default_rng(0)
    n = 400
    x = np.cumsum(rng.normal(0.0, 1.0, n))
    x[250:260] += np.cumsum(rng.normal(0.0, 8.0, 10))  # an 8× volatility burst
    times = np.arange(n).astype("datetime64[h]").astype("datetime64[ns]")
    series = []
    for scale in (1e-3, 1e-3 * math.sqrt(24.0)):
        close = 100.0 * np.exp(scale * x)
        open_ = np.r_[close[0], close[:-1]]
        bars = OHLCVBars(times, open_, np.maximum(open_, close) * math.exp(scale / 2),
                         np.minimum(open_, close) * math.exp(-scale / 2), close, np.full(n, 1e3))
        env = LTNShield(gym.make("Janus-LOB-v0", scenario="historical", data=load_source(bars, tick_size=1e-9),
                                 episode_steps=300, lot=1, max_position=5, initial_cash=1e6))
        env.reset(seed=0, options={"start": 0})
        truths = []
        for _ in range(300):
            truths.append(env.evaluate_candidates(np.array([1e9])).truths[0, IMPACT])
            _, _, terminated, truncated, _ = env.step(0)
            if terminated or truncated:
                break
        series.append(np.array(truths))
    np.testing.assert_allclose(series[1], series[0], rtol=0, atol=1e-8)
    window = 32  # the env's default window: step t shows bar t + 32
    burst = series[0][250 - window:262 - window]
    assert burst.min() < 0.01 and np.median(series[0][:200]) > 0.95, (burst, np.median(series[0][:200]))


def _impact_book(ask: float = 101.0, bid: float = 99.0) -> np.ndarray:
    book = np.full((5, 4), np.nan)
    book[:, 1] = book[:, 3] = 0.0
    book[0] = [bid, 1000.0, ask, 1000.0]
    return book


def _two_level_book() -> np.ndarray:
    """50 shares at 100.5 and 50 at 101.5 on the ask (bids mirrored): 100 shares walk to VWAP 101."""
    book = np.full((5, 4), np.nan)
    book[:, 1] = book[:, 3] = 0.0
    book[0] = [99.5, 50.0, 100.5, 50.0]
    book[1] = [98.5, 50.0, 101.5, 50.0]
    return book


def test_impact_is_measured_from_the_touch() -> None:
    # 100 shares: VWAP 101, touch 100.5: impact (101 − 100.5)/100 = 0.005 = η·σ·sqrt(v/V), σ = 0.005, v = V = 100
    state = make_state(volatility=0.005, sigma_hist=0.0025, mean_volume=100.0)  # Volatile = 0.5
    res = both(np.array([0.0, 100.0, -100.0, 50.0, -50.0]), _two_level_book(), state)
    volatile = _volatile(0.005, 0.0025)
    assert volatile == pytest.approx(0.5)
    # at the bound: fails the strict <; within the best level (no walk past the touch): impact 0, inside the bound
    np.testing.assert_allclose(res.truths[:, IMPACT], [1.0, 1.0 - volatile, 1.0 - volatile, 1.0, 1.0], atol=1e-15)
    # the half-spread (1 = 100 bps here, 10× the 10 bps budget) is a cost, not impact
    state = make_state(volatility=0.001, sigma_hist=1e-5, mean_volume=100.0)  # Volatile ≈ 1
    res = both(np.array([100.0, -100.0]), _impact_book(101.0, 99.0), state)
    np.testing.assert_array_equal(res.truths[:, IMPACT], [1.0, 1.0])
    # a walk past the touch beyond the budget fails when volatile
    state = make_state(volatility=0.004, sigma_hist=1e-4, mean_volume=100.0)  # Volatile ≈ 1, budget 0.004
    res = both(np.array([100.0, -100.0]), _two_level_book(), state)
    assert np.all(res.truths[:, IMPACT] < 1e-6) and np.all(res.sat < 0.9)


def test_order_beyond_visible_depth_fails_impact_when_volatile() -> None:
    state = make_state(volatility=0.05, sigma_hist=1e-3, mean_volume=100.0)  # Volatile ≈ 1, huge budget
    res = both(np.array([1000.0, 1001.0, -1001.0]), _impact_book(100.01, 99.99), state)
    assert res.truths[0, IMPACT] == 1.0
    assert res.truths[1, IMPACT] < 1e-6 and res.truths[2, IMPACT] < 1e-6


def test_impact_rule_is_vacuous_in_calm_markets() -> None:
    res = both(np.array([1e6]), _impact_book(), make_state(volatility=1e-5))
    assert res.truths[0, IMPACT] > 0.9999
    # calm relative to its own history, however large σ is in bps (a daily bar of a volatile asset)
    res = both(np.array([1e6]), _impact_book(), make_state(volatility=0.045, sigma_hist=0.04))
    assert res.truths[0, IMPACT] > 0.95


def test_empty_side_of_the_book() -> None:
    book = _impact_book()
    book[:, 2:] = [np.nan, 0.0]  # no asks at all (a liquidity withdrawal)
    res = both(np.array([0.0, 100.0, -100.0]), book, make_state(volatility=0.05, sigma_hist=1e-3))
    assert res.truths[1, IMPACT] < 1e-6 and res.truths[2, IMPACT] == 1.0 and res.sat[0] == 1.0


# ----------------------------------------------------------------------------- position limit
@pytest.mark.parametrize("pos,q,ok", [(900.0, 100.0, 1.0), (900.0, 200.0, 0.0), (1000.0, 0.0, 1.0),
                                      (1000.0, -100.0, 1.0), (-900.0, -100.0, 1.0), (-900.0, -200.0, 0.0),
                                      (-1000.0, 100.0, 1.0)])
def test_position_limit_edges(pos: float, q: float, ok: float) -> None:
    state = make_state(position=pos, cash=1e9, equity=1e9)
    assert both(np.array([q]), deep_book(), state).truths[0, POSITION] == ok


# ----------------------------------------------------------------------------- cash reserve
def test_cash_exactly_at_twenty_percent() -> None:
    # cash' = 100000 − 100·q, equity' = 100000: q = 800 leaves exactly 20%
    res = both(np.array([700.0, 800.0, 801.0, 900.0, -900.0]), deep_book(), make_state())
    np.testing.assert_array_equal(res.truths[:, CASH], [1, 1, 0, 0, 1])


def test_cash_reserve_counts_fees_and_book_walk() -> None:
    state = make_state(fee_bps=10.0)  # 10 bps: 800 shares cost 80000 + 80 fee → below 20%
    assert both(np.array([800.0]), deep_book(), state).truths[0, CASH] == 0.0
    book = _impact_book(ask=100.0)  # 1000 at 100 visible; the rest priced at the deepest level
    book[1] = [98.0, 1000.0, 110.0, 1000.0]
    res = both(np.array([800.0, 1200.0]), book, make_state(cash=150_000.0, equity=150_000.0))
    # 1200 shares: 1000·100 + 200·110 = 122000 → cash' 28000 < 0.2·(28000 + 120000)
    np.testing.assert_array_equal(res.truths[:, CASH], [1, 0])


def test_hold_is_always_satisfied_when_under_water() -> None:
    state = make_state(cash=-5000.0, position=1000.0, vpin=0.95, volatility=0.1, recent=1.0, sigma_hist=1e-4)
    res = both(Q, deep_book(), state)
    assert res.sat[0] == 1.0 and res.truths[0].tolist() == [1.0] * 5


# ----------------------------------------------------------------------------- kernel ≡ numpy
finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_numba_kernel_matches_numpy_on_random_states(data) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    mid = 100.0
    n_levels = data.draw(st.integers(1, 6))
    book = np.empty((n_levels, 4))
    book[:, 0] = mid - 0.01 * np.cumsum(rng.integers(1, 4, n_levels))
    book[:, 2] = mid + 0.01 * np.cumsum(rng.integers(1, 4, n_levels))
    book[:, 1] = rng.integers(0, 5, n_levels) * 100.0
    book[:, 3] = rng.integers(0, 5, n_levels) * 100.0
    book[book[:, 1] == 0, 0] = np.nan
    state = make_state(
        position=float(rng.integers(-10, 11) * 100), cash=float(rng.uniform(-1e4, 2e5)),
        vpin=data.draw(st.sampled_from([0.2, 0.7, 0.71, 0.99])),
        volatility=data.draw(st.sampled_from([0.0, 1e-4, 5e-4, 2e-3, 0.05])),
        mean_volume=data.draw(st.sampled_from([0.0, 50.0, 500.0])),
        recent=data.draw(st.sampled_from([0.0, 1.0])), fee_bps=data.draw(st.sampled_from([0.0, 0.5, 10.0])),
        sigma_hist=data.draw(st.sampled_from([0.0, 1e-4, 1e-3])))
    q = rng.integers(-15, 16, data.draw(st.integers(1, 9))) * 100.0
    res = both(q, book, state)
    assert np.all((res.truths >= 0) & (res.truths <= 1))
    hold = both(np.array([0.0]), book, state)
    assert hold.sat[0] == 1.0 or abs(state[S_POSITION]) > state[S_MAX_POSITION]


def test_observation_encoding_matches_currency_book() -> None:
    env = gym.make("Janus-LOB-FlashCrash-v0", seed=3, episode_steps=400)
    obs, info = env.reset()
    history = KB.history()
    history.reset(info)
    cfg = env.unwrapped.config
    q = np.array([0.0, 100.0, -100.0, 500.0, -2000.0, 20000.0])
    for step in range(400):
        obs, _, terminated, truncated, info = env.step(int(step % 7 == 0) + int(step % 11 == 0))
        history.update(info)
        if step % 25:
            continue
        encoded = KB.state(info, history, cfg.max_position, cfg.lot, cfg.fee_bps, book_encoded=True)
        currency = KB.state(info, history, cfg.max_position, cfg.lot, cfg.fee_bps, book_encoded=False)
        from_obs = both(q, obs["book"], encoded)
        from_env = both(q, env.unwrapped.book(), currency)
        np.testing.assert_allclose(from_obs.truths, from_env.truths, atol=1e-6)
        if terminated or truncated:
            break


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs,message", [
    ({"eta": 0.0}, "Expected `eta` to be a finite number > 0, got 0.0"),
    ({"volatility_ratio": -2.0}, "Expected `volatility_ratio` to be a finite number > 0, got -2.0"),
    ({"vol_halflife": 0}, "Expected `vol_halflife` to be a finite number > 0, got 0"),
    ({"vol_event_ratio": 1.0}, "Expected `vol_event_ratio` to be a finite number > 1, got 1.0"),
    ({"vol_event_ratio": float("nan")}, "Expected `vol_event_ratio` to be a finite number > 1, got nan"),
    ({"volatility_slope": float("inf")}, "Expected `volatility_slope` to be a finite number > 0, got inf"),
    ({"vpin_threshold": 1.5}, "Expected `vpin_threshold` to be a number in [0, 1], got 1.5"),
    ({"vpin_threshold": float("nan")}, "Expected `vpin_threshold` to be a number in [0, 1], got nan"),
    ({"cash_reserve": -0.1}, "Expected `cash_reserve` to be a number in [0, 1], got -0.1"),
    ({"p": 0.5}, "Expected `p` to be a finite number >= 1, got 0.5"),
    ({"p": float("inf")}, "Expected `p` to be a finite number >= 1, got inf"),
    ({"wash_sale_window": 0}, "Expected `wash_sale_window` to be an int >= 1, got 0"),
])
def test_bad_kb_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        TradingKnowledgeBase(**kwargs)


@pytest.mark.parametrize("kwargs,message", [
    ({"eta": "1"}, "Expected `eta` to be a finite number > 0, got '1'"),
    ({"p": True}, "Expected `p` to be a finite number >= 1, got True"),
    ({"cash_reserve": None}, "Expected `cash_reserve` to be a number in [0, 1], got None"),
    ({"volume_window": 20.0}, "Expected `volume_window` to be an int >= 1, got 20.0"),
])
def test_bad_kb_parameter_types(kwargs: dict, message: str) -> None:
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        TradingKnowledgeBase(**kwargs)


def test_bad_evaluate_arguments() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected a book of shape (n_levels, 4), got shape (5, 3)")):
        KB.evaluate(Q, np.zeros((5, 3)), make_state())
    with pytest.raises(ValueError, match=re.escape("Expected a 1-D array of candidate quantities, got shape (1, 5)")):
        KB.evaluate(Q[None], deep_book(), make_state())
    with pytest.raises(ValueError, match=re.escape("Expected a state vector of shape (13,), got shape (3,)")):
        KB.evaluate(Q, deep_book(), np.zeros(3))
    with pytest.raises(ValueError, match=re.escape("Expected `backend` to be one of ('numba', 'numpy'), got 'torch'")):
        KB.evaluate(Q, deep_book(), make_state(), backend="torch")
