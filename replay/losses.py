"""The prioritized DQN loss and its TD errors, shared by ``agents.JanusDQN`` and SWR replay.

One definition of the 1-step TD target, of ``|δ|`` (the priority a replayed
transition gets back) and of the IS-weighted loss with the optional logic
term, so that a transition replayed during sleep is judged exactly as it is
during training.

* ``y = r + (1 − d)·γ·max_a' Q_target(s', a')`` (Mnih et al. 2015), with
  ``samples.discounts`` replacing ``γ`` when present, exactly as SB3's DQN;
* ``δ = y − Q(s, a)``;
* ``L = mean_i w_i·Huber(δ_i) + λ_logic·L_logic`` (Schaul et al. 2016, Alg. 1 line 11; JANUS
  ``L = L_RL + λ·L_logic``), with the logical loss the expected rule violation of the policy's action
  distribution in each replayed state::

      L_logic = mean_i w_i · Σ_a π(a|s_i) · (1 − SatAgg(s_i, a)),    π(·|s) = softmax(Q(s, ·))

  ``SatAgg(s_i, a)`` is the shield's knowledge base on every action of the state the transition was decided in,
  stored with it (``samples.action_sat``); it is a constant, so the gradient flows through π: Q-values of
  actions the rules reject are pushed down relative to those they accept (the Boltzmann distribution of the
  Q-values is the differentiable stand-in for the greedy policy *(ours)*). Without stored SatAgg (continuous
  actions, no shield) there is no logic term; the LTN violation also enters learning through the priority.

The expected violation of a policy, ``mean_i w_i · Σ_a π(a|s_i) · (1 − SatAgg(s_i, a))``, is written once
(:func:`expected_violation`): janus-dqn applies it to the Boltzmann policy of its Q-values, janus-ppo
(:class:`agents.basal_ganglia.ppo.JanusPPO`) to its own masked action distribution with ``w_i = 1``.
"""

from __future__ import annotations

from typing import Any

import torch as th
from torch.nn import functional as F

__all__ = [
    "dqn_abs_td",
    "dqn_q_and_target",
    "dqn_q_values_and_target",
    "expected_violation",
    "logic_penalty",
    "prioritized_dqn_loss",
]


def dqn_q_and_target(model: Any, samples: Any) -> tuple[th.Tensor, th.Tensor]:
    """Current ``Q(s, a)`` (with grad) and the 1-step target ``y`` (no grad), both ``(B, 1)``.

    (:func:`prioritized_dqn_loss` also needs every action's Q-value: :func:`dqn_q_values_and_target`.)

    ``y = r + (1 − d)·γ·max_a' Q_target(s', a')`` (Mnih et al. 2015), with
    ``samples.discounts`` replacing ``γ`` when present, exactly as SB3's DQN.

    Args:
        model: a DQN-family SB3 model (``q_net``, ``q_net_target``, ``gamma``).
        samples: a replay sample (``observations``, ``actions``,
            ``next_observations``, ``dones``, ``rewards``, ``discounts``).
    """
    q_values, target = dqn_q_values_and_target(model, samples)
    return th.gather(q_values, dim=1, index=samples.actions.long()), target


def dqn_q_values_and_target(model: Any, samples: Any) -> tuple[th.Tensor, th.Tensor]:
    """``Q(s, ·)`` of every action (with grad, ``(B, A)``) and the 1-step target ``y`` (no grad, ``(B, 1)``)."""
    discounts = samples.discounts if samples.discounts is not None else model.gamma
    with th.no_grad():
        next_q = model.q_net_target(samples.next_observations).max(dim=1)[0].reshape(-1, 1)
        target = samples.rewards + (1 - samples.dones) * discounts * next_q
    return model.q_net(samples.observations), target


def dqn_abs_td(model: Any, samples: Any) -> th.Tensor:
    """``|δ_i| = |y_i − Q(s_i, a_i)|`` of every row, shape ``(B,)``, computed without gradient."""
    with th.no_grad():
        current, target = dqn_q_and_target(model, samples)
    return (target - current).abs().reshape(-1)


def logic_penalty(q_values: th.Tensor, samples: Any) -> th.Tensor | None:
    """``mean_i w_i · Σ_a softmax(Q(s_i, ·))_a · (1 − SatAgg(s_i, a))`` (None without ``samples.action_sat``).

    Args:
        q_values: ``(B, A)`` Q-values of the replayed states (with grad).
        samples: a prioritized sample with ``weights`` and ``action_sat`` ``(B, A)``.
    """
    action_sat = getattr(samples, "action_sat", None)
    if action_sat is None:
        return None
    return expected_violation(th.softmax(q_values, dim=1), action_sat, samples.weights)


def expected_violation(probs: th.Tensor, action_sat: th.Tensor, weights: th.Tensor | None = None) -> th.Tensor:
    """The logical loss of a policy: ``L_logic = mean_i w_i · Σ_a π(a|s_i) · (1 − SatAgg(s_i, a))``.

    The expected rule violation ``1 − SatAgg`` (the LTN logical loss, Badreddine et al. 2022, "Logic Tensor
    Networks", AIJ 303) of the action drawn from ``π(·|s_i)``; ``SatAgg`` is a constant, so the gradient flows
    through ``π`` only. Actions a mask removes (``π = 0``) add nothing.

    Args:
        probs: ``(B, A)`` action probabilities ``π(a|s_i)`` (rows sum to 1, with grad).
        action_sat: ``(B, A)`` SatAgg of every action in each row's state, in [0, 1].
        weights: ``(B,)`` or ``(B, 1)`` per-row weights ``w_i`` (IS weights of a prioritized sample);
            None for ``w_i = 1``.

    Returns:
        The scalar ``L_logic``.
    """
    per_row = (probs * (1.0 - action_sat)).sum(dim=1, keepdim=True)
    if weights is not None:
        per_row = weights.reshape(-1, 1) * per_row
    return per_row.mean()


def prioritized_dqn_loss(
    model: Any, samples: Any, lambda_logic: float = 0.0
) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
    """IS-weighted Huber TD loss, plus the logic penalty when the policy provides one.

    ``L = mean_i w_i·Huber(δ_i) + λ_logic·mean_i w_i·(1 − SatAgg_i)``, with
    ``δ_i = y_i − Q(s_i, a_i)`` (Schaul et al. 2016, Alg. 1 line 11) and the logical loss of
    :func:`logic_penalty`, added when ``lambda_logic > 0`` and the sample carries ``action_sat``.

    Args:
        model: a DQN-family SB3 model (``q_net``, ``q_net_target``, ``gamma``, ``policy``).
        samples: a prioritized sample with ``weights``.
        lambda_logic: weight of the logic penalty.

    Returns:
        ``(loss, abs_td, logic)``: the scalar loss, ``|δ|`` of shape ``(B,)``
        (detached) and the weighted logic penalty (``None`` when absent).
    """
    q_values, target = dqn_q_values_and_target(model, samples)
    current = th.gather(q_values, dim=1, index=samples.actions.long())
    weights = samples.weights.reshape(-1, 1)
    loss = (weights * F.smooth_l1_loss(current, target, reduction="none")).mean()
    logic = logic_penalty(q_values, samples) if lambda_logic > 0.0 else None
    if logic is not None:
        loss = loss + lambda_logic * logic
    abs_td = (target - current).detach().abs().reshape(-1)
    return loss, abs_td, logic
