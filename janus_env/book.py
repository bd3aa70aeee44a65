"""Numba limit-order-book matching engine.

Integer ticks and integer share quantities, price-time priority, limit, market
and cancel orders, partial fills and self-trade prevention per agent id. The
book lives in a handful of preallocated int64 arrays so that a whole market
step is one numba call and a vector of books is a leading array dimension:

* ``levels`` ``(n_ticks, 6)``: per side, the FIFO head slot, tail slot and
  total resting quantity of every price level on a fixed tick grid
  ``[0, n_ticks)`` (columns ``L_BID + L_HEAD/L_TAIL/L_QTY`` for buy orders,
  ``L_ASK + ...`` for sell orders). The two sides never share a queue or a
  quantity, so even a book that is crossed on purpose (``add_resting``
  replays a recorded message without matching) cannot net a bid against an
  ask at one tick, and a market buy only ever fills against sell orders.
* ``orders`` ``(capacity, 9)``: the order pool; each row is one order slot
  (id, agent, side, price, qty, prev, next, generation, free-stack entry).
* ``state`` ``(N_STATE,)``: best bid/ask, counters (see ``S_*``); slots are handed
  out lowest-first, so ``S_HIGH_WATER`` bounds every slot ever used.
* ``accounts`` ``(n_agents, 2)``: cash in tick·shares and position in shares.
* ``fills`` ``(fill_capacity, 7)``: trades since the caller last reset ``S_N_FILLS``.
* ``log`` ``(log_capacity, 6)``: optional LOBSTER-style event log
  (time, type, order id, size, price, direction); capacity 0 disables it.

Order ids are ``generation * capacity + slot``: unique between two resets of
the book and an O(1) lookup. Self-trade prevention cancels the *resting* order
(the "cancel oldest" mode of CME and most venues) and counts it in
``state[S_STP]``. Cancelling an unknown or already-finished id is a documented
no-op returning ``-1`` from the kernel; the Python API turns it into
``UnknownOrderError`` unless asked not to.

Recorded-data replays (:mod:`janus_env.data.lobster_replay`) also use
``add_resting`` (rest without matching), ``execute_resting`` (a recorded
execution of one order) and ``remove_range`` / ``remove_ahead`` (drop orders
the recording proves gone).

Nothing here imports gymnasium: the engine is usable on its own.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from janus_env.checks import check_choice, check_int

BUY = 1
SELL = -1
SIDES = (BUY, SELL)
"""The order sides; a ``side`` argument must be one of them."""

# orders columns
O_ID, O_AGENT, O_SIDE, O_PRICE, O_QTY, O_PREV, O_NEXT, O_GEN, O_FREE = range(9)
N_ORDER_COLS = 9
# levels columns: one (head, tail, qty) block per side; column = side block + field
L_HEAD, L_TAIL, L_QTY = range(3)
L_BID = 0
"""First ``levels`` column of the buy side (``levels[p, L_BID + L_QTY]`` = bid quantity at tick p)."""
L_ASK = 3
"""First ``levels`` column of the sell side."""
N_LEVEL_COLS = 6
# state entries
(
    S_BEST_BID,
    S_BEST_ASK,
    S_N_FREE,
    S_TIME,
    S_N_FILLS,
    S_N_LOG,
    S_REJECTED,
    S_STP,
    S_FILL_OVERFLOW,
    S_LOG_OVERFLOW,
    S_TRADED_QTY,
    S_N_MESSAGES,
    S_UNKNOWN_CANCELS,
    S_UNKNOWN_EXECUTIONS,
    S_LAST_TRADE,
    S_HIGH_WATER,
) = range(16)
N_STATE = 16
# fills columns
F_MAKER_ID, F_TAKER_ID, F_PRICE, F_QTY, F_MAKER_AGENT, F_TAKER_AGENT, F_TAKER_SIDE = range(7)
N_FILL_COLS = 7
# event log columns (LOBSTER message layout, prices in ticks)
G_TIME, G_TYPE, G_ID, G_QTY, G_PRICE, G_DIR = range(6)
N_LOG_COLS = 6
# LOBSTER event types
EV_SUBMIT, EV_CANCEL, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN, EV_CROSS, EV_HALT = 1, 2, 3, 4, 5, 6, 7

# kernel error codes (negative return values)
ERR_POOL_FULL = -2
ERR_PRICE = -3
ERR_QTY = -4


# --------------------------------------------------------------------------- kernels


@njit(cache=True)
def side_block(side):
    """First ``levels`` column of ``side``'s block: ``L_BID`` for BUY, ``L_ASK`` for SELL."""
    return L_BID if side == BUY else L_ASK


