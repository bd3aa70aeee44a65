"""DiffGAF: the algebraic GAF equals the arccos definition and the numpy GAF; videos; gradients."""

from __future__ import annotations

import importlib
import re
from types import ModuleType

import numpy as np
import pytest
import torch as th

from agents import gaf as gaf_module
from agents.gaf import DiffGAF, gaf_from_scaled, required_length
from janus_env.checks import bad_value


def random_series(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random walks in bps-like units (float64)."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0.0, 3.0, size=shape), axis=-1)


def reference_gaf(series: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """Definition (Wang & Oates 2015) in float64: φ = arccos(x̃), GASF = cos(φi+φj), GADF = sin(φi−φj)."""
    lo = series.min(axis=-1, keepdims=True)
    hi = series.max(axis=-1, keepdims=True)
    x_tilde = np.tanh((series - lo) / (hi - lo + 1e-8) * alpha + beta)
    phi = np.arccos(x_tilde)
    gasf = np.cos(phi[..., :, None] + phi[..., None, :])
    gadf = np.sin(phi[..., :, None] - phi[..., None, :])
    return np.stack((gasf, gadf), axis=-3)


def wrappers_gaf() -> ModuleType:
    """The numpy/numba GAF of ``wrappers/gaf.py``; skip (with the reason) where it does not exist yet."""
    try:
        return importlib.import_module("wrappers.gaf")
    except ModuleNotFoundError as err:
        pytest.skip(f"wrappers.gaf is not available yet ({err}); the numpy GAF comparison needs it")


@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 0.0), (2.5, -0.3), (0.4, 0.7)])
def test_images_match_arccos_definition(alpha: float, beta: float) -> None:
    series = random_series((3, 4, 24), seed=1)  # (batch, series, T)
    gaf = DiffGAF(window=24, stride=1, frames=1, alpha=alpha, beta=beta)
    images = gaf.images(th.as_tensor(series, dtype=th.float32)).detach().numpy()
    assert images.shape == (3, 4, 2, 24, 24)
    np.testing.assert_allclose(images, reference_gaf(series, alpha, beta), atol=1e-5)


def test_images_match_wrappers_numpy_gaf_tanh_scaling() -> None:
    numpy_gaf = wrappers_gaf()
    series = random_series((5, 40), seed=2)
    series[1] = 7.25  # a constant window: x̃ = tanh(β) = 0 in both
    expected = np.asarray(numpy_gaf.gaf_images(series, scaling="tanh"))
    images = DiffGAF(window=40, stride=1, frames=1).images(th.as_tensor(series, dtype=th.float32))
    np.testing.assert_allclose(images.detach().numpy(), expected, atol=1e-5)


def test_video_matches_wrappers_numpy_gaf_video() -> None:
    numpy_gaf = wrappers_gaf()
    series = random_series((3, 36), seed=3)
    series[2, -10:] = series[2, -10]  # constant tail
    expected = np.asarray(numpy_gaf.gaf_video(series, window=16, stride=4, frames=5, scaling="tanh"))
    assert expected.shape == (3, 5, 2, 16, 16)
    video = DiffGAF(window=16, stride=4, frames=5)(th.as_tensor(series, dtype=th.float32))
    np.testing.assert_allclose(video.detach().numpy(), expected, atol=1e-5)


def test_gasf_diagonal_is_cos_2phi_and_gadf_antisymmetric() -> None:
    gaf = DiffGAF(window=20, stride=1, frames=1, alpha=1.7, beta=-0.2)
    x = th.as_tensor(random_series((6, 20), seed=4), dtype=th.float32)
    images = gaf.images(x)
    x_tilde = gaf.scale(x)
    gasf, gadf = images[:, 0], images[:, 1]
    th.testing.assert_close(th.diagonal(gasf, dim1=-2, dim2=-1), 2 * x_tilde**2 - 1, atol=1e-6, rtol=0)
    th.testing.assert_close(gadf, -gadf.transpose(-2, -1), atol=1e-6, rtol=0)
    th.testing.assert_close(gasf, gasf.transpose(-2, -1), atol=1e-6, rtol=0)


def test_scale_is_tanh_of_minmax_with_alpha_and_beta() -> None:
    gaf = DiffGAF(window=8, stride=1, frames=1, alpha=3.0, beta=0.5)
    x = th.tensor([[2.0, 4.0, 6.0, 10.0]])
    unit = (x - 2.0) / (8.0 + 1e-8)
    th.testing.assert_close(gaf.scale(x), th.tanh(unit * 3.0 + 0.5))
    assert gaf.alpha.item() == pytest.approx(3.0)
    assert gaf.beta.item() == pytest.approx(0.5)


def test_default_parameters_and_positivity() -> None:
    gaf = DiffGAF()
    assert (gaf.window, gaf.stride, gaf.frames) == (60, 10, 16)
    assert gaf.min_length == required_length(60, 10, 16) == 210
    assert gaf.alpha.item() == 1.0 and gaf.beta.item() == 0.0
    assert {name for name, _ in gaf.named_parameters()} == {"log_alpha", "beta"}
    with th.no_grad():
        gaf.log_alpha.fill_(-50.0)  # any real log_alpha is a positive alpha
    assert gaf.alpha.item() > 0.0
    frozen = DiffGAF(learnable=False)
    assert list(frozen.parameters()) == []
    assert set(frozen.state_dict()) == {"log_alpha", "beta"}  # the window index is not persistent


