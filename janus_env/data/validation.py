"""Shared validation for the historical data loaders.

Every loader reads with pandas and then validates whole columns at once
(vectorized masks, no Python loop per row). A bad row raises
:class:`DataFormatError` whose message names the file, the 1-based line of the
file the row came from (header and preamble lines counted) and what is wrong.
When several rows are bad the *first* one in the file is reported; within a row
the first failing check (in the order the loader lists them) wins. Loaders that
keep only some rows (one asset of a long file) pass the file line of every kept
row (an int array) instead of the line of row 0.

Arrays given to the data classes directly (``OHLCVBars(...)``,
``L2Snapshots(...)``) are held to the same rules and raise ``ValueError``
naming the class, the field and the index (:data:`ARRAY_ERROR`)::

    "OHLCVBars.close[3]: not finite: nan"

Messages are module-level constants so tests can match them literally::

    ROW_ERROR.format(file="f.csv", line=7, problem=NEGATIVE.format(column="size", value=-3.0))
    # "f.csv, line 7: column 'size' is negative: -3.0"
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------- messages

MISSING_FILE = "Data file not found: {}"
ROW_ERROR = "{file}, line {line}: {problem}"
FILE_ERROR = "{file}: {problem}"

NON_NUMERIC = "column {column!r} is not a number: {value!r}"
MISSING_VALUE = "column {column!r} is empty or NaN"
NOT_FINITE = "column {column!r} is not finite: {value!r}"
NOT_INTEGER = "column {column!r} is not an integer: {value!r}"
NEGATIVE = "column {column!r} is negative: {value!r}"
NOT_POSITIVE = "column {column!r} must be > 0, got {value!r}"
HIGH_BELOW_LOW = "high {high!r} < low {low!r}"
OUTSIDE_RANGE = "{column} {value!r} is outside [low, high] = [{low!r}, {high!r}]"
CROSSED_BOOK = "crossed book: best bid {bid!r} >= best ask {ask!r}"
UNSORTED_LEVELS = "{side} level {level} price {price!r} is not {order} than level {previous}'s {previous_price!r}"
BAD_TIME = "column {column!r} is not a date/time: {value!r}"
TIME_DECREASES = "time {value!r} is earlier than the previous line's {previous!r} (times must not decrease)"
NOT_MONOTONIC = "time {value!r} breaks the file's {order} order (previous line: {previous!r})"
DUPLICATE_TIME = "time {value!r} repeats the previous line's time"
MISSING_COLUMNS = "missing column(s) {missing} (matched case-insensitively); found {found}"
EMPTY_FILE = "no data rows"
WRONG_FIELD_COUNT = "expected {expected} columns, found {found}"
UNREADABLE = "cannot be parsed as CSV: {reason}"

ARRAY_ERROR = "{owner}.{field}[{index}]: {problem}"
ARRAY_SHAPE = "Expected `{owner}.{field}` of shape {expected}, got {shape}"
ARRAY_SHAPE_LIKE = "Expected `{owner}.{field}` of shape {expected} (as `{like}`), got {shape}"
ARRAY_TYPE = "Expected `{owner}.{field}` to be {expected}, got {value!r}"
A_NOT_FINITE = "not finite: {value!r}"
A_NEGATIVE = "negative: {value!r}"
A_NOT_POSITIVE = "must be > 0, got {value!r}"
A_NOT_AFTER = "{value} is not after the previous time {previous} (times must increase)"
A_MISSING_TIME = "missing time (NaT)"
MAX_SHOWN = 12
"""Column names shown in a missing-column message."""


class DataFormatError(ValueError):
    """A data file does not have the expected format.

    The message names the file, the 1-based line number in the file and the
    problem (see the ``*`` message constants of :mod:`janus_env.data.validation`).
    """


# --------------------------------------------------------------------------- files


def check_file(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path`, or raise if it is not a file.

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a regular file.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(MISSING_FILE.format(os.fspath(path)))
    return p


def read_csv(path: Path, file: str, **kwargs: object) -> pd.DataFrame:
    """``pandas.read_csv`` with blank lines kept (so row i stays line ``first + i``).

    Trailing all-empty rows (blank lines at the end of the file) are dropped.
    Parser errors (ragged rows, empty file) become :class:`DataFormatError`.
    """
    try:
        frame = pd.read_csv(path, skip_blank_lines=False, **kwargs)
    except pd.errors.EmptyDataError as err:
        raise DataFormatError(FILE_ERROR.format(file=file, problem=EMPTY_FILE)) from err
    except pd.errors.ParserError as err:
        reason = " ".join(str(err).split())
        raise DataFormatError(FILE_ERROR.format(file=file, problem=UNREADABLE.format(reason=reason))) from err
    return drop_trailing_blank(frame)


def drop_trailing_blank(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop all-NaN rows at the end of ``frame`` (blank lines before EOF)."""
    if len(frame) == 0:
        return frame
    filled = frame.notna().to_numpy().any(axis=1)
    last = np.flatnonzero(filled)
    keep = int(last[-1]) + 1 if last.size else 0
    return frame.iloc[:keep] if keep < len(frame) else frame


