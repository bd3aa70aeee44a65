"""Tests for replay.hippocampus: pattern separation and the episodic FIFO."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from replay.hippocampus import (
    _BAD_CODES_SHAPE,
    _BAD_INPUT_SHAPE,
    _BAD_LENGTHS,
    _BAD_RANGE,
    _NON_FINITE_TIMESTAMPS,
    EpisodicBuffer,
    PatternSeparationEncoder,
)


def _encoder(d_in: int, d_h: int, seed: int = 0) -> PatternSeparationEncoder:
    torch.manual_seed(seed)
    return PatternSeparationEncoder(d_in, d_h)


# ---------------------------------------------------------------- encoder


@pytest.mark.parametrize(("d_in", "d_h"), [(8, 32), (16, 16), (32, 8)])
def test_orthogonal_at_init(d_in: int, d_h: int) -> None:
    w = _encoder(d_in, d_h).weight.detach()
    gram = w.T @ w if d_h >= d_in else w @ w.T
    torch.testing.assert_close(gram, torch.eye(min(d_in, d_h)), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("d_in", "d_h"), [(8, 32), (16, 16), (32, 8)])
def test_penalty_zero_at_init_positive_after_perturbation(d_in: int, d_h: int) -> None:
    enc = _encoder(d_in, d_h)
    assert float(enc.orthogonality_penalty().detach()) == pytest.approx(0.0, abs=1e-9)
    with torch.no_grad():
        enc.linear.weight.add_(0.1 * torch.randn_like(enc.linear.weight))
    penalty = enc.orthogonality_penalty()
    assert float(penalty.detach()) > 0.0
    penalty.backward()
    grad = enc.linear.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_penalty_formula_square() -> None:
    enc = _encoder(4, 4)
    with torch.no_grad():
        enc.linear.weight.copy_(2.0 * torch.eye(4))
    # WᵀW − I = 3I → ‖·‖² = 4·9 = 36, times λ = 1e-2
    assert float(enc.orthogonality_penalty().detach()) == pytest.approx(0.36)


def test_exactly_k_nonzeros() -> None:
    d_h = 64
    enc = _encoder(16, d_h)
    k = math.ceil(0.1 * d_h)
    assert enc.k == k == 7
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(1))
    codes = enc(x)
    nnz = (codes != 0).sum(dim=1)
    active = (torch.relu(enc.linear(x)) > 0).sum(dim=1)
    assert bool((active >= k).all())  # so the code must have exactly k
    assert bool((nnz == k).all())
    assert bool((codes >= 0).all())


def test_kept_units_are_the_largest() -> None:
    enc = _encoder(8, 40)
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(2))
    h = torch.relu(enc.linear(x))
    codes = enc(x)
    kth = torch.sort(h, dim=1, descending=True).values[:, enc.k - 1 : enc.k]
    assert bool(((codes > 0) <= (h >= kth)).all())
    torch.testing.assert_close(codes[codes != 0], h[codes != 0])


def test_ties_are_deterministic_lowest_index() -> None:
    enc = _encoder(4, 20)  # k = 2
    with torch.no_grad():
        enc.linear.weight.zero_()
        enc.linear.bias.fill_(1.0)  # every unit ties at 1.0
    codes = enc(torch.zeros(3, 4))
    expected = torch.zeros(3, 20)
    expected[:, :2] = 1.0
    torch.testing.assert_close(codes, expected)


def test_fewer_active_units_than_k() -> None:
    enc = _encoder(4, 20)
    codes = enc(torch.zeros(2, 4))  # zero bias, zero input → nothing active
    assert int((codes != 0).sum()) == 0


def test_gradient_flows_through_kept_units() -> None:
    enc = _encoder(8, 32)
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(3))
    enc(x).sum().backward()
    assert enc.linear.weight.grad is not None and enc.linear.weight.grad.abs().sum() > 0


def test_encode_numpy_matches_forward() -> None:
    enc = _encoder(8, 32)
    x = np.random.default_rng(0).normal(size=(5, 8))
    out = enc.encode_numpy(x)
    assert out.dtype == np.float32 and out.shape == (5, 32)
    np.testing.assert_allclose(out, enc(torch.as_tensor(x, dtype=torch.float32)).detach().numpy())


def test_bad_dim() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `hidden_dim` to be an int >= 1, got 0")):
        PatternSeparationEncoder(4, 0)
    with pytest.raises(TypeError, match=re.escape("Expected `input_dim` to be an int >= 1, got 4.0")):
        PatternSeparationEncoder(4.0, 8)  # type: ignore[arg-type]


@pytest.mark.parametrize(("sparsity", "error"), [(1.5, ValueError), (0.0, ValueError), (float("nan"), ValueError),
                                                 ("0.1", TypeError)])
def test_bad_sparsity(sparsity: object, error: type) -> None:
    with pytest.raises(error, match=re.escape(f"Expected `sparsity` to be a number in (0, 1], got {sparsity!r}")):
        PatternSeparationEncoder(4, 8, sparsity=sparsity)  # type: ignore[arg-type]


def test_bad_lambda() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `ortho_lambda` to be a finite number >= 0, got -1.0")):
        PatternSeparationEncoder(4, 8, ortho_lambda=-1.0)
    with pytest.raises(ValueError, match=re.escape("Expected `ortho_lambda` to be a finite number >= 0, got nan")):
        PatternSeparationEncoder(4, 8, ortho_lambda=float("nan"))


def test_bad_input_shape() -> None:
    enc = _encoder(4, 8)
    with pytest.raises(ValueError) as err:
        enc(torch.zeros(2, 5))
    assert str(err.value) == _BAD_INPUT_SHAPE.format(4, (2, 5))


# ---------------------------------------------------------------- episodic buffer


def _fill(buf: EpisodicBuffer, timestamps: np.ndarray, start_id: int = 0) -> None:
    n = timestamps.shape[0]
    codes = np.repeat(np.arange(start_id, start_id + n, dtype=np.float32)[:, None], buf.code_dim, axis=1)
    buf.add(codes, timestamps, np.arange(start_id, start_id + n))


def test_fifo_eviction_order() -> None:
    buf = EpisodicBuffer(3, capacity=5)
    for i in range(8):  # one at a time: ids 0..7, the first 3 evicted
        _fill(buf, np.array([float(i)]), start_id=i)
    assert len(buf) == 5
    np.testing.assert_array_equal(buf.last(5).payload_ids, [3, 4, 5, 6, 7])
    np.testing.assert_array_equal(buf.last(2).payload_ids, [6, 7])
    np.testing.assert_array_equal(buf.last(0).payload_ids, np.zeros(0, dtype=np.int64))
    np.testing.assert_array_equal(buf.last(99).payload_ids, [3, 4, 5, 6, 7])
    np.testing.assert_array_equal(buf.last(5).codes[:, 0], [3, 4, 5, 6, 7])


def test_batch_larger_than_capacity_keeps_newest() -> None:
    buf = EpisodicBuffer(2, capacity=4)
    _fill(buf, np.arange(3.0))
    _fill(buf, np.arange(3.0, 13.0), start_id=3)  # 10 rows into a ring of 4
    np.testing.assert_array_equal(buf.last(4).payload_ids, [9, 10, 11, 12])
    np.testing.assert_array_equal(buf.between(-np.inf, np.inf).payload_ids, [9, 10, 11, 12])
    _fill(buf, np.array([13.0]), start_id=13)
    np.testing.assert_array_equal(buf.last(4).payload_ids, [10, 11, 12, 13])


def _brute_between(ts_all: np.ndarray, ids_all: np.ndarray, capacity: int, t0: float, t1: float) -> np.ndarray:
    ts, ids = ts_all[-capacity:], ids_all[-capacity:]
    keep = (ts >= t0) & (ts <= t1)
    order = np.argsort(ts[keep], kind="stable")
    return ids[keep][order]


@pytest.mark.parametrize("monotone", [True, False])
def test_between_matches_brute_force(monotone: bool) -> None:
    rng = np.random.default_rng(7)
    capacity = 37
    buf = EpisodicBuffer(2, capacity=capacity)
    all_ts: list[np.ndarray] = []
    next_id = 0
    t = 0.0
    for _ in range(12):  # several wraparounds, uneven batch sizes
        n = int(rng.integers(1, 15))
        if monotone:
            ts = t + np.cumsum(rng.integers(0, 3, size=n)).astype(np.float64)  # repeats allowed
            t = float(ts[-1])
        else:
            ts = rng.integers(0, 50, size=n).astype(np.float64)
        _fill(buf, ts, start_id=next_id)
        all_ts.append(ts)
        next_id += n
        ts_all = np.concatenate(all_ts)
        ids_all = np.arange(next_id)
        for _ in range(5):
            t0, t1 = np.sort(rng.uniform(-1, max(ts_all.max(), 1) + 1, size=2))
            got = buf.between(t0, t1)
            np.testing.assert_array_equal(got.payload_ids, _brute_between(ts_all, ids_all, capacity, t0, t1))
            assert np.all(np.diff(got.timestamps) >= 0)
        point = float(ts_all[-1])  # inclusive bounds
        np.testing.assert_array_equal(
            buf.between(point, point).payload_ids, _brute_between(ts_all, ids_all, capacity, point, point)
        )


def test_state_dict_roundtrip() -> None:
    buf = EpisodicBuffer(2, capacity=6)
    _fill(buf, np.array([5.0, 1.0, 3.0, 9.0, 2.0, 8.0, 7.0]))
    other = EpisodicBuffer(2, capacity=6)
    other.load_state_dict(buf.state_dict())
    np.testing.assert_array_equal(other.between(2.0, 8.0).payload_ids, buf.between(2.0, 8.0).payload_ids)
    np.testing.assert_array_equal(other.last(3).payload_ids, buf.last(3).payload_ids)


def test_bad_capacity() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `capacity` to be an int >= 1, got 0")):
        EpisodicBuffer(2, capacity=0)
    with pytest.raises(TypeError, match=re.escape("Expected `code_dim` to be an int >= 1, got True")):
        EpisodicBuffer(True, capacity=4)  # type: ignore[arg-type]


def test_bad_codes_shape() -> None:
    buf = EpisodicBuffer(2, capacity=4)
    with pytest.raises(ValueError) as err:
        buf.add(np.zeros((3, 5)), np.zeros(3), np.zeros(3))
    assert str(err.value) == _BAD_CODES_SHAPE.format(2, (3, 5))


def test_bad_lengths() -> None:
    buf = EpisodicBuffer(2, capacity=4)
    with pytest.raises(ValueError) as err:
        buf.add(np.zeros((3, 2)), np.zeros(2), np.zeros(3))
    assert str(err.value) == _BAD_LENGTHS.format(3, 2, 3)


def test_non_finite_timestamps() -> None:
    buf = EpisodicBuffer(2, capacity=4)
    with pytest.raises(ValueError, match=re.escape(_NON_FINITE_TIMESTAMPS)):
        buf.add(np.zeros((1, 2)), np.array([np.nan]), np.zeros(1))


def test_bad_range_and_n() -> None:
    buf = EpisodicBuffer(2, capacity=4)
    with pytest.raises(ValueError, match=re.escape(_BAD_RANGE.format(2.0, 1.0))):
        buf.between(2.0, 1.0)
    with pytest.raises(ValueError, match=re.escape("Expected `n` to be an int >= 0, got -1")):
        buf.last(-1)
    with pytest.raises(TypeError, match=re.escape("Expected `n` to be an int >= 0, got 2.0")):
        buf.last(2.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------- training (k-sparse autoencoder)


def _clusters(seed: int, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Six well-separated clusters in 12 dimensions whose features differ in scale by 1000x."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(6, 12)) * 3.0
    labels = rng.integers(0, 6, size=n)
    x = (centers[labels] + 0.3 * rng.normal(size=(n, 12))) * np.logspace(-1, 2, 12)
    return x, labels


def _overlap_gap(codes: np.ndarray, labels: np.ndarray) -> float:
    """Mean cosine of codes in the same cluster minus that of codes in different clusters."""
    unit = codes / np.maximum(np.linalg.norm(codes, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    return float(cos[same & off].mean() - cos[~same].mean())


def test_fit_reduces_the_reconstruction_and_separates_clusters() -> None:
    x, labels = _clusters(0)
    enc = _encoder(12, 32)
    enc.fit(x, steps=1, lr=1e-12, rng=np.random.default_rng(0))  # sets the standardization, moves nothing
    before = _overlap_gap(enc.encode_numpy(x), labels)
    report = enc.fit(x, steps=300, rng=np.random.default_rng(0))
    after = _overlap_gap(enc.encode_numpy(x), labels)
    assert report.steps == 300 and enc.trained and int(enc.fit_steps) == 301
    assert report.reconstruction_after < 0.7 * report.reconstruction_before
    assert after > before + 0.1, (before, after)  # same-cluster codes overlap more, others less, than at init
    # the standardization is each feature's mean and standard deviation (set on the first fit, then kept)
    np.testing.assert_allclose(enc.input_mean.numpy(), x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(enc.input_scale.numpy(), x.std(axis=0), rtol=1e-5)


def test_orthogonality_penalty_pulls_a_perturbed_encoder_back() -> None:
    """With λ the training drives ‖WWᵀ − I‖ down from a perturbed start; without it, it does not."""
    x, _ = _clusters(1)
    penalties = {}
    for lam in (0.0, 1.0):
        torch.manual_seed(0)
        enc = PatternSeparationEncoder(12, 8, ortho_lambda=lam)
        with torch.no_grad():
            enc.linear.weight.mul_(1.5)
        raw = float(((enc.weight @ enc.weight.T - torch.eye(8)) ** 2).sum().detach())
        enc.fit(x, steps=200, rng=np.random.default_rng(0))
        penalties[lam] = float(((enc.weight @ enc.weight.T - torch.eye(8)) ** 2).sum().detach())
        if lam > 0:
            assert penalties[lam] < 0.1 * raw
    assert penalties[1.0] < 0.1 * penalties[0.0]


def test_fit_is_deterministic_given_the_seed() -> None:
    x, _ = _clusters(2)
    weights = []
    for _ in range(2):
        enc = _encoder(12, 16, seed=3)
        enc.fit(x, steps=50, rng=np.random.default_rng(9))
        weights.append({k: v.clone() for k, v in enc.state_dict().items()})
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
    other = _encoder(12, 16, seed=3)
    other.fit(x, steps=50, rng=np.random.default_rng(10))
    assert not torch.equal(other.weight, weights[0]["linear.weight"])


def test_untrained_state_dicts_load_and_bad_fit_data() -> None:
    enc = _encoder(4, 8)
    old = {k: v for k, v in enc.state_dict().items() if k.startswith("linear.")}  # saved before fit existed
    fresh = _encoder(4, 8, seed=1)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.weight, enc.weight) and not fresh.trained
    assert torch.equal(fresh.input_scale, torch.ones(4))
    with pytest.raises(ValueError, match=re.escape("Expected finite training states of shape (n >= 2, 4), got shape (1, 4)")):
        enc.fit(np.ones((1, 4)), steps=1, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match=re.escape("Expected `rng` to be a numpy.random.Generator, got 3")):
        enc.fit(np.ones((5, 4)), steps=1, rng=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("Expected `steps` to be an int >= 0, got -1")):
        enc.fit(np.ones((5, 4)), steps=-1, rng=np.random.default_rng(0))
