"""The one shield core: the single, vector and multi-agent shields decide alike, validate alike, record alike."""

from __future__ import annotations

import json
import math
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import envs_registry  # noqa: F401
from envs_registry.pettingzoo_envs import make_parallel_env
from janus_env.lob_env import market_config
from janus_env.simulator import O_CASH, O_MID, O_POSITION, O_STEP, O_VOLATILITY, O_VOLUME, O_VPIN
from wrappers.parallel_shield import ParallelLTNShield
from wrappers.rules import RULE_NAMES
from wrappers.shield import LTNShield
from wrappers.shield_kernel import HOLD, ShieldCore, choose_actions, halt_record, ltn_record
from wrappers.vector_shield import VectorLTNShield

STEPS = 150


def _three(action_type: str, fallback: str, scenario: str, seed: int):
    """The same market three ways: one env, a vector env of one book, and a shared book with one JANUS agent.

    The multi-agent book with a single agent and the background flow runs the flow of ``Janus-LOB-v0``
    from the same seed (the agents' shuffle draws nothing for one agent), so the three see one market."""
    kwargs = {"scenario": scenario, "action_type": action_type, "n_sizes": 3, "episode_steps": STEPS, "warmup": 16}
    single = LTNShield(gym.make("Janus-LOB-v0", **kwargs), fallback=fallback)
    vector = VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=1, **kwargs), fallback=fallback)
    parallel = ParallelLTNShield(make_parallel_env(roles={"janus": 1}, **kwargs), fallback=fallback)
    single.reset(seed=seed)
    vector.reset(seed=[seed])
    parallel.reset(seed=seed)
    return single, vector, parallel


@pytest.mark.parametrize(("action_type", "fallback", "scenario"), [
    ("sized", "hold", "high_vol"),
    ("sized", "nearest", "flash_crash"),
    ("continuous", "hold", "high_vol"),
    ("continuous", "nearest", "flash_crash"),
])
def test_single_vector_and_multi_agent_shields_decide_alike(action_type: str, fallback: str, scenario: str) -> None:
    """Same book, same state sequence, same proposals: the same decisions and the same ``info["ltn"]``."""
    single, vector, parallel = _three(action_type, fallback, scenario, seed=7)
    rng = np.random.default_rng(1)
    overridden = moved = 0
    for _ in range(STEPS):
        if action_type == "continuous":
            a = rng.uniform(-1, 1, 1).astype(np.float32)
            batch = a[None, :]
        else:
            a = int(rng.integers(7))
            batch = np.array([a])
        *_, info_s = single.step(a)
        *_, info_v = vector.step(batch)
        _, _, terminations, truncations, infos = parallel.step({"janus_0": a})
        info_p = infos["janus_0"]
        ltn_s, ltn_v, ltn_p = info_s["ltn"], info_v["ltn"], info_p["ltn"]
        assert ltn_p == ltn_s  # the whole record, rules and actions included
        json.dumps(ltn_s)
        assert {key: value[0] for key, value in ltn_v["rules"].items()} == ltn_s["rules"]
        for key in ("sat_agg", "violation", "overridden", "threshold"):
            assert ltn_v[key][0] == ltn_s[key], key
        assert np.ravel(ltn_v["final_action"][0]).tolist() == np.ravel(ltn_s["final_action"]).tolist()
        assert np.ravel(ltn_v["proposed_action"][0]).tolist() == np.ravel(ltn_s["proposed_action"]).tolist()
        # one market: the same book, the same position (cash differs by the rounding of per-fill fees only)
        for key in ("mid", "vpin", "volatility", "volume", "position", "exec_qty"):
            assert info_v[key][0] == info_s[key] == info_p[key], key
        assert info_s["step"] == info_p["step"]
        assert info_p["cash"] == pytest.approx(info_s["cash"], rel=1e-12)
        overridden += ltn_s["overridden"]
        if ltn_s["overridden"] and info_s["exec_qty"] != 0.0:
            moved += 1  # a "nearest" fallback that still traded
    assert truncations["janus_0"] and not terminations["janus_0"]
    assert overridden >= 20  # the shields really vetoed
    assert (moved > 0) == (fallback == "nearest")


