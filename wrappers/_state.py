"""Trade-history bookkeeping of the glass-box wrappers, kept in a float64 array updated by numba.

The state of one history is one flat row (``H_*`` header, the volume ring, the
trade ring), so that a shield can update and read it inside its compiled step
(:mod:`wrappers.shield_kernel`), for one env or a whole vector env at once,
while :class:`TradeHistory` gives the same row a Python API.

Besides the agent's fills and the market volume, a history keeps the
instrument's **volatility baseline** σ_hist, the yardstick of the knowledge
base's ``Volatile`` predicate. It is the amygdala's (:mod:`wrappers.amygdala`,
volatility breaker) with the same defaults, so the shield and the breakers
measure one market against one history:

* seeded by the reset-time ``σ_0 = info["volatility"]``, the env's realized σ
  over its window of history *before* the session (a warm-up baseline);
* then each step's reading is judged against the baseline *before* it, and
  folded in afterwards: ``σ_hist² ← σ_hist² + α_n·(σ_t² − σ_hist²)``,
  ``α_n = max(1/(n + 1), 1 − 2^(−1/halflife))`` after ``n`` readings (an
  equal-weight mean of the session's readings until the EWMA with a
  ``halflife`` of 500 steps takes over);
* a reading above ``event_ratio·σ_hist`` (3, the volatility breaker's
  threshold, DESIGN.md) is an event, not history, and is left out, so a crash
  cannot raise its own baseline; so is ``σ_t ≤ ZERO_VOLATILITY`` (no price move
  in the env's window). Without a positive reading there is no baseline (0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from janus_env.checks import check_int, check_number, check_positive

_MISSING_KEY = ("info has no {!r} key; TradeHistory needs the Janus-LOB info keys exec_qty, exec_price, volume, "
                "volatility, step")

LOSS_TOLERANCE = 1e-9
"""A closing sale is *at a loss* when ``(price − average_cost) < −LOSS_TOLERANCE · average_cost``
(relative tolerance for the float average; a sale exactly at cost is not a loss)."""

# ---- row layout ---------------------------------------------------------------------
H_POSITION = 0
H_AVERAGE_COST = 1
H_LAST_LOSS_STEP = 2
"""Step of the last sale at a loss; :data:`NO_STEP` when none."""
H_LAST_STEP = 3
H_VOLUME_SUM = 4
H_N_VOLUMES = 5
H_VOLUME_NEXT = 6
H_N_TRADES = 7
H_TRADE_NEXT = 8
H_WASH_WINDOW = 9
H_VOLUME_WINDOW = 10
H_MAX_TRADES = 11
H_VOL_VAR = 12
"""σ_hist², the volatility baseline *before* the pending reading (meaningful when ``H_VOL_N > 0``)."""
H_VOL_N = 13
"""Readings folded into σ_hist (0: no baseline yet)."""
H_VOL_PENDING = 14
"""σ_t of the last recorded step: judged against σ_hist, folded in when the next step is recorded."""
H_VOL_ALPHA = 15
"""The EWMA weight ``1 − 2^(−1/halflife)`` of σ_hist once the running mean hands over."""
H_VOL_EVENT = 16
"""Readings above this multiple of σ_hist are events, left out of σ_hist."""
H_HEADER = 17
TRADE_FIELDS = 4
NO_STEP = -1.0

ZERO_VOLATILITY = 1e-9
"""A realized σ at or below this (1e-5 bps per step) is no price move: it neither seeds nor enters σ_hist
(the amygdala's ``ZERO_VOLATILITY``)."""
DEFAULT_VOL_HALFLIFE = 500
"""Half-life in steps of σ_hist's EWMA (the amygdala's ``vol_halflife``) *(ours)*: a 75-step event is a small
part of the baseline, a change of regime over a session is followed."""
DEFAULT_VOL_EVENT_RATIO = 3.0
"""σ_t above this multiple of σ_hist is left out of σ_hist: DESIGN.md's 3× volatility breaker."""


def history_size(volume_window: int, max_trades: int) -> int:
    """Length of one history row."""
    return H_HEADER + volume_window + TRADE_FIELDS * max_trades


def new_history_rows(n: int, wash_sale_window: int, volume_window: int, max_trades: int,
                     vol_halflife: float = DEFAULT_VOL_HALFLIFE,
                     vol_event_ratio: float = DEFAULT_VOL_EVENT_RATIO) -> np.ndarray:
    """``(n, history_size)`` float64 rows, each a flat history with these windows and σ_hist settings."""
    rows = np.zeros((n, history_size(volume_window, max_trades)), dtype=np.float64)
    rows[:, H_WASH_WINDOW] = wash_sale_window
    rows[:, H_VOLUME_WINDOW] = volume_window
    rows[:, H_MAX_TRADES] = max_trades
    rows[:, H_LAST_LOSS_STEP] = NO_STEP
    rows[:, H_VOL_PENDING] = -1.0
    rows[:, H_VOL_ALPHA] = 1.0 - 2.0 ** (-1.0 / vol_halflife)
    rows[:, H_VOL_EVENT] = vol_event_ratio
    return rows


@njit(cache=True)
def history_reset(h, volume, step, sigma):  # pragma: no cover - compiled
    """Start a session flat; record the reset step's ``volume`` and ``step``; seed σ_hist with ``sigma``."""
    window = int(h[H_VOLUME_WINDOW])
    h[H_POSITION] = 0.0
    h[H_AVERAGE_COST] = 0.0
    h[H_LAST_LOSS_STEP] = NO_STEP
    h[H_VOLUME_SUM] = 0.0
    h[H_N_VOLUMES] = 0.0
    h[H_VOLUME_NEXT] = 0.0
    h[H_N_TRADES] = 0.0
    h[H_TRADE_NEXT] = 0.0
    h[H_HEADER:H_HEADER + window] = 0.0
    h[H_VOL_VAR] = 0.0
    h[H_VOL_N] = 0.0
    h[H_VOL_PENDING] = -1.0
    _fold_volatility(h, sigma)  # the reset σ (the env's pre-session window) is the first reading
    history_record(h, volume, step, 0.0, 0.0, -1.0)


@njit(cache=True)
def _fold_volatility(h, sigma):  # pragma: no cover - compiled
    """Fold one σ reading into σ_hist (module docstring); σ < 0 means none."""
    if not sigma > ZERO_VOLATILITY:  # also NaN: not a reading
        return
    s2 = sigma * sigma
    n = h[H_VOL_N]
    if n == 0.0:
        h[H_VOL_VAR] = s2
        h[H_VOL_N] = 1.0
        return
    event = h[H_VOL_EVENT]
    if s2 > event * event * h[H_VOL_VAR]:
        return
    n += 1.0
    h[H_VOL_N] = n
    h[H_VOL_VAR] += max(1.0 / n, h[H_VOL_ALPHA]) * (s2 - h[H_VOL_VAR])


@njit(cache=True)
def volatility_baseline(h):  # pragma: no cover - compiled
    """σ_hist, the baseline the latest reading is judged against (0.0 when there is none yet)."""
    return math.sqrt(h[H_VOL_VAR]) if h[H_VOL_N] > 0.0 else 0.0


@njit(cache=True)
def history_record(h, volume, step, qty, price, sigma):  # pragma: no cover - compiled
    """Record one step: its market ``volume``, ``step``, the agent's fill ``qty`` at ``price`` and the
    market's realized ``sigma`` (σ < 0: none), which becomes the pending reading (the previous one is folded
    into σ_hist first)."""
    window = int(h[H_VOLUME_WINDOW])
    h[H_LAST_STEP] = step
    _fold_volatility(h, h[H_VOL_PENDING])
    h[H_VOL_PENDING] = sigma
    # ring of the last `window` volumes with a running sum
    i = int(h[H_VOLUME_NEXT])
    v = H_HEADER + i
    h[H_VOLUME_SUM] += volume - h[v]
    h[v] = volume
    i = (i + 1) % window
    h[H_VOLUME_NEXT] = i
    if i == 0:  # once per wrap: drop the rounding drift of fractional volumes
        total = 0.0
        for k in range(window):
            total += h[H_HEADER + k]
        h[H_VOLUME_SUM] = total
    if h[H_N_VOLUMES] < window:
        h[H_N_VOLUMES] += 1.0
    if qty != 0.0:
        _fill(h, step, qty, price)


@njit(cache=True)
def _fill(h, step, qty, price):  # pragma: no cover - compiled
    pos = h[H_POSITION]
    new = pos + qty
    realized = 0.0
    if pos == 0.0 or (pos > 0.0) == (qty > 0.0):  # open or add: new average cost
        h[H_AVERAGE_COST] = (h[H_AVERAGE_COST] * abs(pos) + price * abs(qty)) / abs(new)
    else:  # reduce, close or flip
        cost = h[H_AVERAGE_COST]
        if pos > 0.0:
            realized = (price - cost) * min(-qty, pos)
            if price - cost < -LOSS_TOLERANCE * cost:
                h[H_LAST_LOSS_STEP] = step
        else:
            realized = (cost - price) * min(qty, -pos)
        if new == 0.0:
            h[H_AVERAGE_COST] = 0.0
        elif (new > 0.0) != (pos > 0.0):
            h[H_AVERAGE_COST] = price
    h[H_POSITION] = new
    max_trades = int(h[H_MAX_TRADES])
    t = int(h[H_TRADE_NEXT])
    o = H_HEADER + int(h[H_VOLUME_WINDOW]) + TRADE_FIELDS * t
    h[o] = step
    h[o + 1] = qty
    h[o + 2] = price
    h[o + 3] = realized
    h[H_TRADE_NEXT] = (t + 1) % max_trades
    if h[H_N_TRADES] < max_trades:
        h[H_N_TRADES] += 1.0


@njit(cache=True)
def mean_volume(h):  # pragma: no cover - compiled
    """``V``: mean market volume per step over the last ``volume_window`` steps (0 before any)."""
    n = h[H_N_VOLUMES]
    return h[H_VOLUME_SUM] / n if n > 0.0 else 0.0


@njit(cache=True)
def recent_loss_sale(h, step):  # pragma: no cover - compiled
    """``∃t: SaleAtLoss(t) ∧ 1 ≤ step − t ≤ wash_sale_window``, crisp (1.0 or 0.0)."""
    last = h[H_LAST_LOSS_STEP]
    if last == NO_STEP:
        return 0.0
    k = step - last
    return 1.0 if 1.0 <= k <= h[H_WASH_WINDOW] else 0.0


class Trade(NamedTuple):
    """One executed fill as seen by the agent."""

    step: int
    qty: float
    """Signed shares (+ buy, − sell)."""
    price: float
    """Average execution price of the fill."""
    realized_pnl: float
    """PnL realized by the part of the fill that closed a position (average-cost basis, fees excluded)."""


class TradeHistory:
    """Position, average cost, recent losing sales, recent market volume and σ_hist, from ``info`` dicts.

    Realized PnL of a fill that reduces a position uses the average-cost basis
    (the mean price of the shares held, updated on every fill that adds to
    the position) and excludes fees: selling ``c`` shares of a long at price
    ``x`` realizes ``(x − average_cost)·c``. A *sale at a loss* (the
    ``SaleAtLoss(t)`` of the wash-sale rule) is a sell fill that closes part
    of a long position below its average cost (see :data:`LOSS_TOLERANCE`);
    opening or adding to a short is not one. A fill that crosses zero closes
    the old position and opens the rest at the fill price.

    Args:
        wash_sale_window: the wash-sale window in steps: a buy at step ``t + k``,
            ``1 <= k <= wash_sale_window``, follows a sale at a loss at step ``t``.
        volume_window: number of steps (including the reset step) in the mean
            per-step market volume ``V``.
        max_trades: fills kept in :attr:`trades` (oldest dropped first).
        vol_halflife: half-life in steps of the σ_hist EWMA (:data:`DEFAULT_VOL_HALFLIFE`, 500).
        vol_event_ratio: readings above this multiple of σ_hist are left out of it
            (:data:`DEFAULT_VOL_EVENT_RATIO`, 3).
        row: an existing row to view as is (e.g. one env's row of a vector shield), laid out by
            :func:`new_history_rows` with the same windows; default a fresh, reset one.

    Raises:
        TypeError: a window or ``max_trades`` that is not an int, or ``vol_halflife`` / ``vol_event_ratio``
            that is not a real number.
        ValueError: a window or ``max_trades`` below 1, ``vol_halflife`` ≤ 0, ``vol_event_ratio`` ≤ 1
            (NaN and ±inf included), or a ``row`` of another layout.
        KeyError: an ``info`` without the Janus-LOB keys.
    """

    def __init__(self, wash_sale_window: int = 30, volume_window: int = 20, max_trades: int = 256,
                 row: np.ndarray | None = None, vol_halflife: float = DEFAULT_VOL_HALFLIFE,
                 vol_event_ratio: float = DEFAULT_VOL_EVENT_RATIO) -> None:
        self.wash_sale_window = wash_sale_window = check_int("wash_sale_window", wash_sale_window, low=1)
        self.volume_window = volume_window = check_int("volume_window", volume_window, low=1)
        self.max_trades = max_trades = check_int("max_trades", max_trades, low=1)
        self.vol_halflife = check_positive("vol_halflife", vol_halflife)
        self.vol_event_ratio = check_number("vol_event_ratio", vol_event_ratio, low=1, low_open=True)
        fresh = row is None
        if fresh:
            row = new_history_rows(1, wash_sale_window, volume_window, max_trades, self.vol_halflife,
                                   self.vol_event_ratio)[0]
        elif row.shape != (history_size(volume_window, max_trades),) or row.dtype != np.float64 \
                or row[H_WASH_WINDOW] != wash_sale_window or row[H_VOLUME_WINDOW] != volume_window \
                or row[H_VOL_EVENT] != self.vol_event_ratio:
            raise ValueError(f"`row` does not hold a history with windows ({wash_sale_window}, {volume_window}, "
                             f"{max_trades})")
        self.row = row
        """The flat float64 state (see the ``H_*`` layout)."""
        if fresh:
            self.reset()

    def reset(self, info: Mapping[str, Any] | None = None) -> None:
        """Start a session flat; ``info`` is the reset info (its ``volume`` and ``step`` are recorded, its
        ``volatility`` seeds σ_hist)."""
        if info is None:
            history_reset(self.row, 0.0, 0.0, -1.0)
            self.row[H_N_VOLUMES] = 0.0  # nothing recorded yet
            self.row[H_VOLUME_NEXT] = 0.0
            return
        volume, step, sigma = _read(info, ("volume", "step", "volatility"))
        history_reset(self.row, float(volume), float(step), float(sigma))

    def update(self, info: Mapping[str, Any], fills: bool = True) -> None:
        """Record one step: its fill (``exec_qty``, ``exec_price``), ``volume``, ``volatility`` and ``step``.

        Args:
            info: the step's info.
            fills: whether to read the fill keys (``False`` for the reset info).
        """
        volume, step, sigma = _read(info, ("volume", "step", "volatility"))
        qty = _read(info, ("exec_qty",))[0] if fills else 0.0
        price = _read(info, ("exec_price",))[0] if qty else 0.0
        history_record(self.row, float(volume), float(step), float(qty), float(price), float(sigma))

    @property
    def position(self) -> float:
        return float(self.row[H_POSITION])

    @property
    def average_cost(self) -> float:
        return float(self.row[H_AVERAGE_COST])

    @property
    def last_loss_sale_step(self) -> int | None:
        last = self.row[H_LAST_LOSS_STEP]
        return None if last == NO_STEP else int(last)

    @property
    def last_step(self) -> int:
        return int(self.row[H_LAST_STEP])

    @property
    def trades(self) -> list[Trade]:
        """The last ``max_trades`` fills, oldest first."""
        h = self.row
        n = int(h[H_N_TRADES])
        ring = h[H_HEADER + self.volume_window:].reshape(self.max_trades, TRADE_FIELDS)
        start = (int(h[H_TRADE_NEXT]) - n) % self.max_trades
        order = (start + np.arange(n)) % self.max_trades
        return [Trade(int(s), q, p, r) for s, q, p, r in ring[order].tolist()]

    @property
    def mean_volume(self) -> float:
        """``V``: mean market volume per step over the last ``volume_window`` steps (0 before any)."""
        return float(mean_volume(self.row))

    @property
    def sigma_hist(self) -> float:
        """σ_hist, the volatility baseline the last recorded σ is judged against (0.0 before a positive
        reading; module docstring)."""
        return float(volatility_baseline(self.row))

    def recent_loss_sale(self, step: int | None = None) -> float:
        """``∃t: SaleAtLoss(t) ∧ 1 ≤ step − t ≤ wash_sale_window``, crisp (1.0 or 0.0).

        Args:
            step: the step of the decision being judged; default the next one
                (``last_step + 1``, since ``info["step"]`` counts executed steps).
        """
        step = self.row[H_LAST_STEP] + 1.0 if step is None else float(step)
        return float(recent_loss_sale(self.row, step))

    def unrealized_pnl(self, mid: float) -> float:
        """Mark-to-market PnL of the open position against its average cost."""
        if self.position == 0.0 or not math.isfinite(mid):
            return 0.0
        return (mid - self.average_cost) * self.position


def _read(info: Mapping[str, Any], keys: tuple[str, ...]) -> list[Any]:
    try:
        return [info[k] for k in keys]
    except KeyError as err:
        raise KeyError(_MISSING_KEY.format(err.args[0])) from err
