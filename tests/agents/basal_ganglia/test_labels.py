"""Adverse-outcome labels: LTN violations, losses of the proposal itself, slippage beyond the prediction."""

from __future__ import annotations

import numpy as np

from agents.basal_ganglia import adverse_labels


def test_adverse_labels() -> None:
    rewards = np.array([-2.0, -0.5, 0.0, 0.0, 0.0, -3.0, 0.0, 0.0])
    infos = [
        {},  # reward below −c
        {},  # loss smaller than c
        {"ltn": {"violation": 0.2, "overridden": True}},  # LTN violation
        {"ltn": {"sat_agg": 0.95}},  # satisfied enough
        {"exec_qty": 100.0, "slippage_bps": 3.0, "predicted_slippage_bps": 1.0},  # slippage > 2× predicted
        {"ltn": {"violation": 0.0, "overridden": True}},  # overridden: the loss was the shield's action
        {"exec_qty": 100.0, "slippage_bps": 1.5, "predicted_slippage_bps": 1.0},  # within 2×
        {"exec_qty": 0.0, "slippage_bps": 9.0, "predicted_slippage_bps": 1.0},  # no fill
    ]
    labels = adverse_labels(rewards, infos, reward_threshold=1.0)
    assert labels.tolist() == [1, 0, 1, 0, 1, 0, 0, 0]
    assert adverse_labels(rewards, infos, reward_threshold=None).tolist() == [0, 0, 1, 0, 1, 0, 0, 0]
    predicted = np.full(8, np.nan)
    predicted[6] = 0.5
    assert adverse_labels(rewards, infos, reward_threshold=None, predicted_slippage=predicted)[[4, 6]].tolist() == [
        0,
        1,
    ]
