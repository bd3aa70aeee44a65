"""``propose_categorical`` draws what SB3's categorical distributions draw, bit for bit, from the same generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution
from stable_baselines3.common.distributions import CategoricalDistribution

from agents.basal_ganglia.categorical import propose_categorical


def logits(batch: int = 64, n: int = 4, seed: int = 0) -> th.Tensor:
    # wide logits: the two normalizations of the maskable distribution differ in the last bits here
    return th.randn(batch, n, generator=th.Generator().manual_seed(seed)) * 7.0


def draw_sb3(dist, x: th.Tensor, deterministic: bool, masks=None) -> tuple[th.Tensor, th.Tensor]:
    d = dist.proba_distribution(action_logits=x)
    if masks is not None:
        d.apply_masking(masks)
    actions = d.get_actions(deterministic=deterministic)
    every = th.arange(x.shape[1]).repeat(x.shape[0], 1).T  # (A, B): log_prob of every action
    return actions, th.stack([d.log_prob(a) for a in every], dim=1)


@pytest.mark.parametrize("deterministic", [False, True])
def test_plain_categorical_bit_for_bit(deterministic: bool) -> None:
    x = logits()
    th.manual_seed(3)
    want_a, want_lp = draw_sb3(CategoricalDistribution(4), x, deterministic)
    want_next = th.rand(1)
    th.manual_seed(3)
    got_a, got_lp = propose_categorical(x, deterministic)
    assert th.equal(got_a, want_a) and th.equal(got_lp, want_lp)
    assert th.equal(th.rand(1), want_next)  # the generator advanced alike: later draws stay the same too


@pytest.mark.parametrize("deterministic", [False, True])
@pytest.mark.parametrize("with_masks", [False, True])
def test_maskable_categorical_bit_for_bit(deterministic: bool, with_masks: bool) -> None:
    x = logits()
    masks = None
    if with_masks:
        masks = np.random.default_rng(0).random((64, 4)) < 0.6
        masks[:, 0] = True  # HOLD always allowed
    th.manual_seed(5)
    want_a, want_lp = draw_sb3(MaskableCategoricalDistribution(4), x, deterministic, masks)
    th.manual_seed(5)
    got_a, got_lp = propose_categorical(x, deterministic, masks, double_normalize=True)
    assert th.equal(got_a, want_a) and th.equal(got_lp, want_lp)
    if with_masks:
        assert bool(th.as_tensor(masks).gather(1, got_a[:, None]).all())  # never a masked action
    # the two normalizations are not the same floats: the single one would not match the maskable policy
    single = propose_categorical(x, deterministic)[1]
    assert with_masks or not th.equal(single, got_lp)


def test_masks_need_the_maskable_form() -> None:
    with pytest.raises(ValueError, match="masks"):
        propose_categorical(logits(), False, np.ones((64, 4), dtype=bool))


def test_a_policys_rollout_log_prob_is_its_distributions() -> None:
    """The actor-critic rollout stores log π(final) as SB3's evaluate_actions computes it for that action."""
    import gymnasium as gym

    from agents.basal_ganglia import BasalGangliaActorCriticPolicy

    space = spaces.Dict({"x": spaces.Box(-1, 1, (3,)), "market": spaces.Box(-1, 1, (4,))})
    policy = BasalGangliaActorCriticPolicy(space, gym.spaces.Discrete(4), lambda _: 1e-3)
    obs = {k: th.as_tensor(np.stack([space[k].sample() for _ in range(8)])) for k in ("x", "market")}
    th.manual_seed(0)
    actions, _, log_prob = policy(obs)
    _, want, _ = policy.evaluate_actions(obs, actions)
    assert th.allclose(log_prob, want, atol=0, rtol=0)
