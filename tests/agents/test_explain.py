"""GAF attribution (checked by finite differences) and DecisionExplainer (the explanation of the step it decided)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import MaskablePPO
from stable_baselines3 import PPO

import envs_registry  # noqa: F401 - registers Janus-LOB-v0
from agents.attribution import explainable, gaf_attribution
from agents.basal_ganglia import BasalGangliaDQN, BasalGangliaDQNPolicy, BasalGangliaMaskablePolicy, go_extractor
from agents.explain import DecisionExplainer, render_decision
from agents.extractor import JanusExtractor

EXTRACTOR = {"features_extractor_class": JanusExtractor}


def _env() -> gym.Env:
    return gym.make("Janus-LOB-v0", episode_steps=40, warmup=8)


def _models(env: gym.Env) -> dict[str, object]:
    return {
        "maskable-ppo": MaskablePPO(BasalGangliaMaskablePolicy, env, policy_kwargs=EXTRACTOR, seed=0, device="cpu"),
        "dqn": BasalGangliaDQN(BasalGangliaDQNPolicy, env, policy_kwargs=EXTRACTOR, seed=0, device="cpu",
                               learning_starts=10_000),
    }


@pytest.mark.parametrize("kind", ["maskable-ppo", "dqn"])
def test_frame_scores_are_the_directional_derivatives_along_each_frame(kind: str) -> None:
    env = _env()
    model = _models(env)[kind]
    obs, _ = env.reset(seed=0)
    for _ in range(6):
        obs, *_ = env.step(0)
    att = gaf_attribution(model.policy, obs, 1)
    policy, extractor = model.policy, go_extractor(model.policy)
    tensors, _ = policy.obs_to_tensor(obs)
    video = th.as_tensor(att.video)[None]

    def go(v: th.Tensor) -> float:
        extractor.video_override = v
        try:
            with th.no_grad():
                return float(policy.go_nogo(tensors)[0][0, 1])
        finally:
            extractor.video_override = None

    assert go(video) == pytest.approx(att.go, rel=1e-5, abs=1e-7)
    eps = 3e-2
    for f in range(video.shape[1]):
        frame = th.zeros_like(video)
        frame[:, f] = video[:, f]
        numeric = (go(video + eps * frame) - go(video - eps * frame)) / (2 * eps)
        assert numeric == pytest.approx(att.frame_scores[f], rel=0.05, abs=1e-6), f
    assert att.attribution.shape == att.video.shape and att.record()["top_frame"] == int(
        np.argmax(np.abs(att.frame_scores)))


def test_only_a_gated_janus_policy_is_explainable() -> None:
    env = _env()
    plain = PPO("MultiInputPolicy", env, seed=0, device="cpu")
    assert not explainable(plain.policy)
    with pytest.raises(TypeError, match="Expected a basal-ganglia policy reading a JanusExtractor"):
        gaf_attribution(plain.policy, env.reset(seed=0)[0], 1)


def test_without_vision_decisions_are_explained_without_frames(tmp_path) -> None:
    """A policy on ``JanusExtractor(vision=False)`` has no GAF frames to attribute to: not explainable, yet its
    decisions are explained (Go/No-Go, gates with λ_vis 0, rules) and rendered."""
    env = _env()
    kwargs = {**EXTRACTOR, "features_extractor_kwargs": {"vision": False}}
    model = MaskablePPO(BasalGangliaMaskablePolicy, env, policy_kwargs=kwargs, seed=0, device="cpu")
    assert not explainable(model.policy)
    with pytest.raises(TypeError, match="JanusExtractor with vision=True"):
        gaf_attribution(model.policy, env.reset(seed=0)[0], 1)
    explained = DecisionExplainer(env, model, keep=1)
    obs, _ = explained.reset(seed=1)
    for _ in range(5):
        action, _ = model.predict(obs, deterministic=True)
        obs, _, _, _, info = explained.step(action)
        assert info["go_nogo"]["final"] == int(action) and "gaf_attribution" not in info
        assert info["fusion_gates"]["vis"] == 0.0
    assert explained.decisions[0].attribution is None
    assert render_decision(explained.decisions[0], tmp_path / "d.png").stat().st_size > 5_000


def test_explainer_writes_the_decision_of_the_step_it_decided(tmp_path) -> None:
    env = _env()
    model = _models(env)["maskable-ppo"]
    explained = DecisionExplainer(env, model, keep=3)
    obs, _ = explained.reset(seed=1)
    rewards, proposals = [], []
    for _ in range(25):
        action, _ = model.predict(obs, deterministic=True)
        proposals.append(model.policy.last_go_nogo["proposed"])
        obs, reward, terminated, truncated, info = explained.step(action)
        rewards.append(reward)
        assert info["go_nogo"]["final"] == int(action)  # the gated action the env executed at this step
        assert info["gaf_attribution"]["action"] == proposals[-1]
        assert set(info["fusion_gates"]) == {"vis", "text"}
        if terminated or truncated:
            break
    kept = explained.decisions
    assert len(kept) == 3
    largest = sorted(range(len(rewards)), key=lambda i: (-abs(rewards[i]), i))[:3]
    assert [d.step for d in kept] == largest
    assert [d.go_nogo["proposed"] for d in kept] == [proposals[i] for i in largest]
    png = render_decision(kept[0], tmp_path / "d.png", title="test")
    assert png.stat().st_size > 10_000


def test_keep_must_be_a_count() -> None:
    env = _env()
    with pytest.raises(ValueError, match="Expected `keep` to be an int >= 0, got -1"):
        DecisionExplainer(env, _models(env)["dqn"], keep=-1)
