"""janus_env.checks: one message format, TypeError for a wrong type, ValueError for a value out of range."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from janus_env.checks import (
    BAD_VALUE,
    NEED_RESET,
    NEED_RESET_FOR,
    check_bool,
    check_callable,
    check_choice,
    check_fraction,
    check_int,
    check_mapping,
    check_number,
    check_positive,
    describe_range,
    is_int,
    is_number,
)


@pytest.mark.parametrize(
    ("value", "int_", "number"),
    [
        (1, True, True),
        (np.int64(3), True, True),
        (np.uint8(3), True, True),
        (2.0, False, True),
        (np.float32(0.5), False, True),
        (math.nan, False, True),
        (True, False, False),
        (np.bool_(True), False, False),
        ("1", False, False),
        (None, False, False),
        (1 + 0j, False, False),
    ],
)
def test_is_int_and_is_number(value: object, int_: bool, number: bool) -> None:
    assert is_int(value) is int_
    assert is_number(value) is number


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"low": 0, "high": 1}, "in [0, 1]"),
        ({"low": 0, "high": 1, "low_open": True}, "in (0, 1]"),
        ({"low": 0, "high": 1, "high_open": True}, "in [0, 1)"),
        ({"low": 1}, ">= 1"),
        ({"low": 0, "low_open": True}, "> 0"),
        ({"high": 5}, "<= 5"),
        ({"high": 0.25, "high_open": True}, "< 0.25"),
        ({}, ""),
    ],
)
def test_describe_range(kwargs: dict, words: str) -> None:
    assert describe_range(**kwargs) == words


def test_check_int_returns_a_plain_int() -> None:
    value = check_int("n", np.int64(4), low=1)
    assert value == 4 and type(value) is int
    assert check_int("n", 1, low=1, high=1) == 1
    assert check_int("seed", None, optional=True) is None


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "message"),
    [
        (0, {"low": 1}, ValueError, "Expected `n` to be an int >= 1, got 0"),
        (6, {"low": 1, "high": 5}, ValueError, "Expected `n` to be an int in [1, 5], got 6"),
        (1.5, {"low": 1}, TypeError, "Expected `n` to be an int >= 1, got 1.5"),
        (2.0, {}, TypeError, "Expected `n` to be an int, got 2.0"),
        (True, {"low": 0}, TypeError, "Expected `n` to be an int >= 0, got True"),
        ("3", {}, TypeError, "Expected `n` to be an int, got '3'"),
        (None, {}, TypeError, "Expected `n` to be an int, got None"),
        ("x", {"optional": True}, TypeError, "Expected `n` to be an int or None, got 'x'"),
        (-1, {"low": 0, "optional": True}, ValueError, "Expected `n` to be an int >= 0 or None, got -1"),
    ],
)
def test_check_int_errors(value: object, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        check_int("n", value, **kwargs)


def test_check_number_returns_a_plain_float() -> None:
    value = check_number("x", np.float32(0.5), low=0, high=1)
    assert value == 0.5 and type(value) is float
    assert check_number("x", 3) == 3.0 and type(check_number("x", 3)) is float
    assert check_number("x", math.inf, finite=False) == math.inf
    assert check_number("x", None, optional=True) is None
    assert check_positive("x", 1e-300) == 1e-300
    assert check_fraction("x", 0.0) == 0.0 and check_fraction("x", 1.0) == 1.0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: check_number("x", math.nan), ValueError, "Expected `x` to be a finite number, got nan"),
        (lambda: check_number("x", math.inf, low=0), ValueError, "Expected `x` to be a finite number >= 0, got inf"),
        (lambda: check_number("x", math.nan, finite=False), ValueError, "Expected `x` to be a number, got nan"),
        (lambda: check_number("x", -0.5, low=0), ValueError, "Expected `x` to be a finite number >= 0, got -0.5"),
        (lambda: check_number("x", "1"), TypeError, "Expected `x` to be a finite number, got '1'"),
        (lambda: check_number("x", False), TypeError, "Expected `x` to be a finite number, got False"),
        (lambda: check_positive("lr", 0.0), ValueError, "Expected `lr` to be a finite number > 0, got 0.0"),
        (lambda: check_positive("lr", None, optional=True) or check_positive("lr", "a", optional=True), TypeError,
         "Expected `lr` to be a finite number > 0 or None, got 'a'"),
        (lambda: check_fraction("tau", 0.0, low_open=True), ValueError,
         "Expected `tau` to be a number in (0, 1], got 0.0"),
        (lambda: check_fraction("tau", 1.0, high_open=True), ValueError,
         "Expected `tau` to be a number in [0, 1), got 1.0"),
        (lambda: check_fraction("tau", math.nan), ValueError, "Expected `tau` to be a number in [0, 1], got nan"),
    ],
)
def test_check_number_errors(call, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_check_bool() -> None:
    assert check_bool("flag", np.bool_(False)) is False
    assert check_bool("flag", None, optional=True) is None
    with pytest.raises(TypeError, match=re.escape("Expected `flag` to be a bool, got 1")):
        check_bool("flag", 1)
    with pytest.raises(TypeError, match=re.escape("Expected `flag` to be a bool or None, got 'false'")):
        check_bool("flag", "false", optional=True)


def test_check_choice_callable_mapping() -> None:
    assert check_choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=re.escape("Expected `mode` to be one of ('a', 'b'), got 'c'")):
        check_choice("mode", "c", ("a", "b"))
    with pytest.raises(ValueError, match=re.escape("Expected `mode` to be one of ('a', 'b'), got ['a']")):
        check_choice("mode", ["a"], ("a", "b"))
    with pytest.raises(ValueError, match=re.escape("got ['a']")):
        check_choice("mode", ["a"], {"a"})  # unhashable against a set: refused, not a crash
    assert check_callable("hook", len) is len
    assert check_callable("hook", None, optional=True) is None
    with pytest.raises(TypeError, match=re.escape("Expected `hook` to be callable, got 42")):
        check_callable("hook", 42)
    with pytest.raises(TypeError, match=re.escape("Expected `hook` to be callable or None, got 42")):
        check_callable("hook", 42, optional=True)
    assert check_mapping("options", {}) == {}
    with pytest.raises(TypeError, match=re.escape("Expected `options` to be a mapping, got [1, 2]")):
        check_mapping("options", [1, 2])


def test_messages_are_the_documented_constants() -> None:
    assert BAD_VALUE.format(name="n", expected="an int", value=0) == "Expected `n` to be an int, got 0"
    assert NEED_RESET == "Call reset() before step()"
    assert NEED_RESET_FOR.format("render") == "Call reset() before render()"
