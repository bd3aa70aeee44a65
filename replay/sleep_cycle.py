"""The JANUS sleep cycle: five phases run at "market close".

``run_sleep_cycle(model, buffer, state, config)`` (Project JANUS, part 4,
"sleep cycle"); every setting of a cycle is a :class:`SleepConfig` field and
is declared nowhere else (``replay.SleepPhaseCallback`` only decides *when* to
sleep). ``SleepConfig(swr_only=True)`` runs phase 1 and the metrics only.

1. **SWR replay** — :func:`replay.swr.swr_replay`: prioritized sequences
   replayed forward and reversed, compressed by C ∈ [10, 20], IS-weighted
   updates, priorities refreshed, TD error before/after; exactly
   ``n_sequences`` sequences (``max_wall_s`` is only a logged safety cap, see
   :mod:`replay.swr`). Runs only for a DQN-family model
   (:func:`replay.swr.is_dqn_family`) with a prioritized buffer holding at
   least ``seq_len`` steps; otherwise skipped and the reason kept in
   ``state.swr_skip_reason``.
2. **Schema consolidation** — the transitions written since the previous cycle
   (at most ``n_recent``) are flattened (``Dict`` observations: keys in sorted
   order). In the first ``encoder_cycles`` cycles the hippocampal encoder is
   trained on them first (:meth:`replay.hippocampus.PatternSeparationEncoder.fit`:
   tied-weight k-sparse autoencoder + orthogonality penalty, ``encoder_steps``
   Adam steps, minibatches drawn from a generator seeded by ``(seed, cycle)``),
   then frozen: the schemas' centroids live in its code space, which must stay
   put. The codes are stored in the episodic buffer; the features
   (``features="code"``: the codes scaled to unit length, so the schemas' Gaussian
   geometry and the vector store's cosine search agree; ``"raw"``: the
   flattened observations) are
   offered to :class:`replay.schemas.SchemaMemory` with ``r`` from
   ``buffer.rewards`` and ``SatAgg = 1 − buffer.violations`` (1.0 for a buffer
   without violations). Both gates must pass. With a ``Discrete`` action space
   each schema also counts, per action, the transitions' *outcome*: the sum of
   the rewards over the next ``memory_horizon`` steps of the same env (cut at
   the episode's end; NaN, not counted, while that horizon is not yet written).
3. **UMAP update** — :class:`replay.umap_monitor.UMAPMonitor` on the
   consolidated points (subsampled to ``umap_max_points``) labelled by schema:
   aligned fit, DBSCAN, parametric-net update; anomalies counted over all new
   transitions.
4. **Vector-store sync** — schemas pruned (size < 10 or older than 90 days of
   market time), the store pruned to the surviving ids, every schema
   upserted (centroid μ_k + payload), and an atomic snapshot written when
   ``store_path`` is set.
5. **Metrics** — phase 1: ``sleep/replays``, ``sleep/td_error_before``,
   ``sleep/td_error_after``, ``sleep/td_error_improvement``,
   ``sleep/mean_priority``, ``sleep/swr_skipped``, ``sleep/swr_capped``;
   phases 2–4 (not with ``swr_only``): ``sleep/schema_count``,
   ``sleep/mean_schema_size``, ``sleep/constraint_satisfaction``,
   ``sleep/umap_clusters``, ``sleep/anomalies``, ``sleep/consolidated``,
   ``sleep/new_schemas``, ``sleep/pruned``, ``sleep/encoder_reconstruction``,
   ``sleep/encoder_penalty`` (the encoder's losses on this cycle's states, after
   any training); always ``sleep/elapsed_s``.

**Reading the memory.** :func:`memory_reader` snapshots the state after a
cycle into a :class:`replay.memory.MemoryReader` (``memory_prior``: the recalled
schemas' outcomes become a prior on the basal ganglia's No-Go; the callback
hands it to the policy after every sleep).

The sleep path points one way: ``replay.callbacks`` → this module →
:mod:`replay.swr` → :mod:`replay.losses`.

**Same seed, same cycle.** Nothing a cycle learns or stores depends on
wall-clock time: SWR runs a fixed number of sequences, UMAP, the parametric
net and the hippocampal encoder are seeded from ``config.seed`` (UMAP with
``random_state``, which makes umap-learn run single-threaded), and schema
timestamps (``created_at``, ``last_updated``, which decide age pruning) are
*market time*: by default ``steps · step_seconds``, where ``steps`` counts the
environment steps per env written to the buffer since the first cycle began
(``state.env_steps``). A caller-supplied ``config.clock`` replaces that; pass
``time.time`` only if schemas should age in calendar time (then the stored
timestamps, and pruning after long pauses, depend on when the run happened).
``sleep/elapsed_s`` is the only wall-clock number, and it is only logged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from janus_env.checks import (
    check_bool,
    check_callable,
    check_choice,
    check_fraction,
    check_int,
    check_number,
    check_positive,
)
from gymnasium import spaces

from replay.hippocampus import EpisodicBuffer, PatternSeparationEncoder
from replay.memory import MemoryReader
from replay.prioritized import PrioritizedReplayMixin
from replay.schemas import SECONDS_PER_DAY, SchemaMemory
from replay.swr import check_swr_settings, is_dqn_family, swr_replay
from replay.types import DEFAULT_MAX_WALL_S, SWRReport
from replay.umap_monitor import UMAPMonitor
from replay.vector_store import SchemaVectorStore

__all__ = ["SleepConfig", "SleepState", "flat_observations", "horizon_returns", "memory_reader", "run_sleep_cycle"]

FEATURES = ("raw", "code")
"""What the sleep cycle consolidates: the raw flattened observations or the encoder's sparse codes."""

