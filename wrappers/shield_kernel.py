"""The batched LTN shield core: scoring, the decision for every action kind and the ``info["ltn"]`` record.

Every shield is a thin adapter over one :class:`ShieldCore`, which decides for a
batch of *rows* of the market's buffers: row 0 of a single env
(:class:`~wrappers.shield.LTNShield`), the N books of the native vector env
(:class:`~wrappers.vector_shield.VectorLTNShield`), or the shielded agents of
the shared multi-agent book (:class:`~wrappers.parallel_shield.ParallelLTNShield`).
All of them expose their state in one layout, the ``O_*`` rows of
:mod:`janus_env.simulator` and the flat observation rows, through the env's
``buffers()``; the shield reads the market's own state there, so no wrapper
in between can blind it.

One compiled call per decision (:func:`shield_decide`) does, for every row:

1. bring the row's trade history up to date with the market, by the market's
   step counter (:func:`sync_histories`: record the fill of the last step, or
   restart the history after a reset);
2. score every candidate order with the trading knowledge base
   (:func:`wrappers.rules.kb_decoded`) on the state before the action: the
   encoded book of the observation row, position, cash, mid, VPIN and σ of the
   ``O_*`` row, the volatility baseline σ_hist, mean volume and the last
   losing sale of the history;
3. pick the executed candidate (:func:`choose_actions`): the proposal when
   ``SatAgg ≥ threshold``, else HOLD (``fallback="hold"``) or the permitted
   candidate closest in quantity to the proposal (``fallback="nearest"``).

The candidates of a row are the quantities of every discrete action (HOLD is
action 0), or, for a continuous target, ``[0 (HOLD), proposal]`` followed with
``fallback="nearest"`` by the whole-lot moves toward the target, largest first
(so "closest to the proposal" is the largest permitted move). A continuous
fallback keeps the position plus the chosen move: target
``(position + move) / max_position``, a float32 that the env rounds back to
exactly that position (:func:`float32_targets`). Beyond :data:`FLOAT32_EXACT_UNITS`
grid units not every position is a float32 fraction: the fallback candidates are
then moved, before they are scored, to the nearest positions a float32 target
reaches (ties toward the current position, the smaller trade), so the executed
trade is always one the shield scored; if even HOLD is out of reach and the
nearest reachable position is not permitted, the decision raises (the shields'
fail-safe halts: nothing is sent).

:func:`ltn_record` builds the ``info["ltn"]`` dict of every shield, for one row
(Python scalars, JSON-able) or a batch (arrays).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from numba import njit

from janus_env.actions import sized_quantity
from janus_env.checks import BAD_VALUE, check_choice, check_fraction
from janus_env.config import MarketConfig
from janus_env.simulator import (
    O_CASH,
    O_EXEC_PRICE,
    O_EXEC_QTY,
    O_MID,
    O_POSITION,
    O_STEP,
    O_VOLATILITY,
    O_VOLUME,
    O_VPIN,
)
from wrappers._state import (
    H_LAST_STEP,
    TradeHistory,
    history_record,
    history_reset,
    mean_volume,
    recent_loss_sale,
    volatility_baseline,
)
from wrappers.rules import (
    K_BOUNDARY_TRUTH,
    N_KB_PARAMS,
    RULE_NAMES,
    KBResult,
    TradingKnowledgeBase,
    decode_book_into,
    kb_decoded,
)

HOLD = 0
"""The discrete HOLD action (always permitted)."""
FALLBACKS = ("hold", "nearest")
DEFAULT_THRESHOLD = 0.9
"""τ, the minimum SatAgg of an executed action *(ours)*: with 5 rules and p = 2 one fully violated crisp
rule gives ``sqrt(4/5) ≈ 0.894``, so any single crisp violation is vetoed."""
HALT_PREFIX = "shield_error: "
"""``halt_reason`` of a fail-safe halt starts with this, then ``<ExceptionType>: <message>``."""

_BAD_KB = "Expected `knowledge_base` to be a TradingKnowledgeBase or None, got {!r}"
_BAD_SPACE = "Expected a Discrete or Box(-1, 1, (1,)) action space, got {}"
_MASKS_DISCRETE = "action_masks() needs a Discrete action space, got {}"
_R0, _R1, _R2, _R3, _R4 = RULE_NAMES

# ---- context layout: the KB's K_* parameters, then the market constants and the decision ----
C_WINDOW = N_KB_PARAMS
C_N_LEVELS = N_KB_PARAMS + 1
C_MAX_POSITION = N_KB_PARAMS + 2
C_LOT = N_KB_PARAMS + 3
C_FEE_BPS = N_KB_PARAMS + 4
C_THRESHOLD = N_KB_PARAMS + 5
C_NEAREST = N_KB_PARAMS + 6
N_CONTEXT = N_KB_PARAMS + 7

PROPOSAL_COLUMN = 1
"""Candidate column of a continuous proposal (column 0 is HOLD)."""
FLOAT32_EXACT_UNITS = 2.0**22
"""Grid units below which every position is reached exactly by a float32 target: ``rint(float32(u / M) · M) = u``
for ``|u| < 2^23`` (a float32 carries 24 significant bits, so its relative rounding error is at most ``2^-24``);
``2^22`` leaves a margin for the float64 steps around it."""
_NO_SAFE_TARGET = ("No float32 target reaches a permitted position: HOLD at {!r} grid units is not a float32 "
                   "fraction of max_position ({!r} units) and the nearest reachable trade ({!r} units) has SatAgg "
                   "{!r} < {!r}")


def float32_targets(desired: np.ndarray, position: np.ndarray, max_units: float) -> tuple[np.ndarray, np.ndarray]:
    """The float32 target fractions of the positions ``desired`` and the positions the env executes for them.

    The env turns a continuous target ``t`` into ``rint(float64(t) · max_units)`` grid units
    (:meth:`janus_env.lob_env.JanusLOBEnv._order_units`). For each desired position ``u`` this is the float32 ``t``
    whose executed position is ``u`` or, where no float32 reaches ``u`` (``|u|`` beyond :data:`FLOAT32_EXACT_UNITS`),
    the nearest one reached, ties toward ``position`` (the smaller trade). Computed in float64: ``float32(u / M)``
    and, where it misses, its two float32 neighbours on each side (the executed position is monotone in ``t``, so
    the nearest reachable one is among them); ``|t| ≤ 1`` always.

    Args:
        desired: ``(n, A)`` desired positions, in grid units (whole numbers, ``|u| ≤ max_units``).
        position: ``(n,)`` the current positions, in grid units.
        max_units: ``max_position`` in grid units (``M``).

    Returns:
        ``(targets, executed)``: ``(n, A)`` float32 fractions and the float64 positions (grid units) they execute.
    """
    targets = (desired / max_units).astype(np.float32)
    executed = np.rint(targets.astype(np.float64) * max_units)
    miss = executed != desired
    if not miss.any():
        return targets, executed
    want = desired[miss]
    here = np.broadcast_to(position[:, None], desired.shape)[miss]
    down1 = np.nextafter(targets[miss], np.float32(-2.0))
    up1 = np.nextafter(targets[miss], np.float32(2.0))
    near = np.stack([targets[miss], down1, up1, np.nextafter(down1, np.float32(-2.0)),
                     np.nextafter(up1, np.float32(2.0))])
    reached = np.rint(near.astype(np.float64) * max_units)
    distance = np.where(np.abs(near) <= 1.0, np.abs(reached - want), np.inf)
    closest = distance == distance.min(axis=0)
    pick = np.argmin(np.where(closest, np.abs(reached - here), np.inf), axis=0)
    columns = np.arange(want.shape[0])
    targets[miss] = near[pick, columns]
    executed[miss] = reached[pick, columns]
    return targets, executed


def reason(err: BaseException) -> str:
    """``halt_reason`` of a fail-safe halt: ``"shield_error: <ExceptionType>: <message>"``."""
    return f"{HALT_PREFIX}{type(err).__name__}: {err}"


class CoreKernel:
    """Mixin of the three shields: :attr:`kernel`, their core's compiled scoring, readable and settable per instance
    (tests inject faults with it). The class using it sets ``self.core`` (a :class:`ShieldCore`)."""

    core: ShieldCore

    @property
    def kernel(self) -> Any:
        """The compiled history update + KB scoring (:attr:`ShieldCore.kernel`)."""
        return self.core.kernel

    @kernel.setter
    def kernel(self, fn: Any) -> None:
        self.core.kernel = fn


class ShieldHalt:
    """Mixin of the single-env and vector shields: their fail-safe state. The class using it sets ``self._error``
    (the fault, None while trading); the multi-agent shield halts per agent instead."""

    _error: BaseException | None

    @property
    def halted(self) -> bool:
        """True from a fail-safe fault (in ``step``, ``reset`` or ``action_masks``) until the next ``reset()``."""
        return self._error is not None

    @property
    def halt_reason(self) -> str | None:
        """``"shield_error: <ExceptionType>: <message>"`` of the fault, None while trading."""
        return None if self._error is None else reason(self._error)


def ltn_record(rules: dict[str, Any], sat: Any, proposed: Any, final: Any, threshold: Any,
               action_sat: Any = None, enforced: bool = True) -> dict[str, Any]:
    """The ``info["ltn"]`` of every shield: the proposal's scores and what was executed.

    Works on one decision (Python scalars) and on a batch (arrays of shape ``(n,)``).

    Args:
        rules: ``{rule name: truth}`` of the proposal (``{}`` after a fault).
        sat: its SatAgg (0 after a fault).
        proposed: the proposed action (JSON-able for one decision).
        final: the executed action (None when nothing executed).
        threshold: τ.
        action_sat: the *graded* SatAgg of every discrete action in the state the proposal was judged in
            (:mod:`wrappers.rules`, "Graded truths"), ``(A,)`` (``(n, A)`` for a batch); None for continuous
            actions or after a fault. The replay buffer keeps it for the logical loss (:mod:`replay.losses`).
        enforced: False for an observing shield (``LTNShield(enforce=False)``): nothing is overridden.

    Returns:
        ``rules``, ``sat_agg``, ``violation = 1 − sat_agg``, ``overridden = sat_agg < threshold`` (when enforced),
        ``proposed_action``, ``final_action``, ``threshold`` and ``action_sat``.
    """
    return {
        "rules": rules,
        "sat_agg": sat,
        "violation": 1.0 - sat,
        "overridden": (sat < threshold) & enforced,
        "proposed_action": proposed,
        "final_action": final,
        "threshold": threshold,
        "action_sat": action_sat,
    }


def halt_record(proposed: Any, threshold: Any, sat: Any = 0.0) -> dict[str, Any]:
    """``info["ltn"]`` of a fail-safe halt: nothing judged, nothing executed (violation 1, overridden)."""
    return ltn_record({}, sat, proposed, None, threshold)


def shield_context(params: np.ndarray, config: MarketConfig, threshold: float, nearest: bool) -> np.ndarray:
    """The KB's ``K_*`` parameters, the market constants and the decision (``C_*``): one array, few kernel arguments.

    The graded truths' value at a limit (``K_BOUNDARY_TRUTH``) is set to ``threshold``, so that a graded truth is
    ≥ τ exactly where its crisp rule holds (:mod:`wrappers.rules`, "Graded truths").
    """
    ctx = np.empty(N_CONTEXT, dtype=np.float64)
    ctx[:N_KB_PARAMS] = params
    ctx[K_BOUNDARY_TRUTH] = threshold
    ctx[C_WINDOW] = config.window
    ctx[C_N_LEVELS] = config.n_levels
    ctx[C_MAX_POSITION] = config.max_position
    ctx[C_LOT] = config.lot
    ctx[C_FEE_BPS] = config.fee_bps
    ctx[C_THRESHOLD] = threshold
    ctx[C_NEAREST] = 1.0 if nearest else 0.0
    return ctx


# ----------------------------------------------------------------------------- compiled core
@njit(cache=True)
def sync_histories(hist, rows, out):  # pragma: no cover - compiled
    """Bring history ``k`` up to date with market row ``rows[k]``, by the market's step counter.

    ``out[O_STEP]`` above the last recorded step: the market stepped, record the fill,
    volume, σ and step; below it: it was reset (Gymnasium's next-step autoreset of a
    vector env), restart the history from the reset state (its σ seeds σ_hist); equal:
    nothing new.
    """
    for k in range(hist.shape[0]):
        h = hist[k]
        o = out[rows[k]]
        step = o[O_STEP]
        if step > h[H_LAST_STEP]:
            history_record(h, o[O_VOLUME], step, o[O_EXEC_QTY], o[O_EXEC_PRICE], o[O_VOLATILITY])
        elif step < h[H_LAST_STEP]:
            history_reset(h, o[O_VOLUME], step, o[O_VOLATILITY])


@njit(cache=True)
def reset_histories(hist, rows, out):  # pragma: no cover - compiled
    """Start every history flat from its market row's reset state (its σ seeds σ_hist)."""
    for k in range(hist.shape[0]):
        o = out[rows[k]]
        history_reset(hist[k], o[O_VOLUME], o[O_STEP], o[O_VOLATILITY])


