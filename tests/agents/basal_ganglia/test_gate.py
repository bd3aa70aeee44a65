"""The gate: Go scores of every policy family, the No-Go head's normaliser, the final-action rule."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch as th
from sb3_contrib import QRDQN, MaskablePPO
from stable_baselines3 import DQN, PPO, SAC

from agents.basal_ganglia import (
    HOLD,
    TAU_LOGIC,
    TAU_VETO,
    NoGoHead,
    basal_ganglia_gate,
    gate,
    gate_arrays,
    go_scores,
)
from agents.sequential import sequential


def test_gate_keeps_proposal_unless_vetoed() -> None:
    proposed = th.tensor([1, 2, 2, 0, 1, 2])
    nogo = th.tensor([
        [0.0, 0.1, 0.1],  # 1 allowed
        [0.0, 0.1, 0.7],  # NoGo == τ_veto → vetoed (≥)
        [0.0, 0.1, 0.69],  # just below → kept
        [0.99, 0.9, 0.9],  # HOLD is never vetoed
        [0.0, 0.1, 0.1],  # logic loss ≥ τ_logic → vetoed
        [0.0, 0.1, 0.9],  # vetoed, but the mask forbids HOLD
    ])
    logic = th.tensor([0.0, 0.0, 0.0, 0.5, 0.1, 0.0])
    hold_allowed = th.tensor([True, True, True, True, True, False])
    final, vetoed = basal_ganglia_gate(proposed, nogo, logic, hold_allowed=hold_allowed)
    assert final.tolist() == [1, 0, 2, 0, 0, 2]
    assert vetoed.tolist() == [False, True, False, False, True, False]
    assert (TAU_VETO, TAU_LOGIC, HOLD) == (0.7, 0.1, 0)



@pytest.mark.parametrize(("tau_veto", "tau_logic", "hold"), [(0.7, 0.1, 0), (0.3, 0.25, 2), (1e-3, 1 / 3, 1)])
def test_the_numpy_gate_is_the_tensor_gate_on_a_batch_of_boundaries(tau_veto, tau_logic, hold) -> None:
    """``gate_arrays`` (the policies' decisions) against ``basal_ganglia_gate`` (the ONNX graph's) on one batch
    of every proposal × No-Go one float32 step below / at / above τ_veto (and the float64 τ) × the same around
    τ_logic × HOLD allowed or forbidden."""
    def near(tau: float) -> list[float]:
        f32 = np.float32(tau)
        return [float(np.nextafter(f32, np.float32(-1))), float(f32), float(np.nextafter(f32, np.float32(2))), tau]

    rows = [(a, n, lg, ok) for a in range(3) for n in near(tau_veto) for lg in near(tau_logic) for ok in (True, False)]
    proposed = np.array([r[0] for r in rows], dtype=np.int64)
    nogo = np.full((len(rows), 3), 0.5, dtype=np.float32)
    nogo[np.arange(len(rows)), proposed] = [r[1] for r in rows]
    logic = np.array([r[2] for r in rows], dtype=np.float32)
    allowed = np.array([r[3] for r in rows])
    settings = {"tau_veto": tau_veto, "tau_logic": tau_logic, "hold_action": hold}
    for mask in (None, allowed):
        final, vetoed = gate_arrays(proposed, nogo, logic, hold_allowed=mask, **settings)
        want_final, want_vetoed = basal_ganglia_gate(th.from_numpy(proposed), th.from_numpy(nogo),
                                                     th.from_numpy(logic),
                                                     hold_allowed=None if mask is None else th.from_numpy(mask),
                                                     **settings)
        assert final.dtype == np.int64 and vetoed.dtype == np.bool_
        assert final.tolist() == want_final.tolist() and vetoed.tolist() == want_vetoed.tolist()
        assert 0 < vetoed.sum() < len(rows)  # both outcomes occur: the comparison is exercised


@pytest.mark.parametrize("gated", [True, False])
def test_go_scores_are_the_algorithms_own_head(
    algo: str, gated: bool, model_factory: Any, sample_obs: Any, losing_env_cls: Any, sb3_go_scores: Any
) -> None:
    """One Go computation for gated and plain policies, equal to SB3's own forward pass."""
    if gated:
        policy = model_factory(algo).policy
    else:
        env = losing_env_cls()
        cls = {"dqn": DQN, "qrdqn": QRDQN, "ppo": PPO, "maskable": MaskablePPO}[algo]
        kwargs = {"buffer_size": 100} if algo in ("dqn", "qrdqn") else {"n_steps": 16, "batch_size": 16}
        policy = cls("MultiInputPolicy", env, policy_kwargs={"net_arch": [16]}, seed=0, **kwargs).policy
    obs, _ = policy.obs_to_tensor(sample_obs(16))
    with th.no_grad():
        go = go_scores(policy, obs)
        expected = sb3_go_scores(policy, obs)
    assert go.shape == (16, 3)
    if algo in ("ppo", "maskable"):
        go = th.log_softmax(go, dim=1)
    th.testing.assert_close(go, expected, rtol=0.0, atol=1e-6)
    if gated:
        with th.no_grad():
            go_pair, _ = policy.go_nogo(obs)
        assert th.equal(go_pair, go_scores(policy, obs))


