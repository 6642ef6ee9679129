"""The escnn backend's kernel MLP (contract: :class:`steerable.core.mlp.KernelMLP`).

``mlp(pos (E, n), attr (E, a) or None) -> (E, D)``, block ``b`` of the output a row-major flattened
``out_rep_b x in_rep_b`` matrix transforming under ``kron(out_rep_b(g), in_rep_b(g))``.

Architecture (all equivariant layers are escnn ``nn.Linear`` on ``gspaces.no_base_space(H)``; plain
torch tensors go in and out, ``GeometricTensor`` is used only inside):

1. **Front end** (:mod:`.frontend`, shared by both pipelines): the harmonic embedding
   (:class:`~.embedding.HarmonicEmbedding`: solid harmonics of the softened direction
   ``pos / sqrt(|pos|^2 + s^2)``, smooth at the origin, ``s = options["origin_scale"]``) up to the band limit
   ``L`` chosen by :func:`~.embedding.choose_band_limit`, the smallest ``L`` whose harmonics,
   restricted to ``H``, contain every irrep of the output blocks.  This makes the MLP *complete*:
   equivariant linear maps and gates never create a frequency absent from their input, and the
   position alone only carries frequency 1.  Then ``C = hidden_channels`` copies of the
   embedding, each harmonic degree of each copy multiplied by a learnable function of the
   invariants (a small torch MLP of ``RadialBasis(radial_features, max_radius)(sqrt(|pos|^2 + s^2))`` and of the
   trivial attribute channels).  Non-trivial attribute fields are appended as extra input fields.
2. ``hidden_layers`` x (escnn ``Linear`` -> nonlinearity), then an escnn ``Linear`` to the irreps of
   ``⊕_b out_rep_b ⊗ in_rep_b`` and each block's change of basis, in float64 (escnn's own
   tensor-product type applies a float32 copy: SO(3)/O(3) measured 1e-8 that way; escnn's tensor
   product is the row-major ``kron``, checked in the tests).  Two pipelines run these layers:

   * :class:`~.irrepwise.IrrepwiseKernelMLP` when every input field is an irrep (continuous groups
     with the exact nonlinearity, harmonics that stay irreducible: SO(3), O(3), SO(2)/O(2) on R^2):
     one tensor per irrep, only the Schur blocks of each expanded matrix multiplied (:mod:`.schur`),
     the output made one group of blocks at a time (the streaming protocol); without attribute
     fields the same layers run on invariants alone (:mod:`.scalar_form`, SO(3), O(3), O(2));
   * :class:`~.dense.DenseKernelMLP` otherwise (finite groups' regular fields, restricted
     harmonics, ``"fourier"``): each layer one dense product on the concatenated features, the
     change of basis folded into the last weights.

   :func:`build_kernel_mlp` picks the pipeline.

Nonlinearities (``spec.nonlinearity``):

* ``"exact"`` (default, equivariant to round-off):

  - continuous groups: hidden field = ``C`` scalars (ELU) + ``C`` copies of every non-trivial irrep of
    ``H`` met in the embedding, the output and the attributes, each gated by its own sigmoid scalar;
  - finite groups: ``C`` regular fields with pointwise ELU (permutations commute with it), which also
    reaches irreps the band-limited embedding misses (e.g. the pseudo-scalars of FullOcta/FullIco).
    Completeness for finite groups relies on this nonlinearity: use ``hidden_layers >= 1`` (with
    ``hidden_layers=0`` the span at a point is limited by the few harmonic copies of each irrep).

* ``"fourier"`` (continuous groups only; approximate): ``C`` band-limited regular fields
  (``options["fourier_band"]``, default 2) with escnn's ``FourierELU`` on a sampled grid
  (``options["grid"]``: number of points; default 16 angles on SO(2)/O(2), 200 Thomson points on
  SO(3), and for O(3) a ``QuotientFourierELU`` on the sphere ``O(3)/O(2)`` with 200 Thomson points).
  Its equivariance error is that of the grid (measured ~1e-3 with the defaults, see the tests).
  The SO(3)/O(3) grids take minutes to compute on first use (escnn caches them on disk).

Measured with ``exact`` (``hidden_channels=4``, ``hidden_layers=2``; relative error): float64
round-off (<= 7e-16) for the continuous groups, D4 and C4 on R^3; 5e-8..2e-7 for the other finite
groups, whose floor is escnn's float32 bases of regular representations and restrictions; <= 7e-7
in float32.  Their regular representations are built in time linear in the group order by
:mod:`.characters` (escnn's own loop is quadratic, in Python); the first build on a fresh escnn cache
still takes tens of seconds for the finite 3D groups and is announced once (:mod:`.first_use`).

Serialisation: ``state_dict()`` keys are the same in train and eval mode (:class:`~.linear.PlainLinear`
keeps no mode-dependent buffers) and buffers are registered in the same order in every process.
``pickle`` / ``torch.save(model)`` and ``copy.deepcopy`` rebuild the MLP from its spec and state dict
(escnn's objects hold local functions, which do not pickle; see :meth:`EscnnKernelMLP.__reduce__`).

Options (``spec.options``, integers): ``max_band`` (cap on ``L``), ``band`` (force a larger ``L``),
``fourier_band``, ``grid``, ``invariant_width`` (width of the invariant MLP, default 16); and
``origin_scale`` (a number > 0, default a tenth of the spacing of the radial basis centres,
``max_radius / (10 max(radial_features - 1, 1))``, :meth:`~steerable.core.mlp.KernelMLPSpec.origin_scale`):
the softening length ``s`` (:mod:`.embedding`).
"""

from __future__ import annotations

from steerable.core.mlp import KernelMLPSpec

from .dense import DenseKernelMLP
from .frontend import EscnnKernelMLP, plan_inputs
from .groups import EscnnGroup
from .irrepwise import IrrepwiseKernelMLP

__all__ = ["DenseKernelMLP", "EscnnKernelMLP", "IrrepwiseKernelMLP", "build_kernel_mlp"]


def build_kernel_mlp(group: EscnnGroup, spec: KernelMLPSpec) -> EscnnKernelMLP:
    """The escnn kernel MLP for ``spec``: irrep-wise when every input field is an irrep, dense otherwise."""
    plan = plan_inputs(group, spec)
    pipeline = IrrepwiseKernelMLP if plan.irrepwise(group, spec) else DenseKernelMLP
    return pipeline(group, spec, plan)
