"""The logic gate's input at decision time: the shield's knowledge base on the proposal, in the current state.

``ℓ_logic = 1 − SatAgg(proposal | state_t)`` (LTN, Badreddine et al. 2022) from the ``LTNShield`` of the env
each row of the batch is deciding in, evaluated before the order is sent — the exact source of
:meth:`~agents.basal_ganglia.policies.BasalGangliaPolicyMixin.set_logic_hook` — instead of the previous step's
``info["ltn"]`` (one step late). Row ``b`` of the batch is the current observation of ``shields[b]``'s env: what
SB3's rollouts and ``evaluate.py`` pass to the policy. A batch of any other size (a policy asked about replayed or
hand-made observations) has no current state to judge: its rows get ``ℓ_logic = 0``, the gate then reading the
No-Go head alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces

from wrappers import LTNShield


def find_shield(env: Any) -> LTNShield | None:
    """The ``LTNShield`` in a wrapper stack (``env`` itself or any ``.env`` below it), None without one."""
    node = env
    while node is not None:
        if isinstance(node, LTNShield):
            return node
        node = getattr(node, "env", None)
    return None


def shield_logic_hook(shields: Sequence[LTNShield]) -> Callable[[Any, th.Tensor], np.ndarray]:
    """``hook(obs, proposed) -> (B,)`` logic losses ``1 − SatAgg`` of each row's proposal under its shield.

    Raises:
        TypeError: an entry that is not an ``LTNShield`` over a Discrete action space.
    """
    shields = list(shields)
    for shield in shields:
        if not isinstance(shield, LTNShield) or not isinstance(shield.action_space, spaces.Discrete):
            raise TypeError(f"Expected LTNShields over Discrete actions, got {shield!r}")

    def hook(obs: Any, proposed: th.Tensor) -> np.ndarray:
        actions = proposed.reshape(-1).tolist()
        if len(actions) != len(shields):
            return np.zeros(len(actions), dtype=np.float32)
        # the step's own scores, computed once per step by the shield
        losses = np.array([1.0 - float(shield.action_sat()[a]) for shield, a in zip(shields, actions)],
                          dtype=np.float32)
        # SatAgg lies in [0, 1]; 1 − SatAgg may round a hair below 0, never further (the gate checks the range)
        losses[np.abs(losses) < 1e-6] = 0.0
        return losses

    return hook


def attach_shield_logic(policy: Any, envs: Sequence[gym.Env]) -> bool:
    """Give a basal-ganglia ``policy`` the shields of ``envs`` as its logic source; False (nothing set) when an
    env has no shield or the actions are not Discrete."""
    shields = [find_shield(env) for env in envs]
    if not shields or any(s is None or not isinstance(s.action_space, spaces.Discrete) for s in shields):
        return False
    policy.set_logic_hook(shield_logic_hook(shields))
    return True
