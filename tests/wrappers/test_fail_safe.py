"""Fault injection into every method of the glass box: any exception in a safety wrapper's step or reset halts.

For each safety wrapper (``Amygdala``, ``LTNShield``, ``VectorLTNShield``, ``Hypothalamus``,
``ParallelLTNShield``, ``ParallelAmygdala``) the methods to break are not listed by hand: a tracing
monkeypatch wraps every method and property of the wrapper's own classes (its MRO inside ``wrappers``)
and of the objects it holds (``CircuitBreakers``, ``ShieldCore``, ``TradeStats``, ``Reading``, ...,
found by walking its attributes), records which of them actually run during a step and during a
reset, and then each of them in turn is replaced by one that raises :class:`InjectedFault`, on a
fresh wrapper, from the second step on (step faults) or from a reset that follows a session with
trades (reset faults). For every injection:

* the fault fires (else the trace and the run disagree: the test of that method would be hollow);
* nothing escapes: ``step``/``reset`` return (a fault is never the caller's exception), except the
  documented ``RuntimeError("Call reset() before step()")`` of a wrapper already halted;
* the step in which the fault fired reports the halt (``terminated``, ``info["halted"]``, a
  ``halt_reason`` naming ``InjectedFault``); it may have forwarded its order only if the fault fired
  after the market step;
* no later step forwards an order: the recorder right below the wrapper receives no call, or only a
  zero order (HOLD, keep the position);
* the wrapper reports itself halted (``halted``; ``halts`` per agent for the multi-agent layers);
* all of this for a persistent fault (every call raises) and a transient one (only the first call: the
  halt must hold once the method works again);
* once the fault is removed, a ``reset()`` trades again.

The entry points the test calls, ``step`` and ``reset`` of the wrapper itself, are the fail-safe's
boundary and are not replaced (replacing them replaces the wrapper). Orders are forwarded at every
checked step of the same run without the fault (checked first), so "no order" is never vacuous.
:class:`InjectedFault` is a ``RuntimeError``: a ``TypeError`` or ``InvalidActionError`` raised while
the caller's action is checked is, by design, the caller's mistake and propagates
(:data:`janus_env.actions.ACTION_ERRORS`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.utils.wrappers import BaseParallelWrapper

from envs_registry.pettingzoo_envs import make_parallel_env
from janus_env.checks import NEED_RESET
from janus_env.lob_env import JanusLOBEnv
from janus_env.simulator import O_POSITION
from janus_env.vector_env import JanusLOBVectorEnv
from wrappers import Amygdala, Hypothalamus, LTNShield, ParallelAmygdala, ParallelLTNShield
from wrappers.rules import TradingKnowledgeBase
from wrappers.vector_shield import VectorLTNShield

ENTRY_POINTS = ("step", "reset")
CLEAN_STEPS = 2  # steps before a step fault is injected (and in the session before a reset fault)
CHECKED_STEPS = 3  # steps played with the fault in place


class InjectedFault(RuntimeError):
    """The exception every injected fault raises (its message names the broken method)."""


# ----------------------------------------------------------------------------- recorders
class Recorder(gym.Wrapper):
    """Right below the wrapper under test: the signed order (grid units) of every action that reaches the market."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.orders: list[float] = []

    def step(self, action):
        base = self.env.unwrapped
        if base.action_type == "continuous":
            c = base.config
            position = base.buffers()[1][0, O_POSITION]
            units = round(float(np.asarray(action).reshape(-1)[0]) * c.max_position_units)
            self.orders.append(units - round(position / c.resolved_qty_step))
        else:
            self.orders.append(int(action))  # discrete and sized: 0 is HOLD, any other index an order
        return self.env.step(action)


class VectorRecorder(gym.vector.VectorWrapper):
    """Right below a vector wrapper: the number of books sent a non-HOLD action at each step."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self.orders: list[float] = []

    def step(self, actions):
        self.orders.append(int(np.count_nonzero(np.asarray(actions))))
        return self.env.step(actions)


class ParallelRecorder(BaseParallelWrapper):
    """Right below a multi-agent layer: the agents sent a non-HOLD action at each step."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.orders: list[set[str]] = []

    def step(self, actions):
        self.orders.append({agent for agent, a in actions.items() if int(a) != 0})
        return self.env.step(actions)


