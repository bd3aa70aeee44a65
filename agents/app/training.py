"""The steps of ``train.py``: resolve the run, build what trains it, learn, save.

```python
run = resolve_run(args)               # the saved config.yaml and the run folder (new, or --resume)
training = build_training(run)        # envs, model, callbacks (SB3); the PPO algorithm on Ray (RLlib); a tournament
training.learn(progress=True)
print(training.save())                # model.zip and the last checkpoint, or the payoff reports
```

Every training has ``learn(progress)`` and ``save() -> str`` (the summary to print): :class:`SB3Training`
here, :class:`~agents.app.rllib.RLlibTraining` for ``--backend rllib`` and
:class:`~agents.app.tournament.TournamentTraining` for ``train.py multi``. Bad input raises one of
``USAGE_ERRORS`` from :func:`resolve_run` or :func:`build_training`, before anything is trained; a new run
that fails there leaves no folder behind.

The run folder of a single-agent SB3 run: ``config.yaml`` (``{"run": {env, algo, seed, timesteps,
checkpoint_every}, "hyperparams": {...}}``), TensorBoard logs ``tb_*``, ``checkpoints/step_<N>/`` with
``checkpoints/latest`` (:mod:`agents.app.checkpoint`), ``plots/`` and, at the end, ``model.zip`` (with
``cerebellum.pt`` and, when the policy reads memory, ``memory.npz``: the JANUS algorithms).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml

from agents.app.callbacks import AtomicCheckpointCallback, JanusMetricsCallback
from agents.app.checkpoint import (
    DEFAULT_KEEP,
    Checkpoint,
    load_checkpoint,
    recover_checkpoints,
    resume_checkpoint,
    resume_seed,
)
from agents.app.cli import data_spec
from agents.app.config import (
    CEREBELLUM_FILE,
    MEMORY_FILE,
    ConfigError,
    algo_class,
    brain_callbacks,
    build_model,
    check_env_id,
    check_run_config,
    make_cerebellum,
    make_vec_env,
    new_run_folder,
    read_yaml,
    resolve_hyperparams,
    sleep_callback,
)
from agents.app.reward_normalization import STATE_KEY as NORM_STATE_KEY
from agents.app.reward_normalization import RewardNormalizationState, reward_normalizer
from agents.app.rllib import RLlibTraining, require_rllib, resolve_matchup
from agents.app.state_files import restore_rng
from agents.basal_ganglia import attach_shield_logic, is_basal_ganglia_policy
from agents.app.tournament import TournamentTraining, resolve_tournament
from janus_env.atomic import atomic_path, atomic_write_bytes

USAGE_ERRORS = (ValueError, TypeError, KeyError, ImportError, FileExistsError, FileNotFoundError, ConnectionError)
"""What bad input raises from :func:`resolve_run` and :func:`build_training` (``ConfigError`` is a ValueError):
the CLI prints it as one line and exits with status 2."""

_NO_DATA_FILE = ("--data-option needs the data file: --data-option path=FILE (or a sample name) "
                 "or --hp env_kwargs.data=FILE")
_NOT_HISTORICAL = "--data-option needs --scenario historical, got {!r}"


@dataclass(frozen=True)
class Run:
    """A resolved run: what it is, its config (as saved in ``config.yaml``) and its folder.

    Attributes:
        kind: ``"sb3"``, ``"rllib"`` or ``"tournament"``.
        config: the resolved config.
        run_dir: the run folder (it exists, with ``config.yaml`` in it).
        resumed: True for ``--resume`` (then a failure never removes the folder).
        torch_threads: torch CPU threads for an SB3 run.
    """

    kind: str
    config: dict[str, Any]
    run_dir: Path
    resumed: bool = False
    torch_threads: int = 1


class Training(Protocol):
    """What :func:`build_training` returns."""

    def learn(self, progress: bool = True) -> None: ...

    def save(self) -> str: ...


def resolve_run(args: argparse.Namespace) -> Run:
    """The run of ``train.py [options]``: hyper-parameters resolved (``agents.app.config``), the folder created.

    A new run gets ``args.run_dir/<name>`` (``env__algo__scenario__s<seed>__<time>`` unless ``--run-name``)
    with its ``config.yaml``; ``--resume RUN`` reads ``RUN/config.yaml`` (``--timesteps`` may extend it).

    Raises:
        ImportError: ``--backend rllib`` without Ray RLlib (checked before anything is written).
        ConfigError: an unknown env id or algorithm, a bad config file, override, hyper-parameter or data option;
            for ``--resume``, a ``config.yaml`` that is not a run config.
        FileExistsError: the new run's folder exists.
    """
    if args.backend == "rllib":
        require_rllib()
    if args.resume is not None:
        config = read_yaml(args.resume / "config.yaml")
        check_run_config(config, args.resume / "config.yaml")
        if args.timesteps is not None:
            config["run"]["timesteps"] = args.timesteps
        if getattr(args, "keep_checkpoints", None) is not None:
            config["run"]["keep_checkpoints"] = args.keep_checkpoints
        return Run("sb3", config, args.resume, resumed=True, torch_threads=args.torch_threads)
    check_env_id(args.env)
    params = resolve_hyperparams(args.algo, args.env, args.config, args.hp)
    if args.scenario is not None:
        params.setdefault("env_kwargs", {})["scenario"] = args.scenario
    if args.data_option:
        env_kwargs = params.setdefault("env_kwargs", {})
        env_kwargs["data"] = data_spec(env_kwargs.get("data"), args.data_option)
        if "path" not in env_kwargs["data"]:
            raise ConfigError(_NO_DATA_FILE)
        if env_kwargs.get("scenario") != "historical":
            raise ConfigError(_NOT_HISTORICAL.format(env_kwargs.get("scenario")))
    if args.n_envs is not None:
        params["n_envs"] = args.n_envs
    timesteps = args.timesteps or int(params.get("n_timesteps", 20000))
    scenario = params.get("env_kwargs", {}).get("scenario", "default")
    label = args.algo if args.backend == "sb3" else f"rllib-{args.algo}"
    name = args.run_name or f"{args.env}__{label}__{scenario}__s{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = args.run_dir / name
    config = {"run": {"env": args.env, "algo": args.algo, "seed": args.seed, "timesteps": timesteps,
                      "checkpoint_every": args.checkpoint_every,
                      "keep_checkpoints": getattr(args, "keep_checkpoints", None) or DEFAULT_KEEP},
              "hyperparams": params}
    if args.backend == "rllib":
        config["run"].update(backend="rllib", num_env_runners=args.num_env_runners, ray_address=args.ray_address)
    new_run_folder(run_dir)
    atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    return Run(args.backend, config, run_dir, torch_threads=args.torch_threads)


def resolve_multi_run(args: argparse.Namespace) -> Run:
    """The run of ``train.py multi``: the tournament of ``--config`` (sb3; ``--timesteps``, ``--episodes`` and
    ``--seeds`` over the config's, :func:`~agents.app.tournament.resolve_tournament`), or one matchup's market on
    RLlib.

    Raises:
        ImportError: ``--backend rllib`` without Ray RLlib.
        ConfigError / ValueError: an invalid tournament config or matchup.
    """
    if args.backend == "rllib":
        config, run_dir = resolve_matchup(args.config, args.run_dir, seed=args.seed, matchup=args.matchup,
                                          timesteps=args.timesteps, overrides=args.hp,
                                          num_env_runners=args.num_env_runners, ray_address=args.ray_address)
        return Run("rllib", config, run_dir)
    config, run_dir = resolve_tournament(args.config, args.run_dir, seed=args.seed, timesteps=args.timesteps,
                                         episodes=args.episodes, seeds=args.seeds)
    return Run("tournament", config, run_dir)


def build_training(run: Run) -> Training:
    """What trains ``run``; a new run that fails here loses its folder (it holds only ``config.yaml``).

    Raises:
        ConfigError / ValueError / TypeError / KeyError: settings the envs, the sleep phase or the model reject.
        FileNotFoundError: ``--resume`` of a run without a complete checkpoint.
        ImportError / ConnectionError: RLlib is missing, or its Ray cluster cannot be joined.
    """
    try:
        if run.kind == "rllib":
            return RLlibTraining.build(run.config, run.run_dir)
        if run.kind == "tournament":
            return TournamentTraining(run.config, run.run_dir)
        return SB3Training.build(run)
    except BaseException:
        if not run.resumed:
            _discard(run.run_dir)
        raise


def _discard(run_dir: Path) -> None:
    """Remove a run folder that holds nothing but its ``config.yaml`` (the run failed before training)."""
    if [p.name for p in run_dir.iterdir()] == ["config.yaml"]:
        (run_dir / "config.yaml").unlink()
        run_dir.rmdir()


class SB3Training:
    """A built Stable-Baselines3 run: its vectorized env, model and callbacks.

    Args:
        run: the resolved run.
        model: the SB3 model (new, or restored from the run's latest checkpoint).
        callbacks: sleep phase (``janus-dqn``), cerebellum and basal ganglia (``janus-*``), ``janus/*`` metrics
            and, last, the atomic checkpoints.
        cerebellum: the slippage forward model the JANUS algorithms learn online (None for the others); it feeds
            the slippage breaker when the run's breakers are on, and is saved beside the model for evaluation.
    """

    def __init__(self, run: Run, model: Any, callbacks: list[Any], cerebellum: Any = None,
                 resumed_step: int | None = None) -> None:
        self.run, self.model, self.callbacks, self.cerebellum = run, model, callbacks, cerebellum
        self.resumed_step = resumed_step
        """The step of the checkpoint a resumed run was loaded from (None for a new run)."""
        self._start = time.perf_counter()

    @classmethod
    def build(cls, run: Run) -> SB3Training:
        """Env, callbacks, model: built, or restored from the newest intact checkpoint (``agents.app.checkpoint``)
        with its buffer, callbacks' states, cerebellum, sleep state and, last, the RNG states."""
        torch.set_num_threads(run.torch_threads)
        settings, params, run_dir = run.config["run"], run.config["hyperparams"], run.run_dir
        recover_checkpoints(run_dir)  # what a killed save left: finished or removed (a new run has none)
        cerebellum = make_cerebellum(settings["algo"], settings["env"], params, seed=settings["seed"])
        env = make_vec_env(settings["env"], params, seed=settings["seed"], cerebellum=cerebellum)
        sleep_cb = sleep_callback(settings["algo"], params, seed=settings["seed"], run_dir=run_dir, env=env)
        callbacks = [cb for cb in (sleep_cb,) if cb is not None]
        callbacks += brain_callbacks(settings["algo"], params, cerebellum)
        components = {type(cb).__name__: cb for cb in callbacks}
        train_env = env
        if params.get("normalize_reward"):  # the learner sees scaled rewards; callbacks and Monitor the env's
            train_env = reward_normalizer(env, algo_class(settings["algo"]), params)
            components[NORM_STATE_KEY] = RewardNormalizationState(train_env)
        checkpoints = AtomicCheckpointCallback(
            run_dir, settings["checkpoint_every"], sleep_cb, extra={"run": settings},
            keep=settings.get("keep_checkpoints", DEFAULT_KEEP), components=components, cerebellum=cerebellum)
        callbacks += [JanusMetricsCallback(plot_dir=run_dir / "plots"), checkpoints]
        checkpoint = None
        if run.resumed:
            def restore(folder: Path) -> Checkpoint:
                loaded = load_checkpoint(folder, algo_class(settings["algo"]), train_env)
                checkpoints.restore(loaded)
                return loaded

            folder, checkpoint = resume_checkpoint(run_dir, restore)
            model, step = checkpoint.model, int(checkpoint.model.num_timesteps)
            model.tensorboard_log = str(run_dir)
            # SB3 resets the rebuilt envs at learn() (the killed episode's market is gone), seeded for this step
            model._last_obs = None
            model.get_env().seed(resume_seed(settings["seed"], step))
            print(f"resuming {run_dir} from {folder.name} at step {step}")
        else:
            model = build_model(settings["algo"], train_env, params, seed=settings["seed"],
                                tensorboard_log=str(run_dir))
        if is_basal_ganglia_policy(model.policy):  # the logic gate judges each proposal in its env's current state
            attach_shield_logic(model.policy, env.envs)
        if checkpoint is not None:
            restore_rng(checkpoint.rng, model)  # last: nothing draws from the generators before learn()
        return cls(run, model, callbacks, cerebellum, None if checkpoint is None else int(model.num_timesteps))

    def learn(self, progress: bool = True) -> None:
        """``model.learn`` for the steps left to ``run["timesteps"]`` (none left: nothing)."""
        remaining = int(self.run.config["run"]["timesteps"]) - int(self.model.num_timesteps)
        self._start = time.perf_counter()
        if remaining > 0:
            self.model.learn(total_timesteps=remaining, callback=self.callbacks, progress_bar=progress,
                             reset_num_timesteps=not self.run.resumed, tb_log_name="tb")

    def save(self) -> str:
        """A last checkpoint, then ``model.zip`` (atomically: an interrupted save never clobbers it).

        A resumed run that had nothing left to learn is at the checkpoint it was loaded from: that one is kept
        as it is (a run killed after its last checkpoint but before ``model.zip`` is finished this way).
        """
        if self.model.num_timesteps != self.resumed_step:
            self.callbacks[-1].save(self.model)
        run_dir, settings = self.run.run_dir, self.run.config["run"]
        with atomic_path(run_dir / "model.zip") as tmp:
            self.model.save(tmp)
        if self.cerebellum is not None:
            with atomic_path(run_dir / CEREBELLUM_FILE) as tmp:
                torch.save(self.cerebellum.state_dict(), tmp)
        memory = getattr(self.model.policy, "memory", None)
        if memory is not None:  # what the policy read at the end: evaluate.py reads the same
            memory.save(run_dir / MEMORY_FILE)
        elapsed = time.perf_counter() - self._start
        return "\n".join([
            f"\ntrained {settings['algo']} on {settings['env']} for {self.model.num_timesteps} steps in {elapsed:.0f}s",
            f"  model:       {run_dir / 'model.zip'}",
            f"  config:      {run_dir / 'config.yaml'}",
            f"  checkpoints: {run_dir / 'checkpoints'}",
            f"  TensorBoard: tensorboard --logdir {run_dir}"])
