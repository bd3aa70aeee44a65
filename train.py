"""Train an agent on a JANUS env; TensorBoard curves, checkpoints and the resolved config go to the run folder.

    python train.py --env Janus-LOB-v0 --algo janus-dqn --timesteps 20000 --seed 0
    python train.py --resume runs/<run>            # continue a killed run from its last checkpoint
    python train.py multi --config configs/adversarial.yaml   # multi-agent tournament (agents/tournament.py)
    python train.py --backend rllib --num-env-runners 4       # PPO on Ray RLlib (pip install 'janus-rl[rllib]')
    python train.py multi --backend rllib --config configs/adversarial.yaml --ray-address auto   # on a Ray cluster
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from agents.checkpoint import atomic_write_bytes

BACKENDS = ("sb3", "rllib")
_RLLIB_ALGO = "--backend rllib trains PPO only; got --algo {}"
_RLLIB_RESUME = "--resume is not supported with --backend rllib (restore with Algorithm.from_checkpoint)"


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="sb3", choices=BACKENDS,
                   help="sb3: Stable-Baselines3 in this process; rllib: PPO on Ray RLlib (default: %(default)s)")
    p.add_argument("--num-env-runners", type=int, default=2,
                   help="rllib: sampling actors, one env each; 0 samples in the driver (default: %(default)s)")
    p.add_argument("--ray-address", default=None,
                   help="rllib: Ray cluster to join, 'auto' or HOST:PORT (default: start a local Ray)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from agents.cli import OneLineParser, data_option
    from agents.zoo import ALGOS

    p = OneLineParser(prog="train.py", description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Janus-LOB-v0", help="registered env id (default: %(default)s)")
    p.add_argument("--algo", default=None, choices=ALGOS, help="algorithm (default: janus-dqn; ppo with rllib)")
    p.add_argument("--scenario", default=None, help="market scenario: ou, gbm, regime, flash_crash, high_vol, squeeze")
    p.add_argument("--timesteps", type=int, default=None, help="total env steps (default: the config's n_timesteps)")
    p.add_argument("--seed", type=int, default=0, help="run seed; part of the run name (default: %(default)s)")
    p.add_argument("--n-envs", type=int, default=None, help="parallel envs (default: the config's n_envs)")
    p.add_argument("--config", type=Path, default=None, help="YAML hyper-parameters overriding configs/<algo>.yml")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyper-parameter (dotted keys, YAML values), e.g. --hp learning_rate=1e-3")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="historical data file or shipped sample name (e.g. btc_usd_hourly); implies --scenario "
                        "historical (same as --data-option path=PATH)")
    p.add_argument("--data-option", action="append", default=[], type=data_option, metavar="KEY=VALUE",
                   help="option for reading the historical data (YAML value; repeatable): path=FILE or sample name, "
                        "asset=ETH, columns.close='Adj Close', ... (see janus_env.historical.load_source); the file "
                        "may also come from --hp env_kwargs.data=FILE")
    p.add_argument("--run-dir", type=Path, default=Path("runs"), help="parent folder of runs (default: %(default)s)")
    p.add_argument("--run-name", default=None, help="run folder name (default: env__algo__scenario__s<seed>__<time>)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN", help="continue RUN from its latest checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=5000, help="steps between checkpoints (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch CPU threads; small policies train fastest on 1 (default: %(default)s)")
    _add_backend_args(p)
    args = p.parse_args(argv)
    for name in ("timesteps", "n_envs", "checkpoint_every", "torch_threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.num_env_runners < 0:
        p.error(f"--num-env-runners must be >= 0, got {args.num_env_runners}")
    if args.data is not None:
        if args.scenario not in (None, "historical"):
            p.error(f"--data needs --scenario historical, got {args.scenario!r}")
        args.scenario = "historical"
        args.data_option = [(["path"], args.data), *args.data_option]
    if args.resume is not None and args.data_option:
        p.error("--data/--data-option cannot change a resumed run (its data is in RUN/config.yaml)")
    if args.backend == "rllib":
        if args.algo not in (None, "ppo"):
            p.error(_RLLIB_ALGO.format(args.algo))
        if args.resume is not None:
            p.error(_RLLIB_RESUME)
    args.algo = args.algo or ("ppo" if args.backend == "rllib" else "janus-dqn")
    return args


def resolve(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The resolved config (saved in the run) and the run folder, for a new run or a resume."""
    from agents.cli import data_spec
    from agents.zoo import ConfigError, read_yaml, resolve_hyperparams

    if args.resume is not None:
        run_dir = args.resume
        config = read_yaml(run_dir / "config.yaml")
        if args.timesteps is not None:
            config["run"]["timesteps"] = args.timesteps
        return config, run_dir
    params = resolve_hyperparams(args.algo, args.env, args.config, args.hp)
    if args.scenario is not None:
        params.setdefault("env_kwargs", {})["scenario"] = args.scenario
    if args.data_option:
        env_kwargs = params.setdefault("env_kwargs", {})
        env_kwargs["data"] = data_spec(env_kwargs.get("data"), args.data_option)
        if "path" not in env_kwargs["data"]:
            raise ConfigError("--data-option needs the data file: --data-option path=FILE (or a sample name) "
                              "or --hp env_kwargs.data=FILE")
        if env_kwargs.get("scenario") != "historical":
            raise ConfigError(f"--data-option needs --scenario historical, got {env_kwargs.get('scenario')!r}")
    if args.n_envs is not None:
        params["n_envs"] = args.n_envs
    timesteps = args.timesteps or int(params.get("n_timesteps", 20000))
    scenario = params.get("env_kwargs", {}).get("scenario", "default")
    label = args.algo if args.backend == "sb3" else f"rllib-{args.algo}"
    name = args.run_name or f"{args.env}__{label}__{scenario}__s{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = args.run_dir / name
    if run_dir.exists():
        raise FileExistsError(f"run folder {run_dir} exists; pass --resume {run_dir} to continue it")
    config = {"run": {"env": args.env, "algo": args.algo, "seed": args.seed, "timesteps": timesteps,
                      "checkpoint_every": args.checkpoint_every}, "hyperparams": params}
    if args.backend == "rllib":
        config["run"].update(backend="rllib", num_env_runners=args.num_env_runners, ray_address=args.ray_address)
    run_dir.mkdir(parents=True)
    atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    return config, run_dir


