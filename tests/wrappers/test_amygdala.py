"""Amygdala circuit breakers: each one trips on a seeded scenario; calm markets don't; errors halt.

The acceptance checks of the calibrated breakers are here in small form (two seeds, 500-step episodes):
the sane baselines run whole episodes in ``ou``, ``regime`` and on every shipped real sample, and in
``flash_crash`` the volatility or fear breaker trips inside the event window, not before it.
``benchmarks/bench_breakers.py`` has the full table.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from janus_env.checks import NEED_RESET, bad_value
from janus_env.lob_env import JanusLOBEnv
from wrappers.amygdala import Amygdala
from wrappers.breakers import (
    _BAD_CONFIG,
    _BAD_FEAR_WEIGHTS,
    _BAD_KILL_FILE,
    _BAD_REASON,
    _UNKNOWN_SETTING,
    BREAKERS,
    CALLABLE_FIELDS,
    DEFAULT_FEAR_BIAS,
    DEFAULT_FEAR_WEIGHTS,
    BreakerConfig,
    CircuitBreakers,
    breaker_fields,
)

ONLY = {"max_drawdown": None, "vol_ratio": None, "fear_threshold": None, "slippage_ratio": None,
        "max_violation_rate": None}


def only(name: str, **extra: Any) -> dict[str, Any]:
    """Amygdala kwargs with every threshold disabled except ``name`` (at its default unless given)."""
    kw = {k: v for k, v in ONLY.items() if k != name}
    kw.update(extra)
    return kw


class StepCounter(gym.Wrapper):
    """Counts the actions that reach the market."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.n_steps = 0
        self.actions: list[Any] = []

    def step(self, action):
        self.n_steps += 1
        self.actions.append(action)
        return self.env.step(action)


class InjectInfo(gym.Wrapper):
    """Adds ``make(step_index) -> dict`` to each step's info (a stand-in for the shield / cerebellum)."""

    def __init__(self, env: gym.Env, make) -> None:
        super().__init__(env)
        self.make = make
        self.i = 0

    def reset(self, **kw):
        self.i = 0
        return self.env.reset(**kw)

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        info = {**info, **self.make(self.i)}
        self.i += 1
        return obs, r, term, trunc, info


class Raising(gym.Wrapper):
    def step(self, action):
        raise RuntimeError("inner boom")


def run(env: gym.Env, policy, n: int = 1000):
    """Step until done; returns (number of steps taken, last info, list of infos)."""
    infos = []
    for t in range(n):
        _, _, term, trunc, info = env.step(policy(t))
        infos.append(info)
        if term or trunc:
            return t + 1, info, infos
    return n, info, infos


def hold(t: int) -> int:
    return 0


# --------------------------------------------------------------------------- no false positives
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_calm_ou_passive_agent_never_halts(seed):
    env = Amygdala(JanusLOBEnv(scenario="ou", seed=seed, action_type="discrete"))
    _, info = env.reset()
    assert set(info["breakers"]) == set(BREAKERS) and info["halted"] is False
    n, last, infos = run(env, hold)
    assert n == 1000 and not last["halted"] and last["halt_reason"] is None
    for info in infos:
        assert set(info["breakers"]) == set(BREAKERS)
        for name, b in info["breakers"].items():
            assert {"value", "threshold", "active", "tripped"} <= set(b)
            assert not b["tripped"], (name, b)
    assert max(i["breakers"]["volatility"]["value"] for i in infos) < 3.0
    assert max(i["breakers"]["fear"]["value"] for i in infos) < 0.7


# --------------------------------------------------------------------------- volatility
def test_volatility_breaker_trips_in_flash_crash():
    base = StepCounter(JanusLOBEnv(scenario="flash_crash", seed=0))
    env = Amygdala(base, **only("vol_ratio"))
    env.reset()
    n, info, infos = run(env, hold)
    assert info["halted"] and info["halt_reason"].startswith("volatility: ")
    # the crash starts at 40% of the 1000-step session; calm before it
    assert 400 <= n <= 450, n
    assert all(not i["halted"] for i in infos[:-1])
    b = info["breakers"]["volatility"]
    assert b["tripped"] and b["value"] > b["threshold"] == 3.0
    # halted: the next step forwards nothing
    before = base.n_steps
    _, reward, term, trunc, again = env.step(1)
    assert base.n_steps == before and term and reward == 0.0
    assert again["action_forwarded"] is False and again["halt_reason"] == info["halt_reason"]
    assert again["exec_qty"] == 0


# --------------------------------------------------------------------------- drawdown
def test_drawdown_breaker_trips_when_holding_long_into_crash():
    # 5000 shares on $100,000 is 5x leverage: the buying-power check is off (max_leverage=inf) to hold it
    kw = dict(scenario="flash_crash", seed=0, action_type="sized", n_sizes=10, max_position=5000, lot=500,
              max_leverage=float("inf"))

    def long_then_hold(t: int) -> int:
        return 10 if t == 0 else 0  # buy 10 lots = max_position at the open, then hold

    ref = JanusLOBEnv(**kw)
    ref.reset()
    _, _, ref_infos = run(ref, long_then_hold)
    expected = next(t + 1 for t, i in enumerate(ref_infos) if i["drawdown"] > 0.10)
    assert ref_infos[0]["position"] == 5000

    env = Amygdala(JanusLOBEnv(**kw), **only("max_drawdown"))
    env.reset()
    n, info, _ = run(env, long_then_hold)
    assert n == expected and 400 <= n <= 450
    assert info["halted"] and info["halt_reason"].startswith("drawdown: session drawdown")
    assert info["breakers"]["drawdown"]["value"] == pytest.approx(ref_infos[n - 1]["drawdown"])


