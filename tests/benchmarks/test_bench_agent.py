"""``benchmarks/bench_agent.py``: every training pair it times can be built and learn on the env ``train.py``
builds for its config (the pairs broke silently once, when janus-ppo's default moved off the shield and its
masked baseline no longer had masks to learn with)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_agent", ROOT / "benchmarks" / "bench_agent.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_agent"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_agent", None)


def test_every_pair_builds_and_learns_on_train_pys_env(bench: Any) -> None:
    from agents.app.config import resolve_hyperparams
    from agents.basal_ganglia import go_extractor

    pairs = bench.training_pairs(argparse.Namespace(train_steps=1, dqn_steps=1))
    assert len(pairs) == 9
    ppo = resolve_hyperparams("janus-ppo", bench.ENV_ID)
    masked = ppo.get("shield") and ppo.get("shield_training", "enforce") == "enforce"
    assert pairs[0].baseline == ("MaskablePPO MultiInputPolicy" if masked else "PPO MultiInputPolicy")
    for pair in pairs:
        for make in (pair.janus, pair.base):
            model = make()
            extractor = go_extractor(model.policy) if make is pair.janus else None
            if "GAF video" in pair.label and make is pair.janus:  # the rows that time the video's cost
                assert (extractor.gaf is None) == ("vision=False" in pair.label), pair.label
            if "ts_patch=1" in pair.label and make is pair.janus:  # a series token per step
                assert extractor.ts_patch == 1, pair.label
            if "SymlogExtractor" in pair.label and make is pair.janus:  # the token streams' price, timed
                assert type(extractor).__name__ == "SymlogExtractor", pair.label
            if pair.label.startswith(("janus-ppo (configs", "janus-dqn (configs")) and make is pair.janus:
                assert extractor.gaf is None and extractor.ts_patch == 4  # as shipped: no video, patches of 4
            model.learn(8)  # one rollout for PPO, a few steps for DQN: what the timed runs do, shorter
            assert model.num_timesteps >= 8, pair.label
