"""The simulated market behind the single-agent envs: one numba call per decision.

``env_step`` executes the JANUS agent's market order against the book it
observed, runs one step of exogenous flow (``flow.flow_step``), updates the
features incrementally and writes the observation and the info scalars into
preallocated arrays. ``vec_step`` does the same for N books in one call.

Array layouts (all preallocated by ``MarketArrays``):

* ``f`` float64: scalars ``F_*`` (see ``flow.py``), then the VPIN ring
  (``vpin_n_buckets``), the mid history (``hist_len``, absolute ticks) and the
  per-step volume history (``hist_len``, shares).
* ``obs`` float32: ``prices (window) | volumes (window) | book (n_levels·4) |
  account (5) | market (4)``; see ``JanusLOBEnv`` for the meaning of each.
* ``out`` float64: the ``O_*`` scalars that become reward, flags and info.

The ``O_*`` row and the observation layout are the state layout of every
market in the project: one simulated book, N books (``vec_step``), the
recorded market of ``scenario="historical"``, and each agent of the shared
multi-agent book (``_parallel_kernels.py`` appends its own columns after
``N_OUT``). Readers such as the LTN shield read any of them through the env's
``buffers()``. The pieces of a step that every market shares are written once
here: ``price_origin``, ``account_equity``, ``update_cost`` (average-cost basis),
``record_market`` (VPIN and the histories), ``write_market_obs`` /
``write_market_out`` (the market's part of an observation and of an ``O_*``
row) and ``write_account`` (an agent's part of both).
"""

from __future__ import annotations

import math
import types

import numpy as np
from numba import njit, prange

from janus_env.accounting import REJECT_BOOK_EXHAUSTED, REJECT_POOL_FULL, cut_order
from janus_env.book import (
    BUY,
    F_PRICE,
    F_QTY,
    F_TAKER_SIDE,
    N_FILL_COLS,
    N_LEVEL_COLS,
    N_LOG_COLS,
    N_ORDER_COLS,
    N_STATE,
    S_BEST_ASK,
    S_BEST_BID,
    S_N_FILLS,
    book_reset,
    snapshot,
    submit,
)
from janus_env.config import (
    AGENT_JANUS,
    N_AGENTS,
    P_EPISODE_STEPS,
    P_FEE_BPS,
    P_HIST_LEN,
    P_INITIAL_CASH,
    P_INITIAL_PRICE_TICKS,
    P_LOT,
    P_MAX_LEVERAGE,
    P_MAX_POSITION,
    P_N_LEVELS,
    P_N_TICKS,
    P_REWARD_MODE,
    P_RISK_AVERSION,
    P_TICK_SIZE,
    P_VPIN_BUCKET,
    P_VPIN_N_BUCKETS,
    P_WARMUP,
    P_WINDOW,
    REWARD_RISK_ADJUSTED,
    MarketConfig,
)
from janus_env.features import N_VPIN_SCALARS, vpin_update
from janus_env.rng import seed_state
from janus_env.flow import (
    F_ACTIVITY,
    F_COST,
    F_DONE,
    F_FEES,
    F_PEAK_EQUITY,
    F_PREV_EQUITY,
    F_RING_HEAD,
    F_RING_N,
    F_SQ_SUM,
    F_STEP,
    F_STEP_COUNT,
    F_STEP_VOLUME,
    F_VOL,
    F_VPIN,
    F_VPIN0,
    I_MM_QUOTES,
    I_SNAPSHOT,
    N_F_SCALARS,
    N_MM_QUOTES,
    SEED_LADDER_LEVELS,
    current_mid,
    flow_step,
    seed_ladder,
)

# ---- out layout: one O_* row per agent and book (module docstring) -----------------
O_REWARD = 0
O_TERMINATED = 1
O_TRUNCATED = 2
O_EXEC_QTY = 3
O_EXEC_PRICE = 4
O_SLIPPAGE_BPS = 5
O_FEES = 6
O_VPIN = 7
O_VOLATILITY = 8
O_POSITION = 9
O_EQUITY = 10
O_DRAWDOWN = 11
O_MID = 12
O_REJECTED = 13
O_N_FILLS = 14
O_CASH = 15
O_SPREAD = 16
O_STEP = 17
O_PNL = 18
O_VOLUME = 19
O_REJECT_REASON = 20
N_OUT = 21

