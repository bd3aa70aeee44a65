"""``SymlogExtractor``: every observation key flattened, concatenated and squashed by ``symlog``.

SB3's ``CombinedExtractor`` for vector keys (flatten + concatenate, Raffin et al. 2021), with one change: every
value goes through ``symlog(x) = sign(x)·log(1 + |x|)`` (Hafner et al. 2023, DreamerV3), the squashing
:class:`~agents.extractor.JanusExtractor` applies to its token inputs. ``Janus-LOB-v0`` mixes prices, basis
points, log-sizes and fractions with heavy tails; ``symlog`` keeps the sign and the order and bounds the scale,
so the MLP above sees inputs of one magnitude without a running normaliser. No parameters: the features are
the squashed observation, ``features_dim`` = the number of values.

```python
model = DQN("MultiInputPolicy", env, policy_kwargs={"features_extractor_class": SymlogExtractor})
```
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from agents.extractor import symlog

_NOT_BOX = "SymlogExtractor reads Box observations (or a Dict of them); {} is {!r}"


class SymlogExtractor(BaseFeaturesExtractor):
    """``symlog(concat_k flatten(obs[k]))``, shape ``(B, Σ_k |obs[k]|)``.

    Args:
        observation_space: a ``Box`` or a ``Dict`` of ``Box`` keys (read in the space's key order).

    Raises:
        TypeError: a space (or a ``Dict`` key) that is not a ``Box``.
    """

    def __init__(self, observation_space: gym.Space) -> None:
        parts = observation_space.spaces if isinstance(observation_space, spaces.Dict) else {None: observation_space}
        for key, space in parts.items():
            if not isinstance(space, spaces.Box):
                raise TypeError(_NOT_BOX.format("the observation space" if key is None else f"key {key!r}", space))
        super().__init__(observation_space, int(sum(int(np.prod(space.shape)) for space in parts.values())))
        self.keys = tuple(parts) if isinstance(observation_space, spaces.Dict) else None

    def forward(self, observations: th.Tensor | dict[str, th.Tensor]) -> th.Tensor:
        """Features ``(B, features_dim)`` of a batch of observations."""
        if self.keys is None:
            return symlog(observations.float().flatten(1))  # type: ignore[union-attr]
        obs: dict[str, th.Tensor] = observations  # type: ignore[assignment]
        batch = obs[self.keys[0]].shape[0]
        return symlog(th.cat([obs[k].float().reshape(batch, -1) for k in self.keys], dim=1))
