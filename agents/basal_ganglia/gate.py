"""The two pathways and the final-action rule: Go scores, the No-Go head, the gate.

* **Go** (direct pathway) — :func:`go_scores`: the algorithm's own head, Q-values
  for DQN, mean quantiles for QR-DQN, action logits for PPO / MaskablePPO. It is
  the one Go computation of the project: the basal-ganglia policies and the ONNX
  graph (:mod:`agents.export`) both call it, for gated and plain SB3 policies.
* **No-Go** (indirect pathway) — :class:`NoGoHead`: one veto probability per
  action, ``NoGo(s)_a = sigmoid(W_a·z + b_a)``, ``z = norm([e; VPIN; log1p σ])``
  (:func:`risk_inputs`).
* **Gate** — :func:`basal_ganglia_gate` (tensors) and :func:`gate_arrays` (numpy)::

      final = proposed   if NoGo(s)_proposed < τ_veto  and  ℓ_logic < τ_logic
            = HOLD       otherwise                         (τ_veto = 0.7, τ_logic = 0.1)

  HOLD is never vetoed itself, and no veto happens where an action mask forbids HOLD.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn

from agents.basal_ganglia.moments import merge_moments
from agents.sequential import sequential

HOLD = 0
"""Index of the HOLD action in ``Janus-LOB-v0`` (the fallback of every veto)."""
TAU_VETO = 0.7
"""Default No-Go threshold τ_veto (JANUS design, τ_risk)."""
TAU_LOGIC = 0.1
"""Default logic-loss threshold τ_logic (JANUS design)."""
NOGO_INIT_BIAS = -3.0
"""Initial No-Go bias: ``sigmoid(−3) ≈ 0.047``, nothing vetoed before evidence *(ours)*."""
NOGO_WEIGHT_DECAY = 0.1
"""L2 penalty λ on the No-Go weights (not the bias) *(ours)*: "adverse whatever the state" lives in the bias."""

_NO_GO_HEAD = "Expected a DQN, QR-DQN, actor-critic or maskable actor-critic policy, got {}"


# --------------------------------------------------------------------------- Go pathway


def go_head(policy: Any) -> str:
    """The kind of Go head ``policy`` has: ``"q"`` (DQN), ``"quantiles"`` (QR-DQN) or ``"logits"`` (actor-critic).

    Raises:
        TypeError: any other policy.
    """
    if isinstance(policy, DQNPolicy):
        return "q"
    if isinstance(policy, QRDQNPolicy):
        return "quantiles"
    if isinstance(policy, (ActorCriticPolicy, MaskableActorCriticPolicy)):
        return "logits"
    raise TypeError(_NO_GO_HEAD.format(type(policy).__name__))


def go_features_dim(policy: Any) -> int:
    """Width of the features ``e`` the Go head (and the No-Go head) read."""
    kind = go_head(policy)
    if kind == "q":
        return int(policy.q_net.features_dim)
    if kind == "quantiles":
        return int(policy.quantile_net.features_dim)
    return int(policy.features_dim)


def go_extractor(policy: Any) -> th.nn.Module:
    """The features extractor of the Go pathway (the actor's, when actor and critic have an extractor each)."""
    kind = go_head(policy)
    if kind == "q":
        return policy.q_net.features_extractor
    if kind == "quantiles":
        return policy.quantile_net.features_extractor
    return policy.pi_features_extractor


def go_features(policy: Any, obs: PyTorchObs) -> th.Tensor:
    """Features ``e`` of the Go pathway, read by :func:`go_extractor`."""
    kind = go_head(policy)
    if kind == "q":
        return policy.q_net.extract_features(obs, go_extractor(policy))
    if kind == "quantiles":
        return policy.quantile_net.extract_features(obs, go_extractor(policy))
    return BaseModel.extract_features(policy, obs, go_extractor(policy))


def go_from_features(policy: Any, features: th.Tensor) -> th.Tensor:
    """Go scores from features, ``(B, n_actions)``: ``Q(s, ·)``, ``mean_k Z_k(s, ·)`` or the action logits.

    For an actor-critic policy with a ``Box`` action space this is the mean action.
    """
    kind = go_head(policy)
    if kind == "q":
        return sequential(policy.q_net.q_net, features)  # a decision's Q-MLP without five module calls
    if kind == "quantiles":
        net = policy.quantile_net
        return net.quantile_net(features).view(-1, net.n_quantiles, int(net.action_space.n)).mean(dim=1)
    return policy.action_net(policy.mlp_extractor.forward_actor(features))


def actor_critic_latents(policy: Any, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """``(actor features, latent_pi, latent_vf)`` of an SB3 actor-critic policy, with one shared or an extractor each
    (the first lines of SB3's ``ActorCriticPolicy.forward`` and ``evaluate_actions``)."""
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
        return features, latent_pi, latent_vf
    pi_features, vf_features = features
    mlp = policy.mlp_extractor
    return pi_features, mlp.forward_actor(pi_features), mlp.forward_critic(vf_features)


def go_scores(policy: Any, obs: PyTorchObs) -> th.Tensor:
    """Go scores ``(B, n_actions)`` of a DQN, QR-DQN or actor-critic policy for preprocessed tensors.

    ``go_from_features(policy, go_features(policy, obs))``: the same values as
    SB3's ``q_net(obs)``, ``quantile_net(obs).mean(1)`` or the actor's logits.

    Raises:
        TypeError: an unsupported policy.
    """
    return go_from_features(policy, go_features(policy, obs))


# --------------------------------------------------------------------------- No-Go pathway


def risk_inputs(obs: PyTorchObs, market_key: str | None, vpin_index: int, volatility_index: int) -> th.Tensor:
    """``[VPIN, log1p(σ_bps)]`` per row from ``obs[market_key]``, shape ``(B, 2)`` (zeros with ``market_key=None``)."""
    if market_key is None:
        first = obs if isinstance(obs, th.Tensor) else next(iter(obs.values()))
        return th.zeros((first.shape[0], 2), dtype=th.float32, device=first.device)
    market = obs[market_key].float()  # type: ignore[index]
    vpin = market[:, vpin_index]
    sigma = th.log1p(th.clamp(market[:, volatility_index], min=0.0))
    return th.stack([vpin, sigma], dim=1)


class NoGoHead(nn.Module):
    """Indirect pathway: ``NoGo(s)_a = sigmoid(W_a·z + b_a)`` on standardised ``x = [e; VPIN; log1p σ]``.

    ``z = clip((x − μ)/sqrt(v + 1e−4), −10, 10)``, where ``μ, v`` are the
    running mean and variance of the inputs seen in training
    (:meth:`update_normalizer`, :func:`~agents.basal_ganglia.moments.merge_moments`;
    clip ±10 as in SB3's ``VecNormalize``) *(ours)*: centred inputs let the bias
    carry "this action is always adverse" while the weights carry only the
    state dependence — without it, positive features such as VPIN or the spread
    absorb the evidence and the head stays permissive wherever they are small.
    Statistics are buffers, so they are saved with the policy and exported.
    ``W`` starts at 0 and ``b`` at ``init_bias``: no action is vetoed before
    there is evidence against it *(ours)*.

    Args:
        features_dim: width of the extracted features ``e``.
        n_actions: number of discrete actions.
        init_bias: initial bias ``b`` (weights start at 0).
    """

    def __init__(self, features_dim: int, n_actions: int, init_bias: float = NOGO_INIT_BIAS) -> None:
        super().__init__()
        in_dim = features_dim + 2
        self.linear = nn.Linear(in_dim, n_actions)
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, init_bias)
        self.register_buffer("input_mean", th.zeros(in_dim))
        self.register_buffer("input_var", th.ones(in_dim))
        self.register_buffer("input_count", th.zeros((), dtype=th.float64))

    def normalized_inputs(self, features: th.Tensor, risk: th.Tensor) -> th.Tensor:
        """``z = clip((x − μ)/sqrt(v + 1e−4), −10, 10)`` with ``x = [e; VPIN; log1p σ]``."""
        x = th.cat([features, risk], dim=1)
        z = (x - self.input_mean) / th.sqrt(self.input_var + 1e-4)
        return th.clamp(z, -10.0, 10.0)

    @th.no_grad()
    def update_normalizer(self, features: th.Tensor, risk: th.Tensor) -> None:
        """Merge a batch into the running mean and variance of the inputs (float64 arithmetic)."""
        x = th.cat([features, risk], dim=1).double()
        if x.shape[0] == 0:
            return
        total, mean, var = merge_moments(
            float(self.input_count.item()),
            self.input_mean.double(),
            self.input_var.double(),
            float(x.shape[0]),
            x.mean(dim=0),
            x.var(dim=0, unbiased=False),
        )
        self.input_mean.copy_(mean.float())
        self.input_var.copy_(var.float())
        self.input_count.fill_(total)

    def logits(self, features: th.Tensor, risk: th.Tensor) -> th.Tensor:
        """``W·z + b``, shape ``(B, n_actions)``."""
        return self.linear(self.normalized_inputs(features, risk))

    def forward(self, features: th.Tensor, risk: th.Tensor) -> th.Tensor:
        """No-Go probabilities, shape ``(B, n_actions)``."""
        return th.sigmoid(self.logits(features, risk))


# --------------------------------------------------------------------------- the final-action rule


def basal_ganglia_gate(
    proposed: th.Tensor,
    nogo: th.Tensor,
    logic_loss: th.Tensor,
    *,
    tau_veto: float = TAU_VETO,
    tau_logic: float = TAU_LOGIC,
    hold_action: int = HOLD,
    hold_allowed: th.Tensor | None = None,
) -> tuple[th.Tensor, th.Tensor]:
    """The Go/No-Go gate: keep the proposal unless vetoed, else HOLD.

    ``vetoed = (NoGo_proposed ≥ τ_veto ∨ ℓ_logic ≥ τ_logic) ∧ proposed ≠ HOLD [∧ HOLD allowed]``,
    ``final = HOLD if vetoed else proposed`` (JANUS design, basal ganglia).
    Pure tensor ops, so the same code runs in the policy and in the ONNX graph.

    Args:
        proposed: ``(B,)`` int64 proposed actions (Go pathway).
        nogo: ``(B, n_actions)`` No-Go probabilities.
        logic_loss: ``(B,)`` logic losses ``1 − SatAgg`` in [0, 1].
        tau_veto: No-Go threshold.
        tau_logic: logic-loss threshold.
        hold_action: index of HOLD.
        hold_allowed: optional ``(B,)`` bool; where False no veto happens
            (the action mask forbids HOLD).

    Returns:
        ``(final, vetoed)``: ``(B,)`` int64 actions and ``(B,)`` bool.
    """
    nogo_proposed = nogo.gather(1, proposed.long().unsqueeze(1)).squeeze(1)
    vetoed = ((nogo_proposed >= tau_veto) | (logic_loss >= tau_logic)) & (proposed != hold_action)
    if hold_allowed is not None:
        vetoed = vetoed & hold_allowed
    final = th.where(vetoed, th.full_like(proposed, hold_action), proposed)
    return final, vetoed


def gate_arrays(
    proposed: np.ndarray,
    nogo: np.ndarray,
    logic_loss: np.ndarray,
    *,
    tau_veto: float = TAU_VETO,
    tau_logic: float = TAU_LOGIC,
    hold_action: int = HOLD,
    hold_allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`basal_ganglia_gate` on numpy arrays: ``(final (B,) int64, vetoed (B,) bool)``.

    The same rule, compared in float32 as the tensors are (τ_veto, τ_logic and ℓ_logic rounded to float32), so
    the two agree on every boundary (``tests/agents/basal_ganglia/test_gate.py``). The policies gate their
    decisions here and the exported graph through the tensor version: on a batch-1 decision the tensor version's
    nine ops cost ≈ 25 µs of dispatch, these a few.
    """
    proposed = np.asarray(proposed, dtype=np.int64).reshape(-1)
    nogo_proposed = np.asarray(nogo, dtype=np.float32).reshape(proposed.shape[0], -1)[
        np.arange(proposed.shape[0]), proposed]
    logic = np.asarray(logic_loss, dtype=np.float32).reshape(-1)
    vetoed = ((nogo_proposed >= np.float32(tau_veto)) | (logic >= np.float32(tau_logic))) & (proposed != hold_action)
    if hold_allowed is not None:
        vetoed &= np.asarray(hold_allowed, dtype=bool).reshape(-1)
    return np.where(vetoed, np.int64(hold_action), proposed), vetoed


__all__ = [
    "HOLD",
    "NOGO_INIT_BIAS",
    "NOGO_WEIGHT_DECAY",
    "TAU_LOGIC",
    "TAU_VETO",
    "NoGoHead",
    "actor_critic_latents",
    "basal_ganglia_gate",
    "gate_arrays",
    "go_features",
    "go_features_dim",
    "go_from_features",
    "go_head",
    "go_scores",
    "risk_inputs",
]