@njit(cache=True)
def shield_score(hist, rows, obs, out, ctx, q, truths, sat, graded, graded_sat):  # pragma: no cover - compiled
    """Update the histories (:func:`sync_histories`), then score the candidates ``q`` of every row.

    Args:
        hist: ``(n, H)`` trade-history rows (:mod:`wrappers._state`), one per shielded row.
        rows: ``(n,)`` int64: the market row of each history.
        obs: ``(m, D)`` float32 flat observation rows (book at ``[2·window, 2·window + 4·n_levels)``).
        out: ``(m, ≥ N_OUT)`` float64 ``O_*`` rows.
        ctx: :func:`shield_context`.
        q: ``(n, A)`` candidate signed quantities (shares).
        truths: ``(n, A, 5)`` output rule truths; ``sat``: ``(n, A)`` output SatAgg.
        graded: ``(n, A, 5)`` output graded truths; ``graded_sat``: ``(n, A)`` their SatAgg.
    """
    sync_histories(hist, rows, out)
    n_levels = int(ctx[C_N_LEVELS])
    b0 = 2 * int(ctx[C_WINDOW])
    lot = ctx[C_LOT]
    decoded = np.empty((4, n_levels), dtype=np.float64)  # scratch, reused by every row
    for k in range(hist.shape[0]):
        h = hist[k]
        i = rows[k]
        o = out[i]
        mid = o[O_MID]
        decode_book_into(obs[i, b0:b0 + 4 * n_levels].reshape((n_levels, 4)), mid, lot, True, decoded)
        kb_decoded(q[k], decoded, ctx, truths[k], sat[k], graded[k], graded_sat[k], o[O_POSITION], o[O_CASH], mid, o[O_VPIN],
                   o[O_VOLATILITY], volatility_baseline(h), mean_volume(h), recent_loss_sale(h, h[H_LAST_STEP] + 1.0),
                   ctx[C_MAX_POSITION], lot, ctx[C_FEE_BPS])


