"""Tests for replay.memory: the read path (recall by cosine, recalled outcomes, evidence, No-Go prior, files).

Every number is checked against an independent computation: cosines and top-k by brute force (and against the
faiss store and ``SchemaMemory.recall``), the recalled outcome, advantage, evidence and shift by explicit loops.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from replay.hippocampus import PatternSeparationEncoder
from replay.memory import _BAD_ARRAY, _BAD_FILE, MemoryReader, nogo_with_prior
from replay.schemas import SchemaMemory
from replay.vector_store import SchemaVectorStore


def _reader(rng: np.random.Generator, *, n_schemas: int = 12, dim: int = 6, n_actions: int = 3, k: int = 4,
            min_similarity: float = 0.2, weight: float = 4.0, horizon: int = 4) -> MemoryReader:
    centroids = rng.normal(size=(n_schemas, dim))
    counts = rng.integers(0, 40, size=(n_schemas, n_actions)).astype(float)
    outcome = rng.normal(size=(n_schemas, n_actions))
    return MemoryReader(centroids, 100 + np.arange(n_schemas), counts, outcome, 0.8, horizon=horizon,
                        input_dim=dim, features="raw", k=k, min_similarity=min_similarity, weight=weight)


def _by_hand(reader: MemoryReader, x: np.ndarray) -> dict[str, np.ndarray]:
    """The module docstring's steps 2-5, one state and one schema at a time (test only)."""
    cents = reader.centroids  # already unit length
    out = {name: [] for name in ("ids", "sims", "n", "m", "adv", "z", "shift")}
    for row in x:
        q = row / np.linalg.norm(row)
        sims = [float(c @ q) / float(np.linalg.norm(c)) for c in cents]
        order = sorted(range(len(sims)), key=lambda j: (-sims[j], j))[: reader.k]
        recalled = [j for j in order if sims[j] >= reader.min_similarity]
        n = np.zeros(reader.n_actions)
        s = np.zeros(reader.n_actions)
        for j in recalled:
            for a in range(reader.n_actions):
                n[a] += sims[j] * reader.action_counts[j, a]
                s[a] += sims[j] * reader.action_counts[j, a] * reader.action_outcome[j, a]
        m = np.where(n > 0, s / np.where(n > 0, n, 1), np.nan)
        mbar = s.sum() / n.sum() if n.sum() > 0 else 0.0
        adv = np.where(n > 0, m - mbar, 0.0)
        z = np.where(n > 0, adv * np.sqrt(n / reader.horizon) / reader.outcome_std, 0.0)
        ids = [int(reader.ids[j]) for j in recalled] + [-1] * (reader.k - len(recalled))
        out["ids"].append(ids)
        out["sims"].append([sims[j] for j in recalled] + [np.nan] * (reader.k - len(recalled)))
        out["n"].append(n), out["m"].append(m), out["adv"].append(adv), out["z"].append(z)
        out["shift"].append(-reader.weight * np.tanh(z / 2))
    return {name: np.asarray(v) for name, v in out.items()}


