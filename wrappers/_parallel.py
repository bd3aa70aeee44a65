"""Per-agent halting shared by the multi-agent glass box (``ParallelLTNShield``, ``ParallelAmygdala``).

A safety layer over ``JanusParallelEnv`` guards some agents; when it halts one,
the agent stops trading through ``JanusParallelEnv.halt`` (its quotes are
cancelled at once, its actions ignored) while the market and every other agent
go on. How the halt is reported is the layer's ``on_halt``:

* ``"terminate"`` (default): the agent is reported ``terminated=True`` (and
  ``truncated=False``) in the step of the halt and leaves ``agents``. Its open
  position stays in the market but no reward is reported after the halt, so its
  episode PnL is the one at the halt (as if closed at that mark).
* ``"stay"``: the agent stays in ``agents``, HOLDs, keeps observing and
  receiving its mark-to-market reward until the episode ends (the env's own
  halt; SuperSuit vector envs need all agents to finish together).

In both cases the step of the halt carries ``infos[agent]["halted"] = True``
and ``infos[agent]["halt_reason"]``; with ``"stay"`` the env repeats them every
later step. ``terminated`` is PettingZoo's "reached a terminal state": the
agent's session is over for good, as in the single-agent ``Amygdala``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from pettingzoo.utils.wrappers import BaseParallelWrapper

from janus_env.actions import ACTION_ERRORS
from janus_env.checks import NEED_RESET, check_choice
from janus_env.parallel_env import JanusParallelEnv

ON_HALT: tuple[str, ...] = ("terminate", "stay")
DEFAULT_GUARDED_ROLES: tuple[str, ...] = ("janus",)
"""Roles guarded when ``agents=None``: the glass box is JANUS's, its opponents trade unguarded."""

_NOT_JANUS = "{} needs a janus_market env (a JanusParallelEnv underneath the wrappers), got {}"
_BAD_AGENTS_TYPE = "Expected `agents` to be an agent name, a role, a list of them or None, got {!r}"
_UNKNOWN_GUARDED = "Unknown agent or role {!r} in `agents`; expected some of {}"
_NO_GUARDED = "No agent to guard: `agents`={!r} selects none of {}"
_UNKNOWN_AGENT = "Unknown agent {!r}; expected one of {}"
_BAD_ACTIONS = "Expected `actions` to be a dict of agent name -> action, got {!r}"
_NOT_LIVE = "Agent {!r} is not live (finished, removed or halted and terminated); live agents: {}"



def resolve_agents(spec: Any, env: JanusParallelEnv) -> list[str]:
    """The agents selected by ``spec`` (names and/or roles), in ``possible_agents`` order.

    Args:
        spec: None (every agent of ``DEFAULT_GUARDED_ROLES``), an agent name (``"janus_0"``),
            a role (``"janus"``: all its agents), or a list of names and roles.
        env: the env whose agents are selected.

    Raises:
        TypeError: ``spec`` is not a str, a list/tuple/set of str, or None.
        ValueError: an unknown name or role, or a selection with no agent.
    """
    if spec is None:
        keys: list[Any] = [role for role in DEFAULT_GUARDED_ROLES if role in env.roles]
    elif isinstance(spec, str):
        keys = [spec]
    elif isinstance(spec, (list, tuple, set, frozenset)):
        keys = list(spec)
    else:
        raise TypeError(_BAD_AGENTS_TYPE.format(spec))
    names = set(env.possible_agents)
    chosen: set[str] = set()
    for key in keys:
        if not isinstance(key, str):
            raise TypeError(_BAD_AGENTS_TYPE.format(spec))
        if key in names:
            chosen.add(key)
        elif key in env.roles:
            chosen.update(a for a in env.possible_agents if a.rsplit("_", 1)[0] == key)
        else:
            raise ValueError(_UNKNOWN_GUARDED.format(key, list(env.roles) + list(env.possible_agents)))
    if not chosen:
        raise ValueError(_NO_GUARDED.format(spec, list(env.possible_agents)))
    return [a for a in env.possible_agents if a in chosen]