def test_sequential_is_the_module_call_bit_for_bit_and_runs_hooks() -> None:
    """``agents.sequential.sequential`` (the decision's Q-MLP without module calls) gives ``net(x)``'s floats, with
    any layer kind, and a layer with a forward hook is called as itself."""
    th.manual_seed(0)
    net = th.nn.Sequential(th.nn.Linear(7, 16), th.nn.ReLU(), th.nn.Linear(16, 16), th.nn.Tanh(), th.nn.Linear(16, 3))
    x = th.randn(5, 7)
    assert th.equal(sequential(net, x), net(x))
    seen = []
    net[2].register_forward_hook(lambda module, args, out: seen.append(out.shape) or out * 2.0)
    assert th.equal(sequential(net, x), net(x)) and seen == [(5, 16), (5, 16)]


def test_go_scores_need_a_value_or_actor_head() -> None:
    sac = SAC("MlpPolicy", "Pendulum-v1", buffer_size=100, policy_kwargs={"net_arch": [8]})
    with pytest.raises(TypeError, match=re.escape(gate._NO_GO_HEAD.format("SACPolicy"))):
        go_scores(sac.policy, th.zeros((1, 3)))


def test_nogo_normaliser_tracks_mean_and_variance_of_its_inputs() -> None:
    head = NoGoHead(features_dim=3, n_actions=2)
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=2.0, scale=3.0, size=(n, 5)).astype(np.float32) for n in (1, 7, 64, 3)]
    for b in batches:
        head.update_normalizer(th.as_tensor(b[:, :3]), th.as_tensor(b[:, 3:]))
    seen = np.concatenate(batches).astype(np.float64)
    np.testing.assert_allclose(head.input_mean.numpy(), seen.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(head.input_var.numpy(), seen.var(axis=0), rtol=1e-5)
    assert float(head.input_count) == seen.shape[0]
    x = th.as_tensor(seen[:4], dtype=th.float32)
    z = head.normalized_inputs(x[:, :3], x[:, 3:])
    expected = np.clip((seen[:4] - seen.mean(axis=0)) / np.sqrt(seen.var(axis=0) + 1e-4), -10, 10)
    np.testing.assert_allclose(z.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_nogo_head_starts_at_its_bias() -> None:
    head = NoGoHead(features_dim=4, n_actions=3, init_bias=-3.0)
    probs = head(th.randn(5, 4), th.randn(5, 2))
    th.testing.assert_close(probs, th.full((5, 3), 1.0 / (1.0 + float(np.exp(3.0)))))
