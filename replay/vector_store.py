"""Schema vector store: faiss cosine search over schema centroids with payloads.

Centroids are L2-normalized and held in ``faiss.IndexIDMap2(faiss.IndexFlatIP(d))``,
so inner product = cosine similarity ``cos(q, μ) = q·μ / (‖q‖‖μ‖)``
(Project JANUS, part 4, "vector store": embedded, on-disk, top-k cosine search,
atomic snapshot and restore). Payloads live beside the index, keyed by id.

Snapshots are one ``.npz`` file (``allow_pickle=False`` on load) holding the
index bytes from ``faiss.serialize_index``, the payloads as JSON (numpy arrays
tagged with dtype and shape so they restore bit-for-bit) and a small header. It
is written to a temporary file in the target directory, fsync'ed and moved into
place with ``os.replace`` — a reader never sees a half-written snapshot.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from janus_env.atomic import atomic_path
from janus_env.checks import bad_value, check_choice, check_int, check_rows

__all__ = ["SchemaVectorStore", "gpu_available"]

_FORMAT_VERSION = 1

DEVICES = ("auto", "cpu", "gpu")
"""Where faiss searches: ``"auto"`` (the GPU when the build and a GPU allow it), ``"cpu"`` or ``"gpu"``."""
_NO_GPU = "device='gpu' needs the faiss GPU build and at least one visible GPU; found faiss {} with {} GPU(s)"
_BAD_IDS = "Expected {} unique int ids, got {!r}"
_BAD_PAYLOADS = "Expected {} payloads, got {}"
_CORRUPT_SNAPSHOT = "Corrupt or unreadable schema snapshot {!s}: {}"
_MISSING_SNAPSHOT = "Schema snapshot {!s} does not exist"
_BAD_PAYLOAD_TYPE = "Payload value of type {} is not serializable (use numbers, strings, lists, dicts or numpy arrays)"


def gpu_available() -> bool:
    """Whether the faiss GPU build is installed and sees at least one GPU."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _encode(value: Any) -> Any:
    """JSON-ready form of a payload value; numpy arrays keep dtype and shape."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.ravel().tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(_BAD_PAYLOAD_TYPE.format(type(value).__name__))


def _decode(value: Any) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            dtype = np.dtype(value["dtype"])
            if dtype.hasobject:
                raise ValueError("object arrays are not allowed in payloads")
            return np.asarray(value["__ndarray__"], dtype=dtype).reshape(value["shape"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalization ``v / max(‖v‖, 1e-12)`` in float32 (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class SchemaVectorStore:
    """Top-k cosine search over schema centroids, with payloads and snapshots.

    Args:
        dim: Centroid dimension ``d``.
        device: ``"cpu"`` searches the CPU index; ``"gpu"`` copies it to every
            GPU with ``faiss.index_cpu_to_all_gpus`` for search (the CPU index
            stays the source of truth for writes and snapshots); ``"auto"``
            (default) picks ``"gpu"`` when :func:`gpu_available`, else ``"cpu"``.
            Both give the same results (exact flat search).

    Raises:
        TypeError: ``dim`` is not an int.
        ValueError: On a ``dim`` < 1 or an unknown ``device``, or ``device="gpu"`` without
            a usable GPU build.
    """

    def __init__(self, dim: int, *, device: Literal["auto", "cpu", "gpu"] = "auto") -> None:
        check_int("dim", dim, low=1)
        check_choice("device", device, DEVICES)
        if device == "gpu" and not gpu_available():
            n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
            raise ValueError(_NO_GPU.format(faiss.__version__, n_gpus))
        self.dim = int(dim)
        self.device: Literal["cpu", "gpu"] = "gpu" if device == "gpu" or (device == "auto" and gpu_available()) else "cpu"
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self.payloads: dict[int, dict[str, Any]] = {}
        self._search_index: Any = None  # GPU replica, rebuilt lazily after writes

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __contains__(self, schema_id: int) -> bool:
        return int(schema_id) in self.payloads

    @property
    def ids(self) -> np.ndarray:
        """Stored ids, sorted."""
        return np.asarray(sorted(self.payloads), dtype=np.int64)

    def _check_ids(self, ids: Any, n: int) -> np.ndarray:
        arr = np.asarray(ids)
        if arr.size == 0 and n == 0:
            return np.zeros(0, dtype=np.int64)
        if arr.ndim != 1 or arr.shape[0] != n or not np.issubdtype(arr.dtype, np.integer) or np.unique(arr).shape[0] != n:
            raise ValueError(_BAD_IDS.format(n, ids))
        return arr.astype(np.int64)

    def upsert(self, ids: Any, vectors: np.ndarray, payloads: list[dict[str, Any]] | None = None) -> None:
        """Insert or replace centroids (and payloads) by id.

        Args:
            ids: ``(n,)`` unique integer ids.
            vectors: ``(n, dim)`` finite centroids (normalized here).
            payloads: ``n`` dicts of JSON-able values or numpy arrays; ``None``
                stores ``{"id": id}``.

        Raises:
            ValueError: On bad shapes, duplicate ids or a payload count mismatch.
            TypeError: On a payload value that cannot be snapshotted.
        """
        vectors = check_rows("vectors", vectors, self.dim)
        n = vectors.shape[0]
        id_arr = self._check_ids(ids, n)
        if payloads is None:
            payloads = [{"id": int(i)} for i in id_arr]
        if len(payloads) != n:
            raise ValueError(_BAD_PAYLOADS.format(n, len(payloads)))
        for payload in payloads:
            _encode(payload)  # fail now, not at snapshot time
        if n == 0:
            return
        self.index.remove_ids(id_arr)
        self.index.add_with_ids(_normalize(vectors), id_arr)
        for i, payload in zip(id_arr.tolist(), payloads):
            self.payloads[i] = dict(payload)
        self._search_index = None

    def remove(self, ids: Any) -> int:
        """Remove ids (unknown ids are ignored); returns how many were removed."""
        id_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        removed = int(self.index.remove_ids(id_arr)) if id_arr.shape[0] else 0
        for i in id_arr.tolist():
            self.payloads.pop(i, None)
        self._search_index = None
        return removed

    def prune(self, keep_ids: Any) -> np.ndarray:
        """Remove every stored id not in ``keep_ids``; returns the removed ids."""
        stale = np.setdiff1d(self.ids, np.asarray(keep_ids, dtype=np.int64).reshape(-1))
        self.remove(stale)
        return stale

    def vectors(self, ids: Any) -> np.ndarray:
        """Stored (normalized) vectors for ids, via ``IndexIDMap2.reconstruct_batch``."""
        id_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if id_arr.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        return self.index.reconstruct_batch(id_arr)

    def _searcher(self) -> Any:
        if self.device == "cpu":
            return self.index
        if self._search_index is None:
            self._search_index = faiss.index_cpu_to_all_gpus(self.index)
        return self._search_index

    def search_arrays(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k cosine neighbours as arrays (no payloads): the faiss search itself.

        Args:
            query: ``(m, dim)`` finite queries (normalized here).
            k: neighbours per query.

        Returns:
            ``(ids, cosines)``, each ``(m, k)``, best first; id −1 and cosine NaN past the store's size.

        Raises:
            TypeError: ``k`` is not an int.
            ValueError: On ``k < 1`` or a bad query shape.
        """
        k = check_int("k", k, low=1)
        q = check_rows("query", query, self.dim)
        ids = np.full((q.shape[0], k), -1, dtype=np.int64)
        scores = np.full((q.shape[0], k), np.nan)
        if len(self) and q.shape[0]:
            top = int(min(k, len(self)))
            found_scores, found_ids = self._searcher().search(_normalize(q), top)
            ids[:, :top] = found_ids
            scores[:, :top] = np.where(found_ids >= 0, found_scores, np.nan)
        return ids, scores

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float, dict[str, Any]]] | list[list[tuple[int, float, dict[str, Any]]]]:
        """Top-k cosine neighbours.

        Args:
            query: ``(dim,)`` for one query or ``(m, dim)`` for a batch.
            k: Neighbours per query (fewer are returned when the store is smaller).

        Returns:
            For a 1-D query, a list of ``(id, cosine, payload)`` best first; for
            a batch, one such list per query row. Payloads are the stored dicts
            themselves (not copies): treat them as read-only.

        Raises:
            TypeError: ``k`` is not an int.
            ValueError: On ``k < 1`` or a bad query shape.
        """
        q = np.asarray(query, dtype=np.float64)
        single = q.ndim == 1
        q2 = q[None, :] if single else q
        if q2.ndim != 2 or q2.shape[1] != self.dim:
            raise ValueError(bad_value("query", f"a ({self.dim},) or (m, {self.dim}) array", f"shape {q.shape}"))
        ids, scores = self.search_arrays(q2, k)
        out = [
            [(int(i), float(s), self.payloads[int(i)]) for s, i in zip(srow, irow) if i >= 0]
            for srow, irow in zip(scores, ids)
        ]
        return out[0] if single else out

    # -------------------------------------------------------------- snapshots
    def _write(self, f: Any) -> None:
        """Write the ``.npz`` snapshot (index bytes, JSON payloads, header) to a binary file object."""
        payload_json = json.dumps({str(k): _encode(v) for k, v in self.payloads.items()})
        header = json.dumps({"format": _FORMAT_VERSION, "dim": self.dim, "ntotal": len(self)})
        np.savez(
            f,
            index=np.asarray(faiss.serialize_index(self.index), dtype=np.uint8),
            payloads=np.frombuffer(payload_json.encode("utf-8"), dtype=np.uint8),
            header=np.frombuffer(header.encode("utf-8"), dtype=np.uint8),
        )

    def snapshot(self, path: str | os.PathLike[str]) -> Path:
        """Write the store atomically to ``path`` (an ``.npz`` file).

        Returns:
            The path written.
        """
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            self._write(f)
        return path

    @classmethod
    def restore(cls, path: str | os.PathLike[str], *, device: Literal["auto", "cpu", "gpu"] = "auto") -> SchemaVectorStore:
        """Load a store written by :meth:`snapshot`.

        Raises:
            ValueError: If the file is missing, not a snapshot, truncated, or
                its parts disagree; the message names the file.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(_MISSING_SNAPSHOT.format(path))
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode("utf-8"))
                index_bytes = np.ascontiguousarray(data["index"], dtype=np.uint8)
                payloads_raw = json.loads(bytes(data["payloads"]).decode("utf-8"))
            if header.get("format") != _FORMAT_VERSION:
                raise ValueError(f"unsupported format {header.get('format')!r}")
            dim = int(header["dim"])
            index = faiss.deserialize_index(index_bytes)
            payloads = {int(k): _decode(v) for k, v in payloads_raw.items()}
            if index.d != dim or index.ntotal != int(header["ntotal"]) or index.ntotal != len(payloads):
                raise ValueError("index and payloads disagree")
            if not isinstance(index, faiss.IndexIDMap2):
                raise ValueError(f"unexpected index type {type(index).__name__}")
            stored = np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
            if not np.array_equal(stored, np.asarray(sorted(payloads), dtype=np.int64)):
                raise ValueError("index ids and payload ids disagree")
        except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, EOFError) as err:
            raise ValueError(_CORRUPT_SNAPSHOT.format(path, err)) from err
        store = cls(dim, device=device)
        store.index = index
        store.payloads = payloads
        return store