# --------------------------------------------------------------------------- rows

Check = tuple[np.ndarray, Callable[[int], str]]
Lines = int | np.ndarray
"""The 1-based file line of row 0 (rows are consecutive lines), or the line of every row."""


def line_of(lines: Lines, row: int) -> int:
    """File line of ``row`` given :data:`Lines`."""
    return int(lines[row]) if isinstance(lines, np.ndarray) else int(lines) + row


def raise_first(file: str, first_line: Lines, checks: Iterable[Check]) -> None:
    """Raise :class:`DataFormatError` for the earliest row flagged by any check.

    Args:
        file: the file name to show.
        first_line: the 1-based file line of row 0, or an int array with the
            file line of every row (rows taken out of a longer file).
        checks: ``(mask, describe)`` pairs; ``mask`` is a boolean array over rows
            and ``describe(row)`` returns the problem text for a flagged row.
            On a tie (two checks flag the same first row) the earlier check wins.

    Raises:
        DataFormatError: some mask has a True entry.
    """
    best_row = -1
    best_describe: Callable[[int], str] | None = None
    for mask, describe in checks:
        hits = np.flatnonzero(mask)
        if hits.size and (best_row < 0 or hits[0] < best_row):
            best_row, best_describe = int(hits[0]), describe
    if best_describe is not None:
        raise DataFormatError(
            ROW_ERROR.format(file=file, line=line_of(first_line, best_row), problem=best_describe(best_row))
        )


def py_scalar(value: object) -> object:
    """A plain Python scalar for error messages: ``3.0`` rather than ``np.float64(3.0)``.

    Every loader (:mod:`~janus_env.data.ohlcv`, :mod:`~janus_env.data.l2`, :mod:`~janus_env.data.lobster`)
    formats the offending value of a bad row with it, so a message reads the same whatever numpy
    type the column has.
    """
    return value.item() if isinstance(value, np.generic) else value


