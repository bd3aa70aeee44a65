"""The trading knowledge base: five rules grounded on (state before the action, order, trade history).

Every rule maps a *candidate* signed order quantity ``q`` (shares, + buy,
− sell; 0 = HOLD) to a truth value in [0, 1]. One call evaluates a whole
vector of candidates, so the shield scores every discrete action per step
(and ``action_masks()`` is free once the step is scored).

| rule (``RULE_NAMES``) | formula | decision truth | graded truth: margin |
| --- | --- | --- | --- |
| ``wash_sale`` | ``∀t, k∈[1, window]: ¬(SaleAtLoss(t) ∧ Buy(t+k))`` | crisp | = decision (no margin) |
| ``almgren_chriss_impact`` | ``Volatile → Impact(v) < η·σ_t·sqrt(v/V)`` | soft (``Volatile``), crisp bound | ``(bound − Impact)/bound`` |
| ``vpin_toxicity`` | ``VPIN_t > τ_VPIN → Halt ∨ Widen`` | crisp | ``(τ_VPIN − VPIN_t)/τ_VPIN`` |
| ``position_limit`` | ``|pos + q| ≤ max_position`` | crisp | ``(max_position − |pos + q|)/max_position`` |
| ``cash_reserve`` | ``Buy(q) → cash'(q) ≥ 0.2 · equity'(q)`` | crisp | ``(cash' − 0.2·equity')/(0.2·|equity'|)`` |

Connectives are the Łukasiewicz ones of :mod:`wrappers.logic`; the KB's
satisfaction is ``SatAgg`` (p = 2) over the five rules. Every evaluation
returns two truth sets (see "Graded truths" below): the *decision* truths,
whose SatAgg the shield compares with τ, and the *graded* truths, whose SatAgg
is the target of the logical loss.

Predicates, their thresholds and why. The market predicates are measured
against the instrument's own history or scale with it, so one set of defaults
holds for a simulated book with 0.5 bps steps, hourly BTC with 70 bps bars and
daily BTC with 450 bps bars:

| predicate | formula | threshold (default) | reason |
| --- | --- | --- | --- |
| ``Buy(q)`` | ``[q > 0]`` | | |
| ``Halt(q)`` | ``[q = 0]`` | | a market-order agent halts by holding |
| ``Widen`` | ``0`` | | the agent posts no quotes to widen |
| ``SaleAtLoss(t)`` | sell fill closing a long below average cost | window 30 steps | DESIGN.md (30 days on daily bars) |
| ``Volatile(σ_t)`` | ``sigmoid(s·ln(σ_t/(c·σ_hist)))`` | c = 2, s = 6 | scale-free, below |
| ``Impact(v)`` | ``sign(q)·(VWAP(v) − touch)/mid`` | ``< η·σ_t·sqrt(v/V)``, η = 1 | square-root law, below |
| ``Toxic`` | ``[VPIN_t > τ_VPIN]`` | τ_VPIN = 0.7 | DESIGN.md; a probability on volume buckets, not bars |
| ``Reserve(q)`` | ``[cash'(q) ≥ 0.2·equity'(q)]`` | 0.2 | DESIGN.md: cash ≥ 20% of equity |
| position limit | ``|pos + q| ≤ max_position`` | ``MarketConfig`` | the env's limit |

Groundings:

* ``SaleAtLoss(t)``: a sell fill at step ``t`` that closed part of a long below
  its average cost (:class:`wrappers._state.TradeHistory`, fees excluded; a sale
  at zero PnL is not a loss). The window is in steps (default 30). Because
  Łukasiewicz ∧ is monotone and ¬ order-reversing,
  ``∀t ¬(L_t ∧ B) = ¬((∃t L_t) ∧ B)``, so only the most recent losing sale
  matters: a buy ``k`` steps after it violates iff ``1 ≤ k ≤ window``.
* ``Volatile(σ_t) = sigmoid(s·(ln(σ_t/σ_hist) − ln c))``, a fixed
  :class:`~wrappers.logic.Predicate` on ``x = ln(σ_t/σ_hist)`` (``W = s``,
  ``b = −s·ln c``). σ_t = ``info["volatility"]``, the per-step realized σ of
  log mid returns over the env's window; σ_hist is the instrument's own
  baseline kept by the trade history (:mod:`wrappers._state`: seeded by the
  env's pre-session window, a running mean of σ² then a 500-step-half-life
  EWMA, readings above 3σ_hist left out) — the same baseline as the amygdala's
  volatility breaker. Without a baseline (no price move yet) ``Volatile = 0``.
  Both σ's are per step, so the ratio is the same for any bar size (scaling
  every return by k scales both) and any asset: with the fixed 5 bps
  threshold used before, every daily BTC bar was volatile and no simulated
  step was. c = 2 *(ours)*: ``Volatile`` is 0.015 at σ_hist, 0.5 at 2σ_hist
  and 0.92 at 3σ_hist, the amygdala's halt; an order that breaks the impact
  budget is vetoed (SatAgg < 0.9, one soft rule below 0.224) from
  ``σ_t ≥ 2.46·σ_hist`` on, so the shield restricts impact-heavy orders before
  the breaker stops all trading, while calm markets seldom get there. Measured
  (momentum baseline, 6 seeds × 500 steps on ``ou``, ``gbm``, ``regime`` and
  the shipped samples): the 99th percentile of σ_t/σ_hist is 1.6–2.3, steps
  at ≥ 2.46 are 0.13% on hourly BTC and none elsewhere; in ``flash_crash`` the
  rule binds 6–8 steps after the crash starts and never before it.
  s = 6 *(ours)*: the predicate goes from 0.015 to 0.985 between c/2 and 2c.
* ``Impact(v)``: the price concession of walking the *visible* book for
  ``v = |q|`` shares, measured **from the touch** (best ask for a buy, best bid
  for a sell), ``sign(q)·(VWAP(v) − touch)/mid``; an order larger than the
  visible depth has unknown impact and fails the bound. Why from the touch:
  Almgren & Chriss ("Optimal execution of portfolio transactions", J. Risk
  2000, §1.5) write the temporary impact as ``h(v) = ε·sgn(v) + η·v/τ``, with
  ε the fixed cost of trading (estimated as half the bid-ask spread plus
  fees) kept apart from the size-dependent term; and the square-root law
  ``I = Y·σ·sqrt(Q/V)`` (Tóth et al., "Anomalous price impact and the critical
  nature of liquidity", PRX 2011; Almgren, Thum, Hauptmann & Li, "Direct
  estimation of equity market impact", Risk 2005) measures the *price move*
  an order causes, not the spread it pays. Measured from the mid, a one-lot
  order paid the half-spread, which on daily BTC bars (synthetic spread 5% of
  the bar's range: ≈ 10 bps per side at the median 384 bps range) exceeds the
  whole budget of a small order (``σ·sqrt(v/V)`` ≈ 2–5 bps for 1 BTC of a
  day's median 7,700): with the old fixed 5 bps ``Volatile`` threshold as
  well, 97% of a momentum baseline's orders were vetoed
  (``benchmarks/bench_shield.py --block-rates``). The half-spread is
  still a cost where costs are counted: the cash-reserve rule prices the order
  at the VWAP of the walk, and the env charges the fill. ``V`` = mean market
  volume per step over the last ``volume_window`` steps, floored at one
  ``lot``. η = 1 *(ours)*: ``Y`` is of order one and the law is invariant to
  the time unit when σ and V share it (both are per step here). HOLD (v = 0)
  has no impact and satisfies the rule.
* ``cash'(q) = cash − q·p̂ − fee·|q|·p̂`` and ``equity'(q) = cash'(q) + (pos + q)·mid``,
  with ``p̂`` the VWAP of the visible book walk (the part beyond the visible depth
  priced at the deepest visible level). Holds and sells never draw cash, so the
  reserve constrains buys only (HOLD is always permitted).

Graded truths. With crisp truths a permitted action has SatAgg 1 (up to the
soft ``Volatile``), so the logical loss ``Σ_a π(a|s)(1 − SatAgg(s, a))`` of a
masked policy is 0 and gives no gradient. Where a rule compares a quantity
with a limit, its graded truth measures how far inside the limit the order
stays: with the relative margin ``x = (limit − value)/limit`` (table above)
and the crisp decision ``holds``, :func:`graded_truth` is

* 1 for ``x ≥ m``, falling linearly to ``b`` at the limit (``x = 0``): a
  permitted order is graded by how close it comes to the limit;
* 0, the crisp truth, when the crisp predicate fails (an order whose impact
  is unknown, beyond the visible depth, included). The truths are constants
  of the loss (its gradient flows through π), so continuity at the limit buys
  nothing, while a ramp below b would cut the penalty on a slightly violating
  action (one rule at 0: ``1 − SatAgg = 0.106``; at 0.85: 0.028) for
  ``janus-dqn``, whose softmax puts weight on blocked actions too. Graded
  truths are thus never above the decision truths: the graded SatAgg ≤ the
  decision SatAgg, and ``graded SatAgg ≥ τ`` implies the action is permitted;

with m = 0.2 *(ours: the last fifth of each limit is graded — a position
beyond 80% of ``max_position``, cash below 1.2× the required reserve, VPIN
above 0.56 for τ_VPIN = 0.7, impact above 80% of its budget)* and b = the
shield's τ (0.9). ``graded ≥ b ⇔ the crisp predicate holds``, exactly, for
each graded predicate: ``ImpactOK`` inside ``Volatile → ImpactOK``, ``¬Toxic``
(graded ``Toxic = 1 − graded(¬Toxic)``, so HOLD keeps truth 1),
the position limit and ``Reserve`` inside ``Buy → Reserve``. The decision,
though, does **not** read the graded truths: SatAgg mixes the rules (p-mean),
and a graded SatAgg below τ does not mean a crisp violation — several rules
graded just above b, or one rule at b next to the soft ``Volatile`` rule, push
a permitted order below τ (two rules at b: ``sqrt((3 + 2·0.81)/5) = 0.961``;
with ``almgren_chriss_impact`` at 0.25 as well, ``sqrt(3.6825/5) = 0.858``,
where the decision SatAgg is ``sqrt(4.0625/5) = 0.901``). So the shield decides
(masks, blocks, fallbacks, ``info["ltn"]["sat_agg"]``, ``violation``,
``overridden``) on the decision truths exactly as before, and the graded
SatAgg of every action goes to ``info["ltn"]["action_sat"]``, the logical
loss's input (:mod:`replay.losses`, :mod:`agents.basal_ganglia.ppo`).

Floating-point ties: a remainder below ``1e-6·v`` shares counts as filled
(the observation stores depth as float32 ``log1p``), and the reserve compares
with a ``1e-9·|equity'|`` tolerance; the thresholds are otherwise exact
(``VPIN = τ`` is not toxic, ``Impact = bound`` fails the strict ``<``).

Two evaluations share every rule formula (``wash_sale_truth``,
``almgren_chriss_truth``, ... are ``register_jitable`` functions written with
the logic core, compiled by numba from the same source) and the book decoding:
:func:`kb_evaluate` is the vectorized numpy reference (≈100 µs for a handful of
candidates, numpy call overhead), :func:`kb_kernel` the ``@njit(cache=True)``
kernel the shield calls each step (≈1 µs). Only the book walk is written
twice (``cumsum`` vs a loop over levels); tests assert both paths agree to
1e-12 on random states.

numba's on-disk cache of a compiled function is keyed on its own file only,
while ``shield_kernel``'s cached step inlines this file, ``logic.py`` and
``_state.py``: ``janus_env._numba_cache`` drops the project's caches whenever
any of these sources changes (the agreement tests would catch a stale
:func:`kb_kernel`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
from numba import njit
from numba.extending import register_jitable

from janus_env.checks import check_choice, check_fraction, check_number, check_positive
from wrappers._state import (
    DEFAULT_VOL_EVENT_RATIO,
    DEFAULT_VOL_HALFLIFE,
    Trade,
    TradeHistory,
    new_history_rows,
)
from wrappers.logic import Predicate, and_, implies, not_, or_, sat_agg, sigmoid

RULE_NAMES: tuple[str, ...] = (
    "wash_sale",
    "almgren_chriss_impact",
    "vpin_toxicity",
    "position_limit",
    "cash_reserve",
)
"""Rule names, in the column order of :func:`kb_evaluate`'s truth matrix."""

