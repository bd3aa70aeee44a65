"""Callbacks that look into a training run at a rollout boundary (keep its state there, or stop it there), and the
hand-over of a stopped run's envs to its resumed copy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from agents.basal_ganglia import attach_shield_logic


class KeepStateAt(BaseCallback):
    """Keeps ``snapshot()`` taken at the rollout boundary of ``step`` (insert it before the checkpoint callback)."""

    def __init__(self, step: int, snapshot: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self.step, self.snapshot = step, snapshot
        self.kept: dict[str, Any] = {}

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps == self.step:
            self.kept = self.snapshot()


class Stopped(Exception):
    """Raised by :class:`StopAt`."""


class StopAt(BaseCallback):
    """Stops ``learn()`` at the rollout boundary of ``step`` (a crash there, with the process's objects kept)."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps == self.step:
            raise Stopped


def take_over_env(resumed: Any, stopped: Any) -> None:
    """Give a resumed training the stopped one's envs as they were (the one thing a checkpoint does not hold):
    from there it must go on exactly as the uninterrupted run did."""
    env = stopped.model.get_env()
    resumed.model.set_env(env)
    resumed.model._last_obs = stopped.model._last_obs
    resumed.model._last_episode_starts = stopped.model._last_episode_starts
    attach_shield_logic(resumed.model.policy, env.envs)
