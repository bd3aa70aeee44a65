"""Logic Tensor Network core: Łukasiewicz connectives, quantifiers, predicates and SatAgg.

One implementation serves three back ends: numpy arrays (the env loop),
torch tensors (differentiable losses) and numba ``@njit`` code (the
shield's per-step kernel in ``wrappers/rules.py``). Every formula below is
written once, in terms of a handful of primitives (``relu``, ``tanh``,
``amin``/``amax``/``mean`` over an axis) that dispatch on the input type:
torch for a ``torch.Tensor``, numpy otherwise, and a numba overload inside
jitted code. The formulas themselves are plain arithmetic registered with
``numba.extending.register_jitable``, so numba compiles the *same* source.

| name | formula | written as |
| --- | --- | --- |
| AND (t-norm) | ``max(0, a + b − 1)`` | ``relu(a + b − 1)`` |
| OR (t-conorm) | ``min(1, a + b)`` | ``1 − relu(1 − a − b)`` |
| NOT | ``1 − a`` | ``1 − a`` |
| IMPLIES (residuum) | ``min(1, 1 − a + b)`` | ``1 − relu(a − b)`` |
| FORALL | ``min`` over an axis (the variable's domain) | ``amin`` |
| EXISTS | ``max`` over an axis | ``amax`` |
| SatAgg | ``(mean_i φ_i^p)^(1/p)``, p = 2 | generalized mean |
| logical loss | ``1 − SatAgg`` | |
| predicate | ``sigmoid(W·x + b)`` | ``0.5·(1 + tanh((W·x + b)/2))`` |

Sources: Łukasiewicz logic and the LTN framework as in Badreddine, Garcez,
Serafini & Spranger, "Logic Tensor Networks", *Artificial Intelligence* 303
(2022), §2–3 (connectives, quantifiers as aggregators, SatAgg). Note:
Badreddine et al. aggregate ∀ and SatAgg with the generalized mean of the
*errors* ``pME = 1 − (mean_i (1 − φ_i)^p)^(1/p)``; JANUS (DESIGN.md) uses the
generalized mean of the truths ``pM`` for SatAgg and crisp ``min``/``max``
for the quantifiers. ``pM`` with p = 2 is lenient: one fully violated rule
among n satisfied ones scores ``sqrt((n − 1)/n)`` (0.894 for n = 5).

## Gradients (torch)

The connectives are piecewise linear; where they are clamped their gradient
is zero *by definition*, elsewhere it is ±1:

| connective | non-zero gradient where | zero gradient where |
| --- | --- | --- |
| AND | ``a + b > 1``: ∂/∂a = ∂/∂b = 1 | ``a + b ≤ 1`` (truth clamped at 0) |
| OR | ``a + b < 1``: ∂/∂a = ∂/∂b = 1 | ``a + b ≥ 1`` (truth clamped at 1) |
| IMPLIES | ``a > b``: ∂/∂a = −1, ∂/∂b = 1 | ``a ≤ b`` (truth clamped at 1) |
| NOT | everywhere: −1 | never |

At the kink itself (``a + b = 1``, ``a = b``) torch's ``relu`` subgradient
is 0. FORALL/EXISTS send the whole gradient to the arg-min/arg-max element
(torch's ``amin``/``amax`` split it evenly between tied elements). SatAgg has
``∂/∂φ_i = φ_i^(p−1) · SatAgg^(1−p) / n``: non-zero for ``φ_i > 0`` and
undefined (infinite) when every truth is 0.

Mixing numpy arrays and torch tensors in one call is not supported; Python
floats mix with either.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch
from numba.core import types as nb_types
from numba.core.errors import TypingError
from numba.extending import overload, register_jitable
from torch import nn

from janus_env.checks import check_int, check_number

T = TypeVar("T", np.ndarray, torch.Tensor, float)

_BAD_WEIGHT_SHAPE = "Expected `weight` of shape ({},), got {}"
_BAD_AXIS_NB = "numba path reduces 1-D arrays, or 2-D arrays over the last axis (axis=-1 or 1)"

__all__ = [
    "and_", "or_", "not_", "implies", "forall", "exists", "sat_agg", "logical_loss",
    "sigmoid", "predicate_truth", "Predicate", "NumpyPredicate",
]


# ----------------------------------------------------------------------------- primitives
def relu(x: Any) -> Any:
    """``max(x, 0)`` — torch for tensors, numpy otherwise (numba: ``np.maximum``)."""
    if isinstance(x, torch.Tensor):
        return torch.relu(x)
    return np.maximum(x, 0.0)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent — torch for tensors, numpy otherwise."""
    if isinstance(x, torch.Tensor):
        return torch.tanh(x)
    return np.tanh(x)