def test_the_core_reads_each_row_wherever_it_sits() -> None:
    """One core per adapter shape (one row, N rows, a subset of agents' rows in another order) on identical
    state rows: the row of a given market state gets the same decision, scores and mask everywhere."""
    config = market_config("ou", {"window": 4, "n_levels": 3})
    d = 2 * config.window + 4 * config.n_levels + 5 + 4
    obs = np.zeros((3, d + 1), dtype=np.float32)  # + the multi-agent env's signal column
    out = np.zeros((3, 40), dtype=np.float64)  # wider rows, as the multi-agent env's
    b0 = 2 * config.window
    book = np.array([[-1.0, 1.0, 1.0, 1.0], [-2.0, 0.5, 2.0, 0.7], [-3.0, 0.2, 3.0, 0.1]], dtype=np.float32)
    obs[:, b0:b0 + 12] = book.reshape(-1)
    out[:, O_MID], out[:, O_CASH], out[:, O_VOLATILITY], out[:, O_VOLUME] = 100.0, 30_000.0, 1e-4, 500.0
    out[:, O_POSITION] = [0.0, 300.0, 900.0]
    out[:, O_VPIN] = [0.2, 0.8, 0.2]
    results: dict[int, list] = {0: [], 1: []}
    for rows in ([0], [0, 1, 2], [2, 0, 1], [1, 0]):
        core = ShieldCore(len(rows), spaces.Discrete(7), config, 3, fallback="nearest")
        core.attach((obs, out), np.array(rows))
        out[:, O_STEP] += 1.0  # one step later
        core.proposed[:] = 3  # buy 3 lots
        final = core.decide()
        for market_row in results:
            if market_row in rows:
                k = rows.index(market_row)
                results[market_row].append((int(final[k]), *core.proposal_scores(k), core.masks()[k].tolist()))
                assert core.history(k).last_step == 1
        out[:, O_STEP] -= 1.0
    assert all(r == results[0][0] for r in results[0]) and all(r == results[1][0] for r in results[1])
    assert results[0][0] != results[1][0]  # the rows really differ (VPIN, position)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"threshold": 0.0}, ValueError, "Expected `threshold` to be a number in (0, 1], got 0.0"),
    ({"threshold": float("nan")}, ValueError, "Expected `threshold` to be a number in (0, 1], got nan"),
    ({"threshold": float("inf")}, ValueError, "Expected `threshold` to be a number in (0, 1], got inf"),
    ({"threshold": "0.9"}, TypeError, "Expected `threshold` to be a number in (0, 1], got '0.9'"),
    ({"threshold": True}, TypeError, "Expected `threshold` to be a number in (0, 1], got True"),
    ({"fallback": "sell"}, ValueError, "Expected `fallback` to be one of ('hold', 'nearest'), got 'sell'"),
    ({"fallback": 1}, TypeError, "Expected `fallback` to be a str, got 1"),
    ({"knowledge_base": {}}, TypeError, "Expected `knowledge_base` to be a TradingKnowledgeBase or None, got {}"),
])
@pytest.mark.parametrize("shield", ["single", "vector", "parallel"])
def test_every_shield_rejects_bad_arguments_alike(shield: str, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        if shield == "single":
            LTNShield(gym.make("Janus-LOB-v0"), **kwargs)
        elif shield == "vector":
            VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=2), **kwargs)
        else:
            ParallelLTNShield(make_parallel_env(roles={"noise": 1, "janus": 1}), **kwargs)


@pytest.mark.parametrize("shield", ["single", "vector", "parallel"])
def test_action_masks_need_discrete_actions_alike(shield: str) -> None:
    message = "action_masks() needs a Discrete action space, got Box(-1.0, 1.0, (1,), float32)"
    if shield == "single":
        env = LTNShield(gym.make("Janus-LOB-v0", action_type="continuous"))
        env.reset(seed=0)
        call = env.action_masks
    elif shield == "vector":
        env = VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=2, action_type="continuous"))
        env.reset(seed=0)
        call = env.action_masks
    else:
        env = ParallelLTNShield(make_parallel_env(roles={"noise": 1, "janus": 1}, action_type="continuous"))
        env.reset(seed=0)
        call = lambda: env.action_masks("janus_0")  # noqa: E731
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        call()


def _nearest_reference(q: np.ndarray, sat: np.ndarray, p: int, threshold: float) -> int:
    """The documented rule, written plainly: the proposal if permitted, else argmin over the permitted
    actions (HOLD always) of (|q_a − q_p|, −SatAgg_a, |q_a|, a)."""
    if sat[p] >= threshold:
        return p
    permitted = [a for a in range(len(q)) if a == HOLD or sat[a] >= threshold]
    return min(permitted, key=lambda a: (abs(q[a] - q[p]), -sat[a], abs(q[a]), a))


def test_choose_actions_matches_the_documented_rule() -> None:
    rng = np.random.default_rng(3)
    n, k = 400, 7
    q = np.tile(np.array([0, 100, 200, 300, -100, -200, -300], dtype=np.float64), (n, 1))
    sat = rng.choice([0.5, 0.89, 0.9, 0.95, 1.0], size=(n, k))
    proposed = rng.integers(0, k, n)
    for nearest in (False, True):
        final = np.zeros(n, dtype=np.int64)
        choose_actions(q, sat, proposed, 0.9, nearest, final)
        for i in range(n):
            want = _nearest_reference(q[i], sat[i], proposed[i], 0.9) if nearest else \
                (proposed[i] if sat[i, proposed[i]] >= 0.9 else HOLD)
            assert final[i] == want