# ---- state vector layout (build it with TradingKnowledgeBase.state; S_EQUITY is recorded for readers,
# the rules recompute equity after the trade from cash' and the mark) ----
S_POSITION = 0
S_CASH = 1
S_EQUITY = 2
S_MID = 3
S_VPIN = 4
S_VOLATILITY = 5
S_MEAN_VOLUME = 6
S_RECENT_LOSS_SALE = 7
S_MAX_POSITION = 8
S_LOT = 9
S_FEE_BPS = 10
S_BOOK_ENCODED = 11
S_VOL_BASELINE = 12
"""σ_hist, the volatility baseline of ``Volatile`` (0: none yet)."""
N_STATE = 13

# ---- parameter vector layout ----
K_ETA = 0
K_LOG_VOL_RATIO = 1
K_VOL_SLOPE = 2
K_VPIN_THRESHOLD = 3
K_CASH_RESERVE = 4
K_P = 5
K_GRADED_MARGIN = 6
"""m, the margin (a fraction of the limit) from which a graded truth is 1."""
K_BOUNDARY_TRUTH = 7
"""The graded truth at the limit (the shield's τ)."""
N_KB_PARAMS = 8

FILL_TOLERANCE = 1e-6
"""Relative remainder (of ``v``) below which a book walk counts as completely filled."""
RESERVE_TOLERANCE = 1e-9
"""Relative tolerance (of ``|equity'|``) of the cash-reserve comparison."""
_MIN_VOLATILITY = 1e-12
_TINY = 1e-300

