"""The circuit breakers of one account: ``BreakerConfig`` (the settings) and ``CircuitBreakers`` (the state).


Six breakers, checked on every step. The thresholds are DESIGN.md's ("breakers:
3× vol, 10% DD, 5% violations, 2× slippage", τ_fear 0.7); what each one is
measured against is the instrument's own history, so one set of defaults holds
for a simulated book with 0.5 bps steps, hourly BTC with 70 bps bars and daily
BTC with 450 bps bars. Windows, weights and minimum counts are *(ours)*.

| breaker | value | halts when |
| --- | --- | --- |
| `kill_switch` | 1 if `kill()` was called or the flag file exists, else 0 | value > 0 |
| `drawdown` | `info["drawdown"]`: loss from the session's peak equity, fraction | value > 0.10 |
| `volatility` | σ_t / σ_hist: the env's realized σ over the instrument's long-run σ | value > 3 |
| `fear` | `sigmoid(W_f·[VPIN excess, σ_t/σ_hist, Δp_max/σ_hist] + b_f)` | value > 0.7 (τ_fear) |
| `slippage` | mean actual / mean predicted slippage over the last 50 fills | value > 2, from 5 fills |
| `violation_rate` | (executed + 0.1 · blocked violations) / proposals, last 100 | value > 0.05, from 20 |

Why these defaults:

* drawdown 10%: DESIGN.md; a fraction of equity is already scale-free.
* volatility 3×: DESIGN.md; what it is measured against (σ_hist) is below.
* fear 0.7: DESIGN.md's τ_risk; the weights' calibration table is at
  :data:`DEFAULT_FEAR_WEIGHTS`, Δp_max over 20 steps (the largest of 20 calm
  moves is 2–4 σ).
* slippage 2× over 50 fills, from 5: DESIGN.md's 2×; the mean of fewer fills
  is one order's luck.
* violation rate 5% over 100 proposals, from 20: DESIGN.md's 5%; at fewer
  proposals one or two events decide the rate (1/20 is the threshold itself);
  blocked proposals weigh 0.1 (below).

**σ_hist** (the volatility baseline, also the unit of the fear inputs) starts
at the reset ``info["volatility"]`` — the env's realized σ over its window of
history *before* the session — and then averages the variance of the normal
readings, ``σ_hist² ← σ_hist² + α_n·(σ_t² − σ_hist²)``, updated after the
comparison: ``α_n = max(1/(n + 1), 1 − 2^(−1/500))`` after ``n`` readings, an
equal-weight running mean for the first ~720 readings (no single early window
dominates), then an EWMA with a 500-step half-life (it follows slow regime
changes). A reading above 3·σ_hist (the breaker's own threshold) is an event,
not history, and is left out, so a crash cannot raise its own baseline: through
the 75 steps of a simulated flash crash at 20–290× the calm σ, σ_hist moves by
at most 18% (20 seeds; winsorizing instead, at 3σ_hist, let it grow up to 3×).
Measured over 450 calm simulated episodes (``ou``, ``gbm``, ``regime``, five
policies, 500 steps), the 99th percentile of an episode's largest σ_t/σ_hist is
2.5–2.75 (2.92 at most), and over the whole hourly BTC file 2.34; a flash crash
or a squeeze trips it 2–17 steps after the event starts
(``benchmarks/bench_breakers.py``).

**Blocked proposals**: a proposal counts as a *violation* when its SatAgg is
below the shield's τ (``info["ltn"]["violation"] > 1 − threshold``). If the
shield replaced it (``info["ltn"]["overridden"]``) it is *blocked*: nothing
reached the market, the shield did its job, and it counts ``blocked_weight``
(0.1) of an *executed* violation (one that reached the market: no vetoing
shield, e.g. a monitoring rule layer or a hand-written ``info["ltn"]``), which
counts 1. So executed violations halt above 5% of proposals, as DESIGN.md
says, while blocked ones halt only when more than half of the recent proposals
were blocked — a policy that keeps resending orders its risk layer rejects is
malfunctioning (the reject-rate kill switch of exchange pre-trade controls),
but one that meets the wash-sale or cash-reserve rule now and then is not.

The settings are declared once, in :class:`BreakerConfig` (a frozen dataclass,
checked on construction). :class:`CircuitBreakers` is the breakers of one account
on one ``BreakerConfig``, without an env around them; ``Amygdala`` holds one, and
``ParallelAmygdala`` one per guarded agent of the multi-agent env. Both wrappers
take the config (``config=BreakerConfig(...)``) or its fields as keywords
(``Amygdala(env, vol_ratio=4.0, fear_threshold=None)``); a YAML ``breakers:``
mapping goes through :meth:`BreakerConfig.from_mapping`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import deque
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, SupportsFloat

import numpy as np

from janus_env.checks import (
    check_bool,
    check_callable,
    check_fraction,
    check_int,
    check_mapping,
    check_number,
    check_positive,
)

BREAKERS: tuple[str, ...] = ("kill_switch", "drawdown", "volatility", "fear", "slippage", "violation_rate")
"""Breaker names, in the priority order used for ``halt_reason`` when several trip at once."""

DEFAULT_FEAR_WEIGHTS: tuple[float, float, float] = (2.0, 1.0, 0.25)
"""W_f for [VPIN excess (0–1), σ_t/σ_hist, Δp_max/σ_hist] *(ours)*, with :data:`DEFAULT_FEAR_BIAS`.

