"""Order-flow agents: noise traders, market makers, informed and momentum traders.

Each kernel sends orders through the matching engine in ``book.py``; all
randomness comes from the book's own xoshiro state. One call of
``flow_step`` is one step of exogenous market activity:

1. the latent fundamental moves (``regimes.advance_fundamental`` plus the
   stress event offset);
2. market makers requote every ``mm_refresh`` steps around the mid, skewed
   against inventory (Avellaneda & Stoikov, 2008, in spirit), and withdraw
   during a flash-crash shock;
3. noise traders (Cont, Stoikov & Talreja, 2010): Poisson limit arrivals at a
   geometric distance from the touch, Poisson market orders, and each resting
   noise order cancelled with probability ``cancel_rate``;
4. an informed trader buys (sells) when the fundamental is above the ask
   (below the bid) by more than a threshold (Kyle, 1985, in spirit);
5. a momentum trader follows the mid's move over a lookback;
6. stress cascades (sell orders in a crash, buy-to-cover in a squeeze).

Arrival intensities scale with a self-exciting activity level
``a ← 1 + decay·(a − 1) + gain·|Δmid|`` *(ours, Hawkes-like)*, which is what
produces volatility clustering and fat tails in the simulated returns.
"""

from __future__ import annotations

import math

from numba import njit

from janus_env.book import (
    BUY,
    O_AGENT,
    O_QTY,
    S_BEST_ASK,
    S_BEST_BID,
    S_HIGH_WATER,
    S_LAST_TRADE,
    S_N_FREE,
    cancel,
    slot_of,
    submit,
)
from janus_env.config import (
    AGENT_INFORMED,
    AGENT_MM0,
    AGENT_MOMENTUM,
    AGENT_NOISE0,
    EVENT_FLASH_CRASH,
    EVENT_SQUEEZE,
    N_AGENTS,
    N_MARKET_MAKERS,
    N_NOISE,
    P_ACTIVITY_MAX,
    P_CANCEL_RATE,
    P_DEPTH_DECAY,
    P_EVENT_INTENSITY,
    P_EVENT_KIND,
    P_HAWKES_DECAY,
    P_HAWKES_GAIN,
    P_INFORMED_RATE,
    P_INFORMED_SIZE,
    P_INFORMED_THRESHOLD,
    P_INITIAL_PRICE_TICKS,
    P_LAMBDA_LIMIT,
    P_LAMBDA_MARKET,
    P_MM_HALF_SPREAD,
    P_MM_REFRESH,
    P_MM_SIZE,
    P_MM_SKEW,
    P_MOMENTUM_LOOKBACK,
    P_MOMENTUM_RATE,
    P_MOMENTUM_SIZE,
    P_MOMENTUM_THRESHOLD,
    P_N_TICKS,
    P_ORDER_SIZE,
)
from janus_env.regimes import advance_fundamental, event_offset, event_phase
from janus_env.rng import geometric, poisson, uniform

# ---- float scalar state shared by flow and simulator (f array) --------------------
F_FUND = 0
F_REGIME = 1
F_ACTIVITY = 2
F_MID = 3
F_STEP = 4
F_PEAK_EQUITY = 5
F_PREV_EQUITY = 6
F_FEES = 7
F_COST = 8
F_RING_HEAD = 9
F_RING_N = 10
F_LAST_MID_REFRESH = 11
F_STEP_VOLUME = 12
F_DONE = 13
F_VPIN = 14
F_VOL = 15
F_VPIN0 = 16  # 5 VPIN scalars: 16..20
F_BASE_FUND = 21
F_SQ_SUM = 22
F_STEP_COUNT = 23
N_F_SCALARS = 32

# ---- int scratch (ib array) ------------------------------------------------------
I_MM_QUOTES = 0  # N_MARKET_MAKERS * 4 quote ids
I_SNAPSHOT = 8  # n_levels * 4 snapshot scratch

N_MM_QUOTES = 4

SEED_LADDER_LEVELS = 20
"""Orders per side that :func:`seed_ladder` puts on the empty book at every reset (one tick apart),
before the warm-up flow; the single-agent, vector and multi-agent markets start from the same ladder."""


@njit(cache=True)
def current_mid(levels, state, f):
    """Mid in grid ticks; while a side is empty, the last trade price (else the last mid)."""
    bb = state[S_BEST_BID]
    ba = state[S_BEST_ASK]
    if bb >= 0 and ba < levels.shape[0]:
        return 0.5 * (bb + ba)
    if state[S_LAST_TRADE] >= 0:
        return float(state[S_LAST_TRADE])
    return f[F_MID]


@njit(cache=True)
def _noise_size(rng, p):
    mean = p[P_ORDER_SIZE]
    q = 100.0 / mean if mean > 100.0 else 1.0
    return 100 * (1 + geometric(rng, q))


@njit(cache=True)
def _noise_agent(rng):
    return AGENT_NOISE0 + int(uniform(rng) * N_NOISE)


