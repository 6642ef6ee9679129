"""Group-agnostic building blocks on plain tensors: gated nonlinearity, per-node linear map, a
gated point-convolution block and a block with non-linear messages.  They work for any group and
backend, since they only use the field type's structure (which fields are trivial, which share a
representation)."""
from __future__ import annotations

from typing import Any

import torch

from .point_conv import PointConv, check_graph
from .representation import FieldType

__all__ = ["Gate", "FieldLinear", "PointConvBlock", "MessageBlock"]


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


class _ConvBlockTypes:
    """``group`` and ``attr_type`` of a block with ``in_type`` and a :class:`PointConv` ``conv``."""

    in_type: FieldType
    conv: PointConv

    @property
    def group(self):
        return self.in_type.group

    @property
    def attr_type(self) -> FieldType | None:
        return self.conv.attr_type


class PointConvBlock(_ConvBlockTypes, torch.nn.Module):
    """``Gate(PointConv(x) + SelfLinear(x))`` (``gate=False``: no gate, plain linear output)."""

    def __init__(self, in_type: FieldType, out_type: FieldType, gate: bool, conv_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.in_type, self.out_type = in_type, out_type
        self.gate = Gate(out_type) if gate else None
        conv_out = self.gate.in_type() if gate else out_type
        self.conv = PointConv(in_type, conv_out, **conv_kwargs)
        self.lin = FieldLinear(in_type, conv_out)

    def forward(self, x, pos, edge_index, edge_attr):
        y = self.conv(x, pos, edge_index, edge_attr) + self.lin(x)
        return self.gate(y) if self.gate is not None else y


class MessageBlock(_ConvBlockTypes, torch.nn.Module):
    """Message passing with non-linear messages whose first layer is an implicit-kernel convolution.

    For each edge ``j -> i`` (PyG convention: ``edge_index[0]`` = source ``j``, ``[1]`` = target ``i``)::

        m_ji = Gate(K(pos_j - pos_i, a_ji) [x_j ; x_i])                # message_type
        y_i  = Gate(W_self x_i + W_msg AGG_{j -> i} m_ji)              # out_type

    ``K`` is the implicit kernel of a :class:`PointConv` from ``in_type + in_type`` (source fields,
    then target fields), evaluated once per edge: both endpoints' features pass through kernels of
    the edge's geometry and attributes (as both enter SEGNN's messages through tensor products
    with the edge's harmonics), and the gate makes the message non-linear in them.  ``gate=False``
    drops the output gate (a linear read-out).  ``AGG`` is the sum over incoming edges, or with
    ``aggregation="mean"`` the mean (zero for a node without incoming edges).  Equivariant for any
    group: every map is.

    Shapes: ``x`` ``(N, in_type.size)``, ``pos`` ``(N, n)``, ``edge_index`` ``(2, E)``,
    ``edge_attr`` ``(E, attr)`` or ``None``; returns ``(N, out_type.size)``.
    """

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        message_type: FieldType,
        gate: bool,
        conv_kwargs: dict[str, Any],
        aggregation: str = "sum",
    ) -> None:
        super().__init__()
        if aggregation not in ("sum", "mean"):
            raise ValueError(f"MessageBlock: aggregation must be 'sum' or 'mean', got {aggregation!r}")
        self.aggregation = aggregation
        self.in_type, self.out_type = in_type, out_type
        self.message_gate = Gate(message_type)
        self.conv = PointConv(in_type + in_type, self.message_gate.in_type(), **conv_kwargs)
        self.gate = Gate(out_type) if gate else None
        pre_activation = self.gate.in_type() if gate else out_type
        self.lin_self = FieldLinear(in_type, pre_activation)
        self.lin_msg = FieldLinear(message_type, pre_activation, bias=False)

    def forward(self, x, pos, edge_index, edge_attr):
        self.in_type.check(x, dim=-1, what="MessageBlock input x")
        if x.ndim != 2:
            raise ValueError(f"MessageBlock: x must have shape (N, {self.in_type.size}), got {tuple(x.shape)}")
        check_graph("MessageBlock", self.group, x, pos, pos, edge_index)  # before edges index x and pos
        src, dst = edge_index
        edges = torch.arange(src.shape[0], device=src.device)
        pair = torch.cat([x.index_select(0, src), x.index_select(0, dst)], -1)
        # every edge is its own source and target
        pos_pair = (pos.index_select(0, src), pos.index_select(0, dst))
        pre = self.conv(pair, pos_pair, torch.stack([edges, edges]), edge_attr)
        messages = self.message_gate(pre)
        summed = messages.new_zeros(x.shape[0], messages.shape[1]).index_add_(0, dst, messages)
        if self.aggregation == "mean":
            degree = torch.bincount(dst, minlength=x.shape[0]).clamp_min(1).to(summed)
            summed = summed / degree[:, None]
        y = self.lin_self(x) + self.lin_msg(summed)
        return self.gate(y) if self.gate is not None else y
