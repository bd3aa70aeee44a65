"""agents.app.checkpoint: pickle-free state files, exact buffer and RNG round trips, a write sequence a kill cannot
break (a kill injected at every phase), fallback to the newest intact checkpoint, sweeping and pruning.

The kill test runs a small JanusDQN on CartPole (prioritized buffer, IS-weighted updates): fast, and its env can be
deep-copied, so a resumed run can be compared with the uninterrupted one *with the same env state* — the one thing a
checkpoint does not hold (``agents.app.checkpoint``, "What resumes exactly"). The CLI's janus-dqn runs are tested in
``test_resume.py``.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import random
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from agents import JanusDQN
from agents.app import checkpoint as ckpt
from agents.app.checkpoint import (
    CheckpointError,
    CheckpointWarning,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    recover_checkpoints,
    resume_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from agents.app.state_files import (
    load_replay_buffer_state,
    read_state_npz,
    replay_buffer_state,
    restore_rng,
    rng_state,
    write_state_npz,
)
from replay import PrioritizedDictReplayBuffer, PrioritizedReplayBuffer, SumTree
from tests.conftest import bitwise_diff


@pytest.fixture(autouse=True)
def _own_model_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests' ``model.zip`` files are their own, of an algorithm the CLI does not train (JanusDQN on CartPole,
    no run config): they are read with SB3's own ``load``. Reading a ``model.zip`` from elsewhere safely is
    ``agents.app.safe_load``'s part (its tests); ``test_resume.py`` resumes the CLI's runs through it."""
    monkeypatch.setattr(ckpt, "load_model", lambda path, algo, *, env=None, device="cpu":
                        algo.load(path, env=env, device=device))


