"""The steps of ``evaluate.py``: resolve what to evaluate, build the scenarios, run the episodes, save the outputs.

```python
spec = resolve_evaluation(args)        # env, scenarios, strategies, glass box, data, output folder; checked
plan = build_evaluation(spec)          # the model, and per scenario: env, event window, annualization, episodes
result = run_evaluation(plan)          # every strategy on the same episodes: table rows, paired tests, curves
print(result.summary)
folder, written = save_evaluation(result)   # a new OUT/<time>/ folder, OUT/latest pointing at it
```

The protocol (same episodes for every strategy, walk-forward windows, annualization, the paired test) is
:mod:`agents.app.evaluation`'s; bad input raises one of ``USAGE_ERRORS`` from the first two steps, before
any episode runs or anything is written.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from agents.app import evaluation as ev
from agents.app.cli import data_spec
from agents.app.config import (
    CEREBELLUM_FILE,
    apply_overrides,
    check_env_id,
    check_run_config,
    load_cerebellum,
    load_memory,
    read_yaml,
    with_slippage_predictor,
)
from agents.app.safe_load import load_model
from agents.baselines import EXECUTION_BASELINES, TRADING_BASELINES, make_baseline
from agents.explain import Decision, DecisionExplainer, render_decision
from wrappers import AuditLog

USAGE_ERRORS = (FileNotFoundError, ValueError, TypeError)
"""What bad input raises from :func:`resolve_evaluation` and :func:`build_evaluation` (``ConfigError`` is a
ValueError): the CLI prints it as one line and exits with status 2."""
EXECUTION_ENV = "Janus-Execution-v0"

_NO_MODEL = "no model at {}"
_UNKNOWN = "unknown baseline(s)/scenario(s) {}"
_NO_DATA = "the historical scenario needs --data PATH"
_NOTHING = "nothing to evaluate: give a run or some baselines"
_IN_SAMPLE = "historical: note: the run trained on rows {} of its data; rows after {} are not out of sample"


@dataclass(frozen=True)
class EvaluationSpec:
    """What one evaluation compares, where, and how (resolved from the CLI and the run's ``config.yaml``).

    Attributes:
        env_id: the env.
        env_kwargs: its settings: the run's, then ``--hp``, then ``--steps`` (without ``data``/``data_split``).
        scenarios: scenario names, historical last when present.
        baselines: baseline strategy names.
        model_path: the run's ``model.zip`` (None: baselines only).
        algo: the run's algorithm (None without a run).
        data: the historical data (path, sample name or spec mapping, ``--data-option`` applied; None: none).
        data_split: rows evaluated on historical data, ``(split, 1.0)``.
        notes: lines for the printed summary (data overlapping the run's training rows).
        shield: evaluate behind the LTN shield.
        breakers: False (off), or the ``Amygdala`` settings (empty: its defaults).
        calendar: ``--calendar``.
        episodes: episodes per strategy and scenario.
        seed: first episode seed.
        out: parent of the evaluation folders.
        sizing: size every strategy's orders with the ``Hypothalamus`` (sized or continuous actions): ``--sizing``
            or the run's ``sizing`` setting (True or its arguments).
        audit: append the agent's decisions to this JSON Lines file (``wrappers.AuditLog``; None: no trail).
        explain: render this many of the agent's most consequential decisions per scenario (``--explain``).
        cerebellum: the run's ``cerebellum`` settings when it saved a trained cerebellum (None: it has none); its
            prediction before each order feeds the slippage breaker, for every strategy alike.
        trust_remote_code: load ``model_path`` with SB3's own ``load``, which unpickles the file (code in it
            runs): ``--trust-remote-code``, for files from someone you trust. Default False: the safe load of
            :func:`agents.app.safe_load.load_model` (nothing from the file is unpickled).
    """

    env_id: str
    env_kwargs: dict[str, Any]
    scenarios: list[str]
    baselines: list[str]
    model_path: Path | None
    algo: str | None
    data: Any
    data_split: tuple[float, float]
    notes: list[str]
    shield: bool
    breakers: dict[str, Any] | bool
    calendar: str
    episodes: int
    seed: int
    out: Path
    sizing: dict[str, Any] | bool = False
    audit: Path | None = None
    cerebellum: dict[str, Any] | None = None
    explain: int = 0
    trust_remote_code: bool = False


@dataclass
class EvaluationPlan:
    """A built evaluation: the model and, per scenario, ``(env, event window, annualization, episode plan)``;
    with an audit trail or explanations, the agent's own env per scenario (the same glass box, then its
    ``DecisionExplainer``, then an ``AuditLog``) and that explainer."""

    spec: EvaluationSpec
    model: Any
    setups: dict[str, tuple[Any, tuple[int, int] | None, ev.Annualization, ev.EpisodePlan]]
    notes: list[str]
    agent_envs: dict[str, tuple[Any, DecisionExplainer]] = field(default_factory=dict)


@dataclass
class EvaluationResult:
    """Table rows (one per scenario × strategy), paired comparisons, first-episode equity curves, event windows."""

    spec: EvaluationSpec
    rows: list[dict[str, Any]] = field(default_factory=list)
    paired: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    events: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    explained: dict[str, list[Decision]] = field(default_factory=dict)
    summary: str = ""


def resolve_evaluation(args: argparse.Namespace) -> EvaluationSpec:
    """The evaluation ``evaluate.py`` was asked for, checked (a run's folder or ``model.zip``, or baselines alone).

    A run trained on recorded data is evaluated on that data by default, on rows after ``--split``.

    Raises:
        FileNotFoundError: no ``model.zip`` at the run.
        ConfigError: a bad run ``config.yaml`` (not a run config: :func:`~agents.app.config.check_run_config`),
            ``--hp`` or ``--env`` (not a registered id).
        ValueError / TypeError: bad breaker settings, unknown scenarios or baselines, a historical scenario
            without data, or nothing to evaluate.
    """
    config, model_path = None, None
    if args.run is not None:
        run_dir = args.run.parent if args.run.suffix == ".zip" else args.run
        model_path = args.run if args.run.suffix == ".zip" else args.run / "model.zip"
        if not model_path.is_file():
            raise FileNotFoundError(_NO_MODEL.format(model_path))
        config = read_yaml(run_dir / "config.yaml")
        check_run_config(config, run_dir / "config.yaml")
    hyper = config["hyperparams"] if config else {}
    env_kwargs = apply_overrides({"env_kwargs": dict(hyper.get("env_kwargs", {}))}, args.hp)["env_kwargs"]
    base_breakers = hyper.get("breakers") if isinstance(hyper.get("breakers"), dict) else {}
    breakers = False if args.no_breakers else ev.check_breaker_settings({**base_breakers, **args.breaker})
    env_id = config["run"]["env"] if config else check_env_id(args.env or "Janus-LOB-v0")
    if args.steps is not None:
        env_kwargs["horizon" if env_id == EXECUTION_ENV else "episode_steps"] = args.steps
    table = EXECUTION_BASELINES if env_id == EXECUTION_ENV else TRADING_BASELINES
    names = ([] if args.baselines == "none" else sorted(table) if args.baselines == "all"
             else args.baselines.split(","))
    run_data = env_kwargs.pop("data", None)  # a run trained on recorded data is evaluated on it by default
    run_split = env_kwargs.pop("data_split", None)
    data = args.data if args.data is not None else run_data
    if args.scenarios != "all":
        scenarios = args.scenarios.split(",")
    elif env_kwargs.get("scenario") == "historical":
        scenarios = ["historical"]
    else:
        scenarios = list(ev.TRADING_SCENARIOS) + (["historical"] if data is not None else [])
    unknown = [n for n in names if n not in table] + [s for s in scenarios
                                                      if s not in ev.TRADING_SCENARIOS + ("historical",)]
    if unknown:
        raise ValueError(_UNKNOWN.format(unknown))
    if "historical" in scenarios and data is None:
        raise ValueError(_NO_DATA)
    if model_path is None and not names:
        raise ValueError(_NOTHING)
    notes = []
    if "historical" in scenarios:
        data = data_spec(data if isinstance(data, dict) else str(data), args.data_option)
        if run_data is not None and (run_split is None or float(run_split[1]) > args.split):
            notes.append(_IN_SAMPLE.format(list(run_split or (0, 1)), args.split))
    out = args.out or (model_path.parent / "eval" if model_path is not None else Path("runs/evaluate"))
    return EvaluationSpec(env_id=env_id, env_kwargs=env_kwargs, scenarios=scenarios, baselines=names,
                          model_path=model_path, algo=config["run"]["algo"] if config else None, data=data,
                          data_split=(args.split, 1.0), notes=notes, shield=not args.no_shield, breakers=breakers,
                          calendar=args.calendar, episodes=args.episodes, seed=args.seed, out=out,
                          sizing=args.sizing or hyper.get("sizing") or False, audit=args.audit, explain=args.explain,
                          cerebellum=dict(hyper.get("cerebellum") or {}) if model_path is not None
                          and (model_path.parent / CEREBELLUM_FILE).is_file() else None,
                          trust_remote_code=args.trust_remote_code)


def build_evaluation(spec: EvaluationSpec) -> EvaluationPlan:
    """The model (on CPU, one torch thread) and every scenario's env, event, annualization and episodes.

    Every scenario is checked here, before any episode runs.

    Raises:
        ModelFileError: (a ValueError) a ``model.zip`` that cannot be loaded safely or at all
            (:func:`agents.app.safe_load.load_model`; the message names the file and the entry).
        ValueError: a scenario whose env settings, data or stress event do not work (the message names it); a
            damaged ``memory.npz`` beside the model.
    """
    torch.set_num_threads(1)
    model = (load_model(spec.model_path, spec.algo, device="cpu", trust_remote_code=spec.trust_remote_code)
             if spec.model_path is not None else None)
    setups, notes, agent_envs = {}, [], {}
    memory = load_memory(spec.model_path.parent, model) if model is not None else None
    if memory is not None:  # the run's memory read path (agents.app.config.MEMORY_FILE): as in training
        notes.append(f"the agent reads the run's memory: {len(memory)} schemas, top-{memory.k} cosine recall "
                     f"(τ_recall {memory.min_similarity:g}), No-Go prior up to {memory.weight:g} logits")
    glass = {"shield": spec.shield, "breakers": spec.breakers, "sizing": spec.sizing}
    if spec.cerebellum is not None and spec.env_id != EXECUTION_ENV:
        probe = gym.make(spec.env_id, **spec.env_kwargs)
        cerebellum = load_cerebellum(spec.model_path.parent, probe, {"cerebellum": spec.cerebellum})
        probe.close()
        glass["breakers"] = with_slippage_predictor(spec.breakers, cerebellum)
    for scenario in spec.scenarios:
        kwargs = {**spec.env_kwargs, "scenario": scenario}
        if scenario == "historical":
            kwargs.update(data=spec.data, data_split=spec.data_split)
            notes += spec.notes
        try:
            env = ev.make_eval_env(spec.env_id, kwargs, **glass)
            if (spec.audit is not None or spec.explain) and model is not None:
                explainer = DecisionExplainer(ev.make_eval_env(spec.env_id, kwargs, **glass), model,
                                              keep=spec.explain)
                played = explainer if spec.audit is None else AuditLog(
                    explainer, spec.audit, tags={"scenario": scenario, "strategy": "agent"})
                agent_envs[scenario] = (played, explainer)
            setups[scenario] = (env, ev.check_event_inside(env), ev.annualization(env, spec.calendar),
                                ev.episode_plan(env, spec.episodes, spec.seed))
        except (FileNotFoundError, ValueError, TypeError) as err:
            raise ValueError(f"{scenario}: {err}") from err
        _, event, timing, plan = setups[scenario]
        notes.append(f"{scenario}: {timing.describe()}" + (f"; event at steps {event[0]}..{event[1]}" if event else ""))
        if plan.note:
            notes.append(f"{scenario}: {plan.note}")
    return EvaluationPlan(spec, model, setups, notes, agent_envs)


def run_evaluation(plan: EvaluationPlan, progress: bool = True) -> EvaluationResult:
    """Every strategy (the agent first, then the baselines) on every scenario's episodes; the summary tables."""
    spec = plan.spec
    result = EvaluationResult(spec)
    start = time.perf_counter()
    for scenario in tqdm(spec.scenarios, desc="scenarios", disable=not progress):
        env, event, timing, episodes = plan.setups[scenario]
        agent_env, explainer = plan.agent_envs.get(scenario, (env, None))
        strategies = ([("agent", agent_env, ev.agent_policy(plan.model, agent_env))] if plan.model is not None
                      else []) + [(name, env, _baseline_act(make_baseline(name, env, seed=spec.seed)))
                                  for name in spec.baselines]
        result.curves[scenario], result.events[scenario], episode_returns = {}, event, {}
        for name, played, act in strategies:
            results = [ev.run_episode(played, act, seed, first_row) for seed, first_row in episodes.episodes]
            if played is not env:
                result.explained[scenario] = explainer.decisions
                played.close()  # the audit trail: written, fsync'd and closed
            result.curves[scenario][name] = results[0].equity
            episode_returns[name] = [r.episode_return for r in results]
            result.rows.append({"scenario": scenario, "strategy": name, **ev.summarize(results, timing, event)})
        result.paired += ev.paired_rows(scenario, episode_returns)
    result.summary = _summary(plan, result, time.perf_counter() - start)
    return result


def _baseline_act(policy: Any) -> Callable[[Any], Any]:
    return lambda obs: policy.predict(obs, deterministic=True)[0]


def _summary(plan: EvaluationPlan, result: EvaluationResult, elapsed: float) -> str:
    """The printed (and saved) summary: settings, notes, the metrics table and the paired comparisons."""
    spec = plan.spec
    seeds = sorted({seed for setup in plan.setups.values() for seed, _ in setup[3].episodes})
    breakers = spec.breakers
    glass = (f"shield {'on' if spec.shield else 'off'}, breakers "
             f"{'off' if breakers is False else ('on ' + str(breakers) if breakers else 'on (defaults)')}"
             + (", sizing on" if spec.sizing else "")
             + (", slippage breaker fed by the run's cerebellum" if spec.cerebellum is not None and breakers is not False
                else "")
             if spec.env_id != EXECUTION_ENV else "no glass box (execution env)")
    lines = [f"{spec.env_id}: up to {spec.episodes} episode(s) per strategy and scenario, "
             f"seeds {seeds[0]}..{seeds[-1]}, {glass}, {elapsed:.1f}s",
             *plan.notes, *([f"audit trail of the agent's decisions: {spec.audit}"] if plan.agent_envs else []), "", ev.summary_table(result.rows), ev.TABLE_NOTE]
    lines += ev.annualization_notes(result.rows) + ev.event_notes(result.rows)
    if result.paired:
        lines += ["", "agent − baseline on the same episodes (mean, 95% t-interval, paired t-test p):", "",
                  ev.paired_table(result.paired)]
    return "\n".join(lines)


def save_evaluation(result: EvaluationResult) -> tuple[Path, list[Path]]:
    """A new folder ``out/<time>/`` with every output (``agents.app.evaluation.write_outputs``), ``out/latest``
    pointing at it; returns the folder and the files written."""
    folder = ev.new_eval_dir(result.spec.out)
    written = ev.write_outputs(folder, result.rows, result.paired, result.curves, result.events, result.summary)
    for scenario, decisions in result.explained.items():
        for rank, decision in enumerate(decisions[: result.spec.explain], start=1):
            title = (f"{scenario}: decision {rank} of the {len(decisions)} most consequential "
                     f"(|reward| {abs(decision.reward):.4g})")
            written.append(render_decision(decision, folder / f"explain_{scenario}_{rank}.png", title=title))
    return folder, written
