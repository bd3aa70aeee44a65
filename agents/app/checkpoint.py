"""Training checkpoints that a crash cannot lose and that load no code: model, replay buffer, callbacks, RNG states.

## What a checkpoint holds

``checkpoints/step_<N>/`` (``N = num_timesteps``, nine digits) is taken between two SB3 rollouts (see
:class:`~agents.app.callbacks.AtomicCheckpointCallback`): every transition of steps ``1..N`` is in the replay
buffer and every update they trigger is done, so a resumed ``learn()`` starts where the uninterrupted one went on.

| file | holds | format |
| --- | --- | --- |
| ``model.zip`` | SB3 model: policy and optimizer weights, step count, schedules (ε, learning rate, β) | SB3's zip |
| ``replay_buffer.npz`` | off-policy algorithms: every array of the SB3 buffer, ``pos`` / ``full``; for the prioritized buffer also its priorities, sum tree, violations, per-action SatAgg, sampler generator and β counters | ``.npz`` + JSON |
| ``callbacks.npz`` | the callbacks' state: sleep schedule (last trigger) and, for ``janus-ppo``, the steps archived for its sleep (``replay.RolloutArchive``), the last checkpoint step, the cerebellum's fill ring, the No-Go ring and reward moments, their generators | ``.npz`` + JSON |
| ``optimizers.pt`` | ``janus-*``: the policy's own optimizers beside SB3's (the No-Go head's Adam) | torch tensors |
| ``cerebellum.pt`` | ``janus-*``: the online cerebellum's weights and Adam state | torch tensors |
| ``sleep_state.pt`` | ``janus-dqn``, ``janus-ppo``: schemas (with their per-action outcomes), episodic memory, the trained encoder (weights and standardization), UMAP state, sleep generator; the policy's memory read path is rebuilt from it when training resumes | torch tensors |
| ``rng.json`` | Python ``random``, NumPy's legacy global generator, torch's CPU generator, the model's action space and the policy's exploration generator | JSON |
| ``meta.json`` | format version, ``num_timesteps``, the run settings and the manifest: size and SHA-256 of every other file | JSON, written last |

``.npz`` files are written by :func:`~agents.app.state_files.write_state_npz`: arrays as ``.npy`` members, everything else (counters,
generator states, settings) as one JSON document; they are read with ``numpy.load(allow_pickle=False)``.
``.pt`` files are read with ``torch.load(weights_only=True)``.

## Loading files you did not write

Nothing in a checkpoint is unpickled: ``.npz`` members that would need pickle (object arrays) are refused by
numpy, JSON is data only, and ``weights_only`` restricts torch to tensors and plain containers. Every value read
is checked against the freshly built run (array dtypes and shapes, counters in range, a sum tree consistent with
its priorities, generator states numpy accepts) before anything is overwritten. Checkpoints of older JANUS
versions (``rng.pkl``, ``replay_buffer.pkl``) are refused, naming the file, and never opened. ``model.zip`` is
SB3's format; how it is read is :mod:`agents.app.safe_load`'s business.

## How it is written: nothing already saved is ever lost

1. Every file goes into a new folder ``checkpoints/.tmp_new_step_<N>_*`` and is fsynced; ``meta.json`` with the
   manifest is written and fsynced last, then the folder itself. A folder without a valid manifest is incomplete.
2. The folder is renamed to ``step_<N>``. When ``step_<N>`` already exists (the same step saved again), the old
   one is first renamed aside (``.tmp_old_step_<N>_*``), the new one renamed in, then the old one deleted: the
   only good copy is never deleted first.
3. ``checkpoints/latest`` (one line, the folder name) is replaced atomically (``janus_env.atomic``), the folder
   synced, and steps older than the ``keep`` newest are removed (renamed to ``.tmp_del_*`` first, so a kill
   mid-delete leaves nothing that looks like a checkpoint). ``latest`` is never pruned.

A kill at any point leaves either the previous checkpoints untouched or the new one complete.
:func:`recover_checkpoints`, run when training starts, finishes or undoes what a killed save left: a complete
``.tmp_new_*`` / ``.tmp_old_*`` folder whose ``step_<N>`` is missing or damaged is renamed into place, every
other ``.tmp_*`` entry is removed.

## How a run resumes

:func:`resume_checkpoint` tries the ``step_*`` folders newest first (``latest`` only names the newest for
people and tools: a ``latest`` naming nothing is not fatal) and resumes from the first one that verifies — its
manifest's sizes and SHA-256 digests match, it holds no pickle — and loads. Each one skipped is reported with a
:class:`CheckpointWarning` naming it and why.

## What resumes exactly and what does not

Restored bit for bit: the model parameters and optimizer state, the step count and every schedule, the replay
buffer (all ``N`` transitions, priorities, tree, violations, SatAgg, its generator), the sleep state (and so
the memory the policy reads) and the sleep schedule's last trigger, janus-ppo's archived steps, the checkpoint
schedule, the cerebellum and its fill ring, the No-Go ring, and every generator listed above. A run resumed twice from one checkpoint trains to bit-identical weights.

Not restored: the environments. They are rebuilt and reset with seeds derived from the run seed and ``N``
(:func:`resume_seed`), so the episode running at the kill is cut short and the market path after a resume
differs from the one an uninterrupted run would have seen; state that lives in the envs and wrappers (the
market, the shield's and breakers' session state) starts fresh with the new episode, and so does the policy's
per-step logic-loss input. Logging state (episode statistics, ``JanusMetricsCallback``'s counters, the
cerebellum callback's ``errors`` list) restarts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch as th

from agents.app.safe_load import load_model
from janus_env.atomic import atomic_write_bytes, fsync_dir
from janus_env.checks import check_int
from agents.app.state_files import (
    BAD_RNG,
    BAD_STATE_FILE,
    MAX_JSON_BYTES,
    RNG_FILE,
    CheckpointError,
    from_weights_only,
    load_replay_buffer_state,
    read_state_npz,
    replay_buffer_state,
    rng_state,
    to_weights_only,
    write_state_npz,
)

CHECKPOINT_FORMAT = 2
"""Version of the layout above (1: the pickle files of JANUS before issue 15, refused)."""
LATEST = "latest"
DEFAULT_KEEP = 3
"""Checkpoints kept by default: the newest to resume from and two older fallbacks should the newest prove
unreadable (a disk fault after the write, a file edited by hand). Disk use is bounded by ``keep`` times a
checkpoint's size, which the replay buffer dominates: 46 MB with janus-dqn's defaults (50,000 transitions), so
about 140 MB per run."""
MODEL_FILE = "model.zip"
BUFFER_FILE = "replay_buffer.npz"
CALLBACKS_FILE = "callbacks.npz"
OPTIMIZERS_FILE = "optimizers.pt"
CEREBELLUM_FILE = "cerebellum.pt"
SLEEP_FILE = "sleep_state.pt"
META_FILE = "meta.json"
_DATA_FILES = (MODEL_FILE, BUFFER_FILE, CALLBACKS_FILE, OPTIMIZERS_FILE, CEREBELLUM_FILE, SLEEP_FILE, RNG_FILE)
_STEP_NAME = re.compile(r"step_(\d{9,})")
_TMP, _NEW, _OLD, _DEL = ".tmp_", ".tmp_new_", ".tmp_old_", ".tmp_del_"

_NO_CHECKPOINT = "No checkpoint in {} (expected {}/step_<N>/)"
_NONE_INTACT = "No intact checkpoint in {}: {}"
_SKIPPED = "skipping checkpoint {}: {}"
_OTHER_LATEST = "{} names {!r}; resuming from the newest intact checkpoint, {} (which it names now)"
_PICKLE_FILE = ("{} is a pickle file, from a JANUS version before checkpoint format 2: checkpoints are never "
                "unpickled (unpickling runs code from the file); start a new run")
_INCOMPLETE = "{}: incomplete or damaged ({})"
_RESERVED_META = "Checkpoint metadata keys {} are reserved"

T = TypeVar("T")


class CheckpointWarning(UserWarning):
    """A checkpoint skipped on resume (named, with the reason), or a ``latest`` pointer that names none."""


def step_folder(step: int) -> str:
    """The folder name of the checkpoint at ``step``: ``step_000001200``."""
    return f"step_{int(step):09d}"


def resume_seed(seed: int, step: int) -> int:
    """Seed of the envs rebuilt to resume a run at ``step``: ``SeedSequence([seed, step])``'s first word.

    Resuming at another step gives other episodes (a run resumed often does not replay its first episodes
    again and again), and resuming twice at one step gives the same ones.
    """
    return int(np.random.SeedSequence([int(seed), int(step)]).generate_state(1)[0])


# --------------------------------------------------------------------------- writing


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    model: Any,
    *,
    sleep_state: Any = None,
    callback_states: Mapping[str, Any] | None = None,
    cerebellum: Any = None,
    extra: Mapping[str, Any] | None = None,
    keep: int = DEFAULT_KEEP,
) -> Path:
    """Write a complete checkpoint of ``model`` at its current step (module docstring); return its folder.

    Args:
        run_dir: the run folder (``checkpoints/`` is created in it).
        model: the SB3 model; its replay buffer, if any, is saved too.
        sleep_state: a ``replay.SleepState`` (``sleep_state.pt``).
        callback_states: name → ``state_dict()`` of each stateful callback (``callbacks.npz``).
        cerebellum: an ``agents.Cerebellum`` (``cerebellum.pt``: weights and optimizer state).
        extra: JSON-able metadata stored in ``meta.json`` (not the reserved ``format``, ``num_timesteps``,
            ``files``).
        keep: ``step_*`` folders kept after this one is in place (this one included), >= 1.

    Raises:
        TypeError / ValueError: ``keep`` not an int >= 1, a reserved ``extra`` key, or a state value that cannot
            be stored; anything the file system raises (the new folder is removed, the old ones are untouched).
    """
    keep = check_int("keep", keep, low=1)
    reserved = sorted({"format", "num_timesteps", "files"} & set(extra or {}))
    if reserved:
        raise ValueError(_RESERVED_META.format(reserved))
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    step = int(model.num_timesteps)
    final = root / step_folder(step)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f"{_NEW}{final.name}_"))
    try:
        model.save(tmp / MODEL_FILE)
        buffer = getattr(model, "replay_buffer", None)
        if buffer is not None:
            write_state_npz(tmp / BUFFER_FILE, replay_buffer_state(buffer))
        if callback_states:
            write_state_npz(tmp / CALLBACKS_FILE, dict(callback_states))
        optimizers = policy_optimizers(model.policy)
        if optimizers:
            th.save({name: opt.state_dict() for name, opt in optimizers.items()}, tmp / OPTIMIZERS_FILE)
        if cerebellum is not None:
            th.save({"model": cerebellum.state_dict(), "optimizer": cerebellum.optimizer.state_dict()},
                    tmp / CEREBELLUM_FILE)
        if sleep_state is not None:
            th.save(to_weights_only(sleep_state.state_dict()), tmp / SLEEP_FILE)
        (tmp / RNG_FILE).write_text(json.dumps(rng_state(model)))
        names = sorted(p.name for p in tmp.iterdir())
        for name in names:
            _fsync_file(tmp / name)
        meta = {"format": CHECKPOINT_FORMAT, "num_timesteps": step,
                "files": {name: _describe(tmp / name) for name in names}, **(extra or {})}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2))
        _fsync_file(tmp / META_FILE)
        fsync_dir(tmp)
        _swap_in(tmp, final)
    except BaseException:
        # an error (disk full, a bad value): nothing half-written stays behind; a kill leaves it to the sweep
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_bytes(root / LATEST, final.name.encode())
    fsync_dir(root)
    prune_checkpoints(run_dir, keep)
    return final


def prune_checkpoints(run_dir: str | os.PathLike[str], keep: int) -> list[str]:
    """Remove the ``step_*`` folders older than the one ``latest`` names and the ``keep - 1`` before it.

    Never touches the folder ``latest`` names nor any newer one (a newer folder can only be one a resume skipped
    as damaged; the run replaces it when it reaches that step). Returns the removed names.

    Raises:
        TypeError / ValueError: ``keep`` is not an int >= 1.
    """
    keep = check_int("keep", keep, low=1)
    root = Path(run_dir) / "checkpoints"
    current = _STEP_NAME.fullmatch(_read_latest(root) or "")
    if current is None:
        return []
    older = [f for f in _step_folders(root) if _step_of(f) < int(current.group(1))]
    removed = []
    for folder in older[keep - 1 :]:
        doomed = root / f"{_DEL}{folder.name}"
        os.replace(folder, doomed)
        shutil.rmtree(doomed)
        removed.append(folder.name)
    if removed:
        fsync_dir(root)
    return removed


def _swap_in(tmp: Path, final: Path) -> None:
    """Rename the complete ``tmp`` to ``final``; an existing ``final`` is renamed aside first, deleted last."""
    root = final.parent
    if not final.exists():
        os.replace(tmp, final)
        fsync_dir(root)
        return
    aside = root / f"{_OLD}{final.name}_{tmp.name[len(f'{_NEW}{final.name}_'):]}"  # tmp's random suffix (may hold '_')
    os.replace(final, aside)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(aside, final)  # put the old copy back
        raise
    fsync_dir(root)
    shutil.rmtree(aside)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _describe(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- finding, verifying, recovering


def _step_of(folder: Path) -> int:
    match = _STEP_NAME.fullmatch(folder.name)
    return int(match.group(1)) if match else -1


def _step_folders(root: Path) -> list[Path]:
    """``step_*`` folders, newest first."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if _STEP_NAME.fullmatch(p.name) and p.is_dir()), key=_step_of,
                  reverse=True)


