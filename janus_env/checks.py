"""Argument checks shared by every package: one function per kind of argument, one message format.

Each ``check_*`` function returns the value in its plain Python type (``int``, ``float``, ...) and raises

* ``TypeError`` when the value has the wrong type (``bool`` is neither an int nor a number; numpy scalars are
  accepted: ``np.int64`` is an int, ``np.float32`` a number);
* ``ValueError`` when it has the right type but lies outside the accepted range (NaN is outside every range;
  so is ±inf unless ``finite=False``);

both with ``BAD_VALUE.format(name=..., expected=..., value=...)``, where ``expected`` states the whole
requirement, e.g. ``"Expected `n_levels` to be an int >= 1, got 0"``,
``"Expected `tau` to be a number in (0, 1], got 1.5"`` or, with ``optional=True`` (None accepted and returned),
``"Expected `seed` to be an int or None, got 'x'"``. Tests match these messages literally.

Stepping an env (or wrapper) before ``reset()`` raises ``RuntimeError(NEED_RESET)``; another method than
``step`` uses ``NEED_RESET_FOR.format("render")``.

Data files are validated elsewhere (``janus_env.data.validation``: errors name the file and the line).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Mapping
from typing import Any

import numpy as np

BAD_VALUE = "Expected `{name}` to be {expected}, got {value!r}"
"""The message of every check: ``name`` the argument, ``expected`` the requirement, ``value`` what came."""
NEED_RESET = "Call reset() before step()"
"""``RuntimeError`` message for ``step()`` before the first ``reset()`` (or after the episode ended)."""
NEED_RESET_FOR = "Call reset() before {}()"
"""``RuntimeError`` message for another method than ``step`` called before ``reset()``; format with its name."""


def bad_value(name: str, expected: str, value: Any) -> str:
    """The message of every check, ``BAD_VALUE`` filled in: ``bad_value("n", "an int >= 1", 0)``."""
    return BAD_VALUE.format(name=name, expected=expected, value=value)


def is_int(value: Any) -> bool:
    """True for a Python or numpy integer that is not a ``bool``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for a real number (Python or numpy int or float, NaN and ±inf included) that is not a ``bool``."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _bound(x: float) -> str:
    return str(x) if is_int(x) else f"{x:g}"


