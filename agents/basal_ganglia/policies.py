"""The four basal-ganglia policies: SB3's DQN, QR-DQN, actor-critic and maskable policies behind the gate.

Every policy proposes an action with its own Go head (:func:`~agents.basal_ganglia.gate.go_scores`:
``argmax Q`` or ``argmax`` mean quantiles, a sample or the argmax of ``softmax(logits)``),
reads the No-Go probabilities of the same features and passes the proposal through the gate
(:func:`~agents.basal_ganglia.gate.gate_arrays`, the numpy twin of
:func:`~agents.basal_ganglia.gate.basal_ganglia_gate`), in rollouts *and* in ``predict``.
:class:`BasalGangliaPolicyMixin` holds all of it — one constructor, one set of
arguments; the concrete classes only pick the SB3 base.

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

**Learning the Go head under the gate.** The log-probability an actor-critic
policy returns in rollouts is that of the *executed* action under the Go
distribution, so PPO credits the substituted HOLD (post-posed shielding,
Alshiekh et al. 2018, AAAI, "Safe reinforcement learning via shielding"); DQN
stores the executed action in its replay buffer. The No-Go head is in neither
algorithm's optimizer: it has its own Adam (``nogo_optimizer``, trained by
:class:`~agents.basal_ganglia.callback.BasalGangliaCallback`) and reads detached
features, so the No-Go pathway does not reshape the Go pathway's representation.

**Exploration.** Exploratory actions (ε-greedy and the warm-up phase of
off-policy algorithms, :mod:`agents.basal_ganglia.algorithms`) are drawn by
:meth:`~BasalGangliaPolicyMixin.explore` from the policy's own generator
``np_random``, seeded from the model seed (:meth:`~BasalGangliaPolicyMixin.seed_exploration`);
nothing draws from the global ``np.random``. Actor-critic proposals are sampled
by SB3's distributions from torch's generator, which SB3 seeds with the model seed.

**Audit.** After every gated decision ``policy.last_go_nogo`` (first row) and
``policy.last_go_nogo_batch`` (one per row) hold JSON-ready dicts::

    {"go": [..], "nogo": [..], "proposed": 2, "final": 0, "vetoed": True,
     "veto_reason": "nogo", "nogo_proposed": 0.93, "logic_loss": 0.0,
     "logic_source": "none", "tau_veto": 0.7, "tau_logic": 0.1}

``BasalGangliaCallback`` copies them to ``info["go_nogo"]``.

**Memory.** With a read path set (``policy.set_memory(reader)``, a :class:`replay.memory.MemoryReader`; the
sleep callback sets it after every sleep) the No-Go the gate reads carries memory's prior,
``NoGo'_a = sigmoid(W_a·z + b_a + Δ_a)`` with ``Δ_a = −β·tanh(z_a/2)`` from the schemas recalled for the
state (:mod:`replay.memory`), in rollouts and in ``predict`` alike. The record then has ``"nogo"`` with the
prior, ``"memory": {"ids", "similarity", "outcome", "advantage", "z", "shift", "nogo_head"}`` (``nogo_head``:
the head alone) and ``veto_reason`` ``"memory"`` when only the prior took the proposal over τ_veto. Memory is
read here, in Python, per decision: :meth:`BasalGangliaPolicyMixin.nogo`, ``go_nogo`` and the exported ONNX
graph (:mod:`agents.export`) are the No-Go head alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.qrdqn.policies import QRDQNPolicy
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, CombinedExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.dqn.policies import DQNPolicy
from torch.nn import functional as F

from agents.basal_ganglia.categorical import propose_categorical
from agents.basal_ganglia.gate import (
    HOLD,
    NOGO_INIT_BIAS,
    NOGO_WEIGHT_DECAY,
    TAU_LOGIC,
    TAU_VETO,
    NoGoHead,
    actor_critic_latents,
    basal_ganglia_gate,
    gate_arrays,
    go_features,
    go_features_dim,
    go_from_features,
    go_head,
    risk_inputs,
)
from agents.basal_ganglia.modes import ModeSwitch
from agents.gaf import is_tracing
from janus_env.checks import check_callable, check_fraction, check_int, check_number, check_positive
from replay.memory import MemoryReader, flatten_states

EXPLORATION_STREAM = 1
"""Spawn key of the exploration generator's stream: ``SeedSequence(seed, spawn_key=(1,))``.

