"""``JanusPPO``: MaskablePPO with the logical loss, ``L = L_PPO + λ_logic·L_logic`` (``train.py``'s ``janus-ppo``).

The LTN shield scores every discrete action in the state each action is decided in and records the scores
in the step's info (``info["ltn"]["action_sat"]``, :class:`wrappers.shield.LTNShield`). ``JanusPPO``
keeps them with the rollout (:class:`replay.rollout.LogicRolloutBuffer`, same row as the transition,
shuffled with it) and adds to sb3-contrib's clipped PPO loss the expected rule violation of its own
masked action distribution::

    L = L_clip + c_ent·L_ent + c_vf·L_vf + λ_logic · mean_i Σ_a π_θ(a|s_i) · (1 − SatAgg(s_i, a))

(JANUS ``L = L_RL + λ·L_logic``; :func:`replay.losses.expected_violation`, the same formula janus-dqn
applies to ``softmax(Q)``). ``SatAgg`` is a constant, so the gradient flows through ``π_θ``: the logits
of the actions the rules score lower are pushed down relative to the others, in every state of the
rollout, whatever the advantage. Actions the shield's mask removes have ``π_θ = 0`` and add nothing, so
with the shield's default threshold (τ = 0.9, any crisp violation masked) the term acts on the graded
part of the scores — permitted actions whose SatAgg is in [τ, 1) — and on every action when the mask is
off or τ is low. Without a shield (no ``action_sat`` in the infos) there is no logic term and
``JanusPPO`` trains exactly as ``MaskablePPO`` (tested bit for bit).

Logged: ``train/logic_loss`` (mean over the minibatches, when the term is on), besides MaskablePPO's keys.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer, MaskableRolloutBuffer
from sb3_contrib.common.maskable.utils import is_masking_supported
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import PyTorchObs
from stable_baselines3.common.utils import explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from agents.basal_ganglia.gate import actor_critic_latents
from janus_env.checks import check_bool, check_number
from replay.deferred_values import DeferredValuesMixin
from replay.losses import expected_violation
from replay.rollout import LogicDictRolloutBuffer, LogicRolloutBuffer, LogicRolloutMixin

DEFAULT_LAMBDA_LOGIC = 2.0
"""λ_logic of ``janus-ppo``: janus-dqn's (``JanusDQN``, JANUS design: λ_logic = 2.0), one value for both."""

__all__ = ["DEFAULT_LAMBDA_LOGIC", "JanusPPO", "evaluate_actions_with_probs", "uses_action_masks"]


def uses_action_masks(model: Any) -> bool:
    """Whether ``model`` decides over the shield's action masks: a ``MaskablePPO`` (``JanusPPO`` included), unless
    it is a ``JanusPPO`` trained with ``action_masking=False`` (it proposes from its whole distribution and the shield
    overrides, in training as in evaluation and in the service)."""
    return isinstance(model, MaskablePPO) and bool(getattr(model, "action_masking", True))


def evaluate_actions_with_probs(
    policy: Any, obs: PyTorchObs, actions: th.Tensor, action_masks: th.Tensor | None = None
) -> tuple[th.Tensor, th.Tensor, th.Tensor | None, th.Tensor]:
    """``policy.evaluate_actions(obs, actions, action_masks)`` and the masked ``π_θ(·|s)``, from one forward pass.

    The body of sb3-contrib 2.9.2's ``MaskableActorCriticPolicy.evaluate_actions``
    (``sb3_contrib/common/maskable/policies.py``), returning the distribution's probabilities as well
    (tested equal, bit for bit, to ``evaluate_actions``).

    Returns:
        ``(values, log_prob, entropy, probs)``; ``probs`` is ``(B, A)`` with grad, 0 on masked actions.
    """
    _, latent_pi, latent_vf = actor_critic_latents(policy, obs)
    distribution = policy._get_action_dist_from_latent(latent_pi)
    if action_masks is not None:
        distribution.apply_masking(action_masks)
    log_prob = distribution.log_prob(actions)
    values = policy.value_net(latent_vf)
    return values, log_prob, distribution.entropy(), distribution.distribution.probs


