"""LogicRolloutBuffer / LogicDictRolloutBuffer: SatAgg rows staged from infos, stored at the step's row, shuffled with it."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBufferSamples, MaskableRolloutBufferSamples

from replay import prioritized, rollout
from replay.rollout import LogicDictRolloutBuffer, LogicRolloutBuffer
from replay.types import LogicDictRolloutBufferSamples, LogicRolloutBufferSamples

N_STEPS, N_ENVS, N_ACTIONS = 8, 2, 3
OBS_SPACE = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)


def _buffer(cls: type = LogicRolloutBuffer, action_space: spaces.Space | None = None) -> Any:
    obs_space = spaces.Dict({"x": OBS_SPACE}) if cls is LogicDictRolloutBuffer else OBS_SPACE
    return cls(N_STEPS, obs_space, action_space or spaces.Discrete(N_ACTIONS), device="cpu", n_envs=N_ENVS)


def _infos(rows: list[Any]) -> list[dict[str, Any]]:
    return [{} if row is None else {"ltn": {"action_sat": row}} for row in rows]


def _fill(buffer: Any, sat_of: Any) -> None:
    """Stage then add every step; observation of env e at step t is (t, e); ``sat_of(t)`` gives the infos' rows."""
    for t in range(N_STEPS):
        obs = np.array([[t, e] for e in range(N_ENVS)], dtype=np.float32)
        if isinstance(buffer, LogicDictRolloutBuffer):
            obs = {"x": obs}
        rows = sat_of(t)
        if rows is not False:
            buffer.observe_infos(_infos(rows))
        buffer.add(obs, np.zeros((N_ENVS, 1)), np.zeros(N_ENVS), np.zeros(N_ENVS, dtype=bool),
                   th.zeros(N_ENVS), th.zeros(N_ENVS), action_masks=np.ones((N_ENVS, N_ACTIONS)))
    buffer.compute_returns_and_advantage(last_values=th.zeros(N_ENVS), dones=np.zeros(N_ENVS, dtype=bool))


def _sat(t: int, e: int) -> list[float]:
    return [1.0, 0.5 + 0.01 * t, 0.1 * e]


def test_sample_fields_extend_sb3_contribs_in_order() -> None:
    n = len(MaskableRolloutBufferSamples._fields)
    assert LogicRolloutBufferSamples._fields[:n] == MaskableRolloutBufferSamples._fields
    assert LogicDictRolloutBufferSamples._fields[:n] == MaskableDictRolloutBufferSamples._fields
    assert LogicRolloutBufferSamples._fields[n:] == LogicDictRolloutBufferSamples._fields[n:] == ("action_sat",)


@pytest.mark.parametrize("cls", [LogicRolloutBuffer, LogicDictRolloutBuffer])
def test_rows_follow_their_step_through_the_shuffle(cls: type) -> None:
    """Row (t, e) is env e's info of step t; every shuffled minibatch pairs each observation with its own row."""
    buffer = _buffer(cls)
    _fill(buffer, lambda t: [_sat(t, e) for e in range(N_ENVS)])
    expected = np.array([[_sat(t, e) for e in range(N_ENVS)] for t in range(N_STEPS)], dtype=np.float32)
    np.testing.assert_array_equal(buffer.action_sat, expected)
    seen = 0
    for _ in range(2):  # two epochs: the second get() must not flatten again
        for samples in buffer.get(batch_size=5):
            obs = samples.observations["x"] if cls is LogicDictRolloutBuffer else samples.observations
            for (t, e), row in zip(obs.numpy().astype(int), samples.action_sat.numpy(), strict=True):
                np.testing.assert_array_equal(row, expected[t, e])
                seen += 1
    assert seen == 2 * N_STEPS * N_ENVS


def test_missing_rows_are_ones_and_no_row_at_all_is_none() -> None:
    """A step whose info has no SatAgg (a halt, a breaker before the shield) keeps rows of 1; a rollout without any
    (no shield) has no ``action_sat`` and its samples carry None; a reset forgets the rows."""
    buffer = _buffer()
    _fill(buffer, lambda t: [_sat(t, 0), None] if t % 2 else False)  # odd steps: env 1 halted; even: nothing staged
    assert np.all(buffer.action_sat[::2] == 1.0) and np.all(buffer.action_sat[1::2, 1] == 1.0)
    np.testing.assert_array_equal(buffer.action_sat[1::2, 0],
                                  np.array([_sat(t, 0) for t in range(1, N_STEPS, 2)], dtype=np.float32))
    buffer.reset()
    assert buffer.action_sat is None
    _fill(buffer, lambda t: [None, None])
    assert buffer.action_sat is None
    assert all(samples.action_sat is None for samples in buffer.get(batch_size=4))


def test_a_staged_row_is_used_once() -> None:
    """Rows staged for one step never leak into the next one."""
    buffer = _buffer()
    _fill(buffer, lambda t: [_sat(t, 0), _sat(t, 1)] if t == 0 else False)
    assert np.all(buffer.action_sat[1:] == 1.0) and not np.all(buffer.action_sat[0] == 1.0)


def test_non_discrete_actions_keep_no_rows() -> None:
    buffer = _buffer(action_space=spaces.MultiDiscrete([3, 2]))
    buffer.observe_infos(_infos([_sat(0, 0), _sat(0, 1)]))  # not read: SatAgg is per discrete action
    assert buffer.n_actions == 0 and buffer._staged is None


def test_bad_infos_raise() -> None:
    buffer = _buffer()
    with pytest.raises(ValueError, match=f"^{re.escape(rollout._BAD_INFOS.format(N_ENVS, 1))}$"):
        buffer.observe_infos(_infos([[1.0, 1.0, 1.0]]))
    bad = [1.0, 1.5, 1.0]
    with pytest.raises(ValueError, match=f"^{re.escape(prioritized._BAD_ACTION_SAT.format(N_ACTIONS, bad, 1))}$"):
        buffer.observe_infos(_infos([[1.0, 1.0, 1.0], bad]))
    with pytest.raises(ValueError, match=re.escape("got [1.0, 1.0] for env 0")):
        buffer.observe_infos(_infos([[1.0, 1.0], None]))
