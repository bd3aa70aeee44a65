"""Numba sum tree for proportional prioritized replay.

A binary tree over ``capacity`` non-negative leaf priorities ``p_i`` whose
internal nodes hold the sum (and the min and max) of their children, so that

* writing a batch of ``B`` leaves costs O(B log N),
* drawing ``B`` leaves with probability ``P(i) = p_i / Σ_j p_j`` costs
  O(B log N) (prefix-sum descent: find the first ``i`` with
  ``Σ_{j≤i} p_j > u`` for ``u ~ U[0, Σp)``),
* ``total``, ``max`` and ``min`` are O(1) reads of the roots.

This is the data structure of Schaul, Quan, Antonoglou & Silver (2016),
"Prioritized Experience Replay", Appendix B.2.1 (proportional variant).

Layout: one float64 array of shape ``(2·L, 3)`` — per node its (sum, min,
max), so that one cache line serves all three — where ``L`` is the next power
of two ≥ ``capacity``; node ``k`` has children ``2k`` and ``2k+1``, the root
is node 1, leaf ``i`` is node ``L + i``. Leaves ``capacity … L−1`` are padding
and stay at priority 0 (never sampled), so any positive capacity works.

Numerical drift: every internal sum is *recomputed* from its two children
whenever a leaf below it changes (never updated by adding deltas), so rounding
error does not accumulate over updates; the root differs from the exact leaf
sum by at most about ``log2(L)·ε·total``. On top of that the whole tree is
rebuilt from the leaves every ``rebuild_every`` leaf writes (default
``max(4·L, 65536)``, amortized O(1) per write) as a cheap consistency guard,
and on demand with :meth:`SumTree.rebuild`.

"Live" leaves are those with a positive priority: :attr:`SumTree.min` is the
minimum over them (a zero leaf can never be drawn, so it must not enter the
importance-sampling normalization), ``+inf`` when there are none.

Inputs are validated before anything is written: types and shapes in Python,
values (index range, NaN, sign) in a first pass of each kernel, which returns
an error code and position that Python turns into a ``ValueError`` /
``TypeError`` naming the bad value — never a crash inside numba.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from janus_env.checks import check_int

_BAD_INDEX_TYPE = "Expected integer indices, got dtype {}"
_BAD_INDEX = "Index {} out of range [0, {})"
_BAD_PRIORITY_TYPE = "Expected real-valued priorities, got {!r}"
_NEGATIVE_PRIORITY = "Expected priorities >= 0, got {!r} at position {}"
_NONFINITE_PRIORITY = "Expected finite priorities, got {!r} at position {}"
_SHAPE_MISMATCH = "Got {} indices but {} priorities"
_NOT_1D = "Expected a 1-D array of {}, got shape {}"
_BAD_VALUE_TYPE = "Expected real-valued prefix sums, got {!r}"
_BAD_PREFIX = "Prefix sum {!r} at position {} is outside [0, total={!r}]"
_EMPTY_TREE = "Cannot sample from a SumTree whose total priority is 0"
_BAD_RNG = "Expected `rng` to be a numpy.random.Generator, got {!r}"
_BAD_STATE = "Expected a SumTree state with {} = {!r}, got {!r}"
_BAD_STATE_TREE = "Expected a SumTree state whose `tree` is a float64 array of shape {}, got {}"
_INCONSISTENT_TREE = "SumTree state is inconsistent: {}"


# --------------------------------------------------------------------------- kernels
# One signature each: a float64 (2L, 3) tree, int64 scalars, int64[:] indices,
# float64[:] priorities / values. Every batch loop is level-synchronous (all B
# paths advance one tree level per pass), which lets the CPU overlap the cache
# misses of independent paths. Kernels validate their inputs and return an
# error code with the offending position *before* writing anything.

SUM, MIN, MAX = 0, 1, 2
OK, ERR_INDEX, ERR_NONFINITE, ERR_NEGATIVE, ERR_PREFIX = 0, 1, 2, 3, 4


@njit(cache=True)
def _update_kernel(
    tree: np.ndarray, n_leaves: int, depth: int, capacity: int, indices: np.ndarray, priorities: np.ndarray
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Write leaves in order (last write wins), then recompute their ancestors level by level."""
    n = indices.shape[0]
    for k in range(n):
        if indices[k] < 0 or indices[k] >= capacity:
            return ERR_INDEX, k
        p = priorities[k]
        if not np.isfinite(p):
            return ERR_NONFINITE, k
        if p < 0.0:
            return ERR_NEGATIVE, k
    nodes = np.empty(n, dtype=np.int64)
    for k in range(n):
        node = indices[k] + n_leaves
        p = priorities[k]
        tree[node, SUM] = p
        tree[node, MAX] = p
        tree[node, MIN] = p if p > 0.0 else np.inf
        nodes[k] = node >> 1
    for _ in range(depth):  # children of every node on this level are final
        for k in range(n):
            node = nodes[k]
            left = 2 * node
            right = left + 1
            tree[node, SUM] = tree[left, SUM] + tree[right, SUM]
            tree[node, MAX] = max(tree[left, MAX], tree[right, MAX])
            tree[node, MIN] = min(tree[left, MIN], tree[right, MIN])
            nodes[k] = node >> 1
    return OK, 0


