"""Equivariant layers for any group and backend: the implicit kernel, point and grid convolutions,
gate, per-node linear map and the point-convolution blocks.  Inputs and outputs are plain tensors
whose channel layout a :class:`~steerable.core.representation.FieldType` describes."""
from .bias import InvariantBias
from .blocks import MessageBlock, PointConvBlock
from .checks import is_debug, set_debug
from .gate import Gate
from .grid_action import lattice_elements, transform_grid
from .grid_conv import GridConv
from .kernel import ImplicitKernel
from .linear import FieldLinear
from .point_conv import PointConv

__all__ = [
    "FieldLinear",
    "Gate",
    "GridConv",
    "ImplicitKernel",
    "InvariantBias",
    "MessageBlock",
    "PointConv",
    "PointConvBlock",
    "is_debug",
    "lattice_elements",
    "set_debug",
    "transform_grid",
]
