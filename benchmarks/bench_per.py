"""SumTree throughput: JANUS numba SumTree vs the classic recursive Python SumTree.

One operation is a batched ``update`` of ``--batch`` leaves followed by a
batched ``sample`` of ``--batch`` leaves on a tree of ``--capacity`` leaves
(the inner loop of prioritized replay: sample a minibatch, write back its new
priorities). Named baselines, both implemented below:

* ``classic-python``: the recursive ``SumTree`` (``_propagate`` / ``_retrieve``
  on a flat numpy array of ``2·capacity − 1`` nodes, one leaf at a time) that
  most standalone PER repositories copy (e.g. rlcode/per, jaromiru/AI-blog).
* ``numpy-levels``: a vectorized numpy tree that updates and descends one level
  at a time for the whole batch (no per-element Python loop).

A second table times one training step's buffer round trip
(``sample`` + ``update_priorities``) of ``PrioritizedReplayBuffer`` against
SB3's uniform ``ReplayBuffer.sample`` at the same capacity.

Usage::

    python benchmarks/bench_per.py [--capacity 1000000] [--batch 256] [--seconds 2] [--no-buffers]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from replay.sumtree import SumTree  # noqa: E402


class ClassicSumTree:
    """The classic recursive PER sum tree, one leaf per call (the named baseline)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.tree = np.zeros(2 * capacity - 1)

    def _propagate(self, idx: int, change: float) -> None:
        parent = (idx - 1) // 2
        self.tree[parent] += change
        if parent != 0:
            self._propagate(parent, change)

    def _retrieve(self, idx: int, s: float) -> int:
        left = 2 * idx + 1
        right = left + 1
        if left >= len(self.tree):
            return idx
        if s <= self.tree[left]:
            return self._retrieve(left, s)
        return self._retrieve(right, s - self.tree[left])

    def total(self) -> float:
        return float(self.tree[0])

    def update(self, data_idx: int, p: float) -> None:
        idx = data_idx + self.capacity - 1
        change = p - self.tree[idx]
        self.tree[idx] = p
        self._propagate(idx, change)

    def get(self, s: float) -> tuple[int, float]:
        idx = self._retrieve(0, s)
        return idx - self.capacity + 1, float(self.tree[idx])

    # batched wrappers so that every implementation is driven the same way
    def update_batch(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        for i, p in zip(indices.tolist(), priorities.tolist(), strict=True):
            self.update(i, p)

    def sample_batch(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        segment = self.total() / batch
        values = (np.arange(batch) + rng.random(batch)) * segment
        return np.array([self.get(v)[0] for v in values.tolist()])


class NumpyLevelSumTree:
    """Vectorized numpy sum tree: whole batch moves one tree level per step."""

    def __init__(self, capacity: int) -> None:
        self.n_leaves = 1 << max(capacity - 1, 0).bit_length()
        self.tree = np.zeros(2 * self.n_leaves)

    def update_batch(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        nodes = indices + self.n_leaves
        self.tree[nodes] = priorities
        nodes = np.unique(nodes >> 1)
        while nodes[0] >= 1:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes >> 1)

    def sample_batch(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        segment = self.tree[1] / batch
        values = (np.arange(batch) + rng.random(batch)) * segment
        nodes = np.ones(batch, dtype=np.int64)
        while nodes[0] < self.n_leaves:
            left = 2 * nodes
            left_sum = self.tree[left]
            go_right = (values >= left_sum) & (self.tree[left + 1] > 0)
            values = np.where(go_right, values - left_sum, values)
            nodes = left + go_right
        return nodes - self.n_leaves


class JanusAdapter:
    """``replay.SumTree`` behind the same two-call interface."""

    def __init__(self, capacity: int) -> None:
        self.tree = SumTree(capacity)

    def update_batch(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        self.tree.update(indices, priorities)

    def sample_batch(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        return self.tree.sample(batch, rng)[0]


def measure(
    make: Callable[[int], object], capacity: int, batch: int, seconds: float, seed: int = 0
) -> tuple[float, float, int]:
    """Median µs per batched update and per batched sample over ``seconds`` of work."""
    rng = np.random.default_rng(seed)
    tree = make(capacity)
    tree.update_batch(np.arange(capacity), rng.random(capacity))  # type: ignore[attr-defined]
    # warm-up (numba compilation, caches)
    for _ in range(3):
        tree.update_batch(rng.integers(0, capacity, batch), rng.random(batch))  # type: ignore[attr-defined]
        tree.sample_batch(batch, rng)  # type: ignore[attr-defined]
    update_us: list[float] = []
    sample_us: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(update_us) < 5:
        indices = rng.integers(0, capacity, batch)
        priorities = rng.random(batch)
        t0 = time.perf_counter()
        tree.update_batch(indices, priorities)  # type: ignore[attr-defined]
        t1 = time.perf_counter()
        tree.sample_batch(batch, rng)  # type: ignore[attr-defined]
        t2 = time.perf_counter()
        update_us.append((t1 - t0) * 1e6)
        sample_us.append((t2 - t1) * 1e6)
    return float(np.median(update_us)), float(np.median(sample_us)), len(update_us)


def measure_buffers(capacity: int, batch: int, seconds: float, obs_dim: int = 8) -> list[tuple[str, float, int]]:
    """Median µs of one training-step buffer round trip, prioritized vs SB3's uniform buffer.

    Prioritized: ``sample(batch)`` + ``update_priorities(indices, td)``;
    uniform: ``sample(batch)``. Both buffers are full (``capacity`` transitions).
    """
    import torch as th
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    from replay.prioritized import PrioritizedReplayBuffer

    th.set_num_threads(1)
    obs_space = spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
    act_space = spaces.Discrete(3)
    rng = np.random.default_rng(0)
    results = []
    for name, cls, kwargs in (
        ("SB3 ReplayBuffer (uniform)", ReplayBuffer, {}),
        ("PrioritizedReplayBuffer", PrioritizedReplayBuffer, {"seed": 0}),
    ):
        buffer = cls(capacity, obs_space, act_space, device="cpu", **kwargs)
        buffer.observations[:] = rng.random(buffer.observations.shape, dtype=np.float32)
        buffer.next_observations[:] = buffer.observations
        buffer.full = True
        prioritized = isinstance(buffer, PrioritizedReplayBuffer)
        if prioritized:
            buffer.update_priorities(np.arange(capacity), rng.random(capacity))
        times: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 5:
            td = rng.random(batch)
            t0 = time.perf_counter()
            samples = buffer.sample(batch)
            if prioritized:
                buffer.update_priorities(samples.indices, td)
            times.append((time.perf_counter() - t0) * 1e6)
        results.append((name, float(np.median(times[3:])), len(times)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per implementation")
    parser.add_argument(
        "--no-buffers", dest="buffers", action="store_false", help="skip the replay-buffer round-trip table"
    )
    args = parser.parse_args()

    impls: list[tuple[str, Callable[[int], object]]] = [
        ("classic-python (baseline)", ClassicSumTree),
        ("numpy-levels", NumpyLevelSumTree),
        ("janus SumTree (numba)", JanusAdapter),
    ]
    results = []
    for name, make in impls:
        update_us, sample_us, reps = measure(make, args.capacity, args.batch, args.seconds)
        results.append((name, update_us, sample_us, reps))

    base_total = results[0][1] + results[0][2]
    print(f"SumTree update+sample, capacity={args.capacity:,}, batch={args.batch} (median over repetitions)")
    header = (
        f"| {'implementation':<26} | {'reps':>5} | {'update µs':>10} | {'sample µs':>10} "
        f"| {'ops/s':>9} | {'leaves/s':>12} | {'ratio':>7} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|")
    for name, update_us, sample_us, reps in results:
        total_us = update_us + sample_us
        ops = 1e6 / total_us  # one op = batched update + batched sample
        leaves = ops * 2 * args.batch
        print(
            f"| {name:<26} | {reps:>5} | {update_us:>10.1f} | {sample_us:>10.1f} "
            f"| {ops:>9.1f} | {leaves:>12,.0f} | {base_total / total_us:>6.1f}x |"
        )

    if args.buffers:
        print()
        print(f"Replay-buffer round trip per training step, capacity={args.capacity:,}, batch={args.batch}")
        print("| buffer                      | reps  | µs / step | vs uniform |")
        print("|-----------------------------|-------|-----------|------------|")
        rows = measure_buffers(args.capacity, args.batch, args.seconds)
        uniform_us = rows[0][1]
        for name, step_us, reps in rows:
            print(f"| {name:<27} | {reps:>5} | {step_us:>9.1f} | {step_us / uniform_us:>9.2f}x |")


if __name__ == "__main__":
    main()
