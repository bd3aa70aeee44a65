"""wrappers — the glass box: LTN logic and rules, the shield, circuit breakers, sizing, GAF and the audit trail.

Recommended stack (actions flow outside-in, infos inside-out, so each wrapper
sees what the inner ones reported):

```python
env = AuditLog(Amygdala(LTNShield(Hypothalamus(gym.make("Janus-LOB-v0", action_type="sized")))), "audit.jsonl")
```
"""

from __future__ import annotations

from wrappers.amygdala import Amygdala
from wrappers.audit import AuditLog, read_audit_log
from wrappers.gaf import GAFObservation, GAFObservationVector, gaf_images, gaf_video
from wrappers.hypothalamus import Hypothalamus
from wrappers.shield import LTNShield

__all__ = [
    "Amygdala",
    "AuditLog",
    "GAFObservation",
    "GAFObservationVector",
    "Hypothalamus",
    "LTNShield",
    "gaf_images",
    "gaf_video",
    "read_audit_log",
]
