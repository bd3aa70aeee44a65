"""Rule-based trading baselines: signals, targets, every action type, refusals, buy-and-hold's one build-up."""

from __future__ import annotations

import math
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from agents.baselines import (
    _BAD_SPACE,
    BUY,
    HOLD,
    SELL,
    TRADING_BASELINES,
    BuyAndHoldPolicy,
    MeanReversionPolicy,
    MomentumPolicy,
    TWAPPolicy,
    ZScoreMeanReversionPolicy,
    make_baseline,
)
from janus_env.checks import bad_value
from janus_env.lob_env import JanusLOBEnv


def observations(prices: list[list[float]], positions: list[float], left: float = 0.5,
                 cash: list[float] | None = None, unrealized: list[float] | None = None) -> dict[str, np.ndarray]:
    account = np.zeros((len(positions), 5), dtype=np.float32)
    account[:, 0] = positions
    account[:, 1] = 1.0 if cash is None else cash
    account[:, 2] = 0.0 if unrealized is None else unrealized
    account[:, 4] = left
    return {"prices": np.asarray(prices, dtype=np.float32), "account": account}


def test_mean_reversion_sells_above_buys_below_and_flattens_near_the_mean() -> None:
    # prices are log(mid_i / mid_t) in bps: a negative mean puts the current mid above the window mean
    obs = observations([[-4.0, -4.0, 0.0], [4.0, 4.0, 0.0], [-4.0, -4.0, 0.0], [0.1, -0.1, 0.0], [0.1, -0.1, 0.0]],
                       [0.0, 0.0, -1.0, 0.5, 0.0])
    actions, state = MeanReversionPolicy(threshold_bps=1.0).predict(obs)
    assert state is None
    np.testing.assert_array_equal(actions, [SELL, BUY, HOLD, SELL, HOLD])  # row 2: already at the short limit


def test_zscore_mean_reversion_thresholds_in_window_stds() -> None:
    """The same move is a signal in a quiet window and noise in a volatile one."""
    quiet = [-2.0, -2.1, -1.9, -2.0, 0.0]  # mean −1.6, std ≈ 0.8: z ≈ 2
    volatile = [-30.0, 30.0, -25.0, 17.0, 0.0]  # mean −1.6, std ≈ 22: z ≈ 0.07
    obs = observations([quiet, volatile], [0.0, 0.0])
    np.testing.assert_array_equal(ZScoreMeanReversionPolicy(k=1.0).predict(obs)[0], [SELL, HOLD])
    np.testing.assert_array_equal(MeanReversionPolicy(threshold_bps=1.0).predict(obs)[0], [SELL, SELL])
    single, _ = ZScoreMeanReversionPolicy(k=1.0).predict({k: v[0] for k, v in obs.items()})
    assert single == SELL


def test_registry_uses_the_scale_free_rules() -> None:
    assert TRADING_BASELINES["mean_reversion"] is ZScoreMeanReversionPolicy
    assert TRADING_BASELINES["momentum"] is MomentumPolicy


def test_momentum_signal_is_the_move_in_units_of_its_own_noise() -> None:
    rng = np.random.default_rng(0)
    log_mid = np.cumsum(rng.normal(0.0, 1.0, (6, 32)), axis=1)
    log_mid[0] += np.linspace(0.0, 20.0, 32)  # a strong rise
    log_mid[1] -= np.linspace(0.0, 20.0, 32)  # a strong fall
    prices = (log_mid - log_mid[:, -1:]) * 1e4 * 1e-4  # bps relative to the last mid, any unit
    policy = MomentumPolicy(lookback=10, k=1.0)
    z = policy.signal({"prices": prices})
    for row in range(6):  # independent: the 10-step move over RMS(one-step moves)·√10
        moves = np.diff(log_mid[row])
        expect = (log_mid[row, -1] - log_mid[row, -11]) / (np.sqrt(np.mean(moves ** 2)) * math.sqrt(10))
        assert z[row] == pytest.approx(expect, rel=1e-5)
    actions, _ = policy.predict(observations(prices.tolist(), [0.0] * 6))
    assert actions[0] == BUY and actions[1] == SELL
    np.testing.assert_array_equal(actions[2:], np.where(z[2:] > 1, BUY, np.where(z[2:] < -1, SELL, HOLD)))
    # the same prices at 100× the scale (another bar size): the same signal
    np.testing.assert_allclose(policy.signal({"prices": prices * 100}), z, rtol=1e-5)


