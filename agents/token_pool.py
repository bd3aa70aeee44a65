"""The token streams of ``JanusExtractor(vision=False)`` in two numba kernels: forward and backward, CPU, float32.

What they compute is the extractor's token path, from the observation to the pooled features (its module
docstring, with the fusion the identity: no video, no text)::

    x = symlog(input)                                     per token: a series patch, a book level, account, market
    h_t = W_s x_t + b_s (+ pos_t for series and book tokens),  s = the token's stream
    N_t = γ ⊙ (h_t − μ_t)/sqrt(σ²_t + ε) + β             LayerNorm over the d features of a token
    pooled = [mean_series N; mean_book N; N_account; N_market]      (B, 4d)

and the backward pass of the same expression to the parameters only (the inputs are observations), with
LayerNorm's gradient (Ba et al. 2016, "Layer Normalization"): ``x̂ = (h − μ)/σ``, ``ĝ = γ ⊙ ∂L/∂N``,
``∂L/∂h = (ĝ − mean(ĝ) − x̂·mean(ĝ ⊙ x̂))/σ``.

Why *(ours)*: in torch the same path is ≈ 25 operations forward and as many backward, each costing its dispatch
(5-10 µs) whatever its size — a batch-1 decision and a 64-row DQN update are almost all dispatch — while a
kernel call does the arithmetic in microseconds (``benchmarks/README.md``, "bench_agent.py"). The features and
gradients equal torch's to float32 rounding (float32 sums in another order; ``tests/agents/test_token_pool.py``);
each row is computed alone, so a row's values do not depend on the batch around it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from numba import njit

TOKEN_KEYS = ("prices", "volumes", "book", "account", "market")
"""The observation keys the token streams read, in the kernels' argument order."""


@njit(cache=True)
def _symlog(x: float) -> float:
    return np.sign(x) * np.log1p(np.abs(x))


@njit(cache=True)
def _symlog_array(x: np.ndarray) -> np.ndarray:
    """``symlog`` of every element of a C-contiguous array, float32, the same shape."""
    flat = x.reshape(-1)
    out = np.empty(flat.shape[0], dtype=np.float32)
    for i in range(flat.shape[0]):
        out[i] = _symlog(flat[i])
    return out.reshape(x.shape)


