"""``agents.app.safe_load``: model files load without running code from them, and as SB3's own load does.

Every algorithm ``train.py`` ships (``agents.app.config.ALGOS``) is saved after a short training, then loaded
both ways: SB3's ``load`` (the reference) and :func:`load_model` with every way of unpickling the file's
entries turned into a failure. Crafted files carry a payload that creates a marker file when unpickled; the
marker must never appear, through the API, ``evaluate.py`` or ``train.py --resume`` — except with
``trust_remote_code=True``, which shows that the payload is real.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import pathlib
import pickle
import random
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest
import torch as th
import yaml

import train
from agents.app import safe_load
from agents.app.config import ALGOS, ConfigError, algo_class, build_model, make_vec_env, resolve_hyperparams
from agents.app.safe_load import (
    DROPPED,
    REBUILT,
    SERIALIZED,
    ModelFileError,
    find_run_config,
    load_model,
)
from agents.app.training import build_training, resolve_run

ENV = "Janus-LOB-v0"
TINY = {
    "ppo": ["n_steps=32", "batch_size=32", "n_epochs=1"],
    "janus-ppo": ["n_steps=32", "batch_size=32", "n_epochs=1"],
    "dqn": ["learning_starts=16", "buffer_size=500", "batch_size=16"],
    "qrdqn": ["learning_starts=16", "buffer_size=500", "batch_size=16"],
    "janus-dqn": ["learning_starts=16", "buffer_size=500", "batch_size=16"],
}
"""Per algorithm, the ``--hp`` overrides of a model small and quick to train (each algorithm must have one)."""
COMMON = ["env_kwargs.episode_steps=20", "n_envs=1"]  # 64 training steps end three episodes
TRAIN_STEPS = 64
OBJECT_TYPE = "<class 'object'>"  # the `:type:` a crafted entry claims


class Touch:
    """Unpickling this creates ``marker``: the payload of every crafted file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _config(algo: str) -> dict[str, Any]:
    params = resolve_hyperparams(algo, ENV, overrides=[*COMMON, *TINY[algo]])
    return {"run": {"env": ENV, "algo": algo, "seed": 0, "timesteps": TRAIN_STEPS, "checkpoint_every": 32},
            "hyperparams": params}


def _write_run(run_dir: Path, config: dict[str, Any], model_zip: bytes) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (run_dir / "model.zip").write_bytes(model_zip)
    return run_dir / "model.zip"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Per algorithm, a run folder (``config.yaml`` and ``model.zip``) after ``TRAIN_STEPS`` steps of training, so
    the file holds every kind of entry (last observation, episode windows, ...)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for algo in ALGOS:
        config = _config(algo)
        env = make_vec_env(ENV, config["hyperparams"], seed=0)
        model = build_model(algo, env, config["hyperparams"], seed=0, tensorboard_log=None)
        model.learn(TRAIN_STEPS)
        buffer = io.BytesIO()
        model.save(buffer)
        env.close()
        out[algo] = _write_run(root / algo, config, buffer.getvalue()).parent
    return out


@pytest.fixture(scope="module")
def observations() -> list[dict[str, np.ndarray]]:
    """16 observations of the runs' env, from seeded random play."""
    env = make_vec_env(ENV, _config("dqn")["hyperparams"], seed=11)
    env.action_space.seed(11)
    obs, out = env.reset(), []
    for _ in range(16):
        out.append({key: value.copy() for key, value in obs.items()})
        obs, *_ = env.step(np.array([env.action_space.sample()]))
    env.close()
    return out


def _serialized_keys(model_zip: Path) -> set[str]:
    with zipfile.ZipFile(model_zip) as archive:
        data = json.loads(archive.read("data"))
    return {key for key, value in data.items() if isinstance(value, dict) and SERIALIZED in value}