# ----------------------------------------------------------------------------- the wrappers under test
@dataclasses.dataclass
class Case:
    """One wrapper: how to build it fresh (``(wrapper, recorder)``) and the action of step ``t``."""

    name: str
    build: Callable[[], tuple[Any, Any]]
    action: Callable[[int], Any]
    parallel: bool = False
    vector: bool = False


def _market(small_market: dict, **kw: Any) -> JanusLOBEnv:
    return JanusLOBEnv(**{"scenario": "ou", **small_market, **kw})


def _cases(small_market: dict, tmp_path) -> list[Case]:
    sized = {"action_type": "sized", "n_sizes": 3}
    # the 8-step warm-up leaves VPIN above 0.7 after one trade; the test needs shields that let orders through
    kb = TradingKnowledgeBase(vpin_threshold=1.0)

    def amygdala():
        rec = Recorder(_market(small_market))
        return Amygdala(rec, slippage_predictor=lambda obs, action, info: 1.0, anomaly_detector=lambda obs: False,
                        kill_file=tmp_path / "no.kill"), rec

    def shield(action_type: str, fallback: str):
        def build():
            rec = Recorder(_market(small_market, **(sized if action_type == "sized" else {"action_type": action_type})))
            return LTNShield(rec, fallback=fallback, knowledge_base=kb), rec
        return build

    def vector():
        rec = VectorRecorder(JanusLOBVectorEnv(num_envs=2, seed=0, **sized, **small_market))
        return VectorLTNShield(rec, knowledge_base=kb), rec

    def hypothalamus(action_type: str):
        def build():
            kw = sized if action_type == "sized" else {"action_type": action_type}
            rec = Recorder(_market(small_market, **kw))
            return Hypothalamus(rec), rec
        return build

    def parallel(layer, **kw):
        def build():
            rec = ParallelRecorder(make_parallel_env(roles={"noise": 1, "janus": 2}, **small_market))
            return layer(rec, agents=["janus"], **kw), rec
        return build

    # sizing: buys, then sales (closing trades run the trade statistics), inside the position limit;
    # shields: buys only (a buy after a losing sale is a wash sale, which the shield rightly blocks)
    sized_plan = [1, 1, 4, 1, 2, 4, 1]
    continuous_plan = [0.1, 0.2, 0.1, 0.25, 0.15, 0.3, 0.2]
    rising = [0.1, 0.2, 0.3, 0.4, 0.5]
    return [
        Case("Amygdala", amygdala, lambda t: 1),
        Case("LTNShield-sized", shield("sized", "hold"), lambda t: 1),
        Case("LTNShield-continuous", shield("continuous", "nearest"),
             lambda t: np.array([rising[t]], dtype=np.float32)),
        Case("VectorLTNShield", vector, lambda t: np.full(2, 1, dtype=np.int64), vector=True),
        Case("Hypothalamus-sized", hypothalamus("sized"), lambda t: np.int64(sized_plan[t])),
        Case("Hypothalamus-continuous", hypothalamus("continuous"),
             lambda t: np.array([continuous_plan[t]], dtype=np.float32)),
        Case("ParallelLTNShield", parallel(ParallelLTNShield, knowledge_base=kb), lambda t: 1, parallel=True),
        Case("ParallelAmygdala", parallel(ParallelAmygdala), lambda t: 1, parallel=True),
    ]


