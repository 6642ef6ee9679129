"""Invariant radial features shared by every backend's kernel MLP."""

from __future__ import annotations

import math

import torch


class RadialBasis(torch.nn.Module):
    """Smooth Gaussian features of a norm: ``(E,) -> (E, num)``.

    Centres are spread evenly over ``[0, max_radius]`` with widths equal to their spacing; the
    features are scaled so that their mean square is about one for ``r`` in that range.  The
    features are a function of ``r / max_radius`` alone: ``RadialBasis(num, R)(R r) =
    RadialBasis(num, 1)(r)``.  ``max_radius`` is in the units of ``r`` (for a point convolution,
    the cutoff of its graph) and has no default: a range that does not match the data leaves the
    norms beyond about ``1.5 max_radius`` on features that are all (nearly) zero, where a kernel
    built on them no longer tells distances apart.

    Beyond ``max_radius`` the features decay like a Gaussian of ``r - max_radius`` (width: the
    spacing of the centres; about ``1e-2`` of their peak at ``r = max_radius + 3 spacing``),
    never exploding and never NaN for finite ``r``.
    """

    def __init__(self, num: int, max_radius: float) -> None:
        super().__init__()
        if num < 1:
            raise ValueError(f"RadialBasis needs at least one feature, got {num}")
        if not (
            isinstance(max_radius, (int, float)) and not isinstance(max_radius, bool) and 0 < max_radius < math.inf
        ):
            raise ValueError(
                f"RadialBasis needs a finite max_radius > 0 (in the units of the norms), got {max_radius!r}"
            )
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
