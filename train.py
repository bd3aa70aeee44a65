"""Train an agent on a JANUS env; TensorBoard curves, checkpoints and the resolved config go to the run folder.

    python train.py --env Janus-LOB-v0 --algo janus-dqn --timesteps 20000 --seed 0
    python train.py --resume runs/<run>            # continue a killed run from its last checkpoint
    python train.py multi --config configs/adversarial.yaml   # multi-agent tournament (agents/app/tournament.py)
    python train.py multi --config configs/adversarial.yaml --timesteps 500 --episodes 1 --seeds 0   # a quick one
    python train.py --backend rllib --num-env-runners 4       # PPO on Ray RLlib (pip install 'janus-rl[rllib]')
    python train.py multi --backend rllib --config configs/adversarial.yaml --ray-address auto   # on a Ray cluster

parse → resolve → build → learn → save, each step one call into ``agents.app.training``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.app.checkpoint import DEFAULT_KEEP
from agents.app.cli import OneLineParser, data_option
from agents.app.config import ALGOS
from agents.app.training import USAGE_ERRORS, build_training, resolve_multi_run, resolve_run

BACKENDS = ("sb3", "rllib")
_RLLIB_ALGO = "--backend rllib trains PPO only; got --algo {}"
_RLLIB_RESUME = "--resume is not supported with --backend rllib (restore with Algorithm.from_checkpoint)"
_BAD_SEEDS = "expected a comma list of ints, e.g. 0,1,2, got {!r}"


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="sb3", choices=BACKENDS,
                   help="sb3: Stable-Baselines3 in this process; rllib: PPO on Ray RLlib (default: %(default)s)")
    p.add_argument("--num-env-runners", type=int, default=2,
                   help="rllib: sampling actors, one env each; 0 samples in the driver (default: %(default)s)")
    p.add_argument("--ray-address", default=None,
                   help="rllib: Ray cluster to join, 'auto' or HOST:PORT (default: start a local Ray)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    p.add_argument("--keep-checkpoints", type=int, default=None, metavar="K",
                   help=f"checkpoints kept on disk, the newest and K-1 older fallbacks in case it is damaged "
                        f"(default: {DEFAULT_KEEP}; --resume: the run's)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch CPU threads; small policies train fastest on 1 (default: %(default)s)")
    _add_backend_args(p)
    args = p.parse_args(argv)
    for name in ("timesteps", "n_envs", "checkpoint_every", "keep_checkpoints", "torch_threads"):
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


def parse_multi_args(argv: list[str]) -> argparse.Namespace:
    """``train.py multi``: train the learned agents of a roster and play its round-robin tournament."""
    p = OneLineParser(prog="train.py multi", description="Multi-agent tournament on janus_market_v0.")
    p.add_argument("--config", type=Path, required=True, help="tournament YAML (see agents/app/tournament.py)")
    p.add_argument("--run-dir", type=Path, default=Path("runs"), help="parent folder of runs (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_backend_args(p)
    p.add_argument("--matchup", default=None, help="rllib: the matchup whose roster learns (default: the first)")
    p.add_argument("--timesteps", type=int, default=None,
                   help="sb3: training steps of every learned agent in every matchup (default: each one's "
                        "`timesteps`); rllib: total env steps (default: the largest `timesteps` of the roster's "
                        "learners)")
    p.add_argument("--episodes", type=int, default=None,
                   help="sb3: evaluation episodes per seed and matchup (default: the config's `episodes`)")
    p.add_argument("--seeds", type=_seed_list, default=None, metavar="S1,S2,...",
                   help="sb3: evaluation seeds, a comma list of ints (default: the config's `seeds`)")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="rllib: override a PPO hyper-parameter of configs/ppo.yml, e.g. --hp n_steps=128")
    args = p.parse_args(argv)
    if args.num_env_runners < 0:
        p.error(f"--num-env-runners must be >= 0, got {args.num_env_runners}")
    for name in ("timesteps", "episodes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    if args.backend == "sb3" and (args.matchup is not None or args.hp):
        p.error("--matchup and --hp need --backend rllib (the sb3 tournament reads them from --config)")
    if args.backend == "rllib" and (args.episodes is not None or args.seeds is not None):
        p.error("--episodes and --seeds are the sb3 tournament's (--backend rllib trains one matchup)")
    return args


def _seed_list(text: str) -> list[int]:
    """``argparse`` type of ``--seeds``: ``"0,1,2"`` → [0, 1, 2]."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(_BAD_SEEDS.format(text)) from None
    return seeds


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    multi = argv[:1] == ["multi"]
    args = parse_multi_args(argv[1:]) if multi else parse_args(argv)
    try:
        run = resolve_multi_run(args) if multi else resolve_run(args)
        training = build_training(run)
    except USAGE_ERRORS as err:  # bad input: one line, exit status 2, no run folder left behind
        print(f"train.py{' multi' if multi else ''}: error: {err}", file=sys.stderr)
        return 2
    training.learn(progress=not args.no_progress)
    print(training.save())
    return 0


if __name__ == "__main__":
    sys.exit(main())
