"""Gramian Angular Fields (``wrappers/gaf.py``): values against the arccos definition, identities,
edge cases, errors, and the ``GAFObservation`` wrappers on ``Janus-LOB-v0``."""

from __future__ import annotations

import re

import gymnasium as gym
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs_registry  # noqa: F401  (registers Janus-* ids)
from janus_env.checks import bad_value
from wrappers.gaf import (
    _BAD_DTYPE,
    _BAD_OUT,
    _BAD_OUT_TYPE,
    _BAD_SERIES_DTYPE,
    _BAD_SERIES_SHAPE,
    _BAD_SERIES_TYPE,
    _BAD_SPACE,
    _ENV_TOO_SHORT,
    _KEY_TAKEN,
    _NOT_FINITE,
    _OUT_DTYPE_CONFLICT,
    _OUT_OVERLAPS,
    _TOO_SHORT,
    GAF_KEY,
    SCALINGS,
    TANH_EPS,
    GAFObservation,
    VectorGAFObservation,
    gaf_images,
    gaf_video,
)

# tiny fixture sizes: env window 16, video of 3 frames of 8 with stride 2 (needs 8 + 2·2 = 12)
ENV_KW = {"window": 16, "n_levels": 3, "episode_steps": 60}
VIDEO_KW = {"window": 8, "stride": 2, "frames": 3}


def _scaled(x: np.ndarray, scaling: str) -> np.ndarray:
    """x̃ per row, float64, straight from the documented formulas."""
    x = np.asarray(x, dtype=np.float64)
    lo = x.min(axis=-1, keepdims=True)
    span = x.max(axis=-1, keepdims=True) - lo
    if scaling == "tanh":
        return np.tanh((x - lo) / (span + TANH_EPS))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span > 0, 2.0 * (x - lo) / span - 1.0, -1.0)


def _reference(x: np.ndarray, scaling: str) -> np.ndarray:
    """GASF = cos(φi + φj), GADF = sin(φi − φj), φ = arccos(x̃), in float64: shape (..., 2, n, n)."""
    phi = np.arccos(_scaled(x, scaling))
    gasf = np.cos(phi[..., :, None] + phi[..., None, :])
    gadf = np.sin(phi[..., :, None] - phi[..., None, :])
    return np.stack([gasf, gadf], axis=-3)


def _walks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape).cumsum(axis=-1)


def _edge_windows() -> np.ndarray:
    """Windows whose x̃ sit exactly at or an ulp away from ±1 (where sqrt(1 − x̃²) cancels)."""
    one = 1.0
    return np.array([
        [0.0, 1.0, np.nextafter(one, 0.0), np.nextafter(0.0, one), 0.5, 0.5],
        [3.0, 3.0, 3.0, 7.0, 7.0, 3.0],
        [-1e6, 1e6, 1.0, -1.0, 0.0, 2e-9],
        [1.0, 1.0 + 2.0**-52, 1.0 + 2.0**-51, 1.0, 1.0, 1.0],
    ])


# ---------------------------------------------------------------- values
@pytest.mark.parametrize("scaling", SCALINGS)
def test_matches_arccos_reference_float64(scaling: str) -> None:
    x = np.concatenate([_walks(np.random.default_rng(0), (64, 6)), _edge_windows()])
    out = gaf_images(x, scaling)
    assert out.shape == (68, 2, 6, 6) and out.dtype == np.float64
    np.testing.assert_allclose(out, _reference(x, scaling), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scaling", SCALINGS)
def test_matches_arccos_reference_float32(scaling: str) -> None:
    x = _walks(np.random.default_rng(1), (64, 20)).astype(np.float32)
    out = gaf_images(x, scaling)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, _reference(x, scaling), rtol=0, atol=1e-5)
    assert np.abs(out).max() <= 1.0


@pytest.mark.parametrize("scaling", SCALINGS)
def test_identities(scaling: str) -> None:
    x = np.concatenate([_walks(np.random.default_rng(2), (16, 9))[:, :6], _edge_windows()])
    out = gaf_images(x, scaling)
    gasf, gadf = out[:, 0], out[:, 1]
    xt = _scaled(x, scaling)
    diag = np.arange(x.shape[-1])
    np.testing.assert_allclose(gasf[:, diag, diag], 2.0 * xt**2 - 1.0, rtol=0, atol=1e-12)
    assert np.all(gadf[:, diag, diag] == 0.0)
    assert np.array_equal(gasf, gasf.transpose(0, 2, 1))
    assert np.array_equal(gadf, -gadf.transpose(0, 2, 1))


