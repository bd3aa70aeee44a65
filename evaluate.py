"""Evaluate a trained run (or the baselines alone) across market scenarios: metrics table, CSV/JSON, PNG plots.

    python evaluate.py runs/<run> --scenarios all --episodes 3 --baselines all
    python evaluate.py --baselines all --scenarios ou,flash_crash          # baselines only
    python evaluate.py runs/<run> --scenarios historical --data janus_env/samples/btc_book_15_levels.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from agents.cli import OneLineParser

    p = OneLineParser(prog="evaluate.py", description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", type=Path, default=None,
                   help="run folder (with config.yaml and model.zip) or a model.zip inside one; omit for baselines only")
    p.add_argument("--env", default=None, help="env id when no run is given (default: Janus-LOB-v0)")
    p.add_argument("--scenarios", default="all",
                   help="'all' or a comma list of ou,gbm,regime,flash_crash,high_vol,squeeze,historical")
    p.add_argument("--episodes", type=int, default=3, help="seeded episodes per strategy and scenario (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1000, help="first evaluation seed (default: %(default)s, apart from training seeds)")
    p.add_argument("--baselines", default="all", help="'all', 'none' or a comma list (see README)")
    p.add_argument("--steps", type=int, default=None, help="decisions per episode (default: the run's)")
    p.add_argument("--data", type=Path, default=None, help="data file for the historical scenario")
    p.add_argument("--split", type=float, default=0.7,
                   help="walk-forward: evaluate historical episodes on rows after this fraction (default: %(default)s)")
    p.add_argument("--no-glass-box", action="store_true", help="evaluate without the LTN shield and amygdala")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/eval or runs/evaluate)")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error(f"--episodes must be >= 1, got {args.episodes}")
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    if not 0.0 < args.split < 1.0:
        p.error(f"--split must be in (0, 1), got {args.split}")
    return args


def load_run(path: Path) -> tuple[dict[str, Any], Any]:
    """(run config, model) from a run folder or a model.zip inside one."""
    from agents.zoo import algo_class, read_yaml

    run_dir = path.parent if path.suffix == ".zip" else path
    model_path = path if path.suffix == ".zip" else path / "model.zip"
    if not model_path.is_file():
        raise FileNotFoundError(f"no model at {model_path}")
    config = read_yaml(run_dir / "config.yaml")
    model = algo_class(config["run"]["algo"]).load(model_path, device="cpu")
    return config, model


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from tqdm import tqdm

    import envs_registry  # noqa: F401
    from agents.baselines import EXECUTION_BASELINES, TRADING_BASELINES, make_baseline
    from agents.evaluation import (
        METRIC_COLUMNS,
        TRADING_SCENARIOS,
        agent_policy,
        make_eval_env,
        markdown_table,
        run_episode,
        summarize,
        write_outputs,
    )
    from agents.zoo import ConfigError

    torch.set_num_threads(1)
    try:
        config, model = load_run(args.run) if args.run is not None else (None, None)
    except (FileNotFoundError, ConfigError, ValueError) as err:
        print(f"evaluate.py: error: {err}", file=sys.stderr)
        return 2
    env_id = config["run"]["env"] if config else (args.env or "Janus-LOB-v0")
    env_kwargs = dict(config["hyperparams"].get("env_kwargs", {})) if config else {}
    if args.steps is not None:
        env_kwargs["horizon" if env_id == "Janus-Execution-v0" else "episode_steps"] = args.steps
    table = EXECUTION_BASELINES if env_id == "Janus-Execution-v0" else TRADING_BASELINES
    names = [] if args.baselines == "none" else (sorted(table) if args.baselines == "all" else args.baselines.split(","))
    scenarios = list(TRADING_SCENARIOS) + (["historical"] if args.data else []) if args.scenarios == "all" \
        else args.scenarios.split(",")
    problems = [n for n in names if n not in table] + [s for s in scenarios
                                                        if s not in TRADING_SCENARIOS + ("historical",)]
    if problems:
        print(f"evaluate.py: error: unknown baseline(s)/scenario(s) {problems}", file=sys.stderr)
        return 2
    if "historical" in scenarios and args.data is None:
        print("evaluate.py: error: the historical scenario needs --data PATH", file=sys.stderr)
        return 2
    if model is None and not names:
        print("evaluate.py: error: nothing to evaluate: give a run or some baselines", file=sys.stderr)
        return 2
    out_dir = args.out or (args.run.parent if args.run.suffix == ".zip" else args.run) / "eval" if args.run \
        else args.out or Path("runs/evaluate")
    glass_box = not args.no_glass_box
    rows, curves = [], {}
    start = time.perf_counter()
    for scenario in tqdm(scenarios, desc="scenarios"):
        kwargs = {**env_kwargs, "scenario": scenario}
        if scenario == "historical":
            kwargs.update(data=str(args.data), data_split=(args.split, 1.0))
        try:
            env = make_eval_env(env_id, kwargs, glass_box=glass_box)
        except (ValueError, TypeError) as err:
            print(f"evaluate.py: error: {scenario}: {err}", file=sys.stderr)
            return 2
        strategies = ([("agent", agent_policy(model, env))] if model is not None else []) + [
            (name, _baseline_act(make_baseline(name, env, seed=args.seed))) for name in names]
        periods = 252.0 * env.unwrapped.config.episode_steps
        curves[scenario] = {}
        for name, act in strategies:
            results = [run_episode(env, act, args.seed + k, periods) for k in range(args.episodes)]
            curves[scenario][name] = results[0].equity
            rows.append({"scenario": scenario, "strategy": name, **summarize(results)})
    elapsed = time.perf_counter() - start
    print(f"\n{env_id}: {args.episodes} episode(s) per strategy and scenario, seeds {args.seed}.."
          f"{args.seed + args.episodes - 1}, glass box {'on' if glass_box else 'off'}, {elapsed:.1f}s\n")
    print(markdown_table(rows, ("scenario", "strategy") + METRIC_COLUMNS))
    written = write_outputs(out_dir, rows, curves)
    print(f"\nwrote {', '.join(str(p) for p in written)}")
    return 0


def _baseline_act(policy: Any):
    return lambda obs: policy.predict(obs, deterministic=True)[0]


if __name__ == "__main__":
    sys.exit(main())
