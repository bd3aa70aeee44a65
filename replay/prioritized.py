"""Prioritized experience replay for Stable-Baselines3 (the hippocampal buffer).

Proportional prioritization (Schaul, Quan, Antonoglou & Silver, 2016,
"Prioritized Experience Replay") with the JANUS priority:

* priority  ``p_i = |δ_i| + λ_logic·v_i + λ_reward·|r_i| + ε``, where ``v_i`` is
  the LTN violation ``info["ltn"]["violation"] = 1 − SatAgg`` of the proposed
  action (0 when absent), read when the transition is added and stored;
* sampling  ``P(i) = p_i^α / Σ_k p_k^α``;
* IS weights ``w_i = (N·P(i))^−β / max_j (N·P(j))^−β = (P(i) / min_j P(j))^−β``,
  normalized by the maximum over the whole buffer (Schaul et al. 2016, §3.4),
  so ``w_i ∈ (0, 1]``; β anneals linearly from ``beta0`` to ``beta_final``.

With a Discrete action space the buffer also keeps ``info["ltn"]["action_sat"]``, the SatAgg of every
action in the state the transition was decided in (1 when absent: nothing known against any action), and
returns it with each sample (``samples.action_sat``, ``(B, A)``) for the logical loss of
:mod:`replay.losses`.

New transitions enter with ``max(p_max, λ_logic·v + λ_reward·|r| + ε)`` where
``p_max`` is the largest priority seen so far (Schaul et al. 2016, Alg. 1,
line 6); the second term *(ours)* makes a violating transition at least as
urgent as its known, TD-free part of the priority before its first replay.

Both buffers are drop-in ``replay_buffer_class`` values for any SB3 off-policy
algorithm (DQN, SAC, TD3, sb3-contrib QRDQN …). Algorithms that know about
PER (``agents.JanusDQN``, ``replay.swr_replay``) use ``samples.weights`` and
call :meth:`PrioritizedReplayMixin.update_priorities`; the stock SB3 ones
ignore the extra fields, so for them every transition keeps its insertion
priority and sampling is close to uniform.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from janus_env.checks import (
    check_array_like,
    check_fraction,
    check_int,
    check_number,
    check_positive,
    generator_from_state,
)
from replay.sumtree import SumTree
from replay.types import PrioritizedDictReplayBufferSamples, PrioritizedReplayBufferSamples

_OPTIMIZE_MEMORY = (
    "Prioritized replay buffers do not support optimize_memory_usage=True "
    "(the shared observation array invalidates the oldest transition, which would stay "
    "sampleable); pass optimize_memory_usage=False"
)
_BAD_INFOS = "Expected {} info dicts (one per env), got {}"
_BAD_VIOLATION = "Expected info['ltn']['violation'] in [0, 1], got {!r} for env {}"
_BAD_LTN_INFO = "Expected info['ltn'] to be a mapping (with a 'violation' entry), got {!r} for env {}"
_BAD_INDEX_TYPE = "Expected integer indices, got dtype {}"
_BAD_INDEX = "Index {} does not hold a transition: valid indices are [0, {})"
_NOT_1D = "Expected a 1-D array of {}, got shape {}"
_TD_MISMATCH = "Got {} indices but {} TD errors"
_NONFINITE_TD = "Expected finite TD errors, got {!r} at position {}"
_EMPTY_BUFFER = "Cannot sample from an empty replay buffer"
_BAD_ACTION_SAT = "Expected info['ltn']['action_sat'] to be {} SatAgg values in [0, 1], got {!r} for env {}"


def read_action_sat(infos: list[dict[str, Any]], n_actions: int) -> np.ndarray | None:
    """``infos[e]["ltn"]["action_sat"]`` per env, ``(n_envs, n_actions)`` (rows of 1 when absent), in [0, 1];
    None when no info has it. The prioritized buffers and the rollout buffers of :mod:`replay.rollout` read it.

    Raises:
        ValueError: a row that is not ``n_actions`` values in [0, 1] (NaN included).
    """
    out = np.ones((len(infos), n_actions), dtype=np.float32)
    seen = False
    for env_idx, info in enumerate(infos):
        ltn = info.get("ltn") if isinstance(info, Mapping) else None
        raw = ltn.get("action_sat") if isinstance(ltn, Mapping) else None
        if raw is None:
            continue
        row = np.asarray(raw, dtype=np.float64).reshape(-1)
        if row.shape != (n_actions,) or not np.all((row >= 0.0) & (row <= 1.0)):  # also rejects NaN
            raise ValueError(_BAD_ACTION_SAT.format(n_actions, raw, env_idx))
        out[env_idx] = row
        seen = True
    return out if seen else None


_STATE_SETTING = "Replay buffer state was saved with {} = {!r}, this buffer has {!r}"
_STATE_VALUE = "Replay buffer state: expected `{}` to be {}"


def read_violations(infos: list[dict[str, Any]]) -> np.ndarray:
    """``v_e = infos[e]["ltn"]["violation"]`` (0 when absent), validated in [0, 1]: what the prioritized buffers
    and the sleep's rollout archive (:mod:`replay.archive`) store per step."""
    out = np.zeros(len(infos), dtype=np.float32)
    for env_idx, info in enumerate(infos):
        ltn = info.get("ltn") if isinstance(info, Mapping) else None
        if ltn is None:
            continue
        if not isinstance(ltn, Mapping):
            raise TypeError(_BAD_LTN_INFO.format(ltn, env_idx))
        if ltn.get("violation") is None:
            continue
        raw = ltn["violation"]
        try:
            value = float(raw)
        except (TypeError, ValueError) as err:
            raise ValueError(_BAD_VIOLATION.format(raw, env_idx)) from err
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise ValueError(_BAD_VIOLATION.format(raw, env_idx))
        out[env_idx] = value
    return out


