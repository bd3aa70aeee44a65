"""Stylized facts of the simulated market: heavy tails, volatility clustering, no linear predictability.

Runs long sessions of the raw kernels (``env_reset``/``env_step``, no gym
layer; the JANUS agent holds, so the book is driven by the exogenous flow
only) and computes, from one-step log returns of the mid (Cont, 2001,
"Empirical properties of asset returns: stylized facts and statistical
issues"):

* excess kurtosis (``scipy.stats.kurtosis``, Fisher: 0 for a normal);
* autocorrelation of raw returns at lags 1..10 (≈ 0 apart from a negative
  lag-1 bid-ask bounce at this time scale);
* autocorrelation of absolute returns at lags 1, 2, 5, 10, 20 (positive and
  slowly decaying = volatility clustering);
* the fraction of zero returns (the mid is on a half-tick grid).

``±1.96/√n`` is the 95% band of a sample autocorrelation of white noise.
Prints Markdown tables and saves a figure (return series, histogram against
a normal of the same variance, both ACFs) to ``benchmarks/out/stylized_facts.png``.

```bash
python benchmarks/stylized_facts.py            # 200k ou, 200k regime, 50k flash_crash (~5 s)
python benchmarks/stylized_facts.py --quick    # 20k / 20k / 10k smoke run
```
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from janus_env.stylized import StylizedFacts, autocorrelation, simulate_mids, stylized_facts  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "stylized_facts.png"
ABS_LAGS = (1, 2, 5, 10, 20)
RAW_LAGS = tuple(range(1, 11))
PLOT_ABS_LAGS = 50


class ScenarioRun(NamedTuple):
    """One simulated session and its facts."""

    scenario: str
    n_steps: int
    seconds: float
    returns: np.ndarray
    facts: StylizedFacts


def default_runs(quick: bool) -> list[tuple[str, int]]:
    """(scenario, steps): 200k ``ou`` and ``regime`` and 50k ``flash_crash``; a tenth-ish with ``quick``."""
    if quick:
        return [("ou", 20_000), ("regime", 20_000), ("flash_crash", 10_000)]
    return [("ou", 200_000), ("regime", 200_000), ("flash_crash", 50_000)]


def simulate(scenario: str, n_steps: int, seed: int) -> ScenarioRun:
    """Simulate one session of ``n_steps`` (one episode, agent holding) and compute its facts."""
    t0 = time.perf_counter()
    mids = simulate_mids(scenario, n_steps, seed=seed)
    seconds = time.perf_counter() - t0
    returns = np.diff(np.log(mids))
    return ScenarioRun(scenario, n_steps, seconds, returns, stylized_facts(mids, abs_lags=ABS_LAGS))


def _band(n: int) -> float:
    return 1.96 / math.sqrt(n)


def _grid_step(r_bps: np.ndarray) -> float:
    """The smallest non-zero |return|: one half-tick move of the mid, in bps."""
    moves = np.abs(r_bps[r_bps != 0.0])
    return float(np.min(moves)) if moves.size else 1.0


def summary_table(runs: list[ScenarioRun]) -> str:
    """Headline facts per scenario, with whether each is reproduced."""
    lines = [
        (
            "| scenario | steps | returns σ (bps) | excess kurtosis | heavy tails? | ACF r lag 1 "
            "| max \\|ACF r\\| lags 2–10 | 95% band | lags 2–10 in band? | ACF \\|r\\| lag 1 "
            "| volatility clustering? | zero returns |"
        ),
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | --- | ---: |",
    ]
    for run in runs:
        f = run.facts
        band = _band(f.n_returns)
        tail = float(np.max(np.abs(f.acf_returns[1:])))
        clustering = all(v > band for v in f.acf_abs_returns.values())
        lines.append(
            f"| {run.scenario} | {run.n_steps:,} | {np.std(run.returns) * 1e4:.2f} | {f.excess_kurtosis:.2f} "
            f"| {'yes' if f.excess_kurtosis > 0 else 'no'} | {f.acf_returns[0]:+.3f} | {tail:.3f} | {band:.3f} "
            f"| {'yes' if tail <= band else 'no'} | {f.acf_abs_returns[1]:+.3f} "
            f"| {'yes' if clustering else 'no'} | {f.zero_fraction:.1%} |"
        )
    return "\n".join(lines)


def acf_table(runs: list[ScenarioRun]) -> str:
    """Every computed autocorrelation."""
    head = " | ".join(f"r {k}" for k in RAW_LAGS) + " | " + " | ".join(f"\\|r\\| {k}" for k in ABS_LAGS)
    lines = [f"| scenario | {head} |", "| --- |" + " ---: |" * (len(RAW_LAGS) + len(ABS_LAGS))]
    for run in runs:
        f = run.facts
        cells = [f"{v:+.3f}" for v in f.acf_returns] + [f"{f.acf_abs_returns[k]:+.3f}" for k in ABS_LAGS]
        lines.append(f"| {run.scenario} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_figure(runs: list[ScenarioRun], path: Path) -> None:
    """One row per scenario: returns, histogram vs normal (log density), ACF of r, ACF of |r|."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 4, figsize=(18, 3.4 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs, strict=True):
        r_bps = run.returns * 1e4
        n = r_bps.size
        band = _band(n)
        ax = row[0]
        ax.plot(np.arange(n), r_bps, lw=0.3, color="tab:blue")
        ax.set_title(f"{run.scenario}: one-step mid log returns")
        ax.set_xlabel("step")
        ax.set_ylabel("bps")

        ax = row[1]
        sigma = float(np.std(r_bps))
        step = _grid_step(r_bps)
        lim = max(6.0 * sigma, float(np.max(np.abs(r_bps)))) + step
        half = math.ceil(lim / step)
        bins = (np.arange(-half, half + 2) - 0.5) * step  # one bin per half-tick move of the mid
        density, _, _ = ax.hist(r_bps, bins=bins, density=True, color="tab:blue", alpha=0.7, label="simulated")
        x = np.linspace(-lim, lim, 400)
        pdf = np.exp(-0.5 * ((x - r_bps.mean()) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
        ax.plot(x, pdf, color="tab:red", lw=1.2, label="normal, same σ")
        ax.set_yscale("log")
        ax.set_ylim(0.5 / (n * step), 2.0 * max(float(np.max(density)), float(np.max(pdf))))
        ax.set_title(f"histogram (excess kurtosis {run.facts.excess_kurtosis:.1f})")
        ax.set_xlabel("bps")
        ax.legend(fontsize=8)

        ax = row[2]
        ax.bar(RAW_LAGS, run.facts.acf_returns, color="tab:blue")
        ax.axhspan(-band, band, color="grey", alpha=0.3, label="95% white-noise band")
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set_title("ACF of returns")
        ax.set_xlabel("lag (steps)")
        ax.legend(fontsize=8)

        ax = row[3]
        lags = np.arange(1, PLOT_ABS_LAGS + 1)
        abs_r = np.abs(r_bps)
        ax.bar(lags, [autocorrelation(abs_r, int(k)) for k in lags], color="tab:orange")
        ax.axhspan(-band, band, color="grey", alpha=0.3)
        ax.axhline(0.0, color="black", lw=0.5)
        ax.set_title("ACF of |returns| (volatility clustering)")
        ax.set_xlabel("lag (steps)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20k / 20k / 10k steps instead of 200k / 200k / 50k")
    parser.add_argument("--seed", type=int, default=0, help="seed of every session (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"figure path (default {DEFAULT_OUT})")
    parser.add_argument("--no-plot", action="store_true", help="print the tables only")
    args = parser.parse_args(argv)

    runs = []
    for scenario, n_steps in default_runs(args.quick):
        run = simulate(scenario, n_steps, args.seed)
        print(f"simulated {scenario}: {n_steps:,} steps in {run.seconds:.1f} s", file=sys.stderr, flush=True)
        runs.append(run)
    stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"# Stylized facts of simulated one-step mid returns — {stamp}, seed {args.seed}\n")
    print("Raw kernels, one session per scenario, agent holding; Cont (2001).\n")
    print(summary_table(runs))
    print("\nAutocorrelations (raw returns at lags 1–10, absolute returns at lags 1, 2, 5, 10, 20):\n")
    print(acf_table(runs))
    if not args.no_plot:
        save_figure(runs, args.out)
        print(f"\nFigure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