def multi(argv: list[str]) -> int:
    """``train.py multi``: train the learned agents of a roster and play its round-robin tournament."""
    from agents.cli import OneLineParser

    p = OneLineParser(prog="train.py multi", description="Multi-agent tournament on janus_market_v0.")
    p.add_argument("--config", type=Path, required=True, help="tournament YAML (see agents/tournament.py)")
    p.add_argument("--run-dir", type=Path, default=Path("runs"), help="parent folder of runs (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_backend_args(p)
    p.add_argument("--matchup", default=None, help="rllib: the matchup whose roster learns (default: the first)")
    p.add_argument("--timesteps", type=int, default=None,
                   help="rllib: total env steps (default: the largest `timesteps` of the roster's learners)")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="rllib: override a PPO hyper-parameter of configs/ppo.yml, e.g. --hp n_steps=128")
    args = p.parse_args(argv)
    if args.num_env_runners < 0:
        p.error(f"--num-env-runners must be >= 0, got {args.num_env_runners}")
    if args.timesteps is not None and args.timesteps < 1:
        p.error(f"--timesteps must be >= 1, got {args.timesteps}")
    if args.backend == "sb3" and (args.matchup is not None or args.timesteps is not None or args.hp):
        p.error("--matchup, --timesteps and --hp need --backend rllib (the sb3 tournament reads them from --config)")
    from agents import tournament

    try:
        if args.backend == "rllib":
            algo_config, run, run_dir = multi_rllib(args)
        else:
            return tournament.main(args.config, args.run_dir, seed=args.seed, progress=not args.no_progress)
    except (ValueError, ImportError) as err:  # ConfigError is a ValueError
        print(f"train.py multi: error: {err}", file=sys.stderr)
        return 2
    return train_rllib(algo_config, run, run_dir, progress=not args.no_progress)