N_ACCOUNT = 5
"""Length of the account block of an observation (position, cash, unrealized PnL, drawdown, time left)."""
N_MARKET = 4
"""Length of the market block that ends an observation (VPIN, volatility, spread, imbalance)."""


def obs_size(window: int, n_levels: int) -> int:
    return 2 * window + 4 * n_levels + N_ACCOUNT + N_MARKET


def f_size(p: np.ndarray) -> int:
    return N_F_SCALARS + int(p[P_VPIN_N_BUCKETS]) + 3 * int(p[P_HIST_LEN])


_FRACTIONAL = ("Expected `{}` to be a whole number of shares: the simulated book trades integer shares "
               "(fractional quantities need scenario='historical' data in fractional units), got {!r}")


def check_whole_shares(config: MarketConfig) -> None:
    """Raise ``ValueError`` unless ``lot``, ``max_position`` and the quantity grid are whole shares."""
    for name in ("lot", "max_position"):
        value = getattr(config, name)
        if value != round(value):
            raise ValueError(_FRACTIONAL.format(name, value))
    if config.resolved_qty_step != 1.0:
        raise ValueError(_FRACTIONAL.format("qty_step", config.qty_step).replace("a whole number of shares",
                                                                                  "1 (one share)"))


class MarketArrays:
    """Preallocated state of ``n_books`` simulated books (leading dimension) for one config.

    Raises:
        ValueError: a fractional ``lot``, ``max_position`` or ``qty_step`` (see ``check_whole_shares``).
    """

    def __init__(self, config: MarketConfig, n_books: int = 1, log_capacity: int = 0) -> None:
        check_whole_shares(config)
        self.config = config
        self.params = config.to_params()
        self.n_books = int(n_books)
        n, cap = self.n_books, config.capacity
        self.levels = np.zeros((n, config.n_ticks, N_LEVEL_COLS), dtype=np.int64)
        self.orders = np.zeros((n, cap, N_ORDER_COLS), dtype=np.int64)
        self.state = np.zeros((n, N_STATE), dtype=np.int64)
        self.accounts = np.zeros((n, N_AGENTS, 2), dtype=np.int64)
        self.fills = np.zeros((n, cap + 1, N_FILL_COLS), dtype=np.int64)
        self.log = np.zeros((n, int(log_capacity), N_LOG_COLS), dtype=np.int64)
        self.rng = np.zeros((n, 4), dtype=np.uint64)
        self.f = np.zeros((n, f_size(self.params)), dtype=np.float64)
        self.ib = np.full((n, I_SNAPSHOT + 4 * config.n_levels), -1, dtype=np.int64)
        self.obs = np.zeros((n, obs_size(config.window, config.n_levels)), dtype=np.float32)
        self.out = np.zeros((n, N_OUT), dtype=np.float64)

    def book(self, i: int = 0) -> tuple[np.ndarray, ...]:
        """The arrays of book ``i`` in kernel argument order."""
        return (self.levels[i], self.orders[i], self.state[i], self.accounts[i], self.fills[i], self.log[i],
                self.rng[i], self.params, self.f[i], self.ib[i], self.obs[i], self.out[i])


# ------------------------------------------------------------------------- kernels


@njit(cache=True)
def price_origin(p):
    """Absolute price in ticks of grid index 0: grid price ``g`` is ``(g + price_origin(p)) · tick_size``.

    The grid of ``n_ticks`` indices is centred on ``initial_price``.
    """
    return p[P_INITIAL_PRICE_TICKS] - 0.5 * p[P_N_TICKS]


@njit(cache=True)
def _ring_offsets(p):
    """Offsets in ``f`` of the VPIN ring, log-mid history, log-volume history and squared-return history."""
    vr = N_F_SCALARS
    mr = vr + int(p[P_VPIN_N_BUCKETS])
    h = int(p[P_HIST_LEN])
    return vr, mr, mr + h, mr + 2 * h, h