def _read_latest(root: Path) -> str | None:
    try:
        return (root / LATEST).read_text(encoding="utf-8", errors="replace").strip()[:64]
    except OSError:
        return None


def verify_checkpoint(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``meta.json`` of a complete, undamaged checkpoint folder; reads every file once (SHA-256).

    Raises:
        CheckpointError: a ``*.pkl`` file (an older format, refused unopened); no or invalid ``meta.json``; another
            format; a step that differs from the folder name; a file of the manifest missing, of another size or
            digest.
    """
    folder = Path(folder)
    pickles = sorted(folder.glob("*.pkl"))
    if pickles:
        raise CheckpointError(_PICKLE_FILE.format(pickles[0]))
    meta_path = folder / META_FILE
    try:
        if meta_path.stat().st_size > MAX_JSON_BYTES:
            raise CheckpointError(_INCOMPLETE.format(folder, f"{META_FILE} is too large"))
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except CheckpointError:
        raise
    except FileNotFoundError as err:
        raise CheckpointError(_INCOMPLETE.format(folder, f"no {META_FILE}")) from err
    except (OSError, ValueError, RecursionError) as err:
        raise CheckpointError(_INCOMPLETE.format(folder, f"{META_FILE} is not valid JSON: {err}")) from err
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(_INCOMPLETE.format(folder, f"format {found!r}, expected {CHECKPOINT_FORMAT}"))
    step = meta.get("num_timesteps")
    if type(step) is not int or step < 0 or (_STEP_NAME.fullmatch(folder.name) and _step_of(folder) != step):
        raise CheckpointError(_INCOMPLETE.format(folder, f"num_timesteps {step!r} does not match the folder"))
    files = meta.get("files")
    if not isinstance(files, dict) or MODEL_FILE not in files or RNG_FILE not in files:
        raise CheckpointError(_INCOMPLETE.format(folder, f"no manifest of {MODEL_FILE} and {RNG_FILE}"))
    for name, entry in files.items():
        if name not in _DATA_FILES or not isinstance(entry, dict):
            raise CheckpointError(_INCOMPLETE.format(folder, f"unknown file {name!r} in the manifest"))
        path = folder / name
        if not path.is_file():
            raise CheckpointError(_INCOMPLETE.format(folder, f"{name} is missing"))
        if path.stat().st_size != entry.get("bytes") or _sha256(path) != entry.get("sha256"):
            raise CheckpointError(_INCOMPLETE.format(folder, f"{name} differs from the manifest (size or SHA-256)"))
    return meta


def recover_checkpoints(run_dir: str | os.PathLike[str]) -> list[str]:
    """Finish or undo what a killed save left in ``run_dir/checkpoints`` (module docstring); returns what it did.

    A complete ``.tmp_new_*`` (preferred) or ``.tmp_old_*`` folder whose ``step_<N>`` is missing or damaged is
    renamed into place; every other ``.tmp_*`` entry and ``latest``'s temporary files are removed.
    """
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    rank = {_NEW: 0, _OLD: 1}
    entries = sorted((p for p in root.iterdir() if p.name.startswith(_TMP)),
                     key=lambda p: (rank.get(p.name[: len(_NEW)], 2), p.name))
    done = []
    for entry in entries:
        if entry.name.startswith((_NEW, _OLD)) and entry.is_dir():
            try:
                target = root / step_folder(verify_checkpoint(entry)["num_timesteps"])
            except CheckpointError:
                target = None
            if target is not None and not _intact(target):
                if target.exists():
                    _remove(target, root)
                os.replace(entry, target)
                fsync_dir(root)
                done.append(f"restored {target.name} from {entry.name}")
                continue
        _remove(entry, root)
        done.append(f"removed {entry.name}")
    for entry in root.glob(f".{LATEST}.*.tmp"):
        entry.unlink(missing_ok=True)
        done.append(f"removed {entry.name}")
    if done:
        fsync_dir(root)
    return done


def _intact(folder: Path) -> bool:
    try:
        verify_checkpoint(folder)
    except CheckpointError:
        return False
    return True


def _remove(path: Path, root: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        if not path.name.startswith(_TMP):
            doomed = root / f"{_DEL}{path.name}"
            os.replace(path, doomed)
            path = doomed
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


_UNUSABLE = (CheckpointError, ValueError, TypeError, KeyError, OSError, RuntimeError, EOFError, zipfile.BadZipFile)
"""What loading a damaged or foreign checkpoint raises; :func:`resume_checkpoint` then tries an older one."""


def resume_checkpoint(run_dir: str | os.PathLike[str], restore: Callable[[Path], T]) -> tuple[Path, T]:
    """``restore(folder)`` on the newest ``step_*`` folder for which it succeeds; returns ``(folder, result)``.

    ``restore`` is expected to verify and load the folder (:func:`load_checkpoint`) and apply it. A folder for
    which it raises (:data:`_UNUSABLE`) is skipped with a :class:`CheckpointWarning` naming it and the reason.
    ``latest`` is rewritten to name the folder used when it named another.

    Raises:
        FileNotFoundError: the run has no ``step_*`` folder.
        CheckpointError: none could be restored (the message lists each one and why).
    """
    root = Path(run_dir) / "checkpoints"
    folders = _step_folders(root)
    if not folders:
        raise FileNotFoundError(_NO_CHECKPOINT.format(run_dir, root))
    reasons = []
    for folder in folders:
        try:
            result = restore(folder)
        except _UNUSABLE as err:
            reasons.append(f"{folder.name}: {err}")
            warnings.warn(_SKIPPED.format(folder, err), CheckpointWarning, stacklevel=2)
            continue
        named = _read_latest(root)
        if named != folder.name:
            if named != folders[0].name:  # a `latest` naming a newer, skipped folder was already reported
                warnings.warn(_OTHER_LATEST.format(root / LATEST, named, folder.name), CheckpointWarning,
                              stacklevel=2)
            atomic_write_bytes(root / LATEST, folder.name.encode())
            fsync_dir(root)
        return folder, result
    raise CheckpointError(_NONE_INTACT.format(run_dir, "; ".join(reasons)))


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path:
    """The newest ``step_*`` folder of a run that verifies (:func:`verify_checkpoint`); skipped ones are warned.

    Raises:
        FileNotFoundError: the run has no ``step_*`` folder.
        CheckpointError: none verifies.
    """
    root = Path(run_dir) / "checkpoints"
    folders = _step_folders(root)
    if not folders:
        raise FileNotFoundError(_NO_CHECKPOINT.format(run_dir, root))
    reasons = []
    for folder in folders:
        try:
            verify_checkpoint(folder)
        except CheckpointError as err:
            reasons.append(f"{folder.name}: {err}")
            warnings.warn(_SKIPPED.format(folder, err), CheckpointWarning, stacklevel=2)
            continue
        return folder
    raise CheckpointError(_NONE_INTACT.format(run_dir, "; ".join(reasons)))


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` read.

    Attributes:
        folder: the checkpoint folder.
        model: the SB3 model, with its replay buffer restored.
        meta: ``meta.json``.
        rng: the generator states (apply with :func:`restore_rng` once nothing else will draw before training).
        callback_states: name → state of each stateful callback (empty when the run had none).
        cerebellum: ``{"model": state_dict, "optimizer": state_dict}``, or None.
        sleep_state: the sleep state dict (``replay.SleepState.from_state_dict``), or None.
    """

    folder: Path
    model: Any
    meta: dict[str, Any]
    rng: dict[str, Any]
    callback_states: dict[str, Any]
    cerebellum: dict[str, Any] | None
    sleep_state: dict[str, Any] | None


def load_checkpoint(folder: str | os.PathLike[str], algo_cls: type, env: Any, *, device: str = "cpu") -> Checkpoint:
    """Verify and read a checkpoint folder (module docstring): the model with its replay buffer, and the rest.

    Nothing is unpickled by this module: ``.npz`` files are read with ``allow_pickle=False``, ``.pt`` files with
    ``torch.load(weights_only=True)``, ``rng.json`` and ``meta.json`` as JSON.

    Raises:
        CheckpointError: the folder does not verify, or a file in it is not what its name says.
        ValueError / TypeError: a replay-buffer state that does not fit the model's buffer.
    """
    folder = Path(folder)
    meta = verify_checkpoint(folder)
    files = meta["files"]
    model = load_model(folder / "model.zip", algo_cls, env=env, device=device)
    buffer = getattr(model, "replay_buffer", None)
    if (buffer is not None) != (BUFFER_FILE in files):
        raise CheckpointError(_INCOMPLETE.format(folder, f"{BUFFER_FILE} {'missing' if buffer else 'unexpected'}"))
    if buffer is not None:
        state = read_state_npz(folder / BUFFER_FILE)
        if not isinstance(state, Mapping):
            raise CheckpointError(BAD_STATE_FILE.format(folder / BUFFER_FILE, "not a mapping"))
        load_replay_buffer_state(buffer, state)
    optimizers = policy_optimizers(model.policy)
    saved = th.load(folder / OPTIMIZERS_FILE, map_location="cpu", weights_only=True) \
        if OPTIMIZERS_FILE in files else {}
    if not isinstance(saved, dict) or set(saved) != set(optimizers):
        raise CheckpointError(_INCOMPLETE.format(folder, f"expected the optimizers {sorted(optimizers)} of the "
                                                         f"policy in {OPTIMIZERS_FILE}"))
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(saved[name])
    callback_states: Any = read_state_npz(folder / CALLBACKS_FILE) if CALLBACKS_FILE in files else {}
    if not isinstance(callback_states, dict):
        raise CheckpointError(BAD_STATE_FILE.format(folder / CALLBACKS_FILE, "not a mapping"))
    cerebellum = th.load(folder / CEREBELLUM_FILE, map_location="cpu", weights_only=True) \
        if CEREBELLUM_FILE in files else None
    sleep = from_weights_only(th.load(folder / SLEEP_FILE, map_location="cpu", weights_only=True)) \
        if SLEEP_FILE in files else None
    try:
        rng = json.loads((folder / RNG_FILE).read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:
        raise CheckpointError(BAD_RNG.format(folder / RNG_FILE, f"JSON ({err})")) from err
    if not isinstance(rng, dict):
        raise CheckpointError(BAD_RNG.format(folder / RNG_FILE, "a JSON object"))
    return Checkpoint(folder, model, meta, rng, callback_states, cerebellum, sleep)


def policy_optimizers(policy: Any) -> dict[str, th.optim.Optimizer]:
    """The policy's torch optimizers other than SB3's ``policy.optimizer`` (which ``model.zip`` holds), by
    attribute name: the basal-ganglia policies' ``nogo_optimizer``."""
    return {name: value for name, value in vars(policy).items()
            if isinstance(value, th.optim.Optimizer) and name != "optimizer"}