def multi_rllib(args: argparse.Namespace) -> tuple[Any, dict[str, Any], Path]:
    """``train.py multi --backend rllib``: the PPOConfig, run record and folder of one matchup's market.

    The matchup's learned agents (``{algo: ...}`` in its roster) learn with PPO whatever their
    ``algo`` (one module per role, or per agent with ``shared: false``); its scripted agents
    act inside the env. Hyper-parameters: ``configs/ppo.yml`` and ``--hp``.
    """
    from agents.tournament import load_config
    from agents.zoo import resolve_hyperparams
    from envs_registry.rllib import MULTI_ENV_ID, ppo_config, require_rllib

    require_rllib()
    cfg = load_config(args.config)
    names = [m["name"] for m in cfg["matchups"]]
    if args.matchup is not None and args.matchup not in names:
        raise ValueError(f"Unknown matchup {args.matchup!r}; expected one of {names}")
    matchup = cfg["matchups"][names.index(args.matchup) if args.matchup is not None else 0]
    learned = {a: s for a, s in matchup["agents"].items() if isinstance(s, dict)}
    if not learned:
        raise ValueError(f"matchup {matchup['name']!r} has no learned agent ({{algo: ppo, timesteps: N}})")
    for agent, spec in learned.items():
        if spec["algo"] != "ppo" or spec["hyperparams"]:
            print(f"train.py multi: note: {agent} learns with RLlib PPO and configs/ppo.yml; its roster algo "
                  f"{spec['algo']!r} and hyperparams are the sb3 backend's", file=sys.stderr)
    params = resolve_hyperparams("ppo", MULTI_ENV_ID, None, args.hp)
    params.pop("env_kwargs", None)  # the market is the tournament config's
    timesteps = args.timesteps or max(spec["timesteps"] for spec in learned.values())
    run_dir = args.run_dir / (f"multi__{args.config.stem}__{matchup['name']}__rllib-ppo__s{args.seed}__"
                              f"{time.strftime('%Y%m%d-%H%M%S')}")
    run = {"env": MULTI_ENV_ID, "algo": "ppo", "backend": "rllib", "seed": args.seed, "timesteps": timesteps,
           "num_env_runners": args.num_env_runners, "ray_address": args.ray_address, "matchup": matchup["name"]}
    env_config = {"env": matchup["env"], "agents": matchup["agents"], "seed": args.seed}
    algo_config = ppo_config(MULTI_ENV_ID, env_config, num_env_runners=args.num_env_runners, seed=args.seed,
                             hyperparams=params)
    run_dir.mkdir(parents=True)
    config = {"run": run, "env_config": env_config, "hyperparams": params}
    atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False).encode())
    return algo_config, run, run_dir


def _iteration_row(result: dict[str, Any], modules: list[str], start: float) -> dict[str, Any]:
    """One line of ``progress.csv``: steps, episode returns (all agents summed, and per module), losses."""
    runners, learners = result.get("env_runners", {}), result.get("learners", {})
    row = {"iteration": int(result["training_iteration"]), "env_steps": int(result["num_env_steps_sampled_lifetime"]),
           "time_s": round(time.perf_counter() - start, 3),
           "episode_return_mean": float(runners.get("episode_return_mean", math.nan)),
           "episode_len_mean": float(runners.get("episode_len_mean", math.nan)),
           "num_episodes": int(runners.get("num_episodes", 0))}
    per_module = runners.get("module_episode_returns_mean", {})
    for m in modules:
        if modules != ["default_policy"]:  # multi-agent: the return of each module's agents
            row[f"episode_return_mean/{m}"] = float(per_module.get(m, math.nan))
        row[f"total_loss/{m}"] = float(learners.get(m, {}).get("total_loss", math.nan))
    return row


def _write_progress(rows: list[dict[str, Any]], run_dir: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(run_dir / "progress.csv", buf.getvalue().encode())
    clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]
    atomic_write_bytes(run_dir / "progress.json", json.dumps(clean, indent=1).encode())


def _discard(run_dir: Path | None) -> None:
    """Remove a run folder that holds nothing but its ``config.yaml`` (the run failed before training)."""
    if run_dir is not None and [p.name for p in run_dir.iterdir()] == ["config.yaml"]:
        (run_dir / "config.yaml").unlink()
        run_dir.rmdir()


