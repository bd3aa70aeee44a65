"""The wake agent's cost: decision latency (torch eager vs ONNX Runtime) and training speed against SB3's MultiInputPolicy.

Two tables, measured in one process (one torch thread, ``train.py``'s default ``--torch-threads 1``, CPU):

1. **Decision latency**, batch 1: the full deterministic decision path of PPO
   with the default ``JanusExtractor`` (DiffGAF → ViViT → gated fusion) and
   ``BasalGangliaActorCriticPolicy`` (Go/No-Go heads and the gate) — the graph
   ``agents.export.PolicyInferenceGraph`` that :func:`agents.export.export_onnx`
   writes — on one observation of ``Janus-LOB-v0`` at a time, timed per call
   with ``time.perf_counter_ns`` (p50, p99, p99.9, max). Rows: torch eager
   (``torch.inference_mode``), ONNX Runtime on the exported file (one intra-op
   thread), and SB3's own ``model.predict`` (adds its numpy/torch
   conversions). Every row runs on the same observations, recorded from a
   seeded rollout. The target is p99 < 5 ms (issue 5; DESIGN.md's budget is 100 ms
   end to end).
2. **Training speed ratios** (issue 14, item 6: ≥ 0.5×), each JANUS agent against SB3's ``MultiInputPolicy``
   (``CombinedExtractor`` + MLP) with the same algorithm, env and settings, the two runs of a pair timed one
   after the other and the pair repeated ``--repeats`` times (the order alternating):

   * ``janus-ppo`` as ``train.py`` builds it from ``configs/janus-ppo.yml`` (``JanusPPO`` = MaskablePPO with the
     logical loss, ``BasalGangliaMaskablePolicy``, one ``JanusExtractor`` each for the actor and the
     critic, without the GAF video and reading the series in patches of 4 steps as the config ships it, the
     LTN shield around 4 envs, the shield's logic hook on the gate; the config's ``n_steps``, ``batch_size``,
     ``n_epochs``, optimizer settings) against SB3's ``MultiInputPolicy`` with the same algorithm on the same
     envs (``MaskablePPO`` where ``train.py``'s env has masks, plain ``PPO`` for the shipped
     ``shield_training: none``) and settings;
   * the same policy and extractors with SB3's plain ``PPO`` and ``BasalGangliaActorCriticPolicy``
     (``bench_learning.py``'s agent) on the unshielded envs, against ``PPO`` with ``MultiInputPolicy``;
   * ``janus-dqn`` as ``train.py`` builds it from ``configs/janus-dqn.yml`` (``GatedJanusDQN``: prioritized
     replay, IS weights, logical loss, ``BasalGangliaDQNPolicy`` on ``JanusExtractor`` as configured, the LTN
     shield, the logic hook) against SB3's ``DQN`` with ``MultiInputPolicy`` on the same shielded env and
     settings; the same on ``SymlogExtractor`` (the ablation's ``janus-dqn-symlog``: the token streams' price); and
     ``BasalGangliaDQN`` (SB3's DQN with the gate, uniform replay) against the same baseline;
   * ``janus-ppo`` with the GAF video and a series token per step (``JanusExtractor(vision=True, ts_patch=1)``:
     the ablation's full brain, shipped until its ``no-gaf`` row), ``janus-ppo`` with a token per step
     (``ts_patch=1``, shipped from ``no-gaf`` to ``series-patches``) and ``janus-dqn`` with the video and a token
     per step (shipped until ``janus-dqn-series-patches``): what the DiffGAF → ViViT path and the per-step tokens
     cost, against the same baselines;
   * ``janus-ppo`` with the extractor and optimizer settings before issue 14 (``patch_size=4``, torch's
     for-loop Adam), against the same baseline, to show what the change bought.

   fps = env steps per second over ``--train-steps`` (PPO) or ``--dqn-steps`` (DQN) timed steps after a warm-up
   (one rollout; DQN: past ``learning_starts`` and 256 training steps), gradient updates included, in wall time
   and in CPU time of this process (``time.process_time``: what other processes on the machine take does not
   count, so the CPU-time ratio is the steadier one on a shared machine). Not timed: the sleep phase
   (``janus-dqn``'s cold path, every 2,500 steps) and the online-learning callbacks (cerebellum, No-Go head).

```bash
python benchmarks/bench_agent.py                   # ~5 min on 2 cores
python benchmarks/bench_agent.py --calls 300 --train-steps 1024 --dqn-steps 512 --repeats 1   # smoke run
python benchmarks/bench_agent.py --calls 300 --only janus-ppo      # the janus-ppo rows only
```
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch as th  # noqa: E402

ENV_ID = "Janus-LOB-v0"
TARGET_RATIO = 0.5
"""Issue 14, item 6: JANUS training at ≥ 0.5× the env steps/s of ``MultiInputPolicy`` on the same env and settings."""
FORMER_EXTRACTOR = {"patch_size": 4}
"""The ``JanusExtractor`` settings that differ from today's defaults before issue 14."""
BASELINE_POLICY_KWARGS = ("net_arch", "optimizer_kwargs", "optimizer_class", "activation_fn")
"""``policy_kwargs`` of a JANUS config the ``MultiInputPolicy`` baseline shares (the same MLP and optimizer)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=3000, help="timed single-observation decisions per row")
    p.add_argument("--train-steps", type=int, default=4096, help="timed PPO env steps per run (after warm-up)")
    p.add_argument("--dqn-steps", type=int, default=2048, help="timed DQN env steps per run (after warm-up)")
    p.add_argument("--repeats", type=int, default=3, help="timed pairs (JANUS, baseline) per row")
    p.add_argument("--only", action="append", default=[], metavar="TEXT",
                   help="time only the rows whose JANUS label contains TEXT (repeatable; default: every row)")
    args = p.parse_args(argv)
    if args.calls < 10 or args.train_steps < 256 or args.dqn_steps < 64 or args.repeats < 1:
        p.error("--calls must be >= 10, --train-steps >= 256, --dqn-steps >= 64 and --repeats >= 1")
    return args


def make_env() -> Any:
    import gymnasium as gym

    import envs_registry  # noqa: F401

    return gym.make(ENV_ID, scenario="ou", episode_steps=1000, seed=0)


def janus_ppo(env: Any, policy: str = "bg", share: bool = True) -> Any:
    """PPO with the default JanusExtractor, under the basal-ganglia policy (``bg``) or SB3's ``MultiInputPolicy``.

    ``share=False``: the actor and the critic each have their own JanusExtractor (as in bench_learning).
    """
    from stable_baselines3 import PPO

    from agents.basal_ganglia import BasalGangliaActorCriticPolicy
    from agents.extractor import JanusExtractor

    policy_class: Any = BasalGangliaActorCriticPolicy if policy == "bg" else "MultiInputPolicy"
    return PPO(policy_class, env, n_steps=256, batch_size=256, n_epochs=4, seed=0, device="cpu", verbose=0,
               policy_kwargs={"features_extractor_class": JanusExtractor, "share_features_extractor": share})


def recorded_observations(n: int) -> list[dict[str, np.ndarray]]:
    """``n`` observations of a seeded random rollout (reset at episode ends)."""
    env = make_env()
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(3)))
        if terminated or truncated:
            obs, _ = env.reset()
    return out


def percentiles(ns: list[int]) -> tuple[float, float, float, float]:
    ms = np.asarray(ns, dtype=np.float64) / 1e6
    return (float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(np.percentile(ms, 99.9)),
            float(ms.max()))


def time_calls(fn: Any, inputs: list[Any], warmup: int = 50) -> list[int]:
    for x in inputs[:warmup]:
        fn(x)
    ns = []
    for x in inputs:
        t0 = time.perf_counter_ns()
        fn(x)
        ns.append(time.perf_counter_ns() - t0)
    return ns


def latency_table(calls: int) -> tuple[list[tuple[str, tuple[float, float, float, float]]], str]:
    import onnxruntime as ort

    from agents.export import PolicyInferenceGraph, export_onnx

    model = janus_ppo(make_env())
    policy = model.policy.set_training_mode(False) or model.policy
    n_params = sum(p.numel() for p in policy.parameters())
    graph = PolicyInferenceGraph(policy).eval()
    observations = recorded_observations(calls)
    keys = graph.obs_keys
    batched = [{k: o[k][None] for k in keys} for o in observations]

    def torch_call(obs: dict[str, np.ndarray]) -> Any:
        with th.inference_mode():
            return graph(*(th.as_tensor(obs[k]) for k in keys))

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "policy.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def onnx_call(obs: dict[str, np.ndarray]) -> Any:
            return session.run(["action"], {name: obs[name] for name in names})

        rows = [
            ("torch eager (inference_mode), PolicyInferenceGraph", percentiles(time_calls(torch_call, batched))),
            ("ONNX Runtime 1 thread, exported graph", percentiles(time_calls(onnx_call, batched))),
            ("SB3 model.predict(obs, deterministic=True)",
             percentiles(time_calls(lambda o: model.predict(o, deterministic=True), observations))),
        ]
        # the two engines agree on these observations (export_onnx validated random ones)
        mismatches = sum(int(torch_call(o)[0].item() != onnx_call(o)[0][0]) for o in batched[:200])
    note = f"default JanusExtractor + BasalGangliaActorCriticPolicy: {n_params:,} parameters; " \
           f"action mismatches torch vs ONNX on 200 recorded observations: {mismatches}"
    return rows, note


# ---- training speed -----------------------------------------------------------------------------------------


def config_params(algo: str) -> dict[str, Any]:
    """``configs/<algo>.yml`` resolved for ``Janus-LOB-v0`` exactly as ``train.py`` resolves it."""
    from agents.app.config import resolve_hyperparams

    return resolve_hyperparams(algo, ENV_ID)


def baseline_params(params: dict[str, Any]) -> dict[str, Any]:
    """The same settings with SB3's ``MultiInputPolicy``: the config's MLP and optimizer, no JANUS extractor."""
    out = {k: v for k, v in params.items() if k not in ("policy", "lambda_logic")}
    policy_kwargs = params.get("policy_kwargs") or {}
    out["policy_kwargs"] = {k: v for k, v in policy_kwargs.items() if k in BASELINE_POLICY_KWARGS}
    return out


def vec_env(params: dict[str, Any], shield: bool) -> Any:
    """``train.py``'s vectorized env for ``params`` (``n_envs`` monitored copies, seed 0), shielded or not."""
    from agents.app.config import make_vec_env

    return make_vec_env(ENV_ID, {**params, "shield": shield, "breakers": False}, seed=0)


