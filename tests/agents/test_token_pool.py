"""agents.token_pool: the token streams' kernels against JanusExtractor's torch path, forward and backward."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th

import envs_registry  # noqa: F401  (registers Janus-LOB-v0)
from agents import token_pool as token_pool_module
from agents.extractor import JanusExtractor
from agents.token_pool import token_pool
from tests.agents.test_extractor import as_tensors, env_observations

TOL = {"rtol": 1e-5, "atol": 1e-5}


def observations(n: int, seed: int = 0, **make_kwargs: Any) -> dict[str, th.Tensor]:
    """``n`` consecutive observations of ``Janus-LOB-v0`` under seeded random actions, batched, as tensors."""
    return as_tensors(env_observations(n, seed, **make_kwargs))


def extractor(seed: int = 0, **kwargs: Any) -> JanusExtractor:
    """A video-less extractor with every parameter drawn away from its initial value (zeros would hide errors)."""
    th.manual_seed(seed)
    space = gym.make("Janus-LOB-v0", window=kwargs.pop("window", 32)).observation_space
    module = JanusExtractor(space, vision=False, **kwargs)
    with th.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    return module


def features_and_grads(module: JanusExtractor, obs: dict[str, th.Tensor], fused: bool
                       ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
    module.fused_tokens = fused
    module.zero_grad()
    out = module(obs)
    (out.sin() * th.arange(out.shape[1])).sum().backward()  # every feature with its own weight
    return out.detach(), {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("ts_patch, window, batch", [(1, 32, 5), (4, 32, 7), (4, 32, 1), (2, 48, 3)])
def test_features_and_gradients_equal_the_torch_path(ts_patch: int, window: int, batch: int) -> None:
    """The kernels compute what the torch path computes, features and every parameter's gradient, to float32
    rounding, on real observations."""
    module = extractor(ts_patch=ts_patch, window=window)
    obs = observations(batch, window=window)
    fused, fused_grads = features_and_grads(module, obs, fused=True)
    torch_out, torch_grads = features_and_grads(module, obs, fused=False)
    th.testing.assert_close(fused, torch_out, **TOL)
    assert set(fused_grads) == set(torch_grads) == {n for n, p in module.named_parameters()
                                                    if not n.startswith("fusion.")}
    for name, grad in torch_grads.items():
        scale = grad.abs().max().item()
        assert scale > 0, name
        th.testing.assert_close(fused_grads[name] / scale, grad / scale, rtol=0, atol=1e-5, msg=name)


def test_the_kernels_run_where_they_may_and_only_there() -> None:
    """Taken without video and text on CPU inputs that need no gradient; the video, the text key, an input that
    needs a gradient (an attribution) or ``fused_tokens = False`` keep the torch path."""
    obs = observations(3)
    calls = []
    original = token_pool_module.token_pool

    def counting(module: Any, observations: Any) -> th.Tensor:
        calls.append(module)
        return original(module, observations)

    space = gym.make("Janus-LOB-v0").observation_space
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("agents.extractor.token_pool", counting)
        plain = extractor()
        plain(obs)
        assert len(calls) == 1
        JanusExtractor(space)(obs)  # the video
        text_space = gym.spaces.Dict({**space.spaces, "text": gym.spaces.Box(-1, 1, (2, 3), np.float32)})
        JanusExtractor(text_space, vision=False)({**obs, "text": th.zeros(3, 2, 3)})
        wants_grad = {k: v.clone().requires_grad_(k == "prices") for k, v in obs.items()}
        plain(wants_grad).sum().backward()
        assert wants_grad["prices"].grad is not None and wants_grad["prices"].grad.abs().sum() > 0
        plain.fused_tokens = False
        plain(obs)
        assert len(calls) == 1


def test_each_row_is_computed_alone_and_the_same_in_every_mode() -> None:
    """A row's pooled tokens do not depend on the batch around it or on grad mode, bit for bit; repeated calls
    give the same floats."""
    module = extractor(ts_patch=4)
    obs = observations(6)
    with th.no_grad():
        batch = token_pool(module, obs)
        rows = th.cat([token_pool(module, {k: v[i:i + 1] for k, v in obs.items()}) for i in range(6)])
    with_grad = token_pool(module, obs)
    assert with_grad.requires_grad
    th.testing.assert_close(rows, batch, atol=0, rtol=0)
    th.testing.assert_close(with_grad.detach(), batch, atol=0, rtol=0)
    th.testing.assert_close(token_pool(module, obs).detach(), batch, atol=0, rtol=0)


def test_parameter_updates_copies_and_reloads_are_seen() -> None:
    """The kernels read the parameters through cached views: an optimizer step in place, a deep copy trained
    apart and a ``load_state_dict`` each give the torch path's features."""
    module = extractor(ts_patch=4)
    obs = observations(4)
    optimizer = th.optim.Adam(module.parameters(), lr=0.05)
    before = module(obs).detach()
    module(obs).square().sum().backward()
    optimizer.step()
    after, _ = features_and_grads(module, obs, fused=True)
    module.fused_tokens = False
    th.testing.assert_close(after, module(obs).detach(), **TOL)
    assert (after - before).abs().max() > 1e-3
    module.fused_tokens = True

    twin = copy.deepcopy(module)
    with th.no_grad():
        twin.norm.weight.mul_(2.0)
    th.testing.assert_close(module(obs).detach(), after, atol=0, rtol=0)  # the original reads its own γ
    twin.fused_tokens = False
    want = twin(obs).detach()
    twin.fused_tokens = True
    th.testing.assert_close(twin(obs).detach(), want, **TOL)

    fresh = extractor(seed=1, ts_patch=4)
    fresh(obs)  # views of its own initial parameters cached
    with th.no_grad():
        fresh.load_state_dict(module.state_dict())
    th.testing.assert_close(fresh(obs).detach(), after, atol=0, rtol=0)


def test_a_backward_pass_sees_the_parameters_of_its_forward() -> None:
    """γ is kept as it was at the forward: a step between forward and backward does not change the gradient."""
    module = extractor(ts_patch=4)
    obs = observations(3)
    _, want = features_and_grads(module, obs, fused=True)
    module.zero_grad()
    out = module(obs)
    with th.no_grad():
        module.norm.weight.add_(1.0)
    (out.sin() * th.arange(out.shape[1])).sum().backward()
    th.testing.assert_close(module.norm.bias.grad, want["norm.bias"], atol=0, rtol=0)
    th.testing.assert_close(module.ts_proj.weight.grad, want["ts_proj.weight"], atol=0, rtol=0)
