"""``DecisionService``: decisions, fills, halts and resumes on the accounts of one store, for one served run.

The HTTP layer (:mod:`agents.app.service.app`) authenticates, limits and parses; everything else happens here,
on the accounts of the key that asks (a key acts on its own account only; ``admin`` keys halt, resume and read
any account).

A decision (``POST /api/v1/decision``):

1. the body's state becomes the env's observation for this account
   (:mod:`~agents.app.service.observation`); a bad body is refused before anything changes;
2. a halted account answers HOLD (size 0) with its halt reason, and nothing else runs;
3. otherwise the account's glass box (:mod:`~agents.app.service.guard`) closes the last decision's step (its
   fills) — a breaker may trip on it — and decides: shield scores, policy, pre-action check, shield, sizing,
   the env's position and buying-power cut;
4. the decision is appended to the account's audit trail, opens the account's next order (the size answered)
   and is saved (the account and the transition it closes, one commit); a halt (a breaker, a failing part) is
   stored before the answer leaves.

On the server (:meth:`DecisionService.decide_async`) step 3's policy runs on the engine's worker thread, so the
event loop serves other accounts meanwhile; the account's lock keeps its own requests in order. In process,
:meth:`DecisionService.decide` runs the same steps in one call.

Sessions: the first decision, the first after a resume or a restart, and the one after ``episode_steps``
decisions start a new session (time left 1, the peak at the equity now, the glass box afresh), as an
episode of the env starts.

The answer (JSON):

| key | meaning |
| --- | --- |
| ``decision_id`` | this account's decision number (fills name it) |
| ``action`` | the env action executed (0 = HOLD): after the Go/No-Go gate, the shield and sizing |
| ``side``, ``size`` | ``buy``/``sell``/``hold`` and the signed quantity to send (after the env's position and buying-power cut) |
| ``rejected_qty``, ``rejected_reason`` | what that cut removed, and why (``position_limit``, ``leverage``) |
| ``proposed_action`` | the Go pathway's proposal (before the gate) |
| ``confidence`` | softmax of the Go scores at ``action`` (:mod:`~agents.app.service.engine`) |
| ``go_nogo`` | Go scores, No-Go probabilities, veto and its reason, ℓ_logic, τ_veto, τ_logic (basal-ganglia policies; null otherwise) |
| ``ltn_satisfaction``, ``rules`` | SatAgg and per-rule truths of the proposal in this state (the shield's scoring) |
| ``shield_overridden`` | the shield replaced the action it received |
| ``risk_score`` | the amygdala's fear activation (τ_fear = τ_risk 0.7 halts); null before the session has a baseline |
| ``breakers`` | every breaker's value, threshold, activity, trip and reason |
| ``halted``, ``halt_reason`` | the account's halt (a halted account answers HOLD, size 0) |
| ``sizing`` | the ``Hypothalamus``'s record (null without sizing) |
| ``predicted_slippage_bps`` | the run's cerebellum's prediction for the order (null for HOLD or without one) |
| ``mid``, ``session``, ``session_step`` | the mid decided at; the account's session and decisions in it |
| ``model_version``, ``latency_ms`` | the model that decided; the server's time for this decision (request read → answer built, waits for the account's lock and the policy's worker thread included) |

Each decision is also appended to ``<store>/audit/<account>.jsonl`` (``wrappers.AuditLog``'s record, tagged with
the account and the model version; ``wrappers.read_audit_log`` reads it): written to the OS before the answer
leaves (a crash of the service loses none), forced to disk within a second by a thread off the event loop
(:mod:`~agents.app.service.syncer`; a power cut costs at most the last second's records, ``AuditLog``'s own
bound).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.app.service.accounts import Account
from agents.app.service.engine import DecisionEngine
from agents.app.service.experience import ExperienceRecorder
from agents.app.service.guard import (
    AUDIT_ERROR,
    ENGINE_ERROR,
    AccountGuard,
    GuardDecision,
    GuardSettings,
    error_reason,
)
from agents.app.service.keys import ApiKeys, Principal
from agents.app.service.metrics import Registry, halt_label
from agents.app.service.observation import BuiltState, ObservationBuilder, built_state
from agents.app.service.schemas import DecisionRequest, FieldError, FillRequest, MarketBody
from agents.app.service.store import Halt, ServiceStore, account_statement
from agents.app.service.syncer import DiskSyncer
from agents.app.service.venue import apply_venue
from janus_env.config import MarketConfig
from wrappers.audit import to_jsonable
from wrappers.breakers import BREAKERS
from wrappers.shield_kernel import DEFAULT_THRESHOLD, HOLD

MANUAL = "manual"
"""Halt source (and reason prefix) of the API's kill switch."""

