"""agents — the conscious trader: DiffGAF → ViViT → gated fusion → basal-ganglia Go/No-Go, JanusDQN, baselines.

```python
from agents import JanusExtractor, BasalGangliaActorCriticPolicy
model = PPO(BasalGangliaActorCriticPolicy, env, policy_kwargs={"features_extractor_class": JanusExtractor})
```
"""

from __future__ import annotations

from agents.basal_ganglia import (
    BasalGangliaActorCriticPolicy,
    BasalGangliaCallback,
    BasalGangliaDQN,
    BasalGangliaDQNPolicy,
    BasalGangliaMaskablePolicy,
    BasalGangliaQRDQN,
    BasalGangliaQRDQNPolicy,
    GatedExplorationMixin,
    GatedJanusDQN,
    JanusPPO,
)
from agents.cerebellum import Cerebellum, CerebellumCallback
from agents.export import export_onnx
from agents.extractor import JanusExtractor
from agents.fusion import GatedCrossAttention
from agents.gaf import DiffGAF
from agents.janus_dqn import JanusDQN
from agents.vivit import ViViT

__all__ = [
    "BasalGangliaActorCriticPolicy",
    "BasalGangliaCallback",
    "BasalGangliaDQN",
    "BasalGangliaDQNPolicy",
    "BasalGangliaMaskablePolicy",
    "BasalGangliaQRDQN",
    "BasalGangliaQRDQNPolicy",
    "Cerebellum",
    "CerebellumCallback",
    "DiffGAF",
    "GatedCrossAttention",
    "GatedExplorationMixin",
    "GatedJanusDQN",
    "JanusDQN",
    "JanusExtractor",
    "JanusPPO",
    "ViViT",
    "export_onnx",
]
