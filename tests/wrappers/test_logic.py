"""LTN core: numpy, torch and numba paths agree; truth tables; gradients through every operator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numba import njit

from wrappers import logic
from wrappers.logic import (
    NumpyPredicate,
    Predicate,
    and_,
    exists,
    forall,
    implies,
    logical_loss,
    not_,
    or_,
    predicate_truth,
    sat_agg,
    sigmoid,
)

unit = st.floats(0.0, 1.0, allow_nan=False)
shapes = st.tuples(st.integers(1, 4), st.integers(1, 6))


def unit_arrays(shape):
    return arrays(np.float64, shape, elements=unit)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


# ----------------------------------------------------------------------------- numpy vs torch
@settings(max_examples=60, deadline=None)
@given(data=st.data(), shape=shapes)
def test_numpy_and_torch_agree(data, shape) -> None:
    a = data.draw(unit_arrays(shape))
    b = data.draw(unit_arrays(shape))
    p = data.draw(st.floats(1.0, 6.0))
    pairs = [
        (and_(a, b), and_(_t(a), _t(b))),
        (or_(a, b), or_(_t(a), _t(b))),
        (not_(a), not_(_t(a))),
        (implies(a, b), implies(_t(a), _t(b))),
        (forall(a), forall(_t(a))),
        (exists(a), exists(_t(a))),
        (forall(a, axis=0), forall(_t(a), axis=0)),
        (exists(a, axis=0), exists(_t(a), axis=0)),
        (sat_agg(a, p), sat_agg(_t(a), p)),
        (logical_loss(a, p, axis=0), logical_loss(_t(a), p, axis=0)),
        (sigmoid(20.0 * (a - 0.5)), sigmoid(20.0 * (_t(a) - 0.5))),
    ]
    for x_np, x_torch in pairs:
        np.testing.assert_allclose(x_np, x_torch.numpy(), rtol=0, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(x=arrays(np.float64, (5, 3), elements=st.floats(-10, 10)),
       w=arrays(np.float64, (3,), elements=st.floats(-3, 3)), b=st.floats(-3, 3))
def test_predicate_numpy_matches_torch(x, w, b) -> None:
    pred = Predicate(3, weight=w, bias=b)
    truth_torch = pred(torch.from_numpy(x).float()).detach().numpy()
    np.testing.assert_allclose(pred.numpy()(x), truth_torch, atol=1e-6)
    assert truth_torch.shape == (5,)
    np.testing.assert_allclose(predicate_truth(x, w, b), 1.0 / (1.0 + np.exp(-(x @ w + b))), atol=1e-12)


@njit  # no on-disk cache: pytest imports test modules under names numba cannot re-import
def _numba_ops(a, b, x, m):
    """Every operator inside numba code: scalars, a 1-D domain and a 2-D batch (one compile)."""
    return (np.array([and_(a, b), or_(a, b), not_(a), implies(a, b), sigmoid(a - b),
                      forall(x), exists(x), logic._sat_agg(x, 2.0, -1)]),
            forall(m), exists(m), logic._sat_agg(m, 2.0, -1), and_(m, m), implies(m, 0.5))


def test_numba_path_agrees_with_numpy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.random(2)
        x, m = rng.random(7), rng.random((3, 4))
        scalars, f, e, s, c, i = _numba_ops(a, b, x, m)
        expected = [and_(a, b), or_(a, b), not_(a), implies(a, b), sigmoid(a - b), forall(x), exists(x), sat_agg(x)]
        np.testing.assert_allclose(scalars, expected, rtol=0, atol=1e-15)
        np.testing.assert_array_equal(f, forall(m))
        np.testing.assert_array_equal(e, exists(m))
        np.testing.assert_allclose(s, sat_agg(m), rtol=0, atol=1e-15)
        np.testing.assert_array_equal(c, and_(m, m))
        np.testing.assert_array_equal(i, implies(m, 0.5))


# ----------------------------------------------------------------------------- semantics
@pytest.mark.parametrize("a", [0.0, 1.0])
@pytest.mark.parametrize("b", [0.0, 1.0])
def test_crisp_truth_tables(a: float, b: float) -> None:
    assert and_(a, b) == float(bool(a) and bool(b))
    assert or_(a, b) == float(bool(a) or bool(b))
    assert not_(a) == float(not a)
    assert implies(a, b) == float((not a) or bool(b))


def test_known_values() -> None:
    assert and_(0.3, 0.9) == pytest.approx(0.2)
    assert and_(0.3, 0.5) == 0.0
    assert or_(0.3, 0.5) == pytest.approx(0.8)
    assert or_(0.7, 0.5) == 1.0
    assert implies(0.9, 0.3) == pytest.approx(0.4)
    assert implies(0.3, 0.9) == 1.0
    assert sigmoid(0.0) == 0.5
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0  # no overflow
    x = np.array([[0.2, 0.9, 0.5]])
    assert forall(x)[0] == 0.2 and exists(x)[0] == 0.9


def test_sat_agg_generalized_mean() -> None:
    truths = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    assert sat_agg(truths) == pytest.approx(math.sqrt(4 / 5))  # one violated rule of five: 0.894
    assert sat_agg(np.ones(5)) == 1.0
    assert sat_agg(np.array([0.5, 0.5]), p=1) == pytest.approx(0.5)
    assert logical_loss(np.array([0.6, 0.8])) == pytest.approx(1.0 - math.sqrt((0.36 + 0.64) / 2))


# p = inf was accepted before and returned mean(φ^inf)^0 = 1 whatever the truths (a violated KB looked satisfied)
@pytest.mark.parametrize("p", [0.5, 0.0, -1.0, float("nan"), float("inf")])
def test_bad_p(p: float) -> None:
    with pytest.raises(ValueError, match=f"^Expected `p` to be a finite number >= 1, got {re_escape(repr(p))}$"):
        sat_agg(np.ones(3), p)


@pytest.mark.parametrize("p", [True, "2", None])
def test_bad_p_type(p: object) -> None:
    # the old `p >= 1` test took True as p = 1
    with pytest.raises(TypeError, match=f"^Expected `p` to be a finite number >= 1, got {re_escape(repr(p))}$"):
        sat_agg(np.ones(3), p)


def re_escape(s: str) -> str:
    import re

    return re.escape(s)


def test_bad_in_features() -> None:
    with pytest.raises(ValueError, match=re_escape("Expected `in_features` to be an int >= 1, got 0")):
        Predicate(0)
    with pytest.raises(TypeError, match=re_escape("Expected `in_features` to be an int >= 1, got 2.0")):
        Predicate(2.0)
    with pytest.raises(ValueError, match=re_escape("Expected `weight` of shape (3,), got (2,)")):
        Predicate(3, weight=[1.0, 2.0])


def test_numpy_predicate_copies_weights() -> None:
    pred = Predicate(2, weight=[1.0, -1.0], bias=0.5)
    frozen = pred.numpy()
    with torch.no_grad():
        pred.weight.add_(10.0)
    assert isinstance(frozen, NumpyPredicate)
    assert frozen(np.zeros((1, 2)))[0] == pytest.approx(sigmoid(0.5))


# ----------------------------------------------------------------------------- gradients
def _grads(fn, *values: float) -> list[float]:
    xs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    fn(*xs).backward()
    grads = [x.grad.item() for x in xs]
    assert all(math.isfinite(g) for g in grads)
    return grads


def test_and_gradient() -> None:
    assert _grads(and_, 0.8, 0.7) == [1.0, 1.0]  # a + b > 1: the t-norm is linear
    assert _grads(and_, 0.2, 0.3) == [0.0, 0.0]  # a + b < 1: clamped at 0, zero by definition


def test_or_gradient() -> None:
    assert _grads(or_, 0.2, 0.3) == [1.0, 1.0]  # a + b < 1
    assert _grads(or_, 0.8, 0.7) == [0.0, 0.0]  # clamped at 1


def test_implies_gradient() -> None:
    assert _grads(implies, 0.9, 0.2) == [-1.0, 1.0]  # a > b
    assert _grads(implies, 0.2, 0.9) == [0.0, 0.0]  # a ≤ b: truth clamped at 1


def test_not_gradient() -> None:
    assert _grads(not_, 0.3) == [-1.0]


def test_quantifier_gradients_go_to_arg_extreme() -> None:
    x = torch.tensor([[0.4, 0.1, 0.7], [0.9, 0.3, 0.2]], dtype=torch.float64, requires_grad=True)
    forall(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1, 0], [0, 0, 1]])
    x.grad = None
    exists(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0, 1], [1, 0, 0]])


def test_sat_agg_gradient_matches_formula() -> None:
    phi = torch.tensor([0.2, 0.5, 0.9, 1.0], dtype=torch.float64, requires_grad=True)
    s = sat_agg(phi)
    s.backward()
    expected = phi.detach() / (phi.numel() * s.detach())  # φ_i^(p−1)·S^(1−p)/n, p = 2
    np.testing.assert_allclose(phi.grad.numpy(), expected.numpy(), rtol=1e-12)
    assert torch.all(phi.grad > 0)


def test_gradient_flows_through_a_formula_to_predicate_weights() -> None:
    torch.manual_seed(0)
    p, q = Predicate(3), Predicate(3)
    x = torch.randn(16, 3)
    truths = torch.stack([forall(implies(p(x), q(x)), axis=0), exists(and_(p(x), not_(q(x))), axis=0),
                          or_(p(x), q(x)).mean()])
    logical_loss(truths).backward()
    for param in (p.weight, p.bias, q.weight, q.bias):
        assert torch.isfinite(param.grad).all()
    assert any(param.grad.abs().sum() > 0 for param in (p.weight, q.weight))
