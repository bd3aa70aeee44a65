"""Off-policy algorithms whose every env action passes the gate: greedy, ε-greedy and warm-up.

SB3's ``DQN.predict`` and ``_sample_action`` draw exploratory actions from the
action space (and the ε coin from the global ``np.random``) without calling the
policy, so a plain ``DQN`` with ``BasalGangliaDQNPolicy`` gates greedy actions
only. :class:`GatedExplorationMixin` routes them through the gate instead, drawn
from the policy's own generator (``policy.explore``, seeded from the model seed):
two models with one seed explore identically, and the global ``np.random`` is
left alone.

* :class:`BasalGangliaDQN` — ``stable_baselines3.DQN`` + ``BasalGangliaDQNPolicy``;
* :class:`BasalGangliaQRDQN` — ``sb3_contrib.QRDQN`` + ``BasalGangliaQRDQNPolicy``;
* :class:`GatedJanusDQN` — :class:`~agents.janus_dqn.JanusDQN` (prioritized
  replay, IS weights, sleep) + ``BasalGangliaDQNPolicy``: ``train.py``'s ``janus-dqn``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from sb3_contrib import QRDQN
from stable_baselines3 import DQN

from agents.basal_ganglia.policies import check_basal_ganglia_policy
from agents.janus_dqn import JanusDQN


class GatedExplorationMixin:
    """Routes the random actions of an off-policy algorithm (warm-up, ε-greedy) through the gate.

    Exploratory actions and the ε coin come from ``policy.np_random``
    (``policy.explore``), which is seeded with the model seed at setup and by
    ``set_random_seed``. Put the mixin first:
    ``class GatedJanusDQN(GatedExplorationMixin, JanusDQN)``.

    Raises:
        TypeError: (at setup) the policy is not a basal-ganglia policy.
    """

    policy: Any
    action_space: spaces.Space
    exploration_rate: float
    num_timesteps: int
    seed: int | None
    use_sde: bool
    use_sde_at_warmup: bool
    _last_obs: Any

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        check_basal_ganglia_policy(self.policy)
        self.policy.seed_exploration(self.seed)

    def set_random_seed(self, seed: int | None = None) -> None:
        """SB3's seeding (python, numpy, torch, action space, env), plus the policy's exploration generator."""
        super().set_random_seed(seed)  # type: ignore[misc]
        if seed is not None and getattr(self, "policy", None) is not None:  # _setup_model seeds the one it builds
            self.policy.seed_exploration(seed)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """ε-greedy like ``DQN.predict``, with the exploratory action drawn by the policy and gated as well."""
        if not deterministic and self.policy.np_random.random() < self.exploration_rate:
            return self.policy.explore(observation), state
        return self.policy.predict(observation, state, episode_start, deterministic)

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts and not (self.use_sde and self.use_sde_at_warmup):
            action = self.policy.explore(self._last_obs)
            return action, action
        return super()._sample_action(learning_starts, action_noise, n_envs)  # type: ignore[misc]


class BasalGangliaDQN(GatedExplorationMixin, DQN):
    """SB3 ``DQN`` whose every env action (greedy, ε-greedy, warm-up) passes the basal-ganglia gate.

    Same arguments as ``stable_baselines3.DQN``; use with ``BasalGangliaDQNPolicy``.
    """


class BasalGangliaQRDQN(GatedExplorationMixin, QRDQN):
    """sb3-contrib ``QRDQN`` with gated exploration; use with ``BasalGangliaQRDQNPolicy``."""


class GatedJanusDQN(GatedExplorationMixin, JanusDQN):
    """``JanusDQN`` (prioritized replay, IS weights, sleep) whose exploratory actions pass the Go/No-Go gate too.

    This is the ``janus-dqn`` algorithm of ``train.py``; its policy must be a
    basal-ganglia DQN policy (``BasalGangliaDQNPolicy``).
    """


__all__ = ["BasalGangliaDQN", "BasalGangliaQRDQN", "GatedExplorationMixin", "GatedJanusDQN"]
