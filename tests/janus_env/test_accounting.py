"""Exact accounting in every env: identities per step, fills recomputed independently, grids, buying power, ruin.

On every step of every env and data kind (simulated single env with each action
type, the native vector env, ``scenario="historical"`` on the three shipped
samples, the multi-agent env):

* ``Δcash = −exec_qty · exec_price − fees`` (multi-agent: ``sell_notional − buy_notional − fees``);
* ``Δposition = exec_qty``; ``equity = cash + position · mid``;
* quantities on the grid; ``|requested| = |exec_qty| + rejected_qty`` with a reason whenever
  ``rejected_qty > 0``; the position and buying-power limits hold; ``ruin`` iff equity ≤ 0.
"""

from __future__ import annotations

import functools
import math
import re

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs_registry  # noqa: F401
from envs_registry.pettingzoo_envs import make_parallel_env
from janus_env import historical_market
from janus_env.accounting import REJECT_REASONS, cut_order, reason_names
from janus_env.book import BUY, F_PRICE, F_QTY, F_TAKER_AGENT, F_TAKER_SIDE, S_N_FILLS
from janus_env.config import AGENT_JANUS, P_INITIAL_PRICE_TICKS, P_N_TICKS, MarketConfig
from janus_env.data.l2 import L2Snapshots
from janus_env.execution_env import JanusExecutionEnv
from janus_env.historical import L2SnapshotSource, RecordedBookSource
from janus_env.lob_env import JanusLOBEnv
from janus_env.parallel_env import JanusParallelEnv
from janus_env.samples import sample_path
from janus_env.simulator import _FRACTIONAL, update_cost
from janus_env.vector_env import JanusLOBVectorEnv

# Module constants, not the `small_market` fixture: the case tables below are parametrize arguments, built at import.
SIM = {"episode_steps": 60, "warmup": 16}
HIST = {"episode_steps": 60, "window": 8}

# (name, kwargs of gym.make("Janus-LOB-v0")): the single-env cases of the property test
SINGLE_CASES = {
    "sim-discrete": {"action_type": "discrete", **SIM},
    "sim-sized": {"action_type": "sized", "n_sizes": 4, "max_position": 500, **SIM},
    "sim-continuous-tight-leverage": {"action_type": "continuous", "initial_cash": 30_000.0, "max_leverage": 1.5,
                                      **SIM},
    "l2-btc-fractional": {"scenario": "historical", "data": sample_path("btc_book_15_levels"), "action_type": "sized",
                          "n_sizes": 4, "lot": 0.75, "max_position": 6.0, "qty_step": 0.001, "initial_cash": 1e7,
                          **HIST},  # orders up to 3 BTC outrun the visible depth: partial fills on the grid
    "ohlcv-btc-continuous": {"scenario": "historical", "data": sample_path("btc_usd_hourly"),
                             "action_type": "continuous", "lot": 0.01, "max_position": 1.0, **HIST},
    "ohlcv-btc-defaults": {"scenario": "historical", "data": sample_path("btc_usd_hourly"), "action_type": "sized",
                           **HIST},
    "lobster-aapl": {"scenario": "historical", "data": sample_path("lobster_aapl"), "action_type": "sized",
                     "n_sizes": 3, "episode_steps": 5, "window": 2},
}


@functools.lru_cache(maxsize=None)
def _env(case: str) -> JanusLOBEnv:
    return gym.make("Janus-LOB-v0", **SINGLE_CASES[case]).unwrapped


def _requested(env, action, prev_position: float) -> tuple[float, float]:
    """(signed quantity the action asks for, rounding left out), computed here from the config alone."""
    cfg = env.config
    step = cfg.resolved_qty_step
    if env.action_type == "continuous":
        fraction = float(np.asarray(action).reshape(-1)[0])
        on_grid = round(fraction * cfg.max_position_units) * step
        return on_grid - prev_position, fraction * cfg.max_position - on_grid
    k = env.n_sizes
    index = int(action)
    lots = 0 if index == 0 else (index if index <= k else -(index - k))
    return lots * cfg.lot, 0.0