@njit(cache=True)
def symlog_inputs(prices: np.ndarray, volumes: np.ndarray, book: np.ndarray, account: np.ndarray,
                  market: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The symlog-squashed token inputs: series ``(B, W/P, 2P)`` (``[p, v]`` of each step of a patch, oldest
    first), book ``(B, L, 4)``, account ``(B, n)``, market ``(B, m)``; float32."""
    batch, window = prices.shape
    series = np.empty((batch, window, 2), dtype=np.float32)  # steps interleaved, then cut into patches of P
    series[:, :, 0] = _symlog_array(prices)
    series[:, :, 1] = _symlog_array(volumes)
    return (series.reshape(batch, window // patch, 2 * patch), _symlog_array(book), _symlog_array(account),
            _symlog_array(market))


_FAST = {"reassoc", "contract"}
"""Sums may be reassociated (vectorized) and multiply-adds fused: the kernels' floats depend on the CPU's vector
width, as MKL's do in torch; they are the same run after run on one machine."""


@njit(cache=True, fastmath=_FAST, inline="always")
def _token(x: np.ndarray, weight_t: np.ndarray, bias: np.ndarray, pos: np.ndarray, use_pos: bool,
           gamma: np.ndarray, beta: np.ndarray, eps: float, xhat: np.ndarray, out: np.ndarray, offset: int,
           scale: float) -> float:
    """One token: ``h = W x + b (+ pos)`` (``weight_t = Wᵀ``), its LayerNorm ``x̂`` into ``xhat``, ``scale · N``
    added to ``out[offset:offset + d]``; returns ``1/σ``."""
    d = bias.shape[0]
    for i in range(d):
        xhat[i] = bias[i] + pos[i] if use_pos else bias[i]
    for k in range(x.shape[0]):  # over the inputs, then the d features: the inner loop runs along a row of Wᵀ
        xk = x[k]
        for i in range(d):
            xhat[i] += weight_t[k, i] * xk
    mean = np.float32(0.0)
    for i in range(d):
        mean += xhat[i]
    mean /= d
    var = np.float32(0.0)
    for i in range(d):
        c = xhat[i] - mean
        xhat[i] = c
        var += c * c
    rstd = np.float32(1.0) / np.sqrt(var / d + np.float32(eps))
    for i in range(d):
        xhat[i] *= rstd
        out[offset + i] += scale * (gamma[i] * xhat[i] + beta[i])
    return rstd


@njit(cache=True, fastmath=_FAST)
def token_pool_forward(series: np.ndarray, levels: np.ndarray, acc: np.ndarray, mkt: np.ndarray,
                       w_series: np.ndarray, b_series: np.ndarray, pos_series: np.ndarray,
                       w_book: np.ndarray, b_book: np.ndarray, pos_book: np.ndarray,
                       w_acc: np.ndarray, b_acc: np.ndarray, w_mkt: np.ndarray, b_mkt: np.ndarray,
                       gamma: np.ndarray, beta: np.ndarray, eps: float
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pooled (B, 4d), x̂ (B, T, d), 1/σ (B, T))`` from the symlog inputs; ``T = W/P + L + 2`` tokens in the
    extractor's order (series, book, account, market); weights in torch's ``(d, in)`` layout."""
    batch, n_series = series.shape[0], series.shape[1]
    n_levels = levels.shape[1]
    d = gamma.shape[0]
    n_tokens = n_series + n_levels + 2
    pooled = np.zeros((batch, 4 * d), dtype=np.float32)
    xhat = np.empty((batch, n_tokens, d), dtype=np.float32)
    rstd = np.empty((batch, n_tokens), dtype=np.float32)
    s_scale, b_scale = np.float32(1.0 / n_series), np.float32(1.0 / n_levels)
    one = np.float32(1.0)
    wt_s, wt_b = np.ascontiguousarray(w_series.T), np.ascontiguousarray(w_book.T)
    wt_a, wt_m = np.ascontiguousarray(w_acc.T), np.ascontiguousarray(w_mkt.T)
    for b in range(batch):
        out = pooled[b]
        for j in range(n_series):
            rstd[b, j] = _token(series[b, j], wt_s, b_series, pos_series[0, j], True, gamma, beta, eps,
                                xhat[b, j], out, 0, s_scale)
        for j in range(n_levels):
            t = n_series + j
            rstd[b, t] = _token(levels[b, j], wt_b, b_book, pos_book[0, j], True, gamma, beta, eps,
                                xhat[b, t], out, d, b_scale)
        t = n_series + n_levels
        rstd[b, t] = _token(acc[b], wt_a, b_acc, b_acc, False, gamma, beta, eps, xhat[b, t], out, 2 * d, one)
        rstd[b, t + 1] = _token(mkt[b], wt_m, b_mkt, b_mkt, False, gamma, beta, eps, xhat[b, t + 1], out, 3 * d,
                                one)
    return pooled, xhat, rstd


@njit(cache=True, fastmath=_FAST, inline="always")
def _token_grad(grad: np.ndarray, offset: int, scale: float, x: np.ndarray, xhat: np.ndarray, rstd: float,
                gamma: np.ndarray, d_gamma: np.ndarray, d_beta: np.ndarray, d_weight_t: np.ndarray,
                d_bias: np.ndarray, d_pos: np.ndarray, use_pos: bool, dh: np.ndarray) -> None:
    """One token's backward: ``∂L/∂N = scale · grad[offset:offset + d]`` → ``∂L/∂γ``, ``∂L/∂β``, ``∂L/∂h`` and
    from it ``∂L/∂Wᵀ += x ∂hᵀ``, ``∂L/∂b``, ``∂L/∂pos`` (accumulated); ``dh`` is scratch."""
    d = gamma.shape[0]
    m1 = np.float32(0.0)
    m2 = np.float32(0.0)
    for i in range(d):
        g = scale * grad[offset + i]
        d_gamma[i] += g * xhat[i]
        d_beta[i] += g
        gh = g * gamma[i]
        dh[i] = gh
        m1 += gh
        m2 += gh * xhat[i]
    m1 /= d
    m2 /= d
    for i in range(d):
        v = rstd * (dh[i] - m1 - xhat[i] * m2)
        dh[i] = v
        d_bias[i] += v
    if use_pos:
        for i in range(d):
            d_pos[i] += dh[i]
    for k in range(x.shape[0]):
        xk = x[k]
        for i in range(d):
            d_weight_t[k, i] += dh[i] * xk


@njit(cache=True, fastmath=_FAST)
def token_pool_backward(grad_pooled: np.ndarray, series: np.ndarray, levels: np.ndarray, acc: np.ndarray,
                        mkt: np.ndarray, xhat: np.ndarray, rstd: np.ndarray, gamma: np.ndarray
                        ) -> tuple[np.ndarray, ...]:
    """Gradients of the parameters from ``∂L/∂pooled (B, 4d)``: ``(W_series, b_series, pos_series, W_book, b_book,
    pos_book, W_account, b_account, W_market, b_market, γ, β)``, in their torch shapes, float32."""
    batch, n_series = series.shape[0], series.shape[1]
    n_levels = levels.shape[1]
    d = gamma.shape[0]
    f = np.float32
    dw_s = np.zeros((series.shape[2], d), dtype=f)
    db_s = np.zeros(d, dtype=f)
    dpos_s = np.zeros((1, n_series, d), dtype=f)
    dw_b = np.zeros((levels.shape[2], d), dtype=f)
    db_b = np.zeros(d, dtype=f)
    dpos_b = np.zeros((1, n_levels, d), dtype=f)
    dw_a = np.zeros((acc.shape[1], d), dtype=f)
    db_a = np.zeros(d, dtype=f)
    dw_m = np.zeros((mkt.shape[1], d), dtype=f)
    db_m = np.zeros(d, dtype=f)
    d_gamma = np.zeros(d, dtype=f)
    d_beta = np.zeros(d, dtype=f)
    dh = np.empty(d, dtype=f)
    s_scale, b_scale, one = f(1.0 / n_series), f(1.0 / n_levels), f(1.0)
    for b in range(batch):
        g = grad_pooled[b]
        for j in range(n_series):
            _token_grad(g, 0, s_scale, series[b, j], xhat[b, j], rstd[b, j], gamma, d_gamma, d_beta,
                        dw_s, db_s, dpos_s[0, j], True, dh)
        for j in range(n_levels):
            t = n_series + j
            _token_grad(g, d, b_scale, levels[b, j], xhat[b, t], rstd[b, t], gamma, d_gamma, d_beta,
                        dw_b, db_b, dpos_b[0, j], True, dh)
        t = n_series + n_levels
        _token_grad(g, 2 * d, one, acc[b], xhat[b, t], rstd[b, t], gamma, d_gamma, d_beta, dw_a, db_a, db_a,
                    False, dh)
        _token_grad(g, 3 * d, one, mkt[b], xhat[b, t + 1], rstd[b, t + 1], gamma, d_gamma, d_beta, dw_m, db_m,
                    db_m, False, dh)
    t = np.ascontiguousarray
    return t(dw_s.T), db_s, dpos_s, t(dw_b.T), db_b, dpos_b, t(dw_a.T), db_a, t(dw_m.T), db_m, d_gamma, d_beta


def _host(tensor: th.Tensor) -> np.ndarray:
    """A float32 C-contiguous numpy view (a copy only where the tensor is not one already)."""
    return np.ascontiguousarray(tensor.detach().numpy(), dtype=np.float32)


_STREAMS = ("ts_proj", "book_proj", "account_proj", "market_proj", "norm")


def _parameters(extractor: Any) -> tuple[th.Tensor, ...]:
    """The 12 parameters the kernels read, in their argument order; read from the modules' parameter dicts, which
    is where attribute access finds them too, without ``nn.Module.__getattr__`` twice per parameter."""
    modules, own = extractor._modules, extractor._parameters
    ts, book, account, market, norm = (modules[name]._parameters for name in _STREAMS)
    return (ts["weight"], ts["bias"], own["ts_pos"], book["weight"], book["bias"], own["book_pos"],
            account["weight"], account["bias"], market["weight"], market["bias"], norm["weight"], norm["bias"])


def _parameter_views(extractor: Any, params: tuple[th.Tensor, ...]) -> tuple[np.ndarray, ...]:
    """Numpy views of ``params``, made once per extractor and again only when a parameter's storage moved: an
    optimizer step and ``load_state_dict`` write in place, so a view stays current; a deep copy, ``.to()`` or an
    assignment to ``.data`` gives new storage, hence new views. A view keeps its tensor's storage alive, so a moved
    parameter never leaves one on freed memory."""
    pointers = tuple(p.data_ptr() for p in params)
    cached = extractor.__dict__.get("_token_pool_views")
    if cached is None or cached[0] != pointers:
        cached = (pointers, tuple(_host(p) for p in params))
        extractor.__dict__["_token_pool_views"] = cached
    return cached[1]


class _TokenPool(th.autograd.Function):
    """Autograd node of :func:`token_pool`: the forward kernel, and the backward kernel to the 12 parameters."""

    @staticmethod
    def forward(ctx: Any, inputs: tuple[np.ndarray, ...], views: tuple[np.ndarray, ...], eps: float,
                *params: th.Tensor) -> th.Tensor:
        pooled, xhat, rstd = token_pool_forward(*inputs, *views, eps)
        ctx.saved = (inputs, xhat, rstd, views[-2].copy())  # γ as it was: the backward must not see a later step
        return th.from_numpy(pooled)

    @staticmethod
    def backward(ctx: Any, grad: th.Tensor) -> tuple[th.Tensor | None, ...]:
        inputs, xhat, rstd, gamma = ctx.saved
        grads = token_pool_backward(_host(grad), *inputs, xhat, rstd, gamma)
        return (None, None, None, *(th.from_numpy(g) for g in grads))


def token_pool(extractor: Any, observations: dict[str, th.Tensor]) -> th.Tensor:
    """``pool(norm(H_ts))`` of a ``JanusExtractor(vision=False)`` without text, ``(B, 4d)``, by the kernels above
    (differentiable in the extractor's parameters; use :func:`fusable` first)."""
    inputs = symlog_inputs(*(_host(observations[key]) for key in TOKEN_KEYS), extractor.ts_patch)
    params = _parameters(extractor)
    views = _parameter_views(extractor, params)
    eps = float(extractor.norm.eps)
    if th.is_grad_enabled() and any(p.requires_grad for p in params):
        return _TokenPool.apply(inputs, views, eps, *params)
    return th.from_numpy(token_pool_forward(*inputs, *views, eps)[0])


def fusable(extractor: Any, observations: dict[str, th.Tensor]) -> bool:
    """Whether :func:`token_pool` may stand for the torch path: float32 parameters on the CPU (the kernels read them
    in place), and CPU observations that need no gradient themselves (an attribution differentiates through the
    torch path)."""
    weight = extractor._modules["ts_proj"]._parameters["weight"]
    if weight.dtype != th.float32 or weight.device.type != "cpu":
        return False
    for key in TOKEN_KEYS:
        tensor = observations[key]
        if tensor.device.type != "cpu" or tensor.requires_grad:
            return False
    return True
