"""The glass box per agent on ``janus_market_v0``: ``ParallelLTNShield`` and ``ParallelAmygdala``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from pettingzoo.test import parallel_api_test

from envs_registry.pettingzoo_envs import make_parallel_env
from wrappers import BreakerConfig, ParallelAmygdala, ParallelLTNShield
from wrappers.breakers import BREAKERS
from wrappers.rules import RULE_NAMES

MAKER_QUOTE = np.array([0, 0, 2, 2], dtype=np.int64)


def _guarded(roles: dict[str, int], on_halt: str = "terminate", **market):
    env = make_parallel_env(roles=roles, **market)
    return ParallelAmygdala(ParallelLTNShield(env, on_halt=on_halt), on_halt=on_halt)


# --------------------------------------------------------------------------- conformance
@pytest.mark.parametrize(("on_halt", "kwargs"), [
    ("terminate", {"roles": {"market_maker": 1, "informed": 1, "noise": 1, "janus": 2}}),
    ("stay", {"roles": {"market_maker": 1, "noise": 1, "janus": 2}, "action_type": "sized"}),
    ("terminate", {"roles": {"noise": 1, "janus": 1}, "action_type": "continuous"}),
])
def test_parallel_api_with_halts(on_halt: str, kwargs: dict, small_market: dict, pettingzoo_check) -> None:
    env = ParallelAmygdala(ParallelLTNShield(make_parallel_env(**kwargs, **small_market), on_halt=on_halt),
                           on_halt=on_halt, min_proposals=5, blocked_weight=1.0,  # blocked random proposals
                           max_drawdown=1e-9)  # or any loss halt: the calibrated breakers no longer trip on noise
    with pettingzoo_check():
        parallel_api_test(env, num_cycles=small_market["episode_steps"] + 10)
    assert env.halts and all(agent.startswith("janus") for agent in env.halts)


# --------------------------------------------------------------------------- the shield
K = 11  # sized actions: i <= K buys i lots, K + i sells i lots; 11 lots > max_position = 10 lots


def _wash_and_oversize(k: int) -> int:
    """Round trips (buy 1 lot, sell 1 lot) for 40 steps, then 11-lot buys and sells."""
    if k < 40:
        return 1 if k % 2 == 0 else K + 1
    return K if k % 2 == 0 else 2 * K


def _scripted_session(shielded: bool) -> tuple[list[dict], list[int], list[np.ndarray | None]]:
    env = make_parallel_env(roles={"market_maker": 1, "noise": 1, "janus": 1}, action_type="sized", n_sizes=K,
                            episode_steps=60)
    if shielded:
        env = ParallelLTNShield(env)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    infos, proposals, masks = [], [], []
    for k in range(60):
        masks.append(env.action_masks("janus_0") if shielded else None)
        proposals.append(_wash_and_oversize(k))
        actions = {"market_maker_0": MAKER_QUOTE, "noise_0": int(rng.integers(3)), "janus_0": proposals[-1]}
        infos.append(env.step(actions)[4]["janus_0"])
    return infos, proposals, masks


def _quantity(action: int) -> float:
    return 100.0 * (action if action <= K else -(action - K))


def _violations(infos: list[dict], proposals: list[int], window: int = 30, max_position: float = 1000.0):
    """Per step: (wash-sale buy, oversized) of the proposal, from the fills alone (average-cost basis)."""
    position, cost, last_loss = 0.0, 0.0, None
    out = []
    for info, action in zip(infos, proposals):
        q = _quantity(action)
        wash = q > 0 and last_loss is not None and 1 <= info["step"] - last_loss <= window
        out.append((wash, abs(position + q) > max_position))
        qty, price = info["exec_qty"], info["exec_price"]
        if qty:
            if position > 0 and qty < 0 and price < cost:
                last_loss = info["step"]
            new = position + qty
            if position == 0 or (position > 0) == (qty > 0):
                cost = (cost * abs(position) + price * abs(qty)) / abs(new)
            elif new == 0 or (new > 0) != (position > 0):
                cost = price
            position = new
    return out


def test_shield_blocks_wash_sales_and_oversized_orders(ltn_keys: set[str]) -> None:
    infos, proposals, masks = _scripted_session(shielded=True)
    flags = _violations(infos, proposals)
    n_wash = n_over = 0
    for info, (wash, oversized), mask, action in zip(infos, flags, masks, proposals):
        assert set(info["ltn"]) == ltn_keys and set(info["ltn"]["rules"]) == set(RULE_NAMES)
        assert info["rejected_qty"] == 0 and abs(info["position"]) <= 1000
        if wash or oversized:
            n_wash += wash
            n_over += oversized
            assert info["exec_qty"] == 0 and info["fills"] == 0  # never executed
            assert info["ltn"]["overridden"] and info["ltn"]["final_action"] == 0
            assert not mask[action] and mask[0]
            rule = "wash_sale" if wash else "position_limit"
            assert info["ltn"]["rules"][rule] == 0.0
    assert n_wash >= 10 and n_over >= 5  # the script did try both

    bare, _, _ = _scripted_session(shielded=False)  # the same seeded session without the shield executes them
    bare_flags = _violations(bare, proposals)
    assert any(info["exec_qty"] > 0 for info, (wash, _) in zip(bare, bare_flags) if wash)
    assert any(info["rejected_qty"] > 0 for info in bare)


def test_agent_without_an_action_holds_and_keeps_its_history(small_market: dict) -> None:
    env = ParallelLTNShield(make_parallel_env(roles={"noise": 1, "janus": 1}, **small_market))
    env.reset(seed=0)
    _, _, _, _, infos = env.step({"noise_0": 1, "janus_0": 1})
    assert infos["janus_0"]["ltn"]["final_action"] == 1
    _, _, _, _, infos = env.step({"noise_0": 1})
    assert "ltn" not in infos["janus_0"] and infos["janus_0"]["exec_qty"] == 0
    assert env.histories["janus_0"].last_step == infos["janus_0"]["step"]


def test_every_agent_judges_volatility_against_the_same_market_baseline() -> None:
    """σ_hist of each agent's history follows the documented recursion over the infos it saw (seeded at reset,
    each σ_t judged before it is folded in, readings above 3σ_hist left out) and is the same for every agent."""
    env = ParallelLTNShield(make_parallel_env(roles={"noise": 1, "janus": 2}, scenario="flash_crash",
                                              episode_steps=120, warmup=8), agents="janus")
    _, infos = env.reset(seed=3)
    var, n = infos["janus_0"]["volatility"] ** 2, 1
    pending = None
    for _ in range(120):
        _, _, terminations, truncations, infos = env.step({"noise_0": 1, "janus_0": 0, "janus_1": 0})
        if pending is not None and pending > 1e-9 and pending ** 2 <= 9.0 * var:
            n += 1
            var += max(1.0 / n, 1.0 - 2.0 ** (-1.0 / 500)) * (pending ** 2 - var)
        pending = infos["janus_0"]["volatility"]
        h0, h1 = env.histories["janus_0"].sigma_hist, env.histories["janus_1"].sigma_hist
        assert h0 == h1 and h0 == pytest.approx(np.sqrt(var), rel=1e-12)
        if any(terminations.values()) or any(truncations.values()):
            break
    assert n > 50


# --------------------------------------------------------------------------- breakers
@pytest.mark.parametrize("on_halt", ["terminate", "stay"])
def test_breaker_halts_one_agent_while_the_market_goes_on(on_halt: str) -> None:
    env = _guarded({"market_maker": 1, "noise": 2, "janus": 1}, on_halt=on_halt, scenario="flash_crash",
                   episode_steps=200)
    base = env.unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    halt_step, after = None, []
    for k in range(200):
        actions = {a: int(rng.integers(3)) for a in env.agents if a.startswith("noise")}
        actions["market_maker_0"] = MAKER_QUOTE
        if "janus_0" in env.agents:
            actions["janus_0"] = 1 if k < 3 else 0  # buy 3 lots, then hold them through the crash
        obs, rewards, terms, truncs, infos = env.step(actions)
        if halt_step is None and infos["janus_0"]["halted"]:
            halt_step = k
            reason = infos["janus_0"]["halt_reason"]
            position = base.book_accounts()[base.account_id("janus_0")].copy()
            assert terms["janus_0"] == (on_halt == "terminate") and not truncs["janus_0"]
            assert ("janus_0" in env.agents) == (on_halt == "stay")
            assert len(base.open_orders("janus_0")) == 0
        elif halt_step is not None:
            after.append((infos, rewards))
    assert halt_step is not None and 80 <= halt_step < 110  # the crash: steps 80-110
    assert reason.split(":")[0] in BREAKERS and env.halts == {"janus_0": reason}
    assert (base.book_accounts()[base.account_id("janus_0")] == position).all()  # stopped trading
    mids = {infos["noise_0"]["mid"] for infos, _ in after}
    assert len(mids) > 10  # the book keeps moving
    assert sum(infos[a]["fills"] for infos, _ in after for a in ("noise_0", "noise_1", "market_maker_0")) > 50
    if on_halt == "terminate":
        assert all("janus_0" not in infos and "janus_0" not in rewards for infos, rewards in after)
    else:
        assert all(infos["janus_0"]["halted"] and infos["janus_0"]["halt_reason"] == reason
                   and infos["janus_0"]["exec_qty"] == 0 for infos, _ in after)
        assert any(rewards["janus_0"] != 0.0 for _, rewards in after)  # its position is still marked
    assert not env.agents  # everyone else reached the end of the session


def test_kill_switch_per_agent(tmp_path, small_market: dict) -> None:
    env = ParallelAmygdala(make_parallel_env(roles={"noise": 1, "janus": 3}, **small_market), agents="janus",
                           kill_file=tmp_path / "{agent}.kill")
    env.reset(seed=0)
    env.kill("janus_0", "operator")
    (tmp_path / "janus_1.kill").write_text("")
    _, _, terms, _, infos = env.step({"noise_0": 0, "janus_0": 1, "janus_1": 1, "janus_2": 1})
    assert infos["janus_0"]["halt_reason"] == "kill_switch: operator" and infos["janus_0"]["exec_qty"] == 0
    assert infos["janus_1"]["halt_reason"] == f"kill_switch: flag file {tmp_path / 'janus_1.kill'} exists"
    assert infos["janus_1"]["exec_qty"] == 0
    assert terms["janus_0"] and terms["janus_1"] and not terms["janus_2"]
    assert infos["janus_2"]["exec_qty"] == 100 and env.agents == ["noise_0", "janus_2"]
    with pytest.raises(ValueError, match="Agent 'janus_0' is not live"):
        env.step({"janus_0": 1})


def test_one_config_for_every_agent(tmp_path, small_market: dict) -> None:
    template = str(tmp_path / "{agent}.kill")
    market = make_parallel_env(roles={"noise": 1, "janus": 2}, **small_market)
    by_config = ParallelAmygdala(market, config=BreakerConfig(max_drawdown=0.05, kill_file=template))
    by_keywords = ParallelAmygdala(market, max_drawdown=0.05, kill_file=template)
    overridden = ParallelAmygdala(market, config=BreakerConfig(max_drawdown=0.05), kill_file=template)
    expected = BreakerConfig(max_drawdown=0.05, kill_file=template)
    for env in (by_config, by_keywords, overridden):
        assert env.config == expected  # the template, as given
        assert list(env.breakers) == ["janus_0", "janus_1"]
        for agent, breakers in env.breakers.items():  # the same settings, each agent its own flag file
            assert breakers.config == dataclasses.replace(expected, kill_file=str(tmp_path / f"{agent}.kill"))
    assert ParallelAmygdala(market).config == BreakerConfig()
    with pytest.raises(TypeError, match="Expected `config` to be a BreakerConfig or None, got {'max_drawdown': 0.05}"):
        ParallelAmygdala(market, config={"max_drawdown": 0.05})


# --------------------------------------------------------------------------- fail-safe
def _stack(market: dict, **shield) -> tuple[ParallelAmygdala, ParallelLTNShield]:
    inner = ParallelLTNShield(make_parallel_env(roles={"noise": 1, "janus": 2}, **market), **shield)
    return ParallelAmygdala(inner), inner


def test_kernel_fault_halts_the_agent_without_executing(monkeypatch: pytest.MonkeyPatch, small_market: dict) -> None:
    env, shield = _stack(small_market, agents=["janus_0"])
    env.reset(seed=0)
    env.step({"noise_0": 0, "janus_0": 0, "janus_1": 0})

    def boom(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(shield, "kernel", boom)
    _, _, terms, truncs, infos = env.step({"noise_0": 1, "janus_0": 1, "janus_1": 1})
    assert infos["janus_0"]["halt_reason"] == "shield_error: RuntimeError: boom"
    assert infos["janus_0"]["exec_qty"] == 0 and infos["janus_0"]["fills"] == 0
    assert infos["janus_0"]["ltn"]["final_action"] is None and infos["janus_0"]["ltn"]["violation"] == 1.0
    assert terms["janus_0"] and not truncs["janus_0"] and "janus_0" not in env.agents
    assert infos["janus_1"]["exec_qty"] == 100  # unshielded agent trades on
    monkeypatch.undo()
    for _ in range(3):
        _, _, _, _, infos = env.step({"noise_0": 1, "janus_1": 0})
        assert "janus_0" not in infos


def test_breaker_fault_halts_the_agent(monkeypatch: pytest.MonkeyPatch, small_market: dict) -> None:
    env, _ = _stack(small_market)
    env.reset(seed=0)

    def boom(info):
        raise RuntimeError("boom")

    monkeypatch.setattr(env.breakers["janus_1"], "_check_drawdown", boom)
    _, _, terms, _, infos = env.step({"noise_0": 1, "janus_0": 1, "janus_1": 1})
    assert infos["janus_1"]["halt_reason"] == "amygdala_error: drawdown breaker raised RuntimeError: boom"
    assert infos["janus_1"]["breakers"]["drawdown"]["error"] == infos["janus_1"]["halt_reason"]
    assert terms["janus_1"] and not terms["janus_0"] and env.agents == ["noise_0", "janus_0"]


def test_bookkeeping_fault_halts_the_agent(monkeypatch: pytest.MonkeyPatch, small_market: dict) -> None:
    env, _ = _stack(small_market)
    env.reset(seed=0)

    def boom():
        raise RuntimeError("boom")

    monkeypatch.setattr(env.breakers["janus_1"], "breaker_info", boom)
    _, _, terms, _, infos = env.step({"noise_0": 1, "janus_0": 1, "janus_1": 1})
    reason = "amygdala_error: breaker bookkeeping raised RuntimeError: boom"
    assert infos["janus_1"]["halted"] and infos["janus_1"]["halt_reason"] == reason
    assert env.breakers["janus_1"].halted and env.breakers["janus_1"].halt_reason == reason
    assert terms["janus_1"] and not terms["janus_0"] and not env.breakers["janus_0"].halted


def test_history_fault_halts_before_the_next_action(monkeypatch: pytest.MonkeyPatch, small_market: dict) -> None:
    """The histories record a step inside the next decision call: a fault there stops the next actions of every
    shielded agent that trades (their proposals were not judged), and nothing of theirs executes."""
    env, shield = _stack(small_market)
    env.reset(seed=0)
    _, _, _, _, infos = env.step({"noise_0": 1, "janus_0": 1, "janus_1": 0})
    assert infos["janus_0"]["exec_qty"] == 100 and not env.halts

    def broken(hist, rows, out):
        raise KeyError("volume")

    stock = shield.kernel  # (hist, rows, obs, out, ctx, q, truths, sat)
    monkeypatch.setattr(shield, "kernel", lambda *args: (broken(args[0], args[1], args[3]), stock(*args)))
    _, _, terms, _, infos = env.step({"noise_0": 1, "janus_0": 1, "janus_1": 1})
    for agent in ("janus_0", "janus_1"):
        assert infos[agent]["halt_reason"] == "shield_error: KeyError: 'volume'"
        assert infos[agent]["exec_qty"] == 0 and infos[agent]["ltn"]["final_action"] is None and terms[agent]
    assert env.agents == ["noise_0"]


def test_mask_fault_allows_only_hold_then_halts(monkeypatch: pytest.MonkeyPatch, small_market: dict) -> None:
    env, shield = _stack(small_market)
    env.reset(seed=0)
    monkeypatch.setattr(shield, "kernel", lambda *a: 1 / 0)
    assert env.action_masks("janus_0").tolist() == [True, False, False]
    monkeypatch.undo()  # even a transient fault halts the agent
    _, _, terms, _, infos = env.step({"noise_0": 0, "janus_0": 1, "janus_1": 1})
    assert infos["janus_0"]["halt_reason"] == "shield_error: ZeroDivisionError: division by zero"
    assert infos["janus_0"]["exec_qty"] == 0 and terms["janus_0"] and not terms["janus_1"]


# --------------------------------------------------------------------------- determinism
def _trajectory(market: dict, seed: int) -> list:
    env = _guarded({"market_maker": 1, "noise": 1, "janus": 2}, action_type="sized", **market)
    obs, infos = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [obs, infos]
    while env.agents:
        actions = {a: (MAKER_QUOTE if a.startswith("market_maker") else int(rng.integers(7))) for a in env.agents}
        out.append(env.step(actions))
    return out


def test_same_seed_same_trajectory(small_market: dict) -> None:
    a, b = _trajectory(small_market, 5), _trajectory(small_market, 5)
    assert data_equivalence(a, b)
    assert not data_equivalence(a, _trajectory(small_market, 6))


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda e: ParallelLTNShield(e, agents=["whale"]), ValueError,
     "Unknown agent or role 'whale' in `agents`; expected some of ['market_maker', 'noise', 'janus', "),
    (lambda e: ParallelLTNShield(e, agents="market_maker"), ValueError,
     "The LTN shield guards takers only; 'market_maker_0' is a market maker"),
    (lambda e: ParallelLTNShield(e, agents=[]), ValueError, "No agent to guard: `agents`=[] selects none of"),
    (lambda e: ParallelLTNShield(e, agents=3), TypeError, "Expected `agents` to be an agent name, a role, a list"),
    (lambda e: ParallelLTNShield(e, threshold=0.0), ValueError,
     "Expected `threshold` to be a number in (0, 1], got 0.0"),
    (lambda e: ParallelLTNShield(e, threshold="high"), TypeError, "Expected `threshold` to be a number in (0, 1], got"),
    (lambda e: ParallelLTNShield(e, on_halt="explode"), ValueError,
     "Expected `on_halt` to be one of ('terminate', 'stay'), got 'explode'"),
    (lambda e: ParallelAmygdala(e, max_drawdwn=0.1), TypeError, "Unknown breaker argument 'max_drawdwn'"),
    (lambda e: ParallelAmygdala(e, max_drawdown=-1), ValueError,
     "Expected `max_drawdown` to be a finite number > 0 or None, got -1"),
    (lambda e: ParallelAmygdala(e).kill("noise_0"), ValueError, "Agent 'noise_0' has no circuit breakers"),
    (lambda e: ParallelAmygdala(e.observation_spaces), TypeError, "ParallelAmygdala needs a janus_market env"),
])
def test_bad_arguments_raise_clear_errors(make, error, message, small_market: dict) -> None:
    env = make_parallel_env(roles={"market_maker": 1, "noise": 1, "janus": 1}, **small_market)
    with pytest.raises(error) as info:
        make(env)
    assert message in str(info.value)


def test_invalid_action_raises_before_anything_executes(small_market: dict) -> None:
    env = _guarded({"noise": 1, "janus": 1}, **small_market)
    env.reset(seed=0)
    before = env.unwrapped.buffers()[1].copy()
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step({"noise_0": 1, "janus_0": 7})
    with pytest.raises(TypeError):
        env.step({"janus_0": "buy"})
    assert (env.unwrapped.buffers()[1] == before).all() and not env.halts
