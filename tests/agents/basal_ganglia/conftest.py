"""Toy market and model factory shared by the basal-ganglia tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from agents.basal_ganglia import (
    BasalGangliaActorCriticPolicy,
    BasalGangliaDQN,
    BasalGangliaDQNPolicy,
    BasalGangliaMaskablePolicy,
    BasalGangliaQRDQN,
    BasalGangliaQRDQNPolicy,
)


class LosingEnv(gym.Env):
    """Toy market: HOLD pays 0, BUY +0.1, SELL always −1; observations are noise plus a ``market`` key."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, episode_steps: int = 50) -> None:
        self.observation_space = spaces.Dict({
            "x": spaces.Box(-1.0, 1.0, (4,), np.float32),
            "market": spaces.Box(
                np.array([0.0, 0.0, 0.0, -1.0], np.float32), np.array([1.0, 10.0, 10.0, 1.0], np.float32)
            ),
        })
        self.action_space = spaces.Discrete(3)
        self.episode_steps = episode_steps
        self.executed = np.zeros(3, dtype=np.int64)
        self.allow_hold = True
        self._t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        r = self.np_random
        market = np.array([r.uniform(), r.uniform(0, 5), r.uniform(0, 3), r.uniform(-1, 1)], np.float32)
        return {"x": r.uniform(-1, 1, 4).astype(np.float32), "market": market}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        a = int(action)
        self.executed[a] += 1
        self._t += 1
        reward = {0: 0.0, 1: 0.1, 2: -1.0}[a]
        return self._obs(), reward, False, self._t >= self.episode_steps, {"exec_qty": float(a != 0)}

    def action_masks(self) -> np.ndarray:
        return np.array([self.allow_hold, True, True])

    def sample_obs(self, n: int, seed: int = 123) -> dict[str, np.ndarray]:
        self.reset(seed=seed)
        rows = [self._obs() for _ in range(n)]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def make_model(algo: str, env: gym.Env | None = None, *, seed: int = 0, **policy_kwargs: Any) -> Any:
    """A small model of ``algo`` (``dqn``, ``qrdqn``, ``ppo``, ``maskable``) with a basal-ganglia policy."""
    env = env if env is not None else LosingEnv()
    kwargs: dict[str, Any] = {"net_arch": [16], "nogo_lr": 1e-2, **policy_kwargs}
    if algo == "dqn":
        return BasalGangliaDQN(BasalGangliaDQNPolicy, env, learning_starts=100, buffer_size=2000,
                               policy_kwargs=kwargs, seed=seed)
    if algo == "qrdqn":
        return BasalGangliaQRDQN(BasalGangliaQRDQNPolicy, env, learning_starts=100, buffer_size=2000,
                                 policy_kwargs={"n_quantiles": 5, **kwargs}, seed=seed)
    if algo == "ppo":
        return PPO(BasalGangliaActorCriticPolicy, env, n_steps=64, batch_size=32, n_epochs=2,
                   policy_kwargs=kwargs, seed=seed)
    if algo == "maskable":
        return MaskablePPO(BasalGangliaMaskablePolicy, env, n_steps=64, batch_size=32, n_epochs=2,
                           policy_kwargs=kwargs, seed=seed)
    raise AssertionError(algo)


def force_go(policy: Any, action: int) -> None:
    """Make the Go pathway prefer ``action``, then the other non-HOLD action (so the gate must stop it)."""
    if isinstance(policy, BasalGangliaDQNPolicy):
        last = policy.q_net.q_net[-1]
    elif isinstance(policy, BasalGangliaQRDQNPolicy):
        last = policy.quantile_net.quantile_net[-1]
    else:
        last = policy.action_net
    with th.no_grad():
        last.weight.zero_()
        bias = th.zeros_like(last.bias).reshape(-1, policy.action_space.n)
        bias[:, action] = 50.0
        bias[:, 3 - action if action in (1, 2) else 1] = 10.0
        last.bias.copy_(bias.reshape(-1))


def set_nogo(policy: Any, bias: list[float]) -> None:
    """No-Go probabilities ``sigmoid(bias)`` everywhere."""
    with th.no_grad():
        policy.nogo_net.linear.weight.zero_()
        policy.nogo_net.linear.bias.copy_(th.tensor(bias))


class ActionRecorder(BaseCallback):
    """Keeps the executed actions and the infos every step sees."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: list[int] = []
        self.infos: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        self.actions.extend(int(a) for a in np.asarray(self.locals["actions"]).reshape(-1))
        self.infos.extend(self.locals["infos"])
        return True


@pytest.fixture(params=["dqn", "qrdqn", "ppo", "maskable"])
def algo(request: pytest.FixtureRequest) -> str:
    """Each algorithm family :func:`make_model` builds: a test that takes ``algo`` runs once per family (a test that
    needs fewer parametrizes ``algo`` itself)."""
    return request.param


@pytest.fixture
def losing_env_cls() -> type[LosingEnv]:
    """The toy market class (subclass it for variants)."""
    return LosingEnv


@pytest.fixture
def sample_obs() -> Callable[..., dict[str, np.ndarray]]:
    """``sample_obs(n, seed=123)``: a batch of ``n`` toy-market observations."""
    return lambda n, seed=123: LosingEnv().sample_obs(n, seed)


@pytest.fixture
def model_factory() -> Callable[..., Any]:
    """:func:`make_model`."""
    return make_model


@pytest.fixture
def go_forcer() -> Callable[[Any, int], None]:
    """:func:`force_go`."""
    return force_go


@pytest.fixture
def nogo_setter() -> Callable[[Any, list[float]], None]:
    """:func:`set_nogo`."""
    return set_nogo


@pytest.fixture
def recorder() -> ActionRecorder:
    """A fresh :class:`ActionRecorder`."""
    return ActionRecorder()
