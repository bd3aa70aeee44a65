"""API keys: made once, shown once, stored as salted HMAC-SHA256 digests; scopes ``decide`` and ``admin``.

A key reads ``janus_<id>_<secret>``: ``id`` (12 hex digits) finds its row, ``secret`` (32 random bytes,
URL-safe base64) proves it. The store keeps ``HMAC-SHA256(salt, secret)`` with a random 16-byte salt per key,
never the secret, and compares digests in constant time (:func:`hmac.compare_digest`). The secret has 256 bits
of entropy, so one keyed hash is enough (a slow password hash protects low-entropy passwords, and would cost
every request milliseconds).

Each key has one account, named like the key; its scopes decide what it may do:

| scope | may |
| --- | --- |
| ``decide`` | ask for decisions and report fills on its own account, read it |
| ``admin`` | halt and resume any account (the kill switch), read any account |
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from pathlib import Path
from typing import NamedTuple

from agents.app.service.schemas import ACCOUNT_PATTERN
from agents.app.service.store import KeyRow, ServiceStore

SCOPES = ("decide", "admin")
PREFIX = "janus"

_BAD_NAME = "expected a name of 1-64 letters, digits, '_', '.' or '-' (starting with a letter or digit), got {!r}"
_BAD_SCOPES = "expected scopes among {} (comma-separated, at least one), got {!r}"
_TAKEN = "a key named {!r} exists already (one account per key: pick another name)"
_NOT_STORE = "--store {}: cannot open the service store: {}"
_KEY = re.compile(rf"^{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")
_DUMMY_SALT = bytes(16)


class Principal(NamedTuple):
    """Who a valid key belongs to: its ``name`` (= its account) and ``scopes``."""

    name: str
    scopes: tuple[str, ...]


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


def parse_scopes(text: str) -> tuple[str, ...]:
    """``"decide,admin"`` → ``("decide", "admin")``.

    Raises:
        ValueError: an unknown scope, or none.
    """
    scopes = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not scopes or any(s not in SCOPES for s in scopes):
        raise ValueError(_BAD_SCOPES.format(list(SCOPES), text))
    return scopes


class ApiKeys:
    """The keys of one store: :meth:`create` a key, :meth:`verify` one.

    Args:
        store: the service store.
    """

    def __init__(self, store: ServiceStore) -> None:
        self.store = store
        self._rows: dict[str, KeyRow] = {}  # key id -> its stored row (salt and digest, never the secret)

    def create(self, name: str, scopes: tuple[str, ...]) -> str:
        """A new key for a new account ``name``; the returned text is the only copy of the secret.

        Raises:
            ValueError: a bad name or scope, or a name already taken.
        """
        if not isinstance(name, str) or not re.match(ACCOUNT_PATTERN, name):
            raise ValueError(_BAD_NAME.format(name))
        scopes = parse_scopes(",".join(scopes))
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        try:
            self.store.add_key(key_id, name, scopes, salt, _digest(salt, secret))
        except sqlite3.IntegrityError as err:
            raise ValueError(_TAKEN.format(name)) from err
        return f"{PREFIX}_{key_id}_{secret}"

    def verify(self, text: str) -> Principal | None:
        """The principal of a valid key, None for anything else (unknown, malformed, wrong secret)."""
        match = _KEY.match(text)
        if match is None:
            return None
        key_id, secret = match.groups()
        row = self._rows.get(key_id)
        if row is None:  # rows are written once (keygen) and never change: each is read from the store once
            row = self.store.key(key_id)
            if row is not None:
                self._rows[key_id] = row
        expected = row.digest if row is not None else bytes(32)
        ok = hmac.compare_digest(_digest(row.salt if row is not None else _DUMMY_SALT, secret), expected)
        return Principal(row.name, row.scopes) if ok and row is not None else None


def open_store(folder: str | Path) -> ServiceStore:
    """The store of ``folder`` (created if missing).

    Raises:
        ValueError: it cannot be opened (not a folder, not writable, not a service database).
    """
    try:
        return ServiceStore(folder)
    except (OSError, ValueError, sqlite3.Error) as err:
        raise ValueError(_NOT_STORE.format(folder, err)) from err


def make_key(folder: str | Path, name: str, scopes: str) -> str:
    """``serve.py keygen``: a new key (and account) ``name`` with ``scopes`` in the store at ``folder``.

    Returns:
        The key text, its only copy.

    Raises:
        ValueError: a bad name or scope, a name already taken, or a store that cannot be opened.
    """
    store = open_store(folder)
    try:
        return ApiKeys(store).create(name, parse_scopes(scopes))
    finally:
        store.close()


__all__ = ["PREFIX", "SCOPES", "ApiKeys", "Principal", "make_key", "open_store", "parse_scopes"]
