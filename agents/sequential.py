"""``sequential(net, x)``: an ``nn.Sequential`` of linear layers and ReLUs at the cost of its ops alone.

A module call costs a few µs of Python around the op it runs (hooks, ``__call__`` dispatch); for a batch-1 decision
through a small MLP those calls are most of the time *(ours)*. Here ``Linear`` and ``ReLU`` layers run as the
``F.linear`` / ``F.relu`` their ``forward`` calls — the same floats — and every other layer, or one with forward
hooks, as itself, so nothing a caller registered is skipped.
"""

from __future__ import annotations

import torch as th
from torch import nn
from torch.nn import functional as F


def sequential(net: nn.Sequential, x: th.Tensor) -> th.Tensor:
    """``net(x)``, its ``Linear`` and ``ReLU`` layers called as ``F.linear`` / ``F.relu`` (module docstring)."""
    for layer in net:
        kind = type(layer)
        if layer._forward_hooks or layer._forward_pre_hooks:
            x = layer(x)
        elif kind is nn.Linear:
            x = F.linear(x, layer.weight, layer.bias)
        elif kind is nn.ReLU and not layer.inplace:
            x = F.relu(x)
        else:
            x = layer(x)
    return x


__all__ = ["sequential"]
