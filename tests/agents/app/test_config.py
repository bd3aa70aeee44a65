"""``agents.app.config.sleep_callback``: the YAML ``sleep`` block becomes an honest ``SleepPhaseCallback``."""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Any

import pytest

from agents.app import config as app_config
from agents.app.config import ConfigError, resolve_hyperparams, sleep_callback
from replay import SleepConfig, SleepPhaseCallback
from replay.types import DEFAULT_MAX_WALL_S


def _env(step_seconds: float) -> Any:
    """A stand-in for the DummyVecEnv: only ``envs[0].unwrapped.step_seconds`` is read."""
    base = types.SimpleNamespace(step_seconds=step_seconds)
    return types.SimpleNamespace(envs=[types.SimpleNamespace(unwrapped=base)])


def _callback(sleep: dict[str, Any], *, env: Any = None, algo: str = "janus-dqn") -> Any:
    return sleep_callback(algo, {"sleep": sleep}, seed=7, run_dir="/tmp/run", env=env)


def test_shipped_config_builds_a_full_cycle_with_fixed_work() -> None:
    params = resolve_hyperparams("janus-dqn", "Janus-LOB-v0")
    assert set(params["sleep"]) == {"every_n_steps", "on_episode_end", "cycle"}  # when to sleep + SleepConfig
    callback = sleep_callback("janus-dqn", params, seed=3, run_dir="/tmp/run", env=_env(60.0))
    assert isinstance(callback, SleepPhaseCallback)
    assert (callback.every_n_steps, callback.on_episode_end) == (2500, False)
    config = callback.sleep_config
    assert isinstance(config, SleepConfig) and not config.swr_only
    assert (config.n_sequences, config.seq_len, config.max_wall_s) == (16, 32, DEFAULT_MAX_WALL_S)
    assert config.seed == 3 and config.step_seconds == 60.0 and config.clock is None
    assert config.plot_dir == str(Path("/tmp/run") / "plots" / "umap")
    assert (config.umap_n_epochs, config.mlp_epochs, config.umap_max_points) == (50, 50, 256)


def test_hp_overrides_reach_the_trigger_and_the_sleep_config() -> None:
    params = resolve_hyperparams("janus-dqn", "Janus-LOB-v0", None, [
        "sleep.every_n_steps=300", "sleep.cycle.n_sequences=4", "sleep.cycle.swr_only=true"])
    callback = sleep_callback("janus-dqn", params, seed=7, run_dir="/tmp/run")
    assert callback.every_n_steps == 300
    config = callback.sleep_config
    assert (config.n_sequences, config.swr_only, config.seq_len, config.umap_n_epochs) == (4, True, 32, 50)


def test_swr_only_is_a_sleep_config_field_with_the_run_seed() -> None:
    callback = _callback({"every_n_steps": 100, "cycle": {"swr_only": True, "n_sequences": 4, "seq_len": 8}})
    config = callback.sleep_config
    assert (config.swr_only, config.n_sequences, config.seq_len, config.seed) == (True, 4, 8, 7)


def test_only_the_janus_algorithms_sleep() -> None:
    assert _callback({"every_n_steps": 100}, algo="ppo") is None
    assert _callback({"every_n_steps": 100}, algo="janus-ppo").every_n_steps == 100  # on its archived steps
    assert sleep_callback("janus-dqn", {}, seed=0, run_dir="/tmp/run") is None


def test_user_cycle_values_win_over_run_defaults() -> None:
    callback = _callback({"cycle": {"seed": 11, "step_seconds": 1.0}}, env=_env(60.0))
    assert callback.sleep_config.seed == 11 and callback.sleep_config.step_seconds == 1.0


@pytest.mark.parametrize(
    ("sleep", "message"),
    [
        ({"every_n_steps": 10, "budget_s": 0.5}, app_config._REMOVED_BUDGET.format("sleep.", DEFAULT_MAX_WALL_S)),
        ({"cycle": {"budget_s": 0.5}}, app_config._REMOVED_BUDGET.format("sleep.cycle.", DEFAULT_MAX_WALL_S)),
        ({"full_cycle": True}, app_config._REMOVED_FULL_CYCLE),
        ({"every_n_steps": 10, "n_sequences": 8}, app_config._SLEEP_FIELD_OUTSIDE_CYCLE.format("n_sequences")),
        ({"seed": 1}, app_config._SLEEP_FIELD_OUTSIDE_CYCLE.format("seed")),
        ({"every_n_step": 10}, app_config._UNKNOWN_SLEEP_KEY.format("every_n_step")),
        ({"cycle": {"n_sequence": 8}},
         app_config._UNKNOWN_CYCLE_KEY.format("n_sequence", " (did you mean n_sequences?)")),
        ({"cycle": {"zzz": 1}}, app_config._UNKNOWN_CYCLE_KEY.format("zzz", "")),
        ({"cycle": {"max_wall_s": 0.0}}, "sleep: Expected `max_wall_s` to be a number > 0, got 0.0"),
        ({"cycle": {"compression": 30}}, "sleep: Expected `compression` to be a number in [10, 20], got 30"),
        ({"every_n_steps": 0}, "sleep: Expected `every_n_steps` to be an int >= 1 or None, got 0"),
        ({"cycle": [1, 2]}, app_config._BAD_CYCLE.format([1, 2])),
        ([1], app_config._BAD_SLEEP.format([1])),
    ],
)
def test_bad_sleep_settings_raise_one_line_config_errors(sleep: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        _callback(sleep)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("override", "message"),
    [("sleep.budget_s=0.5", "sleep.budget_s was removed"),
     ("sleep.cycle.n_sequence=4",
      "sleep.cycle.n_sequence: not a replay.SleepConfig field (did you mean n_sequences?)")],
)
def test_cli_rejects_bad_sleep_keys_with_one_line(tmp_path: Path, override: str, message: str, run_script) -> None:
    result = run_script("train.py", "--timesteps", "10", "--no-progress", "--run-dir", str(tmp_path), "--run-name", "r",
                        "--hp", override, check=False, timeout=300)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()  # nothing left behind


def test_training_envs_are_built_by_the_glass_box_their_settings_switch_on() -> None:
    from wrappers import Amygdala, Hypothalamus, LTNShield

    params = {"env_kwargs": {"episode_steps": 50, "action_type": "sized"}, "shield": True,
              "breakers": {"vol_ratio": 4.0}, "sizing": {"kelly_multiplier": 0.25}}
    venv = app_config.make_vec_env("Janus-LOB-v0", params, seed=0, n_envs=1)
    stack, env = [], venv.envs[0].env  # under SB3's Monitor
    while hasattr(env, "env"):
        stack.append(type(env))
        env = env.env
    assert stack[:3] == [Amygdala, LTNShield, Hypothalamus]
    assert venv.envs[0].env.config.vol_ratio == 4.0 and venv.envs[0].env.env.env.kelly_multiplier == 0.25
    plain = app_config.make_vec_env("Janus-LOB-v0", {"env_kwargs": {"episode_steps": 50}}, seed=0, n_envs=1)
    assert not isinstance(plain.envs[0].env, (Amygdala, LTNShield, Hypothalamus))
    assert "sizing" in app_config.RUN_KEYS  # a run setting, never passed to the SB3 model
