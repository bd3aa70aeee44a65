"""``Janus-LOB-v0``: single-agent trading on a simulated (or replayed) limit order book."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from janus_env.accounting import REASON_STRINGS
from janus_env.actions import (
    continuous_fraction,
    discrete_index,
    make_action_space,
    sized_quantity,
)
from janus_env.checks import NEED_RESET, NEED_RESET_FOR, check_choice, check_int
from janus_env.config import REWARD_PNL, REWARD_RISK_ADJUSTED, MarketConfig
from janus_env.regimes import SCENARIOS, scenario_config
from janus_env.render import ansi_ladder, rgb_frame
from janus_env.simulator import (
    N_ACCOUNT,
    N_MARKET,
    O_CASH,
    O_DRAWDOWN,
    O_EQUITY,
    O_EXEC_PRICE,
    O_EXEC_QTY,
    O_FEES,
    O_MID,
    O_N_FILLS,
    O_PNL,
    O_POSITION,
    O_REJECT_REASON,
    O_REJECTED,
    O_REWARD,
    O_SLIPPAGE_BPS,
    O_SPREAD,
    O_STEP,
    O_TERMINATED,
    O_TRUNCATED,
    O_VOLATILITY,
    O_VOLUME,
    O_VPIN,
    SimulatedMarket,
)

REWARDS = {"pnl": REWARD_PNL, "risk_adjusted": REWARD_RISK_ADJUSTED}


def observation_space(window: int, n_levels: int) -> spaces.Dict:
    """The ``Dict`` observation space shared by the LOB, execution and vector envs."""
    inf = np.float32(np.inf)
    account_low = np.array([-1.0, -inf, -inf, 0.0, 0.0], dtype=np.float32)
    account_high = np.array([1.0, inf, inf, inf, 1.0], dtype=np.float32)
    market_low = np.array([0.0, 0.0, 0.0, -1.0], dtype=np.float32)
    market_high = np.array([1.0, inf, inf, 1.0], dtype=np.float32)
    return spaces.Dict({
        "prices": spaces.Box(-inf, inf, shape=(window,), dtype=np.float32),
        "volumes": spaces.Box(0.0, inf, shape=(window,), dtype=np.float32),
        "book": spaces.Box(-inf, inf, shape=(n_levels, 4), dtype=np.float32),
        "account": spaces.Box(account_low, account_high, dtype=np.float32),
        "market": spaces.Box(market_low, market_high, dtype=np.float32),
    })


def split_obs(flat: np.ndarray, window: int, n_levels: int) -> dict[str, np.ndarray]:
    """Views of a flat observation row (or batch) as the ``Dict`` observation."""
    w, b = window, 2 * window
    a = b + 4 * n_levels
    m = a + N_ACCOUNT
    lead = flat.shape[:-1]
    return {
        "prices": flat[..., :w],
        "volumes": flat[..., w:b],
        "book": flat[..., b:a].reshape(lead + (n_levels, 4)),
        "account": flat[..., a:m],
        "market": flat[..., m:m + N_MARKET],
    }


def info_from_out(o: list[float], rounding_qty: float = 0.0) -> dict[str, Any]:
    """The per-step info dict from the kernel's ``out`` row (as a list).

    ``rounding_qty``: what rounding a continuous action to the quantity grid left out (signed).
    """
    return {
        "fills": int(o[O_N_FILLS]),
        "exec_qty": o[O_EXEC_QTY],
        "exec_price": o[O_EXEC_PRICE],
        "slippage_bps": o[O_SLIPPAGE_BPS],
        "fees": o[O_FEES],
        "rejected_qty": o[O_REJECTED],
        "rejected_reason": REASON_STRINGS[o[O_REJECT_REASON]],
        "rounding_qty": rounding_qty,
        "ruin": o[O_TERMINATED] != 0.0,
        "vpin": o[O_VPIN],
        "volatility": o[O_VOLATILITY],
        "position": o[O_POSITION],
        "cash": o[O_CASH],
        "equity": o[O_EQUITY],
        "pnl": o[O_PNL],
        "drawdown": o[O_DRAWDOWN],
        "mid": o[O_MID],
        "spread": o[O_SPREAD],
        "volume": o[O_VOLUME],
        "step": int(o[O_STEP]),
    }


NO_EXECUTION_INFO: dict[str, Any] = {"fills": 0, "exec_qty": 0.0, "exec_price": 0.0, "slippage_bps": 0.0,
                                     "fees": 0.0, "rejected_qty": 0.0, "rejected_reason": "", "rounding_qty": 0.0}
"""The execution keys of ``info`` for a decision that sent nothing to the market (a safety layer blocked it)."""


def market_config(scenario: str, market: dict[str, Any]) -> MarketConfig:
    """Scenario defaults with user overrides (validated by ``MarketConfig``)."""
    if scenario == "historical":
        return MarketConfig().replace(**market)
    return scenario_config(scenario, **market)


class JanusLOBEnv(gym.Env):
    """Trade one instrument against a limit order book full of other traders.

    ## Description

    Each step the agent sends at most one market order, which executes
    against the book it observed (price-time priority, partial fills, walking
    the book); then one step of exogenous flow runs — noise traders, two
    inventory-aware market makers, an informed trader who trades toward a
    latent fundamental, a momentum trader, and the scenario's stress events.
    The whole step is one numba call. With ``scenario="historical"`` the book
    is replayed from recorded data instead (``data=``: a LOBSTER message file,
    an L2 snapshot CSV or an OHLCV CSV) and the agent's orders consume the
    recorded depth, with no look-ahead.

    ## Action Space

    | `action_type` | space | meaning |
    | --- | --- | --- |
    | `"discrete"` (default) | `Discrete(3)` | 0 HOLD, 1 BUY `lot` shares, 2 SELL `lot` shares |
    | `"sized"` | `Discrete(2k+1)`, k = `n_sizes` | 0 HOLD, `i ≤ k` BUY `i·lot`, `i > k` SELL `(i−k)·lot` |
    | `"continuous"` | `Box(-1, 1, (1,))` | target position as a signed fraction of `max_position` |

    Quantities live on a grid of `qty_step` (one share on the simulated book;
    e.g. 0.01 BTC with `lot=0.01` on fractional data): orders, fills and the
    position are exact multiples of it, and a continuous target is rounded to
    it (the rest is `info["rounding_qty"]`). Before an order reaches the book it
    is cut to `max_position` and to the buying power: gross exposure
    `|position| · mid` after the order, at the mid the agent observed, may not
    exceed `max_leverage` × equity (reducing orders always pass). Whatever is
    cut, or sent but not filled because the book ran out of depth (or the
    engine's order pool was full), is reported in `info["rejected_qty"]` with
    `info["rejected_reason"]`. An action outside the space raises
    `InvalidActionError` (a `ValueError`); a wrong type raises `TypeError`.
    Nothing is clipped silently.

    ## Observation Space

    A `Dict` of float32 arrays (W = `window`, L = `n_levels`):

    | Key | Shape | Num | Observation | Min | Max |
    | --- | --- | --- | --- | --- | --- |
    | `prices` | (W,) | i | log(mid[t−W+1+i] / mid[t]) in bps (0 before history exists) | -Inf | Inf |
    | `volumes` | (W,) | i | log1p(traded shares in step t−W+1+i / lot) | 0 | Inf |
    | `book` | (L, 4) | [i, 0] | bid level i: (price − mid) / mid in bps (0 if empty) | -Inf | Inf |
    | | | [i, 1] | bid level i: log1p(shares / lot) | -Inf | Inf |
    | | | [i, 2] | ask level i: (price − mid) / mid in bps (0 if empty) | -Inf | Inf |
    | | | [i, 3] | ask level i: log1p(shares / lot) | -Inf | Inf |
    | `account` | (5,) | 0 | position / max_position | -1 | 1 |
    | | | 1 | cash / initial_cash | -Inf | Inf |
    | | | 2 | unrealized PnL / initial_cash, percent | -Inf | Inf |
    | | | 3 | drawdown from the session's peak equity, fraction | 0 | Inf |
    | | | 4 | fraction of the session left | 0 | 1 |
    | `market` | (4,) | 0 | VPIN over the last `vpin_n_buckets` volume buckets | 0 | 1 |
    | | | 1 | realized volatility of one-step mid returns, bps | 0 | Inf |
    | | | 2 | bid-ask spread, bps of mid | 0 | Inf |
    | | | 3 | depth imbalance (Σbid − Σask)/(Σbid + Σask) over L levels | -1 | 1 |

    ## Rewards

    `"pnl"` (default): change in mark-to-market equity (cash + position × mid,
    fees already deducted from cash) in basis points of `initial_cash`.
    `"risk_adjusted"` *(ours)*: the same minus
    `risk_aversion · |position value| / initial_cash · σ_bps`, the one-step
    inventory risk.

    ## Starting State

    A ladder of noise orders around `initial_price`, then `warmup` steps of
    flow; the agent starts flat with `initial_cash`. Historical: a start row
    drawn from `np_random` (or `reset(options={"start": k})` for walk-forward
    splits), then `window` rows that only build the history.

    ## Episode End

    Terminated when equity ≤ 0: ruin, with `info["ruin"] = True` (the buying-power
    check keeps a single order from getting there; adverse moves can). Truncated
    after `episode_steps` decisions (the end of the session).

    ## Info

    | Key | Meaning |
    | --- | --- |
    | `fills` | the agent's fills this step |
    | `exec_qty` | signed quantity executed (shares, or units of the asset), a multiple of `qty_step` |
    | `exec_price` | VWAP of those fills (0 without a fill) |
    | `slippage_bps` | `exec_price` vs the mid before the order, positive = cost |
    | `fees` | `fee_bps` of the fills' notional, currency |
    | `rejected_qty` | quantity ≥ 0 requested but not executed (absolute requested minus absolute `exec_qty`) |
    | `rejected_reason` | why, comma-separated: `position_limit`, `leverage`, `book_exhausted`, `pool_full`; `""` if nothing |
    | `rounding_qty` | continuous actions: target quantity left out by rounding to the grid (signed, ≤ `qty_step`/2) |
    | `ruin` | equity ≤ 0 ended the episode |
    | `position`, `cash`, `equity`, `pnl`, `drawdown` | the account after the step (`pnl` = equity − `initial_cash`) |
    | `vpin`, `volatility`, `mid`, `spread`, `volume`, `step` | the market (`spread` 0 while a side is empty; `volume` traded by everyone in the step) |

    Exact accounting, on every step: `Δcash = −exec_qty · exec_price − fees`,
    `Δposition = exec_qty` and `equity = cash + position · mid`.

    ## Arguments

    | Argument | Default | Meaning |
    | --- | --- | --- |
    | `scenario` | `"ou"` | `ou`, `gbm`, `regime`, `flash_crash`, `high_vol`, `squeeze`, `historical` |
    | `action_type` | `"discrete"` | see Action Space |
    | `n_sizes` | 3 | k for `action_type="sized"` |
    | `reward` | `"pnl"` | `"pnl"` or `"risk_adjusted"` |
    | `data` | None | file or `HistoricalSource` for `scenario="historical"` |
    | `data_split` | `(0, 1)` | fraction of rows episodes may use (walk-forward: train `(0, .7)`, test `(.7, 1)`) |
    | `seed` | None | default seed of the first `reset()` |
    | `step_seconds` | 23.4 | market seconds per step, for annualizing results: 1000 steps = one 6.5-h equity session, and the default 4 bps per-step volatility ≈ 20% a year; historical data use the median spacing of their time stamps instead (`env.step_seconds`) |
    | `render_mode` | None | `"ansi"` or `"rgb_array"` |
    | `lot` | 100 | quantity per action unit; fractional (e.g. `0.01` BTC) on `historical` L2/OHLCV data only |
    | `max_position` | 1000 | position limit, same unit as `lot` |
    | `qty_step` | None | quantity grid; None: the finest decimal step of `lot` and `max_position` (at most 1) |
    | `max_leverage` | 2.0 | buying power: gross exposure ≤ `max_leverage` × equity (Reg T initial margin, 50%); `inf` turns it off |
    | `**market` | | any other `MarketConfig` field: `episode_steps`, `window`, `n_levels`, `fee_bps`, `initial_cash`, ... |

    ```python
    import gymnasium as gym
    import envs_registry
    from janus_env.samples import sample_path
    env = gym.make("Janus-LOB-v0", scenario="regime", seed=0, episode_steps=500)
    btc = gym.make("Janus-LOB-v0", scenario="historical", data=sample_path("btc_usd_hourly"),
                   lot=0.01, max_position=1.0)  # 0.01 BTC per action
    ```

    ## Version History

    * v0: initial release.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 10}

    def __init__(
        self,
        scenario: str = "ou",
        action_type: str = "discrete",
        n_sizes: int = 3,
        reward: str = "pnl",
        data: Any = None,
        data_split: tuple[float, float] = (0.0, 1.0),
        seed: int | None = None,
        render_mode: str | None = None,
        **market: Any,
    ) -> None:
        check_choice("reward", reward, sorted(REWARDS))
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        check_int("seed", seed, optional=True)
        self.scenario = scenario
        self.config = market_config(scenario, market)
        self.action_type = action_type
        self.n_sizes = int(n_sizes) if action_type == "sized" else 1
        self.reward_mode = reward
        self.render_mode = render_mode
        self.action_space = make_action_space(action_type, n_sizes)
        self.observation_space = observation_space(self.config.window, self.config.n_levels)
        self._default_seed = None if seed is None else int(seed)
        self._lot_units = self.config.lot_units
        self._max_units = self.config.max_position_units
        self._qty_step = self.config.resolved_qty_step
        self._rounding = 0.0
        self._market = self._make_market(scenario, data, tuple(data_split))
        self._needs_reset = True
        self._frames: list[np.ndarray] = []
        self._mids: list[float] = []

    def _make_market(self, scenario: str, data: Any, data_split: tuple[float, ...]) -> Any:
        params_reward = REWARDS[self.reward_mode]
        if scenario == "historical":
            from janus_env.historical_market import HistoricalMarket

            market = HistoricalMarket(self.config, data, data_split)
        else:
            if data is not None or data_split != (0.0, 1.0):
                raise ValueError(f"`data` and `data_split` are only used with scenario='historical', got "
                                 f"scenario={scenario!r}")
            market = SimulatedMarket(self.config)
        market.set_reward_mode(params_reward)
        return market

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and self._default_seed is not None:
            seed, self._default_seed = self._default_seed, None
        super().reset(seed=seed)
        start = (options or {}).get("start")
        if self.scenario == "historical":
            self._market.reset(self.np_random, start)
        elif start is not None:
            raise ValueError("options['start'] only applies to scenario='historical'")
        else:
            self._market.reset(self.np_random)
        self._needs_reset = False
        self._mids = []
        self._frames = []
        out = self._market.out.tolist()
        self._remember(out)
        return self._observation(), info_from_out(out)

    def step(self, action: Any):
        if self._needs_reset:
            raise RuntimeError(NEED_RESET)
        self._market.step(self._order_units(action))
        out = self._market.out.tolist()
        terminated = out[O_TERMINATED] != 0.0
        truncated = out[O_TRUNCATED] != 0.0
        if terminated or truncated:
            self._needs_reset = True
        if self.render_mode is not None:
            self._remember(out)
        return self._observation(), out[O_REWARD], terminated, truncated, info_from_out(out, self._rounding)

    def _order_units(self, action: Any) -> int:
        """The signed order in grid units; a continuous target is rounded to the grid (rest in ``_rounding``)."""
        if self.action_type == "continuous":
            target = continuous_fraction(action, self.action_space) * self._max_units
            units = round(target)
            self._rounding = (target - units) * self._qty_step
            return int(units - self._market.position_units)
        return sized_quantity(discrete_index(action, self.action_space), self.n_sizes, self._lot_units)

    def _observation(self) -> dict[str, np.ndarray]:
        return split_obs(self._market.obs.copy(), self.config.window, self.config.n_levels)

    # --------------------------------------------------------------- rendering
    def _remember(self, out: list[float]) -> None:
        if self.render_mode == "rgb_array":
            self._mids.append(out[O_MID])
            book = self._market.l2(self.config.n_levels)
            self._frames.append(np.concatenate([book[:, 1], book[:, 3]]))

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if self._needs_reset and not self._mids and self.render_mode == "rgb_array":
            raise RuntimeError(NEED_RESET_FOR.format("render"))
        if self.render_mode == "ansi":
            return ansi_ladder(self._market.l2(self.config.n_levels), info_from_out(self._market.out.tolist()))
        window = 128
        prices = np.asarray(self._mids[-window:], dtype=np.float64)
        depth = np.asarray(self._frames[-window:], dtype=np.float64)
        return rgb_frame(prices, depth)

    # ----------------------------------------------------------------- helpers
    def book(self) -> np.ndarray:
        """Top ``n_levels`` of the current book: rows (bid_px, bid_qty, ask_px, ask_qty) in currency/shares."""
        return self._market.l2(self.config.n_levels)

    def buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """The market's live buffers as ``(1, …)`` views: the flat float32 observation and the float64
        ``O_*`` out row (the source of reward and ``info``). Kernels that read the state after each
        step (the shield) use them without copies; treat them as read-only."""
        return self._market.obs.reshape(1, -1), self._market.out.reshape(1, -1)

    @property
    def step_seconds(self) -> float:
        """Market time one decision step stands for, in seconds (what evaluation annualizes with).

        ``scenario="historical"``: the data's median step spacing
        (:attr:`janus_env.historical.HistoricalSource.step_seconds`), or
        ``MarketConfig.step_seconds`` when the data has no time stamps. Simulated
        scenarios: ``MarketConfig.step_seconds`` (23.4 s by default).
        """
        if self.scenario == "historical":
            seconds = self._market.source.step_seconds
            if seconds is not None:
                return float(seconds)
        return float(self.config.step_seconds)

    @property
    def scenarios(self) -> list[str]:
        return sorted(SCENARIOS) + ["historical"]
