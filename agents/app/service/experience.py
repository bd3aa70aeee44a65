"""The experience of served decisions: one transition per decision whose outcome the next decision saw.

A transition is what a training env step gives ``JanusDQN``'s prioritized buffer (``buffer.add``):

| column | value |
| --- | --- |
| ``obs`` | the observation the policy decided on (the env's observation dict, keys in sorted order, raw bytes) |
| ``action`` | the action the policy passed to the glass box (its gated action, before the shield and sizing) — what a training buffer stores, since the glass box is part of the env there |
| ``reward`` | the next decision's reward: ``(E_t − E_{t−1}) / cash_0 · 10⁴``, the equity marked at the new mid with the desk's fills booked — the env's ``reward="pnl"`` |
| ``next_obs`` | the next decision's observation |
| ``done`` | 1 when the next decision halted the account (a breaker or the kill switch ends the session, as ``Amygdala`` ends an episode) |
| ``violation``, ``action_sat`` | the shield's ``info["ltn"]`` of the decision: ``1 − SatAgg`` of the action, the per-action SatAgg (float32 bytes) |

A decision opens a transition; the account's next decision in the same session closes it and it is stored
(table ``experience`` of ``service.db``, ``synchronous=NORMAL`` as the accounts). A new session (its first
decision, after ``episode_steps`` decisions, a resume or a restart) drops a transition still open: its outcome
belongs to no step of a session. A halted decision opens none.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from agents.app.service.store import ServiceStore

TABLES = (
    "CREATE TABLE IF NOT EXISTS experience (id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, "
    "session INTEGER NOT NULL, decision_id INTEGER NOT NULL, model_version TEXT NOT NULL, obs BLOB NOT NULL, "
    "action INTEGER NOT NULL, reward REAL NOT NULL, next_obs BLOB NOT NULL, done INTEGER NOT NULL, "
    "violation REAL NOT NULL, action_sat BLOB, time REAL NOT NULL)",
)
_BAD_BLOB = "a stored observation has {} bytes; this run's observation space needs {}"


def create_tables(store: ServiceStore) -> None:
    """The ``experience`` table (if missing)."""
    store.execute([(sql, ()) for sql in TABLES], durable=True)


def encode_obs(obs: dict[str, np.ndarray], space: spaces.Dict) -> bytes:
    """The observation as bytes: each key's array in the space's dtype, keys in sorted order."""
    return b"".join(np.ascontiguousarray(obs[key], dtype=space[key].dtype).tobytes() for key in sorted(space.spaces))


def decode_obs(blobs: list[bytes], space: spaces.Dict) -> dict[str, np.ndarray]:
    """Observations stored by :func:`encode_obs`, stacked: ``{key: (len(blobs), *shape)}``.

    Raises:
        ValueError: a blob whose length does not fit ``space``.
    """
    keys = sorted(space.spaces)
    sizes = [int(np.prod(space[k].shape)) * np.dtype(space[k].dtype).itemsize for k in keys]
    total = sum(sizes)
    raw = b"".join(blobs)
    for blob in blobs:
        if len(blob) != total:
            raise ValueError(_BAD_BLOB.format(len(blob), total))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(len(blobs), total)
    out, start = {}, 0
    for key, size in zip(keys, sizes):
        sub = space[key]
        out[key] = rows[:, start:start + size].copy().view(sub.dtype).reshape(len(blobs), *sub.shape)
        start += size
    return out


class _Open(NamedTuple):
    session: int
    decision_id: int
    version: str
    obs: bytes
    action: int
    violation: float
    action_sat: bytes | None


class Transitions(NamedTuple):
    """Stored transitions, oldest first (arrays of one row per transition)."""

    ids: np.ndarray
    obs: dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: dict[str, np.ndarray]
    dones: np.ndarray
    violations: np.ndarray
    action_sat: np.ndarray | None


class ExperienceRecorder:
    """Records the transitions of served decisions (module docstring) in ``store``.

    Args:
        store: the service's store (the table is created if missing).
        space: the run's observation space.
    """

    def __init__(self, store: ServiceStore, space: spaces.Dict) -> None:
        self.store = store
        self.space = space
        self._open: dict[str, _Open] = {}
        create_tables(store)

    def observe(self, account: str, session: int, decision_id: int, version: str, obs: dict[str, np.ndarray],
                agent_action: int | None, ltn: dict[str, Any] | None, reward: float, halted: bool,
                with_statements: list[tuple[str, tuple[Any, ...]]] | None = None) -> None:
        """One answered decision of ``account``: close its open transition (same session), open the next one.

        ``with_statements`` (the account's save) commit in the same transaction as the transition (one commit per
        decision).
        """
        blob = encode_obs(obs, self.space)
        statements = list(with_statements or [])
        pending = self._open.pop(account, None)
        if pending is not None and pending.session == session:
            statements.append((
                "INSERT INTO experience (account, session, decision_id, model_version, obs, action, reward, "
                "next_obs, done, violation, action_sat, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (account, session, pending.decision_id, pending.version, pending.obs, pending.action, float(reward),
                 blob, int(halted), pending.violation, pending.action_sat, time.time())))
        if statements:
            self.store.execute(statements)
        if halted or agent_action is None or ltn is None:
            return
        sat = ltn.get("action_sat")
        sat_blob = None if sat is None else np.asarray(sat, dtype=np.float32).tobytes()
        self._open[account] = _Open(session, decision_id, version, blob, int(agent_action),
                                    float(ltn.get("violation", 0.0)), sat_blob)


def count_transitions(store: ServiceStore) -> int:
    """Transitions stored."""
    return int(store.query("SELECT COUNT(*) FROM experience")[0][0])


def read_transitions(store: ServiceStore, space: spaces.Dict, limit: int) -> Transitions:
    """The ``limit`` most recent transitions, oldest first.

    Raises:
        ValueError: a stored observation that does not fit ``space`` (a store of another run).
    """
    rows = store.query("SELECT id, obs, action, reward, next_obs, done, violation, action_sat FROM experience "
                       "ORDER BY id DESC LIMIT ?", (int(limit),))[::-1]
    sats = [r[7] for r in rows]
    action_sat = None
    if rows and all(s is not None for s in sats):
        action_sat = np.frombuffer(b"".join(sats), dtype=np.float32).reshape(len(rows), -1).copy()
    return Transitions(ids=np.array([r[0] for r in rows], dtype=np.int64),
                       obs=decode_obs([bytes(r[1]) for r in rows], space),
                       actions=np.array([r[2] for r in rows], dtype=np.int64),
                       rewards=np.array([r[3] for r in rows], dtype=np.float32),
                       next_obs=decode_obs([bytes(r[4]) for r in rows], space),
                       dones=np.array([r[5] for r in rows], dtype=np.float32),
                       violations=np.array([r[6] for r in rows], dtype=np.float32),
                       action_sat=action_sat)


__all__ = ["ExperienceRecorder", "Transitions", "count_transitions", "create_tables", "decode_obs", "encode_obs",
           "read_transitions"]
