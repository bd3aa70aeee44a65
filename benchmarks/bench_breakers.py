"""Breaker calibration: which circuit breakers trip, at which step, against the stress event's window.

For every market (the six simulated scenarios and the shipped real data), seed and
policy, one episode is played through ``LTNShield(gym.make("Janus-LOB-v0", ...))``
and its info stream is fed to one :class:`~wrappers.breakers.CircuitBreakers` per
breaker, each with the documented defaults and every other breaker disabled. Before
any halt the trajectory does not depend on which breakers are on (they never alter an
action), so each breaker's first trip step is the step at which it would halt the
default stack on its own, and the default ``Amygdala(LTNShield(env))`` halts at the
earliest of them.

Classification of a breaker's first trip at ``info["step"] = s`` (the decision whose
outcome it judged):

* scenarios with a stress event (``flash_crash``, ``squeeze``): the event moves the
  fundamental during market steps ``[start, start + length)`` with
  ``start = ⌊event_start·T⌋``, ``length = ⌊event_length·T⌋`` (T = ``episode_steps``;
  ``janus_env.regimes.event_offset``), first seen in the info of decision
  ``start + 1``: a trip with ``s ≤ start`` is a **false positive** (before the
  event), ``start < s ≤ start + length`` a **true positive**, later **late**;
* calm scenarios (``ou``, ``gbm``, ``regime``): any trip is a false positive;
  ``high_vol`` switches at random into a regime with 3× the volatility (the
  threshold itself), so its trips are listed but not scored;
* real data: a trip at a row inside a labelled real event (``REAL_EVENTS``: the
  2021-04-18 BTC flash crash that ends the 15-level book, the 2015-01-14 −77%
  day of the Coinbase daily file) is a true positive, any other a false positive.
  Episodes start at rows spread evenly over the file (``options={"start": k}``),
  so the table covers the whole sample.

The slippage breaker needs a slippage prediction (the cerebellum's
``slippage_predictor``), which rule-based policies do not have, and the kill switch is
manual: neither is tabled. Real data: ``lot=1, max_position=5, initial_cash=1e6`` for
BTC (5 BTC ≈ 20–35% of equity), ``lot=10, max_position=100`` for the LOBSTER AAPL
sample (replayed 10 messages per decision), episodes from the seeded start rows.

Writes ``benchmarks/out/bench_breakers.{md,csv,png}`` (the PNG: σ_t/σ_hist and fear
through the flash crash and a calm ``ou`` session, HOLD policy).

```bash
python benchmarks/bench_breakers.py               # 10 seeds × 500 steps × 5 policies (~2 min on 2 cores)
python benchmarks/bench_breakers.py --seeds 3     # quicker
```
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import envs_registry  # noqa: E402,F401
from agents.baselines import make_baseline  # noqa: E402
from janus_env.samples import sample_path  # noqa: E402
from wrappers.breakers import BreakerConfig, CircuitBreakers  # noqa: E402
from wrappers.shield import LTNShield  # noqa: E402

CALM = ("ou", "gbm", "regime")
UNSCORED = ("high_vol",)
EVENTS = ("flash_crash", "squeeze")
BTC = {"lot": 1, "max_position": 5, "initial_cash": 1e6}
REAL: dict[str, dict[str, Any]] = {
    "btc_usd_hourly": {"data": "btc_usd_hourly", **BTC},
    "btc_usd_daily": {"data": "btc_usd_daily", **BTC},
    "btc_book_15_levels": {"data": "btc_book_15_levels", **BTC},
    "lobster_aapl": {"data": "lobster_aapl", "step_messages": 10, "lot": 10, "max_position": 100},
}
REAL_EVENTS: dict[str, tuple[str, str, str]] = {
    "btc_book_15_levels": ("2021-04-18T03:19", "2021-04-18T03:24", "2021-04-18 flash crash, −5.3% in 4 minutes"),
    "btc_usd_daily": ("2015-01-14", "2015-01-16", "2015-01-14, −77% close to close (+57% the next day)"),
}
"""Labelled events of the real samples: (from, to) times of their rows, and what happened."""
POLICIES = ("hold", "buy_and_hold", "momentum", "mean_reversion", "random")
TABLED = ("volatility", "fear", "drawdown", "violation_rate")
OFF = {"max_drawdown": None, "vol_ratio": None, "fear_threshold": None, "slippage_ratio": None,
       "max_violation_rate": None}
ARG = {"volatility": "vol_ratio", "fear": "fear_threshold", "drawdown": "max_drawdown",
       "violation_rate": "max_violation_rate"}


def alone(name: str) -> CircuitBreakers:
    """Breakers with every threshold off but ``name``'s, at its default."""
    return CircuitBreakers(BreakerConfig(**{k: v for k, v in OFF.items() if k != ARG[name]}))