@njit(cache=True)
def book_reset(levels, orders, state, accounts):
    """Empty the book, the pool, the counters and every account."""
    n_ticks = levels.shape[0]
    cap = orders.shape[0]
    for b in (L_BID, L_ASK):
        levels[:, b + L_HEAD] = -1
        levels[:, b + L_TAIL] = -1
        levels[:, b + L_QTY] = 0
    for i in range(cap):
        orders[i, O_ID] = -1
        orders[i, O_QTY] = 0
        orders[i, O_PREV] = -1
        orders[i, O_NEXT] = -1
        orders[i, O_GEN] = 0
        orders[i, O_FREE] = cap - 1 - i
    state[:] = 0
    state[S_BEST_BID] = -1
    state[S_BEST_ASK] = n_ticks
    state[S_N_FREE] = cap
    state[S_LAST_TRADE] = -1
    accounts[:, :] = 0


@njit(cache=True)
def _alloc(orders, state):
    n_free = state[S_N_FREE]
    if n_free == 0:
        return -1
    n_free -= 1
    state[S_N_FREE] = n_free
    slot = orders[n_free, O_FREE]
    orders[slot, O_GEN] += 1
    orders[slot, O_ID] = orders[slot, O_GEN] * orders.shape[0] + slot
    if slot >= state[S_HIGH_WATER]:
        state[S_HIGH_WATER] = slot + 1
    return slot


@njit(cache=True)
def _release(orders, state, slot):
    orders[slot, O_ID] = -1
    orders[slot, O_QTY] = 0
    orders[state[S_N_FREE], O_FREE] = slot
    state[S_N_FREE] += 1


@njit(cache=True)
def _log_event(log, state, typ, oid, qty, price, direction):
    if log.shape[0] == 0:
        return
    n = state[S_N_LOG]
    if n >= log.shape[0]:
        state[S_LOG_OVERFLOW] += 1
        return
    log[n, G_TIME] = state[S_TIME]
    log[n, G_TYPE] = typ
    log[n, G_ID] = oid
    log[n, G_QTY] = qty
    log[n, G_PRICE] = price
    log[n, G_DIR] = direction
    state[S_N_LOG] = n + 1


@njit(cache=True)
def _append(levels, orders, slot, price):
    b = side_block(orders[slot, O_SIDE])
    tail = levels[price, b + L_TAIL]
    orders[slot, O_PREV] = tail
    orders[slot, O_NEXT] = -1
    if tail >= 0:
        orders[tail, O_NEXT] = slot
    else:
        levels[price, b + L_HEAD] = slot
    levels[price, b + L_TAIL] = slot
    levels[price, b + L_QTY] += orders[slot, O_QTY]


@njit(cache=True)
def _unlink(levels, orders, slot):
    b = side_block(orders[slot, O_SIDE])
    price = orders[slot, O_PRICE]
    prev = orders[slot, O_PREV]
    nxt = orders[slot, O_NEXT]
    if prev >= 0:
        orders[prev, O_NEXT] = nxt
    else:
        levels[price, b + L_HEAD] = nxt
    if nxt >= 0:
        orders[nxt, O_PREV] = prev
    else:
        levels[price, b + L_TAIL] = prev
    levels[price, b + L_QTY] -= orders[slot, O_QTY]


