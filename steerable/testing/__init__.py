"""Numerical checks any user can run on any module of any group: equivariance, completeness, and
the conformance suite a backend must pass."""
from ..nn.grid_action import lattice_elements, transform_grid
from ._equivariance import (
    block_matrices,
    check_equivariance,
    commutant_dimension,
    finite_stabiliser,
    kernel_span_rank,
    layer_report,
    mixed_field_type,
    mlp_equivariance_error,
    relative_error,
)

__all__ = [
    "block_matrices",
    "check_equivariance",
    "commutant_dimension",
    "finite_stabiliser",
    "kernel_span_rank",
    "lattice_elements",
    "layer_report",
    "mixed_field_type",
    "mlp_equivariance_error",
    "relative_error",
    "transform_grid",
]
