"""Rule-based baseline strategies with SB3's ``predict`` signature.

Each works on the ``Dict`` observation of ``Janus-LOB-v0`` (or
``Janus-Execution-v0`` for the execution baselines), single or batched
(leading batch dimension), and returns ``(actions, None)`` like
``BaseAlgorithm.predict``. Discrete actions: 0 HOLD, 1 BUY, 2 SELL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from gymnasium import spaces

from janus_env.execution_env import almgren_chriss_schedule

HOLD, BUY, SELL = 0, 1, 2


def _batched(obs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    single = np.asarray(obs["account"]).ndim == 1
    if single:
        return {k: np.asarray(v)[None] for k, v in obs.items()}, True
    return {k: np.asarray(v) for k, v in obs.items()}, False


def _finish(actions: np.ndarray, single: bool) -> tuple[np.ndarray | int, None]:
    return (actions[0] if single else actions), None


def to_execution_action(fraction: np.ndarray) -> np.ndarray:
    """``Janus-Execution-v0``'s continuous action for selling ``fraction`` of the remainder: ``2f − 1``."""
    return (2.0 * np.clip(fraction, 0.0, 1.0) - 1.0).astype(np.float32)[:, None]


class BaselinePolicy(ABC):
    """Base class: subclasses implement ``_act(obs_batch) -> np.ndarray``."""

    name = "baseline"

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray | int, None]:
        batch, single = _batched(observation)
        return _finish(self._act(batch), single)

    @abstractmethod
    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Actions for a batch of observations."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class BuyAndHoldPolicy(BaselinePolicy):
    """Buy until the position limit is reached, then hold."""

    name = "buy_and_hold"

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.where(obs["account"][:, 0] < 1.0 - 1e-6, BUY, HOLD).astype(np.int64)


class MomentumPolicy(BaselinePolicy):
    """Buy after a rise, sell after a fall: sign of ``log(mid_t / mid_{t−L})`` beyond ``threshold_bps``."""

    name = "momentum"

    def __init__(self, lookback: int = 10, threshold_bps: float = 2.0) -> None:
        if lookback < 1:
            raise ValueError(f"Expected `lookback` >= 1, got {lookback!r}")
        self.lookback = int(lookback)
        self.threshold_bps = float(threshold_bps)

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        prices = obs["prices"]  # log(mid_{t-W+1+i} / mid_t) in bps; the last entry is 0
        lookback = min(self.lookback, prices.shape[1] - 1)
        move = -prices[:, -1 - lookback]
        pos = obs["account"][:, 0]
        act = np.full(move.shape, HOLD, dtype=np.int64)
        act[(move > self.threshold_bps) & (pos < 1.0 - 1e-6)] = BUY
        act[(move < -self.threshold_bps) & (pos > -1.0 + 1e-6)] = SELL
        return act


class MeanReversionPolicy(BaselinePolicy):
    """Sell above the window's mean mid, buy below it (by more than ``threshold_bps``); flatten near it."""

    name = "mean_reversion"

    def __init__(self, threshold_bps: float = 1.0) -> None:
        self.threshold_bps = float(threshold_bps)

    def _deviation(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return -obs["prices"].mean(axis=1)  # current mid relative to the window mean, bps

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        deviation = self._deviation(obs)
        pos = obs["account"][:, 0]
        act = np.full(deviation.shape, HOLD, dtype=np.int64)
        act[(deviation > self.threshold_bps) & (pos > -1.0 + 1e-6)] = SELL
        act[(deviation < -self.threshold_bps) & (pos < 1.0 - 1e-6)] = BUY
        near = np.abs(deviation) < 0.25 * self.threshold_bps
        act[near & (pos > 1e-6)] = SELL
        act[near & (pos < -1e-6)] = BUY
        return act


class ZScoreMeanReversionPolicy(MeanReversionPolicy):
    """:class:`MeanReversionPolicy` on ``z = (mid − window mean) / window std``, threshold ``k`` in stds."""

    name = "zscore_mean_reversion"

    def __init__(self, k: float = 1.0) -> None:
        super().__init__(threshold_bps=k)

    def _deviation(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        prices = obs["prices"]
        return -prices.mean(axis=1) / (prices.std(axis=1) + 1e-9)


class RandomPolicy(BaselinePolicy):
    """Uniform random actions from ``action_space`` with its own seeded generator."""

    name = "random"

    def __init__(self, action_space: spaces.Space, seed: int | None = None) -> None:
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        n = obs["account"].shape[0]
        if isinstance(self.action_space, spaces.Discrete):
            return self.rng.integers(0, self.action_space.n, size=n).astype(np.int64)
        low, high = self.action_space.low, self.action_space.high
        return self.rng.uniform(low, high, size=(n,) + self.action_space.shape).astype(np.float32)


class TWAPPolicy(BaselinePolicy):
    """Execution: sell ``1 / steps_left`` of the remaining shares each step (``Janus-Execution-v0``)."""

    name = "twap"

    def __init__(self, horizon: int) -> None:
        if horizon < 1:
            raise ValueError(f"Expected `horizon` >= 1, got {horizon!r}")
        self.horizon = int(horizon)

    def _steps_left(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        # account[4] = 1 − t / (horizon + 1)  →  steps left = horizon − t
        t = np.rint((1.0 - obs["account"][:, 4]) * (self.horizon + 1))
        return np.maximum(self.horizon - t, 1.0)

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return to_execution_action(1.0 / self._steps_left(obs))


class AlmgrenChrissPolicy(TWAPPolicy):
    """Execution: follow ``x_t = X·sinh(κ(T−t))/sinh(κT)`` (Almgren & Chriss, 2000); κ = 0 is TWAP."""

    name = "almgren_chriss"

    def __init__(self, horizon: int, kappa: float = 0.02) -> None:
        super().__init__(horizon)
        self.kappa = float(kappa)
        self.schedule = almgren_chriss_schedule(1.0, self.horizon, self.kappa)

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        t = (self.horizon - self._steps_left(obs)).astype(np.int64)
        held = self.schedule[t]
        nxt = self.schedule[np.minimum(t + 1, self.horizon)]
        fraction = np.where(held > 1e-12, (held - nxt) / np.maximum(held, 1e-12), 1.0)
        return to_execution_action(fraction)


TRADING_BASELINES = {
    "buy_and_hold": BuyAndHoldPolicy,
    "momentum": MomentumPolicy,
    "mean_reversion": MeanReversionPolicy,
    "random": RandomPolicy,
}
EXECUTION_BASELINES = {"twap": TWAPPolicy, "almgren_chriss": AlmgrenChrissPolicy, "random": RandomPolicy}


def make_baseline(name: str, env: Any, seed: int | None = None) -> BaselinePolicy:
    """Build baseline ``name`` for ``env`` (a trading or execution env, possibly wrapped)."""
    base = getattr(env, "unwrapped", env)
    execution = hasattr(base, "horizon")
    table = EXECUTION_BASELINES if execution else TRADING_BASELINES
    if name not in table:
        raise ValueError(f"Unknown baseline {name!r} for {type(base).__name__}; expected one of {sorted(table)}")
    if name == "random":
        return RandomPolicy(env.action_space, seed=seed)
    if execution:
        return table[name](base.horizon)
    return table[name]()