def test_video_frames_are_the_last_windows_in_order() -> None:
    gaf = DiffGAF(window=8, stride=3, frames=4)
    series = th.as_tensor(random_series((2, 3, 25), seed=5), dtype=th.float32)  # 25 > 8 + 3·3 = 17
    video = gaf(series)
    assert video.shape == (2, 3, 4, 2, 8, 8)
    for f in range(4):
        end = 25 - (4 - 1 - f) * 3
        th.testing.assert_close(video[..., f, :, :, :], gaf.images(series[..., end - 8:end]))
    windows = gaf.windows(series[..., -17:])
    th.testing.assert_close(windows, series[..., -17:].unfold(-1, 8, 3))


def test_video_is_batched_like_single_series() -> None:
    gaf = DiffGAF(window=16, stride=4, frames=5)
    batch = th.as_tensor(random_series((7, 32), seed=6), dtype=th.float32)
    video = gaf(batch)
    assert video.shape == (7, 5, 2, 16, 16)
    singles = th.stack([gaf(row[None])[0] for row in batch])
    th.testing.assert_close(video, singles)


def test_gradients_reach_alpha_beta_and_are_finite_on_constant_windows() -> None:
    gaf = DiffGAF(window=16, stride=4, frames=5)
    flat = th.full((1, 32), 3.5)  # every window constant: max = min
    moving = th.as_tensor(random_series((1, 32), seed=7), dtype=th.float32)
    x = th.cat((flat, moving)).requires_grad_(True)
    video = gaf(x)
    assert th.isfinite(video).all()
    # a constant window maps to x̃ = tanh(β) everywhere
    th.testing.assert_close(gaf.scale(gaf.windows(flat)), th.full((1, 5, 16), float(np.tanh(0.0))))
    weights = th.linspace(-1.0, 1.0, video[0].numel()).reshape(video.shape[1:])
    (video * weights).sum().backward()
    for p in (gaf.log_alpha, gaf.beta):
        assert p.grad is not None and th.isfinite(p.grad).all() and p.grad.abs().item() > 0
    assert th.isfinite(x.grad).all()

    gaf.zero_grad()
    flat_video = gaf(flat)
    (flat_video * weights).sum().backward()
    assert th.isfinite(gaf.log_alpha.grad).all() and gaf.log_alpha.grad.item() == 0.0  # ∂x̃/∂α = 0 there
    assert th.isfinite(gaf.beta.grad).all() and gaf.beta.grad.item() != 0.0


def test_gradient_is_finite_where_x_tilde_saturates() -> None:
    gaf = DiffGAF(window=8, stride=1, frames=1, alpha=40.0)  # tanh(40·1) == 1.0 in float32
    x = th.as_tensor(random_series((2, 8), seed=8), dtype=th.float32)
    assert gaf.scale(x).max().item() == 1.0
    gaf.images(x).sum().backward()
    assert th.isfinite(gaf.log_alpha.grad).all() and th.isfinite(gaf.beta.grad).all()


def test_gaf_from_scaled_at_the_boundaries() -> None:
    images = gaf_from_scaled(th.tensor([[-1.0, 0.0, 1.0]]), eps=1e-12)
    # φ = (π, π/2, 0): GASF = cos(φi + φj), GADF = sin(φi − φj)
    phi = th.tensor([th.pi, th.pi / 2, 0.0], dtype=th.float64)
    expected = th.stack((th.cos(phi[:, None] + phi[None]), th.sin(phi[:, None] - phi[None]))).float()
    th.testing.assert_close(images[0], expected, atol=1e-5, rtol=0)




@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 1}, bad_value("window", "an int >= 2", 1)),
        ({"stride": 0}, bad_value("stride", "an int >= 1", 0)),
        ({"frames": 0}, bad_value("frames", "an int >= 1", 0)),
        ({"alpha": 0.0}, bad_value("alpha", "a finite number > 0", 0.0)),
        ({"alpha": float("inf")}, bad_value("alpha", "a finite number > 0", float("inf"))),
        ({"beta": float("nan")}, bad_value("beta", "a finite number", float("nan"))),
        ({"eps": 0.0}, bad_value("eps", "a number in (0, 1)", 0.0)),
        ({"eps": 1.0}, bad_value("eps", "a number in (0, 1)", 1.0)),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        DiffGAF(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [  # ValueError (or an unnamed TypeError from math.isfinite) before
        ({"window": 16.0}, bad_value("window", "an int >= 2", 16.0)),
        ({"stride": True}, bad_value("stride", "an int >= 1", True)),
        ({"alpha": "1"}, bad_value("alpha", "a finite number > 0", "1")),
        ({"beta": None}, bad_value("beta", "a finite number", None)),
        ({"eps": True}, bad_value("eps", "a number in (0, 1)", True)),
    ],
)
def test_wrong_argument_types(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        DiffGAF(**kwargs)


def test_numpy_sizes_are_accepted() -> None:
    gaf = DiffGAF(window=np.int64(8), stride=np.int32(2), frames=np.int64(3), alpha=np.float32(2.0))
    assert (gaf.window, gaf.stride, gaf.frames) == (8, 2, 3) and type(gaf.window) is int
    assert gaf.min_length == 12 and gaf.alpha.item() == pytest.approx(2.0)


def test_bad_short_series() -> None:
    gaf = DiffGAF(window=16, stride=4, frames=5)
    message = gaf_module._SHORT_SERIES.format(16, 4, 5, 32, 31)
    with pytest.raises(ValueError, match=re.escape(message)):
        gaf(th.zeros(2, 31))


def test_bad_series_rank() -> None:
    with pytest.raises(ValueError, match=re.escape(gaf_module._BAD_RANK.format((3, 1)))):
        DiffGAF().images(th.zeros(3, 1))
