"""Learnable bias on the invariant output channels of a layer."""

from __future__ import annotations

import torch

from ..core.representation import FieldType


class InvariantBias(torch.nn.Module):
    """A learnable bias on the trivial (invariant) channels of ``out_type``; others get none."""

    def __init__(self, out_type: FieldType) -> None:
        super().__init__()
        channels = torch.tensor(out_type.trivial_channels, dtype=torch.long)
        self.register_buffer("channels", channels, persistent=False)
        self.size = out_type.size
        self.bias = torch.nn.Parameter(torch.zeros(len(channels))) if len(channels) else None

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Zero the bias, as at construction."""
        if self.bias is not None:
            self.bias.zero_()

    def __repr__(self) -> str:
        n = 0 if self.bias is None else self.bias.numel()
        return f"InvariantBias({n} invariant of {self.size} channels | {n} weights)"

    def vector(self) -> torch.Tensor | None:
        """The bias as a full ``(out_type.size,)`` vector, zero on non-invariant channels."""
        if self.bias is None:
            return None
        full = self.bias.new_zeros(self.size)
        return full.index_copy(0, self.channels, self.bias)
