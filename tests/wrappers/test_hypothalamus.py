"""Hypothalamus sizing: Kelly / volatility / drawdown scales, cash-reserve invariant (hypothesis), mapping."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from janus_env.actions import InvalidActionError
from janus_env.checks import NEED_RESET, bad_value
from janus_env.lob_env import JanusLOBEnv
from wrappers.hypothalamus import (
    _BAD_ACTION_TYPE,
    _NOT_JANUS,
    Hypothalamus,
    TradeStats,
    kelly_fraction,
)


class PatchInfo(gym.Wrapper):
    """Overrides info keys (e.g. a stressed volatility) in reset and step infos."""

    def __init__(self, env: gym.Env, **patch: float) -> None:
        super().__init__(env)
        self.patch = patch

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        return obs, {**info, **self.patch}

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        return obs, r, te, tr, {**info, **self.patch}


def sized_env(**kw: Any) -> JanusLOBEnv:
    return JanusLOBEnv(**{"scenario": "ou", "seed": 0, "action_type": "sized", "n_sizes": 5, **kw})


# --------------------------------------------------------------------------- formulas
def test_kelly_formula():
    assert kelly_fraction(0.6, 1.0) == pytest.approx(0.2)
    assert kelly_fraction(0.5, 2.0) == pytest.approx(0.25)
    assert kelly_fraction(0.4, 1.0) == pytest.approx(-0.2)


def test_trade_stats_prior_and_updates():
    s = TradeStats(prior_trades=20, prior_win_rate=0.55, prior_avg_win=0.001, prior_avg_loss=0.001)
    assert (s.win_rate, s.avg_win, s.avg_loss) == pytest.approx((0.55, 0.001, 0.001))
    s.add(0.004)
    s.add(-0.002)
    s.add(0.0)  # neither
    assert s.win_rate == pytest.approx((1 + 11) / 22)
    assert s.avg_win == pytest.approx((0.004 + 11 * 0.001) / 12)
    assert s.avg_loss == pytest.approx((0.002 + 9 * 0.001) / 10)


def test_default_prior_does_not_shrink_orders():
    env = Hypothalamus(sized_env())
    env.reset()
    sc = env.scales()
    assert sc["kelly_f_star"] == pytest.approx(0.1) and sc["kelly_fraction"] == pytest.approx(0.05)
    assert sc["kelly_scale"] == 1.0 and sc["vol_scale"] == 1.0 and sc["drawdown_scale"] == 1.0
    _, _, _, _, info = env.step(3)
    assert info["sizing"]["final_qty"] == info["sizing"]["proposed_qty"] == 300 and info["position"] == 300


# --------------------------------------------------------------------------- scales
def test_volatility_scale_cuts_to_a_smaller_lot():
    env = Hypothalamus(PatchInfo(sized_env(), volatility=5e-4), sigma_target_bps=1.0)  # 5 bps/step vs 1
    env.reset()
    _, _, _, _, info = env.step(5)  # buy 5 lots
    s = info["sizing"]
    assert s["vol_scale"] == pytest.approx(0.2)
    assert s["proposed_qty"] == 500 and s["final_qty"] == 100 and s["final_action"] == 1
    assert s["cuts"]["scale"] == 400 and info["exec_qty"] == 100


def test_relative_volatility_target_follows_the_instrument():
    """Default target = 1.5 × the instrument's own σ baseline: the same market at any σ level sizes alike,
    and a spike to 3× the baseline halves the order (0.5 = 1.5 / 3)."""
    for sigma in (5e-5, 5e-3):  # a calm stock and an hourly coin: same relative sizing
        patch = PatchInfo(sized_env(), volatility=sigma)
        env = Hypothalamus(patch)
        env.reset()
        for _ in range(5):
            _, _, _, _, info = env.step(0)
        assert env.sigma_target() == pytest.approx(1.5 * sigma * 1e4)
        assert env.scales()["vol_scale"] == 1.0
        patch.patch = {"volatility": 3 * sigma}
        env.step(0)  # the spike enters the baseline with weight 1/7
        base = ((6 * sigma**2 + 9 * sigma**2) / 7) ** 0.5
        assert env.scales()["vol_scale"] == pytest.approx(1.5 * base / (3 * sigma))


@pytest.mark.parametrize(("dd", "scale"), [(0.0, 1.0), (0.05, 0.5), (0.095, 0.1), (0.5, 0.1)])
def test_drawdown_scale(dd, scale):
    env = Hypothalamus(PatchInfo(sized_env(), drawdown=dd))
    env.reset()
    assert env.scales()["drawdown_scale"] == pytest.approx(scale)


def test_reductions_are_not_scaled_and_flips_scale_only_the_new_side():
    patch = PatchInfo(sized_env(n_sizes=10))
    env = Hypothalamus(patch, sigma_target_bps=1.0)
    env.reset()
    env.step(3)  # long 300 at normal volatility
    patch.patch = {"volatility": 5e-4}  # now stressed: vol_scale 0.2 from the next decision on
    env.step(0)
    _, _, _, _, info = env.step(10 + 2)  # sell 2 lots: pure reduction
    assert info["sizing"]["final_qty"] == -200 and info["position"] == 100
    _, _, _, _, info = env.step(10 + 6)  # sell 6: close 100, open 500 short × 0.2 = 100
    s = info["sizing"]
    assert s["proposed_qty"] == -600 and s["final_qty"] == -200 and info["position"] == -100


def test_negative_edge_blocks_new_exposure_but_not_exits():
    env = Hypothalamus(sized_env())
    env.reset()
    env.step(2)  # long 200 before the record turns bad
    for _ in range(100):
        env.stats.add(-0.002)
    assert env.scales()["kelly_f_star"] < 0 and env.scales()["kelly_scale"] == 0.0
    _, _, _, _, info = env.step(1)
    assert info["sizing"]["final_qty"] == 0 and info["position"] == 200
    _, _, _, _, info = env.step(5 + 2)
    assert info["sizing"]["final_qty"] == -200 and info["position"] == 0


def test_closed_trade_updates_stats():
    env = Hypothalamus(sized_env())
    env.reset()
    _, _, _, _, buy = env.step(2)
    _, _, _, _, sell = env.step(5 + 2)
    assert env.stats.wins + env.stats.losses == 1
    ret = (sell["exec_price"] - buy["exec_price"] - sell["fees"] / 200) / buy["exec_price"]
    if ret > 0:
        assert env.stats.sum_win == pytest.approx(ret)
    else:
        assert env.stats.sum_loss == pytest.approx(-ret)
    env.reset()
    assert env.stats.wins + env.stats.losses == 0  # per session by default


def test_continuous_target_is_scaled():
    env = Hypothalamus(PatchInfo(JanusLOBEnv(scenario="ou", seed=0, action_type="continuous"),
                                 volatility=2e-4), sigma_target_bps=1.0)  # vol_scale 0.5
    env.reset()
    _, _, _, _, info = env.step(np.array([0.5], dtype=np.float32))
    s = info["sizing"]
    assert s["proposed_qty"] == 500 and s["final_qty"] == 250 and info["position"] == 250
    assert s["final_action"] == [pytest.approx(0.25)]


def test_reserve_cut_is_reported():
    env = Hypothalamus(sized_env(max_position=5000, lot=500))
    env.reset()
    _, _, _, _, info = env.step(5)  # 2500 shares ≈ 250% of equity: cut to ≤ 80%
    s = info["sizing"]
    assert s["cuts"]["reserve"] > 0 and s["final_qty"] == 500
    assert info["cash"] >= 0.2 * (info["cash"] + info["position"] * info["mid"]) - 1.0


def test_unchanged_action_is_forwarded_as_is():
    seen = []

    class Spy(gym.Wrapper):
        def step(self, action):
            seen.append(action)
            return self.env.step(action)

    env = Hypothalamus(Spy(JanusLOBEnv(scenario="ou", seed=0, action_type="continuous")))
    env.reset()
    a = np.array([0.1], dtype=np.float32)
    env.step(a)
    assert seen[0] is a


# --------------------------------------------------------------------------- invariant
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    scenario=st.sampled_from(["ou", "flash_crash", "squeeze", "high_vol", "gbm"]),
    action_type=st.sampled_from(["sized", "continuous"]),
    max_position=st.sampled_from([1000, 3000, 10000]),
    lot=st.sampled_from([100, 500]),
    draws=st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=80),
)
@example(seed=474, scenario="high_vol", action_type="continuous", max_position=1000, lot=100,
         draws=[0.0, 0.0, 1.0, 0.0])  # a sell into an empty bid side: book_exhausted, not a sizing error
def test_cash_reserve_and_size_bounds_hold(seed, scenario, action_type, max_position, lot, draws):
    """After every fill that increases |position|: |q|·m ≤ 0.8·(cash + q·m) at the pre-trade mid m.

    For a long that is cash ≥ 20% of equity; for a short, equity left after collateralizing the short
    one-for-one ≥ 20% of equity. Sizing never enlarges or flips the proposal; the env rejects nothing but what the book cannot fill.
    """
    n_sizes = 5
    env = Hypothalamus(JanusLOBEnv(scenario=scenario, seed=seed, action_type=action_type, n_sizes=n_sizes,
                                   max_position=max_position, lot=lot, episode_steps=100))
    _, prev = env.reset()
    for u in draws:
        action = (np.int64(min(int(u * (2 * n_sizes + 1)), 2 * n_sizes)) if action_type == "sized"
                  else np.array([2.0 * u - 1.0], dtype=np.float32))
        _, _, term, trunc, info = env.step(action)
        s = info["sizing"]
        assert abs(s["final_qty"]) <= abs(s["proposed_qty"])
        assert s["final_qty"] * s["proposed_qty"] >= 0
        # the one refusal sizing cannot prevent: a thin book with no opposite side left (high_vol, seed 474)
        assert info["rejected_qty"] == 0 or info["rejected_reason"] == "book_exhausted"
        assert abs(info["exec_qty"]) <= abs(s["final_qty"])
        q0, q1, m, cash = prev["position"], info["position"], prev["mid"], info["cash"]
        if abs(q1) > abs(q0):
            equity = cash + q1 * m
            assert abs(q1) * m <= 0.8 * equity + 1e-6 * abs(equity), (q0, q1, m, cash, s)
            if q1 > 0:
                assert cash >= 0.2 * equity - 1e-6 * abs(equity)
        if not s["reserve_ok_before"]:
            assert abs(q1) <= abs(q0)  # after a drift breach, no exposure is added
        prev = info
        if term or trunc:
            break


def test_reserve_eroded_by_price_moves_blocks_new_exposure():
    """The reserve holds at each fill; a rally *after* the fill can erode it, and then nothing is added.

    This is why the literal "cash ≥ 0.2·equity after every step" (equity at the post-step mid) is not an
    invariant of a sizing wrapper that never forces trades: holding a long at the limit through a rally breaks it.
    """
    env = Hypothalamus(JanusLOBEnv(scenario="gbm", seed=0, action_type="continuous", max_position=5000, lot=500,
                                   episode_steps=1000))
    _, prev = env.reset()
    eroded = 0
    for _ in range(1000):
        _, _, term, trunc, info = env.step(np.array([1.0], dtype=np.float32))  # always "as long as possible"
        if prev["cash"] < 0.2 * prev["equity"]:  # the decision was taken with the reserve already broken
            eroded += 1
            assert not info["sizing"]["reserve_ok_before"]
            assert info["position"] <= prev["position"] and info["sizing"]["final_qty"] == 0
        prev = info
        if term or trunc:
            break
    assert eroded > 0


# --------------------------------------------------------------------------- errors
def test_discrete_env_is_rejected():
    with pytest.raises(ValueError, match=re.escape(_BAD_ACTION_TYPE.format("discrete"))):
        Hypothalamus(JanusLOBEnv(scenario="ou", seed=0))


def test_non_janus_env_is_rejected():
    env = gym.make("CartPole-v1")
    with pytest.raises(TypeError, match=re.escape(_NOT_JANUS.format(env.unwrapped))):
        Hypothalamus(env)


def test_step_before_reset():
    env = Hypothalamus(sized_env())
    with pytest.raises(RuntimeError, match=re.escape(NEED_RESET)):
        env.step(0)


def test_invalid_action_raises_and_does_not_halt():
    env = Hypothalamus(sized_env())
    env.reset()
    with pytest.raises(InvalidActionError, match=re.escape("Action 11 is outside Discrete(11)")):
        env.step(11)
    with pytest.raises(TypeError):
        env.step(1.5)
    assert not env.halted and env.halt_reason is None and env.step(1)[4]["sizing"]["final_qty"] == 100


def test_fault_in_sizing_sends_nothing(monkeypatch):
    class Counter(gym.Wrapper):
        n = 0

        def step(self, action):
            self.n += 1
            return self.env.step(action)

    inner = Counter(sized_env())
    env = Hypothalamus(inner)
    env.reset()

    def boom(*args):
        raise ZeroDivisionError("no book")

    monkeypatch.setattr(env, "_reserve_limit", boom)
    _, reward, terminated, _, info = env.step(3)
    assert inner.n == 0 and terminated and reward == 0.0 and env.halted
    assert info["halted"] and info["halt_reason"] == env.halt_reason == "sizing_error: ZeroDivisionError: no book"
    assert info["sizing"] == {"proposed_action": 3, "final_action": None} and info["exec_qty"] == 0
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match=re.escape(NEED_RESET)):
        env.step(1)
    env.reset()
    assert not env.halted and not env.step(1)[2] and inner.n == 1




_POSITIVE = "a finite number > 0"


@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"kelly_multiplier": 0.0}, ValueError, "Expected `kelly_multiplier` to be a finite number > 0, got 0.0"),
    ({"prior_trades": -1}, ValueError, bad_value("prior_trades", _POSITIVE, -1)),
    ({"prior_win_rate": 1.0}, ValueError, "Expected `prior_win_rate` to be a number in (0, 1), got 1.0"),
    ({"prior_win_rate": "0.5"}, TypeError, bad_value("prior_win_rate", "a number in (0, 1)", "0.5")),
    ({"prior_avg_win": True}, TypeError, bad_value("prior_avg_win", _POSITIVE, True)),
    ({"prior_avg_loss": float("inf")}, ValueError, bad_value("prior_avg_loss", _POSITIVE, float("inf"))),
    ({"sigma_target_bps": 0}, ValueError, bad_value("sigma_target_bps", _POSITIVE + " or None", 0)),
    ({"sigma_target_ratio": "1.5"}, TypeError, bad_value("sigma_target_ratio", _POSITIVE, "1.5")),
    ({"vol_halflife": -500.0}, ValueError, bad_value("vol_halflife", _POSITIVE, -500.0)),
    ({"max_drawdown": float("nan")}, ValueError, bad_value("max_drawdown", _POSITIVE, float("nan"))),
    ({"min_drawdown_scale": 1.5}, ValueError, "Expected `min_drawdown_scale` to be a number in [0, 1], got 1.5"),
    ({"cash_reserve": 1.0}, ValueError, "Expected `cash_reserve` to be a number in [0, 1), got 1.0"),
    ({"fallback_slippage_bps": -1}, ValueError, bad_value("fallback_slippage_bps", "a finite number >= 0", -1)),
    # the old bool() conversion read "no" (any non-empty string) as True
    ({"persist_stats": "no"}, TypeError, "Expected `persist_stats` to be a bool, got 'no'"),
])
def test_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        Hypothalamus(sized_env(), **kwargs)


@pytest.mark.parametrize("action_type", ["sized", "continuous"])
def test_fractional_lots_on_btc(action_type):
    """0.01-BTC lots: sizes stay on the env's grid, the reserve holds, nothing is rejected by the env."""
    from janus_env.samples import sample_path

    env = Hypothalamus(JanusLOBEnv(scenario="historical", data=sample_path("btc_usd_hourly"), seed=3,
                                   action_type=action_type, n_sizes=5, lot=0.01, max_position=2.0,
                                   initial_cash=100_000.0, episode_steps=40, window=8))
    _, prev = env.reset(seed=3)
    traded = 0.0
    for k in range(40):
        action = np.int64(5) if action_type == "sized" else np.array([0.9], dtype=np.float32)
        _, _, term, trunc, info = env.step(action)
        s = info["sizing"]
        assert abs(s["final_qty"] / 0.01 - round(s["final_qty"] / 0.01)) < 1e-9  # on the 0.01 grid
        assert info["rejected_qty"] == 0
        traded += abs(info["exec_qty"])
        q1, m, cash = info["position"], prev["mid"], info["cash"]
        if q1 > abs(prev["position"]):
            assert q1 * m <= 0.8 * (cash + q1 * m) * (1 + 1e-9)
        prev = info
        if term or trunc:
            break
    assert 0.0 < traded <= 2.0 + 1e-9  # it bought, in fractions of a coin, up to the reserve


def test_fault_in_reset_halts_the_first_step(monkeypatch):
    """Even a fault whose type is a user error's (TypeError) halts: it is not the caller's."""
    env = Hypothalamus(sized_env())

    def broken():
        raise TypeError("stats corrupted")

    monkeypatch.setattr(env.stats, "clear", broken)
    _, info = env.reset()
    assert info["halted"] and info["halt_reason"] == "sizing_error: TypeError: stats corrupted" and env.halted
    _, reward, terminated, _, info = env.step(1)
    assert terminated and reward == 0.0 and info["sizing"]["final_action"] is None and info["exec_qty"] == 0
