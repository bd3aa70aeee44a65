"""Trade-history bookkeeping shared by the glass-box wrappers (updated from each step's ``info``)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any, NamedTuple

_BAD_WINDOW = "Expected `{}` >= 1, got {!r}"
_MISSING_KEY = "info has no {!r} key; TradeHistory needs the Janus-LOB info keys exec_qty, exec_price, volume, step"

LOSS_TOLERANCE = 1e-9
"""A closing sale is *at a loss* when ``(price − average_cost) < −LOSS_TOLERANCE · average_cost``
(relative tolerance for the float average; a sale exactly at cost is not a loss)."""


class Trade(NamedTuple):
    """One executed fill as seen by the agent."""

    step: int
    qty: float
    """Signed shares (+ buy, − sell)."""
    price: float
    """Average execution price of the fill."""
    realized_pnl: float
    """PnL realized by the part of the fill that closed a position (average-cost basis, fees excluded)."""


def _check_window(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(_BAD_WINDOW.format(name, value))
    return value


class TradeHistory:
    """Position, average cost, recent losing sales and recent market volume, from ``info`` dicts.

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

    Raises:
        ValueError: a window or ``max_trades`` below 1.
        KeyError: an ``info`` without the Janus-LOB keys.
    """

    def __init__(self, wash_sale_window: int = 30, volume_window: int = 20, max_trades: int = 256) -> None:
        self.wash_sale_window = _check_window("wash_sale_window", wash_sale_window)
        self.volume_window = _check_window("volume_window", volume_window)
        self.max_trades = _check_window("max_trades", max_trades)
        self._trades: deque[tuple[int, float, float, float]] = deque(maxlen=self.max_trades)
        self.reset()

    def reset(self, info: Mapping[str, Any] | None = None) -> None:
        """Start a session flat; ``info`` is the reset info (its ``volume`` and ``step`` are recorded)."""
        self.position = 0.0
        self.average_cost = 0.0
        self.last_loss_sale_step: int | None = None
        self.last_step = 0
        self._trades.clear()
        self._volumes = [0.0] * self.volume_window
        self._n_volumes = 0
        self._volume_next = 0
        self._volume_sum = 0.0
        if info is not None:
            self.update(info, fills=False)

    def update(self, info: Mapping[str, Any], fills: bool = True) -> None:
        """Record one step: its fill (``exec_qty``, ``exec_price``), ``volume`` and ``step``.

        Args:
            info: the step's info.
            fills: whether to read the fill keys (``False`` for the reset info).
        """
        try:
            volume = info["volume"]
            step = info["step"]
            qty = info["exec_qty"] if fills else 0.0
            price = info["exec_price"] if qty else 0.0
        except KeyError as err:
            raise KeyError(_MISSING_KEY.format(err.args[0])) from err
        self.last_step = step
        # ring buffer of the last `volume_window` volumes with a running sum
        i = self._volume_next
        self._volume_sum += volume - self._volumes[i]
        self._volumes[i] = volume
        self._volume_next = (i + 1) % self.volume_window
        if self._volume_next == 0:  # once per wrap: drop the rounding drift of fractional volumes
            self._volume_sum = sum(self._volumes)
        if self._n_volumes < self.volume_window:
            self._n_volumes += 1
        if qty:
            self._fill(int(step), float(qty), float(price))

    def _fill(self, step: int, qty: float, price: float) -> None:
        pos = self.position
        new = pos + qty
        realized = 0.0
        if pos == 0.0 or (pos > 0.0) == (qty > 0.0):  # open or add: new average cost
            self.average_cost = (self.average_cost * abs(pos) + price * abs(qty)) / abs(new)
        else:  # reduce, close or flip
            cost = self.average_cost
            if pos > 0.0:
                realized = (price - cost) * min(-qty, pos)
                if price - cost < -LOSS_TOLERANCE * cost:
                    self.last_loss_sale_step = step
            else:
                realized = (cost - price) * min(qty, -pos)
            if new == 0.0:
                self.average_cost = 0.0
            elif (new > 0.0) != (pos > 0.0):
                self.average_cost = price
        self.position = new
        self._trades.append((step, qty, price, realized))

    @property
    def trades(self) -> list[Trade]:
        """The last ``max_trades`` fills, oldest first."""
        return [Trade(*t) for t in self._trades]

    @property
    def mean_volume(self) -> float:
        """``V``: mean market volume per step over the last ``volume_window`` steps (0 before any)."""
        return self._volume_sum / self._n_volumes if self._n_volumes else 0.0

    def recent_loss_sale(self, step: int | None = None) -> float:
        """``∃t: SaleAtLoss(t) ∧ 1 ≤ step − t ≤ wash_sale_window``, crisp (1.0 or 0.0).

        Args:
            step: the step of the decision being judged; default the next one
                (``last_step + 1``, since ``info["step"]`` counts executed steps).
        """
        if self.last_loss_sale_step is None:
            return 0.0
        step = self.last_step + 1 if step is None else step
        k = step - self.last_loss_sale_step
        return 1.0 if 1 <= k <= self.wash_sale_window else 0.0

    def unrealized_pnl(self, mid: float) -> float:
        """Mark-to-market PnL of the open position against its average cost."""
        if self.position == 0.0 or not math.isfinite(mid):
            return 0.0
        return (mid - self.average_cost) * self.position