_BAD_BUFFER = "Expected an SB3 replay buffer with `observations`, `rewards`, `pos`, `full` and `buffer_size`, got {}"
_BAD_STATE = "Expected `state` to be a SleepState or None, got {}"
_DIM_CHANGED = "The buffer's flattened observation has {} features but the sleep state was built for {}"

SKIP_NO_MODEL = "no model"
SKIP_NOT_DQN = "model is not DQN-family (needs q_net, q_net_target, gamma, policy.optimizer)"
SKIP_NOT_PRIORITIZED = "buffer is not prioritized"
SKIP_SHORT_BUFFER = "buffer holds fewer than seq_len steps"
ENCODER_STREAM = 2
"""Spawn key of the encoder's minibatch generator: ``default_rng([seed, cycle, 2])`` (apart from ``state.rng``)."""


@dataclass
class SleepConfig:
    """Settings of one sleep cycle (every field has a default); the only declaration of each sleep setting.

    Schema times are seconds of market time: ``clock()`` when a clock is
    given, else the environment steps per env seen by the cycles times
    ``step_seconds`` (deterministic; see the module docstring).

    Raises:
        ValueError: a count < 1 (``encoder_steps``, ``encoder_cycles`` < 0),
            ``compression`` outside [10, 20], a non-positive or NaN
            ``max_wall_s``, an unknown ``features``, a negative or infinite
            ``anomaly_priority``, ``ortho_lambda`` or ``memory_weight``, a
            non-positive or infinite ``step_seconds``, ``encoder_lr`` or
            ``schema_init_var``, ``memory_min_similarity`` outside (0, 1].
        TypeError: a count that is not an int, a setting that is not a real
            number, ``memory_prior`` not a bool; ``clock`` neither None nor callable.
    """

    swr_only: bool = False
    """Run phase 1 (SWR replay) and its metrics only: no consolidation, UMAP or
    vector store. The phase-2–4 fields below are then unused."""
    n_sequences: int = 16
    """Phase 1: SWR sequences per cycle."""
    seq_len: int = 32
    """Phase 1: transitions per sequence."""
    compression: float = 15.0
    """Phase 1: SWR compression factor C ∈ [10, 20] (Project JANUS default 15)."""
    max_wall_s: float = DEFAULT_MAX_WALL_S
    """Phase 1: wall-clock *safety cap* of SWR replay in seconds (``math.inf``: none).

    Not a budget: phase 1 replays exactly ``n_sequences`` sequences; hitting
    the cap stops it early with a ``RuntimeWarning`` and ``sleep/swr_capped`` = 1.
    """
    reverse: bool = True
    """Phase 1: also replay each sequence in reverse."""
    n_recent: int = 4096
    """Phase 2: at most this many new transitions (over all envs) are consolidated."""
    features: Literal["raw", "code"] = "code"
    """Phase 2: schema features — hippocampal codes (default) or the flattened observations."""
    code_dim: int = 64
    """Hippocampus code width d_h."""
    sparsity: float = 0.1
    """Hippocampus TopK fraction ρ (k = ⌈ρ·d_h⌉)."""
    ortho_lambda: float = 1e-2
    """Weight λ of the encoder's orthogonality penalty λ‖WᵀW − I‖²_F."""
    encoder_steps: int = 300
    """Phase 2: Adam steps of encoder training per training cycle (0: the encoder stays at its orthogonal init)."""
    encoder_cycles: int = 1
    """Phase 2: the encoder trains in the first this-many cycles, then stays fixed (schemas live in its codes)."""
    encoder_lr: float = 1e-2
    """Phase 2: Adam learning rate of encoder training."""
    encoder_batch: int = 256
    """Phase 2: states per encoder training step."""
    memory_horizon: int = 16
    """Phase 2: a transition's outcome is the sum of the rewards of its next this-many steps (itself included)."""
    memory_prior: bool = True
    """Wake: after each sleep the policy reads the memory (:func:`memory_reader`: the recalled schemas' outcomes
    shift its No-Go); false writes memory without reading it."""
    memory_k: int = 4
    """Wake: schemas recalled per decision."""
    memory_min_similarity: float = 0.5
    """Wake: recall threshold τ_recall on the cosine similarity."""
    memory_weight: float = 4.0
    """Wake: β, the largest No-Go logit shift memory can make."""
    archive_size: int = 4096
    """On-policy learners (no replay buffer): env steps, over all envs, that :class:`replay.callbacks.SleepPhaseCallback`
    keeps for the sleep to consolidate (:class:`replay.archive.RolloutArchive`); keep it ≥ the steps between sleeps."""
    episodic_capacity: int = 10_000
    """Hippocampus FIFO capacity (Project JANUS default 10,000)."""
    tau_schema: float | None = None
    """Schema log-likelihood threshold τ_schema (None: see SchemaMemory)."""
    schema_eta: float = 0.01
    """Schema EMA rate η."""
    schema_init_var: float | None = None
    """Initial isotropic variance of a new schema; None: 0.1 for codes (unit vectors: a fresh schema takes states
    within a chord of ~0.95, cosine ≳ 0.55, at Mahalanobis distance 3), 1.0 for raw observations."""
    recall_weight: float = 1.0
    """Recall gate W_r."""
    recall_bias: float = 0.0
    """Recall gate b_r."""
    min_schema_size: int = 10
    """Prune schemas with fewer points."""
    max_schema_age_s: float = 90 * SECONDS_PER_DAY
    """Prune schemas not updated for this long (seconds of market time, see ``clock``)."""
    umap: bool = True
    """Phase 3 on/off."""
    umap_n_neighbors: int = 15
    """UMAP n_neighbors."""
    umap_n_epochs: int = 200
    """UMAP n_epochs."""
    umap_min_dist: float = 0.1
    """UMAP min_dist."""
    umap_window: int = 3
    """Cycles kept for AlignedUMAP."""
    umap_max_points: int = 512
    """Consolidated points embedded per cycle (uniform subsample above this)."""
    mlp_epochs: int = 200
    """Parametric-UMAP Adam steps per cycle."""
    dbscan_eps: float = 0.5
    """DBSCAN eps (embedding units)."""
    dbscan_min_samples: int = 5
    """DBSCAN min_samples."""
    tau_anomaly: float = 2.0
    """Anomaly distance in the 3-D embedding (Project JANUS default 2.0)."""
    anomaly_priority: float = 1.0
    """Raw priority added to transitions the UMAP monitor flags as anomalous (0 disables)."""
    plot_dir: str | None = None
    """Phase 3: write ``umap_cycle_XXXX.png`` here when set."""
    store_path: str | None = None
    """Phase 4: atomic vector-store snapshot path (``.npz``) when set."""
    store_device: Literal["auto", "cpu", "gpu"] = "auto"
    """faiss search device."""
    seed: int = 0
    """Seed of the cycle's generator, the encoder init and UMAP."""
    step_seconds: float = 23.4
    """Market seconds one environment step stands for, for the default clock.

    Default 23.4 s = ``janus_env.config.MarketConfig.step_seconds`` (1000 steps
    = one 6.5-h session); ``agents.app.config.sleep_callback`` sets it from the env.
    """
    clock: Callable[[], float] | None = None
    """Clock for schema timestamps, in seconds; None (default): market time
    ``state.env_steps · step_seconds``, which is reproducible. ``time.time``
    ages schemas in calendar time instead."""

    def __post_init__(self) -> None:
        check_swr_settings(
            n_sequences=self.n_sequences, seq_len=self.seq_len, compression=self.compression, max_wall_s=self.max_wall_s
        )
        check_choice("features", self.features, FEATURES)
        for name in ("n_recent", "code_dim", "episodic_capacity", "umap_max_points", "encoder_batch",
                     "memory_horizon", "memory_k", "archive_size"):
            check_int(name, getattr(self, name), low=1)
        check_int("encoder_steps", self.encoder_steps, low=0)
        check_int("encoder_cycles", self.encoder_cycles, low=0)
        check_number("ortho_lambda", self.ortho_lambda, low=0)
        check_positive("encoder_lr", self.encoder_lr)
        check_positive("schema_init_var", self.schema_init_var, optional=True)
        check_bool("memory_prior", self.memory_prior)
        check_fraction("memory_min_similarity", self.memory_min_similarity, low_open=True)
        check_number("memory_weight", self.memory_weight, low=0)
        check_number("anomaly_priority", self.anomaly_priority, low=0)
        check_positive("step_seconds", self.step_seconds)
        check_callable("clock", self.clock, optional=True)  # None: market time


