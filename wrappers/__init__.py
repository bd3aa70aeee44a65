"""wrappers — the glass box: LTN logic and rules, the shield, circuit breakers, sizing, GAF and the audit trail.

Recommended stack (actions flow outside-in, infos inside-out, so each wrapper
sees what the inner ones reported):

```python
env = AuditLog(Amygdala(LTNShield(Hypothalamus(gym.make("Janus-LOB-v0", action_type="sized")))), "audit.jsonl")
# the same stack, each part switchable (True / False / keyword arguments), as the CLIs build it:
env = make_glass_box(gym.make("Janus-LOB-v0", action_type="sized"), sizing=True, audit="audit.jsonl")
```

Native vector env (``gym.make_vec``): ``VectorLTNShield(gym.make_vec("Janus-LOB-v0", num_envs=64))`` scores
every book in one numba call; the other wrappers go per sub-env through
``gym.make_vec(..., vectorization_mode="sync", wrappers=[LTNShield, Amygdala])``.

Multi-agent (``janus_market_v0``): the same shield and breakers per agent, the market going on when one halts:

```python
env = ParallelAmygdala(ParallelLTNShield(make_parallel_env(seed=0)))   # guards the janus agents
env = make_parallel_glass_box(make_parallel_env(seed=0))                  # the same
```
"""

from __future__ import annotations

from wrappers.amygdala import Amygdala
from wrappers.breakers import BreakerConfig, CircuitBreakers, breaker_fields
from wrappers.audit import AuditLog, read_audit_log
from wrappers.gaf import GAFObservation, VectorGAFObservation, gaf_images, gaf_video
from wrappers.glass_box import make_glass_box, make_parallel_glass_box
from wrappers.hypothalamus import Hypothalamus
from wrappers.parallel_amygdala import ParallelAmygdala
from wrappers.parallel_shield import ParallelLTNShield
from wrappers.shield import LTNShield
from wrappers.vector_shield import VectorLTNShield

__all__ = [
    "Amygdala",
    "AuditLog",
    "BreakerConfig",
    "CircuitBreakers",
    "GAFObservation",
    "VectorGAFObservation",
    "Hypothalamus",
    "LTNShield",
    "VectorLTNShield",
    "ParallelAmygdala",
    "ParallelLTNShield",
    "breaker_fields",
    "gaf_images",
    "gaf_video",
    "make_glass_box",
    "make_parallel_glass_box",
    "read_audit_log",
]
