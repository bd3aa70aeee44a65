"""Ray RLlib backend: env registration, one PPO iteration on each env, ``train.py --backend rllib``.

The tests that start Ray skip only when ray is not installed (it is in the ``dev`` extra, so CI runs them).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import train
from agents.app.rllib import NO_RAY, module_ids, scripted_market, training_kwargs

SMALL_BATCH = {"train_batch_size_per_learner": 256, "minibatch_size": 64, "num_epochs": 1}
LOSSES = ("total_loss", "policy_loss", "vf_loss", "entropy")


# --------------------------------------------------------------------------- without Ray
def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.app.rllib import ppo_config, register_rllib_envs

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    for call in (register_rllib_envs, lambda: ppo_config("Janus-LOB-v0")):
        with pytest.raises(ImportError, match=r"pip install 'janus-rl\[rllib\]'"):
            call()


def test_train_rllib_without_ray_exits_2(tmp_path: Path, run_script) -> None:
    code = ("import sys; sys.modules['ray'] = None; import train; "
            f"sys.exit(train.main(['--backend', 'rllib', '--run-dir', {str(tmp_path)!r}]))")
    result = run_script("-c", code, check=False, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == f"train.py: error: {NO_RAY}"
    assert not any(tmp_path.iterdir())  # nothing written before the check


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backend", "jax"], "invalid choice: 'jax'"),
        (["--backend", "rllib", "--algo", "dqn"], "--backend rllib trains PPO only; got --algo dqn"),
        (["--backend", "rllib", "--resume", "runs/x"], "--resume is not supported with --backend rllib"),
        (["--backend", "rllib", "--num-env-runners", "-1"], "--num-env-runners must be >= 0, got -1"),
        (["multi", "--config", "configs/adversarial.yaml", "--backend", "tf"], "invalid choice: 'tf'"),
        (["multi", "--config", "configs/adversarial.yaml", "--hp", "n_steps=5"], "need --backend rllib"),
        (["multi", "--config", "configs/adversarial.yaml", "--backend", "rllib", "--episodes", "1"],
         "--episodes and --seeds are the sb3 tournament's"),
    ],
)
def test_bad_backend_arguments_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_training_kwargs_translate_sb3_names() -> None:
    params = {"policy": "MultiInputPolicy", "n_steps": 128, "n_envs": 2, "batch_size": 64, "n_epochs": 3,
              "learning_rate": 1e-3, "ent_coef": 0.01, "gae_lambda": 0.9, "env_kwargs": {"episode_steps": 50}}
    assert training_kwargs(params) == {"train_batch_size_per_learner": 256, "minibatch_size": 64, "num_epochs": 3,
                                       "lr": 1e-3, "entropy_coeff": 0.01, "lambda_": 0.9}
    with pytest.raises(ValueError, match=r"Hyper-parameters \['shield'\] have no RLlib PPO equivalent"):
        training_kwargs({"shield": True})


def test_module_per_role_or_per_unshared_agent() -> None:
    agents = ["market_maker_0", "informed_0", "janus_0", "janus_1"]
    assert module_ids(agents, None) == {"market_maker_0": "market_maker", "informed_0": "informed",
                                        "janus_0": "janus", "janus_1": "janus"}
    roster = {"market_maker_0": {"shared": False}, "informed_0": "informed", "janus_0": {"shared": True},
              "janus_1": {"shared": True}}
    assert module_ids(agents, roster) == {"market_maker_0": "market_maker", "janus_0": "janus", "janus_1": "janus"}
    roster.update(janus_0={"shared": False}, janus_1={"shared": False})
    assert module_ids(agents, roster) == {"market_maker_0": "market_maker", "janus_0": "janus_0", "janus_1": "janus_1"}


def test_scripted_market_hides_the_scripted_roster_agents(opponents_market: dict, opponents_roster: dict) -> None:
    """The ``Janus-Multi-v0`` env creator: only the learners are exposed; without a roster every agent learns."""
    env = scripted_market({"env": opponents_market, "agents": opponents_roster, "seed": 3})
    assert env.possible_agents == ["market_maker_0", "janus_0", "janus_1"]
    assert set(env.opponents) == {"informed_0", "noise_0"}
    everyone = scripted_market({"env": opponents_market})
    assert everyone.possible_agents == ["market_maker_0", "informed_0", "noise_0", "janus_0", "janus_1"]
    scripted = {"market_maker": "fixed_quotes", "informed": "informed", "noise": "random", "janus": "hold"}
    with pytest.raises(ValueError, match="The roster leaves no agent to learn"):
        scripted_market({"env": opponents_market, "agents": scripted})


def test_single_agent_env_in_the_glass_box_its_config_switches_on() -> None:
    from agents.app.rllib import make_single_agent_env
    from janus_env.lob_env import JanusLOBEnv
    from wrappers import Amygdala, LTNShield

    plain = make_single_agent_env("Janus-LOB-v0", {"episode_steps": 64})
    assert isinstance(plain.unwrapped, JanusLOBEnv) and not isinstance(plain, (Amygdala, LTNShield))
    boxed = make_single_agent_env("Janus-LOB-v0", {"episode_steps": 64, "glass_box": {
        "shield": True, "breakers": {"vol_ratio": 4.0}, "sizing": False}})
    assert isinstance(boxed, Amygdala) and isinstance(boxed.env, LTNShield) and boxed.config.vol_ratio == 4.0
    boxed.reset(seed=0)
    assert "ltn" in boxed.step(0)[4]


def test_scripted_market_behind_the_matchups_safety(opponents_market: dict, opponents_roster: dict) -> None:
    from wrappers import ParallelAmygdala, ParallelLTNShield

    env = scripted_market({"env": opponents_market, "agents": opponents_roster, "seed": 3,
                           "safety": {"shield": {}, "breakers": {"vol_ratio": 4.0}}})
    assert isinstance(env.env, ParallelAmygdala) and isinstance(env.env.env, ParallelLTNShield)
    assert env.possible_agents == ["market_maker_0", "janus_0", "janus_1"]
    env.reset(seed=0)
    _, _, _, _, infos = env.step({agent: env.action_space(agent).sample() for agent in env.agents})
    assert "breakers" in infos["janus_0"] and "ltn" in infos["janus_0"]


# --------------------------------------------------------------------------- with Ray
def _finite_losses(learner: dict) -> None:
    for key in LOSSES:
        assert math.isfinite(float(learner[key])), (key, learner[key])


def test_train_py_rllib_writes_progress_and_checkpoint(tmp_path: Path, run_script) -> None:
    """First with-Ray test, before the module's own Ray starts: the CLI starts its own local Ray."""
    pytest.importorskip("ray")
    result = run_script("train.py", "--backend", "rllib", "--timesteps", "256", "--num-env-runners", "1", "--run-dir",
                        str(tmp_path), "--run-name", "r", "--no-progress", "--hp", "n_steps=128", "--hp", "n_envs=1",
                        "--hp", "batch_size=64", "--hp", "n_epochs=1", "--hp", "env_kwargs.episode_steps=64",
                        timeout=300)
    run = tmp_path / "r"
    rows = list(csv.DictReader((run / "progress.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    assert [int(r["env_steps"]) for r in rows] == [128, 256]
    assert all(math.isfinite(float(r["episode_return_mean"])) for r in rows)  # 64-step episodes end in a batch
    assert all(math.isfinite(float(r["total_loss/default_policy"])) for r in rows)
    assert json.loads((run / "progress.json").read_text())[-1]["env_steps"] == 256
    assert (run / "checkpoint" / "rllib_checkpoint.json").is_file()
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["run"]["backend"] == "rllib" and config["run"]["algo"] == "ppo"
    assert "checkpoint:" in result.stdout


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    from agents.app.rllib import register_rllib_envs

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    register_rllib_envs()
    yield ray
    ray.shutdown()


def test_single_agent_ppo_iteration(local_ray) -> None:
    import gymnasium as gym

    from agents.app.rllib import ppo_config

    algo = ppo_config("Janus-LOB-v0", {"episode_steps": 64, "window": 16}, num_env_runners=1,
                      training=SMALL_BATCH).build_algo()
    try:
        result = algo.train()
        module = algo.get_module()
    finally:
        algo.stop()
    runners = result["env_runners"]
    assert result["num_env_steps_sampled_lifetime"] == 256
    assert runners["num_episodes"] == 4 and runners["episode_len_mean"] == 64
    assert math.isfinite(runners["episode_return_mean"])
    _finite_losses(result["learners"]["default_policy"])
    assert 0.0 < result["learners"]["default_policy"]["entropy"] <= np.log(3) + 1e-6
    flat = gym.spaces.flatdim(gym.make("Janus-LOB-v0", window=16).observation_space)
    assert module.observation_space.shape == (flat,)  # the Dict observation, flattened by the connector


def test_multi_agent_ppo_iteration(local_ray, opponents_market: dict, opponents_roster: dict) -> None:
    from agents.app.rllib import MULTI_ENV_ID, ppo_config

    config = ppo_config(MULTI_ENV_ID, {"env": opponents_market, "agents": opponents_roster}, num_env_runners=1,
                        training=SMALL_BATCH)
    assert set(config.policies) == {"market_maker", "janus"}
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    runners = result["env_runners"]
    assert result["num_env_steps_sampled_lifetime"] == 256
    assert runners["num_module_steps_sampled"] == {"janus": 512, "market_maker": 256}  # 2 janus agents share
    assert set(runners["agent_episode_returns_mean"]) == {"market_maker_0", "janus_0", "janus_1"}  # scripted hidden
    assert all(math.isfinite(v) for v in runners["module_episode_returns_mean"].values())
    for module in ("janus", "market_maker"):
        _finite_losses(result["learners"][module])
