"""Values computed from a fixed set of points, kept while the same points come again.

A grid convolution evaluates its kernel at the same taps on every call; whatever depends on the
taps alone (their embedding, radii, harmonics) need not be recomputed.  :class:`PointsMemo` keeps
one entry per ``(dtype, device)`` of the points and hands it back when the points are the same
tensor, unmodified since (its version counter: no comparison at all), or a tensor of equal values
(one ``torch.equal``); otherwise it computes the value afresh, without autograd.

The owner clears it when its module is moved or converted (``_apply``), so no value on a device or
in a dtype the model left stays alive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import torch

__all__ = ["PointsMemo"]

T = TypeVar("T")


class PointsMemo(Generic[T]):
    """``memo.get(points, make)``: ``make(points)`` computed once per ``(dtype, device)`` and kept
    while the same points come again (see the module docstring)."""

    def __init__(self) -> None:
        # (dtype, device) -> [copy of the points, value, the tensor last seen, its version]
        self._entries: dict[tuple[torch.dtype, torch.device], list] = {}

    def get(self, points: torch.Tensor, make: Callable[[torch.Tensor], T]) -> T:
        """The value of ``points``: the kept one, or ``make(points)`` (run under ``no_grad``)."""
        key = (points.dtype, points.device)
        entry = self._entries.get(key)
        if entry is not None and entry[2] is points and entry[3] == points._version:
            return entry[1]
        if entry is None or not torch.equal(entry[0], points):
            with torch.no_grad():
                entry = [points.detach().clone(), make(points), None, None]
            self._entries[key] = entry
        entry[2], entry[3] = points, points._version
        return entry[1]

    def clear(self) -> None:
        """Forget every value (call from the owner's ``_apply``)."""
        self._entries = {}
