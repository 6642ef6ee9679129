"""The implicit steerable kernel: an equivariant MLP of the relative position, shaped as a matrix.

:class:`ImplicitKernel` (``basis_size=M`` or ``None``) builds a :class:`SharedBasisKernel` or a
:class:`DenseKernel`; every layout offers ``forward`` (the kernel), ``message`` (one product per
evaluation) and ``message_and_aggregate`` (products summed at targets, bounded memory).
"""

from ._base import BASIS_SIZE, EnvelopeWidth, ImplicitKernel, Segment, initial_envelope_width, matrix_permutation
from ._dense import DenseKernel
from ._shared import RepPair, SharedBasisKernel

__all__ = [
    "BASIS_SIZE",
    "DenseKernel",
    "EnvelopeWidth",
    "ImplicitKernel",
    "RepPair",
    "Segment",
    "SharedBasisKernel",
    "initial_envelope_width",
    "matrix_permutation",
]