class JanusPPO(MaskablePPO):
    """sb3-contrib ``MaskablePPO`` whose loss adds ``λ_logic·L_logic`` on the shield's per-action SatAgg (module
    docstring).

    Args:
        policy: a maskable policy class or alias (``BasalGangliaMaskablePolicy`` in ``janus-ppo``).
        env: environment or registered id; with ``LTNShield`` inside for the logic term.
        lambda_logic: λ_logic ≥ 0, weight of the logical loss (2.0, as janus-dqn: ``DEFAULT_LAMBDA_LOGIC``);
            0 trains exactly as ``MaskablePPO``.
        action_masking: True (default): rollouts sample from the masked distribution (``learn(use_masking=True)``)
            and evaluation passes the shield's masks. False: the policy samples from its whole distribution and the
            shield in the env replaces a violating proposal by its fallback (HOLD), in training and evaluation
            alike (:func:`uses_action_masks`); the logical loss then acts on every action's probability, so the
            rules are learned as a penalty rather than enforced as a mask. Saved with the model.
        batched_values: True (default): with a basal-ganglia policy, a rollout's steps run the actor alone and the
            values ``V(s_t)`` come from one critic pass over the rollout at its end (:mod:`replay.deferred_values`;
            the same values up to the float rounding of another batch size: equal bit for bit with the extractor
            ``janus-ppo`` ships, not with the GAF video, whose rounding depends on the batch); ``janus-ppo``
            trains ≈ 1.08x faster. False: one critic pass per step, as ``MaskablePPO`` (``--hp
            batched_values=false`` reproduces a run of the video agent from before the option, bit for bit).
        **kwargs: every other ``MaskablePPO`` keyword argument. ``rollout_buffer_class`` defaults to
            :class:`~replay.rollout.LogicRolloutBuffer` (``LogicDictRolloutBuffer`` for ``Dict`` observations),
            also in place of sb3-contrib's plain maskable buffers (a model saved by ``MaskablePPO`` loads with them);
            any other class gets no SatAgg and no logic term.

    Raises:
        TypeError: ``lambda_logic`` is not a real number.
        ValueError: ``lambda_logic`` < 0 or not finite.

    ```python
    import gymnasium as gym
    import envs_registry
    from agents.basal_ganglia import BasalGangliaMaskablePolicy, JanusPPO
    from wrappers import LTNShield
    model = JanusPPO(BasalGangliaMaskablePolicy, LTNShield(gym.make("Janus-LOB-v0", seed=0)), seed=0)
    model.learn(10_000)
    ```
    """

    def __init__(self, policy: Any, env: Any, *, lambda_logic: float = DEFAULT_LAMBDA_LOGIC,
                 action_masking: bool = True, batched_values: bool = True, **kwargs: Any) -> None:
        self.lambda_logic = check_number("lambda_logic", lambda_logic, low=0)
        self.action_masking = check_bool("action_masking", action_masking)
        self.batched_values = check_bool("batched_values", batched_values)
        self._filling: LogicRolloutMixin | None = None
        super().__init__(policy, env, **kwargs)

    def _setup_model(self) -> None:
        if self.rollout_buffer_class in (None, MaskableRolloutBuffer, MaskableDictRolloutBuffer):
            dict_obs = isinstance(self.observation_space, spaces.Dict)
            self.rollout_buffer_class = LogicDictRolloutBuffer if dict_obs else LogicRolloutBuffer
        super()._setup_model()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_filling"]

    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 1,  # type: ignore[override]
              tb_log_name: str = "MaskablePPO", reset_num_timesteps: bool = True, use_masking: bool | None = None,
              progress_bar: bool = False) -> JanusPPO:
        """``MaskablePPO.learn``; ``use_masking`` defaults to the model's ``action_masking`` where the training env
        has masks to give (a shield in it: ``shield_training`` enforce or observe), False where it has none
        (``shield_training: none``: the shield acts at decision time only)."""
        if use_masking is None:
            use_masking = self.action_masking and self.env is not None and is_masking_supported(self.env)
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, use_masking,
                             progress_bar)

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
        use_masking: bool = True,
    ) -> bool:
        """``MaskablePPO.collect_rollouts``; each step's infos also reach the buffer (``observe_infos``) before it
        stores the step, and with a basal-ganglia policy the steps run the actor alone and the buffer takes the
        values from one critic pass at the rollout's end (:mod:`replay.deferred_values`)."""
        self._filling = rollout_buffer if isinstance(rollout_buffer, LogicRolloutMixin) else None
        defer = (self.batched_values and isinstance(rollout_buffer, DeferredValuesMixin)
                 and hasattr(self.policy, "defer_values"))
        if defer:
            rollout_buffer.defer_values(self._rollout_values)
            self.policy.defer_values = True
        try:
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps, use_masking)
        finally:
            self._filling = None
            if defer:
                rollout_buffer.defer_values(None)
                self.policy.defer_values = False

    def _rollout_values(self, observations: np.ndarray | dict[str, np.ndarray]) -> np.ndarray:
        """``V(s)`` of stored rollout observations, ``(N,)``: the critic the rollout's steps skipped."""
        with th.no_grad():
            return self.policy.predict_values(obs_as_tensor(observations, self.device)).cpu().numpy().reshape(-1)

    def _update_info_buffer(self, infos: list[dict[str, Any]], dones: np.ndarray | None = None) -> None:
        # SB3 reads each step's infos here, after the step and before ``rollout_buffer.add`` stores it
        super()._update_info_buffer(infos, dones)
        if self._filling is not None:
            self._filling.observe_infos(infos)

    def train(self) -> None:
        """Update the policy on the rollout: sb3-contrib 2.9.2's ``MaskablePPO.train``
        (``sb3_contrib/ppo_mask/ppo_mask.py``) line for line, plus the lines marked ``JANUS``: the masked
        ``π_θ`` from the same forward pass and ``λ_logic·L_logic`` in the loss, when the rollout has SatAgg."""
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update optimizer learning rate
        self._update_learning_rate(self.policy.optimizer)
        # Compute current clip range
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        # Optional: clip range for the value function
        if self.clip_range_vf is not None:
            clip_range_vf = self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]

        entropy_losses = []
        pg_losses, value_losses = [], []
        clip_fractions = []
        logic_losses = []  # JANUS

        continue_training = True

        # train for n_epochs epochs
        for epoch in range(self.n_epochs):
            approx_kl_divs = []
            # Do a complete pass on the rollout buffer
            for rollout_data in self.rollout_buffer.get(self.batch_size):
                actions = rollout_data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    # Convert discrete action from float to long
                    actions = rollout_data.actions.long().flatten()

                action_sat = getattr(rollout_data, "action_sat", None)  # JANUS
                if self.lambda_logic > 0.0 and action_sat is not None:  # JANUS: π_θ from the same forward pass
                    values, log_prob, entropy, probs = evaluate_actions_with_probs(
                        self.policy, rollout_data.observations, actions, action_masks=rollout_data.action_masks
                    )
                    logic = expected_violation(probs, action_sat)
                else:
                    values, log_prob, entropy = self.policy.evaluate_actions(
                        rollout_data.observations,
                        actions,
                        action_masks=rollout_data.action_masks,
                    )
                    logic = None

                values = values.flatten()
                # Normalize advantage
                advantages = rollout_data.advantages
                if self.normalize_advantage:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

                # ratio between old and new policy, should be one at the first iteration
                ratio = th.exp(log_prob - rollout_data.old_log_prob)

                # clipped surrogate loss
                policy_loss_1 = advantages * ratio
                policy_loss_2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
                policy_loss = -th.min(policy_loss_1, policy_loss_2).mean()

                # Logging
                pg_losses.append(policy_loss.item())
                clip_fraction = th.mean((th.abs(ratio - 1) > clip_range).float()).item()
                clip_fractions.append(clip_fraction)

                if self.clip_range_vf is None:
                    # No clipping
                    values_pred = values
                else:
                    # Clip the different between old and new value
                    # NOTE: this depends on the reward scaling
                    values_pred = rollout_data.old_values + th.clamp(
                        values - rollout_data.old_values, -clip_range_vf, clip_range_vf
                    )
                # Value loss using the TD(gae_lambda) target
                value_loss = F.mse_loss(rollout_data.returns, values_pred)
                value_losses.append(value_loss.item())

                # Entropy loss favor exploration
                if entropy is None:
                    # Approximate entropy when no analytical form
                    entropy_loss = -th.mean(-log_prob)
                else:
                    entropy_loss = -th.mean(entropy)

                entropy_losses.append(entropy_loss.item())

                loss = policy_loss + self.ent_coef * entropy_loss + self.vf_coef * value_loss
                if logic is not None:  # JANUS: L = L_PPO + λ_logic·L_logic
                    loss = loss + self.lambda_logic * logic
                    logic_losses.append(logic.item())

                # Calculate approximate form of reverse KL Divergence for early stopping
                # see issue #417: https://github.com/DLR-RM/stable-baselines3/issues/417
                # and discussion in PR #419: https://github.com/DLR-RM/stable-baselines3/pull/419
                # and Schulman blog: http://joschu.net/blog/kl-approx.html
                with th.no_grad():
                    log_ratio = log_prob - rollout_data.old_log_prob
                    approx_kl_div = th.mean((th.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
                    approx_kl_divs.append(approx_kl_div)

                if self.target_kl is not None and approx_kl_div > 1.5 * self.target_kl:
                    continue_training = False
                    if self.verbose >= 1:
                        print(f"Early stopping at step {epoch} due to reaching max kl: {approx_kl_div:.2f}")
                    break

                # Optimization step
                self.policy.optimizer.zero_grad()
                loss.backward()
                # Clip grad norm
                th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
                self.policy.optimizer.step()

            self._n_updates += 1
            if not continue_training:
                break
        explained_var = explained_variance(self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten())

        # Logs
        self.logger.record("train/entropy_loss", np.mean(entropy_losses))
        self.logger.record("train/policy_gradient_loss", np.mean(pg_losses))
        self.logger.record("train/value_loss", np.mean(value_losses))
        self.logger.record("train/approx_kl", np.mean(approx_kl_divs))
        self.logger.record("train/clip_fraction", np.mean(clip_fractions))
        self.logger.record("train/loss", loss.item())
        self.logger.record("train/explained_variance", explained_var)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip_range)
        if self.clip_range_vf is not None:
            self.logger.record("train/clip_range_vf", clip_range_vf)
        if logic_losses:  # JANUS
            self.logger.record("train/logic_loss", np.mean(logic_losses))
