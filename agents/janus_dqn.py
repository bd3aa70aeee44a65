"""JanusDQN: DQN with the JANUS prioritized (hippocampal) replay buffer.

Differences from SB3's ``DQN`` (Mnih et al. 2015):

* the replay buffer is :class:`replay.PrioritizedReplayBuffer` (or the ``Dict``
  variant for ``Dict`` observations) unless another prioritized class is given;
* the per-sample Huber TD loss is multiplied by the importance-sampling weights
  ``w_i = (N·P(i))^−β / max_j w_j`` and priorities are set to
  ``|δ_i| + λ_logic·v_i + λ_reward·|r_i| + ε`` after every gradient step
  (Schaul et al. 2016, Alg. 1);
* β is annealed by training progress, from ``beta0`` to ``beta_final`` over
  the ``total_timesteps`` of ``learn`` (``buffer.set_progress``);
* logical loss ``L = L_RL + λ_logic·L_logic`` (:mod:`replay.losses`): the expected rule violation of the
  Boltzmann policy ``softmax(Q(s, ·))`` under the SatAgg the shield gave every action of the replayed state
  (stored with the transition, ``info["ltn"]["action_sat"]``), logged as ``train/logic_loss``; the LTN
  violation of the executed proposal also enters **through the priority** (violating transitions are replayed
  more). Without a shield in the env there is no logic term.

Logged keys (besides DQN's): ``train/per_mean_priority`` (mean raw priority
over the buffer), ``train/per_beta``. Sleep phases are added with
``replay.SleepPhaseCallback``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import DQN

from janus_env.checks import check_number
from replay.losses import prioritized_dqn_loss
from replay.prioritized import PrioritizedDictReplayBuffer, PrioritizedReplayBuffer, PrioritizedReplayMixin

_NOT_PRIORITIZED = "JanusDQN needs a prioritized replay buffer class (PrioritizedReplayMixin), got {}"
_NO_NSTEP = "JanusDQN does not support n-step returns, got n_steps={!r}"


class JanusDQN(DQN):
    """DQN with prioritized replay, IS-weighted loss and logic-aware priorities.

    Args:
        policy: policy class or alias (``"MlpPolicy"``, ``"MultiInputPolicy"`` …).
        env: environment or registered id.
        lambda_logic: weight of the LTN violation, used both in the buffer
            priority (``replay_buffer_kwargs["lambda_logic"]`` defaults to it)
            and for the logical loss; default 2.0 (JANUS design).
        **kwargs: every other ``stable_baselines3.DQN`` keyword argument.
            ``replay_buffer_class`` defaults to the prioritized buffer matching
            the observation space; ``replay_buffer_kwargs["seed"]`` defaults
            to ``seed``.

    Raises:
        ValueError: ``lambda_logic`` < 0 or not finite, or ``n_steps`` > 1.
        TypeError: ``lambda_logic`` is not a number, or ``replay_buffer_class`` is not prioritized.

    Example:
        >>> model = JanusDQN("MlpPolicy", "CartPole-v1", seed=0).learn(10_000)  # doctest: +SKIP
    """

    replay_buffer: PrioritizedReplayBuffer | PrioritizedDictReplayBuffer  # type: ignore[assignment]

    def __init__(self, policy: Any, env: Any, *, lambda_logic: float = 2.0, **kwargs: Any) -> None:
        self.lambda_logic = check_number("lambda_logic", lambda_logic, low=0)
        super().__init__(policy, env, **kwargs)

    def _setup_model(self) -> None:
        if self.n_steps > 1:
            raise ValueError(_NO_NSTEP.format(self.n_steps))
        if self.replay_buffer_class is None:
            dict_obs = isinstance(self.observation_space, spaces.Dict)
            self.replay_buffer_class = PrioritizedDictReplayBuffer if dict_obs else PrioritizedReplayBuffer
        if not (
            isinstance(self.replay_buffer_class, type) and issubclass(self.replay_buffer_class, PrioritizedReplayMixin)
        ):
            raise TypeError(_NOT_PRIORITIZED.format(self.replay_buffer_class))
        self.replay_buffer_kwargs.setdefault("lambda_logic", self.lambda_logic)
        if self.seed is not None:
            self.replay_buffer_kwargs.setdefault("seed", self.seed)
        super()._setup_model()

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """``gradient_steps`` IS-weighted updates, each followed by a priority refresh."""
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        buffer = self.replay_buffer
        buffer.set_progress(min(max(1.0 - self._current_progress_remaining, 0.0), 1.0))

        losses: list[float] = []
        logic_losses: list[float] = []
        # the norm is clipped over the parameters this optimizer steps (SB3 walks every module of the policy for
        # them; the target network's and the No-Go head's have no gradient here, so the norm is the same)
        params = [p for group in self.policy.optimizer.param_groups for p in group["params"]]
        for _ in range(gradient_steps):
            replay_data = buffer.sample(batch_size, env=self._vec_normalize_env)
            loss, abs_td, logic = prioritized_dqn_loss(self, replay_data, self.lambda_logic)
            losses.append(loss.item())
            if logic is not None:
                logic_losses.append(logic.item())

            self.policy.optimizer.zero_grad()
            loss.backward()
            th.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
            self.policy.optimizer.step()
            buffer.update_priorities(replay_data.indices, abs_td.cpu().numpy())

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/loss", np.mean(losses))
        self.logger.record("train/per_mean_priority", buffer.mean_priority())
        self.logger.record("train/per_beta", buffer.beta)
        if logic_losses:
            self.logger.record("train/logic_loss", np.mean(logic_losses))