# ----------------------------------------------------------------------------- finding every method
def _own(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "wrappers"


def held_classes(wrapper: Any) -> list[type]:
    """The ``wrappers`` classes of ``wrapper`` (its MRO) and of every object it holds, recursively (attribute
    values, dict values, list and tuple items), except the env it wraps (each wrapper is tested on its own)."""
    found: dict[type, None] = {}
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if id(obj) in seen or depth > 4:
            return
        seen.add(id(obj))
        if isinstance(obj, dict):
            for v in obj.values():
                visit(v, depth + 1)
            return
        if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
            for v in obj:
                visit(v, depth + 1)
            return
        if not _own(type(obj)):
            return
        for cls in type(obj).__mro__:
            if _own(cls):
                found.setdefault(cls)
        if isinstance(obj, tuple):  # a NamedTuple of ours (a breaker Reading): no attributes to walk
            return
        for name, value in vars(obj).items():
            if name != "env":
                visit(value, depth + 1)

    visit(wrapper, 0)
    return list(found)


def methods(cls: type) -> Iterator[tuple[str, Any]]:
    """``(name, member)`` of every method, static/class method and property ``cls`` itself defines (no dunders)."""
    for name, member in vars(cls).items():
        if name.startswith("__"):
            continue
        if isinstance(member, property) or isinstance(member, (staticmethod, classmethod)) or inspect.isfunction(
                member):
            yield name, member


def _replace(member: Any, make: Callable[[Callable], Callable]) -> Any:
    """``member`` with its function ``f`` replaced by ``make(f)`` (a property's getter, a static/class method's
    function)."""
    if isinstance(member, property):
        return property(make(member.fget), member.fset, member.fdel)
    if isinstance(member, staticmethod):
        return staticmethod(make(member.__func__))
    if isinstance(member, classmethod):
        return classmethod(make(member.__func__))
    return make(member)


class Tracer:
    """Records which ``(class, method)`` ran in each phase (``phase`` set by the caller; None: not recording)."""

    def __init__(self) -> None:
        self.phase: str | None = None
        self.calls: dict[str, set[tuple[type, str]]] = {"step": set(), "reset": set()}

    def wrapping(self, cls: type, name: str) -> Callable[[Callable], Callable]:
        def wrap(f: Callable) -> Callable:
            @functools.wraps(f)
            def traced(*args, **kwargs):
                if self.phase is not None:
                    self.calls[self.phase].add((cls, name))
                return f(*args, **kwargs)
            return traced
        return wrap


@contextlib.contextmanager
def tracing(classes: list[type], wrapper_mro: tuple[type, ...]) -> Iterator[Tracer]:
    """Every method of ``classes`` traced, except the entry points of the wrapper itself."""
    tracer = Tracer()
    with pytest.MonkeyPatch.context() as mp:
        for cls in classes:
            for name, member in methods(cls):
                if cls in wrapper_mro and name in ENTRY_POINTS:
                    continue
                mp.setattr(cls, name, _replace(member, tracer.wrapping(cls, name)))
        yield tracer


@contextlib.contextmanager
def injected(cls: type, name: str, once: bool) -> Iterator[list[int]]:
    """``cls.name`` raises :class:`InjectedFault` on every call (``once``: on its first call only, a transient
    fault); yields the list its faults are counted in."""
    fired: list[int] = []
    member = vars(cls)[name]

    def make(f: Callable) -> Callable:
        @functools.wraps(f)
        def broken(*args, **kwargs):
            if once and fired:
                return f(*args, **kwargs)
            fired.append(1)
            raise InjectedFault(f"{cls.__name__}.{name} is broken")
        return broken

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, name, _replace(member, make))
        yield fired


# ----------------------------------------------------------------------------- one run
ENV = "env"  # the one account of a single-agent or vector wrapper, in the sets below


@dataclasses.dataclass
class Outcome:
    """One step: did the fault fire during it, which accounts sent an order to the market, which reported a halt."""

    fired: bool
    sent: set[str]
    halted: set[str]
    reason: str
    need_reset: bool = False


