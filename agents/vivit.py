"""ViViT factorized encoder for GAF videos.

"Model 2 — factorised encoder" of Arnab et al. 2021 ("ViViT: A Video Vision
Transformer", ICCV): every frame is cut into non-overlapping ``p × p`` patches
embedded by a ``Conv2d`` with ``kernel = stride = p`` (the ViT patch
embedding; evaluated as patchify + matmul, see :meth:`ViViT.embed_patches`),
a learnable spatial position is added to each patch and a spatial
transformer encodes each frame on its own; one token per frame (its CLS token or
the mean of its patches) plus a learnable temporal position goes through a
temporal transformer across frames; the video embedding is the temporal CLS
token (or the mean of the frame tokens), projected to ``embed_dim``.

Both transformers are pre-norm GELU encoder stacks as in ViT (Dosovitskiy et
al. 2021): :class:`agents.transformer.Encoder`, which computes what
``nn.TransformerEncoder(..., batch_first=True, norm_first=True)`` computes, with
the same parameter names, faster on CPU for short sequences.
"""

from __future__ import annotations

from typing import NamedTuple

import torch as th
from torch import nn

from agents.gaf import is_tracing
from agents.transformer import Encoder
from janus_env.checks import check_choice, check_int

_BAD_PATCH = "Expected `image_size` ({!r}) to be a positive multiple of `patch_size` ({!r})"
_BAD_HEADS = "Expected `d_model` ({!r}) divisible by `n_heads` ({!r})"
_BAD_VIDEO = "Expected a video of shape (B, {}, {}, {}, {}), got {}"

POOLINGS = ("cls", "mean")


class ViViTOutput(NamedTuple):
    """What :meth:`ViViT.encode` returns."""

    frame_tokens: th.Tensor
    """``(B, F, d_model)``: one token per frame after the temporal transformer."""
    embedding: th.Tensor
    """``(B, embed_dim)``: the pooled video embedding."""


def _encoder(d_model: int, n_heads: int, depth: int, mlp_ratio: float, dropout: float) -> Encoder:
    return Encoder(d_model, n_heads, depth, max(1, int(round(d_model * mlp_ratio))), dropout)


