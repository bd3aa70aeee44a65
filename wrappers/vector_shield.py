"""``VectorLTNShield``: the logic shield of :class:`~wrappers.shield.LTNShield` over the native vector env."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from janus_env.actions import ACTION_ERRORS
from janus_env.checks import NEED_RESET
from janus_env.vector_env import JanusLOBVectorEnv
from wrappers._state import TradeHistory
from wrappers.rules import TradingKnowledgeBase
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

_NOT_VECTOR = "VectorLTNShield needs the native Janus-LOB vector env (gym.make_vec('Janus-LOB-v0', ...)), got {}"


class VectorLTNShield(CoreKernel, ShieldHalt, gym.vector.VectorWrapper):
    """The trading knowledge base on every sub-env of ``gym.make_vec("Janus-LOB-v0", num_envs=N)``.

    The decision of :class:`~wrappers.shield.LTNShield` (the same batched core,
    :class:`wrappers.shield_kernel.ShieldCore`), for all books in one numba call
    per step: each env's proposal is scored on its own market state and trade
    history and, when ``SatAgg < threshold``, replaced by HOLD
    (``fallback="hold"``; for continuous actions: keep the position) or by the
    nearest permitted action (``fallback="nearest"``; for continuous actions:
    the largest permitted whole-lot move toward the target). Histories follow
    Gymnasium's next-step autoreset: a sub-env's history restarts on the step
    that resets it.

    ``info["ltn"]`` holds arrays of shape ``(num_envs,)``: ``rules``
    (``{name: truths}``), ``sat_agg``, ``violation``, ``overridden``,
    ``proposed_action``, ``final_action``, and ``threshold``; ``info["_ltn"]``
    is the all-true mask of Gymnasium's vector info convention.
    ``action_masks()`` returns ``(num_envs, n_actions)`` booleans (HOLD always True).

    Fail-safe: an exception anywhere inside the shield's ``step`` halts every
    book — nothing is forwarded, all sub-envs report ``terminated`` with reward 0,
    ``info["halt_reason"]`` (``"shield_error: <Type>: <message>"``) and
    ``info["ltn"]`` with ``violation = 1``, ``overridden = True`` and
    ``final_action = None``, and the shield refuses to step until ``reset()``
    (:attr:`halted` is True). A fault after the books stepped (recording the
    decisions) returns the step's own result, every book terminated and halted,
    ``final_action`` the executed actions. A fault in ``reset`` marks the reset
    info halted and halts the first step unforwarded; a fault while computing
    ``action_masks()`` returns HOLD only and halts at the next step. Invalid
    actions (:data:`~janus_env.actions.ACTION_ERRORS`) raise before anything
    executes and do not halt.

    Args:
        env: a :class:`~janus_env.vector_env.JanusLOBVectorEnv` (possibly wrapped, same action space).
        threshold: τ, the minimum SatAgg of an executed action *(ours: 0.9)*.
        fallback: ``"hold"`` or ``"nearest"``.
        knowledge_base: the rules and their parameters (default ``TradingKnowledgeBase()``).

    Raises:
        TypeError: ``env`` is not the native vector env, or ``threshold`` / ``fallback`` /
            ``knowledge_base`` has the wrong type.
        ValueError: ``threshold`` outside (0, 1] or an unknown ``fallback``.

    ```python
    envs = VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=64, action_type="sized"))
    ```
    """

    def __init__(self, env: gym.vector.VectorEnv, threshold: float = DEFAULT_THRESHOLD, fallback: str = "hold",
                 knowledge_base: TradingKnowledgeBase | None = None) -> None:
        super().__init__(env)
        base = env.unwrapped
        if not isinstance(base, JanusLOBVectorEnv):
            raise TypeError(_NOT_VECTOR.format(type(base).__name__))
        self.core = ShieldCore(self.num_envs, base.single_action_space, base.config, base.n_sizes, threshold,
                               fallback, knowledge_base)
        """The batched decision (one row per book)."""
        self.threshold = self.core.threshold
        self.fallback = fallback
        self.knowledge_base = self.core.knowledge_base
        self._base = base
        self._thresholds = np.full(self.num_envs, self.threshold)
        self._error: Exception | None = None
        self._needs_reset = True
        self._last: tuple[Any, dict[str, Any]] = (None, {})


    def history(self, i: int) -> TradeHistory:
        """Sub-env ``i``'s trade history (a view), up to date with the last step."""
        return self.core.history(i)

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        self._needs_reset = True  # until the reset succeeded: a failed inner reset leaves nothing to step
        self._error = None
        obs, info = self.env.reset(seed=seed, options=options)
        self._last = (obs, info)
        try:
            self.core.attach(self._base.buffers())
        except Exception as err:  # fail-safe: the first step halts
            self._error = err
            n = self.num_envs
            info = {**info, "halted": np.ones(n, dtype=bool), "_halted": np.ones(n, dtype=bool),
                    "halt_reason": np.full(n, reason(err), dtype=object), "_halt_reason": np.ones(n, dtype=bool)}
        self._needs_reset = False
        return obs, info

    def action_masks(self) -> np.ndarray:
        """``(num_envs, n_actions)``: ``SatAgg ≥ threshold``, HOLD always True (only HOLD after a fault).

        Raises:
            TypeError: the action space is not Discrete.
        """
        if not self.core.discrete:
            return self.core.masks()  # raises the core's TypeError
        if not self._needs_reset and self._error is None:
            try:
                return self.core.masks()
            except Exception as err:  # fail-safe: only HOLD now, and the next step halts
                self._error = err
        mask = np.zeros(self.core.sat.shape, dtype=bool)
        mask[:, HOLD] = True
        return mask

    def step(self, actions: Any):
        if self._needs_reset:
            raise RuntimeError(NEED_RESET)
        try:
            self._base.order_quantities(actions)  # the caller's errors raise here, before anything runs
        except ACTION_ERRORS:
            raise
        except Exception as err:
            return self._halt(err, actions)
        core = self.core
        try:
            if self._error is not None:
                raise self._error
            if core.discrete:
                core.proposed[:] = np.asarray(actions, dtype=np.int64).reshape(self.num_envs)
                env_actions = final = core.decide().copy()
            else:
                proposed = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, 1)
                allowed, targets = core.decide_continuous(proposed[:, 0])
                env_actions = final = np.where(allowed[:, None], proposed, targets[:, None]).astype(np.float32)
            sat, rules = core.batch_scores()
            action_sat = core.graded_sat.copy() if core.discrete else None
        except Exception as err:
            return self._halt(err, actions)
        obs, reward, terminated, truncated, info = self.env.step(env_actions)
        # from here the actions are with the market: a fault halts every book with the step's own result
        try:
            core.scored = False
            self._last = (obs, info)
            info["ltn"] = ltn_record(rules, sat, np.asarray(actions).copy(), final, self._thresholds.copy(),
                                     action_sat)
            info["_ltn"] = np.ones(self.num_envs, dtype=bool)
        except Exception as err:
            return self._halt_after_step(err, actions, final, (obs, reward, truncated, info))
        return obs, reward, terminated, truncated, info

    def _halt(self, err: Exception, actions: Any):
        self._needs_reset = True
        self._error = err
        n = self.num_envs
        obs, info = self._last
        why = reason(err)
        info = {**info, "halted": np.ones(n, dtype=bool), "_halted": np.ones(n, dtype=bool),
                "halt_reason": np.full(n, why, dtype=object), "_halt_reason": np.ones(n, dtype=bool),
                "ltn": halt_record(np.asarray(actions).copy(), self._thresholds.copy(), np.zeros(n)),
                "_ltn": np.ones(n, dtype=bool)}
        return obs, np.zeros(n), np.ones(n, dtype=bool), np.zeros(n, dtype=bool), info

    def _halt_after_step(self, err: Exception, actions: Any, final: Any, result: tuple):
        """A fault after the books stepped: the step's own result, every book terminated and halted;
        ``info["ltn"]["final_action"]`` keeps the executed actions."""
        obs, reward, truncated, info = result
        self._needs_reset = True
        self._error = err
        n = self.num_envs
        try:
            info = dict(info)
        except Exception:  # noqa: BLE001 - an info that cannot be copied is replaced; the halt is what matters
            info = {}
        info.update({"halted": np.ones(n, dtype=bool), "_halted": np.ones(n, dtype=bool),
                     "halt_reason": np.full(n, reason(err), dtype=object), "_halt_reason": np.ones(n, dtype=bool),
                     "ltn": {**halt_record(np.asarray(actions).copy(), self._thresholds.copy(), np.zeros(n)),
                             "final_action": final},
                     "_ltn": np.ones(n, dtype=bool)})
        self._last = (obs, info)
        return obs, reward, np.ones(n, dtype=bool), np.asarray(truncated, dtype=bool), info
