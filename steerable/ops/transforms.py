"""Whether a ``torch.func`` transform runs, or ``torch.compile`` traces: the layers' choice of code path."""

from __future__ import annotations

import torch

__all__ = ["compiling_or_transformed", "transforms_active"]


def transforms_active() -> bool:
    """Whether a ``torch.func`` transform (``grad``, ``vmap``, ``jacrev``, ``jvp``, ...) is running.

    Its wrapped tensors must go through torch's own operators: custom autograd Functions without
    ``setup_context`` are refused, and under ``vmap`` no value can be read on the host.  The layers
    then take their plain-operator paths (the ones ``torch.compile`` traces): the same values and
    gradients, without the bounded-memory blocks, the host-side value checks and the caches.
    """
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(active()) if active is not None else False


def compiling_or_transformed() -> bool:
    """Whether ``torch.compile`` is tracing or a ``torch.func`` transform runs: either way no value
    can be read on the host, so the layers' eager-only paths (value checks and caches, fused
    eager sums) are off."""
    return torch.compiler.is_compiling() or transforms_active()
