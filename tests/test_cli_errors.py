"""Bad command-line input: one line on stderr, exit status 2, no traceback, and no run folder left behind.

Every case fails before anything trains (a few seconds each: the interpreter and its imports). The run folders
that evaluate.py reads are made once per module from one tiny trained PPO run: its model with a garbage
``policy.pth``, its model under a config of another algorithm, a config without checkpoints, an empty folder.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import pytest
import yaml

import envs_registry  # noqa: F401
import train
from agents.app.config import resolve_hyperparams
from janus_env.checks import bad_value
from janus_env.data.validation import MISSING_FILE

TINY_PPO = ["--algo", "ppo", "--n-envs", "1", "--hp", "n_steps=16", "--hp", "batch_size=16",
            "--hp", "env_kwargs.episode_steps=40", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, run_script: Callable) -> dict[str, Path]:
    """Run folders for evaluate.py and --resume, from one 16-step PPO run."""
    root = tmp_path_factory.mktemp("runs")
    run_script("train.py", *TINY_PPO, "--timesteps", "16", "--run-dir", str(root), "--run-name", "ppo",
               timeout=300)
    ppo = root / "ppo"
    garbage = root / "garbage"
    shutil.copytree(ppo, garbage)
    with zipfile.ZipFile(ppo / "model.zip") as src:
        members = {name: src.read(name) for name in src.namelist()}
    members["policy.pth"] = b"not torch weights at all"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    (garbage / "model.zip").write_bytes(buf.getvalue())
    mismatch = root / "mismatch"  # the PPO model under a (valid) DQN run config
    mismatch.mkdir()
    shutil.copy(ppo / "model.zip", mismatch / "model.zip")
    dqn = {"run": {"env": "Janus-LOB-v0", "algo": "dqn", "seed": 0, "timesteps": 16, "checkpoint_every": 5000},
           "hyperparams": resolve_hyperparams("dqn", "Janus-LOB-v0", None, ["env_kwargs.episode_steps=40"])}
    (mismatch / "config.yaml").write_text(yaml.safe_dump(dqn))
    config_only = root / "config_only"
    config_only.mkdir()
    shutil.copy(ppo / "config.yaml", config_only / "config.yaml")
    (root / "empty").mkdir()
    bad_tournament = root / "bad_tournament.yaml"
    bad_tournament.write_text("agents: {janus: {algo: ppo, hyperparams: {gamma: 5}}}\n")
    return {"root": root, "garbage": garbage, "mismatch": mismatch, "config_only": config_only,
            "empty": root / "empty", "bad_tournament": bad_tournament}


CASES = [
    # (script and arguments; {name} is a folder of `runs`), what stderr must contain (naming the bad value)
    (["train.py", "--env", "Nope-v0"], "Unknown env id 'Nope-v0'"),
    (["train.py", "--hp", "not_a_param=1"], "Unknown hyper-parameter 'not_a_param' for janus-dqn"),
    (["train.py", "--hp", "learning_rate=abc"], bad_value("learning_rate", "a finite number > 0", "abc")),
    (["train.py", "--hp", "policy=NoSuchPolicy"], "got 'NoSuchPolicy'"),
    (["train.py", "--hp", "sleep.bogus=1"], "sleep.bogus: unknown setting"),
    (["train.py", "--algo", "ppo", "--data", "missing.csv"], MISSING_FILE.format("missing.csv")),
    (["train.py", "--algo", "ppo", "--scenario", "historical", "--data-option", "path=missing.csv"],
     MISSING_FILE.format("missing.csv")),
    (["train.py", "--hp", "gamma=5"], bad_value("gamma", "a number in [0, 1]", 5)),
    (["train.py", "--algo", "dqn", "--hp", "buffer_size=-1"], bad_value("buffer_size", "an int >= 1", -1)),
    (["train.py", "--resume", "{empty}"], "config.yaml does not exist"),
    (["train.py", "--resume", "{config_only}"], "No checkpoint in"),
    (["train.py", "multi", "--config", "{bad_tournament}"],
     "janus_0.hyperparams: " + bad_value("gamma", "a number in [0, 1]", 5)),
    (["evaluate.py", "{garbage}", "--scenarios", "ou", "--episodes", "1", "--baselines", "none"], "policy.pth"),
    (["evaluate.py", "{mismatch}", "--scenarios", "ou", "--episodes", "1", "--baselines", "none"],
     "not the 'dqn' model"),
]


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(a).replace("{", "").replace("}", "")
                                                           for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_no_folder(argv: list[str], message: str, runs: dict[str, Path],
                                                           tmp_path: Path, run_script: Callable) -> None:
    argv = [a.format(**runs) for a in argv]
    before = sorted(p.name for p in runs["root"].rglob("*"))
    out = tmp_path / "out"
    out.mkdir()
    extra = ["--out", str(out)] if argv[0] == "evaluate.py" else ["--run-dir", str(out)]
    result = run_script(*argv, *extra, check=False, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"{argv[0]}{' multi' if argv[1:2] == ['multi'] else ''}: error: ")
    assert message in lines[0]
    assert not any(out.iterdir())  # no run (or evaluation) folder left behind
    assert sorted(p.name for p in runs["root"].rglob("*")) == before  # nothing written into the runs read


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "ppo", "--n-envs", "1", "--hp", "batch_size=1"],
         "ppo rejected the hyper-parameters: `batch_size` must be greater than 1"),  # SB3's assert, translated
        (["--algo", "ppo", "--hp", "policy_kwargs.bogus=1"],
         "ppo: 'policy_kwargs.bogus' is not an argument of MultiInputActorCriticPolicy"),
        (["--algo", "janus-ppo", "--env", "Janus-Execution-v0"],
         "janus-ppo decides over the LTN shield's action masks: it needs `shield: true`, got False"),
        (["--algo", "ppo", "--hp", "lambda_logic=1"],
         "Hyper-parameter 'lambda_logic' applies to janus-dqn/janus-ppo only, not to 'ppo'"),
        (["--hp", "seed=3"], "Hyper-parameter 'seed' is set by train.py"),
        (["--env", "Janus-Execution-v0", "--algo", "ppo", "--hp", "env_kwargs.episode_steps=300"],
         "Janus-Execution-v0 sets the market's `episode_steps` itself (episode_steps = horizon + 1); set `horizon` "
         "instead, got episode_steps=300"),
    ],
)
def test_errors_the_model_or_env_raise_are_one_line_and_leave_no_folder(
        argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = train.main([*argv, "--timesteps", "16", "--no-progress", "--run-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("train.py: error: ")
    assert message in err
    assert not any(tmp_path.iterdir())


def test_a_run_folder_that_cannot_be_created_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code = train.main(["--run-dir", str(blocker), "--run-name", "r", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot create the run folder {blocker / 'r'}: Not a directory" in err


def test_the_execution_env_refuses_the_settings_it_derives() -> None:
    with pytest.raises(ValueError, match=r"^Janus-Execution-v0 sets the market's `max_position` itself "
                                         r"\(max_position = shares\); set `shares` instead, got max_position=7$"):
        gym.make("Janus-Execution-v0", max_position=7)


@pytest.mark.parametrize(("algo", "hp"), [("ppo", ["--n-envs", "1", "--hp", "n_steps=32", "--hp", "batch_size=32"]),
                                          ("janus-dqn", ["--hp", "learning_starts=16", "--hp", "batch_size=16"])])
def test_execution_env_trains_with_the_shipped_configs(algo: str, hp: list[str], tmp_path: Path,
                                                       run_script: Callable) -> None:
    """`episode_steps: 500` of the shipped defaults no longer reaches Janus-Execution-v0 (its own section's
    env_kwargs replace the default's)."""
    run_script("train.py", "--env", "Janus-Execution-v0", "--algo", algo, "--timesteps", "64", "--run-dir",
               str(tmp_path), "--run-name", "r", "--no-progress", *hp, timeout=300)
    config = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert "episode_steps" not in config["hyperparams"]["env_kwargs"]
    assert config["hyperparams"]["env_kwargs"]["horizon"] == 100
    assert (tmp_path / "r" / "model.zip").is_file()


def test_multi_is_shortened_from_the_command_line(tmp_path: Path, run_script: Callable) -> None:
    """--timesteps (each learner's), --episodes and --seeds override the tournament config's."""
    config = tmp_path / "t.yaml"
    config.write_text("env: {roles: {noise: 1, janus: 1}, episode_steps: 16}\n"
                      "agents: {janus: {algo: ppo, timesteps: 100000, hyperparams: {n_steps: 32, batch_size: 32}}}\n"
                      "seeds: [0, 1, 2, 3]\nepisodes: 5\n")
    run_script("train.py", "multi", "--config", str(config), "--run-dir", str(tmp_path), "--no-progress",
               "--timesteps", "64", "--episodes", "1", "--seeds", "7,8", timeout=300)
    (run,) = tmp_path.glob("multi__t__*")
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["seeds"] == [7, 8] and saved["episodes"] == 1
    assert saved["matchups"][0]["agents"]["janus_0"]["timesteps"] == 64
    with zipfile.ZipFile(run / "models" / "default" / "janus_0.zip") as model:
        assert json.loads(model.read("data"))["num_timesteps"] == 64  # two 32-step rollouts, not 100,000 steps
    payoff = json.loads((run / "payoff.json").read_text())
    assert payoff["default"]["janus"]["n"] == 2  # 2 seeds × 1 episode
