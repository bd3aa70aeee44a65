"""``LTNShield``: scripted violations never execute, fallbacks, masks for MaskablePPO, fail-safe halts."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import envs_registry
from janus_env.actions import InvalidActionError
from wrappers.rules import RULE_NAMES, TradingKnowledgeBase
from wrappers.shield import HOLD, LTNShield

LOB_IDS = [i for i in envs_registry.ENV_IDS if i.startswith("Janus-LOB")]
DATA = Path(__file__).resolve().parents[1] / "data"
# sized with k = 3: 0 HOLD, 1..3 BUY 1..3 lots, 4..6 SELL 1..3 lots
BUY1, BUY3, SELL1, SELL3 = 1, 3, 4, 6


class CountingWrapper(gym.Wrapper):
    """Counts the steps that reach the env (to prove an action was not forwarded)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.n_steps = 0

    def step(self, action):
        self.n_steps += 1
        return self.env.step(action)


def make(action_type: str = "sized", fallback: str = "hold", seed: int = 0, **market) -> LTNShield:
    market.setdefault("episode_steps", 400)
    kwargs = {"n_sizes": 3} if action_type == "sized" else {}
    return LTNShield(gym.make("Janus-LOB-v0", action_type=action_type, seed=seed, **kwargs, **market),
                     fallback=fallback)


@pytest.fixture
def check_ltn(ltn_keys: set[str]) -> Callable[..., dict]:
    """``check_ltn(info, threshold=0.9)``: ``info["ltn"]`` is a complete, consistent, JSON-ready record; returns it."""

    def check(info: dict, threshold: float = 0.9) -> dict:
        ltn = info["ltn"]
        assert set(ltn) == ltn_keys
        json.dumps(ltn)
        assert list(ltn["rules"]) == list(RULE_NAMES)
        assert ltn["violation"] == pytest.approx(1.0 - ltn["sat_agg"])
        assert ltn["overridden"] == (ltn["sat_agg"] < threshold) and ltn["threshold"] == threshold
        assert ltn["overridden"] or ltn["final_action"] == ltn["proposed_action"]
        return ltn

    return check


# ----------------------------------------------------------------------------- scripted violations
def test_scripted_wash_sales_never_execute(check_ltn) -> None:
    env = make(episode_steps=600)
    obs, info = env.reset(seed=0)
    position, cost, loss_steps, blocked, buys, gaps = 0.0, 0.0, [], 0, 0, []
    phase = 0
    for step in range(1, 600):
        # buy a lot, sell it at the bid one step later (a loss of the spread), then try to buy back
        action = BUY1 if phase == 0 else SELL1 if phase == 1 else BUY1
        obs, _, terminated, truncated, info = env.step(action)
        ltn = check_ltn(info)
        qty, price = info["exec_qty"], info["exec_price"]
        if qty > 0:
            buys += 1
            assert not any(1 <= step - t <= 30 for t in loss_steps), f"wash sale executed at step {step}"
            if loss_steps and phase == 2:
                gaps.append(step - loss_steps[-1])
            cost = (cost * position + price * qty) / (position + qty)
            position += qty
            phase = 1
        elif qty < 0:
            if position > 0 and price < cost:
                loss_steps.append(step)
            position += qty
            phase = 2
        if ltn["overridden"] and ltn["rules"]["wash_sale"] == 0.0:
            blocked += 1
            assert info["exec_qty"] == 0.0 and ltn["final_action"] == HOLD
        assert info["step"] == step
        if terminated or truncated:
            break
    assert len(loss_steps) >= 5 and blocked >= 5 * 29 and buys >= 5  # the script really tried
    assert gaps and set(gaps) == {31}  # the buy-back goes through on the first step after the window


