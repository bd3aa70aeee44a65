"""janus_market_v0 (``JanusParallelEnv``): PettingZoo conformance, determinism, conservation, halting, SB3."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test

from envs_registry.pettingzoo_envs import (
    _MAKERS_NOT_SHAREABLE,
    make_aec_env,
    make_parallel_env,
    make_shared_policy_env,
    make_shared_policy_vec_env,
)
from janus_env import parallel_env as pe
from janus_env import simulator as sim
from janus_env.actions import InvalidActionError
from janus_env.checks import NEED_RESET
from janus_env.config import N_AGENTS
from janus_env.parallel_env import JanusParallelEnv

MIXED = {"market_maker": 1, "informed": 1, "momentum": 1, "noise": 2, "janus": 2}


# --------------------------------------------------------------------------- conformance


@pytest.mark.parametrize("kwargs", [
    {"roles": MIXED},
    {"roles": {"market_maker": 2, "janus": 1}, "maker_inventory_penalty": 0.5, "maker_fee_bps": -0.2},
    {"roles": {"informed": 1, "janus": 2}, "action_type": "sized", "background_flow": False},
    {"roles": {"noise": 1, "janus": 1}, "action_type": "continuous", "pad_observations": True},
])
def test_parallel_api(kwargs, small_market: dict, pettingzoo_check) -> None:
    with pettingzoo_check():
        parallel_api_test(make_parallel_env(**kwargs, **small_market), num_cycles=small_market["episode_steps"] + 10)


def test_parallel_seed(small_market: dict) -> None:
    parallel_seed_test(lambda: make_parallel_env(roles=MIXED, **small_market), num_cycles=30)


def test_aec_api(small_market: dict, pettingzoo_check) -> None:
    with pettingzoo_check():
        api_test(make_aec_env(roles=MIXED, **small_market), num_cycles=small_market["episode_steps"] + 10)


def test_render(capsys, small_market: dict) -> None:
    render_test(lambda render_mode=None: make_aec_env(roles=MIXED, render_mode=render_mode, **small_market))
    env = make_parallel_env(roles=MIXED, render_mode="ansi", **small_market)
    env.reset(seed=0)
    text = env.render()
    assert "bid" in text and "ask" in text
    for agent in env.possible_agents:
        assert re.search(rf"^{agent}\s+live\s+position\s+0\b", text, re.M), text
    human = make_parallel_env(roles={"janus": 1}, render_mode="human", **small_market)
    human.reset(seed=0)
    assert human.render() is None
    assert "janus_0" in capsys.readouterr().out


def test_docstring_matches_spaces() -> None:
    env = make_parallel_env(roles=MIXED)
    assert env.possible_agents == ["market_maker_0", "informed_0", "momentum_0", "noise_0", "noise_1",
                                   "janus_0", "janus_1"]
    default = make_parallel_env()
    assert f"`agents = {default.possible_agents}`" in pe.__doc__
    nvec = default.action_space("market_maker_0").nvec.tolist()
    assert f"default `{nvec}`" in pe.__doc__
    assert str(default.action_space("janus_0")) in pe.__doc__
    assert set(default.observation_space("janus_0").spaces) == {"prices", "volumes", "book", "account", "market"}
    assert set(default.observation_space("informed_0").spaces) == {"prices", "volumes", "book", "account",
                                                                   "market", "signal"}
    for key in ("`signal`", "## Rewards", "## Episode End", "## Safety"):
        assert key in JanusParallelEnv.__doc__


# --------------------------------------------------------------------------- determinism


def _rollout(market: dict, seed: int, n: int = 60, **kwargs) -> list:
    env = make_parallel_env(roles=MIXED, **{**market, "episode_steps": n, **kwargs})
    obs, infos = env.reset(seed=seed)
    for i, agent in enumerate(env.possible_agents):
        env.action_space(agent).seed(100 + i)
    record = [(obs, infos)]
    while env.agents:
        actions = {a: env.action_space(a).sample() for a in env.agents}
        record.append(env.step(actions))
    return record


def test_same_seed_same_rollout(small_market: dict) -> None:
    assert data_equivalence(_rollout(small_market, 7), _rollout(small_market, 7), exact=True)


def test_different_seed_differs(small_market: dict) -> None:
    a, b = _rollout(small_market, 7), _rollout(small_market, 8)
    assert not data_equivalence(a, b)
    # and the order of agents differs from step to step
    ranks = [tuple(info["rank"] for info in step[4].values()) for step in a[1:]]
    assert len(set(ranks)) > 10


def test_order_is_a_fair_permutation() -> None:
    env = make_parallel_env(roles={"janus": 4}, episode_steps=2000, warmup=4)
    env.reset(seed=3)
    first = np.zeros(4)
    for _ in range(1200):
        infos = env.step({})[4]
        ranks = sorted(info["rank"] for info in infos.values())
        assert ranks == [0, 1, 2, 3]
        first[[info["rank"] == 0 for info in infos.values()]] += 1
    expected = 1200 / 4
    chi2 = float(((first - expected) ** 2 / expected).sum())
    assert chi2 < 16.3, first  # chi-square, 3 degrees of freedom, p = 0.001


# --------------------------------------------------------------------------- state layout


def test_buffers_hold_every_agents_state_in_the_single_env_layout(small_market: dict) -> None:
    """``buffers()``: per agent an ``O_*`` row (the layout of Janus-LOB-v0's ``out``) and its observation row."""
    env = make_parallel_env(roles=MIXED, **small_market)
    env.reset(seed=4)
    for i, agent in enumerate(env.possible_agents):
        env.action_space(agent).seed(i)
    obs_rows, out = env.buffers()
    assert obs_rows.dtype == np.float32 and out.dtype == np.float64 and out.flags.c_contiguous
    assert out.shape[0] == obs_rows.shape[0] == len(env.possible_agents) and out.shape[1] > sim.N_OUT
    columns = {"position": sim.O_POSITION, "cash": sim.O_CASH, "equity": sim.O_EQUITY, "pnl": sim.O_PNL,
               "drawdown": sim.O_DRAWDOWN, "exec_qty": sim.O_EXEC_QTY, "exec_price": sim.O_EXEC_PRICE,
               "fees": sim.O_FEES, "rejected_qty": sim.O_REJECTED, "mid": sim.O_MID, "spread": sim.O_SPREAD,
               "vpin": sim.O_VPIN, "volatility": sim.O_VOLATILITY, "volume": sim.O_VOLUME, "step": sim.O_STEP}
    d = sim.obs_size(env.config.window, env.config.n_levels)
    for _ in range(12):
        observations, rewards, _, _, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
        for agent, info in infos.items():
            i = env.possible_agents.index(agent)
            for key, col in columns.items():
                assert out[i, col] == info[key], key
            assert out[i, sim.O_REWARD] == rewards[agent] and out[i, sim.O_N_FILLS] == info["fills"]
            flat = np.concatenate([observations[agent][k].ravel() for k in ("prices", "volumes", "book", "account",
                                                                             "market")])
            np.testing.assert_array_equal(obs_rows[i, :d], flat)
    assert not np.shares_memory(observations["janus_0"]["book"], obs_rows)  # observations are copies


# --------------------------------------------------------------------------- accounting


def _values(env: JanusParallelEnv, mid_currency: float) -> np.ndarray:
    """tick · (cash + position · mid) of every book account, in currency (origin-free grid units)."""
    cfg = env.config
    origin = round(cfg.initial_price / cfg.tick_size) - 0.5 * cfg.n_ticks
    mid_grid = mid_currency / cfg.tick_size - origin
    acc = env.book_accounts().astype(np.float64)
    return cfg.tick_size * (acc[:, 0] + acc[:, 1] * mid_grid)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n_makers=st.integers(0, 2),
    n_informed=st.integers(0, 1),
    n_janus=st.integers(1, 3),
    background=st.booleans(),
    maker_fee_bps=st.sampled_from([0.0, -0.2, 1.0]),
    action_seed=st.integers(0, 2**31 - 1),
)
def test_conservation_over_all_participants(seed, n_makers, n_informed, n_janus, background, maker_fee_bps,
                                            action_seed) -> None:
    roles = {"market_maker": n_makers, "informed": n_informed, "janus": n_janus}
    env = make_parallel_env(roles=roles, background_flow=background, maker_fee_bps=maker_fee_bps,
                            episode_steps=25, warmup=4, max_position=400)
    obs, infos = env.reset(seed=seed)
    rng = np.random.default_rng(action_seed)
    mid = infos[env.possible_agents[0]]["mid"]
    before = _values(env, mid)
    equity = {a: infos[a]["equity"] for a in env.agents}
    base = N_AGENTS
    cash0 = env.config.initial_cash
    while env.agents:
        actions = {}
        for a in env.agents:
            space = env.action_space(a)
            actions[a] = (rng.integers(0, space.nvec) if a.startswith("market_maker") else int(rng.integers(space.n)))
        acc_before = env.book_accounts()
        obs, rewards, term, trunc, infos = env.step(actions)
        acc = env.book_accounts()
        assert acc[:, 0].sum() == 0 and acc[:, 1].sum() == 0  # the engine moves cash and shares, never makes them
        mid = next(iter(infos.values()))["mid"]
        after = _values(env, mid)
        fees = sum(info["fees"] for info in infos.values())
        d_agents = sum(info["equity"] - equity[a] for a, info in infos.items())
        d_background = float((after[:base] - before[:base]).sum())
        # Σ over all participants of Δ(cash + position·mid) = −Σ fees
        assert d_agents + d_background == pytest.approx(-fees, abs=1e-6 * cash0)
        for a, info in infos.items():
            i = env.account_id(a)
            assert info["position"] == acc[i, 1]
            assert info["exec_qty"] == acc[i, 1] - acc_before[i, 1]
            assert abs(info["position"]) <= env.config.max_position
            assert rewards[a] == pytest.approx((info["equity"] - equity[a]) / cash0 * 1e4, abs=1e-9)
            if info["role"] != "market_maker":  # takers only take: fee = fee_bps of the traded notional
                notional = abs(info["exec_qty"]) * info["exec_price"]
                assert info["fees"] == pytest.approx(env.config.fee_bps * 1e-4 * notional, rel=1e-9, abs=1e-12)
            equity[a] = info["equity"]
        before = after


