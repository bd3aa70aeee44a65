"""umap-learn with numba's on-disk cache: its compiled functions built once per machine, not once per process.

umap-learn (McInnes et al. 2018) JIT-compiles most of its numba functions without ``cache=True``, so every
process that fits a UMAP compiles them again: on a 2-core machine the first ``UMAP.fit`` of 256 points took 6.5 s
(the second 0.06 s) and the first ``AlignedUMAP.fit`` 8.5 s (the second 1.3 s), in every ``train.py`` run that
sleeps. :func:`import_umap` turns numba's on-disk cache on for those functions before their first compile — what
``cache=True`` does at decoration (``Dispatcher.enable_caching``) — so a later process loads the machine code:
its first ``UMAP.fit`` took 0.08 s and its first ``AlignedUMAP.fit`` 3.4 s (numba's typed containers are not
cached). The code is the same, so are the results. A function numba cannot cache (no writable cache location)
is compiled per process, as before.
"""

from __future__ import annotations

import sys
from types import ModuleType

_PACKAGES = ("umap", "pynndescent")
_done: list[bool] = []


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


def import_umap() -> ModuleType:
    """``import umap``, with numba's on-disk cache on for umap-learn's and pynndescent's functions (once per
    process)."""
    import umap

    if not _done:
        enable_numba_cache()
        _done.append(True)
    return umap