BACKENDS: tuple[str, ...] = ("numba", "numpy")
"""Accepted values of :meth:`TradingKnowledgeBase.evaluate`'s ``backend``."""

_BAD_BOOK = "Expected a book of shape (n_levels, 4), got shape {}"
_BAD_QTY = "Expected a 1-D array of candidate quantities, got shape {}"
_BAD_STATE = "Expected a state vector of shape ({},), got shape {}"


# ----------------------------------------------------------------------------- rule formulas
# Written once with the logic core; each works on numpy arrays (the vectorized reference
# path) and on scalars inside the numba kernel (register_jitable compiles the same source).
@register_jitable
def wash_sale_truth(recent_loss_sale, buy):
    """``¬((∃t SaleAtLoss(t)) ∧ Buy(q))`` = ``∀t ¬(SaleAtLoss(t) ∧ Buy(q))``."""
    return not_(and_(recent_loss_sale, buy))


@register_jitable
def volatile_truth(sigma, sigma_hist, log_ratio, slope):
    """``Volatile(σ_t) = sigmoid(s·(ln(σ_t/σ_hist) − ln c))`` (σ_t floored at 1e-12); 0 when there is no
    baseline (``σ_hist ≤ 0``)."""
    if not sigma_hist > 0.0:
        return 0.0
    return sigmoid(slope * (np.log(max(sigma, _MIN_VOLATILITY) / sigma_hist) - log_ratio))


