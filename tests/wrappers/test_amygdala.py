"""Amygdala circuit breakers: each one trips on a seeded scenario; calm markets don't; errors halt."""

from __future__ import annotations

import math
import re
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from janus_env.lob_env import JanusLOBEnv
from wrappers.amygdala import (
    _BAD_FEAR_WEIGHTS,
    _BAD_FRACTION,
    _BAD_KILL_FILE,
    _BAD_PREDICTOR,
    _BAD_RATIO,
    _BAD_REASON,
    _NEED_RESET,
    BREAKERS,
    DEFAULT_FEAR_BIAS,
    DEFAULT_FEAR_WEIGHTS,
    Amygdala,
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
    kw = dict(scenario="flash_crash", seed=0, action_type="sized", n_sizes=10, max_position=5000, lot=500)

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
                               max_position=5000, lot=500))
    env.reset()
    n, info, _ = run(env, lambda t: 10 if t == 0 else 0)
    assert info["halted"] and n < 450


# --------------------------------------------------------------------------- violation rate
def _ltn(violated: bool) -> dict[str, Any]:
    return {"ltn": {"rules": {"wash_sale": 0.2 if violated else 1.0}, "sat_agg": 0.2 if violated else 1.0,
                    "violation": 0.8 if violated else 0.0, "overridden": violated, "proposed_action": 1,
                    "final_action": 0 if violated else 1, "threshold": 0.9}}


def test_violation_rate_trips_at_min_proposals():
    # every 10th proposal violates (10% > 5%); the rate may only fire once 20 proposals were seen
    inner = InjectInfo(JanusLOBEnv(scenario="ou", seed=0), lambda i: _ltn(i % 10 == 0))
    env = Amygdala(inner, **only("max_violation_rate"))
    env.reset()
    n, info, infos = run(env, hold)
    assert n == 20
    assert info["halt_reason"] == "violation_rate: 2/20 proposed actions violated the LTN rules (10.0% > 0.05)"
    assert infos[0]["breakers"]["violation_rate"]["value"] == 1.0  # 1/1 but inactive below the minimum count
    assert not infos[0]["breakers"]["violation_rate"]["active"]


def test_violation_rate_below_threshold_does_not_trip():
    inner = InjectInfo(JanusLOBEnv(scenario="ou", seed=0, episode_steps=300), lambda i: _ltn((i + 1) % 25 == 0))
    env = Amygdala(inner, **only("max_violation_rate"))
    env.reset()
    n, info, _ = run(env, hold)
    assert n == 300 and not info["halted"]
    assert info["breakers"]["violation_rate"]["value"] == pytest.approx(0.04)


def test_violation_counts_low_satagg_without_override():
    def make(i):
        d = _ltn(False)
        d["ltn"]["violation"] = 0.5  # SatAgg 0.5 < τ 0.9 although nothing was overridden
        return d

    env = Amygdala(InjectInfo(JanusLOBEnv(scenario="ou", seed=0), make), **only("max_violation_rate"))
    env.reset()
    n, info, _ = run(env, hold)
    assert n == 20 and info["halt_reason"].startswith("violation_rate: 20/20")


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


# --------------------------------------------------------------------------- fear
def _fear(vpin: float, sigma_bps: float, dp_bps: float) -> float:
    w, b = DEFAULT_FEAR_WEIGHTS, DEFAULT_FEAR_BIAS
    return 1.0 / (1.0 + math.exp(-(w[0] * vpin + w[1] * sigma_bps + w[2] * dp_bps + b)))


def test_fear_trips_in_flash_crash_and_matches_formula():
    env = Amygdala(JanusLOBEnv(scenario="flash_crash", seed=1), **only("fear_threshold"))
    _, info0 = env.reset()
    mids = [info0["mid"]]
    n, info, infos = run(env, hold)
    assert info["halt_reason"].startswith("fear: activation") and 400 <= n <= 450
    assert info["breakers"]["fear"]["value"] > 0.7
    mids += [i["mid"] for i in infos]
    for t in (10, n - 1):  # the reported activation is the documented formula
        moves = np.abs(np.diff(np.log(mids[max(0, t + 1 - 20):t + 2]))) * 1e4
        i = infos[t]
        expect = _fear(i["vpin"], i["volatility"] * 1e4, moves.max())
        assert i["breakers"]["fear"]["value"] == pytest.approx(expect, rel=1e-9)


def test_lowered_fear_threshold_trips_on_calm_market():
    env = Amygdala(JanusLOBEnv(scenario="ou", seed=0), **only("fear_threshold", fear_threshold=0.01))
    env.reset()
    n, info, _ = run(env, hold)
    assert n == 1 and info["halt_reason"].startswith("fear: ")


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

    monkeypatch.setattr(env, "_check_drawdown", boom)
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
    with pytest.raises(RuntimeError, match=re.escape(_NEED_RESET)):
        env.step(0)


def test_works_under_gym_make():
    import envs_registry  # noqa: F401

    env = Amygdala(gym.make("Janus-LOB-FlashCrash-v0", seed=2), **only("vol_ratio"))
    env.reset()
    n, info, _ = run(env, hold)
    assert info["halt_reason"].startswith("volatility: ") and n < 460


# --------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(("kwargs", "exc", "message"), [
    ({"max_drawdown": 0.0}, ValueError, _BAD_RATIO.format("max_drawdown", 0.0)),
    ({"vol_ratio": -3}, ValueError, _BAD_RATIO.format("vol_ratio", -3)),
    ({"slippage_ratio": "2"}, TypeError, _BAD_RATIO.format("slippage_ratio", "2")),
    ({"fear_threshold": 1.5}, ValueError, _BAD_FRACTION.format("fear_threshold", 1.5)),
    ({"max_violation_rate": 0.0}, ValueError, _BAD_FRACTION.format("max_violation_rate", 0.0)),
    ({"fear_weights": (1.0, 2.0)}, ValueError, _BAD_FEAR_WEIGHTS.format((1.0, 2.0))),
    ({"fear_weights": 3}, TypeError, _BAD_FEAR_WEIGHTS.format(3)),
    ({"slippage_predictor": 1.0}, TypeError, _BAD_PREDICTOR.format(1.0)),
    ({"kill_file": 7}, TypeError, _BAD_KILL_FILE.format(7)),
])
def test_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=re.escape(message)):
        Amygdala(JanusLOBEnv(scenario="ou", seed=0), **kwargs)


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
    assert info["halt_reason"] == "violation_rate: 20/20 proposed actions violated the LTN rules (100.0% > 0.05)"
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
