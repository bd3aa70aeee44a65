"""The venue's own state for the glass box, reconciled with the server's books; a fresh account per paper episode.

An observation body carries the observation the policy sees (float32, prices relative to the mid). Without more,
the glass box reads the raw state decoded from that encoding
(:meth:`~agents.app.service.observation.ObservationBuilder.from_observation`): values close to, not equal to,
the float64 ones the venue holds. A paper-trading loop (or a desk with a venue statement) sends the venue's raw
state with it, ``"state": {...}`` (:class:`~agents.app.service.schemas.VenueState`, the float64 ``info`` and
``book()`` of ``Janus-LOB-v0``); :func:`apply_venue` then puts the venue's numbers in the ``O_*`` row, the
``info`` and the book the shield, breakers, sizing and slippage predictor read — the numbers the same glass box
reads in-process in ``evaluate.py``, so the service decides exactly as it does there.

The account part of the state is the venue's statement; it is taken only when it agrees with the server's books:

* position: equal on the run's quantity grid (``round(position/qty_step)`` = the account's units);
* the step's execution: ``exec_qty`` equal on the grid to the fills reported since the last decision;
* cash and equity: within :data:`RECONCILE_TOLERANCE` × ``initial_cash`` of the server's; drawdown within
  :data:`RECONCILE_TOLERANCE`.

Otherwise the decision is refused (409, naming the field; nothing changes): a fill was not reported, or reported
wrong. The server's books stay the account of record (``GET /api/v1/account``); the venue's numbers differ from
them only by float rounding (the env books cash in integer ticks with cumulative fees, the server in currency
per fill).

:func:`reset_account` (``POST /api/v1/accounts/reset``, admin scope) starts an account afresh — flat, the run's
``initial_cash``, no open order, no halt, the glass box restarting at the next decision — as an env's ``reset``
starts an episode; decision ids keep counting (the audit trail stays one sequence).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agents.app.service.accounts import Account
from agents.app.service.observation import BuiltState
from agents.app.service.schemas import DecisionRequest, FieldError
from janus_env.config import MarketConfig
from janus_env.lob_env import info_from_out
from janus_env.simulator import (
    O_CASH,
    O_DRAWDOWN,
    O_EQUITY,
    O_PNL,
    O_POSITION,
    O_SPREAD,
    O_VOLATILITY,
    O_VOLUME,
    O_VPIN,
)
from wrappers.audit import to_jsonable

RECONCILE_TOLERANCE = 1e-6
"""Largest difference between the venue's cash or equity and the server's, as a fraction of ``initial_cash``
(and between the drawdowns): float rounding of two bookkeepings of the same fills is ≈ 1e-12 of it; one missed
fill of the smallest order moves cash by ``qty_step × price``, far more for any usual account (1 share at 100
against 1e-6 × 1e6 = 1)."""

_STATE_OBS_ONLY = "`state` goes with an observation body (a market body's state is built from the market)"
_OFF_GRID = "expected a multiple of the run's quantity grid {}, got {!r}"
_POSITION = ("the venue's position {!r} is not the account's {!r}: report every fill (POST /api/v1/fills) before "
             "the next decision")
_EXEC = ("the venue's exec_qty {!r} is not the {!r} reported for the last decision: report every fill before the "
         "next decision")
_DIFFERS = "the venue's {} {!r} differs from the server's {!r} by more than {:g} (RECONCILE_TOLERANCE)"
_NO_ACCOUNT = "no account named {!r}"


def _units(field: str, qty: float, step: float) -> int:
    units = round(qty / step)
    if abs(units * step - qty) > 1e-9 * max(step, abs(qty)):
        raise FieldError(field, _OFF_GRID.format(step, qty))
    return int(units)


def apply_venue(request: DecisionRequest, built: BuiltState, account: Account, config: MarketConfig,
                execution: dict[str, float]) -> dict[str, float]:
    """Put the venue's raw state (``request.state``) into ``built`` after reconciling it (module docstring).

    Args:
        request: the decision body (its ``state`` is not None).
        built: the state built from its observation (changed in place: ``out``, ``info``, ``book``).
        account: the server's books of the account.
        config: the run's market settings.
        execution: the server's execution keys of the fills reported since the last decision
            (:meth:`~agents.app.service.accounts.Account.cycle_execution`).

    Returns:
        The execution keys the glass box reads: the venue's (``exec_qty``, ``exec_price``, ``slippage_bps``,
        ``fees``, ``fills``).

    Raises:
        FieldError: ``state`` with a market body (422), a position off the grid (422), a position, execution,
            cash, equity or drawdown that does not reconcile with the server's books (409).
    """
    state = request.state
    if request.observation is None:
        raise FieldError("state", _STATE_OBS_ONLY)
    step = float(config.resolved_qty_step)
    units = _units("state.position", state.position, step)
    if units != account.units:
        raise FieldError("state.position", _POSITION.format(state.position, account.position(config)), 409)
    if _units("state.exec_qty", state.exec_qty, step) != _units("exec_qty", execution["exec_qty"], step):
        raise FieldError("state.exec_qty", _EXEC.format(state.exec_qty, execution["exec_qty"]), 409)
    out = built.out
    scale = RECONCILE_TOLERANCE * float(config.initial_cash)
    for name, ours, theirs, tol in (("cash", out[O_CASH], state.cash, scale),
                                    ("equity", out[O_EQUITY], state.equity, scale),
                                    ("drawdown", out[O_DRAWDOWN], state.drawdown, RECONCILE_TOLERANCE)):
        if not abs(float(ours) - theirs) <= tol:
            raise FieldError(f"state.{name}", _DIFFERS.format(name, theirs, float(ours), tol), 409)
    out[O_VPIN] = state.vpin
    out[O_VOLATILITY] = state.volatility
    out[O_SPREAD] = state.spread
    out[O_VOLUME] = state.volume
    out[O_POSITION] = state.position
    out[O_CASH] = state.cash
    out[O_EQUITY] = state.equity
    out[O_DRAWDOWN] = state.drawdown
    out[O_PNL] = state.pnl
    built.info = info_from_out(out.tolist())
    built.book = np.array([[math.nan if v is None else v for v in row] for row in state.book], dtype=np.float64)
    return {"exec_qty": state.exec_qty, "exec_price": state.exec_price, "slippage_bps": state.slippage_bps,
            "fees": state.fees, "fills": state.fills}


def reset_account(service: Any, name: str) -> dict[str, Any]:
    """Start account ``name`` of ``service`` (the :class:`~agents.app.service.service.DecisionService`, which
    imports this module) afresh (module docstring); stored before this returns.

    Raises:
        FieldError: no key of that name (404).
    """
    if name not in service.store.key_names():
        raise FieldError("account", _NO_ACCOUNT.format(name), 404)
    slot = service.slot(name)
    old = slot.account
    account = Account.new(name, service.config)
    account.decisions, account.session = old.decisions, old.session
    slot.account = account
    if name in service.halts:
        service.store.resume(name)
        del service.halts[name]
        service.metrics.halted.set(len(service.halts))
    slot.guard.breakers.clear_kill()
    slot.guard.live = False
    service.store.save_account(name, account.to_json())
    view = account.view(service.config)
    view.update(halted=False, halt_reason=None)
    return to_jsonable(view)


__all__ = ["RECONCILE_TOLERANCE", "apply_venue", "reset_account"]
