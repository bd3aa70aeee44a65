"""SymlogExtractor: the flattened, concatenated, symlog-squashed observation, checked by hand."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces

import envs_registry  # noqa: F401  (registers Janus-LOB-v0)
from agents.symlog_extractor import SymlogExtractor


def _by_hand(obs: dict[str, np.ndarray], keys: list[str]) -> np.ndarray:
    flat = np.concatenate([np.asarray(obs[k], dtype=np.float64).reshape(-1) for k in keys])
    return np.sign(flat) * np.log1p(np.abs(flat))


def test_features_are_the_squashed_observation_of_the_env() -> None:
    env = gym.make("Janus-LOB-v0", seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    extractor = SymlogExtractor(env.observation_space)
    keys = list(env.observation_space.spaces)
    assert extractor.features_dim == sum(int(np.prod(env.observation_space[k].shape)) for k in keys)
    batch = {k: th.as_tensor(np.stack([v, -v]), dtype=th.float32) for k, v in obs.items()}
    got = extractor(batch).numpy()
    assert got.shape == (2, extractor.features_dim)
    want = _by_hand({k: np.asarray(v, dtype=np.float32) for k, v in obs.items()}, keys)
    np.testing.assert_allclose(got[0], want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[1], -want, rtol=1e-6, atol=1e-7)  # odd: the sign kept
    assert not list(extractor.parameters())


def test_a_box_space_is_read_whole() -> None:
    space = spaces.Box(-1e6, 1e6, shape=(2, 3), dtype=np.float32)
    x = th.tensor([[[0.0, 1.0, -1.0], [1e3, -1e6, 0.5]]])
    got = SymlogExtractor(space)(x)
    assert got.shape == (1, 6)
    np.testing.assert_allclose(got.numpy()[0], _by_hand({"x": x.numpy()}, ["x"]), rtol=1e-6)


def test_a_key_that_is_not_a_box_is_refused_by_name() -> None:
    space = spaces.Dict({"a": spaces.Box(0, 1, (2,)), "b": spaces.Discrete(3)})
    with pytest.raises(TypeError, match="key 'b'"):
        SymlogExtractor(space)
