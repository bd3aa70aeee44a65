"""``train.py multi``: tournament end to end, the payoff intervals, bad configs."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from agents.app.tournament import load_config, payoff_table

TINY = """
env: {roles: {market_maker: 1, informed: 1, janus: 2}, episode_steps: 50}
agents:
  janus: {algo: ppo, timesteps: 256, shared: true, hyperparams: {n_steps: 128}}
matchups:
  - {name: scripted_maker}
  - {name: learned_maker, agents: {market_maker: {algo: ppo, timesteps: 256, hyperparams: {n_steps: 128}},
                                   janus_1: {algo: dqn, timesteps: 256}}}
seeds: [0, 1]
episodes: 1
"""


def _multi(run_script, tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    config = tmp_path / "tiny.yaml"
    config.write_text(text)
    return run_script("train.py", "multi", "--config", str(config), "--run-dir", str(tmp_path / "runs"),
                      "--no-progress", check=False, timeout=300)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory, run_script) -> tuple[subprocess.CompletedProcess, Path]:
    """One run of the TINY tournament, shared by the tests that read its outputs."""
    tmp_path = tmp_path_factory.mktemp("tiny")
    proc = _multi(run_script, tmp_path, TINY)
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp_path / "runs").glob("multi__tiny__*")
    return proc, run


def test_multi_writes_payoff_reports(tiny: tuple[subprocess.CompletedProcess, Path]) -> None:
    proc, run = tiny
    for name in ("payoff.md", "payoff.csv", "payoff.json", "payoff.png", "config.yaml"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("janus_0+janus_1/*/events*"))  # shared policy in scripted_maker
    assert list((run / "tb").glob("market_maker_0/learned_maker_1/events*"))
    payoff = json.loads((run / "payoff.json").read_text())
    assert set(payoff) == {"scripted_maker", "learned_maker"}
    for row in payoff.values():
        assert set(row) == {"market_maker", "informed", "janus"}
        for cell in row.values():
            assert math.isfinite(cell["mean"]) and math.isfinite(cell["ci"]) and cell["n"] == 2
    assert "| matchup | market_maker | informed | janus |" in proc.stdout
    assert (run / "payoff.md").read_text() in proc.stdout
    assert not (run / "halts.json").exists()  # no `safety:` section


def test_learned_models_are_saved_and_reload(tiny: tuple[subprocess.CompletedProcess, Path]) -> None:
    from stable_baselines3 import DQN, PPO

    from envs_registry.pettingzoo_envs import make_parallel_env

    models = tiny[1] / "models"
    saved = sorted(p.relative_to(models).as_posix() for p in models.rglob("*") if p.is_file())
    assert saved == ["learned_maker/janus_0.zip", "learned_maker/janus_1.zip", "learned_maker/market_maker_0.zip",
                     "scripted_maker/janus_0.zip", "scripted_maker/janus_1.zip"]  # no temporary file left
    obs, _ = make_parallel_env(roles={"market_maker": 1, "informed": 1, "janus": 2}, episode_steps=50).reset(seed=0)
    for name, cls, agent in (("scripted_maker/janus_1", PPO, "janus_1"), ("learned_maker/janus_1", DQN, "janus_1"),
                             ("learned_maker/market_maker_0", PPO, "market_maker_0")):
        model = cls.load(models / f"{name}.zip", device="cpu")
        action, _ = model.predict(obs[agent], deterministic=True)
        assert model.action_space.contains(np.asarray(action, dtype=np.int64).reshape(model.action_space.shape))


GUARDED = """
env: {roles: {market_maker: 1, noise: 1, janus: 2}, episode_steps: 40}
agents:
  janus_0: random
  janus_1: {algo: ppo, timesteps: 128, hyperparams: {n_steps: 64, batch_size: 32}}
safety: {shield: true, breakers: {max_drawdown: 0.0001}}
matchups:
  - {name: guarded}
  - {name: unguarded, safety: false}