class ParallelSafetyWrapper(BaseParallelWrapper, ABC):
    """Base of the per-agent safety layers: guarded agents, halting them, reporting the halt.

    Subclasses implement ``_before_step(actions) -> forwarded actions`` (halting with
    :meth:`_halt_agent` before the market moves when needed), ``_after_step(obs, infos)``
    and ``_after_reset(obs, infos)``, and may check the caller's actions in ``_check_actions(actions)``.

    Fail-safe (every layer): an exception anywhere in the layer's ``step`` or ``reset`` halts, with
    ``halt_reason`` :attr:`FAULT_FORMAT`. In ``_check_actions`` or ``_before_step`` (the market has not
    moved) it halts every guarded agent still trading and none of their actions is forwarded; after the
    market step (``_after_step``, the report) the actions have executed, so it halts them for the next
    steps and reports the halt in this step's infos; in ``reset`` (``_after_reset``) every guarded agent
    halts at its first step without its action being forwarded. The layer's own record of halts
    (:attr:`halts`) decides what is forwarded, so an agent stays stopped even when halting it in the market
    fails. Exceptions of :data:`~janus_env.actions.ACTION_ERRORS` from ``_check_actions`` are the
    caller's: they propagate, before anything executes; an exception from the wrapped env's own ``step``
    or ``reset`` propagates too.

    Args:
        env: a ``JanusParallelEnv`` or a parallel wrapper of one (e.g. another safety layer).
        agents: guarded agents (see :func:`resolve_agents`).
        on_halt: ``"terminate"`` or ``"stay"`` (module docstring).

    Raises:
        TypeError: ``env`` is not a janus_market env, or ``agents`` has a wrong type.
        ValueError: unknown agents or roles, or an unknown ``on_halt``.
    """

    FAULT_FORMAT = "safety_error: {stage} raised {kind}: {err}"
    """``halt_reason`` of a fault (``stage``, exception type ``kind``, message ``err``); each layer has its own."""

    def __init__(self, env: Any, agents: str | Iterable[str] | None = None, on_halt: str = "terminate") -> None:
        super().__init__(env)
        base = getattr(env, "unwrapped", None)
        if not isinstance(base, JanusParallelEnv):
            raise TypeError(_NOT_JANUS.format(type(self).__name__, type(base).__name__))
        check_choice("on_halt", on_halt, ON_HALT)
        self.guarded: list[str] = resolve_agents(agents, base)
        self.on_halt = on_halt
        self.agents: list[str] = []
        self.halts: dict[str, str] = {}
        """Agent → reason of every halt by this layer in the current episode."""
        self._departed: set[str] = set()
        self._new_halts: list[str] = []
        self._pending: dict[str, str] = {}  # agent -> reason of a fault that halts it at its next step

    # ---------------------------------------------------------------- PettingZoo API
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self.agents = []  # until the reset succeeded: a failed inner reset leaves no episode to step
        obs, infos = self.env.reset(seed=seed, options=options)
        self.halts = {}
        self._departed = set()
        self._new_halts = []
        self._pending = {}
        self.agents = list(self.env.agents)
        try:
            self._after_reset(obs, infos)
        except Exception as err:  # fail-safe: every guarded agent halts at its first step, nothing forwarded
            self._pending = dict.fromkeys(self.guarded, self._fault_reason("reset", err))
        return obs, infos

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError(NEED_RESET)
        if not isinstance(actions, dict):
            raise TypeError(_BAD_ACTIONS.format(actions))
        live = set(self.agents)
        for agent in actions:
            if agent not in live:
                if agent not in self.possible_agents:
                    raise ValueError(_UNKNOWN_AGENT.format(agent, self.possible_agents))
                raise ValueError(_NOT_LIVE.format(agent, self.agents))
        self._new_halts = []
        checked = False
        try:
            self._check_actions(actions)  # the caller's errors raise here, before anything executes
            checked = True
        except ACTION_ERRORS:
            raise
        except Exception as err:
            self._fail_all(self._fault_reason("action check", err))
        if self._pending:  # a fault in reset or between steps: those agents stop now
            pending, self._pending = self._pending, {}
            for agent, why in pending.items():
                self._fail_all(why, (agent,))
        forwarded = None
        if checked:
            try:
                forwarded = self._before_step(actions)
            except Exception as err:
                self._fail_all(self._fault_reason("pre-step check", err))
        if forwarded is None:
            forwarded = dict(actions)
        for agent in self.halts:  # the layer's own record: a halted agent's action never reaches the market
            forwarded.pop(agent, None)
        obs, rewards, terminations, truncations, infos = self.env.step(forwarded)
        # from here the actions are with the market: a fault can only halt the next steps
        try:
            self._after_step(obs, infos)
        except Exception as err:
            self._fail_all(self._fault_reason("post-step bookkeeping", err))
        try:
            return self._report(obs, rewards, terminations, truncations, infos)
        except Exception as err:
            self._fail_all(self._fault_reason("halt report", err))
            return report_halts(self, obs, rewards, terminations, truncations, infos)

    # ---------------------------------------------------------------- halting
    def _halt_agent(self, agent: str, reason: str) -> None:
        """Stop ``agent`` trading now (first reason wins); it is reported at the end of this step."""
        if agent in self.halts:
            return
        self.halts[agent] = reason
        self._new_halts.append(agent)
        base = self.env.unwrapped
        terminate = self.on_halt == "terminate"
        if agent in base.agents and (terminate or not base.is_halted(agent)):
            base.halt(agent, reason, remove=terminate)

    def _is_trading(self, agent: str) -> bool:
        """Live in this layer, not halted by it and not halted in the market."""
        return agent in self.agents and agent not in self.halts and not self.env.unwrapped.is_halted(agent)

    def _report(self, obs: dict, rewards: dict, terminations: dict, truncations: dict, infos: dict):
        return report_halts(self, obs, rewards, terminations, truncations, infos)

    # ---------------------------------------------------------------- fail-safe
    def _fault_reason(self, stage: str, err: BaseException) -> str:
        """``halt_reason`` of a fault at ``stage``: :attr:`FAULT_FORMAT` filled in."""
        return self.FAULT_FORMAT.format(stage=stage, kind=type(err).__name__, err=err)

    def _fail_all(self, reason: str, agents: Iterable[str] | None = None) -> None:
        """The fail-safe: halt ``agents`` (default: every guarded agent) still trading, with ``reason``.

        The layer's own record (:attr:`halts`) comes first, so their actions are dropped from now on even
        if halting them in the market fails; then the market's halt (``JanusParallelEnv.halt``), best effort.
        """
        base = self.env.unwrapped
        terminate = self.on_halt == "terminate"
        for agent in self.guarded if agents is None else agents:
            if agent in self.halts or agent not in self.agents:
                continue
            self.halts[agent] = reason
            self._new_halts.append(agent)
            try:
                if agent in base.agents and (terminate or not base.is_halted(agent)):
                    base.halt(agent, reason, remove=terminate)
            except Exception:  # noqa: BLE001 - the record above already keeps its actions from the market
                pass

    # ---------------------------------------------------------------- hooks
    def _check_actions(self, actions: dict[str, Any]) -> None:
        """Check the caller's actions (raise one of :data:`~janus_env.actions.ACTION_ERRORS` for a bad one);
        none by default."""

    @abstractmethod
    def _after_reset(self, obs: dict[str, Any], infos: dict[str, dict[str, Any]]) -> None:
        """Implemented by each safety wrapper."""

    @abstractmethod
    def _before_step(self, actions: dict[str, Any]) -> dict[str, Any]:
        """Implemented by each safety wrapper."""

    @abstractmethod
    def _after_step(self, obs: dict[str, Any], infos: dict[str, dict[str, Any]]) -> None:
        """Implemented by each safety wrapper."""


