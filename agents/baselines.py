"""Rule-based baseline strategies with SB3's ``predict`` signature.

Each works on the ``Dict`` observation of ``Janus-LOB-v0`` (or
``Janus-Execution-v0`` for the execution baselines), single or batched
(leading batch dimension), and returns ``(actions, None)`` like
``BaseAlgorithm.predict``.

The trading baselines decide a *target position* (a fraction of
``max_position``, the observation's ``account[0]`` unit) and
:class:`TargetPolicy` turns it into an action of the env's action space:

| action space | action |
| --- | --- |
| ``Discrete(3)`` (``action_type="discrete"``) | 0 HOLD, 1 BUY, 2 SELL one lot towards the target |
| ``Discrete(2k+1)`` (``"sized"``) | up to ``k`` lots towards the target (``i ≤ k`` buys, ``k + i`` sells ``i``) |
| ``Box(-1, 1, (1,))`` (``"continuous"``) | the target itself |

They trade only when the target is at least half a lot away (so they never
cross it back and forth), and they respect refusals: an order that did not
move the position (the LTN shield replaced it, or the market cut it) closes
that side for ``cooldown`` steps (10 *(ours)*), as a trading desk does not
resend an order its risk system just rejected, and halves the largest order
the policy sends for the rest of the episode (down to one lot: a big order may
break the impact or cash-reserve rule where a smaller one does not); so a
rule-based trader meets the wash-sale or cash-reserve rule now and then, not
every step, and the amygdala's violation-rate breaker does not mistake it for
a malfunction.
Signals are relative to the instrument's own recent history (z-scores over the
observation's price window), so one set of defaults serves a simulated book
with 0.5 bps steps and daily BTC bars.

State: the refusal memory and buy-and-hold's build-up are kept per batch row
and reset when a row's episode starts (``account[4]``, the fraction of the
session left, goes up, or ``episode_start`` says so). Same observations,
same actions.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from gymnasium import spaces

from janus_env.checks import check_fraction, check_int, check_positive
from janus_env.execution_env import almgren_chriss_schedule

HOLD, BUY, SELL = 0, 1, 2

_POSITION_TOLERANCE = 1e-6
"""Position gaps (fractions of ``max_position``) below this are no gap (``account`` is float32)."""
_LOT_TOLERANCE = 1e-4
"""Lots counted from float32 position fractions are rounded down only below ``n − 1e-4`` lots."""

_BAD_SPACE = "Expected a Discrete(2k+1) or Box(-1, 1, (1,)) trading action space, got {!r}"


def _batched(obs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    single = np.asarray(obs["account"]).ndim == 1
    if single:
        return {k: np.asarray(v)[None] for k, v in obs.items()}, True
    return {k: np.asarray(v) for k, v in obs.items()}, False


def _finish(actions: np.ndarray, single: bool) -> tuple[np.ndarray | int, None]:
    return (actions[0] if single else actions), None


def to_execution_action(fraction: np.ndarray, action_space: spaces.Space | None = None) -> np.ndarray:
    """``Janus-Execution-v0``'s action for selling ``fraction`` of the remainder.

    ``Box(-1, 1, (1,))`` (default): ``2f − 1``. ``Discrete(n)`` (``action_type="discrete"``, bin ``i`` sells
    ``i / (n − 1)``): the nearest bin, ``round(f·(n − 1))`` — a schedule finer than the grid sells later, in
    whole bins, and the last step's ``f = 1`` always sells the rest.
    """
    fraction = np.clip(fraction, 0.0, 1.0)
    if isinstance(action_space, spaces.Discrete):
        return np.rint(fraction * (action_space.n - 1)).astype(np.int64)
    return (2.0 * fraction - 1.0).astype(np.float32)[:, None]


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
        self._episode_start = None if episode_start is None else np.asarray(episode_start, dtype=bool).reshape(-1)
        return _finish(self._act(batch), single)

    @abstractmethod
    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Actions for a batch of observations."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class TargetPolicy(BaselinePolicy):
    """A trading baseline that picks a target position; the action follows from the action space.

    Subclasses implement ``_targets(obs) -> np.ndarray``: per row, the target position as a
    fraction of ``max_position`` in [−1, 1], or NaN to keep the current position.

    Args:
        action_space: the env's action space (default ``Discrete(3)``: HOLD/BUY/SELL one lot).
        lot_fraction: ``lot / max_position`` of the env; sizes ``"sized"`` orders and the half-lot
            dead band. None (default): orders of one lot and a dead band of 1e-6.
        cooldown: steps a side stays closed after an order on it did not move the position (10).

    Raises:
        TypeError: ``lot_fraction`` not a number (or None), ``cooldown`` not an int.
        ValueError: an unsupported action space, ``lot_fraction`` outside (0, 1], a negative ``cooldown``.
    """

    def __init__(self, *, action_space: spaces.Space | None = None, lot_fraction: float | None = None,
                 cooldown: int = 10) -> None:
        space = spaces.Discrete(3) if action_space is None else action_space
        if isinstance(space, spaces.Discrete) and space.n >= 3 and space.n % 2 == 1:
            self.n_sizes = (int(space.n) - 1) // 2
        elif isinstance(space, spaces.Box) and space.shape == (1,):
            self.n_sizes = 0  # continuous
        else:
            raise ValueError(_BAD_SPACE.format(space))
        self.lot_fraction = check_fraction("lot_fraction", lot_fraction, low_open=True, optional=True)
        self.cooldown = check_int("cooldown", cooldown, low=0)
        self.action_space = space
        self._episode_start: np.ndarray | None = None
        self._n = 0  # rows of the remembered batch

    # ------------------------------------------------------------------ memory
    def _new_rows(self, n: int) -> None:
        self._n = n
        self._last_pos = np.zeros(n)
        self._last_left = np.full(n, np.inf)
        self._last_side = np.zeros(n, dtype=np.int64)  # +1 asked to buy, −1 to sell, 0 held
        self._closed = np.zeros((n, 2), dtype=np.int64)  # steps left with the buy / sell side closed
        self._last_size = np.zeros(n)  # size of the last order, fraction of max_position
        self._max_size = np.full(n, 2.0)  # largest order this episode (2: from −max to +max)
        self._refused = np.zeros(n, dtype=bool)
        self._refused_smallest = np.zeros(n, dtype=bool)

    def _observe(self, pos: np.ndarray, left: np.ndarray) -> np.ndarray:
        """Mark new episodes and refusals; returns the rows whose episode starts now."""
        if self._n != pos.shape[0]:
            self._new_rows(pos.shape[0])
        start = left > self._last_left
        if self._episode_start is not None and self._episode_start.shape == start.shape:
            start |= self._episode_start
        if np.isinf(self._last_left).all():
            start[:] = True
        moved = pos - self._last_pos
        refused_buy = (self._last_side > 0) & (moved <= _POSITION_TOLERANCE) & ~start
        refused_sell = (self._last_side < 0) & (moved >= -_POSITION_TOLERANCE) & ~start
        refused = refused_buy | refused_sell
        smallest = self._smallest()
        self._refused_smallest = refused_buy & (self._last_size <= smallest * (1.0 + _LOT_TOLERANCE))
        self._max_size = np.where(refused, np.maximum(0.5 * self._last_size, smallest), self._max_size)
        self._max_size[start] = 2.0
        self._closed = np.maximum(self._closed - 1, 0)
        self._closed[refused_buy, 0] = self.cooldown
        self._closed[refused_sell, 1] = self.cooldown
        self._closed[start] = 0
        self._refused = refused_buy  # for buy-and-hold's build-up
        return start

    def _smallest(self) -> float:
        """The smallest order, fraction of ``max_position``: one lot (or 1% when ``lot_fraction`` is unknown)."""
        if self.lot_fraction is not None:
            return self.lot_fraction
        return _POSITION_TOLERANCE if self.n_sizes > 0 else 0.01

    # ------------------------------------------------------------------ acting
    @abstractmethod
    def _targets(self, obs: dict[str, np.ndarray], start: np.ndarray) -> np.ndarray:
        """Target position per row, a fraction of ``max_position`` in [−1, 1]; NaN keeps the position."""

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        pos = obs["account"][:, 0].astype(np.float64)
        start = self._observe(pos, obs["account"][:, 4].astype(np.float64))
        target = np.clip(self._targets(obs, start), -1.0, 1.0)
        target = np.where(np.isnan(target), pos, target)
        gap = target - pos
        band = 0.5 * self.lot_fraction if self.lot_fraction is not None else _POSITION_TOLERANCE
        side = np.where(gap > band, 1, np.where(gap < -band, -1, 0))
        side[(side > 0) & (self._closed[:, 0] > 0)] = 0
        side[(side < 0) & (self._closed[:, 1] > 0)] = 0
        self._last_pos = pos
        self._last_left = obs["account"][:, 4].astype(np.float64)
        self._last_side = side
        size = np.minimum(np.abs(gap), self._max_size)  # a refused order comes back at half its size
        if self.n_sizes == 0:  # continuous: the target position itself
            self._last_size = np.where(side != 0, size, 0.0)
            return np.where(side != 0, pos + side * size, pos).astype(np.float32)[:, None]
        lots = np.ones(pos.shape[0], dtype=np.int64)
        if self.lot_fraction is not None and self.n_sizes > 1:
            lots = np.clip(np.floor(size / self.lot_fraction + 0.5), 1, self.n_sizes).astype(np.int64)
        self._last_size = np.where(side != 0, lots * self._smallest(), 0.0)
        return np.where(side > 0, lots, np.where(side < 0, self.n_sizes + lots, HOLD)).astype(np.int64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(action_space={self.action_space}, lot_fraction={self.lot_fraction})"


def _window_returns(prices: np.ndarray) -> np.ndarray:
    """One-step log returns (bps) inside the observation's price window, ``(batch, W − 1)``."""
    return np.diff(prices.astype(np.float64), axis=1)


