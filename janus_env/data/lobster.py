"""LOBSTER message/orderbook files: validated loading, replay through our engine, writing.

LOBSTER (https://lobsterdata.com, "LOBSTER: Limit Order Book System - The
Efficient Reconstructor", Huang & Polak 2011) ships one day of one ticker as

* a **message file** (no header), one event per line::

      time, type, order id, size, price, direction

  ``time`` in seconds after midnight (float), ``price`` in dollars × 10000
  (integer), ``direction`` +1 buy / -1 sell limit order (for an execution: the
  side of the *resting* order, so -1 is a buyer-initiated trade), ``type``:

  ====  ===========================================  =====================================
  type  event                                        replayed as
  ====  ===========================================  =====================================
  1     submission of a new limit order              ``book.add_resting``
  2     cancellation (partial deletion)              ``book.cancel(qty=size)``
  3     deletion (total deletion)                    ``book.cancel(qty=0)``
  4     execution of a visible limit order           ``book.execute_resting``
  5     execution of a hidden limit order            counted (trade volume only)
  6     cross trade (auction)                        counted (trade volume only)
  7     trading halt indicator                       counted
  ====  ===========================================  =====================================

* an optional **orderbook file** (no header), the book *after* each message:
  ``ask_px1, ask_sz1, bid_px1, bid_sz1, ask_px2, ...`` with ask price
  ``9999999999`` / bid price ``-9999999999`` and size 0 for empty levels.

Replay runs in one numba kernel over int64 arrays. External order ids are
factorized with pandas first (``codes`` in ``[0, n_ids)``) so the kernel maps
them to engine ids with a plain array instead of a dict. A file that starts in
the middle of the day refers to orders submitted before it begins; their
cancellations and executions are *counted* (``ReplayReport.unknown_cancels``,
``unknown_executions``) and otherwise skipped.

Our engine logs the same event layout (:meth:`janus_env.book.OrderBook.events`,
prices in ticks), so :func:`write_lobster` turns an engine run into LOBSTER
files that :func:`read_lobster` reads back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
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
    S_BEST_ASK,
    S_BEST_BID,
    S_N_FILLS,
    S_REJECTED,
    S_UNKNOWN_CANCELS,
    S_UNKNOWN_EXECUTIONS,
    SELL,
    BUY,
    OrderBook,
    _slot_of,
    add_resting,
    cancel,
    execute_resting,
    snapshot,
    submit,
)
from janus_env.data.validation import (
    FILE_ERROR,
    MISSING_VALUE,
    NEGATIVE,
    NOT_FINITE,
    NOT_POSITIVE,
    ROW_ERROR,
    TIME_DECREASES,
    UNSORTED_LEVELS,
    CROSSED_BOOK,
    EMPTY_FILE,
    WRONG_FIELD_COUNT,
    DataFormatError,
    _py,
    check_file,
    negative_check,
    numeric_columns,
    raise_first,
    read_csv,
)

MESSAGE_COLUMNS = ("time", "type", "order_id", "size", "price", "direction")
PRICE_SCALE = 10_000
"""LOBSTER price units per dollar."""
EMPTY_ASK = 9_999_999_999
EMPTY_BID = -9_999_999_999
DEFAULT_TICK = 100
"""Default tick size in LOBSTER units ($0.01)."""

BAD_EVENT_TYPE = "event type {value!r} is not one of 1..7"
BAD_DIRECTION = "direction {value!r} is not 1 (buy) or -1 (sell)"
ZERO_SIZE = "column 'size' must be > 0 for event type {type}, got 0"
OFF_GRID = "price {price!r} is not on the tick grid (origin {origin}, tick size {tick})"
EMPTY_LEVEL_SIZE = "{side} level {level} is marked empty (price {price}) but has size {size!r}"
LEVEL_GAP = "{side} level {level} is filled after an empty level"
ORDERBOOK_ROWS = "has {found} rows but the message file {messages} has {expected}"
BAD_ORDERBOOK_WIDTH = "expected a multiple of 4 columns (ask_px, ask_sz, bid_px, bid_sz per level), found {found}"
BAD_TICK = "Expected `tick_size` to be a positive integer (LOBSTER units), got {!r}"
BAD_N_LEVELS = "Expected `n_levels` >= 1, got {!r}"
BAD_EVENTS = "Expected an int64 event array of shape (n, 6) from OrderBook.events(), got {}"
BAD_EVENT_LOG_TYPE = "event log row {row} has type {value}; the engine only logs types 1-4"
BAD_STOP = "Expected `stop` in [{}, {}], got {!r}"
BAD_SIDE = "Expected `side` to be BUY (1) or SELL (-1), got {!r}"

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
) = range(14)
N_COUNTERS = 14

RECORDED_AGENT = 0
"""Engine account of every recorded order (and of the recorded counterparties)."""
AGENT = 1
"""Engine account of the learning agent's market orders (:meth:`LOBSTERReplayer.market`)."""


