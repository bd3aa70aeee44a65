"""Reconstruction of the limit order book from LOBSTER files, through our engine.

A ``_message_<L>`` file (:mod:`janus_env.data.lobster`) holds only the events
that change the top L levels, and it starts at a time of day when the book is
already full. Orders placed before it, or while deeper than L levels, are
never announced; orders cancelled or executed while deeper than L levels
leave without a message. Replayed literally, those orders are missing or
*stale*, and the book crosses. The replay therefore follows what the recorded
market proves (``ReplayReport`` counts each rule):

* **initial state** (:func:`initial_book`; default when the orderbook file
  is given): the book before message 0 is orderbook row 0 with message 0
  undone; its levels rest as synthetic orders of :data:`PREEXISTING_AGENT`
  (one per level, external id unknown), and replay starts *at* message 0, so
  message 0's own order keeps its id (``initial_orders``);
* **rule 1**, a submission that crosses our opposite best: LOBSTER records
  the part of an order that *rests*, after its executions, so every
  opposite order it crosses must have left the book already; they are
  removed (``stale_crossed_orders``, ``stale_crossed_qty``);
* **rule 2**, an execution proves that every order with priority over the
  executed one is gone: printed at a price worse than our best on its side,
  the better-priced orders we still hold there (price priority;
  ``stale_executed_orders``, ``stale_executed_qty``); of an order we know,
  the orders ahead of it in its queue at its price (time priority;
  ``stale_queue_orders``, ``stale_queue_qty``). Both are removed;
* **rule 3**, a cancel, deletion or execution of a never-announced id: its
  size comes off the pre-existing orders at its price and side, in queue
  order (they stand for the unannounced orders there in aggregate, so the
  level shrinks as in the recorded book; ``preexisting_matches``); without
  one it is counted as unknown and skipped (``unknown_cancels``,
  ``unknown_executions``);
* **rule 4**, levels revealed at the edge of the window (``reveal_levels``;
  default when the orderbook file is given): an order placed while deeper
  than L levels is announced nowhere, yet it is in the book when the window
  moves out to it (a visible level empties). After message ``k``, on a side
  where row ``k - 1`` fills all L levels, every price beyond row ``k - 1``'s
  deepest one, down to row ``k``'s deepest (to the end of the book when row
  ``k`` no longer fills L levels), gets row ``k``'s quantity: the missing
  shares rest as one more :data:`PREEXISTING_AGENT` order; shares the file no
  longer shows there (cancelled out of view) are trimmed, pre-existing
  orders first, then recorded ones from the back of the queue
  (``revealed_levels``, ``revealed_orders``, ``revealed_qty``,
  ``trimmed_orders``, ``trimmed_qty``).

What the replay reads from the orderbook file, and why the comparison with it
still measures something: row 0 (the initial state); after message ``k >= 1``
the deepest price on each side of rows ``k - 1`` and ``k`` (did the window
move outward?), and only when it did, the price and size of row ``k``'s
levels beyond row ``k - 1``'s deepest price (:func:`revealed_cells`). Never
row ``k + 1`` or later: the book after message ``k`` uses the file up to row
``k``, exactly what an observer of both files knows then. One message empties
at most one visible level, so in a consistent file a revealed level is row
``k``'s L-th: for ``L >= 2`` the top of book is never copied, and every cell
inside the window is rebuilt from messages. On the shipped AAPL sample (999
messages, 10 levels) rule 4 copies 318 level-10 (price, size) pairs; of the
other 39,284 cells of rows 1-998 none is copied and only the level-10 prices
are looked at (to locate the window), and the replay equals the file on
every row, top of book and all 10 levels (955 and 113 rows without rule 4).

With rules 1 and 2 (``remove_stale=True``, the default) the replayed book is
never crossed. What no rule recovers is the queue *inside* a level: which
orders left a level while it was out of view, or in which order unannounced
orders arrived. On truncated files with exact truth
(:func:`~janus_env.data.lobster_write.visible_messages`) that leaves a few
percent of top-of-book rows, and more of the deeper ones, different
(``benchmarks/bench_engine.py`` prints both).

Replay runs in one numba kernel over int64 arrays. External order ids are
factorized with pandas first (``codes`` in ``[0, n_ids)``) so the kernel maps
them to engine ids with a plain array instead of a dict. Prices map to engine
ticks through a :class:`PriceGrid`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from numba import njit

from janus_env.book import (
    EV_CANCEL,
    EV_CROSS,
    EV_DELETE,
    EV_EXECUTE,
    EV_EXECUTE_HIDDEN,
    EV_HALT,
    EV_SUBMIT,
    ERR_POOL_FULL,
    F_PRICE,
    F_QTY,
    L_HEAD,
    L_QTY,
    L_TAIL,
    O_AGENT,
    O_ID,
    O_NEXT,
    O_PREV,
    O_PRICE,
    O_QTY,
    S_BEST_ASK,
    S_BEST_BID,
    S_N_FILLS,
    S_REJECTED,
    S_UNKNOWN_CANCELS,
    S_UNKNOWN_EXECUTIONS,
    SELL,
    SIDES,
    BUY,
    OrderBook,
    add_resting,
    cancel,
    execute_resting,
    remove_ahead,
    remove_range,
    side_block,
    slot_of,
    snapshot,
    submit,
)
from janus_env.checks import check_bool, check_choice, check_int
from janus_env.data.lobster import DEFAULT_TICK, EMPTY_ASK, EMPTY_BID, PRICE_SCALE, LOBSTERData
from janus_env.data.validation import ROW_ERROR, DataFormatError, py_scalar, raise_first

OFF_GRID = "price {price!r} is not on the tick grid (origin {origin}, tick size {tick})"
NO_ORDERBOOK = "`initial_state=True` needs the orderbook file (pass it to read_lobster)"
NO_ORDERBOOK_REVEAL = "`reveal_levels=True` needs the orderbook file (pass it to read_lobster)"
SEED_MISSING = ("row 1 does not hold message 1's submission ({side} {size} at {price}): "
                "the orderbook file does not belong to the message file")

# counters of the replay kernel
(
    C_MESSAGES,
    C_SUBMISSIONS,
    C_CANCELLATIONS,
    C_DELETIONS,
    C_EXECUTIONS,
    C_HIDDEN,
    C_CROSS,
    C_HALTS,
    C_DUPLICATE_IDS,
    C_CROSSED,
    C_CAPPED,
    C_BUY_VOLUME,
    C_SELL_VOLUME,
    C_CROSS_VOLUME,
    C_INITIAL,
    C_PREEXISTING,
    C_STALE_CROSSED,
    C_STALE_CROSSED_QTY,
    C_STALE_EXECUTED,
    C_STALE_EXECUTED_QTY,
    C_AT_BEST,
    C_CROSSED_ROWS,
    C_STALE_QUEUE,
    C_STALE_QUEUE_QTY,
    C_REVEALED_LEVELS,
    C_REVEALED_ORDERS,
    C_REVEALED_QTY,
    C_TRIMMED_ORDERS,
    C_TRIMMED_QTY,
) = range(29)
N_COUNTERS = 29

RECORDED_AGENT = 0
"""Engine account of every recorded order (and of the recorded counterparties)."""
AGENT = 1
"""Engine account of the learning agent's market orders (:meth:`LOBSTERReplayer.market`)."""
PREEXISTING_AGENT = 2
"""Engine account of the synthetic orders seeded from the orderbook file (the book before message 0)."""
N_REPLAY_AGENTS = 3


