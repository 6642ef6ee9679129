"""Autograd operations with hand-written backward passes: bounded-memory message sums and column
permutations whose gradient is a gather."""

from .message import message_sum
from .permute import permute_columns

__all__ = ["message_sum", "permute_columns"]
