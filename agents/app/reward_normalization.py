"""``normalize_reward``: training rewards scaled by the running std of the discounted return (SB3 ``VecNormalize``).

``r̃_t = clip(r_t / √(Var[R] + ε), ±10)`` with ``R_t = γ·R_{t−1} + r_t`` per env (reset at episode ends) and
``Var[R]`` its running variance (Engstrom et al. 2020, "Implementation Matters in Deep Policy Gradients": reward
scaling). Why JANUS PPO needs it: its pnl rewards are a few 1e-4 a step, and with raw rewards the value loss
swamps the policy's (``benchmarks/README.md``, bench_ablation: janus-ppo trained on raw rewards ends at
always-HOLD). Observations are not normalized (the shield, the gate and memory read them in the env's units).

Only the training envs are wrapped: evaluation, the audit trail and the Monitor's episode returns see the env's
rewards, and callbacks read them through :func:`replay.env_rewards.env_rewards`. The statistics live in the
checkpoint's ``callbacks.npz`` (:class:`RewardNormalizationState`), never pickled.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from janus_env.checks import bad_value, check_number

STATE_KEY = "RewardNormalization"
"""Its name among the checkpoint's callback states."""


def reward_normalizer(env: VecEnv, algo_cls: type, params: Mapping[str, Any]) -> VecNormalize:
    """``env`` inside ``VecNormalize(norm_obs=False, norm_reward=True)`` with the algorithm's discount γ (the run's
    ``gamma``, else ``algo_cls``'s default)."""
    gamma = params["gamma"] if "gamma" in params else _default_gamma(algo_cls)
    return VecNormalize(env, training=True, norm_obs=False, norm_reward=True, gamma=float(gamma))


def _default_gamma(algo_cls: type) -> float:
    """The first ``gamma`` default up ``algo_cls``'s MRO (JANUS classes pass ``**kwargs`` on to SB3's)."""
    for klass in algo_cls.__mro__:
        parameter = inspect.signature(klass.__init__).parameters.get("gamma")
        if parameter is not None and parameter.default is not inspect.Parameter.empty:
            return float(parameter.default)
    raise TypeError(f"{algo_cls.__name__} takes no discount `gamma` to normalize rewards with")


class RewardNormalizationState:
    """Checkpoint component (``state_dict`` / ``load_state_dict``) of a ``VecNormalize``'s reward statistics:
    ``mean``, ``var``, ``count`` of the return's running moments and each env's running ``returns``."""

    def __init__(self, normalizer: VecNormalize) -> None:
        self.normalizer = normalizer

    def state_dict(self) -> dict[str, Any]:
        rms = self.normalizer.ret_rms
        return {"mean": np.array(rms.mean, dtype=np.float64), "var": np.array(rms.var, dtype=np.float64),
                "count": float(rms.count), "returns": np.array(self.normalizer.returns, dtype=np.float64)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output.

        Raises:
            ValueError / TypeError: a missing or malformed value (named).
        """
        n_envs = self.normalizer.num_envs
        arrays = {}
        for name, shape in (("mean", ()), ("var", ()), ("returns", (n_envs,))):
            try:
                array = np.asarray(state.get(name), dtype=np.float64)
            except (TypeError, ValueError):
                array = None
            if array is None or array.shape != shape or not np.all(np.isfinite(array)):
                raise ValueError(bad_value(name, f"a finite float array of shape {shape}", state.get(name)))
            arrays[name] = array
        if arrays["var"] < 0:
            raise ValueError(bad_value("var", "a variance >= 0", float(arrays["var"])))
        count = check_number("count", state.get("count"), low=0, low_open=True)
        rms = self.normalizer.ret_rms
        rms.mean, rms.var, rms.count = arrays["mean"], arrays["var"], float(count)
        self.normalizer.returns = arrays["returns"]
