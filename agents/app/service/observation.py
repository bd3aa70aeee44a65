"""The observation ``Janus-LOB-v0`` shows for a desk's raw market state, built by the env's own market code.

A desk has its instrument's recent mid prices and traded volumes and its current book. The observation is
what :class:`janus_env.historical_market.HistoricalMarket` — the market behind ``Janus-LOB-v0``'s
``scenario="historical"`` — shows after replaying those steps (a :class:`DeskSource` over the body) with the
client's account written into it (:meth:`~janus_env.historical_market.HistoricalMarket.set_account`): the prices,
volumes, book, VPIN, volatility, spread, imbalance and account features are the env's, so a state the env was in
gives the env's observation bit for bit (``tests/service/test_observation.py`` checks it against the env itself).

The replay is the hot path of a decision, so :meth:`ObservationBuilder.from_market` does not step the market
through the body (32 steps of Python, ≈ 0.26 ms with the body's checks): one numba kernel, :func:`replay_window`,
folds the steps into the histories the market keeps (log mids, log volumes, with the env's own ``vpin_update``
for VPIN, in the same order and the same float operations), and :meth:`ObservationBuilder.from_market` writes the
observation and the ``O_*`` row from them with the expressions of ``HistoricalMarket``'s ``_write`` (≈ 70 µs
with the checks).
:meth:`ObservationBuilder.from_market_replay` is the replay itself, kept as the reference the tests hold the fast
path to, bit for bit (``tests/service/test_observation.py``).

The market body (T steps, oldest first, the last one *now*; W = the run's ``window``):

| field | replayed as |
| --- | --- |
| ``prices[i]`` | the mid of step i (for the steps before now, a one-level book at that price) |
| ``volumes[i]``, ``buy_volumes[i]`` | traded in step i: buy ``buy_volumes[i]``, sell ``volumes[i] − buy_volumes[i]``; without ``buy_volumes`` half each (no trade signs: VPIN reads 0) |
| ``bids``, ``asks`` | the current book, ``[price, size]`` best first (the env keeps ``n_levels``) |

``W ≤ T ≤ W + episode_steps``. The first W steps are the window the env builds at an episode's start; each later
one is a decision step whose volume also feeds VPIN, as the env's VPIN runs since the episode started (send the
session so far for exactly the env's VPIN; W steps give the VPIN of a fresh episode). ``prices[-1]`` must be the
book's mid, ``(best bid + best ask)/2``: the env's price history ends at the mid it observes.

Observation bodies (the env's observation dict) come with the ``mid`` they were observed at: the glass box reads
the raw state the env's ``info`` would hold, recovered from the observation's own encoding — VPIN = ``market[0]``,
σ = ``market[1]``·10⁻⁴, spread = ``market[2]``·10⁻⁴·mid, the step's volume = ``lot·expm1(volumes[W−1])``, the book
decoded at ``mid`` (:func:`wrappers.rules.decode_book_into`, the shield's decoder) — with the account from the
server's books at ``mid``. The policy sees the observation as sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from numba import njit

from agents.app.service.accounts import Account
from agents.app.service.schemas import FieldError, MarketBody, ObservationBody
from janus_env.config import MarketConfig
from janus_env.features import N_VPIN_SCALARS, vpin_update
from janus_env.historical import RecordedBookSource
from janus_env.historical_market import HistoricalMarket, book_rows
from janus_env.lob_env import info_from_out, split_obs
from janus_env.simulator import (
    N_ACCOUNT,
    N_OUT,
    O_CASH,
    O_DRAWDOWN,
    O_EQUITY,
    O_MID,
    O_PNL,
    O_POSITION,
    O_SPREAD,
    O_STEP,
    O_TRUNCATED,
    O_VOLATILITY,
    O_VOLUME,
    O_VPIN,
    obs_size,
)
from wrappers.rules import decode_book_into

_FEW_STEPS = "expected between {} (the run's window) and {} (window + episode_steps) steps, got {}"
_LENGTH = "expected {} entries (one per price), got {}"
_POSITIVE = "expected prices > 0, got {!r} at [{}]"
_NEGATIVE = "expected volumes >= 0, got {!r} at [{}]"
_BUY_RANGE = "expected 0 <= buy_volumes[i] <= volumes[i], got {!r} > {!r} at [{}]"
_LEVEL = "expected [price > 0, size > 0], got {!r} at [{}]"
_ORDER = "expected {} prices, best first, got {!r} after {!r} at [{}]"
_CROSSED = "expected best bid <= best ask, got bid {!r} > ask {!r}"
_LAST_MID = "expected the last price to be the book's mid (best bid + best ask)/2 = {!r}, got {!r}"
_SHAPE = "expected shape {}, got {}"
_OUTSIDE = "outside the run's observation space {}: {!r}"
_NEED_MID = ("an observation body needs `mid`, the mid price it was observed at (the glass box prices the account and "
             "the book at it)")
_MID_ONLY = "`mid` goes with an observation body; a market body's mid is its book's"
_ONE_BODY = "expected exactly one of `market` and `observation`"

MID_TOLERANCE = 1e-9
"""Largest relative difference between ``prices[-1]`` and the book's mid that counts as equal (JSON rounding)."""


