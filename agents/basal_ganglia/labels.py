"""Adverse-outcome labels: the No-Go head's training signal *(ours)*.

For the executed (final) action ``a_t``::

    y_t = 1[ v_t > τ_violation ]  ∨  1[ ¬overridden_t ∧ ( r_t < −c  ∨  s_t > κ·ŝ_t ) ]

with ``v_t = info["ltn"]["violation"]`` (τ_violation = 0.1, i.e. SatAgg < 0.9,
the shield's threshold), ``r_t`` the step reward, ``c`` a fixed threshold or
``k·std(r)`` (running, k = 1), ``s_t`` the realized slippage in bps and ``ŝ_t``
the predicted one (``info["predicted_slippage_bps"]`` or the cerebellum's
predictor) with κ = 2 (the amygdala's slippage breaker). When the shield
overrode the proposal, the reward belongs to the shield's action, so only the
violation term labels ``a_t``. The head minimises::

    L = mean_a mean_{t: a_t = a} BCE(NoGo(s_t)_a, y_t) + (λ/2)‖W‖²

— the cross-entropy of the *executed* action only, averaged per action so a
rare (vetoed) action weighs as much as a frequent one, plus an L2 penalty on
the weights (λ = 0.1), not on the bias *(ours)*: without it a few dozen
all-adverse samples let the weights grow along their sample mean and the veto
leaks in the opposite corner of the state space. A vetoed action is not
executed, so it produces no new label: once vetoed in a region of the state
space it stays vetoed there (fail-safe by design; a shield, not an explorer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agents.basal_ganglia.gate import TAU_LOGIC


def adverse_labels(
    rewards: np.ndarray,
    infos: Sequence[Mapping[str, Any]],
    *,
    reward_threshold: float | None,
    violation_threshold: float = TAU_LOGIC,
    slippage_ratio: float = 2.0,
    predicted_slippage: np.ndarray | None = None,
) -> np.ndarray:
    """Per-step adverse labels for the executed action (module docstring).

    ``y = 1[v > τ_violation] ∨ 1[¬overridden ∧ (r < −c ∨ (exec_qty ≠ 0 ∧ ŝ > 0 ∧ s > κ·ŝ))]``.

    Args:
        rewards: ``(n,)`` step rewards.
        infos: ``n`` step infos (``ltn``, ``slippage_bps``, ``exec_qty``,
            ``predicted_slippage_bps`` are read when present).
        reward_threshold: ``c`` ≥ 0; None disables the reward term.
        violation_threshold: τ_violation on ``info["ltn"]["violation"]``.
        slippage_ratio: κ.
        predicted_slippage: ``(n,)`` ``ŝ`` overriding ``info["predicted_slippage_bps"]`` (NaN = unknown).

    Returns:
        ``(n,)`` float32 labels in {0, 1}.
    """
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    labels = np.zeros(len(infos), dtype=np.float32)
    for i, info in enumerate(infos):
        ltn = info.get("ltn")
        overridden = False
        if isinstance(ltn, Mapping):
            violation = ltn.get("violation")
            if violation is None and "sat_agg" in ltn:
                violation = 1.0 - float(ltn["sat_agg"])
            if violation is not None and float(violation) > violation_threshold:
                labels[i] = 1.0
                continue
            overridden = bool(ltn.get("overridden", False))
        if overridden:
            continue
        if reward_threshold is not None and r[i] < -reward_threshold:
            labels[i] = 1.0
            continue
        predicted = np.nan
        if predicted_slippage is not None:
            predicted = float(predicted_slippage[i])
        elif "predicted_slippage_bps" in info:
            predicted = float(info["predicted_slippage_bps"])
        if (
            float(info.get("exec_qty", 0.0)) != 0.0
            and math.isfinite(predicted)
            and predicted > 0.0
            and float(info.get("slippage_bps", 0.0)) > slippage_ratio * predicted
        ):
            labels[i] = 1.0
    return labels


__all__ = ["adverse_labels"]
