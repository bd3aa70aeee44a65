"""JanusExtractor: SB3 PPO integration, save/load, gradients into DiffGAF, ONNX export, validation."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.utils import obs_as_tensor
from torch import nn

import envs_registry  # noqa: F401  (registers Janus-LOB-v0)
from agents import extractor as extractor_module
from agents.extractor import OBS_KEYS, JanusExtractor, observation_tensors, symlog
from janus_env.checks import BAD_VALUE

LEARN_STEPS = 256


def env_observations(n: int, seed: int = 0, **make_kwargs: Any) -> dict[str, np.ndarray]:
    """``n`` consecutive observations of ``Janus-LOB-v0`` under seeded random actions, batched."""
    env = gym.make("Janus-LOB-v0", seed=seed, **make_kwargs)
    env.action_space.seed(seed)
    obs, _ = env.reset()
    rows = [obs]
    for _ in range(n - 1):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
        rows.append(obs)
    return {k: np.stack([row[k] for row in rows]) for k in rows[0]}


def as_tensors(obs: dict[str, np.ndarray]) -> dict[str, th.Tensor]:
    return {k: th.as_tensor(v) for k, v in obs.items()}


@pytest.fixture(scope="module")
def trained() -> tuple[PPO, tuple[float, float]]:
    """A PPO ``MultiInputPolicy`` with the extractor after a short learn, and DiffGAF's initial (log α, β)."""
    env = gym.make("Janus-LOB-v0", seed=0)
    model = PPO(
        "MultiInputPolicy",
        env,
        n_steps=128,
        batch_size=64,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs={"features_extractor_class": JanusExtractor, "net_arch": [32]},
    )
    gaf = model.policy.features_extractor.gaf
    initial = (gaf.log_alpha.item(), gaf.beta.item())
    model.learn(LEARN_STEPS)
    return model, initial


def test_ppo_learns_with_the_extractor_and_trains_diffgaf(trained: tuple[PPO, tuple[float, float]]) -> None:
    model, (log_alpha0, beta0) = trained
    assert model.num_timesteps == LEARN_STEPS
    extractor = model.policy.features_extractor
    assert isinstance(extractor, JanusExtractor)
    assert (log_alpha0, beta0) == (0.0, 0.0)
    # Adam moved α and β: the PPO loss reached them through ViViT and the fusion
    assert extractor.gaf.log_alpha.item() != log_alpha0
    assert extractor.gaf.beta.item() != beta0
    gates = extractor.last_gates
    assert set(gates) == {"vis", "text"} and gates["text"] == 0.0 and 0.0 < gates["vis"] < 1.0
    assert all(isinstance(v, float) for v in gates.values())


def test_policy_loss_gradient_reaches_alpha_and_beta(trained: tuple[PPO, tuple[float, float]]) -> None:
    model, _ = trained
    policy = model.policy
    obs = obs_as_tensor(env_observations(32, seed=1), policy.device)
    actions = th.arange(32) % 3
    policy.zero_grad()
    _, log_prob, _ = policy.evaluate_actions(obs, actions)
    advantages = th.linspace(-1.0, 1.0, 32)
    (-(log_prob * advantages).mean()).backward()  # the policy-gradient term alone
    gaf = policy.features_extractor.gaf
    for p in (gaf.log_alpha, gaf.beta):
        assert p.grad is not None and th.isfinite(p.grad).all() and p.grad.abs().item() > 0
    policy.zero_grad()


def test_save_load_round_trip_gives_identical_predictions(
    trained: tuple[PPO, tuple[float, float]], tmp_path: Path
) -> None:
    model, _ = trained
    path = tmp_path / "ppo_janus.zip"
    model.save(path)
    loaded = PPO.load(path, device="cpu")
    assert isinstance(loaded.policy.features_extractor, JanusExtractor)
    obs = env_observations(16, seed=2)
    actions, _ = model.predict(obs, deterministic=True)
    loaded_actions, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, loaded_actions)
    with th.no_grad():
        t_obs = obs_as_tensor(obs, model.device)
        probs = model.policy.get_distribution(t_obs).distribution.probs
        loaded_probs = loaded.policy.get_distribution(t_obs).distribution.probs
    th.testing.assert_close(probs, loaded_probs, atol=0, rtol=0)
    assert loaded.policy.features_extractor.gaf.alpha.item() == model.policy.features_extractor.gaf.alpha.item()


def make_extractor(seed: int = 0, **kwargs: Any) -> JanusExtractor:
    th.manual_seed(seed)
    space = gym.make("Janus-LOB-v0").observation_space
    return JanusExtractor(space, **kwargs)


