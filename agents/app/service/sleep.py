"""The sleep side of the decision service: sleep jobs, the model versions they make, swaps and rollbacks.

| route (``admin`` scope) | does |
| --- | --- |
| ``POST /api/v1/sleep-cycle`` | queue a consolidation job on the recorded experience (202, the job) |
| ``GET /api/v1/jobs/{id}`` | the job: ``state``, ``progress`` (0–1), ``stage``, ``result``, ``error`` |
| ``GET /api/v1/model`` | the version served, its parent, the run's own version |
| ``POST /api/v1/model/rollback`` | serve the current version's parent again (409 at the run's own version) |

A job runs in its own worker process (``python -m agents.app.service.sleep_worker``; steps in that module),
one at a time, in the order queued; the event loop only polls it (every ``POLL_S`` seconds) and never waits on
it. When a worker ends with its job ``validated``, the service loads the new version (safe loader, its ONNX
graph; in a thread) and then, on the event loop between two requests, swaps engine and version for new
decisions and records the swap (one transaction: ``serving`` names it, the job ``succeeded``). A worker that
dies (killed, out of memory) leaves its job ``failed`` and the version served unchanged. A service that stops
ends its worker; jobs it left unfinished are ``interrupted`` at the next start. With ``serve.py --ray-address``
each job runs as a Ray task instead (:mod:`~agents.app.service.ray_jobs`: the job shipped by value, the same
worker steps, the outcome written into the store here); the rest is the same.

Body of ``POST /api/v1/sleep-cycle`` (every field optional):

| field | default | meaning |
| --- | --- | --- |
| ``seed`` | 0 | seeds the buffer's sampler, the sleep cycle and the evaluation episodes |
| ``max_transitions`` | 10,000 | the most recent recorded transitions replayed |
| ``episodes`` | 3 | seeded evaluation episodes per version |
| ``tolerance`` | 0.001 | accept when ``mean return(candidate) ≥ mean return(current) − tolerance``; returns are ``E_T/E_0 − 1``, so 0.001 = 10 bp of equity per episode. Negative: demand an improvement of at least ``|tolerance|`` |
| ``cycle`` | ``{}`` | :class:`replay.SleepConfig` fields (``swr_only`` true unless given; ``plot_dir``, ``store_path``, ``clock`` refused) |

Sleep needs a ``janus-dqn`` run (SWR replay into its prioritized buffer): for another algorithm, a run whose
reward is not ``"pnl"`` (the recorded reward is the pnl reward), or fewer recorded transitions than
``cycle.seq_len``, the request answers 409 with the reason and nothing is queued.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.app.service.engine import DecisionEngine
from agents.app.service.experience import count_transitions
from agents.app.service.ray_jobs import RayJob
from agents.app.service.schemas import FieldError
from agents.app.service.sleep_worker import land_job
from wrappers.audit import to_jsonable
from agents.app.service.versions import (
    current,
    interrupt_unfinished,
    job,
    jobs_in,
    new_job,
    set_serving,
    update_job,
    version,
)

POLL_S = 0.2
"""How often the event loop looks at the running worker."""
ROOT = Path(__file__).resolve().parents[3]
"""The repository root (the worker runs ``python -m`` from there)."""
SLEEP_ALGOS = ("janus-dqn",)

_NOT_DQN = ("sleep consolidation replays the recorded experience into janus-dqn's prioritized buffer (SWR replay, "
            "replay/swr.py); this run's algo is {!r}, which has no such buffer and no sleep cycle: nothing is queued")
_NOT_PNL = ("the recorded reward is the env's reward 'pnl'; this run trained with reward {!r}, so its experience "
            "cannot be replayed as recorded: nothing is queued")
_TOO_FEW = "the store holds {} recorded transition(s); the sleep cycle needs at least seq_len = {}"
_NO_JOB = "no job {!r}"
_NO_PARENT = "version {!r} is the run's own model: there is no previous version to roll back to"
_BUSY = "a job is swapping in a version ({!r}); try again when it is done"
_BAD_CYCLE = "expected replay.SleepConfig fields, got {}"
_CYCLE_REFUSED = "{!r} is not allowed here (a served job writes no plots or snapshots and uses market time)"
_MOVED = ("the job was validated against {!r}, but {!r} is served now (a rollback meanwhile); its version is "
          "kept in the store and not swapped in")
_RAY_UNFINISHED = "the Ray task {} ended without finishing the job; the version served stays"
_WORKER_DIED = "the worker process (pid {}) exited with status {} before the job finished; the version served stays"


class SleepRequest(BaseModel):
    """``POST /api/v1/sleep-cycle`` (module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    max_transitions: int = Field(default=10_000, ge=1, le=1_000_000)
    episodes: int = Field(default=3, ge=1, le=100)
    tolerance: float = 0.001
    cycle: dict[str, Any] = Field(default_factory=dict)


def _check_cycle(cycle: dict[str, Any]) -> int:
    """The cycle's ``seq_len``, after building the ``SleepConfig`` once (bad fields: 422 naming them)."""
    from replay.sleep_cycle import SleepConfig

    for key in ("plot_dir", "store_path", "clock"):
        if key in cycle:
            raise FieldError(f"cycle.{key}", _CYCLE_REFUSED.format(key))
    try:
        config = SleepConfig(**{"swr_only": True, **cycle})
    except (TypeError, ValueError) as err:
        raise FieldError("cycle", _BAD_CYCLE.format(err)) from err
    return int(config.seq_len)


class SleepManager:
    """Queues jobs, runs one worker at a time, swaps validated versions in, rolls back (module docstring).

    Args:
        service: the decision service (its ``engine`` and ``version`` are swapped).
        spec: the served run's :class:`~agents.app.service.serving.ServiceSpec`.
        ray: the joined ``ray`` module (:func:`~agents.app.service.ray_jobs.connect_ray`): jobs run as Ray
            tasks; None: in worker processes.
    """

    def __init__(self, service: Any, spec: Any, ray: Any = None) -> None:
        self.service = service
        self.spec = spec
        self.store = service.store
        self.ray = ray
        self.interrupted = interrupt_unfinished(self.store)
        self.proc: subprocess.Popen | RayJob | None = None
        self.job_id: str | None = None
        self.swapping: str | None = None
        self._task: asyncio.Task | None = None
        self._logs = self.store.folder / "jobs"
        self._logs.mkdir(exist_ok=True)

    # ------------------------------------------------------------------ routes
    def queue(self, request: SleepRequest) -> dict[str, Any]:
        """Queue a job (202).

        Raises:
            FieldError: 409 for a run that cannot sleep or too little experience; 422 for bad ``cycle`` fields.
        """
        spec = self.spec
        if spec.algo not in SLEEP_ALGOS:
            raise FieldError("run", _NOT_DQN.format(spec.algo), 409)
        reward = str(spec.env_kwargs.get("reward", "pnl"))
        if reward != "pnl":
            raise FieldError("run", _NOT_PNL.format(reward), 409)
        seq_len = _check_cycle(request.cycle)
        n = count_transitions(self.store)
        if n < seq_len:
            raise FieldError("experience", _TOO_FEW.format(n, seq_len), 409)
        job_id = uuid.uuid4().hex[:16]
        params = {"run_dir": str(spec.run_dir.resolve()), "run_name": spec.version.rsplit("-", 1)[0],
                  "algo": spec.algo, "env_id": spec.config["run"]["env"], "env_kwargs": dict(spec.env_kwargs),
                  "shield": dict(spec.shield), "breakers": dict(spec.breakers), "sizing": spec.sizing,
                  **request.model_dump()}
        new_job(self.store, job_id, params, self.service.version)
        self._next()
        return self.job(job_id)

    def job(self, job_id: str) -> dict[str, Any]:
        """Raises: FieldError (404) for an unknown job."""
        row = job(self.store, job_id)
        if row is None:
            raise FieldError("id", _NO_JOB.format(job_id), 404)
        return to_jsonable(row)  # a metric that is NaN (a skipped phase) becomes null

    def model(self) -> dict[str, Any]:
        served = current(self.store)
        return {"model_version": self.service.version, "parent": served.parent, "root": self.spec.version,
                "engine": self.service.engine.engine}

    async def rollback(self) -> dict[str, Any]:
        """Serve the current version's parent (loaded first, then swapped; recorded durably).

        Raises:
            FieldError: 409 at the run's own version or while a job's version is being swapped in.
        """
        if self.swapping is not None:
            raise FieldError("model", _BUSY.format(self.swapping), 409)
        served = current(self.store)
        if served.parent is None:
            raise FieldError("model", _NO_PARENT.format(served.version), 409)
        parent = version(self.store, served.parent)
        engine = await asyncio.to_thread(self._load, parent.version, parent.model_path)
        previous = self.service.version
        set_serving(self.store, parent.version)
        self._swap(engine, parent.version)
        return {"model_version": parent.version, "rolled_back_from": previous}

    # ------------------------------------------------------------------ the worker
    def start(self) -> None:
        """Start polling (in the app's lifespan, on its event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stop polling; end a running worker or Ray task (its job becomes ``interrupted``); leave Ray."""
        if self._task is not None:
            self._task.cancel()
        if isinstance(self.proc, RayJob):
            self.proc.cancel()
        elif self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for job_id in jobs_in(self.store, ("queued", "running", "validated")):
            update_job(self.store, job_id, ("queued", "running", "validated"), state="interrupted",
                       finished=time.time(), error="the service stopped before the job finished; the version "
                                                   "served did not change")
        if self.ray is not None:
            await asyncio.to_thread(self.ray.shutdown)

    def _next(self) -> None:
        if self.proc is not None or self.swapping is not None or self.ray is not None:
            return  # on Ray, the poller ships the next job (_next_on_ray), off the event loop
        queued = jobs_in(self.store, ("queued",))
        if not queued:
            return
        self.job_id = queued[0]
        log = open(self._logs / f"{self.job_id}.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen([sys.executable, "-m", "agents.app.service.sleep_worker",
                                      str(self.store.folder.resolve()), self.job_id], cwd=ROOT, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        update_job(self.store, self.job_id, ("queued",), pid=self.proc.pid)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                await self._check()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the poller must survive; the job records why
                if self.job_id is not None:
                    update_job(self.store, self.job_id, ("queued", "running", "validated"), state="failed",
                               finished=time.time(), error=f"{type(err).__name__}: {err}")
                self.proc, self.job_id, self.swapping = None, None, None

    async def _next_on_ray(self) -> None:
        if self.proc is not None or self.swapping is not None:
            return
        queued = jobs_in(self.store, ("queued",))
        if not queued:
            return
        self.job_id = queued[0]
        self.proc = await asyncio.to_thread(RayJob, self.ray, self.store, self.job_id)
        update_job(self.store, self.job_id, ("queued",), state="running", started=time.time(), progress=0.01,
                   stage=f"running on Ray (task {self.proc.task_id})")

    async def _check(self) -> None:
        if self.proc is None:
            if self.ray is not None:
                await self._next_on_ray()
            else:
                self._next()
            return
        if isinstance(self.proc, RayJob):
            if not self.proc.done():
                return
            try:
                outcome = await asyncio.to_thread(self.proc.outcome)
            except RuntimeError as err:  # the task failed or its worker died: the job fails, nothing is landed
                update_job(self.store, self.job_id, ("running",), state="failed", finished=time.time(),
                           stage="Ray task died", error=str(err))
            else:
                await asyncio.to_thread(land_job, self.store, self.job_id, outcome)
            code, pid = None, None
        else:
            code = self.proc.poll()
            if code is None:
                return
            pid = self.proc.pid
        job_id = self.job_id
        row = job(self.store, job_id)
        if row["state"] == "validated" and row["base_version"] != self.service.version:
            update_job(self.store, job_id, ("validated",), state="rejected", finished=time.time(), stage="rejected",
                       error=_MOVED.format(row["base_version"], self.service.version))
        elif row["state"] == "validated":
            self.swapping = row["new_version"]
            made = version(self.store, row["new_version"])
            try:
                engine = await asyncio.to_thread(self._load, made.version, made.model_path)
            except Exception as err:  # noqa: BLE001 - a version that cannot be served is not swapped in
                update_job(self.store, job_id, ("validated",), state="failed", finished=time.time(),
                           error=f"loading the new version failed: {type(err).__name__}: {err}")
            else:
                set_serving(self.store, made.version, job_id)
                self._swap(engine, made.version)
        elif row["state"] in ("queued", "running"):
            update_job(self.store, job_id, ("queued", "running"), state="failed", finished=time.time(),
                       stage="worker died", error=_WORKER_DIED.format(pid, code) if pid is not None else
                       _RAY_UNFINISHED.format(self.proc.task_id))
        self.proc, self.job_id, self.swapping = None, None, None
        self._next()

    def _load(self, name: str, model_path: Path) -> DecisionEngine:
        spec, service = self.spec, self.service
        engine = DecisionEngine.load(model_path, spec.algo, spec.config, engine=spec.engine,
                                     cache_dir=self.store.models_dir(name),
                                     trust_remote_code=spec.trust_remote_code, memory_dir=spec.run_dir)
        settings = service.settings
        for kind, ours, theirs in (("observation", settings.observation_space, engine.policy.observation_space),
                                   ("action", settings.action_space, engine.policy.action_space)):
            if ours != theirs:
                raise ValueError(f"the new version's {kind} space {theirs} is not the run's {ours}")
        return engine

    def _swap(self, engine: DecisionEngine, name: str) -> None:
        """On the event loop, between two requests: new decisions use ``engine`` and say ``name``."""
        service = self.service
        service.engine, service.version = engine, name
        service.metrics.model.clear()
        service.metrics.model.set(1.0, name, engine.engine)
        for slot in service.slots.values():
            slot.guard.audit.tags["model_version"] = name


__all__ = ["POLL_S", "SLEEP_ALGOS", "SleepManager", "SleepRequest"]
