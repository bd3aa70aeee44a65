"""Pre-trade checks shared by every env: position limit, buying power, and why quantity was not executed.

Quantities here are integer *units* of the env's quantity grid (``MarketConfig.resolved_qty_step``:
one share on the simulated book, e.g. 0.01 BTC on fractional data), so positions stay exact
multiples of the grid. An order of ``want`` units from position ``pos`` is cut in two stages:

1. position limit: the target ``pos + q`` stays in ``[−max_units, max_units]`` (or between
   ``pos`` and flat, should ``pos`` be outside it);
2. buying power *(ours; Reg T-style initial margin)*: gross exposure after the order, valued
   at the mark ``m`` the agent observed (the mid), may not exceed ``max_leverage`` times the
   equity ``E`` before the order, ``|pos + q| · m ≤ max_leverage · E``; orders that reduce
   ``|pos|`` always pass (the allowed targets are ``[min(pos, −cap), max(pos, cap)]`` with
   ``cap = ⌊max_leverage · E / m⌋`` units, 0 when ``E ≤ 0``). The fees and the spread paid by
   the order itself are not in ``E``: they are a few basis points of its notional.

Whatever is cut, or sent but not filled, is reported as ``rejected_qty`` with the reasons as
bit flags (``REJECT_*``), turned into the comma-separated ``info["rejected_reason"]`` by
:func:`reason_names`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

REJECT_POSITION_LIMIT = 1
"""Cut by ``max_position``."""
REJECT_LEVERAGE = 2
"""Cut by ``max_leverage`` (buying power)."""
REJECT_BOOK_EXHAUSTED = 4
"""Sent, but the visible book had too little depth on the other side (market orders are immediate-or-cancel)."""
REJECT_POOL_FULL = 8
"""Not accepted by the matching engine: its order pool (``capacity``) was full."""
REJECT_PRICE_RANGE = 16
"""A market maker's quote priced outside the simulated tick grid."""

REJECT_REASONS: tuple[str, ...] = ("position_limit", "leverage", "book_exhausted", "pool_full", "price_range")
"""Names of the ``REJECT_*`` flags, lowest bit first."""

REASON_TABLE: np.ndarray = np.array(
    [",".join(name for bit, name in enumerate(REJECT_REASONS) if code >> bit & 1) for code in range(32)],
    dtype=object,
)
"""``REASON_TABLE[code]`` = :func:`reason_names` of every code (vectorized lookup for batched infos)."""


REASON_STRINGS: dict[float, str] = {float(code): name for code, name in enumerate(REASON_TABLE.tolist())}
"""The same keyed by the float code as it sits in an ``out`` row (fast scalar lookup, no ``int()``)."""


def reason_names(code: float) -> str:
    """The comma-separated names of the ``REJECT_*`` flags in ``code`` (``""`` when nothing was rejected)."""
    return REASON_STRINGS[float(code)]


@njit(cache=True)
def cut_order(pos, want, max_units, mark, equity, max_leverage):
    """Cut an order of ``want`` units at position ``pos`` to the position and leverage limits.

    Args:
        pos: position in units before the order.
        want: signed order in units.
        max_units: position limit in units.
        mark: value of one unit (currency), the mid the agent observed.
        equity: equity before the order at that mark (currency).
        max_leverage: gross exposure limit as a multiple of equity (``inf`` disables it).

    Returns:
        ``(q, reasons)``: the signed order that may be sent and the ``REJECT_*`` flags of the cuts.
    """
    q = want
    reasons = 0
    # allowed targets: inside the limit, or anywhere between the current position and flat
    hi_pos = pos if pos > max_units else max_units
    lo_pos = pos if pos < -max_units else -max_units
    if pos + q > hi_pos:
        q = hi_pos - pos
        reasons |= REJECT_POSITION_LIMIT
    elif pos + q < lo_pos:
        q = lo_pos - pos
        reasons |= REJECT_POSITION_LIMIT
    if q == 0 or math.isinf(max_leverage):
        return q, reasons
    cap = 0.0
    if equity > 0.0 and mark > 0.0:  # NaN fails both: no buying power
        ratio = max_leverage * equity / mark
        cap = math.floor(ratio) if ratio < 1e18 else 1e18
    target = pos + q
    hi = pos if pos > cap else cap
    lo = pos if pos < -cap else -cap
    if target > hi:
        q = int(hi) - pos
        reasons |= REJECT_LEVERAGE
    elif target < lo:
        q = int(lo) - pos
        reasons |= REJECT_LEVERAGE
    return q, reasons