def _close(a: float, b: float, scale: float = 1.0, rel: float = 1e-12) -> bool:
    return abs(a - b) <= rel * max(1.0, abs(scale), abs(a), abs(b))


def _check_step(prev: dict, info: dict, requested: float, cfg: MarketConfig, *, leverage: bool = True) -> None:
    """Every identity and limit of one step, from two consecutive infos and the requested quantity."""
    step = cfg.resolved_qty_step
    q, px, fees = info["exec_qty"], info["exec_price"], info["fees"]
    notional = abs(q) * px
    # cash, position, equity
    assert _close(info["cash"] - prev["cash"], -q * px - fees, abs(prev["cash"]) + notional), (prev, info)
    assert _close(info["position"] - prev["position"], q, abs(prev["position"]))
    assert _close(info["equity"], info["cash"] + info["position"] * info["mid"],
                  abs(info["cash"]) + abs(info["position"] * info["mid"]))
    assert fees == pytest.approx(cfg.fee_bps * 1e-4 * notional, rel=1e-12, abs=1e-12)
    # the grid
    for value in (q, info["position"]):
        assert abs(value / step - round(value / step)) < 1e-6
    # nothing vanishes: executed + rejected = requested, and a reason whenever something was rejected
    assert info["rejected_qty"] >= 0
    assert _close(abs(q) + info["rejected_qty"], abs(requested), step)
    assert q == 0 or np.sign(q) == np.sign(requested)
    assert (info["rejected_qty"] > 1e-9 * step) == (info["rejected_reason"] != "")
    assert set(filter(None, info["rejected_reason"].split(","))) <= set(REJECT_REASONS)
    # limits: position, and buying power at the mid the order saw
    assert abs(info["position"]) <= cfg.max_position * (1 + 1e-12)
    if leverage:
        mark, equity = prev["mid"], prev["equity"]
        grown = abs(info["position"]) > abs(prev["position"]) + 1e-9 * step
        if grown:
            assert abs(info["position"]) * mark <= cfg.max_leverage * equity * (1 + 1e-12) + 1e-9
        if info["rejected_reason"] == "leverage":  # cut by buying power alone: one more step would break it
            assert (abs(info["position"]) + step) * mark > cfg.max_leverage * equity * (1 - 1e-12)
    assert info["ruin"] == (info["equity"] <= 0.0)


def _visible_book(env: JanusLOBEnv) -> tuple[np.ndarray, bool]:
    """The book the next order meets, and whether it is all of it (a recorded L2/OHLCV book is)."""
    if env.scenario == "historical":
        return env._market.source.book(), isinstance(env._market.source, RecordedBookSource)
    return env.book(), False


def _check_price(book: np.ndarray, whole: bool, info: dict) -> None:
    """A fill's VWAP lies between the best opposite price and (when the whole book is known) its deepest level."""
    q, px = info["exec_qty"], info["exec_price"]
    if q == 0:
        return
    prices = book[:, 2] if q > 0 else book[:, 0]
    prices = prices[np.isfinite(prices)]
    best, worst = (prices.min(), prices.max()) if q > 0 else (prices.max(), prices.min())
    assert np.sign(q) * (px - best) >= -1e-9 * best, (book, info)
    if whole:
        assert np.sign(q) * (worst - px) >= -1e-9 * best, (book, info)


def _run_single(env: JanusLOBEnv, seed: int, actions: list) -> None:
    _, prev = env.reset(seed=seed)
    assert prev["ruin"] is False and prev["rejected_qty"] == 0
    for action in actions:
        requested, rounding = _requested(env, action, prev["position"])
        book, whole = _visible_book(env)
        _, _, terminated, truncated, info = env.step(action)
        _check_price(book, whole, info)
        _check_step(prev, info, requested, env.config)
        assert info["rounding_qty"] == pytest.approx(rounding, abs=1e-9 * env.config.resolved_qty_step)
        assert abs(info["rounding_qty"]) <= 0.5 * env.config.resolved_qty_step * (1 + 1e-9)
        assert info["ruin"] == terminated
        if terminated or truncated:
            break
        prev = info