@njit(cache=True)
def _noise_limit(levels, orders, state, accounts, fills, log, rng, p, mid, thin_side):
    """A noise limit order; on ``thin_side`` (a stress event's hit side) liquidity sits ~10x deeper."""
    n_ticks = levels.shape[0]
    side = BUY if uniform(rng) < 0.5 else -BUY
    decay = p[P_DEPTH_DECAY] * (0.1 if side == thin_side else 1.0)
    bb = state[S_BEST_BID]
    ba = state[S_BEST_ASK]
    have_both = bb >= 0 and ba < n_ticks
    if side == BUY:
        # with no bids left, buyers undercut the asks (a one-sided book re-forms around the trade)
        ref = bb if bb >= 0 else (ba - 1 if ba < n_ticks else int(math.floor(mid)) - 1)
        last = state[S_LAST_TRADE]
        if ba >= n_ticks and last >= 0 and last - 1 > ref:
            ref = last - 1  # asks are gone: bids chase the last trade up
        if have_both and ba - bb > 1 and uniform(rng) < 0.3 and side != thin_side:
            price = bb + 1 + int(uniform(rng) * (ba - bb - 1))  # improve anywhere inside the spread
        else:
            price = ref - geometric(rng, decay)
        if have_both and price >= ba:
            price = ba - 1
    else:
        ref = ba if ba < n_ticks else (bb + 1 if bb >= 0 else int(math.ceil(mid)) + 1)
        last = state[S_LAST_TRADE]
        if bb < 0 and last >= 0 and last + 1 < ref:
            ref = last + 1  # bids are gone: asks chase the last trade down
        if have_both and ba - bb > 1 and uniform(rng) < 0.3 and side != thin_side:
            price = ba - 1 - int(uniform(rng) * (ba - bb - 1))
        else:
            price = ref + geometric(rng, decay)
        if have_both and price <= bb:
            price = bb + 1
    if price < 0 or price >= n_ticks:
        return
    submit(levels, orders, state, accounts, fills, log, _noise_agent(rng), side, price, _noise_size(rng, p), False)


@njit(cache=True)
def _noise_cancels(levels, orders, state, log, rng, p):
    cap = orders.shape[0]
    n_resting = cap - state[S_N_FREE]
    lam = p[P_CANCEL_RATE] * n_resting
    if lam > 60.0:
        lam = 60.0
    n = poisson(rng, lam)
    used = state[S_HIGH_WATER]  # live slots are all below it, so rejection sampling rarely misses
    for _ in range(n):
        for _try in range(8):
            slot = int(uniform(rng) * used)
            agent = orders[slot, O_AGENT]
            if orders[slot, O_QTY] > 0 and AGENT_NOISE0 <= agent < N_AGENTS:  # background noise orders only
                cancel(levels, orders, state, log, orders[slot, 0], 0)
                break


@njit(cache=True)
def _market(levels, orders, state, accounts, fills, log, agent, side, qty):
    submit(levels, orders, state, accounts, fills, log, agent, side, 0, qty, True)


@njit(cache=True)
def _mm_requote(levels, orders, state, accounts, fills, log, p, ib, m, mid, quote):
    agent = AGENT_MM0 + m
    base = I_MM_QUOTES + m * N_MM_QUOTES
    for j in range(N_MM_QUOTES):
        oid = ib[base + j]
        if oid >= 0 and slot_of(orders, oid) >= 0:
            cancel(levels, orders, state, log, oid, 0)
        ib[base + j] = -1
    if not quote:
        return
    n_ticks = levels.shape[0]
    skew = -p[P_MM_SKEW] * accounts[agent, 1] / 100.0
    half = p[P_MM_HALF_SPREAD] + m
    size = int(p[P_MM_SIZE])
    if size <= 0:
        return
    for k in range(2):
        bid = int(math.floor(mid + skew - half)) - k
        ask = int(math.ceil(mid + skew + half)) + k
        if 0 <= bid < n_ticks:
            ib[base + 2 * k] = submit(levels, orders, state, accounts, fills, log, agent, BUY, bid, size, False)
        if 0 <= ask < n_ticks:
            ib[base + 2 * k + 1] = submit(levels, orders, state, accounts, fills, log, agent, -BUY, ask, size, False)


@njit(cache=True)
def fundamental_ticks(p, f):
    """Fundamental value in grid ticks."""
    origin = p[P_INITIAL_PRICE_TICKS] - 0.5 * p[P_N_TICKS]
    return p[P_INITIAL_PRICE_TICKS] * math.exp(f[F_FUND]) - origin