def _data(market: str) -> tuple[Any, dict[str, Any]]:
    spec = dict(REAL[market])
    path = str(sample_path(spec.pop("data")))
    data: Any = {"path": path, "step_messages": spec.pop("step_messages")} if "step_messages" in spec else path
    return data, spec


def make_env(market: str, steps: int) -> gym.Env:
    if market in REAL:
        data, spec = _data(market)
        return LTNShield(gym.make("Janus-LOB-v0", scenario="historical", data=data, episode_steps=steps, **spec))
    return LTNShield(gym.make("Janus-LOB-v0", scenario=market, episode_steps=steps))


def real_rows(market: str, env: gym.Env, seeds: int) -> tuple[list[int], Any, tuple[int, int] | None]:
    """Episode start rows spread over the file, the rows' times (or None) and the labelled event's rows."""
    from janus_env.historical import load_source

    source = load_source(_data(market)[0])
    n, window = len(source), env.unwrapped.config.window
    steps = min(env.unwrapped.config.episode_steps, n - window)
    starts = np.unique(np.rint(np.linspace(0, n - window - steps, seeds)).astype(int)).tolist()
    times = getattr(getattr(source, "data", None), "time", None)
    event = None
    if market in REAL_EVENTS and times is not None and np.issubdtype(np.asarray(times).dtype, np.datetime64):
        lo, hi, _ = REAL_EVENTS[market]
        rows = np.nonzero((times >= np.datetime64(lo)) & (times < np.datetime64(hi)))[0]
        event = (int(rows[0]), int(rows[-1])) if rows.size else None
    return starts, times, event


def event_window(env: gym.Env) -> tuple[int, int] | None:
    """``(start, length)`` in market steps of the stress event, None for calm and real markets."""
    cfg = env.unwrapped.config
    if env.unwrapped.scenario not in EVENTS:
        return None
    steps = cfg.episode_steps
    return int(math.floor(cfg.event_start * steps)), max(1, int(math.floor(cfg.event_length * steps)))


def play(env: gym.Env, policy: str, seed: int, keep: bool = False, start: int | None = None) -> dict[str, Any]:
    """One episode; the first trip step of each tabled breaker alone (None: never) and the traces."""
    obs, info = env.reset(seed=seed, options=None if start is None else {"start": start})
    act = (lambda o: 0) if policy == "hold" else _predictor(make_baseline(policy, env, seed=seed))
    breakers = {name: alone(name) for name in TABLED}
    for b in breakers.values():
        b.start_session(obs, dict(info))
    first: dict[str, int | None] = {name: None for name in TABLED}
    peak = {name: 0.0 for name in TABLED}
    trace: dict[str, list[float]] = {"volatility": [], "fear": []}
    done = False
    while not done:
        action = act(obs)
        for b in breakers.values():
            b.before_action(action)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        for name, b in breakers.items():
            if b.halted:
                continue
            reason = b.after_step(obs, dict(info))
            reading = b.breaker_info()[name]
            if reading["value"] is not None:
                peak[name] = max(peak[name], reading["value"])
                if keep and name in trace:
                    trace[name].append(reading["value"])
            if reason is not None:
                first[name] = int(info["step"])
        if keep:
            for name in trace:
                if breakers[name].halted:
                    trace[name].append(np.nan)
    return {"first": first, "peak": peak, "steps": int(info["step"]), "trace": trace}


def _predictor(policy: Any):
    return lambda obs: policy.predict(obs, deterministic=True)[0]


def classify(step: int | None, window: tuple[int, int] | None, scored: bool = True) -> str:
    if step is None:
        return "none"
    if not scored:
        return "unscored"
    if window is None:
        return "fp"
    start, length = window
    if step <= start:
        return "fp"
    return "tp" if step <= start + length else "late"