@dataclass(frozen=True)
class DeskState:
    """A checked market body as arrays: ``mids`` (T,), ``volumes`` (T,), ``buys`` (T,), ``book`` (L, 4)."""

    mids: np.ndarray
    volumes: np.ndarray
    buys: np.ndarray
    book: np.ndarray
    timestamp: float | str | None


@dataclass
class BuiltState:
    """What one decision sees: the observation (dict of views into ``flat``), the flat float32 row, the float64
    ``O_*`` row, the env's ``info`` keys, the book in currency/shares (for sizing) and the mid."""

    obs: dict[str, np.ndarray]
    flat: np.ndarray
    out: np.ndarray
    info: dict[str, Any]
    book: np.ndarray
    mid: float


def _level_rows(levels: list[list[float]], field: str, descending: bool) -> np.ndarray:
    rows = np.asarray(levels, dtype=np.float64).reshape(-1, 2)
    for i, (px, qty) in enumerate(rows.tolist()):
        if not (px > 0.0 and qty > 0.0):
            raise FieldError(f"{field}[{i}]", _LEVEL.format([px, qty], i))
    px = rows[:, 0]
    bad = np.flatnonzero(px[1:] >= px[:-1]) if descending else np.flatnonzero(px[1:] <= px[:-1])
    if bad.size:
        i = int(bad[0]) + 1
        raise FieldError(f"{field}[{i}]", _ORDER.format("decreasing" if descending else "increasing",
                                                         float(px[i]), float(px[i - 1]), i))
    return rows


def desk_state(body: MarketBody, window: int, max_steps: int) -> DeskState:
    """Check a market body against the run and return its arrays.

    Raises:
        FieldError: a count outside ``[window, max_steps]``, lists of different lengths, a price ≤ 0, a
            negative volume, a buy volume outside ``[0, volume]``, a book level that is not ``[price > 0,
            size > 0]``, levels out of order, a crossed book, or a last price that is not the book's mid.
    """
    n = len(body.prices)
    if not window <= n <= max_steps:
        raise FieldError("market.prices", _FEW_STEPS.format(window, max_steps, n))
    mids = np.asarray(body.prices, dtype=np.float64)
    volumes = np.asarray(body.volumes, dtype=np.float64)
    if volumes.shape[0] != n:
        raise FieldError("market.volumes", _LENGTH.format(n, volumes.shape[0]))
    for name, values, ok in (("prices", mids, mids > 0.0), ("volumes", volumes, volumes >= 0.0)):
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise FieldError(f"market.{name}[{i}]", (_POSITIVE if name == "prices" else _NEGATIVE).format(
                float(values[i]), i))
    if body.buy_volumes is None:
        buys = 0.5 * volumes
    else:
        buys = np.asarray(body.buy_volumes, dtype=np.float64)
        if buys.shape[0] != n:
            raise FieldError("market.buy_volumes", _LENGTH.format(n, buys.shape[0]))
        ok = (buys >= 0.0) & (buys <= volumes)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise FieldError(f"market.buy_volumes[{i}]", _BUY_RANGE.format(float(buys[i]), float(volumes[i]), i))
    bids = _level_rows(body.bids, "market.bids", descending=True)
    asks = _level_rows(body.asks, "market.asks", descending=False)
    if bids[0, 0] > asks[0, 0]:
        raise FieldError("market.bids[0]", _CROSSED.format(float(bids[0, 0]), float(asks[0, 0])))
    mid = 0.5 * (bids[0, 0] + asks[0, 0])
    if abs(mids[-1] - mid) > MID_TOLERANCE * mid:
        raise FieldError(f"market.prices[{n - 1}]", _LAST_MID.format(mid, float(mids[-1])))
    levels = max(bids.shape[0], asks.shape[0])
    book = np.full((levels, 4), np.nan)
    book[:, 1] = book[:, 3] = 0.0
    book[: bids.shape[0], 0:2] = bids
    book[: asks.shape[0], 2:4] = asks
    return DeskState(mids=mids, volumes=volumes, buys=buys, book=book, timestamp=body.timestamp)


