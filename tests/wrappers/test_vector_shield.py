"""``VectorLTNShield``: the single-env shield's decisions on every book of the native vector env."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import envs_registry  # noqa: F401
from janus_env.actions import InvalidActionError
from wrappers.rules import RULE_NAMES
from wrappers.shield import HOLD, LTNShield
from wrappers.vector_shield import VectorLTNShield

SEEDS = [3, 4, 5, 6]


@pytest.fixture
def small_market(small_market: dict) -> dict:
    # high volatility: the shield vetoes often (the test wants > 10 vetoes in one 60-step session, then an autoreset)
    return {**small_market, "episode_steps": 60, "warmup": 16, "scenario": "high_vol"}


@pytest.mark.parametrize("action_type,fallback", [("sized", "hold"), ("sized", "nearest"), ("continuous", "hold"),
                                                  ("continuous", "nearest")])
def test_every_book_decides_as_the_single_env_shield(action_type: str, fallback: str, small_market: dict) -> None:
    """Same seeds, same proposals: same scores, overrides and executions, across next-step autoresets."""
    kwargs = {**small_market, "action_type": action_type, "n_sizes": 3}
    envs = VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=len(SEEDS), **kwargs), fallback=fallback)
    singles = [LTNShield(gym.make("Janus-LOB-v0", **kwargs), fallback=fallback) for _ in SEEDS]
    envs.reset(seed=SEEDS)
    for env, s in zip(singles, SEEDS):
        env.reset(seed=s)
    rng = np.random.default_rng(0)
    overridden = 0
    for _ in range(small_market["episode_steps"]):
        if action_type == "continuous":
            actions = rng.uniform(-1, 1, (len(SEEDS), 1)).astype(np.float32)
        else:
            actions = rng.integers(0, 7, len(SEEDS))
        _, vreward, vterm, vtrunc, vinfo = envs.step(actions)
        for i, env in enumerate(singles):
            _, reward, terminated, truncated, info = env.step(actions[i] if action_type == "continuous"
                                                              else int(actions[i]))
            ltn = info["ltn"]
            assert vinfo["ltn"]["sat_agg"][i] == ltn["sat_agg"]
            assert vinfo["ltn"]["overridden"][i] == ltn["overridden"]
            assert np.ravel(vinfo["ltn"]["final_action"][i]).tolist() == np.ravel(ltn["final_action"]).tolist()
            assert [vinfo["ltn"]["rules"][name][i] for name in RULE_NAMES] == list(ltn["rules"].values())
            assert vinfo["position"][i] == info["position"] and vreward[i] == reward
            assert envs.history(i).trades == env.history.trades
            overridden += ltn["overridden"]
    assert overridden > 10  # the shield really vetoed something
    assert vtrunc.all()
    # next-step autoreset: the books restart, and so do their histories
    envs.step(actions)
    for i in range(len(SEEDS)):
        history = envs.history(i)
        assert history.position == 0.0 and history.trades == [] and history.last_step == 0
        assert history.last_loss_sale_step is None


def test_oversized_orders_never_execute(ltn_keys: set[str]) -> None:
    envs = VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=8, action_type="sized", n_sizes=5,
                                        max_position=300, episode_steps=80))
    envs.reset(seed=0)
    max_buy = np.full(8, 5)
    for _ in range(80):
        _, _, _, _, info = envs.step(max_buy)
        assert (np.abs(info["position"]) <= 300).all() and (info["rejected_qty"] == 0).all()
        assert set(info["ltn"]) == ltn_keys and info["_ltn"].all()
    assert (info["ltn"]["final_action"] == HOLD).all() and info["ltn"]["overridden"].all()


def test_action_masks_match_the_scores() -> None:
    envs = VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=4, action_type="sized", n_sizes=3))
    envs.reset(seed=1)
    for t in range(30):
        masks = envs.action_masks()
        assert masks.shape == (4, 7) and masks[:, HOLD].all()
        _, _, _, _, info = envs.step(np.full(4, 3 if t % 2 else 6))
        proposed = info["ltn"]["proposed_action"]
        np.testing.assert_array_equal(masks[np.arange(4), proposed], ~info["ltn"]["overridden"])


def test_a_fault_halts_every_book_and_needs_a_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    envs = VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=3))
    envs.reset(seed=0)
    envs.step(np.array([1, 1, 1]))
    before = envs.unwrapped.buffers()[1].copy()
    monkeypatch.setattr(envs, "kernel", lambda *args: 1 / 0)
    _, reward, terminated, _, info = envs.step(np.array([1, 2, 1]))
    assert terminated.all() and (reward == 0).all() and info["halted"].all()
    assert info["halt_reason"][0] == "shield_error: ZeroDivisionError: division by zero"
    ltn = info["ltn"]
    assert ltn["final_action"] is None and ltn["overridden"].all() and (ltn["violation"] == 1.0).all()
    assert ltn["proposed_action"].tolist() == [1, 2, 1] and info["_ltn"].all()
    np.testing.assert_array_equal(envs.unwrapped.buffers()[1], before)  # nothing reached the books
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match=re.escape("Call reset() before step()")):
        envs.step(np.array([0, 0, 0]))
    envs.reset(seed=1)
    assert not envs.step(np.array([1, 1, 1]))[2].any()


def test_bad_input() -> None:
    envs = VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=2))
    envs.reset(seed=0)
    before = envs.unwrapped.buffers()[1].copy()
    with pytest.raises(InvalidActionError, match=re.escape("Action 5 is outside Discrete(3)")):
        envs.step(np.array([1, 5]))
    with pytest.raises(TypeError, match="Expected actions of shape"):
        envs.step(np.array([0.5, 1.0]))
    np.testing.assert_array_equal(envs.unwrapped.buffers()[1], before)
    with pytest.raises(TypeError, match="needs the native Janus-LOB vector env"):
        VectorLTNShield(gym.make_vec("CartPole-v1", num_envs=2))
    with pytest.raises(ValueError, match=re.escape("Expected `threshold` to be a number in (0, 1], got 0")):
        VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=2), threshold=0)


def test_the_whole_glass_box_per_sub_env_through_a_sync_vector_env() -> None:
    """The documented route for the other wrappers: gym.make_vec(..., "sync", wrappers=[...])."""
    from wrappers import Amygdala

    envs = gym.make_vec("Janus-LOB-v0", num_envs=3, vectorization_mode="sync", wrappers=[LTNShield, Amygdala],
                        action_type="sized", n_sizes=5, max_position=300)
    envs.reset(seed=0)
    for _ in range(20):
        _, _, _, _, info = envs.step(np.array([5, 5, 0]))
        assert (np.abs(info["position"]) <= 300).all()
    assert info["ltn"]["overridden"][:2].all() and not info["ltn"]["overridden"][2]
    assert "breakers" in info
