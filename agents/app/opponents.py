"""Scripted opponents in the shared market: the scripted strategies and the one env where they act inside it.

A learner of ``janus_market_v0`` trains against every other agent playing its current strategy: a scripted
rule (:func:`scripted_policy`) or another learner's policy. :class:`ScriptedOpponentsParallelEnv` lets those
opponents act inside the market and exposes only the learners (PettingZoo parallel API: what the RLlib runner,
``agents.app.rllib``, trains on); :class:`SingleLearnerEnv` is the Gymnasium view of one learner in it (what the
tournament's SB3 learners train on, ``agents.app.tournament``). Both are the same market for the same roster and
seed: ``tests/agents/app/test_opponents.py`` steps one against the other.

Every step each live opponent plays ``policy.predict(obs, deterministic=True)`` on its own observation of
the previous step, its action converted by :func:`env_action`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from agents.baselines import BUY, HOLD, SELL, BuyAndHoldPolicy, MeanReversionPolicy, MomentumPolicy, RandomPolicy
from janus_env.checks import NEED_RESET

TAKER_STRATEGIES = ("buy_and_hold", "momentum", "mean_reversion", "random", "hold", "informed")
MAKER_STRATEGIES = ("fixed_quotes",)


# --------------------------------------------------------------------------- scripted strategies
class HoldPolicy:
    """Taker that never trades."""

    def predict(self, observation: dict[str, np.ndarray], deterministic: bool = True) -> tuple[int, None]:
        return HOLD, None


class InformedPolicy:
    """Taker that trades on the informed ``signal``: buy when it exceeds ``threshold_bps``, sell below minus it."""

    def __init__(self, threshold_bps: float = 5.0) -> None:
        self.threshold_bps = float(threshold_bps)

    def predict(self, observation: dict[str, np.ndarray], deterministic: bool = True) -> tuple[int, None]:
        signal = float(np.asarray(observation.get("signal", [0.0]))[0])
        pos = float(observation["account"][0])
        if signal > self.threshold_bps and pos < 1.0 - 1e-6:
            return BUY, None
        if signal < -self.threshold_bps and pos > -1.0 + 1e-6:
            return SELL, None
        return HOLD, None


class FixedQuotesPolicy:
    """Market maker that always quotes the tightest offset (0 ticks) with 1 lot on both sides."""

    def predict(self, observation: dict[str, np.ndarray], deterministic: bool = True) -> tuple[np.ndarray, None]:
        return np.array([0, 0, 1, 1], dtype=np.int64), None


def scripted_policy(name: str, action_space: gym.Space, seed: int) -> Any:
    """A scripted strategy (``TAKER_STRATEGIES`` or ``MAKER_STRATEGIES``) with an SB3-style ``predict(obs)``."""
    table = {"buy_and_hold": BuyAndHoldPolicy, "momentum": MomentumPolicy, "mean_reversion": MeanReversionPolicy,
             "hold": HoldPolicy, "informed": InformedPolicy, "fixed_quotes": FixedQuotesPolicy}
    if name == "random":
        return RandomPolicy(action_space, seed=seed)
    return table[name]()


def scripted_agents(roster: Mapping[str, Any], env: Any, seed: int) -> dict[str, Any]:
    """Agent → policy for every scripted agent of a resolved roster (``agents.app.tournament.resolve_roster``).

    The agent at position ``i`` of the roster is seeded ``seed + i``, so the tournament and the RLlib runner
    draw the same random opponents from the same seed.

    Args:
        roster: agent name → scripted strategy name, or a mapping for a learned agent (skipped).
        env: the parallel market (its ``action_space(agent)``).
        seed: seed of the first agent.
    """
    return {agent: scripted_policy(strategy, env.action_space(agent), seed + i)
            for i, (agent, strategy) in enumerate(roster.items()) if isinstance(strategy, str)}


def env_action(action: Any, agent: str) -> Any:
    """``action`` as the market takes it: four int64 for a market maker, an ``int`` for a taker."""
    if agent.startswith("market_maker"):
        return np.asarray(action, dtype=np.int64).reshape(4)
    return int(np.asarray(action).reshape(()))


# --------------------------------------------------------------------------- the market seen by the learners
class ScriptedOpponentsParallelEnv:
    """A parallel market whose opponents act inside it; only the learners are exposed.

    PettingZoo ``ParallelEnv`` API for the learners: ``possible_agents``, ``agents``,
    ``observation_space(agent)``, ``action_space(agent)``, ``reset``, ``step``, ``close``. The episode ends
    for the learners when none of them is live: the learners that did not terminate are truncated then.

    Args:
        env: the parallel market (``make_parallel_env``, optionally behind the parallel shield and breakers).
        opponents: agent name → object with an SB3-style ``predict(obs, deterministic=True)``.
    """

    metadata = {"name": "janus_market_v0", "is_parallelizable": True}

    def __init__(self, env: Any, opponents: Mapping[str, Any]) -> None:
        self.env = env
        self.opponents = dict(opponents)
        self.possible_agents = [a for a in env.possible_agents if a not in self.opponents]
        self.agents: list[str] = []
        self.render_mode = None
        self._obs: dict[str, Any] = {}

    def observation_space(self, agent: str) -> gym.Space:
        return self.env.observation_space(agent)

    def action_space(self, agent: str) -> gym.Space:
        return self.env.action_space(agent)

    def _learners(self, mapping: Mapping[str, Any]) -> dict[str, Any]:
        return {a: v for a, v in mapping.items() if a not in self.opponents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._obs, infos = self.env.reset(seed=seed, options=options)
        self.agents = [a for a in self.env.agents if a not in self.opponents]
        return self._learners(self._obs), self._learners(infos)

    def step(self, actions: Mapping[str, Any]):
        actions = dict(actions)
        for agent in self.env.agents:
            if agent in self.opponents:
                action, _ = self.opponents[agent].predict(self._obs[agent], deterministic=True)
                actions[agent] = env_action(action, agent)
        self._obs, rewards, terms, truncs, infos = self.env.step(actions)
        self.agents = [a for a in self.env.agents if a not in self.opponents]
        obs, rewards, terms, truncs, infos = (self._learners(d) for d in (self._obs, rewards, terms, truncs, infos))
        if not self.agents:  # the last learner left (bankrupt, halted or at the end): the episode ends for all
            truncs = {a: truncs.get(a, False) or not terms.get(a, False) for a in obs}
        return obs, rewards, terms, truncs, infos

    def close(self) -> None:
        self.env.close()


class SingleLearnerEnv(gym.Env):
    """Gymnasium view of one learner in a market whose other agents act inside it (``ScriptedOpponentsParallelEnv``).

    A parameter-sharing group takes turns: episode ``k`` controls ``group[k % len(group)]`` while the rest of
    the group acts with ``policies`` (the shared policy being trained).

    Args:
        env: the parallel market.
        group: the learning agents (one, or the shared learners of a role).
        policies: ``predict``-able strategy of every agent (group members included).
    """

    metadata = {"render_modes": []}

    def __init__(self, env: Any, group: list[str], policies: Mapping[str, Any]) -> None:
        self.market = env
        self.group = list(group)
        self.policies = policies
        self.observation_space = env.observation_space(group[0])
        self.action_space = env.action_space(group[0])
        self.ego = group[0]
        self._episode = 0
        self._view: ScriptedOpponentsParallelEnv | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.ego = self.group[self._episode % len(self.group)]
        self._episode += 1
        opponents = {a: self.policies[a] for a in self.market.possible_agents if a != self.ego}
        self._view = ScriptedOpponentsParallelEnv(self.market, opponents)
        obs, infos = self._view.reset(seed=seed, options=options)
        return obs[self.ego], infos[self.ego]

    def step(self, action: Any):
        if self._view is None:
            raise RuntimeError(NEED_RESET)
        obs, rewards, terms, truncs, infos = self._view.step({self.ego: env_action(action, self.ego)})
        ego = self.ego
        return obs[ego], float(rewards[ego]), bool(terms[ego]), bool(truncs[ego]), infos[ego]

    def close(self) -> None:
        self.market.close()