@njit(cache=True)
def replay_window(mids: np.ndarray, volumes: np.ndarray, buys: np.ndarray, now_mid: float, window: int, lot: float,
                  bucket: float, n_buckets: int) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """The histories ``HistoricalMarket`` holds after replaying a desk state's ``T`` steps from a reset.

    Step ``i`` shows the mid ``0.5·(mids[i] + mids[i])`` (``now_mid``, the book's, at the last step) and trades
    ``buy = buys[i]``, ``sell = volumes[i] − buys[i]``; as the market's ``_record`` does at each step, the mid
    history takes ``log`` of the last finite mid (0 before there is one), the volume history
    ``log1p((buy + sell)/lot)`` (both shifted by one), and VPIN takes the trade through
    :func:`janus_env.features.vpin_update` (the env's own kernel).

    Returns:
        ``(log_mid, log_volume, vpin, volume, mid)``: the last ``window`` entries of each history (float64), the
        VPIN after the last step, the last step's traded volume ``buy + sell`` and the market's mid (the last
        finite one).
    """
    n = mids.shape[0]
    log_mid = np.zeros(window)
    log_vol = np.zeros(window)
    scalars = np.zeros(N_VPIN_SCALARS)
    ring = np.zeros(n_buckets)
    vpin = 0.0
    volume = 0.0
    last = math.nan
    for t in range(n):
        mid = now_mid if t == n - 1 else 0.5 * (mids[t] + mids[t])
        if math.isfinite(mid):  # a price so large that the mid overflows keeps the last one, as the market does
            last = mid
        buy = buys[t]
        sell = volumes[t] - buy
        vpin = vpin_update(scalars, ring, buy, sell, bucket)
        volume = buy + sell
        j = t - (n - window)  # the slot of step t in the last `window` steps
        if j >= 0:
            log_mid[j] = math.log(last) if math.isfinite(last) else 0.0
            log_vol[j] = math.log1p(volume / lot)
    return log_mid, log_vol, vpin, volume, last


class DeskSource(RecordedBookSource):
    """A :class:`~janus_env.historical.HistoricalSource` over one desk state: the steps of the body, then padding.

    Step ``i < T − 1`` shows a one-level book at ``mids[i]`` (its mid is that price, all the env reads of a
    past step), step ``T − 1`` the desk's book; ``traded()`` is ``(buys[i], volumes[i] − buys[i])``. The length
    is fixed (``capacity``) so that one :class:`HistoricalMarket` serves every request; steps after ``T − 1``
    repeat the last one and are never reached.

    Args:
        capacity: steps the source claims to have (at least ``window + episode_steps``).
        n_levels: the run's book levels (the market reads at most these).
    """

    tick_size = 0.01

    def __init__(self, capacity: int, n_levels: int) -> None:
        super().__init__()
        self.capacity = int(capacity)
        self.n_levels = int(n_levels)
        self._mids = np.ones(1)
        self._volumes = np.zeros(1)
        self._buys = np.zeros(1)
        self._book = np.array([[1.0, 0.0, 1.0, 0.0]])
        self._past = np.zeros((1, 4))

    def load(self, state: DeskState) -> None:
        """Show ``state`` from step 0 on (call the market's ``reset`` next)."""
        self._mids, self._volumes, self._buys, self._book = state.mids, state.volumes, state.buys, state.book

    def __len__(self) -> int:
        return self.capacity

    def recorded_book(self, t: int) -> np.ndarray:
        if t >= self._mids.shape[0] - 1:
            return self._book
        p = self._mids[t]
        past = self._past
        past[0, 0] = past[0, 2] = p
        return past

    def recorded_traded(self, t: int) -> tuple[float, float]:
        if t >= self._mids.shape[0]:
            return 0.0, 0.0
        buy = float(self._buys[t])
        return buy, float(self._volumes[t]) - buy


