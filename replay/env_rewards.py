"""The reward the env returned at the step a callback sees, before any ``VecNormalize`` scaled it.

SB3 hands callbacks ``locals["rewards"]`` as the vec env returned them: under ``VecNormalize(norm_reward=True)``
that is ``r / √(Var[R] + ε)`` with a running variance that changes through training. What the sleep path and the
basal ganglia remember about an outcome (schemas' returns, adverse labels) must stay in the env's own units, so
they read :func:`env_rewards` (``VecNormalize.get_original_reward``, the rewards of the last ``step``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def env_rewards(model: Any, callback_locals: Mapping[str, Any]) -> np.ndarray:
    """``(n_envs,)`` float64 rewards of the step just taken, unnormalized."""
    normalizer = model.get_vec_normalize_env() if hasattr(model, "get_vec_normalize_env") else None
    if normalizer is not None and normalizer.norm_reward:
        return np.asarray(normalizer.get_original_reward(), dtype=np.float64).reshape(-1)
    return np.asarray(callback_locals["rewards"], dtype=np.float64).reshape(-1)
