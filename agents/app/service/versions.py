"""Model versions and sleep jobs in the store (``service.db``), so that a restart loses neither.

| table | rows |
| --- | --- |
| ``versions`` | one per model version: its ``model.zip``, the version it was made from (``parent``), the job that made it |
| ``serving`` | one row: the version new decisions use, and the run's own version (``root``) |
| ``jobs`` | one per sleep job: state, progress, stage, parameters, result, error, worker pid, times |

Job states: ``queued`` → ``running`` (a worker process) → ``validated`` (a new version written and validated;
the service swaps it in) → ``succeeded``; or ``rejected`` (validation refused it: the reason in ``error``),
``failed`` (the job raised, or its worker died) or ``interrupted`` (the service stopped while it was queued,
running or validated: the version served stays). Every change commits durably (``synchronous=FULL``).

The run's own version is the root: a store served with another run starts again from that run's model. A
version's ``parent`` is what a rollback returns to.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, NamedTuple

from agents.app.service.store import ServiceStore

TABLES = (
    "CREATE TABLE IF NOT EXISTS versions (version TEXT PRIMARY KEY, parent TEXT, model_path TEXT NOT NULL, "
    "job_id TEXT, created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS serving (id INTEGER PRIMARY KEY CHECK (id = 1), version TEXT NOT NULL, "
    "root TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, progress REAL NOT NULL, "
    "stage TEXT NOT NULL, params TEXT NOT NULL, result TEXT, error TEXT, pid INTEGER, base_version TEXT NOT NULL, "
    "new_version TEXT, created REAL NOT NULL, started REAL, finished REAL)",
)
UNFINISHED = ("queued", "running", "validated")
FINISHED = ("succeeded", "rejected", "failed", "interrupted")


class Version(NamedTuple):
    version: str
    parent: str | None
    model_path: Path


def create_tables(store: ServiceStore) -> None:
    store.execute([(sql, ()) for sql in TABLES], durable=True)


def version(store: ServiceStore, name: str) -> Version | None:
    rows = store.query("SELECT version, parent, model_path FROM versions WHERE version = ?", (name,))
    return None if not rows else Version(rows[0][0], rows[0][1], Path(rows[0][2]))


def serve_from(store: ServiceStore, root: str, root_model: Path) -> Version:
    """The version to serve at start: the stored one when it descends from the run's own version ``root`` (and
    its file is there), else ``root`` itself (recorded as served)."""
    create_tables(store)
    store.execute([("INSERT OR IGNORE INTO versions VALUES (?, NULL, ?, NULL, ?)",
                    (root, str(root_model), time.time()))], durable=True)
    rows = store.query("SELECT version, root FROM serving WHERE id = 1")
    if rows and rows[0][1] == root:
        current = version(store, rows[0][0])
        if current is not None and current.model_path.is_file():
            return current
    store.execute([("INSERT INTO serving VALUES (1, ?, ?) ON CONFLICT(id) DO UPDATE SET version = excluded.version, "
                    "root = excluded.root", (root, root))], durable=True)
    return Version(root, None, root_model)


def current(store: ServiceStore) -> Version:
    name = store.query("SELECT version FROM serving WHERE id = 1")[0][0]
    found = version(store, name)
    if found is None:  # serving only ever names a stored version
        raise RuntimeError(f"the store serves {name!r}, which it does not hold")
    return found


def add_version(store: ServiceStore, name: str, parent: str, model_path: Path, job_id: str) -> None:
    """Record a new version (a validated job's)."""
    store.execute([("INSERT OR IGNORE INTO versions VALUES (?, ?, ?, ?, ?)",
                    (name, parent, str(model_path), job_id, time.time()))], durable=True)


def set_serving(store: ServiceStore, name: str, job_id: str | None = None) -> None:
    """Serve ``name`` from now on; with ``job_id``, that job succeeded (one transaction)."""
    statements: list[tuple[str, tuple[Any, ...]]] = [("UPDATE serving SET version = ? WHERE id = 1", (name,))]
    if job_id is not None:
        statements.append(("UPDATE jobs SET state = 'succeeded', progress = 1.0, stage = 'swapped in', "
                           "finished = ? WHERE id = ?", (time.time(), job_id)))
    store.execute(statements, durable=True)


# ---------------------------------------------------------------------- jobs
def new_job(store: ServiceStore, job_id: str, params: dict[str, Any], base_version: str) -> None:
    store.execute([("INSERT INTO jobs (id, state, progress, stage, params, base_version, created) "
                    "VALUES (?, 'queued', 0.0, 'queued', ?, ?, ?)",
                    (job_id, json.dumps(params), base_version, time.time()))], durable=True)


def job(store: ServiceStore, job_id: str) -> dict[str, Any] | None:
    """A job as the API shows it (None if unknown)."""
    rows = store.query("SELECT id, state, progress, stage, params, result, error, pid, base_version, new_version, "
                       "created, started, finished FROM jobs WHERE id = ?", (job_id,))
    if not rows:
        return None
    (jid, state, progress, stage, params, result, error, pid, base, new, created, started, finished) = rows[0]
    return {"id": jid, "state": state, "progress": progress, "stage": stage, "params": json.loads(params),
            "result": None if result is None else json.loads(result), "error": error, "pid": pid,
            "base_version": base, "new_version": new, "created": created, "started": started, "finished": finished}


def update_job(store: ServiceStore, job_id: str, when: tuple[str, ...] = ("queued", "running"),
               **fields: Any) -> bool:
    """Set ``fields`` of a job whose state is in ``when``; whether it was (a job finished meanwhile stays)."""
    if "result" in fields and fields["result"] is not None:
        fields["result"] = json.dumps(fields["result"], allow_nan=True)
    sets = ", ".join(f"{k} = ?" for k in fields)
    marks = ", ".join("?" for _ in when)
    store.execute([(f"UPDATE jobs SET {sets} WHERE id = ? AND state IN ({marks})",
                    (*fields.values(), job_id, *when))], durable=True)
    rows = store.query("SELECT state FROM jobs WHERE id = ?", (job_id,))
    return bool(rows) and ("state" not in fields or rows[0][0] == fields["state"])


def jobs_in(store: ServiceStore, states: tuple[str, ...]) -> list[str]:
    marks = ", ".join("?" for _ in states)
    return [r[0] for r in store.query(f"SELECT id FROM jobs WHERE state IN ({marks}) ORDER BY created", states)]


def interrupt_unfinished(store: ServiceStore) -> list[str]:
    """At start: every job left queued, running or validated by a service that stopped becomes ``interrupted``."""
    ids = jobs_in(store, UNFINISHED)
    for job_id in ids:
        update_job(store, job_id, UNFINISHED, state="interrupted", finished=time.time(),
                   error="the service stopped before the job finished; the version served did not change")
    return ids


__all__ = ["FINISHED", "UNFINISHED", "Version", "add_version", "create_tables", "current", "interrupt_unfinished",
           "job", "jobs_in", "new_job", "serve_from", "set_serving", "update_job", "version"]
