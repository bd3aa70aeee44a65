"""Per-book xoshiro256** streams (``janus_env.rng``).

The numba draws are called through small ``@njit`` wrappers that fill whole
arrays, so 200k draws cost milliseconds. Moment checks use tolerances of about
six standard errors: loose enough never to flake, tight enough to catch a
wrong distribution.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from janus_env.rng import geometric, next_u64, normal, poisson, seed_state, uniform

N = 200_000
MASK = (1 << 64) - 1


@njit
def fill_u64(s, out):
    for i in range(out.shape[0]):
        out[i] = next_u64(s)


@njit
def fill_uniform(s, out):
    for i in range(out.shape[0]):
        out[i] = uniform(s)


@njit
def fill_normal(s, out):
    for i in range(out.shape[0]):
        out[i] = normal(s)


@njit
def fill_poisson(s, lam, out):
    for i in range(out.shape[0]):
        out[i] = poisson(s, lam)


@njit
def fill_geometric(s, p, out):
    for i in range(out.shape[0]):
        out[i] = geometric(s, p)


def state(seed: int) -> np.ndarray:
    return seed_state(np.random.default_rng(seed))


def u64_stream(s: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint64)
    fill_u64(s, out)
    return out


def xoshiro256ss(words: list[int], n: int) -> list[int]:
    """Pure-Python transcription of Blackman & Vigna's reference ``next()``."""

    def rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (64 - k))) & MASK

    s = list(words)
    out = []
    for _ in range(n):
        out.append((rotl((s[1] * 5) & MASK, 7) * 9) & MASK)
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out


# --------------------------------------------------------------------------- streams


def test_seed_state_is_four_nonzero_words() -> None:
    s = state(0)
    assert s.dtype == np.uint64 and s.shape == (4,)
    assert (s != 0).all()


def test_same_seed_same_stream() -> None:
    np.testing.assert_array_equal(state(7), state(7))
    np.testing.assert_array_equal(u64_stream(state(7), 1000), u64_stream(state(7), 1000))
    a, b = np.empty(1000), np.empty(1000)
    fill_normal(state(3), a)
    fill_normal(state(3), b)
    np.testing.assert_array_equal(a, b)


def test_different_seeds_differ() -> None:
    streams = [u64_stream(state(seed), 100) for seed in range(5)]
    for i in range(5):
        for j in range(i + 1, 5):
            assert (streams[i] != streams[j]).mean() > 0.99


def test_state_advances_in_place() -> None:
    s = state(1)
    start = s.copy()
    first = u64_stream(s, 10)
    assert not np.array_equal(s, start)
    second = u64_stream(s, 10)
    assert not np.array_equal(first, second)
    # continuing the stream equals drawing it in one go
    np.testing.assert_array_equal(np.concatenate([first, second]), u64_stream(start, 20))


def test_two_states_do_not_interfere() -> None:
    """Interleaving two books' draws leaves each stream as if drawn alone."""
    a, b = state(11), state(12)
    alone_a, alone_b = u64_stream(a.copy(), 50), u64_stream(b.copy(), 50)
    inter_a = np.concatenate([u64_stream(a, 1) for _ in range(50)])
    inter_b = np.concatenate([u64_stream(b, 1) for _ in range(50)])
    u64_stream(a, 3)
    np.testing.assert_array_equal(inter_a, alone_a)
    np.testing.assert_array_equal(inter_b, alone_b)


@pytest.mark.parametrize("seed", [0, 1, 2024])
def test_next_u64_matches_reference_xoshiro256ss(seed: int) -> None:
    s = state(seed)
    expected = xoshiro256ss([int(w) for w in s], 200)
    assert u64_stream(s, 200).tolist() == expected


def test_next_u64_known_state() -> None:
    # s = (1, 2, 3, 4): first output is rotl(s[1]·5, 7)·9 = rotl(10, 7)·9 = 11520
    s = np.array([1, 2, 3, 4], dtype=np.uint64)
    out = u64_stream(s, 4).tolist()
    assert out[0] == 11520
    assert out == xoshiro256ss([1, 2, 3, 4], 4)


# --------------------------------------------------------------------------- distributions


def test_uniform_in_unit_interval_with_right_moments() -> None:
    x = np.empty(N)
    fill_uniform(state(0), x)
    assert x.min() >= 0.0 and x.max() < 1.0
    assert abs(x.mean() - 0.5) < 6 * math.sqrt(1 / 12 / N)
    assert abs(x.var() - 1 / 12) < 0.002
    counts = np.histogram(x, bins=10, range=(0.0, 1.0))[0]
    assert np.abs(counts - N / 10).max() < 6 * math.sqrt(N / 10)


def test_normal_mean_and_variance() -> None:
    x = np.empty(N)
    fill_normal(state(1), x)
    assert np.isfinite(x).all()
    assert abs(x.mean()) < 6 / math.sqrt(N)
    assert abs(x.var() - 1.0) < 6 * math.sqrt(2 / N)
    assert abs(np.mean(np.abs(x) < 1.0) - 0.6826894921) < 0.006


@pytest.mark.parametrize("lam", [0.5, 3.0, 20.0])
def test_poisson_mean_and_variance(lam: float) -> None:
    n = 100_000
    k = np.empty(n, dtype=np.int64)
    fill_poisson(state(2), lam, k)
    assert k.min() >= 0
    assert abs(k.mean() - lam) < 6 * math.sqrt(lam / n)
    assert k.var() == pytest.approx(lam, rel=0.05)
    assert abs(np.mean(k == 0) - math.exp(-lam)) < 6 * math.sqrt(math.exp(-lam) / n) + 1e-4


def test_poisson_non_positive_rate_is_zero() -> None:
    k = np.empty(10, dtype=np.int64)
    fill_poisson(state(3), 0.0, k)
    assert (k == 0).all()
    fill_poisson(state(3), -1.0, k)
    assert (k == 0).all()


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_geometric_mean_is_failures_before_success(p: float) -> None:
    n = 100_000
    k = np.empty(n, dtype=np.int64)
    fill_geometric(state(4), p, k)
    mean, var = (1 - p) / p, (1 - p) / p**2
    assert k.min() >= 0
    assert abs(k.mean() - mean) < 6 * math.sqrt(var / n)
    assert abs(np.mean(k == 0) - p) < 6 * math.sqrt(p * (1 - p) / n)


def test_geometric_certain_success_is_zero() -> None:
    k = np.empty(10, dtype=np.int64)
    fill_geometric(state(5), 1.0, k)
    assert (k == 0).all()