class ViViT(nn.Module):
    """Factorized-encoder video transformer (Arnab et al. 2021, model 2).

    ``video (B, F, C, H, W)`` → patches ``Conv2d(C, d, p, stride=p)`` →
    ``+ pos_spatial`` → spatial transformer per frame → frame token (CLS or
    mean) → ``+ pos_temporal`` → temporal transformer → video token (CLS or
    mean) → ``Linear(d, embed_dim)``.

    Args:
        image_size: frame side ``H = W`` (the GAF window).
        frames: frames per video ``F``.
        patch_size: patch side ``p``; must divide ``image_size``. Default 4.
        in_channels: channels per frame; default 2 (GASF, GADF).
        d_model: token width; default 32.
        n_heads: attention heads (both transformers); default 2.
        spatial_depth: spatial transformer layers; default 1.
        temporal_depth: temporal transformer layers; default 1.
        mlp_ratio: feed-forward width / ``d_model``; default 2.
        dropout: dropout inside the transformers; default 0.
        pooling: ``"cls"`` (a learnable CLS token at both levels, as in ViT and
            ViViT) or ``"mean"`` (mean over patches, then over frames).
        embed_dim: size of the pooled embedding; default ``d_model``.

    Raises:
        TypeError: a size that is not an int.
        ValueError: for a non-positive size, ``image_size`` not a multiple of
            ``patch_size``, ``d_model`` not divisible by ``n_heads`` or an
            unknown ``pooling``.
    """

    def __init__(
        self,
        image_size: int,
        frames: int,
        patch_size: int = 4,
        in_channels: int = 2,
        d_model: int = 32,
        n_heads: int = 2,
        spatial_depth: int = 1,
        temporal_depth: int = 1,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        pooling: str = "cls",
        embed_dim: int | None = None,
    ) -> None:
        super().__init__()
        image_size, frames, patch_size, in_channels, d_model, n_heads, spatial_depth, temporal_depth = (
            check_int(name, value, low=1) for name, value in (
                ("image_size", image_size),
                ("frames", frames),
                ("patch_size", patch_size),
                ("in_channels", in_channels),
                ("d_model", d_model),
                ("n_heads", n_heads),
                ("spatial_depth", spatial_depth),
                ("temporal_depth", temporal_depth),
            )
        )
        if image_size % patch_size != 0:
            raise ValueError(_BAD_PATCH.format(image_size, patch_size))
        if d_model % n_heads != 0:
            raise ValueError(_BAD_HEADS.format(d_model, n_heads))
        check_choice("pooling", pooling, POOLINGS)
        embed_dim = d_model if embed_dim is None else check_int("embed_dim", embed_dim, low=1)
        self.image_size = image_size
        self.frames = frames
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.d_model = d_model
        self.pooling = pooling
        self.embed_dim = embed_dim
        self.n_patches = (image_size // patch_size) ** 2

        self.patch_embed = nn.Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)
        self.pos_spatial = nn.Parameter(th.zeros(1, self.n_patches, d_model))
        self.pos_temporal = nn.Parameter(th.zeros(1, frames, d_model))
        if pooling == "cls":
            self.cls_spatial = nn.Parameter(th.zeros(1, 1, d_model))
            self.cls_temporal = nn.Parameter(th.zeros(1, 1, d_model))
        else:
            self.register_parameter("cls_spatial", None)
            self.register_parameter("cls_temporal", None)
        self.spatial = _encoder(d_model, n_heads, spatial_depth, mlp_ratio, dropout)
        self.temporal = _encoder(d_model, n_heads, temporal_depth, mlp_ratio, dropout)
        self.head = nn.Linear(d_model, embed_dim)
        for p in (self.pos_spatial, self.pos_temporal, self.cls_spatial, self.cls_temporal):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    def _with_cls(self, tokens: th.Tensor, cls: th.Tensor | None) -> th.Tensor:
        """Prepend the CLS token (``pooling="cls"``) or return ``tokens`` unchanged."""
        if cls is None:
            return tokens
        return th.cat((cls.expand(tokens.shape[0], -1, -1), tokens), dim=1)

    def _pool(self, tokens: th.Tensor) -> th.Tensor:
        """The CLS token (index 0) or the mean over tokens."""
        return tokens[:, 0] if self.pooling == "cls" else tokens.mean(dim=1)

    def embed_patches(self, video: th.Tensor) -> th.Tensor:
        """Patch tokens ``(B·F, N, d)`` of ``video (B, F, C, H, W)``, row-major patch order.

        Equal to ``patch_embed(frame).flatten(2).transpose(1, 2)`` (the strided
        ``Conv2d`` of ViT), computed as patchify + one matmul with the conv's own
        weight: a reshape instead of a convolution, because on CPU the
        convolution's backward pass cost more than the whole spatial transformer.
        """
        p, n_side, c = self.patch_size, self.image_size // self.patch_size, self.in_channels
        patches = video.reshape(-1, c, n_side, p, n_side, p).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(-1, n_side * n_side, c * p * p)
        weight = self.patch_embed.weight.reshape(self.d_model, c * p * p)
        return nn.functional.linear(patches, weight, self.patch_embed.bias)

    def _check_video(self, video: th.Tensor) -> None:
        expected = (self.frames, self.in_channels, self.image_size, self.image_size)
        if not is_tracing() and (video.dim() != 5 or tuple(video.shape[1:]) != expected):
            raise ValueError(_BAD_VIDEO.format(*expected, tuple(video.shape)))

    def _temporal_tokens(self, patches: th.Tensor, batch: int) -> th.Tensor:
        """The temporal transformer's output ``(B, F(+1), d)`` from patch tokens ``(B·F, N, d)``; the CLS token
        first with ``pooling="cls"``."""
        patches = patches + self.pos_spatial
        spatial = self.spatial(self._with_cls(patches, self.cls_spatial))
        frame_tokens = self._pool(spatial).reshape(batch, self.frames, self.d_model)
        frame_tokens = frame_tokens + self.pos_temporal
        return self.temporal(self._with_cls(frame_tokens, self.cls_temporal))

    def frame_tokens(self, video: th.Tensor) -> th.Tensor:
        """``encode(video).frame_tokens`` without the pooled embedding (what ``JanusExtractor`` reads).

        Raises:
            ValueError: if ``video`` does not have the configured shape.
        """
        self._check_video(video)
        temporal = self._temporal_tokens(self.embed_patches(video), video.shape[0])
        return temporal[:, 1:] if self.pooling == "cls" else temporal

    def encode(self, video: th.Tensor) -> ViViTOutput:
        """Per-frame tokens and the pooled embedding.

        Args:
            video: ``(B, F, C, H, W)`` with the sizes given at construction.

        Returns:
            :class:`ViViTOutput` ``(frame_tokens (B, F, d_model), embedding (B, embed_dim))``.

        Raises:
            ValueError: if ``video`` does not have the configured shape.
        """
        self._check_video(video)
        temporal = self._temporal_tokens(self.embed_patches(video), video.shape[0])
        frames_out = temporal[:, 1:] if self.pooling == "cls" else temporal
        return ViViTOutput(frames_out, self.head(self._pool(temporal)))

    def forward(self, video: th.Tensor) -> th.Tensor:
        """Pooled video embedding ``(B, embed_dim)`` of ``video (B, F, C, H, W)``."""
        return self.encode(video).embedding
