"""Multi-agent tournaments on ``janus_market_v0``: train learned agents, play round-robin matchups, report payoffs.

    python train.py multi --config configs/adversarial.yaml

The YAML roster::

    env: {roles: {market_maker: 1, informed: 1, janus: 2}, episode_steps: 200}   # make_parallel_env kwargs
    agents:                       # agent name ("janus_0") or role ("janus") -> strategy
      market_maker: fixed_quotes
      informed: informed
      janus: {algo: ppo, timesteps: 3000, shared: true}
    matchups:                     # each a named override of `agents` (and optionally of `env`)
      - {name: vs_scripted_maker}
      - {name: vs_learned_maker, agents: {market_maker: {algo: ppo, timesteps: 3000}}}
    safety: {shield: true, breakers: true}   # optional glass box per agent (default: off)
    seeds: [0, 1]
    episodes: 2

A strategy is a scripted name (``STRATEGIES``) or a learned policy
``{algo: ppo|dqn, timesteps: N, shared: bool, hyperparams: {...}}``.

Training design (one round of sequential best response, per matchup): every
learned agent gets a fresh SB3 model; the learner groups are trained one after
the other, each against all other agents playing their current strategy (scripted
rules, or the other learners' current weights, untrained ones from their
initial weights). :class:`~agents.app.opponents.SingleLearnerEnv` is the
Gymnasium env of one learner, the others acting inside the market (the same
env the RLlib runner trains on). Independent learners (``shared: false``) are one
group each; the ``shared: true`` learners of a role are one group with one
policy (parameter sharing): the env controls one of them per episode,
round-robin, while the others of the group act with the same policy being
trained. (``make_shared_policy_vec_env`` is not used: it only holds takers and
cannot keep scripted opponents or a maker in the market.) A learned maker uses
the same env with its ``MultiDiscrete`` action space and PPO. After training
every learned model is saved atomically to ``models/<matchup>/<agent>.zip`` in the
run folder (one file per agent; the agents of a shared group hold the same
weights); reload it with ``PPO.load`` / ``DQN.load``.

Safety (``safety:``, top level or per matchup, off by default): ``shield`` wraps the
market in :class:`~wrappers.parallel_shield.ParallelLTNShield` and ``breakers`` in
:class:`~wrappers.parallel_amygdala.ParallelAmygdala` (outside the shield), each
``true`` (defaults: the ``janus`` agents) or a mapping of its arguments
(``agents``, ``threshold``, ``knowledge_base: {...}``, ``on_halt``; ``max_drawdown``,
``vol_ratio``, ``kill_file``, ...). Learners train and play behind it; a halted
agent leaves the episode (``on_halt: terminate``), its PnL the one at the halt.
Every halt of the evaluation episodes is written to ``halts.json``.

Evaluation: for each matchup and seed, ``episodes`` episodes; an agent's PnL
is the sum of its rewards (bps of initial cash); a role's PnL in an episode is
the mean over its agents. The payoff is the mean over seeds × episodes with a
95% Student-t interval (``agents.app.metrics.mean_confidence_interval``).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3 import DQN, PPO
from tqdm import tqdm

from agents.app.config import ConfigError, check_hyperparams, new_run_folder, read_yaml
from agents.app.metrics import mean_confidence_interval
from agents.app.opponents import MAKER_STRATEGIES, TAKER_STRATEGIES, SingleLearnerEnv, env_action, scripted_agents
from envs_registry import make_parallel_env
from janus_env.atomic import atomic_path, atomic_write_bytes
from janus_env.checks import check_bool, check_choice, check_int, is_int
from janus_env.parallel_env import DEFAULT_ROLES, ROLES, validate_roles
from wrappers import breaker_fields, make_parallel_glass_box

LEARNED_ALGOS = ("ppo", "dqn")
DEFAULT_STRATEGY = {"market_maker": "fixed_quotes", "informed": "informed", "momentum": "momentum",
                    "noise": "random", "janus": "hold"}
ALGO_DEFAULTS = {"ppo": {"n_steps": 256, "batch_size": 64}, "dqn": {"learning_starts": 100, "buffer_size": 10_000}}

_BAD_SECTION = "Expected `{}` to be a {}, got {!r}"
_BAD_AGENT_KEY = "Unknown agent or role {!r} in `agents`; expected one of {}"
_BAD_STRATEGY = "Unknown strategy {!r} for {}; expected one of {} or {{algo: ppo|dqn, timesteps: N}}"
_MAKER_DQN = "A learned market maker needs algo: ppo (DQN has no MultiDiscrete actions), got {!r} for {}"
_BAD_LEARNED_KEYS = "Unknown keys {} in the learned strategy of {}; expected some of {}"
_BAD_SEEDS = "Expected `seeds` to be a non-empty list of integers, got {!r}"
_BAD_MATCHUP = "Expected each matchup to be a mapping with a unique `name`, got {!r}"
_LEARNED_KEYS = ("algo", "timesteps", "shared", "hyperparams")
_BAD_SAFETY = "Expected `safety` to be true, false or a mapping with keys `shield` and `breakers`, got {!r}"
_BAD_SAFETY_PART = "Expected `safety.{}` to be true, false or a mapping of its arguments, got {!r}"
_BAD_SAFETY_KEY = "Unknown key {!r} in `safety.{}`; expected some of {}"
SHIELD_KEYS = ("agents", "threshold", "knowledge_base", "on_halt")


# --------------------------------------------------------------------------- config
def _check_strategy(agent: str, strategy: Any) -> Any:
    maker = agent.startswith("market_maker")
    if isinstance(strategy, str):
        allowed = MAKER_STRATEGIES if maker else TAKER_STRATEGIES
        if strategy not in allowed:
            raise ConfigError(_BAD_STRATEGY.format(strategy, agent, list(allowed)))
        return strategy
    if not isinstance(strategy, dict):
        raise ConfigError(_BAD_STRATEGY.format(strategy, agent, list(MAKER_STRATEGIES if maker else TAKER_STRATEGIES)))
    unknown = sorted(set(strategy) - set(_LEARNED_KEYS))
    if unknown:
        raise ConfigError(_BAD_LEARNED_KEYS.format(unknown, agent, list(_LEARNED_KEYS)))
    algo = check_choice(f"{agent}.algo", strategy.get("algo"), LEARNED_ALGOS)
    if maker and algo != "ppo":
        raise ConfigError(_MAKER_DQN.format(algo, agent))
    timesteps = check_int(f"{agent}.timesteps", strategy.get("timesteps", 3000), low=1)
    hyper = strategy.get("hyperparams", {}) or {}
    if not isinstance(hyper, dict):
        raise ConfigError(_BAD_SECTION.format("hyperparams", "mapping", hyper))
    try:  # the SB3 arguments the learner is built with, checked as train.py checks its own
        check_hyperparams(algo, {**ALGO_DEFAULTS[algo], **hyper}, run_keys=False)
    except ConfigError as err:
        raise ConfigError(f"{agent}.hyperparams: {err}") from err
    shared = check_bool(f"{agent}.shared", strategy.get("shared", False))
    return {"algo": algo, "timesteps": timesteps, "shared": shared, "hyperparams": hyper}


def check_safety(safety: Any, env_kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """The ``safety`` section as ``{"shield": kwargs | None, "breakers": kwargs | None}``, or None when off.

    The wrappers are built once on the matchup's market, so bad agents or thresholds fail here.

    Raises:
        ConfigError: a malformed section, an unknown key, or arguments the wrappers reject.
    """
    if safety is None or safety is False:
        return None
    if safety is True:
        safety = {"shield": True, "breakers": True}
    if not isinstance(safety, dict) or not set(safety) <= {"shield", "breakers"}:
        raise ConfigError(_BAD_SAFETY.format(safety))
    allowed = {"shield": SHIELD_KEYS,
               "breakers": ("agents", "on_halt") + breaker_fields(callables=False)}
    out: dict[str, Any] = {}
    for part in ("shield", "breakers"):
        value = safety.get(part, False)
        if value is None or value is False:
            out[part] = None
            continue
        if value is True:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(_BAD_SAFETY_PART.format(part, value))
        for key in value:
            if key not in allowed[part]:
                raise ConfigError(_BAD_SAFETY_KEY.format(key, part, list(allowed[part])))
        out[part] = copy.deepcopy(value)
    if out["shield"] is None and out["breakers"] is None:
        return None
    try:
        make_market(env_kwargs, out)
    except TypeError as err:
        raise ConfigError(str(err)) from err
    return out


def make_market(env_kwargs: dict[str, Any], safety: dict[str, Any] | None = None) -> Any:
    """``make_parallel_env(**env_kwargs)`` in the multi-agent glass box (``ParallelAmygdala(ParallelLTNShield(...))``,
    :func:`wrappers.make_parallel_glass_box`) as ``safety`` says."""
    env = make_parallel_env(**env_kwargs)
    if not safety:
        return env
    kb = (safety.get("shield") or {}).get("knowledge_base")
    if kb is not None and not isinstance(kb, dict):
        raise ConfigError(_BAD_SECTION.format("safety.shield.knowledge_base", "mapping", kb))
    return make_parallel_glass_box(env, shield=safety.get("shield"), breakers=safety.get("breakers"))


def resolve_roster(env_kwargs: dict[str, Any], agents: dict[str, Any]) -> dict[str, Any]:
    """Agent name → checked strategy for every agent of ``env_kwargs["roles"]`` (names beat roles, then defaults).

    Raises:
        ConfigError: an unknown agent/role key or strategy.
        ValueError: invalid ``roles``, a learned strategy's ``algo`` not in ``LEARNED_ALGOS`` or ``timesteps`` < 1.
        TypeError: invalid ``roles``, or ``timesteps`` that is not an int.
    """
    roles = validate_roles(env_kwargs.get("roles", DEFAULT_ROLES))
    names = [f"{role}_{k}" for role, count in roles.items() for k in range(count)]
    unknown = [key for key in agents if key not in names and key not in roles]
    if unknown:
        raise ConfigError(_BAD_AGENT_KEY.format(unknown[0], list(roles) + names))
    roster = {}
    for name in names:
        role = name.rsplit("_", 1)[0]
        roster[name] = _check_strategy(name, agents.get(name, agents.get(role, DEFAULT_STRATEGY[role])))
    return roster


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and check a tournament YAML; returns it with every matchup's roster resolved.

    Raises:
        ConfigError: a missing file, bad YAML or an invalid section.
        ValueError: invalid env arguments, ``episodes`` < 1 or a bad strategy (:func:`resolve_roster`).
        TypeError: ``episodes`` (or a strategy's ``timesteps``) that is not an int.
    """
    raw = read_yaml(path)
    env = raw.get("env", {}) or {}
    agents = raw.get("agents", {}) or {}
    for key, value, kind in (("env", env, dict), ("agents", agents, dict)):
        if not isinstance(value, kind):
            raise ConfigError(_BAD_SECTION.format(key, "mapping", value))
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(is_int(s) for s in seeds):
        raise ConfigError(_BAD_SEEDS.format(seeds))
    episodes = check_int("episodes", raw.get("episodes", 1), low=1)
    safety = raw.get("safety")
    matchups = raw.get("matchups", [{"name": "default"}])
    if not isinstance(matchups, list) or not matchups:
        raise ConfigError(_BAD_SECTION.format("matchups", "non-empty list", matchups))
    resolved, seen = [], set()
    for m in matchups:
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or m["name"] in seen:
            raise ConfigError(_BAD_MATCHUP.format(m))
        seen.add(m["name"])
        m_env = {**copy.deepcopy(env), **(m.get("env") or {})}
        m_agents = {**agents, **(m.get("agents") or {})}
        roster = resolve_roster(m_env, m_agents)
        m_safety = check_safety(m["safety"] if "safety" in m else safety, m_env)
        if m_safety is None:  # check_safety built the market already when it is on
            try:
                make_market(m_env)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"matchup {m['name']!r}: env: {err}") from err
        resolved.append({"name": m["name"], "env": m_env, "agents": roster, "safety": m_safety})
    return {"matchups": resolved, "seeds": seeds, "episodes": episodes}


