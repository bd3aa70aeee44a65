"""Native vector version of ``Janus-LOB-v0``: N books stepped by one numba call.

``gym.make_vec("Janus-LOB-v0", num_envs=N)`` builds this class (the id's
``vector_entry_point``). Books are independent copies with their own random
streams; autoreset follows Gymnasium's default ``NEXT_STEP`` mode: the step
after a sub-env ends resets it, ignores its action and returns its first
observation with reward 0.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from janus_env.accounting import REASON_TABLE
from janus_env.actions import InvalidActionError, make_action_space
from janus_env.checks import NEED_RESET, check_choice, check_int
from janus_env.lob_env import REWARDS, market_config, observation_space, split_obs
from janus_env.rng import seed_state
from janus_env.simulator import (
    O_CASH,
    O_DRAWDOWN,
    O_EQUITY,
    O_EXEC_PRICE,
    O_EXEC_QTY,
    O_FEES,
    O_MID,
    O_POSITION,
    O_REJECT_REASON,
    O_REJECTED,
    O_REWARD,
    O_SLIPPAGE_BPS,
    O_TERMINATED,
    O_TRUNCATED,
    O_VOLATILITY,
    O_VOLUME,
    O_VPIN,
    MarketArrays,
    vec_reset,
    vec_reset_parallel,
    vec_step,
    vec_step_parallel,
)
from janus_env.config import P_REWARD_MODE
from janus_env.flow import F_DONE

_INFO_COLUMNS = {
    "exec_qty": O_EXEC_QTY,
    "exec_price": O_EXEC_PRICE,
    "slippage_bps": O_SLIPPAGE_BPS,
    "fees": O_FEES,
    "rejected_qty": O_REJECTED,
    "vpin": O_VPIN,
    "volatility": O_VOLATILITY,
    "position": O_POSITION,
    "cash": O_CASH,
    "equity": O_EQUITY,
    "drawdown": O_DRAWDOWN,
    "mid": O_MID,
    "volume": O_VOLUME,
}
_BAD_ACTIONS = "Expected actions of shape {} and an integer dtype for {}, got {!r}"


class JanusLOBVectorEnv(VectorEnv):
    """``num_envs`` simulated books in lock step (see ``JanusLOBEnv`` for spaces, reward and info).

    Args:
        num_envs: number of books.
        scenario, action_type, n_sizes, reward, **market: as for ``JanusLOBEnv``
            (``scenario="historical"`` is single-env only).
        seed: default seed of the first ``reset()``.
        parallel: step the books on numba's thread pool (default: when ``num_envs >= 32``
            and numba has at least 4 threads). Results are identical either way.

    Info is a dict of arrays of shape ``(num_envs,)`` with the ``_key`` masks
    of Gymnasium's vector convention: ``exec_qty``, ``exec_price``, ``slippage_bps``,
    ``fees``, ``rejected_qty``, ``rejected_reason`` (str), ``rounding_qty``, ``ruin``
    (bool), ``vpin``, ``volatility``, ``position``, ``cash``, ``equity``, ``drawdown``,
    ``mid``, ``volume``, each as in ``JanusLOBEnv``'s ``## Info``. On every step
    ``Δcash = −exec_qty · exec_price − fees``, ``Δposition = exec_qty`` and
    ``equity = cash + position · mid``.

    Raises:
        ValueError: a fractional ``lot``, ``max_position`` or ``qty_step`` (the simulated
            book trades whole shares), and the bad arguments ``JanusLOBEnv`` rejects.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: str = "ou",
        action_type: str = "discrete",
        n_sizes: int = 3,
        reward: str = "pnl",
        seed: int | None = None,
        render_mode: str | None = None,
        parallel: bool | None = None,
        **market: Any,
    ) -> None:
        check_int("num_envs", num_envs, low=1)
        if scenario == "historical":
            raise ValueError("scenario='historical' is single-env only; use gym.make or a SyncVectorEnv")
        check_choice("reward", reward, sorted(REWARDS))
        if render_mode is not None:
            raise ValueError(f"JanusLOBVectorEnv does not render, got render_mode={render_mode!r}")
        self.num_envs = int(num_envs)
        self.config = market_config(scenario, market)
        self.scenario = scenario
        self.action_type = action_type
        self.n_sizes = int(n_sizes) if action_type == "sized" else 1
        self.render_mode = None
        self.single_action_space = make_action_space(action_type, n_sizes)
        self.single_observation_space = observation_space(self.config.window, self.config.n_levels)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._m = MarketArrays(self.config, self.num_envs)
        self._m.params[P_REWARD_MODE] = REWARDS[reward]
        m = self._m
        self._args = (m.levels, m.orders, m.state, m.accounts, m.fills, m.log, m.rng, m.params, m.f, m.ib,
                      m.obs, m.out)
        if parallel is None:
            # on 2 (virtual) cores the thread pool rarely beats the serial loop; it pays from 4 threads up
            parallel = self.num_envs >= 32 and numba.get_num_threads() >= 4
        self.parallel = bool(parallel)
        self._step_kernel = vec_step_parallel if self.parallel else vec_step
        self._reset_kernel = vec_reset_parallel if self.parallel else vec_reset
        self._qty = np.zeros(self.num_envs, dtype=np.int64)
        self._rounding = np.zeros(self.num_envs, dtype=np.float64)
        self._mask = np.ones(self.num_envs, dtype=bool)
        self._default_seed = seed
        self._needs_reset = True
        if action_type == "discrete" or action_type == "sized":
            k = self.n_sizes
            lot = self.config.lot
            table = np.zeros(2 * k + 1, dtype=np.int64)
            table[1:k + 1] = np.arange(1, k + 1) * lot
            table[k + 1:] = -np.arange(1, k + 1) * lot
            self._table = table
        else:
            self._table = None

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if seed is None and self._default_seed is not None:
            seed, self._default_seed = self._default_seed, None
        if isinstance(seed, (list, tuple, np.ndarray)):
            if len(seed) != self.num_envs:
                raise ValueError(f"Expected {self.num_envs} seeds, got {len(seed)}")
            for i, s in enumerate(seed):
                self._m.rng[i] = seed_state(np.random.default_rng(s))
            super().reset(seed=int(seed[0]) if seed[0] is not None else None)
        else:
            super().reset(seed=seed)
            for i in range(self.num_envs):
                self._m.rng[i] = seed_state(self.np_random)
        self._reset_kernel(*self._args)
        self._rounding[:] = 0.0
        self._needs_reset = False
        return self._observation(), self._info()

    def step(self, actions: Any):
        if self._needs_reset:
            raise RuntimeError(NEED_RESET)
        self._qty[:] = self.order_quantities(actions)
        resetting = self._m.f[:, F_DONE] != 0.0  # these books reset this step and ignore their action
        self._step_kernel(*self._args, self._qty)
        if self._table is None:  # continuous: what rounding the target to whole shares left out
            target = np.asarray(actions, dtype=np.float64).reshape(self.num_envs) * self.config.max_position
            self._rounding = np.where(resetting, 0.0, target - np.round(target))
        out = self._m.out
        return (self._observation(), out[:, O_REWARD].copy(), out[:, O_TERMINATED] != 0.0,
                out[:, O_TRUNCATED] != 0.0, self._info())

    def order_quantities(self, actions: Any) -> np.ndarray:
        """Validate a batch of actions and return the signed order quantity (shares) of each env.

        Raises:
            TypeError: wrong shape or dtype; InvalidActionError: a value outside the action space.
        """
        a = np.asarray(actions)
        if self._table is not None:
            if a.shape != (self.num_envs,) or not np.issubdtype(a.dtype, np.integer):
                raise TypeError(_BAD_ACTIONS.format((self.num_envs,), self.action_space, actions))
            if a.min() < 0 or a.max() >= self._table.shape[0]:
                bad = a[(a < 0) | (a >= self._table.shape[0])][0]
                raise InvalidActionError(f"Action {int(bad)!r} is outside {self.single_action_space}")
            return self._table[a]
        if a.shape not in ((self.num_envs, 1), (self.num_envs,)) or not np.issubdtype(a.dtype, np.floating):
            raise TypeError(_BAD_ACTIONS.format((self.num_envs, 1), self.action_space, actions))
        a = a.reshape(self.num_envs)
        if not np.all(np.isfinite(a)) or a.min() < -1.0 or a.max() > 1.0:
            bad = a[~np.isfinite(a) | (a < -1.0) | (a > 1.0)][0]
            raise InvalidActionError(f"Action {float(bad)!r} is outside {self.single_action_space}")
        target = np.round(a.astype(np.float64) * self.config.max_position).astype(np.int64)
        return target - self._m.out[:, O_POSITION].astype(np.int64)

    def buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """The live market buffers: flat float32 observations ``(num_envs, D)`` and the float64 ``O_*``
        out rows ``(num_envs, N_OUT)``; read-only (see ``JanusLOBEnv.buffers``)."""
        return self._m.obs, self._m.out

    def _observation(self) -> dict[str, np.ndarray]:
        return split_obs(self._m.obs.copy(), self.config.window, self.config.n_levels)

    def _info(self) -> dict[str, np.ndarray]:
        out = self._m.out
        info: dict[str, np.ndarray] = {}
        for key, col in _INFO_COLUMNS.items():
            info[key] = out[:, col].copy()
            info["_" + key] = self._mask
        info["rejected_reason"] = REASON_TABLE[out[:, O_REJECT_REASON].astype(np.int64)]
        info["ruin"] = out[:, O_TERMINATED] != 0.0
        info["rounding_qty"] = self._rounding.copy()
        for key in ("rejected_reason", "ruin", "rounding_qty"):
            info["_" + key] = self._mask
        return info
