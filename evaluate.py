"""Evaluate a trained run (or the baselines alone) across market scenarios: tables, CSV/JSON, PNG plots.

    python evaluate.py runs/<run> --scenarios all --episodes 5 --baselines all
    python evaluate.py --baselines all --scenarios ou,flash_crash --hp env_kwargs.lot=10      # baselines only
    python evaluate.py runs/<run> --scenarios historical --data janus_env/samples/btc_book_15_levels.csv
    python evaluate.py runs/<run> --no-breakers                     # shield on, circuit breakers off
    python evaluate.py runs/<run> --breaker vol_ratio=4 --breaker fear_threshold=0.8
    python evaluate.py runs/<run> --audit audit.jsonl --explain 3   # every decision explained; 3 drawn
    python evaluate.py runs/<run> --trust-remote-code   # SB3's own load: unpickles model.zip (trusted files only)

Each evaluation writes into a new folder OUT/<time>/ (OUT = RUN/eval by default) and points OUT/latest at it.
The protocol (same episodes for every strategy, walk-forward windows, annualization, intervals, the paired
test against each baseline) is documented in agents/app/evaluation.py and agents/app/metrics.py.

parse → resolve → build → evaluate → save, each step one call into ``agents.app.evaluating``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agents.app.cli import OneLineParser, data_option
from agents.app.config import ConfigError, parse_override
from agents.app.evaluating import USAGE_ERRORS, build_evaluation, resolve_evaluation, run_evaluation, save_evaluation
from agents.app.evaluation import CALENDAR_CHOICES

_BAD_BREAKER_ARG = "Expected --breaker NAME=VALUE (VALUE in YAML syntax, null disables), got {!r}"
_BAD_HP_KEY = "evaluate.py --hp sets env settings only (env_kwargs.NAME=VALUE), got {!r}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    p.add_argument("--sizing", action="store_true",
                   help="size every strategy's orders with the Hypothalamus (Kelly, volatility target, drawdown, "
                        "cash reserve); needs action_type sized or continuous")
    p.add_argument("--audit", type=Path, default=None, metavar="PATH",
                   help="append the agent's decisions to PATH, one JSON line each (wrappers.AuditLog: the rules, "
                        "breakers, Go/No-Go and gate weights of each decision; wrappers.read_audit_log reads it)")
    p.add_argument("--explain", type=int, default=0, metavar="N",
                   help="draw the agent's N most consequential decisions per scenario (largest |reward|): its GAF "
                        "frames with their attribution, Go/No-Go, veto, gates and rule truths, as "
                        "explain_<scenario>_<k>.png")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="load model.zip with SB3's own loader, which unpickles the file: code inside it runs. Only "
                        "for files from someone you trust; by default nothing in the file is unpickled (the model "
                        "is rebuilt from the run's config.yaml and only its weights are read)")
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
    if args.explain < 0:
        p.error(f"--explain must be >= 0, got {args.explain}")
    if args.explain and args.run is None:
        p.error("--explain draws a trained agent's decisions: give a run")
    if args.trust_remote_code and args.run is None:
        p.error("--trust-remote-code loads a run's model.zip: give a run")
    if args.audit is not None and args.run is None:
        p.error("--audit records a trained agent's decisions: give a run")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        p.error(f"--out: {args.out} is not a folder")
    if args.audit is not None and not args.audit.parent.is_dir():
        p.error(f"--audit: folder {args.audit.parent} does not exist")
    if breakers and args.no_breakers:
        p.error("--breaker needs the breakers on (drop --no-breakers/--no-glass-box)")
    args.breaker = breakers
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        spec = resolve_evaluation(args)
        plan = build_evaluation(spec)
    except USAGE_ERRORS as err:  # bad input: one line, exit status 2, nothing written
        print(f"evaluate.py: error: {err}", file=sys.stderr)
        return 2
    result = run_evaluation(plan)
    print("\n" + result.summary)
    folder, written = save_evaluation(result)
    print(f"\nwrote {len(written)} files to {folder}/ ({spec.out / 'latest'} points there): "
          f"{', '.join(p.name for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
