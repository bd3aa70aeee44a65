"""The prioritized DQN loss and its TD errors, shared by ``agents.JanusDQN`` and SWR replay.

One definition of the 1-step TD target, of ``|δ|`` (the priority a replayed
transition gets back) and of the IS-weighted loss with the optional logic
term, so that a transition replayed during sleep is judged exactly as it is
during training.

* ``y = r + (1 − d)·γ·max_a' Q_target(s', a')`` (Mnih et al. 2015), with
  ``samples.discounts`` replacing ``γ`` when present, exactly as SB3's DQN;
* ``δ = y − Q(s, a)``;
* ``L = mean_i w_i·Huber(δ_i) + λ_logic·mean_i w_i·(1 − SatAgg_i)``
  (Schaul et al. 2016, Alg. 1 line 11; JANUS logical loss ``1 − SatAgg``).

The logic term exists only when the policy has a differentiable
``logic_satisfaction(observations, actions) -> Tensor`` hook (shape ``(B,)``
or ``(B, 1)``, values in [0, 1]). The LTN violation stored with each
transition is a constant of the network parameters, so it enters learning
through the priority, not through this loss.
"""

from __future__ import annotations

from typing import Any

import torch as th
from torch.nn import functional as F

__all__ = ["dqn_abs_td", "dqn_q_and_target", "logic_penalty", "prioritized_dqn_loss"]


def dqn_q_and_target(model: Any, samples: Any) -> tuple[th.Tensor, th.Tensor]:
    """Current ``Q(s, a)`` (with grad) and the 1-step target ``y`` (no grad), both ``(B, 1)``.

    ``y = r + (1 − d)·γ·max_a' Q_target(s', a')`` (Mnih et al. 2015), with
    ``samples.discounts`` replacing ``γ`` when present, exactly as SB3's DQN.

    Args:
        model: a DQN-family SB3 model (``q_net``, ``q_net_target``, ``gamma``).
        samples: a replay sample (``observations``, ``actions``,
            ``next_observations``, ``dones``, ``rewards``, ``discounts``).
    """
    discounts = samples.discounts if samples.discounts is not None else model.gamma
    with th.no_grad():
        next_q = model.q_net_target(samples.next_observations).max(dim=1)[0].reshape(-1, 1)
        target = samples.rewards + (1 - samples.dones) * discounts * next_q
    current = th.gather(model.q_net(samples.observations), dim=1, index=samples.actions.long())
    return current, target


def dqn_abs_td(model: Any, samples: Any) -> th.Tensor:
    """``|δ_i| = |y_i − Q(s_i, a_i)|`` of every row, shape ``(B,)``, computed without gradient."""
    with th.no_grad():
        current, target = dqn_q_and_target(model, samples)
    return (target - current).abs().reshape(-1)


def logic_penalty(policy: Any, samples: Any) -> th.Tensor | None:
    """``mean_i w_i·(1 − SatAgg_i)`` from the policy's ``logic_satisfaction`` hook (None without one).

    Args:
        policy: the model's policy; the hook is ``policy.logic_satisfaction(observations, actions)``.
        samples: a prioritized sample with ``weights``.
    """
    satisfaction_fn = getattr(policy, "logic_satisfaction", None)
    if not callable(satisfaction_fn):
        return None
    satisfaction = satisfaction_fn(samples.observations, samples.actions).reshape(-1, 1)
    return (samples.weights.reshape(-1, 1) * (1.0 - satisfaction)).mean()


def prioritized_dqn_loss(
    model: Any, samples: Any, lambda_logic: float = 0.0
) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
    """IS-weighted Huber TD loss, plus the logic penalty when the policy provides one.

    ``L = mean_i w_i·Huber(δ_i) + λ_logic·mean_i w_i·(1 − SatAgg_i)``, with
    ``δ_i = y_i − Q(s_i, a_i)`` (Schaul et al. 2016, Alg. 1 line 11; JANUS
    logical loss ``1 − SatAgg``). The logic term is added only when
    ``lambda_logic > 0`` and the policy has ``logic_satisfaction`` (see
    :func:`logic_penalty`).

    Args:
        model: a DQN-family SB3 model (``q_net``, ``q_net_target``, ``gamma``, ``policy``).
        samples: a prioritized sample with ``weights``.
        lambda_logic: weight of the logic penalty.

    Returns:
        ``(loss, abs_td, logic)``: the scalar loss, ``|δ|`` of shape ``(B,)``
        (detached) and the weighted logic penalty (``None`` when absent).
    """
    current, target = dqn_q_and_target(model, samples)
    weights = samples.weights.reshape(-1, 1)
    loss = (weights * F.smooth_l1_loss(current, target, reduction="none")).mean()
    logic = logic_penalty(model.policy, samples) if lambda_logic > 0.0 else None
    if logic is not None:
        loss = loss + lambda_logic * logic
    abs_td = (target - current).detach().abs().reshape(-1)
    return loss, abs_td, logic
