"""Historical market data behind one interface, for ``scenario="historical"``.

A :class:`HistoricalSource` is a cursor over decision steps ``0 .. len − 1``.
At step t it shows the book and the traded volume known at t and nothing later
(no look-ahead), and executes the agent's market orders against the book it
shows:

==========================  ==================================================  ==================================
source                      book at step t                                      ``advance()``
==========================  ==================================================  ==================================
:class:`L2SnapshotSource`   snapshot t (``midpoint · (1 + distance)``)          restores the next snapshot
:class:`OHLCVSource`        synthetic book around bar t                         restores the next bar's book
:class:`LOBSTERSource`      our engine after the messages up to decision t      replays the messages up to t + 1
==========================  ==================================================  ==================================

Execution is simulated: a market order walks the visible levels best-first,
takes ``min(remaining, level qty)`` at each level's price and stops when it is
filled or the book is exhausted (partial fill). Consumed depth stays consumed
for the rest of the step (a second order sees it). For L2 and OHLCV the next
step restores the recorded book, i.e. the agent has no lasting impact; for
LOBSTER the consumed orders are gone from our engine for good, and later
recorded messages about them are counted as unknown
(:meth:`LOBSTERSource.report`).

Example:
    >>> src = load_source("janus_env/samples/btc_usd_hourly_2021-08_2022-03.csv")  # doctest: +SKIP
    >>> src.reset(0); src.book().shape  # doctest: +SKIP
    (10, 4)
    >>> filled, notional = src.execute(BUY, 0.5)  # doctest: +SKIP
    >>> src.advance()  # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from janus_env.book import BUY, EV_CROSS, EV_EXECUTE, EV_EXECUTE_HIDDEN, SELL, SIDES
from janus_env.checks import NEED_RESET_FOR, check_choice, check_int, check_number, check_positive, is_int
from janus_env.data.l2 import LEVEL_KEYS as L2_LEVEL_KEYS
from janus_env.data.l2 import L2Snapshots, level_columns, read_l2_snapshots
from janus_env.data.lobster import PRICE_SCALE, LOBSTERData, read_lobster
from janus_env.data.lobster_replay import LOBSTERReplayer, ReplayReport
from janus_env.data.ohlcv import PRICE_COLUMNS as OHLCV_PRICE_COLUMNS
from janus_env.data.ohlcv import OHLCVBars, read_ohlcv, split_volume, strip_asset, synthetic_book, wide_assets
from janus_env.data.validation import FILE_ERROR, DataFormatError, check_file
from janus_env.samples import SAMPLES, sample_path

PAST_END = "No step after {} (the source has {} steps)"
BAD_STEP_ARGS = "Pass exactly one of `step_messages` and `step_seconds`, got {!r} and {!r}"
TOO_SHORT = "{} messages give no complete decision step"
BAD_TICK = "Expected `tick_size` > 0 that is a whole number of LOBSTER units (1e-4), got {!r}"
UNKNOWN_FORMAT = "cannot tell the format (expected LOBSTER messages, an L2 snapshot CSV or an OHLCV CSV)"
ORDERBOOK_GIVEN = "looks like a LOBSTER orderbook file; pass the message file (and this as `orderbook`)"
BAD_SPEC = "Expected a path, a (messages, orderbook) pair, a mapping with 'path', loaded data or a HistoricalSource, got {!r}"
BAD_OPTION = "Unknown data option {!r} for {} data; accepted: {}"
READ_OPTIONS_NEED_FILE = "File read options {} need a file path, not loaded data"

KINDS = ("l2", "ohlcv", "lobster")


class HistoricalSource(ABC):
    """Recorded market data as a sequence of decision steps.

    Attributes:
        tick_size: price grid step in currency.
        n_levels: book levels per side in :meth:`book`.
    """

    tick_size: float
    n_levels: int

    def __init__(self) -> None:
        self._step = -1

    @abstractmethod
    def __len__(self) -> int:
        """Number of decision steps available."""

    @abstractmethod
    def reset(self, start: int = 0) -> None:
        """Position the cursor at step ``start`` (0 <= start < len) with a fresh book.

        Raises:
            TypeError: ``start`` is not an int.
            ValueError: ``start`` outside ``[0, len)``.
        """

    @abstractmethod
    def book(self) -> np.ndarray:
        """The visible book now: float64 ``(n_levels, 4)`` rows (bid_px, bid_qty, ask_px, ask_qty).

        Prices in currency, quantities in shares, best level first; NaN price
        and 0 quantity for missing levels. Reflects data up to the current
        step only, minus what the agent consumed this step. A copy.
        """

    @abstractmethod
    def traded(self) -> tuple[float, float]:
        """(buy, sell) shares traded by others in the interval that ended at the current step."""

    @abstractmethod
    def execute(self, side: int, qty: float) -> tuple[float, float]:
        """Agent market order of ``qty`` shares against the current book.

        Args:
            side: ``BUY`` (1, takes asks) or ``SELL`` (-1, takes bids).
            qty: shares wanted (>= 0).

        Returns:
            ``(filled shares, notional in currency)``; VWAP = notional / filled.

        Raises:
            TypeError: ``side`` is not an int or ``qty`` not a number.
            ValueError: ``side`` not ``BUY``/``SELL``, or ``qty`` negative or not finite.
            RuntimeError: called before :meth:`reset`.
        """

    @abstractmethod
    def advance(self) -> None:
        """Move to the next step.

        Raises:
            IndexError: already at the last step.
            RuntimeError: called before :meth:`reset`.
        """

    @property
    def step(self) -> int:
        """Current step (-1 before :meth:`reset`)."""
        return self._step

    @property
    def step_seconds(self) -> float | None:
        """Median duration of one decision step in seconds, from the data's time stamps (None without them).

        The median of the spacings between consecutive steps, so weekend and
        overnight gaps do not count (a daily file gives 86,400, an hourly one 3,600).
        """
        return None

    def mid(self) -> float:
        """Mid of the current visible book (NaN when a side is empty)."""
        b = self.book()
        return float(0.5 * (b[0, 0] + b[0, 2]))

    # ------------------------------------------------------------- helpers
    def _check_reset(self, method: str) -> None:
        if self._step < 0:
            raise RuntimeError(NEED_RESET_FOR.format(method))

    def _check_start(self, start: int) -> int:
        return check_int("start", start, low=0, high=len(self) - 1)

    def _check_order(self, side: int, qty: float, qty_step: float | None = None) -> float:
        self._check_reset("execute")
        check_choice("side", check_int("side", side), SIDES)
        q = check_number("qty", qty, low=0)
        check_positive("qty_step", qty_step, optional=True)
        return q

    def _check_advance(self) -> None:
        self._check_reset("advance")
        if self._step + 1 >= len(self):
            raise IndexError(PAST_END.format(self._step, len(self)))


def walk_book(price: np.ndarray, qty: np.ndarray, want: float) -> np.ndarray:
    """Shares a market order of ``want`` takes from each level, best first.

    ``take_i = clip(want − Σ_{j<i} q_j, 0, q_i)`` (vectorized; the order stops
    when filled or the levels are exhausted).
    """
    before = np.cumsum(qty) - qty
    return np.clip(want - before, 0.0, qty)


def median_spacing_seconds(times: np.ndarray | None) -> float | None:
    """Median of the positive spacings of ``times`` in seconds (``datetime64`` or float seconds); None
    with fewer than two stamps or no positive spacing."""
    if times is None or np.size(times) < 2:
        return None
    t = np.asarray(times)
    if np.issubdtype(t.dtype, np.datetime64):
        gaps = np.diff(t.astype("datetime64[ns]").astype(np.int64))
        gaps = gaps[gaps > 0]
        return float(np.median(gaps)) / 1e9 if gaps.size else None
    gaps = np.diff(t.astype(np.float64))
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if gaps.size else None


_DUST = 1e-12
"""Depth left at a level below this fraction of what was there counts as consumed (float rounding only)."""


def _pack_side(price: np.ndarray, qty: np.ndarray, before: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Move empty levels to the end (NaN price, 0 quantity); with ``before``, float dust counts as empty."""
    empty = qty <= 0 if before is None else qty <= _DUST * before
    order = np.argsort(empty, kind="stable")
    return np.where(empty, np.nan, price)[order], np.where(empty, 0.0, qty)[order]