def numeric_columns(
    frame: pd.DataFrame,
    columns: Sequence[str],
    file: str,
    first_line: Lines,
    *,
    labels: Sequence[str] | None = None,
    integer: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    """Convert ``columns`` of ``frame`` to float64 arrays, rejecting bad cells.

    Args:
        frame: the raw frame (numeric or string columns).
        columns: frame columns to convert.
        file: file name for messages.
        first_line: file line of row 0.
        labels: names to show in messages (defaults to ``columns``).
        integer: columns whose values must be whole numbers (that fit in int64).

    Returns:
        ``{column: float64 array}``.

    Raises:
        DataFormatError: an empty/NaN, non-numeric, infinite or (for ``integer``
            columns) fractional cell; the first one in the file is reported.
    """
    labels = list(columns) if labels is None else list(labels)
    integer = set(integer)
    out: dict[str, np.ndarray] = {}
    checks: list[Check] = []
    for column, label in zip(columns, labels):
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            missing = np.isnan(values)
            non_numeric = np.zeros(len(values), dtype=bool)
        else:
            raw = series.astype("string")
            stripped = raw.str.strip()
            missing = (stripped.isna() | (stripped == "")).to_numpy(dtype=bool)
            values = pd.to_numeric(stripped.mask(missing), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            non_numeric = np.isnan(values) & ~missing
            # "nan" spelled out parses as NaN: report it as missing, not non-numeric
            spelled_nan = non_numeric & stripped.str.lower().isin(["nan", "-nan", "+nan"]).to_numpy(dtype=bool)
            missing |= spelled_nan
            non_numeric &= ~spelled_nan
        infinite = np.isinf(values)
        checks.append((missing, lambda r, c=label: MISSING_VALUE.format(column=c)))
        checks.append(
            (non_numeric, lambda r, c=label, s=series: NON_NUMERIC.format(column=c, value=py_scalar(s.iloc[r])))
        )
        checks.append((infinite, lambda r, c=label, v=values: NOT_FINITE.format(column=c, value=py_scalar(v[r]))))
        if column in integer:
            with np.errstate(invalid="ignore"):
                fractional = np.isfinite(values) & ((values != np.floor(values)) | (np.abs(values) >= 2.0**63))
            checks.append(
                (fractional, lambda r, c=label, v=values: NOT_INTEGER.format(column=c, value=py_scalar(v[r])))
            )
        out[column] = values
    raise_first(file, first_line, checks)
    return out


def negative_check(values: np.ndarray, label: str) -> Check:
    """Check flagging negative entries of ``values``."""
    return values < 0, lambda r: NEGATIVE.format(column=label, value=py_scalar(values[r]))


def positive_check(values: np.ndarray, label: str) -> Check:
    """Check flagging entries of ``values`` that are not > 0."""
    return values <= 0, lambda r: NOT_POSITIVE.format(column=label, value=py_scalar(values[r]))


def match_columns(
    found: Sequence[str], required: dict[str, Sequence[str]], file: str
) -> dict[str, str]:
    """Map canonical names to the file's column names, case-insensitively.

    Args:
        found: the file's column names.
        required: ``{canonical: aliases}``; the first alias present wins
            (compared after ``strip().lower()``).
        file: file name for messages.

    Returns:
        ``{canonical: column name as spelled in the file}``.

    Raises:
        DataFormatError: some canonical name has no alias in ``found``; the
            message lists every missing one and what the file has.
    """
    lookup: dict[str, str] = {}
    for name in found:
        lookup.setdefault(str(name).strip().lower(), name)
    resolved: dict[str, str] = {}
    missing: list[str] = []
    for canonical, aliases in required.items():
        for alias in aliases:
            if alias.lower() in lookup:
                resolved[canonical] = lookup[alias.lower()]
                break
        else:
            missing.append(canonical if len(aliases) <= 1 else "/".join(aliases))
    if missing:
        shown = ", ".join(map(str, found[:MAX_SHOWN]))
        if len(found) > MAX_SHOWN:
            shown += f", ... ({len(found) - MAX_SHOWN} more)"
        problem = MISSING_COLUMNS.format(missing=", ".join(missing), found=shown)
        raise DataFormatError(FILE_ERROR.format(file=file, problem=problem))
    return resolved


_TIME_FORMATS = (
    "ISO8601",
    "%d.%m.%Y %H:%M:%S.%f",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
    "%Y%m%d",
)


def parse_times(series: pd.Series, label: str, file: str, first_line: Lines) -> np.ndarray:
    """Parse a date/time column to ``datetime64[ns]`` (UTC, timezone dropped).

    Numeric columns are read as Unix epochs: seconds, or milliseconds /
    microseconds / nanoseconds when the magnitude says so (> 1e11, 1e14, 1e17).
    Text columns are tried against ISO 8601 and a few common layouts
    (``dd.mm.yyyy HH:MM:SS.fff`` as in Dukascopy/gym-anytrading FOREX files,
    ``mm/dd/yyyy``); the layout that parses the most rows wins.

    Raises:
        DataFormatError: a value no layout parses (the first one is reported).
    """
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = numeric_columns(series.to_frame("t"), ["t"], file, first_line, labels=[label])["t"]
        scale = float(np.nanmax(np.abs(values))) if values.size else 0.0
        unit = "s" if scale < 1e11 else "ms" if scale < 1e14 else "us" if scale < 1e17 else "ns"
        return pd.to_datetime(values, unit=unit).to_numpy(dtype="datetime64[ns]")
    text = series.astype("string").str.strip()
    missing = (text.isna() | (text == "")).to_numpy(dtype=bool)
    raise_first(file, first_line, [(missing, lambda r: MISSING_VALUE.format(column=label))])
    best: pd.Series | None = None
    best_bad = len(text) + 1
    for fmt in _TIME_FORMATS:
        try:
            parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
        except (ValueError, TypeError):
            continue
        bad = int(parsed.isna().sum())
        if bad < best_bad:
            best, best_bad = parsed, bad
            if bad == 0:
                break
    assert best is not None
    unparsed = best.isna().to_numpy(dtype=bool)
    raise_first(file, first_line, [(unparsed, lambda r: BAD_TIME.format(column=label, value=text.iloc[r]))])
    return best.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def order_by_time(times: np.ndarray, file: str, first_line: Lines) -> np.ndarray:
    """Row order that sorts a strictly monotonic (either direction) time column ascending.

    Files stored newest first (CryptoDataDownload) are accepted and reversed;
    anything else is rejected rather than silently re-ordered.

    Returns:
        Indices ``order`` so that ``times[order]`` is strictly increasing.

    Raises:
        DataFormatError: a repeated time, or a time that breaks the order set
            by the file's first two rows.
    """
    n = len(times)
    if n < 2:
        return np.arange(n)
    step = np.diff(times.astype("datetime64[ns]").astype(np.int64))
    descending = step[0] < 0
    shown = pd.DatetimeIndex(times).astype(str)
    checks: list[Check] = [
        (np.r_[False, step == 0], lambda r: DUPLICATE_TIME.format(value=shown[r])),
        (
            np.r_[False, (step > 0) if descending else (step < 0)],
            lambda r: NOT_MONOTONIC.format(
                value=shown[r], order="newest-first" if descending else "oldest-first", previous=shown[r - 1]
            ),
        ),
    ]
    raise_first(file, first_line, checks)
    return np.arange(n)[::-1].copy() if descending else np.arange(n)


# --------------------------------------------------------------------------- arrays

ArrayCheck = tuple[str, np.ndarray, Callable[[tuple[int, ...]], str]]
"""``(field, mask, describe)``: ``mask`` flags bad entries, ``describe(index)`` names the problem."""


def as_array(
    owner: str, field: str, value: object, dtype: object, shape: tuple[int | None, ...], like: str | None = None
) -> np.ndarray:
    """``value`` as an array of ``dtype`` whose shape matches ``shape`` (``None``: any length).

    ``like`` names the field the expected shape comes from, for the message.

    Raises:
        TypeError: ``value`` cannot be converted to ``dtype``.
        ValueError: the shape does not match.
    """
    try:
        out = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        expected = f"an array of {np.dtype(dtype).name}"
        raise TypeError(ARRAY_TYPE.format(owner=owner, field=field, expected=expected, value=value)) from err
    if out.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, out.shape)):
        expected = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        message = ARRAY_SHAPE if like is None else ARRAY_SHAPE_LIKE
        raise ValueError(message.format(owner=owner, field=field, expected=expected, shape=out.shape, like=like))
    return out