def test_recall_matches_a_computation_by_hand() -> None:
    rng = np.random.default_rng(0)
    reader = _reader(rng)
    x = rng.normal(size=(25, 6))
    rec = reader.recall(x)
    ref = _by_hand(reader, x)
    np.testing.assert_array_equal(rec.ids, ref["ids"])
    np.testing.assert_allclose(rec.similarity, ref["sims"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rec.counts, ref["n"], rtol=1e-12)
    np.testing.assert_allclose(rec.outcome, ref["m"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rec.advantage, ref["adv"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rec.z, ref["z"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rec.shift, ref["shift"], rtol=1e-10, atol=1e-12)
    assert (rec.ids == -1).any() and (rec.ids >= 0).any()  # the threshold both keeps and drops schemas here


def test_recall_is_the_stores_and_the_schemas_top_k_cosine() -> None:
    """The reader's k nearest = faiss's (``SchemaVectorStore.search_arrays``) = ``SchemaMemory.recall``."""
    rng = np.random.default_rng(1)
    mem = SchemaMemory(5, tau_schema=-1e9, n_actions=2)
    for i in range(9):  # 9 schemas: tau_schema=-1e9 joins everything, so open them one by one
        mem._append(rng.normal(size=5), 0.0)
    mem.consolidate(rng.normal(size=(60, 5)), np.ones(60), np.ones(60), now=0.0,
                    actions=rng.integers(0, 2, 60), outcomes=rng.normal(size=60))
    store = SchemaVectorStore(5, device="cpu")
    store.upsert(mem.ids, mem.means, mem.payloads())
    reader = MemoryReader(store.vectors(store.ids), store.ids, mem.action_counts, mem.action_outcome,
                          mem.outcome_std, input_dim=5, features="raw", k=3, min_similarity=0.1)
    x = rng.normal(size=(30, 5))
    rec = reader.recall(x)
    ids_mem, sims_mem = mem.recall(x, 3, 0.1)
    np.testing.assert_array_equal(rec.ids, ids_mem)
    np.testing.assert_allclose(rec.similarity, sims_mem, atol=1e-6)  # the store keeps float32 centroids
    ids_faiss, sims_faiss = store.search_arrays(x, 3)
    keep = sims_faiss >= 0.1
    np.testing.assert_array_equal(rec.ids, np.where(keep, ids_faiss, -1))
    np.testing.assert_allclose(rec.similarity[keep], sims_faiss[keep], atol=1e-5)


def test_code_features_are_the_encoders_codes() -> None:
    rng = np.random.default_rng(2)
    torch.manual_seed(0)
    enc = PatternSeparationEncoder(9, 20, sparsity=0.2)
    states = rng.normal(size=(300, 9)) * np.linspace(0.1, 50.0, 9)
    enc.fit(states, steps=30, rng=np.random.default_rng(0))
    encoder = {"mean": enc.input_mean.numpy(), "scale": enc.input_scale.numpy(),
               "weight": enc.linear.weight.detach().numpy(), "bias": enc.linear.bias.detach().numpy(), "k": enc.k}
    codes = enc.encode_numpy(states[:40]).astype(np.float64)
    reader = MemoryReader(codes[:10], np.arange(10), np.ones((10, 2)), np.zeros((10, 2)), 1.0, input_dim=9,
                          features="code", encoder=encoder, k=10, min_similarity=1e-9)
    rec = reader.recall(states[:40])
    unit = codes / np.linalg.norm(codes, axis=1, keepdims=True)
    cents = unit[:10]
    expected = np.sort(unit @ cents.T, axis=1)[:, ::-1]
    np.testing.assert_allclose(np.where(np.isnan(rec.similarity), 0, rec.similarity),
                               np.where(expected >= 1e-9, expected, 0), atol=1e-5)
    np.testing.assert_allclose(rec.similarity[np.arange(10), 0], 1.0, atol=1e-5)  # each centroid recalls itself


def test_prior_moves_nogo_in_the_documented_direction() -> None:
    """Worse-than-usual recalled outcomes raise No-Go, better ones lower it, nothing recalled leaves it."""
    cents = np.array([[1.0, 0.0], [0.0, 1.0]])
    counts = np.array([[50.0, 50.0, 50.0], [0.0, 0.0, 0.0]])
    outcome = np.array([[0.0, 3.0, -3.0], [0.0, 0.0, 0.0]])  # action 1 better, action 2 worse than average
    reader = MemoryReader(cents, np.array([7, 8]), counts, outcome, 1.0, horizon=1, input_dim=2, features="raw",
                          k=1, min_similarity=0.9)
    rec = reader.recall(np.array([[2.0, 0.1], [0.1, 2.0], [-1.0, 0.0]]))
    np.testing.assert_array_equal(rec.ids[:, 0], [7, 8, -1])
    assert rec.shift[0, 1] < 0 < rec.shift[0, 2] and abs(rec.shift[0, 0]) < 1e-12  # action 0 = the mean
    assert np.all(rec.shift[1:] == 0) and np.all(rec.z[1:] == 0)  # schema 8 holds no transitions; row 2: none
    nogo = np.full((3, 3), 0.3)
    after = nogo_with_prior(nogo, rec.shift)
    assert after[0, 2] > 0.3 > after[0, 1]
    np.testing.assert_allclose(after[1:], 0.3)
    assert np.all(np.abs(rec.shift) < reader.weight)  # |Δ| < β
    # the closed form equals sigmoid(logit(p) + Δ)
    logit = math.log(0.3 / 0.7)
    np.testing.assert_allclose(after[0], 1 / (1 + np.exp(-(logit + rec.shift[0]))), rtol=1e-12)
    np.testing.assert_array_equal(nogo_with_prior(np.array([0.0, 1.0]), np.array([5.0, -5.0])), [0.0, 1.0])


def test_evidence_counts_overlapping_outcomes_once_per_horizon() -> None:
    """z ∝ √(n/H): the same memory read with horizon 16 has a quarter of horizon 1's evidence."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 6))
    one = _reader(np.random.default_rng(4), horizon=1).recall(x)
    sixteen = _reader(np.random.default_rng(4), horizon=16).recall(x)
    np.testing.assert_allclose(sixteen.z, one.z / 4.0, rtol=1e-12, atol=1e-15)


def test_empty_memory_recalls_nothing() -> None:
    reader = MemoryReader(np.zeros((0, 3)), np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros((0, 2)), 0.0,
                          input_dim=3, features="raw")
    rec = reader.recall(np.ones((2, 3)))
    assert np.all(rec.ids == -1) and np.all(np.isnan(rec.similarity)) and np.all(rec.shift == 0)
    assert len(reader) == 0


def test_save_load_roundtrip_is_bit_identical(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    enc = PatternSeparationEncoder(6, 12)
    encoder = {"mean": rng.normal(size=6), "scale": rng.uniform(0.5, 2, 6), "weight": enc.linear.weight.detach().numpy(),
               "bias": rng.normal(size=12) * 0.1, "k": 3}
    reader = MemoryReader(rng.normal(size=(5, 12)), np.arange(5) * 3, rng.integers(0, 9, (5, 3)).astype(float),
                          rng.normal(size=(5, 3)), 1.5, horizon=8, input_dim=6, features="code", encoder=encoder,
                          k=2, min_similarity=0.3, weight=2.5)
    path = reader.save(tmp_path / "memory.npz")
    loaded = MemoryReader.load(path)
    x = rng.normal(size=(20, 6))
    for a, b in zip(reader.recall(x), loaded.recall(x), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (loaded.k, loaded.min_similarity, loaded.weight, loaded.horizon) == (2, 0.3, 2.5, 8)
    with np.load(path, allow_pickle=False) as data:  # nothing in the file needs pickle
        assert {"header", "centroids", "encoder_weight"} <= set(data.files)


def test_bad_memory_files(tmp_path: Path) -> None:
    missing = tmp_path / "none.npz"
    with pytest.raises(ValueError, match=re.escape(_BAD_FILE.format(missing, "")[:-2])):
        MemoryReader.load(missing)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=re.escape(f"{junk}: not a memory file")):
        MemoryReader.load(junk)
    reader = _reader(np.random.default_rng(6))
    path = reader.save(tmp_path / "m.npz")
    with np.load(path) as data:
        parts = dict(data)
    parts["action_counts"] = parts["action_counts"][:, :2]  # another number of actions than the outcomes
    np.savez(tmp_path / "bad.npz", **parts)
    with pytest.raises(ValueError, match=re.escape(_BAD_ARRAY.format("action_outcome", (12, 2), (12, 3)))):
        MemoryReader.load(tmp_path / "bad.npz")


def test_bad_arguments() -> None:
    rng = np.random.default_rng(7)
    reader = _reader(rng)
    with pytest.raises(ValueError, match=re.escape("Expected `observations` to be a finite (n, 6) array, got 'shape (2, 5)'")):
        reader.recall(np.ones((2, 5)))
    with pytest.raises(ValueError, match=re.escape("Expected `observations` to be a finite (n, ")):
        reader.recall(np.full((1, 6), np.nan))
    args = (np.ones((2, 3)), np.arange(2), np.ones((2, 2)), np.ones((2, 2)), 1.0)
    with pytest.raises(ValueError, match=re.escape("Expected `min_similarity` to be a number in (0, 1], got 0.0")):
        MemoryReader(*args, input_dim=3, features="raw", min_similarity=0.0)
    with pytest.raises(ValueError, match=re.escape("Expected `weight` to be a finite number >= 0, got -1.0")):
        MemoryReader(*args, input_dim=3, features="raw", weight=-1.0)
    with pytest.raises(ValueError, match=re.escape(_BAD_ARRAY.format("centroids", (2, 4), (2, 3)))):
        MemoryReader(*args, input_dim=4, features="raw")
    with pytest.raises(TypeError, match=re.escape("Expected `encoder` to be a dict of mean, scale, weight, bias")):
        MemoryReader(*args, input_dim=3, features="code")
    with pytest.raises(ValueError, match=re.escape("Expected `action_counts` to be counts >= 0")):
        MemoryReader(args[0], args[1], -np.ones((2, 2)), args[3], 1.0, input_dim=3, features="raw")
