"""The market time one step stands for: MarketConfig.step_seconds, the data's time stamps, JanusLOBEnv.step_seconds."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from janus_env.config import MarketConfig
from janus_env.data.l2 import read_l2_snapshots
from janus_env.historical import L2SnapshotSource, LOBSTERSource, load_source, median_spacing_seconds
from janus_env.lob_env import JanusLOBEnv
from janus_env.samples import sample_path


def test_median_spacing_by_hand() -> None:
    # hourly bars Friday 20:00 .. 22:00, then Monday 00:00, 01:00: the weekend gap is one spacing of five
    times = np.array(["2024-01-05T20:00", "2024-01-05T21:00", "2024-01-05T22:00", "2024-01-08T00:00",
                      "2024-01-08T01:00"], dtype="datetime64[ns]")
    assert median_spacing_seconds(times) == 3600.0
    assert median_spacing_seconds(np.array([34200.0, 34200.0, 34201.5, 34203.0])) == 1.5  # ties are skipped
    assert median_spacing_seconds(None) is None
    assert median_spacing_seconds(np.array([34200.0])) is None


def test_sources_read_the_step_from_their_time_stamps() -> None:
    assert load_source(sample_path("btc_usd_hourly")).step_seconds == 3600.0
    assert load_source(sample_path("btc_usd_daily")).step_seconds == 86_400.0
    l2 = read_l2_snapshots(sample_path("btc_book_15_levels"))
    assert L2SnapshotSource(l2).step_seconds == 60.0
    assert L2SnapshotSource(dataclasses.replace(l2, time=None)).step_seconds is None
    fixed = LOBSTERSource(sample_path("lobster_aapl"), step_seconds=2.5)
    assert fixed.step_seconds == 2.5
    by_messages = LOBSTERSource(sample_path("lobster_aapl"), step_messages=100)
    ends = by_messages.data.time[by_messages.bounds - 1]  # time of the last message of each step
    assert by_messages.step_seconds == pytest.approx(float(np.median(np.diff(ends))))


def test_env_step_seconds_from_the_config_or_the_data() -> None:
    assert MarketConfig().step_seconds == 23.4
    assert JanusLOBEnv(episode_steps=10).step_seconds == 23.4
    assert JanusLOBEnv(episode_steps=10, step_seconds=1.0).step_seconds == 1.0
    hourly = JanusLOBEnv(scenario="historical", data=str(sample_path("btc_usd_hourly")), episode_steps=10)
    assert hourly.step_seconds == 3600.0  # the data's stamps win over the config
    l2 = dataclasses.replace(read_l2_snapshots(sample_path("btc_book_15_levels")), time=None)
    untimed = JanusLOBEnv(scenario="historical", data=L2SnapshotSource(l2), episode_steps=10, step_seconds=60.0)
    assert untimed.step_seconds == 60.0  # no stamps: the config's


@pytest.mark.parametrize("value", [0.0, -1.0, float("nan")])
def test_bad_step_seconds(value: float) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Expected `step_seconds` to be a finite number > 0, got {value!r}")):
        MarketConfig(step_seconds=value)
