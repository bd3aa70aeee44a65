"""``Amygdala``: fail-safe circuit breakers that halt trading.

Six breakers, checked on every step (defaults from DESIGN.md, "breakers: 3× vol,
10% DD, 5% violations, 2× slippage"; the fear and window defaults are *(ours)*):

| breaker | value | halts when |
| --- | --- | --- |
| `kill_switch` | 1 if `kill()` was called or the flag file exists, else 0 | value > 0 |
| `drawdown` | `info["drawdown"]`: loss from the session's peak equity, fraction | value > 0.10 |
| `volatility` | σ_t / σ_hist: realized vol over its long-run (historical) level | value > 3 |
| `fear` | `sigmoid(W_f·[VPIN, σ_bps, Δp_max_bps] + b_f)` | value > 0.7 (τ_fear) |
| `slippage` | mean actual slippage / mean predicted slippage over the last fills | value > 2 |
| `violation_rate` | share of recent proposed actions that violated the LTN rules | value > 0.05 |

A halt ends the episode: ``terminated=True``, ``info["halted"] = True`` and
``info["halt_reason"] = "<breaker>: <details>"``. From then until ``reset()``
the wrapper never forwards another action: ``step()`` returns the same terminal
transition again (last observation, reward 0, ``info["action_forwarded"] = False``)
without stepping the wrapped env.

Fail-safe: any exception raised by the kill-switch check, the slippage predictor,
a breaker, or the bookkeeping around them halts with
``halt_reason = "amygdala_error: <stage> raised <Error>: <message>"`` — the action
is never let through on an error. Exceptions from the wrapped env's own ``step``
(a shield or a sizing wrapper inside, or the market itself) halt the same way
unless ``halt_on_env_error=False``.

Place the amygdala *outside* the LTN shield so that it reads ``info["ltn"]``
(info travels from the innermost wrapper outwards); the documented stack is
``AuditLog(Amygdala(LTNShield(Hypothalamus(env))))``.

``CircuitBreakers`` is the breakers of one account without the wrapper:
``Amygdala`` is built on it, and ``ParallelAmygdala`` keeps one per agent of the
multi-agent env.
"""

from __future__ import annotations

import math
import os
from collections import deque
from typing import Any, Callable, NamedTuple, SupportsFloat

import gymnasium as gym
import numpy as np

BREAKERS: tuple[str, ...] = ("kill_switch", "drawdown", "volatility", "fear", "slippage", "violation_rate")
"""Breaker names, in the priority order used for ``halt_reason`` when several trip at once."""

DEFAULT_FEAR_WEIGHTS: tuple[float, float, float] = (4.0, 0.2, 0.05)
"""W_f for [VPIN (0–1), σ (bps per step), Δp_max (bps)] *(ours)*."""
DEFAULT_FEAR_BIAS: float = -6.0
"""b_f *(ours)*; with W_f above, a calm market (VPIN 0.5, σ 0.7 bps, Δp_max 1.5 bps) scores ≈ 0.02."""

ERROR_PREFIX = "amygdala_error"

_BAD_RATIO = "Expected `{}` > 0 (or None to disable the breaker), got {!r}"
_BAD_FRACTION = "Expected `{}` in (0, 1) (or None to disable the breaker), got {!r}"
_BAD_COUNT = "Expected `{}` to be an int >= 1, got {!r}"
_BAD_POSITIVE = "Expected `{}` > 0, got {!r}"
_BAD_DETECTOR = "Expected `anomaly_detector` to be a callable obs -> bool, got {!r}"
_BAD_FEAR_WEIGHTS = "Expected `fear_weights` to be 3 finite numbers (VPIN, σ bps, Δp_max bps), got {!r}"
_BAD_FEAR_BIAS = "Expected `fear_bias` to be a finite number, got {!r}"
_BAD_PREDICTOR = "Expected `slippage_predictor` to be a callable (obs, action, info) -> bps, or None, got {!r}"
_BAD_KILL_FILE = "Expected `kill_file` to be a str or os.PathLike, or None, got {!r}"
_BAD_REASON = "Expected `reason` to be a non-empty str, got {!r}"
_NOT_FINITE = "{} is not finite: {!r}"
_NEED_RESET = "Call reset() before step()"

