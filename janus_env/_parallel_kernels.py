"""Numba kernels behind ``JanusParallelEnv``: one call resets, one call steps the shared book.

A step of the multi-agent market is a single ``parallel_step`` call:

1. draw this step's order of agents — a Fisher–Yates shuffle (Durstenfeld, 1964)
   from the env's own xoshiro256** stream ``arng`` (seeded from ``np_random`` at
   reset, separate from the background flow's stream ``rng``);
2. in that order, each live agent acts on the book it observed: a maker cancels
   its two previous quotes and posts its new bid/ask (prices fixed relative to
   the *observed* mid); a taker sends a market order (immediate-or-cancel);
   orders and quotes are first cut to the position and leverage limits
   (``accounting.cut_order``), and whatever is cut, left unfilled or refused by
   the engine is counted in ``Q_REJECTED`` with its ``Q_REJECT_REASON`` flags;
3. one step of exogenous background flow (``flow.flow_step``), or only the
   fundamental's move when the background is off;
4. VPIN, volume and volatility histories (``simulator._record_market``) over
   every fill of the step;
5. every fill of the step is attributed to the learning agents on either side
   (maker/taker fees, cost basis, executed quantity, slippage, gross buys and sells);
6. per-agent equity, reward, bankruptcy, and the observation rows.

Learning agent ``i`` trades on the book under account id ``agent_base + i``
(after the background accounts of ``config.py``), so the book's ``accounts``
array holds every participant and ``Σ cash = Σ position = 0`` always.

Array layouts (allocated by ``JanusParallelEnv`` in ``parallel_env.py``):

* ``act`` int64 ``(n, 4)``: taker → ``[signed shares, 0, 0, 0]``; maker →
  ``[bid offset, ask offset, bid lots, ask lots]``.
* ``status`` int64 ``(n,)``: ``STATUS_*``.
* ``quotes`` int64 ``(n, 2)``: order ids of a maker's resting bid and ask (-1: none).
* ``ag`` float64 ``(n, N_AG)``: persistent per-agent state ``A_*``.
* ``aout`` float64 ``(n, N_AOUT)``: per-agent step results ``Q_*``.
* ``mout`` float64 ``(N_MOUT,)``: market-wide step results ``M_*``.
* ``shared`` float32: the market part of an observation (``simulator.write_obs`` layout).
* ``obs`` float32 ``(n, obs_size + 1)``: per-agent rows; the last column is the
  informed signal (0 for other roles).
* ``ep`` float64 ``(N_EP,)``: env-level parameters ``EP_*``.
"""

from __future__ import annotations

import math

from numba import njit

from janus_env.accounting import (
    REJECT_BOOK_EXHAUSTED,
    REJECT_POOL_FULL,
    REJECT_PRICE_RANGE,
    cut_order,
)
from janus_env.book import (
    BUY,
    ERR_POOL_FULL,
    ERR_PRICE,
    F_MAKER_AGENT,
    F_PRICE,
    F_QTY,
    F_TAKER_AGENT,
    F_TAKER_SIDE,
    S_BEST_ASK,
    S_BEST_BID,
    S_FILL_OVERFLOW,
    S_N_FILLS,
    _slot_of,
    book_reset,
    cancel,
    submit,
)
from janus_env.config import (
    P_EPISODE_STEPS,
    P_FEE_BPS,
    P_HIST_LEN,
    P_INITIAL_CASH,
    P_LOT,
    P_MAX_LEVERAGE,
    P_MAX_POSITION,
    P_TICK_SIZE,
    P_VPIN_N_BUCKETS,
    P_WARMUP,
)
from janus_env.flow import (
    F_ACTIVITY,
    F_BASE_FUND,
    F_FUND,
    F_MID,
    F_REGIME,
    F_STEP,
    F_STEP_VOLUME,
    F_VOL,
    F_VPIN,
    I_MM_QUOTES,
    N_F_SCALARS,
    N_MM_QUOTES,
    current_mid,
    flow_step,
    fundamental_ticks,
    seed_ladder,
)
from janus_env.regimes import advance_fundamental, event_offset
from janus_env.rng import normal, uniform
from janus_env.simulator import N_ACCOUNT, _origin, _record_market, write_obs

# ---- roles and status -------------------------------------------------------------
ROLE_MARKET_MAKER = 0
ROLE_INFORMED = 1
ROLE_MOMENTUM = 2
ROLE_NOISE = 3
ROLE_JANUS = 4

