"""Gated off-policy algorithms: every env action passes the gate, exploration is seeded and private."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.callbacks import CallbackList

from agents.basal_ganglia import (
    BasalGangliaCallback,
    BasalGangliaDQN,
    BasalGangliaDQNPolicy,
    GatedJanusDQN,
    policies,
)

SELL = 2


def env_of(model: Any) -> Any:
    return model.get_env().envs[0].unwrapped


def test_veto_holds_in_rollouts_including_exploration(algo: str, model_factory: Any, nogo_setter: Any,
                                                      recorder: Any) -> None:
    model = model_factory(algo)
    nogo_setter(model.policy, [-5.0, -5.0, 5.0])  # SELL vetoed everywhere from the start
    model.learn(400, callback=recorder)  # DQN: 100 warm-up steps, then ε-greedy from 1.0
    assert SELL not in recorder.actions
    assert env_of(model).executed[SELL] == 0
    assert env_of(model).executed[1] > 0


def test_gated_janus_dqn(losing_env_cls: Any, nogo_setter: Any, recorder: Any) -> None:
    model = GatedJanusDQN(BasalGangliaDQNPolicy, losing_env_cls(), learning_starts=50, buffer_size=1000,
                          policy_kwargs={"net_arch": [16]}, seed=0)
    nogo_setter(model.policy, [-5.0, -5.0, 5.0])
    model.learn(300, callback=CallbackList([BasalGangliaCallback(learning_starts=16), recorder]))
    assert SELL not in recorder.actions and 1 in recorder.actions
    assert model.replay_buffer.size() > 0


def test_gated_exploration_needs_basal_ganglia_policy(losing_env_cls: Any) -> None:
    with pytest.raises(TypeError, match=re.escape(policies._NOT_BG_POLICY.format("MultiInputPolicy"))):
        BasalGangliaDQN("MultiInputPolicy", losing_env_cls(), buffer_size=100)


def _explore(model: Any, obs: dict[str, np.ndarray], steps: int = 40) -> np.ndarray:
    """ε-greedy predictions (ε = 0.5) of batches and single observations."""
    model.exploration_rate = 0.5
    single = {k: v[0] for k, v in obs.items()}
    out = []
    for _ in range(steps):
        out.append(model.predict(obs, deterministic=False)[0])
        out.append(np.atleast_1d(model.predict(single, deterministic=False)[0]))
    return np.concatenate(out)


@pytest.mark.parametrize("algo", ["dqn", "qrdqn"])
def test_exploration_is_seeded_by_the_model_and_leaves_the_global_rng_alone(
    algo: str, model_factory: Any, sample_obs: Any, go_forcer: Any, recorder: Any
) -> None:
    first, second, other = model_factory(algo, seed=7), model_factory(algo, seed=7), model_factory(algo, seed=8)
    for model in (first, second, other):
        go_forcer(model.policy, 1)  # greedy = BUY: every other action comes from exploration
    obs = sample_obs(8)
    np.random.seed(12345)  # SB3 seeds the global generator at construction; from here on nothing may draw from it
    state = np.random.get_state()
    a, b, c = _explore(first, obs), _explore(second, obs), _explore(other, obs)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(a.tolist()) == {0, 1, 2}  # random actions (0 and 2) as well as greedy ones
    first.learn(60, callback=recorder)  # warm-up (learning_starts=100): every action is an exploratory draw
    warm_up = recorder.actions
    assert len(set(warm_up)) == 3
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]


def test_set_random_seed_and_load_reseed_exploration(model_factory: Any, sample_obs: Any, go_forcer: Any,
                                                     tmp_path: Path) -> None:
    model = model_factory("dqn", seed=3)
    go_forcer(model.policy, 1)
    obs = sample_obs(8)
    fresh = _explore(model, obs)
    model.set_random_seed(3)
    np.testing.assert_array_equal(_explore(model, obs), fresh)
    model.save(tmp_path / "m.zip")
    loaded = BasalGangliaDQN.load(tmp_path / "m.zip", device="cpu")
    np.testing.assert_array_equal(_explore(loaded, obs), fresh)  # the saved seed seeds the loaded policy


def test_exploration_stream_differs_from_the_replay_buffer_stream(model_factory: Any) -> None:
    """One model seed, two generators: the policy's exploration draws are not the buffer's ``default_rng(seed)``."""
    model = model_factory("dqn", seed=5)
    assert not np.array_equal(model.policy.np_random.random(16), np.random.default_rng(5).random(16))
    model.policy.seed_exploration(5)
    expected = np.random.default_rng(np.random.SeedSequence(5, spawn_key=(policies.EXPLORATION_STREAM,))).random(16)
    np.testing.assert_array_equal(model.policy.np_random.random(16), expected)
