"""Helpers around escnn's ``nn.Linear`` used on plain tensors by the kernel MLP's layers."""
from __future__ import annotations

from typing import Any

import torch


def expanded(linear: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """escnn ``nn.Linear``'s expanded ``(out, in)`` matrix and bias (escnn caches them in eval mode)."""
    if linear.training:
        return linear.expand_parameters()
    return linear.matrix, linear.expanded_bias


def unshare_basis(linear: torch.nn.Module) -> None:
    """Give ``linear`` private copies of escnn's cached basis-expansion modules.

    escnn caches one ``SingleBlockBasisExpansion`` module per (basis, points) and shares it between
    every ``Linear`` built with the same representations, so ``.double()`` or ``.to(device)`` on one
    model would silently change the buffers of another.  A shallow copy with its own buffer dict
    keeps the (read-only) sampled basis tensors shared until one model converts them.
    """
    import copy

    for owner in linear.modules():
        if owner is linear:
            continue
        for name, child in list(owner._modules.items()):
            if child is not None and type(child).__name__ == "SingleBlockBasisExpansion":
                private = copy.copy(child)
                private._buffers = dict(child._buffers)
                private._parameters = dict(child._parameters)
                private._modules = dict(child._modules)
                owner._modules[name] = private
