"""Checkpoint state that loads no code: nested state as ``.npz`` + JSON, generator states as JSON, replay buffers
as arrays, sleep state as tensors.

* :func:`write_state_npz` / :func:`read_state_npz`: numpy arrays as ``.npy`` members, everything else as one JSON
  document, read with ``numpy.load(allow_pickle=False)``;
* :func:`rng_state` / :func:`restore_rng`: Python ``random``, NumPy's legacy global generator, torch's CPU
  generator, the model's action-space and exploration generators, as JSON values, checked before any is set;
* :func:`replay_buffer_state` / :func:`load_replay_buffer_state`: every array of an SB3 replay buffer (and a
  prioritized buffer's priorities), restored byte for byte into a fresh buffer of the same shape;
* :func:`to_weights_only` / :func:`from_weights_only`: arrays as tagged tensors for ``torch.load(weights_only=True)``.

:mod:`agents.app.checkpoint` writes these files into a checkpoint folder and verifies them on resume.
"""

from __future__ import annotations

import json
import os
import random
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch as th

from janus_env.checks import check_array_like, check_bool, check_int, generator_from_state

RNG_FILE = "rng.json"
MAX_JSON_BYTES = 64 << 20
"""Largest JSON document read from a state file or ``meta.json``."""
BAD_STATE_FILE = "{}: not a checkpoint state file ({})"
PICKLED = "it holds pickled data, which is never loaded: unpickling runs code from the file"
BAD_RNG = "{}: expected {}"
_ARRAY_TAG = "__ndarray__"
_STATE_KEY = "__state__"
_ARRAY_REF = "__array__"
_CANNOT_STORE = "Cannot store {} in a checkpoint state file: {} (arrays, numbers, strings, None, lists, dicts)"
_BAD_BUFFER = "Replay buffer state: expected {}, got {!r}"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: incomplete, damaged, of an older format, or inconsistent with the run."""


# --------------------------------------------------------------------------- state files (.npz + JSON)


def write_state_npz(path: str | os.PathLike[str], state: Any) -> None:
    """Write nested ``state`` to ``path``: numpy arrays as ``.npy`` members, the rest as one JSON document.

    ``state`` may nest dicts (string keys), lists and tuples (read back as lists) of numpy arrays (not object
    arrays), numpy scalars (read back as Python numbers), ``int`` (any size), ``float`` (NaN and ±inf too),
    ``bool``, ``str`` and ``None``. Floats round-trip exactly (JSON holds their shortest repr).

    Raises:
        TypeError: a value of another type, an object array or a non-string key (the message names where).
    """
    arrays: dict[str, np.ndarray] = {}
    text = json.dumps(_encode(state, arrays, "state"), allow_nan=True)
    with open(path, "wb") as handle:
        np.savez(handle, **{_STATE_KEY: np.frombuffer(text.encode(), dtype=np.uint8)}, **arrays)


def read_state_npz(path: str | os.PathLike[str]) -> Any:
    """Read what :func:`write_state_npz` wrote, with ``numpy.load(allow_pickle=False)``: no code runs.

    Raises:
        CheckpointError: not such a file (names it): not a zip of ``.npy`` members, a member that needs pickle,
            no or invalid JSON document, a reference to a missing array.
    """
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise CheckpointError(BAD_STATE_FILE.format(path, "a single .npy array, not an .npz archive"))
        with npz:
            if _STATE_KEY not in npz.files:
                raise CheckpointError(BAD_STATE_FILE.format(path, f"no {_STATE_KEY} member"))
            raw = npz[_STATE_KEY]
            if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_JSON_BYTES:
                raise CheckpointError(BAD_STATE_FILE.format(path, f"{_STATE_KEY} is not a JSON document"))
            tree = json.loads(raw.tobytes().decode())
            arrays = {name: npz[name] for name in npz.files if name != _STATE_KEY}
    except CheckpointError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, RecursionError, KeyError) as err:
        reason = PICKLED if "pickle" in str(err) else err  # numpy's own advice is to load it unsafely
        raise CheckpointError(BAD_STATE_FILE.format(path, reason)) from err
    return _decode(tree, arrays, path)


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(_CANNOT_STORE.format(where, f"an object array ({obj.dtype})"))
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {_ARRAY_REF: key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Mapping):
        bad = [k for k in obj if not isinstance(k, str) or k == _ARRAY_REF]
        if bad:
            raise TypeError(_CANNOT_STORE.format(where, f"the key {bad[0]!r}"))
        return {k: _encode(v, arrays, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(_CANNOT_STORE.format(where, f"a {type(obj).__name__}"))


def _decode(obj: Any, arrays: Mapping[str, np.ndarray], path: Any) -> Any:
    if isinstance(obj, dict):
        if _ARRAY_REF in obj:
            name = obj[_ARRAY_REF]
            if len(obj) != 1 or not isinstance(name, str) or name not in arrays:
                raise CheckpointError(BAD_STATE_FILE.format(path, f"a reference to a missing array {name!r}"))
            return arrays[name]
        return {k: _decode(v, arrays, path) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays, path) for v in obj]
    return obj


# --------------------------------------------------------------------------- RNG states (JSON)


def rng_state(model: Any = None) -> dict[str, Any]:
    """The global generators' states as JSON-able values, plus the model's action-space and exploration ones.

    Python ``random``, NumPy's legacy global ``np.random`` (SB3's plain buffers sample from it), torch's CPU
    generator and, given ``model``, ``model.action_space``'s generator (SB3's random warm-up actions) and the
    basal-ganglia policy's ``np_random`` (gated exploration).
    """
    version, internal, gauss = random.getstate()
    legacy = np.random.get_state(legacy=False)  # noqa: NPY002 - snapshot of the global state SB3 draws from
    state: dict[str, Any] = {
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
        "numpy": {"key": legacy["state"]["key"].tolist(), "pos": int(legacy["state"]["pos"]),
                  "has_gauss": int(legacy["has_gauss"]), "gauss": float(legacy["gauss"])},
        "torch": th.get_rng_state().tolist(),
    }
    if model is not None:
        state["action_space"] = model.action_space.np_random.bit_generator.state
        explore = getattr(model.policy, "np_random", None)
        if isinstance(explore, np.random.Generator):
            state["exploration"] = explore.bit_generator.state
    return state


def restore_rng(state: Mapping[str, Any], model: Any = None) -> None:
    """Set every generator of :func:`rng_state` to ``state``; all values are checked before any is set.

    Raises:
        CheckpointError: a state numpy, Python or torch refuses, or one that ``model`` needs and ``state`` lacks.
    """
    try:
        py = state["python"]
        internal = tuple(py["internal"])
        if py["version"] != 3 or len(internal) != 625 or not all(type(x) is int for x in internal):
            raise ValueError("Python random state (version 3, 625 ints)")
        if py["gauss"] is not None and not isinstance(py["gauss"], float):
            raise ValueError("Python random gauss_next (None or a float)")
        python = (3, internal, py["gauss"])
        random.Random().setstate(python)  # checks the words and the index
        legacy = state["numpy"]
        key = np.asarray(legacy["key"], dtype=np.int64)
        if key.shape != (624,) or key.min() < 0 or key.max() >= 1 << 32:
            raise ValueError("NumPy MT19937 key of 624 uint32")
        if type(legacy["pos"]) is not int or not 0 <= legacy["pos"] <= 624:  # numpy reads key[pos] unchecked
            raise ValueError("NumPy MT19937 position in [0, 624]")
        numpy = ("MT19937", key.astype(np.uint32), legacy["pos"], int(legacy["has_gauss"]), float(legacy["gauss"]))
        np.random.RandomState().set_state(numpy)  # checks it
        torch_state = state["torch"]
        if (not isinstance(torch_state, list) or len(torch_state) != th.get_rng_state().numel()
                or not all(type(x) is int and 0 <= x < 256 for x in torch_state)):
            raise ValueError(f"torch CPU generator state ({th.get_rng_state().numel()} bytes)")
        action_space = explore = None
        if model is not None:
            action_space = generator_from_state("action_space", state["action_space"])
            if isinstance(getattr(model.policy, "np_random", None), np.random.Generator):
                explore = generator_from_state("exploration", state["exploration"])
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise CheckpointError(BAD_RNG.format(RNG_FILE, err)) from err
    random.setstate(python)
    np.random.set_state(numpy)  # noqa: NPY002
    th.set_rng_state(th.tensor(torch_state, dtype=th.uint8))
    if action_space is not None:
        model.action_space.np_random.bit_generator.state = action_space.bit_generator.state
    if explore is not None:
        model.policy.np_random = explore


# --------------------------------------------------------------------------- replay buffer


_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def replay_buffer_state(buffer: Any) -> dict[str, Any]:
    """Everything an SB3 ``ReplayBuffer`` / ``DictReplayBuffer`` holds, as arrays and JSON values (no pickle).

    Its arrays (observations — a dict of arrays for Dict spaces —, next observations, actions, rewards, dones,
    timeouts), ``pos`` and ``full``; a prioritized buffer (``replay.PrioritizedReplayMixin``) adds
    ``priority_state()``. The arrays are the buffer's own, not copies: write the state before the buffer changes.
    """
    state: dict[str, Any] = {"class": type(buffer).__name__, "buffer_size": int(buffer.buffer_size),
                             "n_envs": int(buffer.n_envs), "pos": int(buffer.pos), "full": bool(buffer.full)}
    for name in _BUFFER_ARRAYS:
        state[name] = getattr(buffer, name, None)
    if hasattr(buffer, "priority_state"):
        state["prioritized"] = buffer.priority_state()
    return state


def load_replay_buffer_state(buffer: Any, state: Mapping[str, Any]) -> None:
    """Restore :func:`replay_buffer_state` output into ``buffer`` (a fresh buffer of the same class and sizes).

    Every array must have the dtype and shape of the buffer's own (so the contents come back byte for byte);
    ``pos`` and ``full`` must be in range; the prioritized part is checked by ``load_priority_state``.

    Raises:
        ValueError / TypeError: another buffer class, sizes, dtypes or shapes; out-of-range values.
    """
    for key, expected in (("class", type(buffer).__name__), ("buffer_size", buffer.buffer_size),
                          ("n_envs", buffer.n_envs)):
        if state.get(key) != expected:
            raise ValueError(_BAD_BUFFER.format(f"{key} {expected!r}", state.get(key)))
    copies: list[tuple[np.ndarray, np.ndarray]] = []
    for name in _BUFFER_ARRAYS:
        own, saved = getattr(buffer, name, None), state.get(name)
        if own is None or saved is None:
            if own is not None or saved is not None:
                raise ValueError(_BAD_BUFFER.format(f"{name} {'absent' if own is None else 'present'}", saved))
        elif isinstance(own, dict):
            if not isinstance(saved, Mapping) or set(saved) != set(own):
                raise ValueError(_BAD_BUFFER.format(f"{name} with keys {sorted(own)}", type(saved).__name__))
            copies += [(own[k], check_array_like(f"{name}[{k!r}]", saved[k], own[k])) for k in own]
        else:
            copies.append((own, check_array_like(name, saved, own)))
    pos = check_int("pos", state.get("pos"), low=0, high=buffer.buffer_size - 1)
    full = check_bool("full", state.get("full"))
    prioritized = state.get("prioritized")
    if hasattr(buffer, "load_priority_state") != isinstance(prioritized, Mapping):
        raise ValueError(_BAD_BUFFER.format("a prioritized state exactly for a prioritized buffer",
                                            type(prioritized).__name__))
    for own, saved in copies:
        np.copyto(own, saved)
    buffer.pos, buffer.full = pos, full
    if prioritized is not None:
        buffer.load_priority_state(prioritized)


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