def _actions(env: JanusLOBEnv) -> st.SearchStrategy:
    if env.action_type == "continuous":
        return st.floats(-1.0, 1.0).map(lambda x: np.array([x], dtype=np.float32))
    return st.integers(0, env.action_space.n - 1)


@pytest.mark.parametrize("case", list(SINGLE_CASES))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_identities_hold_on_every_step_single_env(case: str, data) -> None:
    env = _env(case)
    seed = data.draw(st.integers(0, 2**16), label="seed")
    actions = data.draw(st.lists(_actions(env), min_size=1, max_size=40), label="actions")
    _run_single(env, seed, actions)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), data=st.data())
def test_identities_hold_on_every_step_vector_env(seed: int, data) -> None:
    envs = _vector_env()
    n = envs.num_envs
    steps = data.draw(st.lists(st.lists(st.integers(0, 8), min_size=n, max_size=n), min_size=1, max_size=50))
    _, prev = envs.reset(seed=seed)
    done = np.zeros(n, dtype=bool)
    for row in steps:
        actions = np.array(row, dtype=np.int64)
        _, _, terminated, truncated, info = envs.step(actions)
        for i in range(n):
            if done[i]:  # NEXT_STEP autoreset: this step reset book i and ignored its action
                assert info["position"][i] == 0 and info["rejected_qty"][i] == 0 and not info["ruin"][i]
                continue
            before = {k: v[i] for k, v in prev.items() if not k.startswith("_")}
            now = {k: v[i] for k, v in info.items() if not k.startswith("_")}
            k = int(actions[i])
            lots = 0 if k == 0 else (k if k <= 4 else -(k - 4))
            _check_step(before, now, lots * envs.config.lot, envs.config)
            assert now["ruin"] == terminated[i]
        done = terminated | truncated
        prev = info


@functools.lru_cache(maxsize=None)
def _vector_env() -> JanusLOBVectorEnv:
    return JanusLOBVectorEnv(num_envs=3, action_type="sized", n_sizes=4, max_position=600, initial_cash=40_000.0,
                             episode_steps=30, warmup=16)


MULTI_CASES = {
    "mixed-discrete": {"roles": {"market_maker": 1, "informed": 1, "momentum": 1, "noise": 1, "janus": 2}},
    "makers-continuous": {"roles": {"market_maker": 2, "janus": 2}, "action_type": "continuous",
                          "initial_cash": 40_000.0, "max_leverage": 1.0},
}


@functools.lru_cache(maxsize=None)
def _multi_env(case: str) -> JanusParallelEnv:
    return make_parallel_env(**MULTI_CASES[case], episode_steps=40, warmup=8)


def _taker_request(env: JanusParallelEnv, action, prev_position: float) -> float:
    cfg = env.config
    if env.action_type == "continuous":
        return round(float(np.asarray(action).reshape(-1)[0]) * cfg.max_position) - prev_position
    k = env.n_sizes
    index = int(action)
    return (0 if index == 0 else (index if index <= k else -(index - k))) * cfg.lot


def _check_gross(prev: dict, info: dict) -> None:
    """Multi-agent: cash and position rebuilt from the gross flows of the step."""
    flows = info["sell_notional"] - info["buy_notional"]
    assert _close(info["cash"] - prev["cash"], flows - info["fees"],
                  abs(prev["cash"]) + info["buy_notional"] + info["sell_notional"])
    assert info["position"] - prev["position"] == info["buy_qty"] - info["sell_qty"] == info["exec_qty"]
    assert _close(info["equity"], info["cash"] + info["position"] * info["mid"],
                  abs(info["cash"]) + abs(info["position"] * info["mid"]))
    gross = info["buy_qty"] + info["sell_qty"]
    if gross > 0:
        assert _close(info["exec_price"] * gross, info["buy_notional"] + info["sell_notional"], info["cash"])
    assert info["rejected_qty"] >= 0
    assert (info["rejected_qty"] > 0) == (info["rejected_reason"] != "")
    assert info["ruin"] == (info["equity"] <= 0.0)


