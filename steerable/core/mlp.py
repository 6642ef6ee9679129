"""The contract between the core and a backend's equivariant MLP.

The core asks a group's backend for a module ``mlp`` with

    ``mlp(pos, attr) -> out``

* ``pos``: ``(E, n)`` relative positions in the standard representation, coordinates ``(x, y[, z])``.
* ``attr``: ``(E, attr_type.size)`` attributes transforming under ``spec.attr_type``, or ``None``.
* ``out``: ``(E, D)`` with ``D = sum_b out_rep_b.size * in_rep_b.size`` over ``spec.blocks``, the
  blocks concatenated in order and each block a row-major flattened ``out_rep.size x in_rep.size``
  matrix.  Block ``b`` must transform under ``kron(out_rep_b(g), in_rep_b(g))``:

      ``mlp(g pos, g attr)[block b] = kron(out_rep_b(g), in_rep_b(g)) @ mlp(pos, attr)[block b]``

  exactly (to floating-point round-off) for the default options.

Optionally the module may hand out its output in consecutive column pieces: an attribute
``mlp.piece_sizes`` (list of widths) and ``mlp.pieces(pos, attr)``, an iterator of ``(E, width)``
tensors whose concatenation is ``mlp(pos, attr)``.  When the pieces line up with the kernel's
representation pairs the core consumes them one at a time: no concatenated copy of the MLP's
largest per-edge tensor, and each piece can be freed once used.

*Complete*, not only equivariant: the values of a block over random initialisations must span the
whole space the symmetry allows at a point (the maps that commute with the point's stabiliser).  A
backend reaches this by embedding the position harmonically (spherical harmonics or ``cos kθ``,
``sin kθ`` up to the band limit each block needs), by tensor products, or by regular fields with
pointwise nonlinearities.  ``steerable.testing`` checks both properties for any backend.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .group import Group
from .representation import FieldType, Rep


@dataclass(frozen=True)
class KernelMLPSpec:
    """What an implicit kernel needs from a backend's MLP.

    Attributes:
        group: the symmetry group.
        blocks: ``(out_rep, in_rep)`` pairs, one output block each, in output order.  Copies of
            the same pair are separate blocks with independent weights.  The implicit kernel
            passes ``basis_size`` copies of each pair of representations (shared-basis layout) or
            one pair per (output field, input field), output fields outer (dense layout).
        attr_type: field type of the attributes fed beside the position, or ``None``.
        hidden_channels: width of each hidden layer, in multiplicities of the backend's hidden
            field (e.g. number of regular fields, or gated irreps per frequency).
        hidden_layers: number of hidden layers.
        radial_features: number of radial basis functions of ``|pos|`` fed to the MLP
            (:class:`steerable.core.radial.RadialBasis`).
        max_radius: length scale of the radial basis: norms in ``[0, max_radius]`` are resolved.
        nonlinearity: ``"exact"`` (default: gates, norms, or pointwise on regular fields) or a
            backend-specific approximate option such as ``"fourier"``.
        options: further backend-specific options (documented by each backend).
    """

    group: Group
    blocks: tuple[tuple[Rep, Rep], ...]
    attr_type: FieldType | None = None
    # Defaults: the size every task here trains with (one hidden layer); at these sizes a PointConv
    # training step costs less time and memory than escnn's analytic R3PointConv (benchmarks/README.md).
    hidden_channels: int = 8
    hidden_layers: int = 1
    radial_features: int = 8
    max_radius: float = 1.0
    nonlinearity: str = "exact"
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def out_size(self) -> int:
        return sum(o.size * i.size for o, i in self.blocks)

    @property
    def attr_size(self) -> int:
        return 0 if self.attr_type is None else self.attr_type.size
