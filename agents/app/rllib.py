"""The Ray RLlib backend: env registration, a PPO config builder and the training loop of ``train.py --backend rllib``.

Ray is an optional extra (``pip install 'janus-rl[rllib]'``): this module imports without it, and every
function that needs it imports it through :func:`require_rllib` (``ray`` takes seconds to import, and the CLIs
answer ``--help`` and bad arguments without it).

```python
import ray
from agents.app.rllib import ppo_config, register_rllib_envs

ray.init(num_cpus=2)
register_rllib_envs()                       # "Janus-LOB-v0", ..., "Janus-Multi-v0" in Ray's env registry
algo = ppo_config("Janus-LOB-v0", {"scenario": "regime", "episode_steps": 500}, num_env_runners=2).build_algo()
result = algo.train()                       # one iteration: sample on the env runners, update on the learner
multi = ppo_config("Janus-Multi-v0", {"env": {"roles": {"market_maker": 1, "janus": 2}}}).build_algo()
```

Registered names and their RLlib ``env_config``:

* every id of ``envs_registry.ENV_IDS`` (``Janus-LOB-v0``, ...): ``gym.make(name, **env_config)``;
  ``env_config`` holds ``gym.make`` keyword arguments (``scenario``, ``episode_steps``, ...) and, under
  ``env_config["glass_box"]``, the ``wrappers.make_glass_box`` switches (``shield``, ``breakers``, ``sizing``:
  the run's ``shield``/``breakers``/``sizing`` settings, as for the sb3 backend).
* ``Janus-Multi-v0``: ``JanusParallelEnv`` in RLlib's ``ParallelPettingZooEnv``; ``env_config["env"]``
  holds ``make_parallel_env`` kwargs, ``env_config["agents"]`` an optional tournament roster (agent or
  role → scripted strategy name or learned mapping, as in ``agents/app/tournament.py``), ``env_config["safety"]``
  the matchup's multi-agent glass box (``wrappers.make_parallel_glass_box``, as in the tournament), ``env_config["seed"]``
  seeds the scripted agents.

Observations are ``Dict`` spaces; the env-to-module pipeline flattens them
(RLlib's ``FlattenObservations`` connector) before the default MLP module.
Multi-agent: one RLModule per role (``market_maker``, ``informed``, ``momentum``,
``noise``, ``janus``; agents of a role share it), or per agent when the roster
marks several learners of a role ``shared: false``. Roster agents with a scripted strategy (``fixed_quotes``,
``informed``, ``random``, ...: ``agents.app.opponents.scripted_policy``) act inside
the env (:class:`~agents.app.opponents.ScriptedOpponentsParallelEnv`, the tournament's market too) and are
invisible to RLlib; without a roster every agent learns.

Training (:class:`RLlibTraining`): ``algo.train()`` until the run's ``timesteps`` env steps are sampled; each
iteration appends a row to ``progress.csv``/``.json`` (env steps, episode returns in total and per module,
losses), a checkpoint goes to ``RUN/checkpoint`` every ``checkpoint_every`` steps and at the end.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from tqdm import tqdm

from agents.app.config import new_run_folder, resolve_hyperparams
from agents.app.opponents import ScriptedOpponentsParallelEnv, scripted_agents
from agents.app.tournament import load_config, make_market, resolve_roster
from envs_registry import ENV_IDS, make_parallel_env
from janus_env.atomic import atomic_write_bytes
from janus_env.checks import check_choice, check_int, check_mapping
from wrappers import make_glass_box

NO_RAY = "The RLlib backend needs Ray RLlib: pip install 'janus-rl[rllib]' (or pip install 'ray[rllib]>=2.60')"
MULTI_ENV_ID = "Janus-Multi-v0"
"""RLlib name of the multi-agent market (``janus_market_v0``)."""
SB3_TO_RLLIB: dict[str, str] = {
    "learning_rate": "lr",
    "gamma": "gamma",
    "gae_lambda": "lambda_",
    "n_epochs": "num_epochs",
    "batch_size": "minibatch_size",
    "ent_coef": "entropy_coeff",
    "clip_range": "clip_param",
    "vf_coef": "vf_loss_coeff",
    "max_grad_norm": "grad_clip",
}
"""SB3 PPO hyper-parameter → ``PPOConfig.training`` argument (and ``n_steps · n_envs`` → train batch size)."""
IGNORED_KEYS = ("policy", "n_timesteps", "n_envs", "n_steps", "env_kwargs", "policy_kwargs")

_BAD_KEYS = "Hyper-parameters {} have no RLlib PPO equivalent; expected some of {}"
_NOTHING_TO_LEARN = "The roster leaves no agent to learn: every agent of {} is scripted"
_NO_LEARNER = "matchup {!r} has no learned agent ({{algo: ppo, timesteps: N}})"
_NO_CLUSTER = "cannot join the Ray cluster at {!r}: {}"


def require_rllib() -> Any:
    """The ``ray`` module, after checking that RLlib imports (the one place this module imports ``ray``).

    Raises:
        ImportError: Ray RLlib is not installed (``NO_RAY``).
    """
    try:
        import ray
        from ray.rllib.algorithms.ppo import PPOConfig  # noqa: F401  (fails on a ray without rllib)
    except ImportError as err:
        raise ImportError(NO_RAY) from err
    return ray


def rllib_env_ids() -> tuple[str, ...]:
    """Every name ``register_rllib_envs`` registers."""
    return (*ENV_IDS, MULTI_ENV_ID)


# --------------------------------------------------------------------------- env creators
def make_single_agent_env(env_id: str, env_config: Mapping[str, Any]) -> Any:
    """``gym.make(env_id, **env_config)`` (RLlib's ``EnvContext`` is a dict plus worker indices), in the glass box
    ``env_config["glass_box"]`` switches on (:func:`wrappers.make_glass_box`; none without the key).

    A worker process imports this module to call it, and with it ``envs_registry``, which registers the ids.
    """
    kwargs = dict(env_config)
    glass_box = dict(kwargs.pop("glass_box", None) or {"shield": False, "breakers": False})
    return make_glass_box(gym.make(env_id, **kwargs), **glass_box)


def _is_learned(strategy: Any) -> bool:
    return isinstance(strategy, Mapping)


def module_ids(possible_agents: list[str], roster: Mapping[str, Any] | None) -> dict[str, str]:
    """Learning agent → its RLModule id: its role, or its own name for one of several ``shared: false`` learners.

    Without a roster every agent learns, one module per role.
    """
    learners = [a for a in possible_agents if roster is None or _is_learned(roster.get(a))]
    per_role: dict[str, int] = {}
    for agent in learners:
        per_role[agent.rsplit("_", 1)[0]] = per_role.get(agent.rsplit("_", 1)[0], 0) + 1
    out = {}
    for agent in learners:
        role = agent.rsplit("_", 1)[0]
        own = roster is not None and not roster[agent].get("shared", True) and per_role[role] > 1
        out[agent] = agent if own else role
    return out


def _resolved_roster(env_kwargs: Mapping[str, Any], agents: Any) -> dict[str, Any] | None:
    if agents is None:
        return None
    return resolve_roster(dict(env_kwargs), dict(check_mapping("agents", agents)))


def scripted_market(env_config: Mapping[str, Any]) -> Any:
    """The PettingZoo market of ``Janus-Multi-v0``: ``make_parallel_env(**env_config["env"])``, its scripted roster
    agents acting inside (:class:`~agents.app.opponents.ScriptedOpponentsParallelEnv`).

    The scripted agents draw from ``env_config["seed"]`` (0 by default), offset by RLlib's worker and
    vector indices so that parallel env runners do not replay one another.

    Raises:
        TypeError: a roster (``agents``) that is not a mapping.
        ValueError: invalid env arguments or roster, or a roster with no learned agent.
    """
    env_kwargs = dict(env_config.get("env") or {})
    par = make_market(env_kwargs, env_config.get("safety"))
    roster = _resolved_roster(env_kwargs, env_config.get("agents"))
    if roster is None:
        return par
    seed = int(env_config.get("seed", 0)) + 7919 * int(getattr(env_config, "worker_index", 0)) \
        + 104729 * int(getattr(env_config, "vector_index", 0))
    scripted = scripted_agents(roster, par, seed)
    if len(scripted) == len(par.possible_agents):
        raise ValueError(_NOTHING_TO_LEARN.format(par.possible_agents))
    return ScriptedOpponentsParallelEnv(par, scripted)


def make_multi_agent_env(env_config: Mapping[str, Any]) -> Any:
    """RLlib's ``ParallelPettingZooEnv`` over :func:`scripted_market`.

    Raises:
        ValueError: invalid env arguments or roster, or a roster with no learned agent.
    """
    require_rllib()
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    return ParallelPettingZooEnv(scripted_market(env_config))


def register_rllib_envs() -> tuple[str, ...]:
    """Register every single-agent id and ``Janus-Multi-v0`` with ``ray.tune.registry.register_env``.

    Returns:
        The registered names.

    Raises:
        ImportError: Ray RLlib is not installed.
    """
    require_rllib()
    from ray.tune.registry import register_env

    for env_id in ENV_IDS:
        register_env(env_id, functools.partial(make_single_agent_env, env_id))
    register_env(MULTI_ENV_ID, make_multi_agent_env)
    return rllib_env_ids()


# --------------------------------------------------------------------------- PPO config
class RoleMapping:
    """Picklable ``policy_mapping_fn``: agent id → module id (``module_ids``)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = dict(mapping)

    def __call__(self, agent_id: str, episode: Any = None, **kwargs: Any) -> str:
        return self.mapping[agent_id]


def _flatten_single(env: Any = None, spaces: Any = None, device: Any = None) -> Any:
    from ray.rllib.connectors.env_to_module import FlattenObservations

    return FlattenObservations()


def _flatten_multi(env: Any = None, spaces: Any = None, device: Any = None) -> Any:
    from ray.rllib.connectors.env_to_module import FlattenObservations

    return FlattenObservations(multi_agent=True)


def training_kwargs(hyperparams: Mapping[str, Any]) -> dict[str, Any]:
    """``PPOConfig.training`` arguments from SB3-style PPO hyper-parameters (``configs/ppo.yml``).

    Raises:
        ValueError: a key with no RLlib equivalent (``IGNORED_KEYS`` are skipped).
    """
    unknown = sorted(k for k in hyperparams if k not in SB3_TO_RLLIB and k not in IGNORED_KEYS)
    if unknown:
        raise ValueError(_BAD_KEYS.format(unknown, sorted(SB3_TO_RLLIB) + ["n_steps", "policy_kwargs.net_arch"]))
    out = {SB3_TO_RLLIB[k]: v for k, v in hyperparams.items() if k in SB3_TO_RLLIB}
    if "n_steps" in hyperparams:
        out["train_batch_size_per_learner"] = int(hyperparams["n_steps"]) * int(hyperparams.get("n_envs", 1))
    return out


def ppo_config(
    env_id: str,
    env_config: Mapping[str, Any] | None = None,
    *,
    num_env_runners: int = 2,
    seed: int = 0,
    hyperparams: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    fcnet_hiddens: list[int] | tuple[int, ...] | None = None,
) -> Any:
    """A ``PPOConfig`` (new API stack) for a registered JANUS env, Dict observations flattened.

    Args:
        env_id: a name of ``rllib_env_ids()``; call ``register_rllib_envs()`` first.
        env_config: the env's RLlib ``env_config`` (see the module table).
        num_env_runners: sampling actors (0: sample in the driver process).
        seed: RLlib's seed (each env runner seeds its envs from it).
        hyperparams: SB3-style PPO hyper-parameters (``configs/ppo.yml``), translated by ``training_kwargs``.
        training: ``PPOConfig.training`` arguments, applied after ``hyperparams``.
        fcnet_hiddens: hidden layers of every module's MLP (default: ``hyperparams``'
            ``policy_kwargs.net_arch``, else ``[64, 64]``).

    Returns:
        The config; ``.build_algo()`` makes the ``PPO`` algorithm.

    Raises:
        ImportError: Ray RLlib is not installed.
        TypeError: ``num_env_runners`` is not an int, or a roster that is not a mapping.
        ValueError: an unknown ``env_id``, a negative ``num_env_runners`` or a bad hyper-parameter.
    """
    require_rllib()
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    check_choice("env_id", env_id, rllib_env_ids())
    num_env_runners = check_int("num_env_runners", num_env_runners, low=0)
    env_config = dict(env_config or {})
    hyper = {**training_kwargs(hyperparams or {}), **dict(training or {})}
    if fcnet_hiddens is None:
        net_arch = ((hyperparams or {}).get("policy_kwargs") or {}).get("net_arch", [64, 64])
        fcnet_hiddens = net_arch.get("pi", [64, 64]) if isinstance(net_arch, Mapping) else net_arch
    multi = env_id == MULTI_ENV_ID
    config = (
        PPOConfig()
        .environment(env_id, env_config=env_config)
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=1,
                     env_to_module_connector=_flatten_multi if multi else _flatten_single)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(fcnet_hiddens)))
        .training(**hyper)
        .debugging(seed=seed)
    )
    if multi:
        env_kwargs = dict(env_config.get("env") or {})
        roster = _resolved_roster(env_kwargs, env_config.get("agents"))
        mapping = module_ids(make_parallel_env(**env_kwargs).possible_agents, roster)
        if not mapping:
            raise ValueError(_NOTHING_TO_LEARN.format(list(roster or {})))
        config = config.multi_agent(policies=sorted(set(mapping.values())), policy_mapping_fn=RoleMapping(mapping))
    return config