def amin(x: Any, axis: int = -1) -> Any:
    """Minimum over ``axis`` (torch's ``amin`` splits the gradient between ties)."""
    if isinstance(x, torch.Tensor):
        return torch.amin(x, dim=axis)
    return np.min(x, axis=axis)


def amax(x: Any, axis: int = -1) -> Any:
    """Maximum over ``axis``."""
    if isinstance(x, torch.Tensor):
        return torch.amax(x, dim=axis)
    return np.max(x, axis=axis)


def mean(x: Any, axis: int = -1) -> Any:
    """Arithmetic mean over ``axis``."""
    if isinstance(x, torch.Tensor):
        return torch.mean(x, dim=axis)
    return np.mean(x, axis=axis)


@overload(relu)
def _relu_nb(x):
    def impl(x):
        return np.maximum(x, 0.0)
    return impl


@overload(tanh)
def _tanh_nb(x):
    def impl(x):
        return np.tanh(x)
    return impl


def _reduce_nb(x, reduce_1d):
    """numba overload body for a reduction over the last axis of a 1-D or 2-D array."""
    if not isinstance(x, nb_types.Array) or x.ndim not in (1, 2):
        raise TypingError(_BAD_AXIS_NB)
    if x.ndim == 1:
        def impl_1d(x, axis=-1):
            if axis != -1 and axis != 0:
                raise ValueError(_BAD_AXIS_NB)
            return reduce_1d(x)
        return impl_1d

    def impl_2d(x, axis=-1):
        if axis != -1 and axis != 1:
            raise ValueError(_BAD_AXIS_NB)
        out = np.empty(x.shape[0], dtype=np.float64)
        for i in range(x.shape[0]):
            out[i] = reduce_1d(x[i])
        return out
    return impl_2d


@register_jitable
def _min_1d(x):
    return np.min(x)


@register_jitable
def _max_1d(x):
    return np.max(x)


@register_jitable
def _mean_1d(x):
    return np.mean(x)


@overload(amin)
def _amin_nb(x, axis=-1):
    return _reduce_nb(x, _min_1d)


@overload(amax)
def _amax_nb(x, axis=-1):
    return _reduce_nb(x, _max_1d)


@overload(mean)
def _mean_nb(x, axis=-1):
    return _reduce_nb(x, _mean_1d)


# ----------------------------------------------------------------------------- connectives
@register_jitable
def and_(a: T, b: T) -> T:
    """Łukasiewicz t-norm ``a ∧ b = max(0, a + b − 1)`` (Badreddine et al., 2022, §2.4).

    Args:
        a, b: truth values in [0, 1] (arrays broadcast).

    Returns:
        The conjunction, in [0, 1].
    """
    return relu(a + b - 1.0)


@register_jitable
def or_(a: T, b: T) -> T:
    """Łukasiewicz t-conorm ``a ∨ b = min(1, a + b)``, written ``1 − relu(1 − a − b)``."""
    return 1.0 - relu(1.0 - a - b)


@register_jitable
def not_(a: T) -> T:
    """Standard negation ``¬a = 1 − a``."""
    return 1.0 - a


@register_jitable
def implies(a: T, b: T) -> T:
    """Łukasiewicz residuum ``a → b = min(1, 1 − a + b)``, written ``1 − relu(a − b)``."""
    return 1.0 - relu(a - b)


@register_jitable
def forall(x: T, axis: int = -1) -> T:
    """``∀`` over the domain on ``axis``: the minimum truth (crisp aggregator).

    The gradient flows only to the arg-min element.
    """
    return amin(x, axis)


