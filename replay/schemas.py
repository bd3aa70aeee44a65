"""Neocortex schemas: Gaussian memories consolidated from gated transitions.

A schema is a Gaussian ``N(μ_k, Σ_k)`` over transition features. During sleep
each transition that passes both gates (Project JANUS, part 4, "neocortex"):

* recall gate ``sigmoid(W_r·r + b_r) > 0.3`` (r: the transition's reward; the spec's name — it gates what is
  consolidated, not what is recalled: recall is by similarity, below), and
* logic gate ``SatAgg > 0.7`` (LTN satisfaction of the transition),

is assigned to its maximum-likelihood schema. When the best log-likelihood is
below ``τ_schema`` a new schema is opened at the point. Assigned schemas move
by an exponential moving average with η = 0.01. Schemas holding fewer than 10
points or untouched for more than 90 days are pruned.

**Reading the memory.** Consolidation assigns by likelihood; recall — comparing a current state with the
schemas — is by cosine similarity, as the vector store searches (Project JANUS, part 4, "vector store:
top-k cosine search"): :meth:`SchemaMemory.similarity` is ``cos(x, μ_k) = x·μ_k / (‖x‖‖μ_k‖)`` and
:meth:`SchemaMemory.recall` keeps the ``k`` most similar schemas whose cosine is at least a threshold. With
``n_actions`` set, each schema also keeps, per action, how many consolidated transitions took it and the
mean of their *outcomes* (:meth:`consolidate`'s ``outcomes``, e.g. the return over the next steps) *(ours)*:
what :class:`replay.memory.MemoryReader` recalls for a decision.

Log-likelihoods use a batched Cholesky factor ``L_k`` of ``Σ_k + εI``:
``log N(x | μ, Σ) = −½(‖L⁻¹(x − μ)‖² + d·log 2π + 2·Σ log diag L)`` — no matrix
is ever inverted, and ε grows tenfold (up to 1e3·ε) if a factorization fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from janus_env.checks import check_fraction, check_int, check_number, check_positive

__all__ = ["ConsolidationReport", "SchemaMemory", "SECONDS_PER_DAY"]

SECONDS_PER_DAY = 86_400.0

_BAD_X_SHAPE = "Expected `x` of shape (n, {}), got {}"
_BAD_LENGTH = "Expected `{}` of length {}, got {}"
_NON_FINITE = "Expected finite values in `{}`"
_CHOLESKY_FAILED = "Cholesky factorization failed even with jitter {!r}"
_BAD_STATE = "Schema state has inconsistent shapes: {}"
_BAD_ACTIONS = "Expected `actions` to be {} ints in [0, {}), got {!r}"
_NO_ACTIONS = "Expected `actions` (n_actions={}) when `outcomes` are given"


@dataclass(frozen=True)
class ConsolidationReport:
    """Outcome of :meth:`SchemaMemory.consolidate` on one batch."""

    n_seen: int
    """Transitions offered."""
    n_gated: int
    """Transitions that passed both gates and were consolidated."""
    n_new_schemas: int
    """Schemas opened by this batch."""
    labels: np.ndarray
    """``(n,)`` int64 schema id per transition, −1 where a gate rejected it."""
    recall_pass: np.ndarray
    """``(n,)`` bool, recall gate outcome."""
    logic_pass: np.ndarray
    """``(n,)`` bool, logic gate outcome."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function ``1 / (1 + e^{−z})``."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


