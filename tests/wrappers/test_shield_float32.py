"""A continuous shield's fallback target is a float32 the env rounds back to exactly a trade the shield scored,
even where float32 cannot reach every position (beyond ``FLOAT32_EXACT_UNITS`` grid units)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st

from janus_env.actions import continuous_fraction
from janus_env.lob_env import market_config
from janus_env.simulator import O_MID, O_POSITION
from wrappers.shield_kernel import FLOAT32_EXACT_UNITS, ShieldCore, float32_targets

BOX = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)


def _env_units(target: np.float32, max_units: int) -> int:
    """The position the env executes for a continuous target, written as ``JanusLOBEnv._order_units`` does it."""
    return round(continuous_fraction(np.array([target], dtype=np.float32), BOX) * max_units)


def _reachable_around(desired: int, max_units: int, width: int = 8) -> list[tuple[np.float32, int]]:
    """Every float32 within ``width`` steps of ``float32(desired / M)`` inside [-1, 1], with its executed position:
    a wider window than the one searched, walked one float32 at a time."""
    start = np.float32(desired / max_units)
    out, down, up = [], start, start
    for _ in range(width + 1):
        for t in {down, up}:
            if abs(float(t)) <= 1.0:
                out.append((t, _env_units(t, max_units)))
        down, up = np.nextafter(down, np.float32(-2)), np.nextafter(up, np.float32(2))
    return out


@settings(max_examples=300, deadline=None)
@given(max_units=st.integers(1, 2**40), data=st.data())
def test_float32_targets_execute_the_nearest_reachable_position(max_units: int, data: st.DataObject) -> None:
    desired = data.draw(st.integers(-max_units, max_units))
    position = data.draw(st.integers(-max_units, max_units))
    targets, executed = float32_targets(np.array([[float(desired)]]), np.array([float(position)]), float(max_units))
    t = targets[0, 0]
    assert targets.dtype == np.float32 and abs(float(t)) <= 1.0
    assert executed[0, 0] == _env_units(t, max_units)  # what the env really does with it
    if abs(desired) < FLOAT32_EXACT_UNITS:
        assert executed[0, 0] == desired
    best = min(abs(u - desired) for _, u in _reachable_around(desired, max_units))
    assert abs(executed[0, 0] - desired) == best  # nothing nearer within 8 float32 steps
    ties = [u for _, u in _reachable_around(desired, max_units) if abs(u - desired) == best]
    assert abs(executed[0, 0] - position) == min(abs(u - position) for u in ties)  # ties: the smaller trade


def test_the_issue_case_float32_alone_misses_the_scored_position() -> None:
    """The regression: at 2^25 + 1 units of 2^30 the plain float32 cast executes 2^25 (a trade of −1 unit)."""
    max_units, position = 2**30, 2**25 + 1
    naive = np.float32(position / max_units)
    assert _env_units(naive, max_units) != position
    targets, executed = float32_targets(np.array([[float(position)]]), np.array([float(position)]), float(max_units))
    assert executed[0, 0] == _env_units(targets[0, 0], max_units)
    assert abs(executed[0, 0] - position) == 1  # no float32 reaches it: the nearest is one unit away


def _core(max_position: int, lot: int, fallback: str, cap: float) -> ShieldCore:
    """A one-row continuous core on a market of ``max_position`` shares (grid of 1 share); its knowledge base is a
    stand-in that permits a trade iff ``|quantity| ≤ cap`` (so HOLD is permitted)."""
    config = market_config("ou", {"max_position": max_position, "lot": lot, "qty_step": 1,
                                  "initial_cash": 1e18})
    core = ShieldCore(1, BOX, config, 1, fallback=fallback)
    width = 2 * config.window + 4 * config.n_levels + 9
    core.attach((np.zeros((1, width), dtype=np.float32), np.zeros((1, 21), dtype=np.float64)))

    def kernel(hist, rows, obs, out, ctx, q, truths, sat, *graded):  # noqa: ANN001, ANN202
        sat[:] = np.where(np.abs(q) <= cap, 1.0, 0.0)
        truths[:] = sat[..., None]
        for array in graded:  # the graded truths and their SatAgg, where the kernel has them: the same here
            array[:] = truths if array.ndim == 3 else sat

    core.kernel = kernel
    return core


@settings(max_examples=200, deadline=None)
@given(log_max=st.integers(20, 40), data=st.data())
def test_an_overridden_continuous_target_executes_exactly_a_scored_permitted_trade(log_max: int,
                                                                                   data: st.DataObject) -> None:
    max_units = 2**log_max
    fallback = data.draw(st.sampled_from(["hold", "nearest"]))
    lot = max(1, max_units >> 8)  # at most a few hundred lot candidates
    position = data.draw(st.integers(-max_units + lot, max_units - lot))
    fraction = data.draw(st.floats(-1.0, 1.0, width=32))
    cap = data.draw(st.sampled_from([0.0, 1.0, float(lot), 3.0 * lot, math.inf]))
    core = _core(max_units, lot, fallback, cap)
    core.out[0, O_POSITION], core.out[0, O_MID] = float(position), 100.0
    try:
        allowed, targets = core.decide_continuous(np.array([fraction]))
    except ValueError as err:  # the fail-safe case: HOLD unreachable and the nearest reachable not permitted
        assert "No float32 target reaches a permitted position" in str(err)
        nearest_hold = min(abs(u - position) for _, u in _reachable_around(position, max_units))
        assert nearest_hold > cap  # no float32 reaches a position the stand-in permits
        return
    if allowed[0]:
        assert abs(core.q[0, 1]) <= cap  # the agent's own action, scored and permitted
        return
    final = int(core.final[0])
    executed_move = _env_units(targets[0], max_units) - position  # what the env will trade
    assert executed_move == core.q[0, final]  # exactly a candidate the shield scored ...
    assert core.sat[0, final] >= core.threshold or core.q[0, final] == 0.0  # ... and permitted (or a true HOLD)


def test_below_the_float32_limit_the_fallback_keeps_the_exact_position() -> None:
    core = _core(10_000, 100, "hold", 0.0)
    core.out[0, O_POSITION], core.out[0, O_MID] = 1_234.0, 100.0
    allowed, targets = core.decide_continuous(np.array([0.9]))
    assert not allowed[0] and targets[0] == np.float32(1_234.0 / 10_000) and core.q[0, 0] == 0.0
    assert _env_units(targets[0], 10_000) == 1_234


@pytest.mark.parametrize("cap", [0.0, 1.0])
def test_an_unreachable_hold_is_scored_as_the_trade_it_is(cap: float) -> None:
    """At 2^25 + 1 shares of 2^30 HOLD cannot be sent as a float32 target: the core scores the nearest reachable
    position (one share away) instead of pretending it holds; not permitted → it raises (the shield halts)."""
    max_units, position = 2**30, 2**25 + 1
    core = _core(max_units, 2**22, "hold", cap)
    core.out[0, O_POSITION], core.out[0, O_MID] = float(position), 100.0
    if cap < 1.0:
        with pytest.raises(ValueError, match="No float32 target reaches a permitted position"):
            core.decide_continuous(np.array([1.0]))
        return
    allowed, targets = core.decide_continuous(np.array([1.0]))
    assert not allowed[0] and abs(core.q[0, 0]) == 1.0 and core.sat[0, 0] == 1.0
    assert _env_units(targets[0], max_units) - position == core.q[0, 0]