@register_jitable
def impact_bound(eta, sigma, v, volume):
    """Square-root-law impact budget ``η·σ·sqrt(v/V)``."""
    return eta * sigma * np.sqrt(v / volume)


@register_jitable
def relative_impact(side, vwap, touch, mid):
    """``sign(q)·(VWAP − touch)/mid``: the price concession of the book walk beyond the best quote."""
    return side * (vwap - touch) / mid


@register_jitable
def almgren_chriss_truth(volatile, impact_ok):
    """``Volatile → ImpactOK``."""
    return implies(volatile, impact_ok)


@register_jitable
def vpin_truth(toxic, halt):
    """``Toxic → Halt ∨ Widen`` with ``Widen = 0``."""
    return implies(toxic, or_(halt, 0.0))


@register_jitable
def reserve_slack(q, v, est_px, cash, pos, mid, fee_bps, reserve):
    """``cash' − reserve·equity' + tol·|equity'|`` (≥ 0 satisfies the reserve)."""
    cash_after = cash - q * est_px - fee_bps * 1e-4 * v * est_px
    equity_after = cash_after + (pos + q) * mid
    return cash_after - reserve * equity_after + RESERVE_TOLERANCE * np.abs(equity_after)


@register_jitable
def cash_reserve_truth(buy, reserve_ok):
    """``Buy(q) → Reserve(q)``."""
    return implies(buy, reserve_ok)


@register_jitable
def graded_truth(holds, margin, width, boundary):
    """Graded truth of a limit predicate from its crisp decision and its relative margin.

    ``margin`` = (limit − value) / limit, ≥ 0 where the crisp predicate holds (``holds`` = 1.0);
    ``width`` = m ∈ (0, 1], ``boundary`` = b (the shield's τ)::

        holds:      b + (1 − b)·min(margin / m, 1)     1 from a margin of m on, linear down to b at the limit
        violated:   0                                  the crisp truth

    Monotone (non-decreasing) in the margin, ``truth ≥ b ⇔ holds`` exactly, and never above the crisp
    truth (module docstring, "Graded truths"). *(ours)*
    """
    return holds * (boundary + (1.0 - boundary) * np.minimum(np.maximum(margin, 0.0) / width, 1.0))


@register_jitable
def relative_margin(limit, value):
    """``(limit − value) / limit``, the limit floored at 1e-300 (a zero limit: any excess is a full violation)."""
    return (limit - value) / np.maximum(limit, _TINY)


@register_jitable
def reserve_margin(slack, q, v, est_px, cash, pos, mid, fee_bps, reserve):
    """``slack / (reserve·|equity'|)``: the cash above the required reserve as a fraction of it (the denominator
    floored at the comparison's tolerance ``1e-9·|equity'|`` and at 1e-300)."""
    cash_after = cash - q * est_px - fee_bps * 1e-4 * v * est_px
    equity_after = np.abs(cash_after + (pos + q) * mid)
    return slack / np.maximum(np.maximum(reserve * equity_after, RESERVE_TOLERANCE * equity_after), _TINY)


@register_jitable
def p_mean(truths, c, p):
    """SatAgg of row ``c`` of ``truths`` (:func:`wrappers.logic.sat_agg` as a loop: no temporaries)."""
    total = 0.0
    n = truths.shape[1]
    if p == 2.0:  # the default: squares and one sqrt instead of 6 calls to pow
        for r in range(n):
            total += truths[c, r] * truths[c, r]
        return math.sqrt(total / n)
    for r in range(n):
        total += truths[c, r] ** p
    return (total / n) ** (1.0 / p)


@register_jitable
def decode_book_into(book, mid, lot, encoded, out):
    """Fill ``out`` ``(4, L)`` with ``(bid_px, bid_qty, ask_px, ask_qty)`` rows in currency/shares.

    ``book`` is ``(L, 4)`` rows ``(bid_px, bid_qty, ask_px, ask_qty)``: in currency/shares, or with
    ``encoded`` the observation's encoding (price offset from ``mid`` in bps, ``log1p(shares/lot)``).
    Empty levels (quantity ≤ 0 or NaN) get price 0, quantity 0. Every KB evaluation decodes the book
    with it: :func:`kb_evaluate`, :func:`kb_kernel` and the shields' compiled step
    (:mod:`wrappers.shield_kernel`).
    """
    for i in range(book.shape[0]):
        for side in range(2):
            px = book[i, 2 * side]
            qty = book[i, 2 * side + 1]
            if encoded:
                px = mid * (1.0 + px * 1e-4)
                qty = np.expm1(qty) * lot
            if qty > 0.0:  # NaN-safe
                out[2 * side, i] = px
                out[2 * side + 1, i] = qty
            else:
                out[2 * side, i] = 0.0
                out[2 * side + 1, i] = 0.0


@register_jitable
def _decode_book(book, mid, lot, encoded):
    """``(bid_px, bid_qty, ask_px, ask_qty)`` in currency/shares; empty levels get price 0, quantity 0."""
    out = np.empty((4, book.shape[0]), dtype=np.float64)
    decode_book_into(book, mid, lot, encoded, out)
    return out