def test_maker_quotes_sit_at_documented_prices_and_trade() -> None:
    env = make_parallel_env(roles={"market_maker": 1, "janus": 1}, background_flow=False, warmup=0,
                            episode_steps=50, maker_fee_bps=-0.25)
    obs, infos = env.reset(seed=1)
    cfg = env.config
    origin = round(cfg.initial_price / cfg.tick_size) - 0.5 * cfg.n_ticks
    passive = 0.0
    for step in range(20):
        mid_grid = infos["market_maker_0"]["mid"] / cfg.tick_size - origin
        obs, rewards, term, trunc, infos = env.step({"market_maker_0": np.array([0, 2, 1, 3]),
                                                     "janus_0": 1 if step % 2 == 0 else 2})
        mm = infos["market_maker_0"]
        bid = int(np.ceil(mid_grid)) - 1
        ask = int(np.floor(mid_grid)) + 1 + 2
        assert mm["bid_price"] == pytest.approx((bid + origin) * cfg.tick_size)
        assert mm["ask_price"] == pytest.approx((ask + origin) * cfg.tick_size)
        assert mm["bid_size"] == cfg.lot and mm["ask_size"] == 3 * cfg.lot
        passive += mm["passive_qty"]
        resting = env.open_orders("market_maker_0")
        assert len(resting) <= 2 and set(resting[:, 2]) <= {bid, ask}
        if mm["passive_qty"] > 0:
            assert mm["fees"] < 0  # maker rebate
    assert passive > 0  # the taker trades against the maker's quotes