class BuyAndHoldPolicy(TargetPolicy):
    """Buy up to a target position once at the start of each episode, then hold it to the end.

    The target is ``target`` (1.0: ``max_position``), lowered so that cash stays at least
    ``min_cash`` of equity: the knowledge base's cash-reserve rule keeps 20% (DESIGN.md), and
    ``min_cash`` = 0.25 *(ours)* leaves five points for fees, slippage and the price moving
    during the build-up. The room is read from the observation: for an account that has only
    bought, ``position · mid / initial_cash = unrealized% / 100 + 1 − cash / initial_cash`` and
    ``equity / initial_cash = 1 + unrealized% / 100`` (fees, under 1 bp, aside), so the value of
    a full position is known from the first fill on; before it the policy buys one lot. The
    build-up ends when the next lot would pass the target or the cash floor, or after
    ``patience`` refused one-lot buys while a position is held (the risk layer's limit is below
    the estimate); a refused buy is retried after ``cooldown`` steps, at half the size (toxic
    flow or the impact rule pass). Then it holds, whatever the price does, until the episode ends.

    Args:
        target: target position, fraction of ``max_position`` in (0, 1] (1.0).
        min_cash: cash kept, fraction of equity in [0, 1) (0.25).
        patience: refused one-lot buys, while holding, that end the build-up (3) *(ours)*.
        action_space, lot_fraction, cooldown: see :class:`TargetPolicy`.
    """

    name = "buy_and_hold"

    def __init__(self, target: float = 1.0, min_cash: float = 0.25, patience: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.patience = check_int("patience", patience, low=1)
        self.target = check_fraction("target", target, low_open=True)
        self.min_cash = check_fraction("min_cash", min_cash, high_open=True)

    def _new_rows(self, n: int) -> None:
        super()._new_rows(n)
        self._building = np.ones(n, dtype=bool)
        self._refusals = np.zeros(n, dtype=np.int64)

    def _targets(self, obs: dict[str, np.ndarray], start: np.ndarray) -> np.ndarray:
        account = obs["account"].astype(np.float64)
        pos, cash, unrealized = account[:, 0], account[:, 1], account[:, 2] / 100.0
        self._building[start] = True
        self._refusals[start] = 0
        held = pos > _POSITION_TOLERANCE
        self._refusals += self._refused_smallest & held
        self._building &= self._refusals < self.patience
        full_value = np.where(held, (unrealized + 1.0 - cash) / np.maximum(pos, _POSITION_TOLERANCE), np.nan)
        equity = 1.0 + unrealized
        room = (cash - self.min_cash * equity) / full_value
        cap = np.where(held, np.minimum(self.target, pos + np.maximum(room, 0.0)), self.target)
        step = self.lot_fraction if self.lot_fraction is not None else _POSITION_TOLERANCE
        if self.n_sizes == 0:  # continuous: first a probe of one lot (or 10% of the target), then the cap
            probe = self.lot_fraction if self.lot_fraction is not None else 0.1 * self.target
            cap = np.where(held, cap, min(probe, self.target))
        elif self.lot_fraction is not None:  # whole lots, the first one alone
            lots = np.floor((cap - pos) / self.lot_fraction + _LOT_TOLERANCE)
            cap = np.where(held, pos + lots * self.lot_fraction, pos + self.lot_fraction)
        done = held & (cap - pos < 0.5 * step)
        self._building &= ~done
        return np.where(self._building, cap, np.nan)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target={self.target}, min_cash={self.min_cash})"


