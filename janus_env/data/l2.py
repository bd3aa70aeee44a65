"""Level-2 book snapshots from CSV files: absolute price/size columns or TradeMaster's relative layout.

One row per snapshot. Two layouts are recognised from the header (column names
matched case-insensitively); :func:`read_l2_snapshots` picks the one present.

**Absolute levels** (exchange dumps, Tardis ``book_snapshot_*``, our own
:func:`l2_frame`): a price and a size column per side and level,

=========================================  ==========================================================
column                                     meaning
=========================================  ==========================================================
``bid1_price``, ``bid1_size``, ...         level 1 (best) bid price (currency) and size (shares)
``ask1_price``, ``ask1_size``, ...         level 1 ask price and size; levels 2, 3, ... likewise
``time`` / ``timestamp`` / ... (optional)  snapshot time (ISO 8601 or Unix epoch s/ms/µs/ns)
``buy_volume`` / ``sell_volume`` (opt.)    shares bought / sold by buyer- / seller-initiated trades
                                           in the interval that ended at this snapshot (else 0)
=========================================  ==========================================================

Level names may put the number before or after the field and use any
separator or none: ``bid1_price``, ``bid_price_1``, ``bidprice1``,
``bid_px_0``, ``asks[0].price``; the field is ``price`` or ``px`` for prices and
``size``, ``qty``, ``quantity``, ``volume``, ``vol`` or ``amount`` for sizes.
Levels are numbered from 0 or 1 (the lowest number in the file is the best
level). A level with size 0 is missing (its price is not used); every cell
must still be a finite number. The mid is ``(best bid + best ask) / 2``.

**Relative (TradeMaster / Crypto-LOB)**:

=============================  ===============================================================
column                         meaning
=============================  ===============================================================
``system_time`` (optional)     snapshot time (ISO 8601, timezone → UTC)
``midpoint``                   mid price m (currency)
``spread``                     best ask − best bid (not used: recomputed from the levels)
``buys`` / ``sells``           notional traded by buyer- / seller-initiated orders in the
                               interval that ended at this snapshot
``bids_distance_i``            relative distance of bid level i from the mid (< 0)
``asks_distance_i``            relative distance of ask level i from the mid (> 0)
``bids_notional_i``            resting notional at bid level i (currency)
``asks_notional_i``            resting notional at ask level i
``*_cancel_notional_i``        notional cancelled / added / hit at the level in the interval
``*_limit_notional_i``         (read by nobody here)
``*_market_notional_i``
=============================  ===============================================================

Level prices are ``p = m · (1 + distance)`` and sizes in shares ``q = notional / p``;
traded volumes in shares are ``buys / m`` and ``sells / m``. A level with zero
notional is missing.

In both layouts missing levels become NaN price and 0 quantity, the filled
levels of each side are packed best-first, and rows are returned oldest first.
Other column names can be mapped with ``columns=`` (:data:`COLUMN_KEYS`): the
level keys take a template with ``{level}``, e.g.
``columns={"bid_price": "BidPx{level}", "bid_size": "BidSz{level}", "ask_price": "AskPx{level}",
"ask_size": "AskSz{level}"}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from janus_env.checks import check_int
from janus_env.data.validation import (
    A_NEGATIVE,
    A_NOT_FINITE,
    CROSSED_BOOK,
    EMPTY_FILE,
    FILE_ERROR,
    MISSING_COLUMNS,
    NEGATIVE,
    NOT_POSITIVE,
    UNSORTED_LEVELS,
    DataFormatError,
    as_array,
    check_file,
    finite_checks,
    match_columns,
    negative_check,
    numeric_columns,
    order_by_time,
    parse_times,
    positive_check,
    py_scalar,
    raise_first,
    raise_first_array,
    read_csv,
    time_checks,
)

DISTANCE_BELOW_MINUS_ONE = "column {column!r} is <= -1 ({value!r}): the level price would not be positive"
ONE_SIDED = "no {side} level with size > 0 (a one-sided book has no mid price)"
NO_LEVELS = ("bids_distance_0 (relative layout) or bid1_price, bid1_size, ask1_price, ask1_size "
             "(absolute layout, see janus_env.data.l2)")
BAD_COLUMNS = "Expected `columns` to be a mapping of field -> column name (keys in {}), got {!r}"
BAD_COLUMNS_KEY = "Expected `columns` keys in {}, got {!r}"
BAD_TEMPLATE = "Expected `columns[{!r}]` to contain '{{level}}', got {!r}"
TEMPLATES_TOGETHER = "Expected all of `columns` {} (level templates) or none, got {}"
VOLUMES_TOGETHER = "{file}: found {found!r} but no {other!r} column; give both or neither"

# array validation (L2Snapshots built from arrays)
A_BOOK_FIELDS = ("bid price", "bid qty", "ask price", "ask qty")
A_PRICE_FOR_QTY = "{field} is {value!r} for a level holding {qty!r}"
A_AFTER_EMPTY = "{side} level holds {qty!r} after an empty level (filled levels come first)"
A_UNSORTED = "{side} price {price!r} is not {order} than the level above's {previous!r}"
A_CROSSED = "crossed book: best bid {bid!r} >= best ask {ask!r}"
A_NO_LEVELS = "Expected `L2Snapshots.book` of shape (n, levels >= 1, 4), got {}"

TIME_ALIASES = ("system_time", "time", "timestamp", "datetime", "date")
VOLUME_ALIASES = {"buy_volume": ("buy_volume", "buy_qty", "buy_size"),
                  "sell_volume": ("sell_volume", "sell_qty", "sell_size")}  # fmt: skip
LEVEL_KEYS = ("bid_price", "bid_size", "ask_price", "ask_size")
COLUMN_KEYS = ("time", "midpoint", "buys", "sells", "buy_volume", "sell_volume") + LEVEL_KEYS
"""Keys of the ``columns`` mapping of :func:`read_l2_snapshots`."""

_SIZE_WORDS = "size|qty|quantity|volume|vol|amount"
_FIELD = rf"price|px|{_SIZE_WORDS}"
_LEVEL_COLUMN = re.compile(
    rf"^(?P<side>bid|ask)s?[\W_]*(?:(?P<n1>\d+)[\W_]*(?P<f1>{_FIELD})|(?P<f2>{_FIELD})[\W_]*(?P<n2>\d+))[\W_]*$"
)


@dataclass(frozen=True)
class L2Snapshots:
    """A validated series of L2 snapshots, oldest first.

    Snapshots built from arrays are validated like a file (``ValueError``
    naming the field and index, e.g. ``"L2Snapshots.book[3, 1, 1]: bid qty
    negative: -2.0"``; ``TypeError`` for arrays that cannot be converted):
    midpoint finite and > 0; traded volumes finite and >= 0; quantities
    finite and >= 0; a level with quantity > 0 has a finite price > 0; filled
    levels come first on each side, bid prices strictly decrease and ask
    prices strictly increase; best bid < best ask; times (when given) without
    NaT and strictly increasing. A missing level is quantity 0 (price NaN).

    Attributes:
        time: ``datetime64[ns]`` snapshot times (None when the file has none).
        midpoint: float64 ``(n,)`` mid prices.
        book: float64 ``(n, L, 4)`` rows (bid_px, bid_qty, ask_px, ask_qty) in
            currency and shares; NaN price / 0 quantity for missing levels.
        buy_volume: float64 ``(n,)`` shares bought by buyer-initiated trades in
            the interval that ended at each snapshot.
        sell_volume: float64 ``(n,)`` shares sold likewise.
        path: the file read.
    """

    time: np.ndarray | None
    midpoint: np.ndarray
    book: np.ndarray
    buy_volume: np.ndarray
    sell_volume: np.ndarray
    path: str = ""

    def __post_init__(self) -> None:
        owner = "L2Snapshots"
        book = as_array(owner, "book", self.book, np.float64, (None, None, 4))
        if book.shape[1] < 1:
            raise ValueError(A_NO_LEVELS.format(book.shape))
        n = book.shape[0]
        mid = as_array(owner, "midpoint", self.midpoint, np.float64, (n,), like="book")
        buy = as_array(owner, "buy_volume", self.buy_volume, np.float64, (n,), like="book")
        sell = as_array(owner, "sell_volume", self.sell_volume, np.float64, (n,), like="book")
        time = None if self.time is None else as_array(owner, "time", self.time, "datetime64[ns]", (n,), like="book")
        for name, value in (("book", book), ("midpoint", mid), ("buy_volume", buy), ("sell_volume", sell),
                            ("time", time)):  # fmt: skip
            object.__setattr__(self, name, value)
        checks = finite_checks("midpoint", mid, positive=True)
        checks += finite_checks("buy_volume", buy, nonnegative=True)
        checks += finite_checks("sell_volume", sell, nonnegative=True)
        checks += _book_checks(book)
        if time is not None:
            checks += time_checks("time", time)
        raise_first_array(owner, checks)

    def __len__(self) -> int:
        return int(self.book.shape[0])

    @property
    def n_levels(self) -> int:
        """Levels per side."""
        return int(self.book.shape[1])

    def head(self, n: int) -> L2Snapshots:
        """The first (oldest) ``n`` snapshots."""
        return replace(
            self, time=None if self.time is None else self.time[:n], midpoint=self.midpoint[:n],
            book=self.book[:n], buy_volume=self.buy_volume[:n], sell_volume=self.sell_volume[:n],
        )  # fmt: skip

    def levels(self, n_levels: int) -> L2Snapshots:
        """The best ``n_levels`` per side only."""
        return replace(self, book=self.book[:, :n_levels])


def _book_checks(book: np.ndarray) -> list:
    """Array checks of a ``(n, L, 4)`` book (see :class:`L2Snapshots`)."""
    checks = []
    n_levels = book.shape[1]
    for side, px_col, q_col, sign in (("bid", 0, 1, -1), ("ask", 2, 3, 1)):
        px, qty = book[:, :, px_col], book[:, :, q_col]
        field_q, field_px = A_BOOK_FIELDS[q_col], A_BOOK_FIELDS[px_col]
        finite_q = np.isfinite(qty)
        filled = finite_q & (qty > 0)
        checks.append(("book", _at(~finite_q, q_col), lambda i, f=field_q: f"{f} " + A_NOT_FINITE.format(
            value=py_scalar(book[i]))))  # fmt: skip
        checks.append(("book", _at(finite_q & (qty < 0), q_col), lambda i, f=field_q: f"{f} " + A_NEGATIVE.format(
            value=py_scalar(book[i]))))  # fmt: skip
        with np.errstate(invalid="ignore"):
            bad_px = filled & ~(np.isfinite(px) & (px > 0))
        checks.append(("book", _at(bad_px, px_col), lambda i, f=field_px, q=q_col: A_PRICE_FOR_QTY.format(
            field=f, value=py_scalar(book[i]), qty=py_scalar(book[i[0], i[1], q]))))  # fmt: skip
        checks.append(("book", _at(np.isinf(px), px_col), lambda i, f=field_px: f"{f} " + A_NOT_FINITE.format(
            value=py_scalar(book[i]))))  # fmt: skip
        after_empty = filled & (np.cumsum(~filled, axis=1) > 0)
        checks.append(("book", _at(after_empty, q_col), lambda i, s=side: A_AFTER_EMPTY.format(
            side=s, qty=py_scalar(book[i]))))  # fmt: skip
        if n_levels > 1:
            with np.errstate(invalid="ignore"):
                worse = (px[:, 1:] - px[:, :-1]) * sign > 0
            unsorted = np.pad(filled[:, 1:] & filled[:, :-1] & ~worse, ((0, 0), (1, 0)))
            checks.append(("book", _at(unsorted, px_col), lambda i, s=side, c=px_col: A_UNSORTED.format(
                side=s, price=py_scalar(book[i]), order="higher" if c == 2 else "lower",
                previous=py_scalar(book[i[0], i[1] - 1, c]))))  # fmt: skip
    both = (book[:, 0, 1] > 0) & (book[:, 0, 3] > 0)
    with np.errstate(invalid="ignore"):
        crossed = both & (book[:, 0, 0] >= book[:, 0, 2])
    checks.append(("book", _at(crossed[:, None], 0), lambda i: A_CROSSED.format(
        bid=py_scalar(book[i[0], 0, 0]), ask=py_scalar(book[i[0], 0, 2]))))  # fmt: skip
    return checks


def _at(mask: np.ndarray, column: int) -> np.ndarray:
    """A ``(n, L)`` mask placed in ``column`` of a ``(n, L, 4)`` mask."""
    out = np.zeros(mask.shape + (4,), dtype=bool)
    out[..., column] = mask
    return out


def _level_count(columns: list[str]) -> int:
    found = {int(m.group(1)) for c in columns if (m := re.fullmatch(r"bids_distance_(\d+)", str(c).strip().lower()))}
    n = 0
    while n in found:
        n += 1
    return n


def level_columns(columns: list[str], templates: dict[str, str]) -> tuple[dict[str, list[str]], int]:
    """``({level key: [column per level, best first]}, number of the best level)`` of an absolute header.

    Only levels with all four columns, consecutive from the lowest number, count.
    """
    by_key: dict[str, dict[int, str]] = {key: {} for key in LEVEL_KEYS}
    if templates:
        lookup = {c.strip().lower(): c for c in columns}
        for key, template in templates.items():
            for level in range(0, len(columns) + 2):
                name = template.format(level=level).strip().lower()
                if name in lookup:
                    by_key[key][level] = lookup[name]
    else:
        for name in columns:
            m = _LEVEL_COLUMN.match(str(name).strip().lower())
            if m is None:
                continue
            field = m.group("f1") or m.group("f2")
            level = int(m.group("n1") or m.group("n2"))
            key = f"{m.group('side')}_{'price' if field in ('price', 'px') else 'size'}"
            by_key[key].setdefault(level, name)
    if not all(by_key.values()):
        return {}, 0
    base = min(min(levels) for levels in by_key.values())
    n = 0
    while all(base + n in levels for levels in by_key.values()):
        n += 1
    return {key: [by_key[key][base + i] for i in range(n)] for key in LEVEL_KEYS}, base


def _column_mapping(columns: Mapping[str, str] | None) -> dict[str, str]:
    if columns is None:
        return {}
    if not isinstance(columns, Mapping) or not all(isinstance(v, str) for v in columns.values()):
        raise TypeError(BAD_COLUMNS.format(list(COLUMN_KEYS), columns))
    mapping = {str(k): v for k, v in columns.items()}
    for key, value in mapping.items():
        if key not in COLUMN_KEYS:
            raise ValueError(BAD_COLUMNS_KEY.format(list(COLUMN_KEYS), key))
        if key in LEVEL_KEYS and "{level}" not in value:
            raise ValueError(BAD_TEMPLATE.format(key, value))
    given = [k for k in LEVEL_KEYS if k in mapping]
    if given and len(given) != len(LEVEL_KEYS):
        raise ValueError(TEMPLATES_TOGETHER.format(list(LEVEL_KEYS), given))
    return mapping


def _pack(price: np.ndarray, qty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move filled levels (qty > 0) to the front of each row, keeping their order."""
    empty = qty <= 0
    order = np.argsort(empty, axis=1, kind="stable")
    price = np.take_along_axis(np.where(empty, np.nan, price), order, axis=1)
    qty = np.take_along_axis(np.where(empty, 0.0, qty), order, axis=1)
    return price, qty


def read_l2_snapshots(
    path: str | os.PathLike[str], n_levels: int | None = None, *, columns: Mapping[str, str] | None = None
) -> L2Snapshots:
    """Read and validate an L2 snapshot CSV in either layout of the module docstring.

    Args:
        path: the CSV file (header on line 1; a leading unnamed index column is ignored).
        n_levels: levels to keep (default: every level in the file).
        columns: file column names for ``time``, ``midpoint``, ``buys``,
            ``sells`` (relative layout), ``buy_volume``, ``sell_volume``
            (absolute layout) or level templates ``bid_price``, ``bid_size``,
            ``ask_price``, ``ask_size`` (all four, each with ``{level}``,
            e.g. ``"BidPx{level}"``; they select the absolute layout).

    Returns:
        :class:`L2Snapshots`, sorted oldest first.

    Raises:
        FileNotFoundError: the file does not exist.
        TypeError: ``columns`` is not a mapping of strings; ``n_levels`` is not an int.
        ValueError: ``n_levels`` outside ``[1, levels in the file]``; a bad
            ``columns`` key or template.
        DataFormatError: no level columns, or missing columns (all of them
            listed); an empty, NaN, non-numeric or infinite cell; a negative
            size, traded volume or notional; a price <= 0 at a level with
            size > 0; midpoint <= 0 or a distance <= -1 (relative); a side
            with no level (absolute); bid levels not strictly decreasing or
            ask levels not strictly increasing in price; a crossed book (best
            bid >= best ask); a bad, repeated or out-of-order time.
    """
    mapping = _column_mapping(columns)
    p = check_file(path)
    file = os.fspath(path)
    frame = read_csv(p, file)
    names = [str(c) for c in frame.columns]
    templates = {k: mapping[k] for k in LEVEL_KEYS if k in mapping}
    levels, base = level_columns(names, templates)
    absolute = bool(templates) or not _level_count(names)
    if absolute and not levels:
        missing = "/".join(templates.values()) if templates else NO_LEVELS
        problem = MISSING_COLUMNS.format(missing=missing, found=", ".join(names))
        raise DataFormatError(FILE_ERROR.format(file=file, problem=problem))
    available = len(levels["bid_price"]) if absolute else _level_count(names)
    n_levels = available if n_levels is None else check_int("n_levels", n_levels, low=1, high=available)
    if absolute:
        read = _read_absolute
        extra = {"levels": {k: v[:n_levels] for k, v in levels.items()}, "base": base}
    else:
        read = _read_relative
        extra = {"n_levels": n_levels}
    if "time" in mapping:
        time_col: str | None = match_columns(names, {"time": (mapping["time"],)}, file)["time"]
    else:
        time_col = next((c for c in names if c.strip().lower() in TIME_ALIASES), None)
    book, mid, buy, sell = read(frame, names, mapping, file, **extra)
    first_line = 2
    times = None
    order = np.arange(len(frame))
    if time_col is not None:
        times = parse_times(frame[time_col], time_col, file, first_line)
        order = order_by_time(times, file, first_line)
        times = times[order]
    return L2Snapshots(
        time=times,
        midpoint=mid[order].copy(),
        book=np.ascontiguousarray(book[order]),
        buy_volume=buy[order],
        sell_volume=sell[order],
        path=file,
    )


def _read_relative(frame: pd.DataFrame, names: list[str], mapping: dict[str, str], file: str, *,
                   n_levels: int) -> tuple[np.ndarray, ...]:  # fmt: skip
    """Book, midpoint and traded shares of the relative (TradeMaster) layout."""
    required: dict[str, tuple[str, ...]] = {name: (mapping.get(name, name),) for name in ("midpoint", "buys", "sells")}
    for side in ("bids", "asks"):
        for kind in ("distance", "notional"):
            for i in range(n_levels):
                name = f"{side}_{kind}_{i}"
                required[name] = (name,)
    cols = match_columns(names, required, file)
    if len(frame) == 0:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE))
    first_line = 2
    values = numeric_columns(frame, [cols[k] for k in required], file, first_line, labels=list(required))
    v = {k: values[cols[k]] for k in required}
    mid = v["midpoint"]
    bid_d = np.column_stack([v[f"bids_distance_{i}"] for i in range(n_levels)])
    ask_d = np.column_stack([v[f"asks_distance_{i}"] for i in range(n_levels)])
    bid_n = np.column_stack([v[f"bids_notional_{i}"] for i in range(n_levels)])
    ask_n = np.column_stack([v[f"asks_notional_{i}"] for i in range(n_levels)])
    bid_px = mid[:, None] * (1.0 + bid_d)
    ask_px = mid[:, None] * (1.0 + ask_d)

    checks = [positive_check(mid, "midpoint"), negative_check(v["buys"], "buys"), negative_check(v["sells"], "sells")]
    for side, dist, notional, px, sign in (("bids", bid_d, bid_n, bid_px, -1), ("asks", ask_d, ask_n, ask_px, 1)):
        low = dist <= -1
        neg = notional < 0
        unsorted = np.pad((px[:, 1:] - px[:, :-1]) * sign <= 0, ((0, 0), (1, 0)))
        checks.append(
            (low.any(axis=1), lambda r, s=side, d=dist, m=low: DISTANCE_BELOW_MINUS_ONE.format(
                column=f"{s}_distance_{int(np.argmax(m[r]))}", value=py_scalar(d[r, int(np.argmax(m[r]))])))
        )  # fmt: skip
        checks.append(
            (neg.any(axis=1), lambda r, s=side, x=notional, m=neg: NEGATIVE.format(
                column=f"{s}_notional_{int(np.argmax(m[r]))}", value=py_scalar(x[r, int(np.argmax(m[r]))])))
        )  # fmt: skip
        checks.append(
            (unsorted.any(axis=1), lambda r, s=side, x=px, m=unsorted, sign=sign: UNSORTED_LEVELS.format(
                side=s[:-1], level=int(np.argmax(m[r])), price=py_scalar(x[r, int(np.argmax(m[r]))]),
                order="higher" if sign > 0 else "lower", previous=int(np.argmax(m[r])) - 1,
                previous_price=py_scalar(x[r, int(np.argmax(m[r])) - 1])))
        )  # fmt: skip
    crossed = bid_px[:, 0] >= ask_px[:, 0]
    checks.append((crossed, lambda r: CROSSED_BOOK.format(bid=py_scalar(bid_px[r, 0]), ask=py_scalar(ask_px[r, 0]))))
    raise_first(file, first_line, checks)
    b_px, b_q = _pack(bid_px, bid_n / bid_px)
    a_px, a_q = _pack(ask_px, ask_n / ask_px)
    book = np.stack([b_px, b_q, a_px, a_q], axis=2)
    return book, mid, v["buys"] / mid, v["sells"] / mid


