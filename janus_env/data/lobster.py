"""LOBSTER message and orderbook files: the format, validated reading.

LOBSTER (https://lobsterdata.com, "LOBSTER: Limit Order Book System - The
Efficient Reconstructor", Huang & Polak 2011) ships one day of one ticker as

* a **message file** (no header), one event per line::

      time, type, order id, size, price, direction

  ``time`` in seconds after midnight (float), ``price`` in dollars × 10000
  (integer), ``direction`` +1 buy / -1 sell limit order (for an execution: the
  side of the *resting* order, so -1 is a buyer-initiated trade). Some exports
  carry extra trailing columns: rejected by default (a file of another layout
  is never misread), read with ``extra_columns="ignore"``. ``type`` (the last
  column names the rules of :mod:`janus_env.data.lobster_replay`):

  ====  ====================================  ==========================================================
  type  event                                 replayed as
  ====  ====================================  ==========================================================
  1     submission of a new limit order       rule 1, then ``book.add_resting`` (rests, never matches)
  2     cancellation (partial deletion)       ``book.cancel(qty=size)``; unknown id: rule 3
  3     deletion (total deletion)             ``book.cancel(qty=0)``; unknown id: rule 3
  4     execution of a visible limit order    rule 2, ``book.execute_resting``; unknown id: rule 3
  5     execution of a hidden limit order     counted (trade volume only: hidden orders are not in the
                                              visible book); id 0 or -1 (NASDAQ masks it since 2010)
  6     cross trade (auction)                 counted (volume only: an aggregate of executions that
                                              already updated the book); pseudo id -1 … -4
  7     trading halt indicator                counted
  ====  ====================================  ==========================================================

* an optional **orderbook file** (no header), the book *after* each message:
  ``ask_px1, ask_sz1, bid_px1, bid_sz1, ask_px2, ...`` with ask price
  ``9999999999`` / bid price ``-9999999999`` and size 0 for empty levels.

This module reads and validates both files (:func:`read_lobster` →
:class:`LOBSTERData`). The book is rebuilt from them by
:mod:`janus_env.data.lobster_replay`; :mod:`janus_env.data.lobster_write`
writes our engine's event log in the same format.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from janus_env.checks import check_choice
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
    check_file,
    negative_check,
    numeric_columns,
    py_scalar,
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
EMPTY_LEVEL_SIZE = "{side} level {level} is marked empty (price {price}) but has size {size!r}"
LEVEL_GAP = "{side} level {level} is filled after an empty level"
ORDERBOOK_ROWS = "has {found} rows but the message file {messages} has {expected}"
BAD_ORDERBOOK_WIDTH = "expected a multiple of 4 columns (ask_px, ask_sz, bid_px, bid_sz per level), found {found}"
NEGATIVE_ID = "column 'order_id' is negative for event type {type} (only types 5-7 carry pseudo ids): {value!r}"
EXTRA_COLUMNS = "{problem}; pass extra_columns=\"ignore\" to read the first 6 and drop the rest"
EXTRA_COLUMN_MODES = ("error", "ignore")


def _first_line_fields(path: Path) -> int:
    with path.open("r", newline="") as handle:
        line = handle.readline()
    return line.count(",") + 1 if line.strip() else 0


def read_lobster_messages(path: str | os.PathLike[str], *, extra_columns: str = "error") -> pd.DataFrame:
    """Read and validate a LOBSTER message file.

    Args:
        path: the ``*_message_*.csv`` file (no header, six columns).
        extra_columns: what to do with columns after the sixth: ``"error"``
            (default: a file that does not have exactly the six LOBSTER
            columns is rejected, so a file of another layout is never misread)
            or ``"ignore"`` (read the first six columns of every line and drop
            the rest; some LOBSTER exports carry a 7th column). Lines with
            fewer than six fields are rejected either way.

    Returns:
        A frame with columns ``time`` (float64 seconds after midnight) and
        ``type, order_id, size, price, direction`` (int64; price in LOBSTER
        units, dollars × 10000), row ``i`` being line ``i + 1`` of the file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: ``extra_columns`` is not ``"error"`` or ``"ignore"``.
        DataFormatError: wrong column count (more than six only with
            ``extra_columns="error"``; the message names the option); an empty,
            non-numeric or fractional cell; negative time/size; a negative id
            on types 1-4 (types 5-7 carry LOBSTER's pseudo ids: -1 … -4 for
            cross trades, 0 or -1 for hidden executions); time decreasing;
            type outside 1..7; for types 1-6 a zero size or a price <= 0; for
            types 1-5 a direction other than ±1.
    """
    check_choice("extra_columns", extra_columns, EXTRA_COLUMN_MODES)
    p = check_file(path)
    file = os.fspath(path)
    fields = _first_line_fields(p)
    if fields == 0:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE))
    if fields < len(MESSAGE_COLUMNS) or (fields > len(MESSAGE_COLUMNS) and extra_columns == "error"):
        problem = WRONG_FIELD_COUNT.format(expected=len(MESSAGE_COLUMNS), found=fields)
        if fields > len(MESSAGE_COLUMNS):
            problem = EXTRA_COLUMNS.format(problem=problem)
        raise DataFormatError(ROW_ERROR.format(file=file, line=1, problem=problem))
    dtypes = {c: np.int64 for c in MESSAGE_COLUMNS}
    dtypes["time"] = np.float64
    columns = {"usecols": range(len(MESSAGE_COLUMNS))} if extra_columns == "ignore" else {}
    try:  # fast path: a clean file parses straight into typed columns
        frame = read_csv(p, file, header=None, names=list(MESSAGE_COLUMNS), index_col=False, dtype=dtypes, **columns)
        values = {c: frame[c].to_numpy() for c in MESSAGE_COLUMNS}
        t = values["time"]
        raise_first(
            file,
            1,
            [
                (np.isnan(t), lambda r: MISSING_VALUE.format(column="time")),
                (np.isinf(t), lambda r: NOT_FINITE.format(column="time", value=py_scalar(t[r]))),
            ],
        )
    except (ValueError, TypeError, OverflowError) as err:
        if isinstance(err, DataFormatError):
            raise
        frame = read_csv(p, file, header=None, names=list(MESSAGE_COLUMNS), index_col=False, dtype=str, **columns)
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
    sided = (typ >= 1) & (typ <= 5)
    book_event = (typ >= 1) & (typ <= 4)  # refers to a real order id; 5-7 may carry negative pseudo ids
    back = np.r_[False, np.diff(time) < 0]
    raise_first(
        file,
        first_line,
        [
            negative_check(time, "time"),
            (back, lambda r: TIME_DECREASES.format(value=py_scalar(time[r]), previous=py_scalar(time[r - 1]))),
            ((typ < 1) | (typ > 7), lambda r: BAD_EVENT_TYPE.format(value=py_scalar(typ[r]))),
            (book_event & (oid < 0), lambda r: NEGATIVE_ID.format(type=py_scalar(typ[r]), value=py_scalar(oid[r]))),
            negative_check(size, "size"),
            (trading & (size == 0), lambda r: ZERO_SIZE.format(type=py_scalar(typ[r]))),
            (trading & (price <= 0), lambda r: NOT_POSITIVE.format(column="price", value=py_scalar(price[r]))),
            (sided & (np.abs(direction) != 1), lambda r: BAD_DIRECTION.format(value=py_scalar(direction[r]))),
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
            (
                sz < 0,
                lambda r, lv, side=side, sz=sz: NEGATIVE.format(column=f"{side}_sz{lv + 1}",
                                                                value=py_scalar(sz[r, lv])),
            ),
            (
                empty & (sz != 0),
                lambda r, lv, side=side, sz=sz, e=empty_px: EMPTY_LEVEL_SIZE.format(
                    side=side, level=lv + 1, price=e, size=py_scalar(sz[r, lv])
                ),
            ),
            (
                filled & (px <= 0),
                lambda r, lv, side=side, px=px: NOT_POSITIVE.format(column=f"{side}_px{lv + 1}",
                                                                    value=py_scalar(px[r, lv])),
            ),
            (
                filled & (sz <= 0),
                lambda r, lv, side=side, sz=sz: NOT_POSITIVE.format(column=f"{side}_sz{lv + 1}",
                                                                    value=py_scalar(sz[r, lv])),
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
                    price=py_scalar(px[r, lv]),
                    order="higher" if sign > 0 else "lower",
                    previous=lv,
                    previous_price=py_scalar(px[r, lv - 1]),
                ),
            ),
        )
        for mask, describe in masks:
            checks.append((mask.any(axis=1), lambda r, m=mask, d=describe: d(r, int(np.argmax(m[r])))))
    crossed = (ask_px[:, 0] != EMPTY_ASK) & (bid_px[:, 0] != EMPTY_BID) & (bid_px[:, 0] >= ask_px[:, 0])
    checks.append((crossed, lambda r: CROSSED_BOOK.format(bid=py_scalar(bid_px[r, 0]), ask=py_scalar(ask_px[r, 0]))))
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
    path_messages: str | os.PathLike[str],
    path_orderbook: str | os.PathLike[str] | None = None,
    *,
    extra_columns: str = "error",
) -> LOBSTERData:
    """Read a LOBSTER message file and, optionally, its orderbook file.

    Args:
        path_messages: the ``*_message_*.csv`` file.
        path_orderbook: the matching ``*_orderbook_*.csv`` file (optional; when
            given, replays start from its first row, see :func:`~janus_env.data.lobster_replay.initial_book`).
        extra_columns: ``"error"`` or ``"ignore"`` columns after the sixth of
            the message file (see :func:`read_lobster_messages`).

    Raises:
        FileNotFoundError: a file does not exist.
        ValueError: a bad ``extra_columns``.
        DataFormatError: a bad row (see :func:`read_lobster_messages`,
            :func:`read_lobster_orderbook`) or row counts that differ.
    """
    frame = read_lobster_messages(path_messages, extra_columns=extra_columns)
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