def _serialized_pickles(model_zip: Path) -> set[bytes]:
    with zipfile.ZipFile(model_zip) as archive:
        data = json.loads(archive.read("data"))
    return {base64.b64decode(v[SERIALIZED]) for v in data.values() if isinstance(v, dict) and SERIALIZED in v}


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """``no_unpickling(model_zip)``: from now on cloudpickle fails, ``pickle.loads`` fails on any pickle the file
    holds, and ``torch.load`` fails unless ``weights_only=True``. (``pickle.loads`` itself stays: numba reads its
    own cache with it.)"""

    def arm(model_zip: Path) -> None:
        pickles = _serialized_pickles(model_zip)
        assert pickles  # the guard has something to guard
        real_loads, torch_load = pickle.loads, th.load

        def guarded_loads(data: bytes, *args: Any, **kwargs: Any) -> Any:
            if bytes(data) in pickles:
                raise AssertionError("a pickle from the model file was unpickled")
            return real_loads(data, *args, **kwargs)

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("cloudpickle.loads was called")

        def weights_only_load(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("weights_only") is not True:
                raise AssertionError("torch.load without weights_only=True")
            return torch_load(*args, **kwargs)

        monkeypatch.setattr(cloudpickle, "loads", refuse)
        monkeypatch.setattr(pickle, "loads", guarded_loads)
        monkeypatch.setattr(th, "load", weights_only_load)

    return arm


def _rng_state() -> tuple[Any, ...]:
    return th.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002


def _same(a: Any, b: Any) -> bool:
    """Exact equality of nested state dicts (tensors bit for bit)."""
    if isinstance(a, th.Tensor):
        return isinstance(b, th.Tensor) and a.dtype == b.dtype and a.shape == b.shape and th.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _batch(observations: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([o[key] for o in observations]) for key in observations[0]}


def _predictions(model: Any, observations: list[dict[str, np.ndarray]], go_scores: Callable) -> dict[str, Any]:
    """Go scores and greedy actions on the batch, then stochastic actions one by one (the RNGs as the load left
    them)."""
    batch = _batch(observations)
    obs, _ = model.policy.obs_to_tensor(batch)
    return {"scores": go_scores(model.policy, obs).numpy(),
            "greedy": model.predict(batch, deterministic=True)[0],
            "sampled": [model.predict(o, deterministic=False)[0] for o in observations]}


def test_every_shipped_algorithm_is_tested() -> None:
    assert set(TINY) == set(ALGOS)


@pytest.mark.parametrize("algo", ALGOS)
def test_loads_the_same_model_as_sb3_without_unpickling(algo: str, runs: dict[str, Path], observations: list,
                                                        no_unpickling: Callable, sb3_go_scores: Callable) -> None:
    path = runs[algo] / "model.zip"
    reference = algo_class(algo).load(path, device="cpu")
    reference_rng = _rng_state()
    expected = _predictions(reference, observations, sb3_go_scores)

    no_unpickling(path)
    model = load_model(path, algo)
    assert _same(_rng_state()[0], reference_rng[0])  # the load seeded the global RNGs as SB3's does
    assert np.array_equal(_rng_state()[1], reference_rng[1]) and _rng_state()[2] == reference_rng[2]
    got = _predictions(model, observations, sb3_go_scores)

    assert type(model) is type(reference) and model.num_timesteps == TRAIN_STEPS
    assert np.array_equal(got["scores"], expected["scores"])  # bit for bit
    assert np.array_equal(got["greedy"], expected["greedy"])
    assert np.array_equal(np.stack(got["sampled"]), np.stack(expected["sampled"]))
    assert _same(model.get_parameters(), reference.get_parameters())  # policy and optimizer state dicts
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
    assert _serialized_keys(path) <= set(REBUILT) | set(DROPPED)
    for key in data:
        ours, theirs = getattr(model, key), getattr(reference, key)
        if key in DROPPED:
            assert ours is None
        elif key in ("lr_schedule", "clip_range", "clip_range_vf", "exploration_schedule") and ours is not None:
            assert [ours(p) for p in (1.0, 0.5, 0.0)] == [theirs(p) for p in (1.0, 0.5, 0.0)], key
        else:
            assert ours == theirs, key


@pytest.mark.parametrize("algo", ALGOS)
def test_training_continues_as_after_sb3_load(algo: str, runs: dict[str, Path], no_unpickling: Callable) -> None:
    """With an env (resume): 32 more steps from either load end with the same weights, bit for bit."""
    path = runs[algo] / "model.zip"
    params = _config(algo)["hyperparams"]
    env = make_vec_env(ENV, params, seed=5)
    reference = algo_class(algo).load(path, env=env, device="cpu").learn(32, reset_num_timesteps=False)
    no_unpickling(path)
    env = make_vec_env(ENV, params, seed=5)
    model = load_model(path, algo, env=env).learn(32, reset_num_timesteps=False)
    assert model.num_timesteps == reference.num_timesteps == TRAIN_STEPS + 32
    assert _same(model.get_parameters(), reference.get_parameters())


# ---- crafted files --------------------------------------------------------------------------------------------


def _rewrite(model_zip: Path, *, data: Callable[[dict], dict] | None = None,
             members: dict[str, bytes] | None = None) -> bytes:
    """The bytes of ``model_zip`` with its ``data`` JSON edited and some members replaced."""
    out = io.BytesIO()
    with zipfile.ZipFile(model_zip) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            blob = src.read(name)
            if name == "data" and data is not None:
                blob = json.dumps(data(json.loads(blob))).encode()
            dst.writestr(name, (members or {}).get(name, blob))
    return out.getvalue()


def _payload(marker: Path) -> str:
    return base64.b64encode(cloudpickle.dumps(Touch(marker))).decode()


def _plant(key: str, marker: Path, *, faithful: bool) -> Callable[[dict], dict]:
    """Put the payload in entry ``key``; ``faithful`` keeps the genuine entry's description around it (the file
    then claims to hold exactly what the config rebuilds)."""

    def edit(data: dict) -> dict:
        entry = dict(data[key]) if faithful else {":type:": OBJECT_TYPE}
        entry[SERIALIZED] = _payload(marker)
        return {**data, key: entry}

    return edit


def test_the_payload_runs_when_the_file_is_trusted(runs: dict[str, Path], tmp_path: Path) -> None:
    """The control: SB3's own load (``trust_remote_code=True``) unpickles the entry, and the marker appears."""
    marker = tmp_path / "pwned"
    path = _write_run(tmp_path / "r", _config("dqn"), _rewrite(runs["dqn"] / "model.zip",
                                                               data=_plant("evil", marker, faithful=False)))
    load_model(path, "dqn", trust_remote_code=True)
    assert marker.exists()


@pytest.mark.parametrize("key", ["evil", "learning_rate", "action_noise"])
def test_a_pickled_entry_that_cannot_be_rebuilt_is_refused(key: str, runs: dict[str, Path], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _write_run(tmp_path / "r", _config("dqn"), _rewrite(runs["dqn"] / "model.zip",
                                                               data=_plant(key, marker, faithful=False)))
    with pytest.raises(ModelFileError) as err:
        load_model(path, "dqn")
    assert str(err.value) == safe_load._UNSAFE.format(path, repr(key), repr(OBJECT_TYPE))
    assert not marker.exists()


@pytest.mark.parametrize("algo", ALGOS)
def test_a_payload_in_a_rebuilt_entry_never_runs(algo: str, runs: dict[str, Path], tmp_path: Path) -> None:
    """Each entry the config rebuilds is never unpickled, whatever it holds: with a payload in its place (and the
    genuine description around it) the file loads as the genuine one, and the payload never runs."""
    source = runs[algo] / "model.zip"
    genuine = load_model(source, algo).get_parameters()
    serialized = sorted(_serialized_keys(source))
    assert {"policy_class", "observation_space", "action_space", "lr_schedule", "_last_obs"} <= set(serialized)
    for key in serialized:
        marker = tmp_path / f"pwned_{key}"
        path = _write_run(tmp_path / key, _config(algo), _rewrite(source, data=_plant(key, marker, faithful=True)))
        model = load_model(path, algo)
        assert not marker.exists(), key
        assert _same(model.get_parameters(), genuine), key


def test_a_payload_in_the_weights_is_refused_even_when_trusted(runs: dict[str, Path], tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    weights = io.BytesIO()
    th.save({"q_net.weight": Touch(marker)}, weights)
    path = _write_run(tmp_path / "r", _config("dqn"),
                      _rewrite(runs["dqn"] / "model.zip", members={"policy.pth": weights.getvalue()}))
    with pytest.raises(ModelFileError, match=re.escape(f"{path}: policy.pth is not plain torch weights; "
                                                       "torch.load(weights_only=True) refused it: ")) as err:
        load_model(path, "dqn")
    assert "Unsupported global" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ModelFileError, match=re.escape(f"{path}: cannot load it as a 'dqn' model: ")):
        load_model(path, "dqn", trust_remote_code=True)  # SB3 >= 2.4 reads weights with weights_only=True too
    assert not marker.exists()


@pytest.mark.parametrize("where", ["data", "policy.pth"])
def test_evaluate_refuses_a_crafted_model_in_one_line(where: str, runs: dict[str, Path], tmp_path: Path,
                                                      run_script: Callable) -> None:
    marker = tmp_path / "pwned"
    if where == "data":
        crafted = _rewrite(runs["dqn"] / "model.zip", data=_plant("evil", marker, faithful=False))
    else:
        weights = io.BytesIO()
        th.save({"q_net.weight": Touch(marker)}, weights)
        crafted = _rewrite(runs["dqn"] / "model.zip", members={"policy.pth": weights.getvalue()})
    path = _write_run(tmp_path / "r", _config("dqn"), crafted)
    result = run_script("evaluate.py", str(path.parent), "--scenarios", "ou", "--episodes", "1", "--baselines",
                        "none", check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"evaluate.py: error: {path}: "), result.stderr
    assert ("entry 'evil'" if where == "data" else "policy.pth is not plain torch weights") in lines[0]
    assert not marker.exists() and not (path.parent / "eval").exists()


def test_resume_refuses_crafted_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Every checkpoint's ``model.zip`` carries a payload, its manifest updated to match (as whoever crafted the
    run folder would): resume skips each one with the reason, then stops with one line and exit 2."""
    args = train.parse_args(["--algo", "dqn", "--timesteps", "64", "--checkpoint-every", "32", "--run-dir",
                             str(tmp_path), "--run-name", "r", "--no-progress", "--hp", "env_kwargs.episode_steps=50",
                             "--hp", "learning_starts=32"])
    training = build_training(resolve_run(args))
    training.learn(progress=False)
    training.save()
    marker = tmp_path / "pwned"
    checkpoints = sorted((tmp_path / "r" / "checkpoints").glob("step_*"))
    assert len(checkpoints) == 2
    for folder in checkpoints:
        crafted = _rewrite(folder / "model.zip", data=_plant("evil", marker, faithful=False))
        (folder / "model.zip").write_bytes(crafted)
        meta = json.loads((folder / "meta.json").read_text())
        meta["files"]["model.zip"] = {"bytes": len(crafted), "sha256": hashlib.sha256(crafted).hexdigest()}
        (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning) as skipped:
        assert train.main(["--resume", str(tmp_path / "r"), "--timesteps", "96", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train.py: error: ")
    for folder in checkpoints:
        reason = safe_load._UNSAFE.format(folder / "model.zip", repr("evil"), repr(OBJECT_TYPE))
        assert reason in err[0] and any(reason in str(w.message) for w in skipped)
    assert not marker.exists()


# ---- files that are not the run's model ------------------------------------------------------------------------


@pytest.mark.parametrize(("saved", "configured"), list(itertools.permutations(ALGOS, 2)))
def test_a_model_of_another_algorithm_is_refused(saved: str, configured: str, runs: dict[str, Path],
                                                 tmp_path: Path) -> None:
    path = _write_run(tmp_path / "r", _config(configured), (runs[saved] / "model.zip").read_bytes())
    with pytest.raises(ModelFileError, match=re.escape(
            f"{path}: not the {configured!r} model the run's config builds: ")):
        load_model(path, configured)


@pytest.mark.parametrize(("override", "entry"), [
    ("env_kwargs.n_levels=3", "observation_space"),
    ("env_kwargs.action_type=sized", "action_space"),
    ("policy_kwargs.net_arch=[32]", "policy_kwargs"),
    ("exploration_fraction=0.5", "exploration_schedule"),
    ("learning_rate=0.001", "lr_schedule"),
])
def test_a_config_that_builds_another_model_is_refused(override: str, entry: str, runs: dict[str, Path],
                                                       tmp_path: Path) -> None:
    config = _config("dqn")
    config["hyperparams"] = resolve_hyperparams("dqn", ENV, overrides=[*COMMON, *TINY["dqn"], override])
    path = _write_run(tmp_path / "r", config, (runs["dqn"] / "model.zip").read_bytes())
    with pytest.raises(ModelFileError, match=re.escape(
            f"{path}: not the 'dqn' model the run's config builds: entry {entry!r}: ")):
        load_model(path, "dqn")


def test_an_unexpected_json_entry_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    path = _write_run(tmp_path / "r", _config("ppo"),
                      _rewrite(runs["ppo"] / "model.zip", data=lambda d: {**d, "predict": 1}))
    with pytest.raises(ModelFileError, match=re.escape(
            f"{path}: not the 'ppo' model the run's config builds: unexpected entries ['predict']")):
        load_model(path, "ppo")


def test_a_json_entry_of_the_wrong_kind_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    path = _write_run(tmp_path / "r", _config("ppo"),
                      _rewrite(runs["ppo"] / "model.zip", data=lambda d: {**d, "gamma": "0.99"}))
    with pytest.raises(ModelFileError) as err:
        load_model(path, "ppo")
    assert str(err.value) == (f"{path}: not the 'ppo' model the run's config builds: entry 'gamma' is '0.99', "
                              "expected a number")


def test_weights_of_another_architecture_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    config = _config("dqn")
    config["hyperparams"]["policy_kwargs"] = {"net_arch": [8]}
    env = make_vec_env(ENV, config["hyperparams"], seed=0)
    small = io.BytesIO()
    build_model("dqn", env, config["hyperparams"], seed=0, tensorboard_log=None).save(small)
    with zipfile.ZipFile(small) as archive:
        members = {name: archive.read(name) for name in ("policy.pth", "policy.optimizer.pth")}
    path = _write_run(tmp_path / "r", _config("dqn"), _rewrite(runs["dqn"] / "model.zip", members=members))
    with pytest.raises(ModelFileError, match=re.escape(f"{path}: cannot load it as a 'dqn' model: RuntimeError: ")):
        load_model(path, "dqn")


@pytest.mark.parametrize(("damage", "message"), [
    (lambda raw: raw[: len(raw) // 2], "{}: not an SB3 model file (a readable zip archive): BadZipFile: "),
    (lambda raw: b"not a zip at all", "{}: not an SB3 model file (a readable zip archive): BadZipFile: "),
    (lambda raw: raw.replace(b"PK\x03\x04", b"PK\x03\x05", 1), "{}: not an SB3 model file (a readable zip "),
])
def test_a_damaged_file_is_refused(damage: Callable[[bytes], bytes], message: str, runs: dict[str, Path],
                                   tmp_path: Path) -> None:
    path = _write_run(tmp_path / "r", _config("dqn"), damage((runs["dqn"] / "model.zip").read_bytes()))
    with pytest.raises(ModelFileError, match=re.escape(message.format(path))):
        load_model(path, "dqn")


def test_garbage_entries_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    source = runs["dqn"] / "model.zip"
    path = _write_run(tmp_path / "a", _config("dqn"), _rewrite(source, members={"policy.pth": b"\x00garbage" * 50}))
    with pytest.raises(ModelFileError, match=re.escape(f"{path}: policy.pth is not plain torch weights; ")):
        load_model(path, "dqn")
    path = _write_run(tmp_path / "b", _config("dqn"), _rewrite(source, members={"data": b"{not json"}))
    with pytest.raises(ModelFileError, match=re.escape(f"{path}: its `data` entry is not a JSON object: ")):
        load_model(path, "dqn")
    path = _write_run(tmp_path / "c", _config("dqn"), _rewrite(source, members={"data": b"[1, 2]"}))
    with pytest.raises(ModelFileError, match=re.escape(f"{path}: its `data` entry is not a JSON object: a JSON list")):
        load_model(path, "dqn")
    only_weights = io.BytesIO()
    with zipfile.ZipFile(only_weights, "w") as archive:
        archive.writestr("policy.pth", (runs["dqn"] / "model.zip").read_bytes())
    path = _write_run(tmp_path / "d", _config("dqn"), only_weights.getvalue())
    with pytest.raises(ModelFileError, match=re.escape(safe_load._NO_DATA.format(path))):
        load_model(path, "dqn")
    extra = io.BytesIO(source.read_bytes())
    tensors = io.BytesIO()
    th.save({"weight": th.zeros(2)}, tensors)
    with zipfile.ZipFile(extra, "a") as archive:
        archive.writestr("policy.extra.pth", tensors.getvalue())
    path = _write_run(tmp_path / "e", _config("dqn"), extra.getvalue())
    with pytest.raises(ModelFileError, match=re.escape(
            f"{path}: not the 'dqn' model the run's config builds: weight files ['policy.extra.pth', ")):
        load_model(path, "dqn")


def test_missing_files_and_wrong_arguments(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'none.zip'}: no such model file")):
        load_model(tmp_path / "none.zip", "dqn")
    lonely = tmp_path / "lonely" / "model.zip"
    lonely.parent.mkdir()
    lonely.write_bytes((runs["dqn"] / "model.zip").read_bytes())
    with pytest.raises(FileNotFoundError, match=re.escape(f"{lonely}: no run config found (looked for "
                                                          f"{lonely.parent / 'config.yaml'})")):
        load_model(lonely, "dqn")
    path = runs["dqn"] / "model.zip"
    with pytest.raises(ConfigError, match=re.escape(f"{path}: the run's config trains 'dqn', not 'ppo'")):
        load_model(path, "ppo")
    with pytest.raises(ConfigError, match=re.escape("Expected `algo` to be one of")):
        load_model(path, "sac")
    with pytest.raises(TypeError, match=re.escape("Expected `algo` to be one of")):
        load_model(path, dict)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: expected a run config with run.env and run.algo")):
        load_model(path, "dqn", config={"hyperparams": {}})


def test_the_run_config_of_a_checkpoint_is_two_folders_up(tmp_path: Path) -> None:
    step = tmp_path / "r" / "checkpoints" / "step_000000032"
    step.mkdir(parents=True)
    (tmp_path / "r" / "config.yaml").write_text("run: {}\n")
    assert find_run_config(step / "model.zip") == tmp_path / "r" / "config.yaml"
    assert find_run_config(tmp_path / "r" / "model.zip") == tmp_path / "r" / "config.yaml"


def test_a_class_names_its_algorithm(runs: dict[str, Path], no_unpickling: Callable) -> None:
    """``load_checkpoint`` passes the SB3 class; it loads as the name does."""
    path = runs["janus-dqn"] / "model.zip"
    no_unpickling(path)
    model = load_model(path, algo_class("janus-dqn"))
    assert type(model) is algo_class("janus-dqn")


def test_a_janus_ppo_saved_before_action_masking_loads_as_trained_with_masks(runs: dict[str, Path],
                                                                             tmp_path: Path) -> None:
    """Files from before ``JanusPPO.action_masking`` lack the entry: they were trained over masks and load so;
    a config that asks for a model trained without masks refuses them."""
    def drop(d: dict) -> dict:
        return {k: v for k, v in d.items() if k != "action_masking"}

    old = _rewrite(runs["janus-ppo"] / "model.zip", data=drop)
    model = load_model(_write_run(tmp_path / "old", _config("janus-ppo"), old), "janus-ppo")
    assert model.action_masking is True
    config = _config("janus-ppo")
    config["hyperparams"]["action_masking"] = False
    path = _write_run(tmp_path / "free", config, old)
    with pytest.raises(ModelFileError, match=re.escape("missing entries ['action_masking']")):
        load_model(path, "janus-ppo")