def _as_numpy_1d(values: np.ndarray | th.Tensor | list[float], name: str) -> np.ndarray:
    """Flatten a tensor / array of shape (B,) or (B, 1) to a float64 (B,) array."""
    if isinstance(values, th.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(_NOT_1D.format(name, arr.shape))
    return arr


class PrioritizedReplayMixin:
    """Priority bookkeeping shared by the array and ``Dict`` prioritized buffers.

    Must precede an SB3 ``ReplayBuffer`` subclass in the bases; the concrete
    class provides ``_gather`` (the SB3 sample layout at given env indices) and
    ``_samples_class``. Indices are flat: ``position · n_envs + env``.
    """

    _samples_class: ClassVar[type]
    # provided by the SB3 base class
    buffer_size: int
    n_envs: int
    pos: int
    full: bool
    rewards: np.ndarray

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        *,
        alpha: float = 0.6,
        beta0: float = 0.4,
        beta_final: float = 1.0,
        beta_steps: int = 100_000,
        lambda_logic: float = 2.0,
        lambda_reward: float = 0.5,
        eps: float = 1e-6,
        seed: int | None = None,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError(_OPTIMIZE_MEMORY)
        self.alpha = check_number("alpha", alpha, low=0)
        self.beta0 = check_fraction("beta0", beta0)
        self.beta_final = check_fraction("beta_final", beta_final)
        self.beta_steps = check_int("beta_steps", beta_steps, low=1)
        self.lambda_logic = check_number("lambda_logic", lambda_logic, low=0)
        self.lambda_reward = check_number("lambda_reward", lambda_reward, low=0)
        self.eps = check_positive("eps", eps)
        check_int("seed", seed, optional=True)
        super().__init__(  # type: ignore[call-arg]
            buffer_size,
            observation_space,
            action_space,
            device=device,
            n_envs=n_envs,
            optimize_memory_usage=False,
            handle_timeout_termination=handle_timeout_termination,
        )
        n_slots = self.buffer_size * self.n_envs
        self.tree = SumTree(n_slots)
        self.violations = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        self._n_actions = int(action_space.n) if isinstance(action_space, spaces.Discrete) else 0
        self.action_sat: np.ndarray | None = None
        """SatAgg of every action in each stored transition's state, ``(buffer_size, n_envs, A)`` (1 = unknown);
        None until a transition brings ``info["ltn"]["action_sat"]`` (no shield: no logical loss)."""
        self._priorities = np.zeros(n_slots, dtype=np.float64)  # raw p_i, 0 = empty slot
        self._priority_sum = 0.0
        self._writes_since_resync = 0
        self.max_priority = 1.0
        self._rng = np.random.default_rng(seed)
        self._n_sample_calls = 0
        self._progress: float | None = None

    # ----------------------------------------------------------------- schedule

    @property
    def beta(self) -> float:
        """Current IS exponent ``β = β0 + (β_final − β0)·f``.

        ``f`` is the last :meth:`set_progress` fraction if it was ever called,
        else ``min(1, sample_calls / beta_steps)``.
        """
        if self._progress is not None:
            frac = self._progress
        else:
            frac = min(1.0, self._n_sample_calls / self.beta_steps)
        return self.beta0 + (self.beta_final - self.beta0) * frac

    def set_progress(self, fraction: float) -> None:
        """Anneal β by training progress instead of by sample calls.

        Args:
            fraction: elapsed fraction of training in ``[0, 1]`` (SB3's
                ``1 − _current_progress_remaining``).

        Raises:
            TypeError: ``fraction`` is not a number.
            ValueError: ``fraction`` outside ``[0, 1]``.
        """
        self._progress = check_fraction("fraction", fraction)

    # ----------------------------------------------------------------- priorities

    @property
    def n_transitions(self) -> int:
        """Stored transitions over all envs: ``size() · n_envs``."""
        return self.size() * self.n_envs  # type: ignore[attr-defined]

    @property
    def priorities(self) -> np.ndarray:
        """Copy of the raw priorities ``p_i`` of the stored transitions (flat order)."""
        return self._priorities[: self.n_transitions].copy()

    def mean_priority(self) -> float:
        """Mean raw priority over stored transitions (NaN when empty), O(1)."""
        n = self.n_transitions
        return self._priority_sum / n if n else math.nan

    def _check_indices(self, indices: np.ndarray | list[int]) -> np.ndarray:
        arr = np.asarray(indices)
        if arr.ndim != 1:
            raise ValueError(_NOT_1D.format("indices", arr.shape))
        if arr.size and (arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(_BAD_INDEX_TYPE.format(arr.dtype))
        n = self.n_transitions
        bad = (arr < 0) | (arr >= n)
        if bad.any():
            raise ValueError(_BAD_INDEX.format(arr[np.argmax(bad)], n))
        return arr.astype(np.int64, copy=False)

    def _write_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Store raw ``p`` at unique ``indices`` and ``p^α`` in the tree."""
        self.tree.update(indices, priorities**self.alpha)  # validates before any write
        old_sum = float(self._priorities[indices].sum())
        self._priorities[indices] = priorities
        self._priority_sum += float(priorities.sum()) - old_sum
        self.max_priority = max(self.max_priority, float(priorities.max()))
        self._writes_since_resync += indices.shape[0]
        if self._writes_since_resync >= self._priorities.shape[0]:
            # exact resum against drift of the running sum, amortized O(1)
            self._priority_sum = float(self._priorities.sum())
            self._writes_since_resync = 0

    def update_priorities(self, indices: np.ndarray | list[int], td_errors: np.ndarray | th.Tensor) -> None:
        """Set ``p_i = |δ_i| + λ_logic·v_i + λ_reward·|r_i| + ε`` for sampled indices.

        Duplicate indices are allowed (the last TD error wins).

        Args:
            indices: flat indices from ``samples.indices``.
            td_errors: TD errors ``δ``, shape ``(B,)`` or ``(B, 1)``, sign ignored.

        Raises:
            TypeError: non-integer indices.
            ValueError: an index that holds no transition, length mismatch, or
                a NaN / infinite TD error.
        """
        idx = self._check_indices(indices)
        td = _as_numpy_1d(td_errors, "TD errors")
        if td.shape[0] != idx.shape[0]:
            raise ValueError(_TD_MISMATCH.format(idx.shape[0], td.shape[0]))
        if idx.shape[0] == 0:
            return
        finite = np.isfinite(td)
        if not finite.all():
            pos = int(np.argmin(finite))
            raise ValueError(_NONFINITE_TD.format(float(td[pos]), pos))
        unique, first_in_reversed = np.unique(idx[::-1], return_index=True)
        abs_td = np.abs(td[::-1][first_in_reversed])
        rows, cols = np.divmod(unique, self.n_envs)
        priorities = (
            abs_td
            + self.lambda_logic * self.violations[rows, cols].astype(np.float64)
            + self.lambda_reward * np.abs(self.rewards[rows, cols].astype(np.float64))
            + self.eps
        )
        self._write_priorities(unique, priorities)

    def boost_priorities(self, indices: np.ndarray | list[int], amount: float) -> None:
        """Add ``amount`` to the raw priority of ``indices`` (the sleep cycle's UMAP anomalies).

        Raises:
            TypeError: ``amount`` is not a number, or non-integer indices.
            ValueError: ``amount`` negative or not finite, or a bad index.
        """
        amount = check_number("amount", amount, low=0)
        idx = np.unique(self._check_indices(indices))
        if idx.shape[0]:
            self._write_priorities(idx, self._priorities[idx] + amount)

    # ----------------------------------------------------------------- SB3 API

    def add(
        self,
        obs: Any,
        next_obs: Any,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one step of every env, with priority ``max(p_max, λ_logic·v + λ_reward·|r| + ε)``.

        Raises:
            ValueError: ``len(infos) != n_envs`` or a violation outside ``[0, 1]``.
            TypeError: ``info["ltn"]`` present but not a mapping.
        """
        if len(infos) != self.n_envs:
            raise ValueError(_BAD_INFOS.format(self.n_envs, len(infos)))
        violations = read_violations(infos)
        action_sat = read_action_sat(infos, self._n_actions) if self._n_actions else None
        pos = self.pos
        super().add(obs, next_obs, action, reward, done, infos)  # type: ignore[misc]
        self.violations[pos] = violations
        if action_sat is not None:
            if self.action_sat is None:
                self.action_sat = np.ones((self.buffer_size, self.n_envs, self._n_actions), dtype=np.float32)
            self.action_sat[pos] = action_sat
        known = (
            self.lambda_logic * violations.astype(np.float64)
            + self.lambda_reward * np.abs(self.rewards[pos].astype(np.float64))
            + self.eps
        )
        indices = pos * self.n_envs + np.arange(self.n_envs, dtype=np.int64)
        self._write_priorities(indices, np.maximum(known, self.max_priority))

    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None
    ) -> PrioritizedReplayBufferSamples | PrioritizedDictReplayBufferSamples:
        """Draw ``batch_size`` transitions with ``P(i) = p_i^α / Σ p^α`` (stratified).

        Uses the buffer's own generator; each call advances the β schedule by
        one step (unless :meth:`set_progress` drives it).

        Raises:
            TypeError: ``batch_size`` is not an int.
            ValueError: ``batch_size`` <= 0 or the buffer is empty.
        """
        batch_size = check_int("batch_size", batch_size, low=1)
        if self.n_transitions == 0:
            raise ValueError(_EMPTY_BUFFER)
        beta = self.beta
        indices, scaled = self.tree.sample(batch_size, self._rng)
        self._n_sample_calls += 1
        return self._prioritized_samples(indices, scaled, beta, env)

    def get_samples(
        self, indices: np.ndarray | list[int], env: VecNormalize | None = None
    ) -> PrioritizedReplayBufferSamples | PrioritizedDictReplayBufferSamples:
        """The transitions at flat ``indices`` with IS weights at the current β.

        Does not advance the β schedule (used by SWR replay of sequences).

        Raises:
            TypeError: non-integer indices.
            ValueError: an index that holds no transition.
        """
        indices = self._check_indices(indices)
        return self._prioritized_samples(indices, self.tree.get(indices), self.beta, env)

    def _prioritized_samples(
        self, indices: np.ndarray, scaled: np.ndarray, beta: float, env: VecNormalize | None
    ) -> PrioritizedReplayBufferSamples | PrioritizedDictReplayBufferSamples:
        """Gather rows and attach ``w_i = (p_i^α / min_j p_j^α)^−β`` (``scaled`` = p^α)."""
        weights = (scaled / self.tree.min) ** (-beta)
        rows, cols = np.divmod(indices, self.n_envs)
        base = self._gather(rows, cols, env)
        action_sat = None if self.action_sat is None else self.action_sat[rows, cols]
        return self._samples_class(
            *base[:6],
            weights=self.to_torch(weights.astype(np.float32).reshape(-1, 1)),  # type: ignore[attr-defined]
            indices=indices,
            action_sat=None if action_sat is None else self.to_torch(action_sat),  # type: ignore[attr-defined]
        )

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        """SB3 hook: uniform env index per row, drawn from the buffer's generator."""
        env_indices = self._rng.integers(0, self.n_envs, size=len(batch_inds))
        return self._gather(batch_inds, env_indices, env)

    def _gather(self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None) -> Any:
        raise NotImplementedError

    # ----------------------------------------------------------------- checkpoint state

    _SETTINGS: ClassVar[tuple[str, ...]] = ("alpha", "beta0", "beta_final", "beta_steps", "lambda_logic",
                                            "lambda_reward", "eps")

    def priority_state(self) -> dict[str, Any]:
        """What the buffer holds beyond SB3's arrays, as numpy arrays and JSON-able values (no pickle).

        The sum tree (:meth:`replay.SumTree.state_dict`), raw priorities, their running sum and maximum, the
        stored violations and per-action SatAgg, the sampler's generator state, the β schedule's counters and,
        to detect a mismatched file, the priority settings. SB3's arrays (observations, actions, ``pos``, …)
        are not included: ``agents.app.checkpoint`` stores those for any SB3 buffer.
        """
        return {
            "settings": {name: getattr(self, name) for name in self._SETTINGS},
            "tree": self.tree.state_dict(),
            "priorities": self._priorities.copy(),
            "priority_sum": self._priority_sum,
            "writes_since_resync": self._writes_since_resync,
            "max_priority": self.max_priority,
            "violations": self.violations.copy(),
            "action_sat": None if self.action_sat is None else self.action_sat.copy(),
            "rng": self._rng.bit_generator.state,
            "n_sample_calls": self._n_sample_calls,
            "progress": self._progress,
        }

    def load_priority_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`priority_state` output into this buffer (same settings, sizes and ``n_envs``), exactly.

        Call it after SB3's arrays and ``pos`` / ``full`` are restored. Every value is checked before
        anything is written: priorities finite and ``>= 0`` and zero past the stored transitions, the tree
        consistent (:meth:`replay.SumTree.load_state_dict`) and matching ``p^α``, violations and SatAgg in
        [0, 1], counters in range.

        Raises:
            ValueError: a value of the wrong kind, shape or range, or settings that differ from this buffer's.
        """
        settings = state.get("settings")
        for name in self._SETTINGS:
            saved = settings.get(name) if isinstance(settings, Mapping) else None
            if saved != getattr(self, name):
                raise ValueError(_STATE_SETTING.format(name, saved, getattr(self, name)))
        priorities = check_array_like("priorities", state.get("priorities"), self._priorities)
        if not (np.all(np.isfinite(priorities)) and np.all(priorities >= 0.0)):
            raise ValueError(_STATE_VALUE.format("priorities", "finite and >= 0"))
        if np.any(priorities[self.n_transitions :] != 0.0) or np.any(priorities[: self.n_transitions] <= 0.0):
            raise ValueError(_STATE_VALUE.format("priorities", "> 0 exactly at the stored transitions"))
        violations = check_array_like("violations", state.get("violations"), self.violations)
        if not np.all((violations >= 0.0) & (violations <= 1.0)):
            raise ValueError(_STATE_VALUE.format("violations", "in [0, 1]"))
        action_sat = state.get("action_sat")
        if action_sat is not None:
            shape = (self.buffer_size, self.n_envs, self._n_actions)
            if not self._n_actions or not isinstance(action_sat, np.ndarray) or action_sat.dtype != np.float32 \
                    or action_sat.shape != shape or not np.all((action_sat >= 0.0) & (action_sat <= 1.0)):
                raise ValueError(_STATE_VALUE.format("action_sat", f"None or float32 {shape} in [0, 1]"))
        if not isinstance(state.get("tree"), Mapping):
            raise ValueError(_STATE_VALUE.format("tree", "a SumTree state"))
        tree = SumTree(self.tree.capacity, rebuild_every=self.tree.rebuild_every)
        tree.load_state_dict(state["tree"])
        n = self.n_transitions
        leaves = tree.priorities
        if np.any(leaves[n:] != 0.0) or not np.allclose(leaves[:n], priorities[:n] ** self.alpha, rtol=1e-12, atol=0):
            raise ValueError(_STATE_VALUE.format("tree", "a tree whose leaves are the priorities raised to alpha"))
        counters = {"writes_since_resync": (0, priorities.shape[0]), "n_sample_calls": (0, None)}
        for name, (low, high) in counters.items():
            value = state.get(name)
            if type(value) is not int or value < low or (high is not None and value >= high):
                raise ValueError(_STATE_VALUE.format(name, f"an int in [{low}, {high or 'inf'})"))
        for name in ("priority_sum", "max_priority"):
            if not isinstance(state.get(name), float) or not math.isfinite(state[name]) or state[name] < 0.0:
                raise ValueError(_STATE_VALUE.format(name, "a finite float >= 0"))
        progress = state.get("progress")
        if progress is not None and not (isinstance(progress, float) and 0.0 <= progress <= 1.0):
            raise ValueError(_STATE_VALUE.format("progress", "None or a float in [0, 1]"))
        rng = generator_from_state("rng", state.get("rng"))
        # everything checked: write
        self.tree = tree
        np.copyto(self._priorities, priorities)
        np.copyto(self.violations, violations)
        self.action_sat = None if action_sat is None else action_sat.copy()
        self._priority_sum = state["priority_sum"]
        self._writes_since_resync = state["writes_since_resync"]
        self.max_priority = state["max_priority"]
        self._rng = rng
        self._n_sample_calls = state["n_sample_calls"]
        self._progress = progress

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a buffer saved before per-action SatAgg was kept: no rows of it (the logical loss skips such samples)
        self.__dict__.update(state)
        self.__dict__.setdefault("action_sat", None)
        self.__dict__.setdefault("_n_actions", 0)

    def reset(self) -> None:
        """Empty the buffer and forget every priority."""
        super().reset()  # type: ignore[misc]
        self.tree.clear()
        self._priorities[:] = 0.0
        self.violations[:] = 0.0
        if self.action_sat is not None:
            self.action_sat[:] = 1.0
        self._priority_sum = 0.0
        self._writes_since_resync = 0
        self.max_priority = 1.0


class PrioritizedReplayBuffer(PrioritizedReplayMixin, ReplayBuffer):
    """SB3 ``ReplayBuffer`` with proportional prioritized sampling.

    ``p_i = |δ_i| + λ_logic·v_i + λ_reward·|r_i| + ε``, ``P(i) = p_i^α / Σ p^α``,
    ``w_i = (N·P(i))^−β / max_j w_j`` (Schaul et al. 2016; JANUS design
    "replay — the sleeping mind"). ``sample`` returns
    :class:`replay.types.PrioritizedReplayBufferSamples`.

    Args:
        buffer_size: max number of transitions (split over ``n_envs`` as in SB3).
        observation_space: observation space.
        action_space: action space.
        device: torch device of the sampled tensors.
        n_envs: number of parallel envs.
        optimize_memory_usage: must be ``False``.
        handle_timeout_termination: treat ``TimeLimit.truncated`` as not done.
        alpha: prioritization exponent α (0 = uniform), default 0.6.
        beta0: initial IS exponent β, default 0.4.
        beta_final: final IS exponent, default 1.0.
        beta_steps: number of ``sample`` calls over which β anneals
            (ignored once ``set_progress`` is used), default 100 000.
        lambda_logic: weight of the LTN violation in the priority, default 2.0.
        lambda_reward: weight of ``|r|`` in the priority, default 0.5.
        eps: ``ε`` > 0 keeping every priority positive, default 1e-6.
        seed: seed of the buffer's own ``np.random.default_rng``.

    Raises:
        ValueError: ``optimize_memory_usage=True``; ``alpha`` < 0; β outside
            ``[0, 1]``; ``beta_steps`` <= 0; a negative λ; ``eps`` <= 0 (NaN and ±inf too).
        TypeError: a number of the wrong type (``beta_steps`` not an int, ``alpha`` not a real
            number, a bool anywhere); ``seed`` is not an int or None.

    Example:
        >>> from stable_baselines3 import DQN
        >>> model = DQN("MlpPolicy", "CartPole-v1", replay_buffer_class=PrioritizedReplayBuffer,
        ...             replay_buffer_kwargs={"seed": 0})  # doctest: +SKIP
    """

    _samples_class = PrioritizedReplayBufferSamples

    def _gather(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None = None
    ) -> ReplayBufferSamples:
        """SB3's ``ReplayBuffer._get_samples`` at explicit env indices."""
        data = (
            self._normalize_obs(self.observations[batch_inds, env_indices, :], env),
            self.actions[batch_inds, env_indices, :],
            self._normalize_obs(self.next_observations[batch_inds, env_indices, :], env),
            (self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])).reshape(-1, 1),
            self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env),
        )
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))  # type: ignore[arg-type]


class PrioritizedDictReplayBuffer(PrioritizedReplayMixin, DictReplayBuffer):
    """SB3 ``DictReplayBuffer`` with proportional prioritized sampling.

    Same priorities, arguments and errors as :class:`PrioritizedReplayBuffer`;
    ``sample`` returns :class:`replay.types.PrioritizedDictReplayBufferSamples`.
    """

    _samples_class = PrioritizedDictReplayBufferSamples

    def _gather(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None = None
    ) -> DictReplayBufferSamples:
        """SB3's ``DictReplayBuffer._get_samples`` at explicit env indices."""
        obs = self._normalize_obs({k: o[batch_inds, env_indices, :] for k, o in self.observations.items()}, env)
        next_obs = self._normalize_obs(
            {k: o[batch_inds, env_indices, :] for k, o in self.next_observations.items()}, env
        )
        assert isinstance(obs, dict) and isinstance(next_obs, dict)
        dones = self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])
        return DictReplayBufferSamples(
            observations={k: self.to_torch(v) for k, v in obs.items()},
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations={k: self.to_torch(v) for k, v in next_obs.items()},
            dones=self.to_torch(dones).reshape(-1, 1),
            rewards=self.to_torch(self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env)),
        )
