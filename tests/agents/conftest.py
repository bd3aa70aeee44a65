"""Fixtures shared by the model tests under ``tests/agents`` (the suite-wide ones are in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch as th


def _sb3_go_scores(policy: Any, obs: Any) -> th.Tensor:
    with th.no_grad():
        if hasattr(policy, "q_net"):
            return policy.q_net(obs)
        if hasattr(policy, "quantile_net"):
            return policy.quantile_net(obs).mean(dim=1)
        return policy.get_distribution(obs).distribution.logits  # log-softmax of the logits


@pytest.fixture
def sb3_go_scores() -> Callable[[Any, Any], th.Tensor]:
    """``sb3_go_scores(policy, obs)``: the Go scores as SB3 itself computes them, the independent reference for
    ``agents.basal_ganglia.go_scores``: Q-values (DQN), mean quantiles (QR-DQN) or the actor's log-probabilities
    (PPO, MaskablePPO), without gradients."""
    return _sb3_go_scores