class _Payload:
    """Unpickling it writes a marker file: proof that a loader ran code from a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "code ran"))


# --------------------------------------------------------------------------- state files


def test_state_file_round_trip_is_exact(tmp_path: Path) -> None:
    state = {
        "f32": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
        "i64": np.arange(-5, 5, dtype=np.int64), "bool": np.array([True, False]), "zero_d": np.array(2.5),
        "empty": np.zeros((0, 3), dtype=np.float16), "obs": {"prices": np.ones((2, 5), dtype=np.float32)},
        "big_int": 2**127 + 12345, "floats": [0.1, float("nan"), float("inf"), -0.0, 1e-310], "none": None,
        "text": "ünïcode", "np_scalar": np.float64(0.3), "pcg64": np.random.default_rng(7).bit_generator.state,
        "nested": [{"a": np.array([1, 2], dtype=np.uint8)}, (1, 2)],
    }
    write_state_npz(tmp_path / "s.npz", state)
    back = read_state_npz(tmp_path / "s.npz")
    expected = {**state, "np_scalar": 0.3, "nested": [{"a": state["nested"][0]["a"]}, [1, 2]]}
    assert bitwise_diff(back, expected) == []
    assert str(back["floats"][2]) == "inf" and str(back["floats"][3]) == "-0.0"
    assert back["f32"].tobytes() == state["f32"].tobytes()


@pytest.mark.parametrize(("value", "what"), [
    (np.array([object()], dtype=object), "an object array (object)"),
    ({1: 2}, "the key 1"),
    (Path("x"), f"a {type(Path('x')).__name__}"),
])
def test_state_file_refuses_what_needs_pickle(tmp_path: Path, value: Any, what: str) -> None:
    message = f"Cannot store state['x'] in a checkpoint state file: {what} (arrays, numbers, strings, None, lists, dicts)"
    with pytest.raises(TypeError, match=re.escape(message)):
        write_state_npz(tmp_path / "s.npz", {"x": value})


@pytest.mark.parametrize(("name", "reason"), [
    ("object.npz", "it holds pickled data, which is never loaded: unpickling runs code from the file"),
    ("pickle.npz", "it holds pickled data, which is never loaded: unpickling runs code from the file"),
    ("foreign.npz", "no __state__ member"),
])
def test_state_file_never_unpickles(tmp_path: Path, name: str, reason: str) -> None:
    marker = tmp_path / "marker"
    if name == "object.npz":  # an .npz whose member is a pickled object array (numpy writes one when allowed to)
        np.savez(tmp_path / name, __state__=np.frombuffer(b"{}", dtype=np.uint8),
                 a0=np.array([_Payload(marker)], dtype=object))
    elif name == "pickle.npz":  # a plain pickle named .npz
        (tmp_path / name).write_bytes(pickle.dumps(_Payload(marker)))
    else:  # an .npz that is not a state file
        np.savez(tmp_path / name, x=np.zeros(2))
    with pytest.raises(CheckpointError, match=re.escape(f"{tmp_path / name}: not a checkpoint state file")) as err:
        read_state_npz(tmp_path / name)
    assert reason in str(err.value)
    assert not marker.exists()


# --------------------------------------------------------------------------- replay buffers


def _fill(buffer: Any, rng: np.random.Generator, n: int, *, sat: bool) -> None:
    space = buffer.observation_space
    for _ in range(n):
        if isinstance(space, spaces.Dict):
            obs = {k: rng.standard_normal((buffer.n_envs, *s.shape)).astype(s.dtype) for k, s in space.spaces.items()}
            nxt = {k: rng.standard_normal((buffer.n_envs, *s.shape)).astype(s.dtype) for k, s in space.spaces.items()}
        else:
            obs = rng.standard_normal((buffer.n_envs, *space.shape)).astype(space.dtype)
            nxt = rng.standard_normal((buffer.n_envs, *space.shape)).astype(space.dtype)
        infos = [{"ltn": {"violation": float(rng.uniform()), **({"action_sat": rng.uniform(size=3).tolist()}
                                                                 if sat else {})}} for _ in range(buffer.n_envs)]
        buffer.add(obs, nxt, rng.integers(0, 3, size=(buffer.n_envs, 1)), rng.standard_normal(buffer.n_envs),
                   rng.uniform(size=buffer.n_envs) < 0.1, infos)
    if hasattr(buffer, "update_priorities"):
        for _ in range(5):
            samples = buffer.sample(8)
            buffer.update_priorities(samples.indices, rng.standard_normal(8))
        buffer.boost_priorities([0, 3], 0.5)
        buffer.set_progress(0.25)


BOX = spaces.Box(-1, 1, (4,), np.float32)
DICT = spaces.Dict({"prices": spaces.Box(-1, 1, (5,), np.float32), "book": spaces.Box(-1, 1, (2, 4), np.float32)})


@pytest.mark.parametrize(("cls", "space"), [
    (ReplayBuffer, BOX), (DictReplayBuffer, DICT), (PrioritizedReplayBuffer, BOX), (PrioritizedDictReplayBuffer, DICT),
])
@pytest.mark.parametrize("n_added", [7, 31])  # partly filled; wrapped around (capacity 12 per env)
def test_replay_buffer_round_trip_is_exact(tmp_path: Path, cls: type, space: spaces.Space, n_added: int) -> None:
    kwargs = {"seed": 3} if cls.__name__.startswith("Prioritized") else {}

    def make() -> Any:
        return cls(24, space, spaces.Discrete(3), device="cpu", n_envs=2, **kwargs)

    buffer = make()
    _fill(buffer, np.random.default_rng(n_added), n_added, sat=True)
    write_state_npz(tmp_path / "b.npz", replay_buffer_state(buffer))
    fresh = make()
    load_replay_buffer_state(fresh, read_state_npz(tmp_path / "b.npz"))
    saved, restored = replay_buffer_state(buffer), replay_buffer_state(fresh)
    assert bitwise_diff(restored, saved) == []  # every array byte for byte, every counter, the generator state
    assert fresh.pos == n_added % 12 and fresh.full == (n_added >= 12)
    if "prioritized" in saved:
        assert saved["prioritized"]["action_sat"] is not None and fresh.tree.total == buffer.tree.total
    # identical next samples (the plain SB3 buffers draw from the global numpy generator)
    for _ in range(3):
        np.random.seed(11)  # noqa: NPY002 - SB3's ReplayBuffer.sample uses it
        a = buffer.sample(6)
        np.random.seed(11)  # noqa: NPY002
        b = fresh.sample(6)
        assert bitwise_diff([x for x in a if x is not None and not isinstance(x, dict)],
                     [x for x in b if x is not None and not isinstance(x, dict)]) == []
        if isinstance(a.observations, dict):
            assert bitwise_diff(dict(a.observations), dict(b.observations)) == []


def _per_state(tmp_path: Path) -> tuple[Callable[[], PrioritizedReplayBuffer], dict[str, Any]]:
    def make() -> PrioritizedReplayBuffer:
        return PrioritizedReplayBuffer(16, BOX, spaces.Discrete(3), device="cpu", seed=0)

    buffer = make()
    _fill(buffer, np.random.default_rng(0), 10, sat=True)
    write_state_npz(tmp_path / "b.npz", replay_buffer_state(buffer))
    return make, read_state_npz(tmp_path / "b.npz")


def _tamper(state: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(state)
    node = out
    keys = path.split("/")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value(node[keys[-1]]) if callable(value) else value
    return out


def _bump_internal_node(tree: np.ndarray) -> np.ndarray:
    tree = tree.copy()
    tree[1, 0] += 1.0
    return tree


@pytest.mark.parametrize(("path", "value", "message"), [
    ("class", "ReplayBuffer", "expected class 'PrioritizedReplayBuffer'"),
    ("observations", lambda a: a.astype(np.float64), "Expected `observations` to be a float32 array of shape"),
    ("actions", lambda a: a[:-1], "Expected `actions` to be a int64 array"),
    ("pos", 16, "Expected `pos` to be an int in [0, 15], got 16"),
    ("full", 1, "Expected `full` to be a bool, got 1"),
    ("prioritized/settings/alpha", 0.7, "saved with alpha = 0.7, this buffer has 0.6"),
    ("prioritized/priorities", lambda p: -p, "expected `priorities` to be finite and >= 0"),
    ("prioritized/priorities", lambda p: p * 2.0, "a tree whose leaves are the priorities raised to alpha"),
    ("prioritized/tree/tree", _bump_internal_node, "an internal node differs"),
    ("prioritized/violations", lambda v: v + 2.0, "expected `violations` to be in [0, 1]"),
    ("prioritized/rng", {"bit_generator": "MT19937"}, "Expected `rng` to be a PCG64/PCG64DXSM state"),
    ("prioritized/n_sample_calls", -1, "expected `n_sample_calls` to be an int in [0, inf)"),
])
def test_replay_buffer_state_is_checked(tmp_path: Path, path: str, value: Any, message: str) -> None:
    make, state = _per_state(tmp_path)
    fresh = make()
    with pytest.raises((ValueError, TypeError)) as err:
        load_replay_buffer_state(fresh, _tamper(state, path, value))
    assert message in str(err.value)


def test_sumtree_state_round_trip_and_checks() -> None:
    tree = SumTree(5, rebuild_every=100)
    tree.update([0, 2, 4], [1.0, 0.0, 3.5])
    fresh = SumTree(5, rebuild_every=100)
    fresh.load_state_dict(tree.state_dict())
    assert bitwise_diff(fresh.state_dict(), tree.state_dict()) == []
    assert np.array_equal(fresh.sample(4, np.random.default_rng(0))[0], tree.sample(4, np.random.default_rng(0))[0])
    bad = tree.state_dict()
    bad["tree"][8 + 1, 1] = 0.5  # leaf 1 (priority 0) claims a minimum of 0.5
    with pytest.raises(ValueError, match="a leaf's min or max differs from its priority"):
        fresh.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"Expected a SumTree state with capacity = 6, got 5"):
        SumTree(6).load_state_dict(tree.state_dict())


def _callbacks() -> dict[str, Any]:
    from agents import BasalGangliaCallback, Cerebellum, CerebellumCallback
    from replay import SleepPhaseCallback

    return {"cerebellum": CerebellumCallback(Cerebellum(2, 1, hidden=(4,)), buffer_size=8),
            "basal_ganglia": BasalGangliaCallback(buffer_size=8), "sleep": SleepPhaseCallback(every_n_steps=10)}


@pytest.mark.parametrize(("name", "path", "value", "message"), [
    ("cerebellum", "book", lambda a: a[:4], "Expected `book` to be a float32 array of shape (8, 2, 4), got 'float32 "
                                            "array of shape (4, 2, 4)'"),
    ("cerebellum", "pos", 8, "Expected `pos` to be an int in [0, 7], got 8"),
    ("cerebellum", "rng", {"bit_generator": "PCG64", "state": {"state": "x"}}, "Expected `rng` to be a valid PCG64"),
    ("basal_ganglia", "obs", np.zeros((9, 3), dtype=np.float32), "Expected `obs` to be a float32 array of shape (8, 3)"),
    ("basal_ganglia", "rewards/count", -1, "Expected `rewards.count` to be an int >= 0, got -1"),
    ("sleep", "last_step_trigger", 1.5, "Expected `last_step_trigger` to be an int >= 0, got 1.5"),
    ("sleep", "last_metrics", {"sleep/replays": "many"}, "Expected `last_metrics['sleep/replays']` to be a number"),
])
def test_callback_states_round_trip_and_are_checked(tmp_path: Path, name: str, path: str, value: Any,
                                                    message: str) -> None:
    callback = _callbacks()[name]
    state = callback.state_dict()
    write_state_npz(tmp_path / "c.npz", state)
    fresh = _callbacks()[name]
    fresh.load_state_dict(read_state_npz(tmp_path / "c.npz"))
    assert bitwise_diff(fresh.state_dict(), state) == []
    with pytest.raises((TypeError, ValueError)) as err:
        fresh.load_state_dict(_tamper(state, path, value))
    assert message in str(err.value)


# --------------------------------------------------------------------------- RNG states


def test_rng_state_round_trip_through_json() -> None:
    state = json.loads(json.dumps(rng_state()))
    first = (random.random(), np.random.random(3), torch.rand(3))  # noqa: NPY002
    random.random(), np.random.random(), torch.rand(5)  # move on  # noqa: NPY002
    restore_rng(state)
    again = (random.random(), np.random.random(3), torch.rand(3))  # noqa: NPY002
    assert first[0] == again[0] and first[1].tobytes() == again[1].tobytes() and torch.equal(first[2], again[2])


@pytest.mark.parametrize(("path", "value", "message"), [
    ("numpy/pos", 10**6, "NumPy MT19937 position"),  # numpy would read key[pos] out of bounds
    ("python/internal", [0] * 3, "Python random state"),
    ("torch", [0] * 7, "torch CPU generator state"),
    ("python/gauss", "x", "gauss_next"),
])
def test_rng_state_is_checked_before_anything_is_set(path: str, value: Any, message: str) -> None:
    state = rng_state()
    before = random.getstate()
    with pytest.raises(CheckpointError, match=message):
        restore_rng(_tamper(state, path, value))
    assert random.getstate() == before


# --------------------------------------------------------------------------- a small run: JanusDQN on CartPole


N1, N2, N3 = 64, 128, 192
TINY = {"learning_starts": 16, "buffer_size": 400, "batch_size": 16, "train_freq": 4, "target_update_interval": 32,
        "policy_kwargs": {"net_arch": [8]}, "learning_rate": 1e-3, "exploration_fraction": 0.5}


def _env() -> DummyVecEnv:
    env = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    env.seed(0)
    return env


def _model(env: DummyVecEnv) -> JanusDQN:
    return JanusDQN("MlpPolicy", env, seed=0, device="cpu", **TINY)


class _Counter:
    """A stateful component, saved in ``callbacks.npz``."""

    def __init__(self) -> None:
        self.calls = np.zeros(3, dtype=np.int64)

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls = state["calls"].copy()


class _Snapshot(BaseCallback):
    """Keeps, at each rollout boundary in ``steps``, a copy of the env and the last observation, then checkpoints."""

    def __init__(self, run_dir: Path, steps: tuple[int, ...]) -> None:
        super().__init__()
        self.run_dir, self.steps, self.envs = run_dir, steps, {}

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        n = self.model.num_timesteps
        if n in self.steps:
            self.envs[n] = (copy.deepcopy(self.model.env), copy.deepcopy(self.model._last_obs))
            save_checkpoint(self.run_dir, self.model, callback_states={"counter": {"calls": np.full(3, n)}})


def _params(model: Any) -> dict[str, Any]:
    return {"policy": {k: v.clone() for k, v in model.policy.state_dict().items()},
            "optimizer": copy.deepcopy(model.policy.optimizer.state_dict()),
            "buffer": copy.deepcopy(replay_buffer_state(model.replay_buffer))}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run to N3 that checkpoints at N1 and N2 (keeping its env there) and its final state."""
    run_dir = tmp_path_factory.mktemp("run")
    model = _model(_env())
    snapshot = _Snapshot(run_dir, (N1, N2))
    model.learn(N3, callback=snapshot)
    return {"run_dir": run_dir, "envs": snapshot.envs, "final": _params(model)}


