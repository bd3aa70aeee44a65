"""ViViT factorized encoder: shapes, real temporal attention, errors, and it can learn regimes."""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import pytest
import torch as th
from torch.nn import functional as F

from agents import vivit as vivit_module
from agents.gaf import DiffGAF
from agents.vivit import ViViT, ViViTOutput
from janus_env.checks import BAD_VALUE


def tiny(**kwargs: Any) -> ViViT:
    params: dict[str, Any] = dict(image_size=8, frames=4, patch_size=4, d_model=16, n_heads=2)
    params.update(kwargs)
    return ViViT(**params)


def video(batch: int = 3, frames: int = 4, side: int = 8, seed: int = 0) -> th.Tensor:
    generator = th.Generator().manual_seed(seed)
    return th.rand(batch, frames, 2, side, side, generator=generator) * 2 - 1


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_shapes(pooling: str) -> None:
    th.manual_seed(0)
    model = tiny(pooling=pooling, embed_dim=7, spatial_depth=2, temporal_depth=2)
    out = model.encode(video())
    assert isinstance(out, ViViTOutput)
    assert out.frame_tokens.shape == (3, 4, 16)
    assert out.embedding.shape == (3, 7)
    assert model(video()).shape == (3, 7)
    assert model.n_patches == 4
    assert (model.cls_spatial is None) == (pooling == "mean")