@njit(cache=True)
def _refresh_best(levels, state, side, start):
    """Move the best price of ``side`` from ``start`` to the next level with ``side`` quantity."""
    if side == BUY:
        p = start
        while p >= 0 and levels[p, L_BID + L_QTY] == 0:
            p -= 1
        state[S_BEST_BID] = p
    else:
        n = levels.shape[0]
        p = start
        while p < n and levels[p, L_ASK + L_QTY] == 0:
            p += 1
        state[S_BEST_ASK] = p


@njit(cache=True)
def _record_fill(fills, state, maker_id, taker_id, price, qty, maker_agent, taker_agent, taker_side):
    n = state[S_N_FILLS]
    if n >= fills.shape[0]:
        state[S_FILL_OVERFLOW] += 1
        return
    fills[n, F_MAKER_ID] = maker_id
    fills[n, F_TAKER_ID] = taker_id
    fills[n, F_PRICE] = price
    fills[n, F_QTY] = qty
    fills[n, F_MAKER_AGENT] = maker_agent
    fills[n, F_TAKER_AGENT] = taker_agent
    fills[n, F_TAKER_SIDE] = taker_side
    state[S_N_FILLS] = n + 1


@njit(cache=True)
def _settle(accounts, buyer, seller, price, qty):
    cost = price * qty
    accounts[buyer, 0] -= cost
    accounts[buyer, 1] += qty
    accounts[seller, 0] += cost
    accounts[seller, 1] -= qty


@njit(cache=True)
def _remove_resting(levels, orders, state, log, slot, log_type):
    """Delete a resting order entirely (cancel, self-trade prevention)."""
    side = orders[slot, O_SIDE]
    price = orders[slot, O_PRICE]
    _log_event(log, state, log_type, orders[slot, O_ID], orders[slot, O_QTY], price, side)
    _unlink(levels, orders, slot)
    _release(orders, state, slot)
    if levels[price, side_block(side) + L_QTY] == 0:
        if side == BUY and price == state[S_BEST_BID]:
            _refresh_best(levels, state, BUY, price)
        elif side == SELL and price == state[S_BEST_ASK]:
            _refresh_best(levels, state, SELL, price)


@njit(cache=True)
def _match(levels, orders, state, accounts, fills, log, agent, side, limit_price, qty, taker_id):
    """Match an incoming order against the opposite side; return the unfilled qty."""
    n_ticks = levels.shape[0]
    b = side_block(-side)  # the resting side's block
    while qty > 0:
        if side == BUY:
            price = state[S_BEST_ASK]
            if price >= n_ticks or price > limit_price:
                break
        else:
            price = state[S_BEST_BID]
            if price < 0 or price < limit_price:
                break
        slot = levels[price, b + L_HEAD]
        while slot >= 0 and qty > 0:
            nxt = orders[slot, O_NEXT]
            maker_agent = orders[slot, O_AGENT]
            if maker_agent == agent:
                state[S_STP] += 1
                _log_event(log, state, EV_DELETE, orders[slot, O_ID], orders[slot, O_QTY], price, -side)
                _unlink(levels, orders, slot)
                _release(orders, state, slot)
                slot = nxt
                continue
            resting = orders[slot, O_QTY]
            q = resting if resting < qty else qty
            maker_id = orders[slot, O_ID]
            _log_event(log, state, EV_EXECUTE, maker_id, q, price, -side)
            if side == BUY:
                _settle(accounts, agent, maker_agent, price, q)
            else:
                _settle(accounts, maker_agent, agent, price, q)
            _record_fill(fills, state, maker_id, taker_id, price, q, maker_agent, agent, side)
            state[S_TRADED_QTY] += q
            state[S_LAST_TRADE] = price
            qty -= q
            if q == resting:
                _unlink(levels, orders, slot)
                _release(orders, state, slot)
            else:
                orders[slot, O_QTY] = resting - q
                levels[price, b + L_QTY] -= q
            slot = nxt
        if levels[price, b + L_QTY] == 0:
            _refresh_best(levels, state, -side, price)
    return qty


