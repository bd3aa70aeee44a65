"""Rendering of a book: an ``ansi`` ladder and an ``rgb_array`` price + depth heatmap (numpy only)."""

from __future__ import annotations

import numpy as np

_HEIGHT = 160
_PRICE_ROWS = 64


def ansi_ladder(book: np.ndarray, info: dict[str, float]) -> str:
    """Text ladder: asks on top (best last), bids below, then the account line."""
    lines = [f"step {int(info.get('step', 0))}  mid {info.get('mid', float('nan')):.4f}  "
             f"spread {info.get('spread', float('nan')):.4f}  vpin {info.get('vpin', 0.0):.3f}"]
    for px, qty in book[::-1, 2:4]:
        if np.isfinite(px):
            lines.append(f"{'':>12}  {px:>12.4f}  {int(qty):>8d} ask")
    lines.append("-" * 44)
    for px, qty in book[:, 0:2]:
        if np.isfinite(px):
            lines.append(f"{int(qty):>8d} bid  {px:>12.4f}")
    lines.append(f"position {int(info.get('position', 0))}  equity {info.get('equity', 0.0):.2f}  "
                 f"drawdown {info.get('drawdown', 0.0):.4f}")
    return "\n".join(lines) + "\n"


def rgb_frame(prices: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Image ``(160, 4·T, 3)``: the price path on top, the depth heatmap (bids blue, asks red) below.

    Args:
        prices: ``(T,)`` mid history, oldest first (NaN for missing).
        depth: ``(T, 2·L)`` resting quantity per level, bids best→worst then asks best→worst.
    """
    t = prices.shape[0]
    width = 4 * t
    img = np.zeros((_HEIGHT, width, 3), dtype=np.uint8)
    finite = np.isfinite(prices)
    if finite.any():
        lo, hi = np.nanmin(prices), np.nanmax(prices)
        span = hi - lo if hi > lo else 1.0
        rows = (_PRICE_ROWS - 1 - np.round((prices - lo) / span * (_PRICE_ROWS - 1))).astype(np.int64)
        cols = np.arange(t) * 4
        for dx in range(4):
            img[rows[finite], cols[finite] + dx] = (255, 255, 255)
    n_levels = depth.shape[1] // 2
    band = _HEIGHT - _PRICE_ROWS
    scale = depth.max() if depth.size and depth.max() > 0 else 1.0
    intensity = np.sqrt(depth / scale)
    level_rows = band // depth.shape[1] if depth.shape[1] else band
    for k in range(n_levels):
        ask = intensity[:, n_levels + k]
        bid = intensity[:, k]
        a0 = _PRICE_ROWS + (n_levels - 1 - k) * level_rows
        b0 = _PRICE_ROWS + (n_levels + k) * level_rows
        img[a0:a0 + level_rows, :, 0] = np.repeat((ask * 255).astype(np.uint8), 4)[None, :]
        img[b0:b0 + level_rows, :, 2] = np.repeat((bid * 255).astype(np.uint8), 4)[None, :]
    return img
