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

    It keeps data only (the listing and when it was made), no reference to its policy's methods, so a policy
    that holds one copies and pickles as any module: the callables come with each call.
    """

    def __init__(self) -> None:
        self._listed_at = -1
        self._modules: tuple[nn.Module, ...] = ()
        self._plain = True

    def modules(self, walk: Callable[[], Any]) -> tuple[nn.Module, ...]:
        """The modules ``walk()`` returns, listed again only after a submodule registration since the last time."""
        if self._listed_at != _registrations[0]:
            self._modules = tuple(walk())
            self._plain = all(type(m).train is nn.Module.train for m in self._modules)
            self._listed_at = _registrations[0]
        return self._modules

    def __call__(self, mode: bool, walk: Callable[[], Any], sb3_switch: Callable[[bool], None]) -> None:
        """Set ``mode`` on the modules ``walk()`` returns (those SB3's ``set_training_mode`` sets).

        ``sb3_switch`` (SB3's own ``set_training_mode``) is called instead where a module overrides
        ``nn.Module.train`` (its override must run) and a flag differs, or where ``mode`` is not a bool (torch's
        error for it).
        """
        if not isinstance(mode, bool):
            sb3_switch(mode)
            return
        modules = self.modules(walk)
        if not self._plain:
            if any(m.training is not mode for m in modules):
                sb3_switch(mode)
            return
        for module in modules:
            if module.training is not mode:
                # what nn.Module.__setattr__ ends in for a plain attribute, without its checks of the parameter,
                # buffer and submodule dicts (`training` is none of them)
                module.__dict__["training"] = mode


__all__ = ["ModeSwitch"]