def run(markets: list[str], seeds: int, steps: int) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, str]]:
    rows: list[dict[str, Any]] = []
    traces: dict[str, Any] = {"_windows": {}}
    skipped: dict[str, str] = {}
    for market in markets:
        try:
            env = make_env(market, steps)
            if market in REAL:
                starts, times, event_rows = real_rows(market, env, seeds)
            else:
                starts, times, event_rows = [None] * seeds, None, None
        except Exception as err:  # a real sample that does not replay is reported, not fatal
            skipped[market] = f"{type(err).__name__}: {err}"
            continue
        window = event_window(env)
        traces["_windows"][market] = window
        for policy in POLICIES:
            for k, start in enumerate(starts):
                keep = policy == "hold" and market in ("flash_crash", "ou")
                result = play(env, policy, 1000 + k, keep=keep, start=start)
                if keep:
                    traces.setdefault(market, []).append(result["trace"])
                first = result["first"]
                if start is not None:  # real data: a trip is scored by the row (and time) it happened at
                    row0 = start + env.unwrapped.config.window - 1
                    classes = {n: _real_class(first[n], row0, event_rows) for n in TABLED}
                else:
                    classes = {n: classify(first[n], window, market not in UNSCORED) for n in TABLED}
                halts = [s for s in first.values() if s is not None]
                first_halt = min(halts) if halts else None
                by = [n for n in TABLED if first[n] == first_halt] if halts else []
                rows.append({
                    "market": market, "policy": policy, "seed": 1000 + k, "start_row": "" if start is None else start,
                    "steps": result["steps"],
                    "event_start": window[0] if window else "", "event_length": window[1] if window else "",
                    **{f"{n}_step": first[n] for n in TABLED},
                    **{f"{n}_class": classes[n] for n in TABLED},
                    **{f"{n}_time": _time(times, start, env, first[n]) for n in TABLED},
                    **{f"{n}_peak": round(result["peak"][n], 4) for n in TABLED},
                    "halt_step": first_halt, "halt_class": classes[by[0]] if by else "none",
                    "halted_by": ",".join(by),
                })
    return rows, traces, skipped


def _real_class(step: int | None, row0: int, event_rows: tuple[int, int] | None) -> str:
    if step is None:
        return "none"
    return "tp" if event_rows is not None and event_rows[0] <= row0 + step <= event_rows[1] else "fp"


def _time(times: Any, start: int | None, env: gym.Env, step: int | None) -> str:
    if times is None or start is None or step is None:
        return ""
    return str(times[start + env.unwrapped.config.window - 1 + step])[:19]


def _offsets(steps: list[int], window: tuple[int, int] | None) -> str:
    if not steps:
        return "–"
    if window is None:
        return f"steps {min(steps)}–{max(steps)}"
    rel = sorted(s - window[0] for s in steps)
    return f"{rel[len(rel) // 2]:+d} (min {rel[0]:+d}, max {rel[-1]:+d})"