seeds: [0]
episodes: 1
"""


def test_safety_halts_are_reported_per_agent(tmp_path: Path, run_script) -> None:
    proc = _multi(run_script, tmp_path, GUARDED)
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp_path / "runs").glob("multi__tiny__*")
    halts = json.loads((run / "halts.json").read_text())
    assert set(halts) == {"guarded"}  # the unguarded matchup has no glass box
    counts = halts["guarded"]["halted_episodes"]
    assert counts["janus_0"] == 1 and counts["market_maker_0"] == counts["noise_0"] == 0
    (record,) = [r for r in halts["guarded"]["halts"] if r["agent"] == "janus_0"]
    assert record["reason"].startswith("drawdown: ") and record["seed"] == 0 and record["episode"] == 0
    assert "halted episodes in guarded: janus_0 1/1" in proc.stdout
    assert set(json.loads((run / "payoff.json").read_text())) == {"guarded", "unguarded"}
    assert (run / "models" / "guarded" / "janus_1.zip").is_file()


@pytest.mark.parametrize(("safety", "message"), [
    ("{shield: {threshold: 2}}", "Expected `threshold` to be a number in (0, 1], got 2"),
    ("{shield: {agents: [whale]}}", "Unknown agent or role 'whale' in `agents`"),
    ("{shield: {agents: market_maker}}", "The LTN shield guards takers only; 'market_maker_0' is a market maker"),
    ("{breakers: {max_drawdwn: 0.1}}", "Unknown key 'max_drawdwn' in `safety.breakers`"),
    ("{breakers: {max_drawdown: 0.5, vol_ratio: -3}}",
     "Expected `vol_ratio` to be a finite number > 0 or None, got -3"),
    ("{breakers: yes please}", "Expected `safety.breakers` to be true, false or a mapping"),
    ("{shield: {knowledge_base: {wash_sale_window: 0}}}", "Expected `wash_sale_window` to be an int >= 1, got 0"),
    ("[shield]", "Expected `safety` to be true, false or a mapping with keys `shield` and `breakers`"),
])
def test_bad_safety_section_is_a_config_error(tmp_path: Path, safety: str, message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(f"env: {{roles: {{market_maker: 1, janus: 1}}}}\nsafety: {safety}\n")
    with pytest.raises(ValueError) as info:  # ConfigError or the wrappers' ValueError: train.py exits 2
        load_config(config)
    assert message in str(info.value)


def test_payoff_interval_matches_hand_computation() -> None:
    # x = 1, 2, 3, 4: mean 2.5, s = sqrt(5/3), t_{0.975, 3} = 3.182446305284263
    table = payoff_table({"m": {"janus": [1.0, 2.0, 3.0, 4.0], "informed": [1.0]}})
    cell, half = table["m"]["janus"], 3.182446305284263 * math.sqrt(5 / 3) / 2.0
    assert cell["mean"] == pytest.approx(2.5) and cell["ci"] == pytest.approx(half) and cell["n"] == 4
    assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((2.5 - half, 2.5 + half))
    assert table["m"]["informed"]["mean"] == 1.0 and math.isnan(table["m"]["informed"]["ci"])


@pytest.mark.parametrize(("text", "error", "message"), [
    ("agents: {janus: {algo: ppo, timesteps: 0}}\n", ValueError,
     "Expected `janus_0.timesteps` to be an int >= 1, got 0"),
    ("agents: {janus: {algo: ppo, timesteps: 3e3}}\n", TypeError,  # 3e3 is a float (YAML 1.2 numbers), not an int
     "Expected `janus_0.timesteps` to be an int >= 1, got 3000.0"),
    ("agents: {janus_1: {algo: dqn, timesteps: true}}\n", TypeError,
     "Expected `janus_1.timesteps` to be an int >= 1, got True"),
    ("agents: {janus: {algo: null}}\n", ValueError, "Expected `janus_0.algo` to be one of ('ppo', 'dqn'), got None"),
    ("episodes: 0\n", ValueError, "Expected `episodes` to be an int >= 1, got 0"),
    ("episodes: '3'\n", TypeError, "Expected `episodes` to be an int >= 1, got '3'"),
])
def test_bad_learned_strategy_and_episodes(tmp_path: Path, text: str, error: type[Exception], message: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("env: {roles: {market_maker: 1, janus: 2}}\n" + text)
    with pytest.raises(error) as info:  # ConfigError was raised for all of them before
        load_config(config)
    assert str(info.value) == message


@pytest.mark.parametrize(("text", "message"), [
    ("agents: {janus: {algo: sac}}\n", "Expected `janus_0.algo` to be one of ('ppo', 'dqn'), got 'sac'"),
    ("episodes: 2.0\n", "Expected `episodes` to be an int >= 1, got 2.0"),  # a TypeError: exit 2 as well
    ("agents: {market_maker: {algo: dqn}}\n", "A learned market maker needs algo: ppo"),
    ("agents: {janus: teleport}\n", "Unknown strategy 'teleport' for janus_0"),
    ("seeds: []\n", "Expected `seeds` to be a non-empty list of integers, got []"),
    ("env: {roles: {whale: 1}}\n", "Unknown role 'whale'"),
])
def test_bad_config_exits_2_with_one_line(tmp_path: Path, text: str, message: str, run_script) -> None:
    proc = _multi(run_script, tmp_path, text)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("train.py multi: error:")
    assert message in proc.stderr
    assert not (tmp_path / "runs").exists()