def test_inventory_penalty_is_charged_to_makers_only() -> None:
    kw = {"roles": {"market_maker": 1, "janus": 1}, "episode_steps": 60, "warmup": 8}
    plain, penal = make_parallel_env(**kw), make_parallel_env(**kw, maker_inventory_penalty=2.0)
    plain.reset(seed=4)
    penal.reset(seed=4)
    actions = {"market_maker_0": np.array([0, 0, 3, 0]), "janus_0": 0}  # bid only: inventory builds up
    for _ in range(40):
        r0, r1 = plain.step(actions)[1], penal.step(actions)
        info = r1[4]["market_maker_0"]
        x = info["position"] / penal.config.max_position
        assert info["inventory_penalty"] == pytest.approx(2.0 * x * x)
        assert r1[1]["market_maker_0"] == pytest.approx(r0["market_maker_0"] - info["inventory_penalty"])
        assert r1[1]["janus_0"] == r0["janus_0"]
    assert info["position"] > 0


def test_informed_signal_is_the_fundamental_plus_noise() -> None:
    kw = {"roles": {"informed": 1, "janus": 1}, "episode_steps": 400, "warmup": 8}
    exact = make_parallel_env(**kw, informed_noise_bps=0.0)
    noisy = make_parallel_env(**kw, informed_noise_bps=20.0)
    o0, _ = exact.reset(seed=5)
    o1, _ = noisy.reset(seed=5)
    assert "signal" not in o0["janus_0"]
    diffs = []
    for _ in range(300):
        o0 = exact.step({})[0]
        o1 = noisy.step({})[0]
        np.testing.assert_array_equal(o0["informed_0"]["book"], o1["informed_0"]["book"])  # same market
        diffs.append(float(o1["informed_0"]["signal"][0] - o0["informed_0"]["signal"][0]))
    assert 16.0 < np.std(diffs) < 24.0
    assert abs(np.mean(diffs)) < 4.0


