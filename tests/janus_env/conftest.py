"""Fixtures shared by the ``janus_env`` tests (the suite-wide ones, ``small_market`` and ``check_all`` among them, are
in ``tests/conftest.py``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from janus_env.data import validation as v


def _row_error(path: Path | str, line: int, problem: str) -> str:
    return "^" + re.escape(v.ROW_ERROR.format(file=str(path), line=line, problem=problem)) + "$"


@pytest.fixture
def row_error() -> Callable[[Path | str, int, str], str]:
    """``row_error(path, line, problem)``: a ``pytest.raises(match=...)`` pattern for exactly the data loaders'
    ``DataFormatError`` that names ``path``, the 1-based ``line`` and the ``problem``."""
    return _row_error


def _write_rows(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(r + "\n" for r in rows))
    return path


@pytest.fixture
def write_rows() -> Callable[[Path, list[str]], Path]:
    """``write_rows(path, rows)``: writes ``rows`` to ``path``, one a line, and returns ``path``."""
    return _write_rows
