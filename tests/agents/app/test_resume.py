"""``train.py --resume`` of a janus-dqn run: everything the run learns comes back, schedules go on, a run killed
before ``model.zip`` is finished.

A small janus-dqn run (shielded market, prioritized replay, sleep every 64 steps, cerebellum, No-Go head, a
checkpoint every 64 steps) trains to 192 steps; the checkpoint at 128 is resumed through the CLI's own path
(:meth:`agents.app.training.SB3Training.build`, model files read by ``agents.app.safe_load``).

What can be compared exactly, and is: the state restored at 128 equals the state the run had at 128 (weights,
optimizer, buffer, priorities, sleep state and schedule, cerebellum, No-Go ring, generators); given the env state
back, the resumed run ends bit-identical to the uninterrupted one; two resumes from one checkpoint end
bit-identical to each other. What differs by design: a plain resume rebuilds the envs (new episodes, seeded from
the run seed and the step), so its weights differ from the uninterrupted run's.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import train
from agents.app.checkpoint import step_folder
from agents.app.state_files import replay_buffer_state, rng_state
from agents.app.training import Run, SB3Training, build_training, resolve_run
from tests.agents.app._probes import KeepStateAt, StopAt, Stopped, take_over_env
from tests.conftest import bitwise_diff

HP = ["--hp", "env_kwargs.episode_steps=50", "--hp", "learning_starts=32", "--hp", "buffer_size=1000",
      "--hp", "batch_size=16", "--hp", "target_update_interval=50", "--hp", "policy_kwargs.net_arch=[16]",
      "--hp", "policy_kwargs.features_extractor_class=stable_baselines3.common.torch_layers:CombinedExtractor",
      "--hp", "policy_kwargs.features_extractor_kwargs={}",  # the config's are JanusExtractor's (vision, ts_patch)
      "--hp", "sleep.every_n_steps=64", "--hp", "sleep.cycle.umap=false", "--hp", "sleep.cycle.n_sequences=2",
      "--hp", "sleep.cycle.seq_len=8", "--hp", "cerebellum.hidden=[8]"]
T, MID = 192, 128


def _state(training: SB3Training) -> dict[str, Any]:
    """Everything the run learns or schedules (copies); the sleep's wall-clock duration, a log value, left out."""
    model = training.model
    callbacks = training.callbacks
    sleep = callbacks[0]
    state = copy.deepcopy({
        "num_timesteps": model.num_timesteps, "exploration_rate": model.exploration_rate,
        "n_updates": model._n_updates,
        "policy": model.policy.state_dict(), "optimizer": model.policy.optimizer.state_dict(),
        "buffer": replay_buffer_state(model.replay_buffer),
        "callbacks": {type(cb).__name__: cb.state_dict() for cb in callbacks if hasattr(cb, "state_dict")},
        "cerebellum": training.cerebellum.state_dict(),
        "cerebellum_optimizer": training.cerebellum.optimizer.state_dict(),
        "nogo_optimizer": model.policy.nogo_optimizer.state_dict(),
        "sleep_state": sleep.sleep_state.state_dict(), "rng": rng_state(model),
    })
    state["callbacks"]["SleepPhaseCallback"]["last_metrics"].pop("sleep/elapsed_s", None)
    return state


