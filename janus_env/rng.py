"""Per-book random numbers for numba kernels: xoshiro256** on a uint64[4] state.

numba's own ``np.random`` inside ``@njit`` is one global stream per thread, so
two environments stepped alternately would perturb each other. Each book
instead owns a 4-word state array seeded from the environment's
``np_random`` (Blackman & Vigna, "Scrambled linear pseudorandom number
generators", 2021).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_U5 = np.uint64(5)
_U7 = np.uint64(7)
_U9 = np.uint64(9)
_U11 = np.uint64(11)
_U17 = np.uint64(17)
_U45 = np.uint64(45)
_U57 = np.uint64(57)
_U19 = np.uint64(19)
_INV_2_53 = 1.0 / 9007199254740992.0


def seed_state(rng: np.random.Generator) -> np.ndarray:
    """Draw a fresh non-zero xoshiro state from a numpy ``Generator``."""
    state = rng.integers(1, np.iinfo(np.uint64).max, size=4, dtype=np.uint64, endpoint=True)
    return state


@njit(cache=True, inline="always")
def next_u64(s):
    s1 = s[1]
    x = s1 * _U5
    result = ((x << _U7) | (x >> _U57)) * _U9
    t = s1 << _U17
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s3 = s[3]
    s[3] = (s3 << _U45) | (s3 >> _U19)
    return result


@njit(cache=True, inline="always")
def uniform(s):
    """U[0, 1) with 53 random bits."""
    return float(next_u64(s) >> _U11) * _INV_2_53


@njit(cache=True)
def normal(s):
    """Standard normal by Box–Muller (one draw per call)."""
    u1 = uniform(s)
    while u1 <= 1e-300:
        u1 = uniform(s)
    u2 = uniform(s)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


@njit(cache=True)
def poisson(s, lam):
    """Poisson(lam) by Knuth's multiplication method (fine for lam < ~30)."""
    if lam <= 0.0:
        return 0
    limit = math.exp(-lam)
    k = 0
    p = uniform(s)
    while p > limit:
        k += 1
        p *= uniform(s)
    return k


@njit(cache=True)
def geometric(s, p):
    """Number of failures before the first success, success probability ``p``."""
    u = uniform(s)
    if p >= 1.0:
        return 0
    return int(math.log(1.0 - u) / math.log(1.0 - p))
