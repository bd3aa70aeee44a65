"""Gramian Angular Fields: price windows as images, and the ``GAFObservation`` wrappers.

A window ``x_1 … x_n`` is rescaled to ``x̃_i ∈ [−1, 1]`` and read as angles
``φ_i = arccos(x̃_i)``; the two Gramian Angular Fields of Wang & Oates (2015),
"Imaging Time-Series to Improve Classification and Imputation" (IJCAI) /
"Encoding Time Series as Images for Visual Inspection and Classification
Using Tiled Convolutional Neural Networks" (AAAI workshop), are

* GASF (summation):  ``GASF_ij = cos(φ_i + φ_j) = x̃_i·x̃_j − sin φ_i·sin φ_j``
* GADF (difference): ``GADF_ij = sin(φ_i − φ_j) = sin φ_i·x̃_j − x̃_i·sin φ_j``

with ``cos φ_i = x̃_i`` and ``sin φ_i = sqrt(1 − x̃_i²) ≥ 0`` (φ ∈ [0, π]).
We evaluate the right-hand sides (no ``arccos``/``cos``/``sin`` calls), as
pyts does, but take ``sin φ = sqrt((1 − x̃)(1 + x̃))``: ``1 − x̃²`` loses
every digit to cancellation when ``x̃`` is within an ulp or two of ±1 (an
absolute error of ~1e−8 in ``sin φ``), the factored form keeps full relative
accuracy. Consequences used in the tests: ``GASF`` is exactly symmetric,
``GADF`` exactly antisymmetric with an exactly zero diagonal, and
``GASF_ii = cos 2φ_i = 2x̃_i² − 1``.

Scaling (``scaling=``), applied to each window on its own:

* ``"minmax"`` (default): ``x̃ = 2·(x − min)/(max − min) − 1`` (Wang & Oates
  2015; pyts' ``GramianAngularField`` default ``sample_range=(-1, 1)``). A
  constant window (``max = min``) maps to ``x̃ = −1`` everywhere (φ = π), so
  its GASF is all ones and its GADF all zeros — the same images pyts returns
  (scikit-learn's ``MinMaxScaler`` maps a constant feature to the low end of
  the range). scikit-learn also treats ranges below ``10·ε ≈ 2.2e−15`` as
  constant (x̃ ≈ −1); we rescale any positive range to the full [−1, 1], so
  such near-constant windows differ from pyts.
* ``"tanh"``: ``x̃ = tanh((x − min)/(max − min + 1e−8)·α + β)`` with ``α = 1,
  β = 0`` — the fixed-parameter version of the torch ``DiffGAF``
  (``agents/gaf.py``), so that module can be tested against this one.
  ``x̃ ∈ [0, tanh 1 ≈ 0.762]``; a constant window maps to ``x̃ = 0`` (φ = π/2),
  GASF all −1, GADF all zeros.

Precision: the rescaling and ``sin φ`` are always computed in float64 (also
for float32 input); the ``n²`` products are computed in float64 and rounded
once when stored as float32, so float32 output is within ~1e−7 of the
float64 result and always inside ``[−1, 1]``. float64 output can exceed ±1 by
a few ulp (round-off of ``x̃_i x̃_j − s_i s_j``); nothing is clipped.

Kernels: numba, ``cache=True``, compiled for float32/float64 C-contiguous
input × float32/float64 output (inputs of any other real dtype are converted
first). ``parallel=True`` spreads the windows over numba's thread pool
(``prange``); results are bitwise identical either way. The default is the
serial kernel: on the shared 2-core reference machine
(``benchmarks/bench_gaf.py``, 6 runs) the pool won only for large batches with
a fresh float64 output (~1.3× in median, 5 runs of 6), where the cost is the
first-touch page faults of the new array; it lost for float32 output (what
the wrappers produce), for a reused ``out=`` (memory bound: one core nearly
saturates the bandwidth) and by ~10× for small batches (64 × 16, thread
wake-up). On machines with more cores, try ``parallel=True``. Like every
numba ``parallel=True`` function, the parallel kernel must not be entered
from several Python threads at once under the ``workqueue`` threading layer.

``benchmarks/bench_gaf.py`` times these kernels against pyts.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorObservationWrapper
from gymnasium.vector.utils import batch_space
from numba import njit, prange

from janus_env.checks import check_bool, check_choice, check_int

SCALINGS: tuple[str, ...] = ("minmax", "tanh")
"""Accepted values of ``scaling``."""

GAF_KEY = "gaf"
"""Observation key the wrappers add."""

PRICES_KEY = "prices"
"""Observation key the wrappers read (the env's log-price window, bps)."""


TANH_EPS = 1e-8
"""The ``+1e−8`` in DiffGAF's denominator (``scaling="tanh"``)."""

_BAD_SERIES_TYPE = "Expected `series` to be a rectangular array-like of real numbers, got a {}"
_BAD_SERIES_DTYPE = "Expected a real-valued `series` (bool, int or float), got dtype {}"
_BAD_SERIES_SHAPE = "Expected `series` of shape (..., n) with n >= 1, got shape {}"
_NOT_FINITE = "Expected finite `series` values with a finite max - min, got a bad window at batch index {}"
_BAD_DTYPE = "Expected `dtype` float32, float64 or None, got {!r}"
_BAD_OUT_TYPE = "Expected `out` to be a numpy.ndarray or None, got a {}"
_BAD_OUT = (
    "Expected `out` to be a writeable C-contiguous float32 or float64 array of shape {}, "
    "got dtype {}, shape {}, C-contiguous={}, writeable={}"
)
_OUT_DTYPE_CONFLICT = "Got dtype={!r} but out.dtype={}; pass one or make them agree"
_OUT_OVERLAPS = "Expected `out` not to share memory with `series`"
_TOO_SHORT = (
    "Expected `series` of length >= window + (frames - 1) * stride = {} "
    "(window={}, stride={}, frames={}), got length {}"
)
_BAD_SPACE = "{} needs a Dict observation space with a 1-D Box 'prices' key, got {!r}"
_KEY_TAKEN = "{} adds the observation key 'gaf', which the env already has"
_ENV_TOO_SHORT = (
    "{} needs a 'prices' window of at least window + (frames - 1) * stride = {} "
    "(window={}, stride={}, frames={}), but the env's window is {}; "
    "build the env with gym.make(..., window={})"
)


# ----------------------------------------------------------------- kernels
@njit(cache=True)
def _angles(x: np.ndarray, tanh_scaling: bool, cos: np.ndarray, sin: np.ndarray) -> bool:
    """Fill ``cos`` (= x̃) and ``sin`` (= sqrt(1 − x̃²)) of one window; False if it is not finite."""
    n = x.shape[0]
    lo = np.float64(x[0])
    hi = lo
    finite = True
    for i in range(n):
        v = np.float64(x[i])
        if not np.isfinite(v):
            finite = False
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    span = hi - lo
    if not np.isfinite(span):
        finite = False
    for i in range(n):
        d = np.float64(x[i]) - lo
        if tanh_scaling:
            u = np.tanh(d / (span + TANH_EPS))
        elif span > 0.0:
            u = 2.0 * d / span - 1.0  # d <= span (monotone rounding), so u is in [-1, 1]
        else:
            u = -1.0
        cos[i] = u
        sin[i] = np.sqrt((1.0 - u) * (1.0 + u))
    return finite


@njit(cache=True)
def _images(cos: np.ndarray, sin: np.ndarray, out: np.ndarray) -> None:
    """``out[0] = GASF``, ``out[1] = GADF`` from the (cos φ, sin φ) of one window."""
    n = cos.shape[0]
    for i in range(n):
        ci = cos[i]
        si = sin[i]
        # one contiguous row per loop: LLVM vectorizes these (the interleaved two-image loop it did not)
        row = out[0, i]
        for j in range(n):
            row[j] = ci * cos[j] - si * sin[j]
        row = out[1, i]
        for j in range(n):
            row[j] = si * cos[j] - ci * sin[j]


@njit(cache=True)
def _gaf_serial(x: np.ndarray, tanh_scaling: bool, out: np.ndarray, bad: np.ndarray) -> None:
    """GASF/GADF of every row of ``x`` (B, n) into ``out`` (B, 2, n, n); ``bad[b] = 1`` for non-finite rows."""
    n = x.shape[1]
    cos = np.empty(n)
    sin = np.empty(n)
    for b in range(x.shape[0]):
        if not _angles(x[b], tanh_scaling, cos, sin):
            bad[b] = 1
        _images(cos, sin, out[b])


@njit(cache=True, parallel=True)
def _gaf_parallel(x: np.ndarray, tanh_scaling: bool, out: np.ndarray, bad: np.ndarray) -> None:
    """``_gaf_serial`` with the rows spread over numba's thread pool."""
    rows, n = x.shape
    cos = np.empty((rows, n))
    sin = np.empty((rows, n))
    for b in prange(rows):
        if not _angles(x[b], tanh_scaling, cos[b], sin[b]):
            bad[b] = 1
        _images(cos[b], sin[b], out[b])


# ------------------------------------------------------------- validation
def _as_series(series: Any) -> np.ndarray:
    """``series`` as a float32/float64 array of shape (..., n), n >= 1."""
    try:
        arr = np.asarray(series)
    except (TypeError, ValueError) as err:
        raise TypeError(_BAD_SERIES_TYPE.format(type(series).__name__)) from err
    if arr.dtype.kind not in "biuf":
        raise TypeError(_BAD_SERIES_DTYPE.format(arr.dtype))
    if arr.ndim == 0 or arr.shape[-1] == 0:
        raise ValueError(_BAD_SERIES_SHAPE.format(arr.shape))
    if arr.dtype == np.float16:
        return arr.astype(np.float32)
    if arr.dtype not in (np.float32, np.float64):
        return arr.astype(np.float64)
    return arr


def _out_dtype(dtype: Any, series_dtype: np.dtype) -> np.dtype:
    if dtype is None:
        return np.dtype(np.float32) if series_dtype == np.float32 else np.dtype(np.float64)
    try:
        out = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(_BAD_DTYPE.format(dtype)) from err
    if out not in (np.float32, np.float64):
        raise ValueError(_BAD_DTYPE.format(dtype))
    return out


def _check_video(window: Any, stride: Any, frames: Any) -> tuple[int, int, int, int]:
    """Validated ``(window, stride, frames, needed_length)``."""
    window = check_int("window", window, low=1)
    stride = check_int("stride", stride, low=1)
    frames = check_int("frames", frames, low=1)
    return window, stride, frames, window + (frames - 1) * stride


def _check_out(out: Any, dtype: Any, shape: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    """``out`` reshaped to (rows, 2, n, n) after checking it can take the result."""
    if not isinstance(out, np.ndarray):
        raise TypeError(_BAD_OUT_TYPE.format(type(out).__name__))
    if (out.dtype not in (np.float32, np.float64) or out.shape != shape
            or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(_BAD_OUT.format(shape, out.dtype, out.shape, out.flags.c_contiguous, out.flags.writeable))
    if dtype is not None and _out_dtype(dtype, x.dtype) != out.dtype:
        raise ValueError(_OUT_DTYPE_CONFLICT.format(dtype, out.dtype))
    if np.may_share_memory(out, x):
        raise ValueError(_OUT_OVERLAPS)
    return out.reshape((-1,) + shape[-3:])


def _gaf(x: np.ndarray, tanh_scaling: bool, dtype: Any, parallel: Any, out: Any = None) -> np.ndarray:
    check_bool("parallel", parallel)
    lead, n = x.shape[:-1], x.shape[-1]
    flat = np.ascontiguousarray(x.reshape(-1, n))
    rows = flat.shape[0]
    if out is None:
        result = np.empty((rows, 2, n, n), dtype=_out_dtype(dtype, x.dtype))
    else:
        result = _check_out(out, dtype, lead + (2, n, n), x)
    bad = np.zeros(rows, dtype=np.uint8)
    (_gaf_parallel if parallel else _gaf_serial)(flat, tanh_scaling, result, bad)
    if bad.any():
        where = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), lead))
        raise ValueError(_NOT_FINITE.format(where))
    return result.reshape(lead + (2, n, n)) if out is None else out


