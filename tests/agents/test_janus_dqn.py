"""JanusDQN: prioritized buffer by default, IS-weighted loss, priority refresh, logging."""

from __future__ import annotations

import copy
import csv
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from torch.nn import functional as F

from agents import JanusDQN
from agents import janus_dqn
from janus_env.checks import BAD_VALUE
from replay import PrioritizedDictReplayBuffer, PrioritizedReplayBuffer


def make_model(env: Any = "CartPole-v1", **kwargs: Any) -> JanusDQN:
    params: dict[str, Any] = dict(
        learning_starts=200,
        buffer_size=5000,
        learning_rate=1e-3,
        target_update_interval=250,
        policy_kwargs={"net_arch": [64, 64]},
        seed=0,
        device="cpu",
    )
    params.update(kwargs)
    return JanusDQN("MultiInputPolicy" if isinstance(env, SimpleMultiObsEnv) else "MlpPolicy", env, **params)


def test_default_buffer_is_prioritized_and_configured() -> None:
    model = make_model(lambda_logic=1.5, seed=4)
    assert type(model.replay_buffer) is PrioritizedReplayBuffer
    assert model.replay_buffer.lambda_logic == 1.5
    assert model.replay_buffer_kwargs["seed"] == 4
    dict_model = make_model(SimpleMultiObsEnv(random_start=False))
    assert type(dict_model.replay_buffer) is PrioritizedDictReplayBuffer


def test_trains_and_refreshes_priorities(tmp_path: Any) -> None:
    model = make_model()
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(2000, log_interval=1)
    buffer = model.replay_buffer
    priorities = buffer.priorities
    # every transition enters at the running max; replayed ones are re-scored from |δ|
    assert (priorities < buffer.max_priority).mean() > 0.5
    assert len(np.unique(priorities)) > 100
    assert buffer.beta == pytest.approx(1.0, abs=0.01)  # annealed by progress
    samples = buffer.sample(256)
    assert float(samples.weights.min()) > 0.0 and float(samples.weights.max()) <= 1.0
    with open(tmp_path / "progress.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/per_beta")]
    assert rows, "train/per_beta was never logged"
    betas = [float(row["train/per_beta"]) for row in rows]
    assert betas == sorted(betas) and 0.4 <= betas[0] < betas[-1] <= 1.0
    assert all(float(row["train/per_mean_priority"]) > 0 for row in rows)
    assert "train/logic_loss" not in rows[0]  # MlpPolicy has no differentiable SatAgg


def _fixed_batch(model: JanusDQN, monkeypatch: pytest.MonkeyPatch, weights: float | None = None) -> Any:
    model.learning_starts = 10**9
    model.learn(300)
    samples = model.replay_buffer.sample(32)
    if weights is not None:
        samples = samples._replace(weights=th.full_like(samples.weights, weights))
    monkeypatch.setattr(model.replay_buffer, "sample", lambda *args, **kwargs: samples)
    return samples


@pytest.mark.parametrize(("weight", "changes"), [(0.0, False), (1.0, True)])
def test_is_weights_scale_the_loss(monkeypatch: pytest.MonkeyPatch, weight: float, changes: bool) -> None:
    model = make_model()
    _fixed_batch(model, monkeypatch, weights=weight)
    before = [p.detach().clone() for p in model.q_net.parameters()]
    model.train(gradient_steps=1, batch_size=32)
    after = list(model.q_net.parameters())
    assert any(not th.equal(a, b) for a, b in zip(before, after, strict=True)) is changes


