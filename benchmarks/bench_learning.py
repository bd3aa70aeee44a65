"""Learning benchmark on ``Janus-LOB-v0`` (OU, mean-reverting): JANUS PPO vs SB3 PPO vs random.

Methods, each trained with 3 seeds (not run in CI):

* ``ppo-janus-bg`` — PPO with ``JanusExtractor`` (DiffGAF → ViViT → gated
  fusion) and ``BasalGangliaActorCriticPolicy`` (Go/No-Go gate), the No-Go
  head trained by ``BasalGangliaCallback``. Falls back to SB3's
  ``CombinedExtractor`` when ``agents/extractor.py`` is absent (the table says so).
* ``ppo-multiinput`` — the same PPO hyper-parameters with SB3's default
  ``MultiInputPolicy`` (``CombinedExtractor`` + MLP).
* ``random`` — uniform random actions (``agents.baselines.RandomPolicy``).

Protocol: ``--n-envs`` training envs seeded ``1000·seed + i``; evaluation with
SB3's ``evaluate_policy`` (deterministic) over ``--eval-episodes`` episodes of
a held-out env seeded ``10_000 + seed`` — no training seed is reused. The
table reports, per method, the mean ± std over seeds of each seed's mean
episode return (reward = change in equity, bps of initial cash), the per-seed
values, the share of non-HOLD actions at evaluation, the veto rate of the gate,
the mean No-Go probability per action over the evaluation steps and the
training time. Jobs run ``--workers`` at a time, one torch thread each.

```bash
python benchmarks/bench_learning.py                    # ~5-8 min on 2 cores
python benchmarks/bench_learning.py --timesteps 4096 --eval-episodes 2   # smoke run
```

Writes ``benchmarks/out/learning.png`` (bar chart, seeds as dots) and
``benchmarks/out/learning.json`` (raw results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

ENV_ID = "Janus-LOB-v0"
METHODS = ("ppo-janus-bg", "ppo-multiinput", "random")
OUT = ROOT / "benchmarks" / "out"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--timesteps", type=int, default=30_000, help="training steps per run (all envs together)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--episode-steps", type=int, default=200, help="decisions per episode (session)")
    p.add_argument("--n-envs", type=int, default=4)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--workers", type=int, default=2, help="training runs in parallel (processes)")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    for name in ("timesteps", "episode_steps", "n_envs", "eval_episodes", "workers"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def janus_extractor() -> tuple[Any, dict[str, Any], str]:
    """``(class, kwargs, label)``: JanusExtractor when present, else SB3's CombinedExtractor."""
    try:
        from agents.extractor import JanusExtractor
    except ImportError:
        from stable_baselines3.common.torch_layers import CombinedExtractor

        return CombinedExtractor, {}, "CombinedExtractor (agents/extractor.py absent)"
    return JanusExtractor, {}, "JanusExtractor"


def make_env(seed: int, n_envs: int, episode_steps: int) -> Any:
    """A ``DummyVecEnv`` of ``Janus-LOB-v0`` (scenario ``ou``), env i seeded ``seed + i``, with ``Monitor``."""
    import envs_registry  # noqa: F401
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(ENV_ID, n_envs=n_envs, seed=seed, env_kwargs={"scenario": "ou", "episode_steps": episode_steps})