def _args(root: Path, name: str, timesteps: int) -> list[str]:
    return ["--algo", "janus-dqn", "--timesteps", str(timesteps), "--checkpoint-every", "64", "--keep-checkpoints",
            "5", "--run-dir", str(root), "--run-name", name, "--no-progress", *HP]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The run to T in one ``learn()`` (checkpoints at 64, 128 and T, then model.zip): its state at MID and at T."""
    root = tmp_path_factory.mktemp("runs")
    training = build_training(resolve_run(train.parse_args(_args(root, "a", T))))
    keep = KeepStateAt(MID, lambda: _state(training))
    training.callbacks.insert(-1, keep)
    training.learn(progress=False)
    training.callbacks.remove(keep)
    training.save()
    return {"run_dir": root / "a", "at_mid": keep.kept, "final": _state(training), "root": root}


def _resumable_copy(uninterrupted: dict[str, Any], name: str) -> Path:
    """The run folder as a kill right after the checkpoint at MID left it."""
    run_dir = uninterrupted["root"] / name
    shutil.copytree(uninterrupted["run_dir"], run_dir)
    shutil.rmtree(run_dir / "checkpoints" / step_folder(T))
    (run_dir / "checkpoints" / "latest").write_text(step_folder(MID))
    for leftover in ("model.zip", "cerebellum.pt"):
        (run_dir / leftover).unlink()
    return run_dir


def _resume(run_dir: Path) -> SB3Training:
    return SB3Training.build(Run("sb3", resolve_run(train.parse_args(["--resume", str(run_dir)])).config, run_dir,
                                 resumed=True))


def test_resume_restores_what_the_run_had_and_goes_on_exactly(uninterrupted: dict[str, Any]) -> None:
    """A run that stops right after its checkpoint at MID, resumed from it: every learned and scheduled value
    equals the uninterrupted run's at MID; given the stopped run's env (the one thing a checkpoint does not hold),
    it ends bit-identical to the uninterrupted run."""
    root = uninterrupted["root"]
    stopped = build_training(resolve_run(train.parse_args(_args(root, "b", T))))
    stopped.callbacks.append(StopAt(MID))  # after the checkpoint callback: a crash right after the checkpoint
    with pytest.raises(Stopped):
        stopped.learn(progress=False)
    resumed = _resume(root / "b")
    expected = copy.deepcopy(uninterrupted["at_mid"])
    assert expected["callbacks"]["AtomicCheckpointCallback"]["last_saved"] == MID - 64
    expected["callbacks"]["AtomicCheckpointCallback"]["last_saved"] = MID  # the checkpoint callback's own save
    assert bitwise_diff(_state(resumed), expected) == []
    assert expected["buffer"]["pos"] == MID  # all MID transitions, the last one included
    assert expected["callbacks"]["SleepPhaseCallback"]["last_step_trigger"] == MID
    assert expected["sleep_state"]["cycle"] == 2 and expected["callbacks"]["CerebellumCallback"]["calls"] == MID
    take_over_env(resumed, stopped)
    resumed.learn(progress=False)
    resumed.save()
    assert bitwise_diff(_state(resumed), uninterrupted["final"]) == []
    assert bitwise_diff(expected["policy"], uninterrupted["final"]["policy"])  # not vacuous: the last 64 steps learned


def test_resuming_twice_gives_the_same_run_and_no_extra_sleep_or_checkpoint(uninterrupted: dict[str, Any]) -> None:
    """Two plain resumes from one checkpoint (envs rebuilt) end bit-identical; the sleep and the checkpoint
    schedules go on from the checkpoint (next at 192, as in the uninterrupted run, not right after resuming)."""
    finals = []
    for name in ("c1", "c2"):
        run_dir = _resumable_copy(uninterrupted, name)
        resumed = _resume(run_dir)
        sleeps = resumed.callbacks[0].n_sleeps
        resumed.model.learn(T - MID - 4, callback=resumed.callbacks, reset_num_timesteps=False)  # to 188
        assert resumed.callbacks[0].n_sleeps == sleeps  # no sleep right after the resume
        assert sorted(p.name for p in (run_dir / "checkpoints").glob("step_*")) == ["step_000000064",
                                                                                    "step_000000128"]
        resumed.model.learn(4, callback=resumed.callbacks, reset_num_timesteps=False)
        assert resumed.callbacks[0].n_sleeps == sleeps + 1  # the one at 192
        resumed.save()
        finals.append(_state(resumed))
    assert bitwise_diff(finals[0], finals[1]) == []
    # what differs by design: new episodes after the resume, so other weights than the uninterrupted run's
    assert bitwise_diff(finals[0]["policy"], uninterrupted["final"]["policy"])
    assert finals[0]["sleep_state"]["cycle"] == uninterrupted["final"]["sleep_state"]["cycle"] == 3


def test_a_run_killed_before_model_zip_is_finished(uninterrupted: dict[str, Any],
                                                    capsys: pytest.CaptureFixture) -> None:
    """Killed after its last checkpoint (step T) but before model.zip: --resume writes model.zip from it and leaves
    the checkpoint as it is."""
    run_dir = uninterrupted["root"] / "d"
    shutil.copytree(uninterrupted["run_dir"], run_dir)
    for leftover in ("model.zip", "cerebellum.pt"):
        (run_dir / leftover).unlink()
    last = run_dir / "checkpoints" / step_folder(T)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in last.iterdir()}
    assert train.main(["--resume", str(run_dir), "--no-progress"]) == 0
    assert f"from {step_folder(T)} at step {T}" in capsys.readouterr().out
    assert (run_dir / "model.zip").is_file() and (run_dir / "cerebellum.pt").is_file()
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in last.iterdir()} == before
    from agents.app.safe_load import load_model

    model = load_model(run_dir / "model.zip", "janus-dqn")
    assert model.num_timesteps == T
    assert bitwise_diff(model.policy.state_dict(), uninterrupted["final"]["policy"]) == []
    cerebellum = torch.load(run_dir / "cerebellum.pt", weights_only=True)
    assert bitwise_diff(cerebellum, uninterrupted["final"]["cerebellum"]) == []