class ObservationBuilder:
    """Builds :class:`BuiltState` for a desk state or an observation body, on the run's market settings.

    Args:
        config: the run's :class:`~janus_env.config.MarketConfig` (window, levels, lot, cash, VPIN buckets, ...).
        observation_space: the run's observation space (observation bodies are checked against it).
    """

    def __init__(self, config: MarketConfig, observation_space: spaces.Dict) -> None:
        self.config = config
        self.space = observation_space
        self.window = int(config.window)
        self.max_steps = self.window + int(config.episode_steps)
        self.source = DeskSource(self.max_steps + 2, config.n_levels)
        self.market = HistoricalMarket(config, self.source)
        self._lot = float(config.lot)
        self._decoded = np.empty((4, config.n_levels), dtype=np.float64)
        self._bucket = float(config.vpin_bucket)
        self._n_buckets = int(config.vpin_n_buckets)
        self._obs_size = obs_size(self.window, config.n_levels)
        self._episode_steps = self.market.episode_steps
        ones = np.ones(self.window)  # compile (or load from numba's cache) now, not at the first decision
        replay_window(ones, ones, 0.5 * ones, 1.0, self.window, self._lot, self._bucket, self._n_buckets)

    def from_market(self, body: MarketBody, account: Account) -> BuiltState:
        """The env's observation (and ``O_*`` row, ``info``) of a market body, with ``account`` in it: what
        :meth:`from_market_replay` gives, bit for bit, without stepping the market (module docstring).

        The histories come from :func:`replay_window`; the rest is ``HistoricalMarket``'s ``set_account`` and
        ``_write`` on them, expression for expression (the float32 rounding of the observation included: the
        ``O_DRAWDOWN`` column is the observation's float32 drawdown, as there).

        Raises:
            FieldError: a body the run cannot read (:func:`desk_state`).
        """
        state = desk_state(body, self.window, self.max_steps)
        cfg = self.config
        w, n_levels = self.window, int(cfg.n_levels)
        desk = state.book
        log_mid, log_vol, vpin, volume, mid = replay_window(
            state.mids, state.volumes, state.buys, 0.5 * (desk[0, 0] + desk[0, 2]), w, self._lot,
            self._bucket, self._n_buckets)
        # the account, as HistoricalMarket.set_account (the market's step counter is the steps replayed)
        _, peak, _ = account.mark(mid, cfg)
        t = min(account.t, int(cfg.episode_steps))
        position = cfg.to_qty(account.units)
        cash, cost = float(account.cash), float(account.cost)
        equity = cash + position * mid
        peak = max(peak, equity)
        # HistoricalMarket._write
        obs = np.zeros(self._obs_size, dtype=np.float32)
        log_now = math.log(mid)
        obs[:w] = (log_mid - log_now) * 1e4
        obs[w:2 * w] = log_vol
        rows, book = book_rows(desk, mid, n_levels, cfg.lot)
        b0 = 2 * w
        obs[b0:b0 + 4 * n_levels] = rows.reshape(-1)
        a0 = b0 + 4 * n_levels
        obs[a0] = position / cfg.max_position
        obs[a0 + 1] = cash / cfg.initial_cash
        obs[a0 + 2] = (position * mid - cost) / cfg.initial_cash * 100.0
        obs[a0 + 3] = (peak - equity) / peak if peak > 0 else 0.0
        obs[a0 + 4] = 1.0 - t / self._episode_steps
        m0 = a0 + N_ACCOUNT
        bid_total = float(book[:, 1].sum())
        ask_total = float(book[:, 3].sum())
        spread = book[0, 2] - book[0, 0]
        volatility = self._volatility(log_mid)
        obs[m0] = vpin
        obs[m0 + 1] = volatility * 1e4
        obs[m0 + 2] = spread / mid * 1e4 if math.isfinite(spread) else 0.0
        total = bid_total + ask_total
        obs[m0 + 3] = (bid_total - ask_total) / total if total > 0 else 0.0
        out = np.zeros(N_OUT, dtype=np.float64)
        out[O_TRUNCATED] = float(state.mids.shape[0] - w >= self._episode_steps)  # the replay's last step
        out[O_VPIN] = vpin
        out[O_VOLATILITY] = volatility
        out[O_POSITION] = position
        out[O_EQUITY] = equity
        out[O_DRAWDOWN] = obs[a0 + 3]
        out[O_MID] = mid
        out[O_CASH] = cash
        out[O_SPREAD] = spread if math.isfinite(spread) else 0.0
        out[O_STEP] = t
        out[O_PNL] = equity - cfg.initial_cash
        out[O_VOLUME] = volume
        l2 = np.full((n_levels, 4), np.nan)
        l2[:, 1] = l2[:, 3] = 0.0
        l2[:len(book)] = book
        return BuiltState(obs=split_obs(obs, w, n_levels), flat=obs, out=out, info=info_from_out(out.tolist()),
                          book=l2, mid=float(mid))

    @staticmethod
    def _volatility(log_mid: np.ndarray) -> float:
        """``HistoricalMarket._volatility`` on a full window: RMS of the log-mid differences."""
        if log_mid.shape[0] < 2:
            return 0.0
        r = np.diff(log_mid)
        return float(np.sqrt(np.mean(r * r)))

    def from_market_replay(self, body: MarketBody, account: Account) -> BuiltState:
        """:meth:`from_market` by replaying the body through ``HistoricalMarket`` step by step (the reference
        the fast path is tested against; ≈ 4× slower).

        Raises:
            FieldError: a body the run cannot read (:func:`desk_state`).
        """
        state = desk_state(body, self.window, self.max_steps)
        market = self.market
        self.source.load(state)
        market.reset(None, 0)  # the first `window` steps: the history an episode starts with
        for _ in range(state.mids.shape[0] - self.window):
            market.step(0)  # the later steps: no order, their volume feeds VPIN as in the env
        mid = float(market.out[O_MID])
        _, peak, _ = account.mark(mid, self.config)
        t = min(account.t, int(self.config.episode_steps))
        market.set_account(account.units, account.cash, account.cost, peak, t)
        flat = market.obs.copy()
        out = market.out.copy()
        return BuiltState(obs=split_obs(flat, self.window, self.config.n_levels), flat=flat, out=out,
                          info=info_from_out(out.tolist()), book=market.l2(self.config.n_levels), mid=mid)

    def from_observation(self, body: ObservationBody, mid: float, account: Account) -> BuiltState:
        """An observation body as the run's observation, with the raw state the glass box reads (module docstring).

        Raises:
            FieldError: a key whose shape is not the run's, or a value outside the observation space.
        """
        arrays: dict[str, np.ndarray] = {}
        for key, sub in self.space.spaces.items():
            value = np.asarray(getattr(body, key), dtype=np.float32)
            if value.shape != sub.shape:
                raise FieldError(f"observation.{key}", _SHAPE.format(list(sub.shape), list(value.shape)))
            if not sub.contains(value):
                low = np.flatnonzero(((value < sub.low) | (value > sub.high)).ravel())
                raise FieldError(f"observation.{key}", _OUTSIDE.format(sub, float(value.ravel()[low[0]])))
            arrays[key] = value
        flat = np.concatenate([arrays[k].ravel() for k in ("prices", "volumes", "book", "account", "market")])
        if flat.shape[0] != obs_size(self.window, self.config.n_levels):
            raise FieldError("observation", _SHAPE.format(obs_size(self.window, self.config.n_levels),
                                                          flat.shape[0]))
        equity, _, drawdown = account.mark(mid, self.config)
        market = arrays["market"]
        out = np.zeros(N_OUT, dtype=np.float64)
        out[O_MID] = mid
        out[O_VPIN] = float(market[0])
        out[O_VOLATILITY] = float(market[1]) * 1e-4
        out[O_SPREAD] = float(market[2]) * 1e-4 * mid
        out[O_VOLUME] = self._lot * math.expm1(float(arrays["volumes"][-1]))
        out[O_POSITION] = account.position(self.config)
        out[O_CASH] = account.cash
        out[O_EQUITY] = equity
        out[O_DRAWDOWN] = drawdown
        out[O_PNL] = equity - float(self.config.initial_cash)
        out[O_STEP] = account.t
        decoded = self._decoded
        decode_book_into(arrays["book"].astype(np.float64), mid, self._lot, True, decoded)
        book = decoded.T.copy()
        return BuiltState(obs=split_obs(flat, self.window, self.config.n_levels), flat=flat, out=out,
                          info=info_from_out(out.tolist()), book=book, mid=mid)


def built_state(builder: ObservationBuilder, market: MarketBody | None, observation: ObservationBody | None,
                mid: float | None, account: Account) -> BuiltState:
    """The state of a decision body: exactly one of ``market`` and ``observation`` (with ``mid``).

    Raises:
        FieldError: neither or both bodies, ``mid`` missing with an observation or given with a market body, or
            a body the run cannot read.
    """
    if (market is None) == (observation is None):
        raise FieldError("body", _ONE_BODY)
    if market is not None:
        if mid is not None:
            raise FieldError("mid", _MID_ONLY)
        return builder.from_market(market, account)
    if mid is None:
        raise FieldError("mid", _NEED_MID)
    return builder.from_observation(observation, mid, account)


__all__ = ["MID_TOLERANCE", "BuiltState", "DeskSource", "DeskState", "ObservationBuilder", "built_state", "desk_state"]
