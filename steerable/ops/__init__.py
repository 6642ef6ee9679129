"""Autograd operations with hand-written backward passes: bounded-memory message sums and row and
column permutations whose gradient is a gather."""

from .message import message_sum
from .permute import permute_columns, permute_rows
from .transforms import transforms_active

__all__ = ["message_sum", "permute_columns", "permute_rows", "transforms_active"]
