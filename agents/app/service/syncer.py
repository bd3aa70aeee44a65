"""The service's disk work off the event loop: audit trails ``fsync``ed and the store's write-ahead log
checkpointed by one thread, once a second.

Two things wait for the disk (≈ 4 ms an ``fsync`` on the development machine's virtual disk) and, done on the
event loop, stalled every client's decision for that long (the largest part of the load test's p99 before;
``benchmarks/README.md``):

* **Audit trails.** Each decision's audit record is handed to the OS (one ``write``, :class:`wrappers.AuditLog`
  with ``buffer_size=1``) before the answer leaves, so a crash of the service loses none. ``AuditLog``'s defaults
  then ``fsync`` with the first write a second after the last ``fsync``: each second, for each account. The
  service's trails are opened without a count or time limit (``fsync_every=None, fsync_seconds=None``:
  ``AuditLog`` still ``fsync``s at each session start and at close), and :class:`DiskSyncer` ``fsync``s, every
  ``seconds`` (1 s, ``AuditLog``'s ``DEFAULT_FSYNC_SECONDS``), each trail that took a record since its last pass.
  What a power cut costs is ``AuditLog``'s own bound: the records of the last ``seconds`` (plus the ``fsync`` in
  progress), whether or not decisions keep coming. A trail whose ``fsync`` failed (an I/O error) fails its
  account's next audit step (:meth:`DiskSyncer.check` raises the error before the record is written): the
  account halts with ``audit_error``, as when the write itself fails.
* **The store's write-ahead log.** Every decision commits its account and its experience row (≈ 5 pages of
  the log); SQLite's automatic checkpoint (every 1,000 pages: every ~200 decisions) copies the log into the
  database and ``fsync``s both, inside the commit that crosses the mark. The service's connection turns it off
  (:meth:`~agents.app.service.store.ServiceStore.background_checkpoints`) and the thread checkpoints
  (``PASSIVE``: writers go on) on a connection of its own at each pass. Durability is unchanged: it never
  depended on checkpoints (``synchronous=NORMAL`` commits are in the log, ``FULL`` ones on disk).

``os.fsync`` and SQLite release the GIL, so decisions go on meanwhile. The thread ``fsync``s through its own
read-only descriptor of each trail (``fsync`` forces the file, whichever descriptor names it): it shares with the
event loop two counters per trail and nothing else.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from janus_env.checks import check_positive

DEFAULT_SYNC_SECONDS = 1.0
"""Seconds between two passes of the syncer (``AuditLog``'s ``DEFAULT_FSYNC_SECONDS``)."""


class DiskSyncer:
    """Every ``seconds``, on a daemon thread: ``fsync`` the audit trails written since the last pass, then call
    ``checkpoint`` (module docstring).

    Args:
        seconds: time between two passes (> 0).
        checkpoint: called at each pass after the trails (the store's WAL checkpoint); an exception it raises is
            counted in :attr:`checkpoint_errors` and the next pass tries again.

    Raises:
        TypeError / ValueError: ``seconds`` not a positive number.
    """

    def __init__(self, seconds: float = DEFAULT_SYNC_SECONDS, checkpoint: Callable[[], object] | None = None) -> None:
        self.seconds = check_positive("seconds", seconds)
        self.checkpoint = checkpoint
        self.checkpoint_errors = 0
        self._written: dict[str, int] = {}  # path -> records written (incremented on the event loop)
        self._synced: dict[str, int] = {}  # path -> records written when its last fsync started (the thread's)
        self._fds: dict[str, int] = {}
        self._failed: dict[str, OSError] = {}
        self._lock = threading.Lock()  # one pass at a time (the thread's, stop()'s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        """Passes that ``fsync``ed at least one trail."""

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="disk-sync", daemon=True)
            self._thread.start()

    def check(self, path: str | Path) -> None:
        """Before a record is written to ``path`` (the event loop): raise the error of a failed ``fsync`` of it.

        Raises:
            OSError: an ``fsync`` of ``path`` failed since the last check (its records are not known to be on disk).
        """
        failed = self._failed.pop(str(path), None)
        if failed is not None:
            raise failed

    def wrote(self, path: str | Path) -> None:
        """A record was written to ``path`` (the event loop, after each audit step)."""
        key = str(path)
        self._written[key] = self._written.get(key, 0) + 1

    def sync(self) -> int:
        """One pass: ``fsync`` every trail written since its last ``fsync`` (returns how many), then checkpoint."""
        done = self._sync_trails()
        if self.checkpoint is not None:
            try:
                self.checkpoint()
            except Exception:  # noqa: BLE001 - a busy or failing checkpoint is retried at the next pass
                self.checkpoint_errors += 1
        return done

    def _sync_trails(self) -> int:
        with self._lock:
            done = 0
            for key, count in list(self._written.items()):
                if self._synced.get(key) == count:
                    continue
                try:
                    fd = self._fds.get(key)
                    if fd is None:
                        fd = self._fds[key] = os.open(key, os.O_RDONLY)
                    os.fsync(fd)
                except OSError as err:
                    self._failed[key] = err
                    continue
                self._synced[key] = count
                done += 1
            if done:
                self.passes += 1
            return done

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            self.sync()

    def stop(self) -> None:
        """Stop the thread, make a last pass and close the descriptors (idempotent)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.sync()
        with self._lock:
            for fd in self._fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fds.clear()


__all__ = ["DEFAULT_SYNC_SECONDS", "DiskSyncer"]
