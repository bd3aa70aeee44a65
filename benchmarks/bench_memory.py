"""The memory read path (issue 14, item 3): what the trained hippocampal codes are worth, what reading memory costs
per decision, and whether it helps learning.

Three parts, each on ``tests/agents/test_learning.py``'s edge market (``EDGE_MARKET``: an OU fundamental with a
strong mean reversion, 285 flattened observation features):

1. ``--part codes``: 4,000 steps of random actions are the training data, 2,000 other steps the test data. Code
   *separation* on the test data: the cosine of the codes of consecutive states of an episode ("similar") and of
   random pairs ("dissimilar"), and the AUC with which that cosine tells the two apart, for the raw observations
   (as stored, and standardized), the encoder at its orthogonal init (on standardized states) and the trained
   encoder (``SleepConfig`` defaults: 300 Adam steps). *Recall*: one sleep cycle on the training data with
   ``features="raw"`` and with ``"code"`` (each its own schemas), then, on the test data, the correlation of the
   recalled outcome ``m_a`` and advantage ``A_a`` of the executed action with the realized 16-step return, and the
   sleep's wall time.
2. ``--part latency``: the decision path of ``janus-ppo``'s policy (``BasalGangliaMaskablePolicy`` on the default
   ``JanusExtractor``, ``model.predict`` with the shield's masks, batch 1, one torch thread) on the default
   ``Janus-LOB-v0`` market, with and without a memory read from one sleep on 4,096 steps; p50/p99 per decision
   and the recall kernel alone.
3. ``--part learning``: ``JanusPPO`` behind the shield on ``CombinedExtractor`` (``test_learning.py``'s agent,
   16,384 steps) without a sleep and with a sleep every 2,500 steps whose memory the policy reads (``--weight``
   β), seeds ``--seeds``; mean episode return on ``test_learning.py``'s 20 held-out episodes, and how many of
   2,000 held-out decisions memory changed.

```bash
python benchmarks/bench_memory.py --part codes      # ~2 min
python benchmarks/bench_memory.py --part latency    # ~1 min
python benchmarks/bench_memory.py --part learning --seeds 0 1 --weight 4   # ~1 min per run
```
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402
import torch as th  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402
from stable_baselines3.common.buffers import DictReplayBuffer  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

import envs_registry  # noqa: E402,F401
from replay.hippocampus import PatternSeparationEncoder  # noqa: E402
from replay.sleep_cycle import (  # noqa: E402
    SleepConfig,
    flat_observations,
    horizon_returns,
    memory_reader,
    run_sleep_cycle,
)
from tests.agents.test_learning import EDGE_MARKET, _episode_returns  # noqa: E402


def _collect(n: int, seed: int, env_kwargs: dict) -> DictReplayBuffer:
    env = DummyVecEnv([lambda: gym.make("Janus-LOB-v0", **env_kwargs)])
    env.seed(seed)
    buf = DictReplayBuffer(n, env.observation_space, env.action_space, device="cpu")
    obs, rng = env.reset(), np.random.default_rng(seed)
    for _ in range(n):
        action = rng.integers(3, size=1)
        nobs, reward, done, info = env.step(action)
        buf.add(obs, nobs, action.reshape(1, 1), reward, done, info)
        obs = nobs
    return buf


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def part_codes() -> None:
    train, test = _collect(4000, 0, EDGE_MARKET), _collect(2000, 1, EDGE_MARKET)
    x_te = flat_observations(test, np.arange(2000))
    done = test.dones[:2000, 0]
    pairs_i = np.flatnonzero(done[:-1] == 0)
    pairs_j = np.random.default_rng(5).integers(0, 2000, size=(len(pairs_i), 2))

    def separation(name: str, feats: np.ndarray) -> None:
        sim, dis = _cos(feats[pairs_i], feats[pairs_i + 1]), _cos(feats[pairs_j[:, 0]], feats[pairs_j[:, 1]])
        auc = mannwhitneyu(sim, dis).statistic / (len(sim) * len(dis))
        print(f"| {name} | {sim.mean():.3f} | {dis.mean():.3f} | {sim.mean() - dis.mean():.3f} | {auc:.3f} |")

    print("| features | cos similar | cos dissimilar | gap | AUC |\n|---|---|---|---|---|")
    mean, std = x_te.mean(0), x_te.std(0)
    separation("raw observation", x_te)
    separation("raw, standardized", (x_te - mean) / np.where(std > 1e-8, std, 1.0))
    x_tr = flat_observations(train, np.arange(4000))
    config = SleepConfig()
    for steps, name in ((0, "code, orthogonal init (standardized)"), (config.encoder_steps, "code, trained")):
        th.manual_seed(config.seed)
        enc = PatternSeparationEncoder(x_tr.shape[1], config.code_dim)
        enc.fit(x_tr, steps=max(steps, 1), lr=config.encoder_lr if steps else 1e-30, rng=np.random.default_rng(0))
        separation(name, enc.encode_numpy(x_te))
    g_te = horizon_returns(test, np.arange(2000), config.memory_horizon)
    a_te = test.actions[:2000, 0, 0].astype(int)
    print("\n| schema features | schemas | sleep s | recalled | corr(m_a, G) | corr(A_a, G) |\n|---|---|---|---|---|---|")
    for features in ("raw", "code"):
        cfg = SleepConfig(umap=False, features=features, store_device="cpu", clock=lambda: 0.0, n_recent=4000)
        start = time.perf_counter()
        state, _ = run_sleep_cycle(None, train, None, cfg)
        elapsed = time.perf_counter() - start
        rec = memory_reader(state, cfg).recall(x_te)
        rows = np.arange(2000)
        m, adv = rec.outcome[rows, a_te], rec.advantage[rows, a_te]
        ok = np.isfinite(m) & np.isfinite(g_te)
        print(f"| {features} | {len(state.schemas)} | {elapsed:.1f} | {ok.mean():.2f} | "
              f"{np.corrcoef(m[ok], g_te[ok])[0, 1]:.3f} | {np.corrcoef(adv[ok], g_te[ok])[0, 1]:.3f} |")


def part_latency(calls: int) -> None:
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env

    from agents.app.config import build_model, resolve_hyperparams
    from agents.basal_ganglia import attach_shield_logic
    from wrappers import LTNShield

    th.set_num_threads(1)
    params = resolve_hyperparams("janus-ppo", "Janus-LOB-v0", None, [])
    env = make_vec_env("Janus-LOB-v0", n_envs=1, seed=0, wrapper_class=LTNShield,
                       env_kwargs=params.get("env_kwargs", {}))
    model = build_model("janus-ppo", env, params, seed=0, tensorboard_log=None)
    attach_shield_logic(model.policy, env.envs)
    buffer = _collect(4096, 3, params.get("env_kwargs", {}))
    cfg = SleepConfig(umap=False, store_device="cpu", clock=lambda: 0.0)
    state, _ = run_sleep_cycle(None, buffer, None, cfg)
    memory = memory_reader(state, cfg)
    obs, observations = env.reset(), []
    for _ in range(calls):
        observations.append((obs, get_action_masks(env)))
        action, _ = model.predict(obs, deterministic=True, action_masks=observations[-1][1])
        obs, *_ = env.step(action)
    print(f"memory: {len(memory)} schemas, {memory.dim}-d codes of {memory.input_dim} features, k={memory.k}\n")
    print("| decision path | p50 µs | p99 µs |\n|---|---|---|")
    for name, reader in (("predict, no memory", None), ("predict, memory read", memory),
                         ("predict, no memory (again)", None)):
        model.policy.set_memory(reader)
        times = []
        for o, masks in observations:
            start = time.perf_counter_ns()
            model.predict(o, deterministic=True, action_masks=masks)
            times.append((time.perf_counter_ns() - start) / 1e3)
        print(f"| {name} | {np.percentile(times, 50):.0f} | {np.percentile(times, 99):.0f} |")
    flat = [np.concatenate([np.asarray(o[k]).reshape(1, -1) for k in sorted(o)], axis=1) for o, _ in observations]
    times = []
    for row in flat:
        start = time.perf_counter_ns()
        memory.recall(row)
        times.append((time.perf_counter_ns() - start) / 1e3)
    print(f"| recall kernel alone | {np.percentile(times, 50):.1f} | {np.percentile(times, 99):.1f} |")


def part_learning(seeds: list[int], weight: float, steps: int) -> None:
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.torch_layers import CombinedExtractor
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.basal_ganglia import BasalGangliaCallback, BasalGangliaMaskablePolicy, JanusPPO
    from replay import SleepPhaseCallback
    from wrappers import LTNShield

    th.set_num_threads(1)
    print("| seed | variant | return bps (mean ± se, 20 episodes) | decisions memory changed | train s |")
    print("|---|---|---|---|---|")
    for seed in seeds:
        for variant in ("no sleep", f"memory β={weight:g}"):
            env = VecNormalize(make_vec_env("Janus-LOB-v0", n_envs=4, seed=1000 * seed, env_kwargs=EDGE_MARKET,
                                            wrapper_class=LTNShield), norm_obs=False, norm_reward=True, gamma=0.99)
            model = JanusPPO(BasalGangliaMaskablePolicy, env, n_steps=256, batch_size=256, n_epochs=4,
                             learning_rate=3e-4, ent_coef=0.01, gamma=0.99, seed=seed, device="cpu",
                             policy_kwargs={"features_extractor_class": CombinedExtractor})
            callbacks = [BasalGangliaCallback(train_freq=4, seed=seed)]
            if variant != "no sleep":
                callbacks.insert(0, SleepPhaseCallback(SleepConfig(umap=False, seed=seed, memory_weight=weight,
                                                                   store_device="cpu"),
                                                       every_n_steps=2500, on_episode_end=False))
            start = time.perf_counter()
            model.learn(steps, callback=callbacks)
            elapsed = time.perf_counter() - start
            returns = np.asarray(_episode_returns(model, seed, True))
            changed = "—"
            memory = model.policy.memory
            if memory is not None:
                probe = make_vec_env("Janus-LOB-v0", n_envs=1, seed=10_000 + seed, env_kwargs=EDGE_MARKET,
                                     wrapper_class=LTNShield)
                obs, n_changed = probe.reset(), 0
                for _ in range(2000):
                    masks = get_action_masks(probe)
                    action, _ = model.predict(obs, deterministic=True, action_masks=masks)
                    model.policy.set_memory(None)
                    plain, _ = model.predict(obs, deterministic=True, action_masks=masks)
                    model.policy.set_memory(memory)
                    n_changed += int(plain[0] != action[0])
                    obs, *_ = probe.step(action)
                changed = f"{n_changed}/2000"
            se = returns.std(ddof=1) / np.sqrt(len(returns))
            print(f"| {seed} | {variant} | {returns.mean():+.1f} ± {se:.1f} | {changed} | {elapsed:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("codes", "latency", "learning"), required=True)
    parser.add_argument("--calls", type=int, default=1000, help="latency: decisions timed per row")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="learning: seeds")
    parser.add_argument("--weight", type=float, default=4.0, help="learning: memory_weight β")
    parser.add_argument("--steps", type=int, default=16_384, help="learning: training steps")
    args = parser.parse_args()
    if args.part == "codes":
        part_codes()
    elif args.part == "latency":
        part_latency(args.calls)
    else:
        part_learning(args.seeds, args.weight, args.steps)


if __name__ == "__main__":
    main()
