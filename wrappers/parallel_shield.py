"""``ParallelLTNShield``: the LTN shield per agent on the shared book of ``janus_market_v0``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from janus_env.actions import continuous_fraction, discrete_index
from wrappers._parallel import ParallelSafetyWrapper
from wrappers._state import TradeHistory
from wrappers.rules import TradingKnowledgeBase
from wrappers.shield_kernel import (
    DEFAULT_THRESHOLD,
    HALT_PREFIX,
    HOLD,
    CoreKernel,
    ShieldCore,
    halt_record,
    ltn_record,
    reason,
)

_MAKER = "The LTN shield guards takers only; {!r} is a market maker (it quotes, it sends no market orders)"
_NOT_GUARDED = "Agent {!r} is not shielded; shielded agents: {}"


class ParallelLTNShield(CoreKernel, ParallelSafetyWrapper):
    """Score each shielded agent's proposed order with the trading knowledge base; a fallback when unsatisfied.

    ## Decision

    The decision of :class:`~wrappers.shield.LTNShield`, made by the same batched
    core (:class:`wrappers.shield_kernel.ShieldCore`) for every shielded agent in
    one numba call per step. Each agent's proposed order is scored on *that
    agent's* state before the action, read from the market's own buffers
    (``JanusParallelEnv.buffers()``: the agent's ``O_*`` row and observation row,
    the layout of the single-agent env): its position and cash, the shared book,
    the market's mid, VPIN and σ, and its own trade history (one
    :class:`~wrappers._state.TradeHistory` per agent, updated from its fills — so
    the wash-sale rule sees only its own losing sales — and holding the market's
    volatility baseline σ_hist, the same for every agent). If
    ``SatAgg(q) < threshold`` the agent executes the fallback instead:
    ``fallback="hold"`` (default) HOLDs — action 0 for discrete and sized actions,
    the current position ``[position / max_position]`` for continuous targets;
    ``fallback="nearest"`` executes the permitted action closest in quantity to
    the proposal (discrete and sized) or the largest permitted whole-lot move
    toward the target (continuous), as ``LTNShield`` does. Other agents' actions
    pass through untouched.

    ## Info

    Each shielded agent that sent an action gets ``infos[agent]["ltn"]`` with the
    keys of ``LTNShield``: ``rules`` (``{name: truth}`` of the proposal),
    ``sat_agg``, ``violation = 1 − sat_agg``, ``overridden``, ``proposed_action``,
    ``final_action`` (an int, or a one-element list for continuous actions) and
    ``threshold``. An agent that sent no action HOLDs (the env's rule) and gets no
    ``"ltn"``; its history is updated all the same.

    ## Fail-safe

    An exception inside the shield halts the shielded agents it concerns through
    ``JanusParallelEnv.halt`` with ``halt_reason = "shield_error: <ExceptionType>:
    <message>"``; the market and the other agents go on. A fault in the shared
    decision call (history update, scoring, choice) halts every shielded agent that
    is trading, since none of their proposals was judged: a proposed action is
    dropped (never executed) and ``infos[agent]["ltn"]`` has ``violation = 1``,
    ``overridden = True``, ``final_action = None``. An exception anywhere else in the
    layer's ``step`` or ``reset`` (recording a decision, its bookkeeping) halts every
    shielded agent the same way (before the market step their actions are dropped; after
    it they are halted from the next step; in ``reset`` at their first step); see
    :class:`~wrappers._parallel.ParallelSafetyWrapper`. How the halt is reported —
    ``terminated`` and gone from ``agents``, or staying halted — is ``on_halt``
    (see :mod:`wrappers._parallel`). Invalid actions are user errors: they raise
    (``TypeError`` / ``InvalidActionError``) before anything executes.

    ## Action masks

    ``action_masks(agent)`` (Discrete spaces): ``SatAgg ≥ threshold`` per action,
    HOLD always True, scored once per step and reused by ``step``. A failure there
    returns HOLD only and halts that agent at its next step.

    Place :class:`~wrappers.parallel_amygdala.ParallelAmygdala` *outside* this
    shield so its violation-rate breaker reads ``infos[agent]["ltn"]``.

    Args:
        env: a ``JanusParallelEnv`` (any taker ``action_type``) or a parallel wrapper of one.
        agents: shielded agents: names and/or roles (default: every ``janus`` agent); takers only.
        threshold: τ, the minimum SatAgg of an executed order *(ours: 0.9)*.
        fallback: ``"hold"`` or ``"nearest"`` (see Decision).
        knowledge_base: the rules and their parameters (default ``TradingKnowledgeBase()``); shared, while
            each agent has its own trade history.
        on_halt: ``"terminate"`` (default) or ``"stay"``.

    Raises:
        TypeError: ``env`` is not a janus_market env; ``agents``, ``threshold``, ``fallback`` or
            ``knowledge_base`` has the wrong type.
        ValueError: an unknown agent or role, a market maker in ``agents``, ``threshold`` outside
            (0, 1], an unknown ``fallback`` or an unknown ``on_halt``.

    ```python
    from envs_registry.pettingzoo_envs import make_parallel_env
    from wrappers import ParallelAmygdala, ParallelLTNShield
    env = ParallelAmygdala(ParallelLTNShield(make_parallel_env(seed=0)))   # guards janus_0
    ```
    """

    FAULT_FORMAT = HALT_PREFIX + "{kind}: {err}"

    def __init__(
        self,
        env: Any,
        agents: str | Iterable[str] | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        fallback: str = "hold",
        knowledge_base: TradingKnowledgeBase | None = None,
        on_halt: str = "terminate",
    ) -> None:
        super().__init__(env, agents, on_halt)
        for agent in self.guarded:
            if agent.startswith("market_maker"):
                raise ValueError(_MAKER.format(agent))
        base = env.unwrapped
        self._space = env.action_space(self.guarded[0])  # all takers share one space
        self.core = ShieldCore(len(self.guarded), self._space, base.config, base.n_sizes, threshold, fallback,
                               knowledge_base)
        """The batched decision (one row per shielded agent)."""
        self.threshold = self.core.threshold
        self.fallback = fallback
        self.knowledge_base = self.core.knowledge_base
        self._slot = {agent: k for k, agent in enumerate(self.guarded)}
        self._rows = np.array([base.possible_agents.index(agent) for agent in self.guarded], dtype=np.int64)
        self._discrete = self.core.discrete
        self._n_actions = int(self._space.n) if self._discrete else 0
        self._errors: dict[str, Exception] = {}
        self._traces: dict[str, dict[str, Any]] = {}
        self._proposals: dict[str, tuple[Any, Any]] = {}


    @property
    def histories(self) -> dict[str, TradeHistory]:
        """Agent → its own :class:`~wrappers._state.TradeHistory`, up to date with the last step."""
        return {agent: self.core.history(k) for k, agent in enumerate(self.guarded)}

    # ---------------------------------------------------------------- hooks
    def _after_reset(self, obs: dict[str, Any], infos: dict[str, dict[str, Any]]) -> None:
        self._errors = {}
        self._traces = {}
        self._proposals = {}
        try:
            self.core.attach(self.env.unwrapped.buffers(), self._rows)
        except Exception as err:  # fail-safe: every shielded agent's first step halts it
            self._errors = dict.fromkeys(self.guarded, err)

    def _check_actions(self, actions: dict[str, Any]) -> None:
        self._proposals = {}
        proposals = {}
        for agent in self.guarded:  # user errors raise before anything executes
            if agent in actions and self._is_trading(agent):
                proposals[agent] = self._validate(agent, actions[agent])
        self._proposals = proposals

    def _before_step(self, actions: dict[str, Any]) -> dict[str, Any]:
        proposals = self._proposals
        forwarded = dict(actions)
        traces: dict[str, dict[str, Any]] = {}  # kept only if the whole decision succeeds
        judged = {agent: proposal for agent, proposal in proposals.items() if agent not in self._errors}
        if any(agent in self.agents for agent in self.guarded):  # one decision a step keeps the histories in step
            try:
                finals = self._decide(judged)
            except Exception as err:  # the shared call failed: no proposal was judged
                for agent in self.guarded:
                    if self._is_trading(agent):
                        self._errors.setdefault(agent, err)
                finals = {}
            for agent, (proposed, _) in judged.items():
                if agent in self._errors:
                    continue
                final, env_action = finals[agent]
                forwarded[agent] = env_action
                sat, rules = self.core.proposal_scores(self._slot[agent])
                action_sat = self.core.graded_sat[self._slot[agent]].tolist() if self._discrete else None
                traces[agent] = ltn_record(rules, sat, proposed, final, self.threshold, action_sat)
        for agent in self.guarded:  # a pending fault halts even an agent that sent no action
            if agent in self._errors and agent not in self.halts and self._is_trading(agent):
                err = self._errors.pop(agent)
                if agent in proposals:
                    del forwarded[agent]
                    traces[agent] = halt_record(proposals[agent][0], self.threshold)
                self._halt_agent(agent, reason(err))
        self._traces = traces
        return forwarded

    def _after_step(self, obs: dict[str, Any], infos: dict[str, dict[str, Any]]) -> None:
        self.core.scored = False  # the histories record this step in the next decision
        traces, self._traces = self._traces, {}  # this step's decisions only
        for agent, trace in traces.items():
            if agent in infos:
                infos[agent]["ltn"] = trace

    # ---------------------------------------------------------------- decision
    def _validate(self, agent: str, action: Any) -> tuple[Any, Any]:
        """``(proposed, payload)``: the JSON-able proposal and the action as sent (user errors raise)."""
        if self._discrete:
            if (action.__class__ is int or action.__class__ is np.int64) and 0 <= action < self._n_actions:
                return int(action), int(action)
            index = discrete_index(action, self._space)
            return index, index
        return [continuous_fraction(action, self._space)], action

    def _decide(self, proposals: dict[str, tuple[Any, Any]]) -> dict[str, tuple[Any, Any]]:
        """One core decision for every shielded agent (HOLD for those without a proposal):
        agent → ``(final, env_action)`` of the proposing agents."""
        core = self.core
        if self._discrete:
            core.proposed[:] = HOLD
            for agent, (proposed, _) in proposals.items():
                core.proposed[self._slot[agent]] = proposed
            final = core.decide()
            return {agent: (int(final[self._slot[agent]]),) * 2 for agent in proposals}
        fractions = np.full(core.n_rows, np.nan)  # no proposal: keep the position (a zero order)
        for agent, (proposed, _) in proposals.items():
            fractions[self._slot[agent]] = proposed[0]
        allowed, targets = core.decide_continuous(fractions)
        finals = {}
        for agent, (proposed, payload) in proposals.items():
            k = self._slot[agent]
            if allowed[k]:
                finals[agent] = (proposed, payload)
            else:
                finals[agent] = ([float(targets[k])], targets[k:k + 1].copy())
        return finals

    def action_masks(self, agent: str) -> np.ndarray:
        """Permitted Discrete actions of ``agent`` for ``MaskablePPO``: ``SatAgg ≥ threshold``, HOLD always True.

        Raises:
            ValueError: ``agent`` is not shielded.
            TypeError: the action space is not Discrete.
        """
        if agent not in self._slot:
            raise ValueError(_NOT_GUARDED.format(agent, self.guarded))
        if not self._discrete:
            return self.core.masks()  # raises the core's TypeError
        if self._is_trading(agent) and agent not in self._errors:
            try:
                return self.core.masks()[self._slot[agent]]
            except Exception as err:  # fail-safe: only HOLD now, and the next step halts the agent
                self._errors[agent] = err
        mask = np.zeros(self._n_actions, dtype=bool)
        mask[HOLD] = True
        return mask