STATUS_LIVE = 0
STATUS_HALTED = 1
STATUS_REMOVED = 2

# ---- env-level parameters (ep) ----------------------------------------------------
EP_AGENT_BASE = 0
EP_MAKER_FEE_BPS = 1
EP_INVENTORY_PENALTY = 2
EP_SIGNAL_NOISE_BPS = 3
EP_BACKGROUND = 4
EP_SEED_LADDER = 5
N_EP = 8

# ---- persistent per-agent state (ag) -----------------------------------------------
A_FEES = 0  # cumulative fees, currency
A_COST = 1  # average-cost basis of the open position, absolute ticks · shares
A_PEAK = 2  # peak equity of the episode
A_PREV_EQUITY = 3
A_POS_RUN = 4  # running position while fills are attributed
N_AG = 8

# ---- per-agent step results (aout) -------------------------------------------------
Q_REWARD = 0
Q_TERMINATED = 1
Q_EXEC_QTY = 2
Q_EXEC_PRICE = 3
Q_SLIPPAGE_BPS = 4
Q_FEES = 5
Q_REJECTED = 6
Q_N_FILLS = 7
Q_PASSIVE_QTY = 8
Q_POSITION = 9
Q_CASH = 10
Q_EQUITY = 11
Q_PNL = 12
Q_DRAWDOWN = 13
Q_INVENTORY_PENALTY = 14
Q_BID_PRICE = 15
Q_BID_SIZE = 16
Q_ASK_PRICE = 17
Q_ASK_SIZE = 18
Q_ORDER_RANK = 19
Q_NOTIONAL = 20  # scratch: Σ qty · absolute price of the step's fills
Q_SIGNED_EDGE = 21  # scratch: Σ side · (price − mid) · qty
Q_GROSS_QTY = 22  # scratch: Σ qty
Q_REJECT_REASON = 23  # accounting.REJECT_* flags of the step's cut or unfilled quantity
Q_BUY_QTY = 24  # gross shares bought in the step (as taker and as maker)
Q_BUY_NOTIONAL = 25  # their notional, currency
Q_SELL_QTY = 26  # gross shares sold
Q_SELL_NOTIONAL = 27
N_AOUT = 28

# ---- market-wide step results (mout) -----------------------------------------------
M_MID = 0
M_SPREAD = 1
M_VPIN = 2
M_VOLATILITY = 3
M_VOLUME = 4
M_STEP = 5
M_FILL_OVERFLOW = 6
N_MOUT = 8


@njit(cache=True)
def _hist_view(p, f):
    """The log-mid history ring that ``flow_step`` reads for the momentum trader."""
    mr = N_F_SCALARS + int(p[P_VPIN_N_BUCKETS])
    return f[mr:mr + int(p[P_HIST_LEN])]


@njit(cache=True)
def _fundamental_only(levels, state, rng, p, f, t):
    """The first lines of ``flow_step``: the latent fundamental moves, no orders are sent."""
    base_f, regime = advance_fundamental(p, rng, f[F_BASE_FUND], int(f[F_REGIME]))
    f[F_BASE_FUND] = base_f
    f[F_REGIME] = regime
    f[F_FUND] = base_f + event_offset(p, t)
    f[F_MID] = current_mid(levels, state, f)


@njit(cache=True)
def _market_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, t, background):
    if background:
        flow_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, _hist_view(p, f), t)
    else:
        _fundamental_only(levels, state, rng, p, f, t)


@njit(cache=True)
def _cancel_quotes(levels, orders, state, log, quotes, i):
    for j in range(2):
        oid = quotes[i, j]
        if oid >= 0 and _slot_of(orders, oid) >= 0:
            cancel(levels, orders, state, log, oid, 0)
        quotes[i, j] = -1


@njit(cache=True)
def _update_cost(ag, i, pos_before, dq, px):
    """Average-cost basis of agent ``i``'s open position (as ``simulator._update_cost``)."""
    if dq == 0:
        return
    if pos_before == 0 or (dq > 0) == (pos_before > 0):
        ag[i, A_COST] += dq * px
        return
    closing = min(abs(dq), abs(pos_before))
    ag[i, A_COST] *= (abs(pos_before) - closing) / abs(pos_before)
    rest = abs(dq) - closing
    if rest > 0:
        ag[i, A_COST] = (rest if dq > 0 else -rest) * px