@njit(cache=True)
def choose_actions(q, sat, proposed, threshold, nearest, final):  # pragma: no cover - compiled
    """The executed candidate of every row: the proposal if ``SatAgg ≥ threshold``, else HOLD (column 0),
    or with ``nearest`` the permitted candidate closest in quantity to the proposal.

    ``nearest`` minimizes ``(|q_a − q_p|, −SatAgg_a, |q_a|, a)`` lexicographically over the
    permitted candidates, HOLD always among them.

    Args:
        q: ``(n, A)`` candidate quantities, HOLD (0) in column 0; ``sat``: ``(n, A)`` their SatAgg.
        proposed: ``(n,)`` the proposal's column; ``final``: ``(n,)`` output.
    """
    for i in range(proposed.shape[0]):
        p = proposed[i]
        if sat[i, p] >= threshold:
            final[i] = p
            continue
        best = 0
        if nearest:
            target = q[i, p]
            key0, key1, key2 = abs(q[i, 0] - target), -sat[i, 0], abs(q[i, 0])
            for a in range(1, q.shape[1]):
                if sat[i, a] < threshold:
                    continue
                k0, k1, k2 = abs(q[i, a] - target), -sat[i, a], abs(q[i, a])
                if k0 < key0 or (k0 == key0 and (k1 < key1 or (k1 == key1 and k2 < key2))):
                    best, key0, key1, key2 = a, k0, k1, k2
        final[i] = best