@njit(cache=True)
def record_market(levels, state, fills, p, f, first_fill):
    """Fold the step's trades into VPIN and the histories; update realized volatility in O(1).

    Every simulated market calls it once per step (after the flow), over the fills from
    ``first_fill`` on. Realized volatility is ``sqrt(Σ r² / m)`` over the last ``m <= window``
    one-step log returns of the mid, kept as a running sum (recomputed from the ring every
    256 steps so rounding cannot accumulate).
    """
    buy = 0.0
    sell = 0.0
    for i in range(first_fill, state[S_N_FILLS]):
        if fills[i, F_TAKER_SIDE] == BUY:
            buy += fills[i, F_QTY]
        else:
            sell += fills[i, F_QTY]
    vr, mr, vo, sq, h = _ring_offsets(p)
    f[F_VPIN] = vpin_update(f[F_VPIN0:F_VPIN0 + N_VPIN_SCALARS], f[vr:mr], buy, sell, p[P_VPIN_BUCKET])
    f[F_STEP_VOLUME] = buy + sell
    head = int(f[F_RING_HEAD])
    n = int(f[F_RING_N])
    log_mid = math.log(current_mid(levels, state, f) + price_origin(p))
    w = int(p[P_WINDOW])
    r2 = 0.0
    if n > 0:
        r = log_mid - f[mr + (head - 1) % h]
        r2 = r * r
    # the return that leaves the window: read it before its ring slot is reused (hist_len may equal
    # window), and count entries with F_STEP_COUNT, which (unlike the ring count) is not capped at hist_len
    leaving = f[sq + (head - w) % h] if int(f[F_STEP_COUNT]) >= w + 1 else 0.0
    f[mr + head] = log_mid
    f[vo + head] = math.log1p((buy + sell) / p[P_LOT])
    f[sq + head] = r2
    n_returns = n if n < w else w  # returns in the window after this step
    acc = f[F_SQ_SUM] + r2 - leaving
    head = (head + 1) % h
    f[F_RING_HEAD] = head
    f[F_RING_N] = n + 1 if n + 1 < h else h
    if int(f[F_STEP_COUNT]) % 256 == 0:
        acc = 0.0
        for k in range(n_returns):
            acc += f[sq + (head - 1 - k) % h]
    f[F_STEP_COUNT] += 1.0
    f[F_SQ_SUM] = acc
    f[F_VOL] = math.sqrt(max(acc, 0.0) / n_returns) if n_returns > 0 else 0.0


@njit(cache=True)
def history_view(p, f):
    """The log-mid history ring of ``f`` that ``flow.flow_step`` reads for the momentum trader."""
    vr, mr, vo, sq, h = _ring_offsets(p)
    return f[mr:vo]


@njit(cache=True)
def account_equity(p, cash_ticks, pos, fees, mid):
    """Mark-to-market equity in currency: ``initial_cash + tick_size·(cash + position·mid) − fees``.

    Args:
        p: the market parameters.
        cash_ticks: the account's cash on the book (tick·shares, ``accounts[a, 0]``).
        pos: its position in shares (``accounts[a, 1]``).
        fees: its cumulative fees in currency.
        mid: the mid on the grid (ticks).
    """
    return p[P_INITIAL_CASH] + p[P_TICK_SIZE] * (cash_ticks + pos * mid) - fees


@njit(cache=True)
def update_cost(cost, pos_before, dq, px):
    """The average-cost basis of an open position after a fill (returned; ``cost`` is not modified).

    ``cost`` is Σ signed shares × price of the open position, so its average price is
    ``cost / position``. A fill from flat or in the direction of the position adds ``dq·px``;
    a fill against it closes ``c = min(|dq|, |position|)`` shares at the average price
    (``cost ← cost·(|position| − c)/|position|``) and any rest opens the opposite position at
    ``px``. Written once for every market: the simulated books (ticks), the multi-agent book
    (one basis per agent) and the recorded market (currency).

    Args:
        cost: the basis before the fill.
        pos_before: the position before the fill.
        dq: the fill's signed quantity (+ buy, − sell).
        px: the fill's price, in the unit of ``cost``.
    """
    if dq == 0:
        return cost
    if pos_before == 0 or (dq > 0) == (pos_before > 0):
        return cost + dq * px
    closing = min(abs(dq), abs(pos_before))
    cost = cost * ((abs(pos_before) - closing) / abs(pos_before))
    rest = abs(dq) - closing
    if rest > 0:
        cost = (rest if dq > 0 else -rest) * px
    return cost


