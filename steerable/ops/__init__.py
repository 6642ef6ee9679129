"""Autograd operations with hand-written backward passes: bounded-memory message sums and row and
column permutations whose gradient is a gather."""

from .message import message_sum
from .permute import permute_columns, permute_rows
from .transforms import compiling_or_transformed, transforms_active

__all__ = ["compiling_or_transformed", "message_sum", "permute_columns", "permute_rows", "transforms_active"]