def test_loss_and_priorities_match_manual_computation(monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model(lambda_logic=2.0)
    samples = _fixed_batch(model, monkeypatch)
    buffer = model.replay_buffer
    with th.no_grad():
        next_q = model.q_net_target(samples.next_observations).max(dim=1)[0].reshape(-1, 1)
        target = samples.rewards + (1 - samples.dones) * model.gamma * next_q
        current = model.q_net(samples.observations).gather(1, samples.actions.long())
        expected_loss = (samples.weights * F.smooth_l1_loss(current, target, reduction="none")).mean()
    td = (target - current).abs().numpy()[:, 0]
    model.train(gradient_steps=1, batch_size=32)
    rows, cols = np.divmod(samples.indices, buffer.n_envs)
    expected = td + 2.0 * buffer.violations[rows, cols] + 0.5 * np.abs(buffer.rewards[rows, cols]) + buffer.eps
    np.testing.assert_allclose(buffer.priorities[samples.indices], expected, rtol=1e-5)
    assert model.logger.name_to_value["train/loss"] == pytest.approx(float(expected_loss), rel=1e-5)


def test_uniform_unit_weight_update_matches_sb3_dqn(monkeypatch: pytest.MonkeyPatch) -> None:
    """With unit IS weights JanusDQN.train takes exactly SB3 DQN.train's gradient step (same target, loss, clipping)."""
    model = make_model()
    _fixed_batch(model, monkeypatch, weights=1.0)
    before = [p.detach().clone() for p in model.q_net.parameters()]
    policy_state = copy.deepcopy(model.policy.state_dict())
    optimizer_state = copy.deepcopy(model.policy.optimizer.state_dict())
    DQN.train(model, gradient_steps=2, batch_size=32)
    expected = [p.detach().clone() for p in model.q_net.parameters()]
    assert any(not th.equal(a, b) for a, b in zip(expected, before, strict=True))  # the step did something
    model.policy.load_state_dict(policy_state)
    model.policy.optimizer.load_state_dict(optimizer_state)
    model.train(gradient_steps=2, batch_size=32)
    for got, want in zip(model.q_net.parameters(), expected, strict=True):
        th.testing.assert_close(got, want)


def test_logic_loss_only_with_stored_satagg(monkeypatch: pytest.MonkeyPatch) -> None:
    """No shield, no stored SatAgg: no logic term. With SatAgg per action the loss is trained and logged."""
    model = make_model(lambda_logic=1.0)
    samples = _fixed_batch(model, monkeypatch)
    assert model.replay_buffer.action_sat is None and samples.action_sat is None
    model.train(gradient_steps=1, batch_size=32)
    assert "train/logic_loss" not in model.logger.name_to_value
    rejected_right = th.ones((32, 2))
    rejected_right[:, 1] = 0.0  # every state: action 1 breaks a rule
    params = copy.deepcopy(model.policy.state_dict())
    optimizer = copy.deepcopy(model.policy.optimizer.state_dict())
    gaps = {}
    for name, action_sat in (("all accepted", th.ones((32, 2))), ("action 1 rejected", rejected_right)):
        model.policy.load_state_dict(params)
        model.policy.optimizer.load_state_dict(optimizer)
        monkeypatch.setattr(model.replay_buffer, "sample", lambda *args, s=action_sat, **kwargs: samples._replace(
            action_sat=s))
        model.train(gradient_steps=20, batch_size=32)
        with th.no_grad():
            q = model.q_net(samples.observations)
        gaps[name] = float((q[:, 1] - q[:, 0]).mean())
    assert 0.0 < model.logger.name_to_value["train/logic_loss"] <= 1.0
    # same batches, same start: the logical loss alone moved the rejected action's Q-value behind
    assert gaps["action 1 rejected"] < gaps["all accepted"] - 1e-3, gaps


def test_save_and_load(tmp_path: Any) -> None:
    model = make_model(lambda_logic=0.7)
    model.learn(300)
    model.save(tmp_path / "janus")
    loaded = JanusDQN.load(tmp_path / "janus", env=gym.make("CartPole-v1"), device="cpu")
    assert loaded.lambda_logic == 0.7
    assert type(loaded.replay_buffer) is PrioritizedReplayBuffer
    obs, _ = gym.make("CartPole-v1").reset(seed=0)
    assert loaded.predict(obs, deterministic=True)[0] == model.predict(obs, deterministic=True)[0]


@pytest.mark.parametrize(("value", "error"), [(-1.0, ValueError), (float("inf"), ValueError),
                                              (float("nan"), ValueError), (True, TypeError), ("2", TypeError)])
def test_bad_lambda_logic(value: Any, error: type[Exception]) -> None:
    message = BAD_VALUE.format(name="lambda_logic", expected="a finite number >= 0", value=value)
    with pytest.raises(error, match=re.escape(message)):
        make_model(lambda_logic=value)


def test_n_steps_rejected() -> None:
    with pytest.raises(ValueError, match=re.escape(janus_dqn._NO_NSTEP.format(3))):
        make_model(n_steps=3)


def test_uniform_buffer_rejected() -> None:
    with pytest.raises(TypeError, match=re.escape(janus_dqn._NOT_PRIORITIZED.format(ReplayBuffer))):
        make_model(replay_buffer_class=ReplayBuffer)


@pytest.mark.slow
def test_learns_cartpole_better_than_random() -> None:
    # rl-baselines3-zoo's DQN settings for CartPole-v1 (hyperparams/dqn.yml). The earlier ad-hoc ones
    # (train_freq=4, gradient_steps=4, target_update_interval=500, 30k steps) left the last iterate
    # oscillating between ~25 and 500, so the assertion was a coin toss: plain SB3 DQN also scored < 100.
    model = make_model(
        learning_starts=1000,
        buffer_size=100_000,
        learning_rate=2.3e-3,
        batch_size=64,
        gamma=0.99,
        train_freq=256,
        gradient_steps=128,
        target_update_interval=10,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        policy_kwargs={"net_arch": [256, 256]},
    )
    model.learn(50_000)

    def score(policy: Any) -> float:  # 50 episodes from seeded starts: a function of the policy only
        env = Monitor(gym.make("CartPole-v1"))
        env.reset(seed=1234)
        env.action_space.seed(1234)
        mean, _ = evaluate_policy(policy, env, n_eval_episodes=50, deterministic=True)
        return float(mean)

    class Random:
        def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True):
            return np.array([rng.integers(2) for _ in range(len(obs))]), None

    rng = np.random.default_rng(0)
    # this budget gives a mediocre last iterate (10-episode means of 59-178 on five seeded start sets, ~100
    # overall, for the code of 2026-12-01): the claim is "clearly better than random" (~22), not "solved"
    assert score(model) > 3 * score(Random())