@njit(cache=True)
def write_market_obs(levels, state, p, f, ib, obs):
    """The market's part of an observation from the book and the histories.

    Fills ``prices``, ``volumes``, ``book`` and ``market`` of the flat ``obs`` (layout in the
    module docstring); the ``account`` block is :func:`write_account`'s.
    """
    w = int(p[P_WINDOW])
    n_levels = int(p[P_N_LEVELS])
    lot = p[P_LOT]
    origin = price_origin(p)
    vr, mr, vo, sq, h = _ring_offsets(p)
    mid = current_mid(levels, state, f)
    mid_abs = mid + origin
    log_mid = math.log(mid_abs)
    head = int(f[F_RING_HEAD])
    n = int(f[F_RING_N])
    for i in range(w):
        back = w - i  # 1 = most recent
        if back <= n:
            idx = (head - back) % h
            obs[i] = (f[mr + idx] - log_mid) * 1e4
            obs[w + i] = f[vo + idx]
        else:
            obs[i] = 0.0
            obs[w + i] = 0.0
    snap = ib[I_SNAPSHOT:I_SNAPSHOT + 4 * n_levels].reshape((n_levels, 4))
    snapshot(levels, state, snap)
    b0 = 2 * w
    bid_total = 0.0
    ask_total = 0.0
    for i in range(n_levels):
        o = b0 + 4 * i
        if snap[i, 0] >= 0:
            obs[o] = (snap[i, 0] - mid) / mid_abs * 1e4
            obs[o + 1] = math.log1p(snap[i, 1] / lot)
            bid_total += snap[i, 1]
        else:
            obs[o] = 0.0
            obs[o + 1] = 0.0
        if snap[i, 2] >= 0:
            obs[o + 2] = (snap[i, 2] - mid) / mid_abs * 1e4
            obs[o + 3] = math.log1p(snap[i, 3] / lot)
            ask_total += snap[i, 3]
        else:
            obs[o + 2] = 0.0
            obs[o + 3] = 0.0
    m0 = b0 + 4 * n_levels + N_ACCOUNT
    obs[m0] = f[F_VPIN]
    obs[m0 + 1] = f[F_VOL] * 1e4
    bb = state[S_BEST_BID]
    ba = state[S_BEST_ASK]
    obs[m0 + 2] = (ba - bb) / mid_abs * 1e4 if (bb >= 0 and ba < levels.shape[0]) else 0.0
    total = bid_total + ask_total
    obs[m0 + 3] = (bid_total - ask_total) / total if total > 0 else 0.0


@njit(cache=True)
def write_account(p, f, obs, out, cash_ticks, pos, fees, cost, peak, mid):
    """An agent's own part of its state: the ``account`` block of ``obs`` and the account columns of ``out``.

    ``out`` gets ``O_POSITION``, ``O_CASH``, ``O_EQUITY``, ``O_PNL`` and ``O_DRAWDOWN``; ``obs``
    gets position / ``max_position``, cash / ``initial_cash``, unrealized PnL in % of
    ``initial_cash`` (against the basis ``cost``, see :func:`update_cost`), drawdown from
    ``peak`` equity, and the share of the session left.

    Args:
        p, f: the market parameters and float state (for the step counter).
        obs: the agent's flat observation; out: its ``O_*`` row.
        cash_ticks, pos: its book account (tick·shares, shares); fees: its cumulative fees;
        cost: its average-cost basis (absolute ticks · shares); peak: its peak equity;
        mid: the mid on the grid (ticks).
    """
    origin = price_origin(p)
    tick = p[P_TICK_SIZE]
    cash0 = p[P_INITIAL_CASH]
    mid_abs = mid + origin
    equity = account_equity(p, cash_ticks, pos, fees, mid)
    cash = cash0 + tick * (cash_ticks - origin * pos) - fees
    drawdown = (peak - equity) / peak if peak > 0 else 0.0
    a0 = 2 * int(p[P_WINDOW]) + 4 * int(p[P_N_LEVELS])
    obs[a0] = pos / p[P_MAX_POSITION]
    obs[a0 + 1] = cash / cash0
    obs[a0 + 2] = tick * (pos * mid_abs - cost) / cash0 * 100.0
    obs[a0 + 3] = drawdown
    obs[a0 + 4] = 1.0 - f[F_STEP] / p[P_EPISODE_STEPS]
    out[O_POSITION] = pos
    out[O_CASH] = cash
    out[O_EQUITY] = equity
    out[O_PNL] = equity - cash0
    out[O_DRAWDOWN] = drawdown


