"""Sleep jobs as Ray tasks: ``serve.py RUN --store DIR --ray-address ADDR``.

| ``ADDR`` | Ray |
| --- | --- |
| ``HOST:PORT`` | the cluster whose head's GCS listens there (``ray start --head --port=PORT``) |
| ``ray://HOST:PORT`` | the cluster through Ray Client (the head's client server, port 10001 by default) |
| ``auto`` | the cluster already running on this machine (``ray start`` here), or ``$RAY_ADDRESS`` when set |
| ``local`` | a private 1-CPU Ray the service starts (``ray.init(address="local", num_cpus=1)``) and stops |

Each job runs as one task (``num_cpus=1``, ``max_retries=0``: a job whose worker dies fails, it is not rerun
behind the service's back), one job at a time as with worker processes. The task is
:func:`~agents.app.service.sleep_worker.run_shipped_job`: the job travels **by value** (its parameters, the base
version's ``model.zip``, the run's ``config.yaml``, the recorded transitions it replays) and the task runs the
worker's own :func:`~agents.app.service.sleep_worker.main` on a private store in a temporary folder of the Ray
worker; what comes back (the job's outcome and, for a validated job, the new version's files) is written into the
service's store by the service (:func:`~agents.app.service.sleep_worker.land_job`). So the store never has to be
on a filesystem the Ray workers see (SQLite's locking is not reliable on network filesystems), and the Ray
workers write nothing but their temporary folder.

What the cluster needs: this project importable in the Ray workers' Python (the same version as the service:
install it on every node, as for ``train.py --backend rllib``; a ``local`` Ray uses the service's own Python and
folder). While a job runs on Ray its ``progress`` stays at the submission's (its steps are reported when it
ends); ``pid`` is not set. A task that fails or whose worker dies leaves its job ``failed`` with Ray's reason and
the version served unchanged; a service that stops cancels its task (``ray.cancel(force=True)``), the job is
``interrupted``, and the service leaves Ray (a ``local`` Ray stops).
"""

from __future__ import annotations

import re
import signal
import socket
import threading
from typing import Any

from agents.app.service.store import ServiceStore

NO_RAY = "--ray-address needs Ray: pip install 'janus-rl[rllib]' (or pip install 'ray>=2.60')"
CONNECT_TIMEOUT_S = 5.0
"""How long a ``HOST:PORT`` address may take to accept a TCP connection before it is refused (``ray.init``
itself retries an unreachable address for minutes)."""
LOCAL_CPUS = 1

_BAD_ADDRESS = "Expected --ray-address local, auto, HOST:PORT or ray://HOST:PORT, got {!r}"
_NO_CLUSTER = "cannot join the Ray cluster at {!r}: {}"
_ADDRESS = re.compile(r"(?:ray://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})")
_TASK_DIED = "the Ray task {} ended before the job finished ({}); the version served stays"


def require_ray() -> Any:
    """The ``ray`` module.

    Raises:
        ValueError: Ray is not installed (``NO_RAY``).
    """
    try:
        import ray
    except ImportError as err:
        raise ValueError(NO_RAY) from err
    return ray


def check_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``HOST:PORT`` or ``ray://HOST:PORT`` address; None for ``local`` and ``auto``.

    Raises:
        ValueError: any other address (``_BAD_ADDRESS``).
    """
    if address in ("local", "auto"):
        return None
    found = _ADDRESS.fullmatch(address)
    if found is None or not 0 < int(found["port"]) < 65536:
        raise ValueError(_BAD_ADDRESS.format(address))
    return found["host"].strip("[]"), int(found["port"])


def connect_ray(address: str) -> Any:
    """Join (or, for ``local``, start) the Ray at ``address`` (module docstring); returns the ``ray`` module.

    Raises:
        ValueError: a malformed address, or Ray not installed.
        ConnectionError: nothing accepts a connection at ``HOST:PORT`` within ``CONNECT_TIMEOUT_S``, or Ray
            cannot join (``auto`` with no cluster on this machine).
    """
    where = check_address(address)
    ray = require_ray()
    if where is not None:
        try:
            socket.create_connection(where, timeout=CONNECT_TIMEOUT_S).close()
        except OSError as err:
            raise ConnectionError(_NO_CLUSTER.format(address, err)) from err
    local = {"num_cpus": LOCAL_CPUS, "include_dashboard": False} if address == "local" else {}
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        ray.init(address=address, logging_level="WARNING", **local)
    except ConnectionError as err:
        raise ConnectionError(_NO_CLUSTER.format(address, err)) from err
    finally:  # ray.init sets its own (sys.exit(15)); SIGTERM stays uvicorn's graceful shutdown, exit status 0
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)
    return ray


class RayJob:
    """One sleep job running as a Ray task (module docstring).

    Args:
        ray: the joined ``ray`` module (:func:`connect_ray`).
        store: the service's store (the job is read from it once, here).
        job_id: the job, ``queued`` in ``store``.
    """

    def __init__(self, ray: Any, store: ServiceStore, job_id: str) -> None:
        from agents.app.service.sleep_worker import run_shipped_job, ship_job

        self.ray = ray
        task = ray.remote(num_cpus=1, max_retries=0)(run_shipped_job)
        self.ref = task.remote(ship_job(store, job_id))
        self.task_id = self.ref.task_id().hex()

    def done(self) -> bool:
        """Whether the task has ended (without waiting)."""
        ready, _ = self.ray.wait([self.ref], timeout=0)
        return bool(ready)

    def outcome(self) -> dict[str, Any]:
        """The ended task's result (blocks until it ends).

        Raises:
            RuntimeError: the task failed, was cancelled or its worker died (``_TASK_DIED``, Ray's reason).
        """
        try:
            return self.ray.get(self.ref)
        except Exception as err:  # noqa: BLE001 - RayTaskError, WorkerCrashedError, TaskCancelledError, ...
            reason = (str(err).strip().splitlines() or [""])[0]
            raise RuntimeError(_TASK_DIED.format(self.task_id, f"{type(err).__name__}: {reason}")) from err

    def cancel(self) -> None:
        """End the task now (its worker is killed)."""
        self.ray.cancel(self.ref, force=True)


__all__ = ["CONNECT_TIMEOUT_S", "LOCAL_CPUS", "NO_RAY", "RayJob", "check_address", "connect_ray", "require_ray"]
