"""Fixtures shared by the application-layer tests (the suite-wide ones, ``run_script`` among them, are in
``tests/conftest.py``)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def opponents_market() -> dict[str, Any]:
    """``janus_market_v0`` settings: a market maker, an informed and a noise trader and two Janus agents, 64-step
    sessions (whole episodes stay quick; scripted and learned agents share the book)."""
    return {"roles": {"market_maker": 1, "informed": 1, "noise": 1, "janus": 2}, "episode_steps": 64}


@pytest.fixture
def opponents_roster() -> dict[str, Any]:
    """A roster for :func:`opponents_market`: a learned market maker, scripted informed and noise traders, and one
    PPO policy shared by the Janus agents (the tournament's and RLlib's ``agents:`` block)."""
    return {"market_maker": {"algo": "ppo"}, "informed": "informed", "noise": "random",
            "janus": {"algo": "ppo", "shared": True}}
