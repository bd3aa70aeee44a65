"""Tests for replay.vector_store: faiss cosine search, payloads, atomic snapshots."""

from __future__ import annotations

import re
from pathlib import Path

import faiss
import numpy as np
import pytest

from replay.vector_store import (
    _BAD_IDS,
    _BAD_PAYLOAD_TYPE,
    _CORRUPT_SNAPSHOT,
    _MISSING_SNAPSHOT,
    _NO_GPU,
    SchemaVectorStore,
    gpu_available,
)

DIM = 6


def _payload(i: int, rng: np.random.Generator) -> dict:
    return {
        "id": i,
        "mean": rng.normal(size=DIM),
        "covariance": np.eye(DIM, dtype=np.float32) * (i + 1),
        "num_points": 10 + i,
        "avg_reward": float(rng.normal()),
        "created_at": 1.5 * i,
        "last_updated": 2.5 * i,
    }


def _filled(n: int = 20, seed: int = 0) -> tuple[SchemaVectorStore, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.arange(100, 100 + n)
    vectors = rng.normal(size=(n, DIM))
    store = SchemaVectorStore(DIM, device="cpu")
    store.upsert(ids, vectors, [_payload(int(i), rng) for i in ids])
    return store, ids, vectors


def _assert_payload_equal(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        if isinstance(a[key], np.ndarray):
            assert isinstance(b[key], np.ndarray) and a[key].dtype == b[key].dtype
            np.testing.assert_array_equal(a[key], b[key])
        else:
            assert a[key] == b[key] and type(a[key]) is type(b[key])


def test_search_matches_brute_force_cosine() -> None:
    store, ids, vectors = _filled()
    rng = np.random.default_rng(1)
    for q in rng.normal(size=(10, DIM)):
        hits = store.search(q, k=5)
        cos = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
        best = np.argsort(-cos)[:5]
        assert [h[0] for h in hits] == ids[best].tolist()
        np.testing.assert_allclose([h[1] for h in hits], cos[best], atol=1e-5)
        assert hits[0][2]["id"] == hits[0][0]


def test_scale_invariance() -> None:
    store, ids, vectors = _filled()
    hit = store.search(vectors[3] * 1e3, k=1)[0]
    assert hit[0] == ids[3] and hit[1] == pytest.approx(1.0, abs=1e-5)


def test_batch_query() -> None:
    store, _, vectors = _filled()
    batch = store.search(vectors[:3], k=2)
    assert len(batch) == 3 and all(len(row) == 2 for row in batch)
    assert [row[0][0] for row in batch] == [100, 101, 102]


def test_upsert_replaces() -> None:
    store, ids, vectors = _filled()
    store.upsert([ids[0]], -vectors[1:2], [{"id": int(ids[0]), "tag": "moved"}])
    assert len(store) == len(ids)
    hit = store.search(-vectors[1], k=1)[0]
    assert hit[0] == ids[0] and hit[2] == {"id": int(ids[0]), "tag": "moved"}


def test_remove_and_prune() -> None:
    store, ids, vectors = _filled()
    assert store.remove([ids[0], 999]) == 1
    assert ids[0] not in store and len(store) == len(ids) - 1
    assert all(h[0] != ids[0] for h in store.search(vectors[0], k=len(ids)))
    removed = store.prune(ids[:5])
    np.testing.assert_array_equal(removed, ids[5:])
    np.testing.assert_array_equal(store.ids, ids[1:5])
    assert len(store) == 4


def test_k_larger_than_store_and_empty_store() -> None:
    store, ids, vectors = _filled(3)
    assert len(store.search(vectors[0], k=10)) == 3
    empty = SchemaVectorStore(DIM, device="cpu")
    empty.upsert([], np.zeros((0, DIM)))
    assert empty.search(vectors[0], k=3) == []
    assert empty.search(vectors[:2], k=3) == [[], []]


def test_snapshot_restore_answers_identically(tmp_path: Path) -> None:
    store, _, _ = _filled(30)
    path = store.snapshot(tmp_path / "sub" / "schemas.npz")
    restored = SchemaVectorStore.restore(path, device="cpu")
    assert len(restored) == len(store)
    queries = np.random.default_rng(2).normal(size=(25, DIM))
    for q in queries:
        a, b = store.search(q, k=7), restored.search(q, k=7)
        assert [(i, s) for i, s, _ in a] == [(i, s) for i, s, _ in b]  # exact
        for (_, _, pa), (_, _, pb) in zip(a, b):
            _assert_payload_equal(pa, pb)
    assert [p.name for p in path.parent.iterdir()] == ["schemas.npz"]  # no temp file left


def test_snapshot_overwrites_atomically(tmp_path: Path) -> None:
    store, ids, _ = _filled(5)
    path = tmp_path / "s.npz"
    store.snapshot(path)
    store.remove(ids[:2])
    store.snapshot(path)
    assert len(SchemaVectorStore.restore(path, device="cpu")) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]


def test_corrupt_snapshot_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(b"definitely not a zip file")
    with pytest.raises(ValueError, match=re.escape(_CORRUPT_SNAPSHOT.format(path, "")[:-1])):
        SchemaVectorStore.restore(path)


def test_truncated_snapshot(tmp_path: Path) -> None:
    store, _, _ = _filled(5)
    path = store.snapshot(tmp_path / "t.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        SchemaVectorStore.restore(path)


def test_mismatched_snapshot_parts(tmp_path: Path) -> None:
    store, _, _ = _filled(5)
    path = tmp_path / "m.npz"
    other = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))  # empty index with 5 payloads
    np.savez(
        path,
        index=faiss.serialize_index(other),
        payloads=np.frombuffer(b'{"1": {"id": 1}}', dtype=np.uint8),
        header=np.frombuffer(b'{"format": 1, "dim": 6, "ntotal": 0}', dtype=np.uint8),
    )
    with pytest.raises(ValueError, match=re.escape(_CORRUPT_SNAPSHOT.format(path, "index and payloads disagree"))):
        SchemaVectorStore.restore(path)


