"""Gated cross-attention fusion of modalities (the "thalamus").

JANUS design:

    H1 = H_ts + λ_vis · CrossAttn(H_ts, H_vis)
    H2 = H1  + λ_text · CrossAttn(H1, H_text)
    λ  = sigmoid(W_g [H_m; H_n] + b_g)

Choices made here *(ours)*, where the design leaves them open:

* ``CrossAttn(Q, KV)`` is multi-head scaled dot-product attention
  ``softmax(Q W_q (KV W_k)ᵀ / sqrt(d_h)) KV W_v`` followed by an output
  projection (Vaswani et al. 2017), with pre-LayerNorm on queries and keys
  (as in Flamingo's gated cross-attention, Alayrac et al. 2022). It is plain
  matmul attention, so it exports to ONNX.
* The gate is **one scalar per sample and stage**. Its inputs are the
  layer-normalized token means of the two streams: for stage 1
  ``H_m = LN(mean_i H_ts[i])`` and ``H_n = LN(mean_j H_vis[j])``; for stage 2
  ``H_m = LN(mean_i H1[i])`` and ``H_n = LN(mean_j H_text[j])`` (one LayerNorm
  per input, Ba et al. 2016, so the gate's logit does not scale with the token
  norms); ``[·;·]`` is concatenation, so ``W_g`` is ``(1, 2d)``. One number per
  modality and decision is what the audit log records.
* ``W_g`` starts at zero and ``b_g`` at ``gate_bias`` (default 0), so both gates
  start at ``sigmoid(gate_bias) = 0.5`` for every input and learn from there.
* The text stream is optional: without it (``h_text=None``) stage 2 is skipped,
  ``H2 = H1`` and ``λ_text`` is reported as 0. So is the visual stream
  (``use_vision=False``, ``h_vis=None``): stage 1 is skipped, ``H1 = H_ts`` and
  ``λ_vis`` is reported as 0 — the extractor without its GAF video
  (``JanusExtractor(vision=False)``), whose worth the ablation measures.
"""

from __future__ import annotations

import math

import torch as th
from torch import nn
from torch.nn import functional as F

from agents.gaf import is_tracing
from janus_env.checks import check_int

_BAD_HEADS = "Expected `d_model` ({!r}) divisible by `n_heads` ({!r})"
_NO_TEXT_STAGE = "Got `h_text` but this GatedCrossAttention was built with use_text=False"
_NO_VISION_STAGE = "Got `h_vis` but this GatedCrossAttention was built with use_vision=False"
_NEEDS_VISION = "This GatedCrossAttention was built with use_vision=True: expected `h_vis` tokens (B, M, d), got None"
_BAD_TOKENS = "Expected `{}` of shape (B, N, {}), got {}"

GATE_KEYS = ("vis", "text")
"""Keys of the gate dict returned by :class:`GatedCrossAttention`."""


class CrossAttention(nn.Module):
    """Multi-head cross-attention ``CrossAttn(Q, KV)`` with pre-LayerNorm.

    ``softmax(LN(Q) W_q · (LN(KV) W_k)ᵀ / sqrt(d_h)) · LN(KV) W_v`` per head, heads
    concatenated and projected by ``W_o`` (Vaswani et al. 2017). Plain matmuls,
    no masks: ONNX-friendly.

    Args:
        d_model: token width of both streams.
        n_heads: heads; must divide ``d_model``.
        dropout: dropout on the attention weights; default 0.

    Raises:
        TypeError: if ``d_model`` or ``n_heads`` is not an int.
        ValueError: if ``d_model`` or ``n_heads`` < 1 or ``n_heads`` does not divide ``d_model``.
    """

    def __init__(self, d_model: int, n_heads: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        d_model = check_int("d_model", d_model, low=1)
        n_heads = check_int("n_heads", n_heads, low=1)
        if d_model % n_heads != 0:
            raise ValueError(_BAD_HEADS.format(d_model, n_heads))
        self.d_model = d_model
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.norm_q = nn.LayerNorm(d_model)
        self.norm_kv = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: th.Tensor) -> th.Tensor:
        batch, n_tokens, _ = x.shape
        return x.reshape(batch, n_tokens, self.n_heads, self.d_head).transpose(1, 2)

    def forward(self, query: th.Tensor, context: th.Tensor) -> th.Tensor:
        """Attend from ``query (B, Nq, d)`` to ``context (B, Nk, d)``; returns ``(B, Nq, d)``."""
        q = self._heads(self.q(self.norm_q(query)))
        k, v = self.kv(self.norm_kv(context)).chunk(2, dim=-1)
        k, v = self._heads(k), self._heads(v)
        # scores laid out (B, h, Nk, Nq) and normalised over the keys axis -2: torch's CPU softmax over a short
        # last axis (Nk = a few frames) runs ~50x slower than over a middle axis; the result is the same
        scores = th.matmul(k, q.transpose(-2, -1)) * (1.0 / math.sqrt(self.d_head))
        weights = self.dropout(th.softmax(scores, dim=-2))
        mixed = th.matmul(weights.transpose(-2, -1), v).transpose(1, 2)
        batch, n_query = query.shape[0], query.shape[1]
        return self.out(mixed.reshape(batch, n_query, self.d_model))