def report_halts(layer: ParallelSafetyWrapper, obs: dict, rewards: dict, terminations: dict, truncations: dict,
                 infos: dict):
    """Report ``layer``'s halts in a step's tables (in place) and update its live ``agents``; the tables.

    Agents halted this step get ``halted`` and ``halt_reason``; with ``on_halt="terminate"`` they are
    reported terminated once and then removed from every table; with ``"stay"`` every agent the layer
    halted keeps ``halted`` and its ``halt_reason`` in its info.
    """
    gone = layer._departed
    if gone:  # the env reports an agent once more after a post-step halt with remove=True
        for table in (obs, rewards, terminations, truncations, infos):
            for agent in gone.intersection(table):
                del table[agent]
    terminate = layer.on_halt == "terminate"
    for agent in layer._new_halts:
        if agent not in infos:
            continue
        infos[agent]["halted"] = True
        infos[agent]["halt_reason"] = layer.halts[agent]
        if terminate:
            terminations[agent] = True
            truncations[agent] = False
            gone.add(agent)
    if not terminate:
        for agent, why in layer.halts.items():  # also when the market's own halt failed
            if agent in infos and not infos[agent].get("halted"):
                infos[agent]["halted"] = True
                infos[agent]["halt_reason"] = why
    layer.agents = [a for a in layer.env.agents if a not in gone]
    return obs, rewards, terminations, truncations, infos