def test_continuous_candidates_are_the_order_sent_and_the_lots_toward_it() -> None:
    """Candidates of a continuous target: HOLD, the proposal on the env's grid, then whole lots, largest first."""
    config = market_config("ou", {"lot": 0.01, "max_position": 1.0, "qty_step": 0.01})
    core = ShieldCore(3, spaces.Box(-1.0, 1.0, (1,), dtype=np.float32), config, 1, fallback="nearest")
    d = 2 * config.window + 4 * config.n_levels + 9
    obs = np.zeros((3, d), dtype=np.float32)
    out = np.zeros((3, 21), dtype=np.float64)
    out[:, O_MID] = 100.0
    out[:, O_POSITION] = [0.0, 0.25, -0.1]
    core.attach((obs, out))
    core.kernel = lambda *args: args[7].fill(0.0)  # nothing permitted: the fallback is HOLD for every row
    allowed, targets = core.decide_continuous(np.array([0.034, -0.5, np.nan]))
    lots = [-0.01 * j for j in range(75, 0, -1)]
    assert core.q.shape == (3, 2 + 75)
    np.testing.assert_allclose(core.q[0, :6], [0.0, 0.03, 0.03, 0.02, 0.01, 0.0], atol=1e-12)
    assert (core.q[0, 5:] == 0.0).all()
    np.testing.assert_allclose(core.q[1, 2:], lots, atol=1e-12)
    assert core.q[1, 1] == pytest.approx(-0.75) and (core.q[2] == 0.0).all()
    assert not allowed.any()
    np.testing.assert_array_equal(targets, np.array([0.0, 0.25, -0.1], dtype=np.float32))  # keep the position


def test_ltn_record_for_one_decision_and_for_a_batch() -> None:
    rules = dict(zip(RULE_NAMES, [1.0, 0.5, 1.0, 1.0, 0.0]))
    one = ltn_record(rules, 0.8, 3, 0, 0.9)
    assert one == {"rules": rules, "sat_agg": 0.8, "violation": pytest.approx(0.2), "overridden": True,
                   "proposed_action": 3, "final_action": 0, "threshold": 0.9, "action_sat": None}
    batch = ltn_record({}, np.array([0.95, 0.5]), np.array([1, 2]), np.array([1, 0]), np.full(2, 0.9))
    assert batch["overridden"].tolist() == [False, True] and np.allclose(batch["violation"], [0.05, 0.5])
    halt = halt_record([0.5], 0.9)
    assert halt["final_action"] is None and halt["violation"] == 1.0 and halt["overridden"] and not halt["rules"]
    assert not math.isnan(halt["sat_agg"]) and halt["action_sat"] is None


def test_action_sat_is_every_actions_satagg_in_the_judged_state() -> None:
    """``info["ltn"]["action_sat"]`` holds the graded SatAgg of every action in the state the proposal was judged in:
    it agrees with the knowledge base evaluated independently on that state (``evaluate_candidates`` before the
    step), and the proposal's own entry is at most the recorded (decision) ``sat_agg``, equal where no graded rule
    is near its limit."""
    env = LTNShield(gym.make("Janus-LOB-v0", action_type="sized", n_sizes=3))
    env.reset(seed=4)
    rng = np.random.default_rng(0)
    graded_below = 0
    for _ in range(40):
        scores = env.evaluate_candidates()
        action = int(rng.integers(0, 7))
        _, _, terminated, truncated, info = env.step(action)
        ltn = info["ltn"]
        assert ltn["action_sat"] == pytest.approx(scores.graded_sat.tolist(), abs=1e-12)
        assert ltn["sat_agg"] == pytest.approx(scores.sat[action], abs=1e-12)
        assert ltn["action_sat"][action] <= ltn["sat_agg"] + 1e-12
        graded_below += ltn["action_sat"][action] < ltn["sat_agg"] - 1e-9
        if terminated or truncated:
            break
    assert graded_below > 0  # some proposals came near a limit: the graded truths differ from the crisp ones


def test_one_scoring_call_per_step_with_masks() -> None:
    """Masks score the step once; the decision reuses those scores (no second call)."""
    env = LTNShield(gym.make("Janus-LOB-v0", action_type="sized", n_sizes=3))
    env.reset(seed=0)
    stock, calls = env.kernel, []
    env.kernel = lambda *args: (calls.append(1), stock(*args))
    for step in range(20):
        env.action_masks()
        env.action_masks()
        env.step(1 if step % 2 else 4)
        assert len(calls) == step + 1
