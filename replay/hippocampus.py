"""Hippocampus: pattern-separation encoder and FIFO episodic buffer.

The hippocampus turns dense, overlapping market states into sparse, nearly
orthogonal codes (pattern separation) and keeps a bounded, time-indexed record
of them (episodic memory) for the sleep phase to consolidate.

* :class:`PatternSeparationEncoder` — ``h = TopK_k(ReLU(W_sep·s + b))`` with an
  orthogonal ``W_sep`` kept near-orthogonal by ``λ‖WᵀW − I‖²_F`` and
  ``k = ⌈ρ·d_h⌉``, ρ = 0.1 (Project JANUS, part 4, "pattern separation").
* :class:`EpisodicBuffer` — FIFO ring of codes, timestamps and payload ids with
  ``between(t0, t1)`` / ``last(n)`` temporal queries through a sorted timestamp
  index and ``np.searchsorted``; capacity 10,000 by default (Project JANUS,
  "episodic capacity").
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from janus_env.checks import check_fraction, check_int, check_number

__all__ = ["EpisodicBatch", "EpisodicBuffer", "PatternSeparationEncoder"]

_BAD_INPUT_SHAPE = "Expected input with last dimension {}, got shape {}"
_BAD_CODES_SHAPE = "Expected `codes` of shape (n, {}), got {}"
_BAD_LENGTHS = "Expected `codes`, `timestamps` and `payload_ids` to have the same length, got {}, {} and {}"
_NON_FINITE_TIMESTAMPS = "Expected finite `timestamps`"
_BAD_RANGE = "Expected `t0` <= `t1`, got t0={!r}, t1={!r}"


class PatternSeparationEncoder(nn.Module):
    """Sparse pattern-separation encoder ``h = TopK_k(ReLU(W_sep·s + b))``.

    ``W_sep`` (``hidden_dim × input_dim``) starts orthogonal
    (``torch.nn.init.orthogonal_``) and ``b`` starts at zero *(ours)*. The code
    keeps the ``k = ⌈ρ·d_h⌉`` largest activations of each row and zeroes the
    rest (Project JANUS, part 4: ρ = 0.1). Ties are broken deterministically
    in favour of the lower unit index (stable descending sort). Because the
    ReLU comes first, a code has exactly ``k`` non-zeros whenever at least ``k``
    units are active, and fewer otherwise (never more).

    Args:
        input_dim: Size ``d_in`` of the flattened state ``s``.
        hidden_dim: Size ``d_h`` of the code (typically ``d_h ≥ d_in``: an
            expansion, as in the dentate gyrus).
        sparsity: Fraction ρ of units kept active, in (0, 1]; default 0.1.
        ortho_lambda: Weight λ of :meth:`orthogonality_penalty`; default
            1e-2 *(ours — the spec leaves λ open)*.

    Raises:
        TypeError: A dimension that is not an int, or ρ or λ not a real number.
        ValueError: On a non-positive dimension, ρ outside (0, 1] or λ < 0 (or not finite).
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        *,
        sparsity: float = 0.1,
        ortho_lambda: float = 1e-2,
    ) -> None:
        super().__init__()
        self.input_dim = check_int("input_dim", input_dim, low=1)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, low=1)
        self.sparsity = check_fraction("sparsity", sparsity, low_open=True)
        self.ortho_lambda = check_number("ortho_lambda", ortho_lambda, low=0)
        self.k = min(self.hidden_dim, math.ceil(self.sparsity * self.hidden_dim))
        self.linear = nn.Linear(self.input_dim, self.hidden_dim)
        nn.init.orthogonal_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    @property
    def weight(self) -> torch.Tensor:
        """The separation matrix ``W_sep`` of shape ``(hidden_dim, input_dim)``."""
        return self.linear.weight

    def orthogonality_penalty(self) -> torch.Tensor:
        """Orthogonality regularizer ``λ‖WᵀW − I‖²_F`` (Project JANUS, part 4).

        For a non-square ``W`` only one Gram matrix can be the identity: with
        ``d_h ≥ d_in`` the columns are orthonormal and the penalty is
        ``λ‖WᵀW − I_{d_in}‖²_F``; with ``d_h < d_in`` the rows are and it is
        ``λ‖WWᵀ − I_{d_h}‖²_F``. Either way it is zero at the orthogonal init.

        Returns:
            A differentiable scalar tensor.
        """
        w = self.linear.weight
        gram = w.T @ w if self.hidden_dim >= self.input_dim else w @ w.T
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        return self.ortho_lambda * torch.sum((gram - eye) ** 2)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """Encode states into sparse codes.

        Args:
            s: Tensor of shape ``(..., input_dim)``.

        Returns:
            Codes of shape ``(..., hidden_dim)`` with at most ``k`` non-zeros
            per row; gradients flow through the kept units.

        Raises:
            ValueError: If the last dimension is not ``input_dim``.
        """
        if s.shape[-1] != self.input_dim:
            raise ValueError(_BAD_INPUT_SHAPE.format(self.input_dim, tuple(s.shape)))
        h = torch.relu(self.linear(s))
        if self.k == self.hidden_dim:
            return h
        order = torch.sort(h, dim=-1, descending=True, stable=True).indices[..., : self.k]
        mask = torch.zeros_like(h).scatter_(-1, order, 1.0)
        return h * mask

    @torch.no_grad()
    def encode_numpy(self, s: np.ndarray) -> np.ndarray:
        """Encode a numpy batch without tracking gradients.

        Args:
            s: Array of shape ``(n, input_dim)`` (any real dtype).

        Returns:
            ``float32`` codes of shape ``(n, hidden_dim)``.
        """
        param = self.linear.weight
        x = torch.as_tensor(np.asarray(s), dtype=param.dtype, device=param.device)
        return self.forward(x).cpu().numpy().astype(np.float32, copy=False)


