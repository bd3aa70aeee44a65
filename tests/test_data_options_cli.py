"""``--data-option KEY=VALUE`` in train.py and evaluate.py, and the shared parsing in ``agents.app.cli``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import yaml

from agents.app import cli
from janus_env.historical import data_options

ROOT = Path(__file__).resolve().parents[1]
WIDE = ROOT / "tests" / "data" / "wide_btc_eth_hourly.csv"


def test_data_option_parses_yaml_values() -> None:
    assert cli.data_option("asset=ETH") == (["asset"], "ETH")
    assert cli.data_option("n_levels=5") == (["n_levels"], 5)
    assert cli.data_option("columns.close=Adj Close") == (["columns", "close"], "Adj Close")
    parsed = cli.data_option("columns={close: Adj Close, time: ts}")
    assert parsed == (["columns"], {"close": "Adj Close", "time": "ts"})
    assert cli.data_option("skip_empty_rows=true") == (["skip_empty_rows"], True)
    accepted = ", ".join(sorted({"path", "kind", *data_options()}))
    with pytest.raises(argparse.ArgumentTypeError, match="^" + re.escape(
            cli._UNKNOWN_DATA_OPTION.format("assett", accepted)) + "$"):  # fmt: skip
        cli.data_option("assett=ETH")
    for bad in ("asset", "=ETH", "columns.=x", "asset=[unclosed"):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(cli._BAD_DATA_OPTION.format(bad))):
            cli.data_option(bad)


def test_data_spec_merges_options() -> None:
    assert cli.data_spec("file.csv", []) == "file.csv"
    opts = [cli.data_option("asset=ETH"), cli.data_option("columns.close=Adj Close")]
    assert cli.data_spec("file.csv", opts) == {"path": "file.csv", "asset": "ETH", "columns": {"close": "Adj Close"}}
    base = {"path": "a.csv", "columns": {"time": "ts"}, "asset": "BTC"}
    merged = cli.data_spec(base, opts)
    assert merged == {"path": "a.csv", "asset": "ETH", "columns": {"time": "ts", "close": "Adj Close"}}
    assert base["columns"] == {"time": "ts"}  # not modified
    assert cli.data_spec(None, [cli.data_option("path=btc_usd_hourly")]) == {"path": "btc_usd_hourly"}
    with pytest.raises(ValueError, match=re.escape(cli._DATA_OPTION_NOT_MAPPING.format("asset.x", "asset"))):
        cli.data_spec("f.csv", [cli.data_option("asset=ETH"), cli.data_option("asset.x=1")])


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_bad_data_option_exits_2_with_one_line(script: str, tmp_path: Path, run_script) -> None:
    args = ["--data-option", "assett=ETH"] + (["--run-dir", str(tmp_path)] if script == "train.py" else
                                              ["--data", str(WIDE), "--out", str(tmp_path)])  # fmt: skip
    result = run_script(script, *args, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown data option 'assett'; accepted: asset, " in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


def test_train_data_option_needs_a_file_and_the_historical_scenario(tmp_path: Path, run_script) -> None:
    result = run_script("train.py", "--scenario", "historical", "--data-option", "asset=ETH", "--run-dir",
                        str(tmp_path), check=False)
    assert result.returncode == 2 and "--data-option needs the data file" in result.stderr
    result = run_script("train.py", "--data-option", f"path={WIDE}", "--run-dir", str(tmp_path), check=False)
    assert result.returncode == 2 and "--data-option needs --scenario historical, got None" in result.stderr
    assert not any(tmp_path.iterdir())


def test_train_on_one_asset_of_a_wide_file(tmp_path: Path, run_script) -> None:
    run_script("train.py", "--algo", "ppo", "--timesteps", "32", "--scenario", "historical",
               "--data-option", f"path={WIDE}", "--data-option", "asset=ETH", "--n-envs", "1",
               "--hp", "n_steps=32", "--hp", "batch_size=16", "--hp", "n_epochs=1",
               "--hp", "env_kwargs.window=4", "--hp", "env_kwargs.episode_steps=5", "--hp", "env_kwargs.lot=1",
               "--run-dir", str(tmp_path), "--run-name", "r", "--no-progress")  # fmt: skip
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert config["hyperparams"]["env_kwargs"]["data"] == {"path": str(WIDE), "asset": "ETH"}
    assert (tmp_path / "r" / "model.zip").is_file()


def test_train_on_a_sample_then_evaluate_on_its_data(tmp_path: Path, run_script) -> None:
    """``train.py --data NAME`` trains on the shipped sample; ``evaluate.py RUN`` evaluates on the run's own data."""
    run_script("train.py", "--algo", "ppo", "--timesteps", "32", "--data", "btc_usd_hourly",
               "--data-option", "n_levels=5", "--n-envs", "1",
               "--hp", "n_steps=32", "--hp", "batch_size=16", "--hp", "n_epochs=1",
               "--hp", "env_kwargs.window=8", "--hp", "env_kwargs.episode_steps=24",
               "--hp", "env_kwargs.lot=0.01", "--hp", "env_kwargs.max_position=0.5",
               "--hp", "env_kwargs.data_split=[0.0, 0.7]",
               "--run-dir", str(tmp_path), "--run-name", "r", "--no-progress")  # fmt: skip
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert config["hyperparams"]["env_kwargs"]["scenario"] == "historical"
    assert config["hyperparams"]["env_kwargs"]["data"] == {"path": "btc_usd_hourly", "n_levels": 5}
    result = run_script("evaluate.py", str(tmp_path / "r"), "--episodes", "2", "--baselines", "momentum")
    rows = json.loads((tmp_path / "r" / "eval" / "latest" / "metrics.json").read_text())
    assert {(r["scenario"], r["strategy"]) for r in rows} == {("historical", "agent"), ("historical", "momentum")}
    assert "not out of sample" not in result.stdout  # trained on [0, 0.7), evaluated after 0.7
    assert "3600 s (median spacing" in result.stdout