@pytest.mark.parametrize("fallback", ["hold", "nearest"])
def test_oversized_orders_never_execute(fallback: str, check_ltn) -> None:
    env = make(fallback=fallback, initial_cash=1e8)
    env.reset(seed=1)
    limit = env.unwrapped.config.max_position
    overridden = 0
    for step in range(60):
        obs, _, terminated, truncated, info = env.step(BUY3 if step < 30 else SELL3)
        ltn = check_ltn(info)
        overridden += ltn["overridden"]
        assert info["rejected_qty"] == 0.0 and abs(info["position"]) <= limit
        if ltn["overridden"]:
            assert ltn["rules"]["position_limit"] == 0.0
        if step == 29 and fallback == "nearest":
            assert info["position"] == limit  # the last 3-lot buy was cut to a permitted 1-lot buy
    assert overridden >= 2
    if fallback == "nearest":
        assert info["position"] == -limit


def test_cash_reserve_holds_on_executed_buys(check_ltn) -> None:
    env = make(fallback="nearest")
    env.reset(seed=2)
    for _ in range(40):
        _, _, _, _, info = env.step(BUY3)
        check_ltn(info)
        if info["exec_qty"] > 0:
            # the rule used the pre-trade mark; allow the mid to move by a few ticks
            assert info["cash"] >= 0.2 * info["equity"] - 0.002 * info["equity"]
    assert 0 < info["position"] < env.unwrapped.config.max_position
    assert env.evaluate_candidates(np.array([100.0])).truths[0, 4] == 0.0  # one more lot breaks the reserve


# ----------------------------------------------------------------------------- fallbacks
def _forced(env: LTNShield, sat: list[float]) -> None:
    env.core.sat[:] = sat
    env.core.truths[:] = 1.0
    env.core.scored = True


def test_nearest_fallback_picks_closest_permitted_quantity() -> None:
    env = make(fallback="nearest")
    env.reset(seed=0)
    np.testing.assert_array_equal(env.core.quantities, [0, 100, 200, 300, -100, -200, -300])
    _forced(env, [1, 1, 1, 0.5, 1, 1, 1])
    assert env.decide(BUY3, BUY3)[0] == 2  # 3 lots → 2 lots
    _forced(env, [1, 0.5, 0.5, 0.5, 1, 1, 1])
    assert env.decide(BUY1, BUY1)[0] == HOLD  # HOLD (100 away) beats SELL 1 (200 away)
    _forced(env, [1, 1, 0.95, 0.5, 1, 1, 1])
    assert env.decide(BUY3, BUY3)[0] == 2  # 200 is closer to 300 than 100
    _forced(env, [1, 0.5, 1, 0.5, 1, 1, 1])
    assert env.decide(BUY1, BUY1)[0] == HOLD  # tie at distance 100 with 2 lots: SatAgg equal → smaller |q|
    _forced(env, [0.95, 0.5, 1.0, 0.5, 1, 1, 1])
    assert env.decide(BUY1, BUY1)[0] == 2  # tie at distance 100: higher SatAgg wins
    _forced(env, [1, 1, 1, 1, 1, 1, 0.5])
    assert env.decide(SELL3, SELL3)[0] == 5


def test_hold_fallback_and_rules_of_the_proposal() -> None:
    env = make(fallback="hold")
    env.reset(seed=0)
    env.core.sat[0] = [1, 1, 1, 0.5, 1, 1, 1]
    env.core.truths[:] = 1.0
    env.core.truths[0, 3, 3] = 0.0
    env.core.scored = True
    final, env_action, sat, rules = env.decide(BUY3, BUY3)
    assert final == env_action == HOLD and sat == 0.5 and rules["position_limit"] == 0.0


def _loss_sale(env: LTNShield, buy, sell) -> dict:
    """Buy then sell until a sale at a loss executes; returns the info of that sale."""
    for _ in range(20):
        _, _, _, _, info = env.step(buy)
        price = info["exec_price"]
        _, _, _, _, info = env.step(sell)
        if info["exec_qty"] < 0 and info["exec_price"] < price:
            return info
        for _ in range(31):
            env.step(HOLD if isinstance(buy, int) else np.array([0.0], dtype=np.float32))
    raise AssertionError("no losing sale in 20 tries")


