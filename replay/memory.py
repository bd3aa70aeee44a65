"""The memory read path: recall the schemas nearest to the current state and turn their outcomes into a prior.

The sleep cycle *writes* memory (hippocampal codes, neocortical schemas, the vector store); a
:class:`MemoryReader` *reads* it at decision time. It is a frozen snapshot of the vector store (the
L2-normalized schema centroids, their ids and per-action outcome payloads) and of the hippocampal encoder,
taken after each sleep (:meth:`MemoryReader.from_sleep_state`), so a decision never waits on faiss or torch:
one numba kernel (:func:`_recall_kernel`) does everything for a batch of flattened observations.

For a state ``s`` (its flattened observation, Dict keys in sorted order, as the sleep cycle stores it):

1. **Features** ``f(s)``: the raw observation (``features="raw"``) or its hippocampal code
   ``TopK_k(ReLU(W_sep·(s − m)/σ + b))`` (``features="code"``; :class:`replay.hippocampus.PatternSeparationEncoder`).
2. **Recall** (Project JANUS, part 4, "vector store: top-k cosine search"): cosine similarity
   ``c_j = f(s)·μ̂_j / ‖f(s)‖`` with every stored centroid ``μ̂_j``; the ``k`` most similar schemas (ties to the
   earlier row) whose similarity is at least ``τ_recall`` are recalled —
   :meth:`replay.vector_store.SchemaVectorStore.search_arrays` and :meth:`replay.schemas.SchemaMemory.recall`
   give the same schemas.
3. **Recalled outcome per action** — a k-nearest-neighbour, similarity-weighted estimate in the manner of
   episodic control (Blundell et al. 2016, "Model-Free Episodic Control"; Pritzel et al. 2017, "Neural
   Episodic Control", ICML): with ``N_ja`` transitions of action ``a`` in schema ``j`` and their mean outcome
   ``O_ja`` (the return over the next ``memory_horizon`` steps, :mod:`replay.sleep_cycle`),
   ``n_a = Σ_j c_j·N_ja``, ``m_a = Σ_j c_j·N_ja·O_ja / n_a``, the recalled state value
   ``m̄ = Σ_a n_a·m_a / Σ_a n_a`` and the recalled advantage ``A_a = m_a − m̄``.
4. **Evidence** ``z_a = A_a·√(n_a/H) / σ_O``: the advantage over its standard error, σ_O the standard deviation
   of every outcome the memory counted, each recalled transition counted with its schema's similarity, and the
   count divided by the outcome horizon ``H`` because consecutive ``H``-step returns share ``H − 1`` of their
   rewards (the variance of a mean of ``n`` overlapping ``H``-step sums is ≈ ``H·σ²/n``; Hansen & Hodrick 1980,
   "Forward exchange rates as optimal predictors of future spot rates", J. Political Economy) — a t-like
   statistic *(ours)*.
5. **Prior on No-Go** ``Δ_a = −β·tanh(z_a / 2)`` added to the No-Go logit:
   ``NoGo'_a = sigmoid(logit(NoGo_a) + Δ_a)`` (:func:`nogo_with_prior`) *(ours)*. Memories of a worse than
   usual outcome after ``a`` in similar states raise its veto probability, memories of a better one lower it;
   ``|Δ_a| < β``, so memory alone moves No-Go by at most β logits (β = 4 takes the initial No-Go of 0.047 to
   0.70 = τ_veto only on overwhelming evidence, ``z ≲ −4``), and nothing moves where nothing is recalled
   (``n_a = 0``).

A reader saves to and loads from one ``.npz`` file (:meth:`MemoryReader.save`, :meth:`MemoryReader.load`, read
with ``allow_pickle=False`` and every array checked).
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from numba import njit

from janus_env.atomic import atomic_path
from janus_env.checks import bad_value, check_choice, check_fraction, check_int, check_number, check_rows

__all__ = ["MEMORY_FEATURES", "MemoryRecall", "MemoryReader", "flatten_states", "nogo_with_prior"]

MEMORY_FEATURES = ("raw", "code")
"""What the reader compares: raw flattened observations or hippocampal codes (the schemas' features)."""
_FORMAT = 1
_BAD_FILE = "{}: not a memory file ({})"
_BAD_ARRAY = "Expected `{}` of shape {} and finite values, got shape {}"


class MemoryRecall(NamedTuple):
    """What a :class:`MemoryReader` recalled for a batch of ``B`` states (``k`` schemas, ``A`` actions)."""

    ids: np.ndarray
    """``(B, k)`` int64 schema ids, best first; −1 where fewer than ``k`` passed τ_recall."""
    similarity: np.ndarray
    """``(B, k)`` cosine similarities, NaN where no schema."""
    counts: np.ndarray
    """``(B, A)`` similarity-weighted transition counts ``n_a``."""
    outcome: np.ndarray
    """``(B, A)`` recalled mean outcome ``m_a`` (NaN where ``n_a = 0``)."""
    advantage: np.ndarray
    """``(B, A)`` recalled advantage ``A_a = m_a − m̄`` (0 where ``n_a = 0``)."""
    z: np.ndarray
    """``(B, A)`` evidence ``A_a·√(n_a/H) / σ_O`` (0 where ``n_a = 0`` or ``σ_O = 0``)."""
    shift: np.ndarray
    """``(B, A)`` No-Go logit shift ``Δ_a = −β·tanh(z_a/2)``."""


@njit(cache=True)
def _recall_kernel(x, mean, scale, w, b, k_code, encode, centroids, counts, outcome, k, min_sim, std, horizon,
                   beta, rows, sims, n_out, m_out, adv_out, z_out, shift_out):  # pragma: no cover - numba
    """Features, cosine top-k, recalled per-action outcome, advantage, evidence and No-Go shift (module docstring).

    All float arrays float64, ``rows`` int64; outputs are written in place.
    """
    n_batch = x.shape[0]
    n_schemas = centroids.shape[0]
    n_actions = counts.shape[1]
    d = centroids.shape[1]
    feat = np.zeros(d)
    sim_all = np.zeros(n_schemas)
    for i in range(n_batch):
        if encode:
            z = (x[i] - mean) / scale
            h = w @ z + b
            for u in range(h.shape[0]):
                if h[u] < 0.0:
                    h[u] = 0.0
            if k_code < h.shape[0]:
                order = np.argsort(-h, kind="mergesort")  # stable: ties keep the lower unit
                feat[:] = 0.0
                for r in range(k_code):
                    feat[order[r]] = h[order[r]]
            else:
                feat[:] = h
        else:
            feat[:] = x[i]
        norm = np.sqrt(np.sum(feat * feat))
        if norm < 1e-12:
            norm = 1e-12
        for j in range(n_schemas):
            sim_all[j] = np.sum(centroids[j] * feat) / norm
        for r in range(k):
            rows[i, r] = -1
            sims[i, r] = np.nan
        if n_schemas > 0:
            order_s = np.argsort(-sim_all, kind="mergesort")
            for r in range(min(k, n_schemas)):
                j = order_s[r]
                if sim_all[j] >= min_sim:
                    rows[i, r] = j
                    sims[i, r] = sim_all[j]
        total_n = 0.0
        total_m = 0.0
        for a in range(n_actions):
            na = 0.0
            sa = 0.0
            for r in range(k):
                j = rows[i, r]
                if j >= 0:
                    wn = sims[i, r] * counts[j, a]
                    na += wn
                    sa += wn * outcome[j, a]
            n_out[i, a] = na
            if na > 0.0:
                m_out[i, a] = sa / na
                total_n += na
                total_m += sa
            else:
                m_out[i, a] = np.nan
        mbar = total_m / total_n if total_n > 0.0 else 0.0
        for a in range(n_actions):
            na = n_out[i, a]
            if na > 0.0:
                adv = m_out[i, a] - mbar
                zz = adv * np.sqrt(na / horizon) / std if std > 0.0 else 0.0
            else:
                adv = 0.0
                zz = 0.0
            adv_out[i, a] = adv
            z_out[i, a] = zz
            shift_out[i, a] = -beta * np.tanh(0.5 * zz)


def flatten_states(obs: Any) -> np.ndarray:
    """``(B, D)`` float64 rows, states as memory reads them (the sleep cycle stores them so): a Dict's batch-first
    arrays in sorted key order, each flattened per row, side by side; a plain array flattened per row."""
    parts = [obs[key] for key in sorted(obs)] if isinstance(obs, dict) else [obs]
    arrays = [np.asarray(part, dtype=np.float64) for part in parts]
    return np.concatenate([a.reshape(a.shape[0], -1) for a in arrays], axis=1)


def nogo_with_prior(nogo: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``sigmoid(logit(NoGo) + Δ)`` elementwise, computed as ``1/(1 + ((1 − p)/p)·e^{−Δ})`` (exact at p = 0, 1)."""
    p = np.asarray(nogo, dtype=np.float64)
    with np.errstate(divide="ignore", over="ignore"):
        odds_against = (1.0 - p) / p
        return 1.0 / (1.0 + odds_against * np.exp(-np.asarray(shift, dtype=np.float64)))


def _as(name: str, value: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != shape or arr.dtype.hasobject or not np.all(np.isfinite(arr)):
        raise ValueError(_BAD_ARRAY.format(name, shape, arr.shape))
    return np.array(arr, dtype=dtype, order="C", copy=True)


class MemoryReader:
    """Recall the schemas most similar to a state and their per-action outcomes (module docstring).

    Args:
        centroids: ``(K, d)`` schema centroids (normalized here).
        ids: ``(K,)`` their schema ids.
        action_counts: ``(K, A)`` transitions per schema and action.
        action_outcome: ``(K, A)`` their mean outcome.
        outcome_std: σ_O ≥ 0, the standard deviation of the outcomes (0: no evidence, no shift).
        horizon: ``H`` ≥ 1, the steps each outcome sums (its variance inflation; 1 for one-step outcomes).
        input_dim: width ``D`` of the flattened observation.
        features: ``"raw"`` (then ``d = D``) or ``"code"`` (then ``encoder`` is required).
        encoder: for ``"code"``: ``{"mean": (D,), "scale": (D,), "weight": (d, D), "bias": (d,), "k": int}``.
        k: schemas recalled per state (default 4).
        min_similarity: τ_recall in (0, 1]: a schema less similar is not recalled (default 0.5).
        weight: β ≥ 0, the largest No-Go logit shift (default 4.0; 0 recalls without acting).

    Raises:
        TypeError / ValueError: arrays of the wrong shape or not finite, a setting out of range.
    """

    def __init__(
        self,
        centroids: np.ndarray,
        ids: np.ndarray,
        action_counts: np.ndarray,
        action_outcome: np.ndarray,
        outcome_std: float,
        *,
        horizon: int = 1,
        input_dim: int,
        features: Literal["raw", "code"] = "code",
        encoder: dict[str, Any] | None = None,
        k: int = 4,
        min_similarity: float = 0.5,
        weight: float = 4.0,
    ) -> None:
        self.input_dim = check_int("input_dim", input_dim, low=1)
        self.features = check_choice("features", features, MEMORY_FEATURES)
        self.k = check_int("k", k, low=1)
        self.min_similarity = check_fraction("min_similarity", min_similarity, low_open=True)
        self.weight = check_number("weight", weight, low=0)
        self.outcome_std = check_number("outcome_std", outcome_std, low=0)
        self.horizon = check_int("horizon", horizon, low=1)
        cents = np.asarray(centroids, dtype=np.float64)
        n_schemas = cents.shape[0] if cents.ndim == 2 else -1
        if self.features == "code":
            if not isinstance(encoder, dict):
                raise TypeError(bad_value("encoder", "a dict of mean, scale, weight, bias and k", encoder))
            weight_arr = np.asarray(encoder.get("weight"))
            d = weight_arr.shape[0] if weight_arr.ndim == 2 else -1
            self.code_k = check_int("encoder['k']", encoder.get("k"), low=1, high=max(d, 1))
            self.enc_mean = _as("encoder['mean']", encoder.get("mean"), (self.input_dim,), np.float64)
            self.enc_scale = _as("encoder['scale']", encoder.get("scale"), (self.input_dim,), np.float64)
            if np.any(self.enc_scale <= 0):
                raise ValueError(bad_value("encoder['scale']", "values > 0", encoder.get("scale")))
            self.enc_weight = _as("encoder['weight']", weight_arr, (d, self.input_dim), np.float64)
            self.enc_bias = _as("encoder['bias']", encoder.get("bias"), (d,), np.float64)
        else:
            d = self.input_dim
            self.code_k = 1
            self.enc_mean = np.zeros(1)
            self.enc_scale = np.ones(1)
            self.enc_weight = np.zeros((1, 1))
            self.enc_bias = np.zeros(1)
        self.dim = d
        self._given_centroids = _as("centroids", cents, (n_schemas, d), np.float64)  # saved as given: bit-exact files
        norms = np.linalg.norm(self._given_centroids, axis=1, keepdims=True)
        self.centroids = np.ascontiguousarray(self._given_centroids / np.maximum(norms, 1e-12))
        """``(K, d)`` unit-length centroids."""
        n_schemas = self.centroids.shape[0]
        self.ids = _as("ids", ids, (n_schemas,), np.int64)
        counts = np.asarray(action_counts)
        n_actions = counts.shape[1] if counts.ndim == 2 else -1
        self.action_counts = _as("action_counts", counts, (n_schemas, n_actions), np.float64)
        if np.any(self.action_counts < 0):
            raise ValueError(bad_value("action_counts", "counts >= 0", action_counts))
        self.action_outcome = _as("action_outcome", action_outcome, (n_schemas, n_actions), np.float64)
        self.n_actions = n_actions

    def __len__(self) -> int:
        return int(self.centroids.shape[0])

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_sleep_state(cls, state: Any, *, features: Literal["raw", "code"], horizon: int, k: int = 4,
                         min_similarity: float = 0.5, weight: float = 4.0) -> MemoryReader:
        """Snapshot a :class:`replay.sleep_cycle.SleepState`: its vector store's centroids and payloads, the
        schemas' outcome scale and (``features="code"``) its encoder."""
        store, schemas = state.store, state.schemas
        ids = store.ids
        centroids = store.vectors(ids).astype(np.float64) if len(ids) else np.zeros((0, store.dim))
        n_actions = int(getattr(schemas, "n_actions", 0))
        counts = np.zeros((len(ids), n_actions))
        outcome = np.zeros((len(ids), n_actions))
        for row, schema_id in enumerate(ids.tolist()):
            payload = store.payloads[schema_id]
            if n_actions:
                counts[row] = payload["action_counts"]
                outcome[row] = payload["action_outcome"]
        encoder = None
        if features == "code":
            enc = state.encoder
            encoder = {"mean": enc.input_mean.detach().cpu().numpy(), "scale": enc.input_scale.detach().cpu().numpy(),
                       "weight": enc.linear.weight.detach().cpu().numpy(),
                       "bias": enc.linear.bias.detach().cpu().numpy(), "k": int(enc.k)}
        return cls(centroids, ids, counts, outcome, schemas.outcome_std, horizon=horizon, input_dim=int(state.input_dim),
                   features=features, encoder=encoder, k=k, min_similarity=min_similarity, weight=weight)

    # ------------------------------------------------------------------ reading
    def recall(self, observations: np.ndarray) -> MemoryRecall:
        """What memory holds for each state of a batch (module docstring, steps 1–5).

        Args:
            observations: ``(B, input_dim)`` flattened observations (any real dtype).

        Returns:
            A :class:`MemoryRecall`.

        Raises:
            ValueError: a batch of the wrong width or with non-finite values.
        """
        x = check_rows("observations", observations, self.input_dim)
        n = x.shape[0]
        rows = np.empty((n, self.k), dtype=np.int64)
        sims = np.empty((n, self.k))
        outs = [np.empty((n, self.n_actions)) for _ in range(5)]
        _recall_kernel(x, self.enc_mean, self.enc_scale, self.enc_weight, self.enc_bias, self.code_k,
                       self.features == "code", self.centroids, self.action_counts, self.action_outcome, self.k,
                       self.min_similarity, self.outcome_std, float(self.horizon), self.weight, rows, sims, *outs)
        ids = np.where(rows >= 0, self.ids[np.maximum(rows, 0)] if len(self) else -1, -1)
        return MemoryRecall(ids, sims, *outs)

    # ------------------------------------------------------------------ files
    def state_dict(self) -> dict[str, Any]:
        """Arrays and settings (plain values) that :meth:`from_state_dict` rebuilds the reader from."""
        state: dict[str, Any] = {
            "format": _FORMAT, "input_dim": self.input_dim, "features": self.features, "k": self.k,
            "min_similarity": self.min_similarity, "weight": self.weight, "outcome_std": self.outcome_std,
            "horizon": self.horizon,
            "centroids": self._given_centroids.copy(), "ids": self.ids.copy(), "action_counts": self.action_counts.copy(),
            "action_outcome": self.action_outcome.copy(),
        }
        if self.features == "code":
            state["encoder"] = {"mean": self.enc_mean.copy(), "scale": self.enc_scale.copy(),
                                "weight": self.enc_weight.copy(), "bias": self.enc_bias.copy(), "k": self.code_k}
        return state

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> MemoryReader:
        """Rebuild a reader from :meth:`state_dict` output (every array checked)."""
        if state.get("format") != _FORMAT:
            raise ValueError(bad_value("format", str(_FORMAT), state.get("format")))
        return cls(state["centroids"], state["ids"], state["action_counts"], state["action_outcome"],
                   state["outcome_std"], horizon=state["horizon"], input_dim=state["input_dim"],
                   features=state["features"],
                   encoder=state.get("encoder"), k=state["k"], min_similarity=state["min_similarity"],
                   weight=state["weight"])

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the reader atomically to ``path`` (``.npz``: arrays, and the settings as a JSON member)."""
        state = self.state_dict()
        encoder = state.pop("encoder", None)
        arrays = {name: state.pop(name) for name in ("centroids", "ids", "action_counts", "action_outcome")}
        if encoder is not None:
            state["encoder_k"] = encoder.pop("k")
            arrays.update({f"encoder_{name}": value for name, value in encoder.items()})
        header = np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, header=header, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> MemoryReader:
        """Read a file :meth:`save` wrote (``allow_pickle=False``; every array and setting checked).

        Raises:
            ValueError: not such a file, or one whose contents are inconsistent (the message names it).
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                state = json.loads(bytes(data["header"]).decode())
                if not isinstance(state, dict):
                    raise ValueError("the header is not a JSON object")
                for name in ("centroids", "ids", "action_counts", "action_outcome"):
                    state[name] = data[name]
                if "encoder_k" in state:
                    state["encoder"] = {"k": state.pop("encoder_k"),
                                        **{name: data[f"encoder_{name}"] for name in ("mean", "scale", "weight", "bias")}}
            return cls.from_state_dict(state)
        except (OSError, KeyError, TypeError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as err:
            raise ValueError(_BAD_FILE.format(path, err)) from err
