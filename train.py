"""Train an agent on a JANUS env; TensorBoard curves, checkpoints and the resolved config go to the run folder.

    python train.py --env Janus-LOB-v0 --algo janus-dqn --timesteps 20000 --seed 0
    python train.py --resume runs/<run>            # continue a killed run from its last checkpoint
    python train.py multi --config configs/adversarial.yaml   # multi-agent tournament (agents/tournament.py)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from agents.checkpoint import atomic_write_bytes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from agents.cli import OneLineParser
    from agents.zoo import ALGOS

    p = OneLineParser(prog="train.py", description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Janus-LOB-v0", help="registered env id (default: %(default)s)")
    p.add_argument("--algo", default="janus-dqn", choices=ALGOS, help="algorithm (default: %(default)s)")
    p.add_argument("--scenario", default=None, help="market scenario: ou, gbm, regime, flash_crash, high_vol, squeeze")
    p.add_argument("--timesteps", type=int, default=None, help="total env steps (default: the config's n_timesteps)")
    p.add_argument("--seed", type=int, default=0, help="run seed; part of the run name (default: %(default)s)")
    p.add_argument("--n-envs", type=int, default=None, help="parallel envs (default: the config's n_envs)")
    p.add_argument("--config", type=Path, default=None, help="YAML hyper-parameters overriding configs/<algo>.yml")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="override one hyper-parameter (dotted keys, YAML values), e.g. --hp learning_rate=1e-3")
    p.add_argument("--run-dir", type=Path, default=Path("runs"), help="parent folder of runs (default: %(default)s)")
    p.add_argument("--run-name", default=None, help="run folder name (default: env__algo__scenario__s<seed>__<time>)")
    p.add_argument("--resume", type=Path, default=None, metavar="RUN", help="continue RUN from its latest checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=5000, help="steps between checkpoints (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch CPU threads; small policies train fastest on 1 (default: %(default)s)")
    args = p.parse_args(argv)
    for name in ("timesteps", "n_envs", "checkpoint_every", "torch_threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return args


def resolve(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """The resolved config (saved in the run) and the run folder, for a new run or a resume."""
    from agents.zoo import read_yaml, resolve_hyperparams

    if args.resume is not None:
        run_dir = args.resume
        config = read_yaml(run_dir / "config.yaml")
        if args.timesteps is not None:
            config["run"]["timesteps"] = args.timesteps
        return config, run_dir
    params = resolve_hyperparams(args.algo, args.env, args.config, args.hp)
    if args.scenario is not None:
        params.setdefault("env_kwargs", {})["scenario"] = args.scenario
    if args.n_envs is not None:
        params["n_envs"] = args.n_envs
    timesteps = args.timesteps or int(params.get("n_timesteps", 20000))
    scenario = params.get("env_kwargs", {}).get("scenario", "default")
    name = args.run_name or f"{args.env}__{args.algo}__{scenario}__s{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = args.run_dir / name
    if run_dir.exists():
        raise FileExistsError(f"run folder {run_dir} exists; pass --resume {run_dir} to continue it")
    config = {"run": {"env": args.env, "algo": args.algo, "seed": args.seed, "timesteps": timesteps,
                      "checkpoint_every": args.checkpoint_every}, "hyperparams": params}
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
    args = p.parse_args(argv)
    from agents import tournament

    try:
        return tournament.main(args.config, args.run_dir, seed=args.seed, progress=not args.no_progress)
    except ValueError as err:  # ConfigError is a ValueError
        print(f"train.py multi: error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["multi"]:
        return multi(argv[1:])
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.torch_threads)
    from agents.callbacks import AtomicCheckpointCallback, JanusMetricsCallback
    from agents.checkpoint import latest_checkpoint, load_checkpoint
    from agents.zoo import ConfigError, algo_class, brain_callbacks, build_model, make_vec_env

    try:
        config, run_dir = resolve(args)
        run, params = config["run"], config["hyperparams"]
        env = make_vec_env(run["env"], params, seed=run["seed"])
    except (ConfigError, FileExistsError, FileNotFoundError, ValueError, TypeError, KeyError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 2

    sleep_cb = None
    sleep_state = None
    if args.resume is not None:
        folder = latest_checkpoint(run_dir)
        model, meta, sleep_state = load_checkpoint(folder, algo_class(run["algo"]), env)
        model.tensorboard_log = str(run_dir)
        print(f"resuming {run_dir} from {folder.name} at step {meta['num_timesteps']}")
    else:
        model = build_model(run["algo"], env, params, seed=run["seed"], tensorboard_log=str(run_dir))
    if run["algo"] == "janus-dqn" and params.get("sleep"):
        from replay import SleepConfig, SleepPhaseCallback, SleepState

        sleep = dict(params["sleep"])
        cycle = SleepConfig(**{"plot_dir": str(run_dir / "plots" / "umap"), "seed": run["seed"],
                               **sleep.pop("cycle", {})})
        sleep_cb = SleepPhaseCallback(sleep_config=cycle, seed=run["seed"], **sleep)
        if sleep_state is not None:
            sleep_cb.sleep_state = SleepState.from_state_dict(sleep_state, cycle)
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
