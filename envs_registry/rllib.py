"""Ray RLlib registration of the JANUS envs and a PPO config builder (``pip install 'janus-rl[rllib]'``).

```python
import ray
from envs_registry.rllib import ppo_config, register_rllib_envs

ray.init(num_cpus=2)
register_rllib_envs()                       # "Janus-LOB-v0", ..., "Janus-Multi-v0" in Ray's env registry
algo = ppo_config("Janus-LOB-v0", {"scenario": "regime", "episode_steps": 500}, num_env_runners=2).build_algo()
result = algo.train()                       # one iteration: sample on the env runners, update on the learner
multi = ppo_config("Janus-Multi-v0", {"env": {"roles": {"market_maker": 1, "janus": 2}}}).build_algo()
```

Registered names and their RLlib ``env_config``:

* every id of ``envs_registry.ENV_IDS`` (``Janus-LOB-v0``, ...): ``gym.make(name, **env_config)``;
  ``env_config`` holds ``gym.make`` keyword arguments (``scenario``, ``episode_steps``, ...).
* ``Janus-Multi-v0``: ``JanusParallelEnv`` in RLlib's ``ParallelPettingZooEnv``; ``env_config["env"]``
  holds ``make_parallel_env`` kwargs, ``env_config["agents"]`` an optional tournament roster (agent or
  role → scripted strategy name or learned mapping, as in ``agents/tournament.py``), ``env_config["seed"]``
  seeds the scripted agents.

Observations are ``Dict`` spaces; the env-to-module pipeline flattens them
(RLlib's ``FlattenObservations`` connector) before the default MLP module.
Multi-agent: one RLModule per role (``market_maker``, ``informed``, ``momentum``,
``noise``, ``janus``; agents of a role share it), or per agent when the roster
marks several learners of a role ``shared: false``. Roster agents with a scripted strategy (``fixed_quotes``,
``informed``, ``random``, ...: ``agents.tournament.scripted_policy``) act inside
the env and are invisible to RLlib; without a roster every agent learns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

_BAD_ENV_ID = "Unknown RLlib env {!r}; expected one of {}"
_BAD_KEYS = "Hyper-parameters {} have no RLlib PPO equivalent; expected some of {}"
_BAD_RUNNERS = "Expected `num_env_runners` to be an integer >= 0, got {!r}"
_BAD_ROSTER = "Expected `agents` to be a mapping of agent name -> strategy, got {!r}"
_NOTHING_TO_LEARN = "The roster leaves no agent to learn: every agent of {} is scripted"


def require_rllib() -> Any:
    """The ``ray`` module, after checking that RLlib imports.

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
    from envs_registry import ENV_IDS

    return (*ENV_IDS, MULTI_ENV_ID)


# --------------------------------------------------------------------------- env creators
def make_single_agent_env(env_id: str, env_config: Mapping[str, Any]) -> Any:
    """``gym.make(env_id, **env_config)`` (RLlib's ``EnvContext`` is a dict plus worker indices)."""
    import gymnasium as gym

    import envs_registry  # noqa: F401  (registers the ids in this worker process)

    return gym.make(env_id, **dict(env_config))


