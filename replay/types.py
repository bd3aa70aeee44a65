"""Sample and report NamedTuples of the replay package.

The prioritized sample tuples carry every field of SB3's
``ReplayBufferSamples`` / ``DictReplayBufferSamples`` under the same names and
in the same order, so SB3 algorithms that read ``replay_data.observations``,
``replay_data.discounts`` … work unchanged; ``weights`` and ``indices`` are
appended.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.type_aliases import TensorDict

DEFAULT_MAX_WALL_S = 300.0
"""Default wall-clock safety cap of one SWR replay phase, in seconds *(ours)*.

A cap, not a budget: the phase replays a fixed number of sequences and stops
early only if this much time would pass (then it warns and reports
``capped``). 300 s is over 100x what the default phase (16 sequences of 32
steps, JANUS extractor, one torch thread) takes on a busy 2-core machine
(1.5-2.5 s), so load alone does not reach it.
"""


class PrioritizedReplayBufferSamples(NamedTuple):
    """A prioritized minibatch (array observations).

    Attributes:
        observations: ``(B, *obs_shape)``.
        actions: ``(B, action_dim)``.
        next_observations: ``(B, *obs_shape)``.
        dones: ``(B, 1)``, 0 for time-limit truncations when the buffer
            handles timeouts.
        rewards: ``(B, 1)``.
        discounts: always ``None`` (no n-step returns); kept for SB3.
        weights: ``(B, 1)`` float32 importance-sampling weights in ``(0, 1]``,
            ``w_i = (N·P(i))^−β / max_j (N·P(j))^−β`` (Schaul et al. 2016).
        indices: ``(B,)`` int64 flat buffer indices
            (``position · n_envs + env``) to pass back to ``update_priorities``.
        action_sat: ``(B, A)`` SatAgg of every action in each row's state (Discrete actions; None otherwise).
    """

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None
    weights: th.Tensor
    indices: np.ndarray
    action_sat: th.Tensor | None = None


class PrioritizedDictReplayBufferSamples(NamedTuple):
    """A prioritized minibatch (``Dict`` observations); fields as above."""

    observations: TensorDict
    actions: th.Tensor
    next_observations: TensorDict
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None
    weights: th.Tensor
    indices: np.ndarray
    action_sat: th.Tensor | None = None


class LogicRolloutBufferSamples(NamedTuple):
    """A MaskablePPO minibatch with the SatAgg of every action (array observations).

    The fields of sb3-contrib's ``MaskableRolloutBufferSamples``, same names and order, then ``action_sat``.

    Attributes:
        observations: ``(B, *obs_shape)``.
        actions: ``(B, action_dim)``.
        old_values: ``(B,)`` values at collection time.
        old_log_prob: ``(B,)`` log-probabilities of the executed actions at collection time.
        advantages: ``(B,)`` GAE advantages.
        returns: ``(B,)`` λ-returns.
        action_masks: ``(B, A)`` the masks the actions were drawn under.
        action_sat: ``(B, A)`` SatAgg of every action in each row's state, 1 where the step recorded none
            (None when no step of the rollout recorded any: no shield, or a non-Discrete action space).
    """

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    action_masks: th.Tensor
    action_sat: th.Tensor | None = None


class LogicDictRolloutBufferSamples(NamedTuple):
    """A MaskablePPO minibatch with the SatAgg of every action (``Dict`` observations); fields as above."""

    observations: TensorDict
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    action_masks: th.Tensor
    action_sat: th.Tensor | None = None


class SWRReport(NamedTuple):
    """Outcome of one sharp-wave-ripple replay phase.

    Attributes:
        replays: completed sequence replays (a forward and a reverse pass of
            the same sequence count as two).
        mean_priority: mean raw priority over the whole buffer after the phase.
        td_before: mean ``|δ|`` of the replayed transitions, each sequence
            measured right before its replay (NaN when nothing was replayed).
        td_after: the same, each sequence measured right after its replay.
        elapsed_s: wall time of the phase in seconds.
        compression: the compression factor C used.
        n_updates: gradient updates performed.
        n_sequences: sequences replayed (the requested number unless capped).
        capped: whether the wall-clock safety cap stopped the phase early.
    """

    replays: int
    mean_priority: float
    td_before: float
    td_after: float
    elapsed_s: float
    compression: float
    n_updates: int = 0
    n_sequences: int = 0
    capped: bool = False
