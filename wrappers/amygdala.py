"""``Amygdala``: the circuit breakers (:mod:`wrappers.breakers`) around a trading env; fail-safe halts.

A halt ends the episode: ``terminated=True``, ``info["halted"] = True`` and
``info["halt_reason"] = "<breaker>: <details>"``. From then until ``reset()``
the wrapper never forwards another action: ``step()`` returns the same terminal
transition again (last observation, reward 0, ``info["action_forwarded"] = False``)
without stepping the wrapped env.

Fail-safe: any exception anywhere in the wrapper's ``step`` or ``reset`` — the
kill-switch check, the slippage predictor, a breaker, the baselines, the
``info["breakers"]`` report, the bookkeeping around them, a method of the
breakers themselves — halts with
``halt_reason = "amygdala_error: <stage> raised <Error>: <message>"``:

* before the action is forwarded (``stage`` ``"pre-step check"``, or the
  breakers' own stage): the action is not forwarded, the step is the terminal
  transition below;
* after it (``"post-step bookkeeping"``): the order has executed and cannot be
  taken back, so the step returns the market's result with ``terminated=True``,
  ``halted`` and the fault's ``halt_reason``, and no later step is forwarded;
* in ``reset`` (``"reset"``; the breakers' own ``"reset bookkeeping"``): ``reset``
  returns with ``info["halted"] = True`` and the new session's first action is
  not forwarded — the last session's breaker state is never carried over.

The wrapper keeps its own fault flag besides the breakers' halt, so a fault in
the breakers' halting or reporting code halts all the same (``info["breakers"]``
then marks every breaker with the fault). Exceptions from the wrapped env's own
``step`` (a shield or a sizing wrapper inside, or the market itself, including an
invalid action it rejects) halt the same way, their message in ``halt_reason``,
unless ``halt_on_env_error=False``, which re-raises them. An exception from the
wrapped env's ``reset`` propagates (there is no session to halt) and the wrapper
refuses ``step()`` until a ``reset()`` succeeds. Same seed, same breaker
trajectory: the breakers hold no randomness and no clock.

Place the amygdala *outside* the LTN shield so that it reads ``info["ltn"]``
(info travels from the innermost wrapper outwards); the documented stack is
``AuditLog(Amygdala(LTNShield(Hypothalamus(env))))``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from janus_env.checks import NEED_RESET, check_bool
from janus_env.lob_env import NO_EXECUTION_INFO
from wrappers.breakers import BREAKERS, BreakerConfig, CircuitBreakers, error_reason

# Keys of the last info that describe the agent's own execution or decision; a blocked
# (not forwarded) transition drops them and resets the execution keys (NO_EXECUTION_INFO), so that
# nothing looks like a trade.
_DECISION_KEYS = ("ltn", "sizing", "go_nogo", "fusion_gates", "predicted_slippage_bps", "breakers",
                  "halted", "halt_reason", "action_forwarded")


_INNER_HALT = "halted by an inner safety wrapper"


class Amygdala(gym.Wrapper):
    """Circuit breakers around a trading env; halts the session when any trips (fail-safe).

    Breakers (see the module docstring table); each threshold can be ``None`` to disable it:

    * **drawdown** — ``info["drawdown"]``, the env's loss from the session's peak
      equity, > ``max_drawdown`` (0.10).
    * **volatility** — realized volatility ``σ_t = info["volatility"]`` (per-step
      RMS of one-step log mid returns over the env's window) > ``vol_ratio`` (3) ×
      the instrument's long-run level ``σ_hist``: seeded by the reset-time σ (the
      env's window of history before the session), then
      ``σ_hist² ← σ_hist² + α_n·(σ_t² − σ_hist²)`` with
      ``α_n = max(1/(n + 1), 1 − 2^(−1/vol_halflife))`` after ``n`` readings — an
      equal-weight mean of the session's readings until the 500-step half-life
      EWMA takes over — updated *after* the comparison; a reading that trips
      (σ_t > vol_ratio·σ_hist) is left out, so a crash cannot lift its own
      baseline, and so is σ_t = 0. Per session: each
      ``reset()`` takes a fresh baseline; while σ = 0 (no move yet) the breaker
      is inactive. Readable as :attr:`sigma_hist`.
    * **fear** — ``sigmoid(W_f·x + b_f + anomaly_weight·anomaly) > fear_threshold``
      (τ_fear = 0.7, DESIGN.md's τ_risk) with x = [VPIN excess, σ_t/σ_hist,
      Δp_max/σ_hist]: VPIN excess = ``max(0, VPIN − VPIN_hist)/(1 − VPIN_hist)``
      (VPIN_hist the same running mean of every ``info["vpin"]``);
      Δp_max = max |log(mid_t / mid_{t−1})| over the last ``fear_window`` (20)
      steps, from ``info["mid"]``. Every input is relative to the instrument's
      own history, so the same W_f serve a 0.5 bps simulated book and 450 bps
      daily bars. Defaults *(ours)* W_f = (2.0, 1.0, 0.25), b_f = −6.0: calm ≈
      0.02, a single 11σ hourly BTC bar ≈ 0.2, a flash crash ≈ 1 (calibration
      table at :data:`DEFAULT_FEAR_WEIGHTS`). Inactive without σ_hist.
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
    * **violation_rate** — every step whose info carries ``"ltn"`` is one
      *proposal* (steps without it, no shield, are not counted). A proposal the
      shield replaced (``info["ltn"]["overridden"]``) is *blocked* and weighs
      ``blocked_weight`` (0.1); one that violated the rules
      (``info["ltn"]["violation"] > 1 − info["ltn"]["threshold"]``, SatAgg below
      τ; τ = 0.9 when the key is absent) and was not replaced is *executed* and
      weighs 1. The value is the weighted count over the last ``violation_window``
      (100) proposals divided by their number; it can fire only after
      ``min_proposals`` (20). So executed violations halt above 5%, blocked ones
      only above half of the proposals (why: module docstring).
    * **kill_switch** — ``kill(reason)`` or the existence of ``kill_file``,
      checked before every action and again after the step. Only "file not
      found" counts as no flag; any other error reading the path (permission,
      bad path) halts as an ``amygdala_error``. A ``kill()`` persists across
      ``reset()`` until ``clear_kill()``; the file flag lasts as long as the file.

    Every step writes ``info["breakers"] = {name: {"value", "threshold",
    "active", "tripped", "reason"}}`` for all six, ``info["halted"]``,
    ``info["halt_reason"]`` (None when not halted) and ``info["action_forwarded"]``
    (False on blocked transitions, None when the wrapped env raised). An
    ``info["halted"] = True`` coming from an inner safety wrapper is respected,
    in a step's info or in the reset info (an inner wrapper whose reset failed):
    the amygdala keeps its ``halt_reason`` and stops forwarding too.

    Required info keys (a missing key halts as an error): ``volatility``,
    ``drawdown``, ``vpin``, ``mid``, ``exec_qty``, ``slippage_bps``.

    The settings are a :class:`BreakerConfig` (its fields document each default and
    why), given as ``config=`` or field by field as keywords; the wrapper holds one
    :class:`CircuitBreakers` on it (:attr:`breakers`).

    Args:
        env: the env to protect (``JanusLOBEnv`` or a wrapper of it).
        config: the breaker settings (None: ``BreakerConfig()``, the defaults).
        halt_on_env_error: halt (True) or re-raise (False) when the wrapped env's
            ``step`` raises.
        **settings: :class:`BreakerConfig` fields (``max_drawdown``, ``vol_ratio``, ``fear_threshold``,
            ``slippage_predictor``, ``kill_file``, ...), replacing those of ``config``.

    Raises:
        TypeError: an unknown keyword (the message lists the ``BreakerConfig`` fields), a wrongly typed
            setting, a ``config`` that is not a ``BreakerConfig``, or a ``halt_on_env_error`` that is not a bool.
        ValueError: an out-of-range setting (messages as in :class:`BreakerConfig`).
        RuntimeError: ``step()`` before ``reset()`` or after an episode that ended
            without a halt (after a halt, ``step()`` repeats the terminal transition).

    Example:
        ```python
        env = Amygdala(gym.make("Janus-LOB-v0", scenario="flash_crash", seed=0),
                       kill_file="/tmp/janus.kill")      # or config=BreakerConfig(kill_file=...)
        obs, info = env.reset()
        obs, r, terminated, truncated, info = env.step(0)
        info["breakers"]["volatility"]   # e.g. {"value": 1.02, "threshold": 3.0, "active": True, ...}
        ```
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        config: BreakerConfig | None = None,
        halt_on_env_error: bool = True,
        **settings: Any,
    ) -> None:
        super().__init__(env)
        self.breakers = CircuitBreakers(BreakerConfig.from_mapping(settings, base=config))
        """The circuit breakers this wrapper runs."""
        self.halt_on_env_error = check_bool("halt_on_env_error", halt_on_env_error)
        self._needs_reset = True
        # the reason of a halt outside the breakers: a fault in this wrapper, or an inner wrapper that started the
        # session halted (None: none this session); it stops every action until reset()
        self._fault: str | None = None
        self._last_obs: Any = None
        self._last_info: dict[str, Any] = {}

    @property
    def config(self) -> BreakerConfig:
        """The breaker settings."""
        return self.breakers.config

    # ---------------------------------------------------------------- breakers
    def kill(self, reason: str = "manual kill") -> None:
        """Engage the manual kill switch (:meth:`CircuitBreakers.kill`): the next action halts unforwarded.

        Raises:
            TypeError / ValueError: if ``reason`` is not a non-empty str.
        """
        self.breakers.kill(reason)

    def clear_kill(self) -> None:
        """Disengage the manual kill switch (the file flag is cleared by deleting the file)."""
        self.breakers.clear_kill()

    @property
    def halted(self) -> bool:
        """True from a halt (a breaker trip or a fault anywhere in the wrapper) until the next ``reset()``."""
        return self._fault is not None or self.breakers.halted

    @property
    def halt_reason(self) -> str | None:
        """Why the session halted, None while trading (a fault's reason before a breaker's)."""
        return self._fault if self._fault is not None else self.breakers.halt_reason

    @property
    def sigma_hist(self) -> float | None:
        """σ_hist, the session's long-run volatility baseline (per-step σ; None before a positive reading)."""
        return self.breakers.sigma_hist

    @property
    def vpin_hist(self) -> float | None:
        """VPIN_hist, the running mean of VPIN the fear breaker's VPIN excess is measured from."""
        return self.breakers.vpin_hist

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._needs_reset = True  # until the new session is set up: a failed inner reset leaves no session to step
        self._fault = None
        obs, info = self.env.reset(seed=seed, options=options)
        self._last_obs, self._last_info = obs, {}
        try:
            info = dict(info)
            self._last_info = info
            self.breakers.start_session(obs, info)
            if info.get("halted"):  # an inner safety wrapper starts the session halted (its reset failed)
                self._fault = str(info.get("halt_reason") or _INNER_HALT)
            else:
                self._annotate(info, forwarded=None)
        except Exception as err:  # fail-safe: halted, the session's first action is not forwarded
            self._fail("reset", err)
        if self._fault is not None:
            info = self._fault_info(info if isinstance(info, dict) else {}, forwarded=None)
        self._needs_reset = False
        return obs, info

    def step(self, action: Any):
        if self._needs_reset:
            raise RuntimeError(NEED_RESET)
        if self._fault is not None:
            return self._blocked()
        breakers = self.breakers
        try:
            stop = breakers.before_action(action) is not None  # halted, kill switch, or a failed check
        except Exception as err:
            self._fail("pre-step check", err)
            stop = True
        if stop:
            return self._blocked()
        # from here the action is with the market: what follows can only halt the next step
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        except Exception as err:
            if not self.halt_on_env_error:
                raise
            self._fail("wrapped env step", err)
            return self._blocked(forwarded=None)
        try:
            info = dict(info)
        except Exception as err:
            info = {}
            self._fail("info copy", err)
        if self._fault is None:
            try:
                breakers.after_step(obs, info)
                if breakers.halted:
                    terminated = True
                elif terminated or truncated:
                    self._needs_reset = True
                self._annotate(info, forwarded=True)
            except Exception as err:
                self._fail("post-step bookkeeping", err)
        if self._fault is not None:
            info = self._fault_info(info, forwarded=True)
            terminated = True
        self._last_obs, self._last_info = obs, info
        return obs, reward, terminated, truncated, info

    def _annotate(self, info: dict[str, Any], forwarded: bool | None) -> None:
        info["breakers"] = self.breakers.breaker_info()
        info["halted"] = self.breakers.halted
        info["halt_reason"] = self.breakers.halt_reason
        if forwarded is not None or "action_forwarded" not in info:
            info["action_forwarded"] = forwarded

    def _blocked(self, forwarded: bool | None = False):
        """Terminal transition without stepping the wrapped env (the action is never forwarded)."""
        info = {k: v for k, v in self._last_info.items() if k not in _DECISION_KEYS}
        info.update({k: v for k, v in NO_EXECUTION_INFO.items() if k in info})
        if "volume" in info:  # the market did not step
            info["volume"] = 0.0
        if self._fault is None:
            try:
                self._annotate(info, forwarded=forwarded)
            except Exception as err:
                self._fail("halt report", err)
        if self._fault is not None:
            info = self._fault_info(info, forwarded)
        info["action_forwarded"] = forwarded
        return self._last_obs, 0.0, True, False, info

    # ---------------------------------------------------------------- fail-safe
    def _fail(self, stage: str, err: Exception) -> None:
        """Halt because ``err`` was raised at ``stage``: the wrapper's own flag first (it stops every later action
        even if the breakers themselves are broken), then the breakers' halt."""
        if self._fault is None:
            self._fault = error_reason(stage, err)
        try:
            self.breakers.halt_on_error(stage, err)
        except Exception:  # noqa: BLE001 - the wrapper's flag above already halts; its reason names the first error
            pass

    def _fault_info(self, info: dict[str, Any], forwarded: bool | None) -> dict[str, Any]:
        """``info`` with the halt of a fault: ``halted``, ``halt_reason`` (the fault), ``action_forwarded`` and
        ``breakers`` (the breakers' report, or each breaker marked with the fault when that report fails)."""
        reason = self._fault
        try:
            report = self.breakers.breaker_info()
        except Exception:  # noqa: BLE001 - the report is what failed: every breaker carries the fault instead
            report = {name: {"value": None, "threshold": None, "active": False, "tripped": False, "error": reason,
                             "reason": reason} for name in BREAKERS}
        info["breakers"] = report
        info["halted"] = True
        info["halt_reason"] = reason
        info["action_forwarded"] = forwarded
        return info
