"""MarketConfig refuses what would break the simulator later: counts that are not ints, NaN, out-of-range values."""

from __future__ import annotations

import os
import re
from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

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


_FIELDS = [f for f in fields(MarketConfig) if f.type in ("int", "float", "float | None")]


@st.composite
def _odd_value(draw: st.DrawFn, field) -> object:
    """A value a user might pass for ``field``: the default scaled or negated, zero, its float or bool twin, NaN, ±inf,
    a string."""
    default = getattr(MarketConfig(), field.name)
    base = 1.0 if default is None or default == 0 else default
    kind = draw(st.sampled_from(["scaled"] * 6 + ["zero", "float_twin", "bool", "nan", "inf", "string"]))
    if kind == "scaled":
        value = base * draw(st.sampled_from([-1.0, 0.5, 2.0, 10.0]))
        return int(value) if field.type == "int" else value
    return {"zero": 0, "float_twin": float(base) + (0.5 if field.type == "int" else 0.0), "bool": True,
            "nan": float("nan"), "inf": float("inf"), "string": "1"}[kind]


@settings(max_examples=int(os.environ.get("JANUS_CONFIG_EXAMPLES", 150)), deadline=None)
@given(data=st.data())
def test_random_configs_are_accepted_into_the_space_or_refused_clearly(data: st.DataObject) -> None:
    """Each config is either refused with a TypeError/ValueError naming one of its fields, or yields an env whose
    observations stay inside its space (issue 15: never a crash deep inside numba, never an observation outside)."""
    chosen = data.draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=3, unique_by=lambda f: f.name))
    kwargs = {f.name: data.draw(_odd_value(f), label=f.name) for f in chosen}
    kwargs.setdefault("episode_steps", 20)
    try:
        env = gym.make("Janus-LOB-v0", **kwargs)
        obs, _ = env.reset(seed=0)
    except (TypeError, ValueError) as err:
        assert any(name in str(err) for name in kwargs), f"{kwargs}: {err}"
        event("refused")
        return
    event("accepted")
    env.action_space.seed(0)
    assert env.observation_space.contains(obs), kwargs
    for _ in range(20):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs) and np.isfinite(reward), kwargs
        if terminated or truncated:
            break
