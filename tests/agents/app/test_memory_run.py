"""The memory read path through the CLIs: ``train.py --algo janus-ppo`` sleeps on its archived steps, its policy reads
the memory, ``model.zip`` gets a ``memory.npz`` that ``evaluate.py`` reads (and the audit record shows), and a resume
from a checkpoint restores the archive, the sleep state and so the memory bit for bit.

A small janus-ppo run (2 envs x 32-step rollouts, SB3's CombinedExtractor, sleep and checkpoint every 64 steps)
trains to 192 steps; the checkpoint at 128 is resumed through the CLI's own path, as ``test_resume.py`` does for
janus-dqn.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecNormalize

import evaluate
import train
from agents.app.config import MEMORY_FILE
from agents.app.reward_normalization import RewardNormalizationState
from agents.app.state_files import rng_state
from agents.app.training import Run, SB3Training, build_training, resolve_run
from replay import MemoryReader
from tests.agents.app._probes import KeepStateAt, StopAt, Stopped, take_over_env
from tests.conftest import bitwise_diff

HP = ["--hp", "env_kwargs.episode_steps=50", "--hp", "n_envs=2", "--hp", "n_steps=32", "--hp", "batch_size=32",
      "--hp", "n_epochs=1", "--hp", "policy_kwargs.net_arch=[16]",
      "--hp", "policy_kwargs.features_extractor_class=stable_baselines3.common.torch_layers:CombinedExtractor",
      "--hp", "policy_kwargs.features_extractor_kwargs={}",  # the config's are JanusExtractor's (vision, ts_patch)
      "--hp", "sleep.every_n_steps=64", "--hp", "sleep.cycle.umap=false", "--hp", "sleep.cycle.seq_len=8",
      "--hp", "sleep.cycle.code_dim=16", "--hp", "sleep.cycle.encoder_steps=20", "--hp", "cerebellum.hidden=[8]"]
T, MID = 192, 128


def _state(training: SB3Training) -> dict[str, Any]:
    model = training.model
    sleep = training.callbacks[0]
    memory = model.policy.memory
    state = copy.deepcopy({
        "num_timesteps": model.num_timesteps, "policy": model.policy.state_dict(),
        "optimizer": model.policy.optimizer.state_dict(),
        "callbacks": {type(cb).__name__: cb.state_dict() for cb in training.callbacks if hasattr(cb, "state_dict")},
        "sleep_state": sleep.sleep_state.state_dict(), "rng": rng_state(model),
        "memory": None if memory is None else memory.state_dict(),
        "reward_normalization": RewardNormalizationState(model.get_env()).state_dict(),
    })
    state["callbacks"]["SleepPhaseCallback"]["last_metrics"].pop("sleep/elapsed_s", None)
    # PPO never draws from the basal-ganglia policy's exploration generator (only the gated off-policy algorithms
    # do), and it is not seeded for PPO: not part of what this run learns
    state["rng"].pop("exploration", None)
    return state


def _args(root: Path, name: str) -> list[str]:
    return ["--algo", "janus-ppo", "--timesteps", str(T), "--checkpoint-every", "64", "--run-dir", str(root),
            "--run-name", name, "--no-progress", *HP]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("runs")
    training = build_training(resolve_run(train.parse_args(_args(root, "a"))))
    keep = KeepStateAt(MID, lambda: _state(training))
    training.callbacks.insert(-1, keep)
    training.learn(progress=False)
    training.callbacks.remove(keep)
    training.save()
    return {"root": root, "run_dir": root / "a", "at_mid": keep.kept, "final": _state(training),
            "training": training}


def test_janus_ppo_sleeps_and_its_policy_reads_the_memory(run: dict[str, Any]) -> None:
    training = run["training"]
    sleep = training.callbacks[0]
    assert type(sleep).__name__ == "SleepPhaseCallback" and sleep.n_sleeps == 3 and sleep.archive is not None
    assert sleep.sleep_state.swr_skip_reason is not None  # on-policy: no SWR replay
    memory = training.model.policy.memory
    assert isinstance(memory, MemoryReader) and memory.features == "code" and len(memory) > 0
    saved = MemoryReader.load(run["run_dir"] / MEMORY_FILE)
    assert bitwise_diff(saved.state_dict(), memory.state_dict()) == []
    assert run["at_mid"]["memory"] is not None  # the policy read memory before the end, too
    normalizer = training.model.get_env()  # janus-ppo's default: normalize_reward
    assert isinstance(normalizer, VecNormalize) and normalizer.norm_reward and not normalizer.norm_obs
    assert normalizer.ret_rms.count > T  # updated at every step of every env
    # what the archive remembers is in the env's units, not the learner's scaled ones
    monitor = training.model.get_env().venv.envs[0]
    first = monitor.get_episode_rewards()[0]  # env 0's first 50-step episode, as the env paid it
    assert sleep.archive.rewards[:50, 0].sum(dtype=np.float64) == pytest.approx(first, rel=1e-5, abs=1e-6)
    assert abs(first) > 0.1


def test_resumed_janus_ppo_has_the_same_archive_sleep_and_memory(run: dict[str, Any]) -> None:
    root = run["root"]
    stopped = build_training(resolve_run(train.parse_args(_args(root, "b"))))
    stopped.callbacks.append(StopAt(MID))
    with pytest.raises(Stopped):
        stopped.learn(progress=False)
    config = resolve_run(train.parse_args(["--resume", str(root / "b")])).config
    resumed = SB3Training.build(Run("sb3", config, root / "b", resumed=True))
    expected = copy.deepcopy(run["at_mid"])
    expected["callbacks"]["AtomicCheckpointCallback"]["last_saved"] = MID
    got = _state(resumed)
    assert got["memory"] is None  # handed to the policy when training starts, from the restored sleep state
    got["memory"] = expected["memory"]
    assert bitwise_diff(got, expected) == []
    take_over_env(resumed, stopped)
    resumed.learn(progress=False)
    resumed.save()
    assert bitwise_diff(_state(resumed), run["final"]) == []
    assert bitwise_diff(expected["policy"], run["final"]["policy"])  # not vacuous: the last 64 steps learned


def test_evaluate_reads_the_runs_memory_into_the_audit_record(run: dict[str, Any], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    audit = tmp_path / "audit.jsonl"
    code = evaluate.main([str(run["run_dir"]), "--scenarios", "ou", "--episodes", "1", "--baselines", "none",
                          "--steps", "20", "--audit", str(audit), "--out", str(tmp_path / "eval")])
    assert code == 0
    assert "the agent reads the run's memory" in capsys.readouterr().out
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    memory = MemoryReader.load(run["run_dir"] / MEMORY_FILE)
    assert records and all("memory" in r["go_nogo"] for r in records)
    for record in records:
        recalled = record["go_nogo"]["memory"]
        assert set(recalled["ids"]) <= set(memory.ids.tolist())
        head = np.asarray(recalled["nogo_head"])
        expected = 1.0 / (1.0 + (1.0 - head) / head * np.exp(-np.asarray(recalled["shift"])))
        np.testing.assert_allclose(record["go_nogo"]["nogo"], expected, rtol=1e-5)


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_the_decision_service_reads_the_runs_memory(run: dict[str, Any], engine: str, tmp_path: Path,
                                                     request: pytest.FixtureRequest) -> None:
    """``serve.py``'s engine decides as ``evaluate.py``'s policy does with the run's memory: the same proposals,
    No-Go with memory's prior, gated actions and recall, on both engines (ONNX adds the prior in numpy)."""
    import gymnasium as gym

    import serve
    from agents.app.config import load_memory, read_yaml
    from agents.app.safe_load import load_model
    from agents.app.service.serving import build_service, resolve_service

    run_dir = run["run_dir"]
    config = read_yaml(run_dir / "config.yaml")
    service = build_service(resolve_service(serve.parse_args([str(run_dir), "--store", str(tmp_path / "store"),
                                                              "--engine", engine])))
    request.addfinalizer(service.close)
    served = service.engine
    assert served.memory is not None
    assert bitwise_diff(served.memory.state_dict(), MemoryReader.load(run_dir / MEMORY_FILE).state_dict()) == []
    reference = load_model(run_dir / "model.zip", "janus-ppo", device="cpu", config=config)
    assert load_memory(run_dir, reference) is not None
    env = gym.make("Janus-LOB-v0", episode_steps=50)
    obs, _ = env.reset(seed=3)
    n = int(env.action_space.n)
    moved = 0.0
    for _ in range(40):
        decision = served.decide(obs, np.ones(n), np.ones(n, dtype=bool))
        action, _ = reference.predict(obs, deterministic=True, action_masks=np.ones(n, dtype=bool))
        expected = reference.policy.last_go_nogo
        got = decision.go_nogo
        assert (decision.action, decision.proposed) == (int(action), expected["proposed"])
        assert got["final"] == expected["final"] and got["vetoed"] == expected["vetoed"]
        assert got["veto_reason"] == expected["veto_reason"]
        np.testing.assert_allclose(got["nogo"], expected["nogo"], rtol=1e-5, atol=1e-7)
        assert got["memory"]["ids"] == expected["memory"]["ids"]
        np.testing.assert_allclose(got["memory"]["shift"], expected["memory"]["shift"], rtol=1e-6, atol=1e-9)
        moved = max(moved, float(np.max(np.abs(np.subtract(got["nogo"], got["memory"]["nogo_head"])))))
        obs, _, terminated, truncated, _ = env.step(decision.action)
        if terminated or truncated:
            obs, _ = env.reset(seed=4)
    assert moved > 1e-4  # not vacuous: memory's prior moved the No-Go the gate compared
