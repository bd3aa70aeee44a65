"""MarketConfig refuses what would break the simulator later: counts that are not ints, NaN, out-of-range values."""

from __future__ import annotations

import re
from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest

import envs_registry  # noqa: F401 - registers Janus-LOB-v0
from janus_env.checks import bad_value
from janus_env.config import MarketConfig


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        # a float count used to put the observation outside its space (1.5 steps) or divide by zero in numba
        ({"episode_steps": 1.5}, TypeError, bad_value("episode_steps", "an int >= 1", 1.5)),
        ({"vpin_n_buckets": 0.5}, TypeError, bad_value("vpin_n_buckets", "an int >= 1", 0.5)),
        ({"window": 32.0}, TypeError, bad_value("window", "an int >= 1", 32.0)),
        ({"mm_size": True}, TypeError, bad_value("mm_size", "an int >= 0", True)),
        ({"n_ticks": 4096.0}, TypeError, bad_value("n_ticks", "an int >= 64", 4096.0)),
        ({"warmup": -1}, ValueError, bad_value("warmup", "an int >= 0", -1)),
        ({"drift": float("nan")}, ValueError, bad_value("drift", "a finite number", float("nan"))),
        ({"drift": float("inf")}, ValueError, bad_value("drift", "a finite number", float("inf"))),
        ({"sigma": float("nan")}, ValueError, bad_value("sigma", "a finite number >= 0", float("nan"))),
    ],
)
def test_bad_fields(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        MarketConfig(**kwargs)
    with pytest.raises(error, match=re.escape(message)):
        gym.make("Janus-LOB-v0", **kwargs)  # the env's keyword arguments go through the same checks


def test_numpy_ints_and_negative_drift_are_fine() -> None:
    config = MarketConfig(episode_steps=np.int64(50), window=np.int32(16), drift=-0.001)
    assert config.episode_steps == 50 and config.drift == -0.001
    ints = {f.name for f in fields(MarketConfig) if f.type == "int"}
    assert {"episode_steps", "window", "n_levels", "vpin_n_buckets", "warmup", "n_ticks", "capacity"} <= ints