def _resume_to_end(folder: Path, envs: dict[int, Any]) -> tuple[int, dict[str, Any]]:
    """Load ``folder``, put back the env of that step, train to N3: the final state."""
    loaded = load_checkpoint(folder, JanusDQN, _env())
    model = loaded.model
    env, last_obs = envs[model.num_timesteps]
    model.set_env(copy.deepcopy(env))
    model._last_obs = copy.deepcopy(last_obs)
    restore_rng(loaded.rng, model)
    step = int(model.num_timesteps)
    model.learn(N3 - step, reset_num_timesteps=False)
    return step, _params(model)


def test_resumed_run_equals_the_uninterrupted_one(uninterrupted: dict[str, Any]) -> None:
    """Given the env state back, a run resumed from either checkpoint ends bit-identical to the uninterrupted run:
    the checkpoint holds everything else the learner holds (weights, optimizer, buffer, priorities, RNGs)."""
    root = uninterrupted["run_dir"] / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000000064", "step_000000128"]
    for step in (N1, N2):
        resumed_at, final = _resume_to_end(root / ckpt.step_folder(step), uninterrupted["envs"])
        assert resumed_at == step
        assert bitwise_diff(final, uninterrupted["final"]) == []
    # not vacuous: training after N2 changed the weights
    early = load_checkpoint(root / ckpt.step_folder(N2), JanusDQN, _env()).model
    assert bitwise_diff(_params(early)["policy"], uninterrupted["final"]["policy"])