@njit(cache=True)
def write_market_out(levels, state, p, f, out, mid):
    """The market's columns of an ``O_*`` row: ``O_VPIN``, ``O_VOLATILITY``, ``O_MID``, ``O_SPREAD``,
    ``O_STEP`` and ``O_VOLUME`` (currency and shares; ``mid`` on the grid)."""
    tick = p[P_TICK_SIZE]
    out[O_VPIN] = f[F_VPIN]
    out[O_VOLATILITY] = f[F_VOL]
    out[O_MID] = (mid + price_origin(p)) * tick
    bb = state[S_BEST_BID]
    ba = state[S_BEST_ASK]
    out[O_SPREAD] = (ba - bb) * tick if (bb >= 0 and ba < levels.shape[0]) else 0.0
    out[O_STEP] = f[F_STEP]
    out[O_VOLUME] = f[F_STEP_VOLUME]


@njit(cache=True)
def _write_state(levels, state, accounts, p, f, ib, obs, out, mid):
    """The JANUS agent's observation and the market and account columns of its ``O_*`` row."""
    write_market_obs(levels, state, p, f, ib, obs)
    write_account(p, f, obs, out, accounts[AGENT_JANUS, 0], accounts[AGENT_JANUS, 1], f[F_FEES], f[F_COST],
                  f[F_PEAK_EQUITY], mid)
    write_market_out(levels, state, p, f, out, mid)


@njit(cache=True)
def _write_step(out, reward, exec_qty, exec_px, slip, fee, rejected, reasons, n_fills, terminated, truncated):
    """The step's own columns of the ``O_*`` row: reward, execution and the end flags."""
    out[O_REWARD] = reward
    out[O_EXEC_QTY] = exec_qty
    out[O_EXEC_PRICE] = exec_px
    out[O_SLIPPAGE_BPS] = slip
    out[O_FEES] = fee
    out[O_REJECTED] = rejected
    out[O_REJECT_REASON] = reasons
    out[O_N_FILLS] = n_fills
    out[O_TERMINATED] = 1.0 if terminated else 0.0
    out[O_TRUNCATED] = 1.0 if truncated else 0.0


@njit(cache=True)
def _equity(accounts, p, f, mid):
    return account_equity(p, accounts[AGENT_JANUS, 0], accounts[AGENT_JANUS, 1], f[F_FEES], mid)


@njit(cache=True)
def env_reset(levels, orders, state, accounts, fills, log, rng, p, f, ib, obs, out):
    """Empty the book, seed a ladder, run ``warmup`` flow steps and write the first observation."""
    book_reset(levels, orders, state, accounts)
    f[:] = 0.0
    f[F_ACTIVITY] = 1.0
    ib[I_MM_QUOTES:I_MM_QUOTES + 2 * N_MM_QUOTES] = -1
    seed_ladder(levels, orders, state, accounts, fills, log, rng, p, f, SEED_LADDER_LEVELS)
    warmup = int(p[P_WARMUP])
    for k in range(warmup):
        state[S_N_FILLS] = 0
        flow_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, history_view(p, f), float(k - warmup))
        record_market(levels, state, fills, p, f, 0)
    state[S_N_FILLS] = 0
    accounts[AGENT_JANUS, 0] = 0
    accounts[AGENT_JANUS, 1] = 0
    f[F_STEP] = 0.0
    f[F_FEES] = 0.0
    f[F_COST] = 0.0
    f[F_DONE] = 0.0
    mid = current_mid(levels, state, f)
    equity = _equity(accounts, p, f, mid)
    f[F_PEAK_EQUITY] = equity
    f[F_PREV_EQUITY] = equity
    _write_state(levels, state, accounts, p, f, ib, obs, out, mid)
    _write_step(out, 0.0, 0, 0.0, 0.0, 0.0, 0, 0, 0, False, False)