def test_default_breakers_halt_flash_crash_long():
    env = Amygdala(JanusLOBEnv(scenario="flash_crash", seed=0, action_type="sized", n_sizes=10,
                               max_position=5000, lot=500, max_leverage=float("inf")))
    env.reset()
    n, info, _ = run(env, lambda t: 10 if t == 0 else 0)
    assert info["halted"] and n < 450


# --------------------------------------------------------------------------- violation rate
def _ltn(violated: bool, blocked: bool | None = None) -> dict[str, Any]:
    """An ``info["ltn"]``; a violation is blocked (the shield replaced it) unless ``blocked=False``."""
    blocked = violated if blocked is None else blocked
    return {"ltn": {"rules": {"wash_sale": 0.2 if violated else 1.0}, "sat_agg": 0.2 if violated else 1.0,
                    "violation": 0.8 if violated else 0.0, "overridden": blocked, "proposed_action": 1,
                    "final_action": 0 if blocked else 1, "threshold": 0.9}}


def test_violation_rate_trips_at_min_proposals():
    # every 10th proposal is an executed violation (10% > 5%); the rate may only fire once 20 proposals were seen
    # (before: blocked proposals counted the same; now they weigh 0.1, see test_blocked_proposals_weigh_less)
    inner = InjectInfo(JanusLOBEnv(scenario="ou", seed=0), lambda i: _ltn(i % 10 == 0, blocked=False))
    env = Amygdala(inner, **only("max_violation_rate"))
    env.reset()
    n, info, infos = run(env, hold)
    assert n == 20
    assert info["halt_reason"] == ("violation_rate: 2 executed + 0.1 × 0 blocked violations in 20 proposals "
                                   "(10.0% > 0.05)")
    assert infos[0]["breakers"]["violation_rate"]["value"] == 1.0  # 1/1 but inactive below the minimum count
    assert not infos[0]["breakers"]["violation_rate"]["active"]


def test_violation_rate_below_threshold_does_not_trip():
    inner = InjectInfo(JanusLOBEnv(scenario="ou", seed=0, episode_steps=300),
                       lambda i: _ltn((i + 1) % 25 == 0, blocked=False))
    env = Amygdala(inner, **only("max_violation_rate"))
    env.reset()
    n, info, _ = run(env, hold)
    assert n == 300 and not info["halted"]
    assert info["breakers"]["violation_rate"]["value"] == pytest.approx(0.04)


@pytest.mark.parametrize(("every", "weight", "halts_at"), [
    (3, 0.1, None),  # a third of the proposals blocked: 3.3%
    (10, 0.1, None),  # a strategy meeting a rule now and then: 1%
    (4, 0.1, 20),  # 15 of 20 blocked: 7.5% > 5%: a policy fighting its risk layer
    (10, 1.0, 20),  # blocked_weight=1: blocked proposals count as violations (the breaker's old rule)
])
def test_blocked_proposals_weigh_less(every, weight, halts_at):
    # every == 4: 3 of 4 proposals blocked; else one in `every`, never more than that share of any prefix
    blocked = (lambda i: i % 4 != 0) if every == 4 else (lambda i: i % every == every - 1)
    inner = InjectInfo(JanusLOBEnv(scenario="ou", seed=0, episode_steps=200), lambda i: _ltn(blocked(i)))
    env = Amygdala(inner, **only("max_violation_rate", blocked_weight=weight))
    env.reset()
    n, info, infos = run(env, hold)
    k = sum(blocked(i) for i in range(n))
    last = min(n, 100)
    expect = weight * sum(blocked(i) for i in range(n - last, n)) / last  # over the last 100 proposals
    assert info["breakers"]["violation_rate"]["value"] == pytest.approx(expect)
    if halts_at is None:
        assert n == 200 and not info["halted"]
    else:
        assert n == halts_at and info["halt_reason"] == (
            f"violation_rate: 0 executed + {weight:g} × {k} blocked violations in {n} proposals "
            f"({weight * k / n:.1%} > 0.05)")


def test_violation_counts_low_satagg_without_override():
    def make(i):
        d = _ltn(False)
        d["ltn"]["violation"] = 0.5  # SatAgg 0.5 < τ 0.9 although nothing was overridden
        return d

    env = Amygdala(InjectInfo(JanusLOBEnv(scenario="ou", seed=0), make), **only("max_violation_rate"))
    env.reset()
    n, info, _ = run(env, hold)
    assert n == 20 and info["halt_reason"].startswith("violation_rate: 20 executed + 0.1 × 0 blocked")


def test_no_shield_means_no_violation_rate():
    env = Amygdala(JanusLOBEnv(scenario="ou", seed=0, episode_steps=50))
    env.reset()
    _, info, _ = run(env, hold)
    assert info["breakers"]["violation_rate"]["active"] is False


# --------------------------------------------------------------------------- slippage
def _trader(t: int) -> int:
    return 1 if t % 2 == 0 else 2  # buy, sell, buy, ... one lot


def test_slippage_breaker_trips_with_tiny_prediction():
    calls = []

    def predictor(obs, action, info):
        calls.append((action, info["step"]))
        return 0.01  # bps: far below half the spread

    env = Amygdala(JanusLOBEnv(scenario="ou", seed=0), **only("slippage_ratio", slippage_predictor=predictor))
    env.reset()
    n, info, infos = run(env, _trader)
    fills = [t for t, i in enumerate(infos) if i["exec_qty"] != 0]
    assert n == fills[4] + 1  # the 5th fill (min_fills) trips it
    assert info["halt_reason"].startswith("slippage: average slippage")
    assert info["breakers"]["slippage"]["value"] > 2.0
    assert info["predicted_slippage_bps"] == 0.01
    # the predictor saw the action and the info the agent decided on (previous step)
    assert calls[0] == (1, 0) and calls[3][1] == 3


