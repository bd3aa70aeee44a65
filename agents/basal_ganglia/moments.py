"""Running count, mean and variance, merged batch by batch (the No-Go input normaliser, the reward threshold).

Two summaries ``(n_a, μ_a, v_a)`` and ``(n_b, μ_b, v_b)`` (v: population
variance) merge exactly into the summary of their union (Chan, Golub &
LeVeque 1979, "Updating formulae and a pairwise algorithm for computing sample
variances")::

    n = n_a + n_b,   δ = μ_b − μ_a,   μ = μ_a + δ·n_b/n,
    v = (v_a·n_a + v_b·n_b + δ²·n_a·n_b/n) / n

One batch of one value is Welford's update. The same arithmetic runs on floats,
numpy arrays and torch tensors (:func:`merge_moments`), so the torch buffers of
:class:`~agents.basal_ganglia.gate.NoGoHead` and the numpy
:class:`RunningMoments` share it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_BAD_DDOF = "Expected `ddof` in {{0, 1}} with more than `ddof` values seen, got ddof={!r} after {} values"


def merge_moments(
    count: Any, mean: Any, var: Any, batch_count: Any, batch_mean: Any, batch_var: Any
) -> tuple[Any, Any, Any]:
    """Merge ``(count, mean, var)`` with a batch's ``(batch_count, batch_mean, batch_var)`` (module docstring).

    Args:
        count: values summarised so far (``n_a``, may be 0).
        mean: their mean ``μ_a``.
        var: their population variance ``v_a``.
        batch_count: values in the batch (``n_b`` > 0).
        batch_mean: the batch mean ``μ_b``.
        batch_var: the batch's population variance ``v_b``.

    Returns:
        ``(n, μ, v)`` of the union.
    """
    total = count + batch_count
    delta = batch_mean - mean
    new_mean = mean + delta * (batch_count / total)
    m2 = var * count + batch_var * batch_count + delta**2 * (count * batch_count / total)
    return total, new_mean, m2 / total


class RunningMoments:
    """Count, mean and variance (float64) of every value passed to :meth:`update`.

    Args:
        shape: shape of one value (``()`` for scalars).
    """

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.shape = tuple(shape)
        self.count = 0
        self.mean = np.zeros(self.shape, dtype=np.float64)
        self.var = np.zeros(self.shape, dtype=np.float64)

    def update(self, values: Any) -> None:
        """Merge a batch of values, shape ``(n, *shape)`` (or anything that reshapes to it)."""
        x = np.asarray(values, dtype=np.float64).reshape(-1, *self.shape)
        if x.shape[0] == 0:
            return
        self.count, self.mean, self.var = merge_moments(
            self.count, self.mean, self.var, x.shape[0], x.mean(axis=0), x.var(axis=0)
        )

    def std(self, ddof: int = 0) -> np.ndarray:
        """``sqrt(v·n/(n − ddof))``: population (``ddof=0``) or sample (``ddof=1``) standard deviation.

        Raises:
            ValueError: ``ddof`` not 0 or 1, or no more than ``ddof`` values seen.
        """
        if ddof not in (0, 1) or self.count <= ddof:
            raise ValueError(_BAD_DDOF.format(ddof, self.count))
        return np.sqrt(self.var * (self.count / (self.count - ddof)))


__all__ = ["RunningMoments", "merge_moments"]
