"""``JanusExtractor``: SB3 features extractor for the ``Dict`` observation of ``Janus-LOB-v0``.

Data flow (JANUS design, "agents — the conscious trader"; sizes *(ours)*)::

    prices, volumes (W,) ──► one token per patch of P steps: Linear(patch) + pos ─┐
    book (L, 4)          ──► one token per level: Linear(level) + pos_level       ├─► H_ts (B, W/P+L+2, d)
    account (5,)         ──► one token: Linear(account)                      │
    market (4,)          ──► one token: Linear(market)                     ──┘
    prices (W,) ──► DiffGAF video (F, 2, w, w) ──► ViViT ──► per-frame tokens H_vis (B, F, d)
    text (K, D) [optional key] ──► Linear ──► H_text (B, K, d)

    H2, λ = GatedCrossAttention(H_ts, H_vis, H_text)
    N = LayerNorm(H2)                                         (per token)
    features = ReLU(Linear([mean_t N_series; mean_l N_book; N_account; N_market]))   (B, features_dim)

The series is cut into non-overlapping patches of ``ts_patch`` = P steps,
one token per patch (PatchTST, Nie et al. 2023, "A Time Series is Worth 64
Words", ICLR) *(ours)*: a token sees P consecutive (price, volume) pairs, so
it can read a local level and slope, and the fusion attends from W/P instead of
W series tokens, which is what the extractor's cost scales with. ``ts_patch=1``
is one token per step.

The fused tokens are pooled **per stream** *(ours)*: the mean over the W
series tokens, the mean over the L book tokens, and the account and market
tokens as they are, concatenated (4·d). A single mean over all W + L + 2
tokens would weigh the account token (the agent's position, cash and PnL) by
1/(W + L + 2) — 1/39 at the default W = 32, 1/135 at W = 128 — so the
position all but vanished from the features (a linear read-out of the
position from the initial features of a PPO policy explained 36% of its
variance at W = 128, against 98% with per-stream pooling), and neither the
critic nor the actor could tell a long book from a flat one.

Every numeric input of the token projections goes through
``symlog(x) = sign(x)·log(1 + |x|)`` *(ours)*: the observation mixes basis
points, log-sizes and fractions with heavy tails, and ``symlog`` keeps the sign
and the order while bounding the scale. The DiffGAF branch gets the raw
``prices`` (it min-max scales each window itself).

Without the video and text (as ``janus-ppo`` and ``janus-dqn`` ship it) the fusion is the identity, and the
token streams up to the pooling run as two numba kernels, forward and backward (:mod:`agents.token_pool`): the
same features and gradients to float32 rounding at a fraction of the torch path's per-op cost. The torch path
stays for the video, the text stream, inputs that need a gradient (attributions), tracing and export, and
wherever ``fused_tokens`` is ``False``.

The last gate values are kept for the audit log and TensorBoard:
``extractor.last_gates`` → ``{"vis": float, "text": float}`` (batch means,
``text`` is 0 without a text stream) and ``extractor.last_gate_tensors`` (per
sample). They are not recorded while the module is being traced or exported.

```python
import gymnasium as gym
import envs_registry
from stable_baselines3 import PPO
from agents.extractor import JanusExtractor

env = gym.make("Janus-LOB-v0", seed=0)
model = PPO("MultiInputPolicy", env, policy_kwargs={"features_extractor_class": JanusExtractor})
```
"""

from __future__ import annotations

import gymnasium as gym
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from agents.fusion import GatedCrossAttention
from agents.gaf import DiffGAF, is_tracing, required_length
from agents.sequential import sequential
from agents.token_pool import fusable, token_pool
from agents.vivit import ViViT
from janus_env.checks import check_int

OBS_KEYS = ("prices", "volumes", "book", "account", "market")
"""Keys the extractor reads, in the order :func:`observation_tensors` returns them."""
N_POOLED = 4
"""Pooled blocks of ``d_model`` features: series, book, account, market (see :meth:`JanusExtractor.pool`)."""
TEXT_KEY = "text"
"""Optional ``Box(K, D)`` key: K text tokens of width D (e.g. news embeddings)."""