def breaker_table(rows: list[dict[str, Any]], markets: list[str], windows: dict[str, Any]) -> str:
    lines = ["| market | breaker | episodes | false positive | true positive | late | unscored | none | first trip "
             "vs event start (median) | max value in episodes without a trip |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for market in markets:
        sel = [r for r in rows if r["market"] == market]
        if not sel:
            continue
        for name in TABLED:
            classes = [r[f"{name}_class"] for r in sel]
            trips = [r[f"{name}_step"] for r in sel if r[f"{name}_step"] is not None]
            calm = [r[f"{name}_peak"] for r in sel if r[f"{name}_step"] is None]
            lines.append(f"| {market} | {name} | {len(sel)} | {classes.count('fp')} | {classes.count('tp')} | "
                         f"{classes.count('late')} | {classes.count('unscored')} | {classes.count('none')} | "
                         f"{_offsets(trips, windows.get(market))} | {f'{max(calm):.3g}' if calm else '–'} |")
    return "\n".join(lines)


def halt_table(rows: list[dict[str, Any]], markets: list[str], windows: dict[str, Any]) -> str:
    lines = ["| market | policy | episodes | false positive halts | halts in the event | late | unscored | "
             "full episodes | halted by | halt step vs event start (median) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for market in markets:
        for policy in POLICIES:
            sel = [r for r in rows if r["market"] == market and r["policy"] == policy]
            if not sel:
                continue
            classes = [r["halt_class"] for r in sel]
            by = sorted({b for r in sel for b in r["halted_by"].split(",") if b})
            steps = [r["halt_step"] for r in sel if r["halt_step"] is not None]
            lines.append(f"| {market} | {policy} | {len(sel)} | {classes.count('fp')} | {classes.count('tp')} | "
                         f"{classes.count('late')} | {classes.count('unscored')} | {classes.count('none')} | "
                         f"{', '.join(by) or '–'} | {_offsets(steps, windows.get(market))} |")
    return "\n".join(lines)


def real_trips(rows: list[dict[str, Any]]) -> str:
    """Every trip on real data, with its time: what the breakers saw in recorded markets."""
    lines = ["| market | policy | start row | breaker | step | time | class |",
             "| --- | --- | ---: | --- | ---: | --- | --- |"]
    for r in rows:
        if r["market"] not in REAL:
            continue
        for n in TABLED:
            if r[f"{n}_step"] is not None:
                lines.append(f"| {r['market']} | {r['policy']} | {r['start_row']} | {n} | {r[f'{n}_step']} | "
                             f"{r[f'{n}_time'] or '–'} | {r[f'{n}_class']} |")
    events = "; ".join(f"{m}: {lo} to {hi} ({what})" for m, (lo, hi, what) in REAL_EVENTS.items())
    return "\n".join(lines) + f"\n\nLabelled real events: {events}."


def plot(traces: dict[str, Any], out: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(12, 6), sharex=True)
    for col, market in enumerate(("flash_crash", "ou")):
        window = traces.get("_windows", {}).get(market)
        for row, (name, thr, label) in enumerate((("volatility", 3.0, "σ_t / σ_hist"), ("fear", 0.7, "fear"))):
            ax = axes[row, col]
            for trace in traces.get(market, []):
                ax.plot(np.arange(1, len(trace[name]) + 1), trace[name], lw=0.8, alpha=0.7)
            ax.axhline(thr, color="k", ls="--", lw=0.8)
            if window is not None:
                ax.axvspan(window[0] + 1, window[0] + window[1] + 1, color="tab:red", alpha=0.12, label="event")
            if name == "volatility":
                ax.set_yscale("log")
                ax.set_ylim(0.1, None)  # a window without a price move reads ≈ 0
            ax.set_title(f"{market}: {label} (HOLD, one line per seed; a line ends at its trip)", fontsize=9)
            ax.set_ylabel(label)
        axes[1, col].set_xlabel("decision step")
    fig.tight_layout()
    path = out / "bench_breakers.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="episodes per market and policy (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=500, help="decisions per episode (default: %(default)s)")
    parser.add_argument("--markets", default="all", help="'all' or a comma list of scenarios and real samples")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out", help="output folder")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 40:
        parser.error("--seeds must be >= 1 and --steps >= 40")
    known = CALM + UNSCORED + EVENTS + tuple(REAL)
    markets = list(known) if args.markets == "all" else args.markets.split(",")
    unknown = [m for m in markets if m not in known]
    if unknown:
        parser.error(f"unknown market(s) {unknown}")
    start = time.perf_counter()
    rows, traces, skipped = run(markets, args.seeds, args.steps)
    elapsed = time.perf_counter() - start
    windows = traces["_windows"]
    header = (f"bench_breakers: {args.seeds} seeds (1000..{999 + args.seeds}) × {args.steps} decisions × "
              f"{len(POLICIES)} policies ({', '.join(POLICIES)}), default thresholds, each breaker alone; "
              f"{dt.date.today()}, {platform.machine()} × {len(__import__('os').sched_getaffinity(0))} cores, "
              f"Python {platform.python_version()}, {elapsed:.0f} s")
    text = "\n\n".join([
        header,
        "Each breaker alone (false positive = a trip before the event or in a market without one):",
        breaker_table(rows, markets, windows),
        "The default stack `Amygdala(LTNShield(env))` (halts at its first trip):",
        halt_table(rows, markets, windows),
        "Trips on real data:",
        real_trips(rows),
    ] + ([f"Not run: {', '.join(f'{k} ({v})' for k, v in skipped.items())}"] if skipped else []))
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_breakers.md").write_text(text + "\n")
    with open(args.out / "bench_breakers.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    png = plot(traces, args.out)
    print(f"\nwrote {args.out / 'bench_breakers.md'}, {args.out / 'bench_breakers.csv'}" + (f", {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
