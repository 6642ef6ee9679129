"""Autograd operations, most with hand-written backward passes: bounded-memory message sums, row and
column permutations whose gradient is a gather, harmonics modulated by invariants, per-edge
messages of a shared basis in the cheaper of two orders, and bilinear maps of two per-edge vectors
that never keep their outer product."""

from .message import message_sum
from .mixed import mixed_message
from .modulated import modulated_product
from .outer import outer_matmul
from .permute import permute_columns, permute_rows
from .transforms import compiling_or_transformed, transforms_active

__all__ = [
    "compiling_or_transformed",
    "message_sum",
    "mixed_message",
    "modulated_product",
    "outer_matmul",
    "permute_columns",
    "permute_rows",
    "transforms_active",
]