def build(algo_class: Any, policy: Any, params: dict[str, Any], shield: bool, logic_hook: bool = False) -> Any:
    """``algo_class(policy, env, **config kwargs)`` on :func:`vec_env`, seed 0, CPU; with ``logic_hook`` the gate
    judges each proposal with the shield of its env (as ``train.py`` attaches it)."""
    from agents.app.config import algo_kwargs
    from agents.basal_ganglia import attach_shield_logic

    env = vec_env(params, shield)
    kwargs = algo_kwargs(params)
    if "lambda_logic" in params:
        kwargs["lambda_logic"] = float(params["lambda_logic"])
    model = algo_class(policy, env, **kwargs, seed=0, device="cpu", verbose=0)
    if logic_hook:
        attach_shield_logic(model.policy, env.envs)
    return model


def timed_learn(model: Any, warmup: int, steps: int) -> tuple[float, float]:
    """``(wall fps, CPU fps)`` of ``model.learn(steps)`` after ``model.learn(warmup)``."""
    model.learn(warmup)
    wall, cpu = time.perf_counter(), time.process_time()
    model.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - wall), steps / (time.process_time() - cpu)


class Pair:
    """A JANUS agent and its ``MultiInputPolicy`` baseline: builders and the warm-up / timed steps of a run."""

    def __init__(self, label: str, baseline: str, janus: Callable[[], Any], base: Callable[[], Any],
                 warmup: int, steps: int) -> None:
        self.label, self.baseline, self.janus, self.base = label, baseline, janus, base
        self.warmup, self.steps = warmup, steps
        self.runs: list[tuple[tuple[float, float], tuple[float, float]]] = []

    def measure(self, repeat: int) -> None:
        order = (self.janus, self.base) if repeat % 2 == 0 else (self.base, self.janus)
        first, second = (timed_learn(make(), self.warmup, self.steps) for make in order)
        self.runs.append((first, second) if repeat % 2 == 0 else (second, first))

    def summary(self) -> tuple[float, float, float, float, float, float]:
        """Medians over the repeats: JANUS wall and CPU fps, baseline wall and CPU fps, wall and CPU ratios."""
        med = statistics.median
        return (med(j[0] for j, _ in self.runs), med(j[1] for j, _ in self.runs),
                med(b[0] for _, b in self.runs), med(b[1] for _, b in self.runs),
                med(j[0] / b[0] for j, b in self.runs), med(j[1] / b[1] for j, b in self.runs))