@njit(cache=True)
def _agent_fill(ag, aout, i, side, qty, price_grid, origin, mid_grid, fee_bps, tick, passive):
    """Book one fill of ``qty`` shares at ``price_grid`` on ``side`` for learning agent ``i``."""
    px = price_grid + origin
    pos = ag[i, A_POS_RUN]
    dq = qty if side == BUY else -qty
    _update_cost(ag, i, pos, dq, px)
    ag[i, A_POS_RUN] = pos + dq
    fee = fee_bps * 1e-4 * qty * px * tick
    ag[i, A_FEES] += fee
    aout[i, Q_FEES] += fee
    aout[i, Q_EXEC_QTY] += dq
    aout[i, Q_N_FILLS] += 1.0
    aout[i, Q_NOTIONAL] += qty * px
    aout[i, Q_GROSS_QTY] += qty
    if side == BUY:
        aout[i, Q_BUY_QTY] += qty
        aout[i, Q_BUY_NOTIONAL] += qty * px * tick
    else:
        aout[i, Q_SELL_QTY] += qty
        aout[i, Q_SELL_NOTIONAL] += qty * px * tick
    aout[i, Q_SIGNED_EDGE] += (price_grid - mid_grid) * dq
    if passive:
        aout[i, Q_PASSIVE_QTY] += qty


@njit(cache=True)
def _equity(accounts, ag, p, aid, i, mid):
    """Mark-to-market equity in currency: ``cash0 + tick·(cash + position·mid) − fees``."""
    return p[P_INITIAL_CASH] + p[P_TICK_SIZE] * (accounts[aid, 0] + accounts[aid, 1] * mid) - ag[i, A_FEES]


@njit(cache=True)
def _write_agent(accounts, p, f, ag, aout, roles, shared, obs, arng, ep, i, mid):
    """Per-agent account scalars in ``aout`` and the agent's observation row."""
    aid = int(ep[EP_AGENT_BASE]) + i
    origin = _origin(p)
    tick = p[P_TICK_SIZE]
    cash0 = p[P_INITIAL_CASH]
    mid_abs = mid + origin
    pos = accounts[aid, 1]
    equity = _equity(accounts, ag, p, aid, i, mid)
    peak = ag[i, A_PEAK]
    cash = cash0 + tick * (accounts[aid, 0] - origin * pos) - ag[i, A_FEES]
    drawdown = (peak - equity) / peak if peak > 0 else 0.0
    if drawdown < 0.0:
        drawdown = 0.0
    aout[i, Q_POSITION] = pos
    aout[i, Q_CASH] = cash
    aout[i, Q_EQUITY] = equity
    aout[i, Q_PNL] = equity - cash0
    aout[i, Q_DRAWDOWN] = drawdown
    n = shared.shape[0]
    for k in range(n):
        obs[i, k] = shared[k]
    a0 = n - N_ACCOUNT - 4  # account block sits before the 4 market scalars
    obs[i, a0] = pos / p[P_MAX_POSITION]
    obs[i, a0 + 1] = cash / cash0
    obs[i, a0 + 2] = tick * (pos * mid_abs - ag[i, A_COST]) / cash0 * 100.0
    obs[i, a0 + 3] = drawdown
    obs[i, a0 + 4] = 1.0 - f[F_STEP] / p[P_EPISODE_STEPS]
    if roles[i] == ROLE_INFORMED:
        value = fundamental_ticks(p, f)
        obs[i, n] = (value - mid) / mid_abs * 1e4 + ep[EP_SIGNAL_NOISE_BPS] * normal(arng)
    else:
        obs[i, n] = 0.0


@njit(cache=True)
def _write_market(levels, state, p, f, mout, mid):
    tick = p[P_TICK_SIZE]
    bb = state[S_BEST_BID]
    ba = state[S_BEST_ASK]
    mout[M_MID] = (mid + _origin(p)) * tick
    mout[M_SPREAD] = (ba - bb) * tick if (bb >= 0 and ba < levels.shape[0]) else 0.0
    mout[M_VPIN] = f[F_VPIN]
    mout[M_VOLATILITY] = f[F_VOL]
    mout[M_VOLUME] = f[F_STEP_VOLUME]
    mout[M_STEP] = f[F_STEP]