@pytest.mark.parametrize("case", list(MULTI_CASES))
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), data=st.data())
def test_identities_hold_on_every_step_multi_agent(case: str, seed: int, data) -> None:
    env = _multi_env(case)
    _, prev = env.reset(seed=seed)
    n_steps = data.draw(st.integers(1, 40), label="steps")
    for t in range(n_steps):
        actions = {}
        for agent in env.agents:
            space = env.action_space(agent)
            if isinstance(space, gym.spaces.MultiDiscrete):
                actions[agent] = np.array([data.draw(st.integers(0, int(n) - 1)) for n in space.nvec], dtype=np.int64)
            elif isinstance(space, gym.spaces.Box):
                actions[agent] = np.array([data.draw(st.floats(-1.0, 1.0))], dtype=np.float32)
            else:
                actions[agent] = data.draw(st.integers(0, space.n - 1))
        _, _, terminations, truncations, infos = env.step(actions)
        for agent, info in infos.items():
            _check_gross(prev[agent], info)
            if info["role"] != "market_maker":  # takers rest nothing: all their fills are this order's
                requested = _taker_request(env, actions[agent], prev[agent]["position"])
                _check_step(prev[agent], info, requested, env.config)
        prev = infos
        if not env.agents:
            break


# ------------------------------------------------------------------ independent recomputation from the fills


@pytest.mark.parametrize("name", ["btc_book_15_levels", "btc_usd_hourly"])
def test_recorded_book_fills_and_equity_recomputed_independently(name: str) -> None:
    """Walk the visible book here, level by level on the grid, and rebuild cash and equity from those fills."""
    lot, step, max_position, fee_bps, cash0 = 0.35, 0.01, 3.0, 2.0, 10_000_000.0
    env = JanusLOBEnv(scenario="historical", data=sample_path(name), action_type="sized", n_sizes=6, lot=lot,
                      max_position=max_position, qty_step=step, fee_bps=fee_bps, initial_cash=cash0,
                      episode_steps=300, window=8)
    source = env._market.source
    _, info = env.reset(seed=3)
    cash, units, partial = cash0, 0, 0
    rng = np.random.default_rng(0)
    for _ in range(300):
        book = source.book()  # the whole visible book, every level
        action = int(rng.integers(0, 13))
        lots = 0 if action == 0 else (action if action <= 6 else -(action - 6))
        want = round(lots * lot / step)
        want = max(-round(max_position / step) - units, min(round(max_position / step) - units, want))
        px, qty = (book[:, 2], book[:, 3]) if want > 0 else (book[:, 0], book[:, 1])
        depth_units = math.floor(sum(q for q in qty if q > 0) / step + 1e-9)
        fill_units = min(abs(want), depth_units)
        remaining, notional = fill_units * step, 0.0
        for p, q in zip(px, qty):
            if q > 0:  # a missing level has NaN price and no quantity
                take = min(remaining, q)
                notional += take * p
                remaining -= take
        partial += 0 < fill_units < abs(want)
        _, _, terminated, truncated, info = env.step(action)
        sign = 1 if want > 0 else -1
        assert info["exec_qty"] == pytest.approx(sign * fill_units * step, rel=1e-12, abs=1e-15)
        assert abs(info["exec_qty"]) * info["exec_price"] == pytest.approx(notional, rel=1e-12, abs=1e-9)
        cash -= sign * notional + fee_bps * 1e-4 * notional
        units += sign * fill_units
        shown = source.book()
        mid = 0.5 * (shown[0, 0] + shown[0, 2])
        if math.isfinite(mid):
            assert info["mid"] == pytest.approx(mid, rel=1e-15)
        assert info["cash"] == pytest.approx(cash, rel=1e-12)
        assert info["position"] == pytest.approx(units * step, abs=1e-12)
        assert info["equity"] == pytest.approx(cash + units * step * info["mid"], rel=1e-12)
        if terminated or truncated:
            break
    assert partial > 0  # some orders outran the visible depth: the grid rounding of partial fills was exercised