def test_continuous_fallback_keeps_the_position(check_ltn) -> None:
    env = make("continuous")
    env.reset(seed=0)
    _loss_sale(env, np.array([0.3], dtype=np.float32), np.array([0.2], dtype=np.float32))
    position = env.history.position
    assert position == 200.0
    _, _, _, _, info = env.step(np.array([0.7], dtype=np.float32))
    ltn = check_ltn(info)
    assert ltn["overridden"] and ltn["rules"]["wash_sale"] == 0.0
    assert ltn["final_action"] == [pytest.approx(0.2)] and info["exec_qty"] == 0.0 and info["position"] == position
    _, _, _, _, info = env.step(np.array([-0.5], dtype=np.float32))  # selling is allowed
    assert not info["ltn"]["overridden"] and info["position"] == -500.0


@pytest.mark.parametrize("position", [-1000, -999, -300, 0, 1, 700, 1000])
def test_keep_position_target_round_trips(position: int) -> None:
    target = np.array([position / 1000.0], dtype=np.float32)
    assert round(float(target[0]) * 1000) - position == 0


def test_continuous_nearest_moves_by_the_largest_permitted_lots(check_ltn) -> None:
    env = make("continuous", fallback="nearest")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1.0], dtype=np.float32))  # 1000 shares break the cash reserve
    ltn = check_ltn(info)
    assert ltn["overridden"] and ltn["rules"]["cash_reserve"] == 0.0
    assert 0 < info["position"] < 1000 and info["position"] % 100 == 0
    assert env.evaluate_candidates(np.array([100.0])).sat[0] < 0.9


# ----------------------------------------------------------------------------- masks
def test_action_masks_match_scores() -> None:
    env = make(fallback="nearest")
    env.reset(seed=0)
    for step in range(80):
        mask = env.action_masks()
        assert mask.dtype == bool and mask.shape == (7,) and mask[HOLD]
        scores = env.evaluate_candidates()
        np.testing.assert_array_equal(mask[1:], scores.sat[1:] >= 0.9)
        env.step(BUY3 if step % 3 else SELL1)


def test_action_masks_need_discrete_actions() -> None:
    env = make("continuous")
    env.reset(seed=0)
    with pytest.raises(TypeError, match=re.escape("action_masks() needs a Discrete action space, got Box(")):
        env.action_masks()


class _MaskCheck:
    """SB3 callback: the sampled action is always permitted and the shield never overrides."""

    def __new__(cls):
        from stable_baselines3.common.callbacks import BaseCallback

        class MaskCheckCallback(BaseCallback):
            def __init__(self) -> None:
                super().__init__()
                self.steps = self.masked_out = self.bad = 0

            def _on_step(self) -> bool:
                masks, actions = self.locals["action_masks"], self.locals["actions"]
                for mask, action, info in zip(masks, actions, self.locals["infos"]):
                    self.steps += 1
                    self.masked_out += int(not mask.all())
                    self.bad += int(not mask[int(action)]) + int(info["ltn"]["overridden"])
                    self.bad += int(info["ltn"]["final_action"] != int(action))
                return True

        return MaskCheckCallback()


def test_maskable_ppo_never_executes_a_masked_action() -> None:
    from sb3_contrib import MaskablePPO

    env = make(episode_steps=256)
    model = MaskablePPO("MultiInputPolicy", env, n_steps=512, batch_size=256, n_epochs=1, seed=0, device="cpu",
                        policy_kwargs={"net_arch": [8]})
    callback = _MaskCheck()
    model.learn(5000, callback=callback)
    assert callback.steps >= 5000 and callback.bad == 0
    assert callback.masked_out > 100  # the masks really removed actions