# --------------------------------------------------------------------------- train.py --backend rllib
def resolve_matchup(config: str | Path, run_dir: Path, *, seed: int = 0, matchup: str | None = None,
                    timesteps: int | None = None, overrides: list[str] | None = None, num_env_runners: int = 2,
                    ray_address: str | None = None) -> tuple[dict[str, Any], Path]:
    """``train.py multi --backend rllib``: the run config of one matchup's market and its new run folder.

    The matchup's learned agents (``{algo: ...}`` in its roster) learn with PPO whatever their ``algo`` (one
    module per role, or per agent with ``shared: false``); its scripted agents act inside the env.
    Hyper-parameters: ``configs/ppo.yml`` and ``overrides`` (``--hp``). The config, saved as
    ``config.yaml``, is ``{"run": ..., "env_config": ..., "hyperparams": ...}``.

    Args:
        config: the tournament YAML.
        run_dir: parent of the run folder ``multi__<stem>__<matchup>__rllib-ppo__s<seed>__<time>``.
        seed: RLlib's seed and the scripted agents'.
        matchup: the matchup whose roster learns (default: the first).
        timesteps: env steps (default: the largest ``timesteps`` of the roster's learners).
        overrides: ``KEY=VALUE`` PPO hyper-parameters.
        num_env_runners: sampling actors.
        ray_address: Ray cluster to join (None: a local Ray).

    Raises:
        ImportError: Ray RLlib is not installed (checked first).
        ValueError: an invalid tournament, an unknown matchup, or one without a learner.
    """
    require_rllib()
    cfg = load_config(config)
    names = [m["name"] for m in cfg["matchups"]]
    if matchup is not None:
        check_choice("matchup", matchup, names)
    chosen = cfg["matchups"][names.index(matchup) if matchup is not None else 0]
    learned = {a: s for a, s in chosen["agents"].items() if isinstance(s, dict)}
    if not learned:
        raise ValueError(_NO_LEARNER.format(chosen["name"]))
    for agent, spec in learned.items():
        if spec["algo"] != "ppo" or spec["hyperparams"]:
            print(f"train.py multi: note: {agent} learns with RLlib PPO and configs/ppo.yml; its roster algo "
                  f"{spec['algo']!r} and hyperparams are the sb3 backend's", file=sys.stderr)
    params = resolve_hyperparams("ppo", MULTI_ENV_ID, None, overrides or [])
    params.pop("env_kwargs", None)  # the market is the tournament config's
    folder = run_dir / (f"multi__{Path(config).stem}__{chosen['name']}__rllib-ppo__s{seed}__"
                        f"{time.strftime('%Y%m%d-%H%M%S')}")
    run = {"env": MULTI_ENV_ID, "algo": "ppo", "backend": "rllib", "seed": seed,
           "timesteps": timesteps or max(spec["timesteps"] for spec in learned.values()),
           "num_env_runners": num_env_runners, "ray_address": ray_address, "matchup": chosen["name"]}
    run_config = {"run": run, "env_config": {"env": chosen["env"], "agents": chosen["agents"], "seed": seed,
                                             "safety": chosen.get("safety")},
                  "hyperparams": params}
    new_run_folder(folder)
    atomic_write_bytes(folder / "config.yaml", yaml.safe_dump(run_config, sort_keys=False).encode())
    return run_config, folder