def raise_first_array(owner: str, checks: Iterable[ArrayCheck]) -> None:
    """Raise ``ValueError`` for the flagged entry with the lowest row (first axis) index.

    On a tie the earlier check wins; within one mask the first entry in C order.

    Raises:
        ValueError: some mask has a True entry; the message is :data:`ARRAY_ERROR`.
    """
    best: tuple[str, tuple[int, ...], Callable[[tuple[int, ...]], str]] | None = None
    for field, mask, describe in checks:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            index = tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))
            if best is None or index[0] < best[1][0]:
                best = (field, index, describe)
    if best is not None:
        field, index, describe = best
        shown = ", ".join(map(str, index))
        raise ValueError(ARRAY_ERROR.format(owner=owner, field=field, index=shown, problem=describe(index)))


def finite_checks(
    field: str, values: np.ndarray, *, positive: bool = False, nonnegative: bool = False
) -> list[ArrayCheck]:
    """Checks for NaN/inf entries and, optionally, entries <= 0 or < 0 (among the finite ones)."""
    finite = np.isfinite(values)
    checks: list[ArrayCheck] = [(field, ~finite, lambda i: A_NOT_FINITE.format(value=py_scalar(values[i])))]
    with np.errstate(invalid="ignore"):
        if positive:
            checks.append((field, finite & (values <= 0), lambda i: A_NOT_POSITIVE.format(value=py_scalar(values[i]))))
        if nonnegative:
            checks.append((field, finite & (values < 0), lambda i: A_NEGATIVE.format(value=py_scalar(values[i]))))
    return checks


def time_checks(field: str, times: np.ndarray) -> list[ArrayCheck]:
    """Checks that ``datetime64`` ``times`` have no NaT and strictly increase."""
    nat = np.isnat(times)
    ints = times.astype("datetime64[ns]").astype(np.int64)
    shown = lambda i: str(pd.Timestamp(times[i]))  # noqa: E731
    later = np.r_[False, (ints[1:] <= ints[:-1]) & ~nat[1:] & ~nat[:-1]]
    return [
        (field, nat, lambda i: A_MISSING_TIME),
        (field, later, lambda i: A_NOT_AFTER.format(value=shown(i[0]), previous=shown(i[0] - 1))),
    ]
