"""Throughput of the shared-book multi-agent market (``janus_market_v0``) and of SB3 parameter sharing.

Rows:

* ``JanusParallelEnv.step`` with 2, 8 and 32 agents of mixed roles (makers
  quote, takers trade; background flow on), random valid actions drawn before
  the timed region; in env steps/s and agent-steps/s;
* the same market's ``parallel_step`` kernel alone (one numba call, no Python
  layer), to show what the PettingZoo dict layer costs;
* baseline: the same number of agents as independent single-agent
  ``Janus-LOB-v0`` envs stepped one after the other (one book each);
* SB3 PPO (``MultiInputPolicy``, CPU, one torch thread) training with one policy
  shared by 8 ``janus`` agents through SuperSuit
  (``envs_registry.pettingzoo_envs.make_shared_policy_vec_env``) vs the same PPO on
  ``gym.make_vec("Janus-LOB-v0", 8)`` (8 separate books); in agent-steps/s
  including the gradient updates.

Method: each bench is warmed up (numba compiled), then timed ``--repeats``
times round-robin with the others so load from other processes spreads over
all rows; the median is reported, with ``uptime`` load averages before and after.

```bash
python benchmarks/bench_multi_agent.py            # ~1-2 min on 2 cores
python benchmarks/bench_multi_agent.py --quick    # smoke run
```
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import envs_registry  # noqa: E402,F401  (registers Janus-LOB-v0)
from envs_registry.pettingzoo_envs import make_parallel_env, make_shared_policy_vec_env  # noqa: E402
from janus_env._parallel_kernels import parallel_step  # noqa: E402

ROLE_MIXES: dict[int, dict[str, int]] = {
    2: {"market_maker": 1, "janus": 1},
    8: {"market_maker": 2, "informed": 1, "momentum": 1, "noise": 2, "janus": 2},
    32: {"market_maker": 4, "informed": 4, "momentum": 4, "noise": 8, "janus": 12},
}
POOL = 512  # pre-drawn action dicts per bench, cycled
EPISODE = 1000


def _load() -> str:
    return "load average %.2f, %.2f, %.2f" % os.getloadavg()


def parallel_env_bench(n: int) -> Callable[[int], float]:
    """``k`` steps of ``JanusParallelEnv`` (resetting at episode end); returns env steps."""
    env = make_parallel_env(roles=ROLE_MIXES[n], episode_steps=EPISODE)
    env.reset(seed=0)
    for i, agent in enumerate(env.possible_agents):
        env.action_space(agent).seed(i)
    pool = [{a: env.action_space(a).sample() for a in env.possible_agents} for _ in range(POOL)]
    pos = {"i": 0}

    def run(k: int) -> float:
        i = pos["i"]
        for _ in range(k):
            env.step(pool[i])
            i = (i + 1) % POOL
            if not env.agents:
                env.reset()
        pos["i"] = i
        return float(k)

    return run


def kernel_bench(n: int) -> Callable[[int], float]:
    """``parallel_step`` called directly with fixed pre-converted actions (no dicts, no validation)."""
    env = make_parallel_env(roles=ROLE_MIXES[n], episode_steps=10**9)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = []
    for _ in range(POOL):
        act = np.zeros((n, 4), dtype=np.int64)
        for i, agent in enumerate(env.possible_agents):
            if agent.startswith("market_maker"):
                act[i] = rng.integers(0, env.action_space(agent).nvec)
            else:
                act[i, 0] = env.config.lot * int(rng.integers(-1, 2))
        acts.append(act)
    args = env._kernel_args
    perm = env._perm
    pos = {"i": 0}

    def run(k: int) -> float:
        i = pos["i"]
        for _ in range(k):
            parallel_step(*args, acts[i], perm)
            i = (i + 1) % POOL
        pos["i"] = i
        return float(k)

    return run


def independent_bench(n: int) -> Callable[[int], float]:
    """``n`` separate ``Janus-LOB-v0`` envs stepped in a Python loop; returns agent-steps / n (= 'env steps')."""
    envs = [gym.make("Janus-LOB-v0", episode_steps=EPISODE) for _ in range(n)]
    for j, env in enumerate(envs):
        env.reset(seed=j)
    pool = np.random.default_rng(0).integers(0, 3, size=(POOL, n)).tolist()
    pos = {"i": 0}

    def run(k: int) -> float:
        i = pos["i"]
        for _ in range(k):
            row = pool[i]
            for j, env in enumerate(envs):
                _, _, term, trunc, _ = env.step(row[j])
                if term or trunc:
                    env.reset()
            i = (i + 1) % POOL
        pos["i"] = i
        return float(k)

    return run


def _time(run: Callable[[int], float], k: int) -> float:
    t0 = time.perf_counter()
    units = run(k)
    return units / (time.perf_counter() - t0)


def _calibrate(run: Callable[[int], float], min_time: float) -> int:
    run(2)
    k = 1
    while True:
        t0 = time.perf_counter()
        run(k)
        if time.perf_counter() - t0 >= min_time:
            return k
        k *= 2


def ppo_fps(shared: bool, n_agents: int, timesteps: int, seed: int = 0) -> float:
    """PPO agent-steps/s (rollouts + updates) on the shared-policy vec env or on 8 separate books."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    if shared:
        venv = make_shared_policy_vec_env(n_agents=n_agents, episode_steps=EPISODE)
    else:
        venv = make_vec_env("Janus-LOB-v0", n_envs=n_agents, env_kwargs={"episode_steps": EPISODE})
    model = PPO("MultiInputPolicy", venv, n_steps=128, batch_size=256, n_epochs=4, seed=seed, device="cpu")
    model.learn(total_timesteps=n_agents * 128)  # warm-up: first rollout, torch/numba first calls
    t0 = time.perf_counter()
    model.learn(total_timesteps=timesteps, reset_num_timesteps=False)
    fps = timesteps / (time.perf_counter() - t0)
    venv.close()
    return fps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ppo-steps", type=int, default=8 * 128 * 8, help="timed PPO agent-steps per setup")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.min_time, args.repeats, args.ppo_steps = 0.1, 1, 8 * 128 * 2

    load_before = _load()
    benches: dict[str, tuple[int, Callable[[int], float]]] = {}
    for n in ROLE_MIXES:
        benches[f"JanusParallelEnv, {n} agents"] = (n, parallel_env_bench(n))
        benches[f"parallel_step kernel only, {n} agents"] = (n, kernel_bench(n))
        benches[f"baseline: {n} × Janus-LOB-v0 (separate books)"] = (n, independent_bench(n))
    ks = {name: _calibrate(run, args.min_time) for name, (_, run) in benches.items()}
    rates: dict[str, list[float]] = {name: [] for name in benches}
    for _ in range(args.repeats):
        for name, (_, run) in benches.items():
            rates[name].append(_time(run, ks[name]))

    ppo_shared = ppo_fps(True, 8, args.ppo_steps)
    ppo_separate = ppo_fps(False, 8, args.ppo_steps)
    load_after = _load()

    print(f"\ncpus: {os.cpu_count()}, before: {load_before}, after: {load_after}\n")
    print("| bench | agents | env steps/s | agent-steps/s |")
    print("| --- | ---: | ---: | ---: |")
    for name, (n, _) in benches.items():
        med = statistics.median(rates[name])
        print(f"| {name} | {n} | {med:,.0f} | {med * n:,.0f} |")
    print()
    print("| SB3 PPO (MultiInputPolicy, CPU, 1 torch thread, n_steps=128, 4 epochs) | agents | agent-steps/s |")
    print("| --- | ---: | ---: |")
    print(f"| one policy shared by 8 janus agents on one book (SuperSuit) | 8 | {ppo_shared:,.0f} |")
    print(f"| baseline: 8 separate Janus-LOB-v0 books (DummyVecEnv) | 8 | {ppo_separate:,.0f} |")


if __name__ == "__main__":
    main()
