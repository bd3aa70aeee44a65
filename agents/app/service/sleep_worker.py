"""A sleep job, in its own process: ``python -m agents.app.service.sleep_worker STORE JOB_ID``.

The decision service starts one per job (:mod:`~agents.app.service.sleep`) and never waits on it; the job's
state, progress and result go to the store's ``jobs`` table (:mod:`~agents.app.service.versions`). Steps:

1. **load** the job's base version (the one served when it was queued) with the safe loader
   (:func:`agents.app.safe_load.load_model`) and the run's config;
2. **replay buffer**: the ``max_transitions`` most recent recorded transitions
   (:mod:`~agents.app.service.experience`) are added, oldest first, to a fresh buffer of the model's own class and
   settings (``JanusDQN``: :class:`replay.PrioritizedDictReplayBuffer`, priority
   ``λ_logic·v + λ_reward·|r| + ε`` from the shield's violation and the reward, per-action SatAgg kept);
3. **sleep**: one :func:`replay.run_sleep_cycle` on the model and that buffer with
   ``SleepConfig(swr_only=True, seed=<job seed>)`` and the job's ``cycle`` overrides — SWR replay (phase 1):
   ``n_sequences`` prioritized sequences replayed forward and reversed, compressed, with IS-weighted TD
   updates through the model's optimizer (:mod:`replay.swr`). Phases 2–4 (schemas, UMAP, vector store) run
   with ``cycle.swr_only = false``, but what they build is not part of ``model.zip``: a served model only
   changes through phase 1. A cycle that skips phase 1 fails the job with the reason;
4. **write** the new version into ``<store>/models/.tmp-<job>/`` (``model.zip``, the run's ``config.yaml``,
   ``sleep.json`` with the cycle's metrics); its name is ``<run>-w<digest>``, the digest of its weights (:func:`weights_digest`);
5. **validate**: the written file is loaded back with the safe loader; :func:`agents.export.export_onnx`
   exports it (and checks the graph against torch) into ``policy.onnx``; then the candidate and the base
   version play the same ``episodes`` seeded episodes (seeds ``seed..seed+episodes−1``) of the run's env in
   its glass box (shield, breakers, sizing and the run's memory as served;
   :func:`agents.app.evaluation.run_episode`). The candidate is accepted when
   ``mean return(candidate) ≥ mean return(base) − tolerance`` (returns ``E_T/E_0 − 1``); otherwise the job is
   ``rejected`` with both means in its reason and the folder removed;
6. **publish**: the folder is renamed to ``<store>/models/<version>/`` (one ``rename``), the version recorded,
   the job ``validated``. The service then loads it and swaps it in for new decisions.

On a Ray cluster (``serve.py --ray-address``; :mod:`~agents.app.service.ray_jobs`) the same :func:`main` runs
in a Ray task: :func:`ship_job` packs what the job reads, :func:`run_shipped_job` rebuilds it as a private store
in a temporary folder of the Ray worker and runs :func:`main` there, and :func:`land_job` writes the outcome (the
job's fields, a validated version's folder and row) into the service's store.

Same seed, same job: the buffer's sampler, the SWR generator and the evaluation episodes are all seeded; torch
runs on one thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from agents.app.service.experience import read_transitions
from agents.app.service.store import MODELS_DIR, ServiceStore
from agents.app.service.versions import add_version, job, update_job, version

_SKIPPED = "the sleep cycle skipped SWR replay ({}); the model did not change"
_UNCHANGED = "the sleep cycle left the weights unchanged (the same weights digest as the base version)"
_REJECTED = ("validation rejected the candidate: its mean episode return {:.6g} is below the current version's "
             "{:.6g} minus the tolerance {:g} (over {} seeded episode(s) from seed {})")
_TOO_FEW = "the store holds {} recorded transitions; the sleep cycle needs at least seq_len = {}"


def _progress(store: ServiceStore, job_id: str, progress: float, stage: str) -> None:
    update_job(store, job_id, ("running",), progress=progress, stage=stage)


def weights_digest(model: Any) -> str:
    """The first 12 hex digits of SHA-256 over the policy's parameters and buffers (names, dtypes, shapes,
    values, in ``state_dict`` order): the same weights give the same digest (``model.zip`` itself carries its
    write time)."""
    h = hashlib.sha256()
    for name, tensor in model.policy.state_dict().items():
        array = tensor.detach().cpu().numpy()
        h.update(f"{name}|{array.dtype}|{array.shape}|".encode())
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:12]


def _buffer(model: Any, data: Any, seed: int) -> Any:
    """A fresh buffer of the model's class and settings holding ``data`` (oldest first), sampling with ``seed``."""
    n = int(data.actions.shape[0])
    buffer = model.replay_buffer_class(n, model.observation_space, model.action_space, device="cpu", n_envs=1,
                                       **{**dict(model.replay_buffer_kwargs), "seed": seed})
    for i in range(n):  # once per job, not a hot path: the buffer's own `add` keeps its priorities exact
        ltn = {"violation": float(data.violations[i])}
        if data.action_sat is not None:
            ltn["action_sat"] = data.action_sat[i]
        buffer.add({k: v[i:i + 1] for k, v in data.obs.items()}, {k: v[i:i + 1] for k, v in data.next_obs.items()},
                   data.actions[i:i + 1].reshape(1, 1), data.rewards[i:i + 1], data.dones[i:i + 1], [{"ltn": ltn}])
    return buffer