def test_missing_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "nope.npz"
    with pytest.raises(ValueError, match=re.escape(_MISSING_SNAPSHOT.format(path))):
        SchemaVectorStore.restore(path)


def test_device_auto_picks_cpu_without_gpu() -> None:
    store = SchemaVectorStore(DIM)
    assert store.device == ("gpu" if gpu_available() else "cpu")


@pytest.mark.skipif(gpu_available(), reason="a faiss GPU is available")
def test_gpu_without_gpu_raises() -> None:
    n_gpus = faiss.get_num_gpus()
    with pytest.raises(ValueError, match=re.escape(_NO_GPU.format(faiss.__version__, n_gpus))):
        SchemaVectorStore(DIM, device="gpu")


@pytest.mark.skipif(not gpu_available(), reason="needs the faiss GPU build and a GPU")
def test_gpu_matches_cpu() -> None:  # pragma: no cover - CPU-only CI
    store, ids, vectors = _filled()
    gpu = SchemaVectorStore(DIM, device="gpu")
    gpu.upsert(ids, vectors, [store.payloads[int(i)] for i in ids])
    q = np.random.default_rng(3).normal(size=(8, DIM))
    for a, b in zip(store.search(q, k=4), gpu.search(q, k=4)):
        assert [h[0] for h in a] == [h[0] for h in b]
        np.testing.assert_allclose([h[1] for h in a], [h[1] for h in b], atol=1e-5)


def test_bad_device() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `device` to be one of ('auto', 'cpu', 'gpu'), got 'tpu'")):
        SchemaVectorStore(DIM, device="tpu")  # type: ignore[arg-type]


def test_bad_dim() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `dim` to be an int >= 1, got 0")):
        SchemaVectorStore(0, device="cpu")
    with pytest.raises(TypeError, match=re.escape("Expected `dim` to be an int >= 1, got 4.0")):
        SchemaVectorStore(4.0, device="cpu")  # type: ignore[arg-type]


def test_bad_vectors_and_ids() -> None:
    store = SchemaVectorStore(DIM, device="cpu")
    with pytest.raises(ValueError, match=re.escape(f"Expected `vectors` to be a finite (n, {DIM}) array, got 'shape (2, 3)'")):
        store.upsert([1, 2], np.zeros((2, 3)))
    with pytest.raises(ValueError, match=re.escape("got 'non-finite values'")):
        store.upsert([1, 2], np.full((2, DIM), np.inf))
    with pytest.raises(ValueError, match=re.escape(f"Expected `query` to be a ({DIM},) or (m, {DIM}) array")):
        store.search(np.ones(DIM + 1), k=1)
    with pytest.raises(ValueError, match=re.escape(_BAD_IDS.format(2, [1, 1]))):
        store.upsert([1, 1], np.ones((2, DIM)))
    with pytest.raises(ValueError, match=re.escape("Expected `k` to be an int >= 1, got 0")):
        store.search(np.ones(DIM), k=0)
    with pytest.raises(TypeError, match=re.escape("Expected `k` to be an int >= 1, got 2.0")):
        store.search(np.ones(DIM), k=2.0)  # type: ignore[arg-type]


def test_bad_payload_type() -> None:
    store = SchemaVectorStore(DIM, device="cpu")
    with pytest.raises(TypeError, match=re.escape(_BAD_PAYLOAD_TYPE.format("object"))):
        store.upsert([1], np.ones((1, DIM)), [{"id": 1, "thing": object()}])


def test_vectors_are_normalized_centroids() -> None:
    store, ids, vectors = _filled(4)
    got = store.vectors(ids[[2, 0]])
    expected = vectors[[2, 0]] / np.linalg.norm(vectors[[2, 0]], axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert store.vectors([]).shape == (0, DIM)
