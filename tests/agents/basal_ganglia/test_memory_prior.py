"""Memory's prior on No-Go: the gate reads ``sigmoid(W·z + b + Δ)``, the record explains it, a trained agent's
decisions change where memory is sure and nowhere else."""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO

from agents.basal_ganglia import BasalGangliaActorCriticPolicy
from agents.basal_ganglia.policies import _BAD_MEMORY, _MEMORY_MISMATCH
from replay import MemoryReader, SleepConfig, SleepPhaseCallback


def _flat(obs: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(obs[k]).reshape(len(obs[k]), -1) for k in sorted(obs)], axis=1)


def test_gate_reads_nogo_with_memorys_prior(model_factory: Any, sample_obs: Any, go_forcer: Any,
                                            nogo_setter: Any) -> None:
    """No-Go = sigmoid(head logit + Δ) by hand; a prior that alone crosses τ_veto vetoes with reason "memory"."""
    model = model_factory("ppo")
    policy = model.policy
    go_forcer(policy, 2)  # propose SELL everywhere
    nogo_setter(policy, [-3.0, -3.0, 0.0])  # head alone: sigmoid(0) = 0.5 < τ_veto for SELL
    obs = sample_obs(6)
    flat = _flat(obs)
    cents = flat[:2]  # two schemas: the first two states
    counts = np.array([[30.0, 30.0, 30.0], [30.0, 30.0, 30.0]])
    outcome = np.array([[0.0, 0.0, -5.0], [0.0, 0.0, 5.0]])  # SELL bad near state 0, good near state 1
    reader = MemoryReader(cents, np.array([10, 11]), counts, outcome, 1.0, input_dim=flat.shape[1],
                          features="raw", k=1, min_similarity=0.999, weight=4.0)
    policy.set_memory(reader)
    actions, _ = model.predict(obs, deterministic=True)
    rows = policy.last_go_nogo_batch
    rec = reader.recall(flat)
    for i, row in enumerate(rows):
        expected = 1.0 / (1.0 + np.exp(-(np.array([-3.0, -3.0, 0.0]) + rec.shift[i])))
        np.testing.assert_allclose(row["nogo"], expected, rtol=1e-5)
        np.testing.assert_allclose(row["memory"]["nogo_head"], 1 / (1 + np.exp(-np.array([-3.0, -3.0, 0.0]))),
                                   rtol=1e-6)
        assert row["memory"]["ids"] == [int(v) for v in rec.ids[i] if v >= 0]
    assert rec.shift[0, 2] > 0.85 and rows[0]["vetoed"] and rows[0]["veto_reason"] == "memory"  # 0.5 → ≥ 0.7
    assert actions[0] == 0
    assert rec.shift[1, 2] < 0 and not rows[1]["vetoed"] and actions[1] == 2  # good memories: lower No-Go
    assert all(row["memory"]["ids"] == [] and not row["vetoed"] for row in rows[2:])  # nothing recalled
    np.testing.assert_array_equal(actions[2:], 2)
    policy.set_memory(None)
    model.predict(obs, deterministic=True)
    assert "memory" not in policy.last_go_nogo and not policy.last_go_nogo["vetoed"]


def test_set_memory_checks_the_reader(model_factory: Any) -> None:
    policy = model_factory("dqn").policy
    with pytest.raises(TypeError, match=re.escape(_BAD_MEMORY.format("dict"))):
        policy.set_memory({})
    reader = MemoryReader(np.ones((1, 5)), np.array([0]), np.ones((1, 3)), np.zeros((1, 3)), 1.0, input_dim=5,
                          features="raw")
    with pytest.raises(ValueError, match=re.escape(_MEMORY_MISMATCH.format(5, 3, 8, 3))):
        policy.set_memory(reader)


class SignEnv(gym.Env):
    """BUY earns +1 where ``x[0] > 0`` and loses 1 elsewhere; SELL the opposite; HOLD −0.5 (a market whose best action
    depends on the state, so memory of outcomes by state has something to say)."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Dict({
            "x": spaces.Box(-2.0, 2.0, (4,), np.float32),
            "market": spaces.Box(np.zeros(4, np.float32), np.full(4, 10.0, np.float32)),
        })
        self.action_space = spaces.Discrete(3)
        self._obs: dict[str, np.ndarray] = {}
        self._t = 0

    def _draw(self) -> dict[str, np.ndarray]:
        r = self.np_random
        x = (r.choice([-1.5, 1.5]) + r.uniform(-0.2, 0.2, 4)).astype(np.float32)  # every feature carries the sign
        return {"x": x, "market": np.array([0.5, 1.0, 1.0, 0.0], np.float32)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._t = 0
        self._obs = self._draw()
        return self._obs, {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        sign = 1.0 if self._obs["x"][0] > 0 else -1.0
        reward = {0: -0.5, 1: sign, 2: -sign}[int(action)]
        self._t += 1
        self._obs = self._draw()
        return self._obs, reward, False, self._t >= 50, {}


def test_memory_changes_a_trained_agents_decisions_where_it_is_sure() -> None:
    """A PPO agent trained briefly (its Go head has not learned the market yet, its No-Go head is untrained) sleeps
    on what it did; reading that memory with a strong prior changes its decisions on some states — each time a veto
    of a proposal whose recalled advantage is negative and which the market makes lose — and leaves the others
    alone (here: every losing proposal is stopped, no other decision moves)."""
    th.manual_seed(0)
    env = SignEnv()
    model = PPO(BasalGangliaActorCriticPolicy, env, n_steps=128, batch_size=64, n_epochs=1, learning_rate=1e-5,
                seed=0, device="cpu", policy_kwargs={"net_arch": [16]})
    config = SleepConfig(umap=False, store_device="cpu", seq_len=8, code_dim=16, encoder_steps=100,
                         memory_horizon=1, memory_weight=8.0, clock=lambda: 0.0)
    sleep = SleepPhaseCallback(config, every_n_steps=256, on_episode_end=False)
    model.learn(512, callback=sleep)
    memory = model.policy.memory
    assert memory is not None and len(memory) >= 2 and sleep.n_sleeps == 2
    probe = SignEnv()
    probe.reset(seed=7)
    states = [probe._draw() for _ in range(200)]
    obs = {k: np.stack([s[k] for s in states]) for k in states[0]}
    with_memory, _ = model.predict(obs, deterministic=True)
    rows = model.policy.last_go_nogo_batch
    model.policy.set_memory(None)
    without, _ = model.predict(obs, deterministic=True)
    model.policy.set_memory(memory)
    changed = with_memory != without
    sign = np.where(obs["x"][:, 0] > 0, 1.0, -1.0)
    losing = ((without == 1) & (sign < 0)) | ((without == 2) & (sign > 0))
    assert 0 < changed.sum() < len(states)
    np.testing.assert_array_equal(changed, losing)  # memory stops the losing proposals, and only those
    for i in np.flatnonzero(changed):
        row = rows[i]
        assert with_memory[i] == 0 and row["veto_reason"] == "memory"
        assert row["memory"]["advantage"][row["proposed"]] < 0 and row["memory"]["shift"][row["proposed"]] > 3
