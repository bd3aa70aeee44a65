"""Evaluate strategies on a JANUS env: seeded episodes, a metrics table, CSV/JSON and a PNG of equity curves.

    python evaluate.py --env Janus-LOB-v0 --baselines all --episodes 3 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import envs_registry  # noqa: F401  (registers the Janus-* ids)
from agents.baselines import EXECUTION_BASELINES, TRADING_BASELINES, make_baseline


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from agents.cli import OneLineParser

    parser = OneLineParser(prog="evaluate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Janus-LOB-v0", help="registered env id (default: %(default)s)")
    parser.add_argument("--scenario", default=None, help="market scenario, e.g. ou, regime, flash_crash")
    parser.add_argument("--baselines", default="all", help="comma-separated baseline names or 'all'")
    parser.add_argument("--episodes", type=int, default=3, help="episodes per strategy (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=None, help="decisions per episode (episode_steps)")
    parser.add_argument("--out", type=Path, default=Path("runs/evaluate"), help="folder for CSV/JSON/PNG")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    return args


def run_episode(env, policy, seed: int) -> dict[str, object]:
    """Play one seeded episode; return its metrics and equity curve."""
    obs, info = env.reset(seed=seed)
    equity = [info["equity"]]
    total, trades, fees, slippage = 0.0, 0, 0.0, []
    done = False
    while not done:
        action, _ = policy.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        equity.append(info["equity"])
        if info["exec_qty"] != 0:
            trades += 1
            slippage.append(info["slippage_bps"])
        fees += info["fees"]
        done = terminated or truncated
    curve = np.asarray(equity)
    peak = np.maximum.accumulate(curve)
    return {
        "return_bps": total,
        "pnl": float(curve[-1] - curve[0]),
        "max_drawdown": float(np.max((peak - curve) / peak)),
        "trades": trades,
        "fees": fees,
        "avg_slippage_bps": float(np.mean(slippage)) if slippage else 0.0,
        "equity": curve,
    }


def main(argv: list[str] | None = None) -> int:
    import gymnasium as gym
    from tqdm import tqdm

    args = parse_args(argv)
    kwargs = {} if args.scenario is None else {"scenario": args.scenario}
    if args.steps is not None:
        kwargs["episode_steps" if args.env != "Janus-Execution-v0" else "horizon"] = args.steps
    try:
        env = gym.make(args.env, **kwargs)
    except (ValueError, TypeError, gym.error.Error) as err:
        print(f"evaluate.py: error: {err}", file=sys.stderr)
        return 2
    table = EXECUTION_BASELINES if args.env == "Janus-Execution-v0" else TRADING_BASELINES
    names = sorted(table) if args.baselines == "all" else args.baselines.split(",")
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"evaluate.py: error: unknown baseline(s) {unknown}; expected some of {sorted(table)}", file=sys.stderr)
        return 2
    rows, curves = [], {}
    start = time.perf_counter()
    for name in tqdm(names, desc="strategies"):
        policy = make_baseline(name, env, seed=args.seed)
        results = [run_episode(env, policy, args.seed + k) for k in range(args.episodes)]
        curves[name] = results[0]["equity"]
        row = {"strategy": name}
        for key in ("return_bps", "pnl", "max_drawdown", "trades", "fees", "avg_slippage_bps"):
            row[key] = float(np.mean([r[key] for r in results]))
        rows.append(row)
    elapsed = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    header = "| strategy | return (bps) | PnL | max drawdown | trades | fees | avg slippage (bps) |"
    lines = [header, "|" + "---|" * 7]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['return_bps']:.2f} | {r['pnl']:.2f} | {r['max_drawdown']:.4f} | "
                     f"{r['trades']:.1f} | {r['fees']:.2f} | {r['avg_slippage_bps']:.3f} |")
    print(f"\n{args.env} {kwargs or ''} — {args.episodes} episode(s) per strategy, seeds {args.seed}.."
          f"{args.seed + args.episodes - 1}, {elapsed:.1f}s\n")
    print("\n".join(lines))
    (args.out / "metrics.json").write_text(json.dumps(rows, indent=2))
    import csv

    with open(args.out / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, curve in curves.items():
        ax.plot(curve, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("equity")
    ax.set_title(f"{args.env}: equity, seed {args.seed}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "equity.png", dpi=100)
    plt.close(fig)
    print(f"\nwrote {args.out}/metrics.csv, metrics.json, equity.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