def test_slippage_breaker_quiet_with_good_prediction():
    env = Amygdala(JanusLOBEnv(scenario="ou", seed=0, episode_steps=200),
                   slippage_predictor=lambda obs, a, info: 5.0)
    env.reset()
    n, info, _ = run(env, _trader)
    assert n == 200 and not info["halted"] and info["breakers"]["slippage"]["active"]


def test_slippage_from_info_key():
    inner = InjectInfo(JanusLOBEnv(scenario="ou", seed=0), lambda i: {"predicted_slippage_bps": 0.0})
    env = Amygdala(inner, **only("slippage_ratio"))
    env.reset()
    n, info, _ = run(env, _trader)
    assert info["halt_reason"].startswith("slippage: ") and n < 20


def test_slippage_inactive_without_prediction():
    env = Amygdala(JanusLOBEnv(scenario="ou", seed=0, episode_steps=100), **only("slippage_ratio"))
    env.reset()
    n, info, _ = run(env, _trader)
    assert n == 100 and info["breakers"]["slippage"]["active"] is False


# --------------------------------------------------------------------------- fear and the baselines
def reference(info0: dict[str, Any], infos: list[dict[str, Any]], halflife: float = 500.0, cap: float = 3.0,
              window: int = 20) -> list[tuple[float, float, float]]:
    """(σ_t/σ_hist, fear, σ_hist) per step from the documented recursions, written independently of the wrapper."""
    a_inf = 1.0 - 2.0 ** (-1.0 / halflife)
    var, n = info0["volatility"] ** 2, 1
    vpin_hist, n_vpin = info0["vpin"], 1
    mids = [info0["mid"]]
    out = []
    for i in infos:
        sigma_hist = math.sqrt(var)
        mids.append(i["mid"])
        dp_max = np.abs(np.diff(np.log(mids[-(window + 1):]))).max()
        excess = max(0.0, i["vpin"] - vpin_hist) / (1.0 - vpin_hist)
        x = np.array([excess, i["volatility"] / sigma_hist, dp_max / sigma_hist])
        fear = 1.0 / (1.0 + math.exp(-(np.dot(DEFAULT_FEAR_WEIGHTS, x) + DEFAULT_FEAR_BIAS)))
        out.append((x[1], fear, sigma_hist))
        # no move (σ ≤ 1e-9) and a reading above cap·σ_hist (an event) are left out
        if 1e-9 < i["volatility"] <= cap * sigma_hist:
            n += 1
            var += max(1.0 / n, a_inf) * (i["volatility"] ** 2 - var)
        n_vpin += 1
        vpin_hist += max(1.0 / n_vpin, a_inf) * (i["vpin"] - vpin_hist)
    return out


def test_fear_trips_in_flash_crash_and_matches_formula():
    env = Amygdala(JanusLOBEnv(scenario="flash_crash", seed=1), **only("fear_threshold"))
    _, info0 = env.reset()
    n, info, infos = run(env, hold)
    assert info["halt_reason"].startswith("fear: activation") and 400 < n <= 450  # the crash starts at step 400
    assert info["breakers"]["fear"]["value"] > 0.7
    ref = reference(info0, infos)
    for t in range(n):  # the reported activation and volatility ratio are the documented formulas
        assert infos[t]["breakers"]["fear"]["value"] == pytest.approx(ref[t][1], rel=1e-9, abs=1e-15)
        assert infos[t]["breakers"]["volatility"]["value"] == pytest.approx(ref[t][0], rel=1e-9)
    assert max(r[1] for r in ref[:399]) < 0.5  # calm before the crash


def test_sigma_hist_does_not_chase_the_crash():
    env = Amygdala(JanusLOBEnv(scenario="flash_crash", seed=0, episode_steps=500), **ONLY)  # nothing halts
    _, info0 = env.reset()
    sigma_hist, infos = [env.sigma_hist], []
    for _ in range(500):
        infos.append(env.step(0)[4])
        sigma_hist.append(env.sigma_hist)
    start, end = 200, 275  # market steps of the crash: event_start 0.4, event_length 0.15 of 500
    assert max(i["volatility"] for i in infos[start:end]) > 20 * sigma_hist[start]  # a 20×+ volatility event ...
    assert max(sigma_hist[start:end + 1]) < 1.2 * sigma_hist[start]  # ... that hardly moves the baseline
    ref = reference(info0, infos)  # the documented recursion, readings above 3σ_hist left out
    np.testing.assert_allclose(sigma_hist[:-1], [r[2] for r in ref], rtol=1e-9)


def test_lowered_fear_threshold_trips_on_calm_market():
    # calm fear is ≈ 0.01 (z ≈ −4.5): a threshold of 0.001 must trip at once
    env = Amygdala(JanusLOBEnv(scenario="ou", seed=0), **only("fear_threshold", fear_threshold=0.001))
    env.reset()
    n, info, _ = run(env, hold)
    assert n == 1 and info["halt_reason"].startswith("fear: ")


