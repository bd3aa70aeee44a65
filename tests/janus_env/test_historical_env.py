"""``scenario="historical"``: real data through the env, with no look-ahead."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import data_equivalence

import envs_registry  # noqa: F401
from janus_env.lob_env import JanusLOBEnv
from janus_env.samples import sample_path

BTC = {"lot": 1, "max_position": 2, "initial_cash": 1_000_000.0, "episode_steps": 60, "window": 16}


@pytest.fixture(scope="module")
def l2_file() -> Path:
    return sample_path("btc_book_15_levels")


@pytest.fixture(scope="module")
def hourly_file() -> Path:
    return sample_path("btc_usd_hourly")


@pytest.mark.parametrize("name", ["btc_book_15_levels", "btc_usd_hourly", "btc_usd_daily"])
def test_historical_env_passes_check_env(name: str, check_all) -> None:
    env = gym.make("Janus-LOB-v0", scenario="historical", data=sample_path(name), **BTC)
    check_all(env)


def _episode(env: gym.Env, start: int, actions: list[int]) -> list:
    obs, info = env.reset(seed=0, options={"start": start})
    out = [obs]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, info["equity"]))
    return out


def test_no_lookahead_truncating_future_rows_changes_nothing(l2_file: Path, tmp_path: Path) -> None:
    start, n_steps = 100, 30
    actions = [1, 1, 0, 2, 0, 1] * (n_steps // 6)
    full = _episode(gym.make("Janus-LOB-v0", scenario="historical", data=l2_file, **BTC), start, actions)
    # drop every row after the last one a full episode from `start` can reach
    frame = pd.read_csv(l2_file)
    cut = tmp_path / "btc_book_cut.csv"
    frame.iloc[: start + BTC["window"] + BTC["episode_steps"]].to_csv(cut, index=False)
    short = _episode(gym.make("Janus-LOB-v0", scenario="historical", data=cut, **BTC), start, actions)
    assert data_equivalence(full, short, exact=True)


def test_orders_execute_against_the_visible_book(l2_file: Path) -> None:
    env = JanusLOBEnv(scenario="historical", data=l2_file, **BTC)
    env.reset(seed=0, options={"start": 10})
    book = env.book()
    _, _, _, _, info = env.step(1)
    assert info["exec_qty"] == 1
    best_ask, ask_qty = book[0, 2], book[0, 3]
    if ask_qty >= 1:
        assert info["exec_price"] == pytest.approx(best_ask)
    assert info["slippage_bps"] >= 0
    assert info["position"] == 1


def test_same_seed_same_historical_episode(hourly_file: Path) -> None:
    a = gym.make("Janus-LOB-v0", scenario="historical", data=hourly_file, **BTC)
    b = gym.make("Janus-LOB-v0", scenario="historical", data=hourly_file, **BTC)
    ra, rb = a.reset(seed=5), b.reset(seed=5)
    assert data_equivalence(ra, rb, exact=True)
    for _ in range(20):
        assert data_equivalence(a.step(1), b.step(1), exact=True)


def test_bad_historical_arguments(l2_file: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("scenario='historical' needs `data`")):
        JanusLOBEnv(scenario="historical")
    env = JanusLOBEnv(scenario="historical", data=l2_file, **BTC)
    with pytest.raises(ValueError, match=re.escape("Expected `options['start']` to be an int in [0,")):
        env.reset(options={"start": 10_000})
    with pytest.raises(TypeError, match=re.escape("Expected `options['start']` to be an int in [0,")):
        env.reset(options={"start": 3.0})
    with pytest.raises(ValueError, match=re.escape("options['start'] only applies to scenario='historical'")):
        JanusLOBEnv().reset(options={"start": 3})


def test_walk_forward_split_keeps_train_and_test_rows_apart(l2_file: Path) -> None:
    train = JanusLOBEnv(scenario="historical", data=l2_file, data_split=(0.0, 0.5), **BTC)
    test = JanusLOBEnv(scenario="historical", data=l2_file, data_split=(0.5, 1.0), **BTC)
    n = len(train._market.source)
    for seed in range(20):
        train.reset(seed=seed)
        test.reset(seed=seed)
        assert train._market.source.step + train._market.episode_steps < n // 2
        assert test._market.source.step - BTC["window"] + 1 >= n // 2
    with pytest.raises(ValueError, match=re.escape("Expected `data_split` = (lo, hi) with 0 <= lo < hi <= 1")):
        JanusLOBEnv(scenario="historical", data=l2_file, data_split=(0.6, 0.2), **BTC)
    with pytest.raises(ValueError, match=re.escape("Expected `data_split[1]` to be a number in [0, 1], got 1.5")):
        JanusLOBEnv(scenario="historical", data=l2_file, data_split=(0.5, 1.5), **BTC)
    with pytest.raises(ValueError, match=re.escape("Expected `data_split[0]` to be a number in [0, 1], got nan")):
        JanusLOBEnv(scenario="historical", data=l2_file, data_split=(float("nan"), 1.0), **BTC)
    with pytest.raises(TypeError, match=re.escape("Expected `data_split[0]` to be a number in [0, 1], got '0'")):
        JanusLOBEnv(scenario="historical", data=l2_file, data_split=("0", 1.0), **BTC)
    with pytest.raises(TypeError, match=re.escape("Expected `data_split` = (lo, hi) with 0 <= lo < hi <= 1, got (0.1")):
        JanusLOBEnv(scenario="historical", data=l2_file, data_split=(0.1, 0.5, 0.9), **BTC)