@dataclass
class SleepState:
    """Everything a sleep cycle carries over to the next one."""

    input_dim: int
    """Width of the flattened observation."""
    encoder: PatternSeparationEncoder
    """Hippocampal pattern-separation encoder."""
    episodic: EpisodicBuffer
    """Hippocampal FIFO of codes (timestamp = transition counter, payload = flat buffer index)."""
    schemas: SchemaMemory
    """Neocortical schema memory."""
    store: SchemaVectorStore
    """faiss store of schema centroids."""
    monitor: UMAPMonitor
    """UMAP monitor."""
    rng: np.random.Generator
    """Generator for SWR starts and UMAP subsampling."""
    cycle: int = 0
    """Completed cycles."""
    last_pos: int | None = None
    """``buffer.pos`` at the end of the previous cycle (None before the first)."""
    transitions_seen: int = 0
    """Transitions consolidated so far (the episodic clock)."""
    env_steps: int = 0
    """Environment steps per env written to the buffer up to the last cycle (the default market clock)."""
    swr_capped: int = 0
    """Cycles whose SWR phase hit the wall-clock safety cap."""
    swr_report: Any = None
    """Last ``SWRReport`` (None when phase 1 was skipped)."""
    swr_skip_reason: str | None = None
    """Why phase 1 was skipped in the last cycle (None when it ran)."""
    last_metrics: dict[str, float] = field(default_factory=dict)
    """Metrics of the last cycle."""
    n_actions: int = 0
    """Discrete actions whose outcomes the schemas keep (0: none)."""

    @classmethod
    def create(cls, input_dim: int, config: SleepConfig, n_actions: int = 0) -> SleepState:
        """Fresh state for flattened observations of width ``input_dim`` (and ``n_actions`` discrete actions)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            encoder = PatternSeparationEncoder(input_dim, config.code_dim, sparsity=config.sparsity,
                                               ortho_lambda=config.ortho_lambda)
        feature_dim = input_dim if config.features == "raw" else config.code_dim
        return cls(
            n_actions=int(n_actions),
            input_dim=input_dim,
            encoder=encoder,
            episodic=EpisodicBuffer(config.code_dim, capacity=config.episodic_capacity),
            schemas=SchemaMemory(
                feature_dim,
                tau_schema=config.tau_schema,
                eta=config.schema_eta,
                init_var=(config.schema_init_var if config.schema_init_var is not None
                          else 1.0 if config.features == "raw" else 0.1),
                recall_weight=config.recall_weight,
                recall_bias=config.recall_bias,
                min_size=config.min_schema_size,
                max_age_s=config.max_schema_age_s,
                n_actions=int(n_actions),
            ),
            store=SchemaVectorStore(feature_dim, device=config.store_device),
            monitor=UMAPMonitor(
                n_neighbors=config.umap_n_neighbors,
                n_epochs=config.umap_n_epochs,
                min_dist=config.umap_min_dist,
                window=config.umap_window,
                dbscan_eps=config.dbscan_eps,
                dbscan_min_samples=config.dbscan_min_samples,
                tau_anomaly=config.tau_anomaly,
                mlp_epochs=config.mlp_epochs,
                seed=config.seed,
            ),
            rng=np.random.default_rng(config.seed),
        )

    def state_dict(self) -> dict[str, Any]:
        """Checkpointable state: ints, numpy arrays, the generator state and torch ``state_dict``s.

        The vector store is not included: it mirrors the schemas after phase 4
        and :meth:`from_state_dict` rebuilds it from them.
        """
        return {
            "input_dim": self.input_dim,
            "n_actions": self.n_actions,
            "cycle": self.cycle,
            "last_pos": -1 if self.last_pos is None else self.last_pos,
            "transitions_seen": self.transitions_seen,
            "env_steps": self.env_steps,
            "swr_capped": self.swr_capped,
            "rng": self.rng.bit_generator.state,
            "encoder": {k: v.detach().clone() for k, v in self.encoder.state_dict().items()},
            "episodic": self.episodic.state_dict(),
            "schemas": self.schemas.state_dict(),
            "monitor": self.monitor.state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], config: SleepConfig) -> SleepState:
        """Rebuild a :class:`SleepState` from :meth:`state_dict` output and the same ``config``."""
        out = cls.create(int(state["input_dim"]), config, int(state.get("n_actions", 0)))
        out.cycle = int(state["cycle"])
        out.last_pos = None if int(state["last_pos"]) < 0 else int(state["last_pos"])
        out.transitions_seen = int(state["transitions_seen"])
        out.env_steps = int(state.get("env_steps", 0))  # absent in checkpoints written before it existed
        out.swr_capped = int(state.get("swr_capped", 0))
        out.rng.bit_generator.state = state["rng"]
        out.encoder.load_state_dict(state["encoder"])
        out.episodic.load_state_dict(state["episodic"])
        out.schemas.load_state_dict(state["schemas"])
        out.monitor.load_state_dict(state["monitor"])
        if len(out.schemas):
            out.store.upsert(out.schemas.ids, out.schemas.means, out.schemas.payloads())
        return out


def flat_observations(buffer: Any, positions: np.ndarray) -> np.ndarray:
    """``(len(positions)·n_envs, D)`` float64 observations, time-major (Dict: sorted keys)."""
    obs = buffer.observations
    if isinstance(obs, dict):
        parts = [np.asarray(obs[key][positions]) for key in sorted(obs)]
        n = positions.shape[0] * parts[0].shape[1] if parts else 0
        return np.concatenate([p.reshape(n, -1) for p in parts], axis=1).astype(np.float64)
    arr = np.asarray(obs[positions])
    return arr.reshape(arr.shape[0] * arr.shape[1], -1).astype(np.float64)


def _n_actions(buffer: Any) -> int:
    """The buffer's number of discrete actions (0 for any other action space)."""
    space = getattr(buffer, "action_space", None)
    return int(space.n) if isinstance(space, spaces.Discrete) else 0


