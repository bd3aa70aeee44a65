"""Stale numba caches are dropped when a kernel's source or anything it inlines changes."""

from __future__ import annotations

import os
from pathlib import Path

from janus_env._numba_cache import refresh_stale_caches


def _tree(root: Path) -> tuple[Path, Path]:
    (root / "janus_env" / "__pycache__").mkdir(parents=True)
    (root / "agents" / "__pycache__").mkdir(parents=True)
    config = root / "janus_env" / "config.py"
    config.write_text("P_LOT = 1\n")
    (root / "agents" / "gaf.py").write_text("from numba import njit\n")
    (root / "agents" / "cli.py").write_text("import argparse\n")
    return config, root / "janus_env" / "__pycache__" / "simulator.env_step-1.py311.nbi"


def test_caches_dropped_once_per_source_change(tmp_path: Path) -> None:
    config, cache = _tree(tmp_path)
    cache.write_bytes(b"old")
    assert refresh_stale_caches(tmp_path) and not cache.exists()  # no stamp yet: start clean
    cache.write_bytes(b"fresh")
    assert not refresh_stale_caches(tmp_path) and cache.exists()  # nothing changed: keep
    config.write_text("P_LOT = 2\nP_MAX_LEVERAGE = 3\n")  # a constant a kernel elsewhere inlines
    assert refresh_stale_caches(tmp_path) and not cache.exists()


def test_non_kernel_files_of_model_packages_do_not_drop_caches(tmp_path: Path) -> None:
    _, cache = _tree(tmp_path)
    refresh_stale_caches(tmp_path)
    cache.write_bytes(b"fresh")
    cli = tmp_path / "agents" / "cli.py"
    cli.write_text("import argparse\nimport sys\n")
    os.utime(cli, ns=(1, 1))
    assert not refresh_stale_caches(tmp_path) and cache.exists()
    gaf = tmp_path / "agents" / "gaf.py"
    gaf.write_text("from numba import njit, prange\n")
    assert refresh_stale_caches(tmp_path) and not cache.exists()
