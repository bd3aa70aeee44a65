"""Loading SB3 model files (``model.zip``) without running code from them.

SB3's ``BaseAlgorithm.load`` unpickles (with cloudpickle) every entry of the zip's ``data`` JSON that it saved
as ``{":type:": ..., ":serialized:": <base64 pickle>}`` — the policy class, the spaces, the schedules, the
buffer class, the last observation — and unpickling runs whatever the file tells it to: a crafted
``model.zip`` runs code on the machine that loads it. :func:`load_model` never unpickles anything from the
file:

1. it reads the file once into memory and parses ``data`` as plain JSON; a serialized entry stays the text it
   is;
2. it builds the same algorithm from the run's own ``config.yaml`` with the code that trains it
   (:func:`agents.app.config.build_model` on probe envs made from the config) and takes from that model
   each serialized entry it can rebuild (:data:`REBUILT`: policy class, ``policy_kwargs``, spaces, buffer
   class, schedules, ``train_freq``); the run-time leftovers (:data:`DROPPED`: the last observation and the
   windows of recent episode statistics) become None;
3. it checks that the file is that model: the plain-text description SB3 writes beside each pickle
   (``:type:`` and the object's first-level fields) matches the rebuilt object's, the JSON entries are
   exactly the ones this algorithm saves (none added, none missing) with values of compatible types, and the
   weight files are the algorithm's and load with ``torch.load(weights_only=True)``;
4. it gives SB3's own ``load`` the same bytes with every serialized entry in ``custom_objects``, so SB3
   never reaches cloudpickle (SB3 reads the ``.pth`` files with ``weights_only=True`` itself; had it not, the
   files step 3 loaded weights-only hold nothing else to run).

Any other serialized entry (a callable learning rate, action noise, an entry this algorithm does not save)
is refused with a :class:`ModelFileError` naming the file and the entry, unless ``trust_remote_code=True``:
then SB3's normal load runs, pickles included — only for files from someone you trust.

The loaded model is SB3's load of the same file: same weights, optimizer state and JSON attributes, the
same global RNG seeding, so ``predict`` gives the same actions. Two things differ, both outside what is
learned: ``ep_info_buffer``/``ep_success_buffer`` (behind ``rollout/ep_rew_mean``) start empty, and without
an ``env`` ``_last_obs`` is None (SB3 drops it too when an env is given: the next ``learn`` resets the env).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch as th

from agents.app.config import ALGO_CLASSES, ALGOS, ConfigError, build_model, make_vec_env, read_yaml
from janus_env.checks import bad_value, is_number

REBUILT = (
    "policy_class", "policy_kwargs", "observation_space", "action_space", "replay_buffer_class",
    "rollout_buffer_class", "lr_schedule", "clip_range", "clip_range_vf", "exploration_schedule", "train_freq",
)  # fmt: skip
"""Entries of ``data`` taken from the model the run's config builds (checked against the file's description)."""
DROPPED = ("_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer", "ep_success_buffer")
"""Entries of ``data`` set to None: the last observation and episode starts (the next ``learn`` resets the env,
as after SB3's load with an env) and the recent-episode windows behind ``rollout/ep_rew_mean`` (they restart)."""
ADDED = {"action_masking": True}
"""Entries a model saved before they existed lacks, with the value that meant (``JanusPPO.action_masking``: every
janus-ppo trained over masks until it could be switched off). A file without one loads with the constructor's
default, if the run's config asks for that value."""
RUN_CONFIG = "config.yaml"
"""The run's resolved config, beside ``model.zip`` (``RUN/model.zip``) or two folders up from a checkpoint's
(``RUN/checkpoints/<step>/model.zip``)."""
MAX_UNPACKED_BYTES = 4 * 2**30
"""Largest total size the entries of a model file may unpack to (a guard against zip bombs)."""
SERIALIZED = ":serialized:"
"""The key SB3 marks a pickled entry of ``data`` with."""

_NO_FILE = "{}: no such model file"
_NOT_A_ZIP = "{}: not an SB3 model file (a readable zip archive): {}"
_TOO_BIG = "{}: its entries unpack to {} bytes, over the limit of {} bytes"
_NO_DATA = "{}: no `data` entry; not an SB3 model file"
_BAD_DATA = "{}: its `data` entry is not a JSON object: {}"
_BAD_WEIGHTS_FILE = "{}: {} is not plain torch weights; torch.load(weights_only=True) refused it: {}"
_UNSAFE = (
    "{}: entry {} of its data is a pickled {} that cannot be rebuilt from the run's config, and unpickling it "
    "would run code from the file; refused (load it with --trust-remote-code, trust_remote_code=True, only if "
    "you trust whoever wrote the file)"
)
_NOT_THIS_MODEL = "{}: not the {!r} model the run's config builds: {}"
_CANNOT_LOAD = "{}: cannot load it as a {!r} model: {}"
_NO_CONFIG = "{}: no run config found (looked for {}); pass config=, or trust_remote_code=True for a file you trust"
_BAD_RUN_CONFIG = "{}: expected a run config with run.env and run.algo (names) and hyperparams (a mapping), got {}"
_ALGO_CONFLICT = "{}: the run's config trains {!r}, not {!r}"
_CONFIG_CANNOT_BUILD = "{}: the run's config cannot build its {!r} model: {}"
_ALGO_EXPECTED = f"one of {list(ALGOS)} or its SB3 class"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_WEIGHTS_ERROR = "WeightsUnpickler error:"


class ModelFileError(ValueError):
    """A model file that cannot be loaded safely, or at all; the message names the file and the entry."""


def load_model(
    path: str | Path,
    algo: str | type,
    *,
    env: Any = None,
    device: str = "cpu",
    config: Mapping[str, Any] | None = None,
    trust_remote_code: bool = False,
) -> Any:
    """The SB3 model saved in ``path``, loaded without unpickling anything from the file (module docstring).

    Args:
        path: the ``model.zip``.
        algo: the run's algorithm, a name of ``agents.app.config.ALGOS`` or its SB3 class (``algo_class``).
        env: the env to continue training on (checked against the spaces, as SB3's ``load`` does); None to
            predict only.
        device: torch device of the model.
        config: the run's resolved config (``{"run": {"env", "algo", "seed", ...}, "hyperparams": {...}}``, as
            in its ``config.yaml``); None reads :data:`RUN_CONFIG` beside ``path`` (or two folders up for a
            checkpoint). Not needed with ``trust_remote_code``.
        trust_remote_code: load with SB3's own ``load``, which unpickles the file's serialized entries: code
            the file carries runs. Only for files from someone you trust. Default False.

    Returns:
        The model (an instance of ``algo``'s SB3 class).

    Raises:
        FileNotFoundError: no file at ``path``, or no run config for it.
        ModelFileError: (a ValueError; the message names the file and the entry) not a readable SB3 zip, a
            ``data`` entry that is not JSON, a serialized entry that cannot be rebuilt (refused: it could only
            be unpickled), entries or weight files of another algorithm or another config, weights that
            ``torch.load(weights_only=True)`` refuses or that do not fit the model.
        ConfigError: (a ValueError) an unknown ``algo``, a config that is not a run config, a config that
            trains another algorithm or cannot build its model.
        TypeError: ``algo`` is neither a name nor a known SB3 class.
    """
    path = Path(path)
    name = _algo_name(algo)
    if not path.is_file():
        raise FileNotFoundError(_NO_FILE.format(path))
    raw = path.read_bytes()
    if trust_remote_code:
        return _sb3_load(path, raw, name, env, device, None)
    run = _run_config(path, config)
    if run["run"]["algo"] != name:
        raise ConfigError(_ALGO_CONFLICT.format(path, run["run"]["algo"], name))
    data, weights = _read_archive(path, raw)
    reference = _reference_model(path, name, run, device)
    custom = _rebuilt_entries(path, name, data, reference)
    _check_weight_files(path, name, weights, reference)
    return _sb3_load(path, raw, name, env, device, custom)


def find_run_config(model_path: str | Path) -> Path:
    """The run's :data:`RUN_CONFIG` for a model file: ``RUN/model.zip`` or ``RUN/checkpoints/<step>/model.zip``.

    Raises:
        FileNotFoundError: neither place has one.
    """
    path = Path(model_path)
    candidates = [path.parent / RUN_CONFIG]
    if path.parent.parent.name == "checkpoints":
        candidates.append(path.parent.parent.parent / RUN_CONFIG)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(_NO_CONFIG.format(path, " or ".join(str(c) for c in candidates)))


def _algo_name(algo: str | type) -> str:
    if isinstance(algo, str):
        if algo not in ALGO_CLASSES:
            raise ConfigError(bad_value("algo", _ALGO_EXPECTED, algo))
        return algo
    for name, cls in ALGO_CLASSES.items():
        if algo is cls:
            return name
    raise TypeError(bad_value("algo", _ALGO_EXPECTED, algo))


def _run_config(path: Path, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run config (given, or read from beside ``path``), checked to have what rebuilding the model needs."""
    source: Any = path
    if config is None:
        source = find_run_config(path)
        config = read_yaml(source)
    run = config.get("run") if isinstance(config, Mapping) else None
    hyper = config.get("hyperparams", {}) if isinstance(config, Mapping) else None
    if (
        not isinstance(run, Mapping)
        or not isinstance(run.get("env"), str)
        or not isinstance(run.get("algo"), str)
        or not isinstance(hyper, Mapping)
    ):
        raise ConfigError(_BAD_RUN_CONFIG.format(source, _quote(config)))
    return {"run": dict(run), "hyperparams": dict(hyper)}


def _read_archive(path: Path, raw: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    """``data`` parsed as JSON (nothing unpickled) and the raw ``.pth`` entries, each checked to load weights-only.

    SB3 treats every entry whose extension is ``.pth`` as torch weights; so do we.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            infos = archive.infolist()
            unpacked = sum(info.file_size for info in infos)
            if unpacked > MAX_UNPACKED_BYTES:
                raise ModelFileError(_TOO_BIG.format(path, unpacked, MAX_UNPACKED_BYTES))
            names = [info.filename for info in infos]
            if "data" not in names:
                raise ModelFileError(_NO_DATA.format(path))
            text = archive.read("data").decode("utf-8")
            weights = {n: archive.read(n) for n in names if os.path.splitext(n)[1] == ".pth"}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, UnicodeDecodeError, NotImplementedError,
            RuntimeError) as err:  # RuntimeError: an encrypted entry
        raise ModelFileError(_NOT_A_ZIP.format(path, _one_line(err))) from err
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:  # json.JSONDecodeError is a ValueError
        raise ModelFileError(_BAD_DATA.format(path, _one_line(err))) from err
    if not isinstance(data, dict):
        raise ModelFileError(_BAD_DATA.format(path, f"a JSON {type(data).__name__}"))
    for member, blob in weights.items():
        try:
            th.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for a bad file
            raise ModelFileError(_BAD_WEIGHTS_FILE.format(path, member, _one_line(err))) from err
    return data, weights


def _reference_model(path: Path, name: str, run: Mapping[str, Any], device: str) -> Any:
    """The model the run's config builds (``build_model`` on its envs, as training made them): what the file must
    match."""
    settings, params = run["run"], run["hyperparams"]
    seed = settings.get("seed", 0)
    probe = None
    try:
        probe = make_vec_env(settings["env"], params, seed=seed)
        return build_model(name, probe, params, seed=seed, tensorboard_log=None, device=device)
    except ConfigError:
        raise
    except Exception as err:  # an env id, env setting or hyper-parameter the config should not hold
        raise ConfigError(_CONFIG_CANNOT_BUILD.format(path, name, _one_line(err))) from err
    finally:
        if probe is not None:
            probe.close()


def saved_entries(model: Any) -> dict[str, Any]:
    """What ``model.save`` puts in ``data``: the model's attributes, less SB3's exclusions and its torch objects."""
    state_dicts, torch_variables = model._get_torch_save_params()
    excluded = set(model._excluded_save_params()) | {name.split(".")[0] for name in state_dicts + torch_variables}
    return {key: value for key, value in vars(model).items() if key not in excluded}


def _rebuilt_entries(path: Path, name: str, data: Mapping[str, Any], reference: Any) -> dict[str, Any]:
    """``custom_objects`` for SB3's ``load``: every serialized entry (and every :data:`REBUILT` or :data:`DROPPED`
    one) from ``reference``, after checking that the file describes the same objects and holds nothing else."""
    serialized = [key for key, value in data.items() if isinstance(value, dict) and SERIALIZED in value]
    for key in serialized:
        if key not in REBUILT and key not in DROPPED:
            raise ModelFileError(_UNSAFE.format(path, _quote(key), _quote(data[key].get(":type:", "object"))))
    expected = saved_entries(reference)
    unexpected, missing = sorted(set(data) - set(expected)), sorted(set(expected) - set(data))
    missing = [key for key in missing if not (key in ADDED and expected[key] == ADDED[key])]
    if unexpected or missing:
        detail = "; ".join(
            [f"unexpected entries {_names(unexpected)}"] * bool(unexpected)
            + [f"missing entries {missing}"] * bool(missing)
        )
        raise ModelFileError(_NOT_THIS_MODEL.format(path, name, detail))
    custom: dict[str, Any] = {}
    for key, value in data.items():
        ours = expected[key]
        if key in DROPPED:
            custom[key] = None
        elif key in REBUILT:
            difference = _difference(value, ours) if key in serialized else _json_difference(value, ours)
            if difference:
                raise ModelFileError(_NOT_THIS_MODEL.format(path, name, f"entry {key!r}: {difference}"))
            custom[key] = ours
        elif not _compatible(value, ours):
            detail = f"entry {key!r} is {_quote(value)}, expected {_kind(ours)}"
            raise ModelFileError(_NOT_THIS_MODEL.format(path, name, detail))
    return custom


def _check_weight_files(path: Path, name: str, weights: Mapping[str, bytes], reference: Any) -> None:
    """The file's ``.pth`` entries are the algorithm's: one per state dict, plus ``pytorch_variables.pth``."""
    state_dicts, _ = reference._get_torch_save_params()
    required = {f"{n}.pth" for n in state_dicts}
    unexpected = sorted(set(weights) - required - {"pytorch_variables.pth"})
    missing = sorted(required - set(weights))
    if unexpected or missing:
        detail = f"weight files {_names(sorted(weights))}, expected {sorted(required)}"
        raise ModelFileError(_NOT_THIS_MODEL.format(path, name, detail))


def _sb3_load(path: Path, raw: bytes, name: str, env: Any, device: str, custom: dict[str, Any] | None) -> Any:
    """SB3's ``load`` of the bytes already read (the file cannot change in between); errors name the file."""
    try:
        return ALGO_CLASSES[name].load(io.BytesIO(raw), env=env, device=device, custom_objects=custom)
    except Exception as err:  # the file's weights or attributes do not fit the model (SB3 raises many kinds)
        raise ModelFileError(_CANNOT_LOAD.format(path, name, _one_line(err))) from err


# ---- comparing the file's descriptions with the rebuilt objects -------------------------------------------


def _json_ok(value: Any) -> bool:
    """SB3's ``is_json_serializable``."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _description(value: Any) -> dict[str, Any]:
    """The plain-text description SB3's ``data_to_json`` saves beside a pickled ``value``, as JSON reads it back."""
    description: dict[str, Any] = {":type:": str(type(value))}
    if hasattr(value, "__dict__") or isinstance(value, dict):
        items = value.items() if isinstance(value, dict) else vars(value).items()
        for field, item in items:
            description[field] = item if _json_ok(item) else str(item)
    return json.loads(json.dumps(description))


def _normalized(description: Mapping[str, Any], is_class: bool) -> dict[str, Any]:
    """What must match: all fields but the RNG state of spaces; for a class, its type and module only (a class's
    body — docstring, methods — may change between versions of the code that saved and loads it)."""
    if is_class:
        return {key: description.get(key) for key in (":type:", "__module__")}
    return {
        key: _ADDRESS.sub(" at 0x…", value) if isinstance(value, str) else value
        for key, value in description.items()
        if key not in (SERIALIZED, "_np_random")
    }


def _difference(entry: Mapping[str, Any], ours: Any) -> str:
    """'' when the file's description of a pickled entry is that of ``ours``, else the first difference."""
    is_class = isinstance(ours, type)
    theirs, mine = _normalized(entry, is_class), _normalized(_description(ours), is_class)
    if is_class and isinstance(theirs["__module__"], str) and mine["__module__"].startswith(theirs["__module__"] + "."):
        theirs["__module__"] = mine["__module__"]  # saved before a module became a package (agents.basal_ganglia)
    for field in sorted(set(theirs) | set(mine)):
        if theirs.get(field) != mine.get(field):
            return f"{field} is {_quote(theirs.get(field))} in the file, {_quote(mine.get(field))} from the config"
    return ""


def _json_difference(value: Any, ours: Any) -> str:
    """'' when a plain JSON entry equals ``ours`` as JSON, else what differs."""
    mine = json.loads(json.dumps(ours)) if _json_ok(ours) else _description(ours)
    return "" if value == mine else f"{_quote(value)} in the file, {_quote(mine)} from the config"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__}"


def _compatible(value: Any, ours: Any) -> bool:
    """A JSON entry may replace the rebuilt attribute: same kind of value, or null on either side."""
    return value is None or ours is None or _kind(value) == _kind(ours)


def _quote(value: Any, limit: int = 120) -> str:
    """``repr`` of a value read from the file, on one line and at most ``limit`` characters (marked when cut)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _names(names: list[str], limit: int = 10) -> str:
    """A list of names read from the file, each cut to 60 characters, at most ``limit`` of them (the rest counted)."""
    shown = [name if len(name) <= 60 else name[:59] + "…" for name in names[:limit]]
    return f"{shown}" + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _one_line(err: BaseException) -> str:
    """An exception as one line: torch's weights-only refusal by its reason, others by their first lines."""
    text = _ANSI.sub("", str(err))
    if _WEIGHTS_ERROR in text:
        text = text.split(_WEIGHTS_ERROR, 1)[1]
        lines = [line.strip() for line in text.splitlines() if line.strip()][:1]
    else:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        lines = lines[:3] + ["…"] * (len(lines) > 3)
    return f"{type(err).__name__}: {' '.join(lines)}" if lines else type(err).__name__
