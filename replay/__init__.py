"""replay — the sleeping mind: prioritized replay, SWR sleep phases, schemas, vector store, UMAP.

```python
from replay import PrioritizedReplayBuffer, SleepPhaseCallback, run_sleep_cycle
model = DQN("MultiInputPolicy", env, replay_buffer_class=PrioritizedReplayBuffer)
```
"""

from __future__ import annotations

from replay.hippocampus import EpisodicBatch, EpisodicBuffer, PatternSeparationEncoder
from replay.prioritized import PrioritizedDictReplayBuffer, PrioritizedReplayBuffer, PrioritizedReplayMixin
from replay.schemas import ConsolidationReport, SchemaMemory
from replay.sleep_cycle import SleepConfig, SleepState, run_sleep_cycle
from replay.sumtree import SumTree
from replay.swr import SleepPhaseCallback, swr_replay
from replay.types import PrioritizedDictReplayBufferSamples, PrioritizedReplayBufferSamples, SWRReport
from replay.umap_monitor import ParametricUMAPNet, UMAPMonitor
from replay.vector_store import SchemaVectorStore, gpu_available

__all__ = [
    "ConsolidationReport",
    "EpisodicBatch",
    "EpisodicBuffer",
    "ParametricUMAPNet",
    "PatternSeparationEncoder",
    "PrioritizedDictReplayBuffer",
    "PrioritizedDictReplayBufferSamples",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "PrioritizedReplayMixin",
    "SWRReport",
    "SchemaMemory",
    "SchemaVectorStore",
    "SleepConfig",
    "SleepPhaseCallback",
    "SleepState",
    "SumTree",
    "UMAPMonitor",
    "gpu_available",
    "run_sleep_cycle",
    "swr_replay",
]
