"""agents.app.callbacks: argument checks of the checkpoint callback; the metrics callback's equity figures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.app.callbacks import AtomicCheckpointCallback, JanusMetricsCallback
from janus_env.checks import BAD_VALUE


@pytest.mark.parametrize(("save_freq", "error"), [
    (0, ValueError),
    (-5, ValueError),
    (100.0, TypeError),  # accepted before, as int(100.0)
    (True, TypeError),  # read as 1 before
    ("100", TypeError),  # raised an unnamed TypeError from `"100" < 1` before
])
def test_bad_save_freq(tmp_path: Path, save_freq: Any, error: type[Exception]) -> None:
    message = BAD_VALUE.format(name="save_freq", expected="an int >= 1", value=save_freq)
    with pytest.raises(error, match=re.escape(message)):
        AtomicCheckpointCallback(tmp_path, save_freq)


def test_save_freq_is_a_plain_int(tmp_path: Path) -> None:
    callback = AtomicCheckpointCallback(tmp_path, np.int64(250))
    assert callback.save_freq == 250 and type(callback.save_freq) is int


def test_equity_figures_are_not_left_open_between_log_dumps(tmp_path: Path) -> None:
    """DQN dumps its logs every few episodes, so most episodes' equity figures are replaced before a writer
    closes them; they must not pile up in pyplot (a leak over a long run: >20 open after ~20 episodes)."""
    import gymnasium as gym
    import matplotlib.pyplot as plt
    from stable_baselines3 import DQN
    from stable_baselines3.common.logger import configure

    import envs_registry  # noqa: F401

    before = set(plt.get_fignums())
    model = DQN("MultiInputPolicy", gym.make("Janus-LOB-v0", episode_steps=10), learning_starts=10_000,
                policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    model.set_logger(configure(str(tmp_path / "logs"), ["tensorboard"]))
    callback = JanusMetricsCallback(plot_dir=tmp_path / "plots")
    model.learn(250, callback=callback, log_interval=10)
    assert callback._episodes == 25
    assert set(plt.get_fignums()) == before
    assert (tmp_path / "plots" / "equity_last_episode.png").stat().st_size > 0
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))  # the figures that were dumped got written
