"""``normalize_reward``: the learner's rewards scaled by VecNormalize, its statistics checkpointed exactly, callbacks
reading the env's own rewards; refused where it would be silently wrong."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from agents.app.config import ConfigError, check_hyperparams
from agents.app.reward_normalization import RewardNormalizationState, reward_normalizer
from replay.env_rewards import env_rewards


class _Pays(gym.Env):
    """Pays ``scale · (step index)``: rewards whose return variance is far from 1."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, scale: float = 0.003) -> None:
        self.scale, self.t = scale, 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action: int):
        self.t += 1
        return np.zeros(1, np.float32), self.scale * self.t * (1 + int(action)), False, self.t >= 7, {}


def _normalizer(n_envs: int = 2, gamma: float = 0.9):
    return reward_normalizer(DummyVecEnv([_Pays for _ in range(n_envs)]), PPO, {"gamma": gamma})


def _run(normalizer, steps: int) -> list[np.ndarray]:
    normalizer.reset()
    seen = []
    for t in range(steps):
        _, rewards, _, _ = normalizer.step(np.array([t % 2, 1]))
        seen.append(rewards)
    return seen


def test_rewards_are_divided_by_the_std_of_the_discounted_return() -> None:
    normalizer = _normalizer()
    assert normalizer.gamma == 0.9 and not normalizer.norm_obs
    scaled = _run(normalizer, 20)[-1]
    raw = normalizer.get_original_reward()
    # by hand: R_t = γ R_{t−1} + r_t per env, reset at episode ends; Var over every R_t seen (and SB3's prior count)
    returns, every = np.zeros(2), []
    normalizer2 = _normalizer()
    normalizer2.reset()
    for t in range(20):
        _, _, dones, _ = normalizer2.step(np.array([t % 2, 1]))
        returns = returns * 0.9 + normalizer2.get_original_reward()
        every.append(returns.copy())
        returns[dones] = 0.0
    every = np.concatenate(every)
    prior = 1e-4  # RunningMeanStd's initial count, at mean 0 and var 1
    mean = every.sum() / (every.size + prior)
    var = (every.var() * every.size + prior + every.size * prior / (every.size + prior) * every.mean() ** 2) \
        / (every.size + prior)
    np.testing.assert_allclose(normalizer.ret_rms.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(normalizer.ret_rms.var, var, rtol=1e-6)
    np.testing.assert_allclose(scaled, raw / np.sqrt(var + 1e-8), rtol=1e-5)


def test_state_round_trips_and_goes_on_identically() -> None:
    a = _normalizer()
    _run(a, 11)
    state = RewardNormalizationState(a).state_dict()
    b = _normalizer(gamma=0.5)
    _run(b, 11)  # the envs where a's are, the statistics not
    b.gamma = 0.9
    RewardNormalizationState(b).load_state_dict(state)
    assert RewardNormalizationState(b).state_dict().keys() == state.keys()
    np.testing.assert_array_equal(b.returns, a.returns)
    for t in range(9):  # same steps from the same state: bit-identical scaled rewards
        action = np.array([t % 2, 0])
        ra, rb = a.step(action)[1], b.step(action)[1]
        np.testing.assert_array_equal(ra, rb)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("var", None, "Expected `var` to be a finite float array of shape ()"),
    ("var", -1.0, "Expected `var` to be a variance >= 0, got -1.0"),
    ("mean", float("nan"), "Expected `mean` to be a finite float array of shape ()"),
    ("returns", np.zeros(3), "Expected `returns` to be a finite float array of shape (2,)"),
    ("count", 0.0, "Expected `count` to be a finite number > 0, got 0.0"),
])
def test_a_bad_state_is_refused_naming_the_value(key: str, value, message: str) -> None:
    state = RewardNormalizationState(_normalizer()).state_dict()
    state[key] = value
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        RewardNormalizationState(_normalizer()).load_state_dict(state)


def test_callbacks_read_the_env_rewards_not_the_scaled_ones() -> None:
    normalizer = _normalizer()
    model = PPO("MlpPolicy", normalizer, n_steps=8, batch_size=8, seed=0)
    scaled = _run(normalizer, 5)[-1]
    raw = env_rewards(model, {"rewards": scaled})
    np.testing.assert_array_equal(raw, normalizer.get_original_reward())
    assert not np.allclose(raw, scaled)
    plain = PPO("MlpPolicy", DummyVecEnv([_Pays]), n_steps=8, batch_size=8, seed=0)
    np.testing.assert_array_equal(env_rewards(plain, {"rewards": np.array([0.25], np.float32)}), [0.25])


def test_only_on_policy_algorithms_take_it() -> None:
    check_hyperparams("ppo", {"normalize_reward": True})
    with pytest.raises(ConfigError, match=re.escape("'normalize_reward' applies to janus-ppo/ppo only, not to 'janus-dqn'")):
        check_hyperparams("janus-dqn", {"normalize_reward": True})
    with pytest.raises(ConfigError, match=re.escape("Expected `normalize_reward` to be a bool, got 'yes'")):
        check_hyperparams("ppo", {"normalize_reward": "yes"})