def train_rllib(config: Any, run: dict[str, Any], run_dir: Path, progress: bool = True) -> int:
    """Loop ``algo.train()`` until ``run["timesteps"]`` env steps are sampled; progress, checkpoint in ``run_dir``."""
    import ray
    from tqdm import tqdm

    from envs_registry.rllib import register_rllib_envs

    local = {"num_cpus": max(os.cpu_count() or 1, run["num_env_runners"]), "include_dashboard": False}
    try:  # join the cluster at --ray-address, or start a local Ray with a CPU slot for every env runner
        ray.init(address=run["ray_address"], logging_level="WARNING", **({} if run["ray_address"] else local))
    except ConnectionError as err:  # --ray-address auto without a running cluster
        print(f"train.py: error: cannot join the Ray cluster at {run['ray_address']!r}: {err}", file=sys.stderr)
        _discard(run_dir)
        return 2
    register_rllib_envs()
    algo = config.build_algo()
    modules = sorted(algo.config.policies) if algo.config.is_multi_agent else ["default_policy"]
    every, timesteps = int(run.get("checkpoint_every", 0) or 0), int(run["timesteps"])
    next_checkpoint = every or math.inf
    checkpoint = (run_dir / "checkpoint").resolve()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    bar = tqdm(total=timesteps, unit="step", disable=not progress, file=sys.stderr, desc="rllib ppo")
    try:
        while not rows or rows[-1]["env_steps"] < timesteps:
            rows.append(_iteration_row(algo.train(), modules, start))
            _write_progress(rows, run_dir)
            bar.update(min(rows[-1]["env_steps"], timesteps) - bar.n)
            bar.set_postfix(ret=f"{rows[-1]['episode_return_mean']:.2f}")
            if rows[-1]["env_steps"] >= next_checkpoint:
                algo.save_to_path(checkpoint)
                next_checkpoint = (rows[-1]["env_steps"] // every + 1) * every
        algo.save_to_path(checkpoint)
    finally:
        bar.close()
        algo.stop()
        ray.shutdown()
    last = rows[-1]
    print(f"\ntrained RLlib PPO ({', '.join(modules)}) on {run['env']} for {last['env_steps']} env steps "
          f"in {last['time_s']:.0f}s with {run['num_env_runners']} env runners; "
          f"episode return mean {last['episode_return_mean']:.2f}")
    print(f"  checkpoint: {checkpoint}")
    print(f"  progress:   {run_dir / 'progress.csv'} (and .json)")
    print(f"  config:     {run_dir / 'config.yaml'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["multi"]:
        return multi(argv[1:])
    args = parse_args(argv)
    if args.backend == "rllib":
        from envs_registry.rllib import ppo_config, require_rllib

        run_dir = None
        try:
            require_rllib()
            config, run_dir = resolve(args)
            run, params = config["run"], config["hyperparams"]
            algo_config = ppo_config(run["env"], params.get("env_kwargs", {}), num_env_runners=run["num_env_runners"],
                                     seed=run["seed"], hyperparams=params)
        except (ImportError, FileExistsError, ValueError) as err:  # ConfigError is a ValueError
            print(f"train.py: error: {err}", file=sys.stderr)
            _discard(run_dir)
            return 2
        return train_rllib(algo_config, run, run_dir, progress=not args.no_progress)
    import torch

    torch.set_num_threads(args.torch_threads)
    from agents.callbacks import AtomicCheckpointCallback, JanusMetricsCallback
    from agents.checkpoint import latest_checkpoint, load_checkpoint
    from agents.zoo import ConfigError, algo_class, brain_callbacks, build_model, make_vec_env, sleep_callback

    run_dir = None
    try:
        config, run_dir = resolve(args)
        run, params = config["run"], config["hyperparams"]
        env = make_vec_env(run["env"], params, seed=run["seed"])
        sleep_cb = sleep_callback(run["algo"], params, seed=run["seed"], run_dir=run_dir, env=env)
    except (ConfigError, FileExistsError, FileNotFoundError, ValueError, TypeError, KeyError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        _discard(run_dir if args.resume is None else None)  # a new run that failed before training leaves nothing
        return 2

    sleep_state = None
    if args.resume is not None:
        folder = latest_checkpoint(run_dir)
        model, meta, sleep_state = load_checkpoint(folder, algo_class(run["algo"]), env)
        model.tensorboard_log = str(run_dir)
        print(f"resuming {run_dir} from {folder.name} at step {meta['num_timesteps']}")
    else:
        model = build_model(run["algo"], env, params, seed=run["seed"], tensorboard_log=str(run_dir))
    if sleep_cb is not None and sleep_state is not None:
        from replay import SleepState

        sleep_cb.sleep_state = SleepState.from_state_dict(sleep_state, sleep_cb.sleep_config)
    callbacks = [cb for cb in (sleep_cb,) if cb is not None] + brain_callbacks(run["algo"], params, env)
    callbacks += [JanusMetricsCallback(plot_dir=run_dir / "plots"),
                  AtomicCheckpointCallback(run_dir, run["checkpoint_every"], sleep_cb, extra={"run": run})]
    remaining = int(run["timesteps"]) - int(model.num_timesteps)
    start = time.perf_counter()
    if remaining > 0:
        model.learn(total_timesteps=remaining, callback=callbacks, progress_bar=not args.no_progress,
                    reset_num_timesteps=args.resume is None, tb_log_name="tb")
    callbacks[-1].save()
    tmp = run_dir / ".model.tmp.zip"  # save, then rename: an interrupted save never clobbers model.zip
    model.save(tmp)
    tmp.replace(run_dir / "model.zip")
    elapsed = time.perf_counter() - start
    print(f"\ntrained {run['algo']} on {run['env']} for {model.num_timesteps} steps in {elapsed:.0f}s")
    print(f"  model:       {run_dir / 'model.zip'}")
    print(f"  config:      {run_dir / 'config.yaml'}")
    print(f"  checkpoints: {run_dir / 'checkpoints'}")
    print(f"  TensorBoard: tensorboard --logdir {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