class PathEnv(gym.Env):
    """A market that replays log returns ``scale · path``: the info keys the amygdala reads, nothing else.

    ``volatility`` is the RMS of the last ``window`` one-step log returns (as the Janus-LOB envs report it),
    ``vpin`` is ``vpin_path``. The first ``window`` returns are history before the session.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,))
    action_space = gym.spaces.Discrete(3)

    def __init__(self, path: np.ndarray, scale: float, vpin_path: np.ndarray, window: int = 32) -> None:
        self.returns = scale * np.asarray(path, dtype=np.float64)
        self.mids = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(self.returns)]))
        self.vpin_path = vpin_path
        self.window = window

    def _info(self) -> dict[str, Any]:
        r = self.returns[max(0, self.t - self.window):self.t]
        return {"volatility": float(np.sqrt(np.mean(r * r))), "vpin": float(self.vpin_path[self.t]),
                "mid": float(self.mids[self.t]), "drawdown": 0.0, "exec_qty": 0.0, "slippage_bps": 0.0,
                "step": self.t - self.window}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = self.window
        return np.zeros(1, dtype=np.float32), self._info()

    def step(self, action):
        self.t += 1
        return np.zeros(1, dtype=np.float32), 0.0, False, self.t >= len(self.returns), self._info()


@pytest.mark.parametrize("scale", [1e-4, 5e-3])  # one path, as a 1 bp-per-step book and as 50 bp bars
def test_breakers_are_scale_free(scale):
    """The same path at two bar sizes gives the same readings and trips at the same step."""
    rng = np.random.default_rng(7)
    calm = rng.standard_t(4, 332) / math.sqrt(2.0)  # heavy tails, unit variance
    crash = -6.0 + 2.0 * rng.standard_normal(20)  # six-σ steps down
    path = np.concatenate([calm, crash, rng.standard_normal(60)])
    vpin = np.clip(0.45 + 0.02 * rng.standard_normal(path.size + 1), 0, 1)
    vpin[364:] += 0.3
    results = {}
    for s in (1e-4, scale):
        env = Amygdala(PathEnv(path, s, vpin), **{**ONLY, "fear_threshold": 0.7, "vol_ratio": 3.0})
        env.reset()
        n, info, infos = run(env, hold, 500)
        results[s] = (n, info["halt_reason"], [i["breakers"]["fear"]["value"] for i in infos],
                      [i["breakers"]["volatility"]["value"] for i in infos])
    (n0, reason0, fear0, vol0), (n1, reason1, fear1, vol1) = results[1e-4], results[scale]
    assert 300 < n0 <= 320 and n1 == n0  # trips inside the crash, at the same step at both scales
    assert reason0.split(" ")[0] == reason1.split(" ")[0]
    np.testing.assert_allclose(fear1, fear0, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(vol1, vol0, rtol=1e-6)
    assert max(fear0[:300]) < 0.5 and max(vol0[:300]) < 3.0  # and the heavy-tailed calm part does not


def test_env_volatility_is_the_window_rms():
    """The breaker's σ_t: the simulator reports the RMS of the last ``window`` one-step log mid returns
    (it once summed returns for up to 256 steps without dropping the old ones: a sawtooth up to 2.8×)."""
    env = JanusLOBEnv(scenario="ou", seed=0, episode_steps=600)
    _, info = env.reset()
    mids, vols = [info["mid"]], [info["volatility"]]
    for _ in range(600):
        _, _, _, _, info = env.step(0)
        mids.append(info["mid"])
        vols.append(info["volatility"])
    r = np.diff(np.log(mids))
    w = env.config.window
    rms = [math.sqrt(np.mean(r[t - w:t] ** 2)) for t in range(w, 601)]
    np.testing.assert_allclose(vols[w:], rms, rtol=1e-9, atol=1e-15)


BTC = {"lot": 1, "max_position": 5, "initial_cash": 1e6}
REAL = {
    "btc_usd_hourly": BTC, "btc_usd_daily": BTC, "btc_book_15_levels": BTC,
    "lobster_aapl": {"lot": 10, "max_position": 100, "step_messages": 10},
}
SANE = ("buy_and_hold", "momentum", "mean_reversion")


def _glass_box(market: str, steps: int = 500) -> gym.Env:
    import envs_registry  # noqa: F401
    from janus_env.samples import sample_path
    from wrappers.shield import LTNShield

    if market not in REAL:
        return Amygdala(LTNShield(gym.make("Janus-LOB-v0", scenario=market, episode_steps=steps)))
    kw = dict(REAL[market])
    data: Any = str(sample_path(market))
    if "step_messages" in kw:
        data = {"path": data, "step_messages": kw.pop("step_messages")}
    return Amygdala(LTNShield(gym.make("Janus-LOB-v0", scenario="historical", data=data, episode_steps=steps, **kw)))


def _play(env: gym.Env, name: str, seed: int) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    from agents.baselines import make_baseline

    policy = make_baseline(name, env, seed=seed)
    obs, _ = env.reset(seed=seed)
    infos = []
    while True:
        obs, _, terminated, truncated, info = env.step(policy.predict(obs)[0])
        infos.append(info)
        if terminated or truncated:
            return len(infos), info, infos


@pytest.mark.parametrize("market", ["ou", "regime", *REAL])
def test_sane_baselines_run_full_episodes(market):
    """Acceptance: with the default glass box, no halt for buy-and-hold, momentum and mean reversion."""
    env = _glass_box(market)
    steps = env.unwrapped._market.episode_steps if market in REAL else 500
    for name in SANE:
        for seed in (1000, 1001):  # evaluate.py's first seeds
            n, info, infos = _play(env, name, seed)
            assert n == steps and not info["halted"], (market, name, seed, info["halt_reason"])
            # and they do propose trades (on daily BTC the shield's impact rule lets few through)
            assert any(i["ltn"]["proposed_action"] != 0 for i in infos), (market, name, seed)


@pytest.mark.parametrize("policy", ["hold", *SANE])
def test_flash_crash_trips_volatility_or_fear_inside_the_event(policy):
    """Acceptance: the crash (market steps [200, 275) of 500, first seen at decision 201) halts inside it."""
    env = _glass_box("flash_crash")
    for seed in (1000, 1001):
        if policy == "hold":
            env.reset(seed=seed)
            n, info, _ = run(env, hold, 500)
        else:
            n, info, _ = _play(env, policy, seed)
        assert 200 < n <= 275, (policy, seed, n, info["halt_reason"])
        assert info["halt_reason"].split(":")[0] in ("volatility", "fear"), info["halt_reason"]


def test_same_seed_same_breaker_trajectory():
    trajectories = []
    for _ in range(2):
        _, _, infos = _play(_glass_box("regime", 300), "mean_reversion", 3)
        trajectories.append([(i["step"], {k: b["value"] for k, b in i["breakers"].items()}) for i in infos])
    assert trajectories[0] == trajectories[1]


# --------------------------------------------------------------------------- kill switch
def test_kill_method_blocks_next_action_and_persists():
    base = StepCounter(JanusLOBEnv(scenario="ou", seed=0))
    env = Amygdala(base)
    env.reset()
    env.step(1)
    env.kill("operator says stop")
    _, reward, term, trunc, info = env.step(1)
    assert base.n_steps == 1 and term and not trunc and reward == 0.0
    assert info["halted"] and info["halt_reason"] == "kill_switch: operator says stop"
    assert info["action_forwarded"] is False and info["breakers"]["kill_switch"]["tripped"]
    env.reset()
    _, _, term, _, info = env.step(1)  # still killed after reset
    assert term and base.n_steps == 1
    env.clear_kill()
    env.reset()
    _, _, term, _, info = env.step(1)
    assert not term and base.n_steps == 2 and info["action_forwarded"] is True


def test_kill_file_flag(tmp_path):
    flag = tmp_path / "janus.kill"
    base = StepCounter(JanusLOBEnv(scenario="ou", seed=0))
    env = Amygdala(base, kill_file=flag)
    env.reset()
    for _ in range(3):
        assert not env.step(1)[2]
    flag.write_text("")
    _, _, term, _, info = env.step(1)
    assert term and base.n_steps == 3
    assert info["halt_reason"] == f"kill_switch: flag file {flag} exists"
    flag.unlink()
    env.reset()
    assert not env.step(1)[2] and base.n_steps == 4


# --------------------------------------------------------------------------- fail-safe
def test_breaker_exception_halts(monkeypatch):
    env = Amygdala(JanusLOBEnv(scenario="ou", seed=0))
    env.reset()
    env.step(0)

    def boom(info):
        raise RuntimeError("boom")

    monkeypatch.setattr(env.breakers, "_check_drawdown", boom)
    _, _, term, _, info = env.step(0)
    assert term and info["halt_reason"] == "amygdala_error: drawdown breaker raised RuntimeError: boom"
    assert info["breakers"]["drawdown"]["error"] == info["halt_reason"]
    assert env.step(1)[4]["action_forwarded"] is False


@pytest.mark.parametrize("bad", ["nul\0byte", "file"])
def test_unreadable_kill_file_halts_before_forwarding(tmp_path, bad):
    path = tmp_path / "a_file"
    path.write_text("x")
    flag = "nul\0byte" if bad == "nul\0byte" else str(path / "kill")  # a path under a regular file
    base = StepCounter(JanusLOBEnv(scenario="ou", seed=0))
    env = Amygdala(base, kill_file=flag)
    env.reset()
    _, _, term, _, info = env.step(1)
    assert term and base.n_steps == 0 and info["action_forwarded"] is False
    assert info["halt_reason"].startswith("amygdala_error: kill switch check raised ")


def test_predictor_exception_halts_before_forwarding():
    def predictor(obs, action, info):
        raise ZeroDivisionError("bad model")

    base = StepCounter(JanusLOBEnv(scenario="ou", seed=0))
    env = Amygdala(base, slippage_predictor=predictor)
    env.reset()
    _, _, term, _, info = env.step(1)
    assert term and base.n_steps == 0
    assert info["halt_reason"] == "amygdala_error: slippage predictor raised ZeroDivisionError: bad model"


def test_predictor_nan_halts():
    base = StepCounter(JanusLOBEnv(scenario="ou", seed=0))
    env = Amygdala(base, slippage_predictor=lambda o, a, i: float("nan"))
    env.reset()
    _, _, term, _, info = env.step(1)
    assert term and base.n_steps == 0 and info["halt_reason"].startswith("amygdala_error: slippage predictor")


def test_missing_info_key_halts():
    class DropVol(gym.Wrapper):
        def step(self, action):
            obs, r, te, tr, info = self.env.step(action)
            info = dict(info)
            del info["volatility"]
            return obs, r, te, tr, info

    env = Amygdala(DropVol(JanusLOBEnv(scenario="ou", seed=0)))
    env.reset()
    _, _, term, _, info = env.step(0)
    assert term and info["halt_reason"].startswith("amygdala_error: ")
    assert "KeyError" in info["halt_reason"]


def test_inner_env_exception_halts_or_reraises():
    env = Amygdala(Raising(JanusLOBEnv(scenario="ou", seed=0)))
    env.reset()
    _, _, term, _, info = env.step(0)
    assert term and info["halt_reason"] == "amygdala_error: wrapped env step raised RuntimeError: inner boom"
    assert info["action_forwarded"] is None
    strict = Amygdala(Raising(JanusLOBEnv(scenario="ou", seed=0)), halt_on_env_error=False)
    strict.reset()
    with pytest.raises(RuntimeError, match="inner boom"):
        strict.step(0)


def test_inner_halt_is_respected():
    inner = InjectInfo(JanusLOBEnv(scenario="ou", seed=0),
                       lambda i: {"halted": i == 2, "halt_reason": "shield: toxic flow" if i == 2 else None})
    base = StepCounter(inner)
    env = Amygdala(base)
    env.reset()
    n, info, _ = run(env, hold)
    assert n == 3 and info["halt_reason"] == "shield: toxic flow"
    env.step(0)
    assert base.n_steps == 3


def test_step_before_reset():
    env = Amygdala(JanusLOBEnv(scenario="ou", seed=0))
    with pytest.raises(RuntimeError, match=re.escape(NEED_RESET)):
        env.step(0)


def test_works_under_gym_make():
    import envs_registry  # noqa: F401

    env = Amygdala(gym.make("Janus-LOB-FlashCrash-v0", seed=2), **only("vol_ratio"))
    env.reset()
    n, info, _ = run(env, hold)
    assert info["halt_reason"].startswith("volatility: ") and n < 460


# --------------------------------------------------------------------------- arguments


_RATIO = "a finite number > 0 or None"  # a threshold; None disables its breaker
_FRACTION = "a number in (0, 1) or None"


@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"max_drawdown": 0.0}, ValueError, bad_value("max_drawdown", _RATIO, 0.0)),
    ({"max_drawdown": True}, TypeError, bad_value("max_drawdown", _RATIO, True)),
    ({"vol_ratio": -3}, ValueError, "Expected `vol_ratio` to be a finite number > 0 or None, got -3"),
    ({"vol_ratio": float("nan")}, ValueError, bad_value("vol_ratio", _RATIO, float("nan"))),
    ({"slippage_ratio": "2"}, TypeError, bad_value("slippage_ratio", _RATIO, "2")),
    ({"fear_threshold": 1.5}, ValueError, "Expected `fear_threshold` to be a number in (0, 1) or None, got 1.5"),
    ({"fear_threshold": float("nan")}, ValueError, bad_value("fear_threshold", _FRACTION, float("nan"))),
    ({"max_violation_rate": 0.0}, ValueError, bad_value("max_violation_rate", _FRACTION, 0.0)),
    ({"fear_weights": (1.0, 2.0)}, ValueError, _BAD_FEAR_WEIGHTS.format((1.0, 2.0))),
    ({"fear_weights": 3}, TypeError, _BAD_FEAR_WEIGHTS.format(3)),
    ({"fear_weights": (2.0, float("inf"), 0.25)}, ValueError, bad_value("fear_weights[1]", "a finite number", math.inf)),
    # the old float(w) conversion took True as 1.0 and "2" as 2.0
    ({"fear_weights": (2.0, True, 0.25)}, TypeError, bad_value("fear_weights[1]", "a finite number", True)),
    ({"fear_weights": ("2", 1.0, 0.25)}, TypeError, bad_value("fear_weights[0]", "a finite number", "2")),
    ({"slippage_predictor": 1.0}, TypeError, bad_value("slippage_predictor", "callable or None", 1.0)),
    ({"kill_file": 7}, TypeError, _BAD_KILL_FILE.format(7)),
    ({"blocked_weight": 1.5}, ValueError, bad_value("blocked_weight", "a number in [0, 1]", 1.5)),
    ({"blocked_weight": "0.1"}, TypeError, bad_value("blocked_weight", "a number in [0, 1]", "0.1")),
    ({"fear_window": 0}, ValueError, "Expected `fear_window` to be an int >= 1, got 0"),
    ({"min_fills": 2.0}, TypeError, "Expected `min_fills` to be an int >= 1, got 2.0"),
    ({"violation_window": np.bool_(True)}, TypeError, bad_value("violation_window", "an int >= 1", np.bool_(True))),
    ({"vol_halflife": float("inf")}, ValueError, "Expected `vol_halflife` to be a finite number > 0, got inf"),
    ({"min_predicted_bps": 0}, ValueError, bad_value("min_predicted_bps", "a finite number > 0", 0)),
    ({"fear_bias": float("nan")}, ValueError, "Expected `fear_bias` to be a finite number, got nan"),
    ({"anomaly_detector": "umap"}, TypeError, "Expected `anomaly_detector` to be callable or None, got 'umap'"),
])
def test_bad_arguments(kwargs, exc, message):
    # the one check (BreakerConfig) behind every door: the dataclass, a YAML mapping, the wrapper's keywords
    with pytest.raises(exc, match=re.escape(message)):
        BreakerConfig(**kwargs)
    with pytest.raises(exc, match=re.escape(message)):
        BreakerConfig.from_mapping(kwargs)
    with pytest.raises(exc, match=re.escape(message)):
        Amygdala(JanusLOBEnv(scenario="ou", seed=0), **kwargs)


def test_halt_on_env_error_must_be_a_bool():
    # the old bool() conversion read the string "false" as True: the opposite of what was asked
    with pytest.raises(TypeError, match=re.escape(bad_value("halt_on_env_error", "a bool", "false"))):
        Amygdala(JanusLOBEnv(scenario="ou", seed=0), halt_on_env_error="false")
    assert Amygdala(JanusLOBEnv(scenario="ou", seed=0), halt_on_env_error=np.bool_(False)).halt_on_env_error is False


def test_unknown_keyword_names_the_fields():
    fields = [f.name for f in dataclasses.fields(BreakerConfig)]
    message = _UNKNOWN_SETTING.format("volratio", fields)
    assert message.startswith("Unknown breaker argument 'volratio'; expected some of ['max_drawdown', 'vol_ratio'")
    with pytest.raises(TypeError, match=re.escape(message)):
        Amygdala(JanusLOBEnv(scenario="ou", seed=0), volratio=4.0)
    with pytest.raises(TypeError, match=re.escape(message)):
        BreakerConfig.from_mapping({"volratio": 4.0})
    assert list(breaker_fields()) == fields
    assert list(breaker_fields(callables=False)) == [f for f in fields if f not in CALLABLE_FIELDS]
    assert set(CALLABLE_FIELDS) == {"slippage_predictor", "anomaly_detector"} <= set(fields)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Amygdala(JanusLOBEnv(scenario="ou", seed=0), config={"vol_ratio": 4.0}),
     _BAD_CONFIG.format({"vol_ratio": 4.0})),
    (lambda: CircuitBreakers({"vol_ratio": 4.0}), _BAD_CONFIG.format({"vol_ratio": 4.0})),
    (lambda: BreakerConfig.from_mapping("vol_ratio=4"), bad_value("settings", "a mapping", "vol_ratio=4")),
    (lambda: BreakerConfig.from_mapping({}, base={"vol_ratio": 4.0}), _BAD_CONFIG.format({"vol_ratio": 4.0})),
    (lambda: BreakerConfig(0.05), "positional argument"),
])
def test_bad_config(make, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        make()


def test_config_defaults_are_design_md():
    # DESIGN.md: "breakers: 3× vol, 10% DD, 5% violations, 2× slippage", τ_fear = τ_risk 0.7
    c = BreakerConfig()
    assert (c.vol_ratio, c.max_drawdown, c.max_violation_rate, c.slippage_ratio, c.fear_threshold) == (
        3.0, 0.10, 0.05, 2.0, 0.7)
    assert (c.fear_weights, c.fear_bias) == (DEFAULT_FEAR_WEIGHTS, DEFAULT_FEAR_BIAS)
    assert c.kill_file is None and c.slippage_predictor is None and c.anomaly_detector is None
    assert CircuitBreakers().config == c == Amygdala(JanusLOBEnv(scenario="ou", seed=0)).config


def test_config_is_frozen_and_normalized():
    c = BreakerConfig.from_mapping({"vol_ratio": 4, "fear_weights": [2, 1, 0.25], "fear_window": np.int64(10),
                                    "min_predicted_bps": np.float32(0.5), "fear_threshold": None})
    assert type(c.vol_ratio) is float and c.vol_ratio == 4.0
    assert c.fear_weights == (2.0, 1.0, 0.25) and all(type(w) is float for w in c.fear_weights)
    assert type(c.fear_window) is int and c.fear_window == 10
    assert type(c.min_predicted_bps) is float and c.fear_threshold is None
    assert c == BreakerConfig(vol_ratio=4.0, fear_weights=(2.0, 1.0, 0.25), fear_window=10, min_predicted_bps=0.5,
                              fear_threshold=None)
    assert hash(c) == hash(dataclasses.replace(c))
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.vol_ratio = 5.0
    with pytest.raises(ValueError, match=re.escape(bad_value("vol_ratio", _RATIO, -1))):
        dataclasses.replace(c, vol_ratio=-1)  # a changed copy is checked again
    assert BreakerConfig.from_mapping(None) == BreakerConfig() and BreakerConfig.from_mapping({}, base=c) is c


def test_config_and_keywords_build_the_same_breakers():
    config = BreakerConfig(vol_ratio=4.0, fear_threshold=None)
    by_keywords = Amygdala(JanusLOBEnv(scenario="flash_crash", seed=0), vol_ratio=4.0, fear_threshold=None)
    by_config = Amygdala(JanusLOBEnv(scenario="flash_crash", seed=0), config=config)
    overridden = Amygdala(JanusLOBEnv(scenario="flash_crash", seed=0), config=BreakerConfig(vol_ratio=4.0),
                          fear_threshold=None)  # keywords replace the config's fields
    assert by_keywords.config == by_config.config == overridden.config == config
    assert by_config.breakers.config is config
    trajectories = []
    for env in (by_keywords, by_config, overridden):
        env.reset()
        _, info, infos = run(env, hold)
        trajectories.append(([{k: b["value"] for k, b in i["breakers"].items()} for i in infos], info["halt_reason"]))
    assert trajectories[0][1].startswith("volatility: ") and "> 4.0×" in trajectories[0][1]
    assert trajectories[0] == trajectories[1] == trajectories[2]


@pytest.mark.parametrize(("reason", "exc"), [("", ValueError), (None, TypeError)])
def test_bad_kill_reason(reason, exc):
    env = Amygdala(JanusLOBEnv(scenario="ou", seed=0))
    with pytest.raises(exc, match=re.escape(_BAD_REASON.format(reason))):
        env.kill(reason)


# --------------------------------------------------------------------------- with the real shield
def test_violation_rate_with_ltn_shield():
    shield = pytest.importorskip("wrappers.shield")
    # 5 lots of 300 = 1500 shares > max_position 1000: the position-limit rule vetoes every proposal
    env = Amygdala(shield.LTNShield(JanusLOBEnv(scenario="ou", seed=0, action_type="sized", n_sizes=5,
                                                lot=300, max_position=1000)), **only("max_violation_rate"))
    env.reset()
    n, info, infos = run(env, lambda t: 5)
    assert n == 20 and all(i["ltn"]["overridden"] for i in infos)
    # every proposal blocked: 20 × 0.1 / 20 = 10% > 5% (a policy that only fights its risk layer halts)
    assert info["halt_reason"] == ("violation_rate: 0 executed + 0.1 × 20 blocked violations in 20 proposals "
                                   "(10.0% > 0.05)")
    assert info["position"] == 0


def test_anomaly_raises_fear_and_can_halt() -> None:
    import gymnasium as gym

    from wrappers import Amygdala

    calm = Amygdala(gym.make("Janus-LOB-v0", episode_steps=50), fear_threshold=0.5)
    scared = Amygdala(gym.make("Janus-LOB-v0", episode_steps=50), fear_threshold=0.5,
                      anomaly_detector=lambda obs: True, anomaly_weight=8.0)
    calm.reset(seed=0)
    scared.reset(seed=0)
    _, _, _, _, info_calm = calm.step(0)
    _, _, terminated, _, info = scared.step(0)
    assert info["anomaly"] is True and info_calm["anomaly"] is False
    assert terminated and info["halted"] and info["halt_reason"].startswith("fear:")
    assert "anomaly True" in info["halt_reason"]


def test_failing_anomaly_detector_halts() -> None:
    import gymnasium as gym

    from wrappers import Amygdala

    def broken(obs):
        raise RuntimeError("detector down")

    env = Amygdala(gym.make("Janus-LOB-v0", episode_steps=50), anomaly_detector=broken)
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(1)
    assert terminated and info["halted"] and "detector down" in info["halt_reason"]


# --------------------------------------------------------------------------- fail-safe around the breakers
def test_fault_after_the_step_halts_the_next_step(monkeypatch):
    """The order has executed when the post-step bookkeeping raises: the step reports the halt, the next
    step forwards nothing (issue 15: the next step used to trade)."""
    base = StepCounter(JanusLOBEnv(scenario="ou", seed=0))
    env = Amygdala(base)
    env.reset()
    env.step(1)

    def boom(info):
        raise RuntimeError("boom")

    monkeypatch.setattr(env.breakers, "after_step", lambda obs, info: boom(info))
    _, _, term, _, info = env.step(1)
    assert base.n_steps == 2 and info["action_forwarded"] is True and info["position"] == 200
    assert term and info["halted"] and env.halted
    assert info["halt_reason"] == env.halt_reason == "amygdala_error: post-step bookkeeping raised RuntimeError: boom"
    assert set(info["breakers"]) == set(BREAKERS)
    monkeypatch.undo()  # even when the fault goes away, the session stays halted
    _, reward, term, _, again = env.step(1)
    assert base.n_steps == 2 and term and reward == 0.0 and again["action_forwarded"] is False
    assert again["halt_reason"] == info["halt_reason"] and again["exec_qty"] == 0
    env.reset()
    assert not env.halted and not env.step(1)[2] and base.n_steps == 3


def test_fault_while_clearing_the_last_session_halts(monkeypatch):
    """A raise in ``_clear_session`` during reset used to leave the last session's breaker state in force."""
    base = StepCounter(JanusLOBEnv(scenario="ou", seed=0))
    env = Amygdala(base)
    env.reset()
    env.step(1)

    def boom():
        raise OSError("disk gone")

    monkeypatch.setattr(env.breakers, "_clear_session", boom)
    _, info = env.reset()
    reason = "amygdala_error: reset bookkeeping raised OSError: disk gone"
    assert info["halted"] and info["halt_reason"] == reason and env.halted
    assert all(b["reason"] == f"{name}: not evaluated" for name, b in info["breakers"].items())
    _, _, term, _, info = env.step(1)
    assert term and base.n_steps == 1 and info["action_forwarded"] is False and info["halt_reason"] == reason