# ----------------------------------------------------------------------------- fail-safe
def test_kb_fault_halts_without_executing(monkeypatch: pytest.MonkeyPatch) -> None:
    inner = CountingWrapper(gym.make("Janus-LOB-v0", seed=0))
    env = LTNShield(inner)
    obs, info = env.reset(seed=0)
    env.step(HOLD)
    before = inner.n_steps

    def boom(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(env, "kernel", boom)
    obs2, reward, terminated, truncated, info = env.step(1)
    assert inner.n_steps == before  # the proposed BUY never reached the env
    assert terminated and not truncated and reward == 0.0 and info["halted"]
    assert info["halt_reason"] == "shield_error: RuntimeError: boom"
    assert info["exec_qty"] == 0.0 and info["fills"] == 0
    assert info["ltn"]["violation"] == 1.0 and info["ltn"]["final_action"] is None and info["ltn"]["overridden"]
    assert info["ltn"]["proposed_action"] == 1
    json.dumps(info["ltn"])
    assert env.observation_space.contains(obs2)
    with pytest.raises(RuntimeError, match="^Call reset\\(\\) before step\\(\\)$"):
        env.step(HOLD)
    monkeypatch.undo()
    env.reset(seed=1)
    assert not env.step(1)[2]


def test_fault_in_action_masks_allows_only_hold_then_halts(monkeypatch: pytest.MonkeyPatch) -> None:
    inner = CountingWrapper(gym.make("Janus-LOB-v0", seed=0))
    env = LTNShield(inner)
    env.reset(seed=0)
    monkeypatch.setattr(env, "kernel", lambda *a: 1 / 0)
    np.testing.assert_array_equal(env.action_masks(), [True, False, False])
    monkeypatch.undo()  # even if the fault was transient, the shield stays halted
    _, _, terminated, _, info = env.step(HOLD)
    assert terminated and info["halt_reason"] == "shield_error: ZeroDivisionError: division by zero"
    assert inner.n_steps == 0


def test_fault_in_the_history_update_halts_the_next_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """The history records a step inside the next scoring call: a fault there stops the next action."""
    inner = CountingWrapper(gym.make("Janus-LOB-v0", seed=0))
    env = LTNShield(inner)
    env.reset(seed=0)
    assert not env.step(1)[2]

    def broken(hist, out):
        raise KeyError("exec_qty")

    stock = env.kernel  # (hist, rows, obs, out, ctx, q, truths, sat)
    monkeypatch.setattr(env, "kernel", lambda *args: (broken(args[0], args[3]), stock(*args)))
    _, _, terminated, _, info = env.step(1)
    assert inner.n_steps == 1 and terminated and info["halted"] and info["ltn"]["final_action"] is None
    assert info["halt_reason"] == "shield_error: KeyError: 'exec_qty'"


def test_inner_wrappers_cannot_blind_the_shield() -> None:
    """The shield reads the market's own buffers: an inner wrapper that hides or falsifies info and the
    observed book changes nothing in its decisions."""

    class Liar(gym.Wrapper):
        def _lie(self, obs, info):
            obs = {**obs, "book": np.zeros_like(obs["book"])}
            info = {k: v for k, v in info.items() if k != "cash"}
            info["position"] = 0.0
            return obs, info

        def reset(self, **kwargs):
            return self._lie(*self.env.reset(**kwargs))

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            obs, info = self._lie(obs, info)
            return obs, reward, terminated, truncated, info

    lied = LTNShield(Liar(gym.make("Janus-LOB-v0", action_type="sized", n_sizes=3, scenario="high_vol")))
    plain = make(scenario="high_vol")
    lied.reset(seed=5)
    plain.reset(seed=5)
    rng = np.random.default_rng(0)
    overridden = 0
    for _ in range(150):
        a = int(rng.integers(7))
        info_l, info_p = lied.step(a)[4], plain.step(a)[4]
        assert info_l["ltn"] == info_p["ltn"]
        overridden += info_p["ltn"]["overridden"]
    assert overridden > 0 and lied.history.position == plain.history.position


# ----------------------------------------------------------------------------- API and composition
def test_invalid_actions_raise_before_anything_executes() -> None:
    inner = CountingWrapper(gym.make("Janus-LOB-v0", seed=0))
    env = LTNShield(inner)
    with pytest.raises(RuntimeError, match="^Call reset\\(\\) before step\\(\\)$"):
        env.step(HOLD)
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=re.escape("Action 3 is outside Discrete(3)")):
        env.step(3)
    with pytest.raises(TypeError):
        env.step(1.5)
    assert inner.n_steps == 0
    assert env.step(np.array(1))[4]["ltn"]["proposed_action"] == 1


