"""Per-node equivariant linear map between field types, for any group."""
from __future__ import annotations

import torch

from ..core.group import check_same_group
from ..core.representation import FieldType

__all__ = ["FieldLinear"]


class FieldLinear(torch.nn.Module):
    """Per-node equivariant linear map ``in_type -> out_type``, group-agnostic.

    Fields are mixed only with fields of the same representation (equal :attr:`Rep.key`, which
    includes the backend), which commutes with the group action (``W ⊗ I`` vs ``I ⊗ rho(g)``);
    trivial outputs get a bias.  Output fields whose representation does not occur in the input are
    zero.  The two field types must be of the same group (:func:`~steerable.core.group.same_group`;
    a field type of another backend's copy holds only portable representations, which are mapped
    onto ``in_type``'s group).  Shapes ``(N, in) -> (N, out)``.
    """

    def __init__(self, in_type: FieldType, out_type: FieldType, bias: bool = True) -> None:
        super().__init__()
        for t, what in ((in_type, "in_type"), (out_type, "out_type")):
            if not isinstance(t, FieldType):
                raise TypeError(f"FieldLinear: {what} must be a FieldType, got {type(t).__name__}")
        group = check_same_group([in_type.group, out_type.group], "FieldLinear")
        self.in_type, self.out_type = in_type, out_type
        self.out_size = out_type.size
        mapped = out_type if out_type.group.key == group.key else FieldType(group, out_type.reps)
        out_fields = {rep.key: fields for rep, fields in mapped.by_rep()}
        self.keys = []
        self.weights = torch.nn.ParameterList()
        for k, (rep, ins) in enumerate(in_type.by_rep()):
            outs = out_fields.get(rep.key)
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
            xin = x[:, getattr(self, f"in_idx{k}")].view(x.shape[0], w.shape[1], size)
            y = torch.einsum("oi,nic->noc", w.to(x), xin).flatten(1)
            out = out.index_copy(1, getattr(self, f"out_idx{k}"), y)
        if self.bias is not None:
            out = out.index_add(1, self.bias_idx, self.bias.to(x).expand(x.shape[0], -1))
        return out