def test_checkpoint_at_n_holds_n_transitions(uninterrupted: dict[str, Any]) -> None:
    for step in (N1, N2):
        state = read_state_npz(uninterrupted["run_dir"] / "checkpoints" / ckpt.step_folder(step) / "replay_buffer.npz")
        assert state["pos"] == step and not state["full"]
        assert np.count_nonzero(state["prioritized"]["priorities"]) == step


FILES = ("callbacks.npz", "model.zip", "replay_buffer.npz", "rng.json", "meta.json", ".latest*")  # fsynced files


class _Killed(BaseException):
    """What the injected fault raises after photographing the disk (a kill leaves the disk as it was)."""


@pytest.fixture
def kill_at(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, int, Path], dict[str, Any]]:
    """``kill_at(root, k, shots)`` arms a fault at the k-th file-system step of a checkpoint write.

    Steps are the calls of ``os.fsync``, ``os.replace`` and ``shutil.rmtree`` (every write is followed by an fsync
    before anything depends on it). At the k-th one the fault copies ``root`` to ``shots/k`` — the disk as a kill at
    that moment leaves it — and, at an fsync of a file, also to ``shots/k-torn`` with that file cut to half (a torn
    write or a power loss before the fsync), then raises. Returns a dict whose ``"count"`` is the number of steps.
    """
    info: dict[str, Any] = {"count": 0, "fired": False}
    real = {"fsync": os.fsync, "replace": os.replace, "rmtree": shutil.rmtree}

    def arm(root: Path, k: int, shots: Path) -> dict[str, Any]:
        info.update(count=0, fired=False, root=root, k=k, shots=shots, steps=[])
        return info

    def step(kind: str, target: Any) -> None:
        if info["fired"] or "k" not in info:
            return
        info["count"] += 1
        info["steps"].append(f"{kind} {target.name}")
        if info["count"] != info["k"]:
            return
        info["fired"] = True
        shot = info["shots"] / f"{info['k']}"
        real_copy(info["root"], shot)
        if kind == "fsync" and isinstance(target, Path) and target.is_file():
            torn = info["shots"] / f"{info['k']}-torn"
            real_copy(info["root"], torn)
            victim = torn / target.relative_to(info["root"])
            victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        raise _Killed(f"killed at step {info['k']} ({kind} {target})")

    def real_copy(src: Path, dst: Path) -> None:
        shutil.copytree(src, dst, symlinks=True)

    def fsync(fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}")) if os.path.exists(f"/proc/self/fd/{fd}") else None
        step("fsync", path)
        real["fsync"](fd)

    def replace(src: Any, dst: Any, **kwargs: Any) -> None:
        step("replace", Path(dst))
        real["replace"](src, dst, **kwargs)

    def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
        if not kwargs.get("ignore_errors"):  # the error cleanup of save_checkpoint runs after the kill
            step("rmtree", Path(path))
        real["rmtree"](path, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    return arm


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names fsynced files through /proc/self/fd")
@pytest.mark.parametrize("existing", [False, True], ids=["new-step", "same-step-again"])
def test_kill_at_every_phase_of_a_checkpoint_write(tmp_path: Path, uninterrupted: dict[str, Any], kill_at: Any,
                                                   existing: bool) -> None:
    """The N2 checkpoint is written again with a kill injected at each file-system step in turn (``existing``: over an
    intact ``step_N2``, as train.py's final save does). After each kill: the sweep leaves no temporary entry, the run
    resumes from N2 if the new folder was renamed in (or from the old N2, or N1 before that), the checkpoint it
    resumes from equals the one saved, and training on to N3 ends bit-identical to the uninterrupted run."""
    source = uninterrupted["run_dir"] / "checkpoints"
    n2 = load_checkpoint(source / ckpt.step_folder(N2), JanusDQN, _env())
    base = tmp_path / "base"
    shutil.copytree(source, base / "checkpoints")
    if not existing:
        shutil.rmtree(base / "checkpoints" / ckpt.step_folder(N2))
        (base / "checkpoints" / "latest").write_text(ckpt.step_folder(N1))
    states = {"counter": {"calls": np.full(3, N2)}}
    finals: dict[int, dict[str, Any]] = {}
    outcomes = []
    k = 0
    while True:
        k += 1
        run_dir = tmp_path / f"write{k}"
        shutil.copytree(base, run_dir)
        shots = tmp_path / f"shots{k}"
        shots.mkdir()
        info = kill_at(run_dir / "checkpoints", k, shots)
        restore_rng(n2.rng, n2.model)  # the N2 generator states, as the first write had them
        try:
            save_checkpoint(run_dir, n2.model, callback_states=states, keep=1)
        except _Killed:
            pass
        if not info["fired"]:
            break
        for shot in sorted(shots.iterdir()):
            killed = tmp_path / f"resume-{shot.name}"
            shutil.copytree(shot, killed / "checkpoints")
            recover_checkpoints(killed)
            left = sorted(p.name for p in (killed / "checkpoints").iterdir())
            assert not [name for name in left if name.startswith(".")], (shot.name, left)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CheckpointWarning)  # a `latest` naming a missing folder
                folder = latest_checkpoint(killed)
            step, final = _resume_to_end(folder, uninterrupted["envs"])
            assert bitwise_diff(final, uninterrupted["final"]) == [], shot.name
            finals[step] = final
            outcomes.append((shot.name, step))
    # the write sequence (the last write ran to the end): each step was a kill point
    sequence = [re.sub(r"_[a-z0-9_]{8}$|\.[a-z0-9_]{8}\.tmp$", "*", name) for name in info["steps"]]
    renames = ["replace .tmp_old_step_000000128*", "replace step_000000128", "fsync checkpoints",
               "rmtree .tmp_old_step_000000128*"] if existing else ["replace step_000000128", "fsync checkpoints"]
    assert sequence == [
        "fsync callbacks.npz", "fsync model.zip", "fsync replay_buffer.npz", "fsync rng.json", "fsync meta.json",
        "fsync .tmp_new_step_000000128*", *renames,
        "fsync .latest*", "replace latest", "fsync checkpoints",
        "replace .tmp_del_step_000000064", "rmtree .tmp_del_step_000000064", "fsync checkpoints",
    ], sequence
    assert k - 1 == len(sequence)
    # the run resumes from the new N2 once its manifest is durable, before that from N1 (or the old N2)
    durable = sequence.index("fsync meta.json") + 1
    expected = [(f"{i}{torn}", N2 if existing or i > durable or (i == durable and not torn) else N1)
                for i in range(1, k) for torn in ("", "-torn") if not torn or sequence[i - 1].split()[1] in FILES]
    assert outcomes == expected
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["latest", "step_000000128"]  # keep=1 pruned N1


