"""Argument checks shared by the basal-ganglia modules (each raises ``ValueError`` with a message constant)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

_BAD_TAU = "Expected `{}` in (0, 1], got {!r}"
_BAD_INDEX = "Expected `{}` to be a non-negative int, got {!r}"
_BAD_COUNT = "Expected `{}` to be a positive int, got {!r}"
_BAD_POSITIVE = "Expected `{}` > 0 and finite, got {!r}"
_BAD_NONNEG = "Expected `{}` >= 0 and finite, got {!r}"
_BAD_FINITE = "Expected `{}` to be a finite number, got {!r}"


def _is_real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def check_tau(name: str, value: Any) -> float:
    """A threshold in (0, 1]."""
    if not _is_real(value) or not 0.0 < float(value) <= 1.0:
        raise ValueError(_BAD_TAU.format(name, value))
    return float(value)


def check_index(name: str, value: Any) -> int:
    """An int ≥ 0."""
    if not _is_int(value) or value < 0:
        raise ValueError(_BAD_INDEX.format(name, value))
    return int(value)


def check_count(name: str, value: Any) -> int:
    """An int ≥ 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(_BAD_COUNT.format(name, value))
    return int(value)


def check_positive(name: str, value: Any) -> float:
    """A real in (0, ∞)."""
    if not _is_real(value) or not 0.0 < float(value) < math.inf:
        raise ValueError(_BAD_POSITIVE.format(name, value))
    return float(value)


def check_nonnegative(name: str, value: Any) -> float:
    """A real in [0, ∞)."""
    if not _is_real(value) or not 0.0 <= float(value) < math.inf:
        raise ValueError(_BAD_NONNEG.format(name, value))
    return float(value)


def check_finite(name: str, value: Any) -> float:
    """A finite real."""
    if not _is_real(value) or not math.isfinite(value):
        raise ValueError(_BAD_FINITE.format(name, value))
    return float(value)