def horizon_returns(buffer: Any, positions: np.ndarray, horizon: int) -> np.ndarray:
    """``G_t = Σ_{i<H} r_{t+i}`` per row and env, time-major like :func:`flat_observations`.

    The sum stops after a step whose ``done`` is set (the episode's last); a row whose ``H`` next steps are not
    all written yet and hold no episode end gets NaN (its outcome is not known yet).
    """
    size = int(buffer.buffer_size)
    offsets = np.arange(horizon)
    idx = (positions[:, None] + offsets[None, :]) % size  # (P, H)
    rewards = np.asarray(buffer.rewards, dtype=np.float64)[idx]  # (P, H, E)
    dones = getattr(buffer, "dones", None)
    done = np.zeros(rewards.shape, dtype=bool) if dones is None else np.asarray(dones)[idx] > 0
    alive = (np.cumsum(done, axis=1) - done) == 0  # no episode end strictly before step i
    avail = (int(buffer.pos) - positions - 1) % size + 1  # rows written from t on, t included
    use = alive & (offsets[None, :] < avail[:, None])[:, :, None]
    returns = np.sum(np.where(use, rewards, 0.0), axis=1)  # (P, E)
    complete = np.any(done & use, axis=1) | (avail >= horizon)[:, None]
    return np.where(complete, returns, np.nan).reshape(-1)