def test_simulated_fills_and_equity_recomputed_from_the_engine_fills() -> None:
    env = JanusLOBEnv(action_type="sized", n_sizes=5, episode_steps=400, warmup=16)
    arrays = env._market.arrays
    origin = arrays.params[P_INITIAL_PRICE_TICKS] - 0.5 * arrays.params[P_N_TICKS]
    tick = env.config.tick_size
    _, info = env.reset(seed=11)
    cash, position = env.config.initial_cash, 0
    rng = np.random.default_rng(1)
    for _ in range(400):
        _, _, terminated, truncated, info = env.step(int(rng.integers(0, 11)))
        fills = arrays.fills[0][: arrays.state[0][S_N_FILLS]]
        mine = fills[fills[:, F_TAKER_AGENT] == AGENT_JANUS]
        qty = int(mine[:, F_QTY].sum())
        side = int(mine[0, F_TAKER_SIDE]) if len(mine) else 0
        notional = float((mine[:, F_QTY] * (mine[:, F_PRICE] + origin)).sum()) * tick
        cash -= side * notional + env.config.fee_bps * 1e-4 * notional
        position += side * qty
        book = env.book()
        assert info["exec_qty"] == side * qty
        assert info["position"] == position
        assert info["mid"] == pytest.approx(0.5 * (book[0, 0] + book[0, 2]), rel=1e-12)
        assert info["cash"] == pytest.approx(cash, rel=1e-12)
        assert info["equity"] == pytest.approx(cash + position * info["mid"], rel=1e-12)
        if terminated or truncated:
            break


def test_multi_agent_cash_is_rebuilt_from_the_infos_alone() -> None:
    env = make_parallel_env(roles={"market_maker": 2, "noise": 1, "janus": 2}, episode_steps=150, warmup=8)
    _, infos = env.reset(seed=4)
    cash = {a: info["cash"] for a, info in infos.items()}
    position = {a: 0.0 for a in infos}
    both_sides = 0
    rng = np.random.default_rng(2)
    while env.agents:
        actions = {a: (rng.integers(0, [5, 5, 4, 4]) if a.startswith("market_maker") else int(rng.integers(0, 3)))
                   for a in env.agents}
        infos = env.step(actions)[4]
        for agent, info in infos.items():
            cash[agent] += info["sell_notional"] - info["buy_notional"] - info["fees"]
            position[agent] += info["buy_qty"] - info["sell_qty"]
            both_sides += info["buy_qty"] > 0 and info["sell_qty"] > 0
            assert info["cash"] == pytest.approx(cash[agent], rel=1e-12)
            assert info["position"] == position[agent]
            assert info["position"] == env.book_accounts()[env.account_id(agent), 1]
    assert both_sides > 0  # makers bought and sold in one step: net exec_qty alone could not rebuild cash


# ------------------------------------------------------------------ fractional quantities and the grid


def test_fractional_btc_lot_trades_a_hundredth_of_a_coin() -> None:
    env = gym.make("Janus-LOB-v0", scenario="historical", data=sample_path("btc_usd_hourly"), lot=0.01,
                   max_position=1.0)
    _, info = env.reset(seed=0)
    for k in range(1, 4):
        _, _, _, _, info = env.step(1)
        assert info["exec_qty"] == 0.01 and info["position"] == k / 100  # exact decimals, not 0.030000000000000002
        assert info["rejected_qty"] == 0 and info["rejected_reason"] == ""
    _, _, _, _, info = env.step(2)
    assert info["exec_qty"] == -0.01 and info["position"] == 0.02