Inputs, all relative to the instrument's own history: VPIN excess =
``max(0, VPIN − VPIN_hist) / (1 − VPIN_hist)``, how far VPIN has moved from its
running mean towards 1 (Easley, López de Prado & O'Hara, 2012, read VPIN through
its own CDF for the same reason: its level differs by instrument); σ_t/σ_hist,
the volatility breaker's value; Δp_max/σ_hist, the largest one-step mid move of
the last ``fear_window`` steps in historical σ units. Calibration (z = W_f·x + b_f;
τ_fear = 0.7 is z = 0.85):

| market | VPIN excess | σ ratio | Δp_max/σ_hist | fear |
| --- | --- | --- | --- | --- |
| calm (simulated or real) | 0–0.2 | 1 | 2–4 | 0.01–0.03 |
| calm, 99th percentile of the episode maxima (450 simulated episodes) | | | | 0.13–0.26 |
| calm, worst reading measured: a 2 bps (two-tick) move in a quiet simulated book | 0.35 | 2.8 | 11 | 0.56 |
| BTC 2021-09-07 14:00, −6.5% in one hour (11σ; the hourly sample's largest bar) | ≈ 0 | 2.1 | 11 | 0.20 |
| 3× volatility with a 12σ move and toxic flow | 0.5 | 3 | 12 | 0.73 |
| flash-crash onset (simulated), BTC 2021-04-18 03:21 (15-level book) | | ≥ 3 | ≥ 15 | > 0.7: trips |

So fear fires on a crash, not on one large bar of a volatile asset (measurements:
``benchmarks/bench_breakers.py``)."""
DEFAULT_FEAR_BIAS: float = -6.0
"""b_f *(ours)*; see :data:`DEFAULT_FEAR_WEIGHTS`."""
DEFAULT_BLOCKED_WEIGHT: float = 0.1
"""Weight of a proposal the shield blocked in the violation rate (an executed violation weighs 1) *(ours)*."""
ZERO_VOLATILITY: float = 1e-9
"""A realized σ at or below this (1e-5 bps per step: what a running sum leaves of a window without a price
move) is no move: like σ = 0 it neither seeds nor enters σ_hist."""
VOL_EVENT_RATIO: float = 3.0
"""Readings above this multiple of σ_hist are left out of σ_hist when the volatility breaker is disabled
(else above its ``vol_ratio``)."""

ERROR_PREFIX = "amygdala_error"

_CLEAN, _BLOCKED, _EXECUTED = 0, 1, 2  # a proposal's class in the violation rate

_BAD_FEAR_WEIGHTS = "Expected `fear_weights` to be 3 finite numbers (VPIN excess, σ ratio, Δp_max ratio), got {!r}"
_BAD_KILL_FILE = "Expected `kill_file` to be a str or os.PathLike, or None, got {!r}"
_BAD_REASON = "Expected `reason` to be a non-empty str, got {!r}"
_BAD_CONFIG = "Expected `config` to be a BreakerConfig or None, got {!r}"
_UNKNOWN_SETTING = "Unknown breaker argument {!r}; expected some of {}"
_NOT_FINITE = "{} is not finite: {!r}"
_STARTING = f"{ERROR_PREFIX}: the session is being started"  # the halt reason while start_session runs



class Reading(NamedTuple):
    """One breaker's state after a step."""

    value: float
    """Current value, in the units of the table in the module docstring."""
    threshold: float | None
    """Halts when ``value > threshold``; None = disabled."""
    active: bool
    """False while the breaker is disabled or lacks data (too few fills, no baseline, ...)."""
    reason: str
    """Human-readable details, used as the halt reason when it trips."""

    @property
    def tripped(self) -> bool:
        return self.active and self.threshold is not None and self.value > self.threshold


def _finite(name: str, value: Any) -> float:
    """``float(value)``; raises (and so halts) on NaN/inf or a non-number."""
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(_NOT_FINITE.format(name, value))
    return x


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _flag_exists(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` exists. Only "not found" means no flag: any other OS error propagates (and halts)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return False
    return True


def error_reason(stage: str, err: BaseException) -> str:
    """The halt reason of a fail-safe halt: ``"amygdala_error: <stage> raised <ExceptionType>: <message>"``."""
    return f"{ERROR_PREFIX}: {stage} raised {type(err).__name__}: {err}"


CALLABLE_FIELDS: tuple[str, ...] = ("slippage_predictor", "anomaly_detector")
""":class:`BreakerConfig` fields that take callables: set in code, not from a YAML file or a command line."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class BreakerConfig:
    """The circuit breakers' settings: the one place they are declared, with their defaults and reasons.

    :class:`CircuitBreakers` runs on one, and so do :class:`~wrappers.amygdala.Amygdala` and
    :class:`~wrappers.parallel_amygdala.ParallelAmygdala` (which take it as
    ``config=`` or its fields as keywords). Each threshold can be None to
    disable its breaker. The thresholds are DESIGN.md's ("breakers: 3× vol,
    10% DD, 5% violations, 2× slippage", τ_fear 0.7); windows, weights and
    minimum counts are *(ours)*, each with its reason below (the module
    docstring has the measurements). Values are checked on construction and
    numbers stored as ``float`` (``int`` for counts, a tuple for
    ``fear_weights``); change one with ``dataclasses.replace(config, ...)``.

    Raises:
        TypeError: a value of the wrong type (e.g. ``slippage_ratio="2"``, ``kill_file=7``).
        ValueError: a value out of range (e.g. ``max_drawdown=0``, ``fear_threshold=1.5``).
            Messages are :data:`janus_env.checks.BAD_VALUE`'s, e.g.
            ``"Expected `fear_threshold` to be a number in (0, 1) or None, got 1.5"``.

    Example:
        ```python
        config = BreakerConfig(max_drawdown=0.05, fear_threshold=None)   # fear breaker off
        BreakerConfig.from_mapping({"vol_ratio": 4, "fear_weights": [2, 1, 0.25]})   # a YAML `breakers:` mapping
        env = Amygdala(env, config=config)
        ```
    """

    max_drawdown: float | None = 0.10
    """Drawdown breaker: halts when ``info["drawdown"]``, the loss from the session's peak equity, exceeds
    this fraction (0.10, DESIGN.md; a fraction of equity is already scale-free)."""
    vol_ratio: float | None = 3.0
    """Volatility breaker: halts when σ_t > ``vol_ratio``·σ_hist (3.0, DESIGN.md). Readings above it are
    events, left out of σ_hist (``VOL_EVENT_RATIO`` plays that part when the breaker is disabled)."""
    vol_halflife: float = 500.0
    """Half-life in steps of the σ_hist (and VPIN_hist) EWMA once the equal-weight running mean hands over
    (500) *(ours)*: long enough that a 75-step event is a small part of the baseline, short enough to follow a
    change of regime over a trading session."""
    fear_threshold: float | None = 0.7
    """τ_fear in (0, 1): the fear breaker halts above this activation (0.7, DESIGN.md's τ_risk)."""
    fear_weights: tuple[float, float, float] = DEFAULT_FEAR_WEIGHTS
    """W_f for (VPIN excess, σ_t/σ_hist, Δp_max/σ_hist) ((2.0, 1.0, 0.25)) *(ours)*: calm ≈ 0.02, a single
    11σ hourly BTC bar ≈ 0.2, a flash crash ≈ 1 (calibration table at :data:`DEFAULT_FEAR_WEIGHTS`)."""
    fear_bias: float = DEFAULT_FEAR_BIAS
    """b_f (−6.0) *(ours)*; see :data:`DEFAULT_FEAR_WEIGHTS`."""
    fear_window: int = 20
    """Steps over which Δp_max is taken (20) *(ours)*: the largest of 20 calm moves is 2–4 σ."""
    slippage_ratio: float | None = 2.0
    """Slippage breaker: halts when mean actual slippage > ``slippage_ratio`` × the mean prediction
    (2.0, DESIGN.md)."""
    slippage_predictor: Callable[[Any, Any, dict[str, Any]], SupportsFloat] | None = None
    """Optional ``(obs, action, info) -> bps``, called before the action is forwarded (e.g. the cerebellum's
    ``predictor``); None reads ``info["predicted_slippage_bps"]`` from an inner component."""
    slippage_window: int = 50
    """Fills averaged by the slippage breaker (50) *(ours)*."""
    min_fills: int = 5
    """Fills needed before the slippage breaker can fire (5) *(ours)*: the mean of fewer fills is one
    order's luck."""
    min_predicted_bps: float = 0.1
    """Floor of the mean prediction in the slippage ratio, bps (0.1) *(ours)*: a zero prediction does not
    divide by 0."""
    max_violation_rate: float | None = 0.05
    """Violation-rate breaker: halts above this weighted fraction of LTN proposals (0.05, DESIGN.md)."""
    violation_window: int = 100
    """Proposals in the rolling violation rate (100) *(ours)*."""
    min_proposals: int = 20
    """Proposals needed before the violation rate can fire (20) *(ours)*: at fewer, one or two events decide
    the rate (1/20 is the threshold itself)."""
    blocked_weight: float = DEFAULT_BLOCKED_WEIGHT
    """Weight in [0, 1] of a proposal the shield blocked (0.1) *(ours)*; an executed violation weighs 1, so
    blocked proposals halt only when more than half of the recent ones were blocked. 1 counts them like
    executed violations, 0 ignores them."""
    kill_file: str | os.PathLike[str] | None = None
    """Path whose existence halts trading (None: no file flag). In ``ParallelAmygdala``, ``{agent}`` in the
    path is replaced by each agent's name (one file per agent)."""
    anomaly_detector: Callable[[Any], Any] | None = None
    """Optional ``obs -> bool``, e.g. ``SleepState.monitor.is_anomaly`` on flattened observations; an
    anomaly (or ``info["anomaly"]``) adds ``anomaly_weight`` to the fear input."""
    anomaly_weight: float = 3.0
    """Fear-input weight of an anomaly (3.0) *(ours)*."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: store the checked, normalized values
        # thresholds: None disables the breaker
        for name in ("max_drawdown", "vol_ratio", "slippage_ratio"):
            set_(self, name, check_positive(name, getattr(self, name), optional=True))
        for name in ("fear_threshold", "max_violation_rate"):
            set_(self, name, check_fraction(name, getattr(self, name), low_open=True, high_open=True, optional=True))
        for name in ("vol_halflife", "min_predicted_bps", "anomaly_weight"):
            set_(self, name, check_positive(name, getattr(self, name)))
        for name in ("fear_window", "slippage_window", "min_fills", "violation_window", "min_proposals"):
            set_(self, name, check_int(name, getattr(self, name), low=1))
        try:
            weights = tuple(self.fear_weights)
        except TypeError as err:
            raise TypeError(_BAD_FEAR_WEIGHTS.format(self.fear_weights)) from err
        if len(weights) != 3:
            raise ValueError(_BAD_FEAR_WEIGHTS.format(self.fear_weights))
        set_(self, "fear_weights", tuple(check_number(f"fear_weights[{i}]", w) for i, w in enumerate(weights)))
        set_(self, "fear_bias", check_number("fear_bias", self.fear_bias))
        set_(self, "blocked_weight", check_fraction("blocked_weight", self.blocked_weight))
        for name in CALLABLE_FIELDS:
            check_callable(name, getattr(self, name), optional=True)
        if self.kill_file is not None and not isinstance(self.kill_file, (str, os.PathLike)):
            raise TypeError(_BAD_KILL_FILE.format(self.kill_file))

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any] | None = None, *,
                     base: BreakerConfig | None = None) -> BreakerConfig:
        """``base`` (default: the defaults) with the fields named in ``settings`` replaced.

        How a YAML ``breakers:`` mapping, ``--breaker NAME=VALUE`` pairs or wrapper keywords become a config.

        Args:
            settings: field name → value (None or empty: ``base`` unchanged).
            base: the config the settings change; None for ``BreakerConfig()``.

        Raises:
            TypeError: ``settings`` is not a mapping, ``base`` not a ``BreakerConfig``, a name that is not a
                field (the message lists the fields), or a value of the wrong type.
            ValueError: a value out of range.
        """
        if base is not None and not isinstance(base, BreakerConfig):
            raise TypeError(_BAD_CONFIG.format(base))
        if settings is None:
            settings = {}
        check_mapping("settings", settings)
        known = breaker_fields()
        for name in settings:
            if name not in known:
                raise TypeError(_UNKNOWN_SETTING.format(name, list(known)))
        if base is None:
            return cls(**settings)
        return dataclasses.replace(base, **settings) if settings else base


def breaker_fields(*, callables: bool = True) -> tuple[str, ...]:
    """The :class:`BreakerConfig` field names, in declaration order.

    Args:
        callables: False leaves out :data:`CALLABLE_FIELDS`, giving the settings a YAML file or a command
            line can set.
    """
    return tuple(f.name for f in dataclasses.fields(BreakerConfig) if callables or f.name not in CALLABLE_FIELDS)


class CircuitBreakers:
    """The amygdala's six breakers on one account, without an env around them.

    :class:`~wrappers.amygdala.Amygdala` holds one and adds the Gymnasium wrapper plumbing (blocking the
    action, the terminal transition); :class:`~wrappers.parallel_amygdala.ParallelAmygdala`
    holds one per guarded agent of a multi-agent env. The breakers and their inputs
    are described in :class:`~wrappers.amygdala.Amygdala` and the module table, their settings in
    :class:`BreakerConfig`. Use per session::

        breakers = CircuitBreakers(BreakerConfig(max_drawdown=0.05))
        breakers.start_session(obs, info)          # after reset
        reason = breakers.before_action(action)    # None: the action may go to the market
        reason = breakers.after_step(obs, info)    # None: still trading
        info["breakers"] = breakers.breaker_info()

    The session methods are fail-safe: an exception inside a breaker, the kill-switch check
    or the slippage predictor halts (``halt_reason = "amygdala_error: ..."``); it
    is never raised.

    Args:
        config: the settings (None: ``BreakerConfig()``, the defaults).

    Raises:
        TypeError: ``config`` is not a ``BreakerConfig``.
    """

    def __init__(self, config: BreakerConfig | None = None) -> None:
        if config is None:
            config = BreakerConfig()
        elif not isinstance(config, BreakerConfig):
            raise TypeError(_BAD_CONFIG.format(config))
        self._config = config
        self._obs_now: Any = None
        self._vol_alpha = 1.0 - 2.0 ** (-1.0 / config.vol_halflife)
        self._event_ratio = config.vol_ratio if config.vol_ratio is not None else VOL_EVENT_RATIO
        self._kill_reason: str | None = None
        self._clear_session()

    @property
    def config(self) -> BreakerConfig:
        """The settings (frozen: build new breakers for new settings)."""
        return self._config

    # ------------------------------------------------------------- kill switch
    def kill(self, reason: str = "manual kill") -> None:
        """Engage the manual kill switch: the next action halts without being forwarded.

        The switch stays engaged across ``reset()`` until ``clear_kill()``.

        Raises:
            TypeError / ValueError: if ``reason`` is not a non-empty str.
        """
        if not isinstance(reason, str):
            raise TypeError(_BAD_REASON.format(reason))
        if not reason.strip():
            raise ValueError(_BAD_REASON.format(reason))
        self._kill_reason = reason

    def clear_kill(self) -> None:
        """Disengage the manual kill switch (the file flag is cleared by deleting the file)."""
        self._kill_reason = None

    @property
    def halted(self) -> bool:
        """True from a halt until the next ``reset()``."""
        return self._halted

    @property
    def halt_reason(self) -> str | None:
        """Why the breakers halted (``"<breaker>: <details>"``), None while trading."""
        return self._halt_reason

    def halt_on_error(self, stage: str, err: BaseException) -> str:
        """The fail-safe: halt because ``err`` was raised at ``stage`` (outside the breakers: the wrapped env, ...).

        The first halt reason wins; returns the reason now in force, for a new halt
        ``"amygdala_error: <stage> raised <Error>: <message>"``.
        """
        self._halt(error_reason(stage, err))
        return self._halt_reason

    # ------------------------------------------------------------- one session
    def start_session(self, obs: Any, info: dict[str, Any]) -> None:
        """Forget the last session and seed the new one's baselines from the reset ``info``.

        σ_hist starts at ``info["volatility"]`` (the env's realized σ over its window of history
        before the session; inactive until a positive reading if it is 0), VPIN_hist at
        ``info["vpin"]``, and the mid history at ``info["mid"]``. A manual ``kill()`` is kept.

        Fail-closed: the breakers count as halted from the first line of this method until its last,
        so an error anywhere in it — clearing the last session included — leaves them halted with
        ``halt_reason = "amygdala_error: reset bookkeeping raised ..."`` and no reading of the last
        session: the session's first action is not let through.
        """
        self._halted, self._halt_reason = True, _STARTING
        try:
            self._clear_session()
            self._halted, self._halt_reason = True, _STARTING  # _clear_session cleared the flag
            sigma = _finite("info['volatility']", info["volatility"])
            if sigma < 0:
                raise ValueError(_NOT_FINITE.format("info['volatility'] (negative)", sigma))
            if sigma > ZERO_VOLATILITY:
                self._vol_var, self._vol_n = sigma * sigma, 1
            self._vpin_hist, self._vpin_n = _finite("info['vpin']", info["vpin"]), 1
            self._last_mid = _finite("info['mid']", info["mid"])
            self._readings = self._idle_readings()
            self._last_obs = obs
            self._last_info = info
        except Exception as err:  # fail-safe: the first step will not forward its action
            self._halted, self._halt_reason = True, error_reason("reset bookkeeping", err)
            self._readings = {}  # nothing of the last session is reported as this one's state
            return
        self._halted, self._halt_reason = False, None

    def before_action(self, action: Any) -> str | None:
        """Kill switch and slippage prediction for ``action``; the halt reason if it must not be forwarded.

        Returns None when the action may go to the market; otherwise (already halted, kill switch,
        or an error in the check or the predictor) the breakers are halted and the reason returned.
        """
        if self._halted:
            return self._halt_reason
        try:
            reason = self._pre_step(action)
        except Exception as err:
            reason = error_reason(self._stage, err)
        if reason is not None:
            self._halt(reason)
        return reason

    def after_step(self, obs: Any, info: dict[str, Any]) -> str | None:
        """Update every breaker from the step's ``obs`` and ``info``; the halt reason if halted, else None.

        ``info`` gains ``predicted_slippage_bps`` (when a predictor is used) and ``anomaly``,
        as with :class:`~wrappers.amygdala.Amygdala`. An ``info["halted"]`` from an inner safety layer halts too.
        """
        self._obs_now = obs
        if not self._halted:
            try:
                self._post_step(info)
            except Exception as err:
                self._halt(error_reason("post-step bookkeeping", err))
        self._last_obs = obs
        self._last_info = info
        return self._halt_reason if self._halted else None

    def breaker_info(self) -> dict[str, dict[str, Any]]:
        """``{breaker: {"value", "threshold", "active", "tripped", "reason"}}`` for all six (``info["breakers"]``).

        A breaker that raised has ``"error"`` (its halt reason) and ``value`` None.
        """
        out: dict[str, dict[str, Any]] = {}
        for name in BREAKERS:
            r = self._readings.get(name)
            if r is None:
                out[name] = {"value": None, "threshold": self._threshold(name), "active": False,
                             "tripped": False, "reason": f"{name}: not evaluated"}
            elif isinstance(r, str):
                out[name] = {"value": None, "threshold": self._threshold(name), "active": False,
                             "tripped": False, "error": r, "reason": r}
            else:
                out[name] = {"value": float(r.value), "threshold": r.threshold, "active": bool(r.active),
                             "tripped": r.tripped, "reason": r.reason}
        return out

    @property
    def sigma_hist(self) -> float | None:
        """σ_hist, the session's long-run volatility baseline (per-step σ; None before a positive reading)."""
        return None if self._vol_var is None else math.sqrt(self._vol_var)

    @property
    def vpin_hist(self) -> float | None:
        """VPIN_hist, the running mean of VPIN the fear breaker's VPIN excess is measured from."""
        return self._vpin_hist

    # --------------------------------------------------------------- internals
    def _clear_session(self) -> None:
        self._halted = False
        self._halt_reason: str | None = None
        self._vol_var: float | None = None  # σ_hist²
        self._vol_n = 0  # readings in σ_hist
        self._vpin_hist: float | None = None
        self._vpin_n = 0
        self._last_mid: float | None = None
        # |log mid_s/mid_{s-1}| of the fear_window − 1 steps before this one (Δp_max adds this step's move)
        c = self._config
        self._moves: deque[float] = deque(maxlen=c.fear_window - 1)
        self._fills: deque[tuple[float, float]] = deque(maxlen=c.slippage_window)
        self._proposals: deque[int] = deque(maxlen=c.violation_window)  # 0 clean, 1 blocked, 2 executed
        self._prediction: float | None = None
        self._readings: dict[str, Reading | str] = {}
        self._last_obs: Any = None
        self._last_info: dict[str, Any] = {}
        self._stage = "pre-step check"

    def _halt(self, reason: str) -> None:
        if not self._halted:
            self._halted = True
            self._halt_reason = reason

    def _kill_state(self) -> str | None:
        if self._kill_reason is not None:
            return self._kill_reason
        kill_file = self._config.kill_file
        if kill_file is not None and _flag_exists(kill_file):
            return f"flag file {os.fspath(kill_file)!s} exists"
        return None

    def _pre_step(self, action: Any) -> str | None:
        """Kill switch and slippage prediction, before the action may be forwarded."""
        self._prediction = None
        self._stage = "kill switch check"
        killed = self._kill_state()
        if killed is not None:
            self._readings["kill_switch"] = Reading(1.0, 0.0, True, f"kill_switch: {killed}")
            return f"kill_switch: {killed}"
        predictor = self._config.slippage_predictor
        if predictor is not None:
            self._stage = "slippage predictor"
            pred = predictor(self._last_obs, action, self._last_info)
            self._prediction = _finite("predicted slippage", pred)
        self._stage = "pre-step check"
        return None

    def _post_step(self, info: dict[str, Any]) -> None:
        """Update every breaker from the step's info; halt on a trip, an inner halt or an error."""
        if self._prediction is not None and "predicted_slippage_bps" not in info:
            info["predicted_slippage_bps"] = self._prediction
        readings: dict[str, Reading | str] = {}
        errors: list[str] = []
        for name in BREAKERS:
            try:
                reading = getattr(self, f"_check_{name}")(info)
                if not isinstance(reading, Reading):
                    raise TypeError(f"breaker returned {type(reading).__name__}, expected Reading")
                _finite(f"{name} value", reading.value)
                readings[name] = reading
            except Exception as err:
                reason = error_reason(f"{name} breaker", err)
                readings[name] = reason
                errors.append(reason)
        self._readings = readings
        if info.get("halted"):
            self._halt(str(info.get("halt_reason") or "halted by an inner safety wrapper"))
        if not errors:
            try:
                self._update_baselines(info)
            except Exception as err:
                errors.append(error_reason("baseline update", err))
        if errors:
            self._halt(errors[0])
            return
        for name in BREAKERS:
            reading = readings[name]
            if isinstance(reading, Reading) and reading.tripped:
                self._halt(reading.reason)
                return

    # -------------------------------------------------------------- breakers
    def _check_kill_switch(self, info: dict[str, Any]) -> Reading:
        killed = self._kill_state()
        if killed is None:
            return Reading(0.0, 0.0, True, "kill_switch: not engaged")
        return Reading(1.0, 0.0, True, f"kill_switch: {killed}")

    def _check_drawdown(self, info: dict[str, Any]) -> Reading:
        dd = _finite("info['drawdown']", info["drawdown"])
        thr = self._config.max_drawdown
        limit = "disabled" if thr is None else f"{thr:.2%}"
        return Reading(dd, thr, thr is not None, f"drawdown: session drawdown {dd:.2%} > {limit}")

    def _check_volatility(self, info: dict[str, Any]) -> Reading:
        sigma = _finite("info['volatility']", info["volatility"])
        if sigma < 0:
            raise ValueError(_NOT_FINITE.format("info['volatility'] (negative)", sigma))
        hist = self.sigma_hist
        thr = self._config.vol_ratio
        if hist is None:
            return Reading(0.0, thr, False, "volatility: no historical baseline yet")
        value = sigma / hist
        reason = (f"volatility: realized σ {sigma * 1e4:.2f} bps = {value:.2f}× historical "
                  f"{hist * 1e4:.2f} bps > {thr}×")
        return Reading(value, thr, thr is not None, reason)

    def _move(self, info: dict[str, Any]) -> float:
        """``|log(mid_t / mid_{t−1})|`` of this step (0 when either mid is not positive)."""
        mid = _finite("info['mid']", info["mid"])
        last = self._last_mid
        return abs(math.log(mid / last)) if last is not None and last > 0 and mid > 0 else 0.0

    def _check_fear(self, info: dict[str, Any]) -> Reading:
        move = self._move(info)
        vpin = _finite("info['vpin']", info["vpin"])
        sigma = _finite("info['volatility']", info["volatility"])
        # an observation far from every learned schema (the sleep cycle's UMAP monitor) raises fear
        anomaly = bool(info.get("anomaly", False))
        c = self._config
        if c.anomaly_detector is not None:
            anomaly = anomaly or bool(np.any(c.anomaly_detector(self._obs_now)))
        info["anomaly"] = anomaly
        hist = self.sigma_hist
        thr = c.fear_threshold
        if hist is None:
            return Reading(0.0, thr, False, "fear: no historical volatility baseline yet")
        base = self._vpin_hist if self._vpin_hist is not None else vpin
        excess = max(0.0, vpin - base) / (1.0 - base) if base < 1.0 else 0.0
        ratio = sigma / hist
        dp_max = max(max(self._moves, default=0.0), move) / hist
        w = c.fear_weights
        z = w[0] * excess + w[1] * ratio + w[2] * dp_max + c.fear_bias + c.anomaly_weight * anomaly
        fear = _sigmoid(z)
        reason = (f"fear: activation {fear:.3f} > {thr} (VPIN {vpin:.2f} = excess {excess:.2f} over "
                  f"{base:.2f}, σ {ratio:.2f}× historical, Δp_max {dp_max:.1f}σ, anomaly {anomaly})")
        return Reading(fear, thr, thr is not None, reason)

    def _update_baselines(self, info: dict[str, Any]) -> None:
        """Fold this step into σ_hist, VPIN_hist and the move history, after every breaker read them.

        ``σ_hist² ← σ_hist² + α_n·(σ_t² − σ_hist²)``,
        ``α_n = max(1/(n + 1), 1 − 2^(−1/vol_halflife))`` after ``n`` readings. Not readings:
        σ_t ≤ ``ZERO_VOLATILITY`` (no move in the env's window: the next tick would look like an
        explosion) and σ_t > c·σ_hist with c = ``vol_ratio`` (3; ``VOL_EVENT_RATIO`` when the breaker
        is disabled): an event, not history. VPIN_hist is the same running mean of every VPIN
        reading (VPIN is bounded).
        """
        sigma = _finite("info['volatility']", info["volatility"])
        if sigma > ZERO_VOLATILITY:
            if self._vol_var is None:
                self._vol_var, self._vol_n = sigma * sigma, 1
            elif sigma * sigma <= self._event_ratio * self._event_ratio * self._vol_var:
                self._vol_n += 1
                self._vol_var += max(1.0 / self._vol_n, self._vol_alpha) * (sigma * sigma - self._vol_var)
        vpin = _finite("info['vpin']", info["vpin"])
        if self._vpin_hist is None:
            self._vpin_hist, self._vpin_n = vpin, 1
        else:
            self._vpin_n += 1
            self._vpin_hist += max(1.0 / self._vpin_n, self._vol_alpha) * (vpin - self._vpin_hist)
        self._moves.append(self._move(info))
        self._last_mid = _finite("info['mid']", info["mid"])

    def _check_slippage(self, info: dict[str, Any]) -> Reading:
        c = self._config
        pred = self._prediction if c.slippage_predictor is not None else info.get("predicted_slippage_bps")
        exec_qty = _finite("info['exec_qty']", info["exec_qty"])
        if pred is not None and exec_qty != 0:
            actual = _finite("info['slippage_bps']", info["slippage_bps"])
            self._fills.append((actual, _finite("predicted slippage", pred)))
        n = len(self._fills)
        if n == 0:
            return Reading(0.0, c.slippage_ratio, False, "slippage: no predicted fills yet")
        mean_actual = sum(a for a, _ in self._fills) / n
        mean_pred = sum(p for _, p in self._fills) / n
        value = mean_actual / max(mean_pred, c.min_predicted_bps)
        active = c.slippage_ratio is not None and n >= c.min_fills
        reason = (f"slippage: average slippage {mean_actual:.2f} bps over {n} fills = {value:.1f}× "
                  f"predicted {mean_pred:.2f} bps > {c.slippage_ratio}×")
        return Reading(value, c.slippage_ratio, active, reason)

    def _check_violation_rate(self, info: dict[str, Any]) -> Reading:
        c = self._config
        ltn = info.get("ltn")
        if ltn is not None:
            tau = float(ltn.get("threshold", 0.9))
            violated = _finite("ltn violation", ltn["violation"]) > 1.0 - tau
            if bool(ltn.get("overridden", False)):
                self._proposals.append(_BLOCKED)  # the shield replaced it: nothing reached the market
            else:
                self._proposals.append(_EXECUTED if violated else _CLEAN)
        n = len(self._proposals)
        if n == 0:
            return Reading(0.0, c.max_violation_rate, False, "violation_rate: no LTN proposals yet")
        executed = self._proposals.count(_EXECUTED)
        blocked = self._proposals.count(_BLOCKED)
        rate = (executed + c.blocked_weight * blocked) / n
        active = c.max_violation_rate is not None and n >= c.min_proposals
        reason = (f"violation_rate: {executed} executed + {c.blocked_weight:g} × {blocked} blocked violations "
                  f"in {n} proposals ({rate:.1%} > {c.max_violation_rate})")
        return Reading(rate, c.max_violation_rate, active, reason)

    # -------------------------------------------------------------- reporting
    def _idle_readings(self) -> dict[str, Reading | str]:
        return {name: Reading(0.0, self._threshold(name), False, f"{name}: no step yet") for name in BREAKERS}

    def _threshold(self, name: str) -> float | None:
        c = self._config
        return {"kill_switch": 0.0, "drawdown": c.max_drawdown, "volatility": c.vol_ratio,
                "fear": c.fear_threshold, "slippage": c.slippage_ratio, "violation_rate": c.max_violation_rate}[name]
