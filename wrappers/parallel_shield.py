"""``ParallelLTNShield``: the LTN shield per agent on the shared book of ``janus_market_v0``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from gymnasium import spaces

from janus_env.actions import continuous_fraction, discrete_index, sized_quantity
from wrappers._parallel import ParallelSafetyWrapper
from wrappers.rules import RULE_NAMES, TradingKnowledgeBase, _decode_book
from wrappers.shield import HALT_PREFIX, HOLD

_BAD_THRESHOLD = "Expected `threshold` in (0, 1], got {!r}"
_BAD_THRESHOLD_TYPE = "Expected `threshold` to be a real number, got {!r}"
_BAD_KB = "Expected `knowledge_base` to be a TradingKnowledgeBase or None, got {!r}"
_MAKER = "The LTN shield guards takers only; {!r} is a market maker (it quotes, it sends no market orders)"
_NOT_GUARDED = "Agent {!r} is not shielded; shielded agents: {}"
_MASKS_DISCRETE = "action_masks() needs a Discrete action space, {!r} has {}"
_BOOK_RTOL = 1e-4


def _reason(err: BaseException) -> str:
    return f"{HALT_PREFIX}{type(err).__name__}: {err}"


def _book_matches(book: Any, mid: float, lot: float, n_levels: int, market: Any) -> bool:
    """Whether an observation's encoded ``book`` decodes to ``market.book()`` (the shield then reads the obs)."""
    if not isinstance(book, np.ndarray) or book.shape != (n_levels, 4) \
            or book.dtype not in (np.float32, np.float64) or not book.flags.c_contiguous:
        return False
    decoded = _decode_book(np.asarray(book, dtype=np.float64), mid, lot, True)
    truth = _decode_book(np.asarray(market.book(), dtype=np.float64), mid, lot, False)
    return bool(np.allclose(decoded, truth, rtol=_BOOK_RTOL, atol=1e-6 * lot))