def _read_absolute(frame: pd.DataFrame, names: list[str], mapping: dict[str, str], file: str, *,
                   levels: dict[str, list[str]], base: int) -> tuple[np.ndarray, ...]:  # fmt: skip
    """Book, midpoint and traded shares of the absolute layout (columns already found)."""
    volume_cols: dict[str, str] = {}
    for key, aliases in VOLUME_ALIASES.items():
        wanted = (mapping[key],) if key in mapping else aliases
        if key in mapping:
            volume_cols[key] = match_columns(names, {key: wanted}, file)[key]
        else:
            found = next((c for a in aliases for c in names if c.strip().lower() == a), None)
            if found is not None:
                volume_cols[key] = found
    if len(volume_cols) == 1:
        (key, found), = volume_cols.items()
        other = "sell_volume" if key == "buy_volume" else "buy_volume"
        raise DataFormatError(VOLUMES_TOGETHER.format(file=file, found=found, other=other))
    if len(frame) == 0:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE))
    first_line = 2
    ordered = [c for key in LEVEL_KEYS for c in levels[key]] + list(volume_cols.values())
    values = numeric_columns(frame, ordered, file, first_line)
    n = len(frame)
    checks = []
    arrays = {}
    for side, sign in (("bid", -1), ("ask", 1)):
        px_names, q_names = levels[f"{side}_price"], levels[f"{side}_size"]
        px = np.column_stack([values[c] for c in px_names])
        qty = np.column_stack([values[c] for c in q_names])
        arrays[side] = (px, qty)
        filled = qty > 0
        neg = qty < 0
        bad_px = filled & (px <= 0)
        position = np.where(filled, np.arange(px.shape[1]), -1)
        above = np.pad(np.maximum.accumulate(position, axis=1)[:, :-1], ((0, 0), (1, 0)), constant_values=-1)
        above_px = np.take_along_axis(px, np.maximum(above, 0), axis=1)
        unsorted = filled & (above >= 0) & ((px - above_px) * sign <= 0)
        first = lambda r, m: int(np.argmax(m[r]))  # noqa: E731
        checks.append((neg.any(axis=1), lambda r, m=neg, x=qty, c=q_names: NEGATIVE.format(
            column=c[first(r, m)], value=py_scalar(x[r, first(r, m)]))))  # fmt: skip
        checks.append((bad_px.any(axis=1), lambda r, m=bad_px, x=px, c=px_names: NOT_POSITIVE.format(
            column=c[first(r, m)], value=py_scalar(x[r, first(r, m)]))))  # fmt: skip
        checks.append((~filled.any(axis=1), lambda r, s=side: ONE_SIDED.format(side=s)))
        checks.append((unsorted.any(axis=1), lambda r, m=unsorted, x=px, a=above, s=side, sign=sign:
                       UNSORTED_LEVELS.format(side=s, level=base + first(r, m), price=py_scalar(x[r, first(r, m)]),
                                              order="higher" if sign > 0 else "lower",
                                              previous=base + int(a[r, first(r, m)]),
                                              previous_price=py_scalar(x[r, int(a[r, first(r, m)])]))))  # fmt: skip
    buy = values[volume_cols["buy_volume"]] if volume_cols else np.zeros(n)
    sell = values[volume_cols["sell_volume"]] if volume_cols else np.zeros(n)
    for key, x in (("buy_volume", buy), ("sell_volume", sell)):
        if volume_cols:
            checks.append(negative_check(x, volume_cols[key]))
    b_px, b_q = _pack(*arrays["bid"])
    a_px, a_q = _pack(*arrays["ask"])
    crossed = (b_q[:, 0] > 0) & (a_q[:, 0] > 0) & (b_px[:, 0] >= a_px[:, 0])
    checks.append((crossed, lambda r: CROSSED_BOOK.format(bid=py_scalar(b_px[r, 0]), ask=py_scalar(a_px[r, 0]))))
    raise_first(file, first_line, checks)
    book = np.stack([b_px, b_q, a_px, a_q], axis=2)
    return book, 0.5 * (b_px[:, 0] + a_px[:, 0]), buy, sell


def l2_frame(snapshots: L2Snapshots) -> pd.DataFrame:
    """Flat view of snapshots: one row each, columns ``bid_px_i, bid_qty_i, ask_px_i, ask_qty_i``.

    The frame written with ``to_csv(index=False)`` reads back with
    :func:`read_l2_snapshots` (absolute layout), except that NaN prices of
    missing levels must be written as a number (``fillna(0)``).
    """
    n, n_levels, _ = snapshots.book.shape
    cols = [f"{name}_{i}" for i in range(n_levels) for name in ("bid_px", "bid_qty", "ask_px", "ask_qty")]
    frame = pd.DataFrame(snapshots.book.reshape(n, 4 * n_levels), columns=cols)
    frame.insert(0, "midpoint", snapshots.midpoint)
    frame["buy_volume"] = snapshots.buy_volume
    frame["sell_volume"] = snapshots.sell_volume
    if snapshots.time is not None:
        frame.insert(0, "time", snapshots.time)
    return frame
