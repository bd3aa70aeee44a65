"""A desk's raw market state becomes the env's own observation: checked against ``Janus-LOB-v0`` itself.

The reference is the env: ``Janus-LOB-v0`` on recorded data is played with random orders; at each step the test
builds the market body a desk would send from the *data* (the recorded books and volumes, read through a second
copy of the source, not through the env) and the account from the env's fills reported as a client would; the
service's observation must equal the env's, bit for bit, market and account blocks alike.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs_registry  # noqa: F401
from agents.app.service.accounts import Account
from agents.app.service.observation import ObservationBuilder, built_state, desk_state
from agents.app.service.schemas import FieldError, MarketBody, ObservationBody
from janus_env.historical import load_source
from janus_env.samples import sample_path

SAMPLES = {
    "btc_usd_hourly": {"lot": 0.01, "max_position": 1.0},         # OHLCV bars, synthetic 10-level books
    "btc_book_15_levels": {"lot": 0.01, "max_position": 1.0},     # recorded L2 snapshots, 15 levels
}


def _body(source, start: int, end: int) -> MarketBody:
    """The desk's view of data rows ``start..end``: mids, volumes and buy volumes, and the book of row ``end``."""
    source.reset(start)
    mids, volumes, buys = [], [], []
    for row in range(start, end + 1):
        if row > start:
            source.advance()
        book = source.book()
        mids.append(0.5 * (book[0, 0] + book[0, 2]))
        buy, sell = source.traded()
        volumes.append(buy + sell)
        buys.append(buy)
    book = source.book()
    bids = [[float(p), float(q)] for p, q in book[:, 0:2] if np.isfinite(p) and q > 0]
    asks = [[float(p), float(q)] for p, q in book[:, 2:4] if np.isfinite(p) and q > 0]
    return MarketBody(prices=mids, volumes=volumes, buy_volumes=buys, bids=bids, asks=asks)


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_market_body_gives_the_envs_observation(sample: str) -> None:
    env = gym.make("Janus-LOB-v0", scenario="historical", data=sample_path(sample), episode_steps=40,
                   **SAMPLES[sample])
    base = env.unwrapped
    config = base.config
    start = 57
    obs, info = env.reset(seed=0, options={"start": start})
    window = config.window
    source = load_source(sample_path(sample))
    builder = ObservationBuilder(config, base.observation_space)
    account = Account.new("desk", config)
    rng = np.random.default_rng(3)
    traded = 0
    for t in range(40):
        built = builder.from_market(_body(source, start, start + window - 1 + t), account)
        for key in obs:
            np.testing.assert_array_equal(built.obs[key], obs[key], err_msg=f"step {t}: {key}")
        assert built.info["vpin"] == info["vpin"] and built.info["volatility"] == info["volatility"]
        assert built.mid == info["mid"]
        # the client: the env's execution reported as a fill of the decision's order
        action = int(rng.integers(0, 3))
        decision = account.next_decision()
        obs, _, terminated, truncated, info = env.step(action)
        account.open_order(decision, round(info["exec_qty"] / config.resolved_qty_step), built.mid)
        if info["exec_qty"] != 0.0:
            account.apply_fill(decision, info["exec_qty"], info["exec_price"], config)
            traded += 1
        account.t = t + 1
        account.peak = account.mark(info["mid"], config)[1]
        assert account.units * config.resolved_qty_step == pytest.approx(info["position"], abs=1e-12)
        assert account.cash == info["cash"]
        if terminated or truncated:
            break
    assert traded > 5  # the account block was checked with a moving position and cash


def test_fewer_steps_than_a_session_use_the_last_window_only() -> None:
    """W steps give a fresh episode's VPIN; the earlier steps of a longer body feed it too (different VPIN)."""
    env = gym.make("Janus-LOB-v0", scenario="historical", data=sample_path("btc_book_15_levels"), episode_steps=40,
                   lot=0.01, max_position=1.0)
    base = env.unwrapped
    builder = ObservationBuilder(base.config, base.observation_space)
    source = load_source(sample_path("btc_book_15_levels"))
    w = base.config.window
    account = Account.new("desk", base.config)
    long = builder.from_market(_body(source, 0, w + 29), account)
    short = builder.from_market(_body(source, 30, w + 29), account)
    np.testing.assert_array_equal(long.obs["prices"], short.obs["prices"])
    np.testing.assert_array_equal(long.obs["book"], short.obs["book"])
    obs, _ = env.reset(seed=0, options={"start": 30})
    np.testing.assert_array_equal(short.obs["market"], obs["market"])  # a fresh episode at row 30


