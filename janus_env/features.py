"""Market microstructure features, as numpy functions and as incremental numba kernels.

The numpy functions are the reference definitions (used in tests and by
historical sources); the ``*_update`` kernels maintain the same quantities
step by step inside the simulator without re-scanning history.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def mid_price(bid_px: np.ndarray, ask_px: np.ndarray) -> np.ndarray:
    """``(bid + ask) / 2``."""
    return 0.5 * (np.asarray(bid_px, dtype=np.float64) + np.asarray(ask_px, dtype=np.float64))


def microprice(bid_px: np.ndarray, bid_qty: np.ndarray, ask_px: np.ndarray, ask_qty: np.ndarray) -> np.ndarray:
    """Size-weighted mid: ``(bid·Q_ask + ask·Q_bid) / (Q_bid + Q_ask)`` (Stoikov, 2018, first order).

    Falls back to the mid where both sizes are zero.
    """
    bid_px, bid_qty, ask_px, ask_qty = (np.asarray(a, dtype=np.float64) for a in (bid_px, bid_qty, ask_px, ask_qty))
    total = bid_qty + ask_qty
    with np.errstate(invalid="ignore", divide="ignore"):
        micro = (bid_px * ask_qty + ask_px * bid_qty) / total
    return np.where(total > 0, micro, 0.5 * (bid_px + ask_px))


def spread(bid_px: np.ndarray, ask_px: np.ndarray) -> np.ndarray:
    """``ask − bid``."""
    return np.asarray(ask_px, dtype=np.float64) - np.asarray(bid_px, dtype=np.float64)


def depth_imbalance(bid_qty: np.ndarray, ask_qty: np.ndarray) -> float:
    """``(ΣQ_bid − ΣQ_ask) / (ΣQ_bid + ΣQ_ask)`` over the given levels, in [−1, 1]; 0 for an empty book."""
    b = float(np.sum(bid_qty))
    a = float(np.sum(ask_qty))
    return 0.0 if a + b <= 0 else (b - a) / (b + a)


def realized_volatility(prices: np.ndarray) -> float:
    """Root mean square of one-step log returns, ``sqrt(mean(r²))`` (Andersen et al., 2001)."""
    prices = np.asarray(prices, dtype=np.float64)
    if prices.size < 2:
        return 0.0
    r = np.diff(np.log(prices))
    return float(np.sqrt(np.mean(r * r)))


def volume_buckets(buy: np.ndarray, sell: np.ndarray, bucket: float) -> tuple[np.ndarray, np.ndarray]:
    """Split a trade sequence into consecutive buckets of exactly ``bucket`` shares.

    Each trade is (buy volume, sell volume) in time order; a trade that
    overflows a bucket is split pro rata between this bucket and the next.
    Returns per-bucket buy and sell volume of the *complete* buckets.
    """
    buy = np.asarray(buy, dtype=np.float64)
    sell = np.asarray(sell, dtype=np.float64)
    volume = buy + sell
    edges = np.cumsum(volume)
    n = int(edges[-1] // bucket) if edges.size else 0
    if n == 0:
        return np.zeros(0), np.zeros(0)
    starts = edges - volume
    grid = np.arange(n + 1) * bucket
    # cumulative buy volume at any cumulative-volume point, linear inside a trade
    buy_frac = np.divide(buy, volume, out=np.zeros_like(buy), where=volume > 0)
    cum_buy = np.concatenate([[0.0], np.cumsum(buy)])
    idx = np.clip(np.searchsorted(edges, grid, side="left"), 0, len(volume) - 1)
    buy_at = cum_buy[idx] + (grid - starts[idx]) * buy_frac[idx]
    buy_at[0] = 0.0
    bucket_buy = np.diff(buy_at)
    return bucket_buy, bucket - bucket_buy


def vpin(buy_volume: np.ndarray, sell_volume: np.ndarray) -> float:
    """Volume-synchronized probability of informed trading.

    ``VPIN = Σ|V_buy − V_sell| / Σ(V_buy + V_sell)`` over equal-volume buckets
    (Easley, López de Prado & O'Hara, 2012). Inputs are per-bucket volumes.
    """
    buy_volume = np.asarray(buy_volume, dtype=np.float64)
    sell_volume = np.asarray(sell_volume, dtype=np.float64)
    total = float(np.sum(buy_volume + sell_volume))
    return 0.0 if total <= 0 else float(np.sum(np.abs(buy_volume - sell_volume)) / total)


# ---------------------------------------------------------------- incremental kernels

V_CUR_BUY, V_CUR_SELL, V_N_FULL, V_HEAD, V_SUM = range(5)
N_VPIN_SCALARS = 5


@njit(cache=True)
def vpin_update(scalars, ring, buy, sell, bucket):
    """Add one trade's buy/sell volume to the bucket state; return VPIN of the last ``len(ring)`` buckets.

    ``scalars`` holds (current buy, current sell, complete buckets, ring head,
    Σ|imbalance| over the ring); ``ring`` holds |V_buy − V_sell| per bucket.
    """
    n_buckets = ring.shape[0]
    total = buy + sell
    while total > 1e-12:
        room = bucket - scalars[V_CUR_BUY] - scalars[V_CUR_SELL]
        take = total if total < room else room
        frac = take / total
        scalars[V_CUR_BUY] += buy * frac
        scalars[V_CUR_SELL] += sell * frac
        buy -= buy * frac
        sell -= sell * frac
        total -= take
        if scalars[V_CUR_BUY] + scalars[V_CUR_SELL] >= bucket - 1e-9:
            imb = abs(scalars[V_CUR_BUY] - scalars[V_CUR_SELL])
            head = int(scalars[V_HEAD])
            if scalars[V_N_FULL] >= n_buckets:
                scalars[V_SUM] -= ring[head]
            ring[head] = imb
            scalars[V_SUM] += imb
            scalars[V_HEAD] = (head + 1) % n_buckets
            scalars[V_N_FULL] += 1
            scalars[V_CUR_BUY] = 0.0
            scalars[V_CUR_SELL] = 0.0
    return vpin_value(scalars, ring, bucket)


@njit(cache=True)
def vpin_value(scalars, ring, bucket):
    n = scalars[V_N_FULL]
    if n <= 0:
        return 0.0
    if n > ring.shape[0]:
        n = ring.shape[0]
    value = scalars[V_SUM] / (n * bucket)
    return min(max(value, 0.0), 1.0)
