"""The prioritized DQN loss and TD errors (replay.losses) against a numpy computation written from the formulas."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest
import torch as th

from replay.losses import dqn_abs_td, dqn_q_and_target, logic_penalty, prioritized_dqn_loss
from replay.types import PrioritizedReplayBufferSamples

N_ACTIONS, OBS_DIM, BATCH, GAMMA = 3, 4, 8, 0.9


def _linear(seed: int) -> th.nn.Linear:
    th.manual_seed(seed)
    return th.nn.Linear(OBS_DIM, N_ACTIONS).double()


def _model(policy: Any = None) -> Any:
    """The attributes the loss reads: ``q_net``, ``q_net_target``, ``gamma``, ``policy``."""
    return types.SimpleNamespace(q_net=_linear(0), q_net_target=_linear(1), gamma=GAMMA,
                                 policy=policy or types.SimpleNamespace())


def t(array: np.ndarray) -> th.Tensor:
    return th.as_tensor(array, dtype=th.float64)


def _samples(discounts: th.Tensor | None = None) -> PrioritizedReplayBufferSamples:
    rng = np.random.default_rng(0)
    return PrioritizedReplayBufferSamples(
        observations=t(rng.normal(size=(BATCH, OBS_DIM))),
        actions=th.as_tensor(rng.integers(N_ACTIONS, size=(BATCH, 1))),
        next_observations=t(rng.normal(size=(BATCH, OBS_DIM))),
        dones=t(rng.integers(2, size=(BATCH, 1))),
        rewards=t(rng.normal(size=(BATCH, 1))),
        discounts=discounts,
        weights=t(rng.uniform(0.2, 1.0, size=BATCH)),
        indices=np.arange(BATCH),
    )


def _numpy_td(model: Any, samples: Any, gamma: np.ndarray | float) -> np.ndarray:
    """δ_i = r_i + (1 − d_i)·γ_i·max_a' Q_target(s'_i, a') − Q(s_i, a_i), from the layer weights."""
    def q(net: th.nn.Linear, x: th.Tensor) -> np.ndarray:
        return x.numpy() @ net.weight.detach().numpy().T + net.bias.detach().numpy()

    a = samples.actions.numpy().reshape(-1)
    current = q(model.q_net, samples.observations)[np.arange(BATCH), a]
    next_max = q(model.q_net_target, samples.next_observations).max(axis=1)
    r, d = samples.rewards.numpy().reshape(-1), samples.dones.numpy().reshape(-1)
    return r + (1.0 - d) * np.asarray(gamma).reshape(-1) * next_max - current


def _huber(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 1.0, 0.5 * x**2, np.abs(x) - 0.5)


@pytest.mark.parametrize("per_sample_discount", [False, True])
def test_td_errors_and_loss_match_the_formulas(per_sample_discount: bool) -> None:
    model = _model()
    discounts = th.linspace(0.5, 0.95, BATCH, dtype=th.float64).reshape(-1, 1) if per_sample_discount else None
    samples = _samples(discounts)
    delta = _numpy_td(model, samples, discounts.numpy() if per_sample_discount else GAMMA)
    current, target = dqn_q_and_target(model, samples)
    np.testing.assert_allclose((target - current).detach().numpy().reshape(-1), delta, rtol=1e-12)
    assert current.requires_grad and not target.requires_grad
    np.testing.assert_allclose(dqn_abs_td(model, samples).numpy(), np.abs(delta), rtol=1e-12)
    loss, abs_td, logic = prioritized_dqn_loss(model, samples, lambda_logic=2.0)
    expected = np.mean(samples.weights.numpy() * _huber(delta))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(abs_td.numpy(), np.abs(delta), rtol=1e-12)
    assert logic is None and not abs_td.requires_grad  # no stored SatAgg in this sample


def test_logical_loss_is_the_expected_violation_of_the_boltzmann_policy() -> None:
    """L_logic = mean_i w_i Σ_a softmax(Q(s_i))_a (1 − SatAgg(s_i, a)), by hand; its gradient lowers the Q-values
    of the actions the rules reject."""
    model = _model()
    rng = np.random.default_rng(1)
    action_sat = rng.uniform(0.0, 1.0, size=(BATCH, N_ACTIONS))
    samples = _samples()._replace(action_sat=t(action_sat))
    q = samples.observations.numpy() @ model.q_net.weight.detach().numpy().T + model.q_net.bias.detach().numpy()
    pi = np.exp(q - q.max(axis=1, keepdims=True))
    pi /= pi.sum(axis=1, keepdims=True)
    penalty = np.mean(samples.weights.numpy() * (pi * (1.0 - action_sat)).sum(axis=1))
    q_values = model.q_net(samples.observations)
    assert logic_penalty(q_values, samples).item() == pytest.approx(penalty, rel=1e-12)
    base, _, none = prioritized_dqn_loss(model, samples, lambda_logic=0.0)
    assert none is None
    loss, _, logic = prioritized_dqn_loss(model, samples, lambda_logic=2.0)
    assert logic.item() == pytest.approx(penalty, rel=1e-12)
    assert loss.item() == pytest.approx(base.item() + 2.0 * penalty, rel=1e-12)
    assert logic_penalty(q_values, _samples()) is None  # nothing stored: no logic term

    # one action rejected (SatAgg 0), the others accepted: the gradient pushes its Q-value down, theirs up
    one_bad = np.ones((BATCH, N_ACTIONS))
    one_bad[:, 2] = 0.0
    q_leaf = q_values.detach().clone().requires_grad_(True)
    logic_penalty(q_leaf, _samples()._replace(action_sat=t(one_bad))).backward()
    assert (q_leaf.grad[:, 2] > 0).all() and (q_leaf.grad[:, :2] < 0).all()
    all_good = logic_penalty(q_values, _samples()._replace(action_sat=t(np.ones((BATCH, N_ACTIONS)))))
    assert all_good.item() == 0.0
