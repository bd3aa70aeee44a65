"""``LTNVectorShield``: the logic shield of :class:`~wrappers.shield.LTNShield` over the native vector env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from janus_env.actions import sized_quantity
from janus_env.simulator import O_POSITION, O_STEP, O_VOLATILITY, O_VOLUME
from janus_env.vector_env import JanusLOBVectorEnv
from wrappers._state import TradeHistory, history_reset
from wrappers.rules import RULE_NAMES, TradingKnowledgeBase
from wrappers.shield import FALLBACKS, HALT_PREFIX, HOLD
from wrappers.shield_kernel import choose_actions, shield_context, shield_score, sync_histories

_BAD_THRESHOLD = "Expected `threshold` in (0, 1], got {!r}"
_BAD_FALLBACK = "Expected `fallback` in {}, got {!r}"
_BAD_CONTINUOUS = "fallback='nearest' needs Discrete actions in the vector shield, got {}"
_NOT_VECTOR = "LTNVectorShield needs the native Janus-LOB vector env (gym.make_vec('Janus-LOB-v0', ...)), got {}"
_NEED_RESET = "Call reset() before step()"


class LTNVectorShield(gym.vector.VectorWrapper):
    """The trading knowledge base on every sub-env of ``gym.make_vec("Janus-LOB-v0", num_envs=N)``.

    Same decision as :class:`~wrappers.shield.LTNShield`, for all books in one
    numba call per step (:func:`wrappers.shield_kernel.shield_score`): each
    env's proposal is scored on its own market state and trade history and,
    when ``SatAgg < threshold``, replaced by HOLD (``fallback="hold"``; for
    continuous actions: keep the position) or by the nearest permitted action
    (``fallback="nearest"``, Discrete actions only). Histories follow
    Gymnasium's next-step autoreset: a sub-env's history restarts on the step
    that resets it.

    ``info["ltn"]`` holds arrays of shape ``(num_envs,)``: ``rules``
    (``{name: truths}``), ``sat_agg``, ``violation``, ``overridden``,
    ``proposed_action``, ``final_action``, and ``threshold``; ``info["_ltn"]``
    is the all-true mask of Gymnasium's vector info convention.
    ``action_masks()`` returns ``(num_envs, n_actions)`` booleans (HOLD always True).

    Fail-safe: an exception inside the shield halts every book — nothing is
    forwarded, all sub-envs report ``terminated`` with reward 0 and
    ``info["halt_reason"]`` (``"shield_error: <Type>: <message>"``), and the
    shield refuses to step until ``reset()``. Invalid actions raise before
    anything executes.

    Args:
        env: a :class:`~janus_env.vector_env.JanusLOBVectorEnv` (possibly wrapped, same action space).
        threshold: τ, the minimum SatAgg of an executed action *(ours: 0.9)*.
        fallback: ``"hold"`` or ``"nearest"``.
        knowledge_base: the rules and their parameters (default ``TradingKnowledgeBase()``).

    ```python
    envs = LTNVectorShield(gym.make_vec("Janus-LOB-v0", num_envs=64, action_type="sized"))
    ```
    """

    def __init__(self, env: gym.vector.VectorEnv, threshold: float = 0.9, fallback: str = "hold",
                 knowledge_base: TradingKnowledgeBase | None = None) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not isinstance(base, JanusLOBVectorEnv):
            raise TypeError(_NOT_VECTOR.format(type(base).__name__))
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
                or not 0.0 < threshold <= 1.0:
            raise ValueError(_BAD_THRESHOLD.format(threshold))
        if fallback not in FALLBACKS:
            raise ValueError(_BAD_FALLBACK.format(FALLBACKS, fallback))
        if knowledge_base is not None and not isinstance(knowledge_base, TradingKnowledgeBase):
            raise TypeError(f"Expected `knowledge_base` to be a TradingKnowledgeBase or None, got {knowledge_base!r}")
        self._discrete = isinstance(base.single_action_space, spaces.Discrete)
        if fallback == "nearest" and not self._discrete:
            raise ValueError(_BAD_CONTINUOUS.format(base.single_action_space))
        self.threshold = float(threshold)
        self.fallback = fallback
        self.knowledge_base = kb = knowledge_base if knowledge_base is not None else TradingKnowledgeBase()
        n = self.num_envs
        config = base.config
        self._base = base
        self._hist = kb.history_rows(n)
        self._rows = np.arange(n)
        if self._discrete:
            k = int(base.single_action_space.n)
            one = [sized_quantity(i, base.n_sizes, config.lot) for i in range(k)]
            self._q = np.tile(np.array(one, dtype=np.float64), (n, 1))
        else:
            k = 2  # the proposal and keeping the position
            self._q = np.zeros((n, k), dtype=np.float64)
        self._truths = np.empty((n, k, len(RULE_NAMES)), dtype=np.float64)
        self._sat = np.empty((n, k), dtype=np.float64)
        self._final = np.zeros(n, dtype=np.int64)
        self._ctx = shield_context(kb.params, config.window, config.n_levels, config.max_position, config.lot,
                                   config.fee_bps)
        self._max_position = float(config.max_position)
        self._scored = False
        self._needs_reset = True
        self._last: tuple[Any, dict[str, Any]] = (None, {})

    def history(self, i: int) -> TradeHistory:
        """Sub-env ``i``'s trade history (a view), up to date with the last step."""
        sync_histories(self._hist, self._base.buffers()[1])
        return self.knowledge_base.history(row=self._hist[i])

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        out = self._base.buffers()[1]
        for i in range(self.num_envs):
            history_reset(self._hist[i], out[i, O_VOLUME], out[i, O_STEP], out[i, O_VOLATILITY])
        self._needs_reset = False
        self._scored = False
        self._last = (obs, info)
        return obs, info

    def action_masks(self) -> np.ndarray:
        """``(num_envs, n_actions)``: ``SatAgg ≥ threshold``, HOLD always True (only HOLD after a fault)."""
        if not self._discrete:
            raise TypeError(f"action_masks() needs a Discrete action space, got {self.single_action_space}")
        mask = np.zeros(self._sat.shape, dtype=bool)
        mask[:, HOLD] = True
        if self._needs_reset:
            return mask
        try:
            self._score()
        except Exception:  # fail-safe: only HOLD
            return mask
        return (self._sat >= self.threshold) | mask

    def step(self, actions: Any):
        if self._needs_reset:
            raise RuntimeError(_NEED_RESET)
        qty = self._base.order_quantities(actions)  # user errors raise here, before anything runs
        try:
            if self._discrete:
                proposed = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
                self._score()
                choose_actions(self._q, self._sat, proposed, self.threshold, self.fallback == "nearest",
                               self._final)
                final = self._final.copy()
                env_actions = final
            else:
                proposed = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, 1)
                self._q[:, 0] = qty
                self._scored = False
                self._score()
                allowed = self._sat[:, 0] >= self.threshold
                keep = (self._base.buffers()[1][:, O_POSITION] / self._max_position).astype(np.float32)
                env_actions = np.where(allowed[:, None], proposed, keep[:, None]).astype(np.float32)
                final = env_actions
            rows, choice = self._rows, (proposed if self._discrete else np.zeros(self.num_envs, dtype=np.int64))
            sat = self._sat[rows, choice]
            rules = {name: self._truths[rows, choice, r] for r, name in enumerate(RULE_NAMES)}
        except Exception as err:
            return self._halt(err, actions)
        obs, reward, terminated, truncated, info = self.env.step(env_actions)
        self._scored = False
        self._last = (obs, info)
        info["ltn"] = {
            "rules": rules,
            "sat_agg": sat,
            "violation": 1.0 - sat,
            "overridden": sat < self.threshold,
            "proposed_action": np.asarray(actions).copy(),
            "final_action": final,
            "threshold": np.full(self.num_envs, self.threshold),
        }
        info["_ltn"] = np.ones(self.num_envs, dtype=bool)
        return obs, reward, terminated, truncated, info

    def _score(self) -> None:
        if self._scored:
            return
        obs, out = self._base.buffers()
        shield_score(self._hist, obs, out, self._ctx, self._q, self._truths, self._sat)
        self._scored = True

    def _halt(self, err: Exception, actions: Any):
        self._needs_reset = True
        n = self.num_envs
        obs, info = self._last
        reason = f"{HALT_PREFIX}{type(err).__name__}: {err}"
        info = {**info, "halted": np.ones(n, dtype=bool), "_halted": np.ones(n, dtype=bool),
                "halt_reason": np.full(n, reason, dtype=object), "_halt_reason": np.ones(n, dtype=bool)}
        return obs, np.zeros(n), np.ones(n, dtype=bool), np.zeros(n, dtype=bool), info