class ScriptedAgentsParallelEnv:
    """A ``JanusParallelEnv`` whose scripted agents act inside it; only the learners are exposed.

    PettingZoo ``ParallelEnv`` API for the learning agents: ``possible_agents``,
    ``agents``, ``observation_space(agent)``, ``action_space(agent)``, ``reset``,
    ``step``. Every step each live scripted agent plays ``policy.predict(obs)`` on its
    own observation of the previous step; the episode ends for RLlib when no learner is live.

    Args:
        env: the parallel env.
        scripted: agent name → object with an SB3-style ``predict(obs, deterministic=True)``.
    """

    metadata = {"name": "janus_market_v0", "is_parallelizable": True}

    def __init__(self, env: Any, scripted: Mapping[str, Any]) -> None:
        self.env = env
        self.scripted = dict(scripted)
        self.possible_agents = [a for a in env.possible_agents if a not in self.scripted]
        self.agents: list[str] = []
        self.render_mode = None
        self._obs: dict[str, Any] = {}

    def observation_space(self, agent: str) -> Any:
        return self.env.observation_space(agent)

    def action_space(self, agent: str) -> Any:
        return self.env.action_space(agent)

    def _learners(self, mapping: Mapping[str, Any]) -> dict[str, Any]:
        return {a: v for a, v in mapping.items() if a not in self.scripted}

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._obs, infos = self.env.reset(seed=seed, options=options)
        self.agents = [a for a in self.env.agents if a not in self.scripted]
        return self._learners(self._obs), self._learners(infos)

    def step(self, actions: dict[str, Any]):
        import numpy as np

        actions = dict(actions)
        for agent in self.env.agents:
            if agent in self.scripted:
                action, _ = self.scripted[agent].predict(self._obs[agent], deterministic=True)
                maker = agent.startswith("market_maker")
                actions[agent] = np.asarray(action, dtype=np.int64).reshape(4) if maker else int(np.asarray(action))
        self._obs, rewards, terms, truncs, infos = self.env.step(actions)
        self.agents = [a for a in self.env.agents if a not in self.scripted]
        obs, rewards, terms, truncs, infos = (self._learners(d) for d in (self._obs, rewards, terms, truncs, infos))
        if not self.agents:  # the last learner left (bankrupt): end the episode for the others too
            truncs = {a: truncs.get(a, False) or not terms.get(a, False) for a in obs}
        return obs, rewards, terms, truncs, infos

    def close(self) -> None:
        self.env.close()


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
    if not isinstance(agents, Mapping):
        raise ValueError(_BAD_ROSTER.format(agents))
    from agents.tournament import resolve_roster

    return resolve_roster(dict(env_kwargs), dict(agents))


def make_multi_agent_env(env_config: Mapping[str, Any]) -> Any:
    """``ParallelPettingZooEnv`` over ``make_parallel_env(**env_config["env"])``, scripted roster agents inside.

    Raises:
        ValueError: invalid env arguments or roster, or a roster with no learned agent.
    """
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

    from envs_registry.pettingzoo_envs import make_parallel_env

    env_kwargs = dict(env_config.get("env") or {})
    par = make_parallel_env(**env_kwargs)
    roster = _resolved_roster(env_kwargs, env_config.get("agents"))
    if roster is not None:
        from agents.tournament import scripted_policy

        seed = int(env_config.get("seed", 0)) + 7919 * int(getattr(env_config, "worker_index", 0)) \
            + 104729 * int(getattr(env_config, "vector_index", 0))
        scripted = {a: scripted_policy(s, par.action_space(a), seed + i)
                    for i, (a, s) in enumerate(roster.items()) if not _is_learned(s)}
        if len(scripted) == len(par.possible_agents):
            raise ValueError(_NOTHING_TO_LEARN.format(par.possible_agents))
        par = ScriptedAgentsParallelEnv(par, scripted)
    return ParallelPettingZooEnv(par)


def register_rllib_envs() -> tuple[str, ...]:
    """Register every single-agent id and ``Janus-Multi-v0`` with ``ray.tune.registry.register_env``.

    Returns:
        The registered names.

    Raises:
        ImportError: Ray RLlib is not installed.
    """
    import functools

    require_rllib()
    from ray.tune.registry import register_env

    from envs_registry import ENV_IDS

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
        ValueError: an unknown ``env_id``, a bad ``num_env_runners`` or hyper-parameter.
    """
    require_rllib()
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    if env_id not in rllib_env_ids():
        raise ValueError(_BAD_ENV_ID.format(env_id, list(rllib_env_ids())))
    if isinstance(num_env_runners, bool) or not isinstance(num_env_runners, int) or num_env_runners < 0:
        raise ValueError(_BAD_RUNNERS.format(num_env_runners))
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
        from envs_registry.pettingzoo_envs import make_parallel_env

        env_kwargs = dict(env_config.get("env") or {})
        roster = _resolved_roster(env_kwargs, env_config.get("agents"))
        mapping = module_ids(make_parallel_env(**env_kwargs).possible_agents, roster)
        if not mapping:
            raise ValueError(_NOTHING_TO_LEARN.format(list(roster or {})))
        config = config.multi_agent(policies=sorted(set(mapping.values())), policy_mapping_fn=RoleMapping(mapping))
    return config


__all__ = ["MULTI_ENV_ID", "NO_RAY", "RoleMapping", "ScriptedAgentsParallelEnv", "make_multi_agent_env",
           "make_single_agent_env", "module_ids", "ppo_config", "register_rllib_envs", "require_rllib",
           "rllib_env_ids", "training_kwargs"]