# --------------------------------------------------------------------------- train and play
def _groups(roster: dict[str, Any]) -> list[list[str]]:
    """Learner groups in roster order: the shared learners of a role together, the others alone."""
    groups: dict[str, list[str]] = {}
    for agent, strategy in roster.items():
        if isinstance(strategy, dict):
            key = agent.rsplit("_", 1)[0] + "/shared" if strategy["shared"] else agent
            groups.setdefault(key, []).append(agent)
    return list(groups.values())


def train_learners(matchup: dict[str, Any], seed: int, run_dir: Path) -> dict[str, Any]:
    """Train the matchup's learned agents (sequential best response); returns agent → policy.

    Each trained model is saved atomically to ``run_dir/models/<matchup>/<agent>.zip``.
    """
    roster = matchup["agents"]
    policies = scripted_agents(roster, make_market(matchup["env"]), seed)
    models = []
    for group in _groups(roster):
        spec = roster[group[0]]
        cls = PPO if spec["algo"] == "ppo" else DQN
        hyper = {**ALGO_DEFAULTS[spec["algo"]], **spec["hyperparams"]}
        model = cls("MultiInputPolicy", learner_env(matchup, group, policies), seed=seed, verbose=0,
                    tensorboard_log=str(run_dir / "tb" / "+".join(group)), **hyper)
        policies.update({agent: model for agent in group})
        models.append((model, spec["timesteps"], group))
    for model, timesteps, group in models:
        model.learn(total_timesteps=timesteps, tb_log_name=matchup["name"])
        for agent in group:
            save_model(model, run_dir / "models" / matchup["name"] / f"{agent}.zip")
    return policies