class RecordedBookSource(HistoricalSource):
    """A source whose book at step t is a recorded array (an L2 snapshot, a bar's synthetic book).

    The base of :class:`L2SnapshotSource` and :class:`OHLCVSource`, and of any source that
    replays a fixed book per step: a subclass implements :meth:`recorded_book` and
    :meth:`recorded_traded` (plus ``__len__``). Unlike a replay through the matching engine
    (:class:`LOBSTERSource`, whole shares), its book holds quantities in any unit, so
    :meth:`execute` fills on any quantity grid (``qty_step``, e.g. 0.01 BTC), which the
    ``scenario="historical"`` market relies on for fractional lots.
    """

    def __init__(self) -> None:
        super().__init__()
        self._current = np.zeros((0, 4))

    @abstractmethod
    def recorded_book(self, t: int) -> np.ndarray:
        """The recorded/synthetic book of step ``t`` (uses data of step t only)."""

    @abstractmethod
    def recorded_traded(self, t: int) -> tuple[float, float]:
        """Traded (buy, sell) shares of step ``t``."""

    def reset(self, start: int = 0) -> None:
        self._step = self._check_start(start)
        self._current = np.array(self.recorded_book(self._step), dtype=np.float64)

    def book(self) -> np.ndarray:
        self._check_reset("book")
        return self._current.copy()

    def traded(self) -> tuple[float, float]:
        self._check_reset("traded")
        buy, sell = self.recorded_traded(self._step)
        return float(buy), float(sell)

    def execute(self, side: int, qty: float, qty_step: float | None = None) -> tuple[float, float]:
        """Walk the visible book (see :meth:`HistoricalSource.execute`).

        Args:
            qty_step: when given, fill only whole multiples of it: if the book runs out first, the
                fill is the largest multiple of ``qty_step`` it holds, and the rest stays on the book.
                The returned quantity is then ``k · qty_step`` for an integer ``k``.
        """
        want = self._check_order(side, qty, qty_step)
        px_col, q_col = (2, 3) if side == BUY else (0, 1)
        price = self._current[:, px_col]
        avail = self._current[:, q_col]
        take = walk_book(price, avail, want)
        filled = float(take.sum())
        if qty_step is not None:
            units = int(np.floor(filled / qty_step + 1e-9))  # 1e-9 unit: rounding of the walk, not depth
            grid = units * float(qty_step)
            if grid < filled:
                take = walk_book(price, avail, grid)
            filled = grid
        notional = float(np.where(take > 0, take * np.nan_to_num(price), 0.0).sum())
        self._current[:, px_col], self._current[:, q_col] = _pack_side(price, avail - take, avail)
        return filled, notional

    def advance(self) -> None:
        self._check_advance()
        self._step += 1
        self._current = np.array(self.recorded_book(self._step), dtype=np.float64)