def test_fault_in_the_report_halts_even_when_the_breakers_cannot(monkeypatch):
    """The wrapper keeps its own fault flag: a fault in the breakers' report and in their halt still halts."""
    base = StepCounter(JanusLOBEnv(scenario="ou", seed=0))
    env = Amygdala(base)
    env.reset()

    def boom(*args):
        raise RuntimeError("broken")

    monkeypatch.setattr(env.breakers, "breaker_info", boom)
    monkeypatch.setattr(env.breakers, "halt_on_error", boom)
    _, _, term, _, info = env.step(1)
    reason = "amygdala_error: post-step bookkeeping raised RuntimeError: broken"
    assert term and info["halt_reason"] == reason and not env.breakers.halted and env.halted
    assert info["breakers"]["drawdown"] == {"value": None, "threshold": None, "active": False, "tripped": False,
                                            "error": reason, "reason": reason}
    _, _, term, _, info = env.step(1)
    assert term and base.n_steps == 1 and info["action_forwarded"] is False and info["halt_reason"] == reason


def test_invalid_action_halts_with_its_message_or_raises():
    """The amygdala forwards what it gets; the market's ``InvalidActionError`` halts (named in the reason), or is
    raised with ``halt_on_env_error=False``."""
    from janus_env.actions import InvalidActionError

    env = Amygdala(JanusLOBEnv(scenario="ou", seed=0))
    env.reset()
    _, _, term, _, info = env.step(7)
    assert term and info["halt_reason"] == ("amygdala_error: wrapped env step raised InvalidActionError: "
                                            "Action 7 is outside Discrete(3)")
    strict = Amygdala(JanusLOBEnv(scenario="ou", seed=0), halt_on_env_error=False)
    strict.reset()
    with pytest.raises(InvalidActionError, match=re.escape("Action 7 is outside Discrete(3)")):
        strict.step(7)
    assert not strict.halted and not strict.step(0)[2]