def _market(n: int = 32, **overrides):
    mids = list(100.0 + 0.01 * np.arange(n))
    mid = mids[-1]
    body = {"prices": mids, "volumes": [300.0] * n, "bids": [[mid - 0.01, 500.0], [mid - 0.02, 500.0]],
            "asks": [[mid + 0.01, 400.0], [mid + 0.02, 400.0]]}
    body.update(overrides)
    return MarketBody(**body)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"prices": [100.0] * 5}, "market.prices", "expected between 32 (the run's window) and 72"),
        ({"volumes": [1.0] * 31}, "market.volumes", "expected 32 entries (one per price), got 31"),
        ({"volumes": [1.0] * 31 + [-1.0]}, "market.volumes[31]", "expected volumes >= 0, got -1.0 at [31]"),
        ({"buy_volumes": [301.0] * 32}, "market.buy_volumes[0]", "expected 0 <= buy_volumes[i] <= volumes[i]"),
        ({"bids": [[100.3, 5.0], [100.305, 5.0]]}, "market.bids[1]", "expected decreasing prices, best first"),
        ({"asks": [[100.32, 0.0]]}, "market.asks[0]", "expected [price > 0, size > 0], got [100.32, 0.0]"),
        ({"bids": [[100.5, 1.0]]}, "market.bids[0]", "expected best bid <= best ask, got bid 100.5 > ask 100.32"),
        ({"asks": [[100.35, 1.0]]}, "market.prices[31]", "expected the last price to be the book's mid"),
    ],
)
def test_bad_market_body_names_the_field(overrides, field: str, message: str) -> None:
    with pytest.raises(FieldError) as caught:
        desk_state(_market(**overrides), 32, 72)
    assert caught.value.field == field
    assert message in caught.value.message


def test_observation_body_keeps_the_observation_and_reads_the_raw_state() -> None:
    env = gym.make("Janus-LOB-v0", seed=0, episode_steps=50)
    base = env.unwrapped
    obs, info = env.reset(seed=0)
    for _ in range(5):
        obs, _, _, _, info = env.step(0)
    builder = ObservationBuilder(base.config, base.observation_space)
    account = Account.new("desk", base.config)
    body = ObservationBody(**{k: v.tolist() for k, v in obs.items()})
    built = built_state(builder, None, body, info["mid"], account)
    for key in obs:
        np.testing.assert_array_equal(built.obs[key], obs[key])
    # the raw state recovered from the observation's float32 encoding, against the env's float64 info
    assert built.info["vpin"] == pytest.approx(info["vpin"], rel=1e-6)
    assert built.info["volatility"] == pytest.approx(info["volatility"], rel=1e-6)
    assert built.info["spread"] == pytest.approx(info["spread"], rel=1e-5)
    assert built.info["volume"] == pytest.approx(info["volume"], rel=1e-5)
    np.testing.assert_allclose(built.book[:, 0], base.book()[:, 0], rtol=1e-9)  # bid prices decoded at mid
    with pytest.raises(FieldError, match="needs `mid`"):
        built_state(builder, None, body, None, account)
    bad = ObservationBody(**{**{k: v.tolist() for k, v in obs.items()}, "prices": [0.0] * 7})
    with pytest.raises(FieldError) as caught:
        built_state(builder, None, bad, info["mid"], account)
    assert caught.value.field == "observation.prices" and "expected shape [32], got [7]" in caught.value.message


