"""make_glass_box / make_parallel_glass_box: DESIGN.md's stack, each part switched, same steps as by hand."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

import envs_registry  # noqa: F401 - registers Janus-LOB-v0
from envs_registry import make_parallel_env
from janus_env.checks import BAD_VALUE
from wrappers import (
    Amygdala,
    AuditLog,
    BreakerConfig,
    Hypothalamus,
    LTNShield,
    ParallelAmygdala,
    ParallelLTNShield,
    make_glass_box,
    make_parallel_glass_box,
    read_audit_log,
)
from wrappers.glass_box import PARTS, part_settings


def _stack(env: gym.Env) -> list[type]:
    kinds = []
    while isinstance(env, gym.Wrapper):
        kinds.append(type(env))
        env = env.env
    return kinds


def _lob(**kwargs) -> gym.Env:
    return gym.make("Janus-LOB-v0", action_type="sized", episode_steps=60, warmup=8, **kwargs).unwrapped


def test_default_is_shield_inside_breakers() -> None:
    assert _stack(make_glass_box(_lob())) == [Amygdala, LTNShield]


def test_every_part_in_design_order(tmp_path) -> None:
    env = make_glass_box(_lob(), sizing=True, shield=True, breakers=True, audit=tmp_path / "a.jsonl")
    assert _stack(env) == [AuditLog, Amygdala, LTNShield, Hypothalamus]
    assert PARTS == ("sizing", "shield", "breakers", "audit")
    env.close()


@pytest.mark.parametrize("off", [False, None])
def test_each_part_can_be_switched_off(off) -> None:
    base = _lob()
    assert make_glass_box(base, sizing=off, shield=off, breakers=off, audit=off) is base
    assert _stack(make_glass_box(_lob(), shield=off)) == [Amygdala]
    assert _stack(make_glass_box(_lob(), breakers=off)) == [LTNShield]


def test_settings_reach_each_part(tmp_path) -> None:
    env = make_glass_box(
        _lob(),
        sizing={"kelly_multiplier": 0.25},
        shield={"threshold": 0.8, "fallback": "nearest", "knowledge_base": {"wash_sale_window": 3}},
        breakers={"vol_ratio": 4.0, "fear_threshold": None},
        audit={"path": tmp_path / "a.jsonl", "buffer_size": 7},
    )
    audit, amygdala, shield, sizing = env, env.env, env.env.env, env.env.env.env
    assert audit.buffer_size == 7
    assert amygdala.config.vol_ratio == 4.0 and amygdala.config.fear_threshold is None
    assert shield.core.threshold == pytest.approx(0.8)
    assert sizing.kelly_multiplier == 0.25
    env.close()
    config = BreakerConfig(max_drawdown=0.05)
    assert make_glass_box(_lob(), shield=False, breakers=config).config is config


def test_same_steps_as_the_stack_built_by_hand(tmp_path) -> None:
    """The assembled box and the hand-built stack give the same transitions, audit records included."""
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 11, size=60)
    runs = []
    for k, build in enumerate((
        lambda env, path: AuditLog(Amygdala(LTNShield(Hypothalamus(env))), path),
        lambda env, path: make_glass_box(env, sizing=True, audit=path),
    )):
        path = tmp_path / f"{k}.jsonl"
        env = build(_lob(), path)
        obs, _ = env.reset(seed=3)
        trace = [obs["account"].copy()]
        for a in actions:
            obs, reward, terminated, truncated, info = env.step(int(a))
            trace.append((reward, info["position"], info.get("ltn", {}).get("final_action"), info["halted"]))
            if terminated or truncated:
                break
        env.close()
        frame = read_audit_log(path)
        runs.append((trace, frame.drop(columns=[c for c in ("run_id", "wall_time") if c in frame])))
    np.testing.assert_array_equal(runs[0][0][0], runs[1][0][0])
    assert runs[0][0][1:] == runs[1][0][1:]
    assert len(runs[0][1]) == len(runs[0][0]) - 1
    pd.testing.assert_frame_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"shield": "yes"}, TypeError, BAD_VALUE.format(name="shield", expected=(
            "True, False, None or a mapping of keyword arguments"), value="yes")),
        ({"breakers": 1}, TypeError, BAD_VALUE.format(name="breakers", expected=(
            "True, False, None or a mapping of keyword arguments"), value=1)),
        ({"audit": True}, ValueError, "Expected `audit` to name its file: a path, or a mapping with a 'path' key"),
        ({"breakers": {"vol_ratoi": 4}}, TypeError, "Unknown breaker argument 'vol_ratoi'"),
        ({"sizing": True, "shield": False}, ValueError, "Hypothalamus sizes `action_type` 'sized' or 'continuous'"),
    ],
)
def test_bad_switches(kwargs, error, message) -> None:
    env = gym.make("Janus-LOB-v0", episode_steps=60, warmup=8).unwrapped  # discrete: no sizing
    with pytest.raises(error, match=re.escape(message)):
        make_glass_box(env, **kwargs)


def test_part_settings() -> None:
    assert part_settings("x", None) is None and part_settings("x", False) is None
    assert part_settings("x", True) == {}
    settings = {"a": 1}
    copy = part_settings("x", settings)
    assert copy == settings and copy is not settings


def test_parallel_twin_matches_the_hand_built_stack(small_market: dict) -> None:
    assert isinstance(make_parallel_glass_box(make_parallel_env(seed=0, **small_market)), ParallelAmygdala)
    assert isinstance(make_parallel_glass_box(make_parallel_env(seed=0, **small_market), breakers=False),
                      ParallelLTNShield)
    base = make_parallel_env(seed=0, **small_market)
    assert make_parallel_glass_box(base, shield=False, breakers=None) is base
    traces = []
    for env in (ParallelAmygdala(ParallelLTNShield(make_parallel_env(seed=0, **small_market))),
                make_parallel_glass_box(make_parallel_env(seed=0, **small_market))):
        env.reset(seed=5)
        for i, agent in enumerate(env.possible_agents):
            env.action_space(agent).seed(i)
        trace = []
        for _ in range(small_market["episode_steps"]):
            if not env.agents:
                break
            actions = {a: env.action_space(a).sample() for a in env.agents}
            _, rewards, _, _, infos = env.step(actions)
            trace.append((sorted(rewards.items()), sorted((a, i.get("halted")) for a, i in infos.items())))
        traces.append(trace)
    assert traces[0] == traces[1] and traces[0]