def _iteration_row(result: dict[str, Any], modules: list[str], start: float) -> dict[str, Any]:
    """One line of ``progress.csv``: steps, episode returns (all agents summed, and per module), losses."""
    runners, learners = result.get("env_runners", {}), result.get("learners", {})
    row = {"iteration": int(result["training_iteration"]), "env_steps": int(result["num_env_steps_sampled_lifetime"]),
           "time_s": round(time.perf_counter() - start, 3),
           "episode_return_mean": float(runners.get("episode_return_mean", math.nan)),
           "episode_len_mean": float(runners.get("episode_len_mean", math.nan)),
           "num_episodes": int(runners.get("num_episodes", 0))}
    per_module = runners.get("module_episode_returns_mean", {})
    for m in modules:
        if modules != ["default_policy"]:  # multi-agent: the return of each module's agents
            row[f"episode_return_mean/{m}"] = float(per_module.get(m, math.nan))
        row[f"total_loss/{m}"] = float(learners.get(m, {}).get("total_loss", math.nan))
    return row


def _write_progress(rows: list[dict[str, Any]], run_dir: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(run_dir / "progress.csv", buf.getvalue().encode())
    clean = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()} for r in rows]
    atomic_write_bytes(run_dir / "progress.json", json.dumps(clean, indent=1).encode())


