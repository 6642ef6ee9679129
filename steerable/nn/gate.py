"""Gated nonlinearity on plain tensors, for any group: invariant gates scale the non-trivial fields."""
from __future__ import annotations

import torch

from ..core.representation import FieldType

__all__ = ["Gate"]


class Gate(torch.nn.Module):
    """Group-agnostic gated nonlinearity on plain tensors.

    Input layout ``out_type + [trivial] * k`` (``k`` = number of non-trivial fields of ``out_type``),
    i.e. the gates are appended after the fields; output layout ``out_type``.  Trivial fields go
    through SiLU; non-trivial field ``m`` (in order) is multiplied by ``sigmoid(gate_m)``, an
    invariant, so the map is equivariant for any orthogonal representation.

    Shapes: ``(N, out_type.size + k) -> (N, out_type.size)``.
    """

    def __init__(self, out_type: FieldType) -> None:
        super().__init__()
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.out_type.size
        fields, gates = x[..., :size], torch.sigmoid(x[..., size:])
        if self.n_gates == 0:
            return torch.nn.functional.silu(fields)
        gated = fields * gates[..., self.gate_of]
        return torch.where(self.trivial, torch.nn.functional.silu(fields), gated)
