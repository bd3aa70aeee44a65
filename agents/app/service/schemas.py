"""The request bodies of the decision service, validated with pydantic; every error names its field.

Bodies are parsed from the raw bytes with pydantic's own JSON parser in strict mode: numbers must be JSON
numbers (not strings or booleans), NaN and ±Infinity are refused (``allow_inf_nan=False``; a literal ``1e999``
overflows to inf and is refused too), unknown keys are refused, and every list has an upper length, so an
oversized field is a 422 that names it rather than a slow request. What depends on the served run (the
observation's shapes, the window) is checked by the service with the same error format (:class:`FieldError`).

Error answer (HTTP 400 for a body that is not JSON, 422 for the rest)::

    {"error": "invalid_request", "detail": [{"field": "market.prices[3]", "message": "Input should be a finite number"}]}

| body | endpoint | fields |
| --- | --- | --- |
| :class:`DecisionRequest` | ``POST /api/v1/decision`` | ``market`` (:class:`MarketBody`) or ``observation`` (:class:`ObservationBody`, with ``mid``) |
| :class:`FillRequest` | ``POST /api/v1/fills`` | ``decision_id``, ``qty`` (signed: + bought, − sold), ``price`` |
| :class:`HaltRequest` | ``POST /api/v1/halt`` | ``account`` or ``all``, ``reason`` |
| :class:`ResumeRequest` | ``POST /api/v1/resume`` | ``account`` or ``all`` |
| :class:`ResetRequest` | ``POST /api/v1/accounts/reset`` | ``account`` |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_STEPS = 10_000
"""Most history steps a market body may carry (``prices``, ``volumes``, ``buy_volumes``); the served run allows
at most ``window + episode_steps`` of them (a whole session)."""
MAX_LEVELS = 1_000
"""Most book levels per side in a market body (the observation keeps the run's ``n_levels``)."""
MAX_BODY_BYTES = 1 << 20
"""Default largest request body (1 MiB; ``serve.py --max-body-bytes``): a whole 1,000-step session of market
steps is about 50 KB."""
MAX_TEXT = 200
"""Longest free-text field (a halt reason, a timestamp string)."""
ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
"""Account (and key) names: a letter or digit, then up to 63 letters, digits, ``_``, ``.`` or ``-`` (they name
files in the store)."""

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
Level = Annotated[list[float], Field(min_length=2, max_length=2)]
"""One book level, ``[price, size]``."""


class FieldError(ValueError):
    """A request field the service refuses: ``field`` (dotted, with ``[i]`` indices) and the message.

    Args:
        field: where, e.g. ``"market.prices"`` or ``"decision_id"``.
        message: what is wrong, stating what was expected and what came.
        status: the HTTP status to answer with (422 unless the request is well-formed but cannot apply now:
            409).
    """

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


class MarketBody(BaseModel):
    """A desk's raw market state: the recent steps (oldest first, the last one now) and the current book.

    ``prices`` are mid prices, ``volumes`` the quantity traded in each step (in the unit of the run's ``lot``),
    ``buy_volumes`` (optional) the buyer-initiated part of each; ``bids``/``asks`` are ``[price, size]`` levels,
    best first. ``timestamp`` (optional, a number or a string) is only written to the audit trail. The service
    checks the rest against the run: :func:`agents.app.service.observation.desk_state`.
    """

    model_config = _STRICT
    prices: list[float] = Field(min_length=1, max_length=MAX_STEPS)
    volumes: list[float] = Field(min_length=1, max_length=MAX_STEPS)
    buy_volumes: list[float] | None = Field(default=None, max_length=MAX_STEPS)
    bids: list[Level] = Field(min_length=1, max_length=MAX_LEVELS)
    asks: list[Level] = Field(min_length=1, max_length=MAX_LEVELS)
    timestamp: float | Annotated[str, Field(max_length=MAX_TEXT)] | None = None


class ObservationBody(BaseModel):
    """The env's observation dict (keys and shapes of the run's ``Janus-LOB-v0`` observation space)."""

    model_config = _STRICT
    prices: list[float] = Field(max_length=MAX_STEPS)
    volumes: list[float] = Field(max_length=MAX_STEPS)
    book: list[list[float]] = Field(max_length=MAX_LEVELS)
    account: list[float] = Field(max_length=16)
    market: list[float] = Field(max_length=16)


class VenueState(BaseModel):
    """The venue's raw state at an observation (optional, with an observation body): what ``Janus-LOB-v0``'s
    ``info`` and ``book()`` hold in float64, so the glass box reads the venue's own numbers rather than values
    decoded from the float32 observation (:mod:`agents.app.service.venue`: the paper-trading loop sends it).

    Market: ``vpin``, ``volatility`` (σ per step, a fraction), ``spread`` (currency), ``volume`` (the step's
    traded quantity), ``book`` (rows ``[bid_px, bid_qty, ask_px, ask_qty]`` in currency/shares, best first,
    ``null`` for a missing level). Account (reconciled against the server's books): ``position``, ``cash``,
    ``equity``, ``drawdown``, ``pnl``. The step that ended (reconciled against the reported fills):
    ``exec_qty``, ``exec_price``, ``slippage_bps``, ``fees``, ``fills``.
    """

    model_config = _STRICT
    vpin: float = Field(ge=0.0)
    volatility: float = Field(ge=0.0)
    spread: float = Field(ge=0.0)
    volume: float = Field(ge=0.0)
    book: list[Annotated[list[float | None], Field(min_length=4, max_length=4)]] = Field(min_length=1,
                                                                                         max_length=MAX_LEVELS)
    position: float
    cash: float
    equity: float
    drawdown: float = Field(ge=0.0)
    pnl: float
    exec_qty: float = 0.0
    exec_price: float = Field(default=0.0, ge=0.0)
    slippage_bps: float = 0.0
    fees: float = Field(default=0.0, ge=0.0)
    fills: int = Field(default=0, ge=0)


class DecisionRequest(BaseModel):
    """``{"market": {...}}`` or ``{"observation": {...}, "mid": 101.25}`` (optionally ``"state": {...}``).

    An observation holds prices relative to the mid only; the glass box prices the account (position value,
    cash reserve) and the book at ``mid``, so it comes with the observation. ``state`` (:class:`VenueState`)
    gives the venue's raw float64 state with it.
    """

    model_config = _STRICT
    market: MarketBody | None = None
    observation: ObservationBody | None = None
    mid: float | None = Field(default=None, gt=0.0)
    state: VenueState | None = None


class FillRequest(BaseModel):
    """An execution of the account's open order: ``qty`` signed (+ bought, − sold) at ``price`` (its VWAP)."""

    model_config = _STRICT
    decision_id: int = Field(ge=0)
    qty: float
    price: float = Field(gt=0.0)


class HaltRequest(BaseModel):
    """The kill switch: halt one ``account`` (or ``all``) with a ``reason``."""

    model_config = _STRICT
    account: str | None = Field(default=None, pattern=ACCOUNT_PATTERN)
    all: bool = False
    reason: str = Field(default="manual halt", min_length=1, max_length=MAX_TEXT)


class ResumeRequest(BaseModel):
    """Clear the halt of one ``account`` (or ``all``)."""

    model_config = _STRICT
    account: str | None = Field(default=None, pattern=ACCOUNT_PATTERN)
    all: bool = False


class ResetRequest(BaseModel):
    """Start ``account`` afresh: flat, the run's cash, no open order, no halt, a new session (paper trading)."""

    model_config = _STRICT
    account: str = Field(pattern=ACCOUNT_PATTERN)


def field_name(loc: Sequence[Any]) -> str:
    """A pydantic error location as a dotted field: ``("market", "prices", 3)`` → ``"market.prices[3]"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def error_detail(err: ValidationError) -> tuple[int, list[dict[str, str]]]:
    """``(status, detail)`` of a pydantic error: 400 for a body that is not JSON, else 422; one entry per field."""
    errors = err.errors(include_url=False)
    status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
    return status, [{"field": field_name(e["loc"]), "message": str(e["msg"])} for e in errors]


__all__ = [
    "ACCOUNT_PATTERN", "MAX_BODY_BYTES", "MAX_LEVELS", "MAX_STEPS", "DecisionRequest", "FieldError", "FillRequest",
    "HaltRequest", "MarketBody", "ObservationBody", "ResetRequest", "ResumeRequest", "VenueState", "error_detail",
    "field_name",
]