class MomentumPolicy(TargetPolicy):
    """Time-series momentum: long after a significant rise, short after a significant fall.

    Signal ``z = log(mid_t / mid_{t−L}) / (σ·√L)`` with σ the RMS one-step return of the
    observation's price window (the move over ``lookback`` L in units of its own noise); target
    +1 when ``z > k``, −1 when ``z < −k``, else keep the position. ``k`` = 1 *(ours)*: a one-σ
    move over the lookback (the old fixed 2 bps was ≈ 1.3σ in the calm simulator and 0.03σ on
    hourly BTC).

    Args:
        lookback: L, steps of the move (10; at most the window − 1).
        k: entry threshold in σ·√L units (1.0).
        action_space, lot_fraction, cooldown: see :class:`TargetPolicy`.
    """

    name = "momentum"

    def __init__(self, lookback: int = 10, k: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lookback = check_int("lookback", lookback, low=1)
        self.k = check_positive("k", k)

    def signal(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """``z`` per row (0 when the window has no price move)."""
        prices = obs["prices"].astype(np.float64)  # log(mid_{t-W+1+i} / mid_t) in bps; the last entry is 0
        lookback = min(self.lookback, prices.shape[1] - 1)
        move = -prices[:, -1 - lookback]
        sigma = np.sqrt(np.mean(_window_returns(prices) ** 2, axis=1))
        return np.where(sigma > 0, move / np.maximum(sigma * math.sqrt(lookback), 1e-12), 0.0)

    def _targets(self, obs: dict[str, np.ndarray], start: np.ndarray) -> np.ndarray:
        z = self.signal(obs)
        return np.where(z > self.k, 1.0, np.where(z < -self.k, -1.0, np.nan))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lookback={self.lookback}, k={self.k})"


class MeanReversionPolicy(TargetPolicy):
    """Sell above the window's mean mid, buy below it (by more than ``threshold_bps``); flatten near it.

    The raw-bps rule: target −1 when the mid is more than ``threshold_bps`` above the
    observation window's mean, +1 when more than that below, flat when within a quarter of it,
    else keep the position. A fixed bps threshold suits one instrument at one bar size only;
    :class:`ZScoreMeanReversionPolicy` (the registered ``mean_reversion``) measures the same
    deviation in window standard deviations.

    Args:
        threshold_bps: entry threshold, bps of mid (1.0).
        action_space, lot_fraction, cooldown: see :class:`TargetPolicy`.
    """

    name = "mean_reversion_bps"

    def __init__(self, threshold_bps: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold_bps = check_positive("threshold_bps", threshold_bps)

    def _deviation(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return -obs["prices"].astype(np.float64).mean(axis=1)  # current mid relative to the window mean, bps

    def _targets(self, obs: dict[str, np.ndarray], start: np.ndarray) -> np.ndarray:
        deviation = self._deviation(obs)
        k = self.threshold_bps
        target = np.where(deviation > k, -1.0, np.where(deviation < -k, 1.0, np.nan))
        return np.where(np.abs(deviation) < 0.25 * k, 0.0, target)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threshold_bps={self.threshold_bps})"


class ZScoreMeanReversionPolicy(MeanReversionPolicy):
    """Mean reversion on ``z = (mid − window mean) / window std``, threshold ``k`` in stds (Bollinger bands).

    Target −1 while ``z > k``, +1 while ``z < −k``, flat while ``|z| < k/4``, else keep the
    position. ``k`` = 1 *(ours)*. Registered as ``mean_reversion``.

    Args:
        k: entry threshold in window standard deviations (1.0).
        action_space, lot_fraction, cooldown: see :class:`TargetPolicy`.
    """

    name = "mean_reversion"

    def __init__(self, k: float = 1.0, **kwargs: Any) -> None:
        super().__init__(threshold_bps=check_positive("k", k), **kwargs)

    @property
    def k(self) -> float:
        return self.threshold_bps

    def _deviation(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        prices = obs["prices"].astype(np.float64)
        return -prices.mean(axis=1) / (prices.std(axis=1) + 1e-9)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(k={self.k})"


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

    def __init__(self, horizon: int, action_space: spaces.Space | None = None) -> None:
        self.horizon = check_int("horizon", horizon, low=1)
        if action_space is not None and not (
                isinstance(action_space, spaces.Discrete) and action_space.n >= 2
                or isinstance(action_space, spaces.Box) and action_space.shape == (1,)):
            raise ValueError(f"Expected Janus-Execution-v0's Discrete(n >= 2) or Box(-1, 1, (1,)) action space, "
                             f"got {action_space!r}")
        self.action_space = action_space

    def _steps_left(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        # account[4] = 1 − t / (horizon + 1)  →  steps left = horizon − t
        t = np.rint((1.0 - obs["account"][:, 4]) * (self.horizon + 1))
        return np.maximum(self.horizon - t, 1.0)

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return to_execution_action(1.0 / self._steps_left(obs), self.action_space)


class AlmgrenChrissPolicy(TWAPPolicy):
    """Execution: follow ``x_t = X·sinh(κ(T−t))/sinh(κT)`` (Almgren & Chriss, 2000); κ = 0 is TWAP."""

    name = "almgren_chriss"

    def __init__(self, horizon: int, kappa: float = 0.02, action_space: spaces.Space | None = None) -> None:
        super().__init__(horizon, action_space)
        self.kappa = float(kappa)
        self.schedule = almgren_chriss_schedule(1.0, self.horizon, self.kappa)

    def _act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        t = (self.horizon - self._steps_left(obs)).astype(np.int64)
        held = self.schedule[t]
        nxt = self.schedule[np.minimum(t + 1, self.horizon)]
        fraction = np.where(held > 1e-12, (held - nxt) / np.maximum(held, 1e-12), 1.0)
        return to_execution_action(fraction, self.action_space)


TRADING_BASELINES = {
    "buy_and_hold": BuyAndHoldPolicy,
    "momentum": MomentumPolicy,
    "mean_reversion": ZScoreMeanReversionPolicy,
    "random": RandomPolicy,
}
EXECUTION_BASELINES = {"twap": TWAPPolicy, "almgren_chriss": AlmgrenChrissPolicy, "random": RandomPolicy}


def make_baseline(name: str, env: Any, seed: int | None = None) -> BaselinePolicy:
    """Build baseline ``name`` for ``env`` (a trading or execution env, possibly wrapped).

    Trading baselines get the env's action space and ``lot_fraction = lot / max_position``.

    Raises:
        ValueError: an unknown name for this kind of env.
    """
    base = getattr(env, "unwrapped", env)
    execution = hasattr(base, "horizon")
    table = EXECUTION_BASELINES if execution else TRADING_BASELINES
    if name not in table:
        raise ValueError(f"Unknown baseline {name!r} for {type(base).__name__}; expected one of {sorted(table)}")
    if name == "random":
        return RandomPolicy(env.action_space, seed=seed)
    if execution:
        return table[name](base.horizon, action_space=env.action_space)
    config = getattr(base, "config", None)
    lot_fraction = None
    if config is not None and float(config.max_position) > 0:
        lot_fraction = min(1.0, float(config.lot) / float(config.max_position))
    return table[name](action_space=env.action_space, lot_fraction=lot_fraction)
