"""numba's on-disk cache turned on for a package's compiled functions (replay.umap_cache)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from replay.umap_cache import enable_numba_cache, import_umap

_MODULE = """
import numba

@numba.njit
def twice(x):
    return 2 * x
"""


def test_a_package_without_cache_true_gets_its_functions_cached(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "nbpkg_cache_probe"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import nbpkg_cache_probe  # noqa: PLC0415

    try:
        assert enable_numba_cache(("nbpkg_cache_probe",)) == 1
        assert enable_numba_cache(("nbpkg_cache_probe",)) == 0  # already on: left alone
        assert nbpkg_cache_probe.twice(21) == 42
        cached = sorted(p.name for p in (package / "__pycache__").glob("*.nb[ic]"))
        assert cached and any(name.startswith("__init__.twice") for name in cached), cached
        # a new process loads the machine code instead of compiling it
        probe = ("import sys, numba; sys.path.insert(0, sys.argv[1]); import nbpkg_cache_probe as m;"
                 "from replay.umap_cache import enable_numba_cache; enable_numba_cache(('nbpkg_cache_probe',));"
                 "m.twice(1); print(m.twice.stats.cache_hits)")
        out = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parents[2])
        assert out.stdout.strip() not in ("", "Counter()"), out.stdout
    finally:
        sys.modules.pop("nbpkg_cache_probe", None)


def test_umap_is_imported_with_its_functions_cached() -> None:
    from numba.core.caching import NullCache

    umap = import_umap()
    from umap import layouts, umap_

    assert umap.UMAP is not None
    for fn in (umap_.smooth_knn_dist, umap_.compute_membership_strengths, layouts.clip):
        assert not isinstance(fn._cache, NullCache), fn


def test_the_aligned_layout_compiled_once_gives_umaps_embeddings_bit_for_bit() -> None:
    import warnings

    import numpy as np

    umap = import_umap()
    import umap.aligned_umap as aligned
    from umap import layouts

    from replay.umap_cache import optimize_layout_aligned_euclidean

    assert aligned.optimize_layout_aligned_euclidean is optimize_layout_aligned_euclidean  # what AlignedUMAP calls
    rng = np.random.default_rng(3)
    xs = [rng.normal(size=(60, 5)).astype(np.float32) for _ in range(3)]
    relations = [{i: i for i in range(0, 60, 2)}] * 2

    def fit() -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = umap.AlignedUMAP(n_neighbors=8, n_components=3, n_epochs=30, random_state=0)
            return np.concatenate(model.fit(xs, relations=relations).embeddings_)

    try:
        aligned.optimize_layout_aligned_euclidean = layouts.optimize_layout_aligned_euclidean  # umap's own
        theirs = fit()
    finally:
        aligned.optimize_layout_aligned_euclidean = optimize_layout_aligned_euclidean
    ours = fit()
    assert np.isfinite(ours).all() and ours.std() > 0
    assert ours.tobytes() == theirs.tobytes()