def evaluate(model: Any, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Held-out evaluation: episode returns, share of non-HOLD actions and veto rate."""
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_env(10_000 + seed, 1, args.episode_steps)
    counts = {"steps": 0, "trades": 0, "vetoes": 0}
    nogo: list[list[float]] = []
    policy = getattr(model, "policy", None)

    def count(local: dict[str, Any], _: dict[str, Any]) -> None:
        counts["steps"] += 1
        counts["trades"] += int(np.asarray(local["actions"]).reshape(-1)[0] != 0)
        record = getattr(policy, "last_go_nogo", None)
        if record:
            counts["vetoes"] += int(record["vetoed"])
            nogo.append(record["nogo"])

    returns, _ = evaluate_policy(
        model, env, n_eval_episodes=args.eval_episodes, deterministic=True, return_episode_rewards=True, callback=count
    )
    steps = max(counts["steps"], 1)
    return {
        "returns": [float(r) for r in returns],
        "mean_return": float(np.mean(returns)),
        "trade_share": counts["trades"] / steps,
        "veto_rate": counts["vetoes"] / steps if nogo else None,
        "mean_nogo": np.mean(nogo, axis=0).tolist() if nogo else None,
    }


def run_job(method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train (unless random) and evaluate one (method, seed)."""
    import torch as th

    th.set_num_threads(1)
    from stable_baselines3 import PPO

    from agents.baselines import RandomPolicy
    from agents.basal_ganglia import BasalGangliaActorCriticPolicy, BasalGangliaCallback

    start = time.perf_counter()
    ppo_kwargs = dict(n_steps=256, batch_size=256, n_epochs=4, learning_rate=3e-4, seed=seed, device="cpu", verbose=0)
    if method == "random":
        env = make_env(10_000 + seed, 1, args.episode_steps)
        model: Any = RandomPolicy(env.action_space, seed=seed)
    elif method == "ppo-multiinput":
        model = PPO("MultiInputPolicy", make_env(1000 * seed, args.n_envs, args.episode_steps), **ppo_kwargs)
        model.learn(args.timesteps)
    else:
        extractor, extractor_kwargs, _ = janus_extractor()
        model = PPO(
            BasalGangliaActorCriticPolicy,
            make_env(1000 * seed, args.n_envs, args.episode_steps),
            policy_kwargs={"features_extractor_class": extractor, "features_extractor_kwargs": extractor_kwargs},
            **ppo_kwargs,
        )
        model.learn(args.timesteps, callback=BasalGangliaCallback(train_freq=4, seed=seed))
    train_s = time.perf_counter() - start
    result = evaluate(model, seed, args)
    result.update(method=method, seed=seed, train_s=train_s)
    return result


def table(results: list[dict[str, Any]], extractor_label: str, args: argparse.Namespace) -> str:
    """Markdown table: mean ± std over seeds of the per-seed mean episode return, and diagnostics."""
    lines = [
        f"Janus-LOB-v0, scenario=ou, {args.episode_steps}-step episodes; {args.timesteps:,} training steps per run; "
        f"{len(args.seeds)} seeds; evaluation: {args.eval_episodes} deterministic episodes on held-out seeds. "
        f"ppo-janus-bg extractor: {extractor_label}.",
        "",
        "| method | episode return (bps), mean ± std over seeds | per seed | non-HOLD share | veto rate "
        "| mean No-Go (HOLD/BUY/SELL) | train s / run |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method in METHODS:
        rows = [r for r in results if r["method"] == method]
        if not rows:
            continue
        means = np.array([r["mean_return"] for r in rows])
        std = float(np.std(means, ddof=1)) if len(means) > 1 else 0.0
        per_seed = ", ".join(f"{m:.2f}" for m in means)
        trade = np.mean([r["trade_share"] for r in rows])
        vetoes = [r["veto_rate"] for r in rows if r["veto_rate"] is not None]
        veto = f"{np.mean(vetoes):.1%}" if vetoes else "—"
        nogos = [r["mean_nogo"] for r in rows if r["mean_nogo"] is not None]
        nogo = "/".join(f"{v:.2f}" for v in np.mean(nogos, axis=0)) if nogos else "—"
        train = f"{np.mean([r['train_s'] for r in rows]):.0f}" if method != "random" else "—"
        lines.append(
            f"| {method} | {means.mean():.2f} ± {std:.2f} | {per_seed} | {trade:.1%} | {veto} | {nogo} | {train} |"
        )
    return "\n".join(lines)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Bar chart of the mean over seeds with std error bars; each seed as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.0), dpi=120)
    for i, method in enumerate(METHODS):
        means = np.array([r["mean_return"] for r in results if r["method"] == method])
        if means.size == 0:
            continue
        std = float(np.std(means, ddof=1)) if means.size > 1 else 0.0
        ax.bar(i, means.mean(), yerr=std, capsize=6, color=("#3b6ea8", "#9aa5b1", "#d08770")[i], alpha=0.85)
        ax.scatter(np.full(means.size, i) + np.linspace(-0.12, 0.12, means.size), means, color="k", s=14, zorder=3)
    ax.axhline(0.0, color="k", linewidth=0.6)
    every = [r["mean_return"] for r in results]
    span = max(max(every) - min(every), 1.0)
    ax.set_ylim(min(min(every), 0.0) - 0.1 * span, max(max(every), 0.0) + 0.1 * span)
    ax.set_xticks(range(len(METHODS)), METHODS)
    ax.set_ylabel("episode return (bps of initial cash)")
    ax.set_title("Janus-LOB-v0 (OU): held-out evaluation, mean ± std over seeds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    """Run every (method, seed), print the table, write the chart and the raw results."""
    args = parse_args(argv)
    _, _, extractor_label = janus_extractor()
    jobs = [(m, s) for m in ("ppo-janus-bg", "ppo-multiinput") for s in args.seeds]  # slowest first
    start = time.perf_counter()
    results: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_job, m, s, args) for m, s in jobs]
        results.extend(run_job("random", s, args) for s in args.seeds)
        for future in futures:
            r = future.result()
            results.append(r)
            line = f"  {r['method']:<15} seed {r['seed']}: {r['mean_return']:8.2f} bps  ({r['train_s']:.0f} s)"
            print(line, flush=True)
    elapsed = time.perf_counter() - start
    print()
    print(table(results, extractor_label, args))
    print()
    print(f"Total wall time {elapsed:.0f} s on {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}).")
    plot(results, args.out / "learning.png")
    payload = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "extractor": extractor_label, "wall_s": elapsed, "results": results}
    (args.out / "learning.json").write_text(json.dumps(payload, indent=2))
    print(f"Wrote {args.out / 'learning.png'} and {args.out / 'learning.json'}")


if __name__ == "__main__":
    main()
