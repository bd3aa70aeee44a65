"""The shield's compiled step: bring each trade history up to date, then score the candidate orders.

One numba call per decision serves a single env (``n = 1``) or a whole vector
env: for every env ``i`` it brings the trade history up to date with the
market (record the fill of ``out[i]``, or restart the history after a
reset), then evaluates the trading knowledge base (:func:`wrappers.rules.kb_kernel`)
on every candidate quantity with the state read straight from the market's
buffers: the encoded book of ``obs[i]`` and position, cash, mid, VPIN and σ
of ``out[i]``, with the volatility baseline σ_hist of the history row.
Reading the market rather than ``info`` keeps the shield correct under any
wrapper in between, and keeps the per-step cost to one call with no
Python-level bookkeeping.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from janus_env.simulator import (
    O_CASH,
    O_EXEC_PRICE,
    O_EXEC_QTY,
    O_MID,
    O_POSITION,
    O_STEP,
    O_VOLATILITY,
    O_VOLUME,
    O_VPIN,
)
from wrappers._state import (
    H_LAST_STEP,
    history_record,
    history_reset,
    mean_volume,
    recent_loss_sale,
    volatility_baseline,
)
from wrappers.rules import N_KB_PARAMS, _decode_into, kb_decoded


@njit(cache=True)
def sync_histories(hist, out):  # pragma: no cover - compiled
    """Bring every history row up to date with its market row, by the market's step counter.

    ``out[O_STEP]`` above the last recorded step: the env stepped, record the fill,
    volume, σ and step; below it: the env was reset (Gymnasium's next-step autoreset
    of a vector env), restart the history from the reset state (its σ seeds σ_hist);
    equal: nothing new.
    """
    for i in range(hist.shape[0]):
        h = hist[i]
        o = out[i]
        step = o[O_STEP]
        if step > h[H_LAST_STEP]:
            history_record(h, o[O_VOLUME], step, o[O_EXEC_QTY], o[O_EXEC_PRICE], o[O_VOLATILITY])
        elif step < h[H_LAST_STEP]:
            history_reset(h, o[O_VOLUME], step, o[O_VOLATILITY])


C_WINDOW = N_KB_PARAMS
C_N_LEVELS = N_KB_PARAMS + 1
C_MAX_POSITION = N_KB_PARAMS + 2
C_LOT = N_KB_PARAMS + 3
C_FEE_BPS = N_KB_PARAMS + 4
N_CONTEXT = N_KB_PARAMS + 5


def shield_context(params: np.ndarray, window: int, n_levels: int, max_position: float, lot: float,
                   fee_bps: float) -> np.ndarray:
    """The KB's ``K_*`` parameters followed by the env constants (``C_*``): one array, fewer kernel arguments."""
    ctx = np.empty(N_CONTEXT, dtype=np.float64)
    ctx[:N_KB_PARAMS] = params
    ctx[C_WINDOW], ctx[C_N_LEVELS], ctx[C_MAX_POSITION], ctx[C_LOT], ctx[C_FEE_BPS] = (
        window, n_levels, max_position, lot, fee_bps)
    return ctx


@njit(cache=True)
def shield_score(hist, obs, out, ctx, q, truths, sat):  # pragma: no cover - compiled
    """Update the histories (:func:`sync_histories`), then score candidates ``q`` for every env.

    Args:
        hist: ``(n, H)`` trade-history rows (:mod:`wrappers._state`).
        obs: ``(n, D)`` float32 flat observations (book at ``[2·window, 2·window + 4·n_levels)``).
        out: ``(n, N_OUT)`` float64 ``O_*`` rows.
        ctx: :func:`shield_context`.
        q: ``(n, A)`` candidate signed quantities (shares) per env.
        truths: ``(n, A, 5)`` output rule truths; ``sat``: ``(n, A)`` output SatAgg.
    """
    sync_histories(hist, out)
    n_levels = int(ctx[C_N_LEVELS])
    b0 = 2 * int(ctx[C_WINDOW])
    lot = ctx[C_LOT]
    decoded = np.empty((4, n_levels), dtype=np.float64)  # scratch, reused by every env
    for i in range(hist.shape[0]):
        h = hist[i]
        o = out[i]
        mid = o[O_MID]
        _decode_into(obs[i, b0:b0 + 4 * n_levels].reshape((n_levels, 4)), mid, lot, True, decoded)
        kb_decoded(q[i], decoded, ctx, truths[i], sat[i], o[O_POSITION], o[O_CASH], mid, o[O_VPIN],
                   o[O_VOLATILITY], volatility_baseline(h), mean_volume(h), recent_loss_sale(h, h[H_LAST_STEP] + 1.0),
                   ctx[C_MAX_POSITION], lot, ctx[C_FEE_BPS])


@njit(cache=True)
def choose_actions(q, sat, proposed, threshold, nearest, final):  # pragma: no cover - compiled
    """The executed discrete action of every env: the proposal if ``SatAgg ≥ threshold``, else HOLD (0),
    or with ``nearest`` the permitted action closest in quantity to the proposal.

    ``nearest`` minimizes ``(|q_a − q_p|, −SatAgg_a, |q_a|, a)`` lexicographically over the
    permitted actions, HOLD always among them.

    Args:
        q: ``(n, A)`` quantities of the actions; ``sat``: ``(n, A)`` their SatAgg.
        proposed: ``(n,)`` proposed action indices; ``final``: ``(n,)`` output.
    """
    for i in range(proposed.shape[0]):
        p = proposed[i]
        if sat[i, p] >= threshold:
            final[i] = p
            continue
        best = 0
        if nearest:
            target = q[i, p]
            key0, key1, key2 = abs(q[i, 0] - target), -sat[i, 0], abs(q[i, 0])
            for a in range(1, q.shape[1]):
                if sat[i, a] < threshold:
                    continue
                k0, k1, k2 = abs(q[i, a] - target), -sat[i, a], abs(q[i, a])
                if k0 < key0 or (k0 == key0 and (k1 < key1 or (k1 == key1 and k2 < key2))):
                    best, key0, key1, key2 = a, k0, k1, k2
        final[i] = best
