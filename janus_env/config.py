"""Market configuration: one dataclass, flattened into the float64 ``params`` array kernels read.

Units: one step is one decision interval; prices are integer ticks on a grid of
``n_ticks`` levels centred on ``initial_price``; quantities are shares.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from janus_env.checks import check_choice, check_int, check_number, check_positive

# ---- params layout (indices are compile-time constants for numba) ----------------
P_TICK_SIZE = 0
P_LOT = 1
P_MAX_POSITION = 2
P_INITIAL_CASH = 3
P_FEE_BPS = 4
P_EPISODE_STEPS = 5
P_WINDOW = 6
P_N_LEVELS = 7
P_PROCESS = 8
P_KAPPA = 9
P_SIGMA = 10
P_DRIFT = 11
P_REGIME_VOL_MULT = 12
P_P_CALM_TO_TURBULENT = 13
P_P_TURBULENT_TO_CALM = 14
P_LAMBDA_LIMIT = 15
P_LAMBDA_MARKET = 16
P_CANCEL_RATE = 17
P_DEPTH_DECAY = 18
P_ORDER_SIZE = 19
P_HAWKES_DECAY = 20
P_HAWKES_GAIN = 21
P_ACTIVITY_MAX = 22
P_MM_SIZE = 23
P_MM_HALF_SPREAD = 24
P_MM_SKEW = 25
P_MM_REFRESH = 26
P_INFORMED_RATE = 27
P_INFORMED_THRESHOLD = 28
P_INFORMED_SIZE = 29
P_MOMENTUM_RATE = 30
P_MOMENTUM_LOOKBACK = 31
P_MOMENTUM_THRESHOLD = 32
P_MOMENTUM_SIZE = 33
P_EVENT_KIND = 34
P_EVENT_START = 35
P_EVENT_LENGTH = 36
P_EVENT_DEPTH = 37
P_EVENT_INTENSITY = 38
P_VPIN_BUCKET = 39
P_VPIN_N_BUCKETS = 40
P_RISK_AVERSION = 41
P_INITIAL_PRICE_TICKS = 42
P_N_TICKS = 43
P_WARMUP = 44
P_FUND_LIMIT = 45
P_HIST_LEN = 46
P_REWARD_MODE = 47
P_MAX_LEVERAGE = 48
N_PARAMS = 49

PROCESS_OU, PROCESS_GBM, PROCESS_MARKOV = 0, 1, 2
EVENT_NONE, EVENT_FLASH_CRASH, EVENT_SQUEEZE = 0, 1, 2
REWARD_PNL, REWARD_RISK_ADJUSTED = 0, 1

# ---- agent ids on the book --------------------------------------------------------
AGENT_EXTERNAL = 0
AGENT_JANUS = 1
AGENT_MM0 = 2
N_MARKET_MAKERS = 2
AGENT_INFORMED = 4
AGENT_MOMENTUM = 5
AGENT_NOISE0 = 6
N_NOISE = 26
N_AGENTS = AGENT_NOISE0 + N_NOISE

_BAD_FIELD = "Expected `{}` {}, got {!r}"


@dataclass(frozen=True)
class MarketConfig:
    """Every knob of the simulated market, with defaults from DESIGN.md where it gives one.

    Args:
        tick_size: currency per tick.
        initial_price: starting mid in currency (the centre of the tick grid).
        n_ticks: width of the price grid; the fundamental is kept inside its middle 90%.
        capacity: maximum resting orders per book.
        lot: quantity per action unit (shares, or units of the asset: ``0.01`` BTC on fractional data).
        max_position: absolute position limit, same unit as ``lot`` (orders beyond it are cut and reported).
        qty_step: the quantity grid: orders, fills and positions are whole multiples of it (kept as
            integer counts internally, so they are exact). ``None`` (default): the finest decimal step
            of ``lot`` and ``max_position``, at most 1 (``lot=100`` → 1 share, ``lot=0.01`` → 0.01).
            ``lot`` and ``max_position`` must be multiples of it. The simulated book trades whole
            shares (step 1); fractional steps need ``scenario="historical"`` data in fractional units.
        max_leverage: buying power: an order may take gross exposure ``|position| · mid`` to at most
            ``max_leverage`` × equity; beyond that it is cut and reported (``rejected_reason``
            ``"leverage"``); reducing orders always pass; ``inf`` disables the check. Default 2, the
            initial margin of a US margin account (Regulation T, 12 CFR 220.12: 50% of the position's
            value): it never binds in the default simulated market (``max_position · initial_price``
            = 1 × ``initial_cash``) and keeps any single order from bankrupting the account (the
            default ``lot=100`` on BTC data is cut to about 2 × cash / price).
        initial_cash: agent cash at reset, in currency.
        fee_bps: taker fee on the agent's traded notional, basis points.
        episode_steps: decisions per session.
        step_seconds: market time one step stands for, in seconds (23.4; used to annualize results):
            1000 steps of 23.4 s make one 6.5-hour equity session (23,400 s), and the default per-step
            volatility 4 bps gives 0.0004·sqrt(252·1000) ≈ 20% a year, a typical large-cap stock.
        window: length of the ``prices``/``volumes`` history.
        n_levels: book levels in the observation.
        process: fundamental process, ``"ou"``, ``"gbm"`` or ``"markov"``.
        kappa: OU mean-reversion per step.
        sigma: per-step volatility of the log fundamental.
        drift: per-step drift of the log fundamental (GBM).
        regime_vol_mult: volatility multiplier of the turbulent Markov regime.
        p_calm_to_turbulent, p_turbulent_to_calm: Markov switching probabilities per step.
        lambda_limit, lambda_market: noise-trader limit/market arrivals per step at activity 1.
        cancel_rate: per-step cancellation probability of each resting noise order.
        depth_decay: success probability of the geometric distance (ticks) of noise limit orders.
        order_size: mean noise order size in shares.
        hawkes_decay, hawkes_gain: activity ``a ← 1 + decay·(a−1) + gain·|Δmid|`` *(ours)*.
        activity_max: cap on the activity multiplier.
        mm_size, mm_half_spread, mm_skew, mm_refresh: market-maker quote size (shares), half
            spread (ticks), inventory skew (ticks per 100 shares) and requote period (steps).
        informed_rate, informed_threshold, informed_size: informed-trader arrival probability,
            mispricing threshold (ticks) and order size.
        momentum_rate, momentum_lookback, momentum_threshold, momentum_size: momentum trader.
        event: stress event, ``"none"``, ``"flash_crash"`` or ``"squeeze"``.
        event_start, event_length: event timing as fractions of ``episode_steps``.
        event_depth: size of the event's fundamental move (log price).
        event_intensity: cascade market orders per step during the event.
        vpin_bucket, vpin_n_buckets: VPIN bucket volume (shares) and number of buckets.
        risk_aversion: inventory penalty weight for ``reward="risk_adjusted"`` *(ours)*.
        warmup: flow steps run at reset before the first observation.
    """

    tick_size: float = 0.01
    initial_price: float = 100.0
    n_ticks: int = 4096
    capacity: int = 2048
    lot: float = 100
    max_position: float = 1000
    qty_step: float | None = None
    max_leverage: float = 2.0
    initial_cash: float = 100_000.0
    fee_bps: float = 0.5
    episode_steps: int = 1000
    step_seconds: float = 23.4
    window: int = 32
    n_levels: int = 5
    process: str = "ou"
    kappa: float = 0.01
    sigma: float = 0.0004
    drift: float = 0.0
    regime_vol_mult: float = 3.0
    p_calm_to_turbulent: float = 0.004
    p_turbulent_to_calm: float = 0.02
    lambda_limit: float = 2.4
    lambda_market: float = 0.5
    cancel_rate: float = 0.01
    depth_decay: float = 0.35
    order_size: float = 200.0
    hawkes_decay: float = 0.9
    hawkes_gain: float = 0.3
    activity_max: float = 8.0
    mm_size: int = 200
    mm_half_spread: int = 2
    mm_skew: float = 0.5
    mm_refresh: int = 5
    informed_rate: float = 0.5
    informed_threshold: float = 1.0
    informed_size: int = 300
    momentum_rate: float = 0.1
    momentum_lookback: int = 10
    momentum_threshold: float = 3.0
    momentum_size: int = 200
    event: str = "none"
    event_start: float = 0.4
    event_length: float = 0.15
    event_depth: float = 0.06
    event_intensity: float = 3.0
    vpin_bucket: int = 2000
    vpin_n_buckets: int = 20
    risk_aversion: float = 0.1
    warmup: int = 64

    def __post_init__(self) -> None:
        positive = ("tick_size", "initial_price", "lot", "max_position", "initial_cash", "episode_steps",
                    "window", "n_levels", "order_size", "mm_refresh", "vpin_bucket", "vpin_n_buckets",
                    "activity_max", "momentum_lookback", "step_seconds")
        ints = {f.name for f in fields(self) if f.type == "int"}  # counts: a float (1.5) or a bool is refused
        for name in positive:
            if name in ints:
                check_int(name, getattr(self, name), low=1)
            else:
                check_positive(name, getattr(self, name))
        non_negative = ("fee_bps", "kappa", "sigma", "lambda_limit", "lambda_market", "cancel_rate",
                        "hawkes_gain", "mm_size", "mm_half_spread", "mm_skew", "informed_rate",
                        "informed_threshold", "informed_size", "momentum_rate", "momentum_threshold",
                        "momentum_size", "event_depth", "event_intensity", "risk_aversion", "warmup",
                        "regime_vol_mult")
        for name in non_negative:
            if name in ints:
                check_int(name, getattr(self, name), low=0)
            else:
                check_number(name, getattr(self, name), low=0)
        for name in ("depth_decay", "hawkes_decay", "p_calm_to_turbulent", "p_turbulent_to_calm",
                     "event_start", "event_length"):
            check_number(name, getattr(self, name), low=0, high=1, low_open=name == "depth_decay")
        check_int("n_ticks", self.n_ticks, low=64)
        check_int("capacity", self.capacity, low=64)
        check_number("drift", self.drift)  # either sign; NaN or inf would poison the fundamental
        check_choice("process", self.process, sorted(_PROCESSES))
        check_choice("event", self.event, sorted(_EVENTS))
        if self.initial_price / self.tick_size < self.n_ticks / 2:
            raise ValueError(_BAD_FIELD.format(
                "initial_price / tick_size", f">= n_ticks / 2 = {self.n_ticks // 2}",
                self.initial_price / self.tick_size))
        check_positive("max_leverage", self.max_leverage, finite=False)  # inf disables the leverage check
        step = _resolve_qty_step(self.lot, self.max_position, self.qty_step)
        inverse = round(1.0 / step)
        object.__setattr__(self, "_qty_step", step)
        # a step of 1/k (0.01 = 1/100): units / k is the float nearest the exact decimal
        object.__setattr__(self, "_qty_inverse", inverse if abs(inverse * step - 1.0) < 1e-12 else 0)

    @property
    def resolved_qty_step(self) -> float:
        """The quantity grid in use: ``qty_step``, or the one derived from ``lot`` and ``max_position``."""
        return self._qty_step  # type: ignore[attr-defined]

    @property
    def lot_units(self) -> int:
        """``lot`` in grid units (an exact integer)."""
        return int(round(self.lot / self._qty_step))  # type: ignore[attr-defined]

    @property
    def max_position_units(self) -> int:
        """``max_position`` in grid units (an exact integer)."""
        return int(round(self.max_position / self._qty_step))  # type: ignore[attr-defined]

    def to_qty(self, units: float | np.ndarray) -> float | np.ndarray:
        """Grid units → quantity, as the nearest float to the exact decimal (``3`` units of 0.01 → ``0.03``)."""
        if self._qty_inverse:  # type: ignore[attr-defined]
            return units / self._qty_inverse  # type: ignore[attr-defined]  # one correctly rounded division
        return units * self._qty_step  # type: ignore[attr-defined]

    def replace(self, **changes: object) -> "MarketConfig":
        """A copy with ``changes`` applied (validated); unknown names are a ``TypeError``."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"Unknown market parameter(s) {unknown}; expected some of {sorted(known)}")
        return replace(self, **changes)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_params(self) -> np.ndarray:
        """Flatten into the float64 array that the numba kernels read."""
        p = np.zeros(N_PARAMS, dtype=np.float64)
        p[P_TICK_SIZE] = self.tick_size
        p[P_LOT] = self.lot
        p[P_MAX_POSITION] = self.max_position
        p[P_INITIAL_CASH] = self.initial_cash
        p[P_FEE_BPS] = self.fee_bps
        p[P_EPISODE_STEPS] = self.episode_steps
        p[P_WINDOW] = self.window
        p[P_N_LEVELS] = self.n_levels
        p[P_PROCESS] = _PROCESSES[self.process]
        p[P_KAPPA] = self.kappa
        p[P_SIGMA] = self.sigma
        p[P_DRIFT] = self.drift
        p[P_REGIME_VOL_MULT] = self.regime_vol_mult
        p[P_P_CALM_TO_TURBULENT] = self.p_calm_to_turbulent
        p[P_P_TURBULENT_TO_CALM] = self.p_turbulent_to_calm
        p[P_LAMBDA_LIMIT] = self.lambda_limit
        p[P_LAMBDA_MARKET] = self.lambda_market
        p[P_CANCEL_RATE] = self.cancel_rate
        p[P_DEPTH_DECAY] = self.depth_decay
        p[P_ORDER_SIZE] = self.order_size
        p[P_HAWKES_DECAY] = self.hawkes_decay
        p[P_HAWKES_GAIN] = self.hawkes_gain
        p[P_ACTIVITY_MAX] = self.activity_max
        p[P_MM_SIZE] = self.mm_size
        p[P_MM_HALF_SPREAD] = self.mm_half_spread
        p[P_MM_SKEW] = self.mm_skew
        p[P_MM_REFRESH] = self.mm_refresh
        p[P_INFORMED_RATE] = self.informed_rate
        p[P_INFORMED_THRESHOLD] = self.informed_threshold
        p[P_INFORMED_SIZE] = self.informed_size
        p[P_MOMENTUM_RATE] = self.momentum_rate
        p[P_MOMENTUM_LOOKBACK] = self.momentum_lookback
        p[P_MOMENTUM_THRESHOLD] = self.momentum_threshold
        p[P_MOMENTUM_SIZE] = self.momentum_size
        p[P_EVENT_KIND] = _EVENTS[self.event]
        p[P_EVENT_START] = np.floor(self.event_start * self.episode_steps)
        p[P_EVENT_LENGTH] = max(1.0, np.floor(self.event_length * self.episode_steps))
        p[P_EVENT_DEPTH] = self.event_depth
        p[P_EVENT_INTENSITY] = self.event_intensity
        p[P_VPIN_BUCKET] = self.vpin_bucket
        p[P_VPIN_N_BUCKETS] = self.vpin_n_buckets
        p[P_RISK_AVERSION] = self.risk_aversion
        p[P_INITIAL_PRICE_TICKS] = np.round(self.initial_price / self.tick_size)
        p[P_N_TICKS] = self.n_ticks
        p[P_WARMUP] = self.warmup
        # keep the fundamental inside 90% of the grid: |log(V/V0)| <= limit
        half = 0.45 * self.n_ticks
        p[P_FUND_LIMIT] = np.log1p(half / p[P_INITIAL_PRICE_TICKS])
        p[P_HIST_LEN] = max(self.window, self.momentum_lookback + 1)
        p[P_MAX_LEVERAGE] = self.max_leverage
        return p


