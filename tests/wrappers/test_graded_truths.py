"""Graded rule truths (wrappers/rules.py, "Graded truths"): hand computations, monotonicity, the per-rule
equivalence ``graded ≥ τ ⇔ crisp rule holds``, and shield decisions unchanged by them."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs_registry  # noqa: F401
from wrappers.rules import (
    K_BOUNDARY_TRUTH,
    N_STATE,
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
    TradingKnowledgeBase,
    graded_truth,
)
from wrappers.shield import LTNShield

WASH, IMPACT, VPIN, POSITION, CASH = range(5)
TAU, M = 0.9, 0.2
KB = TradingKnowledgeBase()


def hand(margin: float, holds: bool | None = None, m: float = M, b: float = TAU) -> float:
    """The documented ramp, written independently: 1 from a margin of m on, b at the limit, 0 when violated."""
    holds = margin >= 0.0 if holds is None else holds
    if not holds:
        return 0.0
    return 1.0 if margin >= m else b + (1.0 - b) * margin / m


def make_state(**overrides: float) -> np.ndarray:
    s = np.zeros(N_STATE)
    values = {S_POSITION: 0.0, S_CASH: 100_000.0, S_EQUITY: 100_000.0, S_MID: 100.0, S_VPIN: 0.3,
              S_VOLATILITY: 1e-4, S_MEAN_VOLUME: 500.0, S_RECENT_LOSS_SALE: 0.0, S_MAX_POSITION: 1000.0,
              S_LOT: 100.0, S_FEE_BPS: 0.0, S_BOOK_ENCODED: 0.0, S_VOL_BASELINE: 1e-4}
    names = {"position": S_POSITION, "cash": S_CASH, "vpin": S_VPIN, "volatility": S_VOLATILITY,
             "mean_volume": S_MEAN_VOLUME, "max_position": S_MAX_POSITION, "sigma_hist": S_VOL_BASELINE,
             "fee_bps": S_FEE_BPS, "recent": S_RECENT_LOSS_SALE}
    for key, value in overrides.items():
        values[names[key]] = value
    for index, value in values.items():
        s[index] = value
    return s


def deep_book(mid: float = 100.0) -> np.ndarray:
    """One huge level at mid on each side: no impact, exact cash arithmetic."""
    book = np.full((5, 4), np.nan)
    book[:, 1] = book[:, 3] = 0.0
    book[0] = [mid, 1e9, mid, 1e9]
    return book


def both(q, book, state, kb: TradingKnowledgeBase = KB):
    """numba and numpy agree on the graded truths too; the numba result."""
    q = np.asarray(q, dtype=np.float64)
    fast = kb.evaluate(q, book, state, backend="numba")
    ref = kb.evaluate(q, book, state, backend="numpy")
    np.testing.assert_allclose(fast.graded, ref.graded, rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.graded_sat, ref.graded_sat, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(fast.truths, ref.truths)
    return fast


# ----------------------------------------------------------------------------- the ramp
def test_graded_truth_points() -> None:
    assert graded_truth(1.0, 0.5, M, TAU) == 1.0  # wide margin
    assert graded_truth(1.0, M, M, TAU) == 1.0
    assert graded_truth(1.0, 0.0, M, TAU) == TAU  # at the limit
    assert graded_truth(1.0, 0.05, M, TAU) == pytest.approx(0.925, abs=1e-15)
    assert graded_truth(0.0, 0.0, M, TAU) == 0.0 and graded_truth(0.0, -0.01, M, TAU) == 0.0  # violated


@settings(max_examples=200, deadline=None)
@given(a=st.floats(-2.0, 2.0), b=st.floats(-2.0, 2.0), m=st.floats(1e-3, 1.0), tau=st.floats(0.05, 1.0))
def test_graded_truth_is_monotone_in_the_margin_and_crosses_tau_at_the_limit(a: float, b: float, m: float,
                                                                             tau: float) -> None:
    lo, hi = min(a, b), max(a, b)
    t_lo = graded_truth(float(lo >= 0.0), lo, m, tau)
    t_hi = graded_truth(float(hi >= 0.0), hi, m, tau)
    assert 0.0 <= t_lo <= t_hi <= 1.0
    for x, t in ((lo, t_lo), (hi, t_hi)):
        assert (t >= tau) == (x >= 0.0)
        assert t == pytest.approx(hand(x, m=m, b=tau), abs=1e-12)


# ----------------------------------------------------------------------------- each rule by hand
def test_position_limit_graded_by_hand() -> None:
    q = [0.0, 700.0, 800.0, 850.0, 950.0, 1000.0, 1100.0, -900.0, -1000.0, -1001.0]
    res = both(q, deep_book(), make_state())
    expected = [hand((1000.0 - abs(x)) / 1000.0) for x in q]
    np.testing.assert_allclose(res.graded[:, POSITION], expected, rtol=0, atol=1e-12)
    assert res.graded[5, POSITION] == TAU and res.graded[3, POSITION] == pytest.approx(0.975)
    np.testing.assert_array_equal(res.graded[:, POSITION] >= TAU, res.truths[:, POSITION] == 1.0)


@pytest.mark.parametrize("vpin,trade", [(0.3, 1.0), (0.56, 1.0), (0.63, 0.95), (0.7, TAU), (0.7001, 0.0),
                                        (0.99, 0.0)])
def test_vpin_graded_by_hand(vpin: float, trade: float) -> None:
    res = both([0.0, 100.0, -100.0], deep_book(), make_state(vpin=vpin))
    np.testing.assert_allclose(res.graded[:, VPIN], [1.0, trade, trade], rtol=0, atol=1e-12)  # HOLD always 1
    assert trade == pytest.approx(hand((0.7 - vpin) / 0.7), abs=1e-12)
    np.testing.assert_array_equal(res.graded[:, VPIN] >= TAU, res.truths[:, VPIN] == 1.0)


def test_cash_reserve_graded_by_hand() -> None:
    """Buys at 100 from cash 100,000 (equity unchanged): required reserve 20,000; sells are never graded."""
    q = np.array([0.0, 500.0, 750.0, 780.0, 790.0, 800.0, 801.0, 900.0, -500.0])
    res = both(q, deep_book(), make_state())
    cash_after = 100_000.0 - 100.0 * q
    required = 0.2 * 100_000.0
    margins = (cash_after - required + 1e-9 * 100_000.0) / required  # the comparison's 1e-9·|equity'| tolerance
    expected = [1.0 if x <= 0 else hand(mg) for x, mg in zip(q, margins)]
    np.testing.assert_allclose(res.graded[:, CASH], expected, rtol=0, atol=1e-9)
    assert res.graded[3, CASH] == pytest.approx(0.95, abs=1e-6)  # cash' = 22,000 = 1.1 × the reserve
    assert res.graded[5, CASH] == pytest.approx(TAU, abs=1e-6) and res.graded[5, CASH] >= TAU  # exactly 20%
    assert res.graded[6, CASH] == 0.0 and res.truths[6, CASH] == 0.0
    np.testing.assert_array_equal(res.graded[:, CASH] >= TAU, res.truths[:, CASH] == 1.0)


def test_impact_graded_by_hand_in_a_volatile_market() -> None:
    """Touch 100 × 100 shares, then 101: 200 shares walk to VWAP 100.5, impact 0.5/100 = 0.005 from the touch; the
    budget η·σ·sqrt(v/V) = 0.05·sqrt(200/V) with V chosen for impact/budget = 0.9 (margin 0.1)."""
    book = np.full((5, 4), np.nan)
    book[:, 1] = book[:, 3] = 0.0
    book[0] = [99.99, 1e6, 100.0, 100.0]
    book[1] = [99.98, 1e6, 101.0, 1e6]
    sigma = 0.05
    budget = 0.005 / 0.9
    volume = 200.0 / (budget / sigma) ** 2
    state = make_state(volatility=sigma, sigma_hist=1e-4, mean_volume=volume)  # σ_t = 500 σ_hist: Volatile ≈ 1
    volatile = 1.0 / (1.0 + math.exp(-6.0 * (math.log(sigma / 1e-4) - math.log(2.0))))
    res = both([0.0, 100.0, 200.0, 1e7], book, state)
    impact_ok = hand(1.0 - 0.005 / budget)  # 0.95
    assert impact_ok == pytest.approx(0.95)
    assert res.graded[0, IMPACT] == 1.0 and res.graded[1, IMPACT] == 1.0  # HOLD; 100 shares fill at the touch
    assert res.graded[2, IMPACT] == pytest.approx(1.0 - max(0.0, volatile - impact_ok), abs=1e-9)
    assert res.truths[2, IMPACT] == 1.0
    assert res.graded[3, IMPACT] == res.truths[3, IMPACT] == pytest.approx(1.0 - volatile)  # beyond the depth
    # 4 V: the budget halves (0.00278 < 0.005): violated, the crisp truth
    over = both([200.0], book, make_state(volatility=sigma, sigma_hist=1e-4, mean_volume=4.0 * volume))
    assert over.truths[0, IMPACT] == pytest.approx(1.0 - volatile) and over.graded[0, IMPACT] == over.truths[0, IMPACT]


def test_wash_sale_is_not_graded() -> None:
    res = both([0.0, 100.0, -100.0], deep_book(), make_state(recent=1.0))
    np.testing.assert_array_equal(res.graded[:, WASH], res.truths[:, WASH])


# ----------------------------------------------------------------------------- equivalence on random states
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_graded_at_least_tau_iff_the_crisp_rule_holds_on_random_states(data) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    mid, n_levels = 100.0, data.draw(st.integers(1, 6))
    book = np.empty((n_levels, 4))
    book[:, 0] = mid - 0.01 * np.cumsum(rng.integers(1, 4, n_levels))
    book[:, 2] = mid + 0.01 * np.cumsum(rng.integers(1, 4, n_levels))
    book[:, 1] = rng.integers(0, 5, n_levels) * 100.0
    book[:, 3] = rng.integers(0, 5, n_levels) * 100.0
    state = make_state(
        position=float(rng.integers(-10, 11) * 100), cash=float(rng.uniform(-1e4, 2e5)),
        vpin=float(rng.uniform(0.4, 0.9)), volatility=data.draw(st.sampled_from([0.0, 1e-4, 2e-3, 0.05])),
        mean_volume=data.draw(st.sampled_from([0.0, 50.0, 500.0, 1e5])), recent=float(rng.integers(0, 2)),
        fee_bps=data.draw(st.sampled_from([0.0, 0.5, 10.0])), sigma_hist=data.draw(st.sampled_from([0.0, 1e-4])))
    tau = data.draw(st.sampled_from([0.5, 0.9, 1.0]))
    kb = TradingKnowledgeBase(boundary_truth=tau, graded_margin=data.draw(st.sampled_from([0.05, 0.2, 1.0])))
    res = both(rng.integers(-15, 16, data.draw(st.integers(1, 9))) * 100.0, book, state, kb)
    g, crisp = res.graded, res.truths
    for rule in (VPIN, POSITION, CASH):  # crisp 0/1 rules with a margin
        np.testing.assert_array_equal(g[:, rule] >= tau, crisp[:, rule] == 1.0)
    # Volatile → ImpactOK: where the bound holds the graded truth is ≥ τ; where it fails it is the crisp truth
    assert np.all(np.where(crisp[:, IMPACT] < 1.0, g[:, IMPACT] == crisp[:, IMPACT], g[:, IMPACT] >= tau))
    np.testing.assert_array_equal(g[:, WASH], crisp[:, WASH])
    assert np.all((g >= 0.0) & (g <= crisp))  # never above the decision truths
    assert np.all(res.graded_sat <= res.sat + 1e-15)
    assert np.all(res.sat[res.graded_sat >= 0.9] >= 0.9)  # a graded SatAgg ≥ τ is always permitted
    np.testing.assert_allclose(res.graded_sat, np.sqrt(np.mean(g**2, axis=1)), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- in the shield
def _episode(threshold: float = 0.9, seed: int = 3, steps: int = 300):
    """A seeded episode of random proposals (sized actions) in the ou market: per step the shield's
    info["ltn"] and the KB scored on the judged state just before."""
    env = LTNShield(gym.make("Janus-LOB-v0", action_type="sized", n_sizes=3, episode_steps=steps, scenario="ou"),
                    threshold=threshold)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(steps):
        scores = env.evaluate_candidates()
        action = int(rng.integers(0, env.action_space.n))
        _, _, terminated, truncated, info = env.step(action)
        records.append((action, scores, info["ltn"]))
        if terminated or truncated:
            break
    return env, records


def test_shield_decides_on_the_per_rule_crisp_truths_and_records_graded_action_sat() -> None:
    """Every block is a crisp decision: ``overridden`` is SatAgg(crisp) < τ recomputed here from the per-rule
    crisp truths (graded ≥ τ for the margin rules); ``action_sat`` is the graded SatAgg and is < 1 on some
    permitted actions (so the logical loss of a masked policy is not 0)."""
    _, records = _episode()
    blocked = graded_permitted = 0
    for action, scores, ltn in records:
        crisp = scores.truths[action].copy()
        crisp[[VPIN, POSITION, CASH]] = (scores.graded[action, [VPIN, POSITION, CASH]] >= TAU).astype(float)
        np.testing.assert_array_equal(crisp, scores.truths[action])
        sat = math.sqrt(float(np.mean(crisp**2)))
        assert ltn["overridden"] == (sat < TAU) and ltn["sat_agg"] == pytest.approx(sat, abs=1e-12)
        assert ltn["action_sat"] == pytest.approx(scores.graded_sat.tolist(), abs=1e-12)
        blocked += ltn["overridden"]
        permitted = scores.sat >= TAU
        graded_permitted += int(np.sum(scores.graded_sat[permitted] < 1.0 - 1e-12))
    assert blocked > 0 and graded_permitted > 0


# Measured on this seeded episode with the crisp-only knowledge base (before graded truths existed):
# 300 steps, the proposals the shield blocked and the actions it executed.
CRISP_BLOCKS = 138
CRISP_FINAL_SUM = 434


def test_block_counts_of_a_seeded_episode_are_the_crisp_ones() -> None:
    _, records = _episode()
    blocks = sum(bool(ltn["overridden"]) for _, _, ltn in records)
    final_sum = sum(int(ltn["final_action"]) for _, _, ltn in records)
    assert (len(records), blocks, final_sum) == (300, CRISP_BLOCKS, CRISP_FINAL_SUM)


def test_the_shield_anchors_the_graded_truths_at_its_threshold() -> None:
    env, records = _episode(threshold=0.8, steps=120)
    assert env.unwrapped is not None and env.core.ctx[K_BOUNDARY_TRUTH] == 0.8
    for action, scores, _ in records:
        for rule in (POSITION, CASH):
            g = scores.graded[:, rule]
            assert np.all((g == 0.0) | (g >= 0.8))
            np.testing.assert_array_equal(g >= 0.8, scores.truths[:, rule] == 1.0)


@pytest.mark.parametrize("kwargs,message", [
    ({"graded_margin": 0.0}, "Expected `graded_margin` to be a number in (0, 1], got 0.0"),
    ({"graded_margin": 1.5}, "Expected `graded_margin` to be a number in (0, 1], got 1.5"),
    ({"boundary_truth": 0.0}, "Expected `boundary_truth` to be a number in (0, 1], got 0.0"),
    ({"boundary_truth": float("nan")}, "Expected `boundary_truth` to be a number in (0, 1], got nan"),
])
def test_bad_graded_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as err:
        TradingKnowledgeBase(**kwargs)
    assert str(err.value) == message