# --------------------------------------------------------------------------- verify, fall back, sweep, prune


@pytest.fixture
def three_checkpoints(tmp_path: Path, uninterrupted: dict[str, Any]) -> Path:
    """A run folder with checkpoints at N1, N2 and N3 (N3: the N2 model saved again under another step)."""
    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted["run_dir"] / "checkpoints", run_dir / "checkpoints")
    model = load_checkpoint(run_dir / "checkpoints" / ckpt.step_folder(N2), JanusDQN, _env()).model
    model.num_timesteps = N3
    save_checkpoint(run_dir, model, callback_states={"counter": {"calls": np.full(3, N3)}})
    return run_dir


def test_layout_of_a_checkpoint(three_checkpoints: Path) -> None:
    folder = three_checkpoints / "checkpoints" / ckpt.step_folder(N3)
    assert sorted(p.name for p in folder.iterdir()) == ["callbacks.npz", "meta.json", "model.zip",
                                                       "replay_buffer.npz", "rng.json"]
    meta = verify_checkpoint(folder)
    assert meta["format"] == 2 and meta["num_timesteps"] == N3
    assert sorted(meta["files"]) == ["callbacks.npz", "model.zip", "replay_buffer.npz", "rng.json"]
    assert (three_checkpoints / "checkpoints" / "latest").read_text() == ckpt.step_folder(N3)
    assert not list(folder.glob("*.pkl"))