@njit(cache=True)
def shield_decide(hist, idx, obs, out, ctx, q, truths, sat, graded, graded_sat):  # pragma: no cover - compiled
    """One decision for every row in one call: :func:`shield_score`, then :func:`choose_actions` with the
    threshold and fallback of ``ctx``.

    ``idx`` is ``(3, n)`` int64: the market row of each history, the proposal's candidate column
    and (output) the executed candidate column, packed in one array for a cheap call from Python;
    the other arguments are :func:`shield_score`'s.
    """
    shield_score(hist, idx[0], obs, out, ctx, q, truths, sat, graded, graded_sat)
    choose_actions(q, sat, idx[1], ctx[C_THRESHOLD], ctx[C_NEAREST] != 0.0, idx[2])


def _entry_point(dispatcher: Any, args: tuple) -> Any:
    """The compiled entry point of ``dispatcher`` for the exact types of ``args`` (None if unavailable).

    Calling it skips numba's per-call type dispatch (≈0.3 µs), which matters on the hot path of
    a single env.
    """
    try:
        signature = tuple(dispatcher.typeof_pyval(a) for a in args)
        return dispatcher.overloads[signature].entry_point
    except Exception:  # numba internals changed: keep using the dispatcher
        return None


# ----------------------------------------------------------------------------- the core
class ShieldCore:
    """The decision of an LTN shield over ``n_rows`` rows of a market's buffers, one compiled call per decision.

    An adapter calls :meth:`attach` after each reset of its env (the buffers and which rows
    are shielded), then per step either :meth:`decide` (discrete indices) or
    :meth:`decide_continuous` (target fractions), reads the proposals' scores with
    :meth:`proposal_scores` / :meth:`batch_scores`, and sets :attr:`scored` to False after the
    env stepped. :meth:`masks` scores once per step; the next decision reuses the scores.

    Args:
        n_rows: rows decided together (1, ``num_envs``, or the shielded agents).
        action_space: the (single) action space: ``Discrete(2k+1)`` or ``Box(-1, 1, (1,))``.
        config: the market's :class:`~janus_env.config.MarketConfig`.
        n_sizes: ``k`` of the discrete action table (:func:`janus_env.actions.sized_quantity`).
        threshold: τ, the minimum SatAgg of an executed action (:data:`DEFAULT_THRESHOLD`).
        fallback: ``"hold"`` or ``"nearest"`` (module docstring).
        knowledge_base: the rules and their parameters (default ``TradingKnowledgeBase()``); its graded truths
            are anchored at ``threshold`` (:func:`shield_context`) whatever its ``boundary_truth``.

    Raises:
        TypeError: ``threshold`` is not a real number, ``fallback`` not a str, ``knowledge_base`` not
            a ``TradingKnowledgeBase``, or an action space other than Discrete or Box.
        ValueError: ``threshold`` outside (0, 1], or an unknown ``fallback``.
    """

    def __init__(self, n_rows: int, action_space: spaces.Space, config: MarketConfig, n_sizes: int,
                 threshold: float = DEFAULT_THRESHOLD, fallback: str = "hold",
                 knowledge_base: TradingKnowledgeBase | None = None) -> None:
        self.threshold = check_fraction("threshold", threshold, low_open=True)
        if not isinstance(fallback, str):
            raise TypeError(BAD_VALUE.format(name="fallback", expected="a str", value=fallback))
        check_choice("fallback", fallback, FALLBACKS)
        if knowledge_base is not None and not isinstance(knowledge_base, TradingKnowledgeBase):
            raise TypeError(_BAD_KB.format(knowledge_base))
        if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
            raise TypeError(_BAD_SPACE.format(action_space))
        self.fallback = fallback
        self.knowledge_base = kb = knowledge_base if knowledge_base is not None else TradingKnowledgeBase()
        self.action_space = action_space
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.n_rows = n = int(n_rows)
        self.hist = kb.history_rows(n)
        """``(n, H)`` trade-history rows, one per shielded row."""
        self.histories = [kb.history(row=h) for h in self.hist]
        self.idx = np.zeros((3, n), dtype=np.int64)
        """:attr:`rows`, :attr:`proposed` and :attr:`final` packed in one array (an argument of
        :func:`shield_decide`, one call from Python)."""
        self.rows = self.idx[0]
        """The market row of each shielded row."""
        self.proposed = self.idx[1]
        """The proposal's candidate column of every row (the action index; 1 for continuous targets)."""
        self.final = self.idx[2]
        """The executed candidate column of every row (the last decision)."""
        self.rows[:] = np.arange(n)
        self.ctx = shield_context(kb.params, config, self.threshold, fallback == "nearest")
        self._nearest = fallback == "nearest"
        self._lot = float(config.lot)
        self._max_position = float(config.max_position)
        # the env's quantity grid: a continuous target is round(fraction · max_units) grid steps
        self._qty_step = float(config.resolved_qty_step)
        self._max_units = float(config.max_position_units)
        if self.discrete:
            k = int(action_space.n)
            self.quantities = np.array([sized_quantity(i, n_sizes, config.lot) for i in range(k)], dtype=np.float64)
            """Signed order quantity of every discrete action."""
            self._buffers(np.tile(self.quantities, (n, 1)))
        else:
            self.quantities = np.zeros(0, dtype=np.float64)
            self._buffers(np.zeros((n, 2), dtype=np.float64))
        self.scored = False
        """Whether ``sat``/``truths`` hold this step's scores (adapters reset it after each env step)."""
        self.obs: np.ndarray | None = None
        self.out: np.ndarray | None = None
        self._kernel: Any = shield_score
        self._entry: Any = None
        self._args: tuple = ()
        self._decide_args: tuple = ()

    def _buffers(self, q: np.ndarray) -> None:
        self.q = q
        """``(n, A)`` candidate quantities of every row (HOLD in column 0)."""
        self.truths = np.empty((*q.shape, len(RULE_NAMES)), dtype=np.float64)
        """``(n, A, 5)`` rule truths of every candidate."""
        self.sat = np.empty(q.shape, dtype=np.float64)
        """``(n, A)`` SatAgg of every candidate (the decision's)."""
        self.graded = np.empty_like(self.truths)
        """``(n, A, 5)`` graded rule truths of every candidate (:mod:`wrappers.rules`, "Graded truths")."""
        self.graded_sat = np.empty_like(self.sat)
        """``(n, A)`` SatAgg of the graded truths of every candidate (the logical loss's input)."""

    # ------------------------------------------------------------------ state
    @property
    def kernel(self) -> Any:
        """The compiled history update + scoring, :func:`shield_score` (settable: tests inject faults with it)."""
        return self._kernel

    @kernel.setter
    def kernel(self, fn: Any) -> None:
        self._kernel = fn
        self._entry = None

    def attach(self, buffers: tuple[np.ndarray, np.ndarray], rows: np.ndarray | None = None) -> None:
        """Read the market through ``buffers = (obs, out)`` (the env's ``buffers()``) and restart every
        history from the reset state of its row; call after each reset of the env.

        Args:
            buffers: the flat float32 observation rows and the float64 ``O_*`` rows.
            rows: the market row of each shielded row (default ``0 .. n − 1``).
        """
        self.obs, self.out = buffers
        if rows is not None:
            self.rows[:] = rows
        reset_histories(self.hist, self.rows, self.out)
        self.scored = False
        self._entry = None  # looked up again for these buffers' types
        self._set_args()

    def _set_args(self) -> None:
        self._args = (self.hist, self.rows, self.obs, self.out, self.ctx, self.q, self.truths, self.sat, self.graded,
                      self.graded_sat)
        self._decide_args = (self.hist, self.idx, self.obs, self.out, self.ctx, self.q, self.truths, self.sat,
                             self.graded, self.graded_sat)

    def history(self, k: int = 0) -> TradeHistory:
        """Row ``k``'s trade history (a view of its row), up to date with the last step."""
        if self.out is not None:
            sync_histories(self.hist, self.rows, self.out)
        return self.histories[k]

    # ------------------------------------------------------------------ scoring
    def score(self) -> None:
        """Score every candidate of every row (once per step; histories brought up to date first)."""
        if not self.scored:
            self._kernel(*self._args)
            self.scored = True

    def masks(self) -> np.ndarray:
        """``(n, A)`` permitted discrete actions: ``SatAgg ≥ threshold``, HOLD always True.

        Raises:
            TypeError: the action space is not Discrete.
        """
        if not self.discrete:
            raise TypeError(_MASKS_DISCRETE.format(self.action_space))
        self.score()
        mask = self.sat >= self.threshold
        mask[:, HOLD] = True
        return mask

    def evaluate(self, quantities: np.ndarray, k: int = 0) -> KBResult:
        """The KB on row ``k``'s current state for the candidate ``quantities`` (shares, shape ``(c,)``)."""
        q = np.ascontiguousarray(quantities, dtype=np.float64)
        truths = np.empty((1, q.shape[0], len(RULE_NAMES)), dtype=np.float64)
        sat = np.empty((1, q.shape[0]), dtype=np.float64)
        graded = np.empty_like(truths)
        graded_sat = np.empty_like(sat)
        self._kernel(self.hist[k:k + 1], self.rows[k:k + 1], self.obs, self.out, self.ctx, q[None, :], truths, sat,
                     graded, graded_sat)
        return KBResult(q, truths[0], sat[0], graded[0], graded_sat[0])

    # ------------------------------------------------------------------ decisions
    def decide(self) -> np.ndarray:
        """The executed action of every row for the proposals in :attr:`proposed` (discrete): :attr:`final`.

        One compiled call (:func:`shield_decide`), or only the choice when :meth:`masks` already scored.
        """
        entry = self._entry  # set only while the kernel is the stock one
        if self.scored:
            choose_actions(self.q, self.sat, self.proposed, self.threshold, self._nearest, self.final)
        elif entry is not None:  # the hot path: score and choose in one call
            entry(*self._decide_args)
            self.scored = True
        elif self._kernel is shield_score:
            shield_decide(*self._decide_args)
            self._entry = _entry_point(shield_decide, self._decide_args)
            self.scored = True
        else:
            self.score()
            choose_actions(self.q, self.sat, self.proposed, self.threshold, self._nearest, self.final)
        return self.final

    def decide_continuous(self, fractions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Judge continuous targets (fractions of ``max_position``) for every row.

        The proposal is the order the env will send: ``round(fraction · max_units) − round(position /
        qty_step)`` grid steps, in quantity (a NaN fraction: no proposal, a zero order). Candidates
        ``[0, proposal]``, with ``fallback="nearest"`` followed by the whole-lot moves toward the
        target, largest first.

        Returns:
            ``(allowed, targets)``: whether each proposal stands, and (where it does not) the
            float32 target fraction executed instead, ``(position + move) / max_position``, which the env
            rounds back to exactly the scored ``move`` (beyond :data:`FLOAT32_EXACT_UNITS` grid units the
            fallback candidates are the moves a float32 reaches: :func:`float32_targets`).

        Raises:
            ValueError: beyond :data:`FLOAT32_EXACT_UNITS`, a row whose fallback is an unreachable HOLD and whose
                nearest reachable position is not permitted (the shields' fail-safe halts: nothing is sent).
        """
        position = self.out[self.rows, O_POSITION]
        step = self._qty_step
        fractions = np.asarray(fractions, dtype=np.float64)
        units = np.rint(position / step)
        proposal = (np.rint(fractions * self._max_units) - units) * step
        proposal[np.isnan(fractions)] = 0.0
        n_lots = np.floor(np.abs(proposal) / self._lot + 1e-9) if self._nearest else np.zeros(self.n_rows)
        width = 2 + int(n_lots.max(initial=0.0))
        if self.q.shape[1] < width:  # grown, never shrunk: spare columns are zero orders (HOLD again)
            self._buffers(np.zeros((self.n_rows, width), dtype=np.float64))
            self._set_args()
        q = self.q
        width = q.shape[1]
        q[:, 0] = 0.0
        q[:, PROPOSAL_COLUMN] = proposal
        if width > 2:
            lots = n_lots[:, None] - np.arange(width - 2, dtype=np.float64)[None, :]  # largest move first
            q[:, 2:] = np.where(lots > 0.0, (np.sign(proposal) * self._lot)[:, None] * lots, 0.0)
        rows = np.arange(self.n_rows)
        # every candidate position lies between the position and a target within ±max_units
        exact = self._max_units < FLOAT32_EXACT_UNITS and np.abs(units).max(initial=0.0) < FLOAT32_EXACT_UNITS
        if not exact:  # float32 targets cannot reach every position: score the fallbacks a float32 reaches
            desired = units[:, None] + np.rint(q / step)
            reachable, executed = float32_targets(desired, units, self._max_units)
            moved = executed != desired
            moved[:, PROPOSAL_COLUMN] = False  # the proposal is the agent's own action, sent as it is
            q[moved] = ((executed - units[:, None]) * step)[moved]
        self.proposed[:] = PROPOSAL_COLUMN
        self.scored = False
        final = self.decide()
        allowed = final == PROPOSAL_COLUMN
        move = q[rows, final]
        if exact:
            return allowed, ((position + move) / self._max_position).astype(np.float32)
        unsafe = ~allowed & (move != 0.0) & (self.sat[rows, final] < self.threshold)  # an unreachable HOLD
        if unsafe.any():
            k = int(np.argmax(unsafe))
            raise ValueError(_NO_SAFE_TARGET.format(units[k], self._max_units, move[k] / step,
                                                    float(self.sat[k, final[k]]), self.threshold))
        return allowed, reachable[rows, final]

    # ------------------------------------------------------------------ records
    def proposal_scores(self, k: int = 0) -> tuple[float, dict[str, float]]:
        """Row ``k``'s proposal after a decision: its SatAgg and ``{rule: truth}`` (Python floats)."""
        p = self.idx.item(1, k)
        t = self.truths[k, p].tolist()
        return self.sat.item(k, p), {_R0: t[0], _R1: t[1], _R2: t[2], _R3: t[3], _R4: t[4]}

    def batch_scores(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Every row's proposal after a decision: SatAgg ``(n,)`` and ``{rule: truths (n,)}``."""
        rows = np.arange(self.n_rows)
        p = self.proposed
        return self.sat[rows, p], {name: self.truths[rows, p, r] for r, name in enumerate(RULE_NAMES)}


__all__ = [
    "DEFAULT_THRESHOLD", "FALLBACKS", "FLOAT32_EXACT_UNITS", "HALT_PREFIX", "HOLD", "CoreKernel", "ShieldCore",
    "choose_actions", "float32_targets", "halt_record", "ltn_record", "reason", "shield_decide", "shield_score",
    "sync_histories",
]
