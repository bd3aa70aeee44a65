"""Running moments: batch merges equal the moments of everything seen at once."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch as th

from agents.basal_ganglia import moments
from agents.basal_ganglia.moments import RunningMoments, merge_moments


@pytest.mark.parametrize("sizes", [(1, 1, 1, 1), (5, 1, 40), (100,), (3, 0, 9)])
def test_running_moments_equal_the_moments_of_the_whole_stream(sizes: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    batches = [rng.normal(10.0, 2.5, size=(n, 2)) for n in sizes]
    stats = RunningMoments(shape=(2,))
    for b in batches:
        stats.update(b)
    seen = np.concatenate(batches)
    assert stats.count == seen.shape[0]
    np.testing.assert_allclose(stats.mean, seen.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.var, seen.var(axis=0), rtol=1e-10)
    np.testing.assert_allclose(stats.std(), seen.std(axis=0), rtol=1e-10)
    if seen.shape[0] > 1:
        np.testing.assert_allclose(stats.std(ddof=1), seen.std(axis=0, ddof=1), rtol=1e-10)


def test_merge_moments_runs_on_torch_tensors() -> None:
    a, b = th.arange(5, dtype=th.float64), th.tensor([10.0, -3.0], dtype=th.float64)
    n, mean, var = merge_moments(5.0, a.mean(), a.var(unbiased=False), 2.0, b.mean(), b.var(unbiased=False))
    both = th.cat([a, b])
    assert n == 7.0
    th.testing.assert_close(mean, both.mean())
    th.testing.assert_close(var, both.var(unbiased=False))


@pytest.mark.parametrize(("ddof", "values"), [(1, [1.0]), (2, [1.0, 2.0, 3.0]), (0, [])])
def test_bad_ddof(ddof: int, values: list[float]) -> None:
    stats = RunningMoments()
    stats.update(values)
    with pytest.raises(ValueError, match=re.escape(moments._BAD_DDOF.format(ddof, len(values)))):
        stats.std(ddof=ddof)
