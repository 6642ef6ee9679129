"""Point-convolution blocks for any group: a gated convolution with a self-interaction, and a block
with non-linear messages.  They only use the field types' structure (which fields are trivial, which
share a representation), so they work on every backend."""
from __future__ import annotations

from typing import Any

import torch

from ..core.representation import FieldType
from .gate import Gate
from .linear import FieldLinear
from .point_conv import PointConv, check_graph

__all__ = ["PointConvBlock", "MessageBlock"]


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
        conv_out = self.gate.in_type if gate else out_type
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
        self.conv = PointConv(in_type + in_type, self.message_gate.in_type, **conv_kwargs)
        self.gate = Gate(out_type) if gate else None
        pre_activation = self.gate.in_type if gate else out_type
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
