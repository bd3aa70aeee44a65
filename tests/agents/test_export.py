"""ONNX export: the basal-ganglia decision graph and plain SB3 policies match torch under onnxruntime."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import MaskablePPO, QRDQN
from stable_baselines3 import DQN, PPO, SAC

import envs_registry  # noqa: F401
from agents import export as ex
from agents.basal_ganglia import (
    HOLD,
    BasalGangliaActorCriticPolicy,
    BasalGangliaDQN,
    BasalGangliaDQNPolicy,
    BasalGangliaMaskablePolicy,
    BasalGangliaQRDQN,
    BasalGangliaQRDQNPolicy,
    go_scores,
)
from agents.export import export_onnx
from janus_env.checks import BAD_VALUE

ort = pytest.importorskip("onnxruntime")


def lob_env() -> gym.Env:
    return gym.make("Janus-LOB-v0", scenario="ou", seed=0, episode_steps=200)


def env_observations(n: int = 64) -> dict[str, np.ndarray]:
    env = lob_env()
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(n):
        rows.append(obs)
        obs, *_ = env.step(int(rng.integers(3)))
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def randomize_nogo(policy: Any, seed: int = 0) -> None:
    """Give the No-Go head random weights so some (not all) decisions are vetoed."""
    gen = th.Generator().manual_seed(seed)
    head = policy.nogo_net
    with th.no_grad():
        head.linear.weight.copy_(th.randn(head.linear.weight.shape, generator=gen))
        head.linear.bias.fill_(0.5)
        head.input_mean.copy_(th.randn(head.input_mean.shape, generator=gen))
        head.input_var.copy_(th.rand(head.input_var.shape, generator=gen) * 10 + 1)


def make(kind: str, env: gym.Env | None = None) -> Any:
    env = env if env is not None else lob_env()
    arch = {"net_arch": [16]}
    if kind == "bg_dqn":
        return BasalGangliaDQN(BasalGangliaDQNPolicy, env, policy_kwargs=arch, buffer_size=100, seed=0)
    if kind == "bg_qrdqn":
        return BasalGangliaQRDQN(BasalGangliaQRDQNPolicy, env, policy_kwargs={"n_quantiles": 5, **arch},
                                 buffer_size=100, seed=0)
    if kind == "bg_ppo":
        return PPO(BasalGangliaActorCriticPolicy, env, policy_kwargs=arch, n_steps=64, seed=0)
    if kind == "bg_maskable":
        return MaskablePPO(BasalGangliaMaskablePolicy, env, policy_kwargs=arch, n_steps=64, seed=0)
    if kind == "dqn":
        return DQN("MultiInputPolicy", env, policy_kwargs=arch, buffer_size=100, seed=0)
    if kind == "qrdqn":
        return QRDQN("MultiInputPolicy", env, policy_kwargs={"n_quantiles": 5, **arch}, buffer_size=100, seed=0)
    if kind == "ppo":
        return PPO("MultiInputPolicy", env, policy_kwargs=arch, n_steps=64, seed=0)
    raise AssertionError(kind)


def run(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


@pytest.mark.parametrize("kind", ["bg_dqn", "bg_ppo", "bg_qrdqn"])
def test_basal_ganglia_graph_matches_predict(kind: str, tmp_path: Path) -> None:
    model = make(kind)
    randomize_nogo(model.policy)
    path = export_onnx(model, tmp_path / "sub" / f"{kind}.onnx")
    assert path == tmp_path / "sub" / f"{kind}.onnx" and path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary left behind
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(model.observation_space.spaces)
    obs = env_observations()
    out = run(path, obs)
    assert set(out) == {"action", "proposed", "go", "nogo", "vetoed"}
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(out["action"], expected)
    batch = model.policy.last_go_nogo_batch
    np.testing.assert_allclose(out["nogo"], [row["nogo"] for row in batch], atol=1e-5)
    np.testing.assert_allclose(out["go"], [row["go"] for row in batch], atol=1e-5)
    assert out["vetoed"].tolist() == [row["vetoed"] for row in batch]
    assert 0 < out["vetoed"].sum() < out["vetoed"].size or not (out["proposed"] != HOLD).any()
    np.testing.assert_array_equal(out["action"][out["vetoed"]], HOLD)


@pytest.mark.parametrize("kind", ["bg_dqn", "bg_qrdqn", "bg_ppo", "bg_maskable", "dqn", "qrdqn", "ppo"])
def test_graph_go_scores_and_actions_are_the_torch_policys(kind: str, tmp_path: Path, sb3_go_scores: Any) -> None:
    """One Go computation (``go_scores``) in the policy and in the ONNX graph: same scores, same actions."""
    model = make(kind)
    if kind.startswith("bg"):
        randomize_nogo(model.policy)
    path = export_onnx(model, tmp_path / f"{kind}.onnx")
    obs = env_observations(32)
    feed: dict[str, np.ndarray] = dict(obs)
    predict_kwargs: dict[str, Any] = {}
    if kind == "bg_maskable":
        masks = np.random.default_rng(1).random((32, 3)) < 0.7
        masks[:, 2] = True  # at least one legal action per row
        feed["action_masks"] = predict_kwargs["action_masks"] = masks
    out = run(path, feed)
    tensor_obs, _ = model.policy.obs_to_tensor(obs)
    with th.no_grad():
        go = go_scores(model.policy, tensor_obs).numpy()
    np.testing.assert_allclose(out["go"], go, atol=1e-5)
    expected = sb3_go_scores(model.policy, tensor_obs).numpy()
    got = out["go"] if kind.endswith("dqn") else out["go"] - np.log(np.exp(out["go"]).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_array_equal(out["action"], model.predict(obs, deterministic=True, **predict_kwargs)[0])


def test_logic_input_gates_on_the_logic_loss(tmp_path: Path) -> None:
    model = make("bg_ppo")
    path = export_onnx(model, tmp_path / "logic.onnx", logic_input=True)
    obs = env_observations(8)
    free = run(path, {**obs, "logic_loss": np.zeros(8, np.float32)})
    blocked = run(path, {**obs, "logic_loss": np.full(8, 0.1, np.float32)})
    assert (free["action"] != HOLD).any()
    np.testing.assert_array_equal(blocked["action"], HOLD)
    np.testing.assert_array_equal(blocked["proposed"], free["proposed"])


def test_maskable_graph_takes_action_masks(tmp_path: Path) -> None:
    model = make("bg_maskable")
    randomize_nogo(model.policy)
    path = export_onnx(model, tmp_path / "maskable.onnx")
    obs = env_observations(16)
    masks = np.ones((16, 3), dtype=bool)
    masks[:, 1] = False
    out = run(path, {**obs, "action_masks": masks})
    assert not (out["proposed"] == 1).any()
    expected, _ = model.predict(obs, deterministic=True, action_masks=masks)
    np.testing.assert_array_equal(out["action"], expected)


@pytest.mark.parametrize("kind", ["dqn", "qrdqn", "ppo"])
def test_plain_policies(kind: str, tmp_path: Path) -> None:
    model = make(kind)
    path = export_onnx(model.policy, tmp_path / f"{kind}.onnx", opset=13)
    obs = env_observations(32)
    out = run(path, obs)
    assert set(out) == {"action", "go"}
    np.testing.assert_array_equal(out["action"], model.predict(obs, deterministic=True)[0])


def test_box_actions_are_clipped_like_predict(tmp_path: Path) -> None:
    model = PPO("MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [16]}, n_steps=64, seed=0)
    with th.no_grad():
        model.policy.action_net.bias.fill_(5.0)  # beyond the bounds: predict clips to 2
    path = export_onnx(model, tmp_path / "box.onnx")
    obs = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    out = run(path, {"obs": obs})
    np.testing.assert_allclose(out["action"], model.predict(obs, deterministic=True)[0], atol=1e-5)
    assert out["action"].max() <= 2.0


def test_failed_validation_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make("bg_dqn")
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    real_run = ort.InferenceSession.run

    def perturbed(self: Any, names: Any, feed: Any, *args: Any) -> list[np.ndarray]:
        outputs = real_run(self, names, feed, *args)
        return [o + 1e-3 if np.issubdtype(o.dtype, np.floating) else o for o in outputs]

    monkeypatch.setattr(ort.InferenceSession, "run", perturbed)
    with pytest.raises(RuntimeError, match=re.escape("ONNX output 'go' differs from torch: max abs diff")):
        export_onnx(model, target)
    assert target.read_bytes() == b"previous"
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_training_mode_is_restored(tmp_path: Path) -> None:
    model = make("bg_ppo")
    model.policy.set_training_mode(True)
    export_onnx(model, tmp_path / "m.onnx")
    assert model.policy.training


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"opset": 11}, ValueError, BAD_VALUE.format(name="opset", expected="an int >= 13", value=11)),
        ({"n_validation": 0}, ValueError, BAD_VALUE.format(name="n_validation", expected="an int >= 1", value=0)),
        ({"atol": 0.0}, ValueError, BAD_VALUE.format(name="atol", expected="a finite number > 0", value=0.0)),
        ({"atol": float("nan")}, ValueError,
         BAD_VALUE.format(name="atol", expected="a finite number > 0", value=float("nan"))),
        # ValueError before
        ({"opset": 17.0}, TypeError, BAD_VALUE.format(name="opset", expected="an int >= 13", value=17.0)),
        ({"n_validation": True}, TypeError, BAD_VALUE.format(name="n_validation", expected="an int >= 1", value=True)),
        ({"atol": "1e-5"}, TypeError, BAD_VALUE.format(name="atol", expected="a finite number > 0", value="1e-5")),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str, tmp_path: Path) -> None:
    with pytest.raises(error, match=re.escape(message)):
        export_onnx(make("dqn"), tmp_path / "m.onnx", **kwargs)
    assert not list(tmp_path.iterdir())


def test_logic_input_needs_basal_ganglia(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(ex._LOGIC_NEEDS_BG.format("MultiInputPolicy"))):
        export_onnx(make("dqn"), tmp_path / "m.onnx", logic_input=True)


def test_unsupported_models(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=re.escape(ex._NOT_POLICY.format("str"))):
        export_onnx("model.zip", tmp_path / "m.onnx")
    sac = SAC("MlpPolicy", "Pendulum-v1", buffer_size=100, policy_kwargs={"net_arch": [8]})
    with pytest.raises(TypeError, match=re.escape(ex._UNSUPPORTED.format("SACPolicy"))):
        export_onnx(sac, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_janus_extractor_graph(tmp_path: Path) -> None:
    extractor = pytest.importorskip("agents.extractor")
    model = PPO(
        BasalGangliaActorCriticPolicy,
        lob_env(),
        n_steps=64,
        seed=0,
        policy_kwargs={
            "features_extractor_class": extractor.JanusExtractor,
            "features_extractor_kwargs": {"features_dim": 16, "d_model": 8},
            "net_arch": [16],
        },
    )
    path = export_onnx(model, tmp_path / "janus.onnx")
    obs = env_observations(32)
    out = run(path, obs)
    np.testing.assert_array_equal(out["action"], model.predict(obs, deterministic=True)[0])
    np.testing.assert_allclose(out["go"], [row["go"] for row in model.policy.last_go_nogo_batch], atol=1e-5)