The replay buffer draws from ``default_rng(seed)``; a child stream keeps the
exploration draws independent of its minibatch draws under one model seed."""

_NOT_DISCRETE = "Basal-ganglia policies need a gymnasium.spaces.Discrete action space, got {!r}"
_NO_MARKET = (
    "Expected a Dict observation space with key {!r} holding VPIN at index {} and volatility at index {} "
    "(or market_key=None), got {!r}"
)
_BAD_LOGIC_VALUES = "Expected the logic loss to be {} finite values in [0, 1], got {!r}"
_BAD_LOGIC_BATCH = (
    "The logic losses observed from infos cover {} envs but the batch has {} rows; "
    "call policy.observe_infos(...) with this batch's infos or policy.reset_logic_state()"
)
_BAD_INFO_LTN = "Expected info['ltn']['{}'] in [0, 1], got {!r}"
_BAD_LABELS = "Expected {} labels in {{0, 1}}, got {!r}"
_NOT_BG_POLICY = "Expected a basal-ganglia policy (BasalGangliaDQNPolicy, ...), got {}"
_BAD_MEMORY = "Expected a replay.memory.MemoryReader or None, got {}"
_MEMORY_MISMATCH = ("The memory reads flattened observations of width {} with {} actions, but this policy's "
                    "observations flatten to {} with {} actions")

_GATE_ARGUMENTS = (
    "tau_veto", "tau_logic", "hold_action", "market_key", "vpin_index", "volatility_index",
    "nogo_lr", "nogo_init_bias", "nogo_weight_decay",
)  # fmt: skip


def _default_extractor(observation_space: spaces.Space) -> type[BaseFeaturesExtractor]:
    return CombinedExtractor if isinstance(observation_space, spaces.Dict) else FlattenExtractor


def _batch_size(obs: PyTorchObs) -> int:
    first = obs if isinstance(obs, th.Tensor) else next(iter(obs.values()))
    return int(first.shape[0])


class BasalGangliaPolicyMixin:
    """Go/No-Go machinery of the basal-ganglia policies; put it first, before an SB3 policy class.

    Go = the SB3 policy's own head (:func:`~agents.basal_ganglia.gate.go_scores`);
    No-Go = :class:`~agents.basal_ganglia.gate.NoGoHead` on the same features,
    with its own optimizer (``nogo_optimizer``); final action = the gate's
    (module docstring).

    Args:
        observation_space: observation space (``Dict`` with ``market_key`` unless ``market_key=None``).
        action_space: ``Discrete`` action space.
        lr_schedule: learning-rate schedule of the algorithm's networks (not the No-Go head).
        tau_veto: No-Go threshold τ_veto in (0, 1] (0.7).
        tau_logic: logic-loss threshold τ_logic in (0, 1] (0.1).
        hold_action: index of HOLD, the veto fallback (0).
        market_key: observation key holding VPIN and σ; None feeds zeros.
        vpin_index: index of VPIN in ``obs[market_key]`` (0).
        volatility_index: index of σ (bps) in ``obs[market_key]`` (1).
        nogo_lr: Adam learning rate of the No-Go head (1e-3).
        nogo_init_bias: initial No-Go bias (−3).
        nogo_weight_decay: L2 penalty on the No-Go weights, not the bias (0.1).
        **kwargs: any other argument of the SB3 policy class (``net_arch``,
            ``n_quantiles``, ``share_features_extractor``, ``features_extractor_class``
            — default ``CombinedExtractor`` for ``Dict`` observations,
            ``FlattenExtractor`` otherwise — ...).

    Raises:
        TypeError: the action space is not ``Discrete``, or an argument of the wrong type (an index that
            is not an int, a threshold or rate that is not a number).
        ValueError: a threshold, index or learning rate out of range, or no market key.
    """

    # set by the SB3 policy class it is mixed into
    observation_space: spaces.Space
    action_space: spaces.Discrete
    device: th.device
    obs_to_tensor: Callable[..., tuple[PyTorchObs, bool]]
    action_dist: Distribution

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
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(_NOT_DISCRETE.format(action_space))
        self.tau_veto = check_fraction("tau_veto", tau_veto, low_open=True)
        self.tau_logic = check_fraction("tau_logic", tau_logic, low_open=True)
        self.hold_action = check_int("hold_action", hold_action, low=0, high=int(action_space.n) - 1)
        self.vpin_index = check_int("vpin_index", vpin_index, low=0)
        self.volatility_index = check_int("volatility_index", volatility_index, low=0)
        if market_key is not None:
            market = observation_space.spaces.get(market_key) if isinstance(observation_space, spaces.Dict) else None
            if (
                not isinstance(market, spaces.Box)
                or len(market.shape) != 1
                or max(self.vpin_index, self.volatility_index) >= market.shape[0]
            ):
                raise ValueError(_NO_MARKET.format(market_key, vpin_index, volatility_index, observation_space))
        self.market_key = market_key
        self.nogo_lr = check_positive("nogo_lr", nogo_lr)
        self.nogo_init_bias = check_number("nogo_init_bias", nogo_init_bias)
        self.nogo_weight_decay = check_number("nogo_weight_decay", nogo_weight_decay, low=0)
        self.logic_hook: Callable[[PyTorchObs, th.Tensor], Any] | None = None
        self._info_logic_loss: np.ndarray | None = None
        self.last_go_nogo: dict[str, Any] | None = None
        self.last_go_nogo_batch: list[dict[str, Any]] = []
        self.memory: MemoryReader | None = None
        self._last_recall: Any = None
        self.defer_values = False
        """Actor-critic rollout steps return NaN values and skip the critic (``JanusPPO`` sets it during a rollout
        whose buffer computes the values in one pass, :mod:`replay.deferred_values`)."""
        self.seed_exploration(None)
        kwargs.setdefault("features_extractor_class", _default_extractor(observation_space))
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)  # type: ignore[call-arg]

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)  # type: ignore[misc]  # the algorithm's optimizer, without the No-Go head
        self.nogo_net = NoGoHead(go_features_dim(self), int(self.action_space.n), self.nogo_init_bias)
        self.nogo_net.to(self.device)
        self.nogo_optimizer = th.optim.Adam(
            [
                {"params": [self.nogo_net.linear.weight], "weight_decay": self.nogo_weight_decay},
                {"params": [self.nogo_net.linear.bias], "weight_decay": 0.0},
            ],
            lr=self.nogo_lr,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()  # type: ignore[misc]
        data.update({name: getattr(self, name) for name in _GATE_ARGUMENTS})
        return data

    # ---- pathways ----------------------------------------------------------------
    def risk_inputs(self, obs: PyTorchObs) -> th.Tensor:
        """``[VPIN, log1p(σ_bps)]`` per row, shape ``(B, 2)`` (zeros with ``market_key=None``)."""
        return risk_inputs(obs, self.market_key, self.vpin_index, self.volatility_index)

    def go_nogo(self, obs: PyTorchObs) -> tuple[th.Tensor, th.Tensor]:
        """Go scores and No-Go probabilities, each ``(B, n_actions)``, for preprocessed tensors."""
        features = go_features(self, obs)
        return go_from_features(self, features), self.nogo_net(features, self.risk_inputs(obs))

    def nogo(self, observation: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """No-Go probabilities for a numpy observation: ``(n_actions,)`` or ``(B, n_actions)``."""
        obs, vectorized = self.obs_to_tensor(observation)
        with th.no_grad():
            probs = self.nogo_net(go_features(self, obs), self.risk_inputs(obs)).cpu().numpy()
        return probs if vectorized else probs[0]

    # ---- logic loss ----------------------------------------------------------------
    def set_logic_hook(self, hook: Callable[[PyTorchObs, th.Tensor], Any] | None) -> None:
        """Set (or clear) ``hook(obs, proposed) -> (B,)`` logic losses ``1 − SatAgg`` in [0, 1].

        Raises:
            TypeError: ``hook`` is neither callable nor None.
        """
        self.logic_hook = check_callable("logic_hook", hook, optional=True)

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

    def set_memory(self, memory: MemoryReader | None) -> None:
        """Set (or clear, with None) the memory read path whose prior shifts No-Go (module docstring, "Memory").

        Raises:
            TypeError: ``memory`` is not a ``MemoryReader`` or None.
            ValueError: it reads another observation width or number of actions than this policy's.
        """
        if memory is not None and not isinstance(memory, MemoryReader):
            raise TypeError(_BAD_MEMORY.format(type(memory).__name__))
        if memory is not None:
            space = self.observation_space
            parts = space.spaces.values() if isinstance(space, spaces.Dict) else [space]
            width = int(sum(int(np.prod(part.shape)) for part in parts))
            n_actions = int(self.action_space.n)
            if memory.input_dim != width or memory.n_actions != n_actions:
                raise ValueError(_MEMORY_MISMATCH.format(memory.input_dim, memory.n_actions, width, n_actions))
        self.memory = memory

    def _memory_shift(self, obs: PyTorchObs) -> th.Tensor | None:
        """Memory's No-Go logit shift ``Δ`` for a preprocessed batch, ``(B, n_actions)`` (None without memory);
        the recall is kept for the record."""
        if self.memory is None:
            self._last_recall = None
            return None
        tensors = obs if isinstance(obs, dict) else {"obs": obs}
        recall = self.memory.recall(flatten_states({k: v.detach().cpu().numpy() for k, v in tensors.items()}))
        self._last_recall = recall
        return th.from_numpy(recall.shift).to(device=next(iter(tensors.values())).device, dtype=th.float32)

    def reset_logic_state(self) -> None:
        """Forget the logic losses observed from infos."""
        self._info_logic_loss = None

    def _logic_losses(self, obs: PyTorchObs, proposed: th.Tensor) -> tuple[np.ndarray, str]:
        """``(B,)`` float32 logic losses of the proposals (numpy: the gate compares them there) and their source."""
        batch = proposed.shape[0]
        if self.logic_hook is not None:
            raw = self.logic_hook(obs, proposed)
            # checked in numpy: a decision's handful of values costs a microsecond there, four tensor ops here
            host = raw.detach().cpu().numpy() if isinstance(raw, th.Tensor) else raw
            values = np.array(host, dtype=np.float32).reshape(-1)
            if values.shape[0] != batch or not ((values >= 0.0) & (values <= 1.0)).all():
                raise ValueError(_BAD_LOGIC_VALUES.format(batch, raw))
            return values, "hook"
        if self._info_logic_loss is not None:
            if self._info_logic_loss.shape[0] != batch:
                raise ValueError(_BAD_LOGIC_BATCH.format(self._info_logic_loss.shape[0], batch))
            return self._info_logic_loss, "info"
        return np.zeros(batch, dtype=np.float32), "none"

    # ---- proposal and gate -----------------------------------------------------------
    def _propose(
        self, go: th.Tensor, deterministic: bool, action_masks: np.ndarray | th.Tensor | None
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """The Go pathway's proposal and the log-probabilities ``(B, A)`` it was drawn from (None for value heads):
        ``argmax`` for value heads, else a (masked) sample or mode of the logits, drawn as SB3's categorical
        distribution draws it (:func:`~agents.basal_ganglia.categorical.propose_categorical`)."""
        if go_head(self) != "logits":
            return go.argmax(dim=1), None
        maskable = isinstance(self.action_dist, MaskableCategoricalDistribution)
        return propose_categorical(go, deterministic, action_masks if maskable else None, double_normalize=maskable)

    def _hold_allowed(self, action_masks: np.ndarray | th.Tensor | None, batch: int) -> np.ndarray | None:
        if action_masks is None:
            return None
        masks = action_masks.cpu().numpy() if isinstance(action_masks, th.Tensor) else np.asarray(action_masks)
        return masks.reshape(batch, -1)[:, self.hold_action].astype(bool)

    def apply_gate(
        self, proposed: th.Tensor, nogo: th.Tensor, logic: th.Tensor, hold_allowed: th.Tensor | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """:func:`~agents.basal_ganglia.gate.basal_ganglia_gate` with this policy's τ_veto, τ_logic and HOLD action:
        ``(final, vetoed)`` on tensors (the exported ONNX graph gates through it; the policy's decisions through
        its numpy twin :func:`~agents.basal_ganglia.gate.gate_arrays`, equal on every boundary)."""
        return basal_ganglia_gate(proposed, nogo, logic, tau_veto=self.tau_veto, tau_logic=self.tau_logic,
                                  hold_action=self.hold_action, hold_allowed=hold_allowed)

    def _gate(
        self,
        obs: PyTorchObs,
        features: th.Tensor,
        go: th.Tensor,
        proposed: th.Tensor,
        hold_allowed: np.ndarray | None = None,
    ) -> th.Tensor:
        proposed = proposed.long().reshape(-1)
        with th.no_grad():
            logits = self.nogo_net.logits(features, self.risk_inputs(obs))
            nogo_head = th.sigmoid(logits)
            shift = self._memory_shift(obs)
            # memory's prior on No-Go: sigmoid(W·z + b + Δ)
            nogo = nogo_head if shift is None else th.sigmoid(logits + shift)
        # the rule and the record in numpy (gate_arrays, the same float32 comparisons as basal_ganglia_gate): a
        # decision's values leave torch once, not per op
        logic, source = self._logic_losses(obs, proposed)
        proposed_np, nogo_np = proposed.cpu().numpy(), nogo.cpu().numpy()
        final, vetoed = gate_arrays(proposed_np, nogo_np, logic, tau_veto=self.tau_veto, tau_logic=self.tau_logic,
                                    hold_action=self.hold_action, hold_allowed=hold_allowed)
        self._record(go, nogo_np, proposed_np, final, vetoed, logic, source,
                     nogo_head.cpu().numpy() if shift is not None else None)
        return th.from_numpy(final).to(proposed.device)

    def _record(
        self,
        go: th.Tensor,
        nogo: np.ndarray,
        proposed: np.ndarray,
        final: np.ndarray,
        vetoed: np.ndarray,
        logic: np.ndarray,
        source: str,
        nogo_head: np.ndarray | None = None,
    ) -> None:
        # tolist() gives Python floats, ints and bools: the rows are JSON-ready without a conversion per value
        go_l, nogo_l, logic_l = go.detach().cpu().tolist(), nogo.tolist(), logic.tolist()
        prop_l, final_l, vetoed_l = proposed.tolist(), final.tolist(), vetoed.tolist()
        head_l = None if nogo_head is None else nogo_head.tolist()
        recall = self._last_recall if head_l is not None else None
        tau_veto, tau_logic = self.tau_veto, self.tau_logic
        rows = []
        for i, a in enumerate(prop_l):
            veto = bool(vetoed_l[i])
            nogo_a = float(nogo_l[i][a])
            reason = ""
            if veto:
                by_nogo = nogo_a >= tau_veto
                by_memory = by_nogo and head_l is not None and head_l[i][a] < tau_veto
                by_logic = logic_l[i] >= tau_logic
                reason = "+".join(name for name, hit in (("nogo", by_nogo and not by_memory), ("memory", by_memory),
                                                         ("logic", by_logic)) if hit)
            row = {"go": go_l[i], "nogo": nogo_l[i], "proposed": int(a), "final": int(final_l[i]), "vetoed": veto,
                   "veto_reason": reason, "nogo_proposed": nogo_a, "logic_loss": float(logic_l[i]),
                   "logic_source": source, "tau_veto": tau_veto, "tau_logic": tau_logic}
            if recall is not None:
                row["memory"] = memory_record(recall, i, head_l[i])
            rows.append(row)
        self.last_go_nogo_batch = rows
        self.last_go_nogo = rows[0] if rows else None

    def _gate_proposals(self, obs: PyTorchObs, proposed: np.ndarray) -> np.ndarray:
        """Gate given proposals for a preprocessed observation; ``(B,)`` int64 final actions."""
        actions = th.as_tensor(proposed.reshape(-1), dtype=th.long, device=self.device)
        with th.no_grad():
            features = go_features(self, obs)
            go = go_from_features(self, features)
            final = self._gate(obs, features, go, actions)
        return final.cpu().numpy().astype(np.int64)

    # ---- SB3 entry points (every family) ---------------------------------------------
    def _predict(  # type: ignore[override]
        self,
        observation: PyTorchObs,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> th.Tensor:
        with self._decision_mode():
            features = go_features(self, observation)
            go = go_from_features(self, features)
            proposed, _ = self._propose(go, deterministic, action_masks)
            return self._gate(observation, features, go, proposed, self._hold_allowed(action_masks, go.shape[0]))

    @staticmethod
    def _decision_mode() -> th.inference_mode:
        """``torch.inference_mode`` where gradients are off already (SB3's rollouts and ``predict``): a decision's
        tensors are never saved for a backward pass (the No-Go head and PPO recompute theirs from the stored
        observations), and inference mode skips autograd's view and version tracking, ≈ 12% of a batch-4
        decision. With gradients on (the attribution) or under tracing (export), nothing changes."""
        return th.inference_mode(not th.is_grad_enabled() and not is_tracing())

    def _forward_actor_critic(
        self, obs: th.Tensor, deterministic: bool, action_masks: np.ndarray | None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Rollout step of the actor-critic policies: final action, value, log-prob of the final action."""
        with self._decision_mode():
            return self._actor_critic_step(obs, deterministic, action_masks)

    def _actor_critic_step(
        self, obs: th.Tensor, deterministic: bool, action_masks: np.ndarray | None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        policy: Any = self
        if self.defer_values:  # the actor alone: the rollout's values come from one batched critic pass (JanusPPO)
            pi_features = go_features(self, obs)
            latent_pi = policy.mlp_extractor.forward_actor(pi_features)
            values = th.full((pi_features.shape[0], 1), float("nan"), device=pi_features.device)
        else:
            pi_features, latent_pi, latent_vf = actor_critic_latents(policy, obs)
            values = policy.value_net(latent_vf)
        go = policy.action_net(latent_pi)
        proposed, log_p = self._propose(go, deterministic, action_masks)
        final = self._gate(obs, pi_features, go, proposed, self._hold_allowed(action_masks, go.shape[0]))
        log_prob = log_p.gather(1, final.reshape(-1, 1)).reshape(-1)  # type: ignore[union-attr]
        return final.reshape((-1, *self.action_space.shape)), values, log_prob

    # ---- train / eval mode ---------------------------------------------------------------
    def set_training_mode(self, mode: bool) -> None:
        """SB3's ``set_training_mode``, as one pass over the flags it sets (:class:`~agents.basal_ganglia.modes.
        ModeSwitch`): SB3 calls it before every ``predict`` and ``nn.Module.train`` walks every submodule."""
        switch = self.__dict__.get("_mode_switch")
        if switch is None:
            switch = self.__dict__["_mode_switch"] = ModeSwitch()
        switch(mode, self._moded_modules, super().set_training_mode)  # type: ignore[misc]

    def _moded_modules(self) -> Any:
        """The modules SB3's ``set_training_mode`` sets: the policy and its ``q_net`` (DQN) or ``quantile_net``
        (QR-DQN) — not the target network, which stays in eval mode — or every module (actor-critic)."""
        kind = go_head(self)
        if kind == "logits":
            return self.modules()  # type: ignore[attr-defined]
        net = self.q_net if kind == "q" else self.quantile_net  # type: ignore[attr-defined]
        return (self, *net.modules())

    # ---- exploration -------------------------------------------------------------------
    def seed_exploration(self, seed: int | None) -> None:
        """(Re)create ``np_random``, the generator of :meth:`explore`, from the model seed.

        ``np.random.default_rng(SeedSequence(seed, spawn_key=(EXPLORATION_STREAM,)))``;
        ``seed=None`` draws fresh OS entropy. The gated off-policy algorithms call
        it with the model seed at setup and from ``set_random_seed``.
        """
        self.np_random = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(EXPLORATION_STREAM,)))

    def explore(self, observation: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """Uniformly random actions from ``np_random``, one per observation row, passed through the gate.

        Returns:
            ``(B,)`` int64 final actions for a batched observation, a 0-d array for a single one.
        """
        obs, vectorized = self.obs_to_tensor(observation)
        proposed = self.np_random.integers(int(self.action_space.n), size=_batch_size(obs))
        final = self._gate_proposals(obs, proposed)
        return final if vectorized else final.reshape(())

    def gate_actions(self, observation: np.ndarray | dict[str, np.ndarray], actions: np.ndarray) -> np.ndarray:
        """Gate externally chosen actions for a numpy observation.

        Args:
            observation: single or batched observation.
            actions: proposed actions, one per observation row.

        Returns:
            The final actions, same shape as ``actions`` (int64 unless ``actions`` has another integer dtype).
        """
        obs, _ = self.obs_to_tensor(observation)
        arr = np.asarray(actions)
        final = self._gate_proposals(obs, arr)
        return final.astype(arr.dtype if np.issubdtype(arr.dtype, np.integer) else np.int64).reshape(arr.shape)

    # ---- No-Go learning ------------------------------------------------------------
    def nogo_loss(
        self, obs: PyTorchObs, actions: th.Tensor, labels: th.Tensor, features: th.Tensor | None = None
    ) -> th.Tensor:
        """Per-action mean BCE of the executed action's No-Go against the adverse label (features detached).

        ``L = mean_{a ∈ A_batch} mean_{t: a_t = a} BCE(NoGo(s_t)_a, y_t)``: each
        action's head gets the same weight however rarely it is executed
        *(ours)*; otherwise a vetoed (hence rare) action's head would learn
        from a vanishing share of each batch. The L2 penalty ``(λ/2)‖W‖²`` is
        Adam's weight decay on ``W`` (``nogo_weight_decay``). ``features``
        (detached) may be passed when already computed.
        """
        if features is None:
            with th.no_grad():
                features = go_features(self, obs)
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
            features = go_features(self, obs)
            self.nogo_net.update_normalizer(features, self.risk_inputs(obs))
        loss = self.nogo_loss(obs, acts, y, features)
        self.nogo_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.nogo_optimizer.step()
        self.nogo_optimizer.zero_grad(set_to_none=True)
        return float(loss.item())


def _finite_or_none(values: Any) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def memory_record(recall: Any, row: int, nogo_head: list[float]) -> dict[str, Any]:
    """JSON-ready record of what memory recalled for batch row ``row`` (NaN as None; only recalled schemas): the
    audit record's ``go_nogo["memory"]``, from the policy and from the decision service alike."""
    found = recall.ids[row] >= 0
    return {
        "ids": [int(v) for v in recall.ids[row][found]],
        "similarity": [float(v) for v in recall.similarity[row][found]],
        "outcome": _finite_or_none(recall.outcome[row]),
        "advantage": [float(v) for v in recall.advantage[row]],
        "z": [float(v) for v in recall.z[row]],
        "shift": [float(v) for v in recall.shift[row]],
        "nogo_head": [float(v) for v in nogo_head],
    }


class BasalGangliaDQNPolicy(BasalGangliaPolicyMixin, DQNPolicy):
    """DQN policy whose greedy action passes the gate; Go = ``Q(s, ·)`` of ``q_net``.

    Arguments: :class:`BasalGangliaPolicyMixin`'s, then any ``DQNPolicy`` argument.
    """


class BasalGangliaQRDQNPolicy(BasalGangliaPolicyMixin, QRDQNPolicy):
    """QR-DQN policy (sb3-contrib) with the gate; Go = mean over quantiles of ``Z(s, ·)``.

    Arguments: :class:`BasalGangliaPolicyMixin`'s, then any ``QRDQNPolicy`` argument (``n_quantiles``, ...).
    """


class BasalGangliaActorCriticPolicy(BasalGangliaPolicyMixin, ActorCriticPolicy):
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

    Arguments: :class:`BasalGangliaPolicyMixin`'s, then any ``ActorCriticPolicy`` argument.
    """

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        return self._forward_actor_critic(obs, deterministic, None)


class BasalGangliaMaskablePolicy(BasalGangliaPolicyMixin, MaskableActorCriticPolicy):
    """MaskablePPO policy with the gate; the action mask applies to the proposal, HOLD must be allowed to veto.

    Arguments: :class:`BasalGangliaPolicyMixin`'s, then any ``MaskableActorCriticPolicy`` argument.
    """

    def forward(
        self,
        obs: th.Tensor,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        return self._forward_actor_critic(obs, deterministic, action_masks)


BASAL_GANGLIA_POLICIES: tuple[type, ...] = (
    BasalGangliaDQNPolicy,
    BasalGangliaQRDQNPolicy,
    BasalGangliaActorCriticPolicy,
    BasalGangliaMaskablePolicy,
)
"""Every basal-ganglia policy class."""


def is_basal_ganglia_policy(policy: Any) -> bool:
    """Whether ``policy`` carries the Go/No-Go gate (``go_nogo``, ``nogo_net``, ``train_nogo``)."""
    return isinstance(policy, BasalGangliaPolicyMixin)


def check_basal_ganglia_policy(policy: Any) -> None:
    """Raise unless ``policy`` is a basal-ganglia policy.

    Raises:
        TypeError: ``policy`` does not carry the gate.
    """
    if not is_basal_ganglia_policy(policy):
        raise TypeError(_NOT_BG_POLICY.format(type(policy).__name__))


__all__ = [
    "BASAL_GANGLIA_POLICIES",
    "EXPLORATION_STREAM",
    "BasalGangliaActorCriticPolicy",
    "BasalGangliaDQNPolicy",
    "BasalGangliaMaskablePolicy",
    "BasalGangliaPolicyMixin",
    "BasalGangliaQRDQNPolicy",
    "check_basal_ganglia_policy",
    "is_basal_ganglia_policy",
    "memory_record",
]