# --------------------------------------------------------------------------- action types
def _sized_space(k: int) -> spaces.Discrete:
    return spaces.Discrete(2 * k + 1)


@pytest.mark.parametrize(("space", "lot_fraction", "expected"), [
    (spaces.Discrete(3), 0.1, [BUY, SELL, HOLD]),  # one lot towards the target
    (_sized_space(5), 0.1, [5, 5 + 5, HOLD]),  # up to k = 5 lots (gap 1.0 = 10 lots)
    (_sized_space(5), None, [1, 5 + 1, HOLD]),  # lot size unknown: one lot
])
def test_targets_become_actions_of_the_space(space: spaces.Space, lot_fraction: float | None, expected: list) -> None:
    quiet_up, quiet_down = [-2.0, -2.1, -1.9, -2.0, 0.0], [2.0, 2.1, 1.9, 2.0, 0.0]
    obs = observations([quiet_down, quiet_up, [0.1, -0.1, 0.0, 0.1, 0.0]], [0.0, 0.0, 0.0])
    policy = ZScoreMeanReversionPolicy(k=1.0, action_space=space, lot_fraction=lot_fraction)
    actions, _ = policy.predict(obs)
    np.testing.assert_array_equal(actions, expected)
    assert all(space.contains(int(a)) for a in actions)


def test_continuous_action_is_the_target_position() -> None:
    space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
    obs = observations([[2.0, 2.1, 1.9, 2.0, 0.0], [-2.0, -2.1, -1.9, -2.0, 0.0], [0.1, -0.1, 0.1, -0.1, 0.0]],
                       [0.2, 0.0, 0.4])
    actions, _ = ZScoreMeanReversionPolicy(k=1.0, action_space=space, lot_fraction=0.1).predict(obs)
    assert actions.shape == (3, 1) and actions.dtype == np.float32
    np.testing.assert_allclose(actions[:, 0], [1.0, -1.0, 0.0])  # below the mean: long; above: short; near: flat
    assert all(space.contains(a) for a in actions)


def test_half_lot_dead_band() -> None:
    """A target less than half a lot away is no order (no crossing it back and forth)."""
    near_the_mean = [0.1, -0.1, 0.1, -0.1, 0.0]  # z = 0: target flat
    obs = observations([near_the_mean] * 3, [0.04, 0.06, -0.06])
    actions, _ = ZScoreMeanReversionPolicy(k=1.0, lot_fraction=0.1).predict(obs)
    np.testing.assert_array_equal(actions, [HOLD, SELL, BUY])


# --------------------------------------------------------------------------- refusals
def test_refused_order_closes_its_side_for_cooldown_steps_and_halves_the_size() -> None:
    space = _sized_space(4)
    policy = ZScoreMeanReversionPolicy(k=1.0, action_space=space, lot_fraction=0.125, cooldown=3)
    below = [[2.0, 2.1, 1.9, 2.0, 0.0]]  # z ≈ −2: target +1, 8 lots away
    sent = []
    for step in range(8):
        obs = observations(below, [0.0], left=1.0 - step / 100)  # the position never moves: every buy refused
        sent.append(int(policy.predict(obs)[0][0]))
    # 4 lots (k) refused → side closed 3 steps → 2 lots refused → closed → 1 lot ...
    assert sent == [4, HOLD, HOLD, HOLD, 2, HOLD, HOLD, HOLD]
    # a new episode (the session clock goes back up) forgets the refusals
    assert int(policy.predict(observations(below, [0.0], left=1.0))[0][0]) == 4