def test_constant_window_is_defined() -> None:
    for dtype in (np.float32, np.float64):
        x = np.full((2, 5), 4.25, dtype=dtype)
        minmax = gaf_images(x, "minmax")  # x̃ = −1: φ = π
        assert np.all(minmax[:, 0] == 1.0) and np.all(minmax[:, 1] == 0.0)
        tanh = gaf_images(x, "tanh")  # x̃ = 0: φ = π/2
        assert np.all(tanh[:, 0] == -1.0) and np.all(tanh[:, 1] == 0.0)
    assert np.array_equal(gaf_images([7.0]), [[[1.0]], [[0.0]]])  # n = 1 is a constant window


def test_shapes_dtypes_and_parallel_paths_agree() -> None:
    rng = np.random.default_rng(3)
    x = _walks(rng, (3, 4, 10))
    out = gaf_images(x)
    assert out.shape == (3, 4, 2, 10, 10)
    assert np.array_equal(out[1, 2], gaf_images(x[1, 2]))
    assert np.array_equal(gaf_images(x, parallel=True), gaf_images(x, parallel=False))
    assert np.array_equal(gaf_images(x[..., ::2]), gaf_images(np.ascontiguousarray(x[..., ::2])))
    assert gaf_images(x, dtype=np.float32).dtype == np.float32
    assert gaf_images(x.astype(np.float32), dtype="float64").dtype == np.float64
    assert gaf_images(np.arange(5)).dtype == np.float64  # ints and bools → float64
    assert gaf_images(np.arange(5, dtype=np.float16)).dtype == np.float32
    assert gaf_images(np.empty((0, 7))).shape == (0, 2, 7, 7)
    np.testing.assert_allclose(gaf_images(x, dtype=np.float32), out, rtol=0, atol=2e-7)
    big = _walks(rng, (4096, 8))
    assert np.array_equal(gaf_images(big, parallel=True), gaf_images(big))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=12), elements=finite),
    scaling=st.sampled_from(SCALINGS),
)
def test_random_series_match_reference(x: np.ndarray, scaling: str) -> None:
    out = gaf_images(x, scaling)
    assert out.shape == x.shape[:-1] + (2, x.shape[-1], x.shape[-1])
    assert np.all(np.isfinite(out)) and np.abs(out).max() <= 1.0 + 1e-15
    np.testing.assert_allclose(out, _reference(x, scaling), rtol=0, atol=1e-12)
    x32 = x.astype(np.float32)
    out32 = gaf_images(x32, scaling)
    assert out32.dtype == np.float32 and np.abs(out32).max() <= 1.0
    np.testing.assert_allclose(out32, _reference(x32, scaling), rtol=0, atol=1e-5)


# ----------------------------------------------------------------- video
def test_video_frames_are_the_last_sliding_windows() -> None:
    x = _walks(np.random.default_rng(4), (2, 30))
    video = gaf_video(x, window=6, stride=4, frames=5)
    assert video.shape == (2, 5, 2, 6, 6)
    # L = 6 + 4·4 = 22: frames start at 8, 12, 16, 20, 24 and the last ends at 30
    for k, start in enumerate((8, 12, 16, 20, 24)):
        assert np.array_equal(video[:, k], gaf_images(x[:, start:start + 6]))
    exact = gaf_video(x[0, 8:], window=6, stride=4, frames=5)  # series exactly L long
    assert np.array_equal(exact, video[0])
    defaults = gaf_video(np.arange(210, dtype=np.float32))
    assert defaults.shape == (16, 2, 60, 60) and defaults.dtype == np.float32


def test_video_too_short() -> None:
    with pytest.raises(ValueError, match=re.escape(_TOO_SHORT.format(22, 6, 4, 5, 21))):
        gaf_video(np.zeros(21), window=6, stride=4, frames=5)


@pytest.mark.parametrize("name", ["window", "stride", "frames"])
def test_video_bad_ints(name: str) -> None:
    kw = {"window": 4, "stride": 1, "frames": 2}
    for bad in (0, -3, np.int64(0)):
        with pytest.raises(ValueError, match=re.escape(bad_value(name, "an int >= 1", bad))):
            gaf_video(np.zeros(50), **{**kw, name: bad})
    for bad in (2.0, True, np.bool_(True), "3", None):
        with pytest.raises(TypeError, match=re.escape(bad_value(name, "an int >= 1", bad))):
            gaf_video(np.zeros(50), **{**kw, name: bad})


def test_out_is_filled_and_returned() -> None:
    x = _walks(np.random.default_rng(6), (3, 2, 7))
    for dtype in (np.float32, np.float64):
        out = np.full((3, 2, 2, 7, 7), np.nan, dtype=dtype)
        for parallel in (False, True):
            assert gaf_images(x, out=out, parallel=parallel) is out
            assert np.array_equal(out, gaf_images(x, dtype=dtype))
    series = _walks(np.random.default_rng(7), (4, 9))
    clip_out = np.empty((4, 3, 2, 5, 5))
    assert gaf_video(series, window=5, stride=2, frames=3, out=clip_out) is clip_out
    assert np.array_equal(clip_out, gaf_video(series, window=5, stride=2, frames=3))


