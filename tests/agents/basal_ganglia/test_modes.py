"""The mode switch: the flags SB3's ``set_training_mode`` sets, after modules are added or override ``train``."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from torch import nn

from agents.basal_ganglia.modes import ModeSwitch


class CountingTrain(nn.Linear):
    """A module whose own ``train`` must run (it counts its calls)."""

    calls = 0

    def train(self, mode: bool = True) -> CountingTrain:
        type(self).calls += 1
        return super().train(mode)


def sb3_flags(policy: Any, mode: bool) -> list[bool]:
    """Every module's flag after SB3's own ``set_training_mode(mode)`` on ``policy`` (which it sets)."""
    base = type(policy).__mro__[2]
    base.set_training_mode(policy, mode)
    return [m.training for m in policy.modules()]


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_a_module_added_after_the_first_switch_is_set_too(algo: str, model_factory: Any) -> None:
    policy = model_factory(algo).policy
    reference = model_factory(algo).policy
    for p in (policy, reference):
        p.set_training_mode(False)
    net = policy.q_net if algo == "dqn" else policy.mlp_extractor
    ref_net = reference.q_net if algo == "dqn" else reference.mlp_extractor
    for n in (net, ref_net):
        n.late = nn.Sequential(nn.Linear(2, 2))  # registered after the switch listed its modules, in train mode
    assert net.late.training
    policy.set_training_mode(False)
    assert not net.late.training and not net.late[0].training
    assert [m.training for m in policy.modules()] == sb3_flags(reference, False)
    policy.set_training_mode(True)
    assert [m.training for m in policy.modules()] == sb3_flags(reference, True)


def test_an_overridden_train_runs(model_factory: Any) -> None:
    policy = model_factory("dqn").policy
    policy.set_training_mode(False)
    policy.q_net.counted = CountingTrain(2, 2)
    CountingTrain.calls = 0
    policy.set_training_mode(True)  # flags differ: SB3's call, so the override runs
    assert CountingTrain.calls == 1 and policy.q_net.counted.training
    policy.set_training_mode(True)  # nothing would change: nothing runs
    assert CountingTrain.calls == 1


def test_a_non_bool_mode_is_refused_as_torch_refuses_it() -> None:
    module = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        ModeSwitch()(1, module.modules, module.train)  # type: ignore[arg-type]


def test_the_listing_is_reused_until_a_module_is_registered() -> None:
    module = nn.Sequential(nn.Linear(2, 2))
    walks = []

    def walk() -> Any:
        walks.append(1)
        return module.modules()

    switch = ModeSwitch()
    for mode in (False, True, False):
        switch(mode, walk, module.train)
    assert len(walks) == 1 and not any(m.training for m in module.modules())
    module.append(nn.ReLU())
    switch(False, walk, module.train)
    assert len(walks) == 2 and not module[1].training


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_a_copied_or_pickled_policy_switches_its_own_modules(algo: str, model_factory: Any) -> None:
    policy = model_factory(algo).policy
    policy.set_training_mode(False)  # the switch exists and has listed the modules
    before = [m.training for m in policy.modules()]
    for clone in (copy.deepcopy(policy), pickle.loads(pickle.dumps(policy))):
        reference = copy.deepcopy(clone)
        clone.set_training_mode(True)
        assert [m.training for m in clone.modules()] == sb3_flags(reference, True)
        assert any(m.training for m in clone.modules())
        assert [m.training for m in policy.modules()] == before  # the original is untouched