@pytest.mark.parametrize("signal", ["clock", "episode_start"])
def test_new_episode_per_row_in_a_batch(signal: str) -> None:
    policy = BuyAndHoldPolicy(lot_fraction=0.1)
    first = observations([[0.0] * 5] * 2, [0.0, 0.0], left=0.5)
    assert list(policy.predict(first)[0]) == [BUY, BUY]
    later = observations([[0.0] * 5] * 2, [0.1, 0.0], left=0.49, cash=[0.9, 1.0], unrealized=[0.0, 0.0])
    if signal == "clock":  # row 1 was reset (a vector env's autoreset): its session clock went back up
        later["account"][1, 4] = 1.0
        actions, _ = policy.predict(later)
    else:  # or SB3 says so
        actions, _ = policy.predict(later, episode_start=np.array([False, True]))
    # row 0 builds on; row 1 starts again (without the reset its unfilled buy would count as refused: HOLD)
    assert list(actions) == [BUY, BUY]
    again = observations([[0.0] * 5] * 2, [0.1, 0.0], left=0.48, cash=[0.9, 1.0], unrealized=[0.0, 0.0])
    assert list(policy.predict(again)[0]) == [HOLD, HOLD]  # now both saw a buy go unfilled: closed for 10 steps


# --------------------------------------------------------------------------- buy-and-hold in the market
def _episode(policy: Any, env: gym.Env, seed: int) -> list[dict[str, Any]]:
    obs, info = env.reset(seed=seed)
    infos = [info]
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.predict(obs)[0])
        infos.append(info)
        done = terminated or truncated
    return infos


@pytest.mark.parametrize("action_type", ["discrete", "sized", "continuous"])
def test_buy_and_hold_buys_to_its_cash_limited_target_once_then_holds(action_type: str) -> None:
    from wrappers.shield import LTNShield

    env = LTNShield(JanusLOBEnv(scenario="ou", episode_steps=200, action_type=action_type, n_sizes=3))
    policy = make_baseline("buy_and_hold", env)
    for seed in (0, 1):  # one policy object, two episodes: the build-up restarts with each
        infos = _episode(policy, env, seed)
        positions = np.array([i["position"] for i in infos])
        changes = np.nonzero(np.diff(positions))[0]
        assert (np.diff(positions) >= 0).all() and len(changes) > 0  # only buys
        built = changes[-1] + 1
        assert built < 10 and (positions[built:] == positions[-1]).all()  # a short build-up, then holds
        assert not any(i["ltn"]["overridden"] for i in infos[1:])  # the shield never had to block it
        final = infos[built]
        cash_share = final["cash"] / final["equity"]
        # independent of the policy's arithmetic: the KB's 20% reserve holds, and the policy's 25% floor
        # is what stopped it (one more lot at the mid would break the floor, or the position limit is reached)
        assert cash_share >= 0.25 - 1e-3
        if action_type != "continuous":
            lot_value = env.unwrapped.config.lot * final["mid"]
            assert (final["cash"] - lot_value) / final["equity"] < 0.25 or final["position"] == 1000
        else:
            assert final["cash"] / final["equity"] < 0.26


def test_buy_and_hold_stops_after_refusals_while_holding() -> None:
    """A buy the risk layer keeps refusing at a held position ends the build-up after ``patience`` tries."""
    policy = BuyAndHoldPolicy(lot_fraction=0.1, cooldown=0, patience=2)
    held = observations([[0.0] * 5], [0.3], left=1.0, cash=[0.7], unrealized=[0.0])
    sent = [int(policy.predict(held)[0][0])]
    for step in range(1, 6):
        held["account"][0, 4] = 1.0 - step / 100  # same session, the position never moves
        sent.append(int(policy.predict(held)[0][0]))
    assert sent == [BUY, BUY, HOLD, HOLD, HOLD, HOLD]  # refused twice (decisions 1 and 2): the build-up is over


@pytest.mark.parametrize("name", ["momentum", "mean_reversion", "random"])
@pytest.mark.parametrize("action_type", ["discrete", "sized", "continuous"])
def test_every_trading_baseline_on_every_action_type(name: str, action_type: str) -> None:
    env = JanusLOBEnv(scenario="regime", episode_steps=150, action_type=action_type, n_sizes=3)
    policy = make_baseline(name, env, seed=0)
    obs, _ = env.reset(seed=0)
    traded = 0
    for _ in range(150):
        action, _ = policy.predict(obs)
        assert env.action_space.contains(action if action_type == "continuous" else int(action))
        obs, _, terminated, truncated, info = env.step(action)
        traded += info["exec_qty"] != 0
        if terminated or truncated:
            break
    assert traded > 0