class L2SnapshotSource(RecordedBookSource):
    """Decision steps are the snapshots of an L2 CSV (:mod:`janus_env.data.l2`).

    Args:
        data: the CSV path or loaded :class:`~janus_env.data.l2.L2Snapshots`.
        n_levels: levels to show (default: all in the file).
        tick_size: the market's price step in currency (the file stores
            continuous relative distances; used by callers for rounding only).
        columns: column mapping for :func:`~janus_env.data.l2.read_l2_snapshots`
            (files only).

    ``traded()`` at step t is the file's ``buys / midpoint`` and
    ``sells / midpoint`` of row t (notional traded in the interval ending at t).
    """

    def __init__(self, data: str | os.PathLike[str] | L2Snapshots, *, n_levels: int | None = None,
                 tick_size: float = 0.01, columns: Mapping[str, str] | None = None) -> None:  # fmt: skip
        super().__init__()
        if not isinstance(data, L2Snapshots):
            data = read_l2_snapshots(data, n_levels, columns=columns)
        elif columns is not None:
            raise ValueError(READ_OPTIONS_NEED_FILE.format(["columns"]))
        elif n_levels is not None:
            data = data.levels(check_int("n_levels", n_levels, low=1, high=data.n_levels))
        check_positive("tick_size", tick_size)
        self.data = data
        self.n_levels = int(data.book.shape[1])
        self.tick_size = float(tick_size)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def step_seconds(self) -> float | None:
        """Median spacing of the snapshots' ``system_time`` (None when the file has no time column)."""
        return median_spacing_seconds(self.data.time)

    def recorded_book(self, t: int) -> np.ndarray:
        return self.data.book[t]

    def recorded_traded(self, t: int) -> tuple[float, float]:
        return self.data.buy_volume[t], self.data.sell_volume[t]