def test_position_limit_cuts_and_reports(small_market: dict) -> None:
    env = make_parallel_env(roles={"janus": 1}, max_position=200, lot=100, **small_market)
    env.reset(seed=0)
    for _ in range(2):
        info = env.step({"janus_0": 1})[4]["janus_0"]
    info = env.step({"janus_0": 1})[4]["janus_0"]
    assert info["position"] == 200 and info["rejected_qty"] == 100 and info["exec_qty"] == 0


def test_missing_action_is_hold(small_market: dict) -> None:
    env = make_parallel_env(roles={"market_maker": 1, "janus": 1}, **small_market)
    env.reset(seed=0)
    env.step({"market_maker_0": np.array([0, 0, 1, 1]), "janus_0": 1})
    infos = env.step({})[4]
    assert infos["janus_0"]["exec_qty"] == 0 and infos["janus_0"]["rejected_qty"] == 0
    assert infos["market_maker_0"]["bid_size"] == 0 and len(env.open_orders("market_maker_0")) == 0


# --------------------------------------------------------------------------- halting


def test_halted_agent_stops_trading_while_market_goes_on() -> None:
    env = make_parallel_env(roles={"market_maker": 1, "janus": 2}, episode_steps=80, warmup=8)
    env.reset(seed=2)
    buy_all = {"market_maker_0": np.array([3, 3, 2, 2]), "janus_0": 1, "janus_1": 1}
    env.step(buy_all)
    assert len(env.open_orders("market_maker_0")) > 0
    env.halt("market_maker_0", "vpin toxicity")
    env.halt("janus_0", "ltn shield")
    assert len(env.open_orders("market_maker_0")) == 0  # quotes pulled at once
    assert env.is_halted("janus_0") and not env.is_halted("janus_1")
    pos = {a: env.book_accounts()[env.account_id(a), 1] for a in env.possible_agents}
    steps = 0
    for _ in range(5):
        obs, rewards, term, trunc, infos = env.step(buy_all)
        steps += 1
        assert set(obs) == set(env.possible_agents)  # halted agents keep observing
        for agent in ("market_maker_0", "janus_0"):
            assert infos[agent]["halted"] and infos[agent]["exec_qty"] == 0
            assert infos[agent]["position"] == pos[agent]
        assert infos["market_maker_0"]["halt_reason"] == "vpin toxicity"
        assert infos["janus_0"]["halt_reason"] == "ltn shield"
        assert not infos["janus_1"]["halted"] and infos["janus_1"]["halt_reason"] is None
        assert len(env.open_orders("market_maker_0")) == 0
    assert infos["janus_1"]["position"] == pos["janus_1"] + steps * env.config.lot  # the others trade on
    env.resume("janus_0")
    info = env.step(buy_all)[4]["janus_0"]
    assert not info["halted"] and info["exec_qty"] == env.config.lot