class EpisodicBatch(NamedTuple):
    """Rows returned by :class:`EpisodicBuffer` queries (oldest first)."""

    codes: np.ndarray
    """``(n, code_dim)`` float32 codes."""
    timestamps: np.ndarray
    """``(n,)`` float64 timestamps."""
    payload_ids: np.ndarray
    """``(n,)`` int64 ids of the payload (e.g. replay-buffer index)."""


class EpisodicBuffer:
    """FIFO episodic memory of codes with a timestamp index.

    Storage is preallocated numpy arrays used as a ring: once ``capacity``
    entries are held, each new entry evicts the oldest one. Timestamps are in
    whatever unit the caller uses (seconds, steps, …), compared as float64.

    Temporal queries go through a sorted timestamp index built lazily after
    writes: when timestamps arrive in non-decreasing order (the usual case) the
    index is just the ring read from the oldest slot (wraparound handled, no
    sort); otherwise a stable ``argsort`` orders the ring by timestamp, ties in
    insertion order. ``between`` then costs two ``np.searchsorted`` calls.

    Args:
        code_dim: Width of each code.
        capacity: Maximum number of entries; default 10,000 (Project JANUS
            "episodic capacity").

    Raises:
        TypeError: ``code_dim`` or ``capacity`` is not an int.
        ValueError: On a non-positive ``code_dim`` or ``capacity``.
    """

    def __init__(self, code_dim: int, capacity: int = 10_000) -> None:
        self.code_dim = check_int("code_dim", code_dim, low=1)
        self.capacity = check_int("capacity", capacity, low=1)
        self.codes = np.zeros((self.capacity, self.code_dim), dtype=np.float32)
        self.timestamps = np.zeros(self.capacity, dtype=np.float64)
        self.payload_ids = np.zeros(self.capacity, dtype=np.int64)
        self.pos = 0
        self.full = False
        self._monotone = True
        self._last_ts = -np.inf
        self._index: np.ndarray | None = None  # slots in timestamp order

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, codes: np.ndarray, timestamps: np.ndarray, payload_ids: np.ndarray) -> None:
        """Append a batch, evicting the oldest entries when full.

        Args:
            codes: ``(n, code_dim)`` codes.
            timestamps: ``(n,)`` finite timestamps.
            payload_ids: ``(n,)`` integer payload ids.

        Raises:
            ValueError: On mismatched shapes or non-finite timestamps.
        """
        codes = np.asarray(codes, dtype=np.float32)
        timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        payload_ids = np.asarray(payload_ids, dtype=np.int64).reshape(-1)
        if codes.ndim != 2 or codes.shape[1] != self.code_dim:
            raise ValueError(_BAD_CODES_SHAPE.format(self.code_dim, codes.shape))
        n = codes.shape[0]
        if not n == timestamps.shape[0] == payload_ids.shape[0]:
            raise ValueError(_BAD_LENGTHS.format(n, timestamps.shape[0], payload_ids.shape[0]))
        if n == 0:
            return
        if not np.all(np.isfinite(timestamps)):
            raise ValueError(_NON_FINITE_TIMESTAMPS)
        if timestamps[0] < self._last_ts or np.any(np.diff(timestamps) < 0):
            self._monotone = False
        self._last_ts = float(timestamps[-1])
        if n > self.capacity:  # only the newest `capacity` rows survive
            codes, timestamps, payload_ids = (a[-self.capacity :] for a in (codes, timestamps, payload_ids))
            self.pos = (self.pos + n - self.capacity) % self.capacity
            self.full = True
            n = self.capacity
        slots = (self.pos + np.arange(n)) % self.capacity
        self.codes[slots] = codes
        self.timestamps[slots] = timestamps
        self.payload_ids[slots] = payload_ids
        if self.pos + n >= self.capacity:
            self.full = True
        self.pos = (self.pos + n) % self.capacity
        self._index = None

    def _insertion_order(self) -> np.ndarray:
        """Occupied slots from oldest to newest insertion."""
        if not self.full:
            return np.arange(self.pos)
        return (self.pos + np.arange(self.capacity)) % self.capacity

    def _sorted_index(self) -> np.ndarray:
        """Occupied slots in timestamp order (ties in insertion order)."""
        if self._index is None:
            order = self._insertion_order()
            if not self._monotone:
                order = order[np.argsort(self.timestamps[order], kind="stable")]
            self._index = order
        return self._index

    def _gather(self, slots: np.ndarray) -> EpisodicBatch:
        return EpisodicBatch(self.codes[slots].copy(), self.timestamps[slots].copy(), self.payload_ids[slots].copy())

    def between(self, t0: float, t1: float) -> EpisodicBatch:
        """Entries with ``t0 ≤ timestamp ≤ t1``, in timestamp order.

        Raises:
            ValueError: If ``t0 > t1``.
        """
        if not t0 <= t1:
            raise ValueError(_BAD_RANGE.format(t0, t1))
        index = self._sorted_index()
        ts = self.timestamps[index]
        lo = np.searchsorted(ts, t0, side="left")
        hi = np.searchsorted(ts, t1, side="right")
        return self._gather(index[lo:hi])

    def last(self, n: int) -> EpisodicBatch:
        """The ``n`` most recently inserted entries, oldest first.

        Raises:
            TypeError: If ``n`` is not an int.
            ValueError: If ``n < 0``.
        """
        n = check_int("n", n, low=0)
        order = self._insertion_order()
        return self._gather(order[max(0, order.shape[0] - int(n)) :])

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain-array state for checkpoints."""
        return {
            "codes": self.codes.copy(),
            "timestamps": self.timestamps.copy(),
            "payload_ids": self.payload_ids.copy(),
            "pos": np.asarray(self.pos),
            "full": np.asarray(self.full),
            "monotone": np.asarray(self._monotone),
            "last_ts": np.asarray(self._last_ts),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output (shapes must match)."""
        codes = np.asarray(state["codes"], dtype=np.float32)
        if codes.shape != self.codes.shape:
            raise ValueError(_BAD_CODES_SHAPE.format(self.code_dim, codes.shape))
        self.codes[...] = codes
        self.timestamps[...] = np.asarray(state["timestamps"], dtype=np.float64)
        self.payload_ids[...] = np.asarray(state["payload_ids"], dtype=np.int64)
        self.pos = int(state["pos"])
        self.full = bool(state["full"])
        self._monotone = bool(state["monotone"])
        self._last_ts = float(state["last_ts"])
        self._index = None
