"""Ablation grid (issue 14, item 4): what each part of JANUS is worth, market by market, on held-out episodes.

Every trained variant is built the way ``train.py`` builds it — ``train.parse_args`` on ``train.py``'s own
flags (``--algo``, ``--hp KEY=VALUE``, ``--seed``, ``--timesteps``), then ``agents.app.training.resolve_run``
and ``build_training`` — so the grid measures what ``train.py`` ships, with ``configs/<algo>.yml``'s current
settings (the extractor, the gate, the logical loss, sleep and the memory read path). A variant
differs from the full agent by its ``--hp`` overrides only:

| variant | what it is | switches (``train.py`` flags) |
| --- | --- | --- |
| ``janus`` | the full brain, ``janus-ppo`` with every part (as shipped until ``no-gaf``; ``series-patches`` ships now): ``JanusPPO`` with one ``JanusExtractor`` each for actor and critic with the GAF video (DiffGAF → ViViT → gated fusion; ``VISION``) and one series token per step (``STEP_TOKENS``), basal-ganglia policy (No-Go head trained online), cerebellum, sleep/memory when ``configs/janus-ppo.yml`` has a ``sleep`` block; trained without the shield (``shield_training: none``), evaluated behind the enforcing shield with its masks and the logic gate | ``--algo janus-ppo --hp policy_kwargs.features_extractor_kwargs.vision=true --hp policy_kwargs.features_extractor_kwargs.ts_patch=1`` (``FULL_BRAIN``; the rows below that remove one other part set it too) |
| ``no-vision`` | the same agent on SB3's ``CombinedExtractor`` (flatten + concatenate): no GAF, no ViViT, no fusion | ``--hp policy_kwargs.features_extractor_class=stable_baselines3.common.torch_layers:CombinedExtractor --hp policy_kwargs.features_extractor_kwargs={}`` |
| ``no-gaf`` | the same agent and ``JanusExtractor`` without its video stream (``vision=False``): the token streams, their fusion (``H1 = H_ts``) and pooling kept; no DiffGAF, no ViViT, no visual gate; one series token per step. ``janus-ppo`` as ``configs/janus-ppo.yml`` shipped it from this row to ``series-patches`` | ``--hp policy_kwargs.features_extractor_kwargs.vision=false --hp policy_kwargs.features_extractor_kwargs.ts_patch=1`` |
| ``no-gaf-no-nogo`` | ``no-gaf`` with the No-Go gate off, as ``no-nogo``; ``ou-edge`` and ``toxic-squeeze`` | ``no-gaf``'s switches and ``--hp policy_kwargs.tau_veto=1.0`` |
| ``series-patches`` | ``no-gaf`` with the price/volume series read in patches of 4 steps (``ts_patch=4``, PatchTST): 8 series tokens instead of 32 at the default window (32 instead of 128 here). ``janus-ppo`` as ``configs/janus-ppo.yml`` ships it since this row | ``--hp policy_kwargs.features_extractor_kwargs.vision=false --hp policy_kwargs.features_extractor_kwargs.ts_patch=4`` |
| ``no-logic`` | no LTN anywhere: the full agent's own run (``janus`` trains without the shield, ``shield_training: none``), evaluated without the shield, so no masks, no overrides and no logic gate (its input, the shield's score, reads 0) | the evaluation glass box's ``shield`` off |
| ``logic-in-training`` | the former default: trained behind the enforcing shield (its masks, its overrides, the logic gate) with the logical loss, λ_logic = 2 | ``--hp shield_training=enforce --hp lambda_logic=2.0`` |
| ``shield-observes`` | in training the shield only scores (``LTNShield(enforce=False)``: the logical loss, λ_logic = 2, learns from its scores, every action is permitted and executes) | ``--hp shield_training=observe --hp lambda_logic=2.0`` |
| ``no-sleep`` | no sleep phase, so no memory written or read | ``--hp sleep=false``; run only when the full agent's config has a ``sleep`` block (otherwise it would be the full agent: the grid leaves it out and says so) |
| ``no-memory`` | sleeps (schemas, vector store), but the memory is not read: no No-Go prior | ``--hp sleep.cycle.memory_prior=false``; only when the full agent sleeps |
| ``no-nogo`` | the No-Go gate never vetoes: ``τ_veto = 1`` (a veto needs ``sigmoid(·) ≥ 1``; the evaluation counts No-Go vetoes, so a float32 saturation would show); memory's prior acts through No-Go, so it is silenced too | ``--hp policy_kwargs.tau_veto=1.0`` |
| ``ppo-mlp`` | SB3 PPO with ``MultiInputPolicy`` (``configs/ppo.yml``: no shield, no gate) | ``--algo ppo`` |
| ``janus-dqn`` | the DQN family as ``configs/janus-dqn.yml`` shipped it until ``janus-dqn-series-patches`` (``JanusDQN``: JanusExtractor with the GAF video and a series token per step, basal-ganglia DQN policy, prioritized replay with LTN-violation priority, logical loss λ 2, SWR sleep and memory), trained behind the shield; ``ou-edge`` only | ``--algo janus-dqn`` and ``FULL_BRAIN`` |
| ``janus-dqn-unshielded`` | the same trained without the shield (``shield_training: none``, λ_logic = 0) and evaluated behind it, as ``janus`` is; ``ou-edge`` only | ``--algo janus-dqn``, ``FULL_BRAIN``, ``--hp shield_training=none --hp lambda_logic=0.0`` |
| ``janus-dqn-no-gaf`` | ``janus-dqn`` on ``JanusExtractor(vision=False)`` (the ``no-gaf`` switch, a token per step); ``ou-edge`` only | ``--algo janus-dqn --hp policy_kwargs.features_extractor_kwargs.vision=false --hp policy_kwargs.features_extractor_kwargs.ts_patch=1`` |
| ``janus-dqn-series-patches`` | ``janus-dqn-no-gaf`` reading the series in patches of 4 steps (``ts_patch=4``, as ``series-patches``); ``ou-edge`` and ``toxic-squeeze``. ``janus-dqn`` as ``configs/janus-dqn.yml`` shipped it from this row to ``janus-dqn-nogo-every-4`` (the rows up to here set ``NOGO_EVERY_STEP``: the No-Go head updated every env step) | ``--algo janus-dqn --hp policy_kwargs.features_extractor_kwargs.vision=false --hp policy_kwargs.features_extractor_kwargs.ts_patch=4`` |
| ``janus-dqn-flat`` | ``janus-dqn-series-patches`` on SB3's ``CombinedExtractor`` (flatten + concatenate: no token streams, no pooling), as ``no-vision`` is to ``janus``; the gate, prioritized replay, logical loss, shield in training, sleep and memory as shipped; ``ou-edge`` and ``toxic-squeeze`` | ``--algo janus-dqn`` and ``no-vision``'s switches |
| ``janus-dqn-symlog`` | ``janus-dqn-flat`` with every input squashed by ``symlog`` (``agents.symlog_extractor.SymlogExtractor``: flatten, concatenate, ``sign(x)·log(1 + |x|)``, no parameters), the scaling ``JanusExtractor`` gives its token inputs without the token streams, per-token projections and pooling; ``ou-edge`` and ``toxic-squeeze`` | ``--algo janus-dqn --hp policy_kwargs.features_extractor_class=agents.symlog_extractor:SymlogExtractor --hp policy_kwargs.features_extractor_kwargs={}`` |
| ``janus-dqn-nogo-every-4`` | ``janus-dqn-series-patches`` whose No-Go head takes a gradient step every 4 env steps (``BasalGangliaCallback(train_freq=4)``, the Q-network's cadence) instead of every step: the head's training is ≈ 20% of a ``train.py`` run's CPU; ``ou-edge`` and ``toxic-squeeze``; ``janus-dqn`` as ``configs/janus-dqn.yml`` ships it since this row | ``--algo janus-dqn --hp basal_ganglia.train_freq=4`` |
| ``janus-dqn-cerebellum-every-4`` | ``janus-dqn-nogo-every-4`` whose cerebellum (the slippage forward model: the 2× slippage breaker's prediction and the No-Go labels' predicted slippage) takes a gradient step every 4 env steps (``CerebellumCallback(train_freq=4)``, the Q-network's and the No-Go head's cadence, ``janus-ppo``'s: one per vec step of 4 envs) instead of every step; ``ou-edge`` and ``toxic-squeeze``; not shipped (it lost on ``toxic-squeeze``: ``benchmarks/README.md``) | ``--algo janus-dqn --hp cerebellum_training.train_freq=4`` |
| ``dqn-mlp`` | SB3 DQN with ``MultiInputPolicy`` (``configs/dqn.yml``); ``ou-edge`` only | ``--algo dqn`` |
| ``random``, ``hold``, ``buy-and-hold``, ``momentum``, ``mean-reversion`` | the classical baselines (``agents/baselines.py``; ``hold`` always sends HOLD) | — |

**Two rows "without vision".** ``no-vision`` replaces the whole extractor with SB3's, so it measures the
vision path *and* the token projections and fusion around it; ``no-gaf`` keeps ``JanusExtractor`` and drops
only the video (``vision=False``), so it isolates what the GAF images and the ViViT are worth.

**Why ``no-logic`` is the full agent's run.** ``train.py`` refuses ``janus-ppo`` without ``shield: true`` (the
shield it is deployed behind). Since ``janus`` trains without the shield (``shield_training: none``), the agent
without any LTN is the same run evaluated without it: the row reuses ``janus``'s run folder (same training hash,
:func:`run_folder`) and changes only the evaluation glass box.

**Markets** (``MARKETS``; every env has ``window=128, warmup=128``, so the agents have the same inputs
everywhere):

| market | seeds | settings | why |
| --- | --- | --- | --- |
| ``ou-edge`` | 0-4 | ``bench_learning.py``'s market: ``ou``, ``kappa=0.1, sigma=0.002, informed_size=1500, informed_rate=1``, 200 steps | a scripted reversion rule earns ~+75 bps per episode, random loses ~90 |
| ``regime`` | 0-2 | the ``regime`` scenario's defaults, 200 steps | calm/turbulent Markov switching; no designed edge |
| ``flash-crash`` | 0-2 | the ``flash_crash`` scenario's defaults, 200 steps (crash at steps 80-110) | the stress scenario: liquidity withdrawal, sell cascade, recovery |
| ``btc-hourly`` | 0-2 | ``historical`` on the shipped ``btc_usd_hourly`` sample (5,000 bars), ``lot=0.01, max_position=1``, 100 steps; trained on rows [0, 70%), evaluated walk-forward on the 13 non-overlapping 100-step windows of rows [70%, 100%) | real data, out of sample |
| ``toxic-squeeze`` | 0-4 | ``ou-edge`` plus a short squeeze (``event=squeeze, event_depth=0.08``): at steps 80-110 of every session a buy cascade lifts the fundamental 8% and VPIN rises; it snaps back when the event ends | the market where vetoing matters: a contrarian sells into toxic flow (below) |

The toxic market is built from existing ``MarketConfig`` fields (no new scenario). It was chosen, before any
agent ran, by the effect of a veto on the scripted z-score reversion rule (``mean_reversion``, k = 1) over
48 episodes (seeds 700-747; ``--veto-check``, :func:`veto_check`): vetoing its orders while VPIN is above its
80th percentile (0.63) turns 41.7 ± 18.7 bps per episode into 288.4 ± 53.4 (paired difference
+246.6 ± 52.7, standard errors) without the shield, and adds +109.2 ± 46.1 behind the LTN shield, whose VPIN
rule already blocks some of these orders. In ``ou-edge`` the same veto does nothing significant (+9.3 ± 8.7
without the shield, −6.5 ± 9.8 with it). With ``event_depth=0.04`` the gain was +37.2 ± 24.9; around the
default ``flash_crash`` event it was negative (a reversion buyer profits from the recovery).
The squeeze always comes at the same time of the session and always lifts the price, so a policy can also
learn it from the time left (``account[4]``) — the Go head as much as the No-Go head.

**Training** of every variant: ``configs/<algo>.yml`` as shipped (4 envs, ``n_steps=256``, ...), the market's
``env_kwargs`` as ``--hp env_kwargs.KEY=VALUE``, ``--seed s``, ``--timesteps`` (``FULL_TIMESTEPS``), one torch
thread, no checkpoints (``--checkpoint-every`` above the run's length). The run folder
(``OUT/runs/<variant>__<market>__s<seed>__<hash>/``) keeps what ``train.py`` writes (``config.yaml``,
``model.zip``, ``cerebellum.pt``, ``memory.npz``; the last checkpoint is deleted) and ``timings.json``.

**Evaluation**: ``agents.app.evaluation``'s protocol (``make_eval_env``, ``agent_policy``,
``episode_plan``, ``run_episode``): deterministic actions, ``--eval-episodes`` (30) episodes with seeds
``10000 + 1000·seed + k`` — the same episodes for every variant and baseline of one (market, seed), none of
them a training episode — or, on real data, the walk-forward windows. Each agent plays behind the glass box
of its own config (``shield``, ``breakers``, ``sizing``: ``janus-ppo``'s shield on, breakers off;
``ppo``'s nothing); the baselines behind the full agent's (the shield). Per episode: return (bps of initial
equity, ``E_T/E_0 − 1``), steps, non-HOLD decisions, the gate's vetoes by reason (No-Go with memory's prior,
logic), proposals the rules score as violations, halts; per run, whether the policy read a memory.

**Statistics** (``--report``), each comparison ``Δ = JANUS − variant`` (positive: the removed part earns its
place; for a baseline: JANUS's lead), paired on the same (market, seed, episode):

* per seed: ``d_s`` = mean over the common episodes of the difference; over the seeds, the mean of ``d_s``
  with its 95% Student-t interval ``mean ± t_{0.975, n−1}·sd/√n`` and the paired t-test's p
  (``agents.app.metrics.paired_t_test``). This is the interval that counts: it includes the training seed's
  variance, which dominates;
* per episode: the same over every paired episode (seeds pooled), an interval conditional on the trained
  models (narrower, and not a test of the training procedure);
* "all markets": the per-seed differences of every market pooled.

Results whose config hash is not the one the current code and options give (stale) are left out of the
tables and counted under them; missing (market, seed) cells show ``n/N``.

**Resumable.** One JSON file per (variant, market, seed) in ``OUT/results/`` with the config, its hash, the
steps, training time (wall and CPU), evaluation time and every episode. A rerun skips a job whose file has
the same config hash; a job whose run folder is complete for the same training hash is evaluated again without
training (its model and memory loaded as ``evaluate.py`` loads them). The hash covers the resolved
hyper-parameters, the extractor's, the gate's and the sleep cycle's constructor arguments *with their current
defaults* (so a changed ``JanusExtractor`` default reruns everything that uses it), the timesteps, the
evaluation settings and ``PROTOCOL``; the checkout's commit is recorded, not hashed.

```bash
python benchmarks/bench_ablation.py --list                       # the grid and what is done / stale / missing
python benchmarks/bench_ablation.py --only 'janus/ou-edge' --only '*/toxic-squeeze'   # run some of it
python benchmarks/bench_ablation.py --workers 2                  # everything not done yet, two jobs at a time
python benchmarks/bench_ablation.py --exclude 'no-memory' --exclude 'no-sleep'   # all but these rows
python benchmarks/bench_ablation.py --report                     # OUT/report.md and OUT/report.png
python benchmarks/bench_ablation.py --veto-check                 # the scripted rule with and without a VPIN veto
python benchmarks/bench_ablation.py --phases 10 --only '*/toxic-squeeze'   # returns before / during / after the event
python benchmarks/bench_ablation.py --out /tmp/abl --timesteps 1024 --eval-episodes 2 --max-seeds 1   # smoke grid
```
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import importlib
import inspect
import json
import math
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout without an editable install
    sys.path.insert(0, str(ROOT))

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from janus_env.atomic import atomic_path  # noqa: E402

ENV_ID = "Janus-LOB-v0"
OUT = ROOT / "benchmarks" / "out" / "ablation"
PROTOCOL = 1
"""Version of the evaluation protocol; part of every config hash (bump it and every result is rerun)."""
FULL_TIMESTEPS = 16_384
"""Training steps per run (module docstring; the README's bench_ablation section has the timings behind it)."""
EVAL_EPISODES = 30
EVAL_SEED = 10_000
"""Episode k of training seed s is seeded ``EVAL_SEED + 1000·s + k``: apart from every training env's seeds."""
TEST_SPLIT = 0.7
"""Real data: trained on rows [0, TEST_SPLIT), evaluated walk-forward on rows [TEST_SPLIT, 1)."""
REFERENCE = "janus"
"""The variant every other one is compared with."""
_NEVER_CHECKPOINT = 10**12
"""``--checkpoint-every`` of the runs: no checkpoint is written (only ``model.zip``)."""

_BAD_ONLY = "Expected --only VARIANT or VARIANT/MARKET (shell-style wildcards), got {!r}"
_NO_MATCH = "--only {!r} matches no job of the grid (variants {}, markets {})"
_BAD_RESULT = "{}: not an ablation result ({})"
_ENV_MISMATCH = ("market {!r}: variant {!r} would play env_kwargs {!r}, {!r} plays {!r}; the paired comparison "
                 "needs the same market for every variant (align configs/*.yml's env_kwargs)")
_CONFIG_DRIFT = "{}: train.py resolved other hyper-parameters than the grid hashed: {!r} != {!r}"


# --------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class Variant:
    """One row of the grid: a trained agent (``algo`` and ``train.py`` overrides) or a baseline.

    Attributes:
        name: row name.
        algo: ``train.py --algo`` (None for a baseline).
        hp: ``train.py --hp KEY=VALUE`` overrides on top of ``configs/<algo>.yml`` and the market's.
        baseline: name of a baseline policy (``agents.baselines.make_baseline``, or ``"hold"``).
        needs_sleep: run only when the full agent's resolved config has a ``sleep`` block.
        eval_shield: the evaluation glass box's shield, when it is not the run config's (None: the config's).
        markets: the markets it runs on (None: every one); elsewhere its cells read "—", not "missing".
        what: one line for the report.
    """

    name: str
    algo: str | None = None
    hp: tuple[str, ...] = ()
    baseline: str | None = None
    needs_sleep: bool = False
    eval_shield: bool | None = None
    markets: tuple[str, ...] | None = None
    what: str = ""


VISION = "policy_kwargs.features_extractor_kwargs.vision=true"
"""The full brain's GAF video. ``configs/janus-ppo.yml`` ships without it since this grid's ``no-gaf`` row (the
README's "Vision isolated"); ``janus`` and the rows that take one other part away from it keep it, so they
measure what they measured before (:data:`ADDED_ARGUMENTS` keeps their hashes)."""

STEP_TOKENS = "policy_kwargs.features_extractor_kwargs.ts_patch=1"
"""One series token per step, ``JanusExtractor``'s default. ``configs/janus-ppo.yml`` reads the series in patches of
4 steps since this grid's ``series-patches`` row; the rows measured before it set it back (with :data:`VISION`:
:data:`FULL_BRAIN`), and a setting at the class's default is not hashed (:func:`hashed_settings`), so their results
stay up to date."""

NOGO_EVERY_STEP = "basal_ganglia.train_freq=1"
"""The No-Go head's online update at every env step, ``BasalGangliaCallback``'s default. ``configs/janus-dqn.yml``
updates it every 4 steps since this grid's ``janus-dqn-nogo-every-4`` row; the ``janus-dqn`` rows measured before set
it back, and a callback setting at its class's default is not hashed (:func:`hashed`, :data:`CALLBACK_BLOCKS`), so
their results stay up to date."""

FULL_BRAIN = (VISION, STEP_TOKENS)
"""The full brain as the grid measured it: the GAF video, one series token per step."""

VARIANTS: tuple[Variant, ...] = (
    Variant("janus", "janus-ppo", hp=FULL_BRAIN,
            what="full JANUS, every part: janus-ppo with the GAF video (vision=true), as shipped until no-gaf"),
    Variant("no-vision", "janus-ppo",
            hp=("policy_kwargs.features_extractor_class=stable_baselines3.common.torch_layers:CombinedExtractor",
                "policy_kwargs.features_extractor_kwargs={}"),
            what="CombinedExtractor instead of JanusExtractor (no GAF, ViViT, fusion)"),
    Variant("no-gaf", "janus-ppo", hp=("policy_kwargs.features_extractor_kwargs.vision=false", STEP_TOKENS),
            what="JanusExtractor(vision=False): the token streams and fusion kept, no GAF video, no ViViT "
                 "(janus-ppo as configs/janus-ppo.yml shipped it until series-patches)"),
    Variant("no-gaf-no-nogo", "janus-ppo", hp=("policy_kwargs.features_extractor_kwargs.vision=false", STEP_TOKENS,
                                               "policy_kwargs.tau_veto=1.0"), markets=("ou-edge", "toxic-squeeze"),
            what="no-gaf with the No-Go gate off (tau_veto = 1; memory's prior silenced too)"),
    Variant("series-patches", "janus-ppo", hp=("policy_kwargs.features_extractor_kwargs.vision=false",
                                               "policy_kwargs.features_extractor_kwargs.ts_patch=4"),
            what="no-gaf with the series read in patches of 4 steps (ts_patch=4; janus-ppo as shipped now)"),
    Variant("no-logic", "janus-ppo", hp=FULL_BRAIN, eval_shield=False,
            what="the full agent's run evaluated without the shield: no LTN anywhere (janus trains without it)"),
    Variant("logic-in-training", "janus-ppo", hp=(*FULL_BRAIN, "shield_training=enforce", "lambda_logic=2.0"),
            what="the former default: trained behind the shield's masks with the logical loss (lambda_logic 2)"),
    Variant("shield-observes", "janus-ppo", hp=(*FULL_BRAIN, "shield_training=observe", "lambda_logic=2.0"),
            what="the shield observes in training (logical loss on its scores, no masks, no overrides)"),
    Variant("no-sleep", "janus-ppo", hp=(*FULL_BRAIN, "sleep=false"), needs_sleep=True,
            what="no sleep phase, no memory read"),
    Variant("no-memory", "janus-ppo", hp=(*FULL_BRAIN, "sleep.cycle.memory_prior=false"), needs_sleep=True,
            what="sleeps (memory written), memory not read (no No-Go prior)"),
    Variant("no-nogo", "janus-ppo", hp=(*FULL_BRAIN, "policy_kwargs.tau_veto=1.0"),
            what="No-Go gate off (tau_veto = 1)"),
    Variant("ppo-mlp", "ppo", what="SB3 PPO, MultiInputPolicy (configs/ppo.yml)"),
    Variant("janus-dqn", "janus-dqn", hp=(*FULL_BRAIN, NOGO_EVERY_STEP), markets=("ou-edge",),
            what="the DQN family with the GAF video, as configs/janus-dqn.yml shipped it until "
                 "janus-dqn-series-patches: trained behind the shield, logical loss (λ 2)"),
    Variant("janus-dqn-unshielded", "janus-dqn",
            hp=(*FULL_BRAIN, "shield_training=none", "lambda_logic=0.0", NOGO_EVERY_STEP),
            markets=("ou-edge",), what="janus-dqn trained without the shield (λ_logic 0), decides behind it"),
    Variant("janus-dqn-no-gaf", "janus-dqn",
            hp=("policy_kwargs.features_extractor_kwargs.vision=false", STEP_TOKENS, NOGO_EVERY_STEP),
            markets=("ou-edge",), what="janus-dqn on JanusExtractor(vision=False): no GAF video, no ViViT"),
    Variant("janus-dqn-series-patches", "janus-dqn", hp=("policy_kwargs.features_extractor_kwargs.vision=false",
                                                         "policy_kwargs.features_extractor_kwargs.ts_patch=4",
                                                         NOGO_EVERY_STEP),
            markets=("ou-edge", "toxic-squeeze"),
            what="janus-dqn-no-gaf with the series read in patches of 4 steps (ts_patch=4; janus-dqn as shipped "
                 "until janus-dqn-nogo-every-4)"),
    Variant("janus-dqn-flat", "janus-dqn",
            hp=("policy_kwargs.features_extractor_class=stable_baselines3.common.torch_layers:CombinedExtractor",
                "policy_kwargs.features_extractor_kwargs={}", NOGO_EVERY_STEP), markets=("ou-edge", "toxic-squeeze"),
            what="janus-dqn-series-patches on SB3's CombinedExtractor (flatten + concatenate): no token streams, "
                 "as no-vision is to janus"),
    Variant("janus-dqn-symlog", "janus-dqn",
            hp=("policy_kwargs.features_extractor_class=agents.symlog_extractor:SymlogExtractor",
                "policy_kwargs.features_extractor_kwargs={}", NOGO_EVERY_STEP), markets=("ou-edge", "toxic-squeeze"),
            what="janus-dqn-flat with every input squashed by symlog (agents.symlog_extractor): JanusExtractor's "
                 "input scaling without its token streams"),
    Variant("janus-dqn-nogo-every-4", "janus-dqn", hp=("basal_ganglia.train_freq=4",),
            markets=("ou-edge", "toxic-squeeze"),
            what="janus-dqn-series-patches with a No-Go head update every 4 steps (as the Q-network), not every "
                 "step: janus-dqn as shipped now"),
    Variant("janus-dqn-cerebellum-every-4", "janus-dqn", hp=("cerebellum_training.train_freq=4",),
            markets=("ou-edge", "toxic-squeeze"),
            what="janus-dqn-nogo-every-4 with a cerebellum update every 4 steps (as the Q-network and the No-Go "
                 "head), not every step (not shipped)"),
    Variant("dqn-mlp", "dqn", markets=("ou-edge",), what="SB3 DQN, MultiInputPolicy (configs/dqn.yml)"),
    Variant("random", baseline="random", what="uniform random actions"),
    Variant("hold", baseline="hold", what="always HOLD"),
    Variant("buy-and-hold", baseline="buy_and_hold", what="agents.baselines.BuyAndHoldPolicy"),
    Variant("momentum", baseline="momentum", what="agents.baselines.MomentumPolicy"),
    Variant("mean-reversion", baseline="mean_reversion", what="agents.baselines.ZScoreMeanReversionPolicy (k = 1)"),
)
"""The rows of the grid, in report order."""

COMMON = {"window": 128, "warmup": 128, "episode_steps": 200}
EDGE = {"scenario": "ou", "kappa": 0.1, "sigma": 0.002, "informed_size": 1500, "informed_rate": 1.0}


@dataclass(frozen=True)
class Market:
    """One column of the grid: env settings (``train.py --hp env_kwargs.KEY=VALUE``) and training seeds."""

    name: str
    seeds: tuple[int, ...]
    env_kwargs: Mapping[str, Any]
    what: str = ""

    @property
    def historical(self) -> bool:
        return self.env_kwargs.get("scenario") == "historical"


MARKETS: tuple[Market, ...] = (
    Market("ou-edge", (0, 1, 2, 3, 4), {**EDGE, **COMMON}, "OU with an edge (bench_learning.py's market)"),
    Market("regime", (0, 1, 2), {"scenario": "regime", **COMMON}, "regime scenario defaults"),
    Market("flash-crash", (0, 1, 2), {"scenario": "flash_crash", **COMMON}, "flash_crash scenario defaults"),
    Market("btc-hourly", (0, 1, 2),
           {"scenario": "historical", "data": "btc_usd_hourly", "data_split": [0.0, TEST_SPLIT], "lot": 0.01,
            "max_position": 1.0, **COMMON, "episode_steps": 100},
           "btc_usd_hourly, walk-forward"),
    Market("toxic-squeeze", (0, 1, 2, 3, 4), {**EDGE, **COMMON, "event": "squeeze", "event_depth": 0.08},
           "ou-edge + a buy cascade at steps 80-110 (toxic flow)"),
)
"""The columns of the grid."""


@dataclass(frozen=True)
class Job:
    """One (variant, market, seed): everything it runs with is in ``config`` (hashed)."""

    variant: str
    market: str
    seed: int
    config: dict[str, Any]
    config_hash: str
    train_hash: str | None

    @property
    def key(self) -> str:
        return f"{self.variant}__{self.market}__s{self.seed}"


@dataclass(frozen=True)
class Settings:
    """Options of one invocation."""

    out: Path
    timesteps: int = FULL_TIMESTEPS
    eval_episodes: int = EVAL_EPISODES
    max_seeds: int | None = None


def hashed(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as it is hashed: wherever a run sets an extractor argument to its former behaviour
    (:data:`ADDED_ARGUMENTS`: ``--hp policy_kwargs.features_extractor_kwargs.vision=true``) or to the class's own
    default (``…ts_patch=1``, :data:`STEP_TOKENS`), the setting is left out of the ``--hp`` list and of the resolved
    ``features_extractor_kwargs`` (dropped if that empties them), so such a run hashes as it did before the argument
    existed or before the config set another value (:func:`hashed_settings`). The recorded config keeps every
    setting."""
    from agents.app.config import parse_override

    train = config.get("train")
    if not train:
        return dict(config)
    policy_kwargs = dict(train["hyperparams"].get("policy_kwargs") or {})
    extractor = policy_kwargs.get("features_extractor_class")
    name = extractor if isinstance(extractor, str) else ""

    def former(text: str) -> bool:  # an extractor argument at its former behaviour, parsed as train.py parses --hp
        path, value = parse_override(text)
        extractor_kwarg = len(path) == 3 and path[:2] == ["policy_kwargs", "features_extractor_kwargs"]
        return extractor_kwarg and hashed_settings(name, {path[2]: value}) == {}

    hp = [text for text in train["hp"] if not former(text) and not at_callback_default(*parse_override(text))]
    hyperparams = without_callback_defaults(train["hyperparams"])
    kwargs = policy_kwargs.get("features_extractor_kwargs")
    if isinstance(kwargs, Mapping) and hashed_settings(name, kwargs) != dict(kwargs):
        kept = hashed_settings(name, kwargs)
        policy_kwargs = {k: v for k, v in policy_kwargs.items() if k != "features_extractor_kwargs"}
        if kept:
            policy_kwargs["features_extractor_kwargs"] = kept
        hyperparams = {**hyperparams, "policy_kwargs": policy_kwargs}
    return {**config, "train": {**train, "hp": hp, "hyperparams": hyperparams}}


CALLBACK_BLOCKS = ("basal_ganglia", "cerebellum_training")
"""Config blocks that are a callback's keyword arguments (``train.py`` builds the callback with them; the class is
``agents.app.config.BRAIN_BLOCKS``'s): a setting at the class's default is left out of the hash, as an extractor
argument at its default is (:data:`NOGO_EVERY_STEP`)."""


def at_callback_default(path: list[str], value: Any) -> bool:
    """Whether ``--hp`` path ``block.key`` sets a :data:`CALLBACK_BLOCKS` callback argument to the class's default."""
    if len(path) != 2 or path[0] not in CALLBACK_BLOCKS:
        return False
    from agents.app.config import BRAIN_BLOCKS

    defaults = constructor_arguments(BRAIN_BLOCKS[path[0]][0], {})
    return path[1] in defaults and value == defaults[path[1]]


def without_callback_defaults(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """``hyperparams`` without the :data:`CALLBACK_BLOCKS` settings at their class's default (a block left empty
    is dropped)."""
    out = dict(hyperparams)
    for block in CALLBACK_BLOCKS:
        settings = out.get(block)
        if not isinstance(settings, Mapping):
            continue
        kept = {k: v for k, v in settings.items() if not at_callback_default([block, k], v)}
        if kept != dict(settings):
            out.pop(block)
            if kept:
                out[block] = kept
    return out


def stable_hash(value: Any) -> str:
    """SHA-256 (first 16 hex digits) of ``value`` as sorted, compact JSON."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def market_overrides(market: Market) -> list[str]:
    """``train.py --hp`` overrides of the market (values as JSON, which YAML reads back unchanged)."""
    return [f"env_kwargs.{key}={json.dumps(value)}" for key, value in market.env_kwargs.items()]


def _import_class(name: Any) -> Any:
    """The class a config names as ``"module:Class"`` (or the class itself; None stays None)."""
    if name is None or not isinstance(name, str):
        return name
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def constructor_arguments(cls: Any, given: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, Any]:
    """``cls.__init__``'s keyword defaults with ``given`` on top: the arguments an instance is really built with."""
    out: dict[str, Any] = {}
    for param in inspect.signature(cls.__init__).parameters.values():
        if param.name in ("self", *skip) or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        if param.default is not param.empty:
            out[param.name] = param.default
    out.update(given)
    return out


ADDED_ARGUMENTS: Mapping[str, Mapping[str, Any]] = {"agents.extractor:JanusExtractor": {"vision": True}}
"""Constructor arguments added after results were hashed, with the value that builds what the class built before
(``JanusExtractor(vision=True)``: the GAF video, as always). At that value an argument is left out of the hash, so
adding it does not make every earlier result stale; any other value — set by a run, or a new default — is hashed."""


def without_former(extractor: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` of the features extractor named ``"module:Class"`` less those at their former behaviour
    (:data:`ADDED_ARGUMENTS`)."""
    added = ADDED_ARGUMENTS.get(extractor, {})
    return {k: v for k, v in kwargs.items() if not (k in added and v == added[k])}


def hashed_settings(extractor: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The explicit ``kwargs`` of the features extractor named ``"module:Class"`` that :func:`hashed` keeps: less
    those at their former behaviour (:func:`without_former`) and those at the class's own default. Dropping the
    latter loses nothing: :func:`used_arguments` hashes every argument the run builds the class with, defaults
    included; an explicit default only restates it (and pins it for a config that sets another value)."""
    kept = without_former(extractor, kwargs)
    if ":" not in extractor:
        return kept
    defaults = constructor_arguments(_import_class(extractor), {}, skip=("observation_space",))
    return {k: v for k, v in kept.items() if not (k in defaults and v == defaults[k])}


def used_arguments(algo: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The features extractor (class and every argument, defaults included), for the basal-ganglia policy the
    gate's arguments and, for a run that sleeps, every ``replay.SleepConfig`` field: what a default change in the
    code changes, so it is part of the hash."""
    from stable_baselines3.common.torch_layers import CombinedExtractor

    from agents.basal_ganglia import BasalGangliaPolicyMixin

    policy_kwargs = dict(params.get("policy_kwargs") or {})
    extractor = _import_class(policy_kwargs.get("features_extractor_class")) or CombinedExtractor
    name = f"{extractor.__module__}:{extractor.__qualname__}"
    kwargs = constructor_arguments(extractor, policy_kwargs.get("features_extractor_kwargs") or {},
                                   skip=("observation_space",))
    used = {"extractor": {"class": name, "kwargs": without_former(name, kwargs)}}
    if algo.startswith("janus-"):
        gate = constructor_arguments(BasalGangliaPolicyMixin, {}, skip=("observation_space", "action_space",
                                                                        "lr_schedule"))
        used["gate"] = {k: policy_kwargs.get(k, v) for k, v in gate.items()}
    sleep = params.get("sleep")
    if sleep:
        from replay import SleepConfig

        used["sleep_cycle"] = constructor_arguments(SleepConfig, dict(sleep.get("cycle") or {}))
    return used


def resolve_params(variant: Variant, market: Market) -> dict[str, Any]:
    """The hyper-parameters ``train.py --algo ALGO --hp ...`` resolves for ``variant`` on ``market``."""
    from agents.app.config import resolve_hyperparams

    return resolve_hyperparams(variant.algo, ENV_ID, None, market_overrides(market) + list(variant.hp))


def glass_box(params: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluation glass box of a run config: its shield, breakers and sizing."""
    return {"shield": bool(params.get("shield", False)), "breakers": params.get("breakers") or False,
            "sizing": params.get("sizing") or False}


def eval_env_kwargs(params: Mapping[str, Any], market: Market) -> dict[str, Any]:
    """The evaluation env's settings: the run's ``env_kwargs``, on real data the test rows ``[TEST_SPLIT, 1)``."""
    kwargs = {k: v for k, v in dict(params.get("env_kwargs", {})).items() if k != "data_split"}
    if market.historical:
        kwargs["data_split"] = [TEST_SPLIT, 1.0]
    return kwargs


def build_grid(settings: Settings, variants: Sequence[Variant] = VARIANTS,
               markets: Sequence[Market] = MARKETS) -> tuple[list[Job], list[str]]:
    """Every job of the grid (markets, then seeds, then variants) and notes on variants left out.

    Raises:
        ValueError: two variants of one market would play different envs (the comparison would not be paired).
        ConfigError: a config or override ``train.py`` refuses.
    """
    jobs: list[Job] = []
    notes: list[str] = []
    reference = next(v for v in variants if v.name == REFERENCE)
    for market in markets:
        full = resolve_params(reference, market)
        base_box, base_env = glass_box(full), eval_env_kwargs(full, market)
        has_sleep = bool(full.get("sleep"))
        seeds = market.seeds[: settings.max_seeds] if settings.max_seeds else market.seeds
        resolved: dict[str, dict[str, Any] | None] = {}
        for variant in variants:
            if variant.markets is not None and market.name not in variant.markets:
                continue
            if variant.needs_sleep and not has_sleep:
                note = (f"{variant.name}: not run — the full agent has no sleep phase (configs/{reference.algo}.yml "
                        f"has no `sleep` block), so it would be the full agent")
                if note not in notes:
                    notes.append(note)
                continue
            params = resolve_params(variant, market) if variant.algo else None
            resolved[variant.name] = params
            env_kwargs = eval_env_kwargs(params, market) if params is not None else base_env
            if env_kwargs != base_env:
                raise ValueError(_ENV_MISMATCH.format(market.name, variant.name, env_kwargs, REFERENCE, base_env))
        for seed in seeds:
            for variant in variants:
                if variant.name not in resolved:
                    continue
                params = resolved[variant.name]
                train = None
                if params is not None:
                    train = {"algo": variant.algo, "env": ENV_ID, "timesteps": settings.timesteps,
                             "hp": market_overrides(market) + list(variant.hp),
                             "hyperparams": params,
                             "used": used_arguments(variant.algo, params), "torch_threads": 1}
                box = dict(glass_box(params) if params is not None else base_box)
                if variant.eval_shield is not None:
                    box["shield"] = variant.eval_shield
                evaluation = {"episodes": settings.eval_episodes, "first_seed": EVAL_SEED + 1000 * seed,
                              "env_kwargs": base_env, "glass_box": box,
                              "baseline": variant.baseline, "deterministic": True}
                config = {"protocol": PROTOCOL, "variant": variant.name, "market": market.name, "seed": seed,
                          "train": train, "eval": evaluation}
                hashed_config = hashed(config)
                train_hash = (stable_hash({"train": hashed_config["train"], "seed": seed, "market": market.name})
                              if train else None)
                jobs.append(Job(variant.name, market.name, seed, config, stable_hash(hashed_config), train_hash))
    return jobs, notes


def select(jobs: Sequence[Job], patterns: Sequence[str]) -> list[Job]:
    """The jobs matching any ``VARIANT`` or ``VARIANT/MARKET`` pattern (``fnmatch`` wildcards); all without patterns.

    Raises:
        ValueError: a malformed pattern, or one that matches nothing.
    """
    if not patterns:
        return list(jobs)
    chosen: list[Job] = []
    for pattern in patterns:
        parts = pattern.split("/")
        if len(parts) > 2 or not all(parts):
            raise ValueError(_BAD_ONLY.format(pattern))
        variant_glob, market_glob = (parts + ["*"])[:2]
        hits = [j for j in jobs if fnmatch.fnmatchcase(j.variant, variant_glob)
                and fnmatch.fnmatchcase(j.market, market_glob)]
        if not hits:
            raise ValueError(_NO_MATCH.format(pattern, sorted({j.variant for j in jobs}),
                                              sorted({j.market for j in jobs})))
        chosen += [j for j in hits if j not in chosen]
    return chosen


def result_path(out: Path, job: Job) -> Path:
    return out / "results" / f"{job.key}.json"


def run_folder(out: Path, job: Job) -> Path:
    """The job's run folder; a finished one of another variant with the same training (same train hash: the same
    ``train.py`` run, e.g. ``logic-at-deployment`` and ``no-logic``) is reused, evaluated without training again."""
    own = out / "runs" / f"{job.key}__{job.train_hash}"
    if not (own / "timings.json").is_file():
        for other in sorted((out / "runs").glob(f"*__{job.market}__s{job.seed}__{job.train_hash}")):
            if (other / "timings.json").is_file():
                return other
    return own


def status(out: Path, job: Job) -> str:
    """``"done"`` (a result with this config hash), ``"stale"`` (another hash) or ``"missing"``."""
    path = result_path(out, job)
    if not path.is_file():
        return "missing"
    try:
        return "done" if json.loads(path.read_text()).get("config_hash") == job.config_hash else "stale"
    except (OSError, ValueError):
        return "stale"


# --------------------------------------------------------------------------- one job


class HoldPolicy:
    """The HOLD baseline: action 0 (HOLD) for every observation."""

    name = "hold"

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[Any, None]:
        batch = np.asarray(observation["account"]).ndim > 1
        return (np.zeros(np.asarray(observation["account"]).shape[0], dtype=np.int64) if batch else 0), None


@dataclass
class _Counts:
    trades: int = 0
    nogo_vetoes: int = 0
    logic_vetoes: int = 0


def _counting(act: Callable[[Any], Any], policy: Any, counts: _Counts) -> Callable[[Any], Any]:
    """``act`` that also counts non-HOLD decisions and, for a gated policy, its vetoes by reason: the No-Go
    pathway (the head, with memory's prior when the policy has a memory read path) and the logic gate."""

    def wrapped(obs: Any) -> Any:
        action = act(obs)
        counts.trades += int(np.asarray(action).reshape(-1)[0] != 0)
        record = getattr(policy, "last_go_nogo", None) if policy is not None else None
        if record and record.get("vetoed"):
            reason = str(record.get("veto_reason", ""))
            counts.nogo_vetoes += "nogo" in reason or "memory" in reason  # memory's prior acts through No-Go
            counts.logic_vetoes += "logic" in reason
        return action

    return wrapped


def _acting(job: Job, env: Any, model: Any) -> tuple[Callable[[Any], Any], Any]:
    """``(act, policy)``: the trained ``model`` as evaluation runs it, or the job's baseline (policy None)."""
    from agents.app import evaluation as ev
    from agents.baselines import make_baseline

    if model is not None:
        return ev.agent_policy(model, env), model.policy
    name, seed = job.config["eval"]["baseline"], job.config["eval"]["first_seed"]
    baseline = HoldPolicy() if name == "hold" else make_baseline(name, env, seed=seed)
    return (lambda obs: baseline.predict(obs, deterministic=True)[0]), None


def evaluate(job: Job, model: Any = None) -> list[dict[str, Any]]:
    """Play the job's held-out episodes with ``model`` (or its baseline); one record per episode."""
    from agents.app import evaluation as ev

    spec = job.config["eval"]
    env = ev.make_eval_env(ENV_ID, spec["env_kwargs"], **spec["glass_box"])
    plan = ev.episode_plan(env, spec["episodes"], spec["first_seed"])
    act, policy = _acting(job, env, model)
    episodes = []
    for seed, start in plan.episodes:
        counts = _Counts()
        result = ev.run_episode(env, _counting(act, policy, counts), seed, start)
        episodes.append({"seed": int(seed), "start": None if start is None else int(start),
                         "return_bps": 1e4 * result.episode_return, "steps": int(result.steps),
                         "trades": counts.trades, "nogo_vetoes": counts.nogo_vetoes,
                         "logic_vetoes": counts.logic_vetoes, "violations": int(result.violations),
                         "proposed": int(result.proposed), "halted": bool(result.halted)})
    env.close()
    return episodes


def train(job: Job, folder: Path) -> tuple[Any, dict[str, Any]]:
    """Train the job's variant as ``train.py`` does (module docstring); returns the model and timings."""
    import torch

    import train as train_cli
    from agents.app.training import build_training, resolve_run

    spec = job.config["train"]
    argv = ["--algo", spec["algo"], "--env", spec["env"], "--seed", str(job.seed), "--timesteps",
            str(spec["timesteps"]), "--run-dir", str(folder.parent), "--run-name", folder.name,
            "--checkpoint-every", str(_NEVER_CHECKPOINT), "--keep-checkpoints", "1", "--no-progress",
            "--torch-threads", str(spec["torch_threads"])]
    for text in spec["hp"]:
        argv += ["--hp", text]
    run = resolve_run(train_cli.parse_args(argv))
    if json.loads(json.dumps(run.config["hyperparams"], default=str)) != json.loads(
            json.dumps(spec["hyperparams"], default=str)):
        raise RuntimeError(_CONFIG_DRIFT.format(job.key, run.config["hyperparams"], spec["hyperparams"]))
    training = build_training(run)
    model = training.model
    wall, cpu = time.perf_counter(), time.process_time()
    training.learn(progress=False)
    timings = {"train_s": time.perf_counter() - wall, "train_cpu_s": time.process_time() - cpu,
               "steps": int(model.num_timesteps), "torch_threads": torch.get_num_threads()}
    training.save()  # what train.py writes: model.zip and, for the JANUS algorithms, cerebellum.pt and memory.npz
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # its last checkpoint (~15 MB) is not needed here
    return model, timings


def _code_version() -> dict[str, Any]:
    """The checkout the result came from (recorded, not hashed)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                                    check=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def load_finished(job: Job, folder: Path) -> Any:
    """A finished run's model, loaded as ``evaluate.py`` loads one: the safe loader, then the run's memory."""
    from agents.app.config import load_memory
    from agents.app.safe_load import load_model

    model = load_model(folder / "model.zip", job.config["train"]["algo"], device="cpu")
    load_memory(folder, model)
    return model


def run_job(job: Job, out: Path) -> tuple[str, str]:
    """Run one job unless its result is up to date; returns ``(key, what happened)``.

    ``"skipped"`` (a result with this hash exists), ``"evaluated"`` (the model of this training hash existed),
    or ``"trained"``. Writes ``OUT/results/<key>.json`` atomically.
    """
    import torch

    from janus_env.atomic import atomic_write_bytes

    if status(out, job) == "done":
        return job.key, "skipped"
    torch.set_num_threads(1)
    started = time.time()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    model, timings, what = None, {}, "evaluated"
    if job.train_hash is not None:
        folder = run_folder(out, job)
        if (folder / "timings.json").is_file():
            model = load_finished(job, folder)
            timings = json.loads((folder / "timings.json").read_text())
        else:
            if folder.exists():  # a run killed before it finished (timings.json is written last): start again
                shutil.rmtree(folder)
            model, timings = train(job, folder)
            atomic_write_bytes(folder / "timings.json", json.dumps(timings).encode())
            what = "trained"
    wall = time.perf_counter()
    episodes = evaluate(job, model)
    returns = [e["return_bps"] for e in episodes]
    result = {
        "variant": job.variant, "market": job.market, "seed": job.seed, "config_hash": job.config_hash,
        "train_hash": job.train_hash, "config": job.config, **timings, "eval_s": time.perf_counter() - wall,
        "reads_memory": getattr(getattr(model, "policy", None), "memory", None) is not None,
        "mean_return_bps": float(np.mean(returns)) if returns else math.nan, "returns_bps": returns,
        "episodes": episodes, "code": _code_version(),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "load_average_at_start": load},
        "finished_unix": time.time(), "started_unix": started,
    }
    atomic_write_bytes(result_path(out, job), json.dumps(result, indent=1, default=str).encode())
    if "matplotlib.pyplot" in sys.modules:  # the run's equity-curve figures (agents/app/callbacks.py) stay open
        sys.modules["matplotlib.pyplot"].close("all")
    return job.key, what


# --------------------------------------------------------------------------- where the returns come from


class _Positions(gym.Wrapper):
    """Keeps ``info["position"]`` after every step (the glass box's env below it is what acts)."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.positions: list[float] = []

    def reset(self, **kwargs: Any) -> Any:
        self.positions = []
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        self.positions.append(float(out[4]["position"]))
        return out


PHASES = ("before", "event", "after")


def event_phases(job: Job, out: Path, episodes: int) -> dict[str, dict[str, float]]:
    """Where a job's returns come from in a market with a stress event: per phase (decisions before the event's
    first step, during it, after its last), the change of equity in bps of the initial equity, the mean position
    in lots, the share of non-HOLD decisions and the decisions per episode, averaged over the job's first
    ``episodes`` held-out episodes.

    Phase returns are ``(E[a] − E[b]) / E_0`` over the equity path ``E_0..E_T`` of
    :func:`agents.app.evaluation.run_episode`, so the three add up to the episode return.

    Raises:
        ValueError: the market has no event, or the job's run is not finished.
    """
    from agents.app import evaluation as ev

    spec = job.config["eval"]
    env = ev.make_eval_env(ENV_ID, spec["env_kwargs"], **spec["glass_box"])
    window = ev.check_event_inside(env)
    if window is None:
        raise ValueError(f"{job.key}: the market has no stress event to split the episodes at")
    model = None
    if job.train_hash is not None:
        folder = run_folder(out, job)
        if not (folder / "timings.json").is_file():
            raise ValueError(f"{job.key}: no finished run in {folder}")
        model = load_finished(job, folder)
    act, policy = _acting(job, env, model)
    counts = _Counts()
    recorder = _Positions(env)
    first, last = window  # the event's first and last step, both inside it
    lot = float(env.unwrapped.config.lot)
    sums = {name: np.zeros(3) for name in PHASES}  # return bps, position (lots) x steps, steps
    trades = np.zeros(3)
    counting = _counting(act, policy, counts)
    for seed, start in ev.episode_plan(env, episodes, spec["first_seed"]).episodes[:episodes]:
        traded: list[int] = []  # per decision: 1 when it was not HOLD

        def counted(obs: Any) -> Any:
            before = counts.trades
            action = counting(obs)
            traded.append(counts.trades - before)
            return action

        result = ev.run_episode(recorder, counted, seed, start)
        equity, positions = result.equity, np.asarray(recorder.positions) / lot
        bounds = (0, min(first, len(positions)), min(last + 1, len(positions)), len(positions))
        for k, name in enumerate(PHASES):
            a, b = bounds[k], bounds[k + 1]
            sums[name] += [1e4 * (equity[b] - equity[a]) / equity[0], positions[a:b].sum(), b - a]
            trades[k] += sum(traded[a:b])
    env.close()
    table = {}
    for k, name in enumerate(PHASES):
        ret, pos, steps = sums[name]
        table[name] = {"return_bps": ret / episodes, "position_lots": pos / steps if steps else math.nan,
                       "trade_share": trades[k] / steps if steps else math.nan, "decisions": steps / episodes}
    return table


def phase_table(jobs: Sequence[Job], out: Path, episodes: int) -> str:
    """Markdown: :func:`event_phases` for each finished job of a market with an event (others skipped)."""
    lines = [f"Mean over {episodes} held-out episodes: return in bps of initial equity / mean position in lots / "
             "non-HOLD share, per phase of the stress event.", "",
             "| job | " + " | ".join(PHASES) + " | episode |", "| --- |" + " ---: |" * 4]
    for job in jobs:
        if status(out, job) != "done":
            continue
        try:
            phases = event_phases(job, out, episodes)
        except ValueError:
            continue
        cells = [f"{_num(v['return_bps'])} / {_num(v['position_lots'])} / {_num(100 * v['trade_share'], '.0f')}%"
                 for v in phases.values()]
        total = sum(v["return_bps"] for v in phases.values())
        lines.append(f"| {job.key} | " + " | ".join(cells) + f" | {_num(total)} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- why the toxic market


def veto_check(market: Market, *, shield: bool, threshold: float | None = None, episodes: int = 48,
               first_seed: int = 700, quantile: float = 0.8) -> dict[str, Any]:
    """The scripted reversion rule (``mean_reversion``, k = 1) with and without a VPIN veto, on the same episodes.

    The veto turns the rule's order into HOLD while ``VPIN > threshold`` (``obs["market"][0]``); without a
    ``threshold`` it is the ``quantile`` of the VPIN the rule saw without veto. Episode returns in bps of initial
    equity; ``LTNShield`` around the env when ``shield``.
    """
    import gymnasium as gym

    import envs_registry  # noqa: F401  (registers Janus-LOB-v0)
    from agents.baselines import ZScoreMeanReversionPolicy
    from wrappers import LTNShield

    env = gym.make(ENV_ID, **dict(market.env_kwargs))
    env = LTNShield(env) if shield else env
    config = env.unwrapped.config
    lot_fraction = float(config.lot) / float(config.max_position)

    def play(limit: float | None) -> tuple[np.ndarray, list[float]]:
        policy = ZScoreMeanReversionPolicy(k=1.0, lot_fraction=lot_fraction)
        returns, seen = [], []
        for k in range(episodes):
            obs, info = env.reset(seed=first_seed + k)
            start, done = float(info["equity"]), False
            while not done:
                action = int(policy.predict(obs)[0])
                vpin = float(obs["market"][0])
                seen.append(vpin)
                if limit is not None and vpin > limit:
                    action = 0
                obs, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            returns.append(1e4 * (float(info["equity"]) / start - 1.0))
        return np.asarray(returns), seen

    plain, seen = play(None)
    limit = float(np.quantile(seen, quantile)) if threshold is None else threshold
    vetoed, _ = play(limit)
    env.close()
    return {"threshold": limit, "plain": plain, "vetoed": vetoed, "diff": vetoed - plain}


def veto_table(markets: Sequence[Market], episodes: int = 48, first_seed: int = 700) -> str:
    """Markdown: mean ± standard error of the rule, the rule with the veto, and their paired difference, per market,
    without and with the shield (the VPIN threshold measured without it)."""

    def cell(x: np.ndarray) -> str:
        return f"{x.mean():.1f} ± {x.std(ddof=1) / math.sqrt(x.size):.1f}"

    lines = [f"Scripted reversion rule (k = 1), {episodes} episodes (seeds {first_seed}-{first_seed + episodes - 1}); "
             "veto: HOLD while VPIN > its 80th percentile under the rule without veto; mean ± standard error, bps.",
             "", "| market | shield | VPIN threshold | rule | rule + veto | paired difference |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for market in markets:
        free = veto_check(market, shield=False, episodes=episodes, first_seed=first_seed)
        shielded = veto_check(market, shield=True, threshold=free["threshold"], episodes=episodes,
                              first_seed=first_seed)
        for name, r in (("off", free), ("on", shielded)):
            lines.append(f"| {market.name} | {name} | {r['threshold']:.3f} | {cell(r['plain'])} | {cell(r['vetoed'])} "
                         f"| {cell(r['diff'])} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the report


@dataclass
class Comparison:
    """``Δ = reference − variant`` on the same episodes (bps per episode)."""

    n: int
    mean: float
    low: float
    high: float
    p: float


@dataclass
class Report:
    """What ``--report`` prints and plots (also the object the tests check)."""

    variants: list[str]
    markets: list[str]
    expected_seeds: dict[str, int]
    seed_means: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)
    per_seed: dict[tuple[str, str], Comparison] = field(default_factory=dict)
    per_episode: dict[tuple[str, str], Comparison] = field(default_factory=dict)
    diagnostics: dict[str, dict[str, float]] = field(default_factory=dict)
    stale: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    """Results of jobs this selection does not hold (``--only``, ``--exclude``, ``--max-seeds``): not stale, not
    shown."""
    notes: list[str] = field(default_factory=list)
    market_what: dict[str, str] = field(default_factory=dict)
    in_grid: set[tuple[str, str]] | None = None
    """The (variant, market) pairs the grid runs (None: all); the others' cells read "—"."""
    markdown: str = ""


_REQUIRED = ("variant", "market", "seed", "config_hash", "episodes")


def load_results(out: Path) -> list[dict[str, Any]]:
    """Every result file in ``OUT/results`` (sorted by name).

    Raises:
        ValueError: a file that is not an ablation result (names the file and what is wrong).
    """
    results = []
    for path in sorted((out / "results").glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError as err:
            raise ValueError(_BAD_RESULT.format(path, f"invalid JSON: {err}")) from err
        missing = [k for k in _REQUIRED if k not in data] if isinstance(data, dict) else list(_REQUIRED)
        if missing:
            raise ValueError(_BAD_RESULT.format(path, f"missing {missing}"))
        results.append(data)
    return results


def compare(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Paired ``a − b``: mean, 95% Student-t interval, p (``agents.app.metrics.paired_t_test``)."""
    from agents.app.metrics import paired_t_test

    c = paired_t_test(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return Comparison(c.n, c.mean_diff, c.ci_low, c.ci_high, c.p_value)


def _episode_returns(result: Mapping[str, Any]) -> dict[tuple[Any, Any], float]:
    return {(e["seed"], e.get("start")): float(e["return_bps"]) for e in result["episodes"]}


def build_report(results: Sequence[Mapping[str, Any]], *, expected: Mapping[str, str] | None = None,
                 variants: Sequence[str] | None = None, markets: Sequence[Market] = MARKETS,
                 notes: Sequence[str] = ()) -> Report:
    """Tables (markdown) from the results; ``expected`` maps ``<variant>__<market>__s<seed>`` to the current
    config hash (results with another hash are stale and left out, those of jobs it does not hold are outside the
    selection and not shown; None: every result counts).

    Cells: mean over seeds of each seed's mean episode return, ± the std over seeds, with ``n/N`` seeds;
    comparisons: ``Δ = REFERENCE − variant`` paired per seed and per episode (module docstring).
    """
    names = list(variants) if variants is not None else [v.name for v in VARIANTS]
    if expected is None:  # no grid to hold them against: every result's variant is a row
        for r in results:
            if r["variant"] not in names:
                names.append(r["variant"])
    market_names = [m.name for m in markets] + sorted({r["market"] for r in results} - {m.name for m in markets})
    expected_seeds = {m.name: len(m.seeds) for m in markets}
    report = Report(names, market_names, expected_seeds, notes=list(notes),
                    market_what={m.name: m.what for m in markets},
                    in_grid=None if expected is None else {tuple(k.split("__")[:2]) for k in expected})
    kept: dict[tuple[str, str, int], Mapping[str, Any]] = {}
    for r in results:
        key = f"{r['variant']}__{r['market']}__s{r['seed']}"
        if expected is not None and key not in expected:
            report.outside.append(key)
            continue
        if expected is not None and expected[key] != r["config_hash"]:
            report.stale.append(key)
            continue
        kept[(r["variant"], r["market"], int(r["seed"]))] = r
    for (variant, market, seed), r in kept.items():
        returns = [float(e["return_bps"]) for e in r["episodes"]]
        report.seed_means.setdefault((variant, market), {})[seed] = float(np.mean(returns)) if returns else math.nan
    pooled: dict[str, list[float]] = {}
    for variant in names:
        if variant == REFERENCE:
            continue
        for market in market_names:
            seed_diffs, episode_diffs = [], []
            for (v, m, seed), r in sorted(kept.items()):
                if v != variant or m != market or (REFERENCE, market, seed) not in kept:
                    continue
                ref, other = _episode_returns(kept[(REFERENCE, market, seed)]), _episode_returns(r)
                common = [k for k in ref if k in other]
                if not common:
                    continue
                diffs = [ref[k] - other[k] for k in common]
                seed_diffs.append(float(np.mean(diffs)))
                episode_diffs += diffs
            if seed_diffs:
                report.per_seed[(variant, market)] = compare(seed_diffs, np.zeros(len(seed_diffs)))
                report.per_episode[(variant, market)] = compare(episode_diffs, np.zeros(len(episode_diffs)))
                pooled.setdefault(variant, []).extend(seed_diffs)
        if variant in pooled:
            diffs = pooled[variant]
            report.per_seed[(variant, "all")] = compare(diffs, np.zeros(len(diffs)))
    for variant in names:
        rows = [r for (v, _, _), r in kept.items() if v == variant]
        if not rows:
            continue
        episodes = [e for r in rows for e in r["episodes"]]
        steps = sum(e["steps"] for e in episodes) or 1
        trained = [r for r in rows if r.get("train_s") is not None]
        report.diagnostics[variant] = {
            "runs": len(rows),
            "train_s": float(np.mean([r["train_s"] for r in trained])) if trained else math.nan,
            "train_cpu_s": float(np.mean([r["train_cpu_s"] for r in trained])) if trained else math.nan,
            "fps": float(np.mean([r["steps"] / r["train_s"] for r in trained])) if trained else math.nan,
            "eval_s": float(np.mean([r.get("eval_s", math.nan) for r in rows])),
            "trade_share": sum(e["trades"] for e in episodes) / steps,
            "nogo_veto_rate": sum(e["nogo_vetoes"] for e in episodes) / steps,
            "logic_veto_rate": sum(e["logic_vetoes"] for e in episodes) / steps,
            "violation_rate": (sum(e["violations"] for e in episodes) / max(1, sum(e["proposed"] for e in episodes))
                               if any(e["proposed"] for e in episodes) else math.nan),
            "halts": sum(e["halted"] for e in episodes),
        }
    report.markdown = _markdown(report)
    return report


def _num(value: float, spec: str = ".1f") -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return format(round(value, int(spec[1:-1])) + 0.0, spec)


def _not_run(report: Report, variant: str, market: str) -> bool:
    return report.in_grid is not None and market != "all" and (variant, market) not in report.in_grid


def _cell_returns(report: Report, variant: str, market: str) -> str:
    if _not_run(report, variant, market):
        return "—"
    seeds = report.seed_means.get((variant, market), {})
    wanted = report.expected_seeds.get(market, len(seeds))
    if not seeds:
        return f"missing (0/{wanted})"
    values = np.array(list(seeds.values()))
    sd = float(values.std(ddof=1)) if values.size > 1 else math.nan
    cell = f"{_num(values.mean())} ± {_num(sd)}"
    return cell if len(seeds) >= wanted else f"{cell} ({len(seeds)}/{wanted})"


def _cell_diff(c: Comparison | None, p: bool = True) -> str:
    if c is None:
        return "missing"
    if c.n < 2:
        return f"{_num(c.mean)} (n = 1)"
    text = f"{_num(c.mean)} [{_num(c.low)}, {_num(c.high)}]"
    return text + (f" p={_num(c.p, '.2f')}" if p else "")


def _markdown(report: Report) -> str:
    markets = report.markets
    lines = ["Episode return, bps of initial equity: mean over seeds of each seed's mean over its held-out "
             "episodes ± std over seeds (n/N: seeds done of the grid's).", "",
             "| variant | " + " | ".join(markets) + " |", "| --- |" + " ---: |" * len(markets)]
    for variant in report.variants:
        lines.append(f"| {variant} | " + " | ".join(_cell_returns(report, variant, m) for m in markets) + " |")
    lines += ["", f"Δ = {REFERENCE} − variant, paired per training seed (mean of the per-seed mean differences, "
              "95% t-interval over seeds, paired t-test p); positive: the part removed earns its place / "
              f"{REFERENCE} leads.", "",
              "| variant | " + " | ".join(markets) + " | all markets |", "| --- |" + " ---: |" * (len(markets) + 1)]
    for variant in report.variants:
        if variant == REFERENCE:
            continue
        cells = ["—" if _not_run(report, variant, m) else _cell_diff(report.per_seed.get((variant, m)))
                 for m in [*markets, "all"]]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += ["", "The same Δ paired per episode (all seeds' episodes pooled; conditional on the trained models).",
              "", "| variant | " + " | ".join(markets) + " |", "| --- |" + " ---: |" * len(markets)]
    for variant in report.variants:
        if variant == REFERENCE:
            continue
        cells = ["—" if _not_run(report, variant, m) else _cell_diff(report.per_episode.get((variant, m)), p=False)
                 + (f" (n = {report.per_episode[(variant, m)].n})" if (variant, m) in report.per_episode else "")
                 for m in markets]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += ["", "| variant | runs | train s / run | train CPU s / run | train steps/s | eval s / run | non-HOLD "
              "share | No-Go veto rate | logic veto rate | proposals violating rules | halts |",
              "| --- |" + " ---: |" * 10]
    for variant in report.variants:
        d = report.diagnostics.get(variant)
        if d is None:
            continue
        lines.append(f"| {variant} | {d['runs']} | {_num(d['train_s'], '.0f')} | {_num(d['train_cpu_s'], '.0f')} "
                     f"| {_num(d['fps'], '.0f')} | {_num(d['eval_s'], '.1f')} | {_num(100 * d['trade_share'])}% "
                     f"| {_num(100 * d['nogo_veto_rate'], '.2f')}% | {_num(100 * d['logic_veto_rate'], '.2f')}% "
                     f"| {_num(100 * d['violation_rate'], '.2f')}% | {d['halts']} |")
    described = {v.name: v.what for v in VARIANTS}
    lines += ["", "| variant | what it is |", "| --- | --- |"]
    lines += [f"| {v} | {described.get(v, '')} |" for v in report.variants]
    lines += ["", "| market | what it is |", "| --- | --- |"]
    lines += [f"| {m} | {report.market_what.get(m, '')} |" for m in markets]
    if report.stale:
        lines += ["", f"Left out: {len(report.stale)} stale result(s) (config hash of another code or option "
                  f"version; rerun them): {', '.join(sorted(report.stale))}."]
    if report.outside:
        lines += ["", f"Not shown: {len(report.outside)} result(s) of jobs outside this selection (--only, --exclude, "
                  "--max-seeds)."]
    lines += [f"Note: {note}" for note in report.notes]
    return "\n".join(lines)


def plot(report: Report, path: Path) -> None:
    """Per market: episode return per variant (bar: mean over seeds, dots: seeds) and Δ vs the reference with
    its 95% interval over seeds; missing cells are marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markets = report.markets
    # rows with no result anywhere (not run yet) only crowd the figure; the tables list them as missing
    variants = [v for v in report.variants if any((v, m) in report.seed_means for m in markets)] or report.variants
    fig, axes = plt.subplots(2, len(markets), figsize=(3.4 * len(markets), 7.0), dpi=110, squeeze=False)
    x = np.arange(len(variants))
    for j, market in enumerate(markets):
        top, bottom = axes[0, j], axes[1, j]
        for i, variant in enumerate(variants):
            seeds = report.seed_means.get((variant, market), {})
            color = "#3b6ea8" if variant == REFERENCE else "#9aa5b1"
            if _not_run(report, variant, market):
                continue
            if not seeds:
                top.text(i, 0.0, "missing", rotation=90, ha="center", va="bottom", fontsize=7, color="#b03030")
                continue
            values = np.array(list(seeds.values()))
            top.bar(i, values.mean(), color=color, alpha=0.85)
            top.scatter(np.full(values.size, i), values, color="k", s=8, zorder=3)
            c = report.per_seed.get((variant, market))
            if variant == REFERENCE:
                continue
            if c is None:
                bottom.text(i, 0.0, "missing", rotation=90, ha="center", va="bottom", fontsize=7, color="#b03030")
            elif c.n >= 2:
                bottom.errorbar(i, c.mean, yerr=[[c.mean - c.low], [c.high - c.mean]], fmt="o", color="k",
                                capsize=3, markersize=3)
            else:
                bottom.scatter(i, c.mean, color="k", s=10, marker="x")
        for ax in (top, bottom):
            ax.axhline(0.0, color="k", linewidth=0.6)
            ax.set_xticks(x, variants, rotation=60, ha="right", rotation_mode="anchor", fontsize=7)
        top.set_title(market, fontsize=9)
        if j == 0:
            top.set_ylabel("episode return (bps)")
            bottom.set_ylabel(f"Δ = {REFERENCE} − variant (bps)\n95% interval over seeds")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_report(out: Path, jobs: Sequence[Job], notes: Sequence[str]) -> Report:
    """Build the report from ``OUT/results`` against the grid's current hashes; write ``report.md``/``.png``."""
    from janus_env.atomic import atomic_write_bytes

    expected = {job.key: job.config_hash for job in jobs}
    variants = list(dict.fromkeys(job.variant for job in jobs))
    report = build_report(load_results(out), expected=expected, variants=variants, notes=notes)
    atomic_write_bytes(out / "report.md", (report.markdown + "\n").encode())
    plot(report, out / "report.png")
    return report


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", default=[], metavar="VARIANT[/MARKET]",
                   help="run only these jobs (shell-style wildcards; repeatable), e.g. 'no-logic/*', '*/regime'")
    p.add_argument("--exclude", action="append", default=[], metavar="VARIANT[/MARKET]",
                   help="leave these jobs out (same patterns as --only; applied after it)")
    p.add_argument("--timesteps", type=int, default=FULL_TIMESTEPS, help="training steps per run (%(default)s)")
    p.add_argument("--eval-episodes", type=int, default=EVAL_EPISODES,
                   help="held-out episodes per (variant, market, seed); real data: at most the walk-forward windows "
                        "(%(default)s)")
    p.add_argument("--max-seeds", type=int, default=None, help="only the first N seeds of each market")
    p.add_argument("--workers", type=int, default=1, help="jobs in parallel, one process and torch thread each")
    p.add_argument("--report", action="store_true", help="only build the report from the results there are")
    p.add_argument("--phases", type=int, default=None, metavar="EPISODES",
                   help="print where the finished jobs' returns come from in markets with a stress event (before, "
                        "during, after it) over their first EPISODES held-out episodes; runs nothing")
    p.add_argument("--list", action="store_true", help="print the grid with each job's status, run nothing")
    p.add_argument("--veto-check", action="store_true",
                   help="only measure the scripted reversion rule with and without a VPIN veto on ou-edge and "
                        "toxic-squeeze (why the toxic market; ~1 min)")
    p.add_argument("--out", type=Path, default=OUT, help="results, runs and report folder (%(default)s)")
    args = p.parse_args(argv)
    for name in ("timesteps", "eval_episodes", "max_seeds", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the selected jobs that are not up to date, then write the report (or only list / report)."""
    args = parse_args(argv)
    if args.veto_check:
        print(veto_table([m for m in MARKETS if m.name in ("ou-edge", "toxic-squeeze")]))
        return 0
    settings = Settings(args.out, args.timesteps, args.eval_episodes, args.max_seeds)
    jobs, notes = build_grid(settings)
    try:
        chosen = select(jobs, args.only)
        left_out = select(jobs, args.exclude) if args.exclude else []
    except ValueError as err:
        print(f"bench_ablation.py: error: {err}", file=sys.stderr)
        return 2
    chosen = [job for job in chosen if job not in left_out]
    if args.phases is not None:
        print(phase_table(chosen, args.out, args.phases))
        return 0
    if args.list:
        for job in chosen:
            print(f"{status(args.out, job):8} {job.key}  {job.config_hash}")
        print(*notes, sep="\n")
        return 0
    if not args.report:
        todo = [job for job in chosen if status(args.out, job) != "done"]
        print(f"{len(chosen)} job(s) selected, {len(chosen) - len(todo)} up to date, {len(todo)} to run "
              f"({args.timesteps:,} steps, {args.eval_episodes} evaluation episodes)", flush=True)
        start = time.perf_counter()
        if args.workers == 1:
            for job in todo:
                print(f"  {run_job(job, args.out)[1]:9} {job.key}  ({time.perf_counter() - start:.0f} s)", flush=True)
        else:
            # spawn: fresh interpreters, nothing of this process's torch or OpenMP state forked into them
            with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(run_job, job, args.out) for job in todo]
                for future in futures:
                    key, what = future.result()
                    print(f"  {what:9} {key}  ({time.perf_counter() - start:.0f} s)", flush=True)
        print(f"ran {len(todo)} job(s) in {time.perf_counter() - start:.0f} s")
    report = write_report(args.out, jobs, notes)
    print()
    print(report.markdown)
    print(f"\nwrote {args.out / 'report.md'} and {args.out / 'report.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