@njit(cache=True)
def _rebuild_kernel(tree: np.ndarray, n_leaves: int) -> None:  # pragma: no cover - compiled
    """Recompute every internal node from the leaves, bottom-up (pairwise sums)."""
    for node in range(n_leaves - 1, 0, -1):
        left = 2 * node
        right = left + 1
        tree[node, SUM] = tree[left, SUM] + tree[right, SUM]
        tree[node, MAX] = max(tree[left, MAX], tree[right, MAX])
        tree[node, MIN] = min(tree[left, MIN], tree[right, MIN])


@njit(cache=True)
def _descend(
    tree: np.ndarray, n_leaves: int, depth: int, values: np.ndarray, out_idx: np.ndarray, out_p: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Prefix-sum descent: first leaf i with cumsum(p)[i] > values[k].

    Ties and rounding at the top end resolve towards a positive leaf: a path
    only enters a subtree whose sum is positive, so it ends on a leaf with
    p > 0 whenever the root is positive. ``values`` is consumed.
    """
    n = values.shape[0]
    nodes = np.ones(n, dtype=np.int64)
    for _ in range(depth):
        for k in range(n):
            left = 2 * nodes[k]
            left_sum = tree[left, SUM]
            v = values[k]
            if v < left_sum or tree[left + 1, SUM] <= 0.0:
                nodes[k] = left
            else:
                values[k] = v - left_sum
                nodes[k] = left + 1
    for k in range(n):
        out_idx[k] = nodes[k] - n_leaves
        out_p[k] = tree[nodes[k], SUM]


@njit(cache=True)
def _sample_kernel(
    tree: np.ndarray, n_leaves: int, depth: int, uniforms: np.ndarray, stratified: bool,
    out_idx: np.ndarray, out_p: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Prefix sums ``u_k·total`` or, stratified, ``(k + u_k)·total/B``; then descend."""
    n = uniforms.shape[0]
    total = tree[1, SUM]
    values = np.empty(n, dtype=np.float64)
    if stratified:
        segment = total / n
        for k in range(n):
            values[k] = (k + uniforms[k]) * segment
    else:
        for k in range(n):
            values[k] = uniforms[k] * total
    _descend(tree, n_leaves, depth, values, out_idx, out_p)


@njit(cache=True)
def _find_kernel(
    tree: np.ndarray, n_leaves: int, depth: int, values: np.ndarray, out_idx: np.ndarray, out_p: np.ndarray
) -> tuple[int, int]:  # pragma: no cover - compiled
    """Validate prefix sums in [0, total] (NaN rejected), then descend."""
    total = tree[1, SUM]
    for k in range(values.shape[0]):
        if not (values[k] >= 0.0 and values[k] <= total):
            return ERR_PREFIX, k
    _descend(tree, n_leaves, depth, values.copy(), out_idx, out_p)
    return OK, 0


# --------------------------------------------------------------------------- API


def _as_index_array(indices: object, capacity: int) -> np.ndarray:
    """``indices`` as a contiguous 1-D int64 array (range is checked by the kernels)."""
    arr = np.asarray(indices)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(_NOT_1D.format("indices", arr.shape))
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(_BAD_INDEX_TYPE.format(arr.dtype))
    if arr.dtype != np.int64:
        bad = (arr < 0) | (arr >= capacity)  # before a cast could wrap around
        if bad.any():
            raise ValueError(_BAD_INDEX.format(arr[np.argmax(bad)], capacity))
    return np.ascontiguousarray(arr, dtype=np.int64)


def _as_float_array(values: object, n: int | None, message: str, name: str) -> np.ndarray:
    """``values`` as a contiguous 1-D float64 array (a scalar is broadcast to ``n``)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(message.format(values)) from err
    if arr.ndim == 0:
        arr = np.full(1 if n is None else n, float(arr))
    if arr.ndim != 1:
        raise ValueError(_NOT_1D.format(name, arr.shape))
    if n is not None and arr.shape[0] != n:
        raise ValueError(_SHAPE_MISMATCH.format(n, arr.shape[0]))
    return np.ascontiguousarray(arr)


class SumTree:
    """Sum / min / max tree over ``capacity`` non-negative priorities.

    ``P(i) = p_i / Σ_j p_j`` sampling by prefix-sum descent, O(log N) per leaf,
    batched in numba (Schaul et al. 2016, "Prioritized Experience Replay",
    Appendix B.2.1). See the module docstring for the layout and the
    floating-point policy.

    Args:
        capacity: number of leaves, any positive int (padded internally to the
            next power of two).
        rebuild_every: rebuild all internal nodes from the leaves after this
            many leaf writes; ``None`` picks ``max(4·L, 65536)`` where ``L`` is
            the padded leaf count.

    Raises:
        TypeError: ``capacity`` or ``rebuild_every`` is not an int.
        ValueError: ``capacity`` <= 0 or ``rebuild_every`` <= 0.

    Example:
        >>> tree = SumTree(5)
        >>> tree.update([0, 3], [1.0, 3.0])
        >>> tree.total, tree.min, tree.max
        (4.0, 1.0, 3.0)
    """

    def __init__(self, capacity: int, *, rebuild_every: int | None = None) -> None:
        self._capacity = check_int("capacity", capacity, low=1)
        self._depth = max(self._capacity - 1, 0).bit_length()
        self._n_leaves = 1 << self._depth
        if rebuild_every is None:
            rebuild_every = max(4 * self._n_leaves, 1 << 16)
        self.rebuild_every = check_int("rebuild_every", rebuild_every, low=1)
        self._writes_since_rebuild = 0
        # node k: row k = (sum, min over positive leaves, max); row 0 unused
        self._tree = np.zeros((2 * self._n_leaves, 3), dtype=np.float64)
        self._tree[:, MIN] = np.inf

    # ----------------------------------------------------------------- reads

    @property
    def capacity(self) -> int:
        """Number of usable leaves."""
        return self._capacity

    def __len__(self) -> int:
        return self._capacity

    @property
    def total(self) -> float:
        """``Σ_i p_i`` over all leaves."""
        return float(self._tree[1, SUM])

    @property
    def max(self) -> float:
        """``max_i p_i`` (0.0 when every leaf is 0)."""
        return float(self._tree[1, MAX])

    @property
    def min(self) -> float:
        """``min_i p_i`` over live (positive) leaves; ``inf`` when there are none."""
        return float(self._tree[1, MIN])

    @property
    def priorities(self) -> np.ndarray:
        """Copy of all ``capacity`` leaf priorities."""
        return self._tree[self._n_leaves : self._n_leaves + self._capacity, SUM].copy()

    def get(self, indices: np.ndarray | list[int] | int) -> np.ndarray:
        """Leaf priorities at ``indices``.

        Raises:
            TypeError: non-integer indices.
            ValueError: an index outside ``[0, capacity)``.
        """
        idx = _as_index_array(indices, self._capacity)
        if idx.size and (idx.min() < 0 or idx.max() >= self._capacity):
            bad = (idx < 0) | (idx >= self._capacity)
            raise ValueError(_BAD_INDEX.format(idx[np.argmax(bad)], self._capacity))
        return self._tree[idx + self._n_leaves, SUM]

    # ----------------------------------------------------------------- writes

    def update(
        self,
        indices: np.ndarray | list[int] | int,
        priorities: np.ndarray | list[float] | float,
    ) -> None:
        """Set ``p[indices[k]] = priorities[k]`` for every k, O(B log N).

        Duplicate indices are allowed; the last write wins. A scalar priority is
        written to every index. Nothing is written when any input is bad.

        Raises:
            TypeError: non-integer indices or non-numeric priorities.
            ValueError: an index outside ``[0, capacity)``; a negative, NaN or
                infinite priority; length mismatch.
        """
        idx = _as_index_array(indices, self._capacity)
        pri = _as_float_array(priorities, idx.shape[0], _BAD_PRIORITY_TYPE, "priorities")
        if idx.shape[0] == 0:
            return
        code, pos = _update_kernel(self._tree, self._n_leaves, self._depth, self._capacity, idx, pri)
        if code == ERR_INDEX:
            raise ValueError(_BAD_INDEX.format(idx[pos], self._capacity))
        if code == ERR_NONFINITE:
            raise ValueError(_NONFINITE_PRIORITY.format(float(pri[pos]), pos))
        if code == ERR_NEGATIVE:
            raise ValueError(_NEGATIVE_PRIORITY.format(float(pri[pos]), pos))
        self._writes_since_rebuild += idx.shape[0]
        if self._writes_since_rebuild >= self.rebuild_every:
            self.rebuild()

    def rebuild(self) -> None:
        """Recompute every internal node from the leaves, O(N)."""
        _rebuild_kernel(self._tree, self._n_leaves)
        self._writes_since_rebuild = 0

    def state_dict(self) -> dict[str, object]:
        """Everything the tree holds: its node array (sums, minima, maxima) and counters, as numpy and ints.

        :meth:`load_state_dict` of a tree of the same capacity restores it bit for bit (the node array is
        copied, not recomputed).
        """
        return {
            "capacity": self._capacity,
            "rebuild_every": self.rebuild_every,
            "writes_since_rebuild": self._writes_since_rebuild,
            "tree": self._tree.copy(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict` output, after checking it describes a valid tree of this capacity.

        Checked: the capacity and ``rebuild_every``; the node array's dtype and shape; every leaf finite and
        ``>= 0`` with its min and max consistent; padding leaves and the unused row 0 empty; every internal node
        equal to the one recomputed from its children (so a crafted or torn array is refused, never sampled).

        Raises:
            ValueError: a state that does not describe a valid tree of this capacity.
        """
        for key, expected in (("capacity", self._capacity), ("rebuild_every", self.rebuild_every)):
            if type(state.get(key)) is not int or state[key] != expected:
                raise ValueError(_BAD_STATE.format(key, expected, state.get(key)))
        writes = state.get("writes_since_rebuild")
        if type(writes) is not int or not 0 <= writes < self.rebuild_every:
            raise ValueError(_BAD_STATE.format("writes_since_rebuild in [0, rebuild_every)", self.rebuild_every,
                                               writes))
        tree = state.get("tree")
        if not isinstance(tree, np.ndarray) or tree.dtype != np.float64 or tree.shape != self._tree.shape:
            got = f"{tree.dtype} {tree.shape}" if isinstance(tree, np.ndarray) else type(tree).__name__
            raise ValueError(_BAD_STATE_TREE.format(self._tree.shape, got))
        leaves = tree[self._n_leaves :]
        live, pad = leaves[: self._capacity], leaves[self._capacity :]
        if not (np.all(np.isfinite(live[:, SUM])) and np.all(live[:, SUM] >= 0.0)):
            raise ValueError(_INCONSISTENT_TREE.format("a leaf priority is negative or not finite"))
        expected_min = np.where(live[:, SUM] > 0.0, live[:, SUM], np.inf)
        if not (np.array_equal(live[:, MAX], live[:, SUM]) and np.array_equal(live[:, MIN], expected_min)):
            raise ValueError(_INCONSISTENT_TREE.format("a leaf's min or max differs from its priority"))
        empty = np.array([0.0, np.inf, 0.0])
        if not (np.all(pad == empty) and np.all(tree[0] == empty)):
            raise ValueError(_INCONSISTENT_TREE.format("a padding leaf or the unused row 0 is not empty"))
        rebuilt = tree.copy()
        _rebuild_kernel(rebuilt, self._n_leaves)
        if not np.array_equal(rebuilt, tree):
            raise ValueError(_INCONSISTENT_TREE.format("an internal node differs from its children's sum, min or max"))
        np.copyto(self._tree, tree)
        self._writes_since_rebuild = writes

    def clear(self) -> None:
        """Set every priority to 0."""
        self._tree[:, SUM] = 0.0
        self._tree[:, MAX] = 0.0
        self._tree[:, MIN] = np.inf
        self._writes_since_rebuild = 0

    # ----------------------------------------------------------------- sampling

    def find_prefix_sum(self, values: np.ndarray | list[float] | float) -> np.ndarray:
        """Leaves ``i`` with ``Σ_{j<i} p_j <= u < Σ_{j<=i} p_j`` for each ``u``.

        A ``u`` equal to ``total`` (or past it by rounding) maps to the last
        positive leaf; the result is always a leaf with ``p > 0``.

        Args:
            values: prefix sums in ``[0, total]``.

        Returns:
            int64 leaf indices, same length as ``values``.

        Raises:
            TypeError: non-numeric values.
            ValueError: a value outside ``[0, total]`` or NaN; total is 0.
        """
        vals = _as_float_array(values, None, _BAD_VALUE_TYPE, "prefix sums")
        out_idx = np.empty(vals.shape[0], dtype=np.int64)
        if vals.shape[0] == 0:
            return out_idx
        if self.total <= 0.0:
            raise ValueError(_EMPTY_TREE)
        out_p = np.empty(vals.shape[0], dtype=np.float64)
        code, pos = _find_kernel(self._tree, self._n_leaves, self._depth, vals, out_idx, out_p)
        if code != OK:
            raise ValueError(_BAD_PREFIX.format(float(vals[pos]), pos, self.total))
        return out_idx

    def sample(
        self,
        batch_size: int,
        rng: np.random.Generator,
        *,
        stratified: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``batch_size`` leaves with ``P(i) = p_i / Σ_j p_j``.

        Stratified (default): ``[0, total)`` is cut into ``batch_size`` equal
        segments and one ``u`` is drawn uniformly in each (Schaul et al. 2016,
        Appendix B.2.1); every draw still has marginal ``P(i)``, with lower
        variance across the batch (and sorted indices). Otherwise the ``u`` are
        i.i.d. uniform.

        Args:
            batch_size: number of draws (> 0).
            rng: the caller's generator (no global RNG is used).
            stratified: segment the prefix-sum range.

        Returns:
            ``(indices, priorities)``: int64 leaf indices and their float64
            priorities.

        Raises:
            TypeError: ``batch_size`` is not an int or ``rng`` not a ``numpy.random.Generator``.
            ValueError: ``batch_size`` <= 0 or the tree total is 0.
        """
        batch_size = check_int("batch_size", batch_size, low=1)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(_BAD_RNG.format(rng))
        if self._tree[1, SUM] <= 0.0:
            raise ValueError(_EMPTY_TREE)
        out_idx = np.empty(batch_size, dtype=np.int64)
        out_p = np.empty(batch_size, dtype=np.float64)
        uniforms = rng.random(batch_size)
        _sample_kernel(self._tree, self._n_leaves, self._depth, uniforms, bool(stratified), out_idx, out_p)
        return out_idx, out_p