@pytest.mark.parametrize("kwargs,error,message", [
    ({"threshold": 0.0}, ValueError, "Expected `threshold` to be a number in (0, 1], got 0.0"),
    ({"threshold": 1.5}, ValueError, "Expected `threshold` to be a number in (0, 1], got 1.5"),
    ({"threshold": float("nan")}, ValueError, "Expected `threshold` to be a number in (0, 1], got nan"),
    ({"threshold": "0.9"}, TypeError, "Expected `threshold` to be a number in (0, 1], got '0.9'"),
    ({"fallback": "sell"}, ValueError, "Expected `fallback` to be one of ('hold', 'nearest'), got 'sell'"),
    ({"knowledge_base": {}}, TypeError, "Expected `knowledge_base` to be a TradingKnowledgeBase or None, got {}"),
])
def test_bad_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        LTNShield(gym.make("Janus-LOB-v0"), **kwargs)


@pytest.mark.parametrize("env_id", ["Janus-Execution-v0", "CartPole-v1"])
def test_not_a_lob_env(env_id: str) -> None:
    name = type(gym.make(env_id).unwrapped).__name__
    with pytest.raises(TypeError, match=re.escape(f"(a JanusLOBEnv underneath the wrappers), got {name}")):
        LTNShield(gym.make(env_id))