def training_pairs(args: argparse.Namespace) -> list[Pair]:
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import is_masking_supported
    from stable_baselines3 import DQN, PPO

    from agents.app.config import build_model
    from agents.basal_ganglia import BasalGangliaActorCriticPolicy, BasalGangliaDQN, BasalGangliaDQNPolicy

    ppo, dqn = config_params("janus-ppo"), config_params("janus-dqn")
    ppo_base, dqn_base = baseline_params(ppo), baseline_params(dqn)
    rollout = int(ppo["n_steps"]) * int(ppo["n_envs"])
    dqn_warmup = int(dqn["learning_starts"]) + 256 * int(dqn["train_freq"])

    def train_py(algo: str, params: dict[str, Any]) -> Callable[[], Any]:
        def make() -> Any:  # train.py's model: build_model on its env, the shield's logic hook on the gate
            from agents.basal_ganglia import attach_shield_logic

            env = vec_env(params, shield=bool(params.get("shield")))
            model = build_model(algo, env, params, seed=0, tensorboard_log=None)
            attach_shield_logic(model.policy, env.envs)
            return model
        return make

    former = {**ppo, "policy_kwargs": {
        **{k: v for k, v in ppo["policy_kwargs"].items() if k != "optimizer_kwargs"},
        "optimizer_kwargs": {"eps": 1e-5},  # SB3's PPO default (for-loop Adam)
        "features_extractor_kwargs": dict(FORMER_EXTRACTOR)}}  # the class's defaults otherwise: with the video

    def extractor(params: dict[str, Any], **settings: Any) -> dict[str, Any]:
        """``params`` with ``JanusExtractor`` arguments set (``vision``, ``ts_patch``)."""
        kwargs = {**(params["policy_kwargs"].get("features_extractor_kwargs") or {}), **settings}
        return {**params, "policy_kwargs": {**params["policy_kwargs"], "features_extractor_kwargs": kwargs}}

    def symlog_flat(params: dict[str, Any]) -> dict[str, Any]:
        """``params`` on :class:`agents.symlog_extractor.SymlogExtractor` (flatten, concatenate, symlog)."""
        return {**params, "policy_kwargs": {**params["policy_kwargs"], "features_extractor_kwargs": {},
                                            "features_extractor_class": "agents.symlog_extractor:SymlogExtractor"}}

    bg_ppo = {k: v for k, v in ppo.items() if k != "lambda_logic"}
    # the baseline learns on train.py's env for janus-ppo: MaskablePPO where that env gives masks (it trains behind
    # the enforcing shield), plain PPO otherwise (the shipped shield_training: none)
    masked = is_masking_supported(vec_env(ppo_base, shield=True))
    ppo_class, ppo_name = (MaskablePPO, "MaskablePPO MultiInputPolicy") if masked else (PPO, "PPO MultiInputPolicy")

    def ppo_baseline() -> Any:  # the baseline of every janus-ppo row: MultiInputPolicy behind the shield
        return build(ppo_class, "MultiInputPolicy", ppo_base, shield=True)

    def dqn_baseline() -> Any:  # the baseline of every DQN-family row
        return build(DQN, "MultiInputPolicy", dqn_base, shield=True)

    return [
        Pair("janus-ppo (configs/janus-ppo.yml, as train.py builds it)", ppo_name,
             train_py("janus-ppo", ppo), ppo_baseline, rollout, args.train_steps),
        Pair("janus-ppo with the GAF video (vision=True, ts_patch=1: the ablation's full brain)", ppo_name,
             train_py("janus-ppo", extractor(ppo, vision=True, ts_patch=1)), ppo_baseline, rollout, args.train_steps),
        Pair("janus-ppo with a series token per step (ts_patch=1, no video: shipped until series-patches)", ppo_name,
             train_py("janus-ppo", extractor(ppo, ts_patch=1)), ppo_baseline, rollout, args.train_steps),
        Pair("PPO + BasalGangliaActorCriticPolicy + JanusExtractor (one each), no shield", "PPO MultiInputPolicy",
             lambda: build(PPO, BasalGangliaActorCriticPolicy, bg_ppo, shield=False),
             lambda: build(PPO, "MultiInputPolicy", ppo_base, shield=False), rollout, args.train_steps),
        Pair("janus-dqn (configs/janus-dqn.yml, as train.py builds it, no sleep)", "DQN MultiInputPolicy",
             train_py("janus-dqn", dqn), dqn_baseline, dqn_warmup, args.dqn_steps),
        Pair("janus-dqn with the GAF video (vision=True, ts_patch=1: shipped until janus-dqn-series-patches, no sleep)",
             "DQN MultiInputPolicy", train_py("janus-dqn", extractor(dqn, vision=True, ts_patch=1)),
             dqn_baseline, dqn_warmup, args.dqn_steps),
        Pair("janus-dqn on SymlogExtractor (the ablation's janus-dqn-symlog: no token streams, not shipped, no sleep)",
             "DQN MultiInputPolicy", train_py("janus-dqn", symlog_flat(dqn)), dqn_baseline, dqn_warmup, args.dqn_steps),
        Pair("BasalGangliaDQN + BasalGangliaDQNPolicy + JanusExtractor (uniform replay)", "DQN MultiInputPolicy",
             lambda: build(BasalGangliaDQN, BasalGangliaDQNPolicy,
                           {k: v for k, v in dqn.items() if k != "lambda_logic"}, shield=True, logic_hook=True),
             dqn_baseline, dqn_warmup, args.dqn_steps),
        Pair("janus-ppo with the former extractor and optimizer (patch_size=4, for-loop Adam)",
             ppo_name, train_py("janus-ppo", former), ppo_baseline, rollout, args.train_steps),
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    th.set_num_threads(1)
    import onnxruntime
    import stable_baselines3

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {th.__version__} "
          f"(1 thread), onnxruntime {onnxruntime.__version__}, SB3 {stable_baselines3.__version__}; "
          f"load average {os.getloadavg()[0]:.2f} at start\n")
    rows, note = latency_table(args.calls)
    print(f"### Decision latency, batch 1, {args.calls:,} calls (ms)\n")
    print("| path | p50 | p99 | p99.9 | max |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (p50, p99, p999, worst) in rows:
        print(f"| {name} | {p50:.3f} | {p99:.3f} | {p999:.3f} | {worst:.3f} |")
    print(f"\n{note}. Target p99 < 5 ms: "
          f"{'met' if max(r[1][1] for r in rows[:2]) < 5 else 'NOT met'} (torch and ONNX rows).\n")

    every = training_pairs(args)
    pairs = [pair for pair in every if not args.only or any(t in pair.label for t in args.only)]
    if not pairs:
        raise SystemExit(f"--only {args.only!r} matches no row; the rows: {[pair.label for pair in every]}")
    for repeat in range(args.repeats):
        for pair in pairs:
            pair.measure(repeat)
    print(f"### Training speed against MultiInputPolicy, same env and settings, 1 torch thread, "
          f"median of {args.repeats} pair(s); {args.train_steps:,} timed steps (PPO), {args.dqn_steps:,} (DQN)\n")
    print("| JANUS agent | baseline | JANUS fps wall / CPU | baseline fps wall / CPU | × baseline, wall | "
          "× baseline, CPU time |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for pair in pairs:
        jw, jc, bw, bc, rw, rc = pair.summary()
        print(f"| {pair.label} | {pair.baseline} | {jw:,.0f} / {jc:,.0f} | {bw:,.0f} / {bc:,.0f} | {rw:.3f} | "
              f"{rc:.3f} |")
    verdicts = [f"{p.label.split(' (')[0]}: {'met' if p.summary()[5] >= TARGET_RATIO else 'NOT met'}"
                for p in pairs if "as train.py builds it" in p.label]  # the agents as shipped
    print(f"\nTarget ≥ {TARGET_RATIO}× (CPU-time ratio): " + "; ".join(verdicts) +
          f". Load average {os.getloadavg()[0]:.2f} at end.")


if __name__ == "__main__":
    main()