_NOT_DICT = "JanusExtractor needs a gymnasium.spaces.Dict observation space, got {!r}"
_MISSING_KEY = "JanusExtractor needs observation key {!r}; the space has {}"
_BAD_SHAPE = "Expected observation {!r} of shape {}, got {}"
_SHORT_WINDOW = (
    "JanusExtractor needs `prices` of length >= {needed} "
    "(gaf_window + (gaf_frames - 1) * gaf_stride = {w} + ({f} - 1) * {s}), got {got}; "
    "make the env with gym.make('Janus-LOB-v0', window={needed}) "
    "or lower gaf_window / gaf_stride / gaf_frames"
)
_BAD_PATCH = "Expected `ts_patch` ({ts_patch}) to divide the `prices` window W = {window}; pick a divisor of {window}"
_SHAPES = {
    "prices": "(W,) with W >= 2",
    "volumes": "(W,) like prices",
    "book": "(L, 4)",
    "account": "(n,)",
    "market": "(m,)",
    TEXT_KEY: "(K, D)",
}


def symlog(x: th.Tensor) -> th.Tensor:
    """``sign(x)·log(1 + |x|)`` (Hafner et al. 2023, DreamerV3): sign- and order-preserving squashing."""
    return th.sign(x) * th.log1p(th.abs(x))


