"""``agents.app.config``: hyper-parameters checked before anything is built (keys, one table of ranges for every
algorithm), env sections, model-construction errors named, ``train.py multi`` overrides."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from stable_baselines3.common.torch_layers import CombinedExtractor

import envs_registry
from agents.app import config as app_config
from agents.app.config import (
    ALGOS,
    HYPERPARAM_RANGES,
    ConfigError,
    algo_arguments,
    build_model,
    check_env_id,
    check_hyperparams,
    make_vec_env,
    resolve_hyperparams,
)
from agents.app.tournament import resolve_tournament
from janus_env.checks import bad_value


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("env_id", envs_registry.ENV_IDS)
def test_every_shipped_config_passes_its_own_checks(algo: str, env_id: str) -> None:
    if (algo, env_id) == ("janus-ppo", "Janus-Execution-v0"):  # refused on purpose: no shield, so no action masks
        with pytest.raises(ConfigError, match="janus-ppo decides over the LTN shield's action masks"):
            resolve_hyperparams(algo, env_id)
        return
    params = resolve_hyperparams(algo, env_id)  # raises if a shipped value is out of range or unknown
    assert set(params) <= set(algo_arguments(algo)) | set(app_config.RUN_KEYS)


@pytest.mark.parametrize(
    ("algo", "override", "expected", "value"),
    [  # the ranges the issue names, one per key, written out (not read back from the table)
        ("ppo", "gamma", "a number in [0, 1]", 5),
        ("dqn", "buffer_size", "an int >= 1", -1),
        ("ppo", "learning_rate", "a finite number > 0", 0),
        ("qrdqn", "batch_size", "an int >= 1", 0),
        ("ppo", "n_steps", "an int >= 1", 0),
        ("janus-ppo", "gae_lambda", "a number in [0, 1]", 1.5),
        ("ppo", "clip_range", "a finite number > 0", 0),
        ("ppo", "ent_coef", "a finite number >= 0", -0.01),
        ("dqn", "tau", "a number in (0, 1]", 0),
        ("dqn", "exploration_fraction", "a number in [0, 1]", 1.5),
        ("janus-dqn", "exploration_final_eps", "a number in [0, 1]", -0.1),
        ("janus-dqn", "target_update_interval", "an int >= 1", 0),
        ("dqn", "train_freq", "an int >= 1", 0),
        ("qrdqn", "learning_starts", "an int >= 0", -1),
        ("janus-ppo", "n_epochs", "an int >= 1", 0),
        ("ppo", "max_grad_norm", "a finite number > 0", 0),
        ("janus-dqn", "lambda_logic", "a finite number >= 0", -1),
        ("ppo", "n_envs", "an int >= 1", 0),
        ("dqn", "n_timesteps", "an int >= 1", 1.5),
        ("janus-dqn", "shield", "a bool", "yes"),
    ],
)
def test_out_of_range_values_are_refused_naming_key_and_range(algo: str, override: str, expected: str,
                                                              value: Any) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(bad_value(override, expected, value))}$"):
        resolve_hyperparams(algo, "Janus-LOB-v0", None, [f"{override}={value!r}" if isinstance(value, str)
                                                         else f"{override}={value}"])


def _outside(check: Any, kwargs: dict[str, Any]) -> Any:
    """A value just outside the range of one table entry (None when it has no range)."""
    if check is app_config.check_bool:
        return "yes"
    if "low" in kwargs:
        return kwargs["low"] - (0 if kwargs.get("low_open") else 1)
    if "high" in kwargs:
        return kwargs["high"] + 1
    return None


@pytest.mark.parametrize("algo", ALGOS)
def test_one_table_applies_to_every_algorithm(algo: str) -> None:
    """Every key of the table that ``algo`` takes is refused just outside its range, and accepted at its bound."""
    taken = set(algo_arguments(algo)) | set(app_config.RUN_KEYS)
    checked = 0
    for key, (check, kwargs) in HYPERPARAM_RANGES.items():
        bad = _outside(check, kwargs)
        if key not in taken or bad is None or key in app_config.RUN_KEY_ALGOS and algo not in \
                app_config.RUN_KEY_ALGOS[key]:
            continue
        params = {"shield": True} if algo == "janus-ppo" else {}
        with pytest.raises(ConfigError, match=re.escape(f"`{key}`")):
            check_hyperparams(algo, {**params, key: bad})
        if "low" in kwargs and not kwargs.get("low_open"):
            check_hyperparams(algo, {**params, key: kwargs["low"]})  # the bound itself is inside
        checked += 1
    assert checked >= 12


@pytest.mark.parametrize(
    ("block", "key", "message"),
    [
        ("cerebellum_training", "train_frq", "cerebellum_training.train_frq: unknown setting (did you mean "
         "train_freq?); cerebellum_training takes the arguments of agents.CerebellumCallback: batch_size, buffer_size, "
         "gradient_steps, learning_starts, seed, train_freq, write_info"),
        ("basal_ganglia", "slippage_predictor", "basal_ganglia.slippage_predictor: unknown setting (did you mean "
         "slippage_ratio?); basal_ganglia takes the arguments of agents.BasalGangliaCallback: batch_size,"),
        # (slippage_predictor: train.py gives it the cerebellum's)
        ("cerebellum", "hiden", "cerebellum.hiden: unknown setting (did you mean hidden?); cerebellum takes the "
         "arguments of agents.Cerebellum: book_key, hidden,"),
    ],
)
def test_a_brain_block_refuses_a_setting_its_class_does_not_take(block: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        resolve_hyperparams("janus-dqn", "Janus-LOB-v0", None, [f"{block}.{key}=4"])


def test_the_brain_blocks_reach_the_callbacks_train_py_builds() -> None:
    params = resolve_hyperparams("janus-dqn", "Janus-LOB-v0", None, [
        "cerebellum_training.train_freq=3", "cerebellum_training.batch_size=16", "basal_ganglia.train_freq=5",
        "cerebellum.hidden=[8]"])
    cerebellum = app_config.make_cerebellum("janus-dqn", "Janus-LOB-v0", params, seed=0)
    assert cerebellum is not None and cerebellum.hidden == (8,)
    trains, nogo = app_config.brain_callbacks("janus-dqn", params, cerebellum)
    assert (trains.train_freq, trains.batch_size, trains.cerebellum) == (3, 16, cerebellum)
    assert nogo.train_freq == 5
    defaults = app_config.brain_callbacks("janus-ppo", {"shield": True}, cerebellum)  # no blocks: class defaults
    assert (defaults[0].train_freq, defaults[1].train_freq) == (1, 1)


def test_train_freq_takes_an_int_or_a_count_and_unit() -> None:
    check_hyperparams("dqn", {"train_freq": [4, "episode"]})
    with pytest.raises(ConfigError, match=re.escape("Expected `train_freq[1]` to be one of ('step', 'episode'), "
                                                    "got 'hour'")):
        check_hyperparams("dqn", {"train_freq": [4, "hour"]})
    assert app_config.algo_kwargs({"train_freq": [4, "episode"]})["train_freq"] == (4, "episode")


@pytest.mark.parametrize(
    ("algo", "params", "message"),
    [
        ("ppo", {"not_a_param": 1}, "Unknown hyper-parameter 'not_a_param' for ppo; expected one of ["),
        ("dqn", {"learning_rat": 1e-3}, "Unknown hyper-parameter 'learning_rat' for dqn (did you mean learning_rate?)"),
        ("ppo", {"buffer_size": 10}, "Unknown hyper-parameter 'buffer_size' for ppo"),  # a DQN key on PPO
        ("dqn", {"seed": 3}, "Hyper-parameter 'seed' is set by train.py"),
        ("ppo", {"device": "cuda"}, "Hyper-parameter 'device' is set by train.py"),
        ("ppo", {"sleep": {"every_n_steps": 10}}, "Hyper-parameter 'sleep' applies to janus-dqn/janus-ppo only, not to 'ppo'"),
        ("dqn", {"cerebellum": {}}, "Hyper-parameter 'cerebellum' applies to janus-dqn/janus-ppo only, not to 'dqn'"),
        ("ppo", {"policy": "NoSuchPolicy"},
         "Expected `policy` to be one of ('MlpPolicy', 'CnnPolicy', 'MultiInputPolicy') for ppo, got 'NoSuchPolicy'"),
        ("janus-dqn", {"policy": "CnnPolicy"},
         "Expected `policy` to be one of ('MultiInputPolicy', 'MlpPolicy') for janus-dqn, got 'CnnPolicy'"),
        ("janus-dqn", {"sleep": {"bogus": 1}}, "sleep.bogus: unknown setting"),
        ("dqn", {"replay_buffer_class": "os:system"},
         "Expected `replay_buffer_class` to be null (SB3 picks the class for the algorithm), got 'os:system'"),
        ("ppo", {"breakers": "on"}, "Expected `breakers` to be a bool, None or a mapping of its settings, got 'on'"),
        ("janus-ppo", {"shield": False}, "janus-ppo decides over the LTN shield's action masks"),
    ],
)
def test_keys_an_algorithm_does_not_take_are_refused(algo: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        check_hyperparams(algo, {"shield": True, **params} if algo == "janus-ppo" and "shield" not in params
                          else params)
    assert "\n" not in str(info.value)


def test_without_run_keys_only_the_sb3_arguments_pass() -> None:
    check_hyperparams("ppo", {"n_steps": 64, "policy_kwargs": {"net_arch": [8]}}, run_keys=False)
    with pytest.raises(ConfigError, match="Unknown hyper-parameter 'n_envs' for ppo"):
        check_hyperparams("ppo", {"n_envs": 2}, run_keys=False)


def test_an_env_section_replaces_the_default_env_kwargs(tmp_path: Path) -> None:
    lob = resolve_hyperparams("ppo", "Janus-LOB-v0")
    execution = resolve_hyperparams("ppo", "Janus-Execution-v0")
    assert lob["env_kwargs"] == {"episode_steps": 500}
    assert execution["env_kwargs"] == {"horizon": 100}  # no episode_steps: the collision is gone
    assert execution["n_steps"] == lob["n_steps"]  # every other key merges
    assert resolve_hyperparams("janus-dqn", "Janus-Execution-v0")["shield"] is False
    user = tmp_path / "user.yml"
    user.write_text(yaml.safe_dump({"default": {"env_kwargs": {"window": 8}, "n_steps": 64},
                                    "Janus-Execution-v0": {"env_kwargs": {"shares": 1000}}}))
    mine = resolve_hyperparams("ppo", "Janus-Execution-v0", user)
    assert mine["env_kwargs"] == {"horizon": 100, "shares": 1000} and mine["n_steps"] == 64  # files merge
    assert resolve_hyperparams("ppo", "Janus-LOB-v0", user)["env_kwargs"] == {"episode_steps": 500, "window": 8}
    user.write_text("default: [1]\n")
    with pytest.raises(ConfigError, match=re.escape(f"{user}: expected section 'default' to be a mapping")):
        resolve_hyperparams("ppo", "Janus-LOB-v0", user)


def test_unknown_env_ids_are_named_with_a_suggestion() -> None:
    assert check_env_id("Janus-LOB-v0") == "Janus-LOB-v0"
    with pytest.raises(ConfigError, match=re.escape("Unknown env id 'Janus-LOB-v1' (did you mean Janus-LOB-v0?); "
                                                    "the JANUS ids are ['Janus-LOB-v0', ")):
        check_env_id("Janus-LOB-v1")
    with pytest.raises(ConfigError, match=re.escape("Unknown env id 'Nope-v0'; the JANUS ids are")):
        check_env_id("Nope-v0")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"policy_kwargs": {"bogus": 1}},
         "ppo: 'policy_kwargs.bogus' is not an argument of MultiInputActorCriticPolicy"),
        # janus-ppo's config gives JanusExtractor `vision`; swapping the class alone leaves it behind
        ({"policy_kwargs": {"features_extractor_class": CombinedExtractor, "features_extractor_kwargs": {"vision": 0}}},
         "ppo: 'policy_kwargs.features_extractor_kwargs.vision' is not an argument of CombinedExtractor; the features "
         "extractor's arguments are the config's (configs/<algo>.yml) for its own extractor: replace them with the new "
         "class's, e.g. --hp policy_kwargs.features_extractor_kwargs={}"),
        ({"batch_size": 1}, "ppo rejected the hyper-parameters: `batch_size` must be greater than 1"),
        ({"policy": "MlpPolicy"}, "ppo rejected the hyper-parameters: You must use `MultiInputPolicy`"),
    ],
)
def test_what_the_sb3_constructor_raises_becomes_a_config_error(params: dict[str, Any], message: str) -> None:
    base = {"n_steps": 8, "batch_size": 8, "env_kwargs": {"episode_steps": 20}}
    env = make_vec_env("Janus-LOB-v0", {**base, **params}, seed=0, n_envs=1)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        build_model("ppo", env, {**base, **params}, seed=0, tensorboard_log=None)
    assert "\n" not in str(info.value)


TOURNAMENT = """env: {roles: {noise: 1, janus: 2}, episode_steps: 16}
agents: {janus: {algo: ppo, timesteps: 3000, shared: true}}
matchups:
  - {name: a}
  - {name: b, agents: {janus_1: {algo: dqn, timesteps: 500}}}
