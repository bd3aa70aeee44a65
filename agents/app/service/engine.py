"""The policy of a served run: ONNX Runtime on its exported graph (default) or torch, gated as in evaluation.

The run's ``model.zip`` is loaded with the safe loader (:func:`agents.app.safe_load.load_model`: nothing in the
file is unpickled), then exported once per model version with :func:`agents.export.export_onnx` (validated
against torch there, written atomically) into the store, ``<store>/models/<version>/policy.onnx``; later starts
reuse the file. ONNX Runtime runs it on one thread.

A basal-ganglia policy decides as it does in ``evaluate.py`` (:mod:`agents.basal_ganglia.shield_logic`): the Go
pathway proposes, then the gate ``final = HOLD if NoGo_proposed ≥ τ_veto ∨ ℓ_logic ≥ τ_logic else proposed``
with ``ℓ_logic = 1 − SatAgg`` of the proposal under the account's LTN shield in the current state. The graph is
exported without the logic input; its proposal and No-Go go through :func:`gate_row`, the policy's own gate
(:meth:`~agents.basal_ganglia.policies.BasalGangliaPolicyMixin.apply_gate`, the function the exported graph and
the policy gate with) on one row in numpy: the same comparisons in float32 with the policy's τ_veto, τ_logic and
HOLD (``tests/service/test_parts.py`` holds it to ``apply_gate`` on every boundary). Torch stays off the ONNX
path: a few torch ops between two ONNX Runtime calls cost the next call ≈ 0.1 ms (measured). ``--engine torch``
runs ``model.predict`` with the shield's ℓ_logic as the policy's logic hook instead. Maskable policies
(``MaskablePPO``) get the shield's action masks.

**Memory.** A run that saved the memory its policy read (``memory.npz``, :data:`agents.app.config.MEMORY_FILE`)
is served reading it, as ``evaluate.py`` evaluates it: the No-Go the gate compares is
``sigmoid(logit(NoGo) + Δ)`` with memory's prior ``Δ`` for the current observation (:mod:`replay.memory`).
``--engine torch`` hands the reader to the policy (``model.predict`` applies it); the ONNX graph is exported
without it (its ``nogo`` is the head's alone), so the prior is added to the graph's No-Go in numpy
(:func:`replay.memory.nogo_with_prior`, rounded to float32 as the policy's tensors are) before :func:`gate_row`.
Sleep jobs change weights only (SWR replay), so every version of a run reads the run's memory.

``go_nogo`` (the answer's and the audit record's) has the keys of the policy's own record
(``BasalGangliaPolicyMixin.last_go_nogo``): ``go``, ``nogo``, ``proposed``, ``final``, ``vetoed``,
``veto_reason``, ``nogo_proposed``, ``logic_loss``, ``logic_source`` (``"shield"``), ``tau_veto``, ``tau_logic``,
and ``memory`` (what was recalled, :func:`agents.basal_ganglia.memory_record`) when the run reads memory.
``confidence`` is the softmax of the Go scores at the executed action: the policy's probability for an
actor-critic, a Boltzmann weight of the Q-values (temperature 1) for a value-based head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import MaskablePPO

from agents.app.config import load_memory
from agents.app.safe_load import load_model
from agents.basal_ganglia import gate_arrays, go_scores, is_basal_ganglia_policy, memory_record, uses_action_masks
from agents.export import export_onnx
from janus_env.checks import check_choice
from replay.memory import MemoryReader, flatten_states, nogo_with_prior

ENGINES = ("onnx", "torch")
"""``onnx``: ONNX Runtime on the exported graph (default, about 7× faster on CPU); ``torch``: ``model.predict``."""
ONNX_FILE = "policy.onnx"

_DISCRETE_ONLY = ("the decision service serves Discrete action spaces (action_type 'discrete' or 'sized'); "
                  "this run's is {}")


class PolicyDecision(NamedTuple):
    """What the policy decided: the gated ``action``, its ``proposed`` one, ``confidence`` and ``go_nogo``."""

    action: int
    proposed: int
    confidence: float
    go_nogo: dict[str, Any] | None


def _softmax_at(go: np.ndarray, index: int) -> float:
    z = go.astype(np.float64) - float(np.max(go))
    e = np.exp(z)
    return float(e[index] / e.sum())


def gate_row(proposed: int, nogo: np.ndarray, logic: float, policy: Any,
             hold_allowed: bool | None = None) -> tuple[int, bool]:
    """``policy.apply_gate`` on one row: ``(final, vetoed)`` for the proposal ``proposed``, its No-Go
    probabilities ``nogo`` (float32) and the logic loss ``logic``.

    ``vetoed = (NoGo_proposed ≥ τ_veto ∨ ℓ_logic ≥ τ_logic) ∧ proposed ≠ HOLD [∧ HOLD allowed]``,
    ``final = HOLD if vetoed else proposed``: :func:`agents.basal_ganglia.gate.gate_arrays`, the policy's own
    numpy gate (float32 comparisons, as its tensors compare).
    """
    final, vetoed = gate_arrays(np.array([proposed]), nogo, np.array([logic]), tau_veto=policy.tau_veto,
                                tau_logic=policy.tau_logic, hold_action=int(policy.hold_action),
                                hold_allowed=None if hold_allowed is None else np.array([hold_allowed]))
    return int(final[0]), bool(vetoed[0])


def _logic_loss(action_sat: np.ndarray, proposed: int) -> float:
    """``1 − SatAgg`` of the proposal; the float rounding of 1 − 1 never goes below 0 (as the shield's hook)."""
    loss = 1.0 - float(action_sat[proposed])
    return 0.0 if abs(loss) < 1e-6 else loss


class DecisionEngine:
    """The served policy: :meth:`decide` maps an observation and the shield's scores to a :class:`PolicyDecision`.

    Args:
        model: the loaded SB3 model (CPU).
        engine: ``"onnx"`` or ``"torch"``.
        onnx_path: where the exported graph lives (written if missing); needed for ``"onnx"``.

    The policy decides with the memory it reads (``policy.memory``: set by :func:`agents.app.config.load_memory`,
    as :meth:`load` does, or by training), if any (module docstring, "Memory").

    Raises:
        ValueError: an unknown ``engine``, or a model whose action space is not Discrete.
    """

    def __init__(self, model: Any, engine: str = "onnx", onnx_path: Path | None = None) -> None:
        check_choice("engine", engine, ENGINES)
        policy = model.policy
        if not isinstance(policy.action_space, spaces.Discrete):
            raise ValueError(_DISCRETE_ONLY.format(policy.action_space))
        self.memory: MemoryReader | None = getattr(policy, "memory", None)
        self.model = model
        self.policy = policy
        self.engine = engine
        self.gated = is_basal_ganglia_policy(policy)
        self.masked = isinstance(model, MaskablePPO)  # the policy (and its ONNX graph) takes masks
        self.mask_actions = uses_action_masks(model)  # False: JanusPPO trained without masks gets all-True ones
        self.keys = list(policy.observation_space.spaces)
        self._action_sat = np.ones(int(policy.action_space.n))
        policy.set_training_mode(False)
        self.session: Any = None
        if engine == "onnx":
            import onnxruntime as ort

            if onnx_path is None:
                raise ValueError("engine='onnx' needs `onnx_path`")
            if not onnx_path.is_file():
                export_onnx(model, onnx_path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
            self.outputs = [o.name for o in self.session.get_outputs()]
        elif self.gated:
            policy.set_logic_hook(self._hook)

    @classmethod
    def load(cls, model_path: Path, algo: str, config: dict[str, Any], *, engine: str, cache_dir: Path,
             trust_remote_code: bool = False, memory_dir: Path | None = None) -> DecisionEngine:
        """Load the run's model safely (:func:`~agents.app.safe_load.load_model`) and build the engine; with
        ``memory_dir``, the policy reads the memory saved there (the run's folder), when there is one.

        Raises:
            FileNotFoundError / ValueError: what the safe loader raises (a missing or refused file, a bad config),
                an unsupported policy, or a damaged memory file or one for another policy.
        """
        th.set_num_threads(1)
        model = load_model(model_path, algo, device="cpu", config=config, trust_remote_code=trust_remote_code)
        if memory_dir is not None:
            load_memory(memory_dir, model)
        return cls(model, engine, cache_dir / ONNX_FILE)

    def _hook(self, obs: Any, proposed: th.Tensor) -> th.Tensor:
        actions = proposed.reshape(-1).cpu().numpy()
        return th.as_tensor([_logic_loss(self._action_sat, int(a)) for a in actions], dtype=th.float32)

    def decide(self, obs: dict[str, np.ndarray], action_sat: np.ndarray, masks: np.ndarray | None) -> PolicyDecision:
        """The policy's decision on ``obs`` (the env's observation dict) with the shield's per-action SatAgg
        ``action_sat`` and, for a maskable policy, its ``masks`` (all True for a model trained without masks: it
        proposes from its whole distribution and the shield overrides, as in training)."""
        if self.masked and not self.mask_actions:
            masks = np.ones(len(self._action_sat), dtype=bool)
        if self.engine == "onnx":
            return self._decide_onnx(obs, action_sat, masks)
        return self._decide_torch(obs, action_sat, masks)

    def _decide_onnx(self, obs: dict[str, np.ndarray], action_sat: np.ndarray,
                     masks: np.ndarray | None) -> PolicyDecision:
        feed = {key: obs[key][None] for key in self.keys}
        if self.masked:
            feed["action_masks"] = np.asarray(masks, dtype=bool)[None]
        if not self.gated:
            go, action = self.session.run(["go", "action"], feed)
            action = int(action[0])
            return PolicyDecision(action, action, _softmax_at(go[0], action), None)
        go, proposed, nogo = self.session.run(["go", "proposed", "nogo"], feed)
        go, proposed, nogo = go[0], int(proposed[0]), nogo[0]
        recalled = None
        if self.memory is not None:  # memory's prior on the graph's No-Go, as the policy's gate adds it
            recall = self.memory.recall(flatten_states({key: obs[key][None] for key in self.keys}))
            recalled = memory_record(recall, 0, [float(v) for v in nogo])
            nogo = nogo_with_prior(nogo, recall.shift[0]).astype(np.float32)
        logic = _logic_loss(action_sat, proposed)
        hold_allowed = None if masks is None else bool(masks[self.policy.hold_action])
        final, vetoed = gate_row(proposed, nogo, logic, self.policy, hold_allowed)
        return self._gated(go, nogo, proposed, final, vetoed, logic, recalled)

    def _decide_torch(self, obs: dict[str, np.ndarray], action_sat: np.ndarray,
                      masks: np.ndarray | None) -> PolicyDecision:
        self._action_sat = np.asarray(action_sat, dtype=np.float64)
        kwargs = {"action_masks": masks} if self.masked else {}
        action, _ = self.model.predict(obs, deterministic=True, **kwargs)
        action = int(np.asarray(action).reshape(-1)[0])
        if self.gated:
            row = self.policy.last_go_nogo
            return self._gated(np.asarray(row["go"]), np.asarray(row["nogo"]), int(row["proposed"]), action,
                               bool(row["vetoed"]), float(row["logic_loss"]), row.get("memory"))
        with th.no_grad():
            tensor, _ = self.policy.obs_to_tensor(obs)
            go = go_scores(self.policy, tensor)[0].cpu().numpy()
        return PolicyDecision(action, action, _softmax_at(go, action), None)

    def _gated(self, go: np.ndarray, nogo: np.ndarray, proposed: int, final: int, vetoed: bool,
               logic: float, recalled: dict[str, Any] | None = None) -> PolicyDecision:
        """The decision and its record; the veto reasons as the policy names them (``memory`` when only memory's
        prior took the proposal's No-Go over τ_veto)."""
        policy = self.policy
        by_nogo = vetoed and float(nogo[proposed]) >= policy.tau_veto
        by_memory = by_nogo and recalled is not None and recalled["nogo_head"][proposed] < policy.tau_veto
        by_logic = vetoed and logic >= policy.tau_logic
        reasons = (("nogo", by_nogo and not by_memory), ("memory", by_memory), ("logic", by_logic))
        record = {
            "go": [float(v) for v in go], "nogo": [float(v) for v in nogo], "proposed": proposed, "final": final,
            "vetoed": vetoed, "veto_reason": "+".join(name for name, hit in reasons if hit),
            "nogo_proposed": float(nogo[proposed]), "logic_loss": logic, "logic_source": "shield",
            "tau_veto": policy.tau_veto, "tau_logic": policy.tau_logic,
        }
        if recalled is not None:
            record["memory"] = recalled
        return PolicyDecision(final, proposed, _softmax_at(go, final), record)


__all__ = ["ENGINES", "ONNX_FILE", "DecisionEngine", "PolicyDecision", "gate_row"]
