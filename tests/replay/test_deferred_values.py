"""DeferredValuesMixin: a full rollout's values from one critic pass over its stored observations, before GAE."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from replay import deferred_values
from replay.rollout import LogicDictRolloutBuffer, LogicRolloutBuffer

N_STEPS, N_ENVS = 8, 3
OBS_SPACE = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)


def critic(obs: Any) -> np.ndarray:
    """A stand-in critic: V(s) = 10·t + e for the observation (t, e) of env e at step t."""
    x = obs["x"] if isinstance(obs, dict) else obs
    return 10.0 * x[:, 0] + x[:, 1]


def filled(cls: type, values: str) -> Any:
    """A full buffer whose row (t, e) holds observation (t, e), reward t − e, an episode start at t = 5 for env 1;
    ``values``: "nan" (deferred, as JanusPPO stores them) or "critic" (stored per step)."""
    obs_space = spaces.Dict({"x": OBS_SPACE}) if cls is LogicDictRolloutBuffer else OBS_SPACE
    buffer = cls(N_STEPS, obs_space, spaces.Discrete(3), device="cpu", n_envs=N_ENVS, gamma=0.9, gae_lambda=0.8)
    for t in range(N_STEPS):
        obs = np.array([[t, e] for e in range(N_ENVS)], dtype=np.float32)
        value = np.full(N_ENVS, np.nan, dtype=np.float32) if values == "nan" else critic(obs)
        buffer.add({"x": obs} if cls is LogicDictRolloutBuffer else obs, np.zeros((N_ENVS, 1)),
                   np.arange(N_ENVS, dtype=np.float32) * -1 + t, np.array([False, t == 5, False]),
                   th.as_tensor(value), th.zeros(N_ENVS))
    return buffer


LAST = th.tensor([1.0, 2.0, 3.0])
DONES = np.array([False, True, False])


@pytest.mark.parametrize("cls", [LogicRolloutBuffer, LogicDictRolloutBuffer])
@pytest.mark.parametrize("chunk", [deferred_values.CHUNK, 5])
def test_deferred_values_are_the_per_step_values_and_give_the_same_returns(
    cls: type, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deferred_values, "CHUNK", chunk)  # 5: passes that cut across steps and envs
    per_step, deferred = filled(cls, "critic"), filled(cls, "nan")
    per_step.compute_returns_and_advantage(LAST, DONES)
    deferred.defer_values(critic)
    deferred.compute_returns_and_advantage(LAST, DONES)
    expected = 10.0 * np.arange(N_STEPS)[:, None] + np.arange(N_ENVS)[None, :]
    np.testing.assert_array_equal(deferred.values, expected)  # row (t, e) got the critic of observation (t, e)
    for name in ("values", "returns", "advantages"):
        np.testing.assert_array_equal(getattr(deferred, name), getattr(per_step, name))


def test_a_non_finite_value_is_an_error_not_a_silent_nan() -> None:
    buffer = filled(LogicRolloutBuffer, "nan")
    buffer.defer_values(lambda obs: np.where(obs[:, 0] == 3, np.nan, 1.0))
    with pytest.raises(ValueError, match=r"not all finite .*3 of 24"):
        buffer.compute_returns_and_advantage(LAST, DONES)


def test_without_a_critic_the_stored_values_are_used_as_sb3_does() -> None:
    buffer = filled(LogicRolloutBuffer, "critic")
    buffer.defer_values(critic)
    buffer.defer_values(None)
    before = buffer.values.copy()
    buffer.compute_returns_and_advantage(LAST, DONES)
    np.testing.assert_array_equal(buffer.values, before)
