"""Gated nonlinearity on plain tensors, for any group: invariant gates scale the non-trivial fields."""

from __future__ import annotations

import torch

from ..core.representation import FieldType
from ._repr import layer_repr

__all__ = ["Gate"]


class Gate(torch.nn.Module):
    """Group-agnostic gated nonlinearity on plain tensors.

    Input layout ``out_type + [trivial] * k`` (``k`` = number of non-trivial fields of ``out_type``),
    i.e. the gates are appended after the fields; output layout ``out_type``.  Trivial fields go
    through SiLU; non-trivial field ``m`` (in order) is multiplied by ``sigmoid(gate_m)``, an
    invariant, so the map is equivariant for any orthogonal representation.

    Shapes: channels on axis 1, for point and grid features alike:
    ``(N, out_type.size + k) -> (N, out_type.size)`` and
    ``(B, out_type.size + k, X, Y[, Z]) -> (B, out_type.size, X, Y[, Z])`` (pointwise per pixel).
    """

    def __init__(self, out_type: FieldType) -> None:
        super().__init__()
        if not isinstance(out_type, FieldType):
            raise TypeError(f"Gate: out_type must be a FieldType, got {type(out_type).__name__}")
        self.out_type = out_type
        trivial = torch.zeros(out_type.size, dtype=torch.bool)
        gate_of = torch.zeros(out_type.size, dtype=torch.long)
        k = 0
        for off, rep in zip(out_type.offsets, out_type.reps):
            if rep.is_trivial:
                trivial[off] = True
            else:
                gate_of[off : off + rep.size] = k
                k += 1
        self.n_gates = k
        self.register_buffer("trivial", trivial, persistent=False)
        self.register_buffer("gate_of", gate_of, persistent=False)

        G = out_type.group
        #: The field type this gate expects: ``out_type`` followed by one scalar per gated field.
        self.in_type = out_type + FieldType(G, [G.trivial_rep()] * k) if k else out_type

    def reset_parameters(self) -> None:
        """Nothing to re-initialise (the gate has no parameters); here for uniformity."""

    def __repr__(self) -> str:
        return layer_repr(self, self.in_type, self.out_type, [f"gates={self.n_gates}"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"Gate: input must have channels on axis 1, (N, C) or (B, C, X, ...), got {shape}")
        self.in_type.check(x, dim=1, what="Gate input")
        size = self.out_type.size
        fields = x.narrow(1, 0, size)
        if self.n_gates == 0:
            return torch.nn.functional.silu(fields)
        gates = torch.sigmoid(x.narrow(1, size, self.n_gates)).index_select(1, self.gate_of)
        trivial = self.trivial.view(size, *([1] * (x.ndim - 2)))
        return torch.where(trivial, torch.nn.functional.silu(fields), fields * gates)