# Keys of the last info that describe the agent's own execution or decision; a blocked
# (not forwarded) transition zeroes / drops them so that nothing looks like a trade.
_EXEC_KEYS = ("fills", "exec_qty", "exec_price", "slippage_bps", "fees", "rejected_qty", "volume")
_DECISION_KEYS = ("ltn", "sizing", "go_nogo", "fusion_gates", "predicted_slippage_bps", "breakers",
                  "halted", "halt_reason", "action_forwarded")


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


def _check_ratio(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(_BAD_RATIO.format(name, value))
    if not math.isfinite(value) or value <= 0:
        raise ValueError(_BAD_RATIO.format(name, value))
    return float(value)


def _check_fraction(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(_BAD_FRACTION.format(name, value))
    if not 0.0 < value < 1.0:
        raise ValueError(_BAD_FRACTION.format(name, value))
    return float(value)


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(_BAD_COUNT.format(name, value))
    if value < 1:
        raise ValueError(_BAD_COUNT.format(name, value))
    return int(value)


def _check_positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(_BAD_POSITIVE.format(name, value))
    if not math.isfinite(value) or value <= 0:
        raise ValueError(_BAD_POSITIVE.format(name, value))
    return float(value)


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


def _error_reason(stage: str, err: BaseException) -> str:
    return f"{ERROR_PREFIX}: {stage} raised {type(err).__name__}: {err}"


class CircuitBreakers:
    """The amygdala's six breakers on one account, without an env around them.

    :class:`Amygdala` is this plus the Gymnasium wrapper plumbing (blocking the
    action, the terminal transition); :class:`~wrappers.parallel_amygdala.ParallelAmygdala`
    keeps one instance per guarded agent of a multi-agent env. The breakers, their
    inputs and their defaults are those of :class:`Amygdala` (see its docstring
    and the module table). Use per session::

        breakers.start_session(obs, info)          # after reset
        reason = breakers.before_action(action)    # None: the action may go to the market
        reason = breakers.after_step(obs, info)    # None: still trading
        info["breakers"] = breakers.breaker_info()

    The session methods are fail-safe: an exception inside a breaker, the kill-switch check
    or the slippage predictor halts (``halt_reason = "amygdala_error: ..."``); it
    is never raised.

    Args:
        every keyword of :class:`Amygdala` except ``env`` and ``halt_on_env_error``.

    Raises:
        ValueError / TypeError: for an out-of-range or wrongly typed argument
            (messages are the module's ``_BAD_*`` constants).
    """

    def __init__(
        self,
        *,
        max_drawdown: float | None = 0.10,
        vol_ratio: float | None = 3.0,
        vol_halflife: float = 500.0,
        fear_threshold: float | None = 0.7,
        fear_weights: tuple[float, float, float] = DEFAULT_FEAR_WEIGHTS,
        fear_bias: float = DEFAULT_FEAR_BIAS,
        fear_window: int = 20,
        slippage_ratio: float | None = 2.0,
        slippage_predictor: Callable[[Any, Any, dict[str, Any]], SupportsFloat] | None = None,
        slippage_window: int = 50,
        min_fills: int = 5,
        min_predicted_bps: float = 0.1,
        max_violation_rate: float | None = 0.05,
        violation_window: int = 100,
        min_proposals: int = 20,
        kill_file: str | os.PathLike[str] | None = None,
        anomaly_detector: Callable[[Any], Any] | None = None,
        anomaly_weight: float = 3.0,
    ) -> None:
        self.max_drawdown = _check_ratio("max_drawdown", max_drawdown)
        self.vol_ratio = _check_ratio("vol_ratio", vol_ratio)
        self.vol_halflife = _check_positive("vol_halflife", vol_halflife)
        self.fear_threshold = _check_fraction("fear_threshold", fear_threshold)
        try:
            weights = tuple(float(w) for w in fear_weights)
        except (TypeError, ValueError) as err:
            raise TypeError(_BAD_FEAR_WEIGHTS.format(fear_weights)) from err
        if len(weights) != 3 or not all(math.isfinite(w) for w in weights):
            raise ValueError(_BAD_FEAR_WEIGHTS.format(fear_weights))
        self.fear_weights = weights
        if isinstance(fear_bias, bool) or not isinstance(fear_bias, (int, float, np.integer, np.floating)):
            raise TypeError(_BAD_FEAR_BIAS.format(fear_bias))
        if not math.isfinite(fear_bias):
            raise ValueError(_BAD_FEAR_BIAS.format(fear_bias))
        self.fear_bias = float(fear_bias)
        self.fear_window = _check_count("fear_window", fear_window)
        self.slippage_ratio = _check_ratio("slippage_ratio", slippage_ratio)
        if slippage_predictor is not None and not callable(slippage_predictor):
            raise TypeError(_BAD_PREDICTOR.format(slippage_predictor))
        self.slippage_predictor = slippage_predictor
        self.slippage_window = _check_count("slippage_window", slippage_window)
        self.min_fills = _check_count("min_fills", min_fills)
        self.min_predicted_bps = _check_positive("min_predicted_bps", min_predicted_bps)
        self.max_violation_rate = _check_fraction("max_violation_rate", max_violation_rate)
        self.violation_window = _check_count("violation_window", violation_window)
        self.min_proposals = _check_count("min_proposals", min_proposals)
        if kill_file is not None and not isinstance(kill_file, (str, os.PathLike)):
            raise TypeError(_BAD_KILL_FILE.format(kill_file))
        self.kill_file = kill_file
        if anomaly_detector is not None and not callable(anomaly_detector):
            raise TypeError(_BAD_DETECTOR.format(anomaly_detector))
        self.anomaly_detector = anomaly_detector
        self.anomaly_weight = _check_positive("anomaly_weight", anomaly_weight)
        self._obs_now: Any = None
        self._vol_alpha = 1.0 - 2.0 ** (-1.0 / self.vol_halflife)
        self._kill_reason: str | None = None
        self._clear_session()

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
        return self._halt_reason

    # ------------------------------------------------------------- one session
    def start_session(self, obs: Any, info: dict[str, Any]) -> None:
        """Forget the last session and take the reset ``info`` as the new one's baseline (σ_hist, mids).

        A manual ``kill()`` is kept. An error here halts: the session's first action is not let through.
        """
        self._clear_session()
        try:
            sigma = _finite("info['volatility']", info["volatility"])
            if sigma > 0:
                self._vol_hist = sigma
            self._mids.append(_finite("info['mid']", info["mid"]))
            self._readings = self._idle_readings()
        except Exception as err:  # fail-safe: the first step will not forward its action
            self._halt(_error_reason("reset bookkeeping", err))
        self._last_obs = obs
        self._last_info = info

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
            reason = _error_reason(self._stage, err)
        if reason is not None:
            self._halt(reason)
        return reason

    def after_step(self, obs: Any, info: dict[str, Any]) -> str | None:
        """Update every breaker from the step's ``obs`` and ``info``; the halt reason if halted, else None.

        ``info`` gains ``predicted_slippage_bps`` (when a predictor is used) and ``anomaly``,
        as with :class:`Amygdala`. An ``info["halted"]`` from an inner safety layer halts too.
        """
        self._obs_now = obs
        if not self._halted:
            try:
                self._post_step(info)
            except Exception as err:
                self._halt(_error_reason("post-step bookkeeping", err))
        self._last_obs = obs
        self._last_info = info
        return self._halt_reason if self._halted else None

    def breaker_info(self) -> dict[str, dict[str, Any]]:
        """``{breaker: {"value", "threshold", "active", "tripped", "reason"}}`` for all six (``info["breakers"]``)."""
        return self._breaker_info()

    # --------------------------------------------------------------- internals
    def _clear_session(self) -> None:
        self._halted = False
        self._halt_reason: str | None = None
        self._vol_hist: float | None = None
        self._mids: deque[float] = deque(maxlen=self.fear_window + 1)
        self._fills: deque[tuple[float, float]] = deque(maxlen=self.slippage_window)
        self._proposals: deque[bool] = deque(maxlen=self.violation_window)
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
        if self.kill_file is not None and _flag_exists(self.kill_file):
            return f"flag file {os.fspath(self.kill_file)!s} exists"
        return None

    def _pre_step(self, action: Any) -> str | None:
        """Kill switch and slippage prediction, before the action may be forwarded."""
        self._prediction = None
        self._stage = "kill switch check"
        killed = self._kill_state()
        if killed is not None:
            self._readings["kill_switch"] = Reading(1.0, 0.0, True, f"kill_switch: {killed}")
            return f"kill_switch: {killed}"
        if self.slippage_predictor is not None:
            self._stage = "slippage predictor"
            pred = self.slippage_predictor(self._last_obs, action, self._last_info)
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
                reason = _error_reason(f"{name} breaker", err)
                readings[name] = reason
                errors.append(reason)
        self._readings = readings
        if info.get("halted"):
            self._halt(str(info.get("halt_reason") or "halted by an inner safety wrapper"))
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
        thr = self.max_drawdown
        limit = "disabled" if thr is None else f"{thr:.2%}"
        return Reading(dd, thr, thr is not None, f"drawdown: session drawdown {dd:.2%} > {limit}")

    def _check_volatility(self, info: dict[str, Any]) -> Reading:
        sigma = _finite("info['volatility']", info["volatility"])
        if sigma < 0:
            raise ValueError(_NOT_FINITE.format("info['volatility'] (negative)", sigma))
        hist = self._vol_hist
        if hist is None:
            value, active = 0.0, False
            reason = "volatility: no historical baseline yet"
        else:
            value = sigma / hist
            active = self.vol_ratio is not None
            reason = (f"volatility: realized σ {sigma * 1e4:.2f} bps = {value:.2f}× historical "
                      f"{hist * 1e4:.2f} bps > {self.vol_ratio}×")
        if sigma > 0:
            self._vol_hist = sigma if hist is None else hist + self._vol_alpha * (sigma - hist)
        return Reading(value, self.vol_ratio, active, reason)

    def _dp_max_bps(self) -> float:
        mids = list(self._mids)
        moves = [abs(math.log(b / a)) * 1e4 for a, b in zip(mids[:-1], mids[1:]) if a > 0 and b > 0]
        return max(moves, default=0.0)

    def _check_fear(self, info: dict[str, Any]) -> Reading:
        self._mids.append(_finite("info['mid']", info["mid"]))
        vpin = _finite("info['vpin']", info["vpin"])
        sigma_bps = _finite("info['volatility']", info["volatility"]) * 1e4
        dp_max = self._dp_max_bps()
        w = self.fear_weights
        # an observation far from every learned schema (the sleep cycle's UMAP monitor) raises fear
        anomaly = bool(info.get("anomaly", False))
        if self.anomaly_detector is not None:
            anomaly = anomaly or bool(np.any(self.anomaly_detector(self._obs_now)))
        info["anomaly"] = anomaly
        z = w[0] * vpin + w[1] * sigma_bps + w[2] * dp_max + self.fear_bias + self.anomaly_weight * anomaly
        fear = _sigmoid(z)
        thr = self.fear_threshold
        reason = (f"fear: activation {fear:.3f} > {thr} (VPIN {vpin:.2f}, σ {sigma_bps:.1f} bps, "
                  f"Δp_max {dp_max:.1f} bps, anomaly {anomaly})")
        return Reading(fear, thr, thr is not None, reason)

    def _check_slippage(self, info: dict[str, Any]) -> Reading:
        pred = self._prediction if self.slippage_predictor is not None else info.get("predicted_slippage_bps")
        exec_qty = _finite("info['exec_qty']", info["exec_qty"])
        if pred is not None and exec_qty != 0:
            actual = _finite("info['slippage_bps']", info["slippage_bps"])
            self._fills.append((actual, _finite("predicted slippage", pred)))
        n = len(self._fills)
        if n == 0:
            return Reading(0.0, self.slippage_ratio, False, "slippage: no predicted fills yet")
        mean_actual = sum(a for a, _ in self._fills) / n
        mean_pred = sum(p for _, p in self._fills) / n
        value = mean_actual / max(mean_pred, self.min_predicted_bps)
        active = self.slippage_ratio is not None and n >= self.min_fills
        reason = (f"slippage: average slippage {mean_actual:.2f} bps over {n} fills = {value:.1f}× "
                  f"predicted {mean_pred:.2f} bps > {self.slippage_ratio}×")
        return Reading(value, self.slippage_ratio, active, reason)

    def _check_violation_rate(self, info: dict[str, Any]) -> Reading:
        ltn = info.get("ltn")
        if ltn is not None:
            tau = float(ltn.get("threshold", 0.9))
            violated = bool(ltn.get("overridden", False)) or _finite("ltn violation", ltn["violation"]) > 1.0 - tau
            self._proposals.append(violated)
        n = len(self._proposals)
        if n == 0:
            return Reading(0.0, self.max_violation_rate, False, "violation_rate: no LTN proposals yet")
        k = sum(self._proposals)
        rate = k / n
        active = self.max_violation_rate is not None and n >= self.min_proposals
        reason = (f"violation_rate: {k}/{n} proposed actions violated the LTN rules "
                  f"({rate:.1%} > {self.max_violation_rate})")
        return Reading(rate, self.max_violation_rate, active, reason)

    # -------------------------------------------------------------- reporting
    def _idle_readings(self) -> dict[str, Reading | str]:
        return {name: Reading(0.0, self._threshold(name), False, f"{name}: no step yet") for name in BREAKERS}

    def _threshold(self, name: str) -> float | None:
        return {"kill_switch": 0.0, "drawdown": self.max_drawdown, "volatility": self.vol_ratio,
                "fear": self.fear_threshold, "slippage": self.slippage_ratio,
                "violation_rate": self.max_violation_rate}[name]

    def _breaker_info(self) -> dict[str, dict[str, Any]]:
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

class Amygdala(gym.Wrapper, CircuitBreakers):
    """Circuit breakers around a trading env; halts the session when any trips (fail-safe).

    Breakers (see the module docstring table); each threshold can be ``None`` to disable it:

    * **drawdown** — ``info["drawdown"]``, the env's loss from the session's peak
      equity, > ``max_drawdown`` (0.10).
    * **volatility** — realized volatility ``σ_t = info["volatility"]`` (per-step
      std of one-step log mid returns over the env's window) > ``vol_ratio`` (3) ×
      the historical level ``σ_hist``. ``σ_hist`` starts at the reset-time value
      (the env's warm-up window) and then follows a long EMA with half-life
      ``vol_halflife`` steps (500): ``σ_hist ← σ_hist + α(σ_t − σ_hist)``,
      ``α = 1 − 2^(−1/halflife)``, updated *after* the comparison. It is per
      session, so each ``reset()`` takes a fresh baseline; if the env reports
      ``σ = 0`` at reset (no history yet) the breaker stays inactive until the
      first positive value.
    * **fear** — ``sigmoid(W_f·[VPIN, σ_bps, Δp_max] + b_f) > fear_threshold``
      (τ_fear = 0.7, DESIGN.md's τ_risk). Inputs: VPIN = ``info["vpin"]`` ∈ [0, 1];
      σ_bps = ``1e4·info["volatility"]``; Δp_max = max |log(mid_t / mid_{t−1})|·1e4
      over the last ``fear_window`` (20) steps, from ``info["mid"]``.
      Defaults *(ours)* W_f = (4.0, 0.2, 0.05) per (1, bps, bps), b_f = −6.0:
      a calm market scores ≈ 0.02, VPIN = 1 alone ≈ 0.14, a flash crash
      (σ ≈ 50 bps, Δp_max ≈ 170 bps) ≈ 1.
    * **slippage** — over the last ``slippage_window`` (50) steps with a fill
      (``info["exec_qty"] != 0``), ``mean(info["slippage_bps"]) /
      max(mean(predicted), min_predicted_bps)`` > ``slippage_ratio`` (2); needs
      ``min_fills`` (5) fills. The prediction comes from ``slippage_predictor``
      — called *before* the action is forwarded as ``predictor(obs, action,
      info)`` with the observation and info the agent decided on — or else from
      ``info["predicted_slippage_bps"]`` written by an inner component (the
      cerebellum). Inactive when neither exists. The floor
      ``min_predicted_bps`` (0.1 bps) keeps a zero prediction from dividing by 0.
      When the predictor is used and the key is absent, the wrapper writes
      ``info["predicted_slippage_bps"]`` for the audit log.
    * **violation_rate** — a *proposed* action counts as an LTN violation when
      ``info["ltn"]["overridden"]`` is true or ``info["ltn"]["violation"] >
      1 − info["ltn"]["threshold"]`` (SatAgg of the proposed action below the
      shield's τ; τ = 0.9 when the key is absent). Every step whose info carries
      ``"ltn"`` is one proposal; steps without it (no shield) are not counted. The
      value is the share of violations among the last ``violation_window`` (100)
      proposals; it can fire only after ``min_proposals`` (20) proposals.
    * **kill_switch** — ``kill(reason)`` or the existence of ``kill_file``,
      checked before every action and again after the step. Only "file not
      found" counts as no flag; any other error reading the path (permission,
      bad path) halts as an ``amygdala_error``. A ``kill()`` persists across
      ``reset()`` until ``clear_kill()``; the file flag lasts as long as the file.

    Every step writes ``info["breakers"] = {name: {"value", "threshold",
    "active", "tripped", "reason"}}`` for all six, ``info["halted"]``,
    ``info["halt_reason"]`` (None when not halted) and ``info["action_forwarded"]``
    (False on blocked transitions, None when the wrapped env raised). An
    ``info["halted"] = True`` coming from an inner safety wrapper is respected:
    the amygdala keeps its ``halt_reason`` and stops forwarding too.

    Required info keys (a missing key halts as an error): ``volatility``,
    ``drawdown``, ``vpin``, ``mid``, ``exec_qty``, ``slippage_bps``.

    Args:
        env: the env to protect (``JanusLOBEnv`` or a wrapper of it).
        max_drawdown: drawdown breaker threshold, fraction of peak equity (0.10).
        vol_ratio: volatility breaker threshold, multiple of σ_hist (3.0).
        vol_halflife: half-life of the σ_hist EMA, steps (500) *(ours)*.
        fear_threshold: τ_fear in (0, 1) (0.7).
        fear_weights: W_f for (VPIN, σ bps, Δp_max bps).
        anomaly_detector: optional ``obs -> bool``, e.g. ``SleepState.monitor.is_anomaly`` on flattened
            observations; an anomaly (or ``info["anomaly"]``) adds ``anomaly_weight`` to the fear input.
        anomaly_weight: fear-input weight of an anomaly (3.0, *(ours)*).
        fear_bias: b_f.
        fear_window: steps over which Δp_max is taken (20) *(ours)*.
        slippage_ratio: slippage breaker threshold, multiple of the prediction (2.0).
        slippage_predictor: optional callable ``(obs, action, info) -> bps``.
        slippage_window: fills averaged (50) *(ours)*.
        min_fills: fills needed before the slippage breaker can fire (5) *(ours)*.
        min_predicted_bps: floor of the predicted mean in the ratio (0.1 bps) *(ours)*.
        max_violation_rate: violation-rate threshold, fraction of proposals (0.05).
        violation_window: proposals in the rolling rate (100) *(ours)*.
        min_proposals: proposals needed before the rate can fire (20) *(ours)*.
        kill_file: path whose existence halts trading (None: no file flag).
        halt_on_env_error: halt (True) or re-raise (False) when the wrapped env's
            ``step`` raises.

    Raises:
        ValueError / TypeError: for an out-of-range or wrongly typed argument
            (messages are the module's ``_BAD_*`` constants).
        RuntimeError: ``step()`` before ``reset()`` or after an episode that ended
            without a halt (after a halt, ``step()`` repeats the terminal transition).

    Example:
        ```python
        env = Amygdala(gym.make("Janus-LOB-v0", scenario="flash_crash", seed=0),
                       kill_file="/tmp/janus.kill")
        obs, info = env.reset()
        obs, r, terminated, truncated, info = env.step(0)
        info["breakers"]["volatility"]   # e.g. {"value": 1.02, "threshold": 3.0, "active": True, ...}
        ```
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        max_drawdown: float | None = 0.10,
        vol_ratio: float | None = 3.0,
        vol_halflife: float = 500.0,
        fear_threshold: float | None = 0.7,
        fear_weights: tuple[float, float, float] = DEFAULT_FEAR_WEIGHTS,
        fear_bias: float = DEFAULT_FEAR_BIAS,
        fear_window: int = 20,
        slippage_ratio: float | None = 2.0,
        slippage_predictor: Callable[[Any, Any, dict[str, Any]], SupportsFloat] | None = None,
        slippage_window: int = 50,
        min_fills: int = 5,
        min_predicted_bps: float = 0.1,
        max_violation_rate: float | None = 0.05,
        violation_window: int = 100,
        min_proposals: int = 20,
        kill_file: str | os.PathLike[str] | None = None,
        halt_on_env_error: bool = True,
        anomaly_detector: Callable[[Any], Any] | None = None,
        anomaly_weight: float = 3.0,
    ) -> None:
        gym.Wrapper.__init__(self, env)
        CircuitBreakers.__init__(
            self, max_drawdown=max_drawdown, vol_ratio=vol_ratio, vol_halflife=vol_halflife,
            fear_threshold=fear_threshold, fear_weights=fear_weights, fear_bias=fear_bias, fear_window=fear_window,
            slippage_ratio=slippage_ratio, slippage_predictor=slippage_predictor, slippage_window=slippage_window,
            min_fills=min_fills, min_predicted_bps=min_predicted_bps, max_violation_rate=max_violation_rate,
            violation_window=violation_window, min_proposals=min_proposals, kill_file=kill_file,
            anomaly_detector=anomaly_detector, anomaly_weight=anomaly_weight,
        )
        self.halt_on_env_error = bool(halt_on_env_error)
        self._needs_reset = True

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        self.start_session(obs, info)
        self._needs_reset = False
        self._annotate(info, forwarded=None)
        return obs, info

    def step(self, action: Any):
        if self._needs_reset:
            raise RuntimeError(_NEED_RESET)
        if self._halted:
            return self._blocked()
        try:
            reason = self._pre_step(action)
        except Exception as err:
            return self._blocked(_error_reason(self._stage, err))
        if reason is not None:
            return self._blocked(reason)
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except Exception as err:
            if not self.halt_on_env_error:
                raise
            return self._blocked(_error_reason("wrapped env step", err), forwarded=None)
        self._obs_now = obs
        try:
            info = dict(info)
        except Exception as err:
            info = {}
            self._halt(_error_reason("info copy", err))
        if not self._halted:
            self._post_step(info)
        if self._halted:
            terminated = True
        elif terminated or truncated:
            self._needs_reset = True
        self._last_obs = obs
        self._last_info = info
        self._annotate(info, forwarded=True)
        return obs, reward, terminated, truncated, info

    def _annotate(self, info: dict[str, Any], forwarded: bool | None) -> None:
        info["breakers"] = self._breaker_info()
        info["halted"] = self._halted
        info["halt_reason"] = self._halt_reason
        if forwarded is not None or "action_forwarded" not in info:
            info["action_forwarded"] = forwarded

    def _blocked(self, reason: str | None = None, forwarded: bool | None = False):
        """Terminal transition without stepping the wrapped env (the action is never forwarded)."""
        if reason is not None:
            self._halt(reason)
        info = {k: v for k, v in self._last_info.items() if k not in _DECISION_KEYS}
        for key in _EXEC_KEYS:
            if key in info:
                info[key] = 0
        self._annotate(info, forwarded=forwarded)
        info["action_forwarded"] = forwarded
        return self._last_obs, 0.0, True, False, info
