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
   the engine is counted in ``O_REJECTED`` with its ``O_REJECT_REASON`` flags;
3. one step of exogenous background flow (``flow.flow_step``), or only the
   fundamental's move when the background is off;
4. VPIN, volume and volatility histories (``simulator.record_market``) over
   every fill of the step;
5. every fill of the step is attributed to the learning agents on either side
   (maker/taker fees, cost basis, executed quantity, slippage, gross buys and sells);
6. per-agent equity, reward, bankruptcy, the observation rows and the ``O_*`` rows.

Learning agent ``i`` trades on the book under account id ``agent_base + i``
(after the background accounts of ``config.py``), so the book's ``accounts``
array holds every participant and ``Σ cash = Σ position = 0`` always.

Array layouts (allocated by ``JanusParallelEnv`` in ``parallel_env.py``):

* ``act`` int64 ``(n, 4)``: taker → ``[signed shares, 0, 0, 0]``; maker →
  ``[bid offset, ask offset, bid lots, ask lots]``.
* ``status`` int64 ``(n,)``: ``STATUS_*``.
* ``quotes`` int64 ``(n, 2)``: order ids of a maker's resting bid and ask (-1: none).
* ``ag`` float64 ``(n, N_AG)``: persistent per-agent state and step scratch ``A_*``.
* ``out`` float64 ``(n, N_AGENT_OUT)``: one row per agent in the ``O_*`` layout of
  ``simulator.py`` (the layout of the single-agent and vector envs: columns
  ``0 .. N_OUT − 1``, the agent's own account and execution with the market's
  columns), followed by the multi-agent columns ``O_PASSIVE_QTY .. O_SELL_NOTIONAL``.
  ``O_TRUNCATED`` stays 0 (the env decides truncation). A removed agent's row
  holds the market columns only.
* ``shared`` float32: the market part of an observation (``simulator.write_market_obs``).
* ``obs`` float32 ``(n, obs_size + 1)``: per-agent rows in the single-agent
  observation layout; the last column is the informed signal (0 for other roles).
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
    S_N_FILLS,
    book_reset,
    cancel,
    slot_of,
    submit,
)
from janus_env.config import (
    P_FEE_BPS,
    P_INITIAL_CASH,
    P_LOT,
    P_MAX_LEVERAGE,
    P_MAX_POSITION,
    P_TICK_SIZE,
    P_WARMUP,
)
from janus_env.flow import (
    F_ACTIVITY,
    F_BASE_FUND,
    F_FUND,
    F_MID,
    F_REGIME,
    F_STEP,
    I_MM_QUOTES,
    N_MM_QUOTES,
    SEED_LADDER_LEVELS,
    current_mid,
    flow_step,
    fundamental_ticks,
    seed_ladder,
)
from janus_env.regimes import advance_fundamental, event_offset
from janus_env.rng import normal, uniform
from janus_env.simulator import (
    N_OUT,
    O_EXEC_PRICE,
    O_EXEC_QTY,
    O_FEES,
    O_N_FILLS,
    O_REJECT_REASON,
    O_REJECTED,
    O_REWARD,
    O_SLIPPAGE_BPS,
    O_TERMINATED,
    account_equity,
    history_view,
    price_origin,
    record_market,
    update_cost,
    write_account,
    write_market_obs,
    write_market_out,
)

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
N_EP = 5

# ---- persistent per-agent state and step scratch (ag) -------------------------------
A_FEES = 0  # cumulative fees, currency
A_COST = 1  # average-cost basis of the open position, absolute ticks · shares (simulator.update_cost)
A_PEAK = 2  # peak equity of the episode
A_PREV_EQUITY = 3
A_POS_RUN = 4  # running position while fills are attributed
A_NOTIONAL = 5  # scratch: Σ qty · absolute price of the step's fills
A_SIGNED_EDGE = 6  # scratch: Σ side · (price − mid) · qty
A_GROSS_QTY = 7  # scratch: Σ qty
N_AG = 8

# ---- the multi-agent columns of an agent's row, after the O_* layout of simulator.py ----
O_PASSIVE_QTY = N_OUT  # shares filled as maker
O_BID_PRICE = N_OUT + 1  # a maker's resting bid (currency; 0 for none)
O_BID_SIZE = N_OUT + 2
O_ASK_PRICE = N_OUT + 3
O_ASK_SIZE = N_OUT + 4
O_ORDER_RANK = N_OUT + 5  # position in this step's order of agents
O_INVENTORY_PENALTY = N_OUT + 6
O_BUY_QTY = N_OUT + 7  # gross shares bought in the step (as taker and as maker)
O_BUY_NOTIONAL = N_OUT + 8  # their notional, currency
O_SELL_QTY = N_OUT + 9  # gross shares sold
O_SELL_NOTIONAL = N_OUT + 10
N_AGENT_OUT = N_OUT + 11


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
        flow_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, history_view(p, f), t)
    else:
        _fundamental_only(levels, state, rng, p, f, t)