# ----------------------------------------------------------------------------- reference (numpy)
def _walk_book_np(v: np.ndarray, px: np.ndarray, qty: np.ndarray,
                  mid: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Fill ``v`` shares against levels ``(px, qty)`` best first: (filled, notional, deepest price, touch)."""
    before = np.cumsum(qty) - qty
    take = np.minimum(np.maximum(v[:, None] - before[None, :], 0.0), qty[None, :])
    levels = np.nonzero(qty > 0.0)[0]
    deepest = px[levels[-1]] if levels.size > 0 else mid
    touch = px[levels[0]] if levels.size > 0 else mid
    return take.sum(axis=1), (take * px[None, :]).sum(axis=1), deepest, touch


def kb_evaluate(q: np.ndarray, book: np.ndarray, state: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Truths of every rule and SatAgg for each candidate order quantity (vectorized numpy).

    Args:
        q: candidate signed order quantities in shares, float64, shape ``(n,)``.
        book: visible book, float64 ``(L, 4)``: rows ``(bid_px, bid_qty, ask_px, ask_qty)`` in
            currency/shares (missing levels: NaN or any price with quantity 0), or, when
            ``state[S_BOOK_ENCODED]`` is 1, the observation's encoding (price offset from mid
            in bps, ``log1p(shares/lot)``).
        state: the ``S_*`` vector (state before the action).
        params: the ``K_*`` vector.

    Returns:
        ``(truths, sat, graded, graded_sat)``: the decision truths of shape ``(n, len(RULE_NAMES))`` and
        their SatAgg ``(n,)``, then the graded truths (module docstring, "Graded truths") and their SatAgg.
    """
    pos, cash, mid, lot = state[S_POSITION], state[S_CASH], state[S_MID], state[S_LOT]
    bid_px, bid_qty, ask_px, ask_qty = _decode_book(book, mid, lot, state[S_BOOK_ENCODED] > 0.5)
    v = np.abs(q)
    buy = np.where(q > 0.0, 1.0, 0.0)
    b_filled, b_notional, b_deep, b_touch = _walk_book_np(v, bid_px, bid_qty, mid)
    a_filled, a_notional, a_deep, a_touch = _walk_book_np(v, ask_px, ask_qty, mid)
    filled = np.where(q > 0.0, a_filled, b_filled)
    notional = np.where(q > 0.0, a_notional, b_notional)
    remainder = v - filled
    complete = remainder <= FILL_TOLERANCE * v
    vwap = np.where(filled > 0.0, notional / np.maximum(filled, 1e-300), mid)
    deepest = np.where(q > 0.0, a_deep, b_deep)
    touch = np.where(q > 0.0, a_touch, b_touch)
    est_px = np.where(v > 0.0, (notional + np.maximum(remainder, 0.0) * deepest) / np.maximum(v, 1e-300), mid)

    volatile = volatile_truth(state[S_VOLATILITY], state[S_VOL_BASELINE], params[K_LOG_VOL_RATIO],
                              params[K_VOL_SLOPE])
    volume = max(state[S_MEAN_VOLUME], lot)
    bound = impact_bound(params[K_ETA], state[S_VOLATILITY], v, volume)
    impact = relative_impact(np.sign(q), vwap, touch, mid)
    impact_ok = np.where((v == 0.0) | (complete & (impact < bound)), 1.0, 0.0)
    toxic = 1.0 if state[S_VPIN] > params[K_VPIN_THRESHOLD] else 0.0
    slack = reserve_slack(q, v, est_px, cash, pos, mid, state[S_FEE_BPS], params[K_CASH_RESERVE])

    halt = np.where(q == 0.0, 1.0, 0.0)
    position_ok = np.where(np.abs(pos + q) <= state[S_MAX_POSITION], 1.0, 0.0)
    reserve_ok = np.where(slack >= 0.0, 1.0, 0.0)
    truths = np.empty((q.shape[0], len(RULE_NAMES)), dtype=np.float64)
    truths[:, 0] = wash_sale_truth(state[S_RECENT_LOSS_SALE], buy)
    truths[:, 1] = almgren_chriss_truth(volatile, impact_ok)
    truths[:, 2] = vpin_truth(toxic, halt)
    truths[:, 3] = position_ok
    truths[:, 4] = cash_reserve_truth(buy, reserve_ok)

    width, boundary = params[K_GRADED_MARGIN], params[K_BOUNDARY_TRUTH]
    impact_margin = np.where(v == 0.0, 1.0, np.where(complete, relative_margin(bound, impact), -1.0))
    safe = 1.0 - toxic
    graded = np.empty_like(truths)
    graded[:, 0] = truths[:, 0]
    graded[:, 1] = almgren_chriss_truth(volatile, graded_truth(impact_ok, impact_margin, width, boundary))
    graded[:, 2] = vpin_truth(1.0 - graded_truth(safe, relative_margin(params[K_VPIN_THRESHOLD], state[S_VPIN]),
                                                 width, boundary), halt)
    graded[:, 3] = graded_truth(position_ok, relative_margin(state[S_MAX_POSITION], np.abs(pos + q)), width,
                                boundary)
    graded[:, 4] = cash_reserve_truth(buy, graded_truth(
        reserve_ok, reserve_margin(slack, q, v, est_px, cash, pos, mid, state[S_FEE_BPS], params[K_CASH_RESERVE]),
        width, boundary))
    return truths, sat_agg(truths, params[K_P], -1), graded, sat_agg(graded, params[K_P], -1)


# ----------------------------------------------------------------------------- the kernel (numba)
@njit(cache=True)
def kb_kernel(q, book, params, truths, sat, graded, graded_sat, encoded, pos, cash, mid, vpin, sigma, sigma_hist,
              mean_volume, recent_loss_sale, max_position, lot, fee_bps):  # pragma: no cover - compiled
    """The KB as one numba kernel, state as scalars (the shield's hot path); see :func:`kb_evaluate`.

    Writes ``truths`` ``(n, 5)``, ``sat`` ``(n,)`` and their graded twins ``graded``, ``graded_sat``.
    ``book`` may be float32 (the observation) or float64. ``sigma_hist`` is the volatility baseline (0: none).
    """
    decoded = _decode_book(book, mid, lot, encoded)
    kb_decoded(q, decoded, params, truths, sat, graded, graded_sat, pos, cash, mid, vpin, sigma, sigma_hist,
               mean_volume, recent_loss_sale, max_position, lot, fee_bps)


@register_jitable
def kb_decoded(q, decoded, params, truths, sat, graded, graded_sat, pos, cash, mid, vpin, sigma, sigma_hist,
               mean_volume, recent_loss_sale, max_position, lot, fee_bps):
    """:func:`kb_kernel` on a book already decoded by :func:`decode_book_into` (loops, no temporaries)."""
    n_levels = decoded.shape[1]
    volatile = volatile_truth(sigma, sigma_hist, params[K_LOG_VOL_RATIO], params[K_VOL_SLOPE])
    volume = max(mean_volume, lot)
    toxic = 1.0 if vpin > params[K_VPIN_THRESHOLD] else 0.0
    width = params[K_GRADED_MARGIN]
    boundary = params[K_BOUNDARY_TRUTH]
    graded_toxic = 1.0 - graded_truth(1.0 - toxic, relative_margin(params[K_VPIN_THRESHOLD], vpin), width, boundary)
    p = params[K_P]
    for c in range(q.shape[0]):
        qc = q[c]
        v = abs(qc)
        row = 2 if qc > 0.0 else 0  # walk the asks for a buy, the bids for a sell
        filled = 0.0
        notional = 0.0
        deepest = mid
        touch = mid
        found = False
        if v > 0.0:
            for i in range(n_levels):
                level_qty = decoded[row + 1, i]
                if level_qty > 0.0:
                    take = min(max(v - filled, 0.0), level_qty)
                    filled += take
                    notional += take * decoded[row, i]
                    deepest = decoded[row, i]
                    if not found:
                        touch = deepest
                        found = True
        remainder = v - filled
        complete = remainder <= FILL_TOLERANCE * v
        vwap = notional / filled if filled > 0.0 else mid
        est_px = (notional + max(remainder, 0.0) * deepest) / v if v > 0.0 else mid
        buy = 1.0 if qc > 0.0 else 0.0
        halt = 1.0 if qc == 0.0 else 0.0
        if v == 0.0:
            impact_ok = 1.0
            impact_margin = 1.0
        elif complete:
            impact = relative_impact(np.sign(qc), vwap, touch, mid)
            bound = impact_bound(params[K_ETA], sigma, v, volume)
            impact_ok = 1.0 if impact < bound else 0.0
            impact_margin = relative_margin(bound, impact)
        else:
            impact_ok = 0.0
            impact_margin = -1.0
        slack = reserve_slack(qc, v, est_px, cash, pos, mid, fee_bps, params[K_CASH_RESERVE])
        size_after = abs(pos + qc)
        position_ok = 1.0 if size_after <= max_position else 0.0
        reserve_ok = 1.0 if slack >= 0.0 else 0.0
        truths[c, 0] = wash_sale_truth(recent_loss_sale, buy)
        truths[c, 1] = almgren_chriss_truth(volatile, impact_ok)
        truths[c, 2] = vpin_truth(toxic, halt)
        truths[c, 3] = position_ok
        truths[c, 4] = cash_reserve_truth(buy, reserve_ok)
        graded[c, 0] = truths[c, 0]
        graded[c, 1] = almgren_chriss_truth(volatile, graded_truth(impact_ok, impact_margin, width, boundary))
        graded[c, 2] = vpin_truth(graded_toxic, halt)
        graded[c, 3] = graded_truth(position_ok, relative_margin(max_position, size_after), width, boundary)
        graded[c, 4] = cash_reserve_truth(buy, graded_truth(
            reserve_ok, reserve_margin(slack, qc, v, est_px, cash, pos, mid, fee_bps, params[K_CASH_RESERVE]),
            width, boundary))
        sat[c] = p_mean(truths, c, p)
        graded_sat[c] = p_mean(graded, c, p)


@njit(cache=True)
def kb_evaluate_numba(q, book, state, params, truths, sat, graded, graded_sat):  # pragma: no cover - compiled
    """:func:`kb_kernel` with the state as the ``S_*`` vector: :func:`kb_evaluate`'s arguments plus the
    output arrays ``truths`` ``(n, 5)``, ``sat`` ``(n,)``, ``graded`` ``(n, 5)`` and ``graded_sat`` ``(n,)``."""
    kb_kernel(q, book, params, truths, sat, graded, graded_sat, state[S_BOOK_ENCODED] > 0.5, state[S_POSITION], state[S_CASH],
              state[S_MID], state[S_VPIN], state[S_VOLATILITY], state[S_VOL_BASELINE], state[S_MEAN_VOLUME],
              state[S_RECENT_LOSS_SALE], state[S_MAX_POSITION], state[S_LOT], state[S_FEE_BPS])


class KBResult(NamedTuple):
    """The knowledge base evaluated on candidate orders."""

    quantities: np.ndarray
    """Candidate signed quantities, shape ``(n,)``."""
    truths: np.ndarray
    """Rule truths, shape ``(n, len(RULE_NAMES))``, columns in ``RULE_NAMES`` order."""
    sat: np.ndarray
    """SatAgg per candidate, shape ``(n,)`` (what the shield decides with)."""
    graded: np.ndarray
    """Graded rule truths, shape ``(n, len(RULE_NAMES))`` (module docstring, "Graded truths")."""
    graded_sat: np.ndarray
    """SatAgg of the graded truths per candidate, shape ``(n,)`` (what the logical loss is computed from)."""

    def rules(self, i: int) -> dict[str, float]:
        """``{rule_name: truth}`` of candidate ``i`` (Python floats, JSON-able)."""
        return dict(zip(RULE_NAMES, self.truths[i].tolist()))


class TradingKnowledgeBase:
    """The JANUS trading rules with their parameters; evaluates candidate orders in one call.

    Args:
        wash_sale_window: wash-sale window in steps (DESIGN.md: 30).
        eta: η of the square-root impact bound *(ours: 1.0, see module docstring)*.
        volatility_ratio: c, the ratio σ_t/σ_hist at which ``Volatile`` is 0.5 *(ours: 2.0; an
            order over the impact budget is vetoed from 2.46·σ_hist, below the amygdala's 3× halt;
            see module docstring)*.
        volatility_slope: s in ``Volatile = sigmoid(s·ln(σ_t/(c·σ_hist)))`` *(ours: 6, so Volatile is
            0.015 at c/2 and 0.985 at 2c)*.
        volume_window: steps in the mean per-step volume ``V`` *(ours: 20)*.
        vpin_threshold: τ_VPIN (DESIGN.md: 0.7).
        cash_reserve: minimum cash as a fraction of equity after a buy (DESIGN.md: 0.2).
        p: SatAgg power (DESIGN.md: 2).
        vol_halflife: half-life in steps of the σ_hist EWMA *(ours: 500, the amygdala's; see
            :mod:`wrappers._state`)*.
        vol_event_ratio: readings above this multiple of σ_hist are events, left out of σ_hist
            (3: DESIGN.md's volatility breaker).
        graded_margin: m, the relative margin (a fraction of the limit) from which a graded truth is 1
            *(ours: 0.2; module docstring, "Graded truths")*.
        boundary_truth: b, the graded truth at the limit, in (0, 1] (the shield's τ, 0.9 by default; a
            shield replaces it with its own τ so that ``graded ≥ τ ⇔ the crisp rule holds``).

    Raises:
        TypeError: a parameter of the wrong type (a window that is not an int, another parameter that is
            not a real number).
        ValueError: a parameter outside its range (NaN and ±inf included).
    """

    def __init__(
        self,
        wash_sale_window: int = 30,
        eta: float = 1.0,
        volatility_ratio: float = 2.0,
        volatility_slope: float = 6.0,
        volume_window: int = 20,
        vpin_threshold: float = 0.7,
        cash_reserve: float = 0.2,
        p: float = 2.0,
        vol_halflife: float = DEFAULT_VOL_HALFLIFE,
        vol_event_ratio: float = DEFAULT_VOL_EVENT_RATIO,
        graded_margin: float = 0.2,
        boundary_truth: float = 0.9,
    ) -> None:
        self.eta = check_positive("eta", eta)
        self.volatility_ratio = check_positive("volatility_ratio", volatility_ratio)
        self.volatility_slope = check_positive("volatility_slope", volatility_slope)
        self.vpin_threshold = check_fraction("vpin_threshold", vpin_threshold)
        self.cash_reserve = check_fraction("cash_reserve", cash_reserve)
        self.p = check_number("p", p, low=1)
        self.graded_margin = check_fraction("graded_margin", graded_margin, low_open=True)
        self.boundary_truth = check_fraction("boundary_truth", boundary_truth, low_open=True)
        # validates the windows and the σ_hist settings
        checked = TradeHistory(wash_sale_window, volume_window, vol_halflife=vol_halflife,
                               vol_event_ratio=vol_event_ratio)
        self.wash_sale_window = checked.wash_sale_window
        self.volume_window = checked.volume_window
        self.vol_halflife = checked.vol_halflife
        self.vol_event_ratio = checked.vol_event_ratio
        self.params = np.zeros(N_KB_PARAMS, dtype=np.float64)
        self.params[K_ETA] = self.eta
        self.params[K_LOG_VOL_RATIO] = math.log(self.volatility_ratio)
        self.params[K_VOL_SLOPE] = self.volatility_slope
        self.params[K_VPIN_THRESHOLD] = self.vpin_threshold
        self.params[K_CASH_RESERVE] = self.cash_reserve
        self.params[K_P] = self.p
        self.params[K_GRADED_MARGIN] = self.graded_margin
        self.params[K_BOUNDARY_TRUTH] = self.boundary_truth

    rule_names = RULE_NAMES

    def history(self, max_trades: int = 256, row: np.ndarray | None = None) -> TradeHistory:
        """A :class:`TradeHistory` with this KB's windows and σ_hist settings (fresh, or viewing ``row``)."""
        return TradeHistory(self.wash_sale_window, self.volume_window, max_trades, row=row,
                            vol_halflife=self.vol_halflife, vol_event_ratio=self.vol_event_ratio)

    def history_rows(self, n: int, max_trades: int = 256) -> np.ndarray:
        """``(n, H)`` flat history rows with this KB's windows and σ_hist settings (the shields' state)."""
        return new_history_rows(n, self.wash_sale_window, self.volume_window, max_trades, self.vol_halflife,
                                self.vol_event_ratio)

    def volatile_predicate(self) -> Predicate:
        """``Volatile`` as a torch :class:`~wrappers.logic.Predicate` on ``x = [ln(σ_t/σ_hist)]`` (for losses)."""
        s = self.volatility_slope
        return Predicate(1, weight=[s], bias=-s * math.log(self.volatility_ratio))

    @staticmethod
    def state(
        info: Mapping[str, Any],
        history: TradeHistory,
        max_position: float,
        lot: float,
        fee_bps: float,
        book_encoded: bool,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The ``S_*`` state vector from the last ``info`` (state before the next action) and history.

        Args:
            info: the info returned with the observation the action answers.
            history: the trade history updated up to that info (its σ_hist is the volatility baseline).
            max_position, lot, fee_bps: from the env's ``MarketConfig``.
            book_encoded: whether the book passed to :meth:`evaluate` is the observation's encoding.
            out: optional array to fill (avoids an allocation per step).
        """
        s = np.empty(N_STATE, dtype=np.float64) if out is None else out
        s[S_POSITION] = info["position"]
        s[S_CASH] = info["cash"]
        s[S_EQUITY] = info["equity"]
        s[S_MID] = info["mid"]
        s[S_VPIN] = info["vpin"]
        s[S_VOLATILITY] = info["volatility"]
        s[S_MEAN_VOLUME] = history.mean_volume
        s[S_RECENT_LOSS_SALE] = history.recent_loss_sale()
        s[S_MAX_POSITION] = max_position
        s[S_LOT] = lot
        s[S_FEE_BPS] = fee_bps
        s[S_BOOK_ENCODED] = 1.0 if book_encoded else 0.0
        s[S_VOL_BASELINE] = history.sigma_hist
        return s

    def evaluate(self, quantities: Any, book: Any, state: np.ndarray, backend: str = "numba") -> KBResult:
        """Score candidate orders.

        Args:
            quantities: candidate signed share quantities, shape ``(n,)``.
            book: the visible book (see :func:`kb_evaluate`).
            state: the vector from :meth:`state`.
            backend: ``"numba"`` (compiled kernel) or ``"numpy"`` (the same code interpreted).

        Returns:
            A :class:`KBResult`.

        Raises:
            ValueError: wrong shapes or backend.
        """
        q = np.ascontiguousarray(quantities, dtype=np.float64)
        b = np.ascontiguousarray(book, dtype=np.float64)
        if q.ndim != 1:
            raise ValueError(_BAD_QTY.format(q.shape))
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(_BAD_BOOK.format(b.shape))
        if state.shape != (N_STATE,):
            raise ValueError(_BAD_STATE.format(N_STATE, state.shape))
        check_choice("backend", backend, BACKENDS)
        if backend == "numba":
            truths = np.empty((q.shape[0], len(RULE_NAMES)), dtype=np.float64)
            sat = np.empty(q.shape[0], dtype=np.float64)
            graded = np.empty_like(truths)
            graded_sat = np.empty_like(sat)
            kb_evaluate_numba(q, b, state, self.params, truths, sat, graded, graded_sat)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                truths, sat, graded, graded_sat = kb_evaluate(q, b, state, self.params)
        return KBResult(q, truths, sat, graded, graded_sat)


__all__ = [
    "RULE_NAMES", "KBResult", "Trade", "TradeHistory", "TradingKnowledgeBase", "decode_book_into", "graded_truth",
    "kb_decoded", "kb_evaluate", "kb_evaluate_numba", "kb_kernel",
]
