"""Sharp-wave-ripple (SWR) replay: the first phase of a JANUS sleep cycle.

During hippocampal sharp-wave ripples, recently experienced trajectories are
replayed in reverse (Foster & Wilson 2006) and forward (Diba & Buzsáki 2007),
time-compressed roughly 10–20× (e.g. Lee & Wilson 2002; Davidson, Kloosterman
& Wilson 2009); the range C ∈ [10, 20] is the JANUS spec's. Here a "ripple"
replays a *sequence* of consecutive stored transitions through the agent's
own value update.

Definitions used in this module:

* **Sequence**: ``seq_len`` consecutive transitions of one env, starting at a
  position drawn with ``P(i) = p_i^α / Σ p^α`` from the prioritized buffer. A
  sequence never crosses the buffer's write position (``buffer.pos``), where
  the newest transition is followed by the oldest one: a start too close to it
  is moved back so that the sequence ends at the newest transition. Sequences
  may span episode boundaries (each transition is still a one-step TD target).
* **Compression factor C** ∈ [10, 20]: collecting a sequence took ``seq_len``
  environment steps; replaying it takes ``ceil(seq_len / C)`` gradient updates,
  i.e. C transitions per update "tick" — the sequence is cut into
  ``ceil(seq_len / C)`` consecutive chunks and each chunk is one IS-weighted
  minibatch update. Forward replay visits the chunks in time order, reverse
  replay in reverse order (later transitions first, which propagates value
  backwards along the trajectory, cf. Mattar & Daw 2018).
* **IS weights**: each transition is weighted by its own
  ``w_i = (P(i) / min_j P(j))^−β`` at the buffer's current β (the schedule is
  not advanced). Only the sequence start is drawn by priority, so this is an
  approximation, documented as such.
* **TD errors**: the ``|δ|`` of a sequence is measured with the current
  networks right before its replay and again right after it (then written
  back as its priorities); ``td_before`` / ``td_after`` average these over all
  replayed transitions. Later sequences are measured after the updates of the
  earlier ones, so ``td_before`` is not a snapshot of the network at the start
  of the phase.
* **Work and the wall-clock cap**: the phase replays exactly ``n_sequences``
  sequences (``ceil(seq_len / C)`` updates per direction each), so what is
  learned depends on the seed and the counts only, never on machine load.
  ``max_wall_s`` is a safety cap, not a budget: before each sequence the
  phase stops if the elapsed time plus 1.5× the slowest sequence so far would
  pass it, emits a ``RuntimeWarning`` and reports ``capped=True`` (a capped
  phase has done less work than configured, so its run is no longer
  reproducible). The default, :data:`DEFAULT_MAX_WALL_S` (300 s), is over
  100× what the default phase takes (1.5–2.5 s for 16 sequences of 32 steps
  with the JANUS extractor on one torch thread of a busy 2-core machine), so
  it is only hit when something is badly wrong. ``max_wall_s=math.inf``
  disables the cap.

SWR replay is phase 1 of :func:`replay.sleep_cycle.run_sleep_cycle`, whose
:class:`~replay.sleep_cycle.SleepConfig` holds its settings; the losses and
TD errors come from :mod:`replay.losses`. This module imports neither the
sleep cycle nor its callback (the sleep path points one way:
``callbacks → sleep_cycle → swr → losses``).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import torch as th

from janus_env.checks import check_int, check_number, check_positive
from replay.losses import dqn_abs_td, prioritized_dqn_loss
from replay.prioritized import PrioritizedReplayMixin
from replay.types import (
    DEFAULT_MAX_WALL_S,
    PrioritizedDictReplayBufferSamples,
    PrioritizedReplayBufferSamples,
    SWRReport,
)

COMPRESSION_RANGE = (10.0, 20.0)

_BAD_RNG = "Expected `rng` to be a numpy.random.Generator, got {!r}"
_BAD_MODEL = (
    "swr_replay needs a DQN-family model with `q_net`, `q_net_target`, `gamma` and "
    "`policy.optimizer` (DQN, JanusDQN), got {}"
)
_BAD_BUFFER = "swr_replay needs a prioritized buffer (PrioritizedReplayMixin), got {}"
_SHORT_BUFFER = "Buffer holds {} steps per env, fewer than `seq_len`={}"
_CAPPED = (
    "SWR replay hit its wall-clock safety cap max_wall_s={} after {} of {} sequences ({:.2f} s); "
    "this phase learned less than configured, so the run is not reproducible. Raise `max_wall_s` "
    "or lower `n_sequences`"
)

_now = time.perf_counter  # the wall clock read for the safety cap and the report (a test seam)
_SAFETY = 1.5  # margin on the slowest measured sequence when checking the wall-clock cap

Samples = PrioritizedReplayBufferSamples | PrioritizedDictReplayBufferSamples


# --------------------------------------------------------------------------- sequences


def sample_sequences(
    buffer: PrioritizedReplayMixin, n_sequences: int, seq_len: int, rng: np.random.Generator
) -> np.ndarray:
    """Flat indices ``(n_sequences, seq_len)`` of prioritized transition sequences.

    Starts are drawn with ``P(i) = p_i^α / Σ p^α`` (stratified); a start whose
    sequence would cross the write position is moved back so that the sequence
    ends at the newest transition of its env.

    Raises:
        ValueError: fewer than ``seq_len`` steps stored per env.
    """
    size = buffer.size()  # type: ignore[attr-defined]
    if size < seq_len:
        raise ValueError(_SHORT_BUFFER.format(size, seq_len))
    starts, _ = buffer.tree.sample(n_sequences, rng)
    rows, cols = np.divmod(starts, buffer.n_envs)
    if buffer.full:
        room = (buffer.pos - rows) % buffer.buffer_size  # steps until the write position
        room[room == 0] = buffer.buffer_size
    else:
        room = buffer.pos - rows
    rows = (rows - np.maximum(seq_len - room, 0)) % buffer.buffer_size
    positions = (rows[:, None] + np.arange(seq_len)[None, :]) % buffer.buffer_size
    return positions * buffer.n_envs + cols[:, None]


def _take(samples: Samples, idx: th.Tensor, indices: np.ndarray) -> Samples:
    """Rows ``idx`` of every tensor field (and of the dict observations)."""

    def pick(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, dict):
            return {k: v[idx] for k, v in value.items()}
        return value[idx]

    return type(samples)(
        observations=pick(samples.observations),
        actions=pick(samples.actions),
        next_observations=pick(samples.next_observations),
        dones=pick(samples.dones),
        rewards=pick(samples.rewards),
        discounts=pick(samples.discounts),
        weights=pick(samples.weights),
        indices=indices,
        action_sat=pick(samples.action_sat),
    )


def check_swr_settings(
    *, n_sequences: object, seq_len: object, compression: object, max_wall_s: object
) -> tuple[int, int, float, float]:
    """Validate the SWR settings; return ``(n_sequences, seq_len, compression, max_wall_s)`` as int, int, float, float.

    The one check of these settings, used by :func:`swr_replay` and by
    ``replay.SleepConfig`` (which holds them for a sleep cycle).

    Raises:
        TypeError: a count that is not an int; ``compression`` or ``max_wall_s`` not a real number.
        ValueError: a count < 1; ``compression`` outside [10, 20]; a non-positive or NaN ``max_wall_s``
            (``math.inf``: no cap).
    """
    low, high = COMPRESSION_RANGE
    return (
        check_int("n_sequences", n_sequences, low=1),
        check_int("seq_len", seq_len, low=1),
        check_number("compression", compression, low=low, high=high),
        check_positive("max_wall_s", max_wall_s, finite=False),  # math.inf: no cap
    )


def is_dqn_family(model: Any) -> bool:
    """Whether SWR can replay through ``model``: ``q_net``, ``q_net_target``, ``gamma``, ``policy.optimizer``."""
    policy = getattr(model, "policy", None)
    return (
        isinstance(getattr(model, "q_net", None), th.nn.Module)
        and isinstance(getattr(model, "q_net_target", None), th.nn.Module)
        and hasattr(model, "gamma")
        and isinstance(getattr(policy, "optimizer", None), th.optim.Optimizer)
    )


def check_swr_model(model: Any, buffer: Any) -> None:
    """Raise unless SWR can replay ``buffer`` through ``model``.

    Raises:
        TypeError: a model that is not DQN-family (e.g. SAC, QRDQN) or a
            buffer that is not prioritized (``PrioritizedReplayMixin``).
    """
    if not is_dqn_family(model):
        raise TypeError(_BAD_MODEL.format(type(model).__name__))
    if not isinstance(buffer, PrioritizedReplayMixin):
        raise TypeError(_BAD_BUFFER.format(type(buffer).__name__))


# --------------------------------------------------------------------------- replay


def swr_replay(
    model: Any,
    buffer: PrioritizedReplayMixin,
    *,
    n_sequences: int,
    seq_len: int,
    compression: float = 15.0,
    rng: np.random.Generator,
    reverse: bool = True,
    max_wall_s: float = DEFAULT_MAX_WALL_S,
) -> SWRReport:
    """Replay prioritized transition sequences forward (and reversed), time-compressed.

    Each sequence gets ``ceil(seq_len / C)`` IS-weighted gradient updates per
    direction through the model's own optimizer (``model.policy.optimizer``,
    gradient norm clipped at ``model.max_grad_norm``), with the loss of
    :func:`replay.losses.prioritized_dqn_loss`; the priorities of a chunk
    are refreshed with its ``|δ|`` after each update, and those of a whole
    sequence with the ``|δ|`` measured right after its replay. Exactly ``n_sequences`` sequences
    are replayed unless the wall-clock safety cap is hit. See the module
    docstring for the exact definitions of sequence, compression, TD errors
    and the cap.

    Args:
        model: a DQN-family SB3 model (DQN, JanusDQN): ``q_net``,
            ``q_net_target``, ``gamma``, ``policy.optimizer``.
        buffer: the model's prioritized replay buffer.
        n_sequences: sequences to replay (> 0).
        seq_len: transitions per sequence (> 0).
        compression: compression factor C in [10, 20] (default 15).
        rng: generator for the sequence starts.
        reverse: also replay every sequence in reverse order.
        max_wall_s: wall-clock safety cap in seconds (> 0; ``math.inf``: no
            cap); default :data:`DEFAULT_MAX_WALL_S`. Hitting it warns and sets
            ``capped`` in the report.

    Returns:
        An :class:`~replay.types.SWRReport`.

    Raises:
        ValueError: ``compression`` outside [10, 20]; a non-positive count; a
            non-positive or NaN ``max_wall_s``; fewer than ``seq_len``
            steps stored.
        TypeError: a count that is not an int or a setting that is not a real number; a model that
            is not DQN-family (e.g. SAC, QRDQN), a buffer that is not prioritized, or ``rng`` not a
            ``numpy.random.Generator``.
    """
    t_start = _now()
    n_sequences, seq_len, compression, max_wall_s = check_swr_settings(
        n_sequences=n_sequences, seq_len=seq_len, compression=compression, max_wall_s=max_wall_s
    )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(_BAD_RNG.format(rng))
    check_swr_model(model, buffer)
    sequences = sample_sequences(buffer, n_sequences, seq_len, rng)
    n_chunks = math.ceil(seq_len / compression)
    chunks = [th.as_tensor(c, dtype=th.long) for c in np.array_split(np.arange(seq_len), n_chunks)]
    directions = (False, True) if reverse else (False,)
    vec_normalize = getattr(model, "_vec_normalize_env", None)
    optimizer = model.policy.optimizer
    max_grad_norm = getattr(model, "max_grad_norm", None)
    lambda_logic = float(getattr(model, "lambda_logic", 0.0))

    slowest_s = 0.0  # slowest whole sequence so far (evaluations + updates), for the cap only
    n_updates = replays = n_done = 0
    td_before_sum = td_after_sum = 0.0
    capped = False
    was_training = bool(model.policy.training)
    try:
        for flat in sequences:
            t_seq = _now()
            if t_seq - t_start + _SAFETY * slowest_s > max_wall_s:
                capped = True
                break
            samples = buffer.get_samples(flat, env=vec_normalize)
            td_before_sum += float(dqn_abs_td(model, samples).sum())
            model.policy.set_training_mode(True)
            for backwards in directions:
                for chunk in reversed(chunks) if backwards else chunks:
                    rows = chunk.flip(0) if backwards else chunk
                    batch = _take(samples, rows, flat[rows.numpy()])
                    loss, abs_td, _ = prioritized_dqn_loss(model, batch, lambda_logic)
                    optimizer.zero_grad()
                    loss.backward()
                    if max_grad_norm is not None:
                        th.nn.utils.clip_grad_norm_(model.policy.parameters(), max_grad_norm)
                    optimizer.step()
                    buffer.update_priorities(batch.indices, abs_td.cpu().numpy())
                    n_updates += 1
                replays += 1
            model.policy.set_training_mode(was_training)
            abs_td_after = dqn_abs_td(model, samples)
            td_after_sum += float(abs_td_after.sum())
            buffer.update_priorities(flat, abs_td_after.cpu().numpy())
            n_done += 1
            slowest_s = max(slowest_s, _now() - t_seq)
    finally:
        model.policy.set_training_mode(was_training)
    elapsed_s = _now() - t_start
    if capped:
        warnings.warn(_CAPPED.format(max_wall_s, n_done, n_sequences, elapsed_s), RuntimeWarning, stacklevel=2)
    n_measured = n_done * seq_len
    return SWRReport(
        replays=replays,
        mean_priority=buffer.mean_priority(),
        td_before=td_before_sum / n_measured if n_measured else math.nan,
        td_after=td_after_sum / n_measured if n_measured else math.nan,
        elapsed_s=elapsed_s,
        compression=compression,
        n_updates=n_updates,
        n_sequences=n_done,
        capped=capped,
    )