def test_halt_with_remove_truncates_next_step(small_market: dict) -> None:
    env = make_parallel_env(roles={"janus": 2}, **small_market)
    env.reset(seed=0)
    env.halt("janus_0", "kill switch", remove=True)
    with pytest.raises(ValueError, match="leaves the episode"):
        env.resume("janus_0")
    obs, rewards, term, trunc, infos = env.step({"janus_0": 1, "janus_1": 1})
    assert trunc["janus_0"] and not term["janus_0"] and infos["janus_0"]["exec_qty"] == 0
    assert not trunc["janus_1"] and env.agents == ["janus_1"]
    with pytest.raises(ValueError, match=re.escape(pe._NOT_LIVE.format("janus_0", ["janus_1"]))):
        env.step({"janus_0": 1})
    with pytest.raises(ValueError, match=re.escape(pe._NOT_LIVE.format("janus_0", ["janus_1"]))):
        env.halt("janus_0")
    with pytest.raises(ValueError, match=re.escape(pe._UNKNOWN_AGENT.format("nobody_0", env.possible_agents))):
        env.halt("nobody_0")
    with pytest.raises(TypeError, match=re.escape(pe._BAD_REASON.format(3))):
        env.halt("janus_1", 3)


def test_bankruptcy_terminates_and_optionally_ends_episode(small_market: dict) -> None:
    for mode in ("remove", "end_episode"):
        # without the buying-power check (max_leverage=inf) round trips of 100 shares on $2 bleed cash to ruin
        env = make_parallel_env(roles={"janus": 2}, initial_cash=2.0, max_leverage=float("inf"), on_bankruptcy=mode,
                                **small_market)
        env.reset(seed=0)
        for step in range(small_market["episode_steps"]):
            obs, rewards, term, trunc, infos = env.step({"janus_0": 1 + step % 2})
            assert infos["janus_0"]["ruin"] == term["janus_0"]
            if term["janus_0"]:
                break
        assert term["janus_0"] and infos["janus_0"]["equity"] <= 0 and infos["janus_0"]["ruin"]
        assert not infos["janus_1"]["ruin"]
        if mode == "remove":
            assert env.agents == ["janus_1"] and not trunc["janus_1"]
        else:
            assert env.agents == [] and trunc["janus_1"] and not term["janus_1"]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kwargs, error, message", [
    ({"roles": {"trader": 1}}, ValueError, pe._BAD_ROLE.format("trader", list(pe.ROLES))),
    ({"roles": {"janus": -1}}, ValueError, "Expected `roles['janus']` to be an int >= 0, got -1"),
    ({"roles": {"janus": 1.5}}, TypeError, "Expected `roles['janus']` to be an int >= 0, got 1.5"),
    ({"roles": {"janus": 0}}, ValueError, pe._NO_AGENTS.format({"janus": 0})),
    ({"roles": [("janus", 1)]}, TypeError, pe._BAD_ROLES_TYPE.format([("janus", 1)])),
    ({"scenario": "historical"}, ValueError, pe._BAD_SCENARIO),
    ({"maker_offsets": 0}, ValueError, "Expected `maker_offsets` to be an int >= 1, got 0"),
    ({"maker_sizes": 2.0}, TypeError, "Expected `maker_sizes` to be an int >= 1, got 2.0"),
    ({"maker_fee_bps": float("nan")}, ValueError, "Expected `maker_fee_bps` to be a finite number, got nan"),
    ({"maker_inventory_penalty": -1.0}, ValueError,
     "Expected `maker_inventory_penalty` to be a finite number >= 0, got -1.0"),
    ({"informed_noise_bps": float("inf")}, ValueError,
     "Expected `informed_noise_bps` to be a finite number >= 0, got inf"),
    ({"background_flow": 1}, TypeError, "Expected `background_flow` to be a bool, got 1"),
    ({"seed": "0"}, TypeError, "Expected `seed` to be an int or None, got '0'"),
    ({"on_bankruptcy": "ignore"}, ValueError,
     "Expected `on_bankruptcy` to be one of ('remove', 'end_episode'), got 'ignore'"),
    ({"render_mode": "rgb_array"}, ValueError,
     "Expected `render_mode` to be one of ('human', 'ansi'), got 'rgb_array'"),
    ({"action_type": "grid"}, ValueError,
     "Expected `action_type` to be one of ('discrete', 'sized', 'continuous'), got 'grid'"),
    ({"episode_steps": 0}, ValueError, "Expected `episode_steps` to be an int >= 1, got 0"),
])
def test_bad_config(kwargs, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make_parallel_env(**kwargs)


def test_bad_actions_and_call_order(small_market: dict) -> None:
    env = make_parallel_env(roles={"market_maker": 1, "janus": 1}, **small_market)
    with pytest.raises(RuntimeError, match=re.escape(NEED_RESET)):
        env.step({})
    env.reset(seed=0)
    with pytest.raises(InvalidActionError):
        env.step({"janus_0": 3})
    with pytest.raises(TypeError):
        env.step({"janus_0": 1.0})
    with pytest.raises(InvalidActionError):
        env.step({"market_maker_0": np.array([0, 5, 1, 1])})
    with pytest.raises(TypeError, match=re.escape(pe._MAKER_TYPE.format(env.action_space("market_maker_0"), 1))):
        env.step({"market_maker_0": 1})
    with pytest.raises(ValueError, match=re.escape(pe._UNKNOWN_AGENT.format("janus_9", env.possible_agents))):
        env.step({"janus_9": 1})
    with pytest.raises(TypeError, match=re.escape(pe._BAD_ACTIONS.format([1, 2]))):
        env.step([1, 2])


# --------------------------------------------------------------------------- SB3 parameter sharing


def test_shared_policy_env_rejects_makers() -> None:
    roles = {"market_maker": 1, "janus": 1}
    with pytest.raises(ValueError, match=re.escape(_MAKERS_NOT_SHAREABLE.format(list(pe.TAKER_ROLES), roles))):
        make_shared_policy_env(roles=roles)
    env = make_shared_policy_env(roles={"informed": 1, "janus": 2})
    spaces = {str(env.observation_space(a)) for a in env.possible_agents}
    assert len(spaces) == 1 and "signal" in env.observation_space("janus_0").spaces
    assert make_shared_policy_env(n_agents=np.int64(3)).possible_agents == ["janus_0", "janus_1", "janus_2"]


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"n_agents": 0}, ValueError, "Expected `n_agents` to be an int >= 1, got 0"),
    ({"n_agents": 2.0}, TypeError, "Expected `n_agents` to be an int >= 1, got 2.0"),
    ({"num_vec_envs": 0}, ValueError, "Expected `num_vec_envs` to be an int >= 1, got 0"),
    ({"num_vec_envs": True}, TypeError, "Expected `num_vec_envs` to be an int >= 1, got True"),
])
def test_shared_policy_vec_env_bad_counts(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make_shared_policy_vec_env(**kwargs)


def test_sb3_ppo_trains_with_parameter_sharing() -> None:
    pytest.importorskip("supersuit")
    from stable_baselines3 import PPO

    venv = make_shared_policy_vec_env(roles={"informed": 1, "janus": 3}, num_vec_envs=2, episode_steps=48,
                                      warmup=8)
    assert venv.num_envs == 8
    venv.seed(0)
    first = venv.reset()
    venv.seed(0)
    assert data_equivalence(venv.reset(), first, exact=True)  # SB3's seed() contract: it seeds the next reset
    venv.seed(0)
    model = PPO("MultiInputPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=512)
    assert model.num_timesteps >= 512
    obs = venv.reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (8,)
    venv.close()