def _mean_return(model: Any, params: dict[str, Any], episodes: int, seed: int) -> tuple[float, list[float]]:
    """Mean episode return of ``model`` as served: in the run's glass box, reading the run's memory if it has one."""
    from agents.app.config import load_memory
    from agents.app.evaluation import agent_policy, episode_plan, make_eval_env, run_episode

    load_memory(Path(params["run_dir"]), model)
    env = make_eval_env(params["env_id"], params["env_kwargs"], shield=params["shield"],
                        breakers=params["breakers"], sizing=params["sizing"] or False)
    try:
        act = agent_policy(model, env)
        plan = episode_plan(env, episodes, seed)
        returns = [run_episode(env, act, s, start).episode_return for s, start in plan.episodes]
    finally:
        env.close()
    return float(np.mean(returns)), returns


def consolidate(store: ServiceStore, job_id: str) -> None:
    """Run job ``job_id`` (module docstring); its outcome is written to the store.

    Raises:
        Exception: whatever a step raises (the caller marks the job failed with it).
    """
    import torch as th

    from agents.app.config import read_yaml
    from agents.app.safe_load import load_model
    from agents.export import export_onnx
    from replay.sleep_cycle import SleepConfig, run_sleep_cycle

    th.set_num_threads(1)
    row = job(store, job_id)
    params = row["params"]
    base = version(store, row["base_version"])
    if base is None:
        raise ValueError(f"the job's base version {row['base_version']!r} is not in the store")
    run_dir = Path(params["run_dir"])
    config = read_yaml(run_dir / "config.yaml")
    seed = int(params["seed"])

    _progress(store, job_id, 0.05, f"loading {base.version}")
    model = load_model(base.model_path, params["algo"], device="cpu", config=config)
    cycle = SleepConfig(**{"swr_only": True, "seed": seed, **params["cycle"]})
    data = read_transitions(store, model.observation_space, int(params["max_transitions"]))
    n = int(data.actions.shape[0])
    if n < cycle.seq_len:
        raise ValueError(_TOO_FEW.format(n, cycle.seq_len))

    _progress(store, job_id, 0.15, f"replay buffer: {n} transitions")
    base_digest = weights_digest(model)
    buffer = _buffer(model, data, seed)
    model.replay_buffer = buffer

    _progress(store, job_id, 0.25, "sleep cycle")
    state, metrics = run_sleep_cycle(model, buffer, None, cycle)
    if state.swr_skip_reason is not None:
        raise ValueError(_SKIPPED.format(state.swr_skip_reason))

    _progress(store, job_id, 0.55, "writing the candidate")
    models = store.folder / MODELS_DIR
    tmp = models / f".tmp-{job_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save(tmp / "model.zip")
    shutil.copyfile(run_dir / "config.yaml", tmp / "config.yaml")
    (tmp / "sleep.json").write_text(json.dumps({"job": job_id, "base_version": base.version, "transitions": n,
                                                "metrics": metrics}, indent=1, allow_nan=True))
    digest = weights_digest(model)
    name = f"{params['run_name']}-w{digest}"
    if digest == base_digest:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(_UNCHANGED)

    _progress(store, job_id, 0.65, "validating: safe load and ONNX export")
    candidate = load_model(tmp / "model.zip", params["algo"], device="cpu", config=config)
    export_onnx(candidate, tmp / "policy.onnx")

    _progress(store, job_id, 0.75, "validating: evaluation against the current version")
    episodes, tolerance = int(params["episodes"]), float(params["tolerance"])
    current_mean, current_returns = _mean_return(model_for_eval(base.model_path, params, config), params,
                                                 episodes, seed)
    candidate_mean, candidate_returns = _mean_return(candidate, params, episodes, seed)
    accepted = candidate_mean >= current_mean - tolerance
    result = {"transitions": n, "sleep": metrics, "candidate_version": name,
              "evaluation": {"episodes": episodes, "seed": seed, "tolerance": tolerance,
                             "current_mean_return": current_mean, "candidate_mean_return": candidate_mean,
                             "current_returns": current_returns, "candidate_returns": candidate_returns,
                             "accepted": accepted}}
    if not accepted:
        shutil.rmtree(tmp, ignore_errors=True)
        update_job(store, job_id, ("running",), state="rejected", progress=1.0, stage="rejected",
                   result=result, finished=time.time(),
                   error=_REJECTED.format(candidate_mean, current_mean, tolerance, episodes, seed))
        return
    final = models / name
    if final.is_dir():  # the same weights again (a deterministic job run twice): keep the folder there
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, final)
    add_version(store, name, base.version, final / "model.zip", job_id)
    update_job(store, job_id, ("running",), state="validated", progress=0.95, stage="validated; swapping in",
               new_version=name, result=result)


