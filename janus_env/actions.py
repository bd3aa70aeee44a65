"""Action spaces of the trading envs and their validation into signed share quantities."""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces

from janus_env.checks import check_choice, check_int, is_int

ACTION_TYPES = ("discrete", "sized", "continuous")

_DISCRETE_TYPE = "Expected an integer action for {}, got {!r} of type {}"
_CONTINUOUS_TYPE = "Expected a float array of shape (1,) for {}, got {!r}"


class InvalidActionError(ValueError):
    """An action outside the env's action space (or NaN/inf)."""


ACTION_ERRORS: tuple[type[Exception], ...] = (InvalidActionError, TypeError)
"""What checking a caller's action raises (:func:`discrete_index`, :func:`continuous_fraction`): an action
outside its space, or of the wrong type. The safety wrappers let these propagate (the caller's mistake, raised
before anything executes) and halt on any other exception."""


def make_action_space(action_type: str, n_sizes: int) -> spaces.Space:
    """``Discrete(3)`` (HOLD/BUY/SELL), ``Discrete(2k+1)`` sized, or ``Box(-1, 1, (1,))``."""
    check_choice("action_type", action_type, ACTION_TYPES)
    if action_type == "discrete":
        return spaces.Discrete(3)
    if action_type == "sized":
        return spaces.Discrete(2 * check_int("n_sizes", n_sizes, low=1) + 1)
    return spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)


def discrete_index(action: object, space: spaces.Discrete) -> int:
    """Validate a discrete action and return it as a Python int."""
    if isinstance(action, np.ndarray):
        if action.shape not in ((), (1,)) or not np.issubdtype(action.dtype, np.integer):
            raise TypeError(_DISCRETE_TYPE.format(space, action, type(action).__name__))
        action = action.reshape(()).item()
    elif not is_int(action):
        raise TypeError(_DISCRETE_TYPE.format(space, action, type(action).__name__))
    a = int(action)
    if not 0 <= a < space.n:
        raise InvalidActionError(f"Action {a!r} is outside {space}")
    return a


def sized_quantity(index: int, n_sizes: int, lot: int) -> int:
    """0 → hold; ``1..k`` → buy ``i`` lots; ``k+1..2k`` → sell ``i−k`` lots (k = 1 is HOLD/BUY/SELL)."""
    if index == 0:
        return 0
    if index <= n_sizes:
        return index * lot
    return -(index - n_sizes) * lot


def continuous_fraction(action: object, space: spaces.Box) -> float:
    """Validate a ``Box(-1, 1, (1,))`` action and return the target fraction of the position limit."""
    try:
        arr = np.asarray(action)
    except Exception as err:  # pragma: no cover - exotic objects
        raise TypeError(_CONTINUOUS_TYPE.format(space, action)) from err
    if arr.size != 1 or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(_CONTINUOUS_TYPE.format(space, action))
    x = float(arr.reshape(-1)[0])
    if not math.isfinite(x) or x < -1.0 or x > 1.0:
        raise InvalidActionError(f"Action {action!r} is outside {space}")
    return x
