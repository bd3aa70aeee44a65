"""``RolloutArchive``: the on-policy learner's experience kept for its sleep (``janus-ppo``).

An on-policy algorithm throws each rollout away after its update, so there is no replay buffer for the sleep
cycle to consolidate. :class:`replay.callbacks.SleepPhaseCallback` keeps one here instead: every env step it
writes what an SB3 replay buffer would hold — the observation the action was decided on, the action, the
reward as the env returned it (before SB3 bootstraps truncated episodes with the value function), the
episode end and the LTN violation of the step — into a FIFO ring with the replay buffer's layout
(``observations[pos, env]``, ``rewards``, ``actions``, ``dones``, ``violations``, ``pos``, ``full``,
``buffer_size``, ``n_envs``, ``action_space``), which is all :func:`replay.sleep_cycle.run_sleep_cycle` reads.

The sleep of an on-policy learner runs phases 2–5 (schemas, UMAP, vector store, metrics); phase 1 (SWR
replay) is skipped for it (:data:`replay.sleep_cycle.SKIP_NOT_DQN`): replaying old transitions through PPO's
clipped objective would be off-policy — its probability ratio is only defined against the policy that
collected the rollout, and the stored advantages belong to that policy's value function (Schulman et al.
2017, "Proximal Policy Optimization Algorithms").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from janus_env.checks import bad_value, check_bool, check_int
from replay.prioritized import read_violations

__all__ = ["RolloutArchive"]

_BAD_SPACE = "RolloutArchive needs Box or Dict-of-Box observations, got {!r}"
_BAD_ROWS = "Expected {} rows (one per env), got {}"
_BAD_STATE = "Rollout archive state: expected {}, got {!r}"


def _obs_shapes(space: spaces.Space) -> dict[str, tuple[int, ...]] | tuple[int, ...]:
    if isinstance(space, spaces.Dict) and all(isinstance(s, spaces.Box) for s in space.spaces.values()):
        return {key: tuple(s.shape) for key, s in space.spaces.items()}
    if isinstance(space, spaces.Box):
        return tuple(space.shape)
    raise TypeError(_BAD_SPACE.format(space))


class RolloutArchive:
    """FIFO ring of env steps in SB3 replay-buffer layout (module docstring).

    Args:
        observation_space: ``Box`` or ``Dict`` of ``Box`` (observations are stored as float32).
        action_space: the env's action space (``Discrete``: actions as one int column).
        buffer_size: rows per env (each row is one step of every env).
        n_envs: number of envs.

    Raises:
        TypeError / ValueError: another observation space; a size that is not an int >= 1.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, buffer_size: int,
                 n_envs: int) -> None:
        self.buffer_size = check_int("buffer_size", buffer_size, low=1)
        self.n_envs = check_int("n_envs", n_envs, low=1)
        self.observation_space, self.action_space = observation_space, action_space
        shapes = _obs_shapes(observation_space)
        rows = (self.buffer_size, self.n_envs)
        self.observations: dict[str, np.ndarray] | np.ndarray = (
            {key: np.zeros((*rows, *shape), dtype=np.float32) for key, shape in shapes.items()}
            if isinstance(shapes, dict) else np.zeros((*rows, *shapes), dtype=np.float32))
        action_dim = 1 if isinstance(action_space, spaces.Discrete) else int(np.prod(action_space.shape))
        self.actions = np.zeros((*rows, action_dim), dtype=np.float32)
        self.rewards = np.zeros(rows, dtype=np.float32)
        self.dones = np.zeros(rows, dtype=np.float32)
        self.violations = np.zeros(rows, dtype=np.float32)
        self.pos = 0
        self.full = False

    def size(self) -> int:
        """Rows held (per env)."""
        return self.buffer_size if self.full else self.pos

    def add(self, obs: Any, actions: Any, rewards: Any, dones: Any, infos: Sequence[Mapping[str, Any]]) -> None:
        """Write one step of every env at ``pos``.

        Args:
            obs: the observations the actions were decided on (``(n_envs, ...)`` or a dict of them).
            actions: ``(n_envs, ...)`` actions.
            rewards: ``(n_envs,)`` rewards as the env returned them.
            dones: ``(n_envs,)`` episode ends.
            infos: one info per env (``info["ltn"]["violation"]`` read as in the prioritized buffers).

        Raises:
            ValueError: another number of envs, or a violation outside [0, 1].
        """
        if len(infos) != self.n_envs:
            raise ValueError(_BAD_ROWS.format(self.n_envs, len(infos)))
        if isinstance(self.observations, dict):
            for key, buf in self.observations.items():
                buf[self.pos] = np.asarray(obs[key]).reshape(buf.shape[1:])
        else:
            self.observations[self.pos] = np.asarray(obs).reshape(self.observations.shape[1:])
        self.actions[self.pos] = np.asarray(actions).reshape(self.actions.shape[1:])
        self.rewards[self.pos] = np.asarray(rewards).reshape(-1)
        self.dones[self.pos] = np.asarray(dones).reshape(-1)
        self.violations[self.pos] = read_violations(list(infos))
        self.pos = (self.pos + 1) % self.buffer_size
        self.full = self.full or self.pos == 0

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Every array (copies), ``pos`` and ``full`` (numpy arrays and plain values: no pickle needed)."""
        obs = self.observations
        return {"observations": {k: v.copy() for k, v in obs.items()} if isinstance(obs, dict) else obs.copy(),
                "actions": self.actions.copy(), "rewards": self.rewards.copy(), "dones": self.dones.copy(),
                "violations": self.violations.copy(), "pos": self.pos, "full": self.full}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; every array must have this archive's dtype and shape, checked before
        anything is written.

        Raises:
            ValueError / TypeError: another layout, dtype or shape; ``pos`` or ``full`` out of range.
        """
        pairs: list[tuple[np.ndarray, Any, str]] = []
        saved_obs = state.get("observations")
        if isinstance(self.observations, dict):
            if not isinstance(saved_obs, Mapping) or set(saved_obs) != set(self.observations):
                raise ValueError(_BAD_STATE.format(f"observations with keys {sorted(self.observations)}",
                                                   type(saved_obs).__name__))
            pairs += [(buf, saved_obs[k], f"observations[{k!r}]") for k, buf in self.observations.items()]
        else:
            pairs.append((self.observations, saved_obs, "observations"))
        pairs += [(getattr(self, name), state.get(name), name)
                  for name in ("actions", "rewards", "dones", "violations")]
        for own, saved, name in pairs:
            arr = np.asarray(saved) if isinstance(saved, np.ndarray) else None
            if arr is None or arr.dtype != own.dtype or arr.shape != own.shape:
                raise ValueError(_BAD_STATE.format(f"{name} as {own.dtype} {own.shape}",
                                                   None if arr is None else f"{arr.dtype} {arr.shape}"))
        violations = np.asarray(state["violations"])
        if not np.all((violations >= 0.0) & (violations <= 1.0)):
            raise ValueError(bad_value("violations", "values in [0, 1]", "values outside"))
        pos = check_int("pos", state.get("pos"), low=0, high=self.buffer_size - 1)
        full = check_bool("full", state.get("full"))
        for own, saved, _ in pairs:
            np.copyto(own, saved)
        self.pos, self.full = pos, full
