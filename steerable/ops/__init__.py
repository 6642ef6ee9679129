"""Autograd operations with hand-written backward passes: bounded-memory message sums, row and
column permutations whose gradient is a gather, and harmonics modulated by invariants."""

from .message import message_sum
from .modulated import modulated_product
from .permute import permute_columns, permute_rows
from .transforms import compiling_or_transformed, transforms_active

__all__ = [
    "compiling_or_transformed",
    "message_sum",
    "modulated_product",
    "permute_columns",
    "permute_rows",
    "transforms_active",
]
