"""Group-agnostic building blocks on plain tensors: gated nonlinearity, per-node linear map, and a
gated point-convolution block.  They work for any group and backend, since they only use the
field type's structure (which fields are trivial, which share a representation)."""
from __future__ import annotations

from typing import Any

import torch

from .point_conv import PointConv
from .representation import FieldType

__all__ = ["Gate", "FieldLinear", "PointConvBlock"]


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

    def in_type(self) -> FieldType:
        """The field type this gate expects: ``out_type`` followed by one scalar per gated field."""
        G = self.out_type.group
        return self.out_type + FieldType(G, [G.trivial_rep()] * self.n_gates) if self.n_gates else self.out_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.out_type.size
        fields, gates = x[..., :size], torch.sigmoid(x[..., size:])
        if self.n_gates == 0:
            return torch.nn.functional.silu(fields)
        gated = fields * gates[..., self.gate_of]
        return torch.where(self.trivial, torch.nn.functional.silu(fields), gated)


class FieldLinear(torch.nn.Module):
    """Per-node equivariant linear map ``in_type -> out_type``, group-agnostic.

    Fields are mixed only with fields of the same representation (same name and size), which commutes
    with the group action (``W ⊗ I`` vs ``I ⊗ rho(g)``); trivial outputs get a bias.  Output fields
    whose representation does not occur in the input are zero.  Shapes ``(N, in) -> (N, out)``.
    """

    def __init__(self, in_type: FieldType, out_type: FieldType, bias: bool = True) -> None:
        super().__init__()
        self.out_size = out_type.size
        out_fields = {(rep.name, rep.size): fields for rep, fields in out_type.by_rep()}
        self.keys = []
        self.weights = torch.nn.ParameterList()
        for k, (rep, ins) in enumerate(in_type.by_rep()):
            outs = out_fields.get((rep.name, rep.size))
            if not outs:
                continue
            self.register_buffer(f"in_idx{k}", in_type.channels(ins), persistent=False)
            self.register_buffer(f"out_idx{k}", out_type.channels(outs), persistent=False)
            w = torch.randn(len(outs), len(ins)) / len(ins) ** 0.5
            self.weights.append(torch.nn.Parameter(w))
            self.keys.append((k, rep.size))
        trivial = out_type.trivial_channels
        self.register_buffer("bias_idx", torch.tensor(trivial, dtype=torch.long), persistent=False)
        self.bias = torch.nn.Parameter(torch.zeros(len(trivial))) if bias and trivial else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(x.shape[0], self.out_size)
        for (k, size), w in zip(self.keys, self.weights):
            xin = x[:, getattr(self, f"in_idx{k}")].view(x.shape[0], -1, size)
            y = torch.einsum("oi,nic->noc", w.to(x), xin).reshape(x.shape[0], -1)
            out = out.index_copy(1, getattr(self, f"out_idx{k}"), y)
        if self.bias is not None:
            out = out.index_add(1, self.bias_idx, self.bias.to(x).expand(x.shape[0], -1))
        return out


class PointConvBlock(torch.nn.Module):
    """``Gate(PointConv(x) + SelfLinear(x))`` (``gate=False``: no gate, plain linear output)."""

    def __init__(self, in_type: FieldType, out_type: FieldType, gate: bool, conv_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.gate = Gate(out_type) if gate else None
        conv_out = self.gate.in_type() if gate else out_type
        self.conv = PointConv(in_type, conv_out, **conv_kwargs)
        self.lin = FieldLinear(in_type, conv_out)

    def forward(self, x, pos, edge_index, edge_attr):
        y = self.conv(x, pos, edge_index, edge_attr) + self.lin(x)
        return self.gate(y) if self.gate is not None else y