class OHLCVSource(RecordedBookSource):
    """Decision steps are the bars of an OHLCV CSV, each with a synthetic book.

    The book model (mid = close, spread and level spacing from the bar range,
    depth from the bar volume with geometric decay) and the close-location
    buy/sell split of ``traded()`` are documented in :mod:`janus_env.data.ohlcv`.

    Args:
        data: the CSV path or loaded :class:`~janus_env.data.ohlcv.OHLCVBars`.
        n_levels: levels per side.
        tick_size: price grid step (currency).
        spread_fraction, level_fraction, depth_fraction, decay: book model
            parameters (see :func:`~janus_env.data.ohlcv.synthetic_book`).
        **read_kwargs: passed to :func:`~janus_env.data.ohlcv.read_ohlcv`
            (files only): ``asset``, ``columns``, ``skip_empty_rows``,
            ``volume_column``, ``time_column``.

    Raises:
        ValueError: read options given with loaded bars.
    """

    def __init__(
        self,
        data: str | os.PathLike[str] | OHLCVBars,
        *,
        n_levels: int = 10,
        tick_size: float = 0.01,
        spread_fraction: float = 0.05,
        level_fraction: float | None = None,
        depth_fraction: float = 0.1,
        decay: float = 0.8,
        **read_kwargs: object,
    ) -> None:
        super().__init__()
        if isinstance(data, OHLCVBars) and read_kwargs:
            raise ValueError(READ_OPTIONS_NEED_FILE.format(sorted(read_kwargs)))
        self.data = data if isinstance(data, OHLCVBars) else read_ohlcv(data, **read_kwargs)  # type: ignore[arg-type]
        self._book_kwargs = dict(
            n_levels=n_levels, tick_size=tick_size, spread_fraction=spread_fraction,
            level_fraction=level_fraction, depth_fraction=depth_fraction, decay=decay,
        )  # fmt: skip
        synthetic_book(1.0, 1.0, 1.0, 1.0, **self._book_kwargs)  # validates the parameters
        self.n_levels = int(n_levels)
        self.tick_size = float(tick_size)
        self._buy, self._sell = split_volume(self.data.high, self.data.low, self.data.close, self.data.volume)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def step_seconds(self) -> float | None:
        """Median spacing of the bar times (3,600 for hourly bars, 86,400 for daily ones)."""
        return median_spacing_seconds(self.data.time)

    def recorded_book(self, t: int) -> np.ndarray:
        d = self.data
        return synthetic_book(d.high[t], d.low[t], d.close[t], d.volume[t], **self._book_kwargs)

    def recorded_traded(self, t: int) -> tuple[float, float]:
        return self._buy[t], self._sell[t]


