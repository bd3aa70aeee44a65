"""PettingZoo factories for the shared-book multi-agent market (``janus_market_v0``).

```python
from envs_registry.pettingzoo_envs import make_aec_env, make_parallel_env, make_shared_policy_vec_env
par = make_parallel_env(roles={"market_maker": 1, "informed": 1, "noise": 2, "janus": 2}, seed=0)
aec = make_aec_env(roles={"janus": 2})            # parallel_to_aec + order enforcement
venv = make_shared_policy_vec_env(n_agents=8)     # SB3 VecEnv: one policy shared by 8 takers
```

Parameter sharing needs one observation and one action space for every agent
(SuperSuit's ``pettingzoo_env_to_vec_env_v1`` checks it). Market makers quote
with a ``MultiDiscrete`` action, so ``make_shared_policy_vec_env`` takes taker
roles only; it sets ``pad_observations=True`` (every agent's ``Dict`` carries
the ``signal`` key, 0 for non-informed roles) so that informed agents can share
the policy of the others, and ``on_bankruptcy="end_episode"`` because
SuperSuit's vector env cannot drop a single agent mid-episode. Halted agents
(``env.halt``) stay in the episode, so halting is compatible with it.
"""

from __future__ import annotations

from typing import Any

from janus_env.checks import check_int
from janus_env.parallel_env import TAKER_ROLES, JanusParallelEnv, validate_roles

_MAKERS_NOT_SHAREABLE = ("Parameter sharing needs one action space for all agents; `roles` may only hold taker "
                         "roles {}, got {!r}")
_NO_SUPERSUIT = "make_shared_policy_vec_env needs SuperSuit: pip install supersuit"


def make_parallel_env(**kwargs: Any) -> JanusParallelEnv:
    """A ``JanusParallelEnv`` (PettingZoo ``ParallelEnv``); ``kwargs`` as for its constructor."""
    return JanusParallelEnv(**kwargs)


def make_aec_env(**kwargs: Any):
    """The AEC version of ``make_parallel_env(**kwargs)`` (``pettingzoo.utils.parallel_to_aec``).

    Agents act one after the other in the AEC loop, but their orders still reach
    the book together, in the parallel env's random order, after the last agent acted.
    """
    from pettingzoo.utils.conversions import parallel_to_aec

    return parallel_to_aec(JanusParallelEnv(**kwargs))


def make_shared_policy_env(n_agents: int = 8, roles: dict[str, int] | None = None, **kwargs: Any) -> JanusParallelEnv:
    """A takers-only ``JanusParallelEnv`` whose agents all share one observation and action space.

    Args:
        n_agents: number of ``janus`` agents when ``roles`` is None.
        roles: taker roles only (``informed``, ``momentum``, ``noise``, ``janus``).
        **kwargs: other ``JanusParallelEnv`` arguments; ``pad_observations`` and
            ``on_bankruptcy`` are set to ``True`` and ``"end_episode"``.

    Raises:
        TypeError: ``n_agents`` is not an int; ``roles`` is not a dict (see ``validate_roles``).
        ValueError: ``roles`` holds ``market_maker`` (or is otherwise invalid), or ``n_agents`` < 1.
    """
    if roles is None:
        roles = {"janus": check_int("n_agents", n_agents, low=1)}
    roles = validate_roles(roles)
    if any(role not in TAKER_ROLES for role in roles):
        raise ValueError(_MAKERS_NOT_SHAREABLE.format(list(TAKER_ROLES), roles))
    kwargs.update(pad_observations=True, on_bankruptcy="end_episode")
    return JanusParallelEnv(roles=roles, **kwargs)


def make_shared_policy_vec_env(n_agents: int = 8, num_vec_envs: int = 1, roles: dict[str, int] | None = None,
                               base_class: str = "stable_baselines3", **kwargs: Any):
    """``make_shared_policy_env`` as a vector env: one sub-env per agent, ``num_vec_envs`` markets.

    ``supersuit.pettingzoo_env_to_vec_env_v1`` then ``concat_vec_envs_v1(..., base_class=base_class)``
    (``num_cpus=0``: all markets in this process). With ``"stable_baselines3"``
    the result is an SB3 ``VecEnv`` of ``n_agents · num_vec_envs`` envs; train one
    shared policy with e.g. ``PPO("MultiInputPolicy", venv)``.

    Raises:
        TypeError: ``num_vec_envs`` is not an int; see ``make_shared_policy_env``.
        ValueError: see ``make_shared_policy_env``; ``num_vec_envs`` < 1.
        ImportError: SuperSuit is not installed.
    """
    num_vec_envs = check_int("num_vec_envs", num_vec_envs, low=1)
    env = make_shared_policy_env(n_agents=n_agents, roles=roles, **kwargs)
    try:
        import supersuit as ss
    except ImportError as err:  # pragma: no cover - supersuit is a test dependency
        raise ImportError(_NO_SUPERSUIT) from err
    venv = ss.pettingzoo_env_to_vec_env_v1(env)
    if base_class != "stable_baselines3":
        return ss.concat_vec_envs_v1(venv, num_vec_envs, num_cpus=0, base_class=base_class)
    return _seedable_sb3(ss.concat_vec_envs_v1(venv, num_vec_envs, num_cpus=0, base_class="gymnasium"))


def _seedable_sb3(venv: Any):
    """SuperSuit's ``SB3VecEnvWrapper`` with a working ``seed``.

    SuperSuit 3.11's wrapper forwards ``seed()`` to its ``ConcatVecEnv``, which
    has none, so ``PPO(..., seed=0)`` and ``venv.seed(0)`` raise ``AttributeError``
    under SB3 2.x. Here ``seed(s)`` follows SB3's ``VecEnv`` contract: the next
    ``reset()`` seeds market ``k`` with ``s + k`` (``ConcatVecEnv.reset(seed=s)``).
    """
    from supersuit.vector.sb3_vector_wrapper import SB3VecEnvWrapper

    class SeedableSB3VecEnvWrapper(SB3VecEnvWrapper):
        _pending_seed: int | None = None

        def seed(self, seed: int | None = None) -> list[int | None]:
            self._pending_seed = seed
            return [None if seed is None else seed + k for k in range(self.num_envs)]

        def reset(self, seed: int | None = None, options: dict | None = None):
            if seed is not None:
                self._pending_seed = seed
            seed, self._pending_seed = self._pending_seed, None
            observations, self.reset_infos = self.venv.reset(seed=seed, options=options)
            return observations

    return SeedableSB3VecEnvWrapper(venv)


__all__ = ["make_aec_env", "make_parallel_env", "make_shared_policy_env", "make_shared_policy_vec_env"]