@pytest.mark.parametrize("damage", ["flip-byte", "truncate", "delete-file", "no-meta", "torn-meta"])
def test_resume_falls_back_to_the_newest_intact_checkpoint(three_checkpoints: Path, damage: str) -> None:
    newest = three_checkpoints / "checkpoints" / ckpt.step_folder(N3)
    target = newest / "replay_buffer.npz"
    if damage == "flip-byte":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 1
        target.write_bytes(bytes(data))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "delete-file":
        target.unlink()
    elif damage == "no-meta":
        (newest / "meta.json").unlink()
    else:
        (newest / "meta.json").write_text((newest / "meta.json").read_text()[:40])
    with pytest.warns(CheckpointWarning, match=rf"skipping checkpoint {newest}: .*incomplete or damaged"):
        folder, loaded = resume_checkpoint(three_checkpoints, lambda f: load_checkpoint(f, JanusDQN, _env()))
    assert folder.name == ckpt.step_folder(N2) and loaded.model.num_timesteps == N2
    assert (three_checkpoints / "checkpoints" / "latest").read_text() == ckpt.step_folder(N2)  # repaired


def test_latest_naming_nothing_is_not_fatal(three_checkpoints: Path) -> None:
    root = three_checkpoints / "checkpoints"
    shutil.rmtree(root / ckpt.step_folder(N3))  # latest names it
    with pytest.warns(CheckpointWarning, match=r"latest names 'step_000000192'; resuming from the newest intact "
                                               r"checkpoint, step_000000128 \(which it names now\)"):
        folder, _ = resume_checkpoint(three_checkpoints, lambda f: None)
    assert folder.name == ckpt.step_folder(N2)
    assert (root / "latest").read_text() == ckpt.step_folder(N2)


