"""Atomic training checkpoints: model, replay buffer (with priorities), sleep state and RNG states.

A checkpoint is a folder ``checkpoints/step_<N>/`` written under a temporary
name and renamed into place, then ``checkpoints/latest`` (a one-line text
file) is replaced atomically. A run killed at any point keeps its previous
complete checkpoint; nothing already saved is lost.

What resumes bit-identically and what does not: the model parameters and
optimizer state, the replay buffer contents and priorities, the sleep state
(schemas, vector store, UMAP) and the global RNG states (Python, NumPy,
torch) are restored exactly. The environments are re-created and reset with
seeds derived from the run seed and the step count, so the market path after a
resume differs from the path an uninterrupted run would have taken; the step
count, schedules (ε, β, learning rate) and all learned state continue exactly.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch as th

from janus_env.atomic import atomic_write_bytes

LATEST = "latest"
_ARRAY_TAG = "__ndarray__"
_NO_CHECKPOINT = "No checkpoint in {} (expected {}/latest)"


def _rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 - snapshot of the legacy global state SB3 may touch
        "torch": th.get_rng_state().numpy().tolist(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    th.set_rng_state(th.tensor(state["torch"], dtype=th.uint8))


def save_checkpoint(run_dir: Path, model: Any, *, sleep_state: Any = None, extra: dict[str, Any] | None = None) -> Path:
    """Write a complete checkpoint of ``model`` at its current step; return its folder."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    step = int(model.num_timesteps)
    final = root / f"step_{step:09d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp_step_"))
    try:
        model.save(tmp / "model.zip")
        if getattr(model, "replay_buffer", None) is not None:
            model.save_replay_buffer(tmp / "replay_buffer.pkl")
        if sleep_state is not None:
            th.save(to_weights_only(sleep_state.state_dict()), tmp / "sleep_state.pt")
        meta = {"num_timesteps": step, **(extra or {})}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        (tmp / "rng.pkl").write_bytes(pickle.dumps(_rng_state()))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_bytes(root / LATEST, final.name.encode())
    return final


def latest_checkpoint(run_dir: Path) -> Path:
    """The folder of the newest complete checkpoint of a run."""
    root = Path(run_dir) / "checkpoints"
    marker = root / LATEST
    if not marker.is_file():
        raise FileNotFoundError(_NO_CHECKPOINT.format(run_dir, root))
    folder = root / marker.read_text().strip()
    if not (folder / "model.zip").is_file():
        raise FileNotFoundError(_NO_CHECKPOINT.format(run_dir, root))
    return folder


def load_checkpoint(folder: Path, algo_cls: type, env: Any, *, device: str = "cpu") -> tuple[Any, dict[str, Any], Any]:
    """Load model (+ buffer, sleep-state dict, RNG states) from ``folder``; return (model, meta, sleep_state_dict).

    The sleep state is read with ``torch.load(weights_only=True)`` (arrays are
    stored as tagged tensors). The replay buffer uses SB3's own pickle format
    and the RNG states a pickle written by :func:`save_checkpoint`: load
    checkpoints only from run folders you trust, as with SB3's buffers.
    """
    folder = Path(folder)
    model = algo_cls.load(folder / "model.zip", env=env, device=device)
    buffer_path = folder / "replay_buffer.pkl"
    if buffer_path.is_file() and hasattr(model, "load_replay_buffer"):
        model.load_replay_buffer(buffer_path)
    sleep = None
    sleep_path = folder / "sleep_state.pt"
    if sleep_path.is_file():
        sleep = from_weights_only(th.load(sleep_path, weights_only=True))
    meta = json.loads((folder / "meta.json").read_text())
    _set_rng_state(pickle.loads((folder / "rng.pkl").read_bytes()))  # noqa: S301 - written by save_checkpoint
    return model, meta, sleep


def to_weights_only(obj: Any) -> Any:
    """Make ``obj`` loadable by ``torch.load(weights_only=True)``: arrays become tagged tensors."""
    if isinstance(obj, np.ndarray):
        return {_ARRAY_TAG: th.from_numpy(np.array(obj, order="C", copy=True))}  # keeps 0-d arrays 0-d
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_weights_only(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_weights_only(v) for v in obj)
    return obj


def from_weights_only(obj: Any) -> Any:
    """Inverse of :func:`to_weights_only`."""
    if isinstance(obj, dict):
        if len(obj) == 1 and _ARRAY_TAG in obj:
            return obj[_ARRAY_TAG].numpy()
        return {k: from_weights_only(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_weights_only(v) for v in obj)
    return obj