def _observation_dim(buffer: Any) -> int:
    obs = buffer.observations
    if isinstance(obs, dict):
        return int(sum(int(np.prod(v.shape[2:])) for v in obs.values()))
    return int(np.prod(obs.shape[2:]))


def _steps_since(buffer: Any, last_pos: int | None) -> int:
    """Steps per env written since ``last_pos`` (before the first cycle: every stored row).

    Same assumption as :func:`_new_positions`: the buffer does not wrap around
    completely between two cycles.
    """
    if last_pos is None:
        return int(buffer.buffer_size if buffer.full else buffer.pos)
    return int((buffer.pos - last_pos) % buffer.buffer_size)


def _new_positions(buffer: Any, last_pos: int | None, max_steps: int) -> np.ndarray:
    """Buffer rows written since ``last_pos`` (oldest first), at most ``max_steps``.

    Before the first cycle every stored row counts. A cycle is assumed to come
    before the buffer wraps around completely since the previous one.
    """
    size = buffer.buffer_size if buffer.full else buffer.pos
    n_steps = min(_steps_since(buffer, last_pos), size, max_steps)
    return (buffer.pos - n_steps + np.arange(n_steps)) % buffer.buffer_size


def _phase_swr(
    model: Any, buffer: Any, state: SleepState, config: SleepConfig
) -> tuple[SWRReport | None, str | None]:
    """Phase 1; returns ``(report, None)`` or ``(None, skip reason)``."""
    if model is None:
        return None, SKIP_NO_MODEL
    if not is_dqn_family(model):
        return None, SKIP_NOT_DQN
    if not isinstance(buffer, PrioritizedReplayMixin):
        return None, SKIP_NOT_PRIORITIZED
    if buffer.size() < config.seq_len:
        return None, SKIP_SHORT_BUFFER
    report = swr_replay(
        model,
        buffer,
        n_sequences=config.n_sequences,
        seq_len=config.seq_len,
        compression=config.compression,
        rng=state.rng,
        reverse=config.reverse,
        max_wall_s=config.max_wall_s,
    )
    return report, None