seeds: [0, 1, 2]
episodes: 3
"""


def test_multi_overrides_timesteps_episodes_and_seeds(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(TOURNAMENT)
    cfg, run_dir = resolve_tournament(path, tmp_path / "runs", timesteps=64, episodes=1, seeds=[5])
    assert cfg["episodes"] == 1 and cfg["seeds"] == [5]
    learned = [s for m in cfg["matchups"] for s in m["agents"].values() if isinstance(s, dict)]
    assert len(learned) == 4 and {s["timesteps"] for s in learned} == {64}  # every learner of every matchup
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == cfg
    plain, _ = resolve_tournament(path, tmp_path / "plain")
    assert plain["episodes"] == 3 and plain["seeds"] == [0, 1, 2]
    assert [s["timesteps"] for s in plain["matchups"][1]["agents"].values() if isinstance(s, dict)] == [3000, 500]


@pytest.mark.parametrize(
    ("kwargs", "text", "message"),
    [
        ({"episodes": 0}, TOURNAMENT, bad_value("episodes", "an int >= 1", 0)),
        ({"seeds": []}, TOURNAMENT, "Expected `seeds` to be a non-empty list of integers, got []"),
        ({}, TOURNAMENT.replace("shared: true", "shared: true, hyperparams: {gamma: 5}"),
         "janus_0.hyperparams: " + bad_value("gamma", "a number in [0, 1]", 5)),
        ({}, TOURNAMENT.replace("shared: true", "shared: maybe"), bad_value("janus_0.shared", "a bool", "maybe")),
        ({}, TOURNAMENT.replace("episode_steps: 16", "episode_steps: abc"),
         "matchup 'a': env: " + bad_value("episode_steps", "an int >= 1", "abc")),
    ],
)
def test_bad_tournaments_fail_before_the_run_folder(kwargs: dict[str, Any], text: str, message: str,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        resolve_tournament(path, tmp_path / "runs", **kwargs)
    assert not (tmp_path / "runs").exists()


def test_a_run_config_from_elsewhere_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    good = {"run": {"env": "Janus-LOB-v0", "algo": "dqn", "seed": 0, "timesteps": 10, "checkpoint_every": 5},
            "hyperparams": {"gamma": 0.9}}
    app_config.check_run_config(good, path)
    for bad, message in [({"hyperparams": {}}, "not a run config of train.py"),
                         ({**good, "run": {**good["run"], "algo": "sac"}}, "`run.algo`"),
                         ({**good, "run": {**good["run"], "env": "Nope-v0"}}, "Unknown env id 'Nope-v0'"),
                         ({**good, "hyperparams": {"gamma": np.inf}}, "`gamma`")]:
        with pytest.raises(ConfigError, match=re.escape(f"{path}: ")) as info:
            app_config.check_run_config(bad, path)
        assert message in str(info.value)
