"""The scripted-opponents env: opponents act inside the market, and the tournament and RLlib see the same market."""

from __future__ import annotations

import numpy as np
import pytest

from agents.app.opponents import (
    ScriptedOpponentsParallelEnv,
    SingleLearnerEnv,
    env_action,
    scripted_agents,
    scripted_policy,
)
from agents.app.rllib import scripted_market
from agents.app.tournament import learner_env, resolve_roster
from envs_registry import make_parallel_env


class _CountingPolicy:
    def __init__(self, policy) -> None:
        self.policy, self.calls = policy, 0

    def predict(self, observation, deterministic: bool = True):
        self.calls += 1
        return self.policy.predict(observation, deterministic=deterministic)


def test_scripted_agents_act_inside_the_env(opponents_market: dict, opponents_roster: dict) -> None:
    par = make_parallel_env(**opponents_market)
    roster = resolve_roster(opponents_market, opponents_roster)
    scripted = {a: _CountingPolicy(scripted_policy(s, par.action_space(a), 0))
                for a, s in roster.items() if isinstance(s, str)}
    env = ScriptedOpponentsParallelEnv(par, scripted)
    assert env.possible_agents == ["market_maker_0", "janus_0", "janus_1"]
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(infos) == set(env.agents) == set(env.possible_agents)
    steps = 0
    while env.agents:
        obs, rewards, terms, truncs, _ = env.step({a: env.action_space(a).sample() for a in env.agents})
        assert set(rewards) == set(terms) == set(truncs) <= set(env.possible_agents)
        steps += 1
    assert steps == opponents_market["episode_steps"]
    assert all(truncs.values()) and not any(terms.values())
    assert {a: p.calls for a, p in scripted.items()} == {"informed_0": steps, "noise_0": steps}


def test_env_action_shapes_maker_and_taker_actions() -> None:
    quote = env_action([1, 2, 3, 4], "market_maker_0")
    assert quote.dtype == np.int64 and quote.tolist() == [1, 2, 3, 4]
    assert env_action(np.array([2]), "janus_0") == 2 and type(env_action(np.int64(1), "janus_0")) is int
    with pytest.raises(ValueError):
        env_action([1, 2], "janus_0")  # a taker acts with one number


def test_single_learner_env_rotates_a_shared_group(opponents_market: dict, opponents_roster: dict) -> None:
    """Episode k controls group[k % 2]; the other member acts inside the market with the shared policy."""
    par = make_parallel_env(**opponents_market)
    roster = resolve_roster(opponents_market, {**opponents_roster, "market_maker": "fixed_quotes"})
    shared = _CountingPolicy(scripted_policy("hold", par.action_space("janus_0"), 0))
    policies = {**scripted_agents(roster, par, 0), "janus_0": shared, "janus_1": shared}
    env = SingleLearnerEnv(par, ["janus_0", "janus_1"], policies)
    assert env.observation_space == par.observation_space("janus_0")
    with pytest.raises(RuntimeError, match=r"Call reset\(\) before step\(\)"):
        env.step(0)
    egos = []
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        egos.append(env.ego)
        assert env.observation_space.contains(obs)
        done, steps = False, 0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert isinstance(reward, float)
            done, steps = terminated or truncated, steps + 1
        assert truncated and not terminated and steps == opponents_market["episode_steps"]
    assert egos == ["janus_0", "janus_1", "janus_0"]
    assert shared.calls == 3 * opponents_market["episode_steps"]  # the other member, every step of every episode


def test_tournament_and_rllib_learners_see_the_same_market(opponents_market: dict) -> None:
    """Differential: the tournament's learner env (SB3) and RLlib's env creator, same roster and seed, same
    learner actions → the same observations, rewards and episode ends, step by step."""
    agents = {"market_maker": "fixed_quotes", "informed": "informed", "noise": "random", "janus_0": {"algo": "ppo"},
              "janus_1": "momentum"}
    roster = resolve_roster(opponents_market, agents)
    matchup = {"name": "m", "env": opponents_market, "agents": roster, "safety": None}
    seed = 5
    opponents = scripted_agents(roster, make_parallel_env(**opponents_market), seed)
    tournament = learner_env(matchup, ["janus_0"], opponents)
    rllib = scripted_market({"env": opponents_market, "agents": agents, "seed": seed})
    assert rllib.possible_agents == ["janus_0"]
    rng = np.random.default_rng(0)
    obs_t, _ = tournament.reset(seed=11)
    obs_r, _ = rllib.reset(seed=11)
    steps, done, rewards = 0, False, []
    while not done:
        for key in obs_t:
            np.testing.assert_array_equal(obs_t[key], obs_r["janus_0"][key], err_msg=f"step {steps}: {key}")
        action = int(rng.integers(3))
        obs_t, reward_t, term_t, trunc_t, _ = tournament.step(action)
        obs_r, reward_r, term_r, trunc_r, _ = rllib.step({"janus_0": action})
        assert (reward_t, term_t, trunc_t) == (reward_r["janus_0"], term_r["janus_0"], trunc_r["janus_0"])
        rewards.append(reward_t)
        done, steps = term_t or trunc_t, steps + 1
    assert not rllib.agents and steps == opponents_market["episode_steps"]
    assert np.count_nonzero(rewards) > 0  # not vacuous: the learner's trades and the opponents moved its PnL
