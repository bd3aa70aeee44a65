"""``SleepPhaseCallback``: run a JANUS sleep cycle at "market close" during SB3 training.

The callback decides *when* to sleep (end of an episode, every N environment
steps); *what* a sleep does is configured in one place, a
:class:`replay.sleep_cycle.SleepConfig` (all five phases by default, SWR replay
only with ``SleepConfig(swr_only=True)``). An off-policy model sleeps on its
replay buffer; an on-policy one (PPO, ``janus-ppo``) on a
:class:`replay.archive.RolloutArchive` the callback fills every step (phase 1,
SWR replay, is skipped for it: see :mod:`replay.archive`). After every sleep,
and at the start of training when a sleep state exists (a resumed run), the
callback hands the policy its memory read path
(:func:`replay.sleep_cycle.memory_reader`, ``policy.set_memory``; None with
``memory_prior`` off) when the policy can read one. The sleep path points one way:
this module → :mod:`replay.sleep_cycle` → :mod:`replay.swr` → :mod:`replay.losses`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from janus_env.checks import bad_value, check_bool, check_int, check_mapping, is_number
from replay.archive import RolloutArchive
from replay.env_rewards import env_rewards
from replay.sleep_cycle import SleepConfig, SleepState, memory_reader, run_sleep_cycle
from replay.swr import check_swr_model

__all__ = ["SleepPhaseCallback"]

_BAD_CONFIG = "Expected `sleep_config` to be a replay.SleepConfig or None, got {}"
_NO_TRIGGER = "SleepPhaseCallback never triggers: set `on_episode_end=True` or `every_n_steps`"


class SleepPhaseCallback(BaseCallback):
    """Run a sleep cycle at "market close" and log its ``sleep/*`` metrics.

    Triggers when any env finishes an episode (``on_episode_end``) and/or every
    ``every_n_steps`` environment steps (counted in ``num_timesteps``). A cycle
    is skipped while ``num_timesteps < model.learning_starts`` or the buffer
    holds fewer than ``sleep_config.seq_len`` steps per env (``buffer``: the
    model's replay buffer, or for an on-policy model :attr:`archive`). Each cycle is
    ``run_sleep_cycle(model, buffer, sleep_state, sleep_config)``; every
    metric it returns is logged under its ``sleep/`` name and written at once
    (a sleep is an event at this step), and the UMAP scatter of the cycle goes
    to TensorBoard as ``sleep/umap``. ``sleep_state`` (a
    :class:`~replay.sleep_cycle.SleepState`) carries over between cycles and
    is what a checkpoint saves.

    What a cycle learns depends only on the seed (``sleep_config.seed``), the
    counts and the data: ``max_wall_s`` is a logged safety cap (see
    :mod:`replay.swr`).

    Args:
        sleep_config: every setting of a sleep (default ``SleepConfig()``).
        every_n_steps: also sleep every this many env steps (None: never).
        on_episode_end: sleep when an episode ends.
        verbose: SB3 verbosity.

    Raises:
        TypeError: ``sleep_config`` is not a ``SleepConfig``; ``every_n_steps`` not an int or
            ``on_episode_end`` not a bool; at ``learn()``
            start with ``sleep_config.swr_only``, a model that is not
            DQN-family or a buffer that is not prioritized (the full cycle
            skips phase 1 for those instead).
        ValueError: ``every_n_steps`` < 1; no trigger enabled.

    Example:
        >>> callback = SleepPhaseCallback(SleepConfig(n_sequences=8), every_n_steps=1000)  # doctest: +SKIP
        >>> model.learn(10_000, callback=callback)  # doctest: +SKIP
    """

    def __init__(
        self,
        sleep_config: SleepConfig | None = None,
        *,
        every_n_steps: int | None = None,
        on_episode_end: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if sleep_config is not None and not isinstance(sleep_config, SleepConfig):
            raise TypeError(_BAD_CONFIG.format(type(sleep_config).__name__))
        every_n_steps = check_int("every_n_steps", every_n_steps, low=1, optional=True)
        on_episode_end = check_bool("on_episode_end", on_episode_end)
        if every_n_steps is None and not on_episode_end:
            raise ValueError(_NO_TRIGGER)
        self.sleep_config = SleepConfig() if sleep_config is None else sleep_config
        self.every_n_steps = every_n_steps
        self.on_episode_end = on_episode_end
        self.sleep_state: SleepState | None = None
        self.n_sleeps = 0
        self.last_metrics: dict[str, float] = {}
        self._last_step_trigger = 0
        self.archive: RolloutArchive | None = None
        """The on-policy model's kept steps (None for a model with a replay buffer)."""
        self._archive_state: Mapping[str, Any] | None = None  # loaded before the model was known

    def state_dict(self) -> dict[str, Any]:
        """The schedule, for a checkpoint (``sleep_state`` is saved apart, by its own ``state_dict``).

        ``last_step_trigger`` is the ``num_timesteps`` of the last ``every_n_steps`` trigger: a resumed run
        sleeps next at ``last_step_trigger + every_n_steps``, as the uninterrupted run would, not at once.
        """
        archive = self.archive.state_dict() if self.archive is not None else self._archive_state
        return {"last_step_trigger": self._last_step_trigger, "n_sleeps": self.n_sleeps,
                "last_metrics": dict(self.last_metrics), "archive": archive}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output.

        The on-policy archive (``"archive"``) is checked against the model's spaces when training starts (or
        at once when the archive already exists).

        Raises:
            TypeError / ValueError: a counter that is not an int >= 0, or metrics that are not numbers by name; an
                archive of another layout.
        """
        last = check_int("last_step_trigger", state.get("last_step_trigger"), low=0)
        n_sleeps = check_int("n_sleeps", state.get("n_sleeps"), low=0)
        metrics = check_mapping("last_metrics", state.get("last_metrics"))
        bad = [k for k, v in metrics.items() if not is_number(v)]
        if bad:
            raise TypeError(bad_value(f"last_metrics[{bad[0]!r}]", "a number", metrics[bad[0]]))
        archive = state.get("archive")
        if archive is not None:
            archive = check_mapping("archive", archive)
            if self.archive is not None:
                self.archive.load_state_dict(archive)
        self.last_metrics = {str(k): float(v) for k, v in metrics.items()}
        self._last_step_trigger, self.n_sleeps = last, n_sleeps
        self._archive_state = archive if self.archive is None else None

    def _init_callback(self) -> None:
        """Fail at ``learn()`` start, not at the first market close, when an SWR-only sleep cannot run; build the
        on-policy archive; hand the policy the memory of a sleep state it already has (a resumed run)."""
        if self.sleep_config.swr_only:
            check_swr_model(self.model, getattr(self.model, "replay_buffer", None))
        if getattr(self.model, "replay_buffer", None) is None and self.archive is None:
            n_envs = int(self.model.n_envs)
            rows = -(-int(self.sleep_config.archive_size) // n_envs)
            archive = RolloutArchive(self.model.observation_space, self.model.action_space, rows, n_envs)
            if self._archive_state is not None:
                archive.load_state_dict(self._archive_state)
            self.archive, self._archive_state = archive, None
        if self.sleep_state is not None:
            self._publish_memory()

    def _publish_memory(self) -> None:
        """``policy.set_memory(memory_reader(sleep_state, sleep_config))`` when the policy reads memory."""
        setter = getattr(getattr(self.model, "policy", None), "set_memory", None)
        if callable(setter):
            setter(memory_reader(self.sleep_state, self.sleep_config))

    def _triggered(self) -> bool:
        fired = False
        if self.on_episode_end:
            dones = self.locals.get("dones")
            fired = dones is not None and bool(np.any(dones))
        if self.every_n_steps is not None and self.num_timesteps - self._last_step_trigger >= self.every_n_steps:
            self._last_step_trigger = self.num_timesteps
            fired = True
        return fired

    def _on_step(self) -> bool:
        if self.archive is not None:  # the step just taken: decided on model._last_obs (SB3 sets it after callbacks)
            self.archive.add(self.model._last_obs, self.locals["actions"], env_rewards(self.model, self.locals),
                             self.locals["dones"], self.locals.get("infos") or [{}] * self.archive.n_envs)
        if self._triggered():
            self.sleep()
        return True

    def sleep(self) -> dict[str, float] | None:
        """Run one sleep cycle now; return its metrics (None when skipped)."""
        model = self.model
        buffer = getattr(model, "replay_buffer", None)
        buffer = self.archive if buffer is None else buffer
        if (buffer is None or buffer.size() < self.sleep_config.seq_len
                or self.num_timesteps < getattr(model, "learning_starts", 0)):
            return None
        self.sleep_state, metrics = run_sleep_cycle(model, buffer, self.sleep_state, self.sleep_config)
        self._publish_memory()
        monitor = self.sleep_state.monitor
        if monitor.fitted:  # the UMAP scatter of this cycle as a TensorBoard image
            monitor.log_to_tensorboard(self.logger, self.num_timesteps)
        for key, value in metrics.items():
            self.logger.record(key, value)
        # a sleep phase is an event at this step: write it now rather than at the algorithm's next log
        # interval, which may never come before training ends (off-policy algorithms log every k episodes)
        self.logger.dump(self.num_timesteps)
        self.n_sleeps += 1
        self.last_metrics = metrics
        return metrics
