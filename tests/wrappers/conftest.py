"""Fixtures shared by the wrapper tests (the suite-wide ones, ``small_market`` and ``check_all`` among them, are in
``tests/conftest.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def ltn_keys() -> set[str]:
    """The keys of ``info["ltn"]``, the shield's decision record: the same for the single, vector and multi-agent
    shields."""
    return {"rules", "sat_agg", "violation", "overridden", "proposed_action", "final_action", "threshold",
            "action_sat"}