def learner_env(matchup: dict[str, Any], group: list[str], policies: dict[str, Any]) -> SingleLearnerEnv:
    """The Gymnasium env a learner group trains on: its matchup's market (behind its safety wrappers), the
    other agents acting inside it with ``policies``."""
    return SingleLearnerEnv(make_market(matchup["env"], matchup.get("safety")), group, policies)


def save_model(model: Any, path: Path) -> None:
    """``model.save`` into a temporary file beside ``path``, then an atomic rename (never a torn zip)."""
    with atomic_path(path) as tmp:
        model.save(tmp)


def play(matchup: dict[str, Any], policies: dict[str, Any], seed: int, episodes: int,
         halts: list[dict[str, Any]] | None = None) -> list[dict[str, float]]:
    """Play ``episodes`` episodes (first reset seeded with ``seed``); per episode, role → mean agent PnL (bps).

    With ``halts`` (a list), every agent halted in an episode appends
    ``{"seed", "episode", "agent", "step", "reason"}`` (its first halt).
    """
    env = make_market(matchup["env"], matchup.get("safety"))
    policies = {**policies, **scripted_agents(matchup["agents"], env, seed * 1000)}
    out = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed if episode == 0 else None)
        pnl = dict.fromkeys(env.possible_agents, 0.0)
        halted: set[str] = set()
        while env.agents:
            actions = {a: env_action(policies[a].predict(obs[a], deterministic=True)[0], a) for a in env.agents}
            obs, rewards, _, _, infos = env.step(actions)
            for agent, reward in rewards.items():
                pnl[agent] += reward
            if halts is not None:
                for agent, info in infos.items():
                    if info.get("halted") and agent not in halted:
                        halted.add(agent)
                        halts.append({"seed": seed, "episode": episode, "agent": agent, "step": info["step"],
                                      "reason": info.get("halt_reason")})
        by_role: dict[str, list[float]] = {}
        for agent, value in pnl.items():
            by_role.setdefault(agent.rsplit("_", 1)[0], []).append(value)
        out.append({role: float(np.mean(v)) for role, v in by_role.items()})
    return out