def test_embedding_dim_defaults_to_d_model_and_batches_are_independent() -> None:
    th.manual_seed(0)
    model = tiny().eval()
    clips = video(batch=5)
    out = model(clips)
    assert out.shape == (5, 16)
    th.testing.assert_close(out[2:3], model(clips[2:3]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_permuting_frames_changes_the_output(pooling: str) -> None:
    th.manual_seed(0)
    model = tiny(pooling=pooling).eval()
    clips = video()
    reversed_clips = clips.flip(1)
    with th.no_grad():
        out, out_rev = model(clips), model(reversed_clips)
    assert (out - out_rev).abs().max().item() > 1e-4
    # without temporal positions the temporal transformer is permutation-invariant:
    # the difference above comes from the learned temporal positions + temporal attention
    with th.no_grad():
        model.pos_temporal.zero_()
        same, same_rev = model(clips), model(reversed_clips)
    th.testing.assert_close(same, same_rev, atol=1e-5, rtol=1e-5)


def test_each_frame_token_sees_the_other_frames() -> None:
    th.manual_seed(0)
    model = tiny().eval()
    clips = video()
    changed = clips.clone()
    changed[:, 3] = -changed[:, 3]  # alter only the last frame
    with th.no_grad():
        first, first_changed = model.encode(clips).frame_tokens[:, 0], model.encode(changed).frame_tokens[:, 0]
    assert (first - first_changed).abs().max().item() > 1e-4


def test_forward_is_deterministic_and_gradients_reach_every_parameter() -> None:
    th.manual_seed(0)
    model = tiny()
    clips = video()
    th.testing.assert_close(model(clips), model(clips), atol=0, rtol=0)
    model(clips).square().sum().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def make_regimes(n: int, length: int, seed: int) -> tuple[th.Tensor, th.Tensor]:
    """Label 0: mean-reverting AR(1), φ = 0.6; label 1: random walk with a drift of ±0.25σ."""
    generator = th.Generator().manual_seed(seed)
    labels = th.arange(n) % 2
    noise = th.randn(n, length, generator=generator)
    drift = th.where(th.rand(n, generator=generator) < 0.5, -0.25, 0.25)
    series = th.zeros(n, length)
    for t in range(1, length):  # over time steps, not over the batch
        reverting = 0.6 * series[:, t - 1] + noise[:, t]
        trending = series[:, t - 1] + drift + noise[:, t]
        series[:, t] = th.where(labels == 1, trending, reverting)
    return series, labels


def test_overfits_two_regimes_from_gaf_videos() -> None:
    th.manual_seed(0)
    series, labels = make_regimes(96, 32, seed=0)
    gaf = DiffGAF(window=16, stride=4, frames=5)
    model = ViViT(16, 5, patch_size=4, d_model=16, n_heads=2, embed_dim=2)
    optimizer = th.optim.Adam([*model.parameters(), *gaf.parameters()], lr=3e-3)
    start = time.perf_counter()
    for _ in range(300):
        logits = model(gaf(series))
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if (logits.argmax(dim=1) == labels).float().mean().item() > 0.97:
            break
    with th.no_grad():
        accuracy = (model(gaf(series)).argmax(dim=1) == labels).float().mean().item()
    assert accuracy > 0.95
    assert time.perf_counter() - start < 20.0
    assert gaf.log_alpha.item() != 0.0 and gaf.beta.item() != 0.0  # the GAF scaling was trained too


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 10}, vivit_module._BAD_PATCH.format(10, 4)),
        ({"d_model": 15}, vivit_module._BAD_HEADS.format(15, 2)),
        ({"pooling": "max"}, BAD_VALUE.format(name="pooling", expected="one of ('cls', 'mean')", value="max")),
        ({"frames": 0}, BAD_VALUE.format(name="frames", expected="an int >= 1", value=0)),
        ({"spatial_depth": 0}, BAD_VALUE.format(name="spatial_depth", expected="an int >= 1", value=0)),
        ({"embed_dim": 0}, BAD_VALUE.format(name="embed_dim", expected="an int >= 1", value=0)),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [  # ValueError before
        ({"d_model": 16.0}, BAD_VALUE.format(name="d_model", expected="an int >= 1", value=16.0)),
        ({"n_heads": True}, BAD_VALUE.format(name="n_heads", expected="an int >= 1", value=True)),
        ({"embed_dim": "8"}, BAD_VALUE.format(name="embed_dim", expected="an int >= 1", value="8")),
    ],
)
def test_wrong_argument_types(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        tiny(**kwargs)


def test_numpy_sizes_are_plain_ints() -> None:
    model = tiny(frames=np.int64(4), d_model=np.int32(8), embed_dim=np.int64(6))
    assert (model.frames, model.d_model, model.embed_dim) == (4, 8, 6)
    assert type(model.frames) is int and type(model.d_model) is int and type(model.embed_dim) is int
    assert model(video()).shape == (3, 6)


def test_bad_video_shape() -> None:
    model = tiny()
    bad = video(frames=3)
    with pytest.raises(ValueError, match=re.escape(vivit_module._BAD_VIDEO.format(4, 2, 8, 8, tuple(bad.shape)))):
        model(bad)


def test_patch_embedding_equals_the_strided_convolution() -> None:
    """``embed_patches`` (patchify + matmul) computes ViT's ``Conv2d(kernel=stride=p)`` patch embedding."""
    model = tiny(image_size=12, frames=3, patch_size=4)
    clip = video(batch=2, frames=3, side=12)
    conv = model.patch_embed(clip.reshape(6, 2, 12, 12)).flatten(2).transpose(1, 2)
    th.testing.assert_close(model.embed_patches(clip), conv, atol=1e-6, rtol=1e-5)


def test_encoder_matches_torch_transformer_encoder_and_shares_its_state_dict() -> None:
    """``agents.transformer.Encoder`` is ``nn.TransformerEncoder`` (pre-norm, GELU, batch-first), faster."""
    from torch import nn

    from agents.transformer import Encoder

    th.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0, activation="gelu",
                                       batch_first=True, norm_first=True)
    reference = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16), enable_nested_tensor=False)
    for p in reference.parameters():  # deepcopied layers start equal; make them differ
        p.data.normal_(0.0, 0.3)
    ours = Encoder(16, 2, depth=2, dim_feedforward=32)
    ours.load_state_dict(reference.state_dict())
    tokens = th.randn(5, 7, 16)
    th.testing.assert_close(ours(tokens), reference(tokens), atol=1e-5, rtol=1e-5)
    reference.load_state_dict(ours.state_dict())  # and back
    ours.eval(), reference.eval()
    with th.no_grad():
        th.testing.assert_close(ours(tokens), reference(tokens), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_frame_tokens_are_encode_s_frame_tokens(pooling: str) -> None:
    """``frame_tokens`` (what JanusExtractor reads) is ``encode(...).frame_tokens``, without the pooled head."""
    model = tiny(pooling=pooling)
    clip = video(batch=3)
    th.testing.assert_close(model.frame_tokens(clip), model.encode(clip).frame_tokens, atol=0, rtol=0)
    bad = video(frames=3)
    with pytest.raises(ValueError, match=re.escape(vivit_module._BAD_VIDEO.format(4, 2, 8, 8, tuple(bad.shape)))):
        model.frame_tokens(bad)


def test_encoder_with_dropout_matches_torch_in_eval_mode() -> None:
    """With dropout > 0 the dropouts run (training) and are the identity in eval mode, as in nn.TransformerEncoder."""
    from torch import nn

    from agents.transformer import Encoder

    th.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.3, activation="gelu",
                                       batch_first=True, norm_first=True)
    reference = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(16), enable_nested_tensor=False).eval()
    ours = Encoder(16, 2, depth=2, dim_feedforward=32, dropout=0.3).eval()
    ours.load_state_dict(reference.state_dict())
    assert all(layer.has_dropout for layer in ours.layers)
    assert not any(layer.has_dropout for layer in Encoder(16, 2, depth=2, dim_feedforward=32).layers)
    tokens = th.randn(5, 7, 16)
    th.testing.assert_close(ours(tokens), reference(tokens), atol=1e-5, rtol=1e-5)
    ours.train()
    assert (ours(tokens) - reference(tokens)).abs().max().item() > 1e-3  # dropout is active when training
