"""Numerical checks any user can run on any module of any group: equivariance, completeness, and
the conformance suite a backend must pass.

* :func:`equivariance_error` / :func:`assert_equivariant`: any callable, with the type of each
  argument and of the output declared (:mod:`steerable.testing._engine`);
* :func:`check_equivariance`: the library's layers (and any module declaring ``in_type``,
  ``out_type`` and ``attr_type``), on random inputs;
* :func:`kernel_span_rank`, :func:`commutant_dimension`: completeness of a kernel at a point;
* :func:`~steerable.testing.conformance.run_conformance`: everything a group and its backend must
  pass, in one call (also a pytest plugin, :mod:`steerable.testing.pytest_plugin`).

Every feature transformation is built from representation matrices verified first
(:mod:`steerable.testing._verified`): a check never takes its expected value from the code under test.
"""

from ..nn.grid_action import lattice_elements, transform_grid
from ._completeness import commutant_dimension, finite_stabiliser, kernel_span_rank, stabiliser_on_axis
from ._engine import GridField, assert_equivariant, equivariance_error, equivariance_errors, relative_error
from ._equivariance import (
    block_matrices,
    check_equivariance,
    layer_equivariance_errors,
    layer_kind,
    mlp_equivariance_error,
)
from ._report import layer_report, mixed_field_type
from ._verified import ConventionError, VerifiedActions, verify_coordinate_action, verify_representation
from .conformance import ConformanceError, ConformanceReport, run_conformance

__all__ = [
    "ConformanceError",
    "ConformanceReport",
    "ConventionError",
    "GridField",
    "VerifiedActions",
    "assert_equivariant",
    "block_matrices",
    "check_equivariance",
    "commutant_dimension",
    "equivariance_error",
    "equivariance_errors",
    "finite_stabiliser",
    "kernel_span_rank",
    "lattice_elements",
    "layer_equivariance_errors",
    "layer_kind",
    "layer_report",
    "mixed_field_type",
    "mlp_equivariance_error",
    "relative_error",
    "run_conformance",
    "stabiliser_on_axis",
    "transform_grid",
    "verify_coordinate_action",
    "verify_representation",
]
