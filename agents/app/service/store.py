"""The service's embedded store: one SQLite file in the ``--store`` folder, so a restart loses nothing.

``<store>/service.db`` (Python's ``sqlite3``, write-ahead log) holds

| table | rows |
| --- | --- |
| ``keys`` | one per API key: id, name, scopes, salt and HMAC digest of the secret (never the secret) |
| ``accounts`` | one per account: its state as JSON (:class:`~agents.app.service.accounts.Account`) |
| ``halts`` | one per halted account: reason, source (``manual`` or ``breaker``), since when |
| ``halt_log`` | every halt and resume, in order |
| ``experience`` | one per recorded transition (:mod:`~agents.app.service.experience`) |
| ``versions``, ``serving``, ``jobs`` | model versions, the one served, sleep jobs (:mod:`~agents.app.service.versions`) |

Durability: key and halt changes commit with ``synchronous=FULL`` (on disk before the call returns: a halt
survives a crash or a power cut); account updates, one per decision and fill, commit with ``NORMAL`` (in the
write-ahead log before the call returns: they survive a crash of the service; a power cut may lose the last
few). The folder also holds the audit trails (``audit/<account>.jsonl``) and the exported models
(``models/<version>/``).

Checkpoints: the serving process turns SQLite's automatic checkpoint off on its connection
(:meth:`ServiceStore.background_checkpoints`) and checkpoints from a thread instead (:meth:`ServiceStore.checkpoint`,
called once a second by :class:`~agents.app.service.syncer.DiskSyncer`), so that no decision's commit waits for
the ``fsync``s of a checkpoint.

The service runs in one process (uvicorn, one worker); the store is not shared between processes, except that a
sleep job's worker process (:mod:`~agents.app.service.sleep_worker`) reads the experience and writes its own
job's row and its new version (SQLite's locking with ``busy_timeout`` orders the writes).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

DB_FILE = "service.db"
AUDIT_DIR = "audit"
MODELS_DIR = "models"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, scopes TEXT NOT NULL,
    salt BLOB NOT NULL, digest BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (name TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS halts (name TEXT PRIMARY KEY, reason TEXT NOT NULL, source TEXT NOT NULL,
                                  since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS halt_log (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, event TEXT NOT NULL,
                                     reason TEXT, source TEXT, time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, time REAL NOT NULL);
"""
_NOT_A_FOLDER = "--store {} is not a folder"


class KeyRow(NamedTuple):
    key_id: str
    name: str
    scopes: tuple[str, ...]
    salt: bytes
    digest: bytes


class Halt(NamedTuple):
    reason: str
    source: str
    since: float


def account_statement(name: str, state: str) -> tuple[str, tuple[Any, ...]]:
    """The statement that saves account ``name``'s state JSON (for :meth:`ServiceStore.execute` with others)."""
    return ("INSERT INTO accounts VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET state = excluded.state, "
            "updated = excluded.updated", (name, state, time.time()))


