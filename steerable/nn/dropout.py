"""Field-wise dropout: whole fields are dropped, so the random mask commutes with the group action."""

from __future__ import annotations

import torch

from ..core.representation import FieldType
from ._fields import FieldLayer

__all__ = ["FieldDropout"]


class FieldDropout(FieldLayer):
    """Dropout of whole fields, for any group.

    In training every field of every sample is zeroed with probability ``p``, all its channels
    together, and the kept fields are scaled by ``1 / (1 - p)``; in eval the layer is the identity.
    A sample is a node of ``(N, C)`` point features, or one element ``b`` of ``(B, C, *spatial)``
    grid features, whose mask is shared by all grid locations (as ``Dropout2d``): a mask that varied
    over the grid would not commute with moving the grid.  For a fixed random state the map is
    linear with a mask built per field, so ``drop(g . x) == g . drop(x)``.

    The mask is drawn from torch's global generator of the input's device (``torch.manual_seed``
    makes it reproducible).  Shapes are preserved.
    """

    def __init__(self, field_type: FieldType, p: float = 0.5) -> None:
        super().__init__(field_type)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"FieldDropout: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def reset_parameters(self) -> None:
        """Nothing to reset (no parameters); present so every layer answers ``reset_parameters()``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return torch.zeros_like(x)
        keep = torch.full((x.shape[0], self.num_fields), 1.0 - self.p, dtype=x.dtype, device=x.device)
        mask = self.to_channels(torch.bernoulli(keep)) / (1.0 - self.p)  # (B, C)
        return x * mask.view(mask.shape + (1,) * (x.ndim - 2))

    def describe(self) -> str:
        return f"p={self.p:g}"