def test_inner_wrapper_changing_the_action_space() -> None:
    class Five(gym.ActionWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.action_space = spaces.Discrete(5)

        def action(self, action):
            return min(int(action), 2)

    with pytest.raises(ValueError, match=re.escape("LTNShield needs the env's own action space Discrete(3)")):
        LTNShield(Five(gym.make("Janus-LOB-v0")))


@pytest.mark.parametrize("env_id", LOB_IDS)
@pytest.mark.parametrize("action_type", ["discrete", "sized", "continuous"])
def test_random_rollout_every_lob_id(env_id: str, action_type: str, check_ltn) -> None:
    kwargs = {"n_sizes": 2} if action_type == "sized" else {}
    env = LTNShield(gym.make(env_id, action_type=action_type, episode_steps=120, **kwargs), fallback="nearest")
    env.action_space.seed(0)
    obs, info = env.reset(seed=0)
    for _ in range(120):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and math.isfinite(reward)
        ltn = check_ltn(info)
        if ltn["overridden"] and action_type != "continuous" and ltn["final_action"] == HOLD:
            assert info["exec_qty"] == 0.0
        assert abs(info["position"]) <= env.unwrapped.config.max_position
        # the shield keeps orders inside the limits; what a thin book could not fill is still reported
        assert info["rejected_qty"] == 0.0 or info["rejected_reason"] == "book_exhausted", info
        if terminated or truncated:
            break


def test_historical_scenario(check_ltn) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the fixture's swapped volume columns
        base = gym.make("Janus-LOB-v0", scenario="historical", data=DATA / "btc_usd_hourly_head.csv", lot=1,
                        max_position=2, initial_cash=1e6, episode_steps=6, window=4)
    env = LTNShield(base, fallback="nearest")
    env.reset(seed=0)
    for _ in range(6):
        _, _, terminated, truncated, info = env.step(1)  # keep buying: the limit of 2 must hold
        check_ltn(info)
        assert abs(info["position"]) <= 2 and info["rejected_qty"] == 0.0
        if terminated or truncated:
            break


def test_an_inner_wrapper_may_drop_the_book() -> None:
    keys = ["prices", "volumes", "account", "market"]
    filtered = LTNShield(gym.wrappers.FilterObservation(gym.make("Janus-LOB-v0", action_type="sized", n_sizes=3,
                                                                 scenario="high_vol"), keys))
    plain = make(scenario="high_vol")
    filtered.reset(seed=5)
    plain.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(150):
        a = int(rng.integers(7))
        info_f, info_p = filtered.step(a)[4], plain.step(a)[4]
        assert info_f["ltn"] == info_p["ltn"]


def test_other_wrappers_inside_and_outside(check_ltn) -> None:
    env = gym.wrappers.RecordEpisodeStatistics(
        LTNShield(gym.wrappers.TimeLimit(gym.make("Janus-LOB-v0", seed=0), max_episode_steps=30)))
    env.reset(seed=0)
    for _ in range(30):
        _, _, terminated, truncated, info = env.step(1)
        check_ltn(info)
    assert truncated and "episode" in info
    assert env.get_wrapper_attr("action_masks")().shape == (3,)


def test_check_env_on_the_shielded_env(check_all) -> None:
    for action_type in ("sized", "continuous"):
        check_all(make(action_type, episode_steps=50), wrapper=True)


def test_single_crisp_violation_is_below_default_threshold() -> None:
    n = len(TradingKnowledgeBase.rule_names)
    assert math.sqrt((n - 1) / n) < 0.9  # the documented reason τ = 0.9 vetoes any one crisp violation


# ----------------------------------------------------------------------------- calibrated to the instrument
def test_momentum_on_daily_btc_is_mostly_permitted(check_ltn) -> None:
    """Daily BTC (≈ 450 bps bars): a sane momentum strategy's orders pass; what is blocked is a crisp rule.

    With a fixed 5 bps ``Volatile`` threshold and impact measured from the mid, 97% of these orders were vetoed
    (every bar was volatile and the half-spread alone broke the impact budget)."""
    from agents.baselines import make_baseline
    from janus_env.samples import sample_path

    env = LTNShield(gym.make("Janus-LOB-v0", scenario="historical", data=sample_path("btc_usd_daily"), lot=1,
                             max_position=5, initial_cash=1e6, episode_steps=300))
    proposed = blocked = 0
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        policy = make_baseline("momentum", env, seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.predict(obs, deterministic=True)[0])
            done = terminated or truncated
            ltn = check_ltn(info)
            if ltn["proposed_action"] != HOLD:
                proposed += 1
                if ltn["overridden"]:
                    blocked += 1
                    assert ltn["rules"]["almgren_chriss_impact"] > 0.5, ltn  # small orders, calm on its own scale
    assert proposed >= 50 and blocked / proposed < 0.15, (proposed, blocked)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_impact_rule_wakes_up_inside_the_flash_crash_only(seed: int) -> None:
    """``Volatile`` is relative to the book's own σ_hist: the impact rule binds in the crash, not before it."""
    env = LTNShield(gym.make("Janus-LOB-FlashCrash-v0", seed=seed, episode_steps=400))
    env.reset(seed=seed)
    cfg = env.unwrapped.config
    start, length = int(cfg.event_start * 400), int(cfg.event_length * 400)
    truths = []
    for _ in range(start + length):
        # an order beyond the visible depth has unknown impact: its rule truth is 1 − Volatile
        truths.append(env.evaluate_candidates(np.array([1e9])).truths[0, 1])
        env.step(HOLD)
    truths = np.array(truths)
    assert truths[:start + 1].min() > 0.5  # never vetoed (< 0.224) nor even half volatile before the event
    assert truths[start + 1:].min() < 0.01  # the crash (first seen at decision start + 1) is volatile


def test_continuous_proposal_is_the_quantity_the_env_sends_on_a_fractional_grid(check_ltn) -> None:
    """lot 0.01 BTC: the shield scores the order the env will send (its quantity grid), not a whole unit."""
    from janus_env.samples import sample_path

    def fresh(fallback: str) -> LTNShield:
        base = gym.make("Janus-LOB-v0", scenario="historical", data=sample_path("btc_usd_hourly"),
                        action_type="continuous", lot=0.01, max_position=1.0, initial_cash=20_000.0,
                        episode_steps=20)
        return LTNShield(base, fallback=fallback)

    env = fresh("hold")
    _, info = env.reset(seed=0)
    mid = info["mid"]
    target = 0.45  # 0.45 BTC ≈ 0.45 × 45k: more than 80% of 20k equity in cash
    assert target * mid > 0.8 * 20_000.0
    scored = env.evaluate_candidates(np.array([target])).truths[0, 4]
    assert scored == 0.0
    _, _, _, _, info = env.step(np.array([target], dtype=np.float32))
    ltn = check_ltn(info)
    assert ltn["overridden"] and ltn["rules"]["cash_reserve"] == 0.0 and info["exec_qty"] == 0.0
    env = fresh("nearest")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([target], dtype=np.float32))
    assert check_ltn(info)["overridden"] and 0.0 < info["position"] < target
    assert info["cash"] >= 0.2 * info["equity"] - 0.002 * info["equity"]
    units = info["position"] / 0.01
    assert abs(units - round(units)) < 1e-9  # whole lots


