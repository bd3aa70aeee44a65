"""Janus-LOB-v0 and friends: API conformance, determinism, errors, accounting, rendering."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import envs_registry
from janus_env.actions import InvalidActionError
from janus_env.lob_env import JanusLOBEnv
from janus_env.regimes import SCENARIOS


@pytest.fixture
def small_market(small_market: dict) -> dict:
    # 300-step sessions: some tests step 100-250 times without a reset (conservation, reward comparisons)
    return {**small_market, "episode_steps": 300, "warmup": 16}


@pytest.mark.parametrize("env_id", envs_registry.ENV_IDS)
def test_env_api(env_id: str, check_all, small_market: dict) -> None:
    kwargs = {"horizon": 50} if env_id == "Janus-Execution-v0" else small_market
    check_all(gym.make(env_id, **kwargs))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("action_type", ["discrete", "sized", "continuous"])
def test_scenarios_and_action_types_pass_check_env(scenario: str, action_type: str, check_all,
                                                      small_market: dict) -> None:
    check_all(gym.make("Janus-LOB-v0", scenario=scenario, action_type=action_type, **small_market))


def test_risk_adjusted_reward_passes_check_env_and_penalizes_inventory(check_all, small_market: dict) -> None:
    check_all(gym.make("Janus-LOB-v0", reward="risk_adjusted", **small_market))
    plain = gym.make("Janus-LOB-v0", **small_market)
    risky = gym.make("Janus-LOB-v0", reward="risk_adjusted", **small_market)
    plain.reset(seed=3)
    risky.reset(seed=3)
    total_plain = total_risky = 0.0
    for _ in range(100):
        total_plain += plain.step(1)[1]
        total_risky += risky.step(1)[1]
    assert total_risky < total_plain


def _rollout(env: gym.Env, seed: int, n: int = 200) -> list:
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(123)
    record = [(obs, info)]
    for _ in range(n):
        obs, reward, terminated, truncated, info = env.step(int(rng.integers(3)))
        record.append((obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset()
            record.append((obs, info))
    return record


def _equal(a, b) -> bool:
    from gymnasium.utils.env_checker import data_equivalence

    return data_equivalence(a, b, exact=True)


@pytest.mark.parametrize("env_id", [e for e in envs_registry.ENV_IDS if e != "Janus-Execution-v0"])
def test_same_seed_same_rollout(env_id: str, small_market: dict) -> None:
    a = _rollout(gym.make(env_id, **small_market), seed=0)
    b = _rollout(gym.make(env_id, **small_market), seed=0)
    assert _equal(a, b)


def test_different_seed_different_rollout(small_market: dict) -> None:
    a = _rollout(gym.make("Janus-LOB-v0", **small_market), seed=0, n=50)
    b = _rollout(gym.make("Janus-LOB-v0", **small_market), seed=1, n=50)
    assert not _equal(a, b)


def test_constructor_seed_is_used_by_first_reset(small_market: dict) -> None:
    a = gym.make("Janus-LOB-v0", seed=7, **small_market)
    b = gym.make("Janus-LOB-v0", **small_market)
    assert _equal(a.reset()[0], b.reset(seed=7)[0])


def test_interleaved_envs_do_not_share_randomness(small_market: dict) -> None:
    solo = _rollout(gym.make("Janus-LOB-v0", **small_market), seed=5, n=60)
    x, y = gym.make("Janus-LOB-v0", **small_market), gym.make("Janus-LOB-v0", **small_market)
    x.reset(seed=5)
    y.reset(seed=9)
    rng = np.random.default_rng(123)
    for _ in range(60):
        a = int(rng.integers(3))
        x_out = x.step(a)
        y.step(a)
    assert _equal(x_out[0], solo[-1][0])


@pytest.mark.parametrize(
    ("action", "error", "message"),
    [
        (3, InvalidActionError, "Action 3 is outside Discrete(3)"),
        (-1, InvalidActionError, "Action -1 is outside Discrete(3)"),
        (1.0, TypeError, "Expected an integer action for Discrete(3), got 1.0 of type float"),
        ("buy", TypeError, "Expected an integer action for Discrete(3), got 'buy' of type str"),
        (np.array([1.5]), TypeError, "Expected an integer action for Discrete(3)"),
        (True, TypeError, "Expected an integer action for Discrete(3), got True of type bool"),
    ],
)
def test_bad_discrete_action(action, error, message, small_market: dict) -> None:
    env = gym.make("Janus-LOB-v0", **small_market)
    env.reset(seed=0)
    with pytest.raises(error, match=re.escape(message)):
        env.step(action)


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (np.array([np.nan], dtype=np.float32), InvalidActionError),
        (np.array([1.5], dtype=np.float32), InvalidActionError),
        (np.array([np.inf], dtype=np.float32), InvalidActionError),
        (np.array(["x"]), TypeError),
        (np.array([0.1, 0.2], dtype=np.float32), TypeError),
    ],
)
def test_bad_continuous_action(action, error, small_market: dict) -> None:
    env = gym.make("Janus-LOB-v0", action_type="continuous", **small_market)
    env.reset(seed=0)
    with pytest.raises(error):
        env.step(action)


def test_step_before_reset(small_market: dict) -> None:
    env = JanusLOBEnv(**small_market)
    with pytest.raises(RuntimeError, match=re.escape("Call reset() before step()")):
        env.step(0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"scenario": "moon"}, ValueError, "Unknown scenario 'moon'"),
        ({"reward": "sharpe"}, ValueError, "Expected `reward` to be one of ('pnl', 'risk_adjusted'), got 'sharpe'"),
        ({"action_type": "grid"}, ValueError,
         "Expected `action_type` to be one of ('discrete', 'sized', 'continuous'), got 'grid'"),
        ({"action_type": "sized", "n_sizes": 0}, ValueError, "Expected `n_sizes` to be an int >= 1, got 0"),
        ({"action_type": "sized", "n_sizes": 2.0}, TypeError, "Expected `n_sizes` to be an int >= 1, got 2.0"),
        ({"render_mode": "human"}, ValueError,
         "Expected `render_mode` to be one of ('ansi', 'rgb_array'), got 'human'"),
        ({"lot": -5}, ValueError, "Expected `lot` to be a finite number > 0, got -5"),
        ({"lot": "5"}, TypeError, "Expected `lot` to be a finite number > 0, got '5'"),
        ({"fee_bps": float("nan")}, ValueError, "Expected `fee_bps` to be a finite number >= 0, got nan"),
        ({"depth_decay": 1.5}, ValueError, "Expected `depth_decay` to be a number in (0, 1], got 1.5"),
        ({"depth_decay": 0.0}, ValueError, "Expected `depth_decay` to be a number in (0, 1], got 0.0"),
        ({"event_start": 1.5}, ValueError, "Expected `event_start` to be a number in [0, 1], got 1.5"),
        ({"process": "levy"}, ValueError, "Expected `process` to be one of ('gbm', 'markov', 'ou'), got 'levy'"),
        ({"lots": 5}, TypeError, "Unknown market parameter(s) ['lots']"),
        ({"seed": "zero"}, TypeError, "Expected `seed` to be an int or None, got 'zero'"),
        ({"data": "x.csv"}, ValueError, "`data` and `data_split` are only used with scenario='historical'"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        JanusLOBEnv(**kwargs)


def test_position_limit_cuts_and_reports(small_market: dict) -> None:
    env = gym.make("Janus-LOB-v0", action_type="sized", n_sizes=4, max_position=500, **small_market)
    env.reset(seed=0)
    _, _, _, _, info = env.step(4)  # buy 400
    assert info["position"] == 400 and info["rejected_qty"] == 0
    _, _, _, _, info = env.step(4)  # buy 400 more: only 100 allowed
    assert info["position"] == 500
    assert info["rejected_qty"] == 300
    assert info["exec_qty"] == 100


def test_rewards_sum_to_equity_change_and_fees_are_charged(small_market: dict) -> None:
    env = gym.make("Janus-LOB-v0", **small_market)
    _, info = env.reset(seed=2)
    start = info["equity"]
    total, fees = 0.0, 0.0
    rng = np.random.default_rng(0)
    done = False
    while not done:
        _, reward, terminated, truncated, info = env.step(int(rng.integers(3)))
        total += reward
        fees += info["fees"]
        if info["exec_qty"] != 0:
            expected_fee = abs(info["exec_qty"]) * info["exec_price"] * 0.5e-4
            assert info["fees"] == pytest.approx(expected_fee, rel=1e-9)
        done = terminated or truncated
    assert truncated and info["step"] == small_market["episode_steps"]
    assert total * 100_000.0 / 1e4 == pytest.approx(info["equity"] - start, abs=1e-6)
    assert fees > 0
    assert info["equity"] == pytest.approx(info["cash"] + info["position"] * info["mid"], abs=1e-6)


def test_market_conserves_cash_and_shares_across_all_participants(small_market: dict) -> None:
    env = JanusLOBEnv(**small_market)
    env.reset(seed=4)
    rng = np.random.default_rng(0)
    for _ in range(250):
        env.step(int(rng.integers(3)))
    accounts = env._market.arrays.accounts[0]
    assert accounts[:, 1].sum() == 0  # every share bought was sold by someone
    assert accounts[:, 0].sum() == 0  # every tick paid was received (fees are charged outside the book)
    assert (env._market.arrays.orders[0][:, 4] >= 0).all()


def test_observation_matches_space_and_docstring_table(small_market: dict) -> None:
    env = JanusLOBEnv(window=16, n_levels=3, **small_market)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    doc = JanusLOBEnv.__doc__
    rows = re.findall(r"^\s*\| `(\w+)` \| \(([^)]*)\)", doc, flags=re.M)
    documented = {key: shape for key, shape in rows}
    assert set(documented) == set(env.observation_space.spaces)
    symbols = {"W": 16, "L": 3}
    for key, shape in documented.items():
        dims = tuple(symbols.get(d.strip(), None) or int(d) for d in shape.split(",") if d.strip())
        assert env.observation_space[key].shape == dims, key


def test_no_lookahead_observation_is_fixed_before_the_next_step(small_market: dict) -> None:
    env = JanusLOBEnv(**small_market)
    obs, _ = env.reset(seed=0)
    snapshot = {k: v.copy() for k, v in obs.items()}
    env.step(0)
    assert _equal(obs, snapshot)  # returned observations are copies, not views of live state


def test_render_ansi_and_rgb(small_market: dict) -> None:
    env = gym.make("Janus-LOB-v0", render_mode="ansi", **small_market)
    env.reset(seed=0)
    text = env.render()
    assert "bid" in text and "ask" in text and "position" in text
    env = gym.make("Janus-LOB-v0", render_mode="rgb_array", **small_market)
    env.reset(seed=0)
    for _ in range(20):
        env.step(1)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[1] == 4 * 21
    assert frame.max() > 0


def test_ppo_trains_2000_steps_on_the_env(small_market: dict) -> None:
    from stable_baselines3 import PPO

    env = gym.make("Janus-LOB-v0", **small_market)
    model = PPO("MultiInputPolicy", env, n_steps=256, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=2000)
    assert model.num_timesteps >= 2000
