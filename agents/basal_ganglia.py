"""Basal ganglia: Go/No-Go action selection for SB3 DQN-family and actor-critic policies.

Two pathways read the same extracted features ``e`` (JANUS design, "agents —
the conscious trader"; the direct/indirect split follows Frank 2005, "Dynamic
dopamine modulation in the basal ganglia", J. Cogn. Neurosci. 17(1)):

* **Go** (direct pathway): the algorithm's own head — Q-values for DQN, mean
  quantiles for QR-DQN, action logits for PPO / MaskablePPO. It *proposes* an
  action: ``argmax Q`` (greedy) or a sample from ``softmax(logits)``.
* **No-Go** (indirect pathway): one veto probability per action,
  ``NoGo(s)_a = sigmoid(W_a·z + b_a)``, ``z = norm([e; VPIN; log1p σ])``, with
  VPIN and σ (bps) read from ``obs["market"]`` (indices 0 and 1 in
  ``Janus-LOB-v0``). σ enters as ``log1p(σ_bps)`` and ``norm`` is a running
  standardisation of the inputs (:class:`NoGoHead`) *(ours)*, so a volatile
  tape does not saturate the sigmoid and the bias can carry "always adverse".
  ``W`` starts at 0 and ``b`` at ``nogo_init_bias`` = −3 (NoGo ≈ 0.05): no
  action is vetoed before there is evidence against it *(ours)*.

**Gate** (applied in rollouts *and* in ``predict``)::

    final = proposed   if NoGo(s)_proposed < τ_veto  and  ℓ_logic < τ_logic
          = HOLD       otherwise                         (τ_veto = 0.7, τ_logic = 0.1)

HOLD (``hold_action``, 0) is the fallback and is never vetoed itself. Under
MaskablePPO a veto only happens where the mask allows HOLD.

**Logic loss** ``ℓ_logic = 1 − SatAgg`` (LTN, Badreddine et al. 2022), per
sample, from the first source that is set:

1. ``policy.set_logic_hook(fn)``: ``fn(obs, proposed) -> (B,)`` losses in
   [0, 1] for the *current* observation and proposed action (e.g. the shield's
   knowledge base evaluated on the proposal) — exact;
2. ``policy.observe_infos(infos, dones)`` (``BasalGangliaCallback`` calls it
   every step): ``1 − info["ltn"]["sat_agg"]`` (or ``info["ltn"]["violation"]``)
   of the env's *last* step — a one-step-lagged state alarm: after the shield
   judged the previous proposal unsatisfying, the next decision is HOLD; reset
   to 0 when an episode ends;
3. neither: ``ℓ_logic = 0`` and only the No-Go gate applies.

**No-Go training signal** *(ours)*. For the executed (final) action ``a_t``::

    y_t = 1[ v_t > τ_violation ]  ∨  1[ ¬overridden_t ∧ ( r_t < −c  ∨  s_t > κ·ŝ_t ) ]

with ``v_t = info["ltn"]["violation"]`` (τ_violation = 0.1, i.e. SatAgg < 0.9,
the shield's threshold), ``r_t`` the step reward, ``c`` a fixed threshold or
``k·std(r)`` (running, k = 1), ``s_t`` the realized slippage in bps and ``ŝ_t``
the predicted one (``info["predicted_slippage_bps"]`` or the cerebellum's
predictor) with κ = 2 (the amygdala's slippage breaker). When the shield
overrode the proposal, the reward belongs to the shield's action, so only the
violation term labels ``a_t``. The head minimises::

    L = mean_a mean_{t: a_t = a} BCE(NoGo(s_t)_a, y_t) + (λ/2)‖W‖²

— the cross-entropy of the *executed* action only, averaged per action so a
rare (vetoed) action weighs as much as a frequent one, plus an L2 penalty on
the weights (λ = 0.1), not on the bias *(ours)*: without it a few dozen
all-adverse samples let the weights grow along their sample mean and the veto
leaks in the opposite corner of the state space. The head has its own Adam
optimizer and reads detached features: the No-Go pathway does not reshape the
Go pathway's representation.
``BasalGangliaCallback`` collects the labels from rollouts and performs the
updates for any algorithm. A vetoed action is not executed, so it produces no
new label: once vetoed in a region of the state space it stays vetoed there
(fail-safe by design; a shield, not an explorer).

**Learning the Go head under the gate.** The log-probability stored for PPO
is that of the *executed* action under the Go distribution, so PPO credits the
substituted HOLD (post-posed shielding, Alshiekh et al. 2018, AAAI, "Safe
reinforcement learning via shielding"); DQN stores the executed action in its
replay buffer. Off-policy exploration (ε-greedy and the warm-up phase) bypasses
the policy in SB3, so :class:`BasalGangliaDQN` / :class:`BasalGangliaQRDQN`
(or :class:`GatedExplorationMixin` on any DQN-family class, e.g.
``class GatedJanusDQN(GatedExplorationMixin, JanusDQN)``) route those actions
through the gate too; plain ``DQN`` with ``BasalGangliaDQNPolicy`` gates greedy
actions only.

**Audit.** After every gated decision ``policy.last_go_nogo`` (first row) and
``policy.last_go_nogo_batch`` (one per row) hold JSON-ready dicts::

    {"go": [..], "nogo": [..], "proposed": 2, "final": 0, "vetoed": True,
     "veto_reason": "nogo", "nogo_proposed": 0.93, "logic_loss": 0.0,
     "logic_source": "none", "tau_veto": 0.7, "tau_logic": 0.1}

``BasalGangliaCallback`` copies them to ``info["go_nogo"]``.

```python
import gymnasium as gym
import envs_registry
from stable_baselines3 import PPO
from agents.basal_ganglia import BasalGangliaActorCriticPolicy, BasalGangliaCallback

env = gym.make("Janus-LOB-v0", seed=0)
model = PPO(BasalGangliaActorCriticPolicy, env, seed=0)
model.learn(10_000, callback=BasalGangliaCallback())
```
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import QRDQN
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy, BaseModel
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.dqn.policies import DQNPolicy
from torch import nn
from torch.nn import functional as F

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

_BAD_TAU = "Expected `{}` in (0, 1], got {!r}"
_NOT_DISCRETE = "Basal-ganglia policies need a gymnasium.spaces.Discrete action space, got {!r}"
_BAD_HOLD = "Expected `hold_action` in [0, {}), got {!r}"
_NO_MARKET = (
    "Expected a Dict observation space with key {!r} holding VPIN at index {} and volatility at index {} "
    "(or market_key=None), got {!r}"
)
_BAD_INDEX = "Expected `{}` to be a non-negative int, got {!r}"
_BAD_POSITIVE = "Expected `{}` > 0 and finite, got {!r}"
_BAD_NONNEG = "Expected `{}` >= 0 and finite, got {!r}"
_BAD_FINITE = "Expected `{}` to be a finite number, got {!r}"
_BAD_VIOLATION = "Expected `violation_threshold` in [0, 1), got {!r}"
_BAD_HOOK = "Expected `logic_hook` to be callable or None, got {!r}"
_BAD_LOGIC_VALUES = "Expected the logic loss to be {} finite values in [0, 1], got {!r}"
_BAD_LOGIC_BATCH = (
    "The logic losses observed from infos cover {} envs but the batch has {} rows; "
    "call policy.observe_infos(...) with this batch's infos or policy.reset_logic_state()"
)
_BAD_INFO_LTN = "Expected info['ltn']['{}'] in [0, 1], got {!r}"
_NOT_BG_POLICY = "Expected a basal-ganglia policy (BasalGangliaDQNPolicy, ...), got {}"
_BAD_LABELS = "Expected {} labels in {{0, 1}}, got {!r}"


# --------------------------------------------------------------------------- gate


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


class NoGoHead(nn.Module):
    """Indirect pathway: ``NoGo(s)_a = sigmoid(W_a·z + b_a)`` on standardised ``x = [e; VPIN; log1p σ]``.

    ``z = clip((x − μ)/sqrt(v + 1e−4), −10, 10)``, where ``μ, v`` are the
    running mean and variance of the inputs seen in training
    (:meth:`update_normalizer`, parallel-variance merge of Chan et al. 1979;
    clip ±10 as in SB3's ``VecNormalize``) *(ours)*: centred inputs let the bias
    carry "this action is always adverse" while the weights carry only the
    state dependence — without it, positive features such as VPIN or the spread
    absorb the evidence and the head stays permissive wherever they are small.
    Statistics are buffers, so they are saved with the policy and exported.

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
        """Merge a batch into the running mean and variance of the inputs."""
        x = th.cat([features, risk], dim=1).double()
        n_b = float(x.shape[0])
        if n_b == 0:
            return
        mean_b = x.mean(dim=0)
        var_b = x.var(dim=0, unbiased=False)
        n_a = float(self.input_count.item())
        total = n_a + n_b
        delta = mean_b - self.input_mean.double()
        mean = self.input_mean.double() + delta * (n_b / total)
        m2 = self.input_var.double() * n_a + var_b * n_b + delta.pow(2) * (n_a * n_b / total)
        self.input_mean.copy_(mean.float())
        self.input_var.copy_((m2 / total).float())
        self.input_count.fill_(total)

    def logits(self, features: th.Tensor, risk: th.Tensor) -> th.Tensor:
        """``W·z + b``, shape ``(B, n_actions)``."""
        return self.linear(self.normalized_inputs(features, risk))

    def forward(self, features: th.Tensor, risk: th.Tensor) -> th.Tensor:
        """No-Go probabilities, shape ``(B, n_actions)``."""
        return th.sigmoid(self.logits(features, risk))


def _check_tau(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) <= 1.0:
        raise ValueError(_BAD_TAU.format(name, value))
    return float(value)


def _check_index(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(_BAD_INDEX.format(name, value))
    return int(value)


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) < math.inf:
        raise ValueError(_BAD_POSITIVE.format(name, value))
    return float(value)


def _default_extractor(observation_space: spaces.Space) -> type[BaseFeaturesExtractor]:
    return CombinedExtractor if isinstance(observation_space, spaces.Dict) else FlattenExtractor


# --------------------------------------------------------------------------- shared policy logic


class _BasalGangliaMixin:
    """Go/No-Go machinery shared by the four policies (kept private: use the concrete classes)."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        *,
        tau_veto: float = TAU_VETO,
        tau_logic: float = TAU_LOGIC,
        hold_action: int = HOLD,
        market_key: str | None = "market",
        vpin_index: int = 0,
        volatility_index: int = 1,
        nogo_lr: float = 1e-3,
        nogo_init_bias: float = NOGO_INIT_BIAS,
        nogo_weight_decay: float = NOGO_WEIGHT_DECAY,
        **kwargs: Any,
    ) -> None:
        self._init_basal_ganglia(
            observation_space, action_space, tau_veto, tau_logic, hold_action, market_key,
            vpin_index, volatility_index, nogo_lr, nogo_init_bias, nogo_weight_decay,
        )  # fmt: skip
        kwargs.setdefault("features_extractor_class", _default_extractor(observation_space))
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)  # type: ignore[call-arg]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(self._basal_ganglia_parameters())
        return data

    # set by the concrete SB3 base classes
    observation_space: spaces.Space
    action_space: spaces.Discrete
    device: th.device
    obs_to_tensor: Callable[..., tuple[PyTorchObs, bool]]

    def _init_basal_ganglia(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        tau_veto: float,
        tau_logic: float,
        hold_action: int,
        market_key: str | None,
        vpin_index: int,
        volatility_index: int,
        nogo_lr: float,
        nogo_init_bias: float,
        nogo_weight_decay: float,
    ) -> None:
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(_NOT_DISCRETE.format(action_space))
        self.tau_veto = _check_tau("tau_veto", tau_veto)
        self.tau_logic = _check_tau("tau_logic", tau_logic)
        n_actions = int(action_space.n)
        if isinstance(hold_action, bool) or not isinstance(hold_action, (int, np.integer)) or not (
            0 <= hold_action < n_actions
        ):
            raise ValueError(_BAD_HOLD.format(n_actions, hold_action))
        self.hold_action = int(hold_action)
        self.vpin_index = _check_index("vpin_index", vpin_index)
        self.volatility_index = _check_index("volatility_index", volatility_index)
        if market_key is not None:
            market = observation_space.spaces.get(market_key) if isinstance(observation_space, spaces.Dict) else None
            if (
                not isinstance(market, spaces.Box)
                or len(market.shape) != 1
                or max(self.vpin_index, self.volatility_index) >= market.shape[0]
            ):
                raise ValueError(_NO_MARKET.format(market_key, vpin_index, volatility_index, observation_space))
        self.market_key = market_key
        self.nogo_lr = _check_positive("nogo_lr", nogo_lr)
        if isinstance(nogo_init_bias, bool) or not isinstance(nogo_init_bias, numbers.Real) or not math.isfinite(
            nogo_init_bias
        ):
            raise ValueError(_BAD_FINITE.format("nogo_init_bias", nogo_init_bias))
        self.nogo_init_bias = float(nogo_init_bias)
        if isinstance(nogo_weight_decay, bool) or not isinstance(nogo_weight_decay, numbers.Real) or not (
            0.0 <= float(nogo_weight_decay) < math.inf
        ):
            raise ValueError(_BAD_NONNEG.format("nogo_weight_decay", nogo_weight_decay))
        self.nogo_weight_decay = float(nogo_weight_decay)
        self.logic_hook: Callable[[PyTorchObs, th.Tensor], Any] | None = None
        self._info_logic_loss: np.ndarray | None = None
        self.last_go_nogo: dict[str, Any] | None = None
        self.last_go_nogo_batch: list[dict[str, Any]] = []

    def _build_nogo(self, features_dim: int) -> None:
        self.nogo_net = NoGoHead(features_dim, int(self.action_space.n), self.nogo_init_bias).to(self.device)
        self.nogo_optimizer = th.optim.Adam(
            [
                {"params": [self.nogo_net.linear.weight], "weight_decay": self.nogo_weight_decay},
                {"params": [self.nogo_net.linear.bias], "weight_decay": 0.0},
            ],
            lr=self.nogo_lr,
        )

    def _basal_ganglia_parameters(self) -> dict[str, Any]:
        return dict(
            tau_veto=self.tau_veto,
            tau_logic=self.tau_logic,
            hold_action=self.hold_action,
            market_key=self.market_key,
            vpin_index=self.vpin_index,
            volatility_index=self.volatility_index,
            nogo_lr=self.nogo_lr,
            nogo_init_bias=self.nogo_init_bias,
            nogo_weight_decay=self.nogo_weight_decay,
        )

    # ---- per-algorithm hooks -------------------------------------------------
    def _nogo_features(self, obs: PyTorchObs) -> th.Tensor:
        """Features ``e`` of the Go pathway (actor side) for ``obs``."""
        raise NotImplementedError

    def _go_from_features(self, features: th.Tensor) -> th.Tensor:
        """Go scores ``(B, n_actions)`` from features: Q-values, mean quantiles or logits."""
        raise NotImplementedError

    # ---- pathways ----------------------------------------------------------------
    def risk_inputs(self, obs: PyTorchObs) -> th.Tensor:
        """``[VPIN, log1p(σ_bps)]`` per row, shape ``(B, 2)`` (zeros with ``market_key=None``)."""
        if self.market_key is None:
            first = obs if isinstance(obs, th.Tensor) else next(iter(obs.values()))
            return th.zeros((first.shape[0], 2), dtype=th.float32, device=first.device)
        market = obs[self.market_key].float()  # type: ignore[index]
        vpin = market[:, self.vpin_index]
        sigma = th.log1p(th.clamp(market[:, self.volatility_index], min=0.0))
        return th.stack([vpin, sigma], dim=1)

    def go_nogo(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """Go scores and No-Go probabilities, each ``(B, n_actions)``, for preprocessed tensors."""
        features = self._nogo_features(obs)
        return self._go_from_features(features), self.nogo_net(features, self.risk_inputs(obs))

    def nogo(self, observation: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """No-Go probabilities for a numpy observation: ``(n_actions,)`` or ``(B, n_actions)``."""
        obs, vectorized = self.obs_to_tensor(observation)
        with th.no_grad():
            probs = self.nogo_net(self._nogo_features(obs), self.risk_inputs(obs)).cpu().numpy()
        return probs if vectorized else probs[0]

    # ---- logic loss ----------------------------------------------------------------
    def set_logic_hook(self, hook: Callable[[PyTorchObs, th.Tensor], Any] | None) -> None:
        """Set (or clear) ``hook(obs, proposed) -> (B,)`` logic losses ``1 − SatAgg`` in [0, 1].

        Raises:
            TypeError: ``hook`` is neither callable nor None.
        """
        if hook is not None and not callable(hook):
            raise TypeError(_BAD_HOOK.format(hook))
        self.logic_hook = hook

    def observe_infos(
        self, infos: Sequence[Mapping[str, Any]], dones: Sequence[bool] | np.ndarray | None = None
    ) -> None:
        """Remember ``1 − info["ltn"]["sat_agg"]`` per env as the next decision's logic loss.

        Falls back to ``info["ltn"]["violation"]``; an env whose info has no
        ``"ltn"`` (or whose episode just ended) gets 0. When no info has
        ``"ltn"`` the info source is cleared.

        Raises:
            ValueError: a ``sat_agg`` / ``violation`` outside [0, 1] (never clipped).
        """
        losses = np.zeros(len(infos), dtype=np.float32)
        seen = False
        for i, info in enumerate(infos):
            ltn = info.get("ltn") if isinstance(info, Mapping) else None
            if not isinstance(ltn, Mapping):
                continue
            if "sat_agg" in ltn:
                key, value = "sat_agg", float(ltn["sat_agg"])
                loss = 1.0 - value
            elif "violation" in ltn:
                key, value = "violation", float(ltn["violation"])
                loss = value
            else:
                continue
            if not 0.0 <= value <= 1.0:
                raise ValueError(_BAD_INFO_LTN.format(key, value))
            seen = True
            if dones is None or not bool(dones[i]):
                losses[i] = loss
        self._info_logic_loss = losses if seen else None

    def reset_logic_state(self) -> None:
        """Forget the logic losses observed from infos."""
        self._info_logic_loss = None

    def _logic_losses(self, obs: PyTorchObs, proposed: th.Tensor) -> tuple[th.Tensor, str]:
        batch = proposed.shape[0]
        if self.logic_hook is not None:
            raw = self.logic_hook(obs, proposed)
            values = th.as_tensor(raw, dtype=th.float32, device=proposed.device).reshape(-1)
            if values.shape[0] != batch or not bool(th.all((values >= 0.0) & (values <= 1.0))):
                raise ValueError(_BAD_LOGIC_VALUES.format(batch, raw))
            return values, "hook"
        if self._info_logic_loss is not None:
            if self._info_logic_loss.shape[0] != batch:
                raise ValueError(_BAD_LOGIC_BATCH.format(self._info_logic_loss.shape[0], batch))
            return th.as_tensor(self._info_logic_loss, device=proposed.device), "info"
        return th.zeros(batch, dtype=th.float32, device=proposed.device), "none"

    # ---- gate ----------------------------------------------------------------------
    def _gate(
        self,
        obs: PyTorchObs,
        features: th.Tensor,
        go: th.Tensor,
        proposed: th.Tensor,
        hold_allowed: th.Tensor | None = None,
    ) -> th.Tensor:
        proposed = proposed.long().reshape(-1)
        with th.no_grad():
            nogo = self.nogo_net(features, self.risk_inputs(obs))
            logic, source = self._logic_losses(obs, proposed)
            final, vetoed = basal_ganglia_gate(
                proposed,
                nogo,
                logic,
                tau_veto=self.tau_veto,
                tau_logic=self.tau_logic,
                hold_action=self.hold_action,
                hold_allowed=hold_allowed,
            )
        self._record(go, nogo, proposed, final, vetoed, logic, source)
        return final

    def _record(
        self,
        go: th.Tensor,
        nogo: th.Tensor,
        proposed: th.Tensor,
        final: th.Tensor,
        vetoed: th.Tensor,
        logic: th.Tensor,
        source: str,
    ) -> None:
        go_l = go.detach().cpu().tolist()
        nogo_l = nogo.detach().cpu().tolist()
        prop_l = proposed.cpu().tolist()
        final_l = final.cpu().tolist()
        vetoed_l = vetoed.cpu().tolist()
        logic_l = logic.detach().cpu().tolist()
        rows = []
        for i, a in enumerate(prop_l):
            by_nogo = vetoed_l[i] and nogo_l[i][a] >= self.tau_veto
            by_logic = vetoed_l[i] and logic_l[i] >= self.tau_logic
            reason = "+".join(name for name, hit in (("nogo", by_nogo), ("logic", by_logic)) if hit)
            rows.append({
                "go": [float(v) for v in go_l[i]],
                "nogo": [float(v) for v in nogo_l[i]],
                "proposed": int(a),
                "final": int(final_l[i]),
                "vetoed": bool(vetoed_l[i]),
                "veto_reason": reason,
                "nogo_proposed": float(nogo_l[i][a]),
                "logic_loss": float(logic_l[i]),
                "logic_source": source,
                "tau_veto": self.tau_veto,
                "tau_logic": self.tau_logic,
            })
        self.last_go_nogo_batch = rows
        self.last_go_nogo = rows[0] if rows else None

    def gate_actions(self, observation: np.ndarray | dict[str, np.ndarray], actions: np.ndarray) -> np.ndarray:
        """Gate externally chosen actions (e.g. ε-greedy exploration) for a numpy observation.

        Args:
            observation: single or batched observation.
            actions: proposed actions, one per observation row.

        Returns:
            The final actions, same shape as ``actions``.
        """
        obs, _ = self.obs_to_tensor(observation)
        arr = np.asarray(actions)
        proposed = th.as_tensor(arr.reshape(-1), dtype=th.long, device=self.device)
        with th.no_grad():
            features = self._nogo_features(obs)
            go = self._go_from_features(features)
            final = self._gate(obs, features, go, proposed)
        return final.cpu().numpy().astype(arr.dtype if np.issubdtype(arr.dtype, np.integer) else np.int64).reshape(
            arr.shape
        )

    # ---- No-Go learning ------------------------------------------------------------
    def nogo_loss(
        self, obs: PyTorchObs, actions: th.Tensor, labels: th.Tensor, features: th.Tensor | None = None
    ) -> th.Tensor:
        """Per-action mean BCE of the executed action's No-Go against the adverse label (features detached).

        ``L = mean_{a ∈ A_batch} mean_{t: a_t = a} BCE(NoGo(s_t)_a, y_t)``: each
        action's head gets the same weight however rarely it is executed
        *(ours)*; otherwise a vetoed (hence rare) action's head would learn
        from a vanishing share of each batch. ``features`` (detached) may be
        passed when already computed.
        """
        if features is None:
            with th.no_grad():
                features = self._nogo_features(obs)
        logits = self.nogo_net.logits(features, self.risk_inputs(obs))
        acts = actions.long().reshape(-1)
        chosen = logits.gather(1, acts.reshape(-1, 1)).squeeze(1)
        per_sample = F.binary_cross_entropy_with_logits(chosen, labels.float().reshape(-1), reduction="none")
        onehot = F.one_hot(acts, logits.shape[1]).float()
        counts = onehot.sum(dim=0)
        per_action = (per_sample.unsqueeze(1) * onehot).sum(dim=0) / counts.clamp(min=1.0)
        return per_action[counts > 0].mean()

    def train_nogo(
        self,
        observations: np.ndarray | dict[str, np.ndarray],
        actions: np.ndarray,
        labels: np.ndarray,
    ) -> float:
        """One Adam step of the No-Go head on a batch of (observation, executed action, adverse label).

        Args:
            observations: batched numpy observation.
            actions: ``(B,)`` executed actions.
            labels: ``(B,)`` adverse labels in {0, 1}.

        Returns:
            The loss before the step.

        Raises:
            ValueError: labels of the wrong length or outside {0, 1}.
        """
        obs, _ = self.obs_to_tensor(observations)
        acts = th.as_tensor(np.asarray(actions).reshape(-1), dtype=th.long, device=self.device)
        y_np = np.asarray(labels, dtype=np.float32).reshape(-1)
        if y_np.shape[0] != acts.shape[0] or not np.all((y_np == 0.0) | (y_np == 1.0)):
            raise ValueError(_BAD_LABELS.format(acts.shape[0], labels))
        y = th.as_tensor(y_np, device=self.device)
        self.nogo_net.train(True)
        with th.no_grad():
            features = self._nogo_features(obs)
            self.nogo_net.update_normalizer(features, self.risk_inputs(obs))
        loss = self.nogo_loss(obs, acts, y, features)
        self.nogo_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.nogo_optimizer.step()
        self.nogo_optimizer.zero_grad(set_to_none=True)
        return float(loss.item())


# --------------------------------------------------------------------------- DQN family


class BasalGangliaDQNPolicy(_BasalGangliaMixin, DQNPolicy):
    """DQN policy whose greedy action passes the Go/No-Go gate (module docstring).

    Go = ``Q(s, ·)`` of ``q_net``; No-Go reads ``q_net``'s features. The No-Go
    head is not in the DQN optimizer; it has its own (``nogo_optimizer``).

    Args:
        observation_space: observation space (``Dict`` with ``market_key`` unless ``market_key=None``).
        action_space: ``Discrete`` action space.
        lr_schedule: learning-rate schedule of the Q-network.
        tau_veto: No-Go threshold τ_veto in (0, 1] (0.7).
        tau_logic: logic-loss threshold τ_logic in (0, 1] (0.1).
        hold_action: index of HOLD, the veto fallback (0).
        market_key: observation key holding VPIN and σ; None feeds zeros.
        vpin_index: index of VPIN in ``obs[market_key]`` (0).
        volatility_index: index of σ (bps) in ``obs[market_key]`` (1).
        nogo_lr: Adam learning rate of the No-Go head (1e-3).
        nogo_init_bias: initial No-Go bias (−3).
        nogo_weight_decay: L2 penalty on the No-Go weights, not the bias (0.1).
        **kwargs: any other ``DQNPolicy`` argument (``net_arch``,
            ``features_extractor_class`` — default ``CombinedExtractor`` for
            ``Dict`` observations, ``FlattenExtractor`` otherwise — ...).

    Raises:
        TypeError: the action space is not ``Discrete``.
        ValueError: a threshold, index or learning rate out of range, or no market key.
    """

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self._build_nogo(self.q_net.features_dim)

    def _nogo_features(self, obs: PyTorchObs) -> th.Tensor:
        return self.q_net.extract_features(obs, self.q_net.features_extractor)

    def _go_from_features(self, features: th.Tensor) -> th.Tensor:
        return self.q_net.q_net(features)

    def _predict(self, obs: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        features = self._nogo_features(obs)
        go = self._go_from_features(features)
        return self._gate(obs, features, go, go.argmax(dim=1))


class BasalGangliaQRDQNPolicy(_BasalGangliaMixin, QRDQNPolicy):
    """QR-DQN policy (sb3-contrib) with the Go/No-Go gate; Go = mean over quantiles of ``Z(s, ·)``.

    Args:
        observation_space: observation space.
        action_space: ``Discrete`` action space.
        lr_schedule: learning-rate schedule of the quantile network.
        tau_veto: No-Go threshold τ_veto in (0, 1] (0.7).
        tau_logic: logic-loss threshold τ_logic in (0, 1] (0.1).
        hold_action: index of HOLD, the veto fallback (0).
        market_key: observation key holding VPIN and σ; None feeds zeros.
        vpin_index: index of VPIN in ``obs[market_key]`` (0).
        volatility_index: index of σ (bps) in ``obs[market_key]`` (1).
        nogo_lr: Adam learning rate of the No-Go head (1e-3).
        nogo_init_bias: initial No-Go bias (−3).
        nogo_weight_decay: L2 penalty on the No-Go weights, not the bias (0.1).
        **kwargs: any other ``QRDQNPolicy`` argument (``n_quantiles``, ``net_arch``, ...).

    Raises:
        TypeError: the action space is not ``Discrete``.
        ValueError: a threshold, index or learning rate out of range, or no market key.
    """

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self._build_nogo(self.quantile_net.features_dim)

    def _nogo_features(self, obs: PyTorchObs) -> th.Tensor:
        return self.quantile_net.extract_features(obs, self.quantile_net.features_extractor)

    def _go_from_features(self, features: th.Tensor) -> th.Tensor:
        net = self.quantile_net
        quantiles = net.quantile_net(features).view(-1, net.n_quantiles, int(self.action_space.n))
        return quantiles.mean(dim=1)

    def _predict(self, obs: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        features = self._nogo_features(obs)
        go = self._go_from_features(features)
        return self._gate(obs, features, go, go.argmax(dim=1))


class GatedExplorationMixin:
    """Routes the random actions of an off-policy algorithm (warm-up, ε-greedy) through the gate.

    SB3's ``DQN.predict`` samples exploratory actions from the action space
    without calling the policy; this mixin passes them through
    ``policy.gate_actions`` so the veto holds for every action sent to the env.
    Put it first: ``class GatedJanusDQN(GatedExplorationMixin, JanusDQN)``.

    Raises:
        TypeError: (at setup) the policy is not a basal-ganglia policy.
    """

    policy: Any
    action_space: spaces.Space
    exploration_rate: float
    num_timesteps: int
    use_sde: bool
    use_sde_at_warmup: bool
    _last_obs: Any

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        if not isinstance(self.policy, _BasalGangliaMixin):
            raise TypeError(_NOT_BG_POLICY.format(type(self.policy).__name__))

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """ε-greedy like ``DQN.predict``, with the exploratory action gated as well."""
        if not deterministic and np.random.rand() < self.exploration_rate:
            if self.policy.is_vectorized_observation(observation):
                first = observation[next(iter(observation))] if isinstance(observation, dict) else observation
                action = np.array([self.action_space.sample() for _ in range(first.shape[0])])
            else:
                action = np.array(self.action_space.sample())
            return self.policy.gate_actions(observation, action), state
        return self.policy.predict(observation, state, episode_start, deterministic)

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts and not (self.use_sde and self.use_sde_at_warmup):
            action = np.array([self.action_space.sample() for _ in range(n_envs)])
            action = self.policy.gate_actions(self._last_obs, action)
            return action, action
        return super()._sample_action(learning_starts, action_noise, n_envs)  # type: ignore[misc]


class BasalGangliaDQN(GatedExplorationMixin, DQN):
    """SB3 ``DQN`` whose every env action (greedy, ε-greedy, warm-up) passes the basal-ganglia gate.

    Same arguments as ``stable_baselines3.DQN``; use with ``BasalGangliaDQNPolicy``.
    """


class BasalGangliaQRDQN(GatedExplorationMixin, QRDQN):
    """sb3-contrib ``QRDQN`` with gated exploration; use with ``BasalGangliaQRDQNPolicy``."""


# --------------------------------------------------------------------------- actor-critic


class BasalGangliaActorCriticPolicy(_BasalGangliaMixin, ActorCriticPolicy):
    """PPO / A2C policy: Go = action logits, sampled (or argmax) proposal, then the gate.

    ``forward`` (rollouts) returns the final action, the value and the
    log-probability of the *final* action under the Go distribution (module
    docstring, "Learning the Go head under the gate"). ``evaluate_actions`` is
    PPO's, unchanged.

    With a learned extractor such as ``JanusExtractor`` pass
    ``share_features_extractor=False`` (``configs/janus-ppo.yml`` does): the
    actor and the critic then each have their own, and the value loss — a
    regression on returns whose gradient dwarfs the policy gradient — no longer
    shapes the features the actor decides on (Cobbe et al. 2021, "Phasic
    Policy Gradient", ICML). In ``benchmarks/bench_learning.py`` (five seeds)
    PPO earned 47 bps per episode with one shared JanusExtractor and 82 with
    one each, against 61 for SB3's ``MultiInputPolicy`` *(ours)*; the price is
    a second extractor (about half the training fps).

    Args:
        observation_space: observation space.
        action_space: ``Discrete`` action space.
        lr_schedule: learning-rate schedule.
        tau_veto: No-Go threshold τ_veto in (0, 1] (0.7).
        tau_logic: logic-loss threshold τ_logic in (0, 1] (0.1).
        hold_action: index of HOLD, the veto fallback (0).
        market_key: observation key holding VPIN and σ; None feeds zeros.
        vpin_index: index of VPIN in ``obs[market_key]`` (0).
        volatility_index: index of σ (bps) in ``obs[market_key]`` (1).
        nogo_lr: Adam learning rate of the No-Go head (1e-3).
        nogo_init_bias: initial No-Go bias (−3).
        nogo_weight_decay: L2 penalty on the No-Go weights, not the bias (0.1).
        **kwargs: any other ``ActorCriticPolicy`` argument.

    Raises:
        TypeError: the action space is not ``Discrete``.
        ValueError: a threshold, index or learning rate out of range, or no market key.
    """

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)  # the PPO optimizer is built here, without the No-Go head
        self._build_nogo(self.features_dim)

    def _nogo_features(self, obs: PyTorchObs) -> th.Tensor:
        return BaseModel.extract_features(self, obs, self.pi_features_extractor)

    def _go_from_features(self, features: th.Tensor) -> th.Tensor:
        return self.action_net(self.mlp_extractor.forward_actor(features))

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        features = self.extract_features(obs)
        if self.share_features_extractor:
            pi_features = features
            latent_pi, latent_vf = self.mlp_extractor(features)
        else:
            pi_features, vf_features = features
            latent_pi = self.mlp_extractor.forward_actor(pi_features)
            latent_vf = self.mlp_extractor.forward_critic(vf_features)
        values = self.value_net(latent_vf)
        go = self.action_net(latent_pi)
        distribution = self.action_dist.proba_distribution(action_logits=go)
        proposed = distribution.get_actions(deterministic=deterministic)
        final = self._gate(obs, pi_features, go, proposed)
        log_prob = distribution.log_prob(final)
        return final.reshape((-1, *self.action_space.shape)), values, log_prob

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        features = self._nogo_features(observation)
        go = self._go_from_features(features)
        proposed = self.action_dist.proba_distribution(action_logits=go).get_actions(deterministic=deterministic)
        return self._gate(observation, features, go, proposed)


class BasalGangliaMaskablePolicy(_BasalGangliaMixin, MaskableActorCriticPolicy):
    """MaskablePPO policy with the gate; the action mask applies to the proposal, HOLD must be allowed to veto.

    Args:
        observation_space: observation space.
        action_space: ``Discrete`` action space.
        lr_schedule: learning-rate schedule.
        tau_veto: No-Go threshold τ_veto in (0, 1] (0.7).
        tau_logic: logic-loss threshold τ_logic in (0, 1] (0.1).
        hold_action: index of HOLD, the veto fallback (0).
        market_key: observation key holding VPIN and σ; None feeds zeros.
        vpin_index: index of VPIN in ``obs[market_key]`` (0).
        volatility_index: index of σ (bps) in ``obs[market_key]`` (1).
        nogo_lr: Adam learning rate of the No-Go head (1e-3).
        nogo_init_bias: initial No-Go bias (−3).
        nogo_weight_decay: L2 penalty on the No-Go weights, not the bias (0.1).
        **kwargs: any other ``MaskableActorCriticPolicy`` argument.

    Raises:
        TypeError: the action space is not ``Discrete``.
        ValueError: a threshold, index or learning rate out of range, or no market key.
    """

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self._build_nogo(self.features_dim)

    def _nogo_features(self, obs: PyTorchObs) -> th.Tensor:
        return BaseModel.extract_features(self, obs, self.pi_features_extractor)

    def _go_from_features(self, features: th.Tensor) -> th.Tensor:
        return self.action_net(self.mlp_extractor.forward_actor(features))

    def _hold_allowed(self, action_masks: np.ndarray | th.Tensor | None, batch: int) -> th.Tensor | None:
        if action_masks is None:
            return None
        masks = th.as_tensor(action_masks, device=self.device).reshape(batch, -1)
        return masks[:, self.hold_action].bool()

    def forward(
        self,
        obs: th.Tensor,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        features = self.extract_features(obs)
        if self.share_features_extractor:
            pi_features = features
            latent_pi, latent_vf = self.mlp_extractor(features)
        else:
            pi_features, vf_features = features
            latent_pi = self.mlp_extractor.forward_actor(pi_features)
            latent_vf = self.mlp_extractor.forward_critic(vf_features)
        values = self.value_net(latent_vf)
        go = self.action_net(latent_pi)
        distribution = self.action_dist.proba_distribution(action_logits=go)
        if action_masks is not None:
            distribution.apply_masking(action_masks)
        proposed = distribution.get_actions(deterministic=deterministic)
        final = self._gate(obs, pi_features, go, proposed, self._hold_allowed(action_masks, go.shape[0]))
        log_prob = distribution.log_prob(final)
        return final.reshape((-1, *self.action_space.shape)), values, log_prob

    def _predict(  # type: ignore[override]
        self,
        observation: PyTorchObs,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> th.Tensor:
        features = self._nogo_features(observation)
        go = self._go_from_features(features)
        distribution = self.action_dist.proba_distribution(action_logits=go)
        if action_masks is not None:
            distribution.apply_masking(action_masks)
        proposed = distribution.get_actions(deterministic=deterministic)
        return self._gate(observation, features, go, proposed, self._hold_allowed(action_masks, go.shape[0]))


BASAL_GANGLIA_POLICIES: tuple[type, ...] = (
    BasalGangliaDQNPolicy,
    BasalGangliaQRDQNPolicy,
    BasalGangliaActorCriticPolicy,
    BasalGangliaMaskablePolicy,
)
"""Every basal-ganglia policy class."""


def is_basal_ganglia_policy(policy: Any) -> bool:
    """Whether ``policy`` carries the Go/No-Go gate (``go_nogo``, ``nogo_net``, ``train_nogo``)."""
    return isinstance(policy, _BasalGangliaMixin)


# --------------------------------------------------------------------------- labels + callback


def adverse_labels(
    rewards: np.ndarray,
    infos: Sequence[Mapping[str, Any]],
    *,
    reward_threshold: float | None,
    violation_threshold: float = TAU_LOGIC,
    slippage_ratio: float = 2.0,
    predicted_slippage: np.ndarray | None = None,
) -> np.ndarray:
    """Per-step adverse labels for the executed action (module docstring, "No-Go training signal").

    ``y = 1[v > τ_violation] ∨ 1[¬overridden ∧ (r < −c ∨ (exec_qty ≠ 0 ∧ ŝ > 0 ∧ s > κ·ŝ))]``.

    Args:
        rewards: ``(n,)`` step rewards.
        infos: ``n`` step infos (``ltn``, ``slippage_bps``, ``exec_qty``,
            ``predicted_slippage_bps`` are read when present).
        reward_threshold: ``c`` ≥ 0; None disables the reward term.
        violation_threshold: τ_violation on ``info["ltn"]["violation"]``.
        slippage_ratio: κ.
        predicted_slippage: ``(n,)`` ``ŝ`` overriding ``info["predicted_slippage_bps"]`` (NaN = unknown).

    Returns:
        ``(n,)`` float32 labels in {0, 1}.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    labels = np.zeros(len(infos), dtype=np.float32)
    for i, info in enumerate(infos):
        ltn = info.get("ltn")
        overridden = False
        if isinstance(ltn, Mapping):
            violation = ltn.get("violation")
            if violation is None and "sat_agg" in ltn:
                violation = 1.0 - float(ltn["sat_agg"])
            if violation is not None and float(violation) > violation_threshold:
                labels[i] = 1.0
                continue
            overridden = bool(ltn.get("overridden", False))
        if overridden:
            continue
        if reward_threshold is not None and r[i] < -reward_threshold:
            labels[i] = 1.0
            continue
        predicted = np.nan
        if predicted_slippage is not None:
            predicted = float(predicted_slippage[i])
        elif "predicted_slippage_bps" in info:
            predicted = float(info["predicted_slippage_bps"])
        if (
            float(info.get("exec_qty", 0.0)) != 0.0
            and math.isfinite(predicted)
            and predicted > 0.0
            and float(info.get("slippage_bps", 0.0)) > slippage_ratio * predicted
        ):
            labels[i] = 1.0
    return labels


class BasalGangliaCallback(BaseCallback):
    """Trains the No-Go head from rollouts, feeds LTN infos to the gate and writes ``info["go_nogo"]``.

    Every env step (``_on_step``, after ``env.step``): the observation the
    action was chosen on (``model._last_obs``), the executed action, reward and
    info are labelled with :func:`adverse_labels` and stored in a FIFO buffer;
    every ``train_freq`` calls, ``gradient_steps`` minibatches of
    ``batch_size`` update the No-Go head (``policy.train_nogo``). With
    ``reward_threshold=None``, ``c = reward_std_k · std(r)`` over the rewards
    seen so far (Welford), active from the second reward.

    Logged: ``janus/nogo_loss``, ``janus/adverse_rate`` (labels of the
    collected steps), ``janus/veto_rate`` (vetoed decisions).

    Args:
        buffer_size: FIFO capacity of labelled steps.
        batch_size: minibatch size of a No-Go update.
        train_freq: env-step calls between updates.
        gradient_steps: updates per training call.
        learning_starts: labelled steps needed before the first update.
        reward_threshold: fixed ``c`` ≥ 0, or None for ``k·std(r)``.
        reward_std_k: k of the adaptive threshold.
        violation_threshold: τ_violation (0.1).
        slippage_ratio: κ (2.0).
        slippage_predictor: optional ``(obs, action, info) -> bps`` (e.g.
            ``Cerebellum.predictor``) for ``ŝ`` when the info has none.
        observe_ltn: call ``policy.observe_infos`` each step (logic-loss source 2).
        write_info: copy ``policy.last_go_nogo_batch[i]`` to ``infos[i]["go_nogo"]``.
        seed: seed of the minibatch sampler.
        verbose: SB3 verbosity.

    Raises:
        ValueError: a size or threshold out of range.
        TypeError: (at training start) the model's policy is not a basal-ganglia policy.
    """

    def __init__(
        self,
        *,
        buffer_size: int = 10_000,
        batch_size: int = 64,
        train_freq: int = 1,
        gradient_steps: int = 1,
        learning_starts: int = 32,
        reward_threshold: float | None = None,
        reward_std_k: float = 1.0,
        violation_threshold: float = TAU_LOGIC,
        slippage_ratio: float = 2.0,
        slippage_predictor: Callable[[Any, Any, Mapping[str, Any]], float] | None = None,
        observe_ltn: bool = True,
        write_info: bool = True,
        seed: int | None = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        for name, value in (
            ("buffer_size", buffer_size),
            ("batch_size", batch_size),
            ("train_freq", train_freq),
            ("gradient_steps", gradient_steps),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(_BAD_POSITIVE.format(name, value))
        if (
            isinstance(learning_starts, bool)
            or not isinstance(learning_starts, (int, np.integer))
            or learning_starts < 0
        ):
            raise ValueError(_BAD_NONNEG.format("learning_starts", learning_starts))
        if reward_threshold is not None:
            if isinstance(reward_threshold, bool) or not isinstance(reward_threshold, numbers.Real) or not (
                0.0 <= float(reward_threshold) < math.inf
            ):
                raise ValueError(_BAD_NONNEG.format("reward_threshold", reward_threshold))
            reward_threshold = float(reward_threshold)
        self.reward_std_k = _check_positive("reward_std_k", reward_std_k)
        self.slippage_ratio = _check_positive("slippage_ratio", slippage_ratio)
        if isinstance(violation_threshold, bool) or not isinstance(violation_threshold, numbers.Real) or not (
            0.0 <= float(violation_threshold) < 1.0
        ):
            raise ValueError(_BAD_VIOLATION.format(violation_threshold))
        self.violation_threshold = float(violation_threshold)
        self.buffer_size = int(buffer_size)
        self.batch_size = int(batch_size)
        self.train_freq = int(train_freq)
        self.gradient_steps = int(gradient_steps)
        self.learning_starts = int(learning_starts)
        self.reward_threshold = reward_threshold
        self.slippage_predictor = slippage_predictor
        self.observe_ltn = bool(observe_ltn)
        self.write_info = bool(write_info)
        self._rng = np.random.default_rng(seed)
        self._obs: dict[str, np.ndarray] | np.ndarray | None = None
        self._actions = np.zeros(self.buffer_size, dtype=np.int64)
        self._labels = np.zeros(self.buffer_size, dtype=np.float32)
        self._pos = 0
        self._full = False
        self._calls = 0
        self._r_count = 0
        self._r_mean = 0.0
        self._r_m2 = 0.0

    # ---- storage -------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Labelled steps held."""
        return self.buffer_size if self._full else self._pos

    def _allocate(self, obs: dict[str, np.ndarray] | np.ndarray) -> None:
        if isinstance(obs, dict):
            self._obs = {
                k: np.zeros((self.buffer_size, *np.asarray(v).shape[1:]), dtype=np.float32) for k, v in obs.items()
            }
        else:
            self._obs = np.zeros((self.buffer_size, *np.asarray(obs).shape[1:]), dtype=np.float32)

    def _store(self, obs: dict[str, np.ndarray] | np.ndarray, actions: np.ndarray, labels: np.ndarray) -> None:
        if self._obs is None:
            self._allocate(obs)
        for i in range(actions.shape[0]):
            if isinstance(self._obs, dict):
                for k, buf in self._obs.items():
                    buf[self._pos] = np.asarray(obs[k])[i]  # type: ignore[index]
            else:
                self._obs[self._pos] = np.asarray(obs)[i]  # type: ignore[index]
            self._actions[self._pos] = actions[i]
            self._labels[self._pos] = labels[i]
            self._pos = (self._pos + 1) % self.buffer_size
            self._full = self._full or self._pos == 0

    def _sample(self) -> tuple[dict[str, np.ndarray] | np.ndarray, np.ndarray, np.ndarray]:
        idx = self._rng.integers(0, self.size, size=min(self.batch_size, self.size))
        if isinstance(self._obs, dict):
            obs: dict[str, np.ndarray] | np.ndarray = {k: v[idx] for k, v in self._obs.items()}
        else:
            obs = self._obs[idx]  # type: ignore[index]
        return obs, self._actions[idx], self._labels[idx]

    def _threshold(self, rewards: np.ndarray) -> float | None:
        if self.reward_threshold is not None:
            return self.reward_threshold
        threshold = None
        if self._r_count >= 2:
            threshold = self.reward_std_k * math.sqrt(self._r_m2 / (self._r_count - 1))
        for r in rewards:
            self._r_count += 1
            delta = float(r) - self._r_mean
            self._r_mean += delta / self._r_count
            self._r_m2 += delta * (float(r) - self._r_mean)
        return threshold

    # ---- SB3 hooks -----------------------------------------------------------------
    def _on_training_start(self) -> None:
        if not isinstance(self.model.policy, _BasalGangliaMixin):
            raise TypeError(_NOT_BG_POLICY.format(type(self.model.policy).__name__))

    def _on_training_end(self) -> None:
        self.model.policy.reset_logic_state()

    def _on_step(self) -> bool:
        policy = self.model.policy
        infos = self.locals.get("infos", [])
        dones = self.locals.get("dones")
        obs = self.model._last_obs
        actions = np.asarray(self.locals["actions"]).reshape(-1).astype(np.int64)
        rewards = np.asarray(self.locals["rewards"], dtype=np.float64).reshape(-1)
        predicted = None
        if self.slippage_predictor is not None:
            predicted = np.full(len(infos), np.nan)
            for i, info in enumerate(infos):
                if "predicted_slippage_bps" in info:
                    predicted[i] = float(info["predicted_slippage_bps"])
                elif float(info.get("exec_qty", 0.0)) != 0.0:
                    row = {k: np.asarray(v)[i] for k, v in obs.items()} if isinstance(obs, dict) else np.asarray(obs)[i]
                    predicted[i] = float(self.slippage_predictor(row, int(actions[i]), info))
        labels = adverse_labels(
            rewards,
            infos,
            reward_threshold=self._threshold(rewards),
            violation_threshold=self.violation_threshold,
            slippage_ratio=self.slippage_ratio,
            predicted_slippage=predicted,
        )
        self._store(obs, actions, labels)
        self.logger.record_mean("janus/adverse_rate", float(labels.mean()))
        batch = policy.last_go_nogo_batch
        if batch:
            self.logger.record_mean("janus/veto_rate", float(np.mean([row["vetoed"] for row in batch])))
        if self.write_info and len(batch) == len(infos):
            for info, row in zip(infos, batch):
                info["go_nogo"] = row
        if self.observe_ltn:
            policy.observe_infos(infos, dones)
        self._calls += 1
        if self._calls % self.train_freq == 0 and self.size >= max(self.learning_starts, 1):
            for _ in range(self.gradient_steps):
                loss = policy.train_nogo(*self._sample())
                self.logger.record_mean("janus/nogo_loss", loss)
        return True


__all__ = [
    "BASAL_GANGLIA_POLICIES",
    "HOLD",
    "NOGO_INIT_BIAS",
    "NOGO_WEIGHT_DECAY",
    "TAU_LOGIC",
    "TAU_VETO",
    "BasalGangliaActorCriticPolicy",
    "BasalGangliaCallback",
    "BasalGangliaDQN",
    "BasalGangliaDQNPolicy",
    "BasalGangliaMaskablePolicy",
    "BasalGangliaQRDQN",
    "BasalGangliaQRDQNPolicy",
    "GatedExplorationMixin",
    "NoGoHead",
    "adverse_labels",
    "basal_ganglia_gate",
    "is_basal_ganglia_policy",
]


def _janus_dqn_base() -> type:
    from agents.janus_dqn import JanusDQN

    return JanusDQN


class GatedJanusDQN(GatedExplorationMixin, _janus_dqn_base()):  # type: ignore[misc]
    """``JanusDQN`` (prioritized replay, IS weights, sleep) whose exploratory actions pass the Go/No-Go gate too.

    This is the ``janus-dqn`` algorithm of ``train.py``; its policy must be a
    basal-ganglia DQN policy (``BasalGangliaDQNPolicy``).
    """
