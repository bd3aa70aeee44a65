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

:class:`SleepPhaseCallback` triggers a sleep phase at "market close" (end of
an episode) and/or every N environment steps and logs ``sleep/*`` metrics.
"""

from __future__ import annotations

import importlib
import math
import numbers
import time
import warnings
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from torch.nn import functional as F

from replay.prioritized import PrioritizedReplayMixin
from replay.types import (
    DEFAULT_MAX_WALL_S,
    PrioritizedDictReplayBufferSamples,
    PrioritizedReplayBufferSamples,
    SWRReport,
)

COMPRESSION_RANGE = (10.0, 20.0)

_BAD_COMPRESSION = "Expected `compression` in [10, 20], got {!r}"
_BAD_COUNT = "Expected `{}` to be a positive int, got {!r}"
_BAD_CAP = "Expected `max_wall_s` > 0 (math.inf: no cap), got {!r}"
_BAD_RNG = "Expected `rng` to be a numpy.random.Generator, got {!r}"
_BAD_MODEL = (
    "swr_replay needs a DQN-family model with `q_net`, `q_net_target`, `gamma` and "
    "`policy.optimizer` (DQN, JanusDQN), got {}"
)
_BAD_BUFFER = "swr_replay needs a prioritized buffer (PrioritizedReplayMixin), got {}"
_SHORT_BUFFER = "Buffer holds {} steps per env, fewer than `seq_len`={}"
_BAD_EVERY = "Expected `every_n_steps` to be a positive int or None, got {!r}"
_NO_TRIGGER = "SleepPhaseCallback never triggers: set `on_episode_end=True` or `every_n_steps`"
_NO_SLEEP_CYCLE = "full_cycle=True but replay.sleep_cycle is not available; running SWR replay only"
_CAPPED = (
    "SWR replay hit its wall-clock safety cap max_wall_s={} after {} of {} sequences ({:.2f} s); "
    "this phase learned less than configured, so the run is not reproducible. Raise `max_wall_s` "
    "or lower `n_sequences`"
)
_CONFIG_WITHOUT_FULL_CYCLE = "`sleep_config` configures the full sleep cycle: pass full_cycle=True with it"
_FULL_CYCLE_ARG = (
    "`{0}` configures SWR-only sleep (full_cycle=False); with full_cycle=True it would be ignored: "
    "set SleepConfig.{0} in `sleep_config` instead (YAML: sleep.cycle.{0})"
)

_now = time.perf_counter  # the wall clock read for the safety cap and the report (a test seam)
_SAFETY = 1.5  # margin on the slowest measured sequence when checking the wall-clock cap

Samples = PrioritizedReplayBufferSamples | PrioritizedDictReplayBufferSamples


# --------------------------------------------------------------------------- TD errors


def dqn_q_and_target(model: Any, samples: Any) -> tuple[th.Tensor, th.Tensor]:
    """Current ``Q(s, a)`` (with grad) and the 1-step target, both ``(B, 1)``.

    ``y = r + (1 − d)·γ·max_a' Q_target(s', a')`` (Mnih et al. 2015), with
    ``samples.discounts`` replacing ``γ`` when present, exactly as SB3's DQN.
    """
    discounts = samples.discounts if samples.discounts is not None else model.gamma
    with th.no_grad():
        next_q = model.q_net_target(samples.next_observations).max(dim=1)[0].reshape(-1, 1)
        target = samples.rewards + (1 - samples.dones) * discounts * next_q
    current = th.gather(model.q_net(samples.observations), dim=1, index=samples.actions.long())
    return current, target


def prioritized_dqn_loss(
    model: Any, samples: Any, lambda_logic: float = 0.0
) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
    """IS-weighted Huber TD loss, plus the logic penalty when the policy provides one.

    ``L = mean_i w_i·Huber(δ_i) + λ_logic·mean_i w_i·(1 − SatAgg_i)``, with
    ``δ_i = y_i − Q(s_i, a_i)`` (Schaul et al. 2016, Alg. 1 line 11; JANUS
    logical loss ``1 − SatAgg``). The logic term is added only when the policy
    has a differentiable ``logic_satisfaction(observations, actions) -> (B,)``
    tensor in [0, 1]; the LTN violation stored in the buffer is a constant of
    the network parameters, so it enters through the priority, not the loss.

    Args:
        model: a DQN-family SB3 model (``q_net``, ``q_net_target``, ``gamma``).
        samples: a prioritized sample with ``weights``.
        lambda_logic: weight of the logic penalty.

    Returns:
        ``(loss, abs_td, logic)``: the scalar loss, ``|δ|`` of shape ``(B,)``
        (detached) and the weighted logic penalty (``None`` when absent).
    """
    current, target = dqn_q_and_target(model, samples)
    weights = samples.weights.reshape(-1, 1)
    loss = (weights * F.smooth_l1_loss(current, target, reduction="none")).mean()
    logic = None
    satisfaction_fn = getattr(model.policy, "logic_satisfaction", None)
    if lambda_logic > 0.0 and callable(satisfaction_fn):
        satisfaction = satisfaction_fn(samples.observations, samples.actions).reshape(-1, 1)
        logic = (weights * (1.0 - satisfaction)).mean()
        loss = loss + lambda_logic * logic
    abs_td = (target - current).detach().abs().reshape(-1)
    return loss, abs_td, logic


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
    )


def _abs_td(model: Any, samples: Samples) -> th.Tensor:
    """``|δ|`` of every row, no gradient."""
    with th.no_grad():
        current, target = dqn_q_and_target(model, samples)
    return (target - current).abs().reshape(-1)


def _check_compression(compression: object) -> float:
    if isinstance(compression, bool) or not isinstance(compression, numbers.Real):
        raise ValueError(_BAD_COMPRESSION.format(compression))
    low, high = COMPRESSION_RANGE
    if not low <= float(compression) <= high:  # also rejects NaN
        raise ValueError(_BAD_COMPRESSION.format(compression))
    return float(compression)


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(_BAD_COUNT.format(name, value))
    return int(value)


def _check_model(model: Any) -> None:
    policy = getattr(model, "policy", None)
    if (
        not isinstance(getattr(model, "q_net", None), th.nn.Module)
        or not isinstance(getattr(model, "q_net_target", None), th.nn.Module)
        or not hasattr(model, "gamma")
        or not isinstance(getattr(policy, "optimizer", None), th.optim.Optimizer)
    ):
        raise TypeError(_BAD_MODEL.format(type(model).__name__))


# --------------------------------------------------------------------------- replay


def _check_cap(max_wall_s: object) -> float:
    if isinstance(max_wall_s, bool) or not isinstance(max_wall_s, numbers.Real) or not max_wall_s > 0.0:
        raise ValueError(_BAD_CAP.format(max_wall_s))  # also rejects NaN
    return float(max_wall_s)


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
    :func:`prioritized_dqn_loss`; the priorities of a chunk are refreshed with
    its ``|δ|`` after each update, and those of a whole sequence with the
    ``|δ|`` measured right after its replay. Exactly ``n_sequences`` sequences
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
        TypeError: a model that is not DQN-family (e.g. SAC, QRDQN), a buffer
            that is not prioritized, or ``rng`` not a ``numpy.random.Generator``.
    """
    t_start = _now()
    compression = _check_compression(compression)
    n_sequences = _check_count(n_sequences, "n_sequences")
    seq_len = _check_count(seq_len, "seq_len")
    max_wall_s = _check_cap(max_wall_s)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(_BAD_RNG.format(rng))
    _check_model(model)
    if not isinstance(buffer, PrioritizedReplayMixin):
        raise TypeError(_BAD_BUFFER.format(type(buffer).__name__))
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
            td_before_sum += float(_abs_td(model, samples).sum())
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
            abs_td_after = _abs_td(model, samples)
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


# --------------------------------------------------------------------------- callback


class SleepPhaseCallback(BaseCallback):
    """Run a sleep phase at "market close" and log ``sleep/*`` metrics.

    Triggers when any env finishes an episode (``on_episode_end``) and/or every
    ``every_n_steps`` environment steps (counted in ``num_timesteps``). A phase
    is skipped while ``num_timesteps < model.learning_starts`` or the buffer
    holds fewer than ``seq_len`` steps per env.

    Two modes, each configured in one place:

    * ``full_cycle=False`` (SWR only): :func:`swr_replay` with this callback's
      ``n_sequences``, ``seq_len``, ``compression``, ``reverse``,
      ``max_wall_s`` and ``seed``; logs ``sleep/replays``,
      ``sleep/mean_priority``, ``sleep/td_error_before``,
      ``sleep/td_error_after``, ``sleep/elapsed_s``, ``sleep/swr_capped``.
    * ``full_cycle=True``: ``run_sleep_cycle(model, buffer, state, config)``
      (all five phases) with every setting, SWR ones included, taken from
      ``sleep_config`` (a ``replay.SleepConfig``; default ``SleepConfig()``);
      logs every returned metric as ``sleep/<name>``. Passing any of the
      SWR-only arguments above with ``full_cycle=True`` raises ``ValueError``
      rather than ignoring it.

    What a phase learns depends only on the seed, the counts and the data:
    ``max_wall_s`` is a logged safety cap (see the module docstring).

    Args:
        n_sequences: SWR only: sequences per phase (default 16).
        seq_len: SWR only: transitions per sequence (default 32).
        compression: SWR only: compression factor C in [10, 20] (default 15).
        max_wall_s: SWR only: wall-clock safety cap per phase in seconds
            (default :data:`DEFAULT_MAX_WALL_S`; ``math.inf``: no cap).
        every_n_steps: also sleep every this many env steps (None: never).
        on_episode_end: sleep when an episode ends.
        reverse: SWR only: replay sequences in reverse too (default True).
        full_cycle: run the full sleep cycle when ``replay.sleep_cycle`` exists.
        sleep_config: ``SleepConfig`` for the full cycle (default ``SleepConfig()``);
            only with ``full_cycle=True``.
        seed: SWR only: seed of the callback's generator (default None: the
            model's ``seed`` at ``learn()`` start; fresh entropy only when that
            is None too).
        verbose: SB3 verbosity.

    Raises:
        ValueError: bad ``compression``, counts, ``max_wall_s`` or
            ``every_n_steps``; no trigger enabled; an SWR-only argument with
            ``full_cycle=True`` or ``sleep_config`` without it.
        TypeError: at ``learn()`` start without ``full_cycle``, when the model
            is not DQN-family or its buffer is not prioritized.

    Example:
        >>> model.learn(10_000, callback=SleepPhaseCallback(every_n_steps=1000))  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        n_sequences: int | None = None,
        seq_len: int | None = None,
        compression: float | None = None,
        max_wall_s: float | None = None,
        every_n_steps: int | None = None,
        on_episode_end: bool = True,
        reverse: bool | None = None,
        full_cycle: bool = False,
        sleep_config: Any = None,
        seed: int | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        swr_args = {"n_sequences": n_sequences, "seq_len": seq_len, "compression": compression,
                    "max_wall_s": max_wall_s, "reverse": reverse, "seed": seed}
        if full_cycle:
            for name, value in swr_args.items():
                if value is not None:
                    raise ValueError(_FULL_CYCLE_ARG.format(name))
        elif sleep_config is not None:
            raise ValueError(_CONFIG_WITHOUT_FULL_CYCLE)
        self.compression = _check_compression(15.0 if compression is None else compression)
        self.n_sequences = _check_count(16 if n_sequences is None else n_sequences, "n_sequences")
        self.seq_len = _check_count(32 if seq_len is None else seq_len, "seq_len")
        self.max_wall_s = _check_cap(DEFAULT_MAX_WALL_S if max_wall_s is None else max_wall_s)
        if every_n_steps is not None and (
            isinstance(every_n_steps, bool) or not isinstance(every_n_steps, numbers.Integral) or every_n_steps <= 0
        ):
            raise ValueError(_BAD_EVERY.format(every_n_steps))
        if every_n_steps is None and not on_episode_end:
            raise ValueError(_NO_TRIGGER)
        self.every_n_steps = every_n_steps
        self.on_episode_end = on_episode_end
        self.reverse = True if reverse is None else bool(reverse)
        self.full_cycle = full_cycle
        self.sleep_config = sleep_config
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.sleep_state: Any = None
        self.n_sleeps = 0
        self.n_capped = 0
        self.last_metrics: dict[str, float] = {}
        self._last_step_trigger = 0

    def _init_callback(self) -> None:
        """Fail at ``learn()`` start, not at the first market close, when SWR cannot run."""
        if not self.full_cycle:
            if self.seed is None and self.n_sleeps == 0:
                self.rng = np.random.default_rng(getattr(self.model, "seed", None))
            _check_model(self.model)
            buffer = getattr(self.model, "replay_buffer", None)
            if not isinstance(buffer, PrioritizedReplayMixin):
                raise TypeError(_BAD_BUFFER.format(type(buffer).__name__))

    def _triggered(self) -> bool:
        fired = False
        if self.on_episode_end:
            dones = self.locals.get("dones")
            fired = dones is not None and bool(np.any(dones))
        if self.every_n_steps is not None and self.num_timesteps - self._last_step_trigger >= self.every_n_steps:
            self._last_step_trigger = self.num_timesteps
            fired = True
        return fired

    def _on_step(self) -> bool:
        if self._triggered():
            self.sleep()
        return True

    def _load_sleep_cycle(self) -> Any:
        try:
            return importlib.import_module("replay.sleep_cycle")
        except ModuleNotFoundError as err:
            if err.name not in ("replay.sleep_cycle", "replay"):
                raise
        except ImportError:  # sys.modules entry set to None
            pass
        warnings.warn(_NO_SLEEP_CYCLE, RuntimeWarning, stacklevel=2)
        self.full_cycle = False
        return None

    def _cycle_config(self, module: Any) -> Any:
        if self.sleep_config is None:
            self.sleep_config = module.SleepConfig()
        return self.sleep_config

    def sleep(self) -> dict[str, float] | None:
        """Run one sleep phase now; return its metrics (None when skipped)."""
        model = self.model
        buffer = model.replay_buffer
        module = self._load_sleep_cycle() if self.full_cycle else None
        config = self._cycle_config(module) if module is not None else None
        seq_len = getattr(config, "seq_len", self.seq_len) if config is not None else self.seq_len
        if buffer is None or buffer.size() < seq_len or self.num_timesteps < model.learning_starts:
            return None
        if module is not None:
            self.sleep_state, raw = module.run_sleep_cycle(model, buffer, self.sleep_state, config)
            metrics = {key: float(value) for key, value in raw.items()}
            self.n_capped += int(metrics.get("sleep/swr_capped", 0.0) > 0)
            monitor = getattr(self.sleep_state, "monitor", None)
            if monitor is not None and monitor.fitted:  # the UMAP scatter of this cycle as a TensorBoard image
                monitor.log_to_tensorboard(self.logger, self.num_timesteps)
        else:
            report = swr_replay(
                model,
                buffer,
                n_sequences=self.n_sequences,
                seq_len=self.seq_len,
                compression=self.compression,
                rng=self.rng,
                reverse=self.reverse,
                max_wall_s=self.max_wall_s,
            )
            self.n_capped += int(report.capped)
            metrics = {
                "replays": float(report.replays),
                "mean_priority": report.mean_priority,
                "td_error_before": report.td_before,
                "td_error_after": report.td_after,
                "elapsed_s": report.elapsed_s,
                "swr_capped": float(report.capped),
            }
        for key, value in metrics.items():
            self.logger.record(key if "/" in key else f"sleep/{key}", value)
        # a sleep phase is an event at this step: write it now rather than at the algorithm's next log
        # interval, which may never come before training ends (off-policy algorithms log every k episodes)
        self.logger.dump(self.num_timesteps)
        self.n_sleeps += 1
        self.last_metrics = metrics
        return metrics
