"""The Go pathway's proposal from action logits: SB3's categorical draw, without building distribution objects.

An actor-critic policy proposes ``a ~ softmax(logits)`` (or ``argmax`` when deterministic) and its rollout stores
``log π(final | s)`` of the action the gate lets through. SB3 does this by building a
``CategoricalDistribution`` (sb3-contrib: ``MaskableCategoricalDistribution``) per step, ≈ 40 small tensor ops and
argument checks at rollout batch sizes, where the draw itself is five. :func:`propose_categorical` computes the same
values bit for bit from the same generator state:

* torch's ``Categorical(logits=x)`` keeps ``log p = x − logsumexp(x)``, samples
  ``multinomial(softmax(log p), 1, replacement=True)`` and its mode is ``argmax softmax(log p)``;
* sb3-contrib's ``MaskableCategorical`` normalizes twice — once when built and once more when it (un)masks,
  ``log p' = m − logsumexp(m)`` with ``m = where(mask, log p, −1e8)`` (``m = log p`` without masks) — which changes
  the last bits, so ``double_normalize`` reproduces it for a maskable policy.

``tests/agents/test_categorical.py`` checks both against the distributions themselves.
"""

from __future__ import annotations

import numpy as np
import torch as th
from torch.nn import functional as F

MASKED_LOGIT = -1e8
"""sb3-contrib's ``HUGE_NEG``: the logit a masked action gets."""


def propose_categorical(
    logits: th.Tensor,
    deterministic: bool,
    masks: np.ndarray | th.Tensor | None = None,
    double_normalize: bool = False,
) -> tuple[th.Tensor, th.Tensor]:
    """``(actions (B,), log p (B, A))`` for logits ``(B, A)``: a draw from (or the mode of) ``softmax(logits)``.

    ``log_prob(a) = log_p.gather(1, a[:, None])``. The same values as SB3's ``CategoricalDistribution``
    (``double_normalize=False``) or ``MaskableCategoricalDistribution`` (``True``, the only one that takes
    ``masks``) with the same torch generator state; see the module docstring.

    Raises:
        ValueError: ``masks`` given with ``double_normalize=False`` (plain categorical policies take no masks).
    """
    log_p = logits - logits.logsumexp(dim=-1, keepdim=True)
    if double_normalize:
        if masks is not None:
            keep = th.as_tensor(masks, dtype=th.bool, device=logits.device).reshape(log_p.shape)
            log_p = th.where(keep, log_p, th.tensor(MASKED_LOGIT, dtype=log_p.dtype, device=log_p.device))
        log_p = log_p - log_p.logsumexp(dim=-1, keepdim=True)
    elif masks is not None:
        raise ValueError("Got action masks for a policy without masking (double_normalize=False)")
    probs = F.softmax(log_p, dim=-1)
    actions = probs.argmax(dim=-1) if deterministic else th.multinomial(probs, 1, True).reshape(-1)
    return actions, log_p


__all__ = ["MASKED_LOGIT", "propose_categorical"]
