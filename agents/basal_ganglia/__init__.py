"""Basal ganglia: Go/No-Go action selection for SB3 DQN-family and actor-critic policies.

Two pathways read the same extracted features ``e`` (JANUS design, "agents —
the conscious trader"; the direct/indirect split follows Frank 2005, "Dynamic
dopamine modulation in the basal ganglia", J. Cogn. Neurosci. 17(1)):

* **Go** (direct pathway): the algorithm's own head — Q-values for DQN, mean
  quantiles for QR-DQN, action logits for PPO / MaskablePPO. It *proposes* an
  action: ``argmax Q`` (greedy) or a sample from ``softmax(logits)``.
* **No-Go** (indirect pathway): one veto probability per action,
  ``NoGo(s)_a = sigmoid(W_a·z + b_a)``, ``z = norm([e; VPIN; log1p σ])``, with
  VPIN and σ (bps) read from ``obs["market"]`` (indices 0 and 1 in
  ``Janus-LOB-v0``). σ enters as ``log1p(σ_bps)`` and ``norm`` is a running
  standardisation of the inputs *(ours)*, so a volatile tape does not saturate
  the sigmoid and the bias can carry "always adverse".

**Gate** (applied in rollouts *and* in ``predict``)::

    final = proposed   if NoGo(s)_proposed < τ_veto  and  ℓ_logic < τ_logic
          = HOLD       otherwise                         (τ_veto = 0.7, τ_logic = 0.1)

with ``ℓ_logic = 1 − SatAgg`` of the LTN knowledge base. HOLD (``hold_action``,
0) is the fallback and is never vetoed itself.

| module | holds |
| --- | --- |
| ``gate`` | ``go_scores`` (the one Go computation, also the ONNX graph's), ``NoGoHead``, ``basal_ganglia_gate``, ``gate_arrays`` |
| ``policies`` | ``BasalGangliaPolicyMixin`` (one constructor, logic loss, audit, seeded exploration), four policies |
| ``algorithms`` | ``BasalGangliaDQN``, ``BasalGangliaQRDQN``, ``GatedJanusDQN``: exploration through the gate |
| ``ppo`` | ``JanusPPO``: MaskablePPO + the logical loss on the shield's per-action SatAgg (``janus-ppo``) |
| ``labels`` | ``adverse_labels``: the No-Go training signal |
| ``callback`` | ``BasalGangliaCallback``: labels rollouts and trains the No-Go head |
| ``moments`` | running count, mean and variance (Chan et al. 1979) |

```python
import gymnasium as gym
import envs_registry
from stable_baselines3 import PPO
from agents.basal_ganglia import BasalGangliaActorCriticPolicy, BasalGangliaCallback

env = gym.make("Janus-LOB-v0", seed=0)
model = PPO(BasalGangliaActorCriticPolicy, env, seed=0)
model.learn(10_000, callback=BasalGangliaCallback())
```

Models saved before this package was split (``agents/basal_ganglia.py``) name
their policy class ``agents.basal_ganglia.<Class>`` and still load: every class
is re-exported here.
"""

from __future__ import annotations

from agents.basal_ganglia.algorithms import BasalGangliaDQN, BasalGangliaQRDQN, GatedExplorationMixin, GatedJanusDQN
from agents.basal_ganglia.callback import BasalGangliaCallback
from agents.basal_ganglia.gate import (
    HOLD,
    NOGO_INIT_BIAS,
    NOGO_WEIGHT_DECAY,
    TAU_LOGIC,
    TAU_VETO,
    NoGoHead,
    basal_ganglia_gate,
    gate_arrays,
    go_extractor,
    go_head,
    go_scores,
)
from agents.basal_ganglia.labels import adverse_labels
from agents.basal_ganglia.ppo import JanusPPO, uses_action_masks
from agents.basal_ganglia.shield_logic import attach_shield_logic, find_shield, shield_logic_hook
from agents.basal_ganglia.policies import (
    BASAL_GANGLIA_POLICIES,
    BasalGangliaActorCriticPolicy,
    BasalGangliaDQNPolicy,
    BasalGangliaMaskablePolicy,
    BasalGangliaPolicyMixin,
    BasalGangliaQRDQNPolicy,
    check_basal_ganglia_policy,
    is_basal_ganglia_policy,
    memory_record,
)

__all__ = [
    "BASAL_GANGLIA_POLICIES",
    "HOLD",
    "NOGO_INIT_BIAS",
    "NOGO_WEIGHT_DECAY",
    "TAU_LOGIC",
    "TAU_VETO",
    "BasalGangliaActorCriticPolicy",
    "BasalGangliaCallback",
    "BasalGangliaDQN",
    "BasalGangliaDQNPolicy",
    "BasalGangliaMaskablePolicy",
    "BasalGangliaPolicyMixin",
    "BasalGangliaQRDQN",
    "BasalGangliaQRDQNPolicy",
    "GatedExplorationMixin",
    "GatedJanusDQN",
    "JanusPPO",
    "NoGoHead",
    "adverse_labels",
    "attach_shield_logic",
    "find_shield",
    "basal_ganglia_gate",
    "gate_arrays",
    "check_basal_ganglia_policy",
    "go_extractor",
    "go_head",
    "go_scores",
    "is_basal_ganglia_policy",
    "memory_record",
    "shield_logic_hook",
    "uses_action_masks",
]
