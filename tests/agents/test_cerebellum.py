"""Cerebellum: learns slippage from Janus-LOB-v0 fills, logs its prediction error, plugs into the amygdala."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.logger import configure

import envs_registry  # noqa: F401
from agents import cerebellum as cb
from agents.cerebellum import Cerebellum, CerebellumBatch, CerebellumCallback
from janus_env.checks import bad_value


@pytest.fixture(scope="module")
def fills() -> dict[str, np.ndarray]:
    """Fills of random market orders on Janus-LOB-v0 (state before the order, signed qty, slippage)."""
    env = gym.make("Janus-LOB-v0", scenario="ou", seed=0, episode_steps=500)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    rows: dict[str, list[Any]] = {"book": [], "market": [], "qty": [], "slip": []}
    for _ in range(3000):
        before = obs
        obs, _, terminated, truncated, info = env.step(int(rng.integers(3)))
        if info["exec_qty"] != 0.0:
            rows["book"].append(before["book"])
            rows["market"].append(before["market"])
            rows["qty"].append(info["exec_qty"])
            rows["slip"].append(info["slippage_bps"])
        if terminated or truncated:
            obs, _ = env.reset()
    return {k: np.asarray(v) for k, v in rows.items()}


def test_learns_slippage_from_lob_fills(fills: dict[str, np.ndarray]) -> None:
    n = len(fills["slip"])
    assert n > 1000
    cut = int(0.8 * n)
    model = Cerebellum(n_levels=5, seed=0)
    test = model.make_batch(fills["book"][cut:], fills["market"][cut:], fills["qty"][cut:], fills["slip"][cut:])
    with th.no_grad():
        before = model.loss(test).item()
    rng = np.random.default_rng(0)
    for _ in range(300):
        idx = rng.integers(0, cut, 128)
        model.update(model.make_batch(fills["book"][idx], fills["market"][idx], fills["qty"][idx], fills["slip"][idx]))
    with th.no_grad():
        after = model.loss(test).item()
    variance = float(np.var(fills["slip"][cut:]))  # MSE of the best constant prediction
    assert after < 0.05 * before
    assert after < 0.1 * variance
    errors = model.prediction_error(test)
    assert errors.shape == (n - cut,) and float(np.mean(errors)) < 0.2


def test_callback_trains_online_and_logs_prediction_error(tmp_path: Path) -> None:
    env = gym.make("Janus-LOB-v0", scenario="ou", seed=0, episode_steps=200)
    cerebellum = Cerebellum.from_env(env, seed=0)
    model = PPO("MultiInputPolicy", env, n_steps=256, batch_size=64, n_epochs=1, seed=0,
                policy_kwargs={"net_arch": [16]})
    model.set_logger(configure(str(tmp_path), ["csv"]))
    callback = CerebellumCallback(cerebellum, learning_starts=16, batch_size=32)
    model.learn(1024, callback=callback)
    errors = np.asarray(callback.errors)
    assert len(errors) > 300 and np.all(np.isfinite(errors))
    assert errors[-100:].mean() < 0.5 * errors[:50].mean()  # sensory prediction error shrinks online
    assert cerebellum.last_error == pytest.approx(errors[-1])
    with open(tmp_path / "progress.csv") as fh:
        rows = list(csv.DictReader(fh))
    logged = [float(r["janus/cerebellum_error"]) for r in rows if r.get("janus/cerebellum_error")]
    assert logged and all(np.isfinite(logged))
    assert any(r.get("janus/cerebellum_loss") for r in rows)


def test_predictor_has_the_amygdala_signature(fills: dict[str, np.ndarray]) -> None:
    env = gym.make("Janus-LOB-v0", seed=0)
    obs, info = env.reset(seed=0)
    model = Cerebellum.from_env(env, seed=0)
    assert model.predictor(obs, 0, info) == 0.0  # HOLD sends no order
    buy = model.predictor(obs, np.int64(1), info)
    sell = model.predictor(obs, np.array(2), None)
    assert isinstance(buy, float) and isinstance(sell, float)
    batch = model.make_batch(obs["book"][None], obs["market"][None], np.array([100.0]), np.array([0.0]))
    with th.no_grad():
        assert buy == pytest.approx(float(model(batch.book, batch.market, batch.size, batch.side)[0]))


def test_sized_actions_map_like_the_env() -> None:
    model = Cerebellum(n_sizes=3)
    assert [model.order_of(a) for a in range(7)] == [
        (0.0, 0.0), (1.0, 1.0), (1.0, 2.0), (1.0, 3.0), (-1.0, 1.0), (-1.0, 2.0), (-1.0, 3.0)
    ]  # fmt: skip


def test_make_batch_drops_rows_without_fill() -> None:
    model = Cerebellum(n_levels=2, n_market=4, lot=10)
    batch = model.make_batch(np.zeros((3, 2, 4)), np.zeros((3, 4)), np.array([20.0, 0.0, -10.0]), np.ones(3))
    assert isinstance(batch, CerebellumBatch)
    assert batch.size.tolist() == [2.0, 1.0] and batch.side.tolist() == [1.0, -1.0]
    with pytest.raises(ValueError, match=re.escape(cb._BAD_BATCH.format([2, 3]))):
        model.make_batch(np.zeros((3, 2, 4)), np.zeros((2, 4)), np.ones(3), np.ones(3))
    empty = model.make_batch(np.zeros((1, 2, 4)), np.zeros((1, 4)), np.zeros(1), np.ones(1))
    with pytest.raises(ValueError, match=re.escape(cb._EMPTY_BATCH)):
        model.update(empty)


def test_seeded_init_leaves_global_rng_alone() -> None:
    th.manual_seed(123)
    expected = th.rand(1)
    th.manual_seed(123)
    a, b = Cerebellum(seed=7), Cerebellum(seed=7)
    assert th.rand(1) == expected
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert th.equal(pa, pb)


def test_from_env_reads_the_config() -> None:
    env = gym.make("Janus-LOB-v0", n_levels=3, lot=50, action_type="sized", n_sizes=2)
    model = Cerebellum.from_env(env)
    assert (model.n_levels, model.lot, model.n_sizes, model.n_market) == (3, 50, 2, 4)
    cartpole = gym.make("CartPole-v1")
    with pytest.raises(TypeError, match=re.escape(cb._NO_LOB_ENV.format(cartpole))):
        Cerebellum.from_env(cartpole)


@pytest.mark.skipif(importlib.util.find_spec("wrappers.amygdala") is None, reason="wrappers/amygdala.py absent")
def test_plugs_into_the_amygdala(fills: dict[str, np.ndarray]) -> None:
    from wrappers.amygdala import Amygdala

    base = gym.make("Janus-LOB-v0", scenario="ou", seed=0, episode_steps=300)
    model = Cerebellum.from_env(base, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = rng.integers(0, len(fills["slip"]), 128)
        model.update(model.make_batch(fills["book"][idx], fills["market"][idx], fills["qty"][idx], fills["slip"][idx]))
    env = Amygdala(base, slippage_predictor=model.predictor)
    env.reset(seed=1)
    ratios, predicted = [], []
    for t in range(200):
        _, _, terminated, truncated, info = env.step(1 + t % 2)
        if info.get("exec_qty", 0.0) != 0.0:
            predicted.append(info["predicted_slippage_bps"])
            ratios.append(info["slippage_bps"] / info["predicted_slippage_bps"])
        assert not terminated or not str(info.get("halt_reason", "")).startswith("slippage"), info["halt_reason"]
        if terminated or truncated:
            break
    assert predicted and np.median(ratios) == pytest.approx(1.0, abs=0.2)




@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_levels": 0}, bad_value("n_levels", "an int >= 1", 0)),
        ({"n_market": -1}, bad_value("n_market", "an int >= 0", -1)),
        ({"lot": 0}, bad_value("lot", "a finite number > 0", 0)),
        ({"lot": float("inf")}, bad_value("lot", "a finite number > 0", float("inf"))),
        ({"lr": 0.0}, bad_value("lr", "a finite number > 0", 0.0)),
        ({"lr": float("nan")}, bad_value("lr", "a finite number > 0", float("nan"))),
        ({"hidden": (16, 0)}, bad_value("hidden[1]", "an int >= 1", 0)),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Cerebellum(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [  # all ValueError before
        ({"n_sizes": 2.0}, bad_value("n_sizes", "an int >= 1", 2.0)),
        ({"lot": True}, bad_value("lot", "a finite number > 0", True)),
        ({"lr": "1e-3"}, bad_value("lr", "a finite number > 0", "1e-3")),  # YAML 1.1 reads `1e-3` as a str
        ({"hidden": (16, True)}, bad_value("hidden[1]", "an int >= 1", True)),
        ({"hidden": "64"}, cb._BAD_HIDDEN.format("64")),
    ],
)
def test_wrong_argument_types(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        Cerebellum(**kwargs)


def test_numpy_arguments_are_plain_python() -> None:
    model = Cerebellum(n_levels=np.int64(3), lot=np.float32(0.5), hidden=[np.int32(8)], lr=np.float64(1e-2))
    assert (model.n_levels, model.lot, model.hidden, model.lr) == (3, 0.5, (8,), 0.01)
    assert type(model.n_levels) is int and type(model.hidden[0]) is int and type(model.lr) is float


def test_bad_action_and_observation() -> None:
    model = Cerebellum()
    obs = {"book": np.zeros((5, 4), np.float32), "market": np.zeros(4, np.float32)}
    for action in (3, 1.0, True):
        with pytest.raises(ValueError, match=re.escape(cb._BAD_ACTION.format(3, action))):
            model.predictor(obs, action, {})
    with pytest.raises(ValueError, match=re.escape("Expected an observation with keys 'book' and 'market'")):
        model.predictor({"book": np.zeros((2, 4))}, 1, {})


def test_callback_needs_a_cerebellum() -> None:
    with pytest.raises(TypeError, match=re.escape(cb._NOT_CEREBELLUM.format("dict"))):
        CerebellumCallback({})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"buffer_size": 0}, ValueError, bad_value("buffer_size", "an int >= 1", 0)),
        ({"learning_starts": -1}, ValueError, bad_value("learning_starts", "an int >= 0", -1)),
        ({"batch_size": 8.0}, TypeError, bad_value("batch_size", "an int >= 1", 8.0)),
        ({"train_freq": True}, TypeError, bad_value("train_freq", "an int >= 1", True)),
    ],
)
def test_callback_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        CerebellumCallback(Cerebellum(), **kwargs)