_NO_ACCOUNT = "no account named {!r}"
_NOT_HALTED = "account {!r} is not halted"
_NEED_TARGET = "expected `account` (a name) or `all: true`, not both and not neither"
_NOT_YOURS = "a key reads its own account only (an admin key reads any): {!r} is not {!r}"


@dataclass
class _Pending:
    """A decision between :meth:`DecisionService._open` and :meth:`DecisionService._close`: its account, state,
    ``info``, id, and the engine and version it is decided with (a sleep job's swap meanwhile does not change
    them); ``decision`` once known."""

    name: str
    account: Account
    guard: AccountGuard
    halt: Halt | None
    built: BuiltState
    info: dict[str, Any]
    decision_id: int
    engine: DecisionEngine
    version: str
    decision: GuardDecision | None = None


@dataclass
class AccountSlot:
    """An account in memory: its books and its glass box."""

    account: Account
    guard: AccountGuard


def _side(units: int) -> str:
    return "buy" if units > 0 else "sell" if units < 0 else "hold"


def _source(reason: str) -> str:
    """``breaker`` for a breaker's halt (or the amygdala's fail-safe), ``manual``, else ``error`` (a part raised)."""
    label = halt_label(reason)
    if label in BREAKERS or label == "amygdala_error":
        return "breaker"
    return MANUAL if label == MANUAL else "error"


