"""One account's glass box: the LTN shield core, the circuit breakers, sizing and the audit trail.

The same parts ``evaluate.py`` puts around an env (:func:`wrappers.make_glass_box`), in the same order, driven
by the service's decision cycle instead of ``env.step``:

1. a decision's state (:class:`~agents.app.service.observation.BuiltState`) arrives. At the first decision of a
   session the parts start as at an env's ``reset``: the shield's trade history
   (:meth:`wrappers.shield_kernel.ShieldCore.attach`), :meth:`wrappers.breakers.CircuitBreakers.start_session`,
   the ``Hypothalamus``'s ``reset`` and the ``AuditLog``'s. At a later one the previous decision's step ends as
   an env step would: its fills (``exec_qty``, VWAP, slippage, fees; :meth:`~.accounts.Account.cycle_execution`)
   and the new state go to the breakers (:meth:`~wrappers.breakers.CircuitBreakers.after_step`, with the last
   decision's ``ltn`` record for the violation rate), to the ``Hypothalamus`` (its ``step``: trade statistics
   and volatility baseline) and, through the market row's step counter and fill columns, to the shield's
   history;
2. the shield scores every action in the state (masks for a maskable policy, ℓ_logic for the gate); the policy
   decides (:class:`~agents.app.service.engine.DecisionEngine`);
3. as ``Amygdala(LTNShield(Hypothalamus(env)))`` passes an action inwards: the breakers' pre-action check (kill
   switch, slippage prediction), the shield's decision (:meth:`ShieldCore.decide`: the proposal if its
   SatAgg ≥ τ, else the fallback), sizing (:meth:`wrappers.hypothalamus.Hypothalamus.size`), then the env's own
   position and buying-power cut (:func:`janus_env.accounting.cut_order`) gives the order the env would send;
4. the decision is appended to the account's audit trail, the record of :class:`wrappers.audit.AuditLog`
   (``RECORD_KEYS``), written by an ``AuditLog`` itself.

The ``Hypothalamus`` and the ``AuditLog`` are gym wrappers; each wraps a :class:`StagedEnv` whose ``reset`` and
``step`` return the state the service staged for them, so their own code keeps their books.

Fail-safe as the wrappers: an exception in the shield, the policy, sizing or the audit trail halts the account
(``halt_reason`` ``"shield_error: …"``, ``"engine_error: …"``, ``"sizing_error: …"``, ``"audit_error: …"``) and
nothing is ordered; the breakers never raise (they halt themselves).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.app.service.engine import DecisionEngine, PolicyDecision
from agents.app.service.observation import BuiltState
from agents.app.service.syncer import DiskSyncer
from janus_env.accounting import cut_order, reason_names
from janus_env.actions import sized_quantity
from janus_env.config import MarketConfig
from janus_env.simulator import (
    N_OUT,
    O_EQUITY,
    O_EXEC_PRICE,
    O_EXEC_QTY,
    O_FEES,
    O_MID,
    O_N_FILLS,
    O_SLIPPAGE_BPS,
    O_STEP,
    obs_size,
)
from wrappers import AuditLog, CircuitBreakers, Hypothalamus
from wrappers.breakers import BreakerConfig
from wrappers.rules import RULE_NAMES, TradingKnowledgeBase
from wrappers.shield_kernel import HOLD, ShieldCore, ltn_record, reason

ENGINE_ERROR = "engine_error"
SIZING_ERROR = "sizing_error"
AUDIT_ERROR = "audit_error"


def error_reason(prefix: str, err: BaseException) -> str:
    """``"<prefix>: <ExceptionType>: <message>"``, the halt reason of a part that raised."""
    return f"{prefix}: {type(err).__name__}: {err}"


@dataclass(frozen=True)
class GuardSettings:
    """What every account's glass box is built from: the run's market and spaces, and the parts' settings.

    Attributes:
        config: the run's market settings.
        action_space: its ``Discrete`` action space; ``observation_space`` its ``Dict`` one.
        action_type: ``"discrete"`` or ``"sized"`` (the env's ``action_type``).
        n_sizes: ``k`` of the sized action table (1 for ``action_type="discrete"``).
        shield: ``ShieldCore`` settings: ``threshold``, ``fallback``, ``knowledge_base``.
        breakers: the breakers' settings (a ``slippage_predictor`` is called before each order).
        sizing: ``Hypothalamus`` keyword arguments, or None for no sizing.
    """

    config: MarketConfig
    action_space: spaces.Discrete
    observation_space: spaces.Dict
    action_type: str
    n_sizes: int
    shield: dict[str, Any]
    breakers: BreakerConfig
    sizing: dict[str, Any] | None

    def check(self) -> None:
        """Build the shield core and the sizing once, so that bad settings fail at start, not at a decision.

        Raises:
            TypeError / ValueError: what ``ShieldCore`` or ``Hypothalamus`` raise for these settings.
        """
        AccountGuard.shield_core(self)
        if self.sizing is not None:
            Hypothalamus(StagedEnv(self), **self.sizing)


@dataclass
class GuardDecision:
    """One answered decision (see :meth:`AccountGuard.decide`).

    ``agent_action`` is the policy's (gated) action, what the glass box received (the audit record's
    ``proposed_action``; None when the account halted before the policy ran); ``action`` the one executed.
    ``ltn`` is the shield's record of the action it judged (``info["ltn"]``, the policy's gated action);
    ``proposal_rules`` is ``{"sat_agg", "rules"}`` of the policy's *proposal* before its gate, from the same
    scoring (why a proposal was vetoed).
    """

    agent_action: int | None
    policy: PolicyDecision | None
    action: int
    order_units: int
    rejected_units: int
    rejected_reason: str
    ltn: dict[str, Any] | None
    proposal_rules: dict[str, Any] | None
    sizing: dict[str, Any] | None
    breakers: dict[str, Any]
    halted: bool
    halt_reason: str | None
    predicted_slippage_bps: float | None


class StagedEnv(gym.Env):
    """A stand-in env for the glass box's wrappers: ``reset``/``step`` return the state staged with :meth:`stage`.

    It carries what ``Hypothalamus`` reads from a ``Janus-LOB-v0`` (``config``, ``action_type``, ``n_sizes``,
    ``book()``) and executes nothing: the desk does, and reports the fills.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, settings: GuardSettings) -> None:
        self.config = settings.config
        self.action_type = settings.action_type
        self.n_sizes = settings.n_sizes
        self.action_space = settings.action_space
        self.observation_space = settings.observation_space
        self._obs: Any = None
        self._info: dict[str, Any] = {}
        self._reward = 0.0
        self._book: np.ndarray | None = None

    def stage(self, obs: Any, info: dict[str, Any], reward: float = 0.0, book: np.ndarray | None = None) -> None:
        self._obs, self._info, self._reward, self._book = obs, info, reward, book

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return self._obs, dict(self._info)

    def step(self, action: Any):
        return self._obs, self._reward, False, False, dict(self._info)

    def book(self) -> np.ndarray | None:
        """The current book, rows (bid_px, bid_qty, ask_px, ask_qty) in currency/shares (what sizing costs with)."""
        return self._book