@njit(cache=True)
def submit(levels, orders, state, accounts, fills, log, agent, side, price, qty, is_market):
    """Submit a limit (or market, when ``is_market``) order.

    Returns the order id (>= 0) or a negative ``ERR_*`` code. A limit order's
    unfilled remainder rests on the book; a market order's remainder is
    discarded (immediate-or-cancel), and both are visible to the caller as
    fills in ``fills``.
    """
    state[S_N_MESSAGES] += 1
    state[S_TIME] += 1
    n_ticks = levels.shape[0]
    if qty <= 0:
        return ERR_QTY
    if not is_market and (price < 0 or price >= n_ticks):
        state[S_REJECTED] += 1
        return ERR_PRICE
    slot = _alloc(orders, state)
    if slot < 0:
        state[S_REJECTED] += 1
        return ERR_POOL_FULL
    oid = orders[slot, O_ID]
    limit_price = price
    if is_market:
        limit_price = n_ticks if side == BUY else -1
    remaining = _match(levels, orders, state, accounts, fills, log, agent, side, limit_price, qty, oid)
    if remaining > 0 and not is_market:
        orders[slot, O_AGENT] = agent
        orders[slot, O_SIDE] = side
        orders[slot, O_PRICE] = price
        orders[slot, O_QTY] = remaining
        _append(levels, orders, slot, price)
        _log_event(log, state, EV_SUBMIT, oid, remaining, price, side)
        if side == BUY:
            if price > state[S_BEST_BID]:
                state[S_BEST_BID] = price
        elif price < state[S_BEST_ASK]:
            state[S_BEST_ASK] = price
    else:
        _release(orders, state, slot)
    return oid


@njit(cache=True)
def slot_of(orders, oid):
    """The pool slot of order ``oid`` while it rests on the book, else -1 (unknown, filled or cancelled).

    An O(1) lookup (ids are ``generation * capacity + slot``); callers that keep order ids
    (a market maker's quotes, the flow's resting orders, a LOBSTER replay) check with it
    that an order still rests before they cancel or execute it.
    """
    if oid < 0:
        return -1
    slot = oid % orders.shape[0]
    if orders[slot, O_ID] != oid or orders[slot, O_QTY] <= 0:
        return -1
    return slot


@njit(cache=True)
def cancel(levels, orders, state, log, oid, qty):
    """Cancel ``qty`` shares of order ``oid`` (all of it when ``qty`` <= 0 or >= remaining).

    Returns the cancelled quantity, or -1 when the id is unknown or already
    finished (counted in ``state[S_UNKNOWN_CANCELS]``).
    """
    state[S_N_MESSAGES] += 1
    state[S_TIME] += 1
    slot = slot_of(orders, oid)
    if slot < 0:
        state[S_UNKNOWN_CANCELS] += 1
        return -1
    resting = orders[slot, O_QTY]
    if qty <= 0 or qty >= resting:
        _remove_resting(levels, orders, state, log, slot, EV_DELETE)
        return resting
    price = orders[slot, O_PRICE]
    side = orders[slot, O_SIDE]
    _log_event(log, state, EV_CANCEL, oid, qty, price, side)
    orders[slot, O_QTY] = resting - qty
    levels[price, side_block(side) + L_QTY] -= qty
    return qty


