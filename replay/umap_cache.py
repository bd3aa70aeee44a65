"""umap-learn with numba's on-disk cache: its compiled functions built once per machine, not once per process.

umap-learn (McInnes et al. 2018) JIT-compiles most of its numba functions without ``cache=True``, so every
process that fits a UMAP compiles them again: on a 2-core machine the first ``UMAP.fit`` of 256 points took 6.5 s
(the second 0.06 s) and the first ``AlignedUMAP.fit`` 8.5 s (the second 1.3 s), in every ``train.py`` run that
sleeps. :func:`import_umap` turns numba's on-disk cache on for those functions before their first compile — what
``cache=True`` does at decoration (``Dispatcher.enable_caching``) — so a later process loads the machine code:
its first ``UMAP.fit`` took 0.08 s and its first ``AlignedUMAP.fit`` 3.4 s (numba's typed containers are not
cached). The code is the same, so are the results. A function numba cannot cache (no writable cache location)
is compiled per process, as before.

umap-learn 0.5's ``optimize_layout_aligned_euclidean`` also builds a *new* numba dispatcher for its epoch function
on every call (``numba.njit(_optimize_layout_aligned_euclidean_single_epoch, …)`` in its body), so every
``AlignedUMAP.fit`` compiled it again: ≈ 2 s of a 3 s fit of 3 × 256 points, at every sleep after the first.
:func:`optimize_layout_aligned_euclidean` is that function with the dispatcher built once per process (and cached
on disk); :func:`import_umap` puts it where ``AlignedUMAP`` looks it up.
"""

from __future__ import annotations

import sys
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

_PACKAGES = ("umap", "pynndescent")


def enable_numba_cache(prefixes: tuple[str, ...] = _PACKAGES) -> int:
    """Turn numba's on-disk cache on for every compiled function of the imported modules named ``prefixes``
    (and their submodules) that does not have it; returns how many were turned on."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    turned = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in prefixes:
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, Dispatcher) and isinstance(getattr(obj, "_cache", None), NullCache):
                try:
                    obj.enable_caching()
                except RuntimeError:  # numba finds no writable place for this file's cache: compile per process
                    continue
                turned += 1
    return turned


@cache
def _aligned_epoch(parallel: bool) -> Any:
    """umap-learn's aligned-layout epoch function compiled as umap compiles it (``fastmath``, ``parallel``), once.
    Cached on disk for ``parallel=True`` only (what ``AlignedUMAP`` runs): numba's cache index keys a function's
    entries by signature, not by these flags, so a second variant must not share its file."""
    import numba
    from umap.layouts import _optimize_layout_aligned_euclidean_single_epoch

    return numba.njit(_optimize_layout_aligned_euclidean_single_epoch, fastmath=True, parallel=parallel,
                      cache=parallel)


def optimize_layout_aligned_euclidean(
    head_embeddings: Any,
    tail_embeddings: Any,
    heads: Any,
    tails: Any,
    n_epochs: int,
    epochs_per_sample: Any,
    regularisation_weights: Any,
    relations: Any,
    rng_state: Any,
    a: float = 1.576943460405378,
    b: float = 0.8950608781227859,
    gamma: float = 1.0,
    lambda_: float = 5e-3,
    initial_alpha: float = 1.0,
    negative_sample_rate: float = 5.0,
    parallel: bool = True,
    verbose: bool = False,
    tqdm_kwds: dict[str, Any] | None = None,
    move_other: bool = False,
) -> Any:
    """umap-learn 0.5's ``umap.layouts.optimize_layout_aligned_euclidean`` (McInnes et al., BSD-3-Clause): the same
    arguments, the same epochs in the same order on the same arrays, with the epoch function compiled once per
    process (:func:`_aligned_epoch`) instead of once per call."""
    import numba
    from tqdm.auto import tqdm

    dim = head_embeddings[0].shape[1]
    vector = numba.types.float32[::1]
    per_negative = numba.typed.List.empty_list(vector)
    next_negative = numba.typed.List.empty_list(vector)
    next_sample = numba.typed.List.empty_list(vector)
    for m in range(len(heads)):
        per_negative.append(epochs_per_sample[m].astype(np.float32) / negative_sample_rate)
        next_negative.append(per_negative[m].astype(np.float32))
        next_sample.append(epochs_per_sample[m].astype(np.float32))
    epoch = _aligned_epoch(bool(parallel))
    alpha = initial_alpha
    for n in tqdm(range(n_epochs), **{"disable": not verbose, **(tqdm_kwds or {})}):
        epoch(head_embeddings, tail_embeddings, heads, tails, epochs_per_sample, a, b, regularisation_weights,
              relations, rng_state, gamma, lambda_, dim, move_other, alpha, per_negative, next_negative,
              next_sample, n)
        alpha = initial_alpha * (1.0 - (float(n) / float(n_epochs)))
    return head_embeddings


@cache
def import_umap() -> ModuleType:
    """``import umap``, with numba's on-disk cache on for umap-learn's and pynndescent's functions and
    ``AlignedUMAP``'s layout compiled once (:func:`optimize_layout_aligned_euclidean`), once per process."""
    import umap
    import umap.aligned_umap

    enable_numba_cache()
    umap.aligned_umap.optimize_layout_aligned_euclidean = optimize_layout_aligned_euclidean
    return umap
