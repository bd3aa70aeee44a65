"""``BasalGangliaCallback``: trains the No-Go head from rollouts, for any SB3 algorithm.

```python
import gymnasium as gym
import envs_registry
from stable_baselines3 import PPO
from agents.basal_ganglia import BasalGangliaActorCriticPolicy, BasalGangliaCallback

env = gym.make("Janus-LOB-v0", seed=0)
model = PPO(BasalGangliaActorCriticPolicy, env, seed=0)
model.learn(10_000, callback=BasalGangliaCallback())
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.basal_ganglia.gate import TAU_LOGIC
from agents.basal_ganglia.labels import adverse_labels
from agents.basal_ganglia.moments import RunningMoments
from agents.basal_ganglia.policies import check_basal_ganglia_policy
from janus_env.checks import (
    check_array_like,
    check_bool,
    check_fraction,
    check_int,
    check_mapping,
    check_number,
    check_positive,
    generator_from_state,
)
from replay.env_rewards import env_rewards

Observation = dict[str, np.ndarray] | np.ndarray


class BasalGangliaCallback(BaseCallback):
    """Trains the No-Go head from rollouts, feeds LTN infos to the gate and writes ``info["go_nogo"]``.

    Every env step (``_on_step``, after ``env.step``): the observation the
    action was chosen on (``model._last_obs``), the executed action, reward and
    info are labelled with :func:`~agents.basal_ganglia.labels.adverse_labels`
    and stored in a FIFO ring of ``buffer_size`` steps; every ``train_freq``
    calls, ``gradient_steps`` minibatches of ``batch_size`` (drawn by a
    generator seeded with ``seed``) update the No-Go head (``policy.train_nogo``).
    With ``reward_threshold=None``, ``c = reward_std_k · std(r)``, the sample
    standard deviation of the rewards of the earlier steps
    (:class:`~agents.basal_ganglia.moments.RunningMoments`), active from the second reward.

    Logged: ``janus/nogo_loss``, ``janus/adverse_rate`` (labels of the
    collected steps), ``janus/veto_rate`` (vetoed decisions).

    Args:
        buffer_size: FIFO capacity of labelled steps.
        batch_size: minibatch size of a No-Go update.
        train_freq: env-step calls between updates.
        gradient_steps: updates per training call.
        learning_starts: labelled steps needed before the first update.
        reward_threshold: fixed ``c`` ≥ 0, or None for ``k·std(r)``.
        reward_std_k: k of the adaptive threshold.
        violation_threshold: τ_violation (0.1).
        slippage_ratio: κ (2.0).
        slippage_predictor: optional ``(obs, action, info) -> bps`` (e.g.
            ``Cerebellum.predictor``) for ``ŝ`` when the info has none.
        observe_ltn: call ``policy.observe_infos`` each step (logic-loss source 2).
        write_info: copy ``policy.last_go_nogo_batch[i]`` to ``infos[i]["go_nogo"]``.
        seed: seed of the minibatch sampler.
        verbose: SB3 verbosity.

    Raises:
        ValueError: a size or threshold out of range.
        TypeError: a size that is not an int or a threshold that is not a number; (at training start) the
            model's policy is not a basal-ganglia policy.
    """

    def __init__(
        self,
        *,
        buffer_size: int = 10_000,
        batch_size: int = 64,
        train_freq: int = 1,
        gradient_steps: int = 1,
        learning_starts: int = 32,
        reward_threshold: float | None = None,
        reward_std_k: float = 1.0,
        violation_threshold: float = TAU_LOGIC,
        slippage_ratio: float = 2.0,
        slippage_predictor: Callable[[Any, Any, Mapping[str, Any]], float] | None = None,
        observe_ltn: bool = True,
        write_info: bool = True,
        seed: int | None = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.buffer_size = check_int("buffer_size", buffer_size, low=1)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.train_freq = check_int("train_freq", train_freq, low=1)
        self.gradient_steps = check_int("gradient_steps", gradient_steps, low=1)
        self.learning_starts = check_int("learning_starts", learning_starts, low=0)
        self.reward_threshold = check_number("reward_threshold", reward_threshold, low=0, optional=True)
        self.reward_std_k = check_positive("reward_std_k", reward_std_k)
        self.slippage_ratio = check_positive("slippage_ratio", slippage_ratio)
        self.violation_threshold = check_fraction("violation_threshold", violation_threshold, high_open=True)
        self.slippage_predictor = slippage_predictor
        self.observe_ltn = bool(observe_ltn)
        self.write_info = bool(write_info)
        self._rng = np.random.default_rng(seed)
        self._obs: Observation | None = None
        self._actions = np.zeros(self.buffer_size, dtype=np.int64)
        self._labels = np.zeros(self.buffer_size, dtype=np.float32)
        self._pos = 0
        self._full = False
        self._calls = 0
        self._rewards = RunningMoments()

    # ---- storage -------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Labelled steps held."""
        return self.buffer_size if self._full else self._pos

    def _store(self, obs: Observation, actions: np.ndarray, labels: np.ndarray) -> None:
        """Write a batch of rows into the ring, oldest rows first out."""
        if self._obs is None:
            if isinstance(obs, dict):
                self._obs = {
                    k: np.zeros((self.buffer_size, *np.asarray(v).shape[1:]), dtype=np.float32) for k, v in obs.items()
                }
            else:
                self._obs = np.zeros((self.buffer_size, *np.asarray(obs).shape[1:]), dtype=np.float32)
        n = actions.shape[0]
        keep = slice(max(n - self.buffer_size, 0), n)  # more rows than capacity: only the newest survive
        slots = (self._pos + np.arange(n)[keep]) % self.buffer_size
        if isinstance(self._obs, dict):
            for k, buf in self._obs.items():
                buf[slots] = np.asarray(obs[k])[keep]  # type: ignore[index]
        else:
            self._obs[slots] = np.asarray(obs)[keep]
        self._actions[slots] = actions[keep]
        self._labels[slots] = labels[keep]
        self._full = self._full or self._pos + n >= self.buffer_size
        self._pos = (self._pos + n) % self.buffer_size

    def state_dict(self) -> dict[str, Any]:
        """The labelled ring (observations, actions, labels), its position, the call counter, the reward
        moments and the sampler's generator state, as numpy arrays and plain values (a checkpoint stores them
        without pickle)."""
        obs = self._obs
        return {
            "obs": {k: v.copy() for k, v in obs.items()} if isinstance(obs, dict) else None if obs is None
            else obs.copy(),
            "actions": self._actions.copy(), "labels": self._labels.copy(), "pos": self._pos, "full": self._full,
            "calls": self._calls, "rng": self._rng.bit_generator.state,
            "rewards": {"count": self._rewards.count, "mean": np.asarray(self._rewards.mean, dtype=np.float64),
                        "var": np.asarray(self._rewards.var, dtype=np.float64)},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (same ``buffer_size``); everything is checked before any write.

        Raises:
            TypeError / ValueError: an array of another dtype or shape (observations: float32 rows of
                ``buffer_size``), a counter out of range, a bad generator state.
        """
        def rows(name: str, value: Any) -> np.ndarray:  # float32 rows of buffer_size (no array allocated)
            like = np.broadcast_to(np.float32(0), (self.buffer_size, *np.shape(value)[1:]))
            return check_array_like(name, value, like)

        obs = state.get("obs")
        if isinstance(obs, Mapping):
            obs = {str(k): rows(f"obs[{k!r}]", v) for k, v in obs.items()}
        elif obs is not None:
            obs = rows("obs", obs)
        actions = check_array_like("actions", state.get("actions"), self._actions)
        labels = check_array_like("labels", state.get("labels"), self._labels)
        pos = check_int("pos", state.get("pos"), low=0, high=self.buffer_size - 1)
        full = check_bool("full", state.get("full"))
        calls = check_int("calls", state.get("calls"), low=0)
        rewards = check_mapping("rewards", state.get("rewards"))
        count = check_int("rewards.count", rewards.get("count"), low=0)
        mean = check_array_like("rewards.mean", rewards.get("mean"), np.zeros((), dtype=np.float64))
        var = check_array_like("rewards.var", rewards.get("var"), np.zeros((), dtype=np.float64))
        rng = generator_from_state("rng", state.get("rng"))
        self._obs = {k: v.copy() for k, v in obs.items()} if isinstance(obs, dict) else None if obs is None \
            else obs.copy()
        np.copyto(self._actions, actions)
        np.copyto(self._labels, labels)
        self._pos, self._full, self._calls, self._rng = pos, full, calls, rng
        self._rewards.count, self._rewards.mean, self._rewards.var = count, mean.copy(), var.copy()

    def _sample(self) -> tuple[Observation, np.ndarray, np.ndarray]:
        idx = self._rng.integers(0, self.size, size=min(self.batch_size, self.size))
        if isinstance(self._obs, dict):
            obs: Observation = {k: v[idx] for k, v in self._obs.items()}
        else:
            obs = self._obs[idx]  # type: ignore[index]
        return obs, self._actions[idx], self._labels[idx]

    def _threshold(self, rewards: np.ndarray) -> float | None:
        """``c`` for this step's rewards: fixed, or ``k·std`` of the rewards before them (then merge them)."""
        if self.reward_threshold is not None:
            return self.reward_threshold
        threshold = None
        if self._rewards.count >= 2:
            threshold = self.reward_std_k * float(self._rewards.std(ddof=1))
        self._rewards.update(rewards)
        return threshold

    # ---- SB3 hooks -----------------------------------------------------------------
    def _on_training_start(self) -> None:
        check_basal_ganglia_policy(self.model.policy)

    def _on_training_end(self) -> None:
        self.model.policy.reset_logic_state()

    def _on_step(self) -> bool:
        policy = self.model.policy
        infos = self.locals.get("infos", [])
        dones = self.locals.get("dones")
        obs = self.model._last_obs
        actions = np.asarray(self.locals["actions"]).reshape(-1).astype(np.int64)
        rewards = env_rewards(self.model, self.locals)  # the env's units, not VecNormalize's
        predicted = None
        if self.slippage_predictor is not None:
            predicted = np.full(len(infos), np.nan)
            for i, info in enumerate(infos):
                if "predicted_slippage_bps" in info:
                    predicted[i] = float(info["predicted_slippage_bps"])
                elif float(info.get("exec_qty", 0.0)) != 0.0:
                    row = {k: np.asarray(v)[i] for k, v in obs.items()} if isinstance(obs, dict) else np.asarray(obs)[i]
                    predicted[i] = float(self.slippage_predictor(row, int(actions[i]), info))
        labels = adverse_labels(
            rewards,
            infos,
            reward_threshold=self._threshold(rewards),
            violation_threshold=self.violation_threshold,
            slippage_ratio=self.slippage_ratio,
            predicted_slippage=predicted,
        )
        self._store(obs, actions, labels)
        self.logger.record_mean("janus/adverse_rate", float(labels.mean()))
        batch = policy.last_go_nogo_batch
        if batch:
            self.logger.record_mean("janus/veto_rate", float(np.mean([row["vetoed"] for row in batch])))
        if self.write_info and len(batch) == len(infos):
            for info, row in zip(infos, batch):
                info["go_nogo"] = row
        if self.observe_ltn:
            policy.observe_infos(infos, dones)
        self._calls += 1
        if self._calls % self.train_freq == 0 and self.size >= max(self.learning_starts, 1):
            for _ in range(self.gradient_steps):
                loss = policy.train_nogo(*self._sample())
                self.logger.record_mean("janus/nogo_loss", loss)
        return True


__all__ = ["BasalGangliaCallback"]
