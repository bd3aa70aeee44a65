"""Differentiable Gramian Angular Field (GAF) images and sliding-window GAF videos.

A series ``x`` (length T) is rescaled to ``x̃ ∈ (−1, 1)`` and read as angles
``φ = arccos(x̃)``. The Gramian Angular Summation / Difference Fields
(Wang & Oates, 2015, "Imaging Time-Series to Improve Classification and
Imputation") are

    GASF_ij = cos(φ_i + φ_j) = x̃_i·x̃_j − s_i·s_j
    GADF_ij = sin(φ_i − φ_j) = s_i·x̃_j − x̃_i·s_j,      s = sin φ = sqrt(1 − x̃²)

computed here with these algebraic identities (no ``arccos``), so the map is
smooth in ``x̃`` and cheap. JANUS makes the rescaling learnable (JANUS design,
"DiffGAF"):

    x̃ = tanh( (x − min x) / (max x − min x + 1e−8) · α + β )

with ``min``/``max`` taken over each image's own window, ``α₀ = 1`` and
``β₀ = 0``. ``α`` is kept positive by learning ``log α`` (``α = exp(log_alpha)``);
``β`` is learned directly. With ``α = 1, β = 0`` the result equals the
numpy/numba ``wrappers.gaf.gaf_images(series, scaling="tanh")``.

Videos: the series is cut (as by ``Tensor.unfold``) into windows of ``window``
samples every ``stride`` samples; the **last** ``frames`` windows (the most
recent, in chronological order) each become one 2-channel image, channel 0 =
GASF, channel 1 = GADF. Defaults 60/10/16 are the JANUS design values; a series
must hold at least ``window + (frames − 1)·stride`` samples.
"""

from __future__ import annotations

import math

import torch as th
from torch import nn

from janus_env.checks import check_fraction, check_int, check_number, check_positive

_SHORT_SERIES = (
    "DiffGAF(window={}, stride={}, frames={}) needs series of length >= {} "
    "(window + (frames - 1) * stride), got {}"
)
_BAD_RANK = "Expected a series tensor of shape (..., T) with T >= 2, got shape {}"

NORM_EPS = 1e-8
"""The ``+1e−8`` in the min-max denominator (JANUS design)."""

_EXACT_SCALE = 2.0**20
"""Power of two by which ``scale`` multiplies numerator and denominator (see there)."""


def is_tracing() -> bool:
    """True while torch traces or exports the module (JIT trace, ONNX export, ``torch.export``/dynamo).

    Shape checks and side effects are skipped then: the traced graph must not
    depend on Python-side decisions about (possibly symbolic) sizes.
    """
    return bool(th.jit.is_tracing() or th.onnx.is_in_onnx_export() or th.compiler.is_compiling())


def required_length(window: int, stride: int, frames: int) -> int:
    """Shortest series that yields ``frames`` windows: ``window + (frames − 1)·stride``."""
    return window + (frames - 1) * stride


def gaf_from_scaled(x_tilde: th.Tensor, eps: float = 1e-6) -> th.Tensor:
    """GASF and GADF of already-rescaled series.

    ``GASF_ij = x̃_i x̃_j − s_i s_j``, ``GADF_ij = s_i x̃_j − x̃_i s_j`` with
    ``s = sqrt(clamp(1 − x̃², min=eps))`` (Wang & Oates, 2015; the identities
    for ``cos(φ_i + φ_j)`` and ``sin(φ_i − φ_j)`` with ``cos φ = x̃``).

    Args:
        x_tilde: values in [−1, 1], shape ``(..., T)``.
        eps: floor under ``1 − x̃²`` so that ``sqrt`` keeps a finite gradient
            at ``|x̃| = 1``.

    Returns:
        Tensor of shape ``(..., 2, T, T)``: channel 0 GASF, channel 1 GADF.
    """
    s = th.sqrt(th.clamp(1.0 - x_tilde * x_tilde, min=eps))
    xi, xj = x_tilde.unsqueeze(-1), x_tilde.unsqueeze(-2)
    si, sj = s.unsqueeze(-1), s.unsqueeze(-2)
    gasf = xi * xj - si * sj
    gadf = si * xj - xi * sj
    return th.stack((gasf, gadf), dim=-3)