def _random_desk(rng: np.random.Generator, window: int, max_steps: int, n_levels: int) -> MarketBody:
    """A market body of random length, magnitude, volumes (zeros, whole VPIN buckets, tiny trades), buy split
    (or none) and book depth (fewer and more levels than the run shows)."""
    n = int(rng.integers(window, max_steps + 1)) if rng.random() < 0.8 else int(rng.choice([window, max_steps]))
    scale = float(10.0 ** rng.uniform(-2, 6))
    mids = scale * np.exp(np.cumsum(rng.normal(0.0, 10.0 ** rng.uniform(-5, -1), n)))
    volumes = rng.choice([0.0, 1e-6, 50.0, 2000.0, 9000.0], n) * rng.uniform(0.5, 1.5, n)
    buys = None if rng.random() < 0.3 else (volumes * rng.uniform(0.0, 1.0, n)).tolist()
    half = float(mids[-1]) * float(10.0 ** rng.uniform(-6, -2))
    bid, ask = float(mids[-1]) - half, float(mids[-1]) + half
    mids[-1] = 0.5 * (bid + ask)
    depth = int(rng.integers(1, n_levels + 4))
    ticks = half * (1.0 + np.arange(depth))
    bids = [[bid - t + half, float(q)] for t, q in zip(ticks, rng.uniform(0.01, 5000.0, depth))]
    asks = [[ask + t - half, float(q)] for t, q in zip(ticks, rng.uniform(0.01, 5000.0, depth))]
    asks = asks[: int(rng.integers(1, depth + 1))]  # one side thinner than the other
    return MarketBody(prices=mids.tolist(), volumes=volumes.tolist(), buy_volumes=buys, bids=bids, asks=asks)


def _random_account(rng: np.random.Generator, config, steps: int) -> Account:
    account = Account.new("desk", config)
    account.units = int(rng.integers(-config.max_position_units, config.max_position_units + 1))
    account.cash = float(config.initial_cash) * float(rng.uniform(0.2, 2.0))
    account.cost = float(rng.normal(0.0, 1e4))
    account.peak = None if rng.random() < 0.3 else float(config.initial_cash) * float(rng.uniform(0.5, 3.0))
    account.t = int(rng.integers(0, steps + 5))  # beyond a session: the env's clock stops at its end
    return account


SMALL_HISTORICAL = {"scenario": "historical", "data": "btc_book_15_levels", "window": 16, "n_levels": 3, "lot": 0.01,
                    "max_position": 1.0, "episode_steps": 20, "vpin_bucket": 50, "vpin_n_buckets": 4}


@pytest.mark.parametrize("env_kwargs", [{"episode_steps": 60}, SMALL_HISTORICAL])
def test_fast_observation_is_the_markets_replay_bit_for_bit(env_kwargs) -> None:
    """``from_market`` (one numba kernel and the market's ``_write`` expressions) against ``from_market_replay``
    (the body stepped through ``HistoricalMarket``) on 300 random bodies and accounts: the observation, the whole
    ``O_*`` row, ``info``, the book and the mid, equal bit for bit (NaN where NaN)."""
    if "data" in env_kwargs:
        env_kwargs = {**env_kwargs, "data": sample_path(env_kwargs["data"])}
    env = gym.make("Janus-LOB-v0", **env_kwargs)
    base = env.unwrapped
    config = base.config
    builder = ObservationBuilder(config, base.observation_space)
    rng = np.random.default_rng(11)
    steps = int(config.episode_steps)
    lengths = set()
    for _ in range(300):
        body = _random_desk(rng, builder.window, builder.max_steps, int(config.n_levels))
        account = _random_account(rng, config, steps)
        fast, replay = builder.from_market(body, account), builder.from_market_replay(body, account)
        np.testing.assert_array_equal(fast.flat, replay.flat)
        np.testing.assert_array_equal(fast.out, replay.out)
        np.testing.assert_array_equal(fast.book, replay.book)
        assert fast.info == replay.info and fast.mid == replay.mid
        assert all(np.shares_memory(fast.obs[k], fast.flat) for k in fast.obs)
        lengths.add(len(body.prices))
    assert {builder.window, builder.max_steps} <= lengths  # both ends of the allowed lengths were replayed


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the replay's arithmetic on 1.7e308
def test_a_mid_that_overflows_keeps_the_last_finite_one_as_the_market_does() -> None:
    env = gym.make("Janus-LOB-v0")
    base = env.unwrapped
    builder = ObservationBuilder(base.config, base.observation_space)
    w = builder.window
    body = _market(w + 3)
    prices = list(body.prices)
    prices[5] = prices[w + 1] = 1.7e308  # 0.5·(p + p) overflows: the market keeps the mid it had
    body = body.model_copy(update={"prices": prices})
    account = Account.new("desk", base.config)
    fast, replay = builder.from_market(body, account), builder.from_market_replay(body, account)
    np.testing.assert_array_equal(fast.flat, replay.flat)
    np.testing.assert_array_equal(fast.out, replay.out)
    assert fast.obs["prices"][w - 2] == fast.obs["prices"][w - 3]  # the step after the overflow repeats its mid
