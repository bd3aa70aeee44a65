"""Registers every ``Janus-*`` environment id with Gymnasium on import.

```python
import gymnasium as gym

from envs_registry.pettingzoo_envs import make_aec_env, make_parallel_env, make_shared_policy_vec_env
import envs_registry
env = gym.make("Janus-LOB-v0", scenario="regime", seed=0)
envs = gym.make_vec("Janus-LOB-v0", num_envs=64)   # one numba call steps all books
market = envs_registry.make_parallel_env(roles={"market_maker": 1, "informed": 1, "janus": 2})
```
"""

from __future__ import annotations

import gymnasium as gym

from envs_registry.pettingzoo_envs import make_aec_env, make_parallel_env, make_shared_policy_vec_env

_LOB = "janus_env.lob_env:JanusLOBEnv"
_LOB_VEC = "janus_env.vector_env:JanusLOBVectorEnv"

SCENARIO_IDS: dict[str, str] = {
    "Janus-LOB-OU-v0": "ou",
    "Janus-LOB-GBM-v0": "gbm",
    "Janus-LOB-Regime-v0": "regime",
    "Janus-LOB-FlashCrash-v0": "flash_crash",
    "Janus-LOB-HighVol-v0": "high_vol",
    "Janus-LOB-Squeeze-v0": "squeeze",
}
"""Scenario variants of ``Janus-LOB-v0`` (same spaces, scenario fixed by default)."""

ENV_IDS: tuple[str, ...] = ("Janus-LOB-v0", "Janus-Execution-v0", *SCENARIO_IDS)


def _register(env_id: str, entry_point: str, **kwargs: object) -> None:
    if env_id in gym.registry:
        return
    gym.register(id=env_id, entry_point=entry_point, **kwargs)


_register("Janus-LOB-v0", _LOB, vector_entry_point=_LOB_VEC)
_register("Janus-Execution-v0", "janus_env.execution_env:JanusExecutionEnv")
for _env_id, _scenario in SCENARIO_IDS.items():
    _register(_env_id, _LOB, vector_entry_point=_LOB_VEC, kwargs={"scenario": _scenario})

__all__ = ["ENV_IDS", "SCENARIO_IDS", "make_aec_env", "make_parallel_env", "make_shared_policy_vec_env"]