# ------------------------------------------------------------------ public
def gaf_images(
    series: Any,
    scaling: str = "minmax",
    *,
    dtype: Any = None,
    parallel: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """GASF and GADF of every window in a batch (Wang & Oates, 2015).

    ``GASF_ij = cos(φ_i + φ_j) = x̃_i x̃_j − sin φ_i sin φ_j`` and
    ``GADF_ij = sin(φ_i − φ_j) = sin φ_i x̃_j − x̃_i sin φ_j`` with
    ``cos φ = x̃``, ``sin φ = sqrt(1 − x̃²)`` and ``x̃`` the window rescaled as
    ``scaling`` says (see the module docstring, which also covers constant
    windows and precision).

    Args:
        series: real array of shape ``(..., n)``; every length-``n`` row along
            the last axis is one window, rescaled on its own.
        scaling: ``"minmax"`` (``x̃ = 2(x − min)/(max − min) − 1``, pyts'
            default) or ``"tanh"`` (``x̃ = tanh((x − min)/(max − min + 1e−8))``,
            DiffGAF with α = 1, β = 0).
        dtype: output dtype, float32 or float64; ``None`` gives float32 for
            float16/float32 input and float64 otherwise.
        parallel: spread the windows over numba's thread pool (same result;
            see the module docstring for when it pays).
        out: optional writeable C-contiguous float32/float64 array of shape
            ``(..., 2, n, n)`` to write the result into (and return). Reusing
            one saves the page faults of a fresh large array, which cost more
            than the computation itself (see ``benchmarks/bench_gaf.py``).
            Partly written if an error is raised.

    Returns:
        Array of shape ``(..., 2, n, n)`` (``out`` when given): ``[..., 0, :, :]``
        is the GASF, ``[..., 1, :, :]`` the GADF.

    Raises:
        TypeError: ``series`` is not a real-valued array-like, ``parallel`` is
            not a bool, or ``out`` is not an ndarray.
        ValueError: ``series`` is 0-d or has an empty last axis, has a
            non-finite value (or a window whose max − min overflows),
            ``scaling`` is unknown, ``dtype`` is not float32/float64, or
            ``out`` has the wrong shape/dtype/layout, disagrees with
            ``dtype`` or overlaps ``series``.
    """
    tanh_scaling = check_choice("scaling", scaling, SCALINGS) == "tanh"
    return _gaf(_as_series(series), tanh_scaling, dtype, parallel, out)


def gaf_video(
    series: Any,
    window: int = 60,
    stride: int = 10,
    frames: int = 16,
    scaling: str = "minmax",
    *,
    dtype: Any = None,
    parallel: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """GAF images of the last ``frames`` sliding windows of a series: a (GASF, GADF) video.

    Frame ``k`` (``k = 0 … frames−1``, oldest first) is ``gaf_images`` of
    ``series[..., T − L + k·stride : T − L + k·stride + window]`` where ``T``
    is the series length and ``L = window + (frames − 1)·stride``, so the last
    frame ends with the latest value. Each frame is rescaled on its own.
    Defaults 60/10/16 are DESIGN.md's (``agents`` → DiffGAF video).

    Args:
        series: real array of shape ``(..., T)``, e.g. one env's ``prices``
            ``(W,)`` or a vector env's ``(N, W)``.
        window: samples per frame (image side ``w``).
        stride: samples between the starts of consecutive frames.
        frames: number of frames ``F``.
        scaling: as for :func:`gaf_images`.
        dtype: as for :func:`gaf_images`.
        parallel: as for :func:`gaf_images` (the batch is ``…·F`` windows).
        out: as for :func:`gaf_images`, of shape ``(..., F, 2, window, window)``.

    Returns:
        Array of shape ``(..., F, 2, window, window)`` (``out`` when given).

    Raises:
        TypeError: ``window``, ``stride`` or ``frames`` is not an int, or as
            for :func:`gaf_images`.
        ValueError: ``window``, ``stride`` or ``frames`` is < 1, the series is
            shorter than ``window + (frames − 1)·stride``, or as for
            :func:`gaf_images`.
    """
    window, stride, frames, need = _check_video(window, stride, frames)
    tanh_scaling = check_choice("scaling", scaling, SCALINGS) == "tanh"
    x = _as_series(series)
    length = x.shape[-1]
    if length < need:
        raise ValueError(_TOO_SHORT.format(need, window, stride, frames, length))
    clips = x[..., _video_index(length, window, stride, frames)]
    return _gaf(clips, tanh_scaling, dtype, parallel, out)


def _video_index(length: int, window: int, stride: int, frames: int) -> np.ndarray:
    """(frames, window) indices of the last ``frames`` windows of a length-``length`` series."""
    starts = length - window - (frames - 1) * stride + stride * np.arange(frames)
    return starts[:, None] + np.arange(window)


def _gaf_observation_space(
    space: gym.Space, owner: str, window: int, stride: int, frames: int, need: int
) -> spaces.Dict:
    """``space`` plus the ``"gaf"`` Box, after checking that its ``prices`` window is long enough."""
    prices = space.spaces.get(PRICES_KEY) if isinstance(space, spaces.Dict) else None
    if not isinstance(prices, spaces.Box) or len(prices.shape) != 1:
        raise TypeError(_BAD_SPACE.format(owner, space))
    if GAF_KEY in space.spaces:
        raise ValueError(_KEY_TAKEN.format(owner))
    have = prices.shape[0]
    if have < need:
        raise ValueError(_ENV_TOO_SHORT.format(owner, need, window, stride, frames, have, need))
    gaf = spaces.Box(-1.0, 1.0, shape=(frames, 2, window, window), dtype=np.float32)
    return spaces.Dict({**space.spaces, GAF_KEY: gaf})


class GAFObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Adds a Gramian-Angular-Field video of the recent prices to a ``Dict`` observation.

    ## Description

    Turns the env's ``prices`` window (for ``Janus-LOB-v0``:
    ``log(mid[t−W+1+i] / mid[t])`` in bps) into ``frames`` GASF/GADF image
    pairs of its last sliding windows (:func:`gaf_video`), the input of the
    ViViT branch. Every other key is passed through unchanged.

    ## Observation Space

    The env's ``Dict`` plus one key (F = ``frames``, w = ``window``):

    | Key | Shape | Index | Observation | Min | Max |
    |-----|-------|-------|-------------|-----|-----|
    | `gaf` | (F, 2, w, w) | [k, 0] | GASF of frame k (oldest first), `cos(φ_i + φ_j)` | -1 | 1 |
    | | | [k, 1] | GADF of frame k, `sin(φ_i − φ_j)` | -1 | 1 |

    Frame ``k`` covers ``prices[W − L + k·s : W − L + k·s + w]`` with
    ``L = w + (F − 1)·s``; each frame is rescaled on its own (``scaling``).
    Before the env has ``W`` steps of history the missing prices are 0, so
    early frames can be constant: ``"minmax"`` then gives GASF = 1,
    GADF = 0 (see the module docstring).

    ## Arguments

    | Argument | Default | Meaning |
    |----------|---------|---------|
    | `env` | | env with a `Dict` observation holding a 1-D `prices` Box of length `W >= window + (frames − 1)·stride` |
    | `window` | 60 | samples per frame (image side) |
    | `stride` | 10 | samples between frame starts |
    | `frames` | 16 | frames per observation |
    | `scaling` | `"minmax"` | `"minmax"` or `"tanh"`, see :func:`gaf_images` |

    The defaults need ``W >= 210``::

        import gymnasium as gym
        import envs_registry
        from wrappers import GAFObservation
        env = GAFObservation(gym.make("Janus-LOB-v0", window=210))

    Args:
        env: the env to wrap.
        window: samples per frame.
        stride: samples between frame starts.
        frames: frames per observation.
        scaling: ``"minmax"`` or ``"tanh"``.

    Raises:
        TypeError: the observation space is not a ``Dict`` with a 1-D ``Box``
            ``prices``, or ``window``/``stride``/``frames`` is not an int.
        ValueError: an int argument is < 1, ``scaling`` is unknown, the
            observation already has a ``gaf`` key, or the ``prices`` window is
            shorter than ``window + (frames − 1)·stride``.
    """

    def __init__(
        self,
        env: gym.Env,
        window: int = 60,
        stride: int = 10,
        frames: int = 16,
        scaling: str = "minmax",
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, window=window, stride=stride, frames=frames, scaling=scaling)
        gym.ObservationWrapper.__init__(self, env)
        self.window, self.stride, self.frames, need = _check_video(window, stride, frames)
        check_choice("scaling", scaling, SCALINGS)
        self.scaling = scaling
        self.observation_space = _gaf_observation_space(
            env.observation_space, type(self).__name__, self.window, self.stride, self.frames, need
        )
        self._tanh = scaling == "tanh"
        self._index = _video_index(env.observation_space[PRICES_KEY].shape[0], self.window, self.stride, self.frames)

    def observation(self, observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The observation with ``"gaf"`` added, float32 of shape ``(F, 2, w, w)`` (= :func:`gaf_video`)."""
        clips = _as_series(observation[PRICES_KEY])[..., self._index]
        return {**observation, GAF_KEY: _gaf(clips, self._tanh, np.float32, False)}


class VectorGAFObservation(VectorObservationWrapper):
    """:class:`GAFObservation` for vector envs: adds ``"gaf"`` of shape ``(N, F, 2, w, w)``.

    For ``gym.make_vec("Janus-LOB-v0", num_envs=N, window=W)``
    (``JanusLOBVectorEnv``, whose ``prices`` are ``(N, W)``): one batched
    kernel call per step computes all ``N·F`` windows, on numba's thread pool
    with ``parallel=True`` (see :func:`gaf_images` for when that pays). Same
    arguments, spaces (per sub-env) and errors as :class:`GAFObservation`,
    plus ``parallel``.

    ```python
    envs = VectorGAFObservation(gym.make_vec("Janus-LOB-v0", num_envs=64, window=210))
    ```

    Args:
        env: the vector env to wrap (autoreset mode ``NEXT_STEP`` or
            ``DISABLED``, as Gymnasium's ``VectorObservationWrapper`` requires).
        window: samples per frame.
        stride: samples between frame starts.
        frames: frames per observation.
        scaling: ``"minmax"`` or ``"tanh"``.
        parallel: compute the batch on numba's thread pool.

    Raises:
        TypeError: as for :class:`GAFObservation`, or ``parallel`` is not a bool.
        ValueError: as for :class:`GAFObservation`.
    """

    def __init__(
        self,
        env: VectorEnv,
        window: int = 60,
        stride: int = 10,
        frames: int = 16,
        scaling: str = "minmax",
        parallel: bool = False,
    ) -> None:
        super().__init__(env)
        self.parallel = check_bool("parallel", parallel)
        self.window, self.stride, self.frames, need = _check_video(window, stride, frames)
        check_choice("scaling", scaling, SCALINGS)
        self.scaling = scaling
        self.single_observation_space = _gaf_observation_space(
            env.single_observation_space, type(self).__name__, self.window, self.stride, self.frames, need
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._tanh = scaling == "tanh"
        self._index = _video_index(
            env.single_observation_space[PRICES_KEY].shape[0], self.window, self.stride, self.frames
        )

    def observations(self, observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The batched observation with ``"gaf"`` added, float32 of shape ``(N, F, 2, w, w)``."""
        clips = _as_series(observations[PRICES_KEY])[..., self._index]
        return {**observations, GAF_KEY: _gaf(clips, self._tanh, np.float32, self.parallel)}


__all__ = [
    "GAFObservation",
    "VectorGAFObservation",
    "GAF_KEY",
    "SCALINGS",
    "gaf_images",
    "gaf_video",
]