def test_failed_inner_reset_leaves_nothing_to_step():
    class FailingReset(gym.Wrapper):
        fail = False

        def reset(self, **kw):
            if self.fail:
                raise OSError("data file gone")
            return self.env.reset(**kw)

    inner = FailingReset(JanusLOBEnv(scenario="ou", seed=0))
    env = Amygdala(inner)
    env.reset()
    env.step(0)
    inner.fail = True
    with pytest.raises(OSError, match="data file gone"):
        env.reset()
    with pytest.raises(RuntimeError, match=re.escape(NEED_RESET)):
        env.step(1)


def test_inner_shield_that_starts_halted_halts_the_session(monkeypatch):
    """A shield whose reset failed marks its reset info halted: the amygdala reports it at once and forwards nothing."""
    shield = pytest.importorskip("wrappers.shield")
    base = StepCounter(JanusLOBEnv(scenario="ou", seed=0))
    inner = shield.LTNShield(base)
    env = Amygdala(inner)

    def boom(buffers):
        raise MemoryError("no room for the history")

    monkeypatch.setattr(inner.core, "attach", boom)
    _, info = env.reset()
    reason = "shield_error: MemoryError: no room for the history"
    assert info["halted"] and info["halt_reason"] == reason == env.halt_reason and inner.halted
    _, _, term, _, info = env.step(1)
    assert term and base.n_steps == 0 and info["action_forwarded"] is False and info["halt_reason"] == reason