def test_no_intact_checkpoint_lists_each_one(three_checkpoints: Path) -> None:
    for folder in (three_checkpoints / "checkpoints").glob("step_*"):
        (folder / "rng.json").write_text("{}")
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointError) as err:
        resume_checkpoint(three_checkpoints, lambda f: load_checkpoint(f, JanusDQN, _env()))
    assert str(err.value).startswith(f"No intact checkpoint in {three_checkpoints}: step_000000192: ")
    assert "step_000000128: " in str(err.value) and "step_000000064: " in str(err.value)


def test_no_checkpoint_at_all(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"No checkpoint in {tmp_path}"):
        resume_checkpoint(tmp_path, lambda f: None)


def test_pickle_checkpoints_are_refused_unopened(tmp_path: Path, three_checkpoints: Path) -> None:
    """A checkpoint of the old format (or a planted file) is refused by name; its pickles never run."""
    marker = tmp_path / "marker"
    for folder in (three_checkpoints / "checkpoints").glob("step_*"):
        (folder / "rng.pkl").write_bytes(pickle.dumps(_Payload(marker)))
        (folder / "replay_buffer.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.warns(CheckpointWarning), pytest.raises(CheckpointError) as err:
        resume_checkpoint(three_checkpoints, lambda f: load_checkpoint(f, JanusDQN, _env()))
    newest = three_checkpoints / "checkpoints" / ckpt.step_folder(N3)
    assert f"{newest / 'replay_buffer.pkl'} is a pickle file" in str(err.value)
    assert "checkpoints are never unpickled" in str(err.value)
    assert not marker.exists()


def test_a_payload_in_every_file_kind_never_runs(tmp_path: Path, three_checkpoints: Path) -> None:
    """Pickled payloads in place of each file, with a manifest that matches them (an attacker can write one): the
    load fails with an error naming the file, and no payload runs. (``model.zip``: agents.app.safe_load's tests.)"""
    marker = tmp_path / "marker"
    folder = three_checkpoints / "checkpoints" / ckpt.step_folder(N3)
    for name in ("replay_buffer.npz", "callbacks.npz", "rng.json"):
        planted = tmp_path / f"planted-{name}"
        shutil.copytree(three_checkpoints, planted)
        victim = planted / "checkpoints" / ckpt.step_folder(N3)
        (victim / name).write_bytes(pickle.dumps(_Payload(marker)))
        meta = json.loads((victim / "meta.json").read_text())
        meta["files"][name] = ckpt._describe(victim / name)  # noqa: SLF001 - an attacker recomputes the digest
        (victim / "meta.json").write_text(json.dumps(meta))
        with pytest.raises(CheckpointError, match=re.escape(str(victim / name))):
            load_checkpoint(victim, JanusDQN, _env())
    assert folder.is_dir() and not marker.exists()


def test_resaving_a_step_replaces_it_and_leaves_nothing_behind(three_checkpoints: Path) -> None:
    root = three_checkpoints / "checkpoints"
    before = verify_checkpoint(root / ckpt.step_folder(N3))
    model = load_checkpoint(root / ckpt.step_folder(N3), JanusDQN, _env()).model
    model.replay_buffer.rewards[0, 0] += 1.0  # a different state at the same step
    save_checkpoint(three_checkpoints, model, callback_states={"counter": {"calls": np.full(3, N3)}})
    after = verify_checkpoint(root / ckpt.step_folder(N3))
    assert after["files"]["replay_buffer.npz"]["sha256"] != before["files"]["replay_buffer.npz"]["sha256"]
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000000064", "step_000000128", "step_000000192"]


def test_prune_keeps_the_newest_k(three_checkpoints: Path) -> None:
    root = three_checkpoints / "checkpoints"
    assert prune_checkpoints(three_checkpoints, 3) == []
    assert prune_checkpoints(three_checkpoints, 2) == [ckpt.step_folder(N1)]
    (root / "latest").write_text(ckpt.step_folder(N2))  # latest names an older folder: it and newer ones stay
    assert prune_checkpoints(three_checkpoints, 1) == []
    (root / "latest").write_text(ckpt.step_folder(N3))
    assert prune_checkpoints(three_checkpoints, 1) == [ckpt.step_folder(N2)]
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000000192"]
    with pytest.raises(ValueError, match=r"Expected `keep` to be an int >= 1, got 0"):
        prune_checkpoints(three_checkpoints, 0)


def test_recover_finishes_or_removes_what_a_killed_save_left(three_checkpoints: Path) -> None:
    root = three_checkpoints / "checkpoints"
    # a complete new copy of step N3 whose folder is gone (killed between the two renames of a re-save), the old
    # copy renamed aside, an incomplete copy of N1 and a temporary `latest`
    os.replace(root / ckpt.step_folder(N3), root / ".tmp_new_step_000000192_abc")
    shutil.copytree(root / ".tmp_new_step_000000192_abc", root / ".tmp_old_step_000000192_abc")
    shutil.copytree(root / ckpt.step_folder(N1), root / ".tmp_new_step_000000064_def")
    (root / ".tmp_new_step_000000064_def" / "meta.json").unlink()
    (root / ".latest.x1.tmp").write_text("step_000000064")
    done = recover_checkpoints(three_checkpoints)
    assert sorted(done) == ["removed .latest.x1.tmp", "removed .tmp_new_step_000000064_def",
                            "removed .tmp_old_step_000000192_abc",
                            "restored step_000000192 from .tmp_new_step_000000192_abc"]
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_000000064", "step_000000128", "step_000000192"]
    assert verify_checkpoint(root / ckpt.step_folder(N3))["num_timesteps"] == N3
    assert recover_checkpoints(three_checkpoints) == []