# --------------------------------------------------------------------------- price grid


class PriceGrid(NamedTuple):
    """Map between LOBSTER prices and engine ticks: ``price = origin + tick * tick_size``."""

    origin: int
    tick_size: int
    n_ticks: int

    def to_ticks(self, prices: np.ndarray) -> np.ndarray:
        """Engine ticks of on-grid LOBSTER prices (int64)."""
        return (np.asarray(prices, dtype=np.int64) - self.origin) // self.tick_size

    def to_price(self, ticks: np.ndarray) -> np.ndarray:
        """LOBSTER prices of engine ticks (int64)."""
        return self.origin + np.asarray(ticks, dtype=np.int64) * self.tick_size


def price_grid(prices: np.ndarray, tick_size: int = DEFAULT_TICK, margin_ticks: int | None = None) -> PriceGrid:
    """Choose a tick grid that holds every price with a margin on both sides.

    The grid is anchored at the lowest price: ``origin = min(prices) −
    margin·tick_size`` and ``n_ticks = (max − min)/tick_size + 1 + 2·margin``,
    with ``margin = max(64, span/10)`` ticks unless given.

    Args:
        prices: LOBSTER prices that must be representable (submissions).
        tick_size: grid step in LOBSTER units (100 = $0.01).
        margin_ticks: ticks added below the lowest and above the highest price.

    Raises:
        TypeError: ``tick_size`` is not an int.
        ValueError: ``tick_size`` < 1.
    """
    tick_size = check_int("tick_size", tick_size, low=1)
    prices = np.asarray(prices, dtype=np.int64)
    if prices.size == 0:
        lo = hi = PRICE_SCALE
    else:
        lo, hi = int(prices.min()), int(prices.max())
    span = (hi - lo) // tick_size
    margin = max(64, span // 10) if margin_ticks is None else int(margin_ticks)
    return PriceGrid(origin=lo - margin * tick_size, tick_size=tick_size, n_ticks=span + 1 + 2 * margin)


# --------------------------------------------------------------------------- replay


class ReplayReport(NamedTuple):
    """What a replay did with every message.

    Message counts by type: ``submissions`` (1), ``cancellations`` (2),
    ``deletions`` (3), ``executions`` (4), ``hidden_executions`` (5),
    ``cross_trades`` (6), ``halts`` (7); ``messages`` is their sum.

    ``unknown_cancels`` / ``unknown_executions`` count type 2/3 and type 4
    messages whose order is neither resting in our book nor matched to a
    pre-existing order at its price and side: submitted before the file began
    or deeper than the file's levels (and not in the initial state), already
    consumed by the agent, or removed as stale. ``capped_executions`` counts
    type 4 messages larger than what still rests (e.g. after the agent took
    part of the order). ``duplicate_ids`` counts submissions reusing the id of
    an order that still rests. ``crossed`` counts submissions after which our
    book was crossed and ``crossed_rows`` messages after which it was crossed
    (both 0 with stale-order removal on: a crossing submission first removes
    what it crosses). Volumes are in shares: buyer-initiated (execution of a
    sell order), seller-initiated, and cross-trade (type 6).

    Reconstruction counters (see the module docstring for the rules):

    * ``initial_orders``: synthetic pre-existing orders seeded from the
      orderbook file's first row (one per visible level; 0 without an initial
      state);
    * ``preexisting_matches``: type 2/3/4 messages with an unknown id applied
      to the pre-existing order resting at their price and side;
    * ``stale_crossed_orders`` / ``stale_crossed_qty``: orders (shares)
      removed because a submission crossed them (rule 1);
    * ``stale_executed_orders`` / ``stale_executed_qty``: orders (shares)
      removed because an execution printed at a worse price on their side
      (rule 2, price priority);
    * ``stale_queue_orders`` / ``stale_queue_qty``: orders (shares) removed
      because a known order behind them in their queue executed (rule 2,
      time priority);
    * ``executions_at_best``: type 4 messages whose price equals our best
      price on their side *before* the message is applied (a faithful book
      has nearly all of them there: price priority);
    * ``revealed_levels``: orderbook-file levels that came into view beyond
      the window of the row before (rule 4, :func:`revealed_cells`; each one
      compared with our book, whether or not it differed);
    * ``revealed_orders`` / ``revealed_qty``: synthetic
      :data:`PREEXISTING_AGENT` orders (shares) added because a level that
      came into view holds more than our book (rule 4);
    * ``trimmed_orders`` / ``trimmed_qty``: orders shrunk or removed (shares)
      because our book holds more than the file beyond the old window (rule 4;
      pre-existing orders first, then recorded ones from the back of the queue).

    Comparison with the orderbook file (``replay_lobster`` only; -1 when no
    file was compared): ``snapshot_mismatches`` rows where any compared level
    differs, ``top_mismatches`` rows where the best bid or ask price or size
    differs; ``first_mismatch`` is the 1-based line of the first full-book
    mismatch (0: none).
    """

    messages: int
    unknown_cancels: int
    unknown_executions: int
    hidden_executions: int
    halts: int
    rejected: int
    submissions: int
    cancellations: int
    deletions: int
    executions: int
    cross_trades: int
    duplicate_ids: int
    crossed: int
    capped_executions: int
    buy_volume: int
    sell_volume: int
    cross_volume: int
    snapshot_mismatches: int = -1
    first_mismatch: int = 0
    initial_orders: int = 0
    preexisting_matches: int = 0
    stale_crossed_orders: int = 0
    stale_crossed_qty: int = 0
    stale_executed_orders: int = 0
    stale_executed_qty: int = 0
    executions_at_best: int = 0
    crossed_rows: int = 0
    top_mismatches: int = -1
    stale_queue_orders: int = 0
    stale_queue_qty: int = 0
    revealed_levels: int = 0
    revealed_orders: int = 0
    revealed_qty: int = 0
    trimmed_orders: int = 0
    trimmed_qty: int = 0


@njit(cache=True)
def seed_book(levels, orders, state, log, sides, ticks, qtys, agent):
    """Rest one synthetic ``agent`` order per (side, tick, qty) row; return how many rested."""
    n = 0
    for k in range(sides.shape[0]):
        if add_resting(levels, orders, state, log, agent, sides[k], ticks[k], qtys[k]) >= 0:
            n += 1
    return n


@njit(cache=True)
def take_preexisting(levels, orders, state, accounts, fills, log, side, tick, qty, execute):
    """Rule 3: take ``qty`` shares of a never-announced order off the pre-existing orders at ``tick``.

    The pre-existing (:data:`PREEXISTING_AGENT`) orders at a price stand for
    the unannounced orders resting there in aggregate (one per initial level,
    one per revealed difference), so the shares come off them in queue order
    (executed when ``execute``, else cancelled) until ``qty`` is reached.

    Returns:
        Shares taken, or -1 when no pre-existing order rests at ``tick`` on ``side``.
    """
    if tick < 0 or tick >= levels.shape[0]:
        return -1
    slot = levels[tick, side_block(side) + L_HEAD]
    done = 0
    found = False
    while slot >= 0 and done < qty:
        nxt = orders[slot, O_NEXT]  # removing ``slot`` leaves ``nxt`` in place
        if orders[slot, O_AGENT] == PREEXISTING_AGENT:
            found = True
            resting = orders[slot, O_QTY]
            take = resting if resting < qty - done else qty - done
            if execute:
                execute_resting(levels, orders, state, accounts, fills, log, orders[slot, O_ID], take, RECORDED_AGENT)
            else:
                cancel(levels, orders, state, log, orders[slot, O_ID], take if take < resting else 0)
            done += take
        slot = nxt
    return done if found else -1


@njit(cache=True)
def set_level(levels, orders, state, log, side, tick, target, counters, remove_stale):
    """Bring our ``side`` quantity at ``tick`` to ``target`` shares (rule 4, one level that came into view).

    More in the file: one synthetic :data:`PREEXISTING_AGENT` order for the
    difference joins the back of the queue (with ``remove_stale``, opposite
    orders it would cross are removed first, as in rule 1). Less in the file:
    pre-existing orders shrink first, then recorded orders from the back of
    the queue (their cancellations happened while they were out of view, so
    which ones left is unknown; the newest are taken).
    """
    b = side_block(side)
    have = levels[tick, b + L_QTY]
    if have < target:
        if remove_stale:
            if side == BUY and state[S_BEST_ASK] <= tick:
                n, shares = remove_range(levels, orders, state, log, SELL, state[S_BEST_ASK], tick)
                counters[C_STALE_CROSSED] += n
                counters[C_STALE_CROSSED_QTY] += shares
            elif side == SELL and state[S_BEST_BID] >= tick:
                n, shares = remove_range(levels, orders, state, log, BUY, tick, state[S_BEST_BID])
                counters[C_STALE_CROSSED] += n
                counters[C_STALE_CROSSED_QTY] += shares
        if add_resting(levels, orders, state, log, PREEXISTING_AGENT, side, tick, target - have) >= 0:
            counters[C_REVEALED_ORDERS] += 1
            counters[C_REVEALED_QTY] += target - have
    elif have > target:
        excess = have - target
        for any_agent in range(2):  # pass 0: pre-existing orders only; pass 1: any order
            slot = levels[tick, b + L_TAIL]
            while slot >= 0 and excess > 0:
                prev = orders[slot, O_PREV]  # unlinking ``slot`` leaves ``prev`` in place
                if any_agent == 1 or orders[slot, O_AGENT] == PREEXISTING_AGENT:
                    q = orders[slot, O_QTY]
                    take = q if q < excess else excess
                    cancel(levels, orders, state, log, orders[slot, O_ID], take if take < q else 0)
                    counters[C_TRIMMED_ORDERS] += 1
                    counters[C_TRIMMED_QTY] += take
                    excess -= take
                slot = prev


@njit(cache=True)
def reveal_levels_kernel(levels, orders, state, log, book, k, origin, tick_size, counters, remove_stale):
    """Rule 4 after message ``k >= 1``: match our book to orderbook row ``k`` beyond row ``k - 1``'s window.

    Per side, the window before message ``k`` ends at the deepest price of row
    ``k - 1`` (``edge``); a side with an empty deepest level was wholly in view
    and is skipped. When row ``k``'s deepest price lies beyond ``edge`` (or
    row ``k`` no longer fills every level, so nothing rests beyond it), every
    tick in ``(edge, deepest of row k]`` (to the end of the grid in the second
    case) gets row ``k``'s quantity at that price, 0 where row ``k`` has no
    level (:func:`set_level`). ``book`` is the orderbook in LOBSTER layout and
    prices; only rows ``k - 1`` and ``k`` are read.
    """
    n_lv = book.shape[1] // 4
    n_ticks = levels.shape[0]
    for s in range(2):
        side = SELL if s == 0 else BUY
        pcol = 0 if s == 0 else 2
        empty = EMPTY_ASK if s == 0 else EMPTY_BID
        last = 4 * (n_lv - 1) + pcol
        edge = book[k - 1, last]
        if edge == empty:
            continue
        deep = book[k, last]
        full = deep != empty
        if full and (deep - edge) * side >= 0:
            continue  # the window did not move outward on this side
        j = 0  # first level of row k beyond the edge
        while j < n_lv and book[k, 4 * j + pcol] != empty and (book[k, 4 * j + pcol] - edge) * side >= 0:
            j += 1
        for m in range(j, n_lv):
            if book[k, 4 * m + pcol] != empty:
                counters[C_REVEALED_LEVELS] += 1
        if side == SELL:
            t = (edge - origin) // tick_size + 1  # first tick priced above the edge
            end = (deep - origin) // tick_size if full else n_ticks - 1
            if t < 0:
                t = 0
            if end > n_ticks - 1:
                end = n_ticks - 1
            count = end - t + 1
        else:
            t = -((origin - edge) // tick_size) - 1  # last tick priced below the edge
            end = (deep - origin) // tick_size if full else 0
            if t > n_ticks - 1:
                t = n_ticks - 1
            if end < 0:
                end = 0
            count = t - end + 1
        for _ in range(count):
            price = origin + t * tick_size
            while j < n_lv and book[k, 4 * j + pcol] != empty and (book[k, 4 * j + pcol] - price) * side > 0:
                j += 1  # a level priced between ticks (off the grid): never the case after validation
            target = 0
            if j < n_lv and book[k, 4 * j + pcol] == price:
                target = book[k, 4 * j + pcol + 1]
                j += 1
            set_level(levels, orders, state, log, side, t, target, counters, remove_stale)
            t -= side  # outward: up for asks, down for bids


@njit(cache=True)
def replay_kernel(
    levels, orders, state, accounts, fills, log, types, codes, sizes, ticks, directions, id_map, start, stop, snaps,
    counters, remove_stale, book, origin, tick_size, reveal,
):  # fmt: skip
    """Replay LOBSTER messages ``[start, stop)`` through the engine kernels.

    ``codes`` are factorized order ids and ``id_map[code]`` the engine id of
    the order (-1 never announced); ``ticks`` the message prices on the engine
    grid (-1 when off the grid or not a type 1-4 message). A never-announced
    id of a type 2/3/4 message falls back to the :data:`PREEXISTING_AGENT`
    orders resting at its price and side (rule 3, :func:`take_preexisting`;
    an id that was announced but is gone — consumed by the agent, removed as
    stale or trimmed — does not). With
    ``remove_stale`` a crossing submission first removes the opposite orders
    it crosses (rule 1), and an execution removes the orders of its side
    priced better than it and, for a known order, the orders ahead of it in
    its queue (rule 2). With ``reveal`` (``book``: the orderbook file,
    LOBSTER prices; grid ``origin`` and ``tick_size``), after each message
    ``i >= 1`` the levels that came into view beyond row ``i - 1``'s window
    are set to row ``i`` (rule 4, :func:`reveal_levels_kernel`). When
    ``snaps.shape[0] > 0`` the top ``snaps.shape[1]`` levels after message
    ``i`` are written to ``snaps[i - start]`` (engine layout, ticks).
    """
    record = snaps.shape[0] > 0
    n_ticks = levels.shape[0]
    for i in range(start, stop):
        t = types[i]
        c = codes[i]
        q = sizes[i]
        d = directions[i]
        tick = ticks[i]
        if t == EV_SUBMIT:
            prev = id_map[c]
            if prev >= 0 and slot_of(orders, prev) >= 0:
                counters[C_DUPLICATE_IDS] += 1
            if remove_stale:
                if d == BUY and state[S_BEST_ASK] <= tick:
                    n, shares = remove_range(levels, orders, state, log, SELL, state[S_BEST_ASK], tick)
                    counters[C_STALE_CROSSED] += n
                    counters[C_STALE_CROSSED_QTY] += shares
                elif d == SELL and state[S_BEST_BID] >= tick:
                    n, shares = remove_range(levels, orders, state, log, BUY, tick, state[S_BEST_BID])
                    counters[C_STALE_CROSSED] += n
                    counters[C_STALE_CROSSED_QTY] += shares
            id_map[c] = add_resting(levels, orders, state, log, RECORDED_AGENT, d, tick, q)
            counters[C_SUBMISSIONS] += 1
            bid = state[S_BEST_BID]
            ask = state[S_BEST_ASK]
            if bid >= 0 and ask < n_ticks and bid >= ask:
                counters[C_CROSSED] += 1
        elif t == EV_CANCEL or t == EV_DELETE:
            oid = id_map[c]
            amount = q if t == EV_CANCEL else 0  # a deletion removes whatever rests
            if oid == -1:  # never announced (a known id that is gone, or rejected, is not guessed at)
                if take_preexisting(levels, orders, state, accounts, fills, log, d, tick, q, False) >= 0:
                    counters[C_PREEXISTING] += 1  # only this message's shares of the aggregated level
                else:
                    cancel(levels, orders, state, log, -1, 0)  # counted as unknown
            else:
                cancel(levels, orders, state, log, oid, amount)
            if t == EV_CANCEL:
                counters[C_CANCELLATIONS] += 1
            else:
                counters[C_DELETIONS] += 1
        elif t == EV_EXECUTE:
            best = state[S_BEST_BID] if d == BUY else state[S_BEST_ASK]
            if tick >= 0 and tick == best:
                counters[C_AT_BEST] += 1
            if remove_stale and tick >= 0:
                if d == BUY and best > tick:
                    n, shares = remove_range(levels, orders, state, log, BUY, tick + 1, best)
                    counters[C_STALE_EXECUTED] += n
                    counters[C_STALE_EXECUTED_QTY] += shares
                elif d == SELL and best < tick:
                    n, shares = remove_range(levels, orders, state, log, SELL, best, tick - 1)
                    counters[C_STALE_EXECUTED] += n
                    counters[C_STALE_EXECUTED_QTY] += shares
            oid = id_map[c]
            state[S_N_FILLS] = 0
            if oid == -1:
                done = take_preexisting(levels, orders, state, accounts, fills, log, d, tick, q, True)
                if done >= 0:
                    counters[C_PREEXISTING] += 1
                else:
                    execute_resting(levels, orders, state, accounts, fills, log, -1, q, RECORDED_AGENT)  # unknown
            else:
                if remove_stale:
                    slot = slot_of(orders, oid)
                    if slot >= 0 and levels[orders[slot, O_PRICE], side_block(d) + L_HEAD] != slot:  # not first
                        n, shares = remove_ahead(levels, orders, state, log, slot)
                        counters[C_STALE_QUEUE] += n
                        counters[C_STALE_QUEUE_QTY] += shares
                done = execute_resting(levels, orders, state, accounts, fills, log, oid, q, RECORDED_AGENT)
            if done >= 0 and done < q:
                counters[C_CAPPED] += 1
            counters[C_EXECUTIONS] += 1
            if d == SELL:
                counters[C_BUY_VOLUME] += q
            else:
                counters[C_SELL_VOLUME] += q
        elif t == EV_EXECUTE_HIDDEN:
            counters[C_HIDDEN] += 1
            if d == SELL:
                counters[C_BUY_VOLUME] += q
            else:
                counters[C_SELL_VOLUME] += q
        elif t == EV_CROSS:
            counters[C_CROSS] += 1
            counters[C_CROSS_VOLUME] += q
        elif t == EV_HALT:
            counters[C_HALTS] += 1
        if reveal and i >= 1:
            reveal_levels_kernel(levels, orders, state, log, book, i, origin, tick_size, counters, remove_stale)
        counters[C_MESSAGES] += 1
        bid = state[S_BEST_BID]
        ask = state[S_BEST_ASK]
        if bid >= 0 and ask < n_ticks and bid >= ask:
            counters[C_CROSSED_ROWS] += 1
        if record:
            snapshot(levels, state, snaps[i - start])


def _live_order_bound(types: np.ndarray, codes: np.ndarray, sizes: np.ndarray, n_codes: int) -> int:
    """Most orders resting at once if every message is applied as recorded (vectorized).

    An order dies at its first deletion (type 3) or when its cancelled plus
    executed size reaches its submitted size. Reused ids fall back to the
    number of submissions (a safe bound).
    """
    n = types.shape[0]
    adds = np.flatnonzero(types == EV_SUBMIT)
    if adds.size == 0:
        return 1
    add_codes = codes[adds]
    if np.unique(add_codes).size != adds.size:
        return int(adds.size)
    add_at = np.full(n_codes, n, dtype=np.int64)
    add_at[add_codes] = adds
    add_size = np.zeros(n_codes, dtype=np.int64)
    add_size[add_codes] = sizes[adds]
    red = np.flatnonzero((types == EV_CANCEL) | (types == EV_DELETE) | (types == EV_EXECUTE))
    rc = codes[red]
    after = red > add_at[rc]
    red, rc = red[after], rc[after]
    amount = np.where(types[red] == EV_DELETE, add_size[rc], sizes[red])
    order = np.argsort(rc, kind="stable")
    rc_s, amt_s, idx_s = rc[order], amount[order], red[order]
    cum = np.cumsum(amt_s)
    first = np.r_[True, rc_s[1:] != rc_s[:-1]] if rc_s.size else np.zeros(0, dtype=bool)
    base = np.maximum.accumulate(np.where(first, cum - amt_s, 0)) if rc_s.size else cum
    dead = (cum - base) >= add_size[rc_s]
    death = np.full(n_codes, n, dtype=np.int64)
    np.minimum.at(death, rc_s[dead], idx_s[dead])
    died = death[add_codes]
    delta = np.bincount(adds, minlength=n + 1)[: n + 1] - np.bincount(died, minlength=n + 1)[: n + 1]
    return int(np.cumsum(delta)[:n].max())


def revealed_cells(book: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The orderbook levels that rule 4 (``reveal_levels``) copies into the replay.

    Row ``k >= 1``'s level on a side is *revealed* when row ``k - 1`` fills
    every level of that side and the level is priced beyond row ``k - 1``'s
    deepest price (higher for asks, lower for bids): it came into view because
    the window moved, so an ``L``-level message file cannot have announced
    it. Row 0 has none (it is the initial state, :func:`initial_book`). In a
    consistent file one message empties at most one visible level, so a
    revealed level is row ``k``'s deepest; and since the message changed row
    ``k``, the top level is never revealed unless ``L == 1``.

    Args:
        book: orderbook rows ``(n, 4 * L)`` in LOBSTER layout.

    Returns:
        ``(ask, bid)`` boolean arrays ``(n, L)``: revealed ask / bid levels.
    """
    book = np.asarray(book)
    n_lv = book.shape[1] // 4
    out = []
    for pcol, empty, worse in ((0, EMPTY_ASK, 1), (2, EMPTY_BID, -1)):
        px = book[:, pcol::4]
        edge = px[:-1, n_lv - 1 : n_lv]
        beyond = (edge != empty) & (px[1:] != empty) & ((px[1:] - edge) * worse > 0)
        out.append(np.vstack([np.zeros((min(len(book), 1), n_lv), dtype=bool), beyond]))
    return out[0], out[1]


def initial_book(data: LOBSTERData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The visible book *before* message 0, from the orderbook file's first row and message 0.

    LOBSTER's orderbook row k is the book *after* message k, so row 0 already
    contains message 0's effect. Undoing it gives the state the file starts
    from (``(side, price)`` levels of row 0, then):

    * type 1 (submission of ``size`` at ``price``): that level had ``size``
      fewer shares (none left: the level did not exist);
    * types 2, 3, 4 (partial cancel, delete, execution): that level had
      ``size`` more shares (re-created when the message emptied it);
    * types 5, 6, 7: no visible change.

    Replaying every message, message 0 included, from this state reproduces
    row 0 and keeps message 0's order id known (seeding row 0 and skipping
    message 0 would lose the id of a submission, and of every later message
    about it). A price beyond the deepest level of a full row 0 is outside
    the visible window and is left alone.

    Returns:
        ``(side, price, qty)`` int64 arrays, one entry per level: bids best
        first, then asks best first (LOBSTER price units, shares).

    Raises:
        ValueError: ``data`` has no orderbook.
        DataFormatError: row 0 does not hold message 0's submission (the two
            files do not belong together; names the orderbook file, line 1).
    """
    if data.orderbook is None:
        raise ValueError(NO_ORDERBOOK)
    row = data.orderbook[0].reshape(-1, 4)
    n_levels = row.shape[0]
    levels: dict[tuple[int, int], int] = {}
    deepest = {}
    for side, px_col, sz_col, empty in ((SELL, 0, 1, EMPTY_ASK), (BUY, 2, 3, EMPTY_BID)):
        filled = row[:, px_col] != empty
        for px, sz in zip(row[filled, px_col].tolist(), row[filled, sz_col].tolist()):
            levels[(side, px)] = sz
        deepest[side] = int(row[n_levels - 1, px_col]) if filled.all() else None
    typ, side, price, size = (int(data.type[0]), int(data.direction[0]), int(data.price[0]), int(data.size[0]))
    hidden = deepest.get(side) is not None and (price - deepest[side]) * side < 0  # worse than the deepest level
    if EV_SUBMIT <= typ <= EV_EXECUTE and not hidden:
        key = (side, price)
        if typ == EV_SUBMIT:
            have = levels.get(key, 0)
            if have < size:
                problem = SEED_MISSING.format(side="bid" if side == BUY else "ask", size=size, price=price)
                raise DataFormatError(ROW_ERROR.format(file=data.orderbook_path or "<orderbook>", line=1,
                                                       problem=problem))  # fmt: skip
            if have == size:
                del levels[key]
            else:
                levels[key] = have - size
        else:
            levels[key] = levels.get(key, 0) + size
    keys = sorted(levels, key=lambda k: (-k[0], -k[0] * k[1]))  # bids (1) first, each side best first
    return (
        np.array([k[0] for k in keys], dtype=np.int64),
        np.array([k[1] for k in keys], dtype=np.int64),
        np.array([levels[k] for k in keys], dtype=np.int64),
    )


class LOBSTERReplayer:
    """Incremental replay of LOBSTER messages through a :class:`~janus_env.book.OrderBook`.

    The reconstruction follows the rules of the module docstring: an optional
    initial state from the orderbook file (synthetic orders of
    :data:`PREEXISTING_AGENT`, matched by price for messages with unknown
    ids), removal of stale orders that the recorded market shows are gone,
    and levels revealed at the edge of the window copied from the orderbook
    file.

    Args:
        data: validated messages (:func:`~janus_env.data.lobster.read_lobster`).
        tick_size: grid step in LOBSTER units (default 100 = $0.01).
        grid: an explicit :class:`PriceGrid` (default: :func:`price_grid` over
            the prices of types 1-4 and of the initial state that lie on the
            submissions' tick grid, with margin).
        margin_ticks: passed to :func:`price_grid`.
        capacity: order pool size (default: the most orders resting at once,
            computed from the messages, plus the initial levels, plus 64).
        initial_state: start from the book before message 0 derived from the
            orderbook file (:func:`initial_book`). Default (None): when ``data``
            has an orderbook — a file that starts at 09:30 refers to orders
            placed before it, and without them the first minutes replay a
            book that is missing most of its depth.
        remove_stale: apply stale-order rules 1 and 2 (default True: a
            message file carries only events inside its visible levels, so
            orders that left the book deeper down or before the file started
            would otherwise stay forever and cross the book). False replays
            the messages literally (used by :func:`~janus_env.data.lobster_write.write_lobster`).
        reveal_levels: rule 4 — after message ``k``, levels of orderbook row
            ``k`` beyond row ``k - 1``'s deepest price on a side (they came
            into view because the window moved: :func:`revealed_cells`) are
            set in our book to the file's quantity, and our levels there that
            the file does not show are removed. Default (None): when ``data``
            has an orderbook — an ``L``-level message file never announces
            orders placed while deeper than ``L`` levels, and only the
            orderbook file shows them when they come into view. Only rows
            ``k - 1`` and ``k`` are read after message ``k`` (no look-ahead),
            and only at the edge of the window, never inside it.

    Raises:
        TypeError: ``initial_state``, ``remove_stale`` or ``reveal_levels`` of the wrong type; ``tick_size``
            not an int.
        ValueError: ``tick_size`` < 1; ``initial_state=True`` or
            ``reveal_levels=True`` without an orderbook.
        DataFormatError: a submission price that is not on the grid (names the
            message file and line); an initial-state price off the grid, or an
            orderbook whose first row does not match message 0 (names the
            orderbook file, line 1); a revealed level priced off the grid
            (names the orderbook file and line).
    """

    def __init__(
        self,
        data: LOBSTERData,
        *,
        tick_size: int = DEFAULT_TICK,
        grid: PriceGrid | None = None,
        margin_ticks: int | None = None,
        capacity: int | None = None,
        initial_state: bool | None = None,
        remove_stale: bool = True,
        reveal_levels: bool | None = None,
    ) -> None:
        for name, flag in (("initial_state", initial_state), ("reveal_levels", reveal_levels)):
            check_bool(name, flag, optional=True)  # None: decided by whether there is an orderbook
        check_bool("remove_stale", remove_stale)
        self.data = data
        if initial_state is None:
            initial_state = data.orderbook is not None
        if initial_state and data.orderbook is None:
            raise ValueError(NO_ORDERBOOK)
        if reveal_levels is None:
            reveal_levels = data.orderbook is not None
        if reveal_levels and data.orderbook is None:
            raise ValueError(NO_ORDERBOOK_REVEAL)
        self.initial_state = bool(initial_state)
        self.remove_stale = bool(remove_stale)
        self.reveal_levels = bool(reveal_levels)
        empty = np.zeros(0, dtype=np.int64)
        seed_side, seed_price, seed_qty = initial_book(data) if self.initial_state else (empty, empty, empty)
        if self.reveal_levels:
            self._book = np.ascontiguousarray(data.orderbook, dtype=np.int64)
            ask_cells, bid_cells = revealed_cells(self._book)
            shown = np.concatenate([self._book[:, 0::4][ask_cells], self._book[:, 2::4][bid_cells]])
            shown_row = np.concatenate([np.nonzero(ask_cells)[0], np.nonzero(bid_cells)[0]])
        else:
            self._book = np.zeros((0, 4), dtype=np.int64)
            shown, shown_row = empty, empty
        is_add = data.type == EV_SUBMIT
        priced = (data.type >= EV_SUBMIT) & (data.type <= EV_EXECUTE)
        if grid is None:
            check_int("tick_size", tick_size, low=1)
            known = np.concatenate([data.price[priced], seed_price, shown])
            anchor = data.price[is_add].min() if is_add.any() else (known.min() if known.size else 0)
            grid = price_grid(known[(known - anchor) % int(tick_size) == 0], tick_size, margin_ticks)
        self.grid = g = grid
        rel = data.price - g.origin
        on_grid = (rel % g.tick_size == 0) & (rel >= 0) & (rel < g.n_ticks * g.tick_size)
        raise_first(
            data.path or "<messages>",
            1,
            [(is_add & ~on_grid,
              lambda r: OFF_GRID.format(price=py_scalar(data.price[r]), origin=g.origin,
                                        tick=g.tick_size))],  # fmt: skip
        )
        seed_rel = seed_price - g.origin
        seed_off = (seed_rel % g.tick_size != 0) | (seed_rel < 0) | (seed_rel >= g.n_ticks * g.tick_size)
        if seed_off.any():
            k = int(np.argmax(seed_off))
            problem = OFF_GRID.format(price=py_scalar(seed_price[k]), origin=g.origin, tick=g.tick_size)
            raise DataFormatError(ROW_ERROR.format(file=data.orderbook_path or "<orderbook>", line=1, problem=problem))
        shown_rel = shown - g.origin
        shown_off = (shown_rel % g.tick_size != 0) | (shown_rel < 0) | (shown_rel >= g.n_ticks * g.tick_size)
        if shown_off.any():
            k = int(np.argmin(np.where(shown_off, shown_row, len(data))))
            problem = OFF_GRID.format(price=py_scalar(shown[k]), origin=g.origin, tick=g.tick_size)
            raise DataFormatError(ROW_ERROR.format(file=data.orderbook_path or "<orderbook>",
                                                   line=int(shown_row[k]) + 1, problem=problem))  # fmt: skip
        self.ticks = np.where(priced & on_grid, rel // g.tick_size, -1).astype(np.int64)
        self._seed = (seed_side, (seed_rel // g.tick_size).astype(np.int64), seed_qty)
        codes, uniques = pd.factorize(data.order_id)
        self.codes = np.ascontiguousarray(codes, dtype=np.int64)
        self.n_ids = len(uniques)
        self.types = np.ascontiguousarray(data.type, dtype=np.int64)
        self.sizes = np.ascontiguousarray(data.size, dtype=np.int64)
        self.directions = np.ascontiguousarray(data.direction, dtype=np.int64)
        if capacity is None:
            live = _live_order_bound(self.types, self.codes, self.sizes, self.n_ids)
            capacity = live + seed_side.size + shown.size + 64  # one synthetic order per revealed level at most
        self.book = OrderBook(n_ticks=g.n_ticks, capacity=int(capacity), n_agents=N_REPLAY_AGENTS, log_capacity=0)
        self.id_map = np.full(max(self.n_ids, 1), -1, dtype=np.int64)
        self.counters = np.zeros(N_COUNTERS, dtype=np.int64)
        self._no_snaps = np.zeros((0, 1, 4), dtype=np.int64)
        self.position = 0
        self.reset()

    def __len__(self) -> int:
        return len(self.data)

    def reset(self) -> None:
        """Rewind to message 0: the initial state (or an empty book) and zero counters."""
        b = self.book
        b.reset()
        self.id_map[:] = -1
        self.counters[:] = 0
        self.position = 0
        self.counters[C_INITIAL] = seed_book(b.levels, b.orders, b.state, b.log, *self._seed, PREEXISTING_AGENT)

    def replay_to(self, stop: int, snapshots: np.ndarray | None = None) -> None:
        """Apply messages ``[position, stop)``.

        Args:
            stop: index of the first message not applied (``position <= stop <= len``).
            snapshots: optional int64 array ``(stop - position, L, 4)`` receiving
                the engine snapshot (ticks) after each message.
        """
        stop = check_int("stop", stop, low=self.position, high=len(self))
        snaps = self._no_snaps if snapshots is None else snapshots
        b = self.book
        replay_kernel(
            b.levels, b.orders, b.state, b.accounts, b.fills, b.log,
            self.types, self.codes, self.sizes, self.ticks, self.directions, self.id_map,
            self.position, stop, snaps, self.counters, self.remove_stale,
            self._book, self.grid.origin, self.grid.tick_size, self.reveal_levels,
        )  # fmt: skip
        self.position = stop

    def market(self, side: int, qty: int) -> tuple[int, int]:
        """Agent market order (account :data:`AGENT`) against the whole reconstructed book.

        Consumes resting recorded orders, so later messages about them are
        counted as unknown or capped.

        Returns:
            ``(filled shares, notional in LOBSTER price units × shares)``.
        """
        side = check_choice("side", check_int("side", side), SIDES)
        if check_int("qty", qty) <= 0:
            return 0, 0
        b = self.book
        b.state[S_N_FILLS] = 0
        oid = submit(b.levels, b.orders, b.state, b.accounts, b.fills, b.log, AGENT, int(side), 0, int(qty), True)
        if oid == ERR_POOL_FULL:
            raise RuntimeError("Order pool is full; pass a larger `capacity`")
        f = b.fills[: b.state[S_N_FILLS]]
        filled = int(f[:, F_QTY].sum())
        notional = int((self.grid.to_price(f[:, F_PRICE]) * f[:, F_QTY]).sum())
        return filled, notional

    def l2(self, n_levels: int) -> np.ndarray:
        """Current top ``n_levels`` in engine layout (ticks; price -1 for missing)."""
        return self.book.l2(n_levels)

    def report(self, snapshot_mismatches: int = -1, first_mismatch: int = 0, top_mismatches: int = -1) -> ReplayReport:
        """Counters of the messages applied so far (comparison figures as given by the caller)."""
        c = self.counters
        s = self.book.state
        return ReplayReport(
            messages=int(c[C_MESSAGES]),
            unknown_cancels=int(s[S_UNKNOWN_CANCELS]),
            unknown_executions=int(s[S_UNKNOWN_EXECUTIONS]),
            hidden_executions=int(c[C_HIDDEN]),
            halts=int(c[C_HALTS]),
            rejected=int(s[S_REJECTED]),
            submissions=int(c[C_SUBMISSIONS]),
            cancellations=int(c[C_CANCELLATIONS]),
            deletions=int(c[C_DELETIONS]),
            executions=int(c[C_EXECUTIONS]),
            cross_trades=int(c[C_CROSS]),
            duplicate_ids=int(c[C_DUPLICATE_IDS]),
            crossed=int(c[C_CROSSED]),
            capped_executions=int(c[C_CAPPED]),
            buy_volume=int(c[C_BUY_VOLUME]),
            sell_volume=int(c[C_SELL_VOLUME]),
            cross_volume=int(c[C_CROSS_VOLUME]),
            snapshot_mismatches=int(snapshot_mismatches),
            first_mismatch=int(first_mismatch),
            initial_orders=int(c[C_INITIAL]),
            preexisting_matches=int(c[C_PREEXISTING]),
            stale_crossed_orders=int(c[C_STALE_CROSSED]),
            stale_crossed_qty=int(c[C_STALE_CROSSED_QTY]),
            stale_executed_orders=int(c[C_STALE_EXECUTED]),
            stale_executed_qty=int(c[C_STALE_EXECUTED_QTY]),
            executions_at_best=int(c[C_AT_BEST]),
            crossed_rows=int(c[C_CROSSED_ROWS]),
            top_mismatches=int(top_mismatches),
            stale_queue_orders=int(c[C_STALE_QUEUE]),
            stale_queue_qty=int(c[C_STALE_QUEUE_QTY]),
            revealed_levels=int(c[C_REVEALED_LEVELS]),
            revealed_orders=int(c[C_REVEALED_ORDERS]),
            revealed_qty=int(c[C_REVEALED_QTY]),
            trimmed_orders=int(c[C_TRIMMED_ORDERS]),
            trimmed_qty=int(c[C_TRIMMED_QTY]),
        )


def to_orderbook_layout(snaps: np.ndarray, grid: PriceGrid) -> np.ndarray:
    """Engine snapshots ``(n, L, 4)`` (ticks, -1 missing) → LOBSTER orderbook rows ``(n, 4L)``.

    Columns ``ask_px1, ask_sz1, bid_px1, bid_sz1, ...``; prices in LOBSTER
    units, empty levels ``±9999999999`` with size 0.
    """
    n, n_levels, _ = snaps.shape
    out = np.empty((n, n_levels, 4), dtype=np.int64)
    bid_px, bid_sz, ask_px, ask_sz = (snaps[:, :, k] for k in range(4))
    out[:, :, 0] = np.where(ask_px >= 0, grid.to_price(ask_px), EMPTY_ASK)
    out[:, :, 1] = np.where(ask_px >= 0, ask_sz, 0)
    out[:, :, 2] = np.where(bid_px >= 0, grid.to_price(bid_px), EMPTY_BID)
    out[:, :, 3] = np.where(bid_px >= 0, bid_sz, 0)
    return out.reshape(n, 4 * n_levels)


def replay_lobster(
    data: LOBSTERData,
    *,
    tick_size: int = DEFAULT_TICK,
    n_levels: int | None = None,
    snapshots: bool = False,
    chunk: int = 65_536,
    grid: PriceGrid | None = None,
    initial_state: bool | None = None,
    remove_stale: bool = True,
    reveal_levels: bool | None = None,
) -> tuple[ReplayReport, np.ndarray | None]:
    """Replay every message through a fresh engine (the reconstruction of :class:`LOBSTERReplayer`).

    When ``data`` has an orderbook, the replayed top levels are compared with
    it after every message: ``ReplayReport.snapshot_mismatches`` (any of the
    compared levels differs) and ``top_mismatches`` (best bid or ask price or
    size differs). Deeper levels of a truncated (``_message_10``) file can
    still differ where the queue inside a level is unknown (see the module
    docstring; without ``reveal_levels``, also wherever an order placed
    beyond the visible levels has come into view).

    Args:
        data: validated messages.
        tick_size: grid step in LOBSTER units.
        n_levels: levels to snapshot (default: the orderbook file's, else 10).
        snapshots: also return the replayed book after every message.
        chunk: messages per kernel call when snapshotting (bounds memory).
        grid: explicit price grid (default: chosen from the data).
        initial_state: start from the orderbook file's first row (default:
            when there is one; see :class:`LOBSTERReplayer`).
        remove_stale: apply the stale-order rules (default True).
        reveal_levels: copy the levels that come into view at the edge of the
            window from the orderbook file (default: when there is one; see
            :class:`LOBSTERReplayer`).

    Returns:
        ``(report, rows)``: ``rows`` is None unless ``snapshots``, else int64
        ``(n, 4 * n_levels)`` in LOBSTER orderbook layout.

    Raises:
        TypeError: ``n_levels`` or ``tick_size`` not an int; a flag not a bool.
        ValueError: ``n_levels`` < 1, bad ``tick_size``, ``initial_state=True``
            or ``reveal_levels=True`` without an orderbook.
    """
    levels = (data.n_levels or 10) if n_levels is None else check_int("n_levels", n_levels, low=1)
    replayer = LOBSTERReplayer(data, tick_size=tick_size, grid=grid, initial_state=initial_state,
                               remove_stale=remove_stale, reveal_levels=reveal_levels)  # fmt: skip
    compare = data.orderbook is not None
    if not compare and not snapshots:
        replayer.replay_to(len(data))
        return replayer.report(), None
    rows = np.empty((len(data), 4 * levels), dtype=np.int64) if snapshots else None
    mismatches, top, first = 0, 0, 0
    buffer = np.empty((min(chunk, max(len(data), 1)), levels, 4), dtype=np.int64)
    for begin in range(0, len(data), chunk):
        end = min(begin + chunk, len(data))
        snaps = buffer[: end - begin]
        replayer.replay_to(end, snaps)
        layout = to_orderbook_layout(snaps, replayer.grid)
        if rows is not None:
            rows[begin:end] = layout
        if compare:
            theirs = data.orderbook[begin:end]
            k = min(levels, data.n_levels)
            same = layout[:, : 4 * k] == theirs[:, : 4 * k]
            bad = np.flatnonzero(~same.all(axis=1))
            if bad.size and not first:
                first = begin + int(bad[0]) + 1
            mismatches += int(bad.size)
            top += int((~same[:, :4].all(axis=1)).sum())
    if not compare:
        return replayer.report(), rows
    return replayer.report(mismatches, first, top), rows
