"""Rule-based trading baselines: mean reversion in bps and in window standard deviations."""

from __future__ import annotations

import numpy as np

from agents.baselines import BUY, HOLD, SELL, MeanReversionPolicy, ZScoreMeanReversionPolicy


def observations(prices: list[list[float]], positions: list[float]) -> dict[str, np.ndarray]:
    account = np.zeros((len(positions), 5), dtype=np.float32)
    account[:, 0] = positions
    return {"prices": np.asarray(prices, dtype=np.float32), "account": account}


def test_mean_reversion_sells_above_buys_below_and_flattens_near_the_mean() -> None:
    # prices are log(mid_i / mid_t) in bps: a negative mean puts the current mid above the window mean
    obs = observations([[-4.0, -4.0, 0.0], [4.0, 4.0, 0.0], [-4.0, -4.0, 0.0], [0.1, -0.1, 0.0], [0.1, -0.1, 0.0]],
                       [0.0, 0.0, -1.0, 0.5, 0.0])
    actions, state = MeanReversionPolicy(threshold_bps=1.0).predict(obs)
    assert state is None
    np.testing.assert_array_equal(actions, [SELL, BUY, HOLD, SELL, HOLD])  # row 2: already at the short limit


def test_zscore_mean_reversion_thresholds_in_window_stds() -> None:
    """The same move is a signal in a quiet window and noise in a volatile one."""
    quiet = [-2.0, -2.1, -1.9, -2.0, 0.0]  # mean −1.6, std ≈ 0.8: z ≈ 2
    volatile = [-30.0, 30.0, -25.0, 17.0, 0.0]  # mean −1.6, std ≈ 22: z ≈ 0.07
    obs = observations([quiet, volatile], [0.0, 0.0])
    np.testing.assert_array_equal(ZScoreMeanReversionPolicy(k=1.0).predict(obs)[0], [SELL, HOLD])
    np.testing.assert_array_equal(MeanReversionPolicy(threshold_bps=1.0).predict(obs)[0], [SELL, SELL])
    single, _ = ZScoreMeanReversionPolicy(k=1.0).predict({k: v[0] for k, v in obs.items()})
    assert single == SELL
