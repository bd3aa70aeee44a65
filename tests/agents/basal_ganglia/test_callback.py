"""BasalGangliaCallback: LTN infos to the gate, ``info["go_nogo"]``, the FIFO of labelled steps, the threshold."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList

from agents.basal_ganglia import HOLD, BasalGangliaCallback, policies
from janus_env.checks import bad_value


def test_callback_feeds_ltn_infos_and_writes_go_nogo(model_factory: Any, losing_env_cls: Any, recorder: Any) -> None:
    class LTNEnv(losing_env_cls):  # type: ignore[misc, valid-type]
        def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
            obs, reward, terminated, truncated, info = super().step(action)
            info["ltn"] = {"sat_agg": 0.5, "violation": 0.5, "overridden": False}  # every proposal unsatisfying
            return obs, reward, terminated, truncated, info

    model = model_factory("ppo", LTNEnv())
    model.learn(128, callback=CallbackList([BasalGangliaCallback(), recorder]))
    # after the first step (and each episode start) the lagged logic loss 0.5 ≥ τ_logic forces HOLD
    later = [a for a, info in zip(recorder.actions[1:], recorder.infos[:-1]) if not info.get("TimeLimit.truncated")]
    assert set(later) == {HOLD}
    rows = [info["go_nogo"] for info in recorder.infos]
    assert all(row["final"] == a for row, a in zip(rows, recorder.actions))
    assert {row["logic_source"] for row in rows[1:]} == {"info"}
    json.dumps(rows)  # audit-ready
    assert model.policy._info_logic_loss is None  # cleared at the end of training


def test_fifo_keeps_the_newest_steps_in_order() -> None:
    cb = BasalGangliaCallback(buffer_size=5)
    rows = []
    for step, n in enumerate((2, 2, 3, 7, 1)):  # wraps around, and once more rows than capacity in one call
        ids = np.arange(len(rows), len(rows) + n)
        rows.extend(ids.tolist())
        obs = {"x": np.stack([ids, -ids], axis=1).astype(np.float32), "m": ids[:, None].astype(np.float32)}
        cb._store(obs, ids.astype(np.int64), (ids % 2).astype(np.float32))
        newest = rows[-5:]
        assert cb.size == min(len(rows), 5)
        held = np.roll(cb._actions, -cb._pos) if cb._full else cb._actions[: cb._pos]
        assert held.tolist() == newest, step
        assert sorted(cb._obs["x"][: cb.size, 0].tolist()) == sorted(newest)
        np.testing.assert_array_equal(cb._obs["x"][: cb.size, 1], -cb._obs["x"][: cb.size, 0])
        np.testing.assert_array_equal(cb._obs["m"][: cb.size, 0], cb._actions[: cb.size])
        np.testing.assert_array_equal(cb._labels[: cb.size], cb._actions[: cb.size] % 2)


def test_adaptive_reward_threshold_is_k_sample_std_of_earlier_rewards() -> None:
    cb = BasalGangliaCallback(reward_std_k=2.0)
    rng = np.random.default_rng(0)
    seen: list[float] = []
    for n in (1, 1, 3, 4, 2):
        rewards = rng.normal(size=n)
        threshold = cb._threshold(rewards)
        if len(seen) < 2:
            assert threshold is None
        else:
            assert threshold == pytest.approx(2.0 * np.std(seen, ddof=1), rel=1e-12)
        seen.extend(rewards.tolist())
    assert BasalGangliaCallback(reward_threshold=0.5)._threshold(np.ones(3)) == 0.5


def test_callback_needs_basal_ganglia_policy(losing_env_cls: Any) -> None:
    model = PPO("MultiInputPolicy", losing_env_cls(), n_steps=16, batch_size=16)
    with pytest.raises(TypeError, match=re.escape(policies._NOT_BG_POLICY.format("MultiInputActorCriticPolicy"))):
        model.learn(16, callback=BasalGangliaCallback())




@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, bad_value("batch_size", "an int >= 1", 0)),
        ({"learning_starts": -1}, bad_value("learning_starts", "an int >= 0", -1)),
        ({"reward_threshold": -1.0}, bad_value("reward_threshold", "a finite number >= 0 or None", -1.0)),
        ({"reward_std_k": 0.0}, bad_value("reward_std_k", "a finite number > 0", 0.0)),
        ({"slippage_ratio": float("inf")}, bad_value("slippage_ratio", "a finite number > 0", float("inf"))),
        ({"violation_threshold": 1.0}, bad_value("violation_threshold", "a number in [0, 1)", 1.0)),
        ({"violation_threshold": float("nan")}, bad_value("violation_threshold", "a number in [0, 1)", float("nan"))),
    ],
)
def test_bad_callback_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        BasalGangliaCallback(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [  # ValueError before
        ({"train_freq": 1.5}, bad_value("train_freq", "an int >= 1", 1.5)),
        ({"buffer_size": True}, bad_value("buffer_size", "an int >= 1", True)),
        ({"reward_threshold": "0.5"}, bad_value("reward_threshold", "a finite number >= 0 or None", "0.5")),
        ({"violation_threshold": False}, bad_value("violation_threshold", "a number in [0, 1)", False)),
    ],
)
def test_callback_arguments_of_the_wrong_type(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        BasalGangliaCallback(**kwargs)