@njit(cache=True)
def cancel_quotes(levels, orders, state, log, quotes, i):
    """Cancel market maker ``i``'s resting bid and ask (those still on the book) and forget their ids.

    The env calls it when an agent is halted or leaves the episode, the step kernel before a
    maker posts new quotes (cancel-replace).
    """
    for j in range(2):
        oid = quotes[i, j]
        if oid >= 0 and slot_of(orders, oid) >= 0:
            cancel(levels, orders, state, log, oid, 0)
        quotes[i, j] = -1


@njit(cache=True)
def _agent_fill(ag, out, i, side, qty, price_grid, origin, mid_grid, fee_bps, tick, passive):
    """Book one fill of ``qty`` shares at ``price_grid`` on ``side`` for learning agent ``i``."""
    px = price_grid + origin
    pos = ag[i, A_POS_RUN]
    dq = qty if side == BUY else -qty
    ag[i, A_COST] = update_cost(ag[i, A_COST], pos, dq, px)
    ag[i, A_POS_RUN] = pos + dq
    fee = fee_bps * 1e-4 * qty * px * tick
    ag[i, A_FEES] += fee
    out[i, O_FEES] += fee
    out[i, O_EXEC_QTY] += dq
    out[i, O_N_FILLS] += 1.0
    ag[i, A_NOTIONAL] += qty * px
    ag[i, A_GROSS_QTY] += qty
    if side == BUY:
        out[i, O_BUY_QTY] += qty
        out[i, O_BUY_NOTIONAL] += qty * px * tick
    else:
        out[i, O_SELL_QTY] += qty
        out[i, O_SELL_NOTIONAL] += qty * px * tick
    ag[i, A_SIGNED_EDGE] += (price_grid - mid_grid) * dq
    if passive:
        out[i, O_PASSIVE_QTY] += qty


@njit(cache=True)
def _write_agent(accounts, p, f, ag, out, roles, shared, obs, arng, ep, i, mid):
    """Agent ``i``'s observation row (the shared market, its own account, the informed signal) and the
    account columns of its ``O_*`` row (``simulator.write_account``)."""
    aid = int(ep[EP_AGENT_BASE]) + i
    n = shared.shape[0]
    for k in range(n):
        obs[i, k] = shared[k]
    write_account(p, f, obs[i], out[i], accounts[aid, 0], accounts[aid, 1], ag[i, A_FEES], ag[i, A_COST],
                  ag[i, A_PEAK], mid)
    if roles[i] == ROLE_INFORMED:
        value = fundamental_ticks(p, f)
        obs[i, n] = (value - mid) / (mid + price_origin(p)) * 1e4 + ep[EP_SIGNAL_NOISE_BPS] * normal(arng)
    else:
        obs[i, n] = 0.0


@njit(cache=True)
def parallel_reset(levels, orders, state, accounts, fills, log, rng, p, f, ib, arng, roles, status, quotes,
                   ag, out, shared, obs, ep):
    """Empty the book, seed a ladder, run ``warmup`` market steps, reset every agent, write its rows."""
    book_reset(levels, orders, state, accounts)
    f[:] = 0.0
    f[F_ACTIVITY] = 1.0
    ib[I_MM_QUOTES:I_MM_QUOTES + 2 * N_MM_QUOTES] = -1
    background = ep[EP_BACKGROUND] != 0.0
    seed_ladder(levels, orders, state, accounts, fills, log, rng, p, f, SEED_LADDER_LEVELS)
    warmup = int(p[P_WARMUP])
    for k in range(warmup):
        state[S_N_FILLS] = 0
        _market_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, float(k - warmup), background)
        record_market(levels, state, fills, p, f, 0)
    state[S_N_FILLS] = 0
    f[F_STEP] = 0.0
    n = roles.shape[0]
    base = int(ep[EP_AGENT_BASE])
    mid = current_mid(levels, state, f)
    write_market_obs(levels, state, p, f, ib, shared)
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
        out[i, :] = 0.0
        _write_agent(accounts, p, f, ag, out, roles, shared, obs, arng, ep, i, mid)
        write_market_out(levels, state, p, f, out[i], mid)


