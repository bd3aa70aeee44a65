"""The market behind ``scenario="historical"``: recorded data replayed step by step, no look-ahead.

Same ``reset``/``step`` contract and the same ``obs``/``out`` layouts as
``simulator.SimulatedMarket``, so ``JanusLOBEnv`` cannot tell them apart. At
step t the observation is built from ``source.book()`` and ``source.traded()``
at t only (the source guarantees they use data up to t); the agent's market
order executes against that visible book, consuming depth; then the source
advances to t+1 (restoring the recorded book, or replaying the LOBSTER
messages up to t+1 through our engine).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from janus_env.accounting import REJECT_BOOK_EXHAUSTED, cut_order
from janus_env.book import BUY, SELL
from janus_env.checks import check_fraction, check_int, check_number
from janus_env.config import REWARD_RISK_ADJUSTED, MarketConfig
from janus_env.features import N_VPIN_SCALARS, vpin_update
from janus_env.historical import HistoricalSource, RecordedBookSource, load_source
from janus_env.simulator import (
    N_ACCOUNT,
    N_OUT,
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
    obs_size,
    update_cost,
)

_NEED_DATA = ("scenario='historical' needs `data`: a LOBSTER message file, an L2 snapshot CSV, an OHLCV CSV "
              "or a HistoricalSource")
_TOO_SHORT = "The data has {} steps; `window` + 2 = {} are needed for one decision"
_BAD_SPLIT = "Expected `data_split` = (lo, hi) with 0 <= lo < hi <= 1, got {!r}"
_WHOLE_SHARES = ("Expected a quantity grid of whole shares (`qty_step` = 1) for {}, which fills whole shares only; "
                 "got qty_step={!r} (lot={!r}, max_position={!r})")
_OFF_GRID_FILL = "{}.execute filled {!r}, which is not a whole multiple of `qty_step` = {!r}"



def book_rows(levels: np.ndarray, mid: float, n_levels: int, lot: float) -> tuple[np.ndarray, np.ndarray]:
    """The observation's ``book`` rows of ``[bid price, bid size, ask price, ask size]`` levels: prices in bps
    from ``mid``, sizes as ``log1p(size / lot)``, 0 for a missing level (NaN price or no size) and for rows past
    the levels given. Returns ``(rows (n_levels, 4), the levels used)``."""
    rows = np.zeros((n_levels, 4), dtype=np.float64)
    k = min(n_levels, levels.shape[0])
    book = levels[:k]
    for col in (0, 2):
        live = np.isfinite(book[:, col]) & (book[:, col + 1] > 0)
        rows[:k, col] = np.where(live, (book[:, col] - mid) / mid * 1e4, 0.0)
        rows[:k, col + 1] = np.where(live, np.log1p(book[:, col + 1] / lot), 0.0)
    return rows, book

class HistoricalMarket:
    """Replays a ``HistoricalSource`` for one agent.

    Args:
        config: market configuration (``window``, ``n_levels``, ``lot``, ``max_position``,
            ``initial_cash``, ``fee_bps``, ``episode_steps``, VPIN settings are used).
        data: anything ``historical.load_source`` accepts.

    The first ``window`` steps after the episode start only build the
    history; decisions start after them. ``reset(options={"start": k})``
    pins the start; by default it is drawn from the env's ``np_random``.
    ``data_split=(lo, hi)`` keeps every episode inside rows ``[lo·N, hi·N)``
    for walk-forward splits: train on ``(0, 0.7)``, evaluate on ``(0.7, 1)``.

    Accounting: orders and the position are integer counts of ``config.resolved_qty_step``
    (e.g. 0.01 BTC), so the position is an exact multiple of the grid; a recorded book
    (L2, OHLCV) fills whole grid steps only, and cash is charged exactly the notional of
    those fills: ``Δcash = −exec_qty · exec_price − fees`` with ``exec_price`` their VWAP.
    Orders are cut to ``max_position`` and ``max_leverage`` (``accounting.cut_order``, at the
    mid the agent observed) before they reach the book; what is cut or not filled is
    ``rejected_qty``. LOBSTER replays whole shares, so it needs ``qty_step`` = 1.

    Raises:
        TypeError: ``data_split`` is not a pair of numbers.
        ValueError: no ``data``, too little of it, a bad ``data_split``, or a fractional
            quantity grid on a whole-share source (LOBSTER); at ``step``, a custom source
            whose fill is not a whole multiple of the grid.
    """

    def __init__(self, config: MarketConfig, data: Any, data_split: tuple[float, float] = (0.0, 1.0)) -> None:
        if data is None:
            raise ValueError(_NEED_DATA)
        try:
            lo, hi = data_split
        except (TypeError, ValueError) as err:  # not a pair
            raise TypeError(_BAD_SPLIT.format(data_split)) from err
        lo, hi = check_fraction("data_split[0]", lo), check_fraction("data_split[1]", hi)
        if lo >= hi:
            raise ValueError(_BAD_SPLIT.format(data_split))
        self.config = config
        self.source: HistoricalSource = load_source(data)
        self._qty_step = config.resolved_qty_step
        self._max_units = config.max_position_units
        self._recorded = isinstance(self.source, RecordedBookSource)  # fills on any grid
        if not self._recorded and self._qty_step != 1.0:
            raise ValueError(_WHOLE_SHARES.format(type(self.source).__name__, config.qty_step, config.lot,
                                                  config.max_position))
        n = len(self.source)
        # walk-forward: episodes (history window included) live entirely in rows [first_row, end_row)
        self.first_row, self.end_row = int(np.floor(lo * n)), int(np.floor(hi * n))
        available = self.end_row - self.first_row
        need = config.window + 2
        if available < need:
            raise ValueError(_TOO_SHORT.format(available, need))
        # a fixed episode length (not "whatever data is left"), so the clock leaks nothing about the future
        self.episode_steps = min(config.episode_steps, available - config.window)
        self.obs = np.zeros(obs_size(config.window, config.n_levels), dtype=np.float32)
        self.out = np.zeros(N_OUT, dtype=np.float64)
        self._reward_mode = 0
        w = config.window
        self._log_mid = np.zeros(w, dtype=np.float64)
        self._log_vol = np.zeros(w, dtype=np.float64)
        self._vpin_scalars = np.zeros(N_VPIN_SCALARS, dtype=np.float64)
        self._vpin_ring = np.zeros(config.vpin_n_buckets, dtype=np.float64)
        self.start_override: int | None = None

    def set_reward_mode(self, mode: int) -> None:
        self._reward_mode = mode

    @property
    def max_start(self) -> int:
        return self.end_row - self.config.window - self.episode_steps

    def reset(self, np_random: np.random.Generator, start: int | None = None) -> None:
        cfg = self.config
        if start is None:
            start = int(np_random.integers(self.first_row, self.max_start + 1))
        else:
            start = check_int("options['start']", start, low=self.first_row, high=self.max_start)
        self.source.reset(start)
        self._log_mid[:] = 0.0
        self._log_vol[:] = 0.0
        self._vpin_scalars[:] = 0.0
        self._vpin_ring[:] = 0.0
        self._n_hist = 0
        self._mid = float("nan")
        self._record()
        for _ in range(cfg.window - 1):
            self.source.advance()
            self._record()
        self._steps = self.episode_steps
        self._t = 0
        self._cash = cfg.initial_cash
        self._units = 0  # position in grid units (exact)
        self._position = 0.0  # the same in quantity
        self._cost = 0.0
        self._fees = 0.0
        self._peak = cfg.initial_cash
        self._prev_equity = cfg.initial_cash
        self.out[:] = 0.0
        self._write(reward=0.0, exec_qty=0.0, exec_px=0.0, slip=0.0, fee=0.0, rejected=0.0, reasons=0, n_fills=0)

    @property
    def position_units(self) -> int:
        """The agent's position in grid units."""
        return self._units

    def _record(self) -> None:
        """Fold the current step's book and trades into the histories and VPIN."""
        book = self.source.book()
        mid = 0.5 * (book[0, 0] + book[0, 2])
        if math.isfinite(mid):
            self._mid = mid
        buy, sell = self.source.traded()
        self._vpin = vpin_update(self._vpin_scalars, self._vpin_ring, float(buy), float(sell),
                                 float(self.config.vpin_bucket))
        # shift the histories by one in place (np.roll allocated two arrays per step: most of a replay's time)
        self._log_mid[:-1] = self._log_mid[1:]
        self._log_mid[-1] = math.log(self._mid) if math.isfinite(self._mid) else 0.0
        self._log_vol[:-1] = self._log_vol[1:]
        self._log_vol[-1] = math.log1p((buy + sell) / self.config.lot)
        self._volume = float(buy + sell)
        self._n_hist = min(self._n_hist + 1, self.config.window)
        self._book = book

    def step(self, order_units: int) -> None:
        """Execute a signed order of ``order_units`` grid units, then advance the data one step."""
        cfg = self.config
        mid_before = self._mid
        equity_before = self._cash + self._position * mid_before
        q, reasons = cut_order(self._units, int(order_units), self._max_units, mid_before * self._qty_step,
                               equity_before, float(cfg.max_leverage))
        filled, notional, exec_qty, exec_px, slip, fee = 0, 0.0, 0.0, 0.0, 0.0, 0.0
        if q != 0:
            filled, notional = self._execute(BUY if q > 0 else SELL, abs(q))
            if filled < abs(q):
                reasons |= REJECT_BOOK_EXHAUSTED
        if filled > 0:
            qty = cfg.to_qty(filled)
            exec_px = notional / qty  # the fills' VWAP, so exec_qty · exec_price is the notional charged
            exec_qty = qty if q > 0 else -qty
            slip = ((exec_px - mid_before) if q > 0 else (mid_before - exec_px)) / mid_before * 1e4
            fee = cfg.fee_bps * 1e-4 * notional
            self._fees += fee
            self._cash -= (notional if q > 0 else -notional) + fee
            self._cost = update_cost(self._cost, self._position, exec_qty, exec_px)
            self._units += filled if q > 0 else -filled
            self._position = cfg.to_qty(self._units)
        rejected = cfg.to_qty(abs(int(order_units)) - filled)
        self.source.advance()
        self._record()
        self._t += 1
        equity = self._cash + self._position * self._mid
        reward = (equity - self._prev_equity) / cfg.initial_cash * 1e4
        if self._reward_mode == REWARD_RISK_ADJUSTED:
            exposure = abs(self._position * self._mid) / cfg.initial_cash
            reward -= cfg.risk_aversion * exposure * self._volatility() * 1e4
        self._prev_equity = equity
        self._peak = max(self._peak, equity)
        self._write(reward, exec_qty, exec_px, slip, fee, rejected, reasons, 1 if filled else 0)
        terminated = equity <= 0.0
        self.out[O_TERMINATED] = float(terminated)
        self.out[O_TRUNCATED] = float(not terminated and self._t >= self._steps)

    def set_account(self, units: int, cash: float, cost: float, peak: float, t: int) -> None:
        """Put an account into the market at the current step and rewrite ``obs`` and ``out`` (no trade, reward 0).

        For a caller that keeps the agent's account itself and needs the observation ``Janus-LOB-v0`` would
        show it in this market state (the decision service, ``agents.app.service``): the account block and the
        account columns of ``out`` are written by the same code as every step's.

        Args:
            units: the position in grid units (``config.resolved_qty_step``).
            cash: cash in currency.
            cost: the position's cost basis, Σ signed quantity × price (:func:`~janus_env.simulator.update_cost`).
            peak: the session's peak equity so far; raised to the equity at the current mid, as each step does.
            t: decisions taken in the session, in ``[0, episode_steps]`` (the time-left feature).

        Raises:
            TypeError: ``units`` or ``t`` is not an int, or a number that is not a real number.
            ValueError: ``t`` out of range, or ``cash``, ``cost``, ``peak`` not finite.
        """
        units = check_int("units", units)
        t = check_int("t", t, low=0, high=self._steps)
        cash, cost, peak = (check_number(name, value) for name, value in (("cash", cash), ("cost", cost),
                                                                            ("peak", peak)))
        self._units = units
        self._position = self.config.to_qty(units)
        self._cash, self._cost, self._t = cash, cost, t
        equity = cash + self._position * self._mid
        self._peak = max(peak, equity)
        self._prev_equity = equity
        self._write(reward=0.0, exec_qty=0.0, exec_px=0.0, slip=0.0, fee=0.0, rejected=0.0, reasons=0, n_fills=0)

    def _execute(self, side: int, units: int) -> tuple[int, float]:
        """Send ``units`` grid units to the source; return (filled units, notional in currency)."""
        step = self._qty_step
        if self._recorded:
            source: Any = self.source  # a RecordedBookSource: fills on any grid
            got, notional = source.execute(side, self.config.to_qty(units), qty_step=step)
        else:
            got, notional = self.source.execute(side, float(units))  # whole shares (qty_step = 1)
        filled = int(round(got / step))
        if abs(filled * step - got) > 1e-9 * max(step, abs(got)):
            raise ValueError(_OFF_GRID_FILL.format(type(self.source).__name__, got, step))
        return filled, float(notional)

    def _volatility(self) -> float:
        n = self._n_hist
        if n < 2:
            return 0.0
        r = np.diff(self._log_mid[-n:])
        return float(np.sqrt(np.mean(r * r)))

    def _write(self, reward: float, exec_qty: float, exec_px: float, slip: float, fee: float, rejected: float,
               reasons: int, n_fills: int) -> None:
        cfg = self.config
        w, n_levels = cfg.window, cfg.n_levels
        obs, out = self.obs, self.out
        mid = self._mid
        log_mid = math.log(mid)
        n = self._n_hist
        obs[:w] = 0.0
        obs[w:2 * w] = 0.0
        obs[w - n:w] = (self._log_mid[w - n:] - log_mid) * 1e4
        obs[2 * w - n:2 * w] = self._log_vol[w - n:]
        rows, book = book_rows(self._book, mid, n_levels, cfg.lot)
        b0 = 2 * w
        obs[b0:b0 + 4 * n_levels] = rows.reshape(-1)
        equity = self._cash + self._position * mid
        a0 = b0 + 4 * n_levels
        obs[a0] = self._position / cfg.max_position
        obs[a0 + 1] = self._cash / cfg.initial_cash
        obs[a0 + 2] = (self._position * mid - self._cost) / cfg.initial_cash * 100.0
        obs[a0 + 3] = (self._peak - equity) / self._peak if self._peak > 0 else 0.0
        obs[a0 + 4] = 1.0 - self._t / self._steps
        m0 = a0 + N_ACCOUNT
        bid_total = float(book[:, 1].sum())
        ask_total = float(book[:, 3].sum())
        spread = book[0, 2] - book[0, 0]
        obs[m0] = self._vpin
        obs[m0 + 1] = self._volatility() * 1e4
        obs[m0 + 2] = spread / mid * 1e4 if math.isfinite(spread) else 0.0
        total = bid_total + ask_total
        obs[m0 + 3] = (bid_total - ask_total) / total if total > 0 else 0.0
        out[O_REWARD] = reward
        out[O_EXEC_QTY] = exec_qty
        out[O_EXEC_PRICE] = exec_px
        out[O_SLIPPAGE_BPS] = slip
        out[O_FEES] = fee
        out[O_VPIN] = self._vpin
        out[O_VOLATILITY] = self._volatility()
        out[O_POSITION] = self._position
        out[O_EQUITY] = equity
        out[O_DRAWDOWN] = obs[a0 + 3]
        out[O_MID] = mid
        out[O_REJECTED] = rejected
        out[O_REJECT_REASON] = reasons
        out[O_N_FILLS] = n_fills
        out[O_CASH] = self._cash
        out[O_SPREAD] = spread if math.isfinite(spread) else 0.0
        out[O_STEP] = self._t
        out[O_PNL] = equity - cfg.initial_cash
        out[O_VOLUME] = self._volume

    def l2(self, n_levels: int) -> np.ndarray:
        """The visible book now, rows (bid_px, bid_qty, ask_px, ask_qty), padded to ``n_levels``."""
        rows = np.full((int(n_levels), 4), np.nan)
        rows[:, 1] = rows[:, 3] = 0.0
        k = min(int(n_levels), self._book.shape[0])
        rows[:k] = self._book[:k]
        return rows