def test_bad_out() -> None:
    x = np.zeros((2, 3))
    with pytest.raises(TypeError, match=re.escape(_BAD_OUT_TYPE.format("list"))):
        gaf_images(x, out=[0.0] * 36)
    shape = (2, 2, 3, 3)
    bad_outs = [
        np.empty((2, 2, 3, 4)),
        np.empty(shape, dtype=np.int64),
        np.empty((2, 2, 3, 6))[..., ::2],
        np.empty(shape),
    ]
    bad_outs[-1].flags.writeable = False
    for out in bad_outs:
        message = _BAD_OUT.format(shape, out.dtype, out.shape, out.flags.c_contiguous, out.flags.writeable)
        with pytest.raises(ValueError, match=re.escape(message)):
            gaf_images(x, out=out)
    with pytest.raises(ValueError, match=re.escape(_OUT_DTYPE_CONFLICT.format("float32", np.dtype(np.float64)))):
        gaf_images(x, dtype="float32", out=np.empty(shape))
    buf = np.zeros(18)
    with pytest.raises(ValueError, match=re.escape(_OUT_OVERLAPS)):
        gaf_images(buf[15:], out=buf.reshape(2, 3, 3))


# ---------------------------------------------------------------- errors


_SCALING = "one of ('minmax', 'tanh')"


def test_bad_scaling() -> None:
    for bad in ("MinMax", "pyts", None, ["tanh"]):
        with pytest.raises(ValueError, match=re.escape(bad_value("scaling", _SCALING, bad))):
            gaf_images(np.zeros(3), bad)
    with pytest.raises(ValueError, match=re.escape("Expected `scaling` to be one of ('minmax', 'tanh'), got 'x'")):
        gaf_video(np.zeros(300), scaling="x")


def test_bad_dtype() -> None:
    for bad in (np.int32, "complex128", "not a dtype"):
        with pytest.raises(ValueError, match=re.escape(_BAD_DTYPE.format(bad))):
            gaf_images(np.zeros(3), dtype=bad)


def test_bad_series() -> None:
    for bad in (np.zeros(3, dtype=complex), np.array(["a", "b"]), np.array([None, 1.0])):
        with pytest.raises(TypeError, match=re.escape(_BAD_SERIES_DTYPE.format(bad.dtype))):
            gaf_images(bad)
    for shape in ((), (3, 0)):
        with pytest.raises(ValueError, match=re.escape(_BAD_SERIES_SHAPE.format(shape))):
            gaf_images(np.zeros(shape))
    with pytest.raises(TypeError, match=re.escape(_BAD_SERIES_TYPE.format("list"))):
        gaf_images([[1.0, 2.0], [3.0]])  # ragged


def test_non_finite_series() -> None:
    x = np.zeros((2, 3, 4))
    x[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=re.escape(_NOT_FINITE.format((1, 2)))):
        gaf_images(x)
    for bad in (np.inf, -np.inf):
        with pytest.raises(ValueError, match=re.escape(_NOT_FINITE.format(()))):
            gaf_images([0.0, bad], "tanh")
    with pytest.raises(ValueError, match=re.escape(_NOT_FINITE.format((0,)))):
        gaf_images([[-1e308, 1e308]])  # max − min overflows
    with pytest.raises(ValueError, match=re.escape(_NOT_FINITE.format((0,)))):
        gaf_images(np.array([[np.nan, 1.0]]), parallel=True)


def test_bad_parallel() -> None:
    for bad in ("yes", None, 1):
        with pytest.raises(TypeError, match=re.escape(bad_value("parallel", "a bool", bad))):
            gaf_images(np.zeros(3), parallel=bad)
    with pytest.raises(TypeError, match=re.escape("Expected `parallel` to be a bool, got None")):
        VectorGAFObservation(gym.make_vec("Janus-LOB-v0", num_envs=2, **ENV_KW), parallel=None, **VIDEO_KW)


# --------------------------------------------------------------- wrappers
def _make(**kw: object) -> GAFObservation:
    return GAFObservation(gym.make("Janus-LOB-v0", **ENV_KW), **{**VIDEO_KW, **kw})


def test_wrapper_passes_check_env(check_all) -> None:
    env = _make()
    check_all(env, wrapper=True)
    env.close()