def test_make_baseline_reads_the_env() -> None:
    env = JanusLOBEnv(scenario="ou", action_type="sized", n_sizes=4, lot=50, max_position=400)
    policy = make_baseline("momentum", env)
    assert policy.lot_fraction == 0.125 and policy.n_sizes == 4 and policy.action_space == env.action_space
    with pytest.raises(ValueError, match="Unknown baseline 'twap'"):
        make_baseline("twap", env)


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(("make", "message"), [
    (lambda: MomentumPolicy(lookback=0), bad_value("lookback", "an int >= 1", 0)),
    (lambda: MomentumPolicy(k=0.0), bad_value("k", "a finite number > 0", 0.0)),
    (lambda: MomentumPolicy(k=math.inf), bad_value("k", "a finite number > 0", math.inf)),
    (lambda: ZScoreMeanReversionPolicy(k=-1.0), bad_value("k", "a finite number > 0", -1.0)),
    (lambda: MeanReversionPolicy(threshold_bps=math.nan), bad_value("threshold_bps", "a finite number > 0", math.nan)),
    (lambda: BuyAndHoldPolicy(target=1.5), bad_value("target", "a number in (0, 1]", 1.5)),
    (lambda: BuyAndHoldPolicy(min_cash=1.0), bad_value("min_cash", "a number in [0, 1)", 1.0)),
    (lambda: BuyAndHoldPolicy(min_cash=math.nan), bad_value("min_cash", "a number in [0, 1)", math.nan)),
    (lambda: BuyAndHoldPolicy(patience=0), bad_value("patience", "an int >= 1", 0)),
    (lambda: BuyAndHoldPolicy(cooldown=-1), bad_value("cooldown", "an int >= 0", -1)),
    (lambda: BuyAndHoldPolicy(lot_fraction=2.0), bad_value("lot_fraction", "a number in (0, 1] or None", 2.0)),
    (lambda: TWAPPolicy(horizon=0), bad_value("horizon", "an int >= 1", 0)),
    (lambda: BuyAndHoldPolicy(action_space=spaces.MultiDiscrete([3, 3])),
     _BAD_SPACE.format(spaces.MultiDiscrete([3, 3]))),
])
def test_bad_arguments(make, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


@pytest.mark.parametrize(("make", "message"), [
    # accepted before: a string target went through float(), a fractional horizon through int() (2.5 -> 2 steps)
    (lambda: BuyAndHoldPolicy(target="0.5"), bad_value("target", "a number in (0, 1]", "0.5")),
    (lambda: TWAPPolicy(horizon=2.5), bad_value("horizon", "an int >= 1", 2.5)),
    # ValueError before: bools and floats where an int is due
    (lambda: BuyAndHoldPolicy(patience=2.0), bad_value("patience", "an int >= 1", 2.0)),
    (lambda: BuyAndHoldPolicy(cooldown=True), bad_value("cooldown", "an int >= 0", True)),
    (lambda: BuyAndHoldPolicy(lot_fraction=True), bad_value("lot_fraction", "a number in (0, 1] or None", True)),
    (lambda: MomentumPolicy(lookback=np.float64(3)), bad_value("lookback", "an int >= 1", np.float64(3))),
    (lambda: MomentumPolicy(k="1"), bad_value("k", "a finite number > 0", "1")),
])
def test_wrong_argument_types(make, message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        make()


def test_numpy_arguments_are_plain_python() -> None:
    policy = BuyAndHoldPolicy(target=np.float32(0.5), patience=np.int64(2), lot_fraction=np.float64(0.25))
    assert (policy.target, policy.patience, policy.lot_fraction) == (0.5, 2, 0.25)
    assert type(policy.patience) is int and type(policy.target) is float and type(policy.lot_fraction) is float
    assert TWAPPolicy(horizon=np.int32(4)).horizon == 4