def describe_range(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> str:
    """The range in words, as the messages write it: ``"in [0, 1)"``, ``">= 1"``, ``"> 0"``, ``"<= 5"`` or ``""``."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_bound(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_bound(high)}"
    return ""


def _in_range(x: float, low: float | None, high: float | None, low_open: bool, high_open: bool) -> bool:
    if x != x:  # NaN
        return False
    if low is not None and (x <= low if low_open else x < low):
        return False
    return not (high is not None and (x >= high if high_open else x > high))


def _expected(kind: str, range_: str, optional: bool) -> str:
    return " ".join(filter(None, (kind, range_, "or None" if optional else "")))


def check_int(
    name: str, value: Any, *, low: int | None = None, high: int | None = None, optional: bool = False
) -> int | None:
    """``value`` as an ``int``, checked to lie in ``[low, high]`` (either bound may be None).

    Args:
        name: the argument's name, for the message.
        value: a Python or numpy integer (``bool`` and floats such as ``2.0`` are refused).
        low: smallest accepted value (inclusive), or None.
        high: largest accepted value (inclusive), or None.
        optional: accept None too (and return it).

    Returns:
        ``int(value)`` (None for None when ``optional``).

    Raises:
        TypeError: ``value`` is not an int, e.g. ``"Expected `n` to be an int >= 1, got 1.5"``.
        ValueError: ``value`` is out of range, e.g. ``"Expected `n` to be an int >= 1, got 0"``.
    """
    if value is None and optional:
        return None
    if not is_int(value) or not _in_range(value, low, high, False, False):
        expected = _expected("an int", describe_range(low, high), optional)
        raise (ValueError if is_int(value) else TypeError)(BAD_VALUE.format(name=name, expected=expected, value=value))
    return int(value)


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
    optional: bool = False,
) -> float | None:
    """``value`` as a ``float``, checked to be finite and to lie between ``low`` and ``high``.

    Args:
        name: the argument's name, for the message.
        value: a real number (Python or numpy int or float; ``bool`` is refused).
        low: lower bound or None; excluded when ``low_open`` (``> low``), else included (``>= low``).
        high: upper bound or None; excluded when ``high_open``, else included.
        low_open: whether ``low`` itself is refused.
        high_open: whether ``high`` itself is refused.
        finite: refuse ±inf (NaN is always refused). With ``finite=False`` the message says ``"a number"``.
        optional: accept None too (and return it).

    Returns:
        ``float(value)`` (None for None when ``optional``).

    Raises:
        TypeError: ``value`` is not a real number, e.g. ``"Expected `lr` to be a finite number > 0, got '1'"``.
        ValueError: ``value`` is NaN, infinite (when ``finite``) or out of range, e.g.
            ``"Expected `tau` to be a number in (0, 1], got 0.0"``.
    """
    if value is None and optional:
        return None
    ok = is_number(value)
    if not ok or not _in_range(value, low, high, low_open, high_open) or (finite and not math.isfinite(value)):
        bounded = low is not None and high is not None and math.isfinite(low) and math.isfinite(high)
        kind = "a finite number" if finite and not bounded else "a number"
        expected = _expected(kind, describe_range(low, high, low_open=low_open, high_open=high_open), optional)
        raise (ValueError if ok else TypeError)(BAD_VALUE.format(name=name, expected=expected, value=value))
    return float(value)


def check_positive(name: str, value: Any, *, finite: bool = True, optional: bool = False) -> float | None:
    """``check_number(name, value, low=0, low_open=True, ...)``: a real number > 0."""
    return check_number(name, value, low=0, low_open=True, finite=finite, optional=optional)


def check_fraction(
    name: str, value: Any, *, low_open: bool = False, high_open: bool = False, optional: bool = False
) -> float | None:
    """``check_number(name, value, low=0, high=1, ...)``: a real number in [0, 1], either end excluded on request."""
    return check_number(name, value, low=0, high=1, low_open=low_open, high_open=high_open, optional=optional)


def check_bool(name: str, value: Any, *, optional: bool = False) -> bool | None:
    """``value`` as a ``bool`` (Python or numpy bool; ``0``, ``1`` and ``"false"`` are refused).

    Raises:
        TypeError: ``"Expected `flag` to be a bool, got 1"`` (``"a bool or None"`` when ``optional``).
    """
    if value is None and optional:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(BAD_VALUE.format(name=name, expected=_expected("a bool", "", optional), value=value))
    return bool(value)


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """``value``, checked to be one of ``choices`` (compared with ``==``).

    Raises:
        ValueError: ``"Expected `mode` to be one of ('a', 'b'), got 'c'"``.
    """
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a set or dict of choices
        ok = False
    if not ok:
        expected = f"one of ({', '.join(map(repr, choices))})"
        raise ValueError(BAD_VALUE.format(name=name, expected=expected, value=value))
    return value


def check_callable(name: str, value: Any, *, optional: bool = False) -> Callable[..., Any] | None:
    """``value``, checked to be callable.

    Raises:
        TypeError: ``"Expected `hook` to be callable, got 42"`` (``"callable or None"`` when ``optional``).
    """
    if value is None and optional:
        return None
    if not callable(value):
        raise TypeError(BAD_VALUE.format(name=name, expected=_expected("callable", "", optional), value=value))
    return value


def check_mapping(name: str, value: Any) -> Mapping[Any, Any]:
    """``value``, checked to be a mapping (a ``dict`` or any ``collections.abc.Mapping``).

    Raises:
        TypeError: ``"Expected `options` to be a mapping, got [1, 2]"``.
    """
    if not isinstance(value, Mapping):
        raise TypeError(BAD_VALUE.format(name=name, expected="a mapping", value=value))
    return value


_BIT_GENERATORS = ("PCG64", "PCG64DXSM")  # states of plain integers; MT19937 and Philox hold an unchecked index


def check_array_like(name: str, value: Any, like: np.ndarray) -> np.ndarray:
    """``value``, checked to be a numpy array with the dtype and shape of ``like`` (saved state restored into it).

    Raises:
        ValueError: ``"Expected `book` to be a float32 array of shape (8, 5, 4), got 'float64 array of shape (3,)'"``
            (a value that is not an array is named by its type).
    """
    if not isinstance(value, np.ndarray) or value.dtype != like.dtype or value.shape != like.shape:
        got = f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
        raise ValueError(BAD_VALUE.format(name=name, expected=f"a {like.dtype} array of shape {like.shape}", value=got))
    return value


def check_rows(name: str, value: Any, width: int) -> np.ndarray:
    """``value`` as a C-contiguous float64 ``(n, width)`` array of finite numbers (a batch of vectors).

    Raises:
        ValueError: ``"Expected `query` to be a finite (n, 8) array, got 'shape (3,)'"`` (or ``got
            'non-finite values'``).
    """
    x = np.ascontiguousarray(value, dtype=np.float64)
    expected = f"a finite (n, {width}) array"
    if x.ndim != 2 or x.shape[1] != width:
        raise ValueError(BAD_VALUE.format(name=name, expected=expected, value=f"shape {x.shape}"))
    if not np.all(np.isfinite(x)):
        raise ValueError(BAD_VALUE.format(name=name, expected=expected, value="non-finite values"))
    return x


def generator_from_state(name: str, state: Any) -> np.random.Generator:
    """A new ``numpy.random.Generator`` in the state ``rng.bit_generator.state`` of a saved one.

    Raises:
        ValueError: ``state`` is not the state of a PCG64 or PCG64DXSM bit generator (``default_rng`` and
            Gymnasium's spaces use PCG64), e.g. a crafted or truncated checkpoint value.
    """
    kind = state.get("bit_generator") if isinstance(state, Mapping) else None
    if kind not in _BIT_GENERATORS:
        raise ValueError(BAD_VALUE.format(name=name, expected=f"a {'/'.join(_BIT_GENERATORS)} state", value=kind))
    rng = np.random.Generator(getattr(np.random, kind)())
    try:
        rng.bit_generator.state = dict(state)
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(BAD_VALUE.format(name=name, expected=f"a valid {kind} state", value=state)) from err
    return rng
