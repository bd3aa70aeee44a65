"""Level-2 book snapshots in the TradeMaster / Crypto-LOB CSV layout.

One row per snapshot; the columns this loader uses (matched case-insensitively):

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
notional is missing (NaN price, 0 quantity); the filled levels of each side are
packed best-first.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from janus_env.data.validation import (
    CROSSED_BOOK,
    FILE_ERROR,
    MISSING_COLUMNS,
    NEGATIVE,
    UNSORTED_LEVELS,
    DataFormatError,
    EMPTY_FILE,
    _py,
    check_file,
    match_columns,
    negative_check,
    numeric_columns,
    order_by_time,
    parse_times,
    positive_check,
    raise_first,
    read_csv,
)

BAD_N_LEVELS = "Expected `n_levels` in [1, {}] (levels in the file), got {!r}"
DISTANCE_BELOW_MINUS_ONE = "column {column!r} is <= -1 ({value!r}): the level price would not be positive"

TIME_ALIASES = ("system_time", "time", "timestamp", "datetime", "date")


@dataclass(frozen=True)
class L2Snapshots:
    """A validated series of L2 snapshots, oldest first.

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


def _level_count(columns: list[str]) -> int:
    found = {int(m.group(1)) for c in columns if (m := re.fullmatch(r"bids_distance_(\d+)", str(c).strip().lower()))}
    n = 0
    while n in found:
        n += 1
    return n


def _pack(price: np.ndarray, qty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move filled levels (qty > 0) to the front of each row, keeping their order."""
    empty = qty <= 0
    order = np.argsort(empty, axis=1, kind="stable")
    price = np.take_along_axis(np.where(empty, np.nan, price), order, axis=1)
    qty = np.take_along_axis(np.where(empty, 0.0, qty), order, axis=1)
    return price, qty


def read_l2_snapshots(path: str | os.PathLike[str], n_levels: int | None = None) -> L2Snapshots:
    """Read and validate an L2 snapshot CSV (see the module docstring for the layout).

    Args:
        path: the CSV file (header on line 1; a leading unnamed index column is ignored).
        n_levels: levels to keep (default: every level in the file).

    Returns:
        :class:`L2Snapshots`, sorted oldest first.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: ``n_levels`` outside ``[1, levels in the file]``.
        DataFormatError: missing columns (all of them listed); an empty,
            non-numeric or infinite cell; midpoint <= 0; negative traded or
            resting notional; a distance <= -1; bid levels not strictly
            decreasing or ask levels not strictly increasing in price; a crossed
            book (best bid >= best ask); a bad, repeated or out-of-order time.
    """
    p = check_file(path)
    file = os.fspath(path)
    frame = read_csv(p, file)
    columns = [str(c) for c in frame.columns]
    available = _level_count(columns)
    if available == 0:
        problem = MISSING_COLUMNS.format(missing="bids_distance_0", found=", ".join(columns))
        raise DataFormatError(FILE_ERROR.format(file=file, problem=problem))
    if n_levels is None:
        n_levels = available
    if isinstance(n_levels, bool) or not isinstance(n_levels, (int, np.integer)) or not 1 <= n_levels <= available:
        raise ValueError(BAD_N_LEVELS.format(available, n_levels))
    n_levels = int(n_levels)
    required: dict[str, tuple[str, ...]] = {name: (name,) for name in ("midpoint", "buys", "sells")}
    for side in ("bids", "asks"):
        for kind in ("distance", "notional"):
            for i in range(n_levels):
                name = f"{side}_{kind}_{i}"
                required[name] = (name,)
    names = match_columns(columns, required, file)
    time_col = next((c for c in columns if c.strip().lower() in TIME_ALIASES), None)
    if len(frame) == 0:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE))
    first_line = 2
    values = numeric_columns(frame, [names[k] for k in required], file, first_line, labels=list(required))
    v = {k: values[names[k]] for k in required}
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
                column=f"{s}_distance_{int(np.argmax(m[r]))}", value=_py(d[r, int(np.argmax(m[r]))])))
        )  # fmt: skip
        checks.append(
            (neg.any(axis=1), lambda r, s=side, x=notional, m=neg: NEGATIVE.format(
                column=f"{s}_notional_{int(np.argmax(m[r]))}", value=_py(x[r, int(np.argmax(m[r]))])))
        )  # fmt: skip
        checks.append(
            (unsorted.any(axis=1), lambda r, s=side, x=px, m=unsorted, sign=sign: UNSORTED_LEVELS.format(
                side=s[:-1], level=int(np.argmax(m[r])), price=_py(x[r, int(np.argmax(m[r]))]),
                order="higher" if sign > 0 else "lower", previous=int(np.argmax(m[r])) - 1,
                previous_price=_py(x[r, int(np.argmax(m[r])) - 1])))
        )  # fmt: skip
    crossed = bid_px[:, 0] >= ask_px[:, 0]
    checks.append((crossed, lambda r: CROSSED_BOOK.format(bid=_py(bid_px[r, 0]), ask=_py(ask_px[r, 0]))))
    raise_first(file, first_line, checks)

    times = None
    order = np.arange(len(frame))
    if time_col is not None:
        times = parse_times(frame[time_col], time_col, file, first_line)
        order = order_by_time(times, file, first_line)
        times = times[order]
    b_px, b_q = _pack(bid_px, bid_n / bid_px)
    a_px, a_q = _pack(ask_px, ask_n / ask_px)
    book = np.stack([b_px, b_q, a_px, a_q], axis=2)[order]
    return L2Snapshots(
        time=times,
        midpoint=mid[order].copy(),
        book=np.ascontiguousarray(book),
        buy_volume=(v["buys"] / mid)[order],
        sell_volume=(v["sells"] / mid)[order],
        path=file,
    )


def l2_frame(snapshots: L2Snapshots) -> pd.DataFrame:
    """Flat view of snapshots: one row each, columns ``bid_px_i, bid_qty_i, ask_px_i, ask_qty_i``."""
    n, n_levels, _ = snapshots.book.shape
    cols = [f"{name}_{i}" for i in range(n_levels) for name in ("bid_px", "bid_qty", "ask_px", "ask_qty")]
    frame = pd.DataFrame(snapshots.book.reshape(n, 4 * n_levels), columns=cols)
    frame.insert(0, "midpoint", snapshots.midpoint)
    frame["buy_volume"] = snapshots.buy_volume
    frame["sell_volume"] = snapshots.sell_volume
    if snapshots.time is not None:
        frame.insert(0, "time", snapshots.time)
    return frame
