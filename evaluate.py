"""Evaluate a trained run (or the baselines alone) across market scenarios: tables, CSV/JSON, PNG plots.

    python evaluate.py runs/<run> --scenarios all --episodes 5 --baselines all
    python evaluate.py --baselines all --scenarios ou,flash_crash --hp env_kwargs.lot=10      # baselines only
    python evaluate.py runs/<run> --scenarios historical --data janus_env/samples/btc_book_15_levels.csv
    python evaluate.py runs/<run> --no-breakers                     # shield on, circuit breakers off
    python evaluate.py runs/<run> --breaker vol_ratio=4 --breaker fear_threshold=0.8

Each evaluation writes into a new folder OUT/<time>/ (OUT = RUN/eval by default) and points OUT/latest at it.
The protocol (same episodes for every strategy, walk-forward windows, annualization, intervals, the paired
test against each baseline) is documented in agents/evaluation.py and agents/metrics.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

_BAD_BREAKER_ARG = "Expected --breaker NAME=VALUE (VALUE in YAML syntax, null disables), got {!r}"
_BAD_HP_KEY = "evaluate.py --hp sets env settings only (env_kwargs.NAME=VALUE), got {!r}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from agents.cli import OneLineParser, data_option
    from agents.evaluation import CALENDAR_CHOICES
    from agents.zoo import ConfigError, parse_override

    p = OneLineParser(prog="evaluate.py", description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", type=Path, default=None,
                   help="run folder (with config.yaml and model.zip) or a model.zip inside one; omit for baselines only")
    p.add_argument("--env", default=None, help="env id when no run is given (default: Janus-LOB-v0)")
    p.add_argument("--scenarios", default="all",
                   help="'all' or a comma list of ou,gbm,regime,flash_crash,high_vol,squeeze,historical")
    p.add_argument("--episodes", type=int, default=3,
                   help="episodes per strategy and scenario; on historical data at most the walk-forward windows "
                        "that fit (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1000, help="first evaluation seed (default: %(default)s, apart from training seeds)")
    p.add_argument("--baselines", default="all", help="'all', 'none' or a comma list (see README)")
    p.add_argument("--steps", type=int, default=None, help="decisions per episode (default: the run's)")
    p.add_argument("--data", type=Path, default=None,
                   help="data file for the historical scenario, or a shipped sample name (e.g. btc_usd_hourly)")
    p.add_argument("--data-option", action="append", default=[], type=data_option, metavar="KEY=VALUE",
                   help="option for reading --data (YAML value; repeatable), e.g. asset=ETH, columns.close='Adj Close', "
                        "n_levels=5 (see janus_env.historical.load_source)")
    p.add_argument("--split", type=float, default=0.7,
                   help="walk-forward: evaluate historical episodes on rows after this fraction (default: %(default)s)")
    p.add_argument("--hp", action="append", default=[], metavar="env_kwargs.NAME=VALUE",
                   help="env setting over the run's (YAML value), as in train.py, e.g. --hp env_kwargs.lot=10")
    p.add_argument("--no-shield", action="store_true", help="evaluate without the LTN shield")
    p.add_argument("--no-breakers", action="store_true", help="evaluate without the amygdala's circuit breakers")
    p.add_argument("--no-glass-box", action="store_true", help="both --no-shield and --no-breakers")
    p.add_argument("--breaker", action="append", default=[], metavar="NAME=VALUE",
                   help="wrappers.Amygdala keyword argument, e.g. --breaker vol_ratio=4 (null disables that breaker)")
    p.add_argument("--calendar", default="auto", choices=CALENDAR_CHOICES,
                   help="trading calendar for annualizing: auto = equities for the simulator and LOBSTER, from the "
                        "time stamps for L2/OHLCV data (weekend trading: crypto) (default: %(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help="parent of the evaluation folders (default: RUN/eval, or runs/evaluate without a run)")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error(f"--episodes must be >= 1, got {args.episodes}")
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    if not 0.0 < args.split < 1.0:
        p.error(f"--split must be in (0, 1), got {args.split}")
    for text in args.hp:
        try:
            keys, _ = parse_override(text)
        except ConfigError as err:
            p.error(str(err))
        if len(keys) < 2 or keys[0] != "env_kwargs":
            p.error(_BAD_HP_KEY.format(text))
    args.no_shield = args.no_shield or args.no_glass_box
    args.no_breakers = args.no_breakers or args.no_glass_box
    breakers: dict[str, Any] = {}
    for text in args.breaker:
        try:
            keys, value = parse_override(text)
        except ConfigError:
            p.error(_BAD_BREAKER_ARG.format(text))
        breakers[".".join(keys)] = value
    if breakers and args.no_breakers:
        p.error("--breaker needs the breakers on (drop --no-breakers/--no-glass-box)")
    args.breaker = breakers
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


def _fail(message: Any) -> int:
    print(f"evaluate.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from tqdm import tqdm

    import envs_registry  # noqa: F401
    from agents import evaluation as ev
    from agents.baselines import EXECUTION_BASELINES, TRADING_BASELINES, make_baseline
    from agents.zoo import ConfigError, apply_overrides

    torch.set_num_threads(1)
    try:
        config, model = load_run(args.run) if args.run is not None else (None, None)
        hyper = config["hyperparams"] if config else {}
        settings = apply_overrides({"env_kwargs": dict(hyper.get("env_kwargs", {}))}, args.hp)
        base_breakers = hyper.get("breakers") if isinstance(hyper.get("breakers"), dict) else {}
        breakers = False if args.no_breakers else ev.check_breaker_settings({**base_breakers, **args.breaker})
    except (FileNotFoundError, ConfigError, ValueError, TypeError) as err:
        return _fail(err)
    env_id = config["run"]["env"] if config else (args.env or "Janus-LOB-v0")
    env_kwargs = settings["env_kwargs"]
    if args.steps is not None:
        env_kwargs["horizon" if env_id == "Janus-Execution-v0" else "episode_steps"] = args.steps
    table = EXECUTION_BASELINES if env_id == "Janus-Execution-v0" else TRADING_BASELINES
    names = [] if args.baselines == "none" else (sorted(table) if args.baselines == "all" else args.baselines.split(","))
    run_data = env_kwargs.pop("data", None)  # a run trained on recorded data is evaluated on it by default
    run_split = env_kwargs.pop("data_split", None)
    data = args.data if args.data is not None else run_data
    if args.scenarios != "all":
        scenarios = args.scenarios.split(",")
    elif env_kwargs.get("scenario") == "historical":
        scenarios = ["historical"]
    else:
        scenarios = list(ev.TRADING_SCENARIOS) + (["historical"] if data is not None else [])
    problems = [n for n in names if n not in table] + [s for s in scenarios
                                                        if s not in ev.TRADING_SCENARIOS + ("historical",)]
    if problems:
        return _fail(f"unknown baseline(s)/scenario(s) {problems}")
    if "historical" in scenarios and data is None:
        return _fail("the historical scenario needs --data PATH")
    if model is None and not names:
        return _fail("nothing to evaluate: give a run or some baselines")
    run_dir = None if args.run is None else (args.run.parent if args.run.suffix == ".zip" else args.run)
    root = args.out or (run_dir / "eval" if run_dir is not None else Path("runs/evaluate"))
    shield = not args.no_shield
    setups, notes = {}, []  # every scenario's env, event, annualization and episodes, checked before any runs
    for scenario in scenarios:
        kwargs = {**env_kwargs, "scenario": scenario}
        if scenario == "historical":
            from agents.cli import data_spec

            kwargs.update(data=data_spec(data if isinstance(data, dict) else str(data), args.data_option),
                          data_split=(args.split, 1.0))
            if run_data is not None and (run_split is None or float(run_split[1]) > args.split):
                notes.append(f"historical: note: the run trained on rows {list(run_split or (0, 1))} of its data; "
                             f"rows after {args.split} are not out of sample")
        try:
            env = ev.make_eval_env(env_id, kwargs, shield=shield, breakers=breakers)
            setups[scenario] = (env, ev.check_event_inside(env), ev.annualization(env, args.calendar),
                                ev.episode_plan(env, args.episodes, args.seed))
        except (FileNotFoundError, ValueError, TypeError) as err:
            return _fail(f"{scenario}: {err}")
        _, event, timing, plan = setups[scenario]
        notes.append(f"{scenario}: {timing.describe()}" + (f"; event at steps {event[0]}..{event[1]}" if event else ""))
        if plan.note:
            notes.append(f"{scenario}: {plan.note}")
    rows, paired, curves, events = [], [], {}, {}
    start = time.perf_counter()
    for scenario in tqdm(scenarios, desc="scenarios"):
        env, event, timing, plan = setups[scenario]
        strategies = ([("agent", ev.agent_policy(model, env))] if model is not None else []) + [
            (name, _baseline_act(make_baseline(name, env, seed=args.seed))) for name in names]
        curves[scenario], events[scenario], episode_returns = {}, event, {}
        for name, act in strategies:
            results = [ev.run_episode(env, act, seed, first_row) for seed, first_row in plan.episodes]
            curves[scenario][name] = results[0].equity
            episode_returns[name] = [r.episode_return for r in results]
            rows.append({"scenario": scenario, "strategy": name, **ev.summarize(results, timing, event)})
        paired += ev.paired_rows(scenario, episode_returns)
    elapsed = time.perf_counter() - start
    seeds = sorted({seed for setup in setups.values() for seed, _ in setup[3].episodes})
    glass = (f"shield {'on' if shield else 'off'}, breakers "
             f"{'off' if breakers is False else ('on ' + str(breakers) if breakers else 'on (defaults)')}"
             if env_id != "Janus-Execution-v0" else "no glass box (execution env)")
    lines = [f"{env_id}: up to {args.episodes} episode(s) per strategy and scenario, seeds {seeds[0]}..{seeds[-1]}, "
             f"{glass}, {elapsed:.1f}s", *notes, "", ev.summary_table(rows), ev.TABLE_NOTE]
    lines += ev.event_notes(rows)
    if paired:
        lines += ["", "agent − baseline on the same episodes (mean, 95% t-interval, paired t-test p):", "",
                  ev.paired_table(paired)]
    summary = "\n".join(lines)
    print("\n" + summary)
    out_dir = ev.new_eval_dir(root)
    written = ev.write_outputs(out_dir, rows, paired, curves, events, summary)
    print(f"\nwrote {len(written)} files to {out_dir}/ ({root / 'latest'} points there): "
          f"{', '.join(p.name for p in written)}")
    return 0


def _baseline_act(policy: Any):
    return lambda obs: policy.predict(obs, deterministic=True)[0]


if __name__ == "__main__":
    sys.exit(main())