class SchemaMemory:
    """Gaussian schema memory with gated, EMA consolidation.

    Args:
        dim: Feature dimension ``d``.
        tau_schema: Log-likelihood threshold τ_schema: a gated point whose best
            log-likelihood is below it opens a new schema. ``None`` *(ours)*
            uses the log-density of a point at Mahalanobis distance 3 under a
            fresh schema, ``−½(d·log(2π·init_var) + 9)``.
        eta: EMA rate η; default 0.01 (Project JANUS).
        init_var: Variance of the isotropic covariance ``init_var·I`` given to
            a new schema *(ours; the spec leaves it open)*; default 1.0.
        eps: Ridge ε added to Σ_k before the Cholesky factorization; 1e-6.
        recall_weight: ``W_r`` of the recall gate; default 1.0 *(ours)*.
        recall_bias: ``b_r`` of the recall gate; default 0.0 *(ours)*. With
            the defaults the gate passes rewards ``r > ln(0.3/0.7) ≈ −0.847``:
            only clearly bad outcomes are kept out.
        recall_threshold: Recall-gate threshold; default 0.3 (Project JANUS).
        logic_threshold: Logic-gate threshold on SatAgg; default 0.7 (Project JANUS).
        min_size: Prune schemas with fewer points; default 10 (Project JANUS).
        max_age_s: Prune schemas whose last update is older than this, in
            seconds of the clock passed to :meth:`consolidate` and
            :meth:`prune`; default 90 days = 7,776,000 s (Project JANUS).
            Age is measured from ``last_updated`` *(ours: schemas still in use
            are kept)*.
        max_schemas: Hard cap on the number of schemas *(ours)*; when reached,
            points are assigned to their best existing schema instead.
        n_actions: Number of discrete actions whose outcomes each schema keeps
            (``action_counts``, ``action_outcome``); 0 (default) keeps none.

    Raises:
        TypeError: ``dim`` or ``max_schemas`` not an int, or a bounded setting not a real number.
        ValueError: ``dim`` or ``max_schemas`` < 1; ``eta`` outside (0, 1]; ``init_var``, ``eps`` or
            ``max_age_s`` <= 0 (``max_age_s`` may be ``math.inf``: no pruning by age); a threshold
            outside [0, 1).
    """

    def __init__(
        self,
        dim: int,
        *,
        tau_schema: float | None = None,
        eta: float = 0.01,
        init_var: float = 1.0,
        eps: float = 1e-6,
        recall_weight: float = 1.0,
        recall_bias: float = 0.0,
        recall_threshold: float = 0.3,
        logic_threshold: float = 0.7,
        min_size: int = 10,
        max_age_s: float = 90 * SECONDS_PER_DAY,
        max_schemas: int = 1024,
        n_actions: int = 0,
    ) -> None:
        self.dim = check_int("dim", dim, low=1)
        self.eta = check_fraction("eta", eta, low_open=True)
        self.init_var = check_positive("init_var", init_var)
        self.eps = check_positive("eps", eps)
        self.max_age_s = check_positive("max_age_s", max_age_s, finite=False)  # math.inf: never too old
        self.recall_threshold = check_fraction("recall_threshold", recall_threshold, high_open=True)
        self.logic_threshold = check_fraction("logic_threshold", logic_threshold, high_open=True)
        self.max_schemas = check_int("max_schemas", max_schemas, low=1)
        self.n_actions = check_int("n_actions", n_actions, low=0)
        if tau_schema is None:
            tau_schema = -0.5 * (self.dim * math.log(2.0 * math.pi * self.init_var) + 9.0)
        self.tau_schema = float(tau_schema)
        self.recall_weight = float(recall_weight)
        self.recall_bias = float(recall_bias)
        self.min_size = int(min_size)
        d = self.dim
        self.ids = np.zeros(0, dtype=np.int64)
        self.means = np.zeros((0, d), dtype=np.float64)
        self.covariances = np.zeros((0, d, d), dtype=np.float64)
        self.num_points = np.zeros(0, dtype=np.int64)
        self.avg_reward = np.zeros(0, dtype=np.float64)
        self.created_at = np.zeros(0, dtype=np.float64)
        self.last_updated = np.zeros(0, dtype=np.float64)
        self.action_counts = np.zeros((0, self.n_actions), dtype=np.int64)
        self.action_outcome = np.zeros((0, self.n_actions), dtype=np.float64)
        self.outcome_moments = np.zeros(3, dtype=np.float64)  # count, mean, M2 of every outcome counted
        self.next_id = 0

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    # ------------------------------------------------------------------ gates
    def recall_probability(self, rewards: np.ndarray) -> np.ndarray:
        """Recall-gate activation ``sigmoid(W_r·r + b_r)`` per transition."""
        r = np.asarray(rewards, dtype=np.float64)
        return _sigmoid(self.recall_weight * r + self.recall_bias)

    def gates(self, rewards: np.ndarray, sat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both gate outcomes: ``(sigmoid(W_r·r + b_r) > 0.3, SatAgg > 0.7)``.

        Comparisons are strict, so a value exactly at a threshold is rejected.
        """
        recall = self.recall_probability(rewards) > self.recall_threshold
        logic = np.asarray(sat, dtype=np.float64) > self.logic_threshold
        return recall, logic

    # -------------------------------------------------------- log-likelihood
    def _cholesky(self, covariances: np.ndarray) -> np.ndarray:
        """Batched lower Cholesky factor of ``Σ_k + εI``, raising ε on failure."""
        eye = np.eye(self.dim)
        jitter = self.eps
        for _ in range(4):
            try:
                return np.linalg.cholesky(covariances + jitter * eye)
            except np.linalg.LinAlgError:
                jitter *= 10.0
        raise ValueError(_CHOLESKY_FAILED.format(jitter / 10.0))

    def log_likelihood(self, x: np.ndarray, means: np.ndarray | None = None, covariances: np.ndarray | None = None) -> np.ndarray:
        """Gaussian log-densities of every point under every schema.

        ``log N(x | μ_k, Σ_k + εI) = −½(‖L_k⁻¹(x − μ_k)‖² + d·log 2π + 2·Σ_i log L_k,ii)``.

        Args:
            x: ``(n, d)`` points.
            means: ``(K, d)``; defaults to the stored schemas.
            covariances: ``(K, d, d)``; defaults to the stored schemas.

        Returns:
            ``(n, K)`` float64 log-likelihoods (``(n, 0)`` when K = 0).
        """
        x = self._check_x(x)
        means = self.means if means is None else means
        covariances = self.covariances if covariances is None else covariances
        k = means.shape[0]
        if k == 0:
            return np.zeros((x.shape[0], 0))
        chol = self._cholesky(covariances)  # (K, d, d)
        diff = x[None, :, :] - means[:, None, :]  # (K, n, d)
        z = np.linalg.solve(chol, np.swapaxes(diff, 1, 2))  # (K, d, n) = L⁻¹(x − μ)
        maha = np.sum(z * z, axis=1)  # (K, n)
        logdet = 2.0 * np.sum(np.log(np.diagonal(chol, axis1=1, axis2=2)), axis=1)  # (K,)
        ll = -0.5 * (maha + self.dim * math.log(2.0 * math.pi) + logdet[:, None])
        return ll.T

    def assign(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Maximum-likelihood schema per point, without updating anything.

        Returns:
            ``(ids, log_likelihoods)``: the best schema id (−1 when no schema
            exists) and its log-likelihood (−inf then).
        """
        ll = self.log_likelihood(x)
        if ll.shape[1] == 0:
            return np.full(ll.shape[0], -1, dtype=np.int64), np.full(ll.shape[0], -np.inf)
        best = np.argmax(ll, axis=1)
        return self.ids[best], ll[np.arange(ll.shape[0]), best]

    # ------------------------------------------------------------------ recall
    def similarity(self, x: np.ndarray) -> np.ndarray:
        """Cosine similarity ``cos(x_i, μ_k) = x_i·μ_k / (‖x_i‖‖μ_k‖)`` of every point with every schema mean.

        A zero vector has similarity 0 with everything (norms floored at 1e-12, as the vector store does).

        Returns:
            ``(n, K)`` float64 (``(n, 0)`` when K = 0).
        """
        x = self._check_x(x)
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        mn = self.means / np.maximum(np.linalg.norm(self.means, axis=1, keepdims=True), 1e-12)
        return xn @ mn.T

    def recall(self, x: np.ndarray, k: int, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` schemas most similar to each point (cosine), keeping those with ``cos ≥ min_similarity``.

        Ties go to the schema stored first (stable sort).

        Args:
            x: ``(n, d)`` points.
            k: schemas recalled per point at most.
            min_similarity: recall threshold τ_recall in [−1, 1].

        Returns:
            ``(ids, similarities)``, each ``(n, k)``, best first; ids −1 and similarity NaN where fewer than
            ``k`` schemas pass.

        Raises:
            TypeError / ValueError: ``k`` not an int >= 1, ``min_similarity`` outside [−1, 1].
        """
        k = check_int("k", k, low=1)
        min_similarity = check_number("min_similarity", min_similarity, low=-1.0, high=1.0)
        sims = self.similarity(x)
        n = sims.shape[0]
        ids = np.full((n, k), -1, dtype=np.int64)
        out = np.full((n, k), np.nan)
        top = min(k, sims.shape[1])
        if top:
            order = np.argsort(-sims, axis=1, kind="stable")[:, :top]
            best = np.take_along_axis(sims, order, axis=1)
            keep = best >= min_similarity
            ids[:, :top] = np.where(keep, self.ids[order], -1)
            out[:, :top] = np.where(keep, best, np.nan)
        return ids, out

    @property
    def outcome_std(self) -> float:
        """Standard deviation (ddof 0) of every outcome counted in ``action_outcome`` (0 before two)."""
        count, _, m2 = self.outcome_moments
        return float(math.sqrt(m2 / count)) if count >= 2 else 0.0

    # ---------------------------------------------------------- consolidation
    def _check_x(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(_BAD_X_SHAPE.format(self.dim, x.shape))
        if not np.all(np.isfinite(x)):
            raise ValueError(_NON_FINITE.format("x"))
        return x

    def _append(self, point: np.ndarray, now: float) -> int:
        """Open a schema at ``point`` with covariance ``init_var·I``; return its row."""
        self.ids = np.append(self.ids, self.next_id)
        self.means = np.concatenate([self.means, point[None, :]])
        self.covariances = np.concatenate([self.covariances, (self.init_var * np.eye(self.dim))[None]])
        self.num_points = np.append(self.num_points, 0)
        self.avg_reward = np.append(self.avg_reward, 0.0)
        self.created_at = np.append(self.created_at, now)
        self.last_updated = np.append(self.last_updated, now)
        self.action_counts = np.concatenate([self.action_counts, np.zeros((1, self.n_actions), np.int64)])
        self.action_outcome = np.concatenate([self.action_outcome, np.zeros((1, self.n_actions))])
        self.next_id += 1
        return len(self) - 1

    def consolidate(
        self,
        x: np.ndarray,
        rewards: np.ndarray,
        sat: np.ndarray,
        *,
        now: float,
        actions: np.ndarray | None = None,
        outcomes: np.ndarray | None = None,
    ) -> ConsolidationReport:
        """Gate a batch of transitions and merge the survivors into schemas.

        1. Gates: keep ``sigmoid(W_r·r + b_r) > 0.3`` AND ``SatAgg > 0.7``.
        2. Assignment: each kept point goes to ``argmax_k log N(x | μ_k, Σ_k)``
           if that is ≥ τ_schema. Remaining points open new schemas leader
           style: the first unassigned point (batch order) opens one, every
           unassigned point scoring ≥ τ_schema under it joins it, repeat — a
           loop over new schemas, vectorized over points.
        3. EMA update, equal to running ``μ ← (1−η)μ + ηx`` over the schema's
           points in batch order: with recency weights
           ``w_j = η(1−η)^{n_k−j}`` and ``α_k = Σ_j w_j = 1 − (1−η)^{n_k}``,
           ``μ_k ← (1−α_k)μ_k + Σ_j w_j x_j`` and
           ``Σ_k ← (1−α_k)Σ_k + Σ_j w_j (x_j − μ_k)(x_j − μ_k)ᵀ`` (new μ_k;
           the covariance step is the batched form of the sequential EMA *(ours)*).
           Counts, the running mean reward and ``last_updated = now`` follow.
        4. Action outcomes (``n_actions`` > 0 and ``actions`` given): for each
           transition with a finite outcome, the running mean
           ``action_outcome[k, a]`` and count ``action_counts[k, a]`` of its
           schema ``k`` and action ``a``; ``outcomes`` default to the rewards.
           The gates decide what shapes a schema's Gaussian, not which outcomes
           it remembers *(ours)*: a transition a gate rejected is counted in its
           maximum-likelihood schema when that scores ≥ τ_schema (else nowhere)
           — counting only what passed the recall gate would remember only what
           went well, and a No-Go prior read from it could never warn of a loss.
           NaN outcomes (e.g. a return whose horizon is not yet written) count
           for the schema, not for its action outcomes.

        Args:
            x: ``(n, d)`` finite features.
            rewards: ``(n,)`` rewards r.
            sat: ``(n,)`` LTN satisfaction SatAgg per transition.
            now: Current time in seconds (same clock as :meth:`prune`).
            actions: ``(n,)`` discrete actions in ``[0, n_actions)`` (ignored when ``n_actions`` is 0).
            outcomes: ``(n,)`` outcome per transition (NaN: not counted); default the rewards.

        Returns:
            A :class:`ConsolidationReport`.

        Raises:
            ValueError: On shape mismatches, non-finite inputs (outcomes may be NaN, not ±inf) or actions out of
                range; ``outcomes`` without ``actions``.
        """
        x = self._check_x(x)
        n = x.shape[0]
        rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
        sat = np.asarray(sat, dtype=np.float64).reshape(-1)
        for name, arr in (("rewards", rewards), ("sat", sat)):
            if arr.shape[0] != n:
                raise ValueError(_BAD_LENGTH.format(name, n, arr.shape[0]))
            if not np.all(np.isfinite(arr)):
                raise ValueError(_NON_FINITE.format(name))
        acts, outs = self._check_actions(actions, outcomes, rewards, n)
        recall, logic = self.gates(rewards, sat)
        keep = np.flatnonzero(recall & logic)
        labels = np.full(n, -1, dtype=np.int64)
        rows = np.full(keep.shape[0], -1, dtype=np.int64)  # schema row per kept point
        xk = x[keep]
        n_before = len(self)
        if keep.shape[0] > 0 and len(self) > 0:
            ll = self.log_likelihood(xk)
            best = np.argmax(ll, axis=1)
            ok = ll[np.arange(keep.shape[0]), best] >= self.tau_schema
            rows[ok] = best[ok]
        pending = np.flatnonzero(rows < 0)
        while pending.shape[0] > 0:
            if len(self) >= self.max_schemas:
                rows[pending] = np.argmax(self.log_likelihood(xk[pending]), axis=1)
                break
            row = self._append(xk[pending[0]], now)
            ll_new = self.log_likelihood(xk[pending], self.means[row : row + 1], self.covariances[row : row + 1])[:, 0]
            joins = ll_new >= self.tau_schema
            joins[0] = True  # the leader always joins its own schema
            rows[pending[joins]] = row
            pending = pending[~joins]
        if keep.shape[0] > 0:
            self._ema_update(rows, xk, rewards[keep], now)
            labels[keep] = self.ids[rows]
        if acts is not None:
            ledger = np.full(n, -1, dtype=np.int64)  # schema row whose outcome ledger counts each transition
            ledger[keep] = rows
            rejected = np.flatnonzero(~(recall & logic))
            if rejected.shape[0] > 0 and len(self) > 0:
                ll = self.log_likelihood(x[rejected])
                best = np.argmax(ll, axis=1)
                near = ll[np.arange(rejected.shape[0]), best] >= self.tau_schema
                ledger[rejected[near]] = best[near]
            counted = ledger >= 0
            self._count_outcomes(ledger[counted], acts[counted], outs[counted])
        return ConsolidationReport(
            n_seen=n,
            n_gated=int(keep.shape[0]),
            n_new_schemas=len(self) - n_before,
            labels=labels,
            recall_pass=recall,
            logic_pass=logic,
        )

    def _check_actions(
        self, actions: np.ndarray | None, outcomes: np.ndarray | None, rewards: np.ndarray, n: int
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Checked ``(actions, outcomes)`` (None, None when no action outcomes are kept)."""
        if self.n_actions == 0:
            return None, None
        if actions is None:
            if outcomes is not None:
                raise ValueError(_NO_ACTIONS.format(self.n_actions))
            return None, None
        raw = np.asarray(actions).reshape(-1)
        acts = raw.astype(np.int64) if raw.shape[0] == n and np.all(np.isfinite(raw)) else None
        if acts is None or np.any(acts != raw) or np.any(acts < 0) or np.any(acts >= self.n_actions):
            raise ValueError(_BAD_ACTIONS.format(n, self.n_actions, actions))
        outs = rewards if outcomes is None else np.asarray(outcomes, dtype=np.float64).reshape(-1)
        if outs.shape[0] != n:
            raise ValueError(_BAD_LENGTH.format("outcomes", n, outs.shape[0]))
        if np.any(np.isinf(outs)):
            raise ValueError(_NON_FINITE.format("outcomes"))
        return acts, outs

    def _count_outcomes(self, rows: np.ndarray, actions: np.ndarray, outcomes: np.ndarray) -> None:
        """Merge finite outcomes into the per-(schema, action) running means and the global moments."""
        ok = np.isfinite(outcomes)
        rows, actions, outcomes = rows[ok], actions[ok], outcomes[ok]
        if rows.shape[0] == 0:
            return
        cells = rows * self.n_actions + actions
        size = len(self) * self.n_actions
        counts = np.bincount(cells, minlength=size).reshape(len(self), self.n_actions)
        sums = np.bincount(cells, weights=outcomes, minlength=size).reshape(len(self), self.n_actions)
        total = self.action_counts + counts
        touched = counts > 0
        self.action_outcome[touched] = (
            self.action_outcome[touched] * self.action_counts[touched] + sums[touched]
        ) / total[touched]
        self.action_counts = total
        # global moments of the outcomes (Chan et al. 1979 merge), for the reader's standard errors
        count, mean, m2 = self.outcome_moments
        b_count, b_mean = float(outcomes.shape[0]), float(outcomes.mean())
        b_m2 = float(np.sum((outcomes - b_mean) ** 2))
        new_count = count + b_count
        delta = b_mean - mean
        self.outcome_moments = np.array(
            [new_count, mean + delta * b_count / new_count, m2 + b_m2 + delta * delta * count * b_count / new_count]
        )

    def _ema_update(self, rows: np.ndarray, x: np.ndarray, rewards: np.ndarray, now: float) -> None:
        """Vectorized EMA of means and covariances (see :meth:`consolidate`)."""
        n_schemas = len(self)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        counts = np.bincount(rows, minlength=n_schemas)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(rows.shape[0], dtype=np.int64)
        rank[order] = np.arange(rows.shape[0]) - starts[sorted_rows] + 1  # 1-based within schema
        n_k = counts[rows]
        w = self.eta * (1.0 - self.eta) ** (n_k - rank).astype(np.float64)  # (m,)
        alpha = 1.0 - (1.0 - self.eta) ** counts.astype(np.float64)  # (K,)
        touched = counts > 0
        weighted_sum = np.zeros((n_schemas, self.dim))
        np.add.at(weighted_sum, rows, w[:, None] * x)
        new_means = (1.0 - alpha)[:, None] * self.means + weighted_sum
        dev = x - new_means[rows]
        scatter = np.zeros((n_schemas, self.dim, self.dim))
        np.add.at(scatter, rows, w[:, None, None] * dev[:, :, None] * dev[:, None, :])
        new_cov = (1.0 - alpha)[:, None, None] * self.covariances + scatter
        new_cov = 0.5 * (new_cov + np.swapaxes(new_cov, 1, 2))
        self.means[touched] = new_means[touched]
        self.covariances[touched] = new_cov[touched]
        reward_sum = np.bincount(rows, weights=rewards, minlength=n_schemas)
        total = self.num_points + counts
        self.avg_reward[touched] = (self.avg_reward[touched] * self.num_points[touched] + reward_sum[touched]) / total[touched]
        self.num_points = total
        self.last_updated[touched] = now

    # ---------------------------------------------------------------- pruning
    def prune(self, now: float) -> np.ndarray:
        """Drop schemas with ``num_points < min_size`` or ``now − last_updated > max_age_s``.

        Args:
            now: Current time in seconds (same clock as :meth:`consolidate`).

        Returns:
            int64 ids of the removed schemas.
        """
        drop = (self.num_points < self.min_size) | (now - self.last_updated > self.max_age_s)
        removed = self.ids[drop].copy()
        self._keep(~drop)
        return removed

    def remove(self, ids: np.ndarray) -> None:
        """Drop the schemas with the given ids (unknown ids are ignored)."""
        self._keep(~np.isin(self.ids, np.asarray(ids, dtype=np.int64)))

    def _keep(self, mask: np.ndarray) -> None:
        for name in ("ids", "means", "covariances", "num_points", "avg_reward", "created_at", "last_updated",
                     "action_counts", "action_outcome"):
            setattr(self, name, getattr(self, name)[mask])

    # ---------------------------------------------------------------- payload
    def payloads(self) -> list[dict[str, Any]]:
        """One payload per schema: id, mean, covariance, num_points, avg_reward, created_at, last_updated (and,
        with ``n_actions``, action_counts and action_outcome)."""
        out = [
            {
                "id": int(self.ids[i]),
                "mean": self.means[i].copy(),
                "covariance": self.covariances[i].copy(),
                "num_points": int(self.num_points[i]),
                "avg_reward": float(self.avg_reward[i]),
                "created_at": float(self.created_at[i]),
                "last_updated": float(self.last_updated[i]),
            }
            for i in range(len(self))
        ]
        if self.n_actions:
            for i, payload in enumerate(out):
                payload["action_counts"] = self.action_counts[i].copy()
                payload["action_outcome"] = self.action_outcome[i].copy()
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain-array state for checkpoints."""
        return {
            "ids": self.ids.copy(),
            "means": self.means.copy(),
            "covariances": self.covariances.copy(),
            "num_points": self.num_points.copy(),
            "avg_reward": self.avg_reward.copy(),
            "created_at": self.created_at.copy(),
            "last_updated": self.last_updated.copy(),
            "next_id": np.asarray(self.next_id, dtype=np.int64),
            "action_counts": self.action_counts.copy(),
            "action_outcome": self.action_outcome.copy(),
            "outcome_moments": self.outcome_moments.copy(),
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output (a state saved before schemas kept action outcomes loads with none).

        Raises:
            ValueError: If the arrays disagree on the number of schemas, ``d`` or ``n_actions``.
        """
        ids = np.asarray(state["ids"], dtype=np.int64)
        k = ids.shape[0]
        arrays = {
            "means": np.asarray(state["means"], dtype=np.float64).reshape(-1, self.dim) if k else np.zeros((0, self.dim)),
            "covariances": np.asarray(state["covariances"], dtype=np.float64),
            "num_points": np.asarray(state["num_points"], dtype=np.int64),
            "avg_reward": np.asarray(state["avg_reward"], dtype=np.float64),
            "created_at": np.asarray(state["created_at"], dtype=np.float64),
            "last_updated": np.asarray(state["last_updated"], dtype=np.float64),
            "action_counts": np.asarray(state.get("action_counts", np.zeros((k, self.n_actions))), dtype=np.int64),
            "action_outcome": np.asarray(state.get("action_outcome", np.zeros((k, self.n_actions))),
                                         dtype=np.float64),
            "outcome_moments": np.asarray(state.get("outcome_moments", np.zeros(3)), dtype=np.float64),
        }
        shapes = {name: a.shape for name, a in arrays.items()}
        if (
            arrays["means"].shape != (k, self.dim)
            or arrays["covariances"].reshape(-1).shape[0] != k * self.dim * self.dim
            or any(arrays[name].shape != (k,) for name in ("num_points", "avg_reward", "created_at", "last_updated"))
            or any(arrays[name].reshape(-1).shape[0] != k * self.n_actions
                   for name in ("action_counts", "action_outcome"))
            or arrays["outcome_moments"].shape != (3,)
        ):
            raise ValueError(_BAD_STATE.format(shapes))
        arrays["covariances"] = arrays["covariances"].reshape(k, self.dim, self.dim)
        for name in ("action_counts", "action_outcome"):
            arrays[name] = arrays[name].reshape(k, self.n_actions)
        self.ids = ids
        for name, value in arrays.items():
            setattr(self, name, value)
        self.next_id = int(state["next_id"])