class ParallelLTNShield(ParallelSafetyWrapper):
    """Score each shielded agent's proposed order with the trading knowledge base; HOLD when unsatisfied.

    ## Decision

    Each step, for every shielded agent that sent an action and is not halted,
    the shield computes the order's signed quantity ``q`` and scores it with
    :class:`~wrappers.rules.TradingKnowledgeBase` (the numba ``kb_kernel``, as
    :class:`~wrappers.shield.LTNShield` does) on *that agent's* state before the
    action: its position and cash (``infos[agent]``), the shared book (its
    observation's ``book``), the market's mid, VPIN and σ, and its own trade
    history (one :class:`~wrappers._state.TradeHistory` per agent, updated from
    its fills — so the wash-sale rule sees only its own losing sales — and
    holding the market's volatility baseline σ_hist from the infos it saw, the
    same for every agent). If
    ``SatAgg(q) < threshold`` the agent HOLDs instead: action 0 for discrete and
    sized actions; for continuous actions (a target fraction of
    ``max_position``) the current position, ``[position / max_position]``.
    Other agents' actions pass through untouched.

    ## Info

    Each shielded agent that sent an action gets ``infos[agent]["ltn"]`` with the
    keys of ``LTNShield``: ``rules`` (``{name: truth}`` of the proposal),
    ``sat_agg``, ``violation = 1 − sat_agg``, ``overridden``, ``proposed_action``,
    ``final_action`` (an int, or a one-element list for continuous actions) and
    ``threshold``. An agent that sent no action HOLDs (the env's rule) and gets no
    ``"ltn"``; its history is updated all the same.

    ## Fail-safe

    An exception while shielding an agent (state, kernel, decision, history
    update) halts *that agent* through ``JanusParallelEnv.halt`` with
    ``halt_reason = "shield_error: <ExceptionType>: <message>"``; the market and
    the other agents go on. Before the step the proposed action is dropped (never
    executed) and ``infos[agent]["ltn"]`` has ``violation = 1``,
    ``overridden = True``, ``final_action = None``; after the step (history update)
    the executed action stands. How the halt is reported — ``terminated`` and gone
    from ``agents``, or staying halted — is ``on_halt`` (see :mod:`wrappers._parallel`).
    Invalid actions are user errors: they raise (``TypeError`` /
    ``InvalidActionError``) before anything executes.

    ## Action masks

    ``action_masks(agent)`` (Discrete spaces): ``SatAgg ≥ threshold`` per action,
    HOLD always True, scored once per step and reused by ``step``. A failure there
    returns HOLD only and halts the agent at its next step.

    Place :class:`~wrappers.parallel_amygdala.ParallelAmygdala` *outside* this
    shield so its violation-rate breaker reads ``infos[agent]["ltn"]``.

    Args:
        env: a ``JanusParallelEnv`` (any taker ``action_type``) or a parallel wrapper of one.
        agents: shielded agents: names and/or roles (default: every ``janus`` agent); takers only.
        threshold: τ, the minimum SatAgg of an executed order *(ours: 0.9)*.
        knowledge_base: the rules and their parameters (default ``TradingKnowledgeBase()``); shared, while
            each agent has its own trade history.
        on_halt: ``"terminate"`` (default) or ``"stay"``.

    Raises:
        TypeError: ``env`` is not a janus_market env; ``agents``, ``threshold`` or ``knowledge_base``
            has the wrong type.
        ValueError: an unknown agent or role, a market maker in ``agents``, ``threshold`` outside
            (0, 1], or an unknown ``on_halt``.

    ```python
    from envs_registry.pettingzoo_envs import make_parallel_env
    from wrappers import ParallelAmygdala, ParallelLTNShield
    env = ParallelAmygdala(ParallelLTNShield(make_parallel_env(seed=0)))   # guards janus_0
    ```
    """

    def __init__(
        self,
        env: Any,
        agents: str | Iterable[str] | None = None,
        threshold: float = 0.9,
        knowledge_base: TradingKnowledgeBase | None = None,
        on_halt: str = "terminate",
    ) -> None:
        super().__init__(env, agents, on_halt)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
            raise TypeError(_BAD_THRESHOLD_TYPE.format(threshold))
        if not 0.0 < threshold <= 1.0:
            raise ValueError(_BAD_THRESHOLD.format(threshold))
        if knowledge_base is not None and not isinstance(knowledge_base, TradingKnowledgeBase):
            raise TypeError(_BAD_KB.format(knowledge_base))
        base = env.unwrapped
        for agent in self.guarded:
            if agent.startswith("market_maker"):
                raise ValueError(_MAKER.format(agent))
        self.threshold = float(threshold)
        self.knowledge_base = knowledge_base if knowledge_base is not None else TradingKnowledgeBase()
        self.histories = {agent: self.knowledge_base.history() for agent in self.guarded}
        """Agent → its own :class:`~wrappers._state.TradeHistory`."""
        config = base.config
        self._lot = float(config.lot)
        self._max_position = float(config.max_position)
        self._fee_bps = float(config.fee_bps)
        self._n_levels = int(config.n_levels)
        self._space = {agent: env.action_space(agent) for agent in self.guarded}
        self._discrete = isinstance(self._space[self.guarded[0]], spaces.Discrete)  # all takers share one space
        self._n_actions = int(self._space[self.guarded[0]].n) if self._discrete else 0
        self._quantities = np.array([sized_quantity(i, base.n_sizes, config.lot) for i in range(self._n_actions)],
                                    dtype=np.float64)
        n_candidates = self._n_actions if self._discrete else 2  # continuous: the proposal and HOLD
        self._truths = {a: np.empty((n_candidates, len(RULE_NAMES))) for a in self.guarded}
        self._sat = {a: np.empty(n_candidates) for a in self.guarded}
        self._scored: set[str] = set()
        self._obs: dict[str, Any] = {}
        self._info: dict[str, dict[str, Any]] = {}
        self._errors: dict[str, Exception] = {}
        self._traces: dict[str, dict[str, Any]] = {}
        self._book_from_obs = True

    # ---------------------------------------------------------------- hooks
    def _after_reset(self, obs: dict[str, Any], infos: dict[str, dict[str, Any]]) -> None:
        self._scored = set()
        self._errors = {}
        first = True
        for agent in self.guarded:
            try:
                self._obs[agent], self._info[agent] = obs[agent], infos[agent]
                self.histories[agent].reset(infos[agent])
                if first:  # the book is shared: check its encoding once
                    first = False
                    book = obs[agent].get("book") if isinstance(obs[agent], dict) else None
                    self._book_from_obs = _book_matches(book, float(infos[agent]["mid"]), self._lot,
                                                        self._n_levels, self.env.unwrapped)
            except Exception as err:  # fail-safe: the agent's first step halts it
                self._errors[agent] = err

    def _before_step(self, actions: dict[str, Any]) -> dict[str, Any]:
        proposals = {}
        for agent in self.guarded:  # user errors raise before anything executes
            if agent in actions and self._is_trading(agent):
                proposals[agent] = self._validate(agent, actions[agent])
        forwarded = dict(actions)
        self._traces = {}
        for agent, (proposed, payload) in proposals.items():
            try:
                if agent in self._errors:
                    raise self._errors.pop(agent)
                final, env_action, sat, rules = self.decide(agent, proposed, payload)
            except Exception as err:
                del forwarded[agent]
                self._halt_agent(agent, _reason(err))
                self._traces[agent] = {"rules": {}, "sat_agg": 0.0, "violation": 1.0, "overridden": True,
                                       "proposed_action": proposed, "final_action": None,
                                       "threshold": self.threshold}
                continue
            forwarded[agent] = env_action
            self._traces[agent] = {"rules": rules, "sat_agg": sat, "violation": 1.0 - sat,
                                   "overridden": sat < self.threshold, "proposed_action": proposed,
                                   "final_action": final, "threshold": self.threshold}
        for agent in self.guarded:  # a pending fault halts even an agent that sent no action
            if agent in self._errors and agent not in self.halts and self._is_trading(agent):
                self._halt_agent(agent, _reason(self._errors.pop(agent)))
        return forwarded

    def _after_step(self, obs: dict[str, Any], infos: dict[str, dict[str, Any]]) -> None:
        self._scored = set()
        for agent in self.guarded:
            if agent not in infos:
                continue
            trace = self._traces.get(agent)
            if trace is not None:
                infos[agent]["ltn"] = trace
            try:
                self._obs[agent], self._info[agent] = obs[agent], infos[agent]
                self.histories[agent].update(infos[agent])
            except Exception as err:  # the step happened; the agent stops here
                self._halt_agent(agent, _reason(err))

    # ---------------------------------------------------------------- decision
    def _validate(self, agent: str, action: Any) -> tuple[Any, Any]:
        """``(proposed, payload)``: the JSON-able proposal and what :meth:`decide` needs (user errors raise)."""
        if self._discrete:
            if (action.__class__ is int or action.__class__ is np.int64) and 0 <= action < self._n_actions:
                return int(action), int(action)
            index = discrete_index(action, self._space[agent])
            return index, index
        return [continuous_fraction(action, self._space[agent])], action

    def decide(self, agent: str, proposed: Any, payload: Any) -> tuple[Any, Any, float, dict[str, float]]:
        """Score ``agent``'s proposal on its current state and pick the action to execute.

        Returns:
            ``(final, env_action, sat_agg, rules)``: the JSON-able executed action, the action passed
            to the env, the proposal's SatAgg and its ``{rule: truth}``.
        """
        if self._discrete:
            if agent not in self._scored:
                self._score(agent)
            sat = float(self._sat[agent][payload])
            truths = self._truths[agent][payload]
            final = env_action = payload if sat >= self.threshold else HOLD
        else:
            position = float(self._info[agent]["position"])
            q = np.array([round(proposed[0] * self._max_position) - position, 0.0])
            self._kernel(agent, q, self._truths[agent], self._sat[agent])
            sat = float(self._sat[agent][0])
            truths = self._truths[agent][0]
            if sat >= self.threshold:
                final, env_action = proposed, payload
            else:
                env_action = np.array([position / self._max_position], dtype=np.float32)
                final = [float(env_action[0])]
        return final, env_action, sat, dict(zip(RULE_NAMES, truths.tolist()))

    def action_masks(self, agent: str) -> np.ndarray:
        """Permitted Discrete actions of ``agent`` for ``MaskablePPO``: ``SatAgg ≥ threshold``, HOLD always True.

        Raises:
            ValueError: ``agent`` is not shielded.
            TypeError: the action space is not Discrete.
        """
        if agent not in self.histories:
            raise ValueError(_NOT_GUARDED.format(agent, self.guarded))
        if not self._discrete:
            raise TypeError(_MASKS_DISCRETE.format(agent, self._space[agent]))
        if self._is_trading(agent) and agent not in self._errors:
            try:
                if agent not in self._scored:
                    self._score(agent)
                mask = self._sat[agent] >= self.threshold
                mask[HOLD] = True
                return mask
            except Exception as err:  # fail-safe: only HOLD now, and the next step halts the agent
                self._errors[agent] = err
        mask = np.zeros(self._n_actions, dtype=bool)
        mask[HOLD] = True
        return mask

    def _score(self, agent: str) -> None:
        self._kernel(agent, self._quantities, self._truths[agent], self._sat[agent])
        self._scored.add(agent)

    def _kernel(self, agent: str, quantities: np.ndarray, truths: np.ndarray, sat: np.ndarray) -> None:
        """The knowledge base's kernel on ``agent``'s state (its info, its history, the shared book)."""
        info = self._info[agent]
        history = self.histories[agent]
        if self._book_from_obs:
            book = self._obs[agent]["book"]
        else:
            book = np.ascontiguousarray(self.env.unwrapped.book(), dtype=np.float64)
        self.knowledge_base.kernel(quantities, book, self.knowledge_base.params, truths, sat, self._book_from_obs,
                                   info["position"], info["cash"], info["mid"], info["vpin"], info["volatility"],
                                   history.sigma_hist, history.mean_volume, history.recent_loss_sale(),
                                   self._max_position, self._lot, self._fee_bps)
