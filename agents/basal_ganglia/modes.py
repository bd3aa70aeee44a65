"""Train / eval mode switches for the basal-ganglia policies: SB3's ``set_training_mode``, at the cost of a flag read.

SB3 calls ``policy.set_training_mode(False)`` before every ``predict`` and DQN's ``train`` sets it back to True
every ``train_freq`` steps. ``nn.Module.train`` recurses through ``children()`` and sets each flag through
``nn.Module.__setattr__``: ≈ 50 µs for a DQN policy on ``JanusExtractor``, half its batch-1 features. Here the
modules SB3's call sets are listed once (:class:`ModeSwitch`) and re-listed only after a submodule was
registered anywhere in the process (torch's global module-registration hook bumps a counter), so a switch is
one pass over a tuple: nothing when every flag already holds, a plain assignment per module otherwise — the
same flags as SB3's call, which :class:`ModeSwitch` still makes wherever a module overrides ``train``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

_registrations = [0]


def _count_registration(module: nn.Module, name: str, submodule: nn.Module | None) -> None:
    _registrations[0] += 1


nn.modules.module.register_module_module_registration_hook(_count_registration)


class ModeSwitch:
    """The modules one ``set_training_mode`` call sets, listed once, and the switch over them.

    Args:
        modules: returns the modules SB3's ``set_training_mode`` sets (walked again after any registration).
        sb3_switch: SB3's own ``set_training_mode(mode)``, called where a module overrides ``nn.Module.train``
            (its override must run) or ``mode`` is not a bool (``nn.Module.train`` raises for it).
    """

    def __init__(self, modules: Callable[[], Any], sb3_switch: Callable[[bool], None]) -> None:
        self._walk, self._sb3_switch = modules, sb3_switch
        self._listed_at = -1
        self._modules: tuple[nn.Module, ...] = ()
        self._plain = True

    def modules(self) -> tuple[nn.Module, ...]:
        """The modules the switch sets (re-listed after any submodule registration since the last listing)."""
        if self._listed_at != _registrations[0]:
            self._modules = tuple(self._walk())
            self._plain = all(type(m).train is nn.Module.train for m in self._modules)
            self._listed_at = _registrations[0]
        return self._modules

    def __call__(self, mode: bool) -> None:
        if not isinstance(mode, bool):
            self._sb3_switch(mode)  # torch's own error for it
            return
        modules = self.modules()
        if not self._plain:
            if any(m.training is not mode for m in modules):
                self._sb3_switch(mode)
            return
        for module in modules:
            if module.training is not mode:
                module.training = mode


__all__ = ["ModeSwitch"]