# --------------------------------------------------------------------------- reports
def payoff_table(results: dict[str, dict[str, list[float]]], confidence: float = 0.95) -> dict[str, Any]:
    """matchup → role → ``{mean, ci, ci_low, ci_high, n}`` (``ci`` the half-width)."""
    table: dict[str, Any] = {}
    for matchup, by_role in results.items():
        table[matchup] = {}
        for role, samples in by_role.items():
            mean, half = mean_confidence_interval(samples, confidence)
            table[matchup][role] = {"mean": mean, "ci": half, "ci_low": mean - half, "ci_high": mean + half,
                                    "n": len(samples)}
    return table


def _roles(table: dict[str, Any]) -> list[str]:
    present = {role for row in table.values() for role in row}
    return [role for role in ROLES if role in present]


def to_markdown(table: dict[str, Any]) -> str:
    """Markdown payoff matrix: rows matchups, columns roles, cells ``mean ± ci`` (bps)."""
    roles = _roles(table)
    lines = ["| matchup | " + " | ".join(roles) + " |", "| --- |" + " ---: |" * len(roles)]
    for matchup, row in table.items():
        cells = [f"{row[r]['mean']:.2f} ± {row[r]['ci']:.2f}" if r in row else "" for r in roles]
        lines.append(f"| {matchup} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_reports(table: dict[str, Any], run_dir: Path) -> str:
    """Write ``payoff.md``, ``payoff.csv``, ``payoff.json`` and ``payoff.png``; returns the Markdown."""
    import matplotlib  # plots only: matplotlib is not imported before the reports

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    markdown = to_markdown(table)
    atomic_write_bytes(run_dir / "payoff.md", markdown.encode())
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["matchup", "role", "mean_bps", "ci_bps", "ci_low", "ci_high", "n"])
    for matchup, row in table.items():
        for role, c in row.items():
            writer.writerow([matchup, role, c["mean"], c["ci"], c["ci_low"], c["ci_high"], c["n"]])
    atomic_write_bytes(run_dir / "payoff.csv", buf.getvalue().encode())
    clean = {m: {r: {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in c.items()}
                 for r, c in row.items()} for m, row in table.items()}
    atomic_write_bytes(run_dir / "payoff.json", json.dumps(clean, indent=2).encode())

    roles, matchups = _roles(table), list(table)
    grid = np.array([[table[m].get(r, {}).get("mean", np.nan) for r in roles] for m in matchups])
    fig, ax = plt.subplots(figsize=(1.6 * len(roles) + 2, 0.6 * len(matchups) + 1.5))
    bound = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    im = ax.imshow(grid, cmap="RdYlGn", vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(range(len(roles)), roles)
    ax.set_yticks(range(len(matchups)), matchups)
    for i, m in enumerate(matchups):
        for j, r in enumerate(roles):
            if r in table[m]:
                ax.text(j, i, f"{table[m][r]['mean']:.1f}", ha="center", va="center", fontsize=9)
    fig.colorbar(im, ax=ax, label="mean episode PnL (bps)")
    ax.set_title("payoff: mean episode PnL per role")
    fig.tight_layout()
    fig.savefig(run_dir / "payoff.png", dpi=100)
    plt.close(fig)
    return markdown


def resolve_tournament(config: str | Path, run_dir: Path, seed: int = 0, *, timesteps: int | None = None,
                       episodes: int | None = None, seeds: list[int] | None = None) -> tuple[dict[str, Any], Path]:
    """The checked tournament and its new folder ``run_dir/multi__<stem>__<time>``, saved there as ``config.yaml``.

    Args:
        config: the tournament YAML.
        run_dir: parent of the run folder.
        seed: the training seed.
        timesteps: training steps of every learned agent of every matchup, over the config's ``timesteps``
            (``train.py multi --timesteps``; a shared group trains once, for this many steps); None: the config's.
        episodes: evaluation episodes per seed and matchup, over the config's ``episodes``; None: the config's.
        seeds: evaluation seeds, over the config's ``seeds``; None: the config's.

    Returns:
        ``({"seed": seed, "matchups": [...], "seeds": [...], "episodes": n}, run folder)``.

    Raises:
        ConfigError: an invalid config or override (nothing is written then).
        ValueError: invalid env arguments.
        FileExistsError: the run folder exists.
    """
    cfg = {"seed": seed, **load_config(config)}
    if timesteps is not None:
        check_int("timesteps", timesteps, low=1)
        for matchup in cfg["matchups"]:
            for strategy in matchup["agents"].values():
                if isinstance(strategy, dict):
                    strategy["timesteps"] = int(timesteps)
    if episodes is not None:
        cfg["episodes"] = check_int("episodes", episodes, low=1)
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds or not all(is_int(s) for s in seeds):
            raise ConfigError(_BAD_SEEDS.format(seeds))
        cfg["seeds"] = [int(s) for s in seeds]
    out = new_run_folder(run_dir / f"multi__{Path(config).stem}__{time.strftime('%Y%m%d-%H%M%S')}")
    atomic_write_bytes(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False).encode())
    return cfg, out


