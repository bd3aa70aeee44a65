"""Hippocampus: pattern-separation encoder and FIFO episodic buffer.

The hippocampus turns dense, overlapping market states into sparse, nearly
orthogonal codes (pattern separation) and keeps a bounded, time-indexed record
of them (episodic memory) for the sleep phase to consolidate.

* :class:`PatternSeparationEncoder` — ``h = TopK_k(ReLU(W_sep·z + b))`` on the
  standardized state ``z = (s − m)/σ``, with an orthogonal ``W_sep`` kept
  near-orthogonal by ``λ‖WᵀW − I‖²_F`` and ``k = ⌈ρ·d_h⌉``, ρ = 0.1 (Project
  JANUS, part 4, "pattern separation"). :meth:`~PatternSeparationEncoder.fit`
  trains it as a tied-weight k-sparse autoencoder (Makhzani & Frey 2014,
  "k-Sparse Autoencoders", ICLR): ``ẑ = W_sepᵀh + c``, loss
  ``mean‖z − ẑ‖²/d_in + λ‖WᵀW − I‖²_F`` — the codes must keep what tells
  states apart, the penalty keeps the units decorrelated.
* :class:`EpisodicBuffer` — FIFO ring of codes, timestamps and payload ids with
  ``between(t0, t1)`` / ``last(n)`` temporal queries through a sorted timestamp
  index and ``np.searchsorted``; capacity 10,000 by default (Project JANUS,
  "episodic capacity").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from janus_env.checks import check_fraction, check_int, check_number, check_positive

__all__ = ["EncoderFitReport", "EpisodicBatch", "EpisodicBuffer", "PatternSeparationEncoder"]

_BAD_INPUT_SHAPE = "Expected input with last dimension {}, got shape {}"
_BAD_CODES_SHAPE = "Expected `codes` of shape (n, {}), got {}"
_BAD_LENGTHS = "Expected `codes`, `timestamps` and `payload_ids` to have the same length, got {}, {} and {}"
_NON_FINITE_TIMESTAMPS = "Expected finite `timestamps`"
_BAD_RANGE = "Expected `t0` <= `t1`, got t0={!r}, t1={!r}"
_BAD_FIT_DATA = "Expected finite training states of shape (n >= 2, {}), got shape {}"
_BAD_FIT_RNG = "Expected `rng` to be a numpy.random.Generator, got {!r}"


@dataclass(frozen=True)
class EncoderFitReport:
    """What :meth:`PatternSeparationEncoder.fit` did: losses on the whole training set before and after."""

    steps: int
    """Adam steps taken."""
    reconstruction_before: float
    """``mean‖z − ẑ‖²/d_in`` before the first step (standardized units)."""
    reconstruction_after: float
    """The same after the last step."""
    penalty_before: float
    """``λ‖WᵀW − I‖²_F`` before."""
    penalty_after: float
    """The same after."""


class PatternSeparationEncoder(nn.Module):
    """Sparse pattern-separation encoder ``h = TopK_k(ReLU(W_sep·z + b))``, ``z = (s − m)/σ``.

    ``W_sep`` (``hidden_dim × input_dim``) starts orthogonal
    (``torch.nn.init.orthogonal_``) and ``b`` starts at zero *(ours)*. The code
    keeps the ``k = ⌈ρ·d_h⌉`` largest activations of each row and zeroes the
    rest (Project JANUS, part 4: ρ = 0.1). Ties are broken deterministically
    in favour of the lower unit index (stable descending sort). Because the
    ReLU comes first, a code has exactly ``k`` non-zeros whenever at least ``k``
    units are active, and fewer otherwise (never more).

    The input standardization ``m``, ``σ`` (buffers ``input_mean``,
    ``input_scale``) is the identity until :meth:`fit` sets it from the data it
    trains on (per-feature mean and standard deviation; a constant feature
    keeps σ = 1) *(ours: observation features differ in scale by orders of
    magnitude, and an unscaled code is decided by the largest ones)*.
    ``decoder_bias`` (``c``) is only used by the reconstruction objective.

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
        self.decoder_bias = nn.Parameter(torch.zeros(self.input_dim))
        self.register_buffer("input_mean", torch.zeros(self.input_dim))
        self.register_buffer("input_scale", torch.ones(self.input_dim))
        self.register_buffer("fit_steps", torch.zeros((), dtype=torch.int64))

    @property
    def weight(self) -> torch.Tensor:
        """The separation matrix ``W_sep`` of shape ``(hidden_dim, input_dim)``."""
        return self.linear.weight

    @property
    def trained(self) -> bool:
        """Whether :meth:`fit` has taken at least one step (the standardization is then set too)."""
        return int(self.fit_steps.item()) > 0

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

    def standardize(self, s: torch.Tensor) -> torch.Tensor:
        """``z = (s − m)/σ`` (the identity before :meth:`fit`)."""
        return (s - self.input_mean) / self.input_scale

    def _encode_standardized(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.linear(z))
        if self.k == self.hidden_dim:
            return h
        order = torch.sort(h, dim=-1, descending=True, stable=True).indices[..., : self.k]
        mask = torch.zeros_like(h).scatter_(-1, order, 1.0)
        return h * mask

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
        return self._encode_standardized(self.standardize(s))

    def reconstruction_loss(self, s: torch.Tensor) -> torch.Tensor:
        """``mean_rows ‖z − ẑ‖²/d_in`` with ``ẑ = W_sepᵀ·h + c`` (tied weights; standardized units)."""
        z = self.standardize(s)
        z_hat = self._encode_standardized(z) @ self.linear.weight + self.decoder_bias
        return torch.mean((z - z_hat) ** 2)

    def fit(
        self,
        states: np.ndarray,
        *,
        steps: int,
        lr: float = 1e-2,
        batch_size: int = 256,
        rng: np.random.Generator,
    ) -> EncoderFitReport:
        """Train ``W_sep``, ``b`` and ``c`` as a tied-weight k-sparse autoencoder with the orthogonality penalty.

        Minimizes ``L = mean‖z − ẑ‖²/d_in + λ‖WᵀW − I‖²_F`` (module docstring; Makhzani & Frey 2014) with
        ``steps`` Adam steps (a fresh optimizer each call) on minibatches of ``batch_size`` rows drawn
        uniformly with replacement by ``rng`` — the same data, seed and step count give the same weights.
        The first call that takes a step also sets the standardization ``m``, ``σ`` from ``states``; later
        calls keep it (a moving standardization would move every code).

        Args:
            states: ``(n, input_dim)`` finite states, ``n ≥ 2``.
            steps: Adam steps (0: only the report).
            lr: Adam learning rate.
            batch_size: rows per step.
            rng: generator of the minibatch rows.

        Returns:
            An :class:`EncoderFitReport` (losses over all of ``states``).

        Raises:
            TypeError: ``rng`` is not a numpy Generator; a setting of the wrong type.
            ValueError: ``states`` of the wrong shape or not finite; ``steps`` < 0, ``lr`` or ``batch_size`` <= 0.
        """
        steps = check_int("steps", steps, low=0)
        lr = check_positive("lr", lr)
        batch_size = check_int("batch_size", batch_size, low=1)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(_BAD_FIT_RNG.format(rng))
        x_np = np.asarray(states, dtype=np.float64)
        if x_np.ndim != 2 or x_np.shape[0] < 2 or x_np.shape[1] != self.input_dim or not np.all(np.isfinite(x_np)):
            raise ValueError(_BAD_FIT_DATA.format(self.input_dim, x_np.shape))
        param = self.linear.weight
        if steps > 0 and not self.trained:
            std = x_np.std(axis=0)
            with torch.no_grad():
                self.input_mean.copy_(torch.as_tensor(x_np.mean(axis=0), dtype=param.dtype))
                self.input_scale.copy_(torch.as_tensor(np.where(std > 1e-8, std, 1.0), dtype=param.dtype))
        x = torch.as_tensor(x_np, dtype=param.dtype, device=param.device)
        with torch.no_grad():
            recon_before = float(self.reconstruction_loss(x))
            penalty_before = float(self.orthogonality_penalty())
        optimizer = torch.optim.Adam([self.linear.weight, self.linear.bias, self.decoder_bias], lr=lr)
        rows = rng.integers(0, x.shape[0], size=(steps, batch_size))
        for batch in rows:
            loss = self.reconstruction_loss(x[torch.as_tensor(batch)]) + self.orthogonality_penalty()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        self.fit_steps += steps
        with torch.no_grad():
            return EncoderFitReport(
                steps=steps,
                reconstruction_before=recon_before,
                reconstruction_after=float(self.reconstruction_loss(x)),
                penalty_before=penalty_before,
                penalty_after=float(self.orthogonality_penalty()),
            )

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

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict``; a state saved before the encoder was trainable (no ``decoder_bias``,
        ``input_mean``, ``input_scale``, ``fit_steps``) loads as an untrained encoder."""
        state = dict(state_dict)
        for name, value in (("decoder_bias", torch.zeros(self.input_dim)), ("input_mean", torch.zeros(self.input_dim)),
                            ("input_scale", torch.ones(self.input_dim)),
                            ("fit_steps", torch.zeros((), dtype=torch.int64))):
            state.setdefault(name, value)
        return super().load_state_dict(state, strict=strict, assign=assign)


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