_MAX_DECIMALS = 9

_OFF_GRID = "Expected `{}` to be a whole multiple of `qty_step` = {!r}, got {!r}"
_TOO_FINE = "Expected `{}` with at most 9 decimals (or an explicit `qty_step` it is a multiple of), got {!r}"


def _decimals(name: str, value: float) -> int:
    """The fewest decimals that write ``value`` exactly (to 1e-9 relative)."""
    for d in range(_MAX_DECIMALS + 1):
        scaled = value * 10**d
        if round(scaled) >= 1 and abs(scaled - round(scaled)) <= 1e-9 * scaled:
            return d
    raise ValueError(_TOO_FINE.format(name, value))


def _resolve_qty_step(lot: float, max_position: float, qty_step: float | None) -> float:
    """``qty_step``, checked, or the finest decimal step of ``lot`` and ``max_position`` (at most 1)."""
    if qty_step is None:
        return 10.0 ** -max(_decimals("lot", lot), _decimals("max_position", max_position))
    qty_step = check_positive("qty_step", qty_step, optional=True)  # None was handled above; the message says so
    for name, value in (("lot", lot), ("max_position", max_position)):
        k = value / qty_step
        if round(k) < 1 or abs(k - round(k)) > 1e-9 * k:
            raise ValueError(_OFF_GRID.format(name, qty_step, value))
    return float(qty_step)


_PROCESSES = {"ou": PROCESS_OU, "gbm": PROCESS_GBM, "markov": PROCESS_MARKOV}
_EVENTS = {"none": EVENT_NONE, "flash_crash": EVENT_FLASH_CRASH, "squeeze": EVENT_SQUEEZE}