class TournamentTraining:
    """A resolved tournament: ``learn`` trains each matchup's learners and plays it, ``save`` writes the reports.

    Args:
        config: :func:`resolve_tournament`'s config.
        run_dir: the run folder.
    """

    def __init__(self, config: dict[str, Any], run_dir: Path) -> None:
        torch.set_num_threads(1)  # small policies train fastest on one thread
        self.config, self.run_dir = config, run_dir
        self.results: dict[str, dict[str, list[float]]] = {}
        self.halts: dict[str, Any] = {}
        self._start = time.perf_counter()

    def learn(self, progress: bool = True) -> None:
        """Per matchup: train its learners, then play ``episodes`` episodes for each seed of ``seeds``."""
        cfg, seed = self.config, self.config["seed"]
        self._start = time.perf_counter()
        for matchup in tqdm(cfg["matchups"], desc="matchups", disable=not progress, file=sys.stderr):
            policies = train_learners(matchup, seed, self.run_dir)
            samples: dict[str, list[float]] = {}
            records: list[dict[str, Any]] = []
            for s in cfg["seeds"]:
                for episode in play(matchup, policies, s, cfg["episodes"], records):
                    for role, value in episode.items():
                        samples.setdefault(role, []).append(value)
            self.results[matchup["name"]] = samples
            if matchup["safety"] is not None:
                counts = {agent: sum(r["agent"] == agent for r in records) for agent in matchup["agents"]}
                self.halts[matchup["name"]] = {"halted_episodes": counts, "halts": records}

    def save(self) -> str:
        """Write the payoff reports (and ``halts.json`` with a glass box); returns the summary to print."""
        cfg, out, halts = self.config, self.run_dir, self.halts
        markdown = write_reports(payoff_table(self.results), out)
        if halts:
            atomic_write_bytes(out / "halts.json", json.dumps(halts, indent=2).encode())
        lines = [f"\npayoff (mean episode PnL in bps ± 95% CI, {len(cfg['seeds'])} seeds × {cfg['episodes']} "
                 f"episodes):\n", markdown]
        n_episodes = len(cfg["seeds"]) * cfg["episodes"]
        for name, h in halts.items():
            summary = ", ".join(f"{a} {n}/{n_episodes}" for a, n in h["halted_episodes"].items() if n) or "none"
            lines.append(f"halted episodes in {name}: {summary}")
        lines.append(f"tournament done in {time.perf_counter() - self._start:.0f}s")
        if halts:
            lines.append(f"  halts:       {out / 'halts.json'}")
        lines.append(f"  reports:     {out}/payoff.{{md,csv,json,png}}")
        if (out / "models").is_dir():
            lines.append(f"  models:      {out / 'models'}/<matchup>/<agent>.zip")
        lines.append(f"  config:      {out / 'config.yaml'}")
        lines.append(f"  TensorBoard: tensorboard --logdir {out / 'tb'}")
        return "\n".join(lines)
