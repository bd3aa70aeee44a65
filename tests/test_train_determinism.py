"""Same seed, same training result: ``train.py`` twice with one seed, saved weights compared bit for bit.

Each run is a separate process (its own ``PYTHONHASHSEED``, numba dispatch and
thread timing), so these tests catch any dependence of what is learned or
stored on wall-clock time, machine load, hash or dict order, or an unseeded
generator. The janus-dqn runs include two full sleep cycles (SWR replay, schema
consolidation, the vector store; in the slow test also a plain and then an
aligned UMAP fit, the parametric net and the anomaly priority boost) followed
by more training, so anything the sleep phase changes reaches the compared
weights. The slow test runs the twin beside busy loops (one per core).

Compared exactly: the policy and optimizer state dicts in ``model.zip`` (read
with ``torch.load(weights_only=True)``) and, for janus-dqn, the final
checkpoint's replay priorities and sleep state (schemas with their
``created_at`` / ``last_updated``, episodic memory, UMAP state).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
# janus-dqn: learning starts at 100, sleeps at 150 and 300 (two cycles: plain UMAP, then AlignedUMAP), trains to 400
DQN_TINY = ("--algo", "janus-dqn", "--timesteps", "400", "--checkpoint-every", "200", "--no-progress",
            "--hp", "env_kwargs.episode_steps=100", "--hp", "learning_starts=100",
            "--hp", "sleep.every_n_steps=150", "--hp", "sleep.cycle.umap_n_epochs=20",
            "--hp", "sleep.cycle.mlp_epochs=20", "--hp", "sleep.cycle.umap_max_points=128")
# the same without phase 3 (UMAP): umap-learn's numba compilation alone takes ~20 s per process
DQN_TINY_NO_UMAP = (*DQN_TINY, "--hp", "sleep.cycle.umap=false")
# janus-ppo (no sleep phase): two rollouts of 2 envs x 128 steps, a checkpoint after the first
PPO_TINY = ("--algo", "janus-ppo", "--timesteps", "512", "--n-envs", "2", "--no-progress",
            "--hp", "n_steps=128", "--hp", "env_kwargs.episode_steps=100", "--checkpoint-every", "256")
BUSY_LOOP = "import itertools\nfor _ in itertools.count():\n    pass\n"


def _start(run_dir: Path, name: str, args: Sequence[str], seed: int = 0) -> subprocess.Popen:
    cmd = [sys.executable, "train.py", *args, "--seed", str(seed), "--run-dir", str(run_dir), "--run-name", name]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(proc: subprocess.Popen, timeout: float = 600) -> None:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]


def _train(run_dir: Path, names: Sequence[str], args: Sequence[str], *, busy: int = 0) -> None:
    """Train ``names`` concurrently, with ``busy`` CPU-bound processes running beside them."""
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
    try:
        procs = [_start(run_dir, name, args) for name in names]
        for proc in procs:
            _wait(proc)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def _zip_state(path: Path) -> dict[str, Any]:
    """The ``*.pth`` members of an SB3 ``model.zip``: policy and optimizer state dicts."""
    with zipfile.ZipFile(path) as archive:
        return {name: torch.load(io.BytesIO(archive.read(name)), weights_only=True, map_location="cpu")
                for name in archive.namelist() if name.endswith(".pth")}


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Paths at which two nested structures of tensors, arrays and plain values differ (bit for bit)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
        return [] if same else [where]
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        same = (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        return [] if same else [where]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where} keys"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where} length"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:  # both NaN
        return []
    return [] if a == b else [where]


def _priorities(checkpoint: Path) -> np.ndarray:
    from agents.app.state_files import read_state_npz

    priorities = read_state_npz(checkpoint / "replay_buffer.npz")["prioritized"]["priorities"]
    assert np.count_nonzero(priorities) == 400  # the checkpoint at step 400 holds all 400 transitions
    return priorities


def _sleep_scalars(run: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[float]] = {}
    for events in run.glob("tb_*/events*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            if tag.startswith("sleep/"):
                out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


def _assert_same_dqn_runs(a: Path, b: Path, *, umap: bool = True) -> None:
    state_a = _zip_state(a / "model.zip")
    assert {"policy.pth", "policy.optimizer.pth"} <= set(state_a)
    assert _differences(state_a, _zip_state(b / "model.zip")) == []
    last_a, last_b = a / "checkpoints" / "step_000000400", b / "checkpoints" / "step_000000400"
    np.testing.assert_array_equal(_priorities(last_a), _priorities(last_b))
    sleep_a = torch.load(last_a / "sleep_state.pt", weights_only=True)
    assert _differences(sleep_a, torch.load(last_b / "sleep_state.pt", weights_only=True)) == []
    # the sleep phase really ran and learned: two cycles (the callback fires before SB3 stores the step:
    # 149 + 150 steps), SWR neither skipped nor capped, UMAP fitted when on
    assert sleep_a["cycle"] == 2 and sleep_a["swr_capped"] == 0 and sleep_a["env_steps"] == 299
    assert (sleep_a["monitor"]["net"] is not None) == umap
    scalars = _sleep_scalars(a)
    assert scalars["sleep/replays"] == [32.0, 32.0]  # 16 sequences, forward and reverse, per cycle
    assert scalars["sleep/swr_capped"] == [0.0, 0.0]
    # the comparison is not vacuous: the weights before the sleep cycles differ from the final ones
    early = _zip_state(a / "checkpoints" / "step_000000200" / "model.zip")
    assert _differences(early["policy.pth"], state_a["policy.pth"])


def _assert_same_ppo_runs(a: Path, b: Path) -> None:
    state_a = _zip_state(a / "model.zip")
    assert {"policy.pth", "policy.optimizer.pth"} <= set(state_a)
    assert _differences(state_a, _zip_state(b / "model.zip")) == []
    early = _zip_state(a / "checkpoints" / "step_000000256" / "model.zip")
    assert _differences(early["policy.pth"], state_a["policy.pth"])  # not vacuous: learning changed the weights


def test_janus_dqn_same_seed_same_weights_with_sleep(tmp_path: Path) -> None:
    """Two concurrent seed-0 runs (they load each other's cores) end with identical weights and sleep state."""
    _train(tmp_path, ["a", "b"], DQN_TINY_NO_UMAP)
    _assert_same_dqn_runs(tmp_path / "a", tmp_path / "b", umap=False)


def test_janus_ppo_same_seed_same_weights(tmp_path: Path) -> None:
    _train(tmp_path, ["a", "b"], PPO_TINY)
    _assert_same_ppo_runs(tmp_path / "a", tmp_path / "b")


@pytest.mark.slow
@pytest.mark.parametrize("args", [DQN_TINY, PPO_TINY], ids=["janus-dqn-umap", "janus-ppo"])
def test_same_weights_under_cpu_load(tmp_path: Path, args: tuple[str, ...]) -> None:
    """One run alone, its twin beside one busy loop per core: wall-clock time must not change what is learned."""
    _train(tmp_path, ["alone"], args)
    _train(tmp_path, ["loaded"], args, busy=os.cpu_count() or 2)
    if args is DQN_TINY:
        _assert_same_dqn_runs(tmp_path / "alone", tmp_path / "loaded")
    else:
        _assert_same_ppo_runs(tmp_path / "alone", tmp_path / "loaded")