@njit(cache=True)
def parallel_reset(levels, orders, state, accounts, fills, log, rng, p, f, ib, arng, roles, status, quotes,
                   ag, aout, mout, shared, obs, ep):
    """Empty the book, seed a ladder, run ``warmup`` market steps, reset every agent, write observations."""
    book_reset(levels, orders, state, accounts)
    f[:] = 0.0
    f[F_ACTIVITY] = 1.0
    ib[I_MM_QUOTES:I_MM_QUOTES + 2 * N_MM_QUOTES] = -1
    background = ep[EP_BACKGROUND] != 0.0
    seed_ladder(levels, orders, state, accounts, fills, log, rng, p, f, int(ep[EP_SEED_LADDER]))
    warmup = int(p[P_WARMUP])
    for k in range(warmup):
        state[S_N_FILLS] = 0
        _market_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, float(k - warmup), background)
        _record_market(levels, state, fills, p, f, 0)
    state[S_N_FILLS] = 0
    f[F_STEP] = 0.0
    n = roles.shape[0]
    base = int(ep[EP_AGENT_BASE])
    mid = current_mid(levels, state, f)
    write_obs(levels, state, accounts, p, f, ib, shared)
    cash0 = p[P_INITIAL_CASH]
    for i in range(n):
        accounts[base + i, 0] = 0
        accounts[base + i, 1] = 0
        status[i] = STATUS_LIVE
        quotes[i, 0] = -1
        quotes[i, 1] = -1
        ag[i, :] = 0.0
        ag[i, A_PEAK] = cash0
        ag[i, A_PREV_EQUITY] = cash0
        aout[i, :] = 0.0
        _write_agent(accounts, p, f, ag, aout, roles, shared, obs, arng, ep, i, mid)
    _write_market(levels, state, p, f, mout, mid)


