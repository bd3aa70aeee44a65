"""``LTNShield``: a logic shield that vetoes actions violating the trading knowledge base."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from janus_env.actions import ACTION_ERRORS, continuous_fraction, discrete_index
from janus_env.checks import NEED_RESET, check_bool
from janus_env.lob_env import NO_EXECUTION_INFO, JanusLOBEnv
from wrappers._state import TradeHistory
from wrappers.rules import KBResult, TradingKnowledgeBase
from wrappers.shield_kernel import (
    DEFAULT_THRESHOLD,
    HOLD,
    CoreKernel,
    ShieldCore,
    ShieldHalt,
    halt_record,
    ltn_record,
    reason,
)

_NOT_LOB = "LTNShield needs a Janus-LOB env (a JanusLOBEnv underneath the wrappers), got {}"
_BAD_SPACE = "LTNShield needs the env's own action space {} at its level, got {} (a wrapper inside the shield changed it)"


class LTNShield(CoreKernel, ShieldHalt, gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Evaluate the trading knowledge base on each proposed action and replace it when unsatisfied.

    ## Decision

    Each step the shield scores the proposed action's signed order quantity
    ``q`` with :class:`~wrappers.rules.TradingKnowledgeBase` on the state
    *before* the action (the last observation and ``info``) and the trade
    history. If ``SatAgg(q) < threshold`` it executes a fallback instead:

    * discrete / sized actions, ``fallback="hold"`` (default): HOLD (action 0).
    * discrete / sized actions, ``fallback="nearest"``: among the *permitted*
      actions (``SatAgg ≥ threshold``; HOLD always is), the one whose quantity
      is closest to the proposal, ``argmin |q_a − q|``; ties broken by the
      higher SatAgg, then the smaller ``|q_a|``, then the lower index. E.g. a
      3-lot buy that breaks the cash reserve becomes the largest permitted
      smaller buy; a buy inside the wash-sale window becomes HOLD.
    * continuous actions (target fraction of ``max_position``): ``"hold"`` keeps
      the current position (``position / max_position``); ``"nearest"`` moves
      towards the target by the largest whole number of lots that is permitted
      (keeping the position if none is).

    With 5 rules and p = 2 one fully violated crisp rule gives SatAgg
    ``sqrt(4/5) ≈ 0.894``, so the default ``threshold = 0.9`` *(ours)* vetoes any
    single crisp violation; a soft rule must fall below ≈0.22 on its own.

    ## Info

    Every step adds ``info["ltn"]``: ``rules`` (``{name: truth}`` of the
    proposed action), ``sat_agg``, ``violation = 1 − sat_agg`` (of the
    proposed action), ``overridden``, ``proposed_action``, ``final_action``
    (both JSON-able: an int, or a one-element list for continuous actions) and
    ``threshold``.

    ## Fail-safe

    An exception anywhere inside the shield's ``step`` (state extraction, KB
    evaluation, history update, fallback, a method of its core) never lets the
    proposed action through: the step is not forwarded, the episode terminates
    (reward 0, the last observation) with ``info["halted"] = True`` and
    ``info["halt_reason"] = "shield_error: <ExceptionType>: <message>"``, the
    fill keys of ``info`` zeroed, and ``info["ltn"]`` with ``violation = 1``,
    ``overridden = True``, ``final_action = None``. If the failure happens after
    the env stepped (recording the decision), the order has executed: the step's
    own result is returned, terminated, with the same keys except that
    ``final_action`` is the executed action. A fault in ``reset`` (attaching the
    core to the new session) adds ``halted``/``halt_reason`` to the reset info and
    halts the first step unforwarded; a fault in ``action_masks()`` returns HOLD
    only and halts the next step. After a halt :attr:`halted` is True and
    ``step()`` raises ``RuntimeError`` until ``reset()``. Invalid actions from the
    caller are user errors (:data:`~janus_env.actions.ACTION_ERRORS`): they raise
    (``TypeError`` / ``InvalidActionError``) before anything executes and do not
    halt. An exception from the wrapped env's own ``step`` or ``reset``
    propagates (the amygdala outside turns it into a halt).

    ## Action masks

    ``action_masks()`` (Discrete spaces) returns ``SatAgg ≥ threshold`` for
    every action, with HOLD always True, for sb3-contrib's ``MaskablePPO``
    (``get_action_masks`` finds it through ``get_wrapper_attr``/``env_method``).
    All actions are scored in one numba call per step and the scores are
    reused by ``step``, so masks cost nothing extra.

    ## State

    The shield judges the market's own state, not what inner wrappers show:
    position, cash, mid, VPIN, σ and the fill of the last step come from the
    market's ``out`` row and the book from its raw observation buffer
    (``env.unwrapped.buffers()``), so an observation or info wrapper inside
    the shield cannot blind it. The trade history (:attr:`history`: fills,
    market volume and the volatility baseline σ_hist that ``Volatile`` is
    measured against, seeded by the reset-time σ) is brought up to date inside
    the same compiled call that scores and decides the next step
    (:func:`wrappers.shield_kernel.shield_decide`): one numba call per step.
    The decision is the batched core that the vector and multi-agent shields
    share (:class:`wrappers.shield_kernel.ShieldCore`), on this env's one row.
    Continuous targets are scored as the env will send them, rounded to its
    quantity grid (``MarketConfig.resolved_qty_step``, e.g. 0.01 BTC).

    Args:
        env: a Janus-LOB env (any ``Janus-LOB*`` id, any scenario, ``action_type``
            discrete, sized or continuous), possibly already wrapped by wrappers that
            keep its action space.
        threshold: τ, the minimum SatAgg of an executed action *(ours: 0.9)*.
        fallback: ``"hold"`` or ``"nearest"`` (see Decision).
        knowledge_base: the rules and their parameters (default ``TradingKnowledgeBase()``).
        enforce: True (default): the decision above. False, *for training only*: the shield scores every step
            as above (``info["ltn"]`` with each action's SatAgg, what a logical loss learns from) but executes the
            proposal (``overridden`` False) and permits every action in :meth:`action_masks`; the fail-safe
            still halts. A policy trained so learns the rules as a penalty and is deployed behind an enforcing
            shield (``train.py``'s ``shield_training: observe``; evaluation and the service always enforce).

    Raises:
        TypeError: ``env`` is not a Janus-LOB env, or ``threshold`` / ``fallback`` / ``knowledge_base`` /
            ``enforce`` has the wrong type.
        ValueError: ``threshold`` outside (0, 1], an unknown ``fallback``, or an action space
            changed by an inner wrapper.

    ```python
    import gymnasium as gym
    import envs_registry
    from wrappers.shield import LTNShield
    env = LTNShield(gym.make("Janus-LOB-v0", action_type="sized", seed=0), fallback="nearest")
    ```
    """

    def __init__(
        self,
        env: gym.Env,
        threshold: float = DEFAULT_THRESHOLD,
        fallback: str = "hold",
        knowledge_base: TradingKnowledgeBase | None = None,
        enforce: bool = True,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, threshold=threshold, fallback=fallback,
                                                 knowledge_base=knowledge_base, enforce=enforce)
        gym.Wrapper.__init__(self, env)
        base = env.unwrapped
        if not isinstance(base, JanusLOBEnv):
            raise TypeError(_NOT_LOB.format(type(base).__name__))
        if self.action_space != base.action_space:
            raise ValueError(_BAD_SPACE.format(base.action_space, self.action_space))
        self.core = ShieldCore(1, base.action_space, base.config, base.n_sizes, threshold, fallback, knowledge_base)
        """The batched decision (one row: this env)."""
        self.threshold = self.core.threshold
        self.fallback = fallback
        self.enforce = check_bool("enforce", enforce)
        self.knowledge_base = self.core.knowledge_base
        self._discrete = self.core.discrete
        self._n_actions = int(self.action_space.n) if self._discrete else 0
        self._obs: Any = None
        self._info: dict[str, Any] = {}
        self._error: Exception | None = None
        self._needs_reset = True


    @property
    def history(self) -> TradeHistory:
        """The agent's trade history, up to date with the last step."""
        return self.core.history(0)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._needs_reset = True  # until the reset succeeded: a failed inner reset leaves nothing to step
        self._error = None
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs, self._info = obs, info
        try:
            self.core.attach(self.env.unwrapped.buffers())
        except Exception as err:  # fail-safe: the first step halts
            self._error = err
            info = {**info, "halted": True, "halt_reason": reason(err)}
        self._needs_reset = False
        return obs, info

    def step(self, action: Any):
        if self._needs_reset:
            raise RuntimeError(NEED_RESET)
        try:
            cls = action.__class__
            if self._discrete and (cls is int or cls is np.int64) and 0 <= action < self._n_actions:
                proposed = payload = int(action)  # fast path for the common valid case
            else:
                proposed, payload = self._validate(action)
        except ACTION_ERRORS:
            raise  # the caller's invalid action: nothing ran
        except Exception as err:
            return self._halt(err, None)
        try:
            if self._error is not None:
                raise self._error
            final, env_action, sat, rules = self.decide(proposed, payload)
            if not self.enforce:  # observing (training only): the proposal executes, its scores are recorded
                final, env_action = proposed, payload
            action_sat = self.core.graded_sat[0].tolist() if self._discrete else None
        except Exception as err:
            return self._halt(err, proposed)

        obs, reward, terminated, truncated, info = self.env.step(env_action)
        # from here the action is with the market: a fault halts with the step's own result
        try:
            self.core.scored = False  # the history records this step in the next scoring call (or when read)
            self._obs = obs
            self._info = info
            if terminated or truncated:
                self._needs_reset = True
            info["ltn"] = ltn_record(rules, sat, proposed, final, self.threshold, action_sat, self.enforce)
        except Exception as err:
            return self._halt_after_step(err, proposed, final, (obs, reward, truncated, info))
        return obs, reward, terminated, truncated, info

    def _validate(self, action: Any) -> tuple[Any, Any]:
        """``(proposed, payload)``: the JSON-able proposal and what :meth:`decide` needs (user errors raise)."""
        if self._discrete:
            index = discrete_index(action, self.action_space)
            return index, index
        fraction = continuous_fraction(action, self.action_space)
        return [fraction], action

    def decide(self, proposed: Any, payload: Any) -> tuple[Any, Any, float, dict[str, float]]:
        """Score the proposal on the current state and pick the action to execute (the core, one row).

        Args:
            proposed: a discrete action index, or ``[fraction]`` for continuous actions.
            payload: the index again, or the original continuous action.

        Returns:
            ``(final, env_action, sat_agg, rules)``: the JSON-able executed action, the action to
            pass to the env, the proposal's SatAgg and its ``{rule: truth}``.
        """
        core = self.core
        if self._discrete:
            core.proposed[0] = payload
            final = env_action = core.decide().item(0)
        else:
            allowed, targets = core.decide_continuous(np.array(proposed, dtype=np.float64))
            if allowed[0]:
                final, env_action = proposed, payload
            else:
                env_action = targets
                final = [float(targets[0])]
        sat, rules = core.proposal_scores(0)
        return final, env_action, sat, rules

    def action_masks(self) -> np.ndarray:
        """Permitted Discrete actions for ``MaskablePPO``: ``SatAgg ≥ threshold``, HOLD always True.

        Raises:
            TypeError: the action space is not Discrete.
        """
        if not self._discrete:
            return self.core.masks()  # raises the core's TypeError
        if not self.enforce and not self._needs_reset and self._error is None:
            return np.ones(self.action_space.n, dtype=bool)
        if not self._needs_reset and self._error is None:
            try:
                return self.core.masks()[0]
            except Exception as err:  # fail-safe: only HOLD now, and the next step halts
                self._error = err
        mask = np.zeros(self.action_space.n, dtype=bool)
        mask[HOLD] = True
        return mask

    def action_sat(self) -> np.ndarray:
        """SatAgg of every discrete action in the current state, ``(A,)``: the scores the next ``step`` decides
        with (scored once per step and shared with :meth:`action_masks` and the decision).

        Raises:
            RuntimeError: before ``reset()``.
            TypeError: the action space is not Discrete.
        """
        if self._needs_reset:
            raise RuntimeError(NEED_RESET)
        self.core.masks()  # scores the step once (raises the core's TypeError for continuous actions)
        return self.core.sat[0]

    def graded_action_sat(self) -> np.ndarray:
        """Graded SatAgg of every discrete action in the current state, ``(A,)`` (:mod:`wrappers.rules`, "Graded
        truths"; scored in the same call as :meth:`action_sat`): what ``info["ltn"]["action_sat"]`` records for the
        logical loss. Never above :meth:`action_sat`.

        Raises:
            RuntimeError: before ``reset()``.
            TypeError: the action space is not Discrete.
        """
        if self._needs_reset:
            raise RuntimeError(NEED_RESET)
        self.core.masks()
        return self.core.graded_sat[0]

    def evaluate_candidates(self, quantities: Any | None = None) -> KBResult:
        """The KB on the current state for ``quantities`` (default: every discrete action's quantity)."""
        if self._needs_reset:
            raise RuntimeError(NEED_RESET)
        return self.core.evaluate(self.core.quantities if quantities is None else quantities)

    # ------------------------------------------------------------------ fail-safe
    def _halt(self, err: Exception, proposed: Any):
        """The terminal transition of a fault before the env stepped: nothing forwarded."""
        self._needs_reset = True
        self._error = err
        info = {**self._info, **NO_EXECUTION_INFO, "halted": True, "halt_reason": reason(err)}
        info["ltn"] = halt_record(proposed, self.threshold)
        return self._obs, 0.0, True, False, info

    def _halt_after_step(self, err: Exception, proposed: Any, final: Any, result: tuple):
        """A fault after the env stepped: the step's own result, terminated, halted; ``info["ltn"]`` keeps the
        executed action (the order went to the market) with ``violation = 1``."""
        obs, reward, truncated, info = result
        self._needs_reset = True
        self._error = err
        try:
            info = dict(info)
        except Exception:  # noqa: BLE001 - an info that cannot be copied is replaced; the halt is what matters
            info = {}
        info.update(halted=True, halt_reason=reason(err))
        info["ltn"] = {**halt_record(proposed, self.threshold), "final_action": final}
        self._obs, self._info = obs, info
        return obs, reward, True, truncated, info
