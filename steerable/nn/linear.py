"""Per-node equivariant linear map between field types, for any group."""

from __future__ import annotations

import torch

from ..core.group import check_same_group
from ..core.representation import FieldType

__all__ = ["FieldLinear"]


class FieldLinear(torch.nn.Module):
    """Per-point (per-pixel) equivariant linear map ``in_type -> out_type``, group-agnostic.

    Fields are mixed only with fields of the same representation (equal :attr:`Rep.key`, which
    includes the backend), which commutes with the group action (``W ⊗ I`` vs ``I ⊗ rho(g)``);
    trivial outputs get a bias.  Output fields whose representation does not occur in the input are
    zero.  The two field types must be of the same group (:func:`~steerable.core.group.same_group`;
    a field type of another backend's copy holds only portable representations, which are mapped
    onto ``in_type``'s group).

    Shapes: channels on axis 1, point features ``(N, in) -> (N, out)`` and grid features
    ``(B, in, X, Y[, Z]) -> (B, out, X, Y[, Z])`` alike (any number of trailing axes).  The input is
    checked on every call (a tensor, floating point, at least 2 axes, ``in_type.size`` channels on
    axis 1); these checks read shapes only.  Weights ``(fields out, fields in)`` per representation
    are initialised ``N(0, 1 / fields in)``, the bias to zero (:meth:`reset_parameters`).
    """

    def __init__(self, in_type: FieldType, out_type: FieldType, bias: bool = True) -> None:
        super().__init__()
        for t, what in ((in_type, "in_type"), (out_type, "out_type")):
            if not isinstance(t, FieldType):
                raise TypeError(f"FieldLinear: {what} must be a FieldType, got {type(t).__name__}")
        if not isinstance(bias, bool):
            raise TypeError(f"FieldLinear: bias must be a bool, got {type(bias).__name__}")
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
            self.weights.append(torch.nn.Parameter(torch.empty(len(outs), len(ins))))
            self.keys.append((k, rep.size))
        trivial = out_type.trivial_channels
        self.register_buffer("bias_idx", torch.tensor(trivial, dtype=torch.long), persistent=False)
        self.bias = torch.nn.Parameter(torch.empty(len(trivial))) if bias and trivial else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weights again from ``N(0, 1 / fields in)`` and zero the bias (in place)."""
        with torch.no_grad():
            for w in self.weights:
                w.normal_(0.0, w.shape[1] ** -0.5)
            if self.bias is not None:
                self.bias.zero_()

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"FieldLinear: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[1] != self.in_type.size:
            raise ValueError(
                f"FieldLinear: expected {self.in_type.size} channels on axis 1 for {self.in_type!r} (point "
                f"features (N, C) or grid features (B, C, X, Y[, Z])), got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"FieldLinear: expected floating-point features, got {x.dtype}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in) -> (N, out)`` or ``(B, in, *spatial) -> (B, out, *spatial)``."""
        self._check(x)
        n, rest = x.shape[0], tuple(x.shape[2:])
        out = x.new_zeros((n, self.out_size) + rest)
        for (k, size), w in zip(self.keys, self.weights):
            # explicit sizes (no -1): zero points, or an empty grid, are valid input
            xin = x.index_select(1, getattr(self, f"in_idx{k}")).reshape((n, w.shape[1], size) + rest)
            y = torch.einsum("oi,nic...->noc...", w.to(x), xin).reshape((n, w.shape[0] * size) + rest)
            out = out.index_copy(1, getattr(self, f"out_idx{k}"), y)
        if self.bias is not None:
            bias = self.bias.to(x).view((1, -1) + (1,) * len(rest)).expand((n, -1) + rest)
            out = out.index_add(1, self.bias_idx, bias)
        return out

    def __repr__(self) -> str:
        weights = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return f"FieldLinear({self.in_type!r} -> {self.out_type!r} | {weights} weights)"