@njit(cache=True)
def env_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, obs, out, order_qty):
    """Execute the agent's signed market order (shares), then one step of flow; fill ``obs``/``out``.

    The order is first cut to the position and leverage limits (``accounting.cut_order``, marked at
    the mid the agent observed); whatever is cut or not filled is ``O_REJECTED`` (shares, >= 0) with
    its reasons in ``O_REJECT_REASON``.
    """
    t = f[F_STEP]
    state[S_N_FILLS] = 0
    origin = price_origin(p)
    tick = p[P_TICK_SIZE]
    mid_before = current_mid(levels, state, f)
    pos = accounts[AGENT_JANUS, 1]
    q, reasons = cut_order(pos, order_qty, int(p[P_MAX_POSITION]), (mid_before + origin) * tick,
                           _equity(accounts, p, f, mid_before), p[P_MAX_LEVERAGE])
    if q != 0:
        oid = submit(levels, orders, state, accounts, fills, log, AGENT_JANUS, BUY if q > 0 else -BUY, 0, abs(q),
                     True)
        if oid < 0:
            reasons |= REJECT_POOL_FULL
    n_agent = state[S_N_FILLS]
    filled = 0
    notional = 0.0
    for i in range(n_agent):
        filled += fills[i, F_QTY]
        notional += fills[i, F_QTY] * (fills[i, F_PRICE] + origin)
    if filled < abs(q) and (reasons & REJECT_POOL_FULL) == 0:
        reasons |= REJECT_BOOK_EXHAUSTED
    rejected = abs(order_qty) - filled
    exec_px = 0.0
    slip = 0.0
    fee = 0.0
    signed = filled if q > 0 else -filled
    if filled > 0:
        avg = notional / filled
        exec_px = avg * tick
        mid_abs = mid_before + origin
        slip = (avg - mid_abs) / mid_abs * 1e4 if q > 0 else (mid_abs - avg) / mid_abs * 1e4
        fee = p[P_FEE_BPS] * 1e-4 * notional * tick
        f[F_FEES] += fee
        f[F_COST] = update_cost(f[F_COST], pos, signed, avg)
    flow_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, history_view(p, f), t)
    record_market(levels, state, fills, p, f, 0)
    t += 1.0
    f[F_STEP] = t
    mid = current_mid(levels, state, f)
    equity = _equity(accounts, p, f, mid)
    cash0 = p[P_INITIAL_CASH]
    reward = (equity - f[F_PREV_EQUITY]) / cash0 * 1e4
    if p[P_REWARD_MODE] == REWARD_RISK_ADJUSTED:
        exposure = abs(accounts[AGENT_JANUS, 1] * (mid + origin) * tick) / cash0
        reward -= p[P_RISK_AVERSION] * exposure * f[F_VOL] * 1e4
    f[F_PREV_EQUITY] = equity
    if equity > f[F_PEAK_EQUITY]:
        f[F_PEAK_EQUITY] = equity
    terminated = equity <= 0.0
    truncated = (not terminated) and t >= p[P_EPISODE_STEPS]
    _write_state(levels, state, accounts, p, f, ib, obs, out, mid)
    _write_step(out, reward, signed, exec_px, slip, fee, rejected, reasons, n_agent, terminated, truncated)
    f[F_DONE] = 1.0 if (terminated or truncated) else 0.0


def _vec_reset(levels, orders, state, accounts, fills, log, rng, p, f, ib, obs, out):
    """Reset every book."""
    for n in prange(levels.shape[0]):
        env_reset(levels[n], orders[n], state[n], accounts[n], fills[n], log[n], rng[n], p, f[n], ib[n],
                  obs[n], out[n])