@njit(cache=True)
def add_resting(levels, orders, state, log, agent, side, price, qty):
    """Rest an order without matching (replaying a recorded LOBSTER submission).

    The order joins its own side's queue at ``price`` even when the opposite
    side rests there too (a crossed recorded book): quantities are per side,
    so nothing nets.

    Returns the new id or a negative ``ERR_*`` code.
    """
    state[S_N_MESSAGES] += 1
    state[S_TIME] += 1
    if qty <= 0:
        return ERR_QTY
    if price < 0 or price >= levels.shape[0]:
        state[S_REJECTED] += 1
        return ERR_PRICE
    slot = _alloc(orders, state)
    if slot < 0:
        state[S_REJECTED] += 1
        return ERR_POOL_FULL
    oid = orders[slot, O_ID]
    orders[slot, O_AGENT] = agent
    orders[slot, O_SIDE] = side
    orders[slot, O_PRICE] = price
    orders[slot, O_QTY] = qty
    _append(levels, orders, slot, price)
    _log_event(log, state, EV_SUBMIT, oid, qty, price, side)
    if side == BUY:
        if price > state[S_BEST_BID]:
            state[S_BEST_BID] = price
    elif price < state[S_BEST_ASK]:
        state[S_BEST_ASK] = price
    return oid


@njit(cache=True)
def execute_resting(levels, orders, state, accounts, fills, log, oid, qty, taker_agent):
    """Execute ``qty`` of resting order ``oid`` against ``taker_agent`` (recorded execution).

    Returns the executed quantity (capped at what rests), -1 when the id
    is unknown (counted in ``state[S_UNKNOWN_EXECUTIONS]``), or ``ERR_QTY``
    when ``qty`` <= 0.
    """
    state[S_N_MESSAGES] += 1
    state[S_TIME] += 1
    if qty <= 0:
        return ERR_QTY
    slot = slot_of(orders, oid)
    if slot < 0:
        state[S_UNKNOWN_EXECUTIONS] += 1
        return -1
    resting = orders[slot, O_QTY]
    q = qty if qty < resting else resting
    side = orders[slot, O_SIDE]
    price = orders[slot, O_PRICE]
    maker_agent = orders[slot, O_AGENT]
    _log_event(log, state, EV_EXECUTE, oid, q, price, side)
    if side == BUY:
        _settle(accounts, maker_agent, taker_agent, price, q)
    else:
        _settle(accounts, taker_agent, maker_agent, price, q)
    _record_fill(fills, state, oid, -1, price, q, maker_agent, taker_agent, -side)
    state[S_TRADED_QTY] += q
    state[S_LAST_TRADE] = price
    if q == resting:
        _unlink(levels, orders, slot)
        _release(orders, state, slot)
        if levels[price, side_block(side) + L_QTY] == 0:
            if side == BUY and price == state[S_BEST_BID]:
                _refresh_best(levels, state, BUY, price)
            elif side == SELL and price == state[S_BEST_ASK]:
                _refresh_best(levels, state, SELL, price)
    else:
        orders[slot, O_QTY] = resting - q
        levels[price, side_block(side) + L_QTY] -= q
    return q


@njit(cache=True)
def remove_range(levels, orders, state, log, side, lo, hi):
    """Delete every resting ``side`` order priced in ticks ``[lo, hi]`` (clipped to the grid).

    Used by replays to drop *stale* orders: recorded orders our reconstruction
    still holds although the recorded market shows they are gone (see
    :mod:`janus_env.data.lobster_replay`). Each deletion is logged as type 3 and the
    best price moves as with a cancel.

    Returns:
        ``(orders removed, shares removed)``.
    """
    b = side_block(side)
    n = 0
    shares = 0
    first = lo if lo > 0 else 0
    last = hi if hi < levels.shape[0] - 1 else levels.shape[0] - 1
    for p in range(first, last + 1):
        slot = levels[p, b + L_HEAD]
        while slot >= 0:
            nxt = orders[slot, O_NEXT]
            n += 1
            shares += orders[slot, O_QTY]
            _remove_resting(levels, orders, state, log, slot, EV_DELETE)
            slot = nxt
    return n, shares


@njit(cache=True)
def remove_ahead(levels, orders, state, log, slot):
    """Delete every order ahead of resting ``slot`` in its FIFO queue (time priority's stale orders).

    Returns:
        ``(orders removed, shares removed)``.
    """
    b = side_block(orders[slot, O_SIDE])
    price = orders[slot, O_PRICE]
    n = 0
    shares = 0
    head = levels[price, b + L_HEAD]
    while head != slot and head >= 0:
        n += 1
        shares += orders[head, O_QTY]
        _remove_resting(levels, orders, state, log, head, EV_DELETE)
        head = levels[price, b + L_HEAD]
    return n, shares