def _swr_metrics(report: SWRReport | None, buffer: Any) -> dict[str, float]:
    """Phase-1 metrics, the same keys whether phase 1 ran or was skipped (then TD errors are NaN)."""
    if report is None:
        mean_priority = buffer.mean_priority() if isinstance(buffer, PrioritizedReplayMixin) else math.nan
        return {
            "sleep/replays": 0.0,
            "sleep/td_error_before": math.nan,
            "sleep/td_error_after": math.nan,
            "sleep/td_error_improvement": 0.0,
            "sleep/mean_priority": float(mean_priority),
            "sleep/swr_skipped": 1.0,
            "sleep/swr_capped": 0.0,
        }
    return {
        "sleep/replays": float(report.replays),
        "sleep/td_error_before": float(report.td_before),
        "sleep/td_error_after": float(report.td_after),
        "sleep/td_error_improvement": float(report.td_before - report.td_after),
        "sleep/mean_priority": float(report.mean_priority),
        "sleep/swr_skipped": 0.0,
        "sleep/swr_capped": float(report.capped),
    }


def _consolidate(buffer: Any, state: SleepState, config: SleepConfig, now: float) -> dict[str, float]:
    """Phases 2-4 (schemas, UMAP, vector store) on the transitions written since the last cycle; their metrics."""
    # Phase 2 — schema consolidation through the recall and logic gates.
    n_envs = int(buffer.rewards.shape[1])
    positions = _new_positions(buffer, state.last_pos, max(1, config.n_recent // n_envs))
    state.last_pos = int(buffer.pos)
    raw = flat_observations(buffer, positions)
    m = raw.shape[0]
    rewards = np.asarray(buffer.rewards[positions], dtype=np.float64).reshape(-1)
    violations = getattr(buffer, "violations", None)
    sat = np.ones(m) if violations is None else 1.0 - np.asarray(violations[positions], dtype=np.float64).reshape(-1)
    flat_ids = (positions[:, None] * n_envs + np.arange(n_envs)[None, :]).reshape(-1)
    encoder = state.encoder
    if state.cycle < config.encoder_cycles and config.encoder_steps > 0 and m >= 2:
        encoder.fit(raw, steps=config.encoder_steps, lr=config.encoder_lr, batch_size=config.encoder_batch,
                    rng=np.random.default_rng([config.seed, state.cycle, ENCODER_STREAM]))
    codes = encoder.encode_numpy(raw)
    if m:
        with torch.no_grad():
            x = torch.as_tensor(raw, dtype=encoder.weight.dtype)
            reconstruction = float(encoder.reconstruction_loss(x))
            penalty = float(encoder.orthogonality_penalty())
    else:
        reconstruction = penalty = math.nan
    state.episodic.add(codes, state.transitions_seen + np.arange(m, dtype=np.float64), flat_ids)
    state.transitions_seen += m
    if config.features == "raw":
        features = raw
    else:  # unit-length codes: the schemas' geometry is the vector store's cosine
        features = codes.astype(np.float64)
        features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    actions = outcomes = None
    if state.schemas.n_actions and m:
        actions = np.asarray(buffer.actions[positions]).reshape(-1)
        outcomes = horizon_returns(buffer, positions, config.memory_horizon)
    consolidation = state.schemas.consolidate(features, rewards, sat, now=now, actions=actions, outcomes=outcomes)
    gated = consolidation.labels >= 0

    # Phase 3 — UMAP update (aligned fit, DBSCAN, parametric net).
    monitor = state.monitor
    n_gated = int(gated.sum())
    if config.umap and n_gated >= monitor.min_points:
        idx = np.flatnonzero(gated)
        if idx.shape[0] > config.umap_max_points:
            idx = np.sort(state.rng.choice(idx, size=config.umap_max_points, replace=False))
        monitor.update(features[idx], consolidation.labels[idx], probe=features)
        if config.plot_dir is not None:
            monitor.save_plot(Path(config.plot_dir) / f"umap_cycle_{state.cycle:04d}.png")
        anomalies = monitor.n_anomalies
    elif monitor.fitted and m > 0:
        anomalies = int(np.sum(monitor.is_anomaly(features)))
    else:
        anomalies = 0
    if monitor.fitted and m > 0 and config.anomaly_priority > 0 and hasattr(buffer, "boost_priorities"):
        # experience far from every schema is replayed more: its priority rises by `anomaly_priority`
        flags = np.asarray(monitor.is_anomaly(features), dtype=bool).reshape(-1)
        if flags.any():
            buffer.boost_priorities(flat_ids[flags], config.anomaly_priority)

    # Phase 4 — vector-store sync.
    pruned = state.schemas.prune(now)
    state.store.prune(state.schemas.ids)
    if len(state.schemas):
        state.store.upsert(state.schemas.ids, state.schemas.means, state.schemas.payloads())
    if config.store_path is not None:
        state.store.snapshot(config.store_path)

    sizes = state.schemas.num_points
    return {
        "sleep/schema_count": float(len(state.schemas)),
        "sleep/mean_schema_size": float(sizes.mean()) if sizes.shape[0] else 0.0,
        "sleep/constraint_satisfaction": float(sat.mean()) if m else math.nan,
        "sleep/umap_clusters": float(monitor.n_clusters),
        "sleep/anomalies": float(anomalies),
        "sleep/consolidated": float(consolidation.n_gated),
        "sleep/new_schemas": float(consolidation.n_new_schemas),
        "sleep/pruned": float(pruned.shape[0]),
        "sleep/encoder_reconstruction": reconstruction,
        "sleep/encoder_penalty": penalty,
    }


def run_sleep_cycle(
    model: Any, buffer: Any, state: SleepState | None, config: SleepConfig
) -> tuple[SleepState, dict[str, float]]:
    """Run the five sleep phases once (phases 1 and 5 only with ``config.swr_only``; see the module docstring).

    Args:
        model: The SB3 model (DQN-family for phase 1; anything else, or None,
            skips phase 1).
        buffer: An SB3 ``ReplayBuffer`` / ``DictReplayBuffer`` (prioritized for
            phase 1; a ``violations`` array, as the prioritized buffers keep,
            feeds the logic gate).
        state: The state returned by the previous cycle, or None to start.
        config: Cycle settings.

    Returns:
        ``(state, metrics)``; ``metrics`` keys start with ``sleep/``.
        ``sleep/td_error_improvement`` is ``td_before − td_after`` (mean |δ|
        over the replayed transitions; > 0 means replay reduced TD error),
        0.0 when phase 1 was skipped (then ``sleep/swr_skipped`` = 1 and
        ``sleep/td_error_before``/``after`` are NaN).
        ``sleep/constraint_satisfaction`` is the mean SatAgg of the new
        transitions (NaN when there were none). ``sleep/anomalies`` counts new
        transitions flagged by the monitor (0 before its first fit).

    Raises:
        TypeError: If ``buffer`` is not an SB3-style replay buffer or
            ``state`` is neither a SleepState nor None.
        ValueError: If the observation width changed since ``state`` was built.
    """
    t_start = time.perf_counter()
    if not all(hasattr(buffer, a) for a in ("observations", "rewards", "pos", "full", "buffer_size")):
        raise TypeError(_BAD_BUFFER.format(type(buffer).__name__))
    if state is not None and not isinstance(state, SleepState):
        raise TypeError(_BAD_STATE.format(type(state).__name__))
    input_dim = _observation_dim(buffer)
    if state is None:
        state = SleepState.create(input_dim, config, _n_actions(buffer))
    elif state.input_dim != input_dim:
        raise ValueError(_DIM_CHANGED.format(input_dim, state.input_dim))
    state.env_steps += _steps_since(buffer, state.last_pos)
    now = float(config.clock()) if config.clock is not None else state.env_steps * float(config.step_seconds)

    # Phase 1 — SWR replay.
    report, skip_reason = _phase_swr(model, buffer, state, config)
    state.swr_report, state.swr_skip_reason = report, skip_reason
    state.swr_capped += int(report is not None and report.capped)
    metrics = _swr_metrics(report, buffer)

    if config.swr_only:
        state.last_pos = int(buffer.pos)
    else:
        metrics.update(_consolidate(buffer, state, config, now))  # phases 2-4

    # Phase 5 — metrics.
    state.cycle += 1
    metrics["sleep/elapsed_s"] = time.perf_counter() - t_start
    state.last_metrics = metrics
    return state, metrics


def memory_reader(state: SleepState | None, config: SleepConfig) -> MemoryReader | None:
    """The wake read path of ``state``'s memory (:class:`replay.memory.MemoryReader`), or None when
    ``config.memory_prior`` is off, there is no state yet, or its schemas keep no action outcomes."""
    if not config.memory_prior or state is None or state.n_actions == 0:
        return None
    return MemoryReader.from_sleep_state(state, features=config.features, horizon=config.memory_horizon,
                                         k=config.memory_k,
                                         min_similarity=config.memory_min_similarity, weight=config.memory_weight)