class RLlibTraining:
    """A built RLlib PPO run: Ray started, envs registered, the algorithm built (:meth:`build`).

    ``learn`` loops ``algo.train()`` until ``run["timesteps"]`` env steps are sampled, writing ``progress.csv``
    and a checkpoint every ``run["checkpoint_every"]`` steps (0 or absent: at the end only); ``save`` writes
    the final checkpoint and stops the algorithm and Ray.

    Args:
        algo: the built ``PPO`` algorithm.
        config: the run config (``{"run": {...}, "hyperparams": {...}}``, plus ``env_config`` for a matchup).
        run_dir: the run folder.
    """

    def __init__(self, algo: Any, config: dict[str, Any], run_dir: Path) -> None:
        self.algo, self.run, self.run_dir = algo, config["run"], run_dir
        self.modules = sorted(algo.config.policies) if algo.config.is_multi_agent else ["default_policy"]
        self.checkpoint = (run_dir / "checkpoint").resolve()
        self.rows: list[dict[str, Any]] = []

    @classmethod
    def build(cls, config: dict[str, Any], run_dir: Path) -> RLlibTraining:
        """The PPO config, then Ray (joined at ``run["ray_address"]``, or local with a CPU slot per env runner).

        Raises:
            ImportError: Ray RLlib is not installed.
            ValueError: an invalid env, roster or hyper-parameter.
            ConnectionError: no Ray cluster at ``run["ray_address"]``.
        """
        run, params = config["run"], config["hyperparams"]
        if "env_config" in config:
            env_config = config["env_config"]
        else:  # one agent: its env in the glass box its settings switch on, as on the sb3 backend
            env_config = {**params.get("env_kwargs", {}), "glass_box": {
                part: params.get(part) or False for part in ("shield", "breakers", "sizing")}}
        algo_config = ppo_config(run["env"], env_config, num_env_runners=run["num_env_runners"], seed=run["seed"],
                                 hyperparams=params)
        ray = require_rllib()
        local = {"num_cpus": max(os.cpu_count() or 1, run["num_env_runners"]), "include_dashboard": False}
        try:
            ray.init(address=run["ray_address"], logging_level="WARNING", **({} if run["ray_address"] else local))
        except ConnectionError as err:  # --ray-address auto without a running cluster
            raise ConnectionError(_NO_CLUSTER.format(run["ray_address"], err)) from err
        try:
            register_rllib_envs()
            return cls(algo_config.build_algo(), config, run_dir)
        except BaseException:
            ray.shutdown()
            raise

    def learn(self, progress: bool = True) -> None:
        """Train until ``run["timesteps"]`` env steps are sampled (on an error: stop the algorithm and Ray)."""
        every, timesteps = int(self.run.get("checkpoint_every", 0) or 0), int(self.run["timesteps"])
        next_checkpoint = every or math.inf
        rows, start = self.rows, time.perf_counter()
        bar = tqdm(total=timesteps, unit="step", disable=not progress, file=sys.stderr, desc="rllib ppo")
        try:
            while not rows or rows[-1]["env_steps"] < timesteps:
                rows.append(_iteration_row(self.algo.train(), self.modules, start))
                _write_progress(rows, self.run_dir)
                bar.update(min(rows[-1]["env_steps"], timesteps) - bar.n)
                bar.set_postfix(ret=f"{rows[-1]['episode_return_mean']:.2f}")
                if rows[-1]["env_steps"] >= next_checkpoint:
                    self.algo.save_to_path(self.checkpoint)
                    next_checkpoint = (rows[-1]["env_steps"] // every + 1) * every
        except BaseException:
            self._stop()
            raise
        finally:
            bar.close()

    def save(self) -> str:
        """Write the final checkpoint, stop the algorithm and Ray; returns the summary to print."""
        try:
            self.algo.save_to_path(self.checkpoint)
        finally:
            self._stop()
        last, run = self.rows[-1], self.run
        return "\n".join([
            f"\ntrained RLlib PPO ({', '.join(self.modules)}) on {run['env']} for {last['env_steps']} env steps "
            f"in {last['time_s']:.0f}s with {run['num_env_runners']} env runners; "
            f"episode return mean {last['episode_return_mean']:.2f}",
            f"  checkpoint: {self.checkpoint}",
            f"  progress:   {self.run_dir / 'progress.csv'} (and .json)",
            f"  config:     {self.run_dir / 'config.yaml'}"])

    def _stop(self) -> None:
        self.algo.stop()
        require_rllib().shutdown()


__all__ = ["MULTI_ENV_ID", "NO_RAY", "RLlibTraining", "RoleMapping", "make_multi_agent_env", "make_single_agent_env",
           "module_ids", "ppo_config", "register_rllib_envs", "require_rllib", "resolve_matchup", "rllib_env_ids",
           "scripted_market", "training_kwargs"]
