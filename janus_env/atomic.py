"""Atomic file replacement: write a temporary file beside the target, fsync, then ``os.replace``.

A reader (or a run killed mid-write) sees either the old file or the complete new one, never a torn
write. Shared by checkpoints, vector-store snapshots and ONNX exports.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``, on error it is removed.

    Example:
        >>> with atomic_path("model.onnx") as tmp:  # doctest: +SKIP
        ...     export(tmp); validate(tmp)           # ``model.onnx`` changes only if both succeed
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (files created, renamed or removed in it) to disk.

    ``os.replace`` is atomic, but the rename itself reaches the disk only when the folder is synced: after a
    power loss an unsynced rename may be undone. A no-op where folders cannot be opened (Windows).
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except (PermissionError, IsADirectoryError):  # Windows: folders cannot be opened for fsync
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