class AccountGuard:
    """The glass box of one account (module docstring).

    Args:
        settings: the parts' settings (shared by every account).
        audit_path: the account's audit trail (JSON Lines, appended).
        tags: constant fields of every audit record (the account, the model version).
        syncer: forces the trail to disk off the event loop (:mod:`~agents.app.service.syncer`; the trail then
            ``fsync``s only at session starts and at close); None: ``AuditLog``'s own ``fsync`` defaults.
    """

    def __init__(self, settings: GuardSettings, audit_path: str | os.PathLike[str], tags: dict[str, Any],
                 syncer: DiskSyncer | None = None) -> None:
        self.settings = settings
        config = settings.config
        self.core = self.shield_core(settings)
        self.obs_buf = np.zeros((1, obs_size(config.window, config.n_levels)), dtype=np.float32)
        self.out_buf = np.zeros((1, N_OUT), dtype=np.float64)
        self.prediction: float | None = None
        breaker_config = settings.breakers
        if breaker_config.slippage_predictor is not None:
            predictor = breaker_config.slippage_predictor

            def remembered(obs: Any, action: Any, info: dict[str, Any]) -> Any:
                self.prediction = float(predictor(obs, action, info))
                return self.prediction

            breaker_config = BreakerConfig.from_mapping({"slippage_predictor": remembered}, base=breaker_config)
        self.breakers = CircuitBreakers(breaker_config)
        self.hypothalamus: Hypothalamus | None = None
        if settings.sizing is not None:
            self._sizing_env = StagedEnv(settings)
            self.hypothalamus = Hypothalamus(self._sizing_env, **settings.sizing)
        self._audit_env = StagedEnv(settings)
        self.syncer = syncer
        never = {"fsync_every": None, "fsync_seconds": None} if syncer is not None else {}
        self.audit = AuditLog(self._audit_env, audit_path, buffer_size=1, tags=tags, **never)
        self.live = False
        """A session is running (False before the first decision, after a halt, after a restart)."""
        self.last_ltn: dict[str, Any] | None = None
        self._lot_units = int(round(config.lot / config.resolved_qty_step))
        self._max_units = int(config.max_position_units)
        self._qty_step = float(config.resolved_qty_step)
        self._max_leverage = float(config.max_leverage)

    @staticmethod
    def shield_core(settings: GuardSettings) -> ShieldCore:
        """The shield's core on one row, with the run's shield settings (a ``knowledge_base`` mapping becomes a
        ``TradingKnowledgeBase``, as in :func:`wrappers.make_glass_box`)."""
        shield = dict(settings.shield)
        kb = shield.pop("knowledge_base", None)
        if isinstance(kb, dict):
            kb = TradingKnowledgeBase(**kb)
        return ShieldCore(1, settings.action_space, settings.config, settings.n_sizes, knowledge_base=kb, **shield)

    # ------------------------------------------------------------------ the state
    def begin(self, built: BuiltState, decision_id: int,
              execution: dict[str, float]) -> tuple[dict[str, Any], str | None]:
        """Bring the glass box to a decision's state (step 1 of the module docstring).

        Returns:
            ``(info, halt)``: the env's ``info`` of this state (the step's fills in it) and the reason when a part
            halted the account here (a breaker that tripped on the step that ended, or a part that raised).
        """
        obs_row, out_row = self.obs_buf[0], self.out_buf[0]
        obs_row[:] = built.flat
        out_row[:] = built.out
        out_row[O_STEP] = decision_id
        out_row[O_EXEC_QTY] = execution["exec_qty"]
        out_row[O_EXEC_PRICE] = execution["exec_price"]
        out_row[O_SLIPPAGE_BPS] = execution["slippage_bps"]
        out_row[O_FEES] = execution["fees"]
        out_row[O_N_FILLS] = execution["fills"]
        info = {**built.info, **execution, "step": decision_id}
        self.core.scored = False
        self.prediction = None
        if not self.live:
            try:
                self.core.attach((self.obs_buf, self.out_buf))
            except Exception as err:  # fail-safe: no decision on a shield that cannot start
                return info, reason(err)
            self.breakers.start_session(built.obs, dict(info))
            self.last_ltn = None
            if self.hypothalamus is not None:
                self._sizing_env.stage(built.obs, info, book=built.book)
                try:
                    self.hypothalamus.reset()
                except Exception as err:
                    return info, error_reason(SIZING_ERROR, err)
            self._audit_env.stage(built.obs, info)
            try:
                self.audit.reset()
            except Exception as err:
                return info, error_reason(AUDIT_ERROR, err)
            self.live = True
        else:
            step_info = dict(info)
            if self.last_ltn is not None:
                step_info["ltn"] = self.last_ltn
            self.breakers.after_step(built.obs, step_info)
            if self.hypothalamus is not None:
                self._sizing_env.stage(built.obs, info, book=built.book)
                try:
                    self.hypothalamus.step(np.int64(HOLD))  # the step that ended: its fills and σ, no order
                except Exception as err:
                    return info, error_reason(SIZING_ERROR, err)
        return info, self.breakers.halt_reason if self.breakers.halted else None

    # ------------------------------------------------------------------ the decision
    def decide(self, built: BuiltState, info: dict[str, Any], engine: DecisionEngine, units: int) -> GuardDecision:
        """Shield scores, the policy, the pre-action check, the shield's decision, sizing and the env's cut
        (steps 2–3 of the module docstring); a halted decision when a part halts.

        :meth:`score`, ``engine.decide`` and :meth:`conclude` in a row (the service runs the policy on a worker
        thread between the two: :meth:`~agents.app.service.service.DecisionService.decide_async`).
        """
        scored = self.score()
        if isinstance(scored, GuardDecision):
            return scored
        masks, action_sat = scored
        try:
            policy = engine.decide(built.obs, action_sat, masks if engine.masked else None)
        except Exception as err:
            return self.halted(error_reason(ENGINE_ERROR, err))
        return self.conclude(built, policy, action_sat, units)

    def score(self) -> tuple[np.ndarray, np.ndarray] | GuardDecision:
        """The shield's action masks and per-action SatAgg in the state :meth:`begin` staged (what the policy
        needs), or a halted decision when the shield fails."""
        core = self.core
        try:
            return core.masks()[0], core.sat[0].copy()
        except Exception as err:
            return self.halted(reason(err))

    def conclude(self, built: BuiltState, policy: PolicyDecision, action_sat: np.ndarray, units: int) -> GuardDecision:
        """After the policy: the pre-action check, the shield's decision, sizing and the env's cut (or a halted
        decision when a part halts)."""
        core = self.core
        truths = core.truths[0, policy.proposed].tolist()
        proposal = {"sat_agg": float(action_sat[policy.proposed]),
                    "rules": {name: truths[i] for i, name in enumerate(RULE_NAMES)}}
        halt = self.breakers.before_action(np.int64(policy.action))
        if halt is not None:
            return self.halted(halt, policy, proposal_rules=proposal)
        try:
            core.proposed[0] = policy.action
            shield_final = core.decide().item(0)
            sat, rules = core.proposal_scores(0)
        except Exception as err:
            return self.halted(reason(err), policy, proposal_rules=proposal)
        ltn = ltn_record(rules, sat, policy.action, shield_final, core.threshold, action_sat.tolist())
        self.last_ltn = ltn
        executed, sizing = shield_final, None
        if self.hypothalamus is not None:
            try:
                sized, sizing = self.hypothalamus.size(np.int64(shield_final))
                executed = int(sized)
            except Exception as err:
                return self.halted(error_reason(SIZING_ERROR, err), policy, ltn, proposal)
        want = sized_quantity(executed, self.settings.n_sizes, self._lot_units)
        mid = float(built.out[O_MID])
        q, reasons = cut_order(units, want, self._max_units, mid * self._qty_step, float(built.out[O_EQUITY]),
                               self._max_leverage)
        return GuardDecision(agent_action=policy.action, policy=policy, action=executed, order_units=int(q),
                             rejected_units=abs(want) - abs(int(q)), rejected_reason=reason_names(reasons),
                             ltn=ltn, proposal_rules=proposal, sizing=sizing, breakers=self.breakers.breaker_info(),
                             halted=False, halt_reason=None, predicted_slippage_bps=self.prediction)

    def halted(self, halt: str, policy: PolicyDecision | None = None, ltn: dict[str, Any] | None = None,
               proposal_rules: dict[str, Any] | None = None) -> GuardDecision:
        """A decision that orders nothing because the account is (now) halted for ``halt``; the session ends."""
        self.live = False
        return GuardDecision(agent_action=None if policy is None else policy.action, policy=policy, action=HOLD,
                             order_units=0, rejected_units=0, rejected_reason="", ltn=ltn,
                             proposal_rules=proposal_rules, sizing=None, breakers=self.breakers.breaker_info(),
                             halted=True, halt_reason=halt, predicted_slippage_bps=self.prediction)

    # ------------------------------------------------------------------ the audit trail
    def record(self, built: BuiltState, info: dict[str, Any], decision: GuardDecision, reward: float,
               version: str | None = None) -> None:
        """Append the decision to the audit trail (``AuditLog``'s record of it), tagged with the model ``version``
        that decided it when given.

        Raises:
            OSError / ValueError: the trail cannot be written, or its last ``fsync`` failed (the caller halts the
                account).
        """
        policy = decision.policy
        staged = {
            **info,
            "action_forwarded": not decision.halted,
            "ltn": decision.ltn,
            "breakers": decision.breakers,
            "halted": decision.halted,
            "halt_reason": decision.halt_reason,
            "sizing": decision.sizing,
            "go_nogo": None if policy is None else policy.go_nogo,
            "predicted_slippage_bps": decision.predicted_slippage_bps,
        }
        self._audit_env.stage(built.obs, staged, reward=reward)
        proposed = decision.agent_action if decision.agent_action is not None else HOLD
        if self.syncer is not None:
            self.syncer.check(self.audit.path)
        if version is not None:
            self.audit.tags["model_version"] = version
        self.audit.step(np.int64(proposed))
        if self.syncer is not None:
            self.syncer.wrote(self.audit.path)

    def close(self) -> None:
        """Flush and close the audit trail."""
        self.audit.close()


__all__ = ["AUDIT_ERROR", "ENGINE_ERROR", "SIZING_ERROR", "AccountGuard", "GuardDecision", "GuardSettings",
           "StagedEnv", "error_reason"]
