"""Neocortex schemas: Gaussian memories consolidated from gated transitions.

A schema is a Gaussian ``N(μ_k, Σ_k)`` over transition features. During sleep
each transition that passes both gates (Project JANUS, part 4, "neocortex"):

* recall gate ``sigmoid(W_r·r + b_r) > 0.3`` (r: the transition's reward), and
* logic gate ``SatAgg > 0.7`` (LTN satisfaction of the transition),

is assigned to its maximum-likelihood schema. When the best log-likelihood is
below ``τ_schema`` a new schema is opened at the point. Assigned schemas move
by an exponential moving average with η = 0.01. Schemas holding fewer than 10
points or untouched for more than 90 days are pruned.

Log-likelihoods use a batched Cholesky factor ``L_k`` of ``Σ_k + εI``:
``log N(x | μ, Σ) = −½(‖L⁻¹(x − μ)‖² + d·log 2π + 2·Σ log diag L)`` — no matrix
is ever inverted, and ε grows tenfold (up to 1e3·ε) if a factorization fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from janus_env.checks import check_fraction, check_int, check_positive

__all__ = ["ConsolidationReport", "SchemaMemory", "SECONDS_PER_DAY"]

SECONDS_PER_DAY = 86_400.0

_BAD_X_SHAPE = "Expected `x` of shape (n, {}), got {}"
_BAD_LENGTH = "Expected `{}` of length {}, got {}"
_NON_FINITE = "Expected finite values in `{}`"
_CHOLESKY_FAILED = "Cholesky factorization failed even with jitter {!r}"
_BAD_STATE = "Schema state has inconsistent shapes: {}"


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
    ) -> None:
        self.dim = check_int("dim", dim, low=1)
        self.eta = check_fraction("eta", eta, low_open=True)
        self.init_var = check_positive("init_var", init_var)
        self.eps = check_positive("eps", eps)
        self.max_age_s = check_positive("max_age_s", max_age_s, finite=False)  # math.inf: never too old
        self.recall_threshold = check_fraction("recall_threshold", recall_threshold, high_open=True)
        self.logic_threshold = check_fraction("logic_threshold", logic_threshold, high_open=True)
        self.max_schemas = check_int("max_schemas", max_schemas, low=1)
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
        self.next_id += 1
        return len(self) - 1

    def consolidate(self, x: np.ndarray, rewards: np.ndarray, sat: np.ndarray, *, now: float) -> ConsolidationReport:
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

        Args:
            x: ``(n, d)`` finite features.
            rewards: ``(n,)`` rewards r.
            sat: ``(n,)`` LTN satisfaction SatAgg per transition.
            now: Current time in seconds (same clock as :meth:`prune`).

        Returns:
            A :class:`ConsolidationReport`.

        Raises:
            ValueError: On shape mismatches or non-finite inputs.
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
        return ConsolidationReport(
            n_seen=n,
            n_gated=int(keep.shape[0]),
            n_new_schemas=len(self) - n_before,
            labels=labels,
            recall_pass=recall,
            logic_pass=logic,
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
        for name in ("ids", "means", "covariances", "num_points", "avg_reward", "created_at", "last_updated"):
            setattr(self, name, getattr(self, name)[mask])

    # ---------------------------------------------------------------- payload
    def payloads(self) -> list[dict[str, Any]]:
        """One payload per schema: id, mean, covariance, num_points, avg_reward, created_at, last_updated."""
        return [
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
        }

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict` output.

        Raises:
            ValueError: If the arrays disagree on the number of schemas or ``d``.
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
        }
        shapes = {name: a.shape for name, a in arrays.items()}
        if (
            arrays["means"].shape != (k, self.dim)
            or arrays["covariances"].reshape(-1).shape[0] != k * self.dim * self.dim
            or any(arrays[name].shape != (k,) for name in ("num_points", "avg_reward", "created_at", "last_updated"))
        ):
            raise ValueError(_BAD_STATE.format(shapes))
        arrays["covariances"] = arrays["covariances"].reshape(k, self.dim, self.dim)
        self.ids = ids
        for name, value in arrays.items():
            setattr(self, name, value)
        self.next_id = int(state["next_id"])
