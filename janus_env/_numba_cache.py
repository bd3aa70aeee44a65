"""Drop numba's on-disk caches of the project's kernels when any project source file changed.

numba keys a cached kernel on the (mtime, size) of the file that *defines* it, not of the
files it depends on: a kernel in ``simulator.py`` inlines the ``P_*`` indices of ``config.py``
and calls ``book.py``'s kernels, so after a change to either (a ``git pull``, an edit) the
old machine code of ``simulator.py`` would load and read the wrong array slots — wrong
numbers or a segfault. This module keeps one stamp of the (mtime, size) of every file
kernels are built from (all of ``janus_env`` and ``wrappers``, the numba modules of
``replay`` and ``agents``) next to the caches and deletes the ``*.nbi``/``*.nbc`` files when the stamp
differs, so everything recompiles once. It runs on ``import janus_env`` (every kernel module
imports it first); a read-only install is left alone.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("janus_env", "wrappers", "replay", "agents")
_WHOLE = ("janus_env", "wrappers")  # kernels, and the constants and kernels they inline from each other
_STAMP = Path("janus_env", "__pycache__", "numba-sources.stamp")


def _sources(root: Path) -> list[Path]:
    """Every file of the market and glass-box packages, and the numba modules of the others."""
    files: list[Path] = []
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if package in _WHOLE or "numba" in path.read_text(errors="ignore"):
                files.append(path)
    return files


def sources_stamp(root: Path = _ROOT) -> str:
    """Digest of the path, mtime and size of the kernels' source files (what numba's cache keys on)."""
    digest = hashlib.sha256()
    for path in _sources(root):
        try:
            st = path.stat()
        except OSError:
            continue
        digest.update(f"{path.relative_to(root)}:{st.st_mtime_ns}:{st.st_size};".encode())
    return digest.hexdigest()


def refresh_stale_caches(root: Path = _ROOT) -> bool:
    """Delete the project's numba cache files if any source changed since they were written.

    Returns True when caches were dropped. Never raises: a cache that cannot be checked or
    deleted (read-only install, a race with another process) is left to numba.
    """
    try:
        stamp = sources_stamp(root)
        stamp_file = root / _STAMP
        if stamp_file.is_file() and stamp_file.read_text() == stamp:
            return False
        for package in _PACKAGES:
            for cache in (root / package).rglob("__pycache__/*.nb[ic]"):
                try:
                    cache.unlink()
                except FileNotFoundError:
                    pass
        stamp_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = stamp_file.with_name(f"{stamp_file.name}.{os.getpid()}.tmp")
        tmp.write_text(stamp)
        os.replace(tmp, stamp_file)
        return True
    except OSError:
        return False
