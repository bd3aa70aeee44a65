"""``train.py multi``: tournament end to end, the t-interval helper, bad configs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from agents.tournament import t_interval

ROOT = Path(__file__).resolve().parents[1]
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


def _multi(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    config = tmp_path / "tiny.yaml"
    config.write_text(text)
    return subprocess.run([sys.executable, "train.py", "multi", "--config", str(config), "--run-dir",
                           str(tmp_path / "runs"), "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_multi_writes_payoff_reports(tmp_path: Path) -> None:
    proc = _multi(tmp_path, TINY)
    assert proc.returncode == 0, proc.stderr
    (run,) = (tmp_path / "runs").glob("multi__tiny__*")
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


def test_t_interval_matches_hand_computation() -> None:
    # x = 1, 2, 3, 4: mean 2.5, s = sqrt(5/3), t_{0.975, 3} = 3.182446305284263
    mean, half = t_interval([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert half == pytest.approx(3.182446305284263 * math.sqrt(5 / 3) / 2.0)
    assert math.isnan(t_interval([1.0])[1])


@pytest.mark.parametrize(("text", "message"), [
    ("agents: {janus: {algo: sac}}\n", "Expected `algo` in ['ppo', 'dqn'] for janus_0, got 'sac'"),
    ("agents: {market_maker: {algo: dqn}}\n", "A learned market maker needs algo: ppo"),
    ("agents: {janus: teleport}\n", "Unknown strategy 'teleport' for janus_0"),
    ("seeds: []\n", "Expected `seeds` to be a non-empty list of integers, got []"),
    ("env: {roles: {whale: 1}}\n", "Unknown role 'whale'"),
])
def test_bad_config_exits_2_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    proc = _multi(tmp_path, text)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("train.py multi: error:")
    assert message in proc.stderr
    assert not (tmp_path / "runs").exists()