class DecisionService:
    """The service's state and operations (module docstring).

    Args:
        store: the store of ``--store``.
        engine: the served policy.
        settings: every account's glass-box settings.
        version: the model version (``<run>-<sha256 of model.zip, 12 digits>``).
    """

    def __init__(self, store: ServiceStore, engine: DecisionEngine, settings: GuardSettings, version: str) -> None:
        self.store = store
        self.engine = engine
        self.settings = settings
        self.config: MarketConfig = settings.config
        self.version = version
        self.keys = ApiKeys(store)
        self.metrics = Registry()
        self.builder = ObservationBuilder(self.config, settings.observation_space)
        self.slots: dict[str, AccountSlot] = {}
        self.halts: dict[str, Halt] = store.halts()
        self.metrics.model.set(1.0, version, engine.engine)
        self.metrics.halted.set(len(self.halts))
        self._steps = int(self.config.episode_steps)
        self.guard_threshold = float(settings.shield.get("threshold", DEFAULT_THRESHOLD))
        self.experience = ExperienceRecorder(store, settings.observation_space)
        """Records each decision's transition (:mod:`~agents.app.service.experience`), what sleep jobs replay."""
        self.sleep: Any = None
        """The sleep side (:class:`~agents.app.service.sleep.SleepManager`), when built by ``build_service``."""
        store.background_checkpoints()
        self.syncer = DiskSyncer(checkpoint=store.checkpoint)
        """Forces the audit trails to disk and checkpoints the store, off the event loop
        (:mod:`~agents.app.service.syncer`)."""
        self.syncer.start()
        self._locks: dict[str, asyncio.Lock] = {}
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="policy")
        """The engine's worker thread (:meth:`decide_async`): one, so the policy's calls never overlap."""

    # ------------------------------------------------------------------ accounts
    def authenticate(self, key: str) -> Principal | None:
        return self.keys.verify(key)

    def slot(self, name: str) -> AccountSlot:
        """The account ``name`` in memory (loaded from the store, or new and flat)."""
        slot = self.slots.get(name)
        if slot is None:
            state = self.store.account(name)
            account = Account.from_json(state) if state is not None else Account.new(name, self.config)
            guard = AccountGuard(self.settings, self.store.audit_path(name),
                                 tags={"account": name, "model_version": self.version}, syncer=self.syncer)
            halt = self.halts.get(name)
            if halt is not None and halt.source == MANUAL:
                guard.breakers.kill(halt.reason)
            slot = self.slots[name] = AccountSlot(account, guard)
        return slot

    def account_view(self, principal: Principal, name: str | None = None) -> dict[str, Any]:
        """An account as the API shows it: the key's own, or (admin keys) any.

        Raises:
            FieldError: another account without the admin scope (403), or no such account (404).
        """
        name = principal.name if name is None else name
        if name != principal.name and "admin" not in principal.scopes:
            raise FieldError("account", _NOT_YOURS.format(name, principal.name), 403)
        if name != principal.name and name not in self.store.key_names():
            raise FieldError("account", _NO_ACCOUNT.format(name), 404)
        view = self.slot(name).account.view(self.config)
        halt = self.halts.get(name)
        view.update(halted=halt is not None, halt_reason=None if halt is None else halt.reason)
        return to_jsonable(view)

    # ------------------------------------------------------------------ decisions
    def decide(self, principal: Principal, request: DecisionRequest, started: float) -> dict[str, Any]:
        """One decision for the principal's account (module docstring); ``started`` is ``perf_counter()`` at
        the request's arrival (the answer's ``latency_ms``).

        Raises:
            FieldError: a body the run cannot read (nothing changed).
        """
        pending = self._open(principal.name, request)
        if pending.decision is None:
            pending.decision = pending.guard.decide(pending.built, pending.info, pending.engine, pending.account.units)
        return self._close(pending, started)

    async def decide_async(self, principal: Principal, request: DecisionRequest, started: float) -> dict[str, Any]:
        """:meth:`decide` for the event loop: the account's lock held throughout (its decisions, fills and resets
        keep their order), the policy run on the engine's worker thread, the loop free meanwhile for other
        accounts' requests (ONNX Runtime releases the GIL: on a second core, one account's policy runs while the
        loop reads, guards and audits another's). The same decision as :meth:`decide`, bit for bit: the same
        calls, in the same order, on the same objects.

        Raises:
            FieldError: a body the run cannot read (nothing changed).
        """
        async with self.account_lock(principal.name):
            pending = self._open(principal.name, request)
            if pending.decision is None:
                guard = pending.guard
                scored = guard.score()
                if isinstance(scored, GuardDecision):
                    pending.decision = scored
                else:
                    masks, action_sat = scored
                    engine = pending.engine
                    try:
                        policy = await asyncio.get_running_loop().run_in_executor(
                            self._worker, engine.decide, pending.built.obs, action_sat,
                            masks if engine.masked else None)
                    except Exception as err:
                        pending.decision = guard.halted(error_reason(ENGINE_ERROR, err))
                    else:
                        pending.decision = guard.conclude(pending.built, policy, action_sat, pending.account.units)
            return self._close(pending, started)

    def warm_up(self) -> float:
        """One decision through every stage, on a scratch account, before the first client's: numba's cached
        kernels load, ONNX Runtime runs its first inference, the shield and breakers start their first session
        (~20 ms the first client's decision paid otherwise). Its audit trail is a temporary file, deleted; no
        account, experience row, metric or halt is touched, and the engine keeps no state between decisions, so
        every later decision is what it would have been. Returns the seconds it took.

        Raises:
            RuntimeError: a stage failed (the service should not start: it could not decide either).
        """
        started = time.perf_counter()
        config = self.config
        n, tick, mid = int(config.window), float(config.tick_size), float(config.initial_price)
        levels = range(int(config.n_levels))
        market = MarketBody(prices=[mid] * n, volumes=[1.0] * n,
                            bids=[[mid - tick * (i + 1), 1.0] for i in levels],
                            asks=[[mid + tick * (i + 1), 1.0] for i in levels])
        account = Account.new("warm-up", config)
        with tempfile.TemporaryDirectory(prefix="janus-warm-up-") as folder:
            guard = AccountGuard(self.settings, Path(folder) / "audit.jsonl", tags={"account": "warm-up"})
            try:
                built = built_state(self.builder, market, None, None, account)
                info, halt = guard.begin(built, 0, account.cycle_execution(config))
                decision = guard.halted(halt) if halt is not None else guard.decide(built, info, self.engine, 0)
                guard.record(built, info, decision, 0.0, self.version)
            except Exception as err:
                raise RuntimeError(f"the warm-up decision failed: {err}") from err
            finally:
                guard.close()
        if decision.halted and decision.halt_reason and decision.halt_reason.startswith((ENGINE_ERROR, AUDIT_ERROR)):
            raise RuntimeError(f"the warm-up decision failed: {decision.halt_reason}")
        return time.perf_counter() - started

    def account_lock(self, name: str) -> asyncio.Lock:
        """The lock that orders the event loop's operations on account ``name`` (:meth:`decide_async`; the app
        takes it for fills and resets; a halt or a resume does not wait: a decision in flight meets the kill switch
        at its pre-action check)."""
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def _open(self, name: str, request: DecisionRequest) -> _Pending:
        """Everything before the policy: the state, the account's session and halt, the glass box's ``begin``
        (:class:`_Pending`; its ``decision`` is set already when the account is or gets halted)."""
        slot = self.slot(name)
        account, guard = slot.account, slot.guard
        halt = self.halts.get(name)
        new_session = halt is None and (not guard.live or account.t >= self._steps)
        if new_session:
            saved = (account.t, account.peak, account.session)
            account.t, account.peak, account.session = 0, None, account.session + 1
            guard.live = False
        try:
            built = built_state(self.builder, request.market, request.observation, request.mid, account)
            execution = account.cycle_execution(self.config)
            if request.state is not None:  # the venue's raw state (paper trading): agents.app.service.venue
                execution = apply_venue(request, built, account, self.config, execution)
        except FieldError:
            if new_session:
                account.t, account.peak, account.session = saved
            raise
        decision_id = account.next_decision()
        pending = _Pending(name=name, account=account, guard=guard, halt=halt, built=built, info={},
                           decision_id=decision_id, engine=self.engine, version=self.version)
        if halt is not None:
            pending.info = {**built.info, "step": decision_id}
            guard.breakers.before_action(HOLD)  # a manual halt shows in the kill switch's reading; nothing else runs
            pending.decision = guard.halted(halt.reason)
        else:
            pending.info, reason = guard.begin(built, decision_id, execution)
            if reason is not None:
                pending.decision = guard.halted(reason)
        return pending

    def _close(self, pending: _Pending, started: float) -> dict[str, Any]:
        """Everything after the policy: the audit record, the halt or the order, the store, metrics, the answer."""
        name, account, guard, built = pending.name, pending.account, pending.guard, pending.built
        decision = pending.decision
        assert decision is not None  # set by _open, or by the caller once the policy ran
        equity = float(built.info["equity"])
        reward = 0.0 if decision.halted or account.last_equity is None else (
            (equity - account.last_equity) / float(self.config.initial_cash) * 1e4)
        try:
            guard.record(built, pending.info, decision, reward, pending.version)
        except Exception as err:  # fail-safe: no order leaves without its audit record
            decision = guard.halted(error_reason(AUDIT_ERROR, err), decision.policy, decision.ltn)
        if decision.halted:
            if pending.halt is None:
                self._halt(name, decision.halt_reason or "halted", _source(decision.halt_reason or ""))
        else:
            account.peak = max(equity, account.peak if account.peak is not None else equity)
            account.last_equity = equity
            account.t += 1
            account.open_order(pending.decision_id, decision.order_units, built.mid)
        self.experience.observe(name, account.session, pending.decision_id, pending.version, built.obs,
                                decision.agent_action, decision.ltn, reward, decision.halted,
                                with_statements=[account_statement(name, account.to_json())])
        self._count(decision)
        latency = time.perf_counter() - started
        self.metrics.latency.observe(latency)
        return self._answer(name, pending.decision_id, built, decision, account, latency, pending.version)

    def _count(self, decision: GuardDecision) -> None:
        m = self.metrics
        m.decisions.inc(str(decision.action), _side(decision.order_units))
        go_nogo = decision.policy.go_nogo if decision.policy is not None else None
        if go_nogo is not None and go_nogo.get("vetoed"):
            m.vetoes.inc("basal_ganglia")
        if decision.ltn is not None and decision.ltn.get("overridden"):
            m.vetoes.inc("shield")
        if decision.proposal_rules is not None:
            tau = self.guard_threshold
            for rule, truth in decision.proposal_rules["rules"].items():
                if truth < tau:
                    m.violations.inc(rule)

    def _answer(self, name: str, decision_id: int, built: BuiltState, decision: GuardDecision, account: Account,
                latency: float, version: str) -> dict[str, Any]:
        policy, ltn, proposal = decision.policy, decision.ltn, decision.proposal_rules
        fear = decision.breakers.get("fear") or {}
        risk = fear.get("value") if fear.get("active") else None
        # every part is plain Python numbers, strings and bools already (the breakers' readings are checked finite);
        # the policy's and the sizing's records go through to_jsonable (a NaN Go score becomes null, not a 500)
        return {
            "decision_id": decision_id,
            "account": name,
            "action": decision.action,
            "side": _side(decision.order_units),
            "size": float(self.config.to_qty(decision.order_units)),
            "proposed_action": None if policy is None else policy.proposed,
            "confidence": None if policy is None else to_jsonable(policy.confidence),
            "go_nogo": None if policy is None else to_jsonable(policy.go_nogo),
            "ltn_satisfaction": None if proposal is None else proposal["sat_agg"],
            "rules": None if proposal is None else proposal["rules"],
            "shield_overridden": None if ltn is None else ltn["overridden"],
            "risk_score": risk,
            "breakers": decision.breakers,
            "halted": decision.halted,
            "halt_reason": decision.halt_reason,
            "sizing": to_jsonable(decision.sizing),
            "rejected_qty": float(self.config.to_qty(decision.rejected_units)),
            "rejected_reason": decision.rejected_reason,
            "predicted_slippage_bps": to_jsonable(decision.predicted_slippage_bps),
            "mid": built.mid,
            "session": account.session,
            "session_step": account.t,
            "model_version": version,
            "latency_ms": latency * 1e3,
        }

    # ------------------------------------------------------------------ fills
    def fill(self, principal: Principal, request: FillRequest) -> dict[str, Any]:
        """Book a fill of the principal's open order (:meth:`Account.apply_fill`) and save the account.

        Raises:
            FieldError: a fill the account cannot take (its message and status).
        """
        slot = self.slot(principal.name)
        booked = slot.account.apply_fill(request.decision_id, request.qty, request.price, self.config)
        self.store.save_account(principal.name, slot.account.to_json())
        view = slot.account.view(self.config)
        return to_jsonable({"account": principal.name, "fill": booked, "position": view["position"],
                            "cash": view["cash"], "cost_basis": view["cost_basis"], "equity": view["equity"],
                            "drawdown": view["drawdown"]})

    # ------------------------------------------------------------------ halts
    def _halt(self, name: str, reason: str, source: str) -> None:
        self.store.halt(name, reason, source)
        if name not in self.halts:
            self.halts[name] = Halt(reason, source, time.time())
            self.metrics.halts.inc(halt_label(reason))
        self.metrics.halted.set(len(self.halts))

    def _targets(self, account: str | None, everyone: bool) -> list[str]:
        if (account is None) == (not everyone):
            raise FieldError("account", _NEED_TARGET)
        names = self.store.key_names()
        if everyone:
            return names
        if account not in names:
            raise FieldError("account", _NO_ACCOUNT.format(account), 404)
        return [account]

    def halt(self, account: str | None, everyone: bool, reason: str) -> dict[str, Any]:
        """The kill switch: halt ``account`` (or every account) with ``reason``; stored before this returns.

        Raises:
            FieldError: no target or an unknown account.
        """
        halted = []
        for name in self._targets(account, everyone):
            if name in self.halts:
                continue
            text = f"{MANUAL}: {reason}"
            self._halt(name, text, MANUAL)
            self.slot(name).guard.breakers.kill(text)
            halted.append(name)
        return {"halted": halted, "reason": f"{MANUAL}: {reason}"}

    def resume(self, account: str | None, everyone: bool) -> dict[str, Any]:
        """Clear the halt of ``account`` (or of every halted account); its next decision starts a new session.

        Raises:
            FieldError: no target, an unknown account, or one that is not halted (409).
        """
        names = self._targets(account, everyone)
        if not everyone and names[0] not in self.halts:
            raise FieldError("account", _NOT_HALTED.format(names[0]), 409)
        resumed = []
        for name in names:
            if name not in self.halts:
                continue
            self.store.resume(name)
            del self.halts[name]
            guard = self.slot(name).guard
            guard.breakers.clear_kill()
            guard.live = False
            resumed.append(name)
        self.metrics.halted.set(len(self.halts))
        return {"resumed": resumed}

    # ------------------------------------------------------------------ operations
    def ready(self) -> dict[str, Any]:
        """Readiness: the model is loaded and the store takes writes; what a client needs to build bodies."""
        writable = self.store.writable()
        space = self.settings.action_space
        return {"ready": writable, "model_loaded": True, "store_writable": writable, "model_version": self.version,
                "engine": self.engine.engine, "window": int(self.config.window), "n_levels": int(self.config.n_levels),
                "max_steps": self.builder.max_steps, "episode_steps": self._steps,
                "action_type": self.settings.action_type, "n_actions": int(space.n),
                "lot": float(self.config.lot), "qty_step": float(self.config.resolved_qty_step)}

    def close(self) -> None:
        """Flush and close every audit trail (each ``fsync``ed), stop the syncer and close the store."""
        for slot in self.slots.values():
            try:
                slot.guard.close()
            except Exception:  # noqa: BLE001 - closing the others matters more
                pass
        self._worker.shutdown(wait=True)
        self.syncer.stop()
        self.store.close()


__all__ = ["MANUAL", "AccountSlot", "DecisionService"]
