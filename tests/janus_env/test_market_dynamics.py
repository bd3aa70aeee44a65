"""The simulated market looks like a market: stylized facts, scenario shapes, the fundamental processes."""

from __future__ import annotations

import numpy as np
import pytest

from janus_env.regimes import fundamental_path, scenario_config
from janus_env.stylized import autocorrelation, simulate_mids, stylized_facts


@pytest.fixture(scope="module")
def facts():
    return stylized_facts(simulate_mids("ou", n_steps=60_000, seed=0))


def test_heavy_tails(facts) -> None:
    assert facts.excess_kurtosis > 0.5


def test_volatility_clustering(facts) -> None:
    for lag in (1, 2, 5, 10):
        assert facts.acf_abs_returns[lag] > 0.02, (lag, facts.acf_abs_returns)
    assert facts.acf_abs_returns[1] > facts.acf_abs_returns[10]  # decays with the lag


def test_returns_are_nearly_uncorrelated(facts) -> None:
    # lag 1 carries the bid-ask bounce of the mid (Roll, 1984); beyond it, no linear predictability
    assert abs(facts.acf_returns[0]) < 0.15
    assert np.all(np.abs(facts.acf_returns[1:]) < 0.05), facts.acf_returns


def test_autocorrelation_helper() -> None:
    x = np.array([1.0, -1.0] * 50)
    assert autocorrelation(x, 1) == pytest.approx(-0.99)
    assert autocorrelation(x, 2) == pytest.approx(0.98)


def test_flash_crash_dips_and_recovers() -> None:
    steps = 600
    mids = simulate_mids("flash_crash", n_steps=steps, seed=1)
    config = scenario_config("flash_crash", episode_steps=steps + 1)
    start = int(config.event_start * (steps + 1))
    length = int(config.event_length * (steps + 1))
    before = mids[start - 5]
    trough = mids[start:start + length].min()
    after = mids[start + length + 20:].mean()
    assert (before - trough) / before > 0.02  # a crash of several percent
    assert abs(after - before) / before < 0.02  # and a recovery


def test_squeeze_rips_up() -> None:
    steps = 600
    mids = simulate_mids("squeeze", n_steps=steps, seed=2)
    config = scenario_config("squeeze", episode_steps=steps + 1)
    start = int(config.event_start * (steps + 1))
    end = start + int(config.event_length * (steps + 1))
    assert (mids[end] - mids[start - 1]) / mids[start - 1] > 0.04


def test_fundamental_processes() -> None:
    ou = fundamental_path(scenario_config("ou"), 50_000, seed=0)
    # stationary OU: std ≈ σ / sqrt(2κ − κ²)
    cfg = scenario_config("ou")
    expected = cfg.sigma / np.sqrt(2 * cfg.kappa - cfg.kappa**2)
    assert ou.std() == pytest.approx(expected, rel=0.25)
    gbm = fundamental_path(scenario_config("gbm", drift=1e-4, sigma=1e-4), 2_000, seed=0)
    assert gbm[-1] > 0.1  # drift dominates
    regime = np.diff(fundamental_path(scenario_config("regime"), 50_000, seed=0))
    rolling = np.sqrt(np.convolve(regime**2, np.ones(200) / 200, mode="valid"))
    assert rolling.max() / rolling.min() > 2.0  # calm and turbulent regimes both visited


def test_high_vol_is_more_volatile_than_ou() -> None:
    calm = np.diff(np.log(simulate_mids("ou", n_steps=5000, seed=3))).std()
    wild = np.diff(np.log(simulate_mids("high_vol", n_steps=5000, seed=3))).std()
    assert wild > 1.5 * calm