def model_for_eval(path: Path, params: dict[str, Any], config: dict[str, Any]) -> Any:
    """The base version as served (loaded again: the sleep cycle changed the first copy in place)."""
    from agents.app.safe_load import load_model

    return load_model(path, params["algo"], device="cpu", config=config)


# ---------------------------------------------------------------------- a job shipped to another machine
SHIPPED_FILES = ("model.zip", "config.yaml", "sleep.json", "policy.onnx")
"""The files of a version folder that travel back from a shipped job."""
LANDED_FIELDS = ("state", "progress", "stage", "result", "error", "new_version")
"""The job fields a shipped job's outcome sets in the service's store."""
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
_BAD_OUTCOME = "a shipped job came back with {}; nothing of it is kept"


def ship_job(store: ServiceStore, job_id: str) -> dict[str, Any]:
    """Everything job ``job_id`` reads, by value (for a machine that does not see ``store``): its parameters,
    its base version's ``model.zip``, the run's ``config.yaml``, and the ``max_transitions`` most recent rows
    of the ``experience`` table."""
    row = job(store, job_id)
    base = version(store, row["base_version"])
    if base is None:
        raise ValueError(f"the job's base version {row['base_version']!r} is not in the store")
    columns = [r[1] for r in store.query("PRAGMA table_info(experience)")]
    rows = store.query(f"SELECT {', '.join(columns)} FROM experience ORDER BY id DESC LIMIT ?",
                       (int(row["params"]["max_transitions"]),))
    return {"job_id": job_id, "params": row["params"], "base_version": base.version,
            "model": base.model_path.read_bytes(),
            "config": (Path(row["params"]["run_dir"]) / "config.yaml").read_bytes(),
            "experience_columns": columns, "experience": rows[::-1]}


