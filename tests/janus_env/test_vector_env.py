"""The native vector env: same dynamics as the single env, NEXT_STEP autoreset, batched errors."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence

import envs_registry  # noqa: F401
from janus_env.actions import InvalidActionError
from janus_env.vector_env import JanusLOBVectorEnv


def test_make_vec_uses_the_native_vector_env(small_market: dict) -> None:
    envs = gym.make_vec("Janus-LOB-v0", num_envs=3, **small_market)
    assert isinstance(envs, JanusLOBVectorEnv)
    obs, info = envs.reset(seed=0)
    assert envs.observation_space.contains(obs)
    assert obs["book"].shape == (3, 5, 4)
    assert set(info) >= {"equity", "_equity", "vpin", "position"}


@pytest.mark.parametrize("parallel", [False, True])
def test_each_book_matches_a_single_env_with_the_same_seed(parallel: bool, small_market: dict) -> None:
    seeds = [11, 12, 13]
    envs = JanusLOBVectorEnv(num_envs=3, parallel=parallel, **small_market)
    singles = [gym.make("Janus-LOB-v0", **small_market) for _ in seeds]
    vobs, _ = envs.reset(seed=seeds)
    sobs = [env.reset(seed=s)[0] for env, s in zip(singles, seeds)]
    rng = np.random.default_rng(0)
    for _ in range(small_market["episode_steps"]):
        for i in range(3):
            assert data_equivalence({k: v[i] for k, v in vobs.items()}, sobs[i], exact=True)
        actions = rng.integers(0, 3, size=3)
        vobs, vrew, vterm, vtrunc, _ = envs.step(actions)
        for i, env in enumerate(singles):
            obs, reward, terminated, truncated, _ = env.step(int(actions[i]))
            sobs[i] = obs
            assert vrew[i] == reward and vterm[i] == terminated and vtrunc[i] == truncated


def test_next_step_autoreset(small_market: dict) -> None:
    envs = JanusLOBVectorEnv(num_envs=2, **small_market)
    envs.reset(seed=0)
    for t in range(small_market["episode_steps"]):
        _, _, terminated, truncated, info = envs.step(np.array([1, 2]))
    assert truncated.all() and not terminated.any()
    obs, reward, terminated, truncated, info = envs.step(np.array([1, 1]))
    assert (reward == 0).all() and not truncated.any()
    assert (info["position"] == 0).all()  # reset: flat again, the action was ignored
    assert (obs["account"][:, 4] == 1.0).all()  # a whole session left


def test_same_seed_same_rollout_vector(small_market: dict) -> None:
    def run() -> list:
        envs = JanusLOBVectorEnv(num_envs=4, **small_market)
        out = [envs.reset(seed=3)]
        rng = np.random.default_rng(1)
        for _ in range(60):
            out.append(envs.step(rng.integers(0, 3, size=4)))
        return out

    assert data_equivalence(run(), run(), exact=True)


def test_continuous_vector_actions_target_positions(small_market: dict) -> None:
    envs = JanusLOBVectorEnv(num_envs=2, action_type="continuous", **small_market)
    envs.reset(seed=0)
    _, _, _, _, info = envs.step(np.array([[0.5], [-0.2]], dtype=np.float32))
    assert info["position"].tolist() == [500.0, -200.0]


@pytest.mark.parametrize(
    ("actions", "error", "message"),
    [
        (np.array([0, 3]), InvalidActionError, "Action 3 is outside Discrete(3)"),
        (np.array([0.0, 1.0]), TypeError, "Expected actions of shape (2,) and an integer dtype"),
        (np.array([0, 1, 2]), TypeError, "Expected actions of shape (2,)"),
    ],
)
def test_bad_vector_actions(actions, error, message, small_market: dict) -> None:
    envs = JanusLOBVectorEnv(num_envs=2, **small_market)
    envs.reset(seed=0)
    with pytest.raises(error, match=re.escape(message)):
        envs.step(actions)


def test_bad_continuous_vector_action(small_market: dict) -> None:
    envs = JanusLOBVectorEnv(num_envs=2, action_type="continuous", **small_market)
    envs.reset(seed=0)
    with pytest.raises(InvalidActionError, match="nan"):
        envs.step(np.array([[0.0], [np.nan]], dtype=np.float32))


def test_vector_step_before_reset_and_bad_num_envs(small_market: dict) -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `num_envs` to be an int >= 1, got 0")):
        JanusLOBVectorEnv(num_envs=0)
    with pytest.raises(ValueError, match=re.escape(
            "Expected `reward` to be one of ('pnl', 'risk_adjusted'), got 'sharpe'")):  # fmt: skip
        JanusLOBVectorEnv(num_envs=2, reward="sharpe")
    envs = JanusLOBVectorEnv(num_envs=2, **small_market)
    with pytest.raises(RuntimeError, match=re.escape("Call reset() before step()")):
        envs.step(np.array([0, 0]))