@njit(cache=True)
def parallel_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, arng, roles, status, quotes,
                  ag, aout, mout, shared, obs, ep, act, perm):
    """One step of the shared market: every agent's orders in a random order, then background flow.

    See the module docstring for the sequence. Halted (``STATUS_HALTED``) and
    removed agents send nothing; their quotes were cancelled when they stopped.
    """
    n = roles.shape[0]
    base = int(ep[EP_AGENT_BASE])
    n_ticks = levels.shape[0]
    t = f[F_STEP]
    state[S_N_FILLS] = 0
    origin = _origin(p)
    tick = p[P_TICK_SIZE]
    lot = int(p[P_LOT])
    max_pos = int(p[P_MAX_POSITION])
    max_lev = p[P_MAX_LEVERAGE]
    mid0 = current_mid(levels, state, f)
    mark = (mid0 + origin) * tick  # the observed mid in currency: orders are checked against it

    # 1. this step's order: Fisher–Yates shuffle from the agents' own stream
    for i in range(n):
        perm[i] = i
    for i in range(n - 1, 0, -1):
        j = int(uniform(arng) * (i + 1))
        tmp = perm[i]
        perm[i] = perm[j]
        perm[j] = tmp

    for i in range(n):
        aout[i, :] = 0.0
        ag[i, A_POS_RUN] = accounts[base + i, 1]

    # 2. every live agent's orders, one after the other
    for k in range(n):
        i = perm[k]
        aout[i, Q_ORDER_RANK] = k
        if status[i] != STATUS_LIVE:
            continue
        aid = base + i
        pos = accounts[aid, 1]
        equity = _equity(accounts, ag, p, aid, i, mid0)
        if roles[i] == ROLE_MARKET_MAKER:
            _cancel_quotes(levels, orders, state, log, quotes, i)
            # each quote is checked as if it alone were filled in full
            want_bid = act[i, 2] * lot
            want_ask = act[i, 3] * lot
            bid_qty, why_bid = cut_order(pos, want_bid, max_pos, mark, equity, max_lev)
            ask_qty, why_ask = cut_order(pos, -want_ask, max_pos, mark, equity, max_lev)
            ask_qty = -ask_qty
            rejected = (want_bid - bid_qty) + (want_ask - ask_qty)
            reasons = why_bid | why_ask
            bid = int(math.ceil(mid0)) - 1 - act[i, 0]
            ask = int(math.floor(mid0)) + 1 + act[i, 1]
            if bid_qty > 0:
                oid = submit(levels, orders, state, accounts, fills, log, aid, BUY, bid, bid_qty, False) \
                    if 0 <= bid < n_ticks else ERR_PRICE
                if oid >= 0:
                    quotes[i, 0] = oid
                    aout[i, Q_BID_PRICE] = (bid + origin) * tick
                    aout[i, Q_BID_SIZE] = bid_qty
                else:
                    rejected += bid_qty
                    reasons |= REJECT_POOL_FULL if oid == ERR_POOL_FULL else REJECT_PRICE_RANGE
            if ask_qty > 0:
                oid = submit(levels, orders, state, accounts, fills, log, aid, -BUY, ask, ask_qty, False) \
                    if 0 <= ask < n_ticks else ERR_PRICE
                if oid >= 0:
                    quotes[i, 1] = oid
                    aout[i, Q_ASK_PRICE] = (ask + origin) * tick
                    aout[i, Q_ASK_SIZE] = ask_qty
                else:
                    rejected += ask_qty
                    reasons |= REJECT_POOL_FULL if oid == ERR_POOL_FULL else REJECT_PRICE_RANGE
            aout[i, Q_REJECTED] = rejected
            aout[i, Q_REJECT_REASON] = reasons
        else:
            want = act[i, 0]
            q, reasons = cut_order(pos, want, max_pos, mark, equity, max_lev)
            filled = 0
            if q != 0:
                first = state[S_N_FILLS]
                oid = submit(levels, orders, state, accounts, fills, log, aid, BUY if q > 0 else -BUY, 0, abs(q),
                             True)
                if oid < 0:
                    reasons |= REJECT_POOL_FULL
                else:
                    for r in range(first, state[S_N_FILLS]):
                        filled += fills[r, F_QTY]
                    if filled < abs(q):
                        reasons |= REJECT_BOOK_EXHAUSTED
            aout[i, Q_REJECTED] = abs(want) - filled
            aout[i, Q_REJECT_REASON] = reasons

    # 3.-4. background flow and the market's histories
    _market_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, t, ep[EP_BACKGROUND] != 0.0)
    _record_market(levels, state, fills, p, f, 0)
    t += 1.0
    f[F_STEP] = t
    mid = current_mid(levels, state, f)

    # 5. attribute every fill of the step to the learning agents on either side
    taker_fee = p[P_FEE_BPS]
    maker_fee = ep[EP_MAKER_FEE_BPS]
    for r in range(state[S_N_FILLS]):
        qty = fills[r, F_QTY]
        price = fills[r, F_PRICE]
        taker_side = fills[r, F_TAKER_SIDE]
        m = fills[r, F_MAKER_AGENT] - base
        if 0 <= m < n:
            _agent_fill(ag, aout, m, -taker_side, qty, price, origin, mid0, maker_fee, tick, True)
        tk = fills[r, F_TAKER_AGENT] - base
        if 0 <= tk < n:
            _agent_fill(ag, aout, tk, taker_side, qty, price, origin, mid0, taker_fee, tick, False)

    # 6. equity, reward, bankruptcy (the env removes the agent and its quotes after the step), observations
    write_obs(levels, state, accounts, p, f, ib, shared)
    cash0 = p[P_INITIAL_CASH]
    penalty = ep[EP_INVENTORY_PENALTY]
    mid_abs = mid0 + origin
    for i in range(n):
        if status[i] == STATUS_REMOVED:
            continue
        aid = base + i
        gross = aout[i, Q_GROSS_QTY]
        if gross > 0:
            aout[i, Q_EXEC_PRICE] = aout[i, Q_NOTIONAL] / gross * tick
            aout[i, Q_SLIPPAGE_BPS] = aout[i, Q_SIGNED_EDGE] / gross / mid_abs * 1e4
        equity = _equity(accounts, ag, p, aid, i, mid)
        reward = (equity - ag[i, A_PREV_EQUITY]) / cash0 * 1e4
        if roles[i] == ROLE_MARKET_MAKER and penalty > 0.0:
            x = accounts[aid, 1] / p[P_MAX_POSITION]
            pen = penalty * x * x
            aout[i, Q_INVENTORY_PENALTY] = pen
            reward -= pen
        aout[i, Q_REWARD] = reward
        ag[i, A_PREV_EQUITY] = equity
        if equity > ag[i, A_PEAK]:
            ag[i, A_PEAK] = equity
        if equity <= 0.0:
            aout[i, Q_TERMINATED] = 1.0
        _write_agent(accounts, p, f, ag, aout, roles, shared, obs, arng, ep, i, mid)
    _write_market(levels, state, p, f, mout, mid)
    mout[M_FILL_OVERFLOW] = state[S_FILL_OVERFLOW]  # fills beyond the table were not attributed

