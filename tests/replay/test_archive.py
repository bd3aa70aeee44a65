"""Tests for replay.archive and the on-policy sleep: PPO's steps kept in replay layout, consolidated without SWR."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from replay.archive import RolloutArchive
from replay.callbacks import SleepPhaseCallback
from replay.sleep_cycle import SKIP_NOT_DQN, SleepConfig

DICT_SPACE = spaces.Dict({"b": spaces.Box(-1, 1, (2, 2), np.float32), "a": spaces.Box(-1, 1, (3,), np.float32)})


def _step(rng: np.random.Generator, n_envs: int) -> dict[str, np.ndarray]:
    return {"a": rng.uniform(-1, 1, (n_envs, 3)).astype(np.float32),
            "b": rng.uniform(-1, 1, (n_envs, 2, 2)).astype(np.float32)}


def test_archive_is_a_fifo_ring_in_replay_layout() -> None:
    rng = np.random.default_rng(0)
    archive = RolloutArchive(DICT_SPACE, spaces.Discrete(3), buffer_size=4, n_envs=2)
    written = []
    for t in range(6):  # wraps after 4
        obs = _step(rng, 2)
        infos = [{"ltn": {"violation": 0.25 * (t % 2)}}, {}]
        archive.add(obs, np.array([t % 3, 2]), np.array([t, -t]), np.array([t == 5, False]), infos)
        written.append(obs)
    assert archive.pos == 2 and archive.full and archive.size() == 4
    np.testing.assert_array_equal(archive.observations["a"][0], written[4]["a"])
    np.testing.assert_array_equal(archive.observations["b"][1], written[5]["b"])
    np.testing.assert_array_equal(archive.rewards[:2], [[4, -4], [5, -5]])
    np.testing.assert_array_equal(archive.dones[:2], [[0, 0], [1, 0]])
    np.testing.assert_array_equal(archive.actions[:2, :, 0], [[1, 2], [2, 2]])
    np.testing.assert_array_equal(archive.violations[:2], [[0.0, 0.0], [0.25, 0.0]])


def test_archive_state_roundtrip_and_checks() -> None:
    rng = np.random.default_rng(1)
    archive = RolloutArchive(DICT_SPACE, spaces.Discrete(3), buffer_size=5, n_envs=2)
    for _ in range(3):
        archive.add(_step(rng, 2), np.array([0, 1]), np.array([1.0, 2.0]), np.array([False, False]), [{}, {}])
    other = RolloutArchive(DICT_SPACE, spaces.Discrete(3), buffer_size=5, n_envs=2)
    other.load_state_dict(archive.state_dict())
    for name in ("actions", "rewards", "dones", "violations"):
        np.testing.assert_array_equal(getattr(other, name), getattr(archive, name))
    np.testing.assert_array_equal(other.observations["b"], archive.observations["b"])
    assert (other.pos, other.full) == (3, False)
    small = RolloutArchive(DICT_SPACE, spaces.Discrete(3), buffer_size=4, n_envs=2)
    with pytest.raises(ValueError, match=re.escape("Rollout archive state: expected observations['a'] as float32 (4, 2, 3), "
                                                    "got 'float32 (5, 2, 3)'")):
        small.load_state_dict(archive.state_dict())
    with pytest.raises(ValueError, match=re.escape("Expected 2 rows (one per env), got 1")):
        archive.add(_step(rng, 2), np.array([0, 1]), np.array([1.0, 2.0]), np.array([False, False]), [{}])
    with pytest.raises(TypeError, match="RolloutArchive needs Box or Dict-of-Box observations"):
        RolloutArchive(spaces.Discrete(4), spaces.Discrete(2), 4, 1)


def test_ppo_sleeps_on_its_archive_without_swr() -> None:
    """An on-policy model: the callback keeps every step (as the env returned it) and sleeps on them; SWR is
    skipped (on-policy), schemas keep outcomes per action; the state round-trips through the callback's state."""
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16]})
    config = SleepConfig(umap=False, store_device="cpu", seq_len=16, encoder_steps=20, code_dim=16,
                         archive_size=300, clock=lambda: 0.0)
    callback = SleepPhaseCallback(config, every_n_steps=128, on_episode_end=False)
    model.learn(384, callback=callback)
    archive = callback.archive
    assert archive is not None and archive.buffer_size == 150 and archive.pos == 192 % 150 and archive.full
    rollout = model.rollout_buffer  # the last rollout (flattened env-major by training): the archive's last rows
    rows = (archive.pos - 64 + np.arange(64)) % archive.buffer_size
    np.testing.assert_array_equal(archive.observations[rows], rollout.observations.reshape(2, 64, 4).swapaxes(0, 1))
    np.testing.assert_array_equal(archive.actions[rows, :, 0], rollout.actions.reshape(2, 64).T)
    assert callback.n_sleeps == 3 and callback.sleep_state.swr_skip_reason == SKIP_NOT_DQN
    assert callback.last_metrics["sleep/swr_skipped"] == 1.0 and callback.last_metrics["sleep/consolidated"] > 0
    state = callback.sleep_state
    assert state.n_actions == 2 and state.encoder.trained and state.schemas.action_counts.sum() > 0
    twin = SleepPhaseCallback(config, every_n_steps=128, on_episode_end=False)
    twin.load_state_dict(callback.state_dict())
    assert twin.archive is None  # built, and checked, when training starts
    twin.init_callback(model)
    np.testing.assert_array_equal(twin.archive.observations, archive.observations)
    assert twin.archive.pos == archive.pos
    gym.make("CartPole-v1").close()
