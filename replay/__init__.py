"""replay — the sleeping mind: prioritized replay, SWR sleep phases, schemas, vector store, UMAP.

```python
from replay import PrioritizedReplayBuffer, SleepConfig, SleepPhaseCallback, run_sleep_cycle
model = DQN("MultiInputPolicy", env, replay_buffer_class=PrioritizedReplayBuffer)
model.learn(20_000, callback=SleepPhaseCallback(SleepConfig(n_sequences=16), every_n_steps=2_500))
```

Sleep path (one way): ``callbacks`` (when to sleep) → ``sleep_cycle`` (``SleepConfig``: what a
sleep does, the five phases) → ``swr`` (phase 1) → ``losses`` (the prioritized DQN loss and TD
errors, also used by ``agents.JanusDQN``).
"""

from __future__ import annotations

from replay.archive import RolloutArchive
from replay.callbacks import SleepPhaseCallback
from replay.hippocampus import EpisodicBatch, EpisodicBuffer, PatternSeparationEncoder
from replay.losses import prioritized_dqn_loss
from replay.memory import MemoryRecall, MemoryReader
from replay.prioritized import PrioritizedDictReplayBuffer, PrioritizedReplayBuffer, PrioritizedReplayMixin
from replay.rollout import LogicDictRolloutBuffer, LogicRolloutBuffer
from replay.schemas import ConsolidationReport, SchemaMemory
from replay.sleep_cycle import SleepConfig, SleepState, memory_reader, run_sleep_cycle
from replay.sumtree import SumTree
from replay.swr import swr_replay
from replay.types import PrioritizedDictReplayBufferSamples, PrioritizedReplayBufferSamples, SWRReport
from replay.umap_monitor import ParametricUMAPNet, UMAPMonitor
from replay.vector_store import SchemaVectorStore, gpu_available

__all__ = [
    "ConsolidationReport",
    "EpisodicBatch",
    "EpisodicBuffer",
    "LogicDictRolloutBuffer",
    "LogicRolloutBuffer",
    "MemoryReader",
    "MemoryRecall",
    "ParametricUMAPNet",
    "PatternSeparationEncoder",
    "PrioritizedDictReplayBuffer",
    "PrioritizedDictReplayBufferSamples",
    "PrioritizedReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "PrioritizedReplayMixin",
    "RolloutArchive",
    "SWRReport",
    "SchemaMemory",
    "SchemaVectorStore",
    "SleepConfig",
    "SleepPhaseCallback",
    "SleepState",
    "SumTree",
    "UMAPMonitor",
    "gpu_available",
    "memory_reader",
    "prioritized_dqn_loss",
    "run_sleep_cycle",
    "swr_replay",
]
