"""Rollout buffers that keep the shield's SatAgg of every action, for the logical loss of ``janus-ppo``.

sb3-contrib's ``MaskableRolloutBuffer`` / ``MaskableDictRolloutBuffer`` with one more array,
``action_sat`` ``(n_steps, n_envs, A)``: row ``(t, e)`` is ``info["ltn"]["action_sat"]`` of env ``e``'s
step ``t``, the SatAgg the shield gave every discrete action in the state ``s_t`` in which ``a_t`` was
decided (:class:`wrappers.shield.LTNShield` scores the state *before* the action, with the same scores as
the masks ``a_t`` was drawn under). :class:`agents.basal_ganglia.ppo.JanusPPO` trains on it:
``L_logic = mean_i Σ_a π_θ(a|s_i)·(1 − SatAgg(s_i, a))`` (:func:`replay.losses.expected_violation`).

**Alignment.** Row ``t`` holds ``(s_t, a_t, r_t, …)`` with ``s_t`` the observation before step ``t``;
the info that ``env.step(a_t)`` returns judges that same ``s_t``, also on the last step of an episode
(the VecEnv's autoreset returns the next episode's first observation, but the info is the finished
step's; that first observation is the next row's state, judged at the next step).

**Protocol.** The algorithm hands each step's infos to :meth:`LogicRolloutMixin.observe_infos` before
``add`` stores that step (``JanusPPO`` does it where SB3 reads the infos, ``_update_info_buffer``);
``add`` writes the staged rows at ``pos``. A step whose info has no ``action_sat`` (a shield's fail-safe
halt, a breaker that stopped the step before the shield) keeps rows of 1: nothing known against any
action, no violation — as in the prioritized buffer (:func:`replay.prioritized.read_action_sat`). A
rollout in which no step had any leaves ``action_sat`` None: no shield (or a non-Discrete action space),
no logical loss. ``get`` flattens ``action_sat`` with the other arrays and draws its rows with the same
shuffled indices, so each sample's SatAgg belongs to its observation.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer, MaskableRolloutBuffer
from stable_baselines3.common.vec_env import VecNormalize

from replay.deferred_values import DeferredValuesMixin
from replay.prioritized import read_action_sat
from replay.types import LogicDictRolloutBufferSamples, LogicRolloutBufferSamples

_BAD_INFOS = "Expected {} info dicts (one per env), got {}"

__all__ = ["LogicDictRolloutBuffer", "LogicRolloutBuffer", "LogicRolloutMixin"]


class LogicRolloutMixin:
    """Keeps ``info["ltn"]["action_sat"]`` per step and env next to a maskable rollout buffer (module docstring).

    Put it first: ``class LogicRolloutBuffer(LogicRolloutMixin, MaskableRolloutBuffer)``.

    Attributes:
        action_sat: ``(n_steps, n_envs, A)`` float32 SatAgg rows (1 where a step recorded none), flattened to
            ``(n_steps·n_envs, A)`` by ``get`` like SB3's arrays; None until a step brings one.
    """

    _samples_class: ClassVar[type]
    action_space: spaces.Space
    buffer_size: int
    n_envs: int
    pos: int
    generator_ready: bool
    swap_and_flatten: Any
    to_torch: Any

    def reset(self) -> None:
        """Empty the buffer (SB3's reset) and forget every SatAgg row."""
        super().reset()  # type: ignore[misc]
        self.n_actions = int(self.action_space.n) if isinstance(self.action_space, spaces.Discrete) else 0
        self.action_sat: np.ndarray | None = None
        self._staged: np.ndarray | None = None

    def observe_infos(self, infos: Sequence[Mapping[str, Any]]) -> None:
        """Stage the SatAgg rows of the step whose transition the next :meth:`add` stores.

        Args:
            infos: one info dict per env, from the ``env.step`` that executed the step's actions.

        Raises:
            ValueError: ``len(infos) != n_envs``, or an ``action_sat`` that is not ``A`` values in [0, 1].
        """
        if len(infos) != self.n_envs:
            raise ValueError(_BAD_INFOS.format(self.n_envs, len(infos)))
        self._staged = read_action_sat(list(infos), self.n_actions) if self.n_actions else None

    def add(self, *args: Any, **kwargs: Any) -> None:
        """SB3's ``add``, plus the staged SatAgg rows at the same position (rows of 1 when none was staged)."""
        staged, self._staged = self._staged, None
        if staged is not None:
            if self.action_sat is None:
                self.action_sat = np.ones((self.buffer_size, self.n_envs, self.n_actions), dtype=np.float32)
            self.action_sat[self.pos] = staged
        super().add(*args, **kwargs)  # type: ignore[misc]

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        """SB3's shuffled minibatches, each with the ``action_sat`` rows of its indices."""
        if not self.generator_ready and self.action_sat is not None:
            self.action_sat = self.swap_and_flatten(self.action_sat)
        yield from super().get(batch_size)  # type: ignore[misc]

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        base = super()._get_samples(batch_inds, env)  # type: ignore[misc]
        action_sat = None if self.action_sat is None else self.to_torch(self.action_sat[batch_inds])
        return self._samples_class(*base, action_sat=action_sat)


class LogicRolloutBuffer(LogicRolloutMixin, DeferredValuesMixin, MaskableRolloutBuffer):
    """``MaskableRolloutBuffer`` (array observations) that keeps the shield's SatAgg of every action (and can take
    its values from one critic pass at the rollout's end, :class:`~replay.deferred_values.DeferredValuesMixin`).

    Same arguments as sb3-contrib's ``MaskableRolloutBuffer``; samples are
    :class:`~replay.types.LogicRolloutBufferSamples`.
    """

    _samples_class = LogicRolloutBufferSamples


class LogicDictRolloutBuffer(LogicRolloutMixin, DeferredValuesMixin, MaskableDictRolloutBuffer):
    """``MaskableDictRolloutBuffer`` (``Dict`` observations) that keeps the shield's SatAgg of every action (and its
    values from one critic pass, as :class:`LogicRolloutBuffer`).

    Same arguments as sb3-contrib's ``MaskableDictRolloutBuffer``; samples are
    :class:`~replay.types.LogicDictRolloutBufferSamples`.
    """

    _samples_class = LogicDictRolloutBufferSamples