class DiffGAF(nn.Module):
    """Learnable GAF encoder: series → 2-channel GAF images or GAF videos.

    ``x̃ = tanh((x − min)/(max − min + 1e−8)·α + β)``, ``α = exp(log_alpha) > 0``,
    then GASF/GADF by the algebraic identities (see the module docstring;
    Wang & Oates 2015, JANUS design). Everything is batched over arbitrary
    leading dimensions (batch, series, ...) with no Python loops and no
    data-dependent control flow, so the module traces to ONNX.

    A constant window (``max = min``) maps to ``x̃ = tanh(β)`` everywhere; its
    gradients are finite (the ``α`` gradient of such a window is exactly 0,
    the ``β`` gradient is not).

    Args:
        window: samples per frame ``w`` (image side); default 60.
        stride: samples between the starts of consecutive frames ``s``; default 10.
        frames: frames per video ``F``; default 16.
        alpha: initial ``α`` (> 0); default 1.
        beta: initial ``β``; default 0.
        learnable: learn ``α`` and ``β`` (default); ``False`` registers them as
            buffers (the fixed-scaling GAF).
        eps: floor under ``1 − x̃²`` inside ``sqrt``; default 1e−6.

    Raises:
        TypeError: ``window``, ``stride`` or ``frames`` not an int, ``alpha``, ``beta`` or ``eps`` not a number.
        ValueError: for ``window < 2``, ``stride < 1``, ``frames < 1``,
            ``alpha <= 0`` or infinite, a non-finite ``beta`` or ``eps`` outside (0, 1).
    """

    def __init__(
        self,
        window: int = 60,
        stride: int = 10,
        frames: int = 16,
        alpha: float = 1.0,
        beta: float = 0.0,
        learnable: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        window = check_int("window", window, low=2)
        stride = check_int("stride", stride, low=1)
        frames = check_int("frames", frames, low=1)
        alpha = check_positive("alpha", alpha)
        beta = check_number("beta", beta)
        self.window = window
        self.stride = stride
        self.frames = frames
        self.eps = check_fraction("eps", eps, low_open=True, high_open=True)
        # window_index[f, k] = f·stride + k: sample k of frame f within the last
        # `min_length` samples (the same windows as `Tensor.unfold(-1, window, stride)`).
        starts = th.arange(frames).unsqueeze(1) * stride
        self.register_buffer("window_index", starts + th.arange(window), persistent=False)
        log_alpha = th.tensor(math.log(alpha), dtype=th.float32)
        beta_t = th.tensor(float(beta), dtype=th.float32)
        if learnable:
            self.log_alpha = nn.Parameter(log_alpha)
            self.beta = nn.Parameter(beta_t)
        else:
            self.register_buffer("log_alpha", log_alpha)
            self.register_buffer("beta", beta_t)

    @property
    def min_length(self) -> int:
        """Shortest series ``forward`` accepts: ``window + (frames − 1)·stride``."""
        return required_length(self.window, self.stride, self.frames)

    @property
    def alpha(self) -> th.Tensor:
        """The positive slope ``α = exp(log_alpha)``."""
        return self.log_alpha.exp()

    def scale(self, x: th.Tensor) -> th.Tensor:
        """``x̃ = tanh((x − min)/(max − min + 1e−8)·α + β)`` over the last dimension.

        Args:
            x: series, shape ``(..., T)``.

        Returns:
            ``x̃``, same shape as ``x``.
        """
        lo = x.amin(dim=-1, keepdim=True)
        hi = x.amax(dim=-1, keepdim=True)
        # (x − lo)/(hi − lo + 1e−8), with numerator and denominator multiplied by
        # 2^20: scaling by a power of two is exact in binary floating point, so
        # the value is bit-for-bit the same, but the graph no longer holds an
        # `Add(·, 1e−8)`. onnxscript's optimizer (run by torch.onnx.export(dynamo=True))
        # removes `x + c` as a no-op when |c| <= 1e−8 (its `add_0` rule matches 0
        # with abs_tol=1e−8), which turned constant windows into 0/0 = NaN.
        unit = ((x - lo) * _EXACT_SCALE) / ((hi - lo) * _EXACT_SCALE + NORM_EPS * _EXACT_SCALE)
        return th.tanh(unit * self.alpha + self.beta)

    def images(self, x: th.Tensor) -> th.Tensor:
        """One GAF image per series (its own min-max scaling).

        Args:
            x: series, shape ``(..., T)``, ``T >= 2``.

        Returns:
            Tensor ``(..., 2, T, T)``: channel 0 GASF, channel 1 GADF.

        Raises:
            ValueError: if ``x`` has no last dimension of length >= 2.
        """
        if not is_tracing() and (x.dim() < 1 or x.shape[-1] < 2):
            raise ValueError(_BAD_RANK.format(tuple(x.shape)))
        return gaf_from_scaled(self.scale(x), self.eps)

    def windows(self, x: th.Tensor) -> th.Tensor:
        """The last ``frames`` sliding windows of each series, oldest first.

        Args:
            x: series, shape ``(..., T)`` with ``T >= min_length``.

        Returns:
            Tensor ``(..., frames, window)``; frame ``f`` covers samples
            ``[T − window − (frames − 1 − f)·stride, T − (frames − 1 − f)·stride)``.

        Raises:
            ValueError: if the series are shorter than ``min_length``.
        """
        if not is_tracing() and (x.dim() < 1 or x.shape[-1] < self.min_length):
            length = x.shape[-1] if x.dim() else 0
            raise ValueError(
                _SHORT_SERIES.format(self.window, self.stride, self.frames, self.min_length, length)
            )
        # Gather with a constant index on the last `min_length` samples (a constant
        # negative slice): static shapes, and ONNX-friendly (Slice + Gather) where
        # `Tensor.unfold` is not exported correctly by every exporter.
        tail = x[..., -self.min_length:]
        picked = th.index_select(tail, -1, self.window_index.reshape(-1))
        return picked.reshape(x.shape[:-1] + (self.frames, self.window))

    def forward(self, x: th.Tensor) -> th.Tensor:
        """GAF video of the last ``frames`` windows.

        Args:
            x: series, shape ``(B, T)`` or ``(..., T)``, ``T >= min_length``.

        Returns:
            Tensor ``(..., frames, 2, window, window)`` (``(B, F, 2, w, w)``
            for a batch of series): per frame channel 0 GASF, channel 1 GADF.

        Raises:
            ValueError: if the series are shorter than ``min_length``.
        """
        return gaf_from_scaled(self.scale(self.windows(x)), self.eps)

    def extra_repr(self) -> str:
        return f"window={self.window}, stride={self.stride}, frames={self.frames}, eps={self.eps}"