@njit(cache=True)
def parallel_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, arng, roles, status, quotes,
                  ag, out, shared, obs, ep, act, perm):
    """One step of the shared market: every agent's orders in a random order, then background flow.

    See the module docstring for the sequence. Halted (``STATUS_HALTED``) and
    removed agents send nothing; their quotes were cancelled when they stopped.
    """
    n = roles.shape[0]
    base = int(ep[EP_AGENT_BASE])
    n_ticks = levels.shape[0]
    t = f[F_STEP]
    state[S_N_FILLS] = 0
    origin = price_origin(p)
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
        out[i, :] = 0.0
        ag[i, A_POS_RUN] = accounts[base + i, 1]
        ag[i, A_NOTIONAL] = 0.0
        ag[i, A_SIGNED_EDGE] = 0.0
        ag[i, A_GROSS_QTY] = 0.0

    # 2. every live agent's orders, one after the other
    for k in range(n):
        i = perm[k]
        out[i, O_ORDER_RANK] = k
        if status[i] != STATUS_LIVE:
            continue
        aid = base + i
        pos = accounts[aid, 1]
        equity = account_equity(p, accounts[aid, 0], pos, ag[i, A_FEES], mid0)
        if roles[i] == ROLE_MARKET_MAKER:
            cancel_quotes(levels, orders, state, log, quotes, i)
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
                    out[i, O_BID_PRICE] = (bid + origin) * tick
                    out[i, O_BID_SIZE] = bid_qty
                else:
                    rejected += bid_qty
                    reasons |= REJECT_POOL_FULL if oid == ERR_POOL_FULL else REJECT_PRICE_RANGE
            if ask_qty > 0:
                oid = submit(levels, orders, state, accounts, fills, log, aid, -BUY, ask, ask_qty, False) \
                    if 0 <= ask < n_ticks else ERR_PRICE
                if oid >= 0:
                    quotes[i, 1] = oid
                    out[i, O_ASK_PRICE] = (ask + origin) * tick
                    out[i, O_ASK_SIZE] = ask_qty
                else:
                    rejected += ask_qty
                    reasons |= REJECT_POOL_FULL if oid == ERR_POOL_FULL else REJECT_PRICE_RANGE
            out[i, O_REJECTED] = rejected
            out[i, O_REJECT_REASON] = reasons
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
            out[i, O_REJECTED] = abs(want) - filled
            out[i, O_REJECT_REASON] = reasons

    # 3.-4. background flow and the market's histories
    _market_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, t, ep[EP_BACKGROUND] != 0.0)
    record_market(levels, state, fills, p, f, 0)
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
            _agent_fill(ag, out, m, -taker_side, qty, price, origin, mid0, maker_fee, tick, True)
        tk = fills[r, F_TAKER_AGENT] - base
        if 0 <= tk < n:
            _agent_fill(ag, out, tk, taker_side, qty, price, origin, mid0, taker_fee, tick, False)

    # 6. equity, reward, bankruptcy (the env removes the agent and its quotes after the step), observations
    write_market_obs(levels, state, p, f, ib, shared)
    cash0 = p[P_INITIAL_CASH]
    penalty = ep[EP_INVENTORY_PENALTY]
    mid_abs = mid0 + origin
    for i in range(n):
        write_market_out(levels, state, p, f, out[i], mid)
        if status[i] == STATUS_REMOVED:
            continue
        aid = base + i
        gross = ag[i, A_GROSS_QTY]
        if gross > 0:
            out[i, O_EXEC_PRICE] = ag[i, A_NOTIONAL] / gross * tick
            out[i, O_SLIPPAGE_BPS] = ag[i, A_SIGNED_EDGE] / gross / mid_abs * 1e4
        equity = account_equity(p, accounts[aid, 0], accounts[aid, 1], ag[i, A_FEES], mid)
        reward = (equity - ag[i, A_PREV_EQUITY]) / cash0 * 1e4
        if roles[i] == ROLE_MARKET_MAKER and penalty > 0.0:
            x = accounts[aid, 1] / p[P_MAX_POSITION]
            pen = penalty * x * x
            out[i, O_INVENTORY_PENALTY] = pen
            reward -= pen
        out[i, O_REWARD] = reward
        ag[i, A_PREV_EQUITY] = equity
        if equity > ag[i, A_PEAK]:
            ag[i, A_PEAK] = equity
        if equity <= 0.0:
            out[i, O_TERMINATED] = 1.0
        _write_agent(accounts, p, f, ag, out, roles, shared, obs, arng, ep, i, mid)