class ServiceStore:
    """The SQLite store of one ``--store`` folder (created if missing).

    Args:
        folder: the store folder.

    Raises:
        ValueError: ``folder`` exists and is not a folder.
        sqlite3.Error / OSError: the database cannot be opened or created.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(_NOT_A_FOLDER.format(self.folder))
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / AUDIT_DIR).mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.folder / DB_FILE, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._durable(False)
        self._checkpointer: sqlite3.Connection | None = None

    def _durable(self, full: bool) -> None:
        self._db.execute(f"PRAGMA synchronous={'FULL' if full else 'NORMAL'}")

    def _write(self, statements: list[tuple[str, tuple[Any, ...]]], durable: bool) -> None:
        with self._lock:
            if durable:
                self._durable(True)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        self._db.execute(sql, params)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if durable:
                    self._durable(False)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # ------------------------------------------------------------------ keys
    def add_key(self, key_id: str, name: str, scopes: tuple[str, ...], salt: bytes, digest: bytes) -> None:
        """Store a key (durably).

        Raises:
            sqlite3.IntegrityError: a key with this name (or id) exists.
        """
        self._write([("INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?)",
                      (key_id, name, ",".join(scopes), salt, digest, time.time()))], durable=True)

    def key(self, key_id: str) -> KeyRow | None:
        rows = self._read("SELECT key_id, name, scopes, salt, digest FROM keys WHERE key_id = ?", (key_id,))
        if not rows:
            return None
        key_id, name, scopes, salt, digest = rows[0]
        return KeyRow(key_id, name, tuple(s for s in scopes.split(",") if s), bytes(salt), bytes(digest))

    def key_names(self) -> list[str]:
        return [row[0] for row in self._read("SELECT name FROM keys ORDER BY name")]

    # ------------------------------------------------------------------ accounts
    def account(self, name: str) -> str | None:
        """The account's state JSON, None if it never traded."""
        rows = self._read("SELECT state FROM accounts WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def save_account(self, name: str, state: str) -> None:
        self._write([account_statement(name, state)], durable=False)

    # ------------------------------------------------------------------ halts
    def halts(self) -> dict[str, Halt]:
        return {name: Halt(reason, source, since)
                for name, reason, source, since in self._read("SELECT name, reason, source, since FROM halts")}

    def halt(self, name: str, reason: str, source: str) -> None:
        """Record a halt of ``name`` (durably); an account already halted keeps its first reason."""
        now = time.time()
        self._write([("INSERT OR IGNORE INTO halts VALUES (?, ?, ?, ?)", (name, reason, source, now)),
                     ("INSERT INTO halt_log (name, event, reason, source, time) VALUES (?, 'halt', ?, ?, ?)",
                      (name, reason, source, now))], durable=True)

    def resume(self, name: str) -> None:
        """Clear the halt of ``name`` (durably)."""
        self._write([("DELETE FROM halts WHERE name = ?", (name,)),
                     ("INSERT INTO halt_log (name, event, time) VALUES (?, 'resume', ?)", (name, time.time()))],
                    durable=True)

    # ------------------------------------------------------------------ operations
    def writable(self) -> bool:
        """Whether a write commits now (the readiness probe)."""
        try:
            self._write([("INSERT OR REPLACE INTO probe VALUES (1, ?)", (time.time(),))], durable=False)
        except (sqlite3.Error, OSError):
            return False
        return True

    def audit_path(self, name: str) -> Path:
        return self.folder / AUDIT_DIR / f"{name}.jsonl"

    def models_dir(self, version: str) -> Path:
        path = self.folder / MODELS_DIR / version
        path.mkdir(parents=True, exist_ok=True)
        return path

    def execute(self, statements: list[tuple[str, tuple[Any, ...]]], durable: bool = False) -> None:
        """Run ``(sql, params)`` statements in one transaction (``durable``: ``synchronous=FULL``); the tables of
        the sleep side (:mod:`~agents.app.service.experience`, :mod:`~agents.app.service.versions`) use it."""
        self._write(statements, durable)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows of one read."""
        return self._read(sql, params)

    def background_checkpoints(self) -> None:
        """Turn off this connection's automatic checkpoint: the caller runs :meth:`checkpoint` (another thread)."""
        with self._lock:
            self._db.execute("PRAGMA wal_autocheckpoint=0")

    def checkpoint(self) -> tuple[int, int]:
        """Copy the write-ahead log into the database (``PRAGMA wal_checkpoint(PASSIVE)``: never waits for, nor
        blocks, a writer), on a connection of its own: callable from any one thread while others write.

        Returns:
            ``(frames in the log, frames checkpointed)`` (SQLite's answer; equal when the log is all copied).

        Raises:
            sqlite3.Error: the checkpoint failed (e.g. another one is running); the next one catches up.
        """
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(self.folder / DB_FILE, check_same_thread=False,
                                                 isolation_level=None)
        _, log, done = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(log), int(done)

    def close(self) -> None:
        with self._lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
            self._db.close()


__all__ = ["AUDIT_DIR", "DB_FILE", "MODELS_DIR", "Halt", "KeyRow", "ServiceStore", "account_statement"]
