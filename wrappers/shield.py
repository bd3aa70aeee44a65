"""``LTNShield``: a logic shield that vetoes actions violating the trading knowledge base."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from janus_env.actions import continuous_fraction, discrete_index, sized_quantity
from janus_env.lob_env import NO_EXECUTION_INFO, JanusLOBEnv
from janus_env.simulator import O_POSITION, O_STEP, O_VOLATILITY, O_VOLUME
from wrappers._state import TradeHistory, history_reset
from wrappers.rules import RULE_NAMES, KBResult, TradingKnowledgeBase
from wrappers.shield_kernel import choose_actions, shield_context, shield_score, sync_histories

HOLD = 0
"""The discrete HOLD action (always permitted)."""
FALLBACKS = ("hold", "nearest")
HALT_PREFIX = "shield_error: "
"""``info["halt_reason"]`` of a fail-safe halt starts with this, then ``<ExceptionType>: <message>``."""

_BAD_THRESHOLD = "Expected `threshold` in (0, 1], got {!r}"
_BAD_THRESHOLD_TYPE = "Expected `threshold` to be a real number, got {!r}"
_BAD_FALLBACK = "Expected `fallback` in ('hold', 'nearest'), got {!r}"
_BAD_KB = "Expected `knowledge_base` to be a TradingKnowledgeBase or None, got {!r}"
_NOT_LOB = "LTNShield needs a Janus-LOB env (a JanusLOBEnv underneath the wrappers), got {}"
_BAD_SPACE = "LTNShield needs the env's own action space {} at its level, got {} (a wrapper inside the shield changed it)"
_MASKS_DISCRETE = "action_masks() needs a Discrete action space, got {}"
_NEED_RESET = "Call reset() before step()"
_R0, _R1, _R2, _R3, _R4 = RULE_NAMES


def _entry_point(dispatcher: Any, args: tuple) -> Any:
    """The compiled entry point of ``dispatcher`` for the exact types of ``args`` (None if unavailable)."""
    try:
        signature = tuple(dispatcher.typeof_pyval(a) for a in args)
        return dispatcher.overloads[signature].entry_point
    except Exception:  # numba internals changed: keep using the dispatcher
        return None


class LTNShield(gym.Wrapper, gym.utils.RecordConstructorArgs):
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

    An exception inside the shield (state extraction, KB evaluation, fallback,
    history update) never lets the proposed action through: the step is not
    forwarded, the episode terminates (reward 0, the last observation) with
    ``info["halted"] = True`` and ``info["halt_reason"] = "shield_error:
    <ExceptionType>: <message>"``, the fill keys of ``info`` zeroed, and
    ``info["ltn"]`` with ``violation = 1``, ``overridden = True``,
    ``final_action = None``. If the failure happens after the env stepped (the
    history update), the step's own result is returned, terminated, with the
    same keys. Invalid actions from the caller are user errors: they raise
    (``TypeError`` / ``InvalidActionError``) before anything executes.

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
    the same compiled call that scores the next decision
    (:func:`wrappers.shield_kernel.shield_score`): one numba call per step.
    Continuous targets are scored as the env will send them, rounded to its
    quantity grid (``MarketConfig.resolved_qty_step``, e.g. 0.01 BTC).

    Args:
        env: a Janus-LOB env (any ``Janus-LOB*`` id, any scenario, ``action_type``
            discrete, sized or continuous), possibly already wrapped by wrappers that
            keep its action space.
        threshold: τ, the minimum SatAgg of an executed action *(ours: 0.9)*.
        fallback: ``"hold"`` or ``"nearest"`` (see Decision).
        knowledge_base: the rules and their parameters (default ``TradingKnowledgeBase()``).

    Raises:
        TypeError: ``env`` is not a Janus-LOB env, or ``threshold`` / ``knowledge_base`` has the wrong type.
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
        threshold: float = 0.9,
        fallback: str = "hold",
        knowledge_base: TradingKnowledgeBase | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, threshold=threshold, fallback=fallback,
                                                 knowledge_base=knowledge_base)
        gym.Wrapper.__init__(self, env)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
            raise TypeError(_BAD_THRESHOLD_TYPE.format(threshold))
        if not 0.0 < threshold <= 1.0:
            raise ValueError(_BAD_THRESHOLD.format(threshold))
        if fallback not in FALLBACKS:
            raise ValueError(_BAD_FALLBACK.format(fallback))
        if knowledge_base is not None and not isinstance(knowledge_base, TradingKnowledgeBase):
            raise TypeError(_BAD_KB.format(knowledge_base))
        base = env.unwrapped
        if not isinstance(base, JanusLOBEnv):
            raise TypeError(_NOT_LOB.format(type(base).__name__))
        if self.action_space != base.action_space:
            raise ValueError(_BAD_SPACE.format(base.action_space, self.action_space))
        self.threshold = float(threshold)
        self.fallback = fallback
        self.knowledge_base = knowledge_base if knowledge_base is not None else TradingKnowledgeBase()
        kb = self.knowledge_base
        self._hist = kb.history_rows(1)
        self._history = kb.history(row=self._hist[0])
        config = base.config
        self._lot = float(config.lot)
        self._max_position = float(config.max_position)
        # the env's quantity grid: a continuous target is round(fraction · max_units) grid steps
        self._qty_step = float(config.resolved_qty_step)
        self._max_units = int(config.max_position_units)
        self._fee_bps = float(config.fee_bps)
        self._window = int(config.window)
        self._n_levels = int(config.n_levels)
        self._discrete = isinstance(self.action_space, spaces.Discrete)
        if self._discrete:
            n = int(self.action_space.n)
            self._quantities = np.array([sized_quantity(i, base.n_sizes, config.lot) for i in range(n)],
                                        dtype=np.float64)
            self._q2 = self._quantities[None, :]
            self._proposed = np.zeros(1, dtype=np.int64)
            self._final = np.zeros(1, dtype=np.int64)
            self._truths = np.empty((1, n, len(RULE_NAMES)), dtype=np.float64)
            self._sat = np.empty((1, n), dtype=np.float64)
            self._n_actions = n
        self._obs: Any = None
        self._info: dict[str, Any] = {}
        self._buffers: tuple[np.ndarray, np.ndarray] = base.buffers()
        self._args: tuple = ()
        self._scored = False
        self._error: Exception | None = None
        self._kernel_fn: Any = shield_score
        self._entry: Any = None
        self._score_args: tuple = ()
        self._needs_reset = True

    @property
    def kernel(self) -> Any:
        """The compiled history update + KB scoring, :func:`~wrappers.shield_kernel.shield_score`.

        Settable per instance (tests inject faults with it); setting it drops the cached entry point.
        """
        return self._kernel_fn

    @kernel.setter
    def kernel(self, fn: Any) -> None:
        self._kernel_fn = fn
        self._entry = None

    @property
    def history(self) -> TradeHistory:
        """The agent's trade history, up to date with the last step."""
        sync_histories(self._hist, self._buffers[1])
        return self._history

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._needs_reset = False
        self._error = None
        self._scored = False
        self._obs, self._info = obs, info
        try:
            self._buffers = obs_buffer, out = self.env.unwrapped.buffers()
            history_reset(self._hist[0], out[0, O_VOLUME], out[0, O_STEP], out[0, O_VOLATILITY])
            ctx = shield_context(self.knowledge_base.params, self._window, self._n_levels, self._max_position,
                                 self._lot, self._fee_bps)
            self._args = (self._hist, obs_buffer, out, ctx)
            if self._discrete:
                self._score_args = (*self._args, self._q2, self._truths, self._sat)
        except Exception as err:  # fail-safe: the first step halts
            self._error = err
        return obs, info

    def step(self, action: Any):
        if self._needs_reset:
            raise RuntimeError(_NEED_RESET)
        cls = action.__class__
        if self._discrete and (cls is int or cls is np.int64) and 0 <= action < self._n_actions:
            proposed = payload = int(action)  # fast path for the common valid case
        else:
            proposed, payload = self._validate(action)
        try:
            if self._error is not None:
                raise self._error
            if self._discrete:  # decide() inlined: this is the hot path
                if not self._scored:
                    entry = self._entry
                    if entry is not None:
                        entry(*self._score_args)
                        self._scored = True
                    else:
                        self._score()
                sat = self._sat.item(payload)
                t = self._truths[0, payload].tolist()
                if sat >= self.threshold:
                    final = env_action = payload
                else:
                    final = env_action = HOLD if self.fallback == "hold" else self._nearest(payload)
                rules = {_R0: t[0], _R1: t[1], _R2: t[2], _R3: t[3], _R4: t[4]}
            else:
                final, env_action, sat, rules = self.decide(proposed, payload)
        except Exception as err:
            return self._halt(err, proposed)

        obs, reward, terminated, truncated, info = self.env.step(env_action)
        self._scored = False  # the history records this step in the next scoring call (or when read)
        self._obs = obs
        self._info = info
        if terminated or truncated:
            self._needs_reset = True
        info["ltn"] = {
            "rules": rules,
            "sat_agg": sat,
            "violation": 1.0 - sat,
            "overridden": sat < self.threshold,
            "proposed_action": proposed,
            "final_action": final,
            "threshold": self.threshold,
        }
        return obs, reward, terminated, truncated, info

    def _validate(self, action: Any) -> tuple[Any, Any]:
        """``(proposed, payload)``: the JSON-able proposal and what :meth:`decide` needs (user errors raise)."""
        if self._discrete:
            index = discrete_index(action, self.action_space)
            return index, index
        fraction = continuous_fraction(action, self.action_space)
        return [fraction], action

    def decide(self, proposed: Any, payload: Any) -> tuple[Any, Any, float, dict[str, float]]:
        """Score the proposal on the current state and pick the action to execute.

        Args:
            proposed: a discrete action index, or ``[fraction]`` for continuous actions.
            payload: the index again, or the original continuous action.

        Returns:
            ``(final, env_action, sat_agg, rules)``: the JSON-able executed action, the action to
            pass to the env, the proposal's SatAgg and its ``{rule: truth}``.
        """
        if self._discrete:
            if not self._scored:
                self._score()
            sat = self._sat.item(payload)
            t = self._truths[0, payload].tolist()
            if sat >= self.threshold:
                final = payload
            else:
                final = HOLD if self.fallback == "hold" else self._nearest(payload)
            env_action = final
        else:
            final, env_action, sat, t = self._decide_continuous(proposed[0], payload)
        return final, env_action, sat, {_R0: t[0], _R1: t[1], _R2: t[2], _R3: t[3], _R4: t[4]}

    def action_masks(self) -> np.ndarray:
        """Permitted Discrete actions for ``MaskablePPO``: ``SatAgg ≥ threshold``, HOLD always True.

        Raises:
            TypeError: the action space is not Discrete.
        """
        if not self._discrete:
            raise TypeError(_MASKS_DISCRETE.format(self.action_space))
        if not self._needs_reset and self._error is None:
            try:
                if not self._scored:
                    self._score()
                mask = self._sat[0] >= self.threshold
                mask[HOLD] = True
                return mask
            except Exception as err:  # fail-safe: only HOLD now, and the next step halts
                self._error = err
        mask = np.zeros(self.action_space.n, dtype=bool)
        mask[HOLD] = True
        return mask

    # ------------------------------------------------------------------ scoring
    def evaluate_candidates(self, quantities: Any | None = None) -> KBResult:
        """The KB on the current state for ``quantities`` (default: every discrete action's quantity)."""
        if self._needs_reset:
            raise RuntimeError(_NEED_RESET)
        q = self._quantities if quantities is None else np.ascontiguousarray(quantities, dtype=np.float64)
        truths = np.empty((1, q.shape[0], len(RULE_NAMES)), dtype=np.float64)
        sat = np.empty((1, q.shape[0]), dtype=np.float64)
        self._kernel(q[None, :], truths, sat)
        return KBResult(q, truths[0], sat[0])

    def _score(self) -> None:
        self._kernel(self._q2, self._truths, self._sat)
        self._scored = True

    def _kernel(self, quantities: np.ndarray, truths: np.ndarray, sat: np.ndarray) -> None:
        """History update + scoring of ``quantities`` in one compiled call (see :mod:`wrappers.shield_kernel`).

        The first call through the stock kernel caches its compiled entry point, which the hot path
        then calls directly, skipping numba's per-call type dispatch (≈0.3 µs).
        """
        args = (*self._args, quantities, truths, sat)
        if self._entry is not None:
            self._entry(*args)
            return
        kernel = self._kernel_fn
        kernel(*args)
        if kernel is shield_score:
            self._entry = _entry_point(kernel, args)

    def _nearest(self, index: int) -> int:
        self._proposed[0] = index
        choose_actions(self._q2, self._sat, self._proposed, self.threshold, True, self._final)
        return int(self._final[0])

    def _decide_continuous(self, fraction: float, action: Any) -> tuple[list[float], Any, float, list[float]]:
        position = float(self._buffers[1][0, O_POSITION])
        step = self._qty_step  # the order the env will send, on its quantity grid (as JanusLOBEnv rounds it)
        proposal = (round(fraction * self._max_units) - round(position / step)) * step
        if self.fallback == "nearest" and proposal != 0.0:
            steps = np.arange(int(abs(proposal) / self._lot + 1e-9), 0, -1, dtype=np.float64)
            candidates = np.concatenate(([proposal], np.sign(proposal) * self._lot * steps, [0.0]))
        else:
            candidates = np.array([proposal, 0.0])
        truths3 = np.empty((1, candidates.shape[0], len(RULE_NAMES)), dtype=np.float64)
        sat2 = np.empty((1, candidates.shape[0]), dtype=np.float64)
        self._kernel(candidates[None, :], truths3, sat2)
        truths, sat_all = truths3[0], sat2[0]
        sat = float(sat_all[0])
        if sat >= self.threshold:
            return [fraction], action, sat, truths[0].tolist()
        permitted = np.nonzero(sat_all[1:] >= self.threshold)[0]  # ordered from the largest move down
        move = float(candidates[1 + permitted[0]]) if permitted.size else 0.0
        target = np.array([(position + move) / self._max_position], dtype=np.float32)
        return [float(target[0])], target, sat, truths[0].tolist()

    # ------------------------------------------------------------------ fail-safe
    @staticmethod
    def _reason(err: BaseException) -> str:
        return f"{HALT_PREFIX}{type(err).__name__}: {err}"

    def _halt(self, err: Exception, proposed: Any):
        self._needs_reset = True
        self._error = err
        info = {**self._info, **NO_EXECUTION_INFO, "halted": True, "halt_reason": self._reason(err)}
        info["ltn"] = {
            "rules": {},
            "sat_agg": 0.0,
            "violation": 1.0,
            "overridden": True,
            "proposed_action": proposed,
            "final_action": None,
            "threshold": self.threshold,
        }
        return self._obs, 0.0, True, False, info
