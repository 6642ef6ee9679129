"""Equivariant layers for any group and backend: the implicit kernel, point and grid convolutions,
gate, per-node linear map and the point-convolution blocks.  Inputs and outputs are plain tensors
whose channel layout a :class:`~steerable.core.representation.FieldType` describes."""

from .bias import InvariantBias
from .blocks import MessageBlock, PointConvBlock
from .checks import is_debug, set_debug
from .dropout import FieldDropout
from .gate import Gate
from .grid_action import lattice_elements, transform_grid
from .grid_conv import GridConv
from .kernel import ImplicitKernel
from .linear import FieldLinear
from .nonlinearity import NormNonlinearity
from .norm import FieldBatchNorm, FieldNorm
from .point_conv import PointConv
from .pooling import GlobalPool, InvariantPool, global_pool, invariant_pool
from .sequential import Sequential

__all__ = [
    "FieldBatchNorm",
    "FieldDropout",
    "FieldLinear",
    "FieldNorm",
    "Gate",
    "GlobalPool",
    "GridConv",
    "ImplicitKernel",
    "InvariantBias",
    "InvariantPool",
    "MessageBlock",
    "NormNonlinearity",
    "PointConv",
    "PointConvBlock",
    "Sequential",
    "global_pool",
    "invariant_pool",
    "is_debug",
    "lattice_elements",
    "set_debug",
    "transform_grid",
]