@pytest.mark.parametrize("scaling", SCALINGS)
def test_wrapper_rollout(scaling: str) -> None:
    env = _make(scaling=scaling)
    inner = env.env.observation_space
    space = env.observation_space
    assert set(space.spaces) == set(inner.spaces) | {GAF_KEY}
    box = space[GAF_KEY]
    assert box.shape == (3, 2, 8, 8) and box.dtype == np.float32
    assert np.all(box.low == -1.0) and np.all(box.high == 1.0)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for t in range(80):
        assert space.contains(obs), t
        expected = gaf_video(obs["prices"], scaling=scaling, dtype=np.float32, **VIDEO_KW)
        assert np.array_equal(obs[GAF_KEY], expected)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()


def test_wrapper_keeps_other_keys_and_is_deterministic() -> None:
    a, b = _make(), _make()
    raw = gym.make("Janus-LOB-v0", **ENV_KW)
    oa, _ = a.reset(seed=7)
    ob, _ = b.reset(seed=7)
    orig, _ = raw.reset(seed=7)
    for key in orig:
        assert np.array_equal(oa[key], orig[key])
    assert np.array_equal(oa[GAF_KEY], ob[GAF_KEY])


def test_wrapper_defaults_need_window_210() -> None:
    env = GAFObservation(gym.make("Janus-LOB-v0", window=210, n_levels=3, episode_steps=5))
    obs, _ = env.reset(seed=0)
    assert obs[GAF_KEY].shape == (16, 2, 60, 60)
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match=re.escape(
        _ENV_TOO_SHORT.format("GAFObservation", 210, 60, 10, 16, 32, 210)
    )):
        GAFObservation(gym.make("Janus-LOB-v0"))


def test_wrapper_bad_env() -> None:
    cartpole = gym.make("CartPole-v1")
    with pytest.raises(TypeError, match=re.escape(_BAD_SPACE.format("GAFObservation", cartpole.observation_space))):
        GAFObservation(cartpole)
    with pytest.raises(ValueError, match=re.escape(_KEY_TAKEN.format("GAFObservation"))):
        GAFObservation(_make(), **VIDEO_KW)
    with pytest.raises(ValueError, match=re.escape(bad_value("scaling", _SCALING, "none"))):
        _make(scaling="none")
    with pytest.raises(ValueError, match=re.escape("Expected `stride` to be an int >= 1, got 0")):
        _make(stride=0)


@pytest.mark.parametrize("parallel", [False, True])
def test_vector_wrapper_matches_single_env_computation(parallel: bool) -> None:
    envs = VectorGAFObservation(gym.make_vec("Janus-LOB-v0", num_envs=4, **ENV_KW), parallel=parallel, **VIDEO_KW)
    assert envs.single_observation_space[GAF_KEY].shape == (3, 2, 8, 8)
    assert envs.observation_space[GAF_KEY].shape == (4, 3, 2, 8, 8)
    obs, _ = envs.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        assert envs.observation_space.contains(obs)
        for i in range(4):
            single = gaf_video(obs["prices"][i], dtype=np.float32, **VIDEO_KW)
            assert np.array_equal(obs[GAF_KEY][i], single)
        obs, *_ = envs.step(rng.integers(envs.single_action_space.n, size=4))
    envs.close()
    with pytest.raises(ValueError, match=re.escape(
        _ENV_TOO_SHORT.format("VectorGAFObservation", 210, 60, 10, 16, 16, 210)
    )):
        VectorGAFObservation(gym.make_vec("Janus-LOB-v0", num_envs=2, **ENV_KW))


# ------------------------------------------------------------------ pyts
def test_matches_pyts_when_installed() -> None:
    pyts_image = pytest.importorskip("pyts.image")
    x = _walks(np.random.default_rng(5), (32, 24))
    ours = gaf_images(x)
    gasf = pyts_image.GramianAngularField(method="summation").transform(x)
    gadf = pyts_image.GramianAngularField(method="difference").transform(x)
    # pyts takes sin φ = sqrt(1 − x̃²), which cancels next to x̃ = ±1 (~3e-8 here); ours is within 1e-15 of arccos
    np.testing.assert_allclose(ours[:, 0], gasf, rtol=0, atol=1e-7)
    np.testing.assert_allclose(ours[:, 1], gadf, rtol=0, atol=1e-7)
    np.testing.assert_allclose(ours, _reference(x, "minmax"), rtol=0, atol=1e-14)
    constant = np.full((2, 9), 2.5)  # same convention: x̃ = −1, GASF = 1, GADF = 0
    assert np.array_equal(gaf_images(constant)[:, 0], pyts_image.GramianAngularField(method="s").transform(constant))
    assert np.array_equal(gaf_images(constant)[:, 1], pyts_image.GramianAngularField(method="d").transform(constant))