def _step(case: Case, wrapper: Any, recorder: Any, t: int, fired: list[int], guarded: list[str]) -> Outcome:
    before_calls, before_orders = len(fired), len(recorder.orders)
    if case.parallel:
        actions = {agent: (case.action(t) if agent in guarded else 0) for agent in wrapper.agents}
        _, _, terms, _, infos = wrapper.step(actions)
        sent = set().union(*recorder.orders[before_orders:]) & set(guarded)
        halted = {a for a in guarded if a in infos and infos[a].get("halted") and terms[a]}
        reasons = " | ".join(str(infos[a].get("halt_reason")) for a in sorted(halted))
        return Outcome(len(fired) > before_calls, sent, halted, reasons)
    try:
        _, _, terminated, _, info = wrapper.step(case.action(t))
    except RuntimeError as err:
        if str(err) != NEED_RESET:
            raise
        sent = {ENV} if any(o != 0 for o in recorder.orders[before_orders:]) else set()
        return Outcome(len(fired) > before_calls, sent, {ENV}, "", need_reset=True)
    sent = {ENV} if any(o != 0 for o in recorder.orders[before_orders:]) else set()
    if case.vector:
        halted = bool(np.all(terminated) and np.all(info.get("halted", False)))
        reason = str(info["halt_reason"][0]) if "halt_reason" in info else ""
    else:
        halted = bool(terminated and info.get("halted"))
        reason = str(info.get("halt_reason"))
    return Outcome(len(fired) > before_calls, sent, {ENV} if halted else set(), reason)


def _halted_set(case: Case, wrapper: Any) -> set[str]:
    """The accounts the wrapper reports halted (``halted``; ``halts`` per agent)."""
    if case.parallel:
        return set(wrapper.halts)
    return {ENV} if wrapper.halted else set()


def _guarded(case: Case, wrapper: Any) -> list[str]:
    return list(wrapper.guarded) if case.parallel else [ENV]


def baseline(case: Case) -> list[Outcome]:
    """The run without a fault: every checked step must forward an order (else "no order" would be vacuous)."""
    wrapper, recorder = case.build()
    guarded = _guarded(case, wrapper)
    wrapper.reset(seed=0)
    return [_step(case, wrapper, recorder, t, [], guarded) for t in range(CLEAN_STEPS + CHECKED_STEPS)]


def trace(case: Case) -> dict[str, set[tuple[type, str]]]:
    """Which methods of the wrapper's classes run in its steps (after the first) and in a reset that follows a
    session with trades."""
    wrapper, recorder = case.build()
    guarded = _guarded(case, wrapper)
    wrapper.reset(seed=0)
    _step(case, wrapper, recorder, 0, [], guarded)  # fills Readings and histories, so their classes are found
    classes = held_classes(wrapper)
    with tracing(classes, type(wrapper).__mro__) as tracer:
        tracer.phase = "step"
        for t in range(1, CLEAN_STEPS + CHECKED_STEPS):
            _step(case, wrapper, recorder, t, [], guarded)
        tracer.phase = "reset"
        wrapper.reset(seed=1)
        tracer.phase = None
    return tracer.calls


def inject(case: Case, phase: str, cls: type, name: str, once: bool) -> list[str]:
    """Break ``cls.name`` in ``phase`` and play on; the list of broken promises (empty: the fail-safe held).

    The accounts the fault stopped are those reporting a halt in the step it fired in (step faults) or in the
    first step after the reset (reset faults): every guarded account for a persistent fault; for a transient one
    in a multi-agent layer, the agent whose breakers raised (the others rightly trade on).
    """
    label = f"{case.name}: {cls.__name__}.{name} in {phase}{' (once)' if once else ''}"
    wrapper, recorder = case.build()
    guarded = _guarded(case, wrapper)
    wrapper.reset(seed=0)
    for t in range(CLEAN_STEPS):
        _step(case, wrapper, recorder, t, [], guarded)
    problems: list[str] = []
    with injected(cls, name, once) as fired:
        outcomes: list[Outcome] = []
        try:
            if phase == "reset":
                wrapper.reset(seed=1)
                if not fired:
                    return [f"{label}: the fault never fired"]
            for t in range(CLEAN_STEPS, CLEAN_STEPS + CHECKED_STEPS):
                outcomes.append(_step(case, wrapper, recorder, t, fired, guarded))
                if outcomes[-1].need_reset:
                    break
        except Exception as err:  # noqa: BLE001 - the point of the test: nothing may escape
            return [f"{label}: {type(err).__name__} escaped: {err}"]
        if phase == "reset":
            first = 0
        else:
            first = next((k for k, o in enumerate(outcomes) if o.fired), None)
            if first is None:
                return [f"{label}: the fault never fired"]
        o = outcomes[first]
        stopped = o.halted
        if not stopped:
            problems.append(f"{label}: the {'step that raised' if phase == 'step' else 'first step'} reported no halt")
        elif phase == "step" and "InjectedFault" not in o.reason:
            problems.append(f"{label}: the halt reason does not name the fault: {o.reason!r}")
        if phase == "reset" and o.sent & stopped:
            problems.append(f"{label}: the first step after the faulty reset sent an order")
        if not once and stopped != set(guarded):
            problems.append(f"{label}: a persistent fault stopped {sorted(stopped)}, not every guarded account")
        for k, later in enumerate(outcomes[first + 1:]):
            if later.sent & stopped:
                problems.append(f"{label}: an order reached the market {k + 1} step(s) after the fault")
        if not stopped <= _halted_set(case, wrapper):
            problems.append(f"{label}: the wrapper does not report {sorted(stopped - _halted_set(case, wrapper))} "
                            "halted")
    # the fault removed: a new session trades again
    wrapper.reset(seed=2)
    again = _step(case, wrapper, recorder, 0, [], guarded)
    if again.sent != set(guarded) or again.halted:
        problems.append(f"{label}: no trading after the fault was removed and the env reset")
    return problems


