"""Shared fixtures and the env-checker helper (real data samples: ``janus_env.samples``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

try:  # one torch thread: on 2 shared cores torch's default thread pool makes small nets 10-30x slower
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a dependency
    pass

ROOT = Path(__file__).resolve().parents[1]


# Warnings we accept from the env checkers, each for a documented reason: unbounded Box features are
# unbounded by design (returns, log-sizes, bps), and the (levels, 4) book is the documented layout
# (SB3's MultiInputPolicy flattens it); check_env re-creates envs, so data-loader notices reappear.
ALLOWED_WARNINGS = (
    "A Box observation space minimum value is -infinity",
    "A Box observation space maximum value is infinity",
    "Your observation book has an unconventional shape",
)


def _check_all(env) -> None:
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in ALLOWED_WARNINGS)]
    assert not unexpected, unexpected


@pytest.fixture
def check_all():
    """Gymnasium's and SB3's ``check_env``; any warning outside ``ALLOWED_WARNINGS`` fails."""
    return _check_all
