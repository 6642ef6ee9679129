"""Mixed field types for checks, and the layer report of ``steerable check``."""

from __future__ import annotations

import torch

from ..core.group import Group
from ..core.representation import FieldType
from ..nn.grid_conv import GridConv
from ..nn.kernel import ImplicitKernel
from ..nn.point_conv import PointConv
from ._equivariance import check_equivariance

__all__ = ["CHECK_RADIUS", "layer_report", "mixed_field_type"]

#: ``max_radius`` of the kernels and point convolutions the checks build: the equivariance engine
#: evaluates them at standard normal points (and their differences), whose norms lie below 4 but
#: for a few percent (in R^2 and R^3).
CHECK_RADIUS = 4.0


def mixed_field_type(group: Group, copies: int = 1) -> FieldType:
    """A non-uniform field for checks: trivial, standard and a higher-frequency irrep (if any)."""
    reps = [group.trivial_rep(), group.standard_rep()]
    higher = [r for r in group.irreps(max_frequency=2) if r is not reps[0] and r is not reps[1] and r.size > 1]
    if not higher:
        higher = [r for r in group.irreps(max_frequency=2) if r is not reps[0] and r is not reps[1]]
    if higher:
        reps.append(higher[-1])
    return FieldType(group, reps * copies)


def layer_report(group: Group, *, dtype: torch.dtype = torch.float64, seed: int = 0) -> dict[str, float]:
    """Equivariance errors of a kernel, a point conv and (in 2D/3D) a grid conv on mixed fields."""
    torch.manual_seed(seed)
    field = mixed_field_type(group)
    report = {
        "kernel": check_equivariance(ImplicitKernel(field, field, 1, max_radius=CHECK_RADIUS), dtype=dtype),
        "point conv": check_equivariance(PointConv(field, field, edge_attr=1, max_radius=CHECK_RADIUS), dtype=dtype),
    }
    if group.dim in (2, 3, 4):
        size = 5 if group.dim == 2 else 3
        report["grid conv"] = check_equivariance(
            GridConv(field, field, size, padding=size // 2), dtype=dtype, grid_size=7 if group.dim == 2 else 5
        )
    return report