def test_forward_shape_and_determinism() -> None:
    extractor = make_extractor(features_dim=24)
    obs = as_tensors(env_observations(8))
    assert extractor.last_gates == {}
    first = extractor(obs)
    assert first.shape == (8, 24) and extractor.features_dim == 24
    th.testing.assert_close(extractor(obs), first, atol=0, rtol=0)
    with th.no_grad():
        th.testing.assert_close(extractor.eval()(obs), first, atol=1e-6, rtol=1e-5)
    th.testing.assert_close(make_extractor()(obs), make_extractor()(obs), atol=0, rtol=0)  # same seed, same net
    assert extractor.last_gate_tensors["vis"].shape == (8,)
    assert not extractor.last_gate_tensors["vis"].requires_grad


def test_visual_branch_matters() -> None:
    """Features depend on the GAF video of the prices (not only on the token stream)."""
    extractor = make_extractor()
    obs = as_tensors(env_observations(4))
    h_ts, h_vis, h_text = extractor.tokens(obs)
    assert h_ts.shape == (4, 32 + 5 + 2, 32) and h_vis.shape == (4, 5, 32) and h_text is None
    fused, _ = extractor.fusion(h_ts, h_vis)
    fused_other, _ = extractor.fusion(h_ts, h_vis.flip(0))
    assert (fused - fused_other).abs().max().item() > 1e-5


def test_without_vision_the_features_read_no_gaf_video() -> None:
    """``vision=False``: no DiffGAF or ViViT parameters, features blind to the video, λ_vis reported as 0."""
    extractor = make_extractor(vision=False)
    full = make_extractor()
    assert extractor.gaf is None and extractor.vivit is None
    assert not any(name.startswith(("gaf.", "vivit.", "fusion.attn_vis", "fusion.gate_vis"))
                   for name, _ in extractor.named_parameters())
    n_params = sum(p.numel() for p in extractor.parameters())
    assert n_params < sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in full.vivit.parameters())
    obs = as_tensors(env_observations(4))
    h_ts, h_vis, _ = extractor.tokens(obs)
    assert h_vis is None and h_ts.shape == (4, 32 + 5 + 2, 32)
    features = extractor(obs)
    assert features.shape == (4, 64) and extractor.last_gates == {"vis": 0.0, "text": 0.0}
    want = extractor.head(extractor.pool(extractor.norm(h_ts)))
    th.testing.assert_close(features, want, rtol=1e-5, atol=1e-5)  # agents.token_pool's kernels: float32 rounding
    extractor.fused_tokens = False
    th.testing.assert_close(extractor(obs), want, atol=0, rtol=0)  # the torch path: these ops, bit for bit
    features.sum().backward()
    assert all(p.grad is not None for name, p in extractor.named_parameters() if not name.startswith("fusion."))
    # a window too short for the default GAF video is fine without one
    short = JanusExtractor(gym.make("Janus-LOB-v0", window=8).observation_space, vision=False)
    assert short(as_tensors(env_observations(2, window=8))).shape == (2, 64)
    with pytest.raises(TypeError, match="`vision` to be a bool .*, got 1"):
        make_extractor(vision=1)


def test_larger_window_and_gaf_settings() -> None:
    space = gym.make("Janus-LOB-v0", window=48).observation_space
    extractor = JanusExtractor(space, gaf_window=24, gaf_stride=4, gaf_frames=6, patch_size=6, vivit_pooling="mean")
    obs = as_tensors(env_observations(3, window=48))
    assert extractor(obs).shape == (3, 64)
    assert extractor.gaf(obs["prices"]).shape == (3, 6, 2, 24, 24)


def test_optional_text_key_opens_the_second_gate() -> None:
    base = gym.make("Janus-LOB-v0").observation_space
    space = spaces.Dict({**base.spaces, "text": spaces.Box(-1.0, 1.0, shape=(3, 6), dtype=np.float32)})
    th.manual_seed(0)
    extractor = JanusExtractor(space)
    obs = as_tensors(env_observations(2))
    obs["text"] = th.rand(2, 3, 6, generator=th.Generator().manual_seed(0)) * 2 - 1
    features = extractor(obs)
    assert extractor.last_gates == {"vis": 0.5, "text": 0.5}
    obs["text"] = -obs["text"]
    assert (extractor(obs) - features).abs().max().item() > 1e-6


def test_symlog() -> None:
    x = th.tensor([-(np.e - 1.0), 0.0, np.e**2 - 1.0])
    th.testing.assert_close(symlog(x), th.tensor([-1.0, 0.0, 2.0]))


