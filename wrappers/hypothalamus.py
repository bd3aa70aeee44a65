"""``Hypothalamus``: position sizing — fractional Kelly, volatility targeting, drawdown scaling, cash reserve.

For a proposed order Δ (shares) from position q₀, only the part of Δ that
*increases* |position| is sized; the part that reduces it passes unchanged
(cutting a de-risking order would add risk). The increasing part is multiplied by

    scale = kelly_scale · vol_scale · drawdown_scale ∈ [0, 1]

(DESIGN.md: fractional Kelly ``f* = (p(b+1) − 1)/b``, ``size ×= σ_target/σ``,
``size ×= max(0.1, 1 − DD/DD_max)``) and rounded to the nearest share, then cut
further until the cash reserve holds, then rounded toward zero to what the
action space can express. The
result never exceeds the proposal in size and never flips its sign.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from janus_env.actions import ACTION_ERRORS, continuous_fraction, discrete_index, sized_quantity
from janus_env.checks import NEED_RESET, check_bool, check_fraction, check_number, check_positive
from janus_env.lob_env import NO_EXECUTION_INFO

SIZED_ACTION_TYPES = ("sized", "continuous")

_BAD_ACTION_TYPE = ("Hypothalamus sizes `action_type` 'sized' or 'continuous' envs, got {!r}: with "
                    "Discrete(3) there is one order size, so sizing could only veto trades (the shield's "
                    "and the basal ganglia's job); make the env with action_type='sized' or 'continuous'")
HALT_PREFIX = "sizing_error: "
"""``halt_reason`` of a fail-safe halt starts with this, then ``<ExceptionType>: <message>``."""

_NOT_JANUS = ("Hypothalamus needs a JanusLOBEnv-like env whose `unwrapped` has `config` (lot, max_position, "
              "fee_bps), `action_type` and `n_sizes`; got {!r}")


def _halt_reason(err: BaseException) -> str:
    return f"{HALT_PREFIX}{type(err).__name__}: {err}"


def _halt_sizing(action: Any, final: Any) -> dict[str, Any]:
    """``info["sizing"]`` of a fail-safe halt: the proposal and what was sent (None: nothing)."""
    try:
        proposed = np.asarray(action).tolist()
    except Exception:  # noqa: BLE001 - the record must not fail: the proposal is shown as text
        proposed = repr(action)
    return {"proposed_action": proposed, "final_action": final}


def kelly_fraction(win_rate: float, win_loss_ratio: float) -> float:
    """Kelly's optimal fraction of capital at risk, ``f* = (p(b + 1) − 1) / b`` (Kelly, 1956).

    Args:
        win_rate: p, probability that a trade wins.
        win_loss_ratio: b, average win / average loss (> 0).

    Returns:
        f*, which is ≤ 0 when the bet has no edge.
    """
    return (win_rate * (win_loss_ratio + 1.0) - 1.0) / win_loss_ratio


class TradeStats:
    """Online win rate and win/loss sizes of closed trades, shrunk toward a prior.

    With ``n₀`` pseudo-trades of win rate ``p₀``, average win ``w₀`` and average
    loss ``l₀`` (returns on cost, fractions):

        p = (wins + n₀·p₀) / (n + n₀)
        W̄ = (Σ win returns + n₀·p₀·w₀) / (wins + n₀·p₀)
        L̄ = (Σ |loss returns| + n₀·(1 − p₀)·l₀) / (losses + n₀·(1 − p₀))
        b = W̄ / L̄

    A trade is every fill that reduces |position|; its return is
    ``sign(q₀)·(p_exec − cost)/cost`` per share net of that fill's fee, where
    ``cost`` is the average entry price of the open position. A return of
    exactly 0 counts as neither a win nor a loss.
    """

    def __init__(self, prior_trades: float, prior_win_rate: float, prior_avg_win: float,
                 prior_avg_loss: float) -> None:
        self.prior_trades = prior_trades
        self.prior_win_rate = prior_win_rate
        self.prior_avg_win = prior_avg_win
        self.prior_avg_loss = prior_avg_loss
        self.clear()

    def clear(self) -> None:
        self.wins = 0
        self.losses = 0
        self.sum_win = 0.0
        self.sum_loss = 0.0

    def add(self, ret: float) -> None:
        if ret > 0:
            self.wins += 1
            self.sum_win += ret
        elif ret < 0:
            self.losses += 1
            self.sum_loss -= ret

    @property
    def win_rate(self) -> float:
        n0, p0 = self.prior_trades, self.prior_win_rate
        return (self.wins + n0 * p0) / (self.wins + self.losses + n0)

    @property
    def avg_win(self) -> float:
        n0, p0 = self.prior_trades, self.prior_win_rate
        return (self.sum_win + n0 * p0 * self.prior_avg_win) / (self.wins + n0 * p0)

    @property
    def avg_loss(self) -> float:
        n0, p0 = self.prior_trades, self.prior_win_rate
        return (self.sum_loss + n0 * (1.0 - p0) * self.prior_avg_loss) / (self.losses + n0 * (1.0 - p0))


class Hypothalamus(gym.Wrapper):
    """Size the agent's orders: fractional Kelly × volatility target × drawdown scaling, with a cash reserve.

    Works with ``action_type="sized"`` (``Discrete(2k+1)``) and
    ``"continuous"`` (``Box(-1, 1)`` target position). ``"discrete"``
    (``Discrete(3)``) raises ``ValueError``: with one order size, any scale < 1
    could only turn trades into HOLD, which is a veto, not sizing.

    All inputs are taken from the info the agent decided on (the previous step's,
    or reset's): ``position``, ``cash``, ``equity``, ``mid``, ``volatility``,
    ``drawdown``; fills (``exec_qty``, ``exec_price``, ``fees``) update the trade
    statistics after the step.

    **Scales** (applied to the part of the order that increases |position|):

    * Kelly (Kelly, 1956; "fractional Kelly" as in Thorp, 2006):
      ``f* = (p(b+1) − 1)/b`` from ``TradeStats`` (closed trades of this session
      with a prior of ``prior_trades`` = 20 pseudo-trades, ``p₀`` = 0.55,
      ``w₀ = l₀`` = 10 bps *(ours)*, so the prior edge is f* = 0.10).
      ``kelly_fraction = kelly_multiplier · max(f*, 0)`` (multiplier 0.5, "half
      Kelly"). f* is the fraction of equity *at risk*; a losing trade loses
      L̄ of its notional, so the Kelly notional is ``x = kelly_fraction / L̄`` times
      equity, and ``kelly_scale = min(1, x·equity / (max_position·mid))`` — the
      Kelly position as a share of the position limit. Per-trade returns in this
      market are a few bps, so the Kelly scale is 1 while the edge is clearly
      positive and acts as an edge gate: it shrinks orders as f* → 0 and blocks
      new exposure when f* ≤ 0. Statistics are per session (cleared by
      ``reset()``) unless ``persist_stats=True``.
    * volatility (volatility targeting, e.g. Moreira & Muir, 2017):
      ``vol_scale = min(1, σ_target/σ)``, σ = ``1e4·info["volatility"]`` bps per
      step; σ = 0 gives 1. By default the target is relative to the instrument's
      own history, so it adapts to bar size and asset: ``σ_target =
      sigma_target_ratio · σ_base`` with ``σ_base`` the root of an EWMA of σ²
      (seeded by the reset info's σ, equal weights for the first readings, then a
      half-life of ``vol_halflife`` = 500 steps, the breakers' baseline horizon)
      and ``sigma_target_ratio`` = 1.5 *(ours: calm fluctuations of the window σ
      stay near 1× their baseline, so calm orders pass whole; sizes shrink once σ
      runs 1.5× above its norm, half-way to the amygdala's 3× halt)*. An absolute
      ``sigma_target_bps`` (bps per step) overrides it.
    * drawdown: ``drawdown_scale = max(min_drawdown_scale, 1 − DD/DD_max)``,
      DD = ``info["drawdown"]``, ``max_drawdown`` = 0.10 (the amygdala's
      breaker), ``min_drawdown_scale`` = 0.1.

    **Cash reserve** (DESIGN.md: "cash reserve never below 20% of equity"). After
    the order, valued at the pre-trade mid m with the order's exact cost (the
    visible book is walked level by level, fees included):

        |q′|·m ≤ (1 − ρ)·E′,    E′ = C′ + q′·m,   ρ = ``cash_reserve`` = 0.2

    For a long position this is exactly ``C′ ≥ ρ·E′`` (cash ≥ 20% of equity).
    For a short, the sale proceeds are not free cash: the short is collateralized
    one-for-one from equity, and the reserve is what is left,
    ``E′ − |q′|·m ≥ ρ·E′`` — the mirror image of the long rule. Both bound gross
    exposure by 80% of equity. The increasing part of the order is cut (to whole units
    of the quantity grid, then to the action's granularity) until this holds; an order that
    would need more depth than the visible book (``n_levels``) is cut to it. If
    the reserve already fails before the order (the price moved since the last
    trade), no exposure is added, but reductions still pass: the wrapper never
    forces a trade. The reserve is therefore guaranteed at every fill that
    increases |position|, valued at the pre-trade mid; price moves *after* the
    fill (the flow that runs inside the same ``env.step``) can erode it until
    the next decision.

    **Mapping back to the action.** Sized: the final quantity is rounded toward
    zero to a whole number of lots (at most ``n_sizes``), i.e. the nearest allowed
    size index not exceeding it — so any scale < 1 on a one-lot order gives HOLD,
    and a 5-lot order scaled by 0.9 becomes 4 lots. Continuous: the target becomes
    ``(q₀ + Δ′)/max_position`` (float32). The proposal is first clipped to the
    position limit (the env would cut it there anyway), so the env never rejects
    a sized order. When nothing was cut, the agent's own action object is
    forwarded unchanged.

    **Fail-safe.** An exception anywhere in the wrapper's ``step`` (the scales, the
    cash-reserve search, the book walk, the trade statistics) or ``reset`` never sends
    an unsized order: before the env steps, the order is not forwarded and the step is
    terminal (reward 0, the last observation, fill keys zeroed) with
    ``info["halted"] = True``, ``info["halt_reason"] = "sizing_error: <ExceptionType>:
    <message>"`` and ``info["sizing"] = {"proposed_action": ..., "final_action": None}``;
    after the env stepped (the fill accounting), the order has executed: the step's own
    result is returned, terminated, with the same ``halted`` keys. A fault in ``reset``
    marks the reset info halted and halts the first step unforwarded. Afterwards
    :attr:`halted` is True and ``step()`` raises ``RuntimeError`` until ``reset()``.
    Invalid actions (:data:`~janus_env.actions.ACTION_ERRORS`) raise before anything
    executes and do not halt; exceptions from the wrapped env propagate.

    ``info["sizing"]`` (every step): ``kelly_fraction``, ``kelly_scale``,
    ``win_rate``, ``win_loss_ratio``, ``n_trades``, ``vol_scale``,
    ``drawdown_scale``, ``scale``, ``proposed_qty`` (quantity the raw action asked
    for, in the env's units: shares, or e.g. BTC on a ``lot=0.01`` grid), ``final_qty``
    (quantity sent), ``cuts`` (quantity removed by
    ``position_limit``, ``scale``, ``reserve``, ``rounding``), ``reserve_ok_before``,
    ``proposed_action``, ``final_action``.

    Args:
        env: a ``JanusLOBEnv`` (or a wrapper of one) with ``action_type`` "sized" or "continuous".
        kelly_multiplier: fraction of full Kelly (0.5).
        prior_trades: pseudo-trades of the prior (20).
        prior_win_rate: p₀ (0.55).
        prior_avg_win: w₀, average winning return (0.001 = 10 bps).
        prior_avg_loss: l₀, average losing return magnitude (0.001).
        sigma_target_bps: absolute σ_target, bps per step; None (default) → relative to the
            instrument's own σ baseline (see above).
        sigma_target_ratio: σ_target / σ_base in the relative mode (1.5).
        vol_halflife: half-life of the σ baseline's EWMA, steps (500).
        max_drawdown: DD_max (0.10).
        min_drawdown_scale: floor of the drawdown scale (0.1).
        cash_reserve: ρ (0.2).
        fallback_slippage_bps: when the env has no ``book()``, orders are costed
            at mid ± this many bps with unlimited depth (50) — an approximation.
        persist_stats: keep the trade statistics across ``reset()`` (False).

    Raises:
        ValueError: ``action_type`` is "discrete", or an argument is out of range (NaN and ±inf included).
        TypeError: the env is not JanusLOBEnv-like, or an argument has the wrong type (a number that is
            not a real number, ``persist_stats`` that is not a bool).
        RuntimeError: ``step()`` before ``reset()``, after the episode ended or after a fail-safe halt.

    ```python
    env = AuditLog(Amygdala(LTNShield(Hypothalamus(
        gym.make("Janus-LOB-v0", action_type="sized", n_sizes=5, seed=0)))), "audit.jsonl")
    ```
    """

    def __init__(
        self,
        env: gym.Env,
        *,
        kelly_multiplier: float = 0.5,
        prior_trades: float = 20.0,
        prior_win_rate: float = 0.55,
        prior_avg_win: float = 0.001,
        prior_avg_loss: float = 0.001,
        sigma_target_bps: float | None = None,
        sigma_target_ratio: float = 1.5,
        vol_halflife: float = 500.0,
        max_drawdown: float = 0.10,
        min_drawdown_scale: float = 0.1,
        cash_reserve: float = 0.2,
        fallback_slippage_bps: float = 50.0,
        persist_stats: bool = False,
    ) -> None:
        super().__init__(env)
        base = env.unwrapped
        config = getattr(base, "config", None)
        action_type = getattr(base, "action_type", None)
        if config is None or action_type is None or not all(
                hasattr(config, k) for k in ("lot", "max_position", "fee_bps")):
            raise TypeError(_NOT_JANUS.format(base))
        if action_type not in SIZED_ACTION_TYPES:
            raise ValueError(_BAD_ACTION_TYPE.format(action_type))
        self.action_type = action_type
        self.n_sizes = int(getattr(base, "n_sizes", 1))
        # sizing runs in whole units of the env's quantity grid (1 share, or e.g. 0.01 BTC), so it stays exact
        self.qty_step = float(getattr(config, "resolved_qty_step", 1.0))
        self.lot = int(round(float(config.lot) / self.qty_step))
        self.max_position = int(round(float(config.max_position) / self.qty_step))
        self.fee_bps = float(config.fee_bps)
        self.kelly_multiplier = check_positive("kelly_multiplier", kelly_multiplier)
        n0 = check_positive("prior_trades", prior_trades)
        p0 = check_fraction("prior_win_rate", prior_win_rate, low_open=True, high_open=True)
        avg_win = check_positive("prior_avg_win", prior_avg_win)
        avg_loss = check_positive("prior_avg_loss", prior_avg_loss)
        self.sigma_target_ratio = check_positive("sigma_target_ratio", sigma_target_ratio)
        halflife = check_positive("vol_halflife", vol_halflife)
        self.max_drawdown = check_positive("max_drawdown", max_drawdown)
        self.sigma_target_bps = check_positive("sigma_target_bps", sigma_target_bps, optional=True)
        self.stats = TradeStats(n0, p0, avg_win, avg_loss)
        self._vol_alpha = 1.0 - 2.0 ** (-1.0 / halflife)
        self._var_base = 0.0
        self._n_base = 0
        self.min_drawdown_scale = check_fraction("min_drawdown_scale", min_drawdown_scale)
        self.cash_reserve = check_fraction("cash_reserve", cash_reserve, high_open=True)
        self.fallback_slippage_bps = check_number("fallback_slippage_bps", fallback_slippage_bps, low=0)
        self.persist_stats = check_bool("persist_stats", persist_stats)
        self._info: dict[str, Any] | None = None
        self._obs: Any = None
        self._error: Exception | None = None
        self._cost = 0.0

    @property
    def halted(self) -> bool:
        """True from a fail-safe fault in ``step`` or ``reset`` until the next ``reset()``."""
        return self._error is not None

    @property
    def halt_reason(self) -> str | None:
        """``"sizing_error: <ExceptionType>: <message>"`` of the fault, None while trading."""
        return None if self._error is None else _halt_reason(self._error)

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._info = None  # until the reset succeeded: a failed inner reset leaves nothing to step
        self._error = None
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = obs
        try:
            if not self.persist_stats:
                self.stats.clear()
            self._cost = 0.0
            self._var_base, self._n_base = 0.0, 0
            self._observe_volatility(info)
            self._info = dict(info)
        except Exception as err:  # fail-safe: the first step halts without forwarding its action
            self._error = err
            info = {**info, "halted": True, "halt_reason": _halt_reason(err)}
            self._info = info
        return obs, info

    def step(self, action: Any):
        if self._info is None:
            raise RuntimeError(NEED_RESET)
        if self._error is not None:  # a fault in reset: the session's first order is not sent
            return self._halt(self._error, action)
        try:
            final_action, sizing = self.size(action)
        except ACTION_ERRORS:
            raise  # the caller's invalid action: nothing ran
        except Exception as err:
            return self._halt(err, action)
        obs, reward, terminated, truncated, info = self.env.step(final_action)
        # from here the order is with the market: a fault halts with the step's own result
        try:
            info = dict(info)
            self._record_fill(info)
            self._observe_volatility(info)
            info["sizing"] = sizing
        except Exception as err:
            return self._halt_after_step(err, sizing, (obs, reward, truncated, info))
        self._obs = obs
        self._info = None if (terminated or truncated) else info
        return obs, reward, terminated, truncated, info

    # ------------------------------------------------------------------ fail-safe
    def _halt(self, err: Exception, action: Any):
        """The terminal transition of a fault before the env stepped: nothing forwarded, reward 0."""
        self._error = err
        info = {**self._info, **NO_EXECUTION_INFO, "halted": True, "halt_reason": _halt_reason(err),
                "sizing": _halt_sizing(action, None)}
        self._info = None  # step() raises until reset()
        return self._obs, 0.0, True, False, info

    def _halt_after_step(self, err: Exception, sizing: dict[str, Any], result: tuple):
        """A fault after the env stepped: the step's own result, terminated and halted (the order executed)."""
        obs, reward, truncated, info = result
        self._error = err
        try:
            info = dict(info)
        except Exception:  # noqa: BLE001 - an info that cannot be copied is replaced; the halt is what matters
            info = {}
        info.update(halted=True, halt_reason=_halt_reason(err), sizing=sizing)
        self._obs = obs
        self._info = None
        return obs, reward, True, truncated, info

    # ------------------------------------------------------------------ sizing
    def _observe_volatility(self, info: dict[str, Any]) -> None:
        """Fold ``info["volatility"]`` into the σ baseline (equal weights first, then the EWMA)."""
        sigma = float(info.get("volatility", 0.0))
        if not (math.isfinite(sigma) and sigma > 0.0):
            return
        self._n_base += 1
        alpha = max(1.0 / self._n_base, self._vol_alpha)
        self._var_base += alpha * (sigma * sigma - self._var_base)

    def sigma_target(self) -> float:
        """σ_target in bps per step: absolute, or ``sigma_target_ratio · σ_base`` (0 before any reading)."""
        if self.sigma_target_bps is not None:
            return self.sigma_target_bps
        return self.sigma_target_ratio * math.sqrt(self._var_base) * 1e4

    def scales(self) -> dict[str, float]:
        """Kelly, volatility and drawdown scales for the next order (from the last info)."""
        info = self._info if self._info is not None else {}
        st = self.stats
        p, avg_loss = st.win_rate, st.avg_loss
        b = st.avg_win / avg_loss
        f_star = kelly_fraction(p, b)
        k_frac = self.kelly_multiplier * max(f_star, 0.0)
        equity = float(info.get("equity", 0.0))
        mid = float(info.get("mid", 0.0))
        limit_value = self.max_position * self.qty_step * mid
        if k_frac <= 0 or equity <= 0 or limit_value <= 0:
            k_scale = 0.0
        else:
            k_scale = min(1.0, k_frac / avg_loss * equity / limit_value)
        sigma_bps = float(info.get("volatility", 0.0)) * 1e4
        target = self.sigma_target()
        vol_scale = 1.0 if sigma_bps <= 0 or target <= 0 else min(1.0, target / sigma_bps)
        dd = float(info.get("drawdown", 0.0))
        dd_scale = max(self.min_drawdown_scale, 1.0 - dd / self.max_drawdown)
        dd_scale = min(1.0, dd_scale)
        return {"kelly_fraction": k_frac, "kelly_f_star": f_star, "kelly_scale": k_scale, "win_rate": p,
                "win_loss_ratio": b, "n_trades": st.wins + st.losses, "vol_scale": vol_scale,
                "drawdown_scale": dd_scale, "scale": k_scale * vol_scale * dd_scale}

    def size(self, action: Any) -> tuple[Any, dict[str, Any]]:
        """The sized action for ``action`` and its ``info["sizing"]`` record (no env step)."""
        if self._info is None:
            raise RuntimeError(NEED_RESET)
        info = self._info
        q0 = int(round(float(info["position"]) / self.qty_step))
        m = self.max_position
        if self.action_type == "sized":
            proposed = sized_quantity(discrete_index(action, self.action_space), self.n_sizes, self.lot)
        else:
            proposed = int(round(continuous_fraction(action, self.action_space) * m)) - q0
        target = min(max(q0 + proposed, -m), m)
        delta = target - q0
        cut_limit = abs(proposed) - abs(delta)
        # split into the part that reduces |position| and the part that increases it
        if q0 != 0 and delta != 0 and (delta > 0) != (q0 > 0):
            reduce = int(math.copysign(min(abs(delta), abs(q0)), delta))
        else:
            reduce = 0
        increase = delta - reduce
        sc = self.scales()
        scaled = int(math.copysign(round(abs(increase) * sc["scale"]), increase)) if increase else 0
        cut_scale = abs(increase) - abs(scaled)
        reserve_ok_before = self._reserve_ok(q0, 0)
        allowed = self._reserve_limit(q0, reduce, scaled)
        cut_reserve = abs(scaled) - abs(allowed)
        final = reduce + allowed
        if self.action_type == "sized":
            lots = min(abs(final) // self.lot, self.n_sizes)
            rounded = int(math.copysign(lots * self.lot, final)) if lots else 0
            index = 0 if lots == 0 else (lots if final > 0 else self.n_sizes + lots)
            final_action: Any = np.int64(index)
        else:
            rounded = final
            final_action = np.array([(q0 + final) / m], dtype=np.float32)
        proposed_action = np.asarray(action).tolist()
        if rounded == proposed:  # nothing cut: forward the agent's own action object
            final_action = action
        final_action_rec = np.asarray(final_action).tolist()
        cut_round = abs(final) - abs(rounded)
        sizing = {
            **sc,
            "proposed_qty": self._qty(proposed),
            "final_qty": self._qty(rounded),
            "cuts": {"position_limit": self._qty(cut_limit), "scale": self._qty(cut_scale),
                     "reserve": self._qty(cut_reserve), "rounding": self._qty(cut_round)},
            "reserve_ok_before": bool(reserve_ok_before),
            "cash_reserve": self.cash_reserve,
            "proposed_action": proposed_action,
            "final_action": final_action_rec,
        }
        return final_action, sizing

    def _qty(self, units: int) -> int | float:
        """Grid units as a quantity: an int on a whole-share grid, else the float nearest the decimal."""
        if self.qty_step == 1.0:
            return int(units)
        return round(units * self.qty_step, 12)

    # ------------------------------------------------------------ cash reserve
    def _book(self) -> np.ndarray | None:
        book = getattr(self.env.unwrapped, "book", None)
        if not callable(book):
            return None
        return np.asarray(book(), dtype=np.float64)

    def _order_cost(self, qty: int, mid: float, book: np.ndarray | None) -> float | None:
        """Notional of a market order of ``qty`` grid units (signed) against ``book``; None if the book is too thin."""
        n = abs(qty) * self.qty_step
        if n == 0:
            return 0.0
        if book is None:
            px = mid * (1.0 + math.copysign(self.fallback_slippage_bps * 1e-4, qty))
            return n * px
        prices, sizes = (book[:, 2], book[:, 3]) if qty > 0 else (book[:, 0], book[:, 1])
        notional = 0.0
        for px, sz in zip(prices, sizes):
            if not (math.isfinite(px) and math.isfinite(sz)) or sz <= 0:
                continue
            take = min(n, sz)
            notional += take * px
            n -= take
            if n <= 1e-12 * abs(qty) * self.qty_step:
                return notional
        return None

    def _reserve_ok(self, q0: int, delta: int, book: np.ndarray | None = None) -> bool:
        """Cash-reserve rule after an order of ``delta`` grid units (see the class docstring)."""
        info = self._info
        mid = float(info["mid"])
        cash = float(info["cash"])
        if delta != 0 and book is None:
            book = self._book()
        notional = self._order_cost(delta, mid, book)
        if notional is None:
            return False
        fee = self.fee_bps * 1e-4 * notional
        cash_after = cash - notional - fee if delta > 0 else cash + notional - fee
        q1 = (q0 + delta) * self.qty_step
        equity = cash_after + q1 * mid
        if equity <= 0 or mid <= 0:
            return q1 == 0
        return abs(q1) * mid <= (1.0 - self.cash_reserve) * equity - 1e-9 * abs(equity)

    def _reserve_limit(self, q0: int, reduce: int, increase: int) -> int:
        """The largest ``k``, ``|k| ≤ |increase|`` with its sign, for which the reserve holds after ``reduce + k``.

        The rule is monotone in ``|k|`` (more exposure, less cash and equity), so a bisection finds it;
        0 when even ``k = 1`` share fails (including a reserve already broken before the order).
        """
        if increase == 0:
            return 0
        book = self._book()
        sign = 1 if increase > 0 else -1

        def ok(k: int) -> bool:
            return self._reserve_ok(q0, reduce + sign * k, book)

        if ok(abs(increase)):
            return increase
        lo, hi = 0, abs(increase)  # invariant: k = hi fails; k = lo is the best known (0 adds nothing)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid
        return sign * lo

    # --------------------------------------------------------- trade accounting
    def _record_fill(self, info: dict[str, Any]) -> None:
        """Update the average entry cost and close trades for ``TradeStats`` from the step's fill."""
        prev = self._info
        q0 = float(prev["position"]) if prev is not None else 0.0
        dq = float(info.get("exec_qty", 0.0))
        px = float(info.get("exec_price", 0.0))
        if dq == 0 or px <= 0:
            return
        if q0 == 0 or (dq > 0) == (q0 > 0):
            self._cost = (self._cost * abs(q0) + px * abs(dq)) / (abs(q0) + abs(dq))
            return
        closed = min(abs(dq), abs(q0))
        fee_per_share = float(info.get("fees", 0.0)) / abs(dq)
        if self._cost > 0:
            ret = (math.copysign(1.0, q0) * (px - self._cost) - fee_per_share) / self._cost
            self.stats.add(ret)
        if abs(dq) > closed:
            self._cost = px
        elif closed == abs(q0):
            self._cost = 0.0
