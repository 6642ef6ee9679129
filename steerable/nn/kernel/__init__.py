"""The implicit steerable kernel: an equivariant MLP of the relative position, shaped as a matrix.

:class:`ImplicitKernel` (``basis_size=M`` or ``None``) builds a :class:`SharedBasisKernel` or a
:class:`DenseKernel`; every layout offers ``forward`` (the kernel), ``message`` (one product per
evaluation) and ``message_and_aggregate`` (products summed at targets, bounded memory).
"""

from ._base import BASIS_SIZE, ImplicitKernel, Segment, matrix_permutation
from ._dense import DenseKernel
from ._shared import RepPair, SharedBasisKernel

__all__ = [
    "BASIS_SIZE",
    "DenseKernel",
    "ImplicitKernel",
    "RepPair",
    "Segment",
    "SharedBasisKernel",
    "matrix_permutation",
]