class LOBSTERSource(HistoricalSource):
    """Decision steps over a LOBSTER message stream replayed through our engine.

    Step k shows the book after the messages up to decision k: every
    ``step_messages`` messages (step k after ``(k + 1) · step_messages``) or
    every ``step_seconds`` (step k after every message with time <=
    ``time[0] + (k + 1) · step_seconds``). The agent's market orders match the
    whole reconstructed book (not just the ``n_levels`` shown) and remove the
    recorded orders they hit.

    The book is reconstructed as in :mod:`janus_env.data.lobster_replay`: with an
    orderbook file (given, or the ``*_orderbook_*`` sibling that
    :func:`load_source` picks up) it starts from the book before message 0,
    and stale orders (crossed by a submission, priced better than an execution
    on their side, or ahead of an executed order in its queue) are removed, so
    the book shown is never crossed. Levels that come into view at the edge of
    the orderbook file's window are set from the file row of the same message
    (no look-ahead); they refill what the agent consumed there, as the
    recorded market did.

    ``traded()`` sums the sizes of execution messages in the step's interval:
    types 4 and 5 by direction (a sell order executed = buyer-initiated), type 6
    (cross trades) half to each side. Executions of orders the agent already
    consumed still count: they happened in the recorded market.

    Args:
        data: the message file path or loaded :class:`~janus_env.data.lobster.LOBSTERData`.
        orderbook: the orderbook file (optional; validated; its first row
            gives the initial state).
        step_messages: messages per decision step (default 100 when neither is given).
        step_seconds: seconds per decision step.
        n_levels: levels shown by :meth:`book`.
        tick_size: tick in currency (default $0.01 = 100 LOBSTER units).
        capacity: engine order pool size (default: computed from the messages).
        initial_state: start from the orderbook file's first row (default None:
            when there is an orderbook; see
            :class:`~janus_env.data.lobster_replay.LOBSTERReplayer`).
        remove_stale: remove stale orders (default True; False replays the
            messages literally and the book can cross).
        reveal_levels: set levels that come into view beyond the previous
            row's window from the orderbook file (default None: when there is
            an orderbook; see :class:`~janus_env.data.lobster_replay.LOBSTERReplayer`).
        extra_columns: ``"error"`` (default) or ``"ignore"`` message-file
            columns after the sixth (files only; see
            :func:`~janus_env.data.lobster.read_lobster_messages`).
    """

    def __init__(
        self,
        data: str | os.PathLike[str] | LOBSTERData,
        orderbook: str | os.PathLike[str] | None = None,
        *,
        step_messages: int | None = None,
        step_seconds: float | None = None,
        n_levels: int = 10,
        tick_size: float = 0.01,
        capacity: int | None = None,
        initial_state: bool | None = None,
        remove_stale: bool = True,
        extra_columns: str = "error",
        reveal_levels: bool | None = None,
    ) -> None:
        super().__init__()
        if step_messages is None and step_seconds is None:
            step_messages = 100
        if (step_messages is None) == (step_seconds is None):
            raise ValueError(BAD_STEP_ARGS.format(step_messages, step_seconds))
        check_int("step_messages", step_messages, low=1, optional=True)
        check_positive("step_seconds", step_seconds, optional=True)
        units = round(check_positive("tick_size", tick_size) * PRICE_SCALE)
        if units < 1 or abs(units - float(tick_size) * PRICE_SCALE) > 1e-6:
            raise ValueError(BAD_TICK.format(tick_size))
        check_int("n_levels", n_levels, low=1)
        if isinstance(data, LOBSTERData) and extra_columns != "error":
            raise ValueError(READ_OPTIONS_NEED_FILE.format(["extra_columns"]))
        if not isinstance(data, LOBSTERData):
            data = read_lobster(data, orderbook, extra_columns=extra_columns)
        self.data = data
        self._step_seconds = None if step_seconds is None else float(step_seconds)
        self.tick_size = units / PRICE_SCALE
        self.n_levels = int(n_levels)
        self._replayer = LOBSTERReplayer(self.data, tick_size=units, capacity=capacity, initial_state=initial_state,
                                         remove_stale=remove_stale, reveal_levels=reveal_levels)  # fmt: skip
        n = len(self.data)
        if step_messages is not None:
            self._bounds = np.arange(1, n // int(step_messages) + 1, dtype=np.int64) * int(step_messages)
        else:
            t = self.data.time
            k = int(np.floor((t[-1] - t[0]) / float(step_seconds)))
            edges = t[0] + np.arange(1, k + 1) * float(step_seconds)
            self._bounds = np.searchsorted(t, edges, side="right").astype(np.int64)
        if self._bounds.size == 0:
            raise ValueError(TOO_SHORT.format(n))
        typ, size, direction = self.data.type, self.data.size.astype(np.float64), self.data.direction
        executed = (typ == EV_EXECUTE) | (typ == EV_EXECUTE_HIDDEN)
        cross = np.where(typ == EV_CROSS, 0.5 * size, 0.0)
        buy = np.where(executed & (direction == SELL), size, 0.0) + cross
        sell = np.where(executed & (direction == BUY), size, 0.0) + cross
        self._cum_buy = np.r_[0.0, np.cumsum(buy)]
        self._cum_sell = np.r_[0.0, np.cumsum(sell)]
        self._dirty = False

    def __len__(self) -> int:
        return int(self._bounds.size)

    @property
    def step_seconds(self) -> float | None:
        """``step_seconds`` when steps are fixed in time; with ``step_messages``, the median time between
        the last messages of consecutive steps (None when the steps span no time)."""
        if self._step_seconds is not None:
            return self._step_seconds
        return median_spacing_seconds(self.data.time[self._bounds - 1])

    @property
    def bounds(self) -> np.ndarray:
        """Messages applied before each step's observation (int64, increasing)."""
        return self._bounds.copy()

    def reset(self, start: int = 0) -> None:
        start = self._check_start(start)
        target = int(self._bounds[start])
        if self._dirty or self._replayer.position > target:
            self._replayer.reset()
        self._replayer.replay_to(target)
        self._dirty = False
        self._step = start

    def book(self) -> np.ndarray:
        self._check_reset("book")
        snap = self._replayer.l2(self.n_levels)
        out = np.empty(snap.shape, dtype=np.float64)
        grid = self._replayer.grid
        for px, q in ((0, 1), (2, 3)):
            ok = snap[:, px] >= 0
            out[:, px] = np.where(ok, grid.to_price(snap[:, px]) / PRICE_SCALE, np.nan)
            out[:, q] = np.where(ok, snap[:, q], 0).astype(np.float64)
        return out

    def traded(self) -> tuple[float, float]:
        self._check_reset("traded")
        hi = self._bounds[self._step]
        lo = self._bounds[self._step - 1] if self._step > 0 else 0
        return float(self._cum_buy[hi] - self._cum_buy[lo]), float(self._cum_sell[hi] - self._cum_sell[lo])

    def execute(self, side: int, qty: float) -> tuple[float, float]:
        """Agent market order; fills whole shares only (``floor(qty)``, the rest is not filled)."""
        want = int(np.floor(self._check_order(side, qty) + 1e-9))
        if want == 0:
            return 0.0, 0.0
        self._dirty = True
        filled, notional = self._replayer.market(int(side), want)
        return float(filled), notional / PRICE_SCALE

    def advance(self) -> None:
        self._check_advance()
        self._replayer.replay_to(int(self._bounds[self._step + 1]))
        self._step += 1

    def report(self) -> ReplayReport:
        """Replay counters so far (unknown cancels/executions include orders the agent consumed)."""
        return self._replayer.report()


# --------------------------------------------------------------------------- factory


def sniff_format(path: str | os.PathLike[str], options: Mapping[str, object] | None = None) -> str:
    """Guess a file's kind from its first lines: ``"l2"``, ``"ohlcv"`` or ``"lobster"``.

    L2: a ``bids_distance_0`` column (relative layout) or bid/ask price and
    size columns per level in the first line (``bid1_price``, ``ask_size_1``,
    ...; absolute layout). OHLCV: a line naming open, high, low and close,
    bare or for one asset of a wide file (``BTC:open``, ...). ``options``
    (the load options) lets a ``columns`` mapping and ``asset`` count:
    ``{"columns": {"close": "Adj Close"}}`` makes ``Adj Close`` the close.
    LOBSTER messages: six numeric fields, or more with a decimal time first
    (a message file with extra columns, read with ``extra_columns="ignore"``);
    a numeric line of 4·L integer fields is an orderbook file.

    Raises:
        FileNotFoundError: the file does not exist.
        DataFormatError: a LOBSTER orderbook file, or nothing recognisable.
    """
    p = check_file(path)
    with p.open(newline="") as handle:
        lines = [handle.readline() for _ in range(5)]
    fields = [[f.strip().strip('"').lower() for f in line.strip().split(",")] for line in lines if line.strip()]
    options = options or {}
    mapping = options.get("columns")
    mapping = mapping if isinstance(mapping, Mapping) else {}
    if any("bids_distance_0" in row for row in fields) or any(k in mapping for k in L2_LEVEL_KEYS):
        return "l2"
    if fields and level_columns(fields[0], {})[0]:
        return "l2"
    asset = options.get("asset")
    asset = str(asset) if isinstance(asset, str) or is_int(asset) else None
    price = [strip_asset(str(mapping.get(c, c)), asset).strip().lower() for c in OHLCV_PRICE_COLUMNS]
    if any(set(price) <= set(row) or wide_assets(row, price) for row in fields):
        return "ohlcv"
    if fields:
        try:
            [float(f) for f in fields[0][:6]]
        except ValueError:
            pass
        else:
            if len(fields[0]) == 6 or (len(fields[0]) > 6 and "." in fields[0][0]):
                return "lobster"  # 6 numeric columns, or more after a decimal time (extra LOBSTER columns)
        try:
            [float(f) for f in fields[0]]
        except ValueError:
            pass
        else:
            if len(fields[0]) % 4 == 0:
                raise DataFormatError(FILE_ERROR.format(file=os.fspath(path), problem=ORDERBOOK_GIVEN))
    raise DataFormatError(FILE_ERROR.format(file=os.fspath(path), problem=UNKNOWN_FORMAT))


def _sibling_orderbook(path: Path) -> Path | None:
    if "_message_" not in path.name:
        return None
    candidate = path.with_name(path.name.replace("_message_", "_orderbook_"))
    return candidate if candidate.is_file() else None


def data_options(kind: str | None = None) -> tuple[str, ...]:
    """Names of the options :func:`load_source` accepts for ``kind`` (every kind when None), sorted.

    They are the keyword arguments of the source's constructor (and, for
    OHLCV, of :func:`~janus_env.data.ohlcv.read_ohlcv`); a spec mapping also
    takes ``path`` and ``kind``.

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind is None:
        return tuple(sorted({name for k in KINDS for name in data_options(k)}))
    check_choice("kind", kind, KINDS)
    cls = {"l2": L2SnapshotSource, "ohlcv": OHLCVSource, "lobster": LOBSTERSource}[kind]
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = {p.name for p in inspect.signature(cls.__init__).parameters.values() if p.kind in plain}
    if kind == "ohlcv":
        names |= {p.name for p in inspect.signature(read_ohlcv).parameters.values() if p.kind in plain}
    return tuple(sorted(names - {"self", "data", "path"}))


def _check_options(kind: str, options: Mapping[str, object]) -> None:
    accepted = data_options(kind)
    for key in options:
        if key not in accepted:
            raise ValueError(BAD_OPTION.format(key, kind, ", ".join(accepted)))


def resolve_data_path(path: str | os.PathLike[str]) -> str | os.PathLike[str]:
    """``path``, or the shipped sample of that name (:data:`janus_env.samples.SAMPLES`) when no such file exists.

    ``"btc_usd_hourly"`` → ``janus_env/samples/btc_usd_hourly_2021-08_2022-03.csv``.
    """
    if isinstance(path, str) and path in SAMPLES and not os.path.exists(path):
        return sample_path(path)
    return path


def load_source(
    path_or_spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Mapping[str, object] | object,
    **kwargs: object,
) -> HistoricalSource:
    """Build the right :class:`HistoricalSource` for a file, a spec or loaded data.

    Args:
        path_or_spec: one of
            * a path, sniffed by :func:`sniff_format` (a LOBSTER
              ``*_message_*`` file picks up its ``*_orderbook_*`` sibling), or
              the name of a shipped sample (``"btc_usd_hourly"``, see
              :mod:`janus_env.samples`);
            * ``(messages, orderbook)`` paths (LOBSTER);
            * a mapping ``{"path": ..., "kind": "l2" | "ohlcv" | "lobster",
              **options}`` (``kind`` optional), e.g.
              ``{"path": "prices.csv", "asset": "ETH"}``;
            * :class:`L2Snapshots`, :class:`OHLCVBars` or :class:`LOBSTERData`;
            * a :class:`HistoricalSource` (returned as is).
        **kwargs: options of the chosen source (:func:`data_options`): its
            constructor arguments (``n_levels``, ``tick_size``, ...;
            LOBSTER: ``orderbook``, ``step_messages``, ``step_seconds``, ...)
            and the file reader's (OHLCV: ``asset``, ``columns``,
            ``skip_empty_rows``, ``volume_column``, ``time_column``; L2:
            ``columns``). Mapping entries and ``kwargs`` merge, ``kwargs`` win.

    Raises:
        FileNotFoundError: a file does not exist.
        DataFormatError: unrecognisable or invalid data.
        TypeError: an unsupported ``path_or_spec``.
        ValueError: an unknown ``kind``, or an option the source does not take
            (:data:`BAD_OPTION`, naming the accepted ones).
    """
    spec = path_or_spec
    if isinstance(spec, HistoricalSource):
        if kwargs:
            raise ValueError(READ_OPTIONS_NEED_FILE.format(sorted(kwargs)))
        return spec
    if isinstance(spec, L2Snapshots):
        _check_options("l2", kwargs)
        return L2SnapshotSource(spec, **kwargs)  # type: ignore[arg-type]
    if isinstance(spec, OHLCVBars):
        _check_options("ohlcv", kwargs)
        return OHLCVSource(spec, **kwargs)  # type: ignore[arg-type]
    if isinstance(spec, LOBSTERData):
        _check_options("lobster", kwargs)
        return LOBSTERSource(spec, **kwargs)  # type: ignore[arg-type]
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "path" not in options:
            raise TypeError(BAD_SPEC.format(spec))
        path = options.pop("path")
        kind = options.pop("kind", None)
        options.update(kwargs)
        if kind is None:
            return load_source(path, **options)
        check_choice("kind", kind, KINDS)
        return _build(str(kind), resolve_data_path(path), options)  # type: ignore[arg-type]
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        _check_options("lobster", kwargs)
        return LOBSTERSource(resolve_data_path(spec[0]), resolve_data_path(spec[1]), **kwargs)  # type: ignore[arg-type]
    if isinstance(spec, (str, os.PathLike)):
        path = resolve_data_path(spec)
        return _build(sniff_format(path, kwargs), path, dict(kwargs))
    raise TypeError(BAD_SPEC.format(spec))


def _build(kind: str, path: str | os.PathLike[str], options: dict[str, object]) -> HistoricalSource:
    _check_options(kind, options)
    if kind == "l2":
        return L2SnapshotSource(path, **options)  # type: ignore[arg-type]
    if kind == "ohlcv":
        return OHLCVSource(path, **options)  # type: ignore[arg-type]
    if "orderbook" not in options:
        options["orderbook"] = _sibling_orderbook(check_file(path))
    else:
        options["orderbook"] = resolve_data_path(options["orderbook"])  # type: ignore[arg-type]
    return LOBSTERSource(path, **options)  # type: ignore[arg-type]
