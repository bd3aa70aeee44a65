"""ONNX export of a policy's inference graph, validated against torch with onnxruntime.

The exported graph is the deterministic decision path, observation → action:

* basal-ganglia policies (:mod:`agents.basal_ganglia`): features extractor →
  Go head (Q-values, mean quantiles or logits) and No-Go head
  ``sigmoid(W[e; VPIN; log1p σ])`` → proposal ``argmax Go`` (masked first under
  MaskablePPO) → gate ``final = HOLD if NoGo_proposed ≥ τ_veto ∨ ℓ_logic ≥ τ_logic
  else proposed`` (the same :func:`~agents.basal_ganglia.basal_ganglia_gate`
  the policy runs);
* plain SB3 / sb3-contrib policies: ``DQNPolicy`` and ``QRDQNPolicy`` (greedy),
  ``ActorCriticPolicy`` with a ``Discrete`` (argmax of the logits) or ``Box``
  (mean action clipped to the bounds, as ``predict`` does; no gSDE) action
  space, ``MaskableActorCriticPolicy``.

The Go scores of both come from :func:`~agents.basal_ganglia.go_scores`, the
function the basal-ganglia policies decide with.

| ONNX input | shape | when |
| --- | --- | --- |
| one per ``Dict`` key, named by the key (``obs`` otherwise) | ``(B, *space.shape)``, space dtype | always |
| ``action_masks`` | ``(B, n_actions)`` bool | maskable policies |
| ``logic_loss`` | ``(B,)`` float32, ``1 − SatAgg`` | basal ganglia with ``logic_input=True`` (else ℓ = 0) |

| ONNX output | shape | when |
| --- | --- | --- |
| ``action`` | ``(B,)`` int64 (``(B, d)`` float32 for ``Box``) | always |
| ``go`` | ``(B, n_actions)`` float32 | discrete |
| ``proposed``, ``nogo``, ``vetoed`` | ``(B,)`` int64, ``(B, n_actions)`` float32, ``(B,)`` bool | basal ganglia |

The batch axis is dynamic. The file is written to a temporary sibling, traced
on a batch of 2, checked with ``onnx.checker``, run with onnxruntime on
``n_validation`` other random observations sampled from (a seeded copy of) the
observation space — a different batch size, so a shape frozen by the trace
fails — and compared with the torch graph — float outputs within ``atol`` (1e-5), integer
and boolean outputs exactly — and only then moved into place with
``os.replace`` (atomic on POSIX). The TorchScript-based exporter is used
(``dynamo=False``): the ``torch.export`` path needs ``onnxscript``.

```python
from agents.export import export_onnx
path = export_onnx(model, "model.onnx")           # model: an SB3 algorithm or its policy
```
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import BasePolicy
from torch import nn

from agents.basal_ganglia import go_head, go_scores, is_basal_ganglia_policy
from janus_env.atomic import atomic_path
from janus_env.checks import check_int, check_positive

_NOT_POLICY = "Expected an SB3 algorithm or policy, got {}"
_UNSUPPORTED = "ONNX export supports basal-ganglia, DQN, QR-DQN, actor-critic and maskable policies, got {}"
_UNSUPPORTED_ACTION = "ONNX export of {} supports Discrete or Box action spaces without gSDE, got {!r}"
_UNSUPPORTED_OBS = "ONNX export supports Box, Discrete, MultiDiscrete and MultiBinary observations, got {!r}"
_LOGIC_NEEDS_BG = "`logic_input=True` needs a basal-ganglia policy, got {}"
_MISMATCH = "ONNX output {!r} differs from torch: {}"
_MASK_LOGIT = -1e8
"""Logit of a masked action (sb3-contrib's ``MaskableCategorical`` uses −1e8 as well)."""


def _policy_of(model: Any) -> BasePolicy:
    policy = getattr(model, "policy", model)
    if not isinstance(policy, BasePolicy):
        raise TypeError(_NOT_POLICY.format(type(model).__name__))
    return policy


def _kind(policy: BasePolicy) -> str:
    """``"bg"`` (gated), ``"greedy"`` (argmax of the Go scores) or ``"ac_box"`` (clipped mean action)."""
    if is_basal_ganglia_policy(policy):
        return "bg"
    try:
        head = go_head(policy)
    except TypeError:
        raise TypeError(_UNSUPPORTED.format(type(policy).__name__)) from None
    if head != "logits" or isinstance(policy.action_space, spaces.Discrete):
        return "greedy"
    if isinstance(policy.action_space, spaces.Box) and not getattr(policy, "use_sde", False):
        return "ac_box"
    raise TypeError(_UNSUPPORTED_ACTION.format(type(policy).__name__, policy.action_space))


class PolicyInferenceGraph(nn.Module):
    """The deterministic decision path of a policy as a traceable module (module docstring tables).

    Args:
        policy: the policy (its modules are shared, not copied).
        logic_input: add the ``logic_loss`` input (basal ganglia only).

    Raises:
        TypeError: an unsupported policy, action or observation space.
        ValueError: ``logic_input`` for a policy without the gate.
    """

    def __init__(self, policy: BasePolicy, *, logic_input: bool = False) -> None:
        super().__init__()
        self.policy = policy
        self.kind = _kind(policy)
        if logic_input and self.kind != "bg":
            raise ValueError(_LOGIC_NEEDS_BG.format(type(policy).__name__))
        self.logic_input = bool(logic_input)
        self.masked = isinstance(policy, MaskableActorCriticPolicy)
        obs_space = policy.observation_space
        subspaces = obs_space.spaces if isinstance(obs_space, spaces.Dict) else {"obs": obs_space}
        for sub in subspaces.values():
            if not isinstance(sub, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
                raise TypeError(_UNSUPPORTED_OBS.format(sub))
        self.obs_keys: list[str] = list(subspaces)
        self.is_dict = isinstance(obs_space, spaces.Dict)
        self.input_names = list(self.obs_keys)
        if self.masked:
            self.input_names.append("action_masks")
        if self.logic_input:
            self.input_names.append("logic_loss")
        if self.kind == "bg":
            self.output_names = ["action", "proposed", "go", "nogo", "vetoed"]
        elif self.kind == "ac_box":
            self.output_names = ["action"]
            box = policy.action_space
            self.register_buffer("low", th.as_tensor(box.low, dtype=th.float32))  # type: ignore[union-attr]
            self.register_buffer("high", th.as_tensor(box.high, dtype=th.float32))  # type: ignore[union-attr]
        else:
            self.output_names = ["action", "go"]

    def forward(self, *inputs: th.Tensor) -> tuple[th.Tensor, ...]:
        """Outputs in ``output_names`` order for inputs in ``input_names`` order."""
        n_obs = len(self.obs_keys)
        obs: Any = dict(zip(self.obs_keys, inputs[:n_obs])) if self.is_dict else inputs[0]
        rest = list(inputs[n_obs:])
        masks = rest.pop(0).bool() if self.masked else None
        logic = rest.pop(0).float().reshape(-1) if self.logic_input else None
        policy: Any = self.policy
        if self.kind == "bg":
            go, nogo = policy.go_nogo(obs)
            proposed = _greedy(go, masks)
            if logic is None:
                logic = th.zeros_like(go[:, 0])
            hold_allowed = None if masks is None else masks[:, policy.hold_action]
            final, vetoed = policy.apply_gate(proposed, nogo, logic, hold_allowed)
            return final, proposed, go, nogo, vetoed
        go = go_scores(policy, obs)
        if self.kind == "ac_box":
            return (th.maximum(th.minimum(go, self.high), self.low),)
        return _greedy(go, masks), go


def _greedy(go: th.Tensor, masks: th.Tensor | None) -> th.Tensor:
    """``argmax`` of the Go scores over the allowed actions (all of them without masks)."""
    scores = go if masks is None else th.where(masks, go, th.full_like(go, _MASK_LOGIT))
    return scores.argmax(dim=1)


def _sample_inputs(graph: PolicyInferenceGraph, n: int, seed: int) -> list[np.ndarray]:
    space = copy.deepcopy(graph.policy.observation_space)
    space.seed(seed)
    samples = [space.sample() for _ in range(n)]
    inputs: list[np.ndarray] = []
    subspaces = space.spaces if isinstance(space, spaces.Dict) else {"obs": space}
    for key, sub in subspaces.items():
        rows = [s[key] if isinstance(space, spaces.Dict) else s for s in samples]
        dtype = sub.dtype if sub.dtype is not None else np.float32
        inputs.append(np.stack([np.asarray(r, dtype=dtype) for r in rows]).reshape(n, *sub.shape))
    rng = np.random.default_rng(seed)
    if graph.masked:
        n_actions = int(graph.policy.action_space.n)  # type: ignore[attr-defined]
        masks = rng.random((n, n_actions)) < 0.7
        masks[np.arange(n), rng.integers(0, n_actions, n)] = True  # at least one legal action per row
        inputs.append(masks)
    if graph.logic_input:
        inputs.append(rng.random(n).astype(np.float32) * 0.2)  # straddles τ_logic = 0.1
    return inputs


def _compare(name: str, expected: np.ndarray, got: np.ndarray, atol: float) -> None:
    if expected.shape != got.shape:
        raise RuntimeError(_MISMATCH.format(name, f"shape {got.shape} != {expected.shape}"))
    if np.issubdtype(expected.dtype, np.floating):
        diff = float(np.max(np.abs(expected.astype(np.float64) - got.astype(np.float64)))) if expected.size else 0.0
        if not diff < atol:
            raise RuntimeError(_MISMATCH.format(name, f"max abs diff {diff:.3g} >= {atol:g}"))
    elif not np.array_equal(expected, got):
        raise RuntimeError(_MISMATCH.format(name, f"{int(np.sum(expected != got))} of {expected.size} values differ"))


def export_onnx(
    model: Any,
    path: str | os.PathLike[str],
    *,
    opset: int = 17,
    logic_input: bool = False,
    n_validation: int = 16,
    atol: float = 1e-5,
    seed: int = 0,
) -> Path:
    """Export a policy's inference graph to ONNX, validate it with onnxruntime, write it atomically.

    Args:
        model: an SB3 / sb3-contrib algorithm or its policy.
        path: destination ``.onnx`` file (parent folders are created).
        opset: ONNX opset version (≥ 13).
        logic_input: basal ganglia only — add the ``logic_loss`` input
            (``1 − SatAgg`` per row); otherwise the graph gates on No-Go alone.
        n_validation: random observations used for the torch/onnxruntime check.
        atol: largest accepted absolute difference of float outputs.
        seed: seed of the validation observations.

    Returns:
        The path of the written file.

    Raises:
        TypeError: not a policy, an unsupported policy / space, or ``opset``, ``n_validation`` (ints) or
            ``atol`` (a number) of the wrong type.
        ValueError: ``opset`` < 13, ``n_validation`` < 1, ``atol`` not finite and > 0, or
            ``logic_input`` without the gate.
        RuntimeError: onnxruntime's outputs differ from torch's (nothing is written).
    """
    import onnx
    import onnxruntime as ort

    opset = check_int("opset", opset, low=13)
    n_validation = check_int("n_validation", n_validation, low=1)
    atol = check_positive("atol", atol)
    policy = _policy_of(model)
    graph = PolicyInferenceGraph(policy, logic_input=logic_input)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)

    was_training = policy.training
    policy.set_training_mode(False)
    device = policy.device
    graph.to(device)
    inputs = _sample_inputs(graph, int(n_validation) + 2, int(seed))
    trace_inputs = tuple(th.as_tensor(x[:2], device=device) for x in inputs)  # traced on a batch of 2 ...
    inputs = [x[2:] for x in inputs]  # ... validated on n_validation others: the batch axis must be dynamic
    tensors = tuple(th.as_tensor(x, device=device) for x in inputs)
    dynamic_axes = {name: {0: "batch"} for name in graph.input_names + graph.output_names}
    try:
        with atomic_path(target) as tmp:  # ``target`` changes only once the ONNX Runtime check passes
            # Grad stays enabled on purpose: under no_grad, nn.TransformerEncoderLayer (ViViT, fusion) takes
            # its fused fast path (aten::_transformer_encoder_layer_fwd), which has no ONNX symbolic.
            with th.enable_grad():
                expected = [t.detach().cpu().numpy() for t in graph(*tensors)]
                with warnings.catch_warnings():
                    # the legacy exporter's deprecation notice, and tracer warnings from torch's own attention
                    # code (shape checks); a trace that froze a shape fails the validation below
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.simplefilter("ignore", th.jit.TracerWarning)
                    th.onnx.export(
                        graph,
                        trace_inputs,
                        str(tmp),
                        input_names=graph.input_names,
                        output_names=graph.output_names,
                        dynamic_axes=dynamic_axes,
                        opset_version=int(opset),
                        dynamo=False,
                    )
            onnx.checker.check_model(str(tmp))
            session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            feed = {name: x for name, x in zip(graph.input_names, inputs)}
            got = session.run(graph.output_names, feed)
            for name, exp, out in zip(graph.output_names, expected, got):
                _compare(name, exp, np.asarray(out), float(atol))
    finally:
        policy.set_training_mode(was_training)
    return target


__all__ = ["PolicyInferenceGraph", "export_onnx"]