@njit(cache=True)
def snapshot(levels, state, out):
    """Write the top ``out.shape[0]`` non-empty levels as (bid_px, bid_qty, ask_px, ask_qty).

    Missing levels get price -1 and quantity 0.
    """
    n = out.shape[0]
    n_ticks = levels.shape[0]
    p = state[S_BEST_BID]
    for i in range(n):
        while p >= 0 and levels[p, L_BID + L_QTY] == 0:
            p -= 1
        if p >= 0:
            out[i, 0] = p
            out[i, 1] = levels[p, L_BID + L_QTY]
            p -= 1
        else:
            out[i, 0] = -1
            out[i, 1] = 0
    p = state[S_BEST_ASK]
    for i in range(n):
        while p < n_ticks and levels[p, L_ASK + L_QTY] == 0:
            p += 1
        if p < n_ticks:
            out[i, 2] = p
            out[i, 3] = levels[p, L_ASK + L_QTY]
            p += 1
        else:
            out[i, 2] = -1
            out[i, 3] = 0


# --------------------------------------------------------------------------- Python API


class UnknownOrderError(KeyError):
    """Cancelling an order id that is not resting on the book."""


class Fill(NamedTuple):
    """One trade: the resting (maker) order against the incoming (taker) one."""

    maker_id: int
    taker_id: int
    price: int
    qty: int
    maker_agent: int
    taker_agent: int
    taker_side: int


_POOL_FULL = "Order pool is full ({} resting orders); raise `capacity`"
_UNKNOWN_ORDER = "Order id {!r} is not resting on the book"