def run_shipped_job(shipped: dict[str, Any]) -> dict[str, Any]:
    """Run a job shipped by :func:`ship_job` with :func:`main` — the steps a worker process runs — on a
    private store in a temporary folder; returns the job's outcome (its ``LANDED_FIELDS``) and, for a
    ``validated`` job, its version folder's files (``SHIPPED_FILES``, as bytes) for :func:`land_job`. The
    temporary folder is removed; nothing else is written."""
    from agents.app.service.experience import create_tables as experience_tables
    from agents.app.service.versions import create_tables as version_tables
    from agents.app.service.versions import new_job

    job_id = shipped["job_id"]
    with tempfile.TemporaryDirectory(prefix="janus-sleep-") as tmp:
        folder, run_dir, base = Path(tmp) / "store", Path(tmp) / "run", Path(tmp) / "base"
        run_dir.mkdir()
        base.mkdir()
        (run_dir / "config.yaml").write_bytes(shipped["config"])
        (base / "model.zip").write_bytes(shipped["model"])
        store = ServiceStore(folder)
        try:
            version_tables(store)
            experience_tables(store)
            columns = shipped["experience_columns"]
            marks = ", ".join("?" for _ in columns)
            store.execute([("INSERT INTO versions VALUES (?, NULL, ?, NULL, ?)",
                            (shipped["base_version"], str(base / "model.zip"), time.time()))]
                          + [(f"INSERT INTO experience ({', '.join(columns)}) VALUES ({marks})", tuple(r))
                             for r in shipped["experience"]], durable=True)
            new_job(store, job_id, {**shipped["params"], "run_dir": str(run_dir)}, shipped["base_version"])
        finally:
            store.close()
        main([str(folder), job_id])
        store = ServiceStore(folder)
        try:
            row = job(store, job_id)
        finally:
            store.close()
        files = {}
        if row["state"] == "validated":
            made = folder / MODELS_DIR / row["new_version"]
            files = {name: (made / name).read_bytes() for name in SHIPPED_FILES if (made / name).is_file()}
        return {"job": {k: row[k] for k in LANDED_FIELDS}, "files": files}


def land_job(store: ServiceStore, job_id: str, outcome: dict[str, Any]) -> None:
    """Write a shipped job's outcome into ``store``, as a worker process would have: a ``validated`` job's
    version folder (written beside, then renamed into ``<store>/models/<version>/``) and version row, then the
    job's fields (a job no longer ``running`` — interrupted meanwhile — stays as it is).

    Raises:
        ValueError: an outcome with a version name that is not a plain folder name, or without ``model.zip``.
    """
    fields = {k: outcome["job"][k] for k in LANDED_FIELDS}
    if fields["state"] == "validated":
        name, files = str(fields["new_version"]), outcome["files"]
        if not _SAFE_NAME.fullmatch(name):
            raise ValueError(_BAD_OUTCOME.format(f"the version name {name!r}"))
        if "model.zip" not in files:
            raise ValueError(_BAD_OUTCOME.format(f"the files {sorted(files)} (no model.zip)"))
        models = store.folder / MODELS_DIR
        final = models / name
        if not final.is_dir():
            tmp = models / f".tmp-{job_id}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            for file in SHIPPED_FILES:
                if file in files:
                    (tmp / file).write_bytes(files[file])
            os.replace(tmp, final)
        add_version(store, name, job(store, job_id)["base_version"], final / "model.zip", job_id)
    else:
        fields["finished"] = time.time()
    update_job(store, job_id, ("running",), **fields)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    store_dir, job_id = argv
    store = ServiceStore(store_dir)
    try:
        if not update_job(store, job_id, ("queued", "running"), state="running", pid=os.getpid(),
                          started=time.time(), stage="starting", progress=0.01):
            return 0  # interrupted or finished meanwhile
        try:
            consolidate(store, job_id)
        except Exception as err:  # noqa: BLE001 - the job records why it failed
            update_job(store, job_id, ("running",), state="failed", finished=time.time(),
                       error=f"{type(err).__name__}: {err}", stage="failed")
            print(f"sleep job {job_id} failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            return 1
        return 0
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
