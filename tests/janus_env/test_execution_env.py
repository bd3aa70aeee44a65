"""Janus-Execution-v0 and the Almgren–Chriss helpers."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import envs_registry  # noqa: F401
from agents.baselines import AlmgrenChrissPolicy, TWAPPolicy
from janus_env.execution_env import JanusExecutionEnv, almgren_chriss_kappa, almgren_chriss_schedule


def test_schedule_endpoints_monotone_and_twap_limit() -> None:
    x = almgren_chriss_schedule(1000.0, 20, 0.1)
    assert x[0] == pytest.approx(1000.0) and x[-1] == pytest.approx(0.0)
    assert np.all(np.diff(x) < 0)
    linear = almgren_chriss_schedule(1000.0, 20, 0.0)
    np.testing.assert_allclose(linear, 1000.0 * (1 - np.arange(21) / 20))
    urgent = almgren_chriss_schedule(1000.0, 20, 0.5)
    assert urgent[1] < x[1] < linear[1]  # more risk aversion sells faster early


def test_kappa_formula() -> None:
    kappa = almgren_chriss_kappa(risk_aversion=1e-6, sigma=0.05, eta=1e-4)
    assert np.cosh(kappa) == pytest.approx(1 + 1e-6 * 0.05**2 / (2 * 1e-4))
    with pytest.raises(ValueError, match=re.escape("Expected `eta` to be a finite number > 0, got 0.0")):
        almgren_chriss_kappa(1.0, 1.0, 0.0)
    with pytest.raises(TypeError, match=re.escape("Expected `sigma` to be a finite number >= 0, got True")):
        almgren_chriss_kappa(1.0, True, 1.0)


def _run(env, policy, seed: int) -> tuple[float, dict]:
    obs, info = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action, _ = policy.predict(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    return total, info


@pytest.mark.parametrize("policy_cls", [TWAPPolicy, AlmgrenChrissPolicy])
def test_schedules_liquidate_everything_by_the_deadline(policy_cls) -> None:
    env = gym.make("Janus-Execution-v0", shares=2000, horizon=30)
    total, info = _run(env, policy_cls(30), seed=0)
    assert info["remaining"] == 0
    assert info["step"] <= 30
    assert np.isfinite(total)


@pytest.mark.parametrize("name", ["twap", "almgren_chriss"])
def test_schedules_on_the_discrete_grid(name: str) -> None:
    """make_baseline gives the discrete env bin indices: the nearest bin of the continuous schedule's fraction."""
    from agents.baselines import make_baseline

    env = gym.make("Janus-Execution-v0", shares=2000, horizon=30, action_type="discrete", n_bins=11)
    policy = make_baseline(name, env)
    continuous = (TWAPPolicy if name == "twap" else AlmgrenChrissPolicy)(30)
    obs, _ = env.reset(seed=0)
    done, sold = False, []
    while not done:
        action, _ = policy.predict(obs)
        fraction = (float(continuous.predict(obs)[0][0]) + 1.0) / 2.0  # the continuous schedule's fraction
        assert env.action_space.contains(action) and int(action) == round(fraction * 10)
        obs, _, terminated, truncated, info = env.step(action)
        sold.append(int(action))
        done = terminated or truncated
    assert info["remaining"] == 0 and sold[-1] == 10  # the deadline sells the rest


def test_reward_is_minus_shortfall_in_bps() -> None:
    env = gym.make("Janus-Execution-v0", shares=2000, horizon=10)
    _, info = env.reset(seed=1)
    assert info["remaining"] == 2000 and info["position"] == 2000
    _, reward, terminated, _, info = env.step(np.array([1.0], dtype=np.float32))  # sell everything now
    assert terminated and info["remaining"] == 0
    expected = -(2000 * (info["arrival_price"] - info["exec_price"]) + info["fees"]) / (2000 * info["arrival_price"]) * 1e4
    assert reward == pytest.approx(expected)
    assert reward < 0  # selling a block at market walks the book


def test_discrete_variant_and_bad_arguments() -> None:
    env = gym.make("Janus-Execution-v0", action_type="discrete", n_bins=5, horizon=8)
    env.reset(seed=0)
    _, _, _, _, info = env.step(2)  # sell half
    assert info["remaining"] == 2500
    with pytest.raises(ValueError, match=re.escape("Expected `shares` to be a positive multiple of `lot`, got 150 (lot=100)")):
        gym.make("Janus-Execution-v0", shares=150)
    with pytest.raises(ValueError, match=re.escape("Expected `horizon` to be an int >= 1, got 0")):
        gym.make("Janus-Execution-v0", horizon=0)
    with pytest.raises(ValueError, match=re.escape(  # the recorded-data scenario is Janus-LOB-v0's only
            "Expected `scenario` to be one of ('flash_crash', 'gbm', 'high_vol', 'ou', 'regime', 'squeeze'), "
            "got 'historical'")):
        gym.make("Janus-Execution-v0", scenario="historical")
    with pytest.raises(TypeError, match=re.escape("Expected `horizon` to be an int >= 1, got 8.0")):
        gym.make("Janus-Execution-v0", horizon=8.0)
    with pytest.raises(ValueError, match=re.escape(
            "Expected `action_type` to be one of ('continuous', 'discrete'), got 'sized'")):  # fmt: skip
        gym.make("Janus-Execution-v0", action_type="sized")
    with pytest.raises(ValueError, match=re.escape("Expected `render_mode` to be one of ('ansi'), got 'human'")):
        JanusExecutionEnv(render_mode="human")  # not through gym.make, which warns about the mode first