@njit(cache=True)
def flow_step(levels, orders, state, accounts, fills, log, rng, p, f, ib, ring, t):
    """One step of exogenous order flow at episode step ``t``; ``ring`` is the log-mid history."""
    base_f, regime = advance_fundamental(p, rng, f[F_BASE_FUND], int(f[F_REGIME]))
    f[F_BASE_FUND] = base_f
    f[F_REGIME] = regime
    f[F_FUND] = base_f + event_offset(p, t)
    phase = event_phase(p, t)
    kind = p[P_EVENT_KIND]
    crash_shock = phase == 1 and kind == EVENT_FLASH_CRASH
    act = f[F_ACTIVITY]
    mid = current_mid(levels, state, f)

    # market makers (staggered requotes; withdraw in a crash shock)
    refresh = int(p[P_MM_REFRESH])
    for m in range(N_MARKET_MAKERS):
        if crash_shock:
            _mm_requote(levels, orders, state, accounts, fills, log, p, ib, m, mid, False)
        elif (int(t) + m) % refresh == 0:
            _mm_requote(levels, orders, state, accounts, fills, log, p, ib, m, mid, True)

    # noise traders
    _noise_cancels(levels, orders, state, log, rng, p)
    liquidity = 0.3 if crash_shock else 1.0
    thin_side = 0
    if phase == 1:
        thin_side = BUY if kind == EVENT_FLASH_CRASH else -BUY
    n_limit = poisson(rng, p[P_LAMBDA_LIMIT] * liquidity * (0.5 + 0.5 * act))
    for _ in range(n_limit):
        _noise_limit(levels, orders, state, accounts, fills, log, rng, p, current_mid(levels, state, f), thin_side)
    n_market = poisson(rng, p[P_LAMBDA_MARKET] * act)
    for _ in range(n_market):
        side = BUY if uniform(rng) < 0.5 else -BUY
        _market(levels, orders, state, accounts, fills, log, _noise_agent(rng), side, _noise_size(rng, p))

    # informed trader
    if uniform(rng) < p[P_INFORMED_RATE]:
        value = fundamental_ticks(p, f)
        bb = state[S_BEST_BID]
        ba = state[S_BEST_ASK]
        # during a stress event the informed side trades 3x harder: big fundamental moves get discovered
        size = int(p[P_INFORMED_SIZE] * (3.0 if phase != 0 else 1.0))
        if size > 0:
            if ba < levels.shape[0] and value > ba + p[P_INFORMED_THRESHOLD]:
                _market(levels, orders, state, accounts, fills, log, AGENT_INFORMED, BUY, size)
            elif bb >= 0 and value < bb - p[P_INFORMED_THRESHOLD]:
                _market(levels, orders, state, accounts, fills, log, AGENT_INFORMED, -BUY, size)

    # momentum trader
    rate = p[P_MOMENTUM_RATE] * (3.0 if (phase == 1 and kind == EVENT_SQUEEZE) else 1.0)
    lookback = int(p[P_MOMENTUM_LOOKBACK])
    n_hist = int(f[F_RING_N])
    if uniform(rng) < rate and n_hist > lookback and p[P_MOMENTUM_SIZE] > 0:
        h = ring.shape[0]
        head = int(f[F_RING_HEAD])
        now = ring[(head - 1) % h]
        then = ring[(head - 1 - lookback) % h]
        move = (now - then) * (f[F_MID] + p[P_INITIAL_PRICE_TICKS] - 0.5 * p[P_N_TICKS])  # ticks
        if move > p[P_MOMENTUM_THRESHOLD]:
            _market(levels, orders, state, accounts, fills, log, AGENT_MOMENTUM, BUY, int(p[P_MOMENTUM_SIZE]))
        elif move < -p[P_MOMENTUM_THRESHOLD]:
            _market(levels, orders, state, accounts, fills, log, AGENT_MOMENTUM, -BUY, int(p[P_MOMENTUM_SIZE]))

    # stress cascades
    if phase == 1:
        n_cascade = poisson(rng, p[P_EVENT_INTENSITY])
        side = -BUY if kind == EVENT_FLASH_CRASH else BUY
        for _ in range(n_cascade):
            _market(levels, orders, state, accounts, fills, log, _noise_agent(rng), side, 2 * _noise_size(rng, p))

    # self-exciting activity
    new_mid = current_mid(levels, state, f)
    act = 1.0 + p[P_HAWKES_DECAY] * (act - 1.0) + p[P_HAWKES_GAIN] * abs(new_mid - mid)
    if act > p[P_ACTIVITY_MAX]:
        act = p[P_ACTIVITY_MAX]
    f[F_ACTIVITY] = act
    f[F_MID] = new_mid


@njit(cache=True)
def seed_ladder(levels, orders, state, accounts, fills, log, rng, p, f, n_per_side):
    """Fill an empty book with noise limit orders one tick apart on both sides of the centre."""
    centre = int(0.5 * p[P_N_TICKS])
    f[F_MID] = centre
    for k in range(n_per_side):
        agent = _noise_agent(rng)
        submit(levels, orders, state, accounts, fills, log, agent, BUY, centre - 1 - k, _noise_size(rng, p), False)
        agent = _noise_agent(rng)
        submit(levels, orders, state, accounts, fills, log, agent, -BUY, centre + 1 + k, _noise_size(rng, p), False)