class JanusExtractor(BaseFeaturesExtractor):
    """Token + GAF-video features of a ``Janus-LOB-v0`` observation, fused by gated cross-attention.

    See the module docstring for the data flow. Use as
    ``policy_kwargs={"features_extractor_class": JanusExtractor,
    "features_extractor_kwargs": {...}}`` with ``"MultiInputPolicy"``.

    Args:
        observation_space: ``Dict`` with ``prices`` (W,), ``volumes`` (W,),
            ``book`` (L, 4), ``account`` (n,), ``market`` (m,) and optionally
            ``text`` (K, D).
        features_dim: output size; default 64.
        d_model: token width everywhere; default 32.
        n_heads: attention heads (ViViT and fusion); default 2.
        gaf_window: GAF frame side ``w``; default 16 (fits the default W = 32).
        gaf_stride: samples between frames; default ``None``: the frames span the whole window,
            ``⌊(W − gaf_window)/(gaf_frames − 1)⌋`` (4 for the default W = 32: 16 + 4·4 = 32 samples; 28 for
            W = 128). A fixed stride of 4 on a longer window would show the video only its last 32 steps while a
            mean-reverting market's level is the whole window's (on ``bench_learning.py``'s W = 128 market,
            janus-ppo at 16k steps earned +5 bps an episode with stride 4, and ``bench_learning`` used 28). A
            model saved before this default with W ≠ 32 and no explicit ``gaf_stride`` was trained with 4: load
            it with ``custom_objects`` as for ``patch_size`` below, ``{"gaf_stride": 4}``.
        gaf_frames: frames per video; default 5.
        ts_patch: steps per series token ``P``; must divide the window ``W``; default 1. ``janus-ppo`` reads
            patches of 4 (``configs/janus-ppo.yml``): in the ablation as good as 1 at 0.7x the training CPU
            (``benchmarks/README.md``, "Series patches").
        patch_size: ViViT patch side; must divide ``gaf_window``; default 8: a 16 × 16 GAF frame is
            2 × 2 patches, 4 spatial tokens (+ CLS) per frame. Sized for CPU *(ours)*: with 4 (16 tokens
            per frame) the spatial transformer was most of the extractor's training cost, and ``janus-ppo``
            trained at 0.7× today's speed (CPU time) without learning better (``benchmarks/README.md``,
            "bench_agent.py"). A model saved with the former default (4) and no explicit ``patch_size``
            does not load as is: pass SB3's ``load`` ``custom_objects={"policy_kwargs": {**saved,
            "features_extractor_kwargs": {"patch_size": 4}}}`` (``saved`` = the file's ``policy_kwargs``,
            ``stable_baselines3.common.save_util.load_from_zip_file(path)[0]["policy_kwargs"]``).
        vivit_depth: layers of the ViViT spatial and of its temporal transformer; default 1.
        vivit_pooling: ``"cls"`` or ``"mean"``; default ``"cls"``.
        learn_gaf: learn DiffGAF's ``α``, ``β``; default ``True``.
        dropout: dropout in the attention blocks; default 0.
        vision: read the GAF video (DiffGAF → ViViT → the fusion's visual stage); default ``True``. ``False``
            keeps the token streams, the fusion (its text stage) and the pooling, without the video: ``H1 =
            H_ts``, ``λ_vis`` reported as 0, no GAF attribution. The ablation's ``no-gaf`` row
            (``benchmarks/README.md``) measures what the video is worth; the ``gaf_*``, ``patch_size`` and
            ``vivit_*`` arguments are then unused.

    Raises:
        TypeError: if ``observation_space`` is not a ``Dict``, a size is not an int, or ``vision`` not a bool.
        ValueError: for a missing key, a wrongly shaped key, ``prices`` shorter
            than ``gaf_window + (gaf_frames − 1)·gaf_stride`` (the message names
            the ``window=`` to pass to ``gym.make``), a window that ``ts_patch``
            does not divide, or bad sizes.
    """

    fused_tokens: bool = True
    """Without the video and text, compute the token streams by :mod:`agents.token_pool`'s kernels (CPU, no
    gradient to the observations, not traced): the same features to float32 rounding, a fraction of the torch
    path's dispatch cost. ``False`` (on an instance or the class) keeps the torch path everywhere."""

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 64,
        d_model: int = 32,
        n_heads: int = 2,
        gaf_window: int = 16,
        gaf_stride: int | None = None,
        gaf_frames: int = 5,
        ts_patch: int = 1,
        patch_size: int = 8,
        vivit_depth: int = 1,
        vivit_pooling: str = "cls",
        learn_gaf: bool = True,
        dropout: float = 0.0,
        vision: bool = True,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise TypeError(_NOT_DICT.format(observation_space))
        if not isinstance(vision, bool):
            raise TypeError(f"Expected `vision` to be a bool (read the GAF video or not), got {vision!r}")
        features_dim = check_int("features_dim", features_dim, low=1)
        ts_patch = check_int("ts_patch", ts_patch, low=1)
        super().__init__(observation_space, features_dim)
        shapes = self._check_space(observation_space)
        window = shapes["prices"][0]
        if vision and gaf_stride is None:
            frames = check_int("gaf_frames", gaf_frames, low=1)
            gaf_stride = max(1, (window - check_int("gaf_window", gaf_window, low=1)) // max(frames - 1, 1))
        needed = required_length(gaf_window, gaf_stride, gaf_frames) if vision else 2
        if window < needed:
            raise ValueError(
                _SHORT_WINDOW.format(needed=needed, w=gaf_window, f=gaf_frames, s=gaf_stride, got=window)
            )
        if window % ts_patch != 0:
            raise ValueError(_BAD_PATCH.format(ts_patch=ts_patch, window=window))
        self.window = window
        self.ts_patch = ts_patch
        self.n_series = window // ts_patch
        self.n_levels = shapes["book"][0]

        self.ts_proj = nn.Linear(2 * ts_patch, d_model)
        self.ts_pos = nn.Parameter(th.zeros(1, self.n_series, d_model))
        self.book_proj = nn.Linear(4, d_model)
        self.book_pos = nn.Parameter(th.zeros(1, self.n_levels, d_model))
        self.account_proj = nn.Linear(shapes["account"][0], d_model)
        self.market_proj = nn.Linear(shapes["market"][0], d_model)
        for p in (self.ts_pos, self.book_pos):
            nn.init.trunc_normal_(p, std=0.02)

        self.vision = vision
        self.gaf: DiffGAF | None = None
        self.vivit: ViViT | None = None
        if vision:
            self.gaf = DiffGAF(gaf_window, gaf_stride, gaf_frames, learnable=learn_gaf)
            self.vivit = ViViT(
                gaf_window,
                gaf_frames,
                patch_size=patch_size,
                d_model=d_model,
                n_heads=n_heads,
                spatial_depth=vivit_depth,
                temporal_depth=vivit_depth,
                dropout=dropout,
                pooling=vivit_pooling,
            )
        self.has_text = TEXT_KEY in observation_space.spaces
        if self.has_text:
            self.text_proj = nn.Linear(shapes[TEXT_KEY][1], d_model)
        self.fusion = GatedCrossAttention(d_model, n_heads, use_text=self.has_text, dropout=dropout,
                                          use_vision=vision)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(nn.Linear(N_POOLED * d_model, features_dim), nn.ReLU())
        self._last_gates: dict[str, th.Tensor] = {}
        self.video_override: th.Tensor | None = None
        """A GAF video ``(B, F, 2, w, w)`` to read instead of ``gaf(prices)`` (None: computed): the attribution
        (:mod:`agents.attribution`) feeds the video it differentiates through here."""

    @staticmethod
    def _check_space(space: spaces.Dict) -> dict[str, tuple[int, ...]]:
        """Validate the keys and shapes; return the shape of every key used."""
        for key in OBS_KEYS:
            if key not in space.spaces:
                raise ValueError(_MISSING_KEY.format(key, sorted(space.spaces)))
        keys = OBS_KEYS + ((TEXT_KEY,) if TEXT_KEY in space.spaces else ())
        shapes = {key: tuple(space[key].shape or ()) for key in keys}
        ok = {
            "prices": len(shapes["prices"]) == 1 and shapes["prices"][0] >= 2,
            "volumes": shapes["volumes"] == shapes["prices"],
            "book": len(shapes["book"]) == 2 and shapes["book"][0] >= 1 and shapes["book"][1] == 4,
            "account": len(shapes["account"]) == 1 and shapes["account"][0] >= 1,
            "market": len(shapes["market"]) == 1 and shapes["market"][0] >= 1,
            TEXT_KEY: TEXT_KEY not in shapes or (len(shapes[TEXT_KEY]) == 2 and min(shapes[TEXT_KEY]) >= 1),
        }
        for key, good in ok.items():
            if not good:
                raise ValueError(_BAD_SHAPE.format(key, _SHAPES[key], shapes[key]))
        return shapes

    @property
    def last_gates(self) -> dict[str, float]:
        """Gate values of the last forward, batch means: ``{"vis": λ_vis, "text": λ_text}`` ({} before any)."""
        return {k: float(v.mean()) for k, v in self._last_gates.items()}

    @property
    def last_gate_tensors(self) -> dict[str, th.Tensor]:
        """Per-sample gate values ``(B,)`` of the last forward (detached)."""
        return dict(self._last_gates)

    def tokens(self, observations: dict[str, th.Tensor]) -> tuple[th.Tensor, th.Tensor | None, th.Tensor | None]:
        """The three token streams ``(H_ts (B, W/P+L+2, d), H_vis (B, F, d) | None, H_text (B, K, d) | None)``
        (``H_vis`` is None without vision)."""
        prices = observations["prices"].float()
        batch = prices.shape[0]
        # (B, W, 2) → (B, W/P, 2P): patch j holds [p, v] of steps jP .. jP + P − 1, oldest first
        series = th.stack((prices, observations["volumes"].float()), dim=-1)
        # one symlog over every numeric input at once (elementwise: the same values as four calls, fewer ops)
        book = observations["book"].float()
        account = observations["account"].float()
        market = observations["market"].float()
        flat = symlog(th.cat((series.reshape(batch, -1), book.reshape(batch, -1), account, market), dim=1))
        widths = (2 * self.window, 4 * self.n_levels, account.shape[1], market.shape[1])
        series_in, book_in, account_in, market_in = th.split(flat, widths, dim=1)
        h_series = self.ts_proj(series_in.reshape(batch, self.n_series, 2 * self.ts_patch)) + self.ts_pos
        h_book = self.book_proj(book_in.reshape(book.shape)) + self.book_pos
        h_account = self.account_proj(account_in).unsqueeze(1)
        h_market = self.market_proj(market_in).unsqueeze(1)
        h_ts = th.cat((h_series, h_book, h_account, h_market), dim=1)
        h_vis = None
        if self.gaf is not None and self.vivit is not None:
            video = self.gaf(prices) if self.video_override is None else self.video_override
            h_vis = self.vivit.frame_tokens(video)
        h_text = self.text_proj(observations[TEXT_KEY].float()) if self.has_text else None
        return h_ts, h_vis, h_text

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        """Features ``(B, features_dim)`` of a batch of ``Dict`` observations."""
        if self.fused_tokens and self.gaf is None and not self.has_text and not is_tracing() \
                and fusable(self, observations):
            pooled = token_pool(self, observations)
            no_gate = th.zeros(pooled.shape[0])  # what the fusion reports without video and text: λ = 0
            self._last_gates = {"vis": no_gate, "text": no_gate}
            return sequential(self.head, pooled)
        h_ts, h_vis, h_text = self.tokens(observations)
        fused, gates = self.fusion(h_ts, h_vis, h_text)
        if not is_tracing():
            self._last_gates = {k: v.detach() for k, v in gates.items()}
        return self.head(self.pool(self.norm(fused)))

    def pool(self, tokens: th.Tensor) -> th.Tensor:
        """Per-stream pooling of ``(B, W/P+L+2, d)`` tokens: ``[mean series; mean book; account; market]`` (B, 4d)."""
        # one split, not four slices: its backward is one concatenation, theirs four zero-filled copies of the input
        series, book, account, market = th.split(tokens, (self.n_series, self.n_levels, 1, 1), dim=1)
        return th.cat((series.mean(dim=1), book.mean(dim=1), account.squeeze(1), market.squeeze(1)), dim=-1)


def observation_tensors(observations: dict[str, th.Tensor]) -> tuple[th.Tensor, ...]:
    """The observation tensors in :data:`OBS_KEYS` order (e.g. as positional ONNX inputs)."""
    return tuple(observations[k] for k in OBS_KEYS)
