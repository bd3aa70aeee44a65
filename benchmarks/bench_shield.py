"""LTN shield cost: our whole knowledge base per step vs LTNtorch on one formula; env throughput with the shield.

Two tables, measured in the same process:

1. **Per-step decision, µs.** ``LTNShield.decide`` on a live ``Janus-LOB-v0``
   state: the five-rule KB on *every* candidate action (one numba call), the
   proposal's SatAgg, the fallback choice and the ``info["ltn"]["rules"]``
   dict. Compared with the named baseline **LTNtorch** (Carraro, MIT; PyPI
   ``LTNtorch``) evaluating *one* comparable formula,
   ``∀x (P(x) → Q(x))`` (``AggregMin``, ``ImpliesLuk``, two
   ``sigmoid(W·x + b)`` predicates, under ``torch.no_grad``) on a batch of the
   same size (one row per candidate action, 5 features), and with the same
   formula through our own torch path (``wrappers.logic``). The numpy
   reference evaluation of the KB (``backend="numpy"``) is listed for scale.
2. **Env steps/s**, unshielded ``gym.make("Janus-LOB-v0")`` vs the same env
   inside ``LTNShield``, random valid actions drawn outside the timed region,
   ``reset()`` when an episode ends; and the native vector env
   (``gym.make_vec``, N = 64 and 256) vs the same inside ``VectorLTNShield``.
   Repeats alternate between the two envs and the ratio is the median of the
   per-pair ratios (robust to a noisy machine).
3. **Block rates** (``--block-rates``, instead of 1 and 2): the share of
   proposed orders (non-HOLD proposals) that the default ``LTNShield`` blocks
   for the buy-and-hold, momentum and mean-reversion baselines
   (``agents.baselines.make_baseline``) on the simulated ``ou``, ``regime``
   and ``flash_crash`` scenarios and on every shipped sample
   (``janus_env.samples``: BTC with ``lot=1, max_position=5,
   initial_cash=1e6``; the LOBSTER AAPL sample 10 messages per decision,
   ``window=8, lot=10, max_position=100``), with the rules that failed
   (truth < 0.5) in the blocked ones. A sane strategy in a calm market should
   mostly pass; what is blocked should be a crisp rule (wash sale, cash
   reserve, VPIN) or an impact-heavy order in a volatile market.

LTNtorch is a benchmark-only dependency kept out of the project venv
(``.bench-venv/bin/pip install torch==2.13.0 LTNtorch==1.0.2``; it declares
only ``torch`` and ``numpy``). It is imported from the running interpreter,
else from ``.bench-venv``, whose site-packages are appended *after* ours so
that our torch and numpy win. Without it the script says so and prints our
numbers alone.

Usage::

    .venv/bin/python benchmarks/bench_shield.py [--seconds 0.3] [--repeats 7]   # LTNtorch from .bench-venv
    .venv/bin/python benchmarks/bench_shield.py --block-rates [--seeds 3] [--steps 500]   # ≈ 15 s
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402

import envs_registry  # noqa: E402,F401
from agents.baselines import make_baseline  # noqa: E402
from janus_env.samples import sample_path  # noqa: E402
from wrappers import logic  # noqa: E402
from wrappers.rules import RULE_NAMES  # noqa: E402
from wrappers.shield import LTNShield  # noqa: E402
from wrappers.vector_shield import VectorLTNShield  # noqa: E402

N_FEATURES = 5
_BTC = {"lot": 1, "max_position": 5, "initial_cash": 1e6}
BLOCK_MARKETS: dict[str, dict] = {
    "ou": {"scenario": "ou"},
    "regime": {"scenario": "regime"},
    "flash_crash": {"scenario": "flash_crash"},
    "btc_usd_hourly": {"scenario": "historical", "data": "btc_usd_hourly", **_BTC},
    "btc_usd_daily": {"scenario": "historical", "data": "btc_usd_daily", **_BTC},
    "btc_book_15_levels": {"scenario": "historical", "data": "btc_book_15_levels", **_BTC},
    "lobster_aapl": {"scenario": "historical", "data": {"path": "lobster_aapl", "step_messages": 10}, "window": 8,
                     "lot": 10, "max_position": 100},
}
"""The markets of the block-rate table (sample names resolved with ``sample_path``)."""
BLOCK_POLICIES = ("buy_and_hold", "momentum", "mean_reversion")


def per_call_us(fn: Callable[[], object], seconds: float, repeats: int) -> list[float]:
    """µs per call of ``fn`` over ``repeats`` timed runs of about ``seconds`` each (after calibration)."""
    fn()
    k = 1
    while True:  # calibrate (and warm up)
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        if time.perf_counter() - t0 > seconds / 4:
            break
        k *= 2
    k = max(1, int(k * seconds / max(time.perf_counter() - t0, 1e-9)))
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        out.append((time.perf_counter() - t0) / k * 1e6)
    return out


def import_ltntorch():
    """``ltn`` from this interpreter or from ``.bench-venv`` (appended last); None if absent."""
    try:
        import ltn

        return ltn
    except ImportError:
        pass
    for site in sorted(glob.glob(str(ROOT / ".bench-venv" / "lib" / "python3*" / "site-packages"))):
        if Path(site, "ltn").is_dir():
            sys.path.append(site)
            try:
                import ltn

                return ltn
            except ImportError:
                sys.path.remove(site)
    return None


def shield_env(action_type: str) -> LTNShield:
    kwargs = {"n_sizes": 3} if action_type == "sized" else {}
    env = LTNShield(gym.make("Janus-LOB-v0", action_type=action_type, seed=0, **kwargs))
    env.reset(seed=0)
    for a in (1, 1, 0, 2):  # a position and a little history
        env.step(a)
    return env


def decision_table(seconds: float, repeats: int) -> tuple[list[tuple[str, float, int]], str | None]:
    rows: list[tuple[str, float, int]] = []
    for action_type in ("discrete", "sized"):
        env = shield_env(action_type)
        n = env.action_space.n

        def decide(env=env) -> None:
            env.core.scored = False  # force a fresh evaluation of every candidate, as after each step
            env.decide(1, 1)

        rows.append((f"JANUS KB + shield decision, all {n} actions ({action_type})",
                     statistics.median(per_call_us(decide, seconds, repeats)), n))
    q = env.core.quantities
    book = np.ascontiguousarray(env._obs["book"], dtype=np.float64)
    kb = env.knowledge_base
    info = env._info
    cfg = env.unwrapped.config
    state = kb.state(info, env.history, cfg.max_position, cfg.lot, cfg.fee_bps, book_encoded=True)
    rows.append((f"JANUS KB, numpy reference path, all {q.size} actions",
                 statistics.median(per_call_us(lambda: kb.evaluate(q, book, state, backend="numpy"),
                                               seconds, repeats)), q.size))

    torch.manual_seed(0)
    x = torch.rand(q.size, N_FEATURES)
    p_ours, q_ours = logic.Predicate(N_FEATURES), logic.Predicate(N_FEATURES)

    def ours_torch() -> None:
        with torch.no_grad():
            logic.forall(logic.implies(p_ours(x), q_ours(x)), axis=0)

    rows.append((f"JANUS logic core, torch: ∀x (P(x) → Q(x)), batch {q.size}",
                 statistics.median(per_call_us(ours_torch, seconds, repeats)), q.size))

    ltn = import_ltntorch()
    if ltn is None:
        return rows, "LTNtorch is not installed (.bench-venv/bin/pip install torch==2.13.0 LTNtorch==1.0.2): our numbers only"
    var = ltn.Variable("x", x)
    mlp = lambda: torch.nn.Sequential(torch.nn.Linear(N_FEATURES, 1), torch.nn.Sigmoid())  # noqa: E731
    p_ltn, q_ltn = ltn.Predicate(mlp()), ltn.Predicate(mlp())
    implies = ltn.Connective(ltn.fuzzy_ops.ImpliesLuk())
    forall = ltn.Quantifier(ltn.fuzzy_ops.AggregMin(), quantifier="f")

    def ltntorch() -> None:
        with torch.no_grad():
            forall(var, implies(p_ltn(var), q_ltn(var))).value

    try:
        from importlib.metadata import version

        label = f"LTNtorch {version('LTNtorch')}"
    except Exception:  # metadata not found next to the package
        label = "LTNtorch"
    rows.append((f"{label}: ∀x (P(x) → Q(x)), batch {q.size}",
                 statistics.median(per_call_us(ltntorch, seconds, repeats)), q.size))
    return rows, None


def steps_per_second(env: gym.Env, actions: list, k: int) -> float:
    n = len(actions)
    t0 = time.perf_counter()
    for i in range(k):
        _, _, terminated, truncated, _ = env.step(actions[i % n])
        if terminated or truncated:
            env.reset()
    return k / (time.perf_counter() - t0)


def vector_steps_per_second(envs: gym.vector.VectorEnv, actions: np.ndarray, k: int) -> float:
    """Agent-steps/s of a vector env (next-step autoreset: no reset calls)."""
    n = len(actions)
    t0 = time.perf_counter()
    for i in range(k):
        envs.step(actions[i % n])
    return k * envs.num_envs / (time.perf_counter() - t0)


def _paired(plain_run: Callable[[int], float], shielded_run: Callable[[int], float], seconds: float,
            repeats: int) -> tuple[float, float, float]:
    """``run(k)`` steps ``k`` times and returns steps/s. Calibrate ``k`` to about ``seconds`` on the plain
    env (warming both up), then alternate plain/shielded runs: their medians and the median per-pair ratio."""
    k = 16
    while k / plain_run(k) < seconds:
        k *= 2
    shielded_run(k)
    pairs = [(plain_run(k), shielded_run(k)) for _ in range(repeats)]
    return (statistics.median(p for p, _ in pairs), statistics.median(s for _, s in pairs),
            statistics.median(s / p for p, s in pairs))


def throughput_table(seconds: float, repeats: int) -> list[tuple[str, float, float, float]]:
    """Rows ``(env, unshielded steps/s, shielded steps/s, ratio)``: single envs, then native vector envs."""
    rows = []
    for action_type in ("discrete", "sized"):
        kwargs = {"n_sizes": 3} if action_type == "sized" else {}
        plain = gym.make("Janus-LOB-v0", action_type=action_type, seed=0, **kwargs)
        shielded = LTNShield(gym.make("Janus-LOB-v0", action_type=action_type, seed=0, **kwargs))
        rng = np.random.default_rng(0)
        actions = [int(a) for a in rng.integers(0, plain.action_space.n, 65_536)]
        plain.reset(seed=0)
        shielded.reset(seed=0)
        rows.append((f"{action_type}, gym.make", *_paired(lambda k: steps_per_second(plain, actions, k),
                                                          lambda k: steps_per_second(shielded, actions, k),
                                                          seconds, repeats)))
    for n_envs in (64, 256):
        plain_v = gym.make_vec("Janus-LOB-v0", num_envs=n_envs, action_type="sized", n_sizes=3)
        shielded_v = VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=n_envs, action_type="sized", n_sizes=3))
        batches = np.random.default_rng(0).integers(0, 7, (64, n_envs))
        plain_v.reset(seed=0)
        shielded_v.reset(seed=0)
        base, shield, ratio = _paired(lambda k: vector_steps_per_second(plain_v, batches, k) / n_envs,
                                      lambda k: vector_steps_per_second(shielded_v, batches, k) / n_envs,
                                      seconds, repeats)
        rows.append((f"sized, gym.make_vec N={n_envs} (agent-steps/s)", base * n_envs, shield * n_envs, ratio))
    return rows


def _block_env(market: str, steps: int) -> LTNShield:
    spec = dict(BLOCK_MARKETS[market])
    data = spec.get("data")
    if isinstance(data, str):
        spec["data"] = str(sample_path(data))
    elif isinstance(data, dict):
        spec["data"] = {**data, "path": str(sample_path(data["path"]))}
    return LTNShield(gym.make("Janus-LOB-v0", episode_steps=steps, **spec))


def block_rates(market: str, policy: str, seeds: int, steps: int) -> tuple[int, int, dict[str, int]]:
    """``(proposed, blocked, {rule: count})``: non-HOLD proposals, those the shield replaced, and per rule how
    many of the blocked ones it failed (truth < 0.5), over ``seeds`` episodes (seeds 0, 1, ...)."""
    env = _block_env(market, steps)
    proposed = blocked = 0
    failed = dict.fromkeys(RULE_NAMES, 0)
    for seed in range(seeds):
        obs, _ = env.reset(seed=seed)
        agent = make_baseline(policy, env, seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(agent.predict(obs, deterministic=True)[0])
            done = terminated or truncated
            ltn = info["ltn"]
            if ltn["proposed_action"] == 0:
                continue
            proposed += 1
            if ltn["overridden"]:
                blocked += 1
                for rule, truth in ltn["rules"].items():
                    failed[rule] += truth < 0.5
    return proposed, blocked, failed


def print_block_rates(seeds: int, steps: int) -> None:
    print(f"### Orders blocked by the default LTNShield ({seeds} seeds × {steps} steps per cell)\n")
    print("| market | policy | proposed | blocked | blocked share | failed rules in blocked orders |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for market in BLOCK_MARKETS:
        for policy in BLOCK_POLICIES:
            proposed, blocked, failed = block_rates(market, policy, seeds, steps)
            share = f"{blocked / proposed:.1%}" if proposed else "—"
            rules = ", ".join(f"{rule} {n}" for rule, n in failed.items() if n) or "—"
            print(f"| {market} | {policy} | {proposed} | {blocked} | {share} | {rules} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="target seconds per timed run")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median reported)")
    parser.add_argument("--block-rates", action="store_true",
                        help="print the share of baseline orders the shield blocks per market instead")
    parser.add_argument("--seeds", type=int, default=3, help="episodes per block-rate cell")
    parser.add_argument("--steps", type=int, default=500, help="steps per block-rate episode")
    args = parser.parse_args()
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be > 0 and --repeats >= 1")
    if args.seeds < 1 or args.steps < 1:
        parser.error("--seeds and --steps must be >= 1")
    if args.block_rates:
        print_block_rates(args.seeds, args.steps)
        return
    torch.set_num_threads(1)

    rows, note = decision_table(args.seconds, args.repeats)
    ltn_us = next((us for name, us, _ in rows if name.startswith("LTNtorch")), None)
    print("### Per-step decision (µs, median; lower is better)\n")
    print("| evaluation | µs | × LTNtorch (one formula) |")
    print("| --- | ---: | ---: |")
    for name, us, _ in rows:
        ratio = f"{ltn_us / us:.1f}× faster" if ltn_us and not name.startswith("LTNtorch") else "—"
        print(f"| {name} | {us:.2f} | {ratio} |")
    if note:
        print(f"\n{note}")
    ours = rows[0][1]
    print(f"\nTarget < 10 µs for the whole KB: {'met' if ours < 10 else 'NOT met'} ({ours:.2f} µs, Discrete(3)).")

    print("\n### Env throughput (steps/s, median of alternating runs)\n")
    print("| env | unshielded | shielded | shielded / unshielded |")
    print("| --- | ---: | ---: | ---: |")
    for action_type, base, shield, ratio in throughput_table(args.seconds, args.repeats):
        print(f"| {action_type} | {base:,.0f} | {shield:,.0f} | {ratio:.0%} |")
    print("\nTarget ≥ 80%.")


if __name__ == "__main__":
    main()
