"""Input checks of the layers, and the rule for the checks that read whole tensors.

Cheap checks (types, shapes, dtypes: metadata only) run on every call.  Checks that read the
values of a tensor (``isfinite(x).all()``, index ranges through ``min()`` / ``max()``) make the
host wait for the device, once per layer per call; they run

* always on CPU tensors (no device to wait for),
* on accelerator tensors only in debug mode (:func:`set_debug` or the environment variable
  ``STEERABLE_DEBUG=1``),
* never while ``torch.compile`` / ``torch.export`` trace a layer (they would break the graph).

Without them a bad index on an accelerator surfaces as the device's own error (as in PyG).
"""

from __future__ import annotations

import os
from typing import Any

import torch

__all__ = ["set_debug", "is_debug", "reads_values", "check_count", "check_finite", "check_index"]

_debug = os.environ.get("STEERABLE_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def set_debug(enabled: bool = True) -> None:
    """Run the value checks (finite inputs, index ranges) on accelerator tensors too (slow: a host
    synchronisation per layer per call).  The default comes from ``STEERABLE_DEBUG``."""
    global _debug
    _debug = bool(enabled)


def is_debug() -> bool:
    """Whether value checks run on accelerator tensors (:func:`set_debug`)."""
    return _debug


def reads_values(t: torch.Tensor) -> bool:
    """Whether the checks that read ``t``'s values run now (see the module's rule)."""
    if torch.compiler.is_compiling():
        return False
    return t.device.type == "cpu" or _debug


def check_count(value: Any, who: str, what: str, minimum: int = 1, allow_none: bool = False) -> None:
    """``value`` is an int (not a bool) ``>= minimum`` (or ``None`` when ``allow_none``)."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "an int" + (" or None" if allow_none else "")
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{who}: {what} must be {bound} ({kind}), got {value!r}")


def check_finite(t: torch.Tensor, who: str, what: str) -> None:
    """``t`` has no NaN or infinite value (only where :func:`reads_values`)."""
    if reads_values(t) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{who}: {what} contains NaN or infinite values")


def check_index(edge_index: torch.Tensor, n_src: int, n_dst: int, who: str) -> None:
    """Sources ``edge_index[0]`` in ``[0, n_src)``, targets ``edge_index[1]`` in ``[0, n_dst)``
    (only where :func:`reads_values`)."""
    if not edge_index.numel() or not reads_values(edge_index):
        return
    for row, name, n in ((0, "sources", n_src), (1, "targets", n_dst)):
        low, high = int(edge_index[row].min()), int(edge_index[row].max())
        if low < 0 or high >= n:
            raise ValueError(
                f"{who}: edge_index out of range for {n_src} sources / {n_dst} targets: "
                f"{name} must lie in [0, {n}), got values in [{low}, {high}]"
            )