def test_continuous_target_rounds_to_the_grid_and_reports_the_rest() -> None:
    env = gym.make("Janus-LOB-v0", scenario="historical", data=sample_path("btc_usd_hourly"), lot=0.01,
                   max_position=1.0, action_type="continuous")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.3337], dtype=np.float32))
    assert info["position"] == 0.33 and info["exec_qty"] == 0.33
    assert info["rounding_qty"] == pytest.approx(float(np.float32(0.3337)) - 0.33, abs=1e-12)


@pytest.mark.parametrize("make", [
    lambda: JanusLOBEnv(lot=0.5),
    lambda: JanusLOBVectorEnv(num_envs=2, lot=0.5),
    lambda: make_parallel_env(lot=0.5),
    lambda: JanusExecutionEnv(shares=500, lot=0.5),
])
def test_simulated_book_rejects_a_fractional_lot(make) -> None:
    with pytest.raises(ValueError, match=re.escape(_FRACTIONAL.format("lot", 0.5))):
        make()


def test_simulated_book_rejects_a_fractional_grid() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `qty_step` to be 1 (one share): the simulated book")):
        JanusLOBEnv(qty_step=0.5)
    with pytest.raises(ValueError, match=re.escape(_FRACTIONAL.format("max_position", 10.5))):
        JanusLOBEnv(lot=1, max_position=10.5)


