"""``agents.app.training``: the steps of train.py — a failed build leaves nothing, the model is saved atomically."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from stable_baselines3 import DQN

import train
from agents.app.training import Run, build_training, resolve_run

FAST = ["--no-progress", "--hp", "env_kwargs.episode_steps=50", "--hp", "learning_starts=32"]


def test_train_resolve_build_learn_save(tmp_path: Path) -> None:
    args = train.parse_args(["--algo", "dqn", "--timesteps", "64", "--checkpoint-every", "32", "--run-dir",
                             str(tmp_path), "--run-name", "r", *FAST])
    run = resolve_run(args)
    assert run == Run("sb3", yaml.safe_load((tmp_path / "r" / "config.yaml").read_text()), tmp_path / "r")
    assert run.config["run"] == {"env": "Janus-LOB-v0", "algo": "dqn", "seed": 0, "timesteps": 64,
                                 "checkpoint_every": 32, "keep_checkpoints": 3}
    training = build_training(run)
    training.learn(progress=False)
    summary = training.save()
    assert f"model:       {tmp_path / 'r' / 'model.zip'}" in summary
    model = DQN.load(tmp_path / "r" / "model.zip", device="cpu")
    assert model.num_timesteps == 64
    assert (tmp_path / "r" / "checkpoints" / "latest").read_text() == "step_000000064"
    assert not [p.name for p in (tmp_path / "r").iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_model_the_algorithm_rejects_exits_2_and_leaves_no_run(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    code = train.main(["--algo", "dqn", "--hp", "no_such_argument=1", "--run-dir", str(tmp_path), "--run-name", "r",
                       "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("train.py: error: ") and "no_such_argument" in err
    assert len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # the folder resolve_run made is gone again


def test_resume_without_a_checkpoint_keeps_the_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "r").mkdir()
    config = {"run": {"env": "Janus-LOB-v0", "algo": "dqn", "seed": 0, "timesteps": 64, "checkpoint_every": 32},
              "hyperparams": {"env_kwargs": {"episode_steps": 50}}}
    (tmp_path / "r" / "config.yaml").write_text(yaml.safe_dump(config))
    assert train.main(["--resume", str(tmp_path / "r"), "--no-progress"]) == 2
    assert f"No checkpoint in {tmp_path / 'r'}" in capsys.readouterr().err
    assert (tmp_path / "r" / "config.yaml").is_file()  # a resumed run is never removed