# ----------------------------------------------------------------------------- observing (training only)
def test_an_observing_shield_scores_every_step_and_executes_the_proposal(check_ltn) -> None:
    """``enforce=False``: the trajectory is the unshielded env's, bit for bit, under orders the enforcing shield
    overrides; each step's record is the enforcing shield's scoring of the same proposal in the same state (its
    first step, before the trajectories part), and every action is permitted."""
    actions = [BUY3] * 30 + [SELL3] * 60 + [BUY1, SELL1] * 20
    plain = gym.make("Janus-LOB-v0", action_type="sized", n_sizes=3, episode_steps=400)
    observing = LTNShield(gym.make("Janus-LOB-v0", action_type="sized", n_sizes=3, episode_steps=400),
                          enforce=False)
    enforcing = make()
    a, _ = plain.reset(seed=3)
    b, _ = observing.reset(seed=3)
    enforcing.reset(seed=3)
    overridden = violations = 0
    for t, action in enumerate(actions):
        assert observing.action_masks().all()
        a, ra, *_ = plain.step(action)
        b, rb, _, _, info = observing.step(action)
        assert all(np.array_equal(a[k], b[k]) for k in a) and ra == rb
        ltn = info["ltn"]
        assert not ltn["overridden"] and ltn["final_action"] == action
        assert ltn["violation"] == pytest.approx(1.0 - ltn["sat_agg"])
        violations += ltn["sat_agg"] < 0.9
        if t == 0 or not overridden:  # the same state until the enforcing shield first overrides
            reference = check_ltn(enforcing.step(action)[4])
            assert (ltn["rules"], ltn["sat_agg"], ltn["action_sat"]) == (
                reference["rules"], reference["sat_agg"], reference["action_sat"])
            overridden += reference["overridden"]
    assert violations > 10 and overridden == 1


def test_an_observing_shield_still_halts_on_a_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    inner = CountingWrapper(gym.make("Janus-LOB-v0", seed=0))
    env = LTNShield(inner, enforce=False)
    env.reset(seed=0)
    monkeypatch.setattr(env, "kernel", lambda *args: (_ for _ in ()).throw(RuntimeError("boom")))
    _, _, terminated, _, info = env.step(1)
    assert inner.n_steps == 0 and terminated and info["halt_reason"] == "shield_error: RuntimeError: boom"
    with pytest.raises(TypeError, match="enforce"):
        LTNShield(gym.make("Janus-LOB-v0"), enforce="no")