def test_lobster_needs_whole_shares() -> None:
    with pytest.raises(ValueError, match=re.escape(historical_market._WHOLE_SHARES.format("LOBSTERSource", None, 0.5,
                                                                                     1000))):
        JanusLOBEnv(scenario="historical", data=sample_path("lobster_aapl"), lot=0.5)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lot": 0.015, "qty_step": 0.01}, "Expected `lot` to be a whole multiple of `qty_step` = 0.01, got 0.015"),
    ({"lot": 0.01, "max_position": 1.005, "qty_step": 0.01},
     "Expected `max_position` to be a whole multiple of `qty_step` = 0.01, got 1.005"),
    ({"qty_step": 0.0}, "Expected `qty_step` to be a finite number > 0 or None, got 0.0"),
    ({"qty_step": float("nan")}, "Expected `qty_step` to be a finite number > 0 or None, got nan"),
    ({"lot": 1e-12}, "Expected `lot` with at most 9 decimals"),
    ({"max_leverage": 0.0}, "Expected `max_leverage` to be a number > 0, got 0.0"),
    ({"max_leverage": float("nan")}, "Expected `max_leverage` to be a number > 0, got nan"),
    ({"n_ticks": 32}, "Expected `n_ticks` to be an int >= 64, got 32"),
    ({"capacity": 16}, "Expected `capacity` to be an int >= 64, got 16"),
])
def test_bad_quantity_and_leverage_settings(kwargs, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        MarketConfig(**kwargs)


@pytest.mark.parametrize(("kwargs", "step", "lot_units", "max_units"), [
    ({}, 1.0, 100, 1000),
    ({"lot": 0.01, "max_position": 1.0}, 0.01, 1, 100),
    ({"lot": 1, "max_position": 2.5}, 0.1, 10, 25),
    ({"lot": 0.25, "max_position": 2.0, "qty_step": 0.001}, 0.001, 250, 2000),
])
def test_quantity_grid_is_derived_from_lot_and_limit(kwargs, step, lot_units, max_units) -> None:
    cfg = MarketConfig(**kwargs)
    assert (cfg.resolved_qty_step, cfg.lot_units, cfg.max_position_units) == (step, lot_units, max_units)
    assert cfg.replace(lot=100, max_position=1000, qty_step=None).resolved_qty_step == 1.0


def test_recorded_book_fills_whole_grid_steps_and_leaves_the_rest() -> None:
    book = np.array([[[99.0, 1.0, 101.0, 0.35], [98.0, 1.0, 102.0, 0.5], [np.nan, 0.0, np.nan, 0.0]]])
    data = L2Snapshots(None, np.array([100.0]), book, np.zeros(1), np.zeros(1))
    source = L2SnapshotSource(data)
    source.reset(0)
    filled, notional = source.execute(BUY, 1.0, qty_step=0.1)
    assert filled == pytest.approx(0.8) and notional == pytest.approx(0.35 * 101.0 + 0.45 * 102.0)
    left = source.book()
    assert left[0, 2] == 102.0 and left[0, 3] == pytest.approx(0.05) and np.isnan(left[1, 2])
    assert source.execute(BUY, 1.0, qty_step=0.1) == (0.0, 0.0)  # 0.05 left: less than one step
    filled, notional = source.execute(BUY, 1.0)  # no grid: whatever is there
    assert filled == pytest.approx(0.05) and notional == pytest.approx(0.05 * 102.0)


# ------------------------------------------------------------------ nothing vanishes


def test_book_exhausted_is_rejected_with_its_reason() -> None:
    env = JanusLOBEnv(lot=100_000, max_position=1_000_000, initial_cash=1e9, **SIM)
    env.reset(seed=0)
    _, _, _, _, info = env.step(1)
    assert 0 < info["exec_qty"] < 100_000
    assert info["rejected_qty"] == 100_000 - info["exec_qty"] and info["rejected_reason"] == "book_exhausted"


def test_full_order_pool_rejects_the_order_instead_of_dropping_it() -> None:
    env = JanusLOBEnv(capacity=64, **SIM)  # the background flow fills 64 slots within a few steps
    env.reset(seed=0)
    seen = 0
    for t in range(SIM["episode_steps"]):
        info = env.step(1 + t % 2)[4]
        if "pool_full" in info["rejected_reason"]:
            seen += 1
            assert info["exec_qty"] == 0 and info["rejected_qty"] == 100
    assert seen > 0


def test_multi_agent_full_pool_is_reported_for_takers_and_makers() -> None:
    env = make_parallel_env(roles={"market_maker": 1, "janus": 1}, capacity=64, episode_steps=60, warmup=8)
    env.reset(seed=0)
    taker = maker = 0
    for t in range(60):
        quote = np.array([0, 0, 0, 0]) if t < 30 else np.array([0, 0, 2, 2])  # the maker holds no slot until t = 30
        infos = env.step({"market_maker_0": quote, "janus_0": 1 + t % 2})[4]
        if "pool_full" in infos["janus_0"]["rejected_reason"]:
            taker += 1
            assert infos["janus_0"]["exec_qty"] == 0 and infos["janus_0"]["rejected_qty"] == 100
        m = infos["market_maker_0"]
        if "pool_full" in m["rejected_reason"]:
            maker += 1
            assert m["rejected_qty"] == 400 - m["bid_size"] - m["ask_size"] > 0
        if not env.agents:
            break
    assert taker > 0 and maker > 0


# ------------------------------------------------------------------ buying power and ruin


def test_leverage_cut_matches_its_formula() -> None:
    # cap = floor(2 · 1000 / 100) = 20 units
    assert cut_order(0, 50, 1000, 100.0, 1000.0, 2.0) == (20, 2)
    assert cut_order(15, 10, 1000, 100.0, 1000.0, 2.0) == (5, 2)
    assert cut_order(30, -10, 1000, 100.0, 1000.0, 2.0) == (-10, 0)  # reducing always passes
    assert cut_order(30, -60, 1000, 100.0, 1000.0, 2.0) == (-50, 2)  # flip: close 30, open 20 short
    assert cut_order(30, 5, 1000, 100.0, 1000.0, 2.0) == (0, 2)  # already over the cap: no more
    assert cut_order(0, 50, 1000, 100.0, -5.0, 2.0) == (0, 2)  # no equity, no buying power
    assert cut_order(990, 50, 1000, 100.0, 1e9, 2.0) == (10, 1)  # position limit first
    assert cut_order(0, 50, 1000, 100.0, 1.0, math.inf) == (50, 0)
    assert reason_names(1 | 4) == "position_limit,book_exhausted" and reason_names(0) == ""


def test_default_btc_settings_cannot_go_bust_through_one_order() -> None:
    """lot = 100 BTC on $100,000 (every default): each buy is cut to what 2x leverage allows."""
    env = gym.make("Janus-LOB-v0", scenario="historical", data=sample_path("btc_usd_hourly"))
    _, prev = env.reset(seed=0)
    _, _, _, _, info = env.step(1)
    cap = math.floor(2.0 * prev["equity"] / prev["mid"])
    assert info["exec_qty"] == cap and info["rejected_qty"] == 100 - cap and info["rejected_reason"] == "leverage"
    rng = np.random.default_rng(0)
    prev = info
    for _ in range(400):
        _, _, terminated, truncated, info = env.step(int(rng.integers(0, 3)))
        if info["exec_qty"] != 0:  # right after the order, at the mid it saw, the account is still solvent
            assert info["cash"] + info["position"] * prev["mid"] > 0.5 * prev["equity"]
        if terminated or truncated:
            break
        prev = info


@pytest.mark.parametrize("kwargs", [
    {"initial_cash": 50.0},  # 100-share lots on $50
    {"scenario": "historical", "data": sample_path("btc_usd_hourly"), "window": 8, "lot": 20, "max_position": 20,
     "initial_cash": 5_000.0},  # 20 BTC on $5,000
])
def test_equity_at_or_below_zero_ends_the_episode_as_ruin(kwargs) -> None:
    # with the buying-power check off (max_leverage=inf) the account goes bust
    env = JanusLOBEnv(max_leverage=math.inf, episode_steps=400, **kwargs)
    env.reset(seed=0)
    ruined = False
    for t in range(400):
        _, _, terminated, truncated, info = env.step(1 if t < 10 else 2 * (t % 2) or 1)
        assert info["ruin"] == terminated == (info["equity"] <= 0)
        if terminated or truncated:
            ruined = terminated
            break
    assert ruined
    _, info = env.reset(seed=1)
    assert info["ruin"] is False


def test_execution_env_accounting_and_unfilled_sales() -> None:
    env = JanusExecutionEnv(shares=5000, horizon=30, action_type="discrete", n_bins=5)
    _, prev = env.reset(seed=0)
    rng = np.random.default_rng(3)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(int(rng.integers(0, 5)))
        q, px = info["exec_qty"], info["exec_price"]
        assert _close(info["cash"] - prev["cash"], -q * px - info["fees"], abs(prev["cash"]))
        assert info["position"] - prev["position"] == q <= 0
        assert _close(info["equity"], info["cash"] + info["position"] * info["mid"], abs(info["cash"]))
        assert info["remaining"] == info["position"]
        assert (info["rejected_qty"] > 0) == (info["rejected_reason"] != "")
        assert "leverage" not in info["rejected_reason"]  # selling down a long never needs buying power
        done = terminated or truncated
        prev = info
    assert info["position"] == 0 or info["rejected_reason"] == "book_exhausted"


def _average_cost_reference(fills: list[tuple[float, float]]) -> float:
    """Σ signed shares × price of the open position, from its average price tracked fill by fill."""
    position, average = 0.0, 0.0
    for dq, px in fills:
        new = position + dq
        if position == 0.0 or (dq > 0) == (position > 0):
            average = (average * abs(position) + px * abs(dq)) / abs(new)
        elif new != 0.0 and (new > 0) != (position > 0):
            average = px  # flipped: the rest opens at the fill price
        position = new
        if position == 0.0:
            average = 0.0
    return position * average


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(-500, 500).filter(bool), st.floats(50.0, 150.0)), min_size=1, max_size=30))
def test_update_cost_is_the_average_cost_basis(fills: list[tuple[int, float]]) -> None:
    """``simulator.update_cost``, the one cost-basis kernel of every market, against a plain average-price ledger."""
    cost, position = 0.0, 0
    for dq, px in fills:
        cost = update_cost(cost, position, dq, px)
        position += dq
    assert cost == pytest.approx(_average_cost_reference([(float(q), p) for q, p in fills]), rel=1e-9, abs=1e-6)

