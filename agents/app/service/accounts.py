"""A client's account on the server: position, cash, cost basis and session, the open order and its fills.

One account per API key (named like the key). It starts flat with the run's ``initial_cash`` and changes only
through the fills its client reports, with the env's accounting (``Janus-LOB-v0``, ``scenario="historical"``):

* a fill of ``q`` (signed, on the run's quantity grid) at ``p`` pays ``fee = fee_bps·10⁻⁴·|q|·p`` and moves
  ``cash ← cash − q·p − fee``, ``position ← position + q``;
* the cost basis follows :func:`janus_env.simulator.update_cost` (Σ signed quantity × price of the open
  position), the unrealized PnL of the observation is ``position·mid − cost``;
* equity is ``cash + position·mid`` at the mid of each decision, the session's peak is the largest of them, the
  drawdown ``(peak − equity)/peak``.

Each decision opens an *order* (its signed size, possibly 0) and closes the previous one: fills are accepted
for the open order only, on its side, up to its size; what they add up to between two decisions (the *cycle*)
is what the env's ``info`` of that step reports (``exec_qty``, ``exec_price`` = VWAP, ``fees``) and what the
glass box learns from at the next decision.

A *session* is ``episode_steps`` decisions, as the run trained on; its clock is the time-left feature of the
observation. A session ends after that many decisions (the next decision starts a new one with the account as
it is), and the glass box (breakers, shield history, sizing statistics) starts each session afresh.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from agents.app.service.schemas import FieldError
from janus_env.config import MarketConfig
from janus_env.simulator import update_cost

_NO_DECISION = "no decision {} in this account (its decisions are 0..{})"
_CLOSED = "decision {} is closed: fills are accepted for the open decision {} only (the next decision closes it)"
_NONE_OPEN = "decision {} is closed and no decision is open"
_NO_ORDER = "decision {} sent no order (size 0)"
_WRONG_SIDE = "expected a {} fill (decision {} ordered {}), got {}"
_OFF_GRID = "expected a multiple of the run's quantity grid {}, got {}"
_ZERO = "expected a non-zero quantity, got {}"
_OVERFILL = "fills of decision {} would total {}, over its order of {}"


@dataclass
class OpenOrder:
    """The order of the last decision: ``units`` signed grid units (0: HOLD), decided at ``mid``."""

    decision_id: int
    units: int
    mid: float
    filled_units: int = 0


@dataclass
class CycleFills:
    """Fills since the last decision: signed ``units``, traded ``abs_units``, ``notional`` Σ|q|·p, ``fees``."""

    units: int = 0
    abs_units: int = 0
    notional: float = 0.0
    fees: float = 0.0
    count: int = 0


@dataclass
class Account:
    """The state of one client's account (JSON-able; :meth:`to_json` / :meth:`from_json`).

    Attributes:
        name: the account (its key's name).
        units: position in grid units (``config.resolved_qty_step``).
        cash: cash, currency.
        cost: cost basis of the open position, Σ signed quantity × price.
        peak: the session's peak equity (None before the session's first decision).
        t: decisions taken in the current session.
        session: sessions started (0 before the first decision).
        decisions: decisions answered; their ids are ``0 .. decisions − 1``.
        last_equity: equity at the last decision (the base of the next decision's step reward).
        open: the open order (None before the first decision).
        cycle: the fills since the last decision.
    """

    name: str
    units: int
    cash: float
    cost: float = 0.0
    peak: float | None = None
    t: int = 0
    session: int = 0
    decisions: int = 0
    last_equity: float | None = None
    open: OpenOrder | None = None
    cycle: CycleFills = field(default_factory=CycleFills)

    @classmethod
    def new(cls, name: str, config: MarketConfig) -> Account:
        """A flat account with the run's ``initial_cash``."""
        return cls(name=name, units=0, cash=float(config.initial_cash))

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> str:
        """The account as one JSON object (floats round-trip exactly)."""
        state = dict(vars(self))
        state["open"] = None if self.open is None else vars(self.open)
        state["cycle"] = vars(self.cycle)
        return json.dumps(state, allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Account:
        data: dict[str, Any] = json.loads(text)
        open_ = data.pop("open")
        cycle = data.pop("cycle")
        return cls(**data, open=None if open_ is None else OpenOrder(**open_), cycle=CycleFills(**cycle))

    # ------------------------------------------------------------------ valuation
    def position(self, config: MarketConfig) -> float:
        """The position as a quantity (shares, or units of the asset)."""
        return float(config.to_qty(self.units))

    def mark(self, mid: float, config: MarketConfig) -> tuple[float, float, float]:
        """``(equity, peak, drawdown)`` at ``mid``: the peak raised to the equity now, as every env step does."""
        equity = self.cash + self.position(config) * mid
        peak = equity if self.peak is None else max(self.peak, equity)
        return equity, peak, (peak - equity) / peak if peak > 0 else 0.0

    # ------------------------------------------------------------------ fills
    def apply_fill(self, decision_id: int, qty: float, price: float, config: MarketConfig) -> dict[str, Any]:
        """Book a fill of the open order: ``qty`` signed at ``price``; returns what was booked.

        Raises:
            FieldError: a decision this account does not have (404), one already closed or without an order, a
                fill beyond the order (409), the wrong side, a zero quantity or one off the quantity grid (422).
        """
        order = self.open
        if order is None or decision_id != order.decision_id:
            if decision_id >= self.decisions:
                raise FieldError("decision_id", _NO_DECISION.format(decision_id, self.decisions - 1), 404)
            message = _NONE_OPEN.format(decision_id) if order is None else _CLOSED.format(decision_id,
                                                                                          order.decision_id)
            raise FieldError("decision_id", message, 409)
        if order.units == 0:
            raise FieldError("decision_id", _NO_ORDER.format(decision_id), 409)
        step = float(config.resolved_qty_step)
        units = round(qty / step)
        if qty == 0.0:
            raise FieldError("qty", _ZERO.format(qty))
        if abs(units * step - qty) > 1e-9 * max(step, abs(qty)):
            raise FieldError("qty", _OFF_GRID.format(step, qty))
        if (units > 0) != (order.units > 0):
            side = "buy (qty > 0)" if order.units > 0 else "sell (qty < 0)"
            raise FieldError("qty", _WRONG_SIDE.format(side, decision_id, config.to_qty(order.units), qty))
        if order.filled_units + abs(units) > abs(order.units):
            total = config.to_qty(order.filled_units + abs(units))
            raise FieldError("qty", _OVERFILL.format(decision_id, total, config.to_qty(abs(order.units))), 409)
        dq = float(config.to_qty(units))
        notional = abs(dq) * price
        fee = float(config.fee_bps) * 1e-4 * notional
        self.cost = float(update_cost(self.cost, self.position(config), dq, price))
        self.units += units
        self.cash -= dq * price + fee
        order.filled_units += abs(units)
        cycle = self.cycle
        cycle.units += units
        cycle.abs_units += abs(units)
        cycle.notional += notional
        cycle.fees += fee
        cycle.count += 1
        return {"decision_id": decision_id, "qty": dq, "price": price, "fee": fee,
                "filled": float(config.to_qty(order.filled_units)), "ordered": float(config.to_qty(order.units))}

    def cycle_execution(self, config: MarketConfig) -> dict[str, float]:
        """The env's execution keys for the fills since the last decision: ``exec_qty``, ``exec_price`` (VWAP),
        ``slippage_bps`` (against the mid the order was decided at; positive = cost), ``fees``, ``fills``."""
        cycle = self.cycle
        if cycle.abs_units == 0 or self.open is None:
            return {"exec_qty": 0.0, "exec_price": 0.0, "slippage_bps": 0.0, "fees": 0.0, "fills": 0}
        traded = float(config.to_qty(cycle.abs_units))
        vwap = cycle.notional / traded
        mid = self.open.mid
        slip = ((vwap - mid) if cycle.units > 0 else (mid - vwap)) / mid * 1e4
        return {"exec_qty": float(config.to_qty(cycle.units)), "exec_price": vwap, "slippage_bps": slip,
                "fees": cycle.fees, "fills": cycle.count}

    # ------------------------------------------------------------------ decisions
    def next_decision(self) -> int:
        """The id of a new decision (every answered decision has one, a halted one too)."""
        self.decisions += 1
        return self.decisions - 1

    def open_order(self, decision_id: int, units: int, mid: float) -> None:
        """Close the cycle and open decision ``decision_id``'s order of ``units`` (signed grid units) at ``mid``.

        A halted decision opens none: the last order stays open, so fills of an order in flight when the
        account halted are still booked.
        """
        self.open = OpenOrder(decision_id=int(decision_id), units=int(units), mid=float(mid))
        self.cycle = CycleFills()

    def view(self, config: MarketConfig, mid: float | None = None) -> dict[str, Any]:
        """The account as the API shows it (valued at ``mid``, else at the last decision's mid)."""
        mark = mid if mid is not None else (self.open.mid if self.open is not None else math.nan)
        equity, peak, drawdown = self.mark(mark, config) if math.isfinite(mark) else (None, self.peak, None)
        order = None if self.open is None else {
            "decision_id": self.open.decision_id, "ordered": float(config.to_qty(self.open.units)),
            "filled": float(config.to_qty(self.open.filled_units) * (1 if self.open.units >= 0 else -1)),
            "mid": self.open.mid}
        return {"account": self.name, "position": self.position(config), "cash": self.cash, "cost_basis": self.cost,
                "equity": equity, "peak_equity": peak, "drawdown": drawdown, "session": self.session,
                "session_step": self.t, "decisions": self.decisions, "open_order": order}


__all__ = ["Account", "CycleFills", "OpenOrder"]
