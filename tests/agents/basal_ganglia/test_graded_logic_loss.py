"""janus-ppo's logical loss acts on permitted actions once the rule truths are graded (wrappers/rules.py,
"Graded truths"): on the default janus-ppo config the logged ``train/logic_loss`` is > 0, and above the loss of
the same rollout scored with (as good as) crisp truths."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import envs_registry  # noqa: F401
from agents.app import config
from wrappers import make_glass_box
from wrappers.rules import TradingKnowledgeBase

ENV_ID = "Janus-LOB-v0"
LOGIC_IN_TRAINING = ["shield_training=enforce", "lambda_logic=2.0"]  # janus-ppo ships with the shield out of training


def _envs(params: dict[str, Any], n_envs: int, knowledge_base: TradingKnowledgeBase | None, seed: int = 0):
    """The config's env (glass box with the shield, Monitor, seeds ``seed + rank``), with the given knowledge base."""

    def make(rank: int):
        def thunk() -> gym.Env:
            shield = {"knowledge_base": knowledge_base} if knowledge_base is not None else True
            env = Monitor(make_glass_box(gym.make(ENV_ID, **params["env_kwargs"]), shield=shield, breakers=None,
                                         sizing=None))
            env.reset(seed=seed + rank)
            env.action_space.seed(seed + rank)
            return env

        return thunk

    return DummyVecEnv([make(i) for i in range(n_envs)])


def _logic_loss(params: dict[str, Any], n_envs: int, knowledge_base: TradingKnowledgeBase | None) -> float:
    model = config.build_model("janus-ppo", _envs(params, n_envs, knowledge_base), params, seed=0,
                               tensorboard_log=None)
    model.learn(params["n_steps"] * n_envs)
    return float(model.logger.name_to_value["train/logic_loss"])


def test_logic_loss_is_positive_and_above_the_crisp_one_on_one_minibatch() -> None:
    """The default janus-ppo config (λ = 2, τ = 0.9, the default knowledge base) with a small MLP and one epoch on one
    minibatch, so that the loss is computed before any update: with identical masks and rollouts (the decisions do
    not read the graded truths) the graded loss is ≥ the crisp one action by action, and > 0."""
    params = config.resolve_hyperparams("janus-ppo", ENV_ID, overrides=LOGIC_IN_TRAINING)
    n_envs = 2
    params.update(n_steps=128, batch_size=128 * n_envs, n_epochs=1, policy_kwargs={"net_arch": [16]})
    graded = _logic_loss(params, n_envs, None)
    crisp = _logic_loss(params, n_envs, TradingKnowledgeBase(graded_margin=1e-9))
    assert graded > 1e-3
    assert graded > crisp + 5e-4  # measured: 0.00371 vs 0.00242


@pytest.mark.slow
def test_logic_loss_is_positive_on_the_default_janus_ppo_config() -> None:
    """One rollout of the default janus-ppo config as shipped (4 envs × 256 steps, DiffGAF/ViViT extractor, 4 epochs):
    ``train/logic_loss`` > 0 (≈ 50 s on 2 cores)."""
    params = config.resolve_hyperparams("janus-ppo", ENV_ID, overrides=LOGIC_IN_TRAINING)
    env = config.make_vec_env(ENV_ID, params, seed=0)
    model = config.build_model("janus-ppo", env, params, seed=0, tensorboard_log=None)
    model.learn(params["n_steps"] * params["n_envs"])
    assert model.logger.name_to_value["train/logic_loss"] > 1e-3