@register_jitable
def exists(x: T, axis: int = -1) -> T:
    """``∃`` over the domain on ``axis``: the maximum truth."""
    return amax(x, axis)


@register_jitable
def _sat_agg(truths: T, p: float, axis: int) -> T:
    return mean(truths ** p, axis) ** (1.0 / p)


def sat_agg(truths: T, p: float = 2.0, axis: int = -1) -> T:
    """Satisfaction of a knowledge base: ``SatAgg(K) = (mean_i φ_i^p)^(1/p)``.

    The generalized (power) mean of the formulas' truths, p = 2 (DESIGN.md;
    the aggregator family of Badreddine et al., "Logic Tensor Networks",
    2022, §3). Monotone in every truth; equals 1 iff every φ_i = 1.

    Args:
        truths: formula truth values in [0, 1], formulas on ``axis``.
        p: power, ``p >= 1`` (1 = arithmetic mean, larger = closer to max).
        axis: the axis holding the formulas.

    Returns:
        SatAgg with ``axis`` reduced.

    Raises:
        TypeError: ``p`` is not a real number.
        ValueError: ``p < 1``, NaN or ±inf (``p = inf`` would give ``mean(φ^∞)^0 = 1`` whatever the truths).
    """
    return _sat_agg(truths, check_number("p", p, low=1), axis)


def logical_loss(truths: T, p: float = 2.0, axis: int = -1) -> T:
    """``1 − SatAgg``: the loss that drives a network towards satisfying the KB."""
    return 1.0 - sat_agg(truths, p, axis)


# ----------------------------------------------------------------------------- predicates
@register_jitable
def sigmoid(x: T) -> T:
    """Logistic function ``1 / (1 + e^−x)``, written ``0.5·(1 + tanh(x/2))`` (no overflow)."""
    return 0.5 * (1.0 + tanh(0.5 * x))


def predicate_truth(x: T, weight: T, bias: T) -> T:
    """Truth of a linear-logistic predicate ``sigmoid(W·x + b)`` over the last axis of ``x``."""
    return sigmoid(x @ weight + bias)


class Predicate(nn.Module):
    """A learnable grounded predicate ``P(x) = sigmoid(W·x + b)`` (Badreddine et al., 2022, §2.2).

    Args:
        in_features: size of the last axis of ``x``.
        weight: optional initial ``W`` of shape ``(in_features,)``.
        bias: optional initial ``b``.

    ``forward(x)`` maps ``(..., in_features)`` to truths of shape ``(...)``;
    ``numpy()`` returns a :class:`NumpyPredicate` with a copy of the weights,
    evaluated by the same :func:`predicate_truth`.

    Raises:
        TypeError: ``in_features`` is not an int.
        ValueError: ``in_features < 1`` or a ``weight`` of the wrong shape.
    """

    def __init__(self, in_features: int, weight: Any = None, bias: float | None = None) -> None:
        super().__init__()
        in_features = check_int("in_features", in_features, low=1)
        init = nn.Linear(in_features, 1)
        w = init.weight.detach().reshape(-1) if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        if tuple(w.shape) != (int(in_features),):
            raise ValueError(_BAD_WEIGHT_SHAPE.format(int(in_features), tuple(w.shape)))
        b = init.bias.detach().reshape(()) if bias is None else torch.as_tensor(float(bias), dtype=torch.float32)
        self.weight = nn.Parameter(w.clone())
        self.bias = nn.Parameter(b.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return predicate_truth(x, self.weight, self.bias)

    def numpy(self) -> "NumpyPredicate":
        """A numpy evaluator with a float64 copy of the current weights."""
        return NumpyPredicate(self.weight.detach().cpu().numpy(), float(self.bias.detach()))


class NumpyPredicate:
    """``sigmoid(W·x + b)`` on numpy arrays, with weights copied from a :class:`Predicate`.

    Args:
        weight: ``W``, shape ``(in_features,)``.
        bias: ``b``.
    """

    def __init__(self, weight: np.ndarray, bias: float) -> None:
        self.weight = np.asarray(weight, dtype=np.float64).reshape(-1)
        self.bias = float(bias)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return predicate_truth(np.asarray(x, dtype=np.float64), self.weight, self.bias)
