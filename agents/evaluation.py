"""Evaluate trained agents and baselines on the same seeded episodes; metrics, tables and plots.

Every strategy runs behind the deployed glass box — ``Amygdala(LTNShield(env))``
— unless ``glass_box=False``, so the LTN violation rate of *proposed* actions,
the executed violations (0 whenever the shield is on) and the breaker halts
are comparable across strategies.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.metrics import latency_percentiles, risk_metrics

TRADING_SCENARIOS = ("ou", "gbm", "regime", "flash_crash", "high_vol", "squeeze")
METRIC_COLUMNS = ("total_return", "sharpe", "sortino", "calmar", "max_drawdown", "var_95", "cvar_95",
                  "avg_slippage_bps", "fill_rate", "violation_rate", "executed_violations", "halts",
                  "latency_p50_us", "latency_p95_us", "latency_p99_us", "latency_p999_us")


@dataclass
class EpisodeResult:
    equity: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)


def make_eval_env(env_id: str, env_kwargs: dict[str, Any], *, glass_box: bool) -> gym.Env:
    """The evaluation env: the trained env id and kwargs, behind the shield and breakers when asked."""
    env = gym.make(env_id, **env_kwargs)
    if glass_box and env_id != "Janus-Execution-v0":
        from wrappers import Amygdala, LTNShield

        env = Amygdala(LTNShield(env))
    return env


def _find_shield(env: gym.Env) -> Any:
    node = env
    while node is not None:
        if type(node).__name__ == "LTNShield":
            return node
        node = getattr(node, "env", None)
    return None


def agent_policy(model: Any, env: gym.Env) -> Callable[[Any], Any]:
    """``obs -> action`` for an SB3 model (masked models get the shield's masks)."""
    shield = _find_shield(env)
    masked = type(model).__name__ == "MaskablePPO"

    def act(obs: Any) -> Any:
        if masked and shield is not None:
            action, _ = model.predict(obs, deterministic=True, action_masks=shield.action_masks())
        else:
            action, _ = model.predict(obs, deterministic=True)
        return action

    return act


def run_episode(env: gym.Env, act: Callable[[Any], Any], seed: int, periods_per_year: float,
                start: int | None = None) -> EpisodeResult:
    """Play one seeded episode with ``act``; return its equity curve and metrics."""
    options = None if start is None else {"start": start}
    obs, info = env.reset(seed=seed, options=options)
    equity = [info["equity"]]
    slippage, latencies = [], []
    requested = filled = 0.0
    proposed = violations = executed_violations = halts = 0
    done = False
    while not done:
        t0 = time.perf_counter()
        action = act(obs)
        latencies.append(time.perf_counter() - t0)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        equity.append(info["equity"])
        ltn = info.get("ltn")
        if isinstance(ltn, dict):
            proposed += 1
            violations += ltn.get("violation", 0.0) > 0.0
            executed_violations += (not ltn.get("overridden", False)) and ltn.get("sat_agg", 1.0) < ltn.get(
                "threshold", 0.9)
        if info.get("halted"):
            halts += 1
        qty = abs(float(info.get("exec_qty", 0.0)))
        rejected = abs(float(info.get("rejected_qty", 0.0)))
        if qty > 0:
            slippage.append(float(info["slippage_bps"]))
        filled += qty
        requested += qty + rejected
    curve = np.asarray(equity, dtype=np.float64)
    metrics = risk_metrics(curve, periods_per_year)._asdict()
    metrics.update(latency_percentiles(np.asarray(latencies)))
    metrics.update({
        "avg_slippage_bps": float(np.mean(slippage)) if slippage else 0.0,
        "fill_rate": filled / requested if requested > 0 else 1.0,
        "violation_rate": violations / proposed if proposed else 0.0,
        "executed_violations": float(executed_violations),
        "halts": float(halts),
        "steps": float(len(curve) - 1),
    })
    return EpisodeResult(curve, metrics)


def summarize(results: list[EpisodeResult]) -> dict[str, float]:
    """Mean of each metric over episodes (counts are summed)."""
    out: dict[str, float] = {}
    for key in results[0].metrics:
        values = [r.metrics[key] for r in results]
        out[key] = float(np.sum(values)) if key in ("executed_violations", "halts") else float(np.mean(values))
    return out


def markdown_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    head = "| " + " | ".join(columns) + " |"
    rule = "|" + "---|" * len(columns)
    lines = [head, rule]
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(out_dir: Path, rows: list[dict[str, Any]], curves: dict[str, dict[str, np.ndarray]]) -> list[Path]:
    """CSV, JSON and PNGs (equity vs baselines and drawdown per scenario, per-scenario bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "metrics.csv", out_dir / "metrics.json"]
    with open(written[0], "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    written[1].write_text(json.dumps(rows, indent=2))
    for scenario, by_strategy in curves.items():
        fig, (ax_eq, ax_dd) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
        for name, curve in by_strategy.items():
            ax_eq.plot(curve, label=name, linewidth=2.0 if name == "agent" else 1.0)
            peak = np.maximum.accumulate(curve)
            ax_dd.plot(-(peak - curve) / peak, label=name)
        ax_eq.set_ylabel("equity")
        ax_eq.set_title(f"{scenario}: first evaluation seed")
        ax_eq.legend(fontsize=8)
        ax_dd.set_ylabel("drawdown")
        ax_dd.set_xlabel("step")
        fig.tight_layout()
        path = out_dir / f"equity_{scenario}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    scenarios = sorted({r["scenario"] for r in rows})
    strategies = sorted({r["strategy"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(len(strategies), 1)
    for k, metric in enumerate(("total_return", "sharpe")):
        ax = axes[k]
        for j, strategy in enumerate(strategies):
            values = [next((r[metric] for r in rows if r["scenario"] == s and r["strategy"] == strategy), 0.0)
                      for s in scenarios]
            ax.bar(np.arange(len(scenarios)) + j * width, values, width, label=strategy)
        ax.set_xticks(np.arange(len(scenarios)) + 0.4 - width / 2)
        ax.set_xticklabels(scenarios, rotation=30, fontsize=8)
        ax.set_title(metric)
        ax.axhline(0, color="black", linewidth=0.5)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    bars = out_dir / "scenarios.png"
    fig.savefig(bars, dpi=90)
    plt.close(fig)
    written.append(bars)
    return written
