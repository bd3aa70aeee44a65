"""evaluate.py end to end: baselines and a trained run, outputs on disk, walk-forward historical, bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from janus_env.samples import sample_path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True, text=True, check=check,
                          timeout=600)


def test_baselines_only_writes_table_csv_json_and_plots(tmp_path: Path) -> None:
    result = _run("evaluate.py", "--scenarios", "ou,flash_crash", "--episodes", "1", "--steps", "60",
                  "--out", str(tmp_path))
    assert "| scenario | strategy | total_return | sharpe |" in result.stdout
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert {r["strategy"] for r in rows} == {"buy_and_hold", "mean_reversion", "momentum", "random"}
    assert {r["scenario"] for r in rows} == {"ou", "flash_crash"}
    assert all(r["executed_violations"] == 0 for r in rows)  # the shield lets no violation through
    for name in ("metrics.csv", "equity_ou.png", "equity_flash_crash.png", "scenarios.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_trained_run_is_evaluated_against_baselines(tmp_path: Path) -> None:
    _run("train.py", "--algo", "dqn", "--timesteps", "300", "--run-dir", str(tmp_path), "--run-name", "r",
         "--no-progress", "--hp", "learning_starts=50", "--hp", "env_kwargs.episode_steps=100")
    _run("evaluate.py", str(tmp_path / "r"), "--scenarios", "regime", "--episodes", "2", "--baselines", "random")
    rows = json.loads((tmp_path / "r" / "eval" / "metrics.json").read_text())
    assert [r["strategy"] for r in rows] == ["agent", "random"]
    assert rows[0]["latency_p50_us"] > 0


def test_historical_walk_forward(tmp_path: Path) -> None:
    data = sample_path("btc_book_15_levels")
    result = _run("evaluate.py", "--scenarios", "historical", "--data", str(data), "--episodes", "1",
                  "--steps", "40", "--baselines", "momentum", "--out", str(tmp_path), "--no-glass-box")
    assert "historical" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--episodes", "0"], "--episodes must be >= 1, got 0"),
        (["--scenarios", "moon"], "unknown baseline(s)/scenario(s) ['moon']"),
        (["--scenarios", "historical"], "the historical scenario needs --data PATH"),
        (["no/such/run"], "no model at no/such/run/model.zip"),
        (["--baselines", "none"], "nothing to evaluate"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    result = _run("evaluate.py", *args, check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
