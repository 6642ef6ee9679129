"""Invariant radial features shared by every backend's kernel MLP."""

from __future__ import annotations

import torch


class RadialBasis(torch.nn.Module):
    """Smooth Gaussian features of a norm: ``(E,) -> (E, num)``.

    Centres are spread evenly over ``[0, max_radius]`` with widths equal to their spacing; the
    features are scaled so that their mean square is about one for ``r`` in that range.
    Norms beyond ``max_radius`` give decaying, never exploding, values.
    """

    def __init__(self, num: int, max_radius: float = 1.0) -> None:
        super().__init__()
        if num < 1:
            raise ValueError(f"RadialBasis needs at least one feature, got {num}")
        if not max_radius > 0:
            raise ValueError(f"RadialBasis needs a positive max_radius, got {max_radius}")
        self.num, self.max_radius = num, float(max_radius)
        centres = torch.linspace(0.0, max_radius, num) if num > 1 else torch.zeros(1)
        self.centres: torch.Tensor
        self.register_buffer("centres", centres, persistent=False)
        self.width = max_radius / max(num - 1, 1)
        self.scale = 1.0
        # Normalise once, on an even sweep of [0, max_radius], to unit mean square per feature.
        sweep = self.forward(torch.linspace(0.0, max_radius, 1001))
        self.scale = float(sweep.pow(2).mean().rsqrt())

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        diff = (r[..., None] - self.centres.to(r)) / self.width
        return torch.exp(-0.5 * diff**2) * self.scale

    def extra_repr(self) -> str:
        return f"num={self.num}, max_radius={self.max_radius}"
