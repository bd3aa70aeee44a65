"""``agents.zoo.sleep_callback``: the YAML ``sleep`` block becomes an honest ``SleepPhaseCallback``."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from agents import zoo
from agents.zoo import ConfigError, resolve_hyperparams, sleep_callback
from replay import SleepConfig, SleepPhaseCallback, swr
from replay.types import DEFAULT_MAX_WALL_S

ROOT = Path(__file__).resolve().parents[2]


def _env(step_seconds: float) -> Any:
    """A stand-in for the DummyVecEnv: only ``envs[0].unwrapped.step_seconds`` is read."""
    base = types.SimpleNamespace(step_seconds=step_seconds)
    return types.SimpleNamespace(envs=[types.SimpleNamespace(unwrapped=base)])


def _callback(sleep: dict[str, Any], *, env: Any = None, algo: str = "janus-dqn") -> Any:
    return sleep_callback(algo, {"sleep": sleep}, seed=7, run_dir="/tmp/run", env=env)


def test_shipped_config_builds_a_full_cycle_with_fixed_work() -> None:
    params = resolve_hyperparams("janus-dqn", "Janus-LOB-v0")
    assert "budget_s" not in params["sleep"] and "budget_s" not in params["sleep"]["cycle"]
    callback = sleep_callback("janus-dqn", params, seed=3, run_dir="/tmp/run", env=_env(60.0))
    assert isinstance(callback, SleepPhaseCallback) and callback.full_cycle
    config = callback.sleep_config
    assert isinstance(config, SleepConfig)
    assert (config.n_sequences, config.seq_len, config.max_wall_s) == (16, 32, DEFAULT_MAX_WALL_S)
    assert config.seed == 3 and config.step_seconds == 60.0 and config.clock is None
    assert config.plot_dir == str(Path("/tmp/run") / "plots" / "umap")
    assert (config.umap_n_epochs, config.mlp_epochs, config.umap_max_points) == (50, 50, 256)


def test_swr_only_mode_takes_the_callback_settings_and_the_run_seed() -> None:
    callback = _callback({"every_n_steps": 100, "n_sequences": 4, "seq_len": 8, "max_wall_s": 60.0})
    assert not callback.full_cycle and callback.sleep_config is None
    assert (callback.n_sequences, callback.seq_len, callback.max_wall_s, callback.seed) == (4, 8, 60.0, 7)


def test_only_janus_dqn_sleeps() -> None:
    assert _callback({"every_n_steps": 100}, algo="janus-ppo") is None
    assert sleep_callback("janus-dqn", {}, seed=0, run_dir="/tmp/run") is None


def test_user_cycle_values_win_over_run_defaults() -> None:
    callback = _callback({"full_cycle": True, "cycle": {"seed": 11, "step_seconds": 1.0}}, env=_env(60.0))
    assert callback.sleep_config.seed == 11 and callback.sleep_config.step_seconds == 1.0


@pytest.mark.parametrize(
    ("sleep", "message"),
    [
        ({"full_cycle": True, "budget_s": 0.5},
         zoo._REMOVED_BUDGET.format("sleep.", "sleep.cycle.", DEFAULT_MAX_WALL_S)),
        ({"every_n_steps": 10, "budget_s": 0.5}, zoo._REMOVED_BUDGET.format("sleep.", "sleep.", DEFAULT_MAX_WALL_S)),
        ({"full_cycle": True, "cycle": {"budget_s": 0.5}},
         zoo._REMOVED_BUDGET.format("sleep.cycle.", "sleep.cycle.", DEFAULT_MAX_WALL_S)),
        ({"full_cycle": True, "n_sequences": 8}, "sleep: " + swr._FULL_CYCLE_ARG.format("n_sequences")),
        ({"full_cycle": True, "reverse": False}, "sleep: " + swr._FULL_CYCLE_ARG.format("reverse")),
        ({"every_n_steps": 10, "cycle": {"umap": False}}, zoo._CYCLE_WITHOUT_FULL),
        ({"full_cycle": True, "cycle": {"max_wall_s": 0.0}}, "sleep: Expected `max_wall_s` > 0"),
        ({"full_cycle": True, "cycle": {"no_such_field": 1}}, "no_such_field"),
        ({"full_cycle": True, "cycle": [1, 2]}, zoo._BAD_CYCLE.format([1, 2])),
        ([1], zoo._BAD_SLEEP.format([1])),
    ],
)
def test_bad_sleep_settings_raise_config_errors(sleep: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        _callback(sleep)


def test_cli_rejects_the_removed_budget_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "train.py", "--timesteps", "10", "--no-progress", "--run-dir", str(tmp_path),
         "--run-name", "r", "--hp", "sleep.budget_s=0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert "sleep.budget_s was removed" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()  # nothing left behind
