"""SumTree against a brute-force numpy reference."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from replay import sumtree
from replay.sumtree import SumTree

priorities_st = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def update_sequences(draw: st.DrawFn) -> tuple[int, list[tuple[list[int], list[float]]]]:
    capacity = draw(st.integers(min_value=1, max_value=70))
    n_batches = draw(st.integers(min_value=1, max_value=12))
    batches = []
    for _ in range(n_batches):
        size = draw(st.integers(min_value=0, max_value=2 * capacity))
        idx = draw(st.lists(st.integers(0, capacity - 1), min_size=size, max_size=size))
        pri = draw(st.lists(priorities_st, min_size=size, max_size=size))
        batches.append((idx, pri))
    return capacity, batches


def _reference(capacity: int, batches: list[tuple[list[int], list[float]]]) -> np.ndarray:
    leaves = np.zeros(capacity)
    for idx, pri in batches:
        for i, p in zip(idx, pri, strict=True):  # sequential: last write wins
            leaves[i] = p
    return leaves


@settings(max_examples=150, deadline=None)
@given(update_sequences())
def test_aggregates_match_reference(case: tuple[int, list[tuple[list[int], list[float]]]]) -> None:
    capacity, batches = case
    tree = SumTree(capacity, rebuild_every=7)
    for idx, pri in batches:
        tree.update(np.asarray(idx, dtype=np.int64), np.asarray(pri, dtype=np.float64))
    leaves = _reference(capacity, batches)
    np.testing.assert_array_equal(tree.priorities, leaves)
    assert tree.total == pytest.approx(leaves.sum(), rel=1e-12, abs=0.0)
    assert tree.max == leaves.max()
    positive = leaves[leaves > 0]
    assert tree.min == (positive.min() if positive.size else np.inf)
    np.testing.assert_array_equal(tree.get(np.arange(capacity)), leaves)


@settings(max_examples=150, deadline=None)
@given(update_sequences(), st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20))
def test_prefix_sum_lands_on_the_right_leaf(
    case: tuple[int, list[tuple[list[int], list[float]]]], fractions: list[float]
) -> None:
    capacity, batches = case
    tree = SumTree(capacity)
    for idx, pri in batches:
        tree.update(idx, pri)
    leaves = _reference(capacity, batches)
    if tree.total == 0.0:
        with pytest.raises(ValueError, match=re.escape(sumtree._EMPTY_TREE)):
            tree.find_prefix_sum([0.0])
        return
    values = np.asarray(fractions) * tree.total
    found = tree.find_prefix_sum(values)
    cumsum = np.cumsum(leaves)
    tol = 1e-9 * leaves.sum()
    for value, i in zip(values, found, strict=True):
        assert leaves[i] > 0.0
        below = cumsum[i] - leaves[i]
        assert below - tol <= value <= cumsum[i] + tol


def test_rebuild_is_identity_after_updates() -> None:
    rng = np.random.default_rng(0)
    tree = SumTree(1000, rebuild_every=10**9)
    for _ in range(50):
        tree.update(rng.integers(0, 1000, 64), rng.random(64))
    before = (tree.total, tree.min, tree.max)
    tree.rebuild()
    assert (tree.total, tree.min, tree.max) == before


def test_periodic_rebuild_runs() -> None:
    tree = SumTree(10, rebuild_every=5)
    tree.update([0, 1, 2], [1.0, 1.0, 1.0])
    assert tree._writes_since_rebuild == 3
    tree.update([3, 4, 5], [1.0, 1.0, 1.0])
    assert tree._writes_since_rebuild == 0
    assert tree.total == 6.0


def _chi_square_pvalue(stratified: bool) -> tuple[float, np.ndarray]:
    capacity = 37  # not a power of two: exercises the padding
    priorities = np.arange(capacity, dtype=np.float64) % 7  # zeros at 0, 7, 14, ...
    tree = SumTree(capacity)
    tree.update(np.arange(capacity), priorities)
    rng = np.random.default_rng(12345)
    counts = np.zeros(capacity, dtype=np.int64)
    for _ in range(200):
        idx, pri = tree.sample(256, rng, stratified=stratified)
        np.testing.assert_array_equal(pri, priorities[idx])
        counts += np.bincount(idx, minlength=capacity)
    live = priorities > 0
    expected = priorities[live] / priorities.sum() * counts.sum()
    return chisquare(counts[live], expected).pvalue, counts[~live]


@pytest.mark.parametrize("stratified", [True, False])
def test_sampling_follows_priorities(stratified: bool) -> None:
    pvalue, dead_counts = _chi_square_pvalue(stratified)
    assert pvalue > 1e-3
    assert dead_counts.sum() == 0


def test_sampling_is_reproducible() -> None:
    tree = SumTree(100)
    tree.update(np.arange(100), np.linspace(0.1, 5.0, 100))
    a, _ = tree.sample(64, np.random.default_rng(3))
    b, _ = tree.sample(64, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


def test_top_end_maps_to_last_positive_leaf() -> None:
    tree = SumTree(6)
    tree.update([1, 3], [2.0, 1.0])
    assert tree.find_prefix_sum([tree.total]).tolist() == [3]
    assert tree.find_prefix_sum([0.0]).tolist() == [1]


def test_capacity_one() -> None:
    tree = SumTree(1)
    tree.update([0], [2.5])
    idx, pri = tree.sample(4, np.random.default_rng(0))
    assert idx.tolist() == [0, 0, 0, 0] and pri.tolist() == [2.5] * 4


def test_scalar_priority_broadcasts_and_duplicates_last_wins() -> None:
    tree = SumTree(4)
    tree.update([0, 1, 2], 3.0)
    tree.update([2, 2], [1.0, 4.0])
    np.testing.assert_array_equal(tree.priorities, [3.0, 3.0, 4.0, 0.0])


def test_pickle_round_trip() -> None:
    tree = SumTree(9)
    tree.update(np.arange(9), np.arange(9, dtype=float))
    clone = pickle.loads(pickle.dumps(tree))
    np.testing.assert_array_equal(clone.priorities, tree.priorities)
    assert clone.total == tree.total


def test_clear() -> None:
    tree = SumTree(5)
    tree.update([0, 1], [1.0, 2.0])
    tree.clear()
    assert (tree.total, tree.max, tree.min) == (0.0, 0.0, np.inf)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("capacity", [1.5, True, "4"])
def test_bad_capacity_type(capacity: object) -> None:
    with pytest.raises(TypeError, match=re.escape(f"Expected `capacity` to be an int >= 1, got {capacity!r}")):
        SumTree(capacity)  # type: ignore[arg-type]


@pytest.mark.parametrize("capacity", [0, -3])
def test_bad_capacity(capacity: int) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Expected `capacity` to be an int >= 1, got {capacity}")):
        SumTree(capacity)


def test_bad_rebuild_every() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `rebuild_every` to be an int >= 1, got 0")):
        SumTree(4, rebuild_every=0)
    with pytest.raises(TypeError, match=re.escape("Expected `rebuild_every` to be an int >= 1, got 8.0")):
        SumTree(4, rebuild_every=8.0)  # type: ignore[arg-type]


def test_negative_priority() -> None:
    with pytest.raises(ValueError, match=re.escape(sumtree._NEGATIVE_PRIORITY.format(-0.5, 1))):
        SumTree(4).update([0, 1], [1.0, -0.5])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_priority(bad: float) -> None:
    with pytest.raises(ValueError, match=re.escape(sumtree._NONFINITE_PRIORITY.format(bad, 0))):
        SumTree(4).update([2], [bad])


@pytest.mark.parametrize("index", [-1, 4, 100])
def test_index_out_of_range(index: int) -> None:
    with pytest.raises(ValueError, match=re.escape(sumtree._BAD_INDEX.format(index, 4))):
        SumTree(4).update([0, index], [1.0, 1.0])
    with pytest.raises(ValueError, match=re.escape(sumtree._BAD_INDEX.format(index, 4))):
        SumTree(4).get([index])


def test_float_indices() -> None:
    with pytest.raises(TypeError, match=re.escape(sumtree._BAD_INDEX_TYPE.format("float64"))):
        SumTree(4).update(np.array([0.0, 1.0]), [1.0, 1.0])


def test_non_numeric_priority() -> None:
    with pytest.raises(TypeError, match=re.escape(sumtree._BAD_PRIORITY_TYPE.format(["a"]))):
        SumTree(4).update([0], ["a"])


def test_length_mismatch() -> None:
    with pytest.raises(ValueError, match=re.escape(sumtree._SHAPE_MISMATCH.format(2, 3))):
        SumTree(4).update([0, 1], [1.0, 1.0, 1.0])


def test_prefix_out_of_range() -> None:
    tree = SumTree(4)
    tree.update([0], [2.0])
    with pytest.raises(ValueError, match=re.escape(sumtree._BAD_PREFIX.format(2.5, 0, 2.0))):
        tree.find_prefix_sum([2.5])
    with pytest.raises(ValueError, match=re.escape(sumtree._BAD_PREFIX.format(float("nan"), 1, 2.0))):
        tree.find_prefix_sum([0.5, float("nan")])


def test_sample_empty_tree() -> None:
    with pytest.raises(ValueError, match=re.escape(sumtree._EMPTY_TREE)):
        SumTree(4).sample(2, np.random.default_rng(0))


def test_sample_bad_batch_and_rng() -> None:
    tree = SumTree(4)
    tree.update([0], [1.0])
    with pytest.raises(ValueError, match=re.escape("Expected `batch_size` to be an int >= 1, got 0")):
        tree.sample(0, np.random.default_rng(0))
    with pytest.raises(TypeError, match=re.escape("Expected `batch_size` to be an int >= 1, got 2.0")):
        tree.sample(2.0, np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape(sumtree._BAD_RNG.format(None))):
        tree.sample(2, None)  # type: ignore[arg-type]
