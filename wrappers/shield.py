"""``LTNShield``: a logic shield that vetoes actions violating the trading knowledge base."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from janus_env.actions import continuous_fraction, discrete_index, sized_quantity
from janus_env.lob_env import JanusLOBEnv
from wrappers.rules import RULE_NAMES, KBResult, TradingKnowledgeBase, _decode_book, kb_kernel

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
_NO_FILL = {"fills": 0, "exec_qty": 0.0, "exec_price": 0.0, "slippage_bps": 0.0, "fees": 0.0, "rejected_qty": 0.0}
_BOOK_RTOL = 1e-4
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

    ## Book

    The book walk reads the observation's ``book`` (price offsets in bps of
    ``info["mid"]``, ``log1p(shares/lot)``). At each reset the decoded book is
    compared with ``env.unwrapped.book()``; if an observation wrapper inside
    the shield changed or removed it, the shield reads ``env.unwrapped.book()``
    every step instead (correct, slower).

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
        self.history = self.knowledge_base.history()
        config = base.config
        self._lot = float(config.lot)
        self._max_position = float(config.max_position)
        self._fee_bps = float(config.fee_bps)
        self._n_levels = int(config.n_levels)
        self._discrete = isinstance(self.action_space, spaces.Discrete)
        if self._discrete:
            n = int(self.action_space.n)
            self._quantities = np.array([sized_quantity(i, base.n_sizes, config.lot) for i in range(n)],
                                        dtype=np.float64)
            self._truths = np.empty((n, len(RULE_NAMES)), dtype=np.float64)
            self._sat = np.empty(n, dtype=np.float64)
            self._n_actions = n
        self._obs: Any = None
        self._info: dict[str, Any] = {}
        self._scored = False
        self._error: Exception | None = None
        self._book_from_obs = True
        self._entry: Any = None
        self._entry_dtype: Any = None
        self._needs_reset = True

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._needs_reset = False
        self._error = None
        self._scored = False
        self._obs, self._info = obs, info
        try:
            self.history.reset(info)
            self._book_from_obs = self._observation_book_matches(obs, info)
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
                    self._score()
                sat = self._sat.item(payload)
                t = self._truths[payload].tolist()
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
        try:
            self._obs = obs
            self._info = info
            self._scored = False
            self.history.update(info)
        except Exception as err:  # the env stepped; stop here all the same
            self._error = err
            info.update(halted=True, halt_reason=self._reason(err))
            terminated = True
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
            t = self._truths[payload].tolist()
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
                mask = self._sat >= self.threshold
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
        truths = np.empty((q.shape[0], len(RULE_NAMES)), dtype=np.float64)
        sat = np.empty(q.shape[0], dtype=np.float64)
        self._kernel(q, truths, sat)
        return KBResult(q, truths, sat)

    def _score(self) -> None:
        self._kernel(self._quantities, self._truths, self._sat)
        self._scored = True

    def _kernel(self, quantities: np.ndarray, truths: np.ndarray, sat: np.ndarray) -> None:
        """Score ``quantities`` on the current state with the numba kernel (state passed as scalars).

        The observation's book is passed as is (float32). After the first call the compiled
        specialization's entry point is called directly, skipping numba's per-call type dispatch
        (≈0.5 µs); it is used only while the KB's kernel is :func:`kb_kernel` and the book keeps
        the dtype and C layout it was compiled for.
        """
        info = self._info
        history = self.history
        kernel = self.knowledge_base.kernel
        if self._book_from_obs:
            book = self._obs["book"]
            if kernel is kb_kernel and book.dtype is self._entry_dtype and book.flags.c_contiguous:
                kernel = self._entry
        else:
            book = np.ascontiguousarray(self.env.unwrapped.book(), dtype=np.float64)
        args = (quantities, book, self.knowledge_base.params, truths, sat, self._book_from_obs,
                info["position"], info["cash"], info["mid"], info["vpin"], info["volatility"],
                history.mean_volume, history.recent_loss_sale(), self._max_position, self._lot, self._fee_bps)
        kernel(*args)
        if kernel is kb_kernel and self._entry is None and self._book_from_obs and book.flags.c_contiguous:
            self._entry = _entry_point(kb_kernel, args)
            self._entry_dtype = book.dtype if self._entry is not None else None

    def _nearest(self, index: int) -> int:
        q, s = self._quantities, self._sat
        best, best_key = HOLD, (abs(q[index]), -s[HOLD], 0.0, HOLD)
        for a in range(q.shape[0]):
            if s[a] >= self.threshold:
                key = (abs(q[a] - q[index]), -s[a], abs(q[a]), a)
                if key < best_key:
                    best, best_key = a, key
        return best

    def _decide_continuous(self, fraction: float, action: Any) -> tuple[list[float], Any, float, list[float]]:
        position = float(self._info["position"])
        proposal = round(fraction * self._max_position) - position
        if self.fallback == "nearest" and proposal != 0.0:
            steps = np.arange(int(abs(proposal) // self._lot), 0, -1, dtype=np.float64)
            candidates = np.concatenate(([proposal], np.sign(proposal) * self._lot * steps, [0.0]))
        else:
            candidates = np.array([proposal, 0.0])
        truths = np.empty((candidates.shape[0], len(RULE_NAMES)), dtype=np.float64)
        sat_all = np.empty(candidates.shape[0], dtype=np.float64)
        self._kernel(candidates, truths, sat_all)
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
        info = {**self._info, **_NO_FILL, "halted": True, "halt_reason": self._reason(err)}
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

    def _observation_book_matches(self, obs: Any, info: dict[str, Any]) -> bool:
        """Whether ``obs["book"]`` decodes to ``env.unwrapped.book()`` (checked once per reset)."""
        book = obs.get("book") if isinstance(obs, dict) else None
        if not isinstance(book, np.ndarray) or book.shape != (self._n_levels, 4) \
                or book.dtype not in (np.float32, np.float64) or not book.flags.c_contiguous:
            return False
        mid = float(info["mid"])
        decoded = _decode_book(np.asarray(book, dtype=np.float64), mid, self._lot, True)
        truth = _decode_book(np.asarray(self.env.unwrapped.book(), dtype=np.float64), mid, self._lot, False)
        return bool(np.allclose(decoded, truth, rtol=_BOOK_RTOL, atol=1e-6 * self._lot))