class OrderBook:
    """A single limit order book on an integer tick grid.

    Args:
        n_ticks: number of price levels; prices are ticks in ``[0, n_ticks)``.
        capacity: maximum number of simultaneously resting orders.
        n_agents: number of account ids (self-trade prevention and cash/position).
        log_capacity: events kept in the LOBSTER-style log (0 disables logging).
        fill_capacity: trades kept for one incoming order (at least ``capacity + 1``).

    Example:
        >>> book = OrderBook(n_ticks=100, capacity=64, n_agents=2)
        >>> ask = book.limit(agent=0, side=SELL, price=51, qty=5)
        >>> fills = book.market(agent=1, side=BUY, qty=3)
        >>> fills[0].price, fills[0].qty
        (51, 3)
    """

    def __init__(
        self,
        n_ticks: int = 4096,
        capacity: int = 4096,
        n_agents: int = 8,
        log_capacity: int = 0,
        fill_capacity: int = 4096,
    ) -> None:
        check_int("n_ticks", n_ticks, low=2)
        check_int("capacity", capacity, low=1)
        check_int("n_agents", n_agents, low=1)
        check_int("log_capacity", log_capacity, low=0)
        check_int("fill_capacity", fill_capacity)  # any int: at least ``capacity + 1`` rows are kept
        self.n_ticks = int(n_ticks)
        self.n_agents = int(n_agents)
        self.levels = np.empty((self.n_ticks, N_LEVEL_COLS), dtype=np.int64)
        self.orders = np.empty((int(capacity), N_ORDER_COLS), dtype=np.int64)
        self.state = np.zeros(N_STATE, dtype=np.int64)
        self.accounts = np.zeros((self.n_agents, 2), dtype=np.int64)
        self.fills = np.zeros((max(int(fill_capacity), int(capacity) + 1), N_FILL_COLS), dtype=np.int64)
        self.log = np.zeros((int(log_capacity), N_LOG_COLS), dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Empty the book and zero every account and counter."""
        book_reset(self.levels, self.orders, self.state, self.accounts)

    # ----------------------------------------------------------------- orders
    def _check(self, agent: object, side: object, qty: object) -> tuple[int, int, int]:
        agent = check_int("agent", agent, low=0, high=self.n_agents - 1)
        side = check_choice("side", check_int("side", side), SIDES)
        qty = check_int("qty", qty, low=1)
        return agent, side, qty

    def limit(self, agent: int, side: int, price: int, qty: int) -> int:
        """Submit a limit order; return its id (its fills are in ``last_fills()``)."""
        agent, side, qty = self._check(agent, side, qty)
        price = check_int("price", price, low=0, high=self.n_ticks - 1)
        self.state[S_N_FILLS] = 0
        oid = submit(self.levels, self.orders, self.state, self.accounts, self.fills, self.log,
                     agent, side, price, qty, False)
        if oid == ERR_POOL_FULL:
            raise RuntimeError(_POOL_FULL.format(self.orders.shape[0]))
        return int(oid)

    def market(self, agent: int, side: int, qty: int) -> list[Fill]:
        """Submit a market (immediate-or-cancel) order and return its fills."""
        agent, side, qty = self._check(agent, side, qty)
        self.state[S_N_FILLS] = 0
        oid = submit(self.levels, self.orders, self.state, self.accounts, self.fills, self.log,
                     agent, side, 0, qty, True)
        if oid == ERR_POOL_FULL:
            raise RuntimeError(_POOL_FULL.format(self.orders.shape[0]))
        return self.last_fills()

    def cancel(self, order_id: int, qty: int = 0, *, missing_ok: bool = False) -> int:
        """Cancel ``qty`` shares (0: all) of a resting order; return the cancelled quantity.

        Raises:
            UnknownOrderError: the id is not resting (unless ``missing_ok``,
                which returns 0; either way it is counted in ``unknown_cancels``).
        """
        order_id = check_int("order_id", order_id)
        qty = check_int("qty", qty, low=0)  # 0 cancels the whole order
        done = cancel(self.levels, self.orders, self.state, self.log, order_id, qty)
        if done < 0:
            if missing_ok:
                return 0
            raise UnknownOrderError(_UNKNOWN_ORDER.format(order_id))
        return int(done)

    def last_fills(self) -> list[Fill]:
        """The fills caused by the last ``limit`` or ``market`` call."""
        return [Fill(*row) for row in self.fills[: self.state[S_N_FILLS]].tolist()]

    # ------------------------------------------------------------------ views
    @property
    def best_bid(self) -> int:
        """Best bid tick, -1 when the bid side is empty."""
        return int(self.state[S_BEST_BID])

    @property
    def best_ask(self) -> int:
        """Best ask tick, ``n_ticks`` when the ask side is empty."""
        return int(self.state[S_BEST_ASK])

    @property
    def unknown_cancels(self) -> int:
        return int(self.state[S_UNKNOWN_CANCELS])

    @property
    def self_trades_prevented(self) -> int:
        return int(self.state[S_STP])

    def l2(self, n_levels: int = 5) -> np.ndarray:
        """Top ``n_levels`` as an int64 array of rows (bid_px, bid_qty, ask_px, ask_qty)."""
        out = np.empty((int(n_levels), 4), dtype=np.int64)
        snapshot(self.levels, self.state, out)
        return out

    def resting_orders(self) -> np.ndarray:
        """Rows (id, agent, side, price, qty) of every resting order."""
        live = self.orders[:, O_QTY] > 0
        return self.orders[live][:, [O_ID, O_AGENT, O_SIDE, O_PRICE, O_QTY]].copy()

    def cash(self, agent: int) -> int:
        """Cash of ``agent`` in tick·shares (starts at 0)."""
        return int(self.accounts[agent, 0])

    def position(self, agent: int) -> int:
        """Signed share position of ``agent``."""
        return int(self.accounts[agent, 1])

    def events(self) -> np.ndarray:
        """The LOBSTER-style event log so far: rows (time, type, id, size, price, direction)."""
        return self.log[: self.state[S_N_LOG]].copy()