class _PositionalExtractor(nn.Module):
    """The extractor with the observation keys as positional inputs (ONNX graphs take tensors, not dicts)."""

    def __init__(self, extractor: JanusExtractor) -> None:
        super().__init__()
        self.extractor = extractor

    def forward(
        self, prices: th.Tensor, volumes: th.Tensor, book: th.Tensor, account: th.Tensor, market: th.Tensor
    ) -> th.Tensor:
        return self.extractor(dict(zip(OBS_KEYS, (prices, volumes, book, account, market), strict=True)))


@pytest.mark.parametrize(
    "dynamo",
    # the torch.export path takes ~10-20 s on a busy 2-core box: `slow` (CI skips it); agents.export uses dynamo=False
    [False, pytest.param(True, marks=pytest.mark.slow)],
    ids=["torchscript", "dynamo"],
)
# the legacy exporter announces its deprecation, and nn.MultiheadAttention's own shape
# checks (torch/nn/functional.py) warn under tracing; our modules skip theirs (agents.gaf.is_tracing)
@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning")
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("vision", [True, False], ids=["video", "no-video"])  # janus-ppo ships without the video
def test_onnx_export(dynamo: bool, vision: bool, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (needed by torch.onnx.export)")
    if dynamo and importlib.util.find_spec("onnxscript") is None:
        pytest.skip("onnxscript is not installed (needed by torch.onnx.export(dynamo=True))")
    extractor = make_extractor(vision=vision).eval()
    obs = as_tensors(env_observations(3))
    obs["prices"][1] = 0.0  # constant GAF windows (as before the env has history): max = min
    with th.no_grad():
        expected = extractor(obs).numpy()
    assert np.isfinite(expected).all()
    gates_before = extractor.last_gate_tensors
    args = observation_tensors(obs)
    path = tmp_path / "extractor.onnx"
    if dynamo:
        batch = th.export.Dim("batch")
        kwargs: dict[str, Any] = {"dynamic_shapes": tuple({0: batch} for _ in OBS_KEYS)}
    else:
        kwargs = {"dynamic_axes": {k: {0: "batch"} for k in OBS_KEYS}}
    th.onnx.export(
        _PositionalExtractor(extractor).eval(),
        args,
        str(path),
        input_names=list(OBS_KEYS),
        output_names=["features"],
        dynamo=dynamo,
        **kwargs,
    )
    onnx.checker.check_model(onnx.load(str(path)))
    assert extractor.last_gate_tensors.keys() == gates_before.keys()
    assert all(extractor.last_gate_tensors[k] is gates_before[k] for k in gates_before)  # not touched by export
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        more = as_tensors(env_observations(5, seed=3))  # another batch size: the batch axis is dynamic
        for batch_obs, want in ((obs, expected), (more, None)):
            (got,) = session.run(None, {k: batch_obs[k].numpy() for k in OBS_KEYS})
            if want is None:
                with th.no_grad():
                    want = extractor(batch_obs).numpy()
            np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_bad_window_names_the_env_window_to_use() -> None:
    space = gym.make("Janus-LOB-v0", window=20).observation_space
    message = extractor_module._SHORT_WINDOW.format(needed=32, w=16, f=5, s=4, got=20)
    assert "gym.make('Janus-LOB-v0', window=32)" in message
    with pytest.raises(ValueError, match=re.escape(message)):
        JanusExtractor(space, gaf_stride=4)
    short = gym.make("Janus-LOB-v0", window=19).observation_space  # even a stride of 1 needs 16 + 4 samples
    with pytest.raises(ValueError, match=re.escape(extractor_module._SHORT_WINDOW.format(
            needed=20, w=16, f=5, s=1, got=19))):
        JanusExtractor(short)


@pytest.mark.parametrize(("window", "stride"), [(32, 4), (20, 1), (64, 12), (128, 28)])
def test_the_default_frames_span_the_window(window: int, stride: int) -> None:
    extractor = JanusExtractor(gym.make("Janus-LOB-v0", window=window).observation_space)
    assert extractor.gaf.stride == stride
    assert 16 + 4 * stride <= window < 16 + 4 * (stride + 1)  # the last frame ends at the newest sample or near it


def test_bad_observation_spaces() -> None:
    base = gym.make("Janus-LOB-v0").observation_space
    with pytest.raises(TypeError, match=re.escape(extractor_module._NOT_DICT.format(base["prices"]))):
        JanusExtractor(base["prices"])
    missing = spaces.Dict({k: v for k, v in base.spaces.items() if k != "market"})
    message = extractor_module._MISSING_KEY.format("market", sorted(missing.spaces))
    with pytest.raises(ValueError, match=re.escape(message)):
        JanusExtractor(missing)
    bad_book = spaces.Dict({**base.spaces, "book": spaces.Box(-1.0, 1.0, shape=(5, 3), dtype=np.float32)})
    message = extractor_module._BAD_SHAPE.format("book", "(L, 4)", (5, 3))
    with pytest.raises(ValueError, match=re.escape(message)):
        JanusExtractor(bad_book)
    bad_volumes = spaces.Dict({**base.spaces, "volumes": spaces.Box(0.0, 1.0, shape=(31,), dtype=np.float32)})
    message = extractor_module._BAD_SHAPE.format("volumes", "(W,) like prices", (31,))
    with pytest.raises(ValueError, match=re.escape(message)):
        JanusExtractor(bad_volumes)
    with pytest.raises(ValueError, match=re.escape(BAD_VALUE.format(name="features_dim", expected="an int >= 1",
                                                                    value=0))):
        JanusExtractor(base, features_dim=0)
    with pytest.raises(ValueError, match=re.escape(BAD_VALUE.format(name="ts_patch", expected="an int >= 1",
                                                                    value=0))):
        JanusExtractor(base, ts_patch=0)
    # wrong types: ValueError before
    with pytest.raises(TypeError, match=re.escape(BAD_VALUE.format(name="features_dim", expected="an int >= 1",
                                                                   value=64.0))):
        JanusExtractor(base, features_dim=64.0)
    with pytest.raises(TypeError, match=re.escape(BAD_VALUE.format(name="ts_patch", expected="an int >= 1",
                                                                   value=True))):
        JanusExtractor(base, ts_patch=True)
    with pytest.raises(ValueError, match=re.escape(extractor_module._BAD_PATCH.format(ts_patch=5, window=32))):
        JanusExtractor(base, ts_patch=5)


def test_series_patches_are_tokens_of_consecutive_steps() -> None:
    """``ts_patch=P``: W/P series tokens, token j = Linear([p, v] of steps jP..jP+P−1) + pos_j."""
    extractor = make_extractor(ts_patch=4)
    obs = as_tensors(env_observations(3))
    h_ts, _, _ = extractor.tokens(obs)
    assert h_ts.shape == (3, 32 // 4 + 5 + 2, 32) and extractor(obs).shape == (3, 64)
    series = th.stack((obs["prices"], obs["volumes"]), dim=-1)[:, 4:8].reshape(3, 8)  # steps 4..7 → token 1
    want = extractor.ts_proj(extractor_module.symlog(series)) + extractor.ts_pos[0, 1]
    th.testing.assert_close(h_ts[:, 1], want)
    later = {k: v.clone() for k, v in obs.items()}
    later["prices"][:, 8:] += 5.0  # steps 8.. change: tokens 0 and 1 do not
    h_later, _, _ = extractor.tokens(later)
    th.testing.assert_close(h_later[:, :2], h_ts[:, :2], atol=0, rtol=0)
    assert (h_later[:, 2] - h_ts[:, 2]).abs().max().item() > 1e-3


def test_every_token_stream_is_its_projection_of_symlog_inputs() -> None:
    """``tokens`` symlogs all numeric inputs in one call: each stream equals its own ``Linear(symlog(x)) + pos``."""
    extractor = make_extractor()
    obs = as_tensors(env_observations(5))
    h_ts, h_vis, _ = extractor.tokens(obs)
    n_book = obs["book"].shape[1]
    series = th.stack((obs["prices"], obs["volumes"]), dim=-1)
    want = th.cat((
        extractor.ts_proj(symlog(series)) + extractor.ts_pos,
        extractor.book_proj(symlog(obs["book"])) + extractor.book_pos,
        extractor.account_proj(symlog(obs["account"])).unsqueeze(1),
        extractor.market_proj(symlog(obs["market"])).unsqueeze(1),
    ), dim=1)
    assert h_ts.shape == (5, 32 + n_book + 2, 32)
    th.testing.assert_close(h_ts, want, atol=0, rtol=0)
    th.testing.assert_close(h_vis, extractor.vivit.encode(extractor.gaf(obs["prices"])).frame_tokens, atol=0, rtol=0)


def test_default_vivit_is_sized_for_cpu() -> None:
    """Default patches of 8 on 16-sample GAF frames: 2 × 2 = 4 spatial tokens per frame (benchmarks/README.md)."""
    extractor = make_extractor()
    assert (extractor.gaf.window, extractor.vivit.patch_size, extractor.vivit.n_patches) == (16, 8, 4)
    assert extractor.vivit.patch_embed.weight.shape == (32, 2, 8, 8)