# --------------------------------------------------------------------------- reading


def _first_line_fields(path: Path) -> int:
    with path.open("r", newline="") as handle:
        line = handle.readline()
    return line.count(",") + 1 if line.strip() else 0


def read_lobster_messages(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and validate a LOBSTER message file.

    Args:
        path: the ``*_message_*.csv`` file (no header, six columns).

    Returns:
        A frame with columns ``time`` (float64 seconds after midnight) and
        ``type, order_id, size, price, direction`` (int64; price in LOBSTER
        units, dollars × 10000), row ``i`` being line ``i + 1`` of the file.

    Raises:
        FileNotFoundError: the file does not exist.
        DataFormatError: wrong column count; an empty, non-numeric or fractional
            cell; negative time/size/id; time decreasing; type outside 1..7;
            for types 1-6 a zero size, a price <= 0 or a direction other than ±1.
    """
    p = check_file(path)
    file = os.fspath(path)
    fields = _first_line_fields(p)
    if fields == 0:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE))
    if fields != len(MESSAGE_COLUMNS):
        problem = WRONG_FIELD_COUNT.format(expected=len(MESSAGE_COLUMNS), found=fields)
        raise DataFormatError(ROW_ERROR.format(file=file, line=1, problem=problem))
    dtypes = {c: np.int64 for c in MESSAGE_COLUMNS}
    dtypes["time"] = np.float64
    try:  # fast path: a clean file parses straight into typed columns
        frame = read_csv(p, file, header=None, names=list(MESSAGE_COLUMNS), index_col=False, dtype=dtypes)
        values = {c: frame[c].to_numpy() for c in MESSAGE_COLUMNS}
        t = values["time"]
        raise_first(
            file,
            1,
            [
                (np.isnan(t), lambda r: MISSING_VALUE.format(column="time")),
                (np.isinf(t), lambda r: NOT_FINITE.format(column="time", value=_py(t[r]))),
            ],
        )
    except (ValueError, TypeError, OverflowError) as err:
        if isinstance(err, DataFormatError):
            raise
        frame = read_csv(p, file, header=None, names=list(MESSAGE_COLUMNS), index_col=False, dtype=str)
        values = numeric_columns(frame, MESSAGE_COLUMNS, file, 1, integer=MESSAGE_COLUMNS[1:])
    time = np.asarray(values["time"], dtype=np.float64)
    typ, oid, size, price, direction = (np.asarray(values[c]).astype(np.int64) for c in MESSAGE_COLUMNS[1:])
    if len(time) == 0:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE))
    _validate_messages(file, 1, time, typ, oid, size, price, direction)
    return pd.DataFrame(
        {"time": time, "type": typ, "order_id": oid, "size": size, "price": price, "direction": direction}
    )


def _validate_messages(
    file: str,
    first_line: int,
    time: np.ndarray,
    typ: np.ndarray,
    oid: np.ndarray,
    size: np.ndarray,
    price: np.ndarray,
    direction: np.ndarray,
) -> None:
    """Vectorized semantic checks of LOBSTER message columns (see :func:`read_lobster_messages`)."""
    trading = (typ >= 1) & (typ <= 6)
    back = np.r_[False, np.diff(time) < 0]
    raise_first(
        file,
        first_line,
        [
            negative_check(time, "time"),
            (back, lambda r: TIME_DECREASES.format(value=_py(time[r]), previous=_py(time[r - 1]))),
            ((typ < 1) | (typ > 7), lambda r: BAD_EVENT_TYPE.format(value=_py(typ[r]))),
            negative_check(oid, "order_id"),
            negative_check(size, "size"),
            (trading & (size == 0), lambda r: ZERO_SIZE.format(type=_py(typ[r]))),
            (trading & (price <= 0), lambda r: NOT_POSITIVE.format(column="price", value=_py(price[r]))),
            (trading & (np.abs(direction) != 1), lambda r: BAD_DIRECTION.format(value=_py(direction[r]))),
        ],
    )


def orderbook_columns(n_levels: int) -> list[str]:
    """LOBSTER orderbook column names: ``ask_px1, ask_sz1, bid_px1, bid_sz1, ask_px2, ...``."""
    return [f"{name}{k}" for k in range(1, n_levels + 1) for name in ("ask_px", "ask_sz", "bid_px", "bid_sz")]


def read_lobster_orderbook(path: str | os.PathLike[str]) -> np.ndarray:
    """Read and validate a LOBSTER orderbook file.

    Args:
        path: the ``*_orderbook_<L>.csv`` file (no header, ``4 * L`` columns).

    Returns:
        int64 array ``(n, 4 * L)`` in the file's column layout.

    Raises:
        FileNotFoundError: the file does not exist.
        DataFormatError: a column count that is not a multiple of 4; a bad cell;
            a negative size; an empty level with a size, a filled level after an
            empty one, a non-positive price or size on a filled level; asks not
            increasing / bids not decreasing across levels; a crossed book.
    """
    p = check_file(path)
    file = os.fspath(path)
    fields = _first_line_fields(p)
    if fields == 0:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE))
    if fields % 4:
        problem = BAD_ORDERBOOK_WIDTH.format(found=fields)
        raise DataFormatError(ROW_ERROR.format(file=file, line=1, problem=problem))
    names = orderbook_columns(fields // 4)
    try:
        frame = read_csv(p, file, header=None, names=names, index_col=False, dtype=np.int64)
        book = frame.to_numpy(dtype=np.int64)
    except (ValueError, TypeError, OverflowError) as err:
        if isinstance(err, DataFormatError):
            raise
        frame = read_csv(p, file, header=None, names=names, index_col=False, dtype=str)
        cols = numeric_columns(frame, names, file, 1, integer=names)
        book = np.column_stack([cols[c] for c in names]).astype(np.int64)
    if len(book) == 0:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE))
    _validate_orderbook(file, book)
    return book


def _validate_orderbook(file: str, book: np.ndarray) -> None:
    ask_px, ask_sz, bid_px, bid_sz = (book[:, k::4] for k in range(4))
    checks = []
    for side, px, sz, empty_px, sign in (("ask", ask_px, ask_sz, EMPTY_ASK, 1), ("bid", bid_px, bid_sz, EMPTY_BID, -1)):
        empty = px == empty_px
        filled = ~empty
        gap = filled[:, 1:] & empty[:, :-1]
        step = (px[:, 1:] - px[:, :-1]) * sign
        unsorted = filled[:, 1:] & filled[:, :-1] & (step <= 0)
        masks = (
            (sz < 0, lambda r, lv, side=side, sz=sz: NEGATIVE.format(column=f"{side}_sz{lv + 1}", value=_py(sz[r, lv]))),
            (
                empty & (sz != 0),
                lambda r, lv, side=side, sz=sz, e=empty_px: EMPTY_LEVEL_SIZE.format(
                    side=side, level=lv + 1, price=e, size=_py(sz[r, lv])
                ),
            ),
            (
                filled & (px <= 0),
                lambda r, lv, side=side, px=px: NOT_POSITIVE.format(column=f"{side}_px{lv + 1}", value=_py(px[r, lv])),
            ),
            (
                filled & (sz <= 0),
                lambda r, lv, side=side, sz=sz: NOT_POSITIVE.format(column=f"{side}_sz{lv + 1}", value=_py(sz[r, lv])),
            ),
            (
                np.pad(gap, ((0, 0), (1, 0))),
                lambda r, lv, side=side: LEVEL_GAP.format(side=side, level=lv + 1),
            ),
            (
                np.pad(unsorted, ((0, 0), (1, 0))),
                lambda r, lv, side=side, px=px, sign=sign: UNSORTED_LEVELS.format(
                    side=side,
                    level=lv + 1,
                    price=_py(px[r, lv]),
                    order="higher" if sign > 0 else "lower",
                    previous=lv,
                    previous_price=_py(px[r, lv - 1]),
                ),
            ),
        )
        for mask, describe in masks:
            checks.append((mask.any(axis=1), lambda r, m=mask, d=describe: d(r, int(np.argmax(m[r])))))
    crossed = (ask_px[:, 0] != EMPTY_ASK) & (bid_px[:, 0] != EMPTY_BID) & (bid_px[:, 0] >= ask_px[:, 0])
    checks.append((crossed, lambda r: CROSSED_BOOK.format(bid=_py(bid_px[r, 0]), ask=_py(ask_px[r, 0]))))
    raise_first(file, 1, checks)


@dataclass(frozen=True)
class LOBSTERData:
    """Validated LOBSTER messages (and optionally the matching orderbook rows).

    Attributes:
        time: float64 seconds after midnight.
        type: int64 event types 1..7.
        order_id: int64 external order ids.
        size: int64 shares.
        price: int64 LOBSTER price units (dollars × 10000).
        direction: int64 ±1.
        orderbook: int64 ``(n, 4 * L)`` orderbook rows in LOBSTER layout, or None.
        path: the message file ("" when built from arrays).
        orderbook_path: the orderbook file, or None.
    """

    time: np.ndarray
    type: np.ndarray
    order_id: np.ndarray
    size: np.ndarray
    price: np.ndarray
    direction: np.ndarray
    orderbook: np.ndarray | None = None
    path: str = ""
    orderbook_path: str | None = None

    def __len__(self) -> int:
        return int(self.type.shape[0])

    @property
    def n_levels(self) -> int:
        """Levels in the orderbook file (0 without one)."""
        return 0 if self.orderbook is None else self.orderbook.shape[1] // 4

    def head(self, n: int) -> LOBSTERData:
        """The first ``n`` messages (and orderbook rows) only."""
        ob = None if self.orderbook is None else self.orderbook[:n]
        return replace(
            self,
            time=self.time[:n],
            type=self.type[:n],
            order_id=self.order_id[:n],
            size=self.size[:n],
            price=self.price[:n],
            direction=self.direction[:n],
            orderbook=ob,
        )


def read_lobster(
    path_messages: str | os.PathLike[str], path_orderbook: str | os.PathLike[str] | None = None
) -> LOBSTERData:
    """Read a LOBSTER message file and, optionally, its orderbook file.

    Raises:
        FileNotFoundError: a file does not exist.
        DataFormatError: a bad row (see :func:`read_lobster_messages`,
            :func:`read_lobster_orderbook`) or row counts that differ.
    """
    frame = read_lobster_messages(path_messages)
    book = None
    if path_orderbook is not None:
        book = read_lobster_orderbook(path_orderbook)
        if len(book) != len(frame):
            problem = ORDERBOOK_ROWS.format(found=len(book), messages=os.fspath(path_messages), expected=len(frame))
            raise DataFormatError(FILE_ERROR.format(file=os.fspath(path_orderbook), problem=problem))
    return LOBSTERData(
        time=frame["time"].to_numpy(),
        type=frame["type"].to_numpy(),
        order_id=frame["order_id"].to_numpy(),
        size=frame["size"].to_numpy(),
        price=frame["price"].to_numpy(),
        direction=frame["direction"].to_numpy(),
        orderbook=book,
        path=os.fspath(path_messages),
        orderbook_path=None if path_orderbook is None else os.fspath(path_orderbook),
    )


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
        ValueError: ``tick_size`` is not a positive integer.
    """
    if isinstance(tick_size, bool) or not isinstance(tick_size, (int, np.integer)) or tick_size <= 0:
        raise ValueError(BAD_TICK.format(tick_size))
    tick_size = int(tick_size)
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

    ``unknown_cancels`` / ``unknown_executions`` count type 2/3 and type 4
    messages whose order is not resting in our book: submitted before the file
    began (mid-day start), already consumed by the agent, or rejected.
    ``capped_executions`` counts type 4 messages larger than what still rests
    (e.g. after the agent took part of the order). ``crossed`` counts
    submissions after which our book was crossed (only possible when the book
    is incomplete). ``snapshot_mismatches`` counts rows where the replayed book
    differs from the orderbook file (-1: no orderbook file compared);
    ``first_mismatch`` is the 1-based line of the first one (0: none).
    Volumes are in shares: buyer-initiated (execution of a sell order),
    seller-initiated, and cross-trade (type 6).
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


@njit(cache=True)
def replay_kernel(
    levels, orders, state, accounts, fills, log, types, codes, sizes, ticks, directions, id_map, start, stop, snaps, counters
):
    """Replay LOBSTER messages ``[start, stop)`` through the engine kernels.

    ``codes`` are factorized order ids and ``id_map[code]`` the engine id of
    the order (-1 unknown). When ``snaps.shape[0] > 0`` the top
    ``snaps.shape[1]`` levels after message ``i`` are written to
    ``snaps[i - start]`` (engine layout, ticks).
    """
    record = snaps.shape[0] > 0
    n_ticks = levels.shape[0]
    for i in range(start, stop):
        t = types[i]
        c = codes[i]
        q = sizes[i]
        if t == EV_SUBMIT:
            prev = id_map[c]
            if prev >= 0 and _slot_of(orders, prev) >= 0:
                counters[C_DUPLICATE_IDS] += 1
            id_map[c] = add_resting(levels, orders, state, log, RECORDED_AGENT, directions[i], ticks[i], q)
            counters[C_SUBMISSIONS] += 1
            bid = state[S_BEST_BID]
            ask = state[S_BEST_ASK]
            if bid >= 0 and ask < n_ticks and bid >= ask:
                counters[C_CROSSED] += 1
        elif t == EV_CANCEL:
            cancel(levels, orders, state, log, id_map[c], q)
            counters[C_CANCELLATIONS] += 1
        elif t == EV_DELETE:
            cancel(levels, orders, state, log, id_map[c], 0)
            counters[C_DELETIONS] += 1
        elif t == EV_EXECUTE:
            state[S_N_FILLS] = 0
            done = execute_resting(levels, orders, state, accounts, fills, log, id_map[c], q, RECORDED_AGENT)
            if done >= 0 and done < q:
                counters[C_CAPPED] += 1
            counters[C_EXECUTIONS] += 1
            if directions[i] == SELL:
                counters[C_BUY_VOLUME] += q
            else:
                counters[C_SELL_VOLUME] += q
        elif t == EV_EXECUTE_HIDDEN:
            counters[C_HIDDEN] += 1
            if directions[i] == SELL:
                counters[C_BUY_VOLUME] += q
            else:
                counters[C_SELL_VOLUME] += q
        elif t == EV_CROSS:
            counters[C_CROSS] += 1
            counters[C_CROSS_VOLUME] += q
        elif t == EV_HALT:
            counters[C_HALTS] += 1
        counters[C_MESSAGES] += 1
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


class LOBSTERReplayer:
    """Incremental replay of LOBSTER messages through a :class:`~janus_env.book.OrderBook`.

    Args:
        data: validated messages (:func:`read_lobster`).
        tick_size: grid step in LOBSTER units (default 100 = $0.01).
        grid: an explicit :class:`PriceGrid` (default: :func:`price_grid` over
            the submission prices, with margin).
        margin_ticks: passed to :func:`price_grid`.
        capacity: order pool size (default: the most orders resting at once,
            computed from the messages, plus 64).

    Raises:
        ValueError: bad ``tick_size``.
        DataFormatError: a submission price that is not on the grid (names the
            message file and line).
    """

    def __init__(
        self,
        data: LOBSTERData,
        *,
        tick_size: int = DEFAULT_TICK,
        grid: PriceGrid | None = None,
        margin_ticks: int | None = None,
        capacity: int | None = None,
    ) -> None:
        self.data = data
        is_add = data.type == EV_SUBMIT
        self.grid = price_grid(data.price[is_add], tick_size, margin_ticks) if grid is None else grid
        g = self.grid
        off = is_add & (((data.price - g.origin) % g.tick_size != 0) | (data.price < g.origin))
        off |= is_add & (data.price >= g.origin + g.n_ticks * g.tick_size)
        raise_first(
            data.path or "<messages>",
            1,
            [(off, lambda r: OFF_GRID.format(price=_py(data.price[r]), origin=g.origin, tick=g.tick_size))],
        )
        self.ticks = np.where(is_add, (data.price - g.origin) // g.tick_size, 0).astype(np.int64)
        codes, uniques = pd.factorize(data.order_id)
        self.codes = np.ascontiguousarray(codes, dtype=np.int64)
        self.n_ids = len(uniques)
        self.types = np.ascontiguousarray(data.type, dtype=np.int64)
        self.sizes = np.ascontiguousarray(data.size, dtype=np.int64)
        self.directions = np.ascontiguousarray(data.direction, dtype=np.int64)
        if capacity is None:
            capacity = _live_order_bound(self.types, self.codes, self.sizes, self.n_ids) + 64
        self.book = OrderBook(n_ticks=g.n_ticks, capacity=int(capacity), n_agents=2, log_capacity=0)
        self.id_map = np.full(max(self.n_ids, 1), -1, dtype=np.int64)
        self.counters = np.zeros(N_COUNTERS, dtype=np.int64)
        self._no_snaps = np.zeros((0, 1, 4), dtype=np.int64)
        self.position = 0

    def __len__(self) -> int:
        return len(self.data)

    def reset(self) -> None:
        """Empty the book and rewind to message 0."""
        self.book.reset()
        self.id_map[:] = -1
        self.counters[:] = 0
        self.position = 0

    def replay_to(self, stop: int, snapshots: np.ndarray | None = None) -> None:
        """Apply messages ``[position, stop)``.

        Args:
            stop: index of the first message not applied (``position <= stop <= len``).
            snapshots: optional int64 array ``(stop - position, L, 4)`` receiving
                the engine snapshot (ticks) after each message.
        """
        stop = int(stop)
        if not self.position <= stop <= len(self):
            raise ValueError(BAD_STOP.format(self.position, len(self), stop))
        snaps = self._no_snaps if snapshots is None else snapshots
        b = self.book
        replay_kernel(
            b.levels, b.orders, b.state, b.accounts, b.fills, b.log,
            self.types, self.codes, self.sizes, self.ticks, self.directions, self.id_map,
            self.position, stop, snaps, self.counters,
        )  # fmt: skip
        self.position = stop

    def market(self, side: int, qty: int) -> tuple[int, int]:
        """Agent market order (account :data:`AGENT`) against the whole reconstructed book.

        Consumes resting recorded orders, so later messages about them are
        counted as unknown or capped.

        Returns:
            ``(filled shares, notional in LOBSTER price units × shares)``.
        """
        if side not in (BUY, SELL):
            raise ValueError(BAD_SIDE.format(side))
        if qty <= 0:
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

    def report(self, snapshot_mismatches: int = -1, first_mismatch: int = 0) -> ReplayReport:
        """Counters of the messages applied so far."""
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
) -> tuple[ReplayReport, np.ndarray | None]:
    """Replay every message through a fresh engine.

    When ``data`` has an orderbook, the replayed top levels are compared with
    it after every message (``ReplayReport.snapshot_mismatches``); a file that
    starts mid-day will mismatch, because orders submitted earlier are missing.

    Args:
        data: validated messages.
        tick_size: grid step in LOBSTER units.
        n_levels: levels to snapshot (default: the orderbook file's, else 10).
        snapshots: also return the replayed book after every message.
        chunk: messages per kernel call when snapshotting (bounds memory).
        grid: explicit price grid (default: chosen from the data).

    Returns:
        ``(report, rows)``: ``rows`` is None unless ``snapshots``, else int64
        ``(n, 4 * n_levels)`` in LOBSTER orderbook layout.

    Raises:
        ValueError: ``n_levels`` < 1 or bad ``tick_size``.
    """
    levels = (data.n_levels or 10) if n_levels is None else int(n_levels)
    if levels < 1:
        raise ValueError(BAD_N_LEVELS.format(n_levels))
    replayer = LOBSTERReplayer(data, tick_size=tick_size, grid=grid)
    compare = data.orderbook is not None
    if not compare and not snapshots:
        replayer.replay_to(len(data))
        return replayer.report(), None
    rows = np.empty((len(data), 4 * levels), dtype=np.int64) if snapshots else None
    mismatches, first = 0, 0
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
            bad = np.flatnonzero(~(layout[:, : 4 * k] == theirs[:, : 4 * k]).all(axis=1))
            if bad.size and not first:
                first = begin + int(bad[0]) + 1
            mismatches += int(bad.size)
    report = replayer.report(mismatches if compare else -1, first)
    return report, rows


# --------------------------------------------------------------------------- writing


def write_lobster(
    events: np.ndarray,
    path_messages: str | os.PathLike[str],
    path_orderbook: str | os.PathLike[str] | None = None,
    *,
    n_levels: int = 10,
    tick_size: int = DEFAULT_TICK,
    price_origin: int = 100 * PRICE_SCALE,
    start_time: float = 34_200.0,
    time_step: float = 1e-3,
    chunk: int = 262_144,
) -> ReplayReport:
    """Write our engine's event log as LOBSTER message (and orderbook) files.

    Prices map as ``price = price_origin + tick · tick_size`` (LOBSTER units;
    default tick 0 = $100.00, tick = $0.01) and times as ``start_time +
    engine_time · time_step`` seconds after midnight (default 09:30:00, 1 ms
    per engine message). Engine order ids are written as they are. The
    orderbook file (top ``n_levels`` after every event) is produced by
    replaying the events through a fresh engine.

    Args:
        events: ``OrderBook.events()`` rows (time, type, id, size, price tick, direction).
        path_messages: message file to write.
        path_orderbook: orderbook file to write (None: skip).
        n_levels: levels per orderbook row.
        tick_size: LOBSTER units per engine tick.
        price_origin: LOBSTER price of engine tick 0.
        start_time: seconds after midnight of engine time 0.
        time_step: seconds per engine time unit.
        chunk: rows written per batch.

    Returns:
        The :class:`ReplayReport` of the replay that produced the orderbook
        (all zeros for the unknown counters when ``events`` is a whole log).

    Raises:
        TypeError: ``events`` is not an integer array.
        ValueError: wrong shape, a type outside 1..4, bad ``n_levels``/``tick_size``.
    """
    events = np.asarray(events)
    if events.ndim != 2 or events.shape[1] != 6:
        raise ValueError(BAD_EVENTS.format(f"shape {events.shape}"))
    if not np.issubdtype(events.dtype, np.integer):
        raise TypeError(BAD_EVENTS.format(f"dtype {events.dtype}"))
    if int(n_levels) < 1:
        raise ValueError(BAD_N_LEVELS.format(n_levels))
    if isinstance(tick_size, bool) or not isinstance(tick_size, (int, np.integer)) or tick_size <= 0:
        raise ValueError(BAD_TICK.format(tick_size))
    events = events.astype(np.int64)
    types = events[:, 1]
    bad_type = np.flatnonzero((types < EV_SUBMIT) | (types > EV_EXECUTE))
    if bad_type.size:
        raise ValueError(BAD_EVENT_LOG_TYPE.format(row=int(bad_type[0]), value=int(types[bad_type[0]])))
    ticks = events[:, 4]
    grid = PriceGrid(
        origin=int(price_origin), tick_size=int(tick_size), n_ticks=int(ticks.max(initial=0)) + 2
    )
    data = LOBSTERData(
        time=start_time + events[:, 0].astype(np.float64) * time_step,
        type=types.copy(),
        order_id=events[:, 2].copy(),
        size=events[:, 3].copy(),
        price=grid.to_price(ticks),
        direction=events[:, 5].copy(),
        path=os.fspath(path_messages),
    )
    frame = pd.DataFrame(
        {"time": data.time, "type": data.type, "order_id": data.order_id, "size": data.size,
         "price": data.price, "direction": data.direction}
    )  # fmt: skip
    frame.to_csv(path_messages, header=False, index=False, float_format="%.9f", lineterminator="\n")
    replayer = LOBSTERReplayer(data, grid=grid)
    if path_orderbook is None:
        replayer.replay_to(len(data))
        return replayer.report()
    buffer = np.empty((min(chunk, max(len(data), 1)), int(n_levels), 4), dtype=np.int64)
    Path(path_orderbook).write_text("")
    for begin in range(0, len(data), chunk):
        end = min(begin + chunk, len(data))
        snaps = buffer[: end - begin]
        replayer.replay_to(end, snaps)
        pd.DataFrame(to_orderbook_layout(snaps, grid)).to_csv(
            path_orderbook, mode="a", header=False, index=False, lineterminator="\n"
        )
    return replayer.report()
