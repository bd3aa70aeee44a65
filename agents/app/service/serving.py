"""The steps of ``serve.py``: make a key; resolve what to serve, build the service, run uvicorn.

```python
key = make_key(store, name, scopes)       # serve.py keygen (agents.app.service.keys): the key's only copy
spec = resolve_service(args)              # the run (config, model), store, engine, glass box; checked
service = build_service(spec)             # the model (safe loader, ONNX export), the store, the accounts' settings
run_server(spec, service)                 # uvicorn on host:port, one worker
```

Bad input raises one of ``USAGE_ERRORS`` from these steps, before anything listens; the CLI prints it
as one line and exits with status 2.

What is served: a run of ``Janus-LOB-v0`` (or one of its scenario ids) with a Discrete action space
(``action_type`` ``discrete`` or ``sized``). The market settings are the run's (its ``env_kwargs``): window,
levels, lot and quantity grid, position and leverage limits, cash, fees, session length. The glass box is the
one ``evaluate.py`` builds for the run: the LTN shield with the run's ``shield`` settings, the circuit breakers
with the run's ``breakers`` settings and ``--breaker`` overrides (on even where training ran without them, as in
evaluation), the run's cerebellum (``cerebellum.pt``) predicting slippage for the 2× breaker, and the
``Hypothalamus`` when the run's ``sizing`` setting is on.

Engines: ``--engine torch`` decides with the SB3 policy and predicts slippage with the cerebellum in torch, as
``evaluate.py`` does, so its answers and audit records are the in-process run's bit for bit
(``tests/service/test_paper.py``). ``--engine onnx`` (the default) is the fast path: the exported graph for the
policy and the cerebellum in numpy (:meth:`agents.cerebellum.Cerebellum.numpy_predictor`, ≈ 20 µs an order against
0.2-0.4 ms, and torch's ops between two ONNX Runtime calls slow the next one down), both equal to torch's to float32
rounding.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

import envs_registry  # noqa: F401  (registers the Janus-* ids)
from agents.app.config import load_cerebellum, read_yaml, with_slippage_predictor
from agents.app.service.app import create_app
from agents.app.service.engine import DecisionEngine
from agents.app.service.guard import GuardSettings, StagedEnv
from agents.app.service.keys import open_store
from agents.app.service.ray_jobs import connect_ray
from agents.app.service.schemas import MAX_BODY_BYTES
from agents.app.service.service import DecisionService
from agents.app.service.sleep import SleepManager
from agents.app.service.versions import serve_from
from janus_env.actions import make_action_space
from janus_env.lob_env import JanusLOBEnv, market_config, observation_space
from wrappers.breakers import BreakerConfig
from wrappers.glass_box import part_settings

USAGE_ERRORS = (FileNotFoundError, ValueError, TypeError, ConnectionError)
"""What bad input raises from :func:`~agents.app.service.keys.make_key`, :func:`resolve_service` and
:func:`build_service` (``ConnectionError``: no Ray cluster at ``--ray-address``)."""

_NO_MODEL = "no model at {} (expected RUN/model.zip or a model.zip)"
_NO_CONFIG = "no run config at {}"
_NOT_LOB = "the decision service serves Janus-LOB-v0 runs (trading decisions); this run's env is {!r}"
_CONTINUOUS = ("the decision service serves Discrete action spaces (action_type 'discrete' or 'sized'); this run "
               "trained with action_type {!r}")
_SPACES = "the model's {} space {} is not the run's env's {}"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_ENV_ARGS = tuple(p for p in inspect.signature(JanusLOBEnv.__init__).parameters if p not in ("self", "market"))
"""``JanusLOBEnv``'s own arguments; the rest of a run's ``env_kwargs`` are market settings."""


@dataclass(frozen=True)
class ServiceSpec:
    """What ``serve.py RUN`` serves, and how (resolved from the CLI and the run's ``config.yaml``)."""

    run_dir: Path
    model_path: Path
    config: dict[str, Any]
    algo: str
    env_kwargs: dict[str, Any]
    scenario: str
    store: Path
    host: str
    port: int
    engine: str
    breakers: dict[str, Any]
    shield: dict[str, Any]
    sizing: dict[str, Any] | None
    trust_remote_code: bool = False
    rate: float = 100.0
    burst: float = 200.0
    max_body_bytes: int = MAX_BODY_BYTES
    log_level: str = "warning"
    version: str = field(default="")
    ray_address: str | None = None


def model_version(run_dir: Path, model_path: Path) -> str:
    """``<run folder name>-<first 12 hex digits of the SHA-256 of model.zip>`` (a path-safe name)."""
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()[:12]
    return f"{_UNSAFE_NAME.sub('_', run_dir.name)}-{digest}"


def resolve_service(args: argparse.Namespace) -> ServiceSpec:
    """The run, store and settings ``serve.py RUN`` asks for, checked.

    Raises:
        FileNotFoundError: no model or no run config.
        ValueError / TypeError: a run of another env or with continuous actions, bad breaker settings.
    """
    run = Path(args.run)
    run_dir, model_path = (run.parent, run) if run.suffix == ".zip" else (run, run / "model.zip")
    if not model_path.is_file():
        raise FileNotFoundError(_NO_MODEL.format(model_path))
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(_NO_CONFIG.format(run_dir / "config.yaml"))
    config = read_yaml(run_dir / "config.yaml")
    env_id = config["run"]["env"]
    spec = gym.spec(env_id)
    if spec.entry_point != "janus_env.lob_env:JanusLOBEnv":
        raise ValueError(_NOT_LOB.format(env_id))
    hyper = config["hyperparams"]
    env_kwargs = {**(spec.kwargs or {}), **dict(hyper.get("env_kwargs") or {})}
    if env_kwargs.get("action_type", "discrete") == "continuous":
        raise ValueError(_CONTINUOUS.format("continuous"))
    base = hyper.get("breakers") if isinstance(hyper.get("breakers"), dict) else {}
    breakers = {**base, **dict(args.breaker)}
    BreakerConfig.from_mapping(breakers)  # names and values checked now
    shield = part_settings("shield", hyper.get("shield", True)) or {}
    sizing = part_settings("sizing", hyper.get("sizing", False))
    return ServiceSpec(run_dir=run_dir, model_path=model_path, config=config, algo=config["run"]["algo"],
                       env_kwargs=env_kwargs, scenario=str(env_kwargs.get("scenario", "ou")), store=Path(args.store),
                       host=args.host, port=args.port, engine=args.engine, breakers=breakers, shield=shield,
                       sizing=sizing, trust_remote_code=args.trust_remote_code, rate=args.rate_limit,
                       burst=args.burst, max_body_bytes=args.max_body_bytes, log_level=args.log_level,
                       version=model_version(run_dir, model_path), ray_address=getattr(args, "ray_address", None))


def guard_settings(spec: ServiceSpec) -> GuardSettings:
    """Every account's glass-box settings: the run's market and spaces, shield, breakers (with the run's
    cerebellum as slippage predictor) and sizing."""
    env_args = {k: v for k, v in spec.env_kwargs.items() if k in _ENV_ARGS}
    market = {k: v for k, v in spec.env_kwargs.items() if k not in _ENV_ARGS}
    config = market_config(spec.scenario, market)
    action_type = str(env_args.get("action_type", "discrete"))
    n_sizes = int(env_args.get("n_sizes", 3)) if action_type == "sized" else 1
    settings = GuardSettings(config=config, action_space=make_action_space(action_type, n_sizes),
                             observation_space=observation_space(config.window, config.n_levels),
                             action_type=action_type, n_sizes=n_sizes, shield=dict(spec.shield),
                             breakers=BreakerConfig(), sizing=None if spec.sizing is None else dict(spec.sizing))
    cerebellum = load_cerebellum(spec.run_dir, StagedEnv(settings), spec.config["hyperparams"])
    breakers = with_slippage_predictor(spec.breakers, cerebellum)
    if (cerebellum is not None and spec.engine == "onnx" and isinstance(breakers, dict)
            and breakers.get("slippage_predictor") == cerebellum.predictor):
        breakers["slippage_predictor"] = cerebellum.numpy_predictor()  # no torch on the ONNX path (module doc)
    settings = dataclasses.replace(settings, breakers=BreakerConfig.from_mapping(breakers))
    settings.check()
    return settings


def build_service(spec: ServiceSpec) -> DecisionService:
    """The model (safe loader; the ONNX graph exported once into the store), the store and the service.

    With ``spec.ray_address``, Ray is joined first (:func:`~agents.app.service.ray_jobs.connect_ray`): sleep jobs
    run as Ray tasks.

    Raises:
        FileNotFoundError / ValueError / TypeError: a model the safe loader refuses, a policy the service cannot
            run, spaces that differ from the run's env, a store that cannot be opened, a malformed
            ``--ray-address`` or no Ray installed.
        ConnectionError: no Ray cluster at ``spec.ray_address``.
    """
    ray = None if spec.ray_address is None else connect_ray(spec.ray_address)
    try:
        settings = guard_settings(spec)
    except BaseException:
        if ray is not None:
            ray.shutdown()
        raise
    store = open_store(spec.store)
    try:
        served = serve_from(store, spec.version, spec.model_path)  # a version a sleep job made, or the run's own
        engine = DecisionEngine.load(served.model_path, spec.algo, spec.config, engine=spec.engine,
                                     cache_dir=store.models_dir(served.version),
                                     trust_remote_code=spec.trust_remote_code, memory_dir=spec.run_dir)
        policy = engine.policy
        for kind, ours, theirs in (("observation", settings.observation_space, policy.observation_space),
                                   ("action", settings.action_space, policy.action_space)):
            if ours != theirs:
                raise ValueError(_SPACES.format(kind, theirs, ours))
        service = DecisionService(store, engine, settings, served.version)
        service.sleep = SleepManager(service, spec, ray=ray)
        return service
    except BaseException:
        store.close()
        if ray is not None:
            ray.shutdown()
        raise


def run_server(spec: ServiceSpec, service: DecisionService) -> None:
    """Serve until interrupted (SIGINT/SIGTERM: uvicorn shuts down, the service flushes its audit trails)."""
    import uvicorn

    app = create_app(service, rate=spec.rate, burst=spec.burst, max_body_bytes=spec.max_body_bytes)
    uvicorn.run(app, host=spec.host, port=spec.port, log_level=spec.log_level, access_log=False, workers=1)


__all__ = ["USAGE_ERRORS", "ServiceSpec", "build_service", "guard_settings", "model_version",
           "resolve_service", "run_server"]