class ModalityGate(nn.Module):
    """``λ = sigmoid(W_g [LN(mean_i H_m[i]); LN(mean_j H_n[j])] + b_g)``, one value per sample.

    ``W_g`` and ``b_g`` are plain parameters rather than an ``nn.Linear`` so that
    SB3's orthogonal initialisation of the policy (``ortho_init=True``, which
    re-initialises every ``nn.Linear``) keeps the documented start λ₀ = sigmoid(b₀).

    Args:
        d_model: token width of both streams.
        gate_bias: initial ``b_g`` (``W_g`` starts at 0); default 0 → λ₀ = 0.5.
    """

    def __init__(self, d_model: int, gate_bias: float = 0.0) -> None:
        super().__init__()
        self.norm_m = nn.LayerNorm(d_model)
        self.norm_n = nn.LayerNorm(d_model)
        self.weight = nn.Parameter(th.zeros(1, 2 * d_model))
        self.bias = nn.Parameter(th.full((1,), float(gate_bias)))

    def forward(self, h_m: th.Tensor, h_n: th.Tensor) -> th.Tensor:
        """Gate ``(B,)`` from token streams ``h_m (B, N, d)`` and ``h_n (B, M, d)``."""
        pooled = th.cat((self.norm_m(h_m.mean(dim=1)), self.norm_n(h_n.mean(dim=1))), dim=-1)
        return th.sigmoid(F.linear(pooled, self.weight, self.bias)).squeeze(-1)


class GatedCrossAttention(nn.Module):
    """Two-stage gated cross-attention: time series ← vision ← (optional) text.

    ``H1 = H_ts + λ_vis·CrossAttn(H_ts, H_vis)``,
    ``H2 = H1 + λ_text·CrossAttn(H1, H_text)``,
    ``λ = sigmoid(W_g[H_m; H_n] + b_g)`` with ``H_m``, ``H_n`` the token means
    of the attending and the attended stream (JANUS design; gate inputs and
    per-sample gates *(ours)*, see the module docstring).

    Args:
        d_model: token width of every stream (project them to it first).
        n_heads: heads of each cross-attention; default 2.
        use_text: build the text stage; default ``False``.
        dropout: attention dropout; default 0.
        gate_bias: initial gate bias; default 0 (gates start at 0.5).
        use_vision: build the visual stage; default ``True`` (``False``: ``H1 = H_ts``, ``λ_vis`` = 0).

    Raises:
        TypeError: if ``use_vision`` is not a bool.
        ValueError: for bad sizes (see :class:`CrossAttention`).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int = 2,
        use_text: bool = False,
        dropout: float = 0.0,
        gate_bias: float = 0.0,
        use_vision: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(use_vision, bool):
            raise TypeError(f"Expected `use_vision` to be a bool, got {use_vision!r}")
        self.d_model = d_model
        self.use_text = bool(use_text)
        self.use_vision = use_vision
        if use_vision:
            self.attn_vis = CrossAttention(d_model, n_heads, dropout)
            self.gate_vis = ModalityGate(d_model, gate_bias)
        if self.use_text:
            self.attn_text = CrossAttention(d_model, n_heads, dropout)
            self.gate_text = ModalityGate(d_model, gate_bias)

    def _check(self, name: str, tokens: th.Tensor) -> None:
        if is_tracing():
            return
        if tokens.dim() != 3 or tokens.shape[-1] != self.d_model:
            raise ValueError(_BAD_TOKENS.format(name, self.d_model, tuple(tokens.shape)))

    def forward(
        self,
        h_ts: th.Tensor,
        h_vis: th.Tensor | None,
        h_text: th.Tensor | None = None,
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """Fuse the streams.

        Args:
            h_ts: time-series tokens ``(B, N, d)`` (the queries).
            h_vis: visual tokens ``(B, M, d)``; ``None`` for a module built with ``use_vision=False``.
            h_text: text tokens ``(B, K, d)`` or ``None``.

        Returns:
            ``(H2 (B, N, d), {"vis": λ_vis (B,), "text": λ_text (B,)})``;
            ``λ_text`` is zeros when there is no text, ``λ_vis`` without the visual stage.

        Raises:
            ValueError: if a stream is not ``(B, ·, d_model)``, ``h_text`` is
                given to a module built with ``use_text=False``, or ``h_vis`` is given
                to one built with ``use_vision=False`` (or missing with ``use_vision=True``).
        """
        self._check("h_ts", h_ts)
        if self.use_vision:
            if h_vis is None:
                raise ValueError(_NEEDS_VISION)
            self._check("h_vis", h_vis)
            lam_vis = self.gate_vis(h_ts, h_vis)
            h1 = h_ts + lam_vis[:, None, None] * self.attn_vis(h_ts, h_vis)
        elif h_vis is not None:
            raise ValueError(_NO_VISION_STAGE)
        else:
            lam_vis, h1 = h_ts.new_zeros(h_ts.shape[0]), h_ts
        if h_text is None:
            return h1, {"vis": lam_vis, "text": th.zeros_like(lam_vis)}
        if not self.use_text:
            raise ValueError(_NO_TEXT_STAGE)
        self._check("h_text", h_text)
        lam_text = self.gate_text(h1, h_text)
        h2 = h1 + lam_text[:, None, None] * self.attn_text(h1, h_text)
        return h2, {"vis": lam_vis, "text": lam_text}