# ----------------------------------------------------------------------------- the tests
CASE_NAMES = ["Amygdala", "LTNShield-sized", "LTNShield-continuous", "VectorLTNShield", "Hypothalamus-sized",
              "Hypothalamus-continuous", "ParallelLTNShield", "ParallelAmygdala"]

# methods the trace must find (proof that it walks the components, not only the wrapper's own class)
MUST_TRACE = {
    "Amygdala": {("CircuitBreakers", "_post_step"), ("CircuitBreakers", "_check_fear"), ("Amygdala", "_annotate"),
                 ("CircuitBreakers", "breaker_info"), ("CircuitBreakers", "_clear_session"), ("Reading", "tripped")},
    "LTNShield-sized": {("ShieldCore", "decide"), ("LTNShield", "decide"), ("ShieldCore", "attach")},
    "LTNShield-continuous": {("ShieldCore", "decide_continuous"), ("LTNShield", "_validate")},
    "VectorLTNShield": {("ShieldCore", "batch_scores"), ("ShieldCore", "attach")},
    "Hypothalamus-sized": {("Hypothalamus", "size"), ("Hypothalamus", "_reserve_ok"), ("TradeStats", "add"),
                           ("TradeStats", "clear"), ("Hypothalamus", "_record_fill")},
    "Hypothalamus-continuous": {("Hypothalamus", "size"), ("Hypothalamus", "scales")},
    "ParallelLTNShield": {("ParallelLTNShield", "_check_actions"), ("ParallelSafetyWrapper", "_report"),
                          ("ShieldCore", "proposal_scores"), ("ParallelLTNShield", "_after_reset")},
    "ParallelAmygdala": {("CircuitBreakers", "before_action"), ("ParallelAmygdala", "_after_step"),
                         ("CircuitBreakers", "start_session"), ("ParallelSafetyWrapper", "_is_trading")},
}


@pytest.mark.parametrize("once", [False, True], ids=["persistent", "transient"])
@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_every_method_fails_safe(case_name: str, once: bool, small_market: dict, tmp_path) -> None:
    """A persistent fault (every call raises) and a transient one (only the first): the halt must hold either way,
    also when the broken method works again."""
    case = {c.name: c for c in _cases(small_market, tmp_path)}[case_name]
    clean = baseline(case)
    guarded = set(_guarded(case, case.build()[0]))
    assert all(o.sent == guarded and not o.halted for o in clean), f"{case_name}: without a fault it trades: {clean}"
    calls = trace(case)
    traced = {(cls.__name__, name) for phase in ("step", "reset") for cls, name in calls[phase]}
    assert MUST_TRACE[case_name] <= traced, MUST_TRACE[case_name] - traced
    problems = []
    for phase in ("step", "reset"):
        for cls, name in sorted(calls[phase], key=lambda m: (m[0].__name__, m[1])):
            problems += inject(case, phase, cls, name, once)
    assert not problems, "\n".join(problems)