def _vec_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, obs, out, order_qty):
    """Step every book; a book whose episode ended on the previous call is reset instead (NEXT_STEP autoreset)."""
    for n in prange(levels.shape[0]):
        if f[n, F_DONE] != 0.0:
            env_reset(levels[n], orders[n], state[n], accounts[n], fills[n], log[n], rng[n], p, f[n], ib[n],
                      obs[n], out[n])
            out[n, O_TERMINATED] = 0.0
            out[n, O_TRUNCATED] = 0.0
            out[n, O_REWARD] = 0.0
        else:
            env_step(levels[n], orders[n], state[n], accounts[n], fills[n], log[n], rng[n], p, f[n], ib[n],
                     obs[n], out[n], order_qty[n])


def _renamed(fn, name: str):
    """A copy of ``fn`` under another name: numba's on-disk cache keys on the name, not on ``parallel=``."""
    clone = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    clone.__qualname__ = name
    clone.__doc__ = fn.__doc__
    return clone


# Serial versions for small batches, threaded ones (one book per iteration, no shared writes) for large;
# each compiles on first use only, into its own cache entry.
vec_reset = njit(cache=True)(_vec_reset)
vec_step = njit(cache=True)(_vec_step)
vec_reset_parallel = njit(cache=True, parallel=True)(_renamed(_vec_reset, "_vec_reset_parallel"))
vec_step_parallel = njit(cache=True, parallel=True)(_renamed(_vec_step, "_vec_step_parallel"))


class SimulatedMarket:
    """One simulated book behind a single-agent env: ``reset``/``step`` write ``obs`` and ``out`` in place."""

    def __init__(self, config: MarketConfig, log_capacity: int = 0) -> None:
        self.config = config
        self.arrays = MarketArrays(config, 1, log_capacity=log_capacity)
        self._args = self.arrays.book(0)
        self.obs = self.arrays.obs[0]
        self.out = self.arrays.out[0]

    def reset(self, np_random: np.random.Generator) -> None:
        self.arrays.rng[0] = seed_state(np_random)
        env_reset(*self._args)

    def set_reward_mode(self, mode: int) -> None:
        self.arrays.params[P_REWARD_MODE] = mode

    def step(self, order_qty: int) -> None:
        env_step(*self._args, order_qty)

    def endow(self, shares: int) -> None:
        """Give the agent a position of ``shares`` bought at the current mid, equity unchanged (after ``reset``).

        Cash goes down by the position's value at the mid, rounded to whole tick·shares; the cost
        basis is that value; peak and previous equity are the new equity; ``obs`` and the account
        and market columns of ``out`` are rewritten (the step columns stay those of the reset).
        """
        a = self.arrays
        levels, state, accounts, f = a.levels[0], a.state[0], a.accounts[0], a.f[0]
        mid = current_mid(levels, state, f)
        accounts[AGENT_JANUS, 1] = shares
        accounts[AGENT_JANUS, 0] = -int(round(shares * mid))
        f[F_COST] = shares * (mid + price_origin(a.params))
        equity = self.config.initial_cash + self.config.tick_size * (accounts[AGENT_JANUS, 0] + shares * mid)
        f[F_PEAK_EQUITY] = equity
        f[F_PREV_EQUITY] = equity
        _write_state(levels, state, accounts, a.params, f, a.ib[0], self.obs, self.out, mid)

    @property
    def position_units(self) -> int:
        """The agent's position in grid units (shares on the simulated book)."""
        return int(self.arrays.accounts[0, AGENT_JANUS, 1])

    def l2(self, n_levels: int) -> np.ndarray:
        """Top of book as float rows (bid_px, bid_qty, ask_px, ask_qty) in currency and shares."""
        raw = np.empty((int(n_levels), 4), dtype=np.int64)
        snapshot(self.arrays.levels[0], self.arrays.state[0], raw)
        return ticks_to_currency(raw, self.arrays.params)


def ticks_to_currency(raw: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Convert snapshot rows on the tick grid to currency prices (NaN for missing levels)."""
    origin = price_origin(params)
    tick = params[P_TICK_SIZE]
    out = raw.astype(np.float64)
    for col in (0, 2):
        missing = raw[:, col] < 0
        out[:, col] = (raw[:, col] + origin) * tick
        out[missing, col] = np.nan
    return out
