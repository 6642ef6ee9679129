"""Point-convolution blocks for any group: a gated convolution with a self-interaction, and a block
with non-linear messages.  They only use the field types' structure (which fields are trivial, which
share a representation), so they work on every backend."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from ..core.representation import FieldType, as_field_type
from ._repr import block_repr
from .bias import InvariantBias
from .checks import check_count, check_max_radius
from .gate import Gate
from .kernel import ImplicitKernel
from .linear import FieldLinear
from .point_conv import PointConv, auto_chunk_size, check_point_inputs


def conv_options(who: str, conv_kwargs: dict[str, Any] | None, max_radius: float | None) -> dict[str, Any]:
    """A block's :class:`~steerable.nn.point_conv.PointConv` options: ``conv_kwargs`` with ``max_radius``.

    ``max_radius`` comes as the block's keyword or as ``conv_kwargs["max_radius"]`` (both: they
    must agree); neither: ``None``, the scale-free kernel of :class:`~steerable.nn.PointConv`.
    """
    options = dict(conv_kwargs or {})
    given = options.get("max_radius")
    if max_radius is not None and given is not None and given != max_radius:
        raise ValueError(f"{who}: max_radius={max_radius!r} and conv_kwargs['max_radius']={given!r} disagree")
    radius = max_radius if max_radius is not None else given
    options["max_radius"] = check_max_radius(radius, who)
    return options


__all__ = ["PointConvBlock", "MessageBlock"]


class PointConvBlock(torch.nn.Module):
    """``Gate(PointConv(x) + SelfLinear(x))`` (``gate=False``: no gate, plain linear output).

    ``conv_kwargs`` are :class:`~steerable.nn.point_conv.PointConv`'s options; ``max_radius``
    (required: the graph's cutoff in the units of ``pos``) is given as a keyword or among them.
    """

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        gate: bool,
        conv_kwargs: dict[str, Any] | None = None,
        *,
        max_radius: float | None = None,
    ) -> None:
        super().__init__()
        options = conv_options("PointConvBlock", conv_kwargs, max_radius)
        self.in_type, self.out_type = in_type, out_type
        self.gate = Gate(out_type) if gate else None
        conv_out = self.gate.in_type if gate else out_type
        self.conv = PointConv(in_type, conv_out, **options)
        self.lin = FieldLinear(in_type, conv_out)
        self.attr_type: FieldType | None = self.conv.attr_type

    @property
    def group(self):
        return self.in_type.group

    def reset_parameters(self) -> None:
        """Re-initialise every child as at construction."""
        reset_children(self)

    def __repr__(self) -> str:
        return block_repr(self, self.in_type, self.out_type, [f"gate={self.gate is not None}"])

    def forward(self, x, pos, edge_index, edge_attr):
        y = self.conv(x, pos, edge_index, edge_attr) + self.lin(x)
        return self.gate(y) if self.gate is not None else y


class MessageBlock(torch.nn.Module):
    """Message passing with non-linear messages whose first layer is an implicit kernel.

    For each edge ``j -> i`` (PyG convention: ``edge_index[0]`` = source ``j``, ``[1]`` = target ``i``)::

        m_ji = Gate(K(pos_j - pos_i, a_ji) [x_j ; x_i] + b)            # message_type
        y_i  = Gate(W_self x_i + W_msg AGG_{j -> i} m_ji)              # out_type

    ``K`` (``kernel``) is an :class:`~steerable.nn.kernel.ImplicitKernel` from ``in_type + in_type``
    (source fields, then target fields), evaluated once per edge by its ``message`` operation:
    both endpoints' features pass through kernels of the edge's geometry and attributes (as both
    enter SEGNN's messages through tensor products with the edge's harmonics), and the gate makes
    the message non-linear in them; ``b`` (``bias``) is a learnable bias on the invariant channels.
    ``gate=False`` drops the output gate (a linear read-out).  ``AGG`` is the sum over incoming
    edges, or with ``aggregation="mean"`` the mean (zero for a node without incoming edges).
    Equivariant for any group: every map is.

    ``conv_kwargs`` are :class:`~steerable.nn.point_conv.PointConv`'s options, with its defaults,
    for the message kernel: ``edge_attr``, ``max_radius`` (here or as the block's keyword: the
    graph's cutoff in the units of ``pos``; neither: the scale-free kernel), ``bias``, ``chunk_size`` (edges whose
    messages are computed at once, checkpointed in training; automatic by default),
    ``basis_size``, ``envelope_width`` and the kernel MLP options.

    Shapes: ``x`` ``(N, in_type.size)``, ``pos`` ``(N, n)``, ``edge_index`` ``(2, E)``,
    ``edge_attr`` ``(E, attr)`` or ``None``; returns ``(N, out_type.size)``.
    """

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        message_type: FieldType,
        gate: bool,
        conv_kwargs: dict[str, Any] | None = None,
        aggregation: str = "sum",
        *,
        max_radius: float | None = None,
    ) -> None:
        super().__init__()
        conv_kwargs = conv_options("MessageBlock", conv_kwargs, max_radius)
        if aggregation not in ("sum", "mean"):
            raise ValueError(f"MessageBlock: aggregation must be 'sum' or 'mean', got {aggregation!r}")
        self.aggregation = aggregation
        self.in_type, self.out_type = in_type, out_type
        self.message_gate = Gate(message_type)
        pre_message = self.message_gate.in_type
        # PointConv's options and defaults, read from its signature (one place for both layers)
        options = inspect.signature(PointConv).bind(in_type, pre_message, **conv_kwargs)
        options.apply_defaults()
        opt = options.arguments
        self.attr_type = as_field_type(in_type.group, opt["edge_attr"], "MessageBlock edge_attr")
        self.kernel = ImplicitKernel(
            in_type + in_type,
            pre_message,
            self.attr_type,
            basis_size=opt["basis_size"],
            max_radius=opt["max_radius"],
            envelope_width=opt["envelope_width"],
            **opt["mlp"],
        )
        self.bias = InvariantBias(pre_message) if opt["bias"] else None
        check_count(opt["chunk_size"], "MessageBlock", "chunk_size", allow_none=True)
        self.chunk_size = opt["chunk_size"] or auto_chunk_size(self.kernel, fused=False)
        self.gate = Gate(out_type) if gate else None
        pre_activation = self.gate.in_type if gate else out_type
        self.lin_self = FieldLinear(in_type, pre_activation)
        self.lin_msg = FieldLinear(message_type, pre_activation, bias=False)
        self._register_load_state_dict_pre_hook(_rename_pre_kernel_keys)

    @property
    def group(self):
        return self.in_type.group

    def reset_parameters(self) -> None:
        """Re-initialise every child as at construction."""
        reset_children(self)

    def __repr__(self) -> str:
        details = [
            f"gate={self.gate is not None}",
            f"aggregation={self.aggregation!r}",
            f"chunk_size={self.chunk_size}",
        ]
        return block_repr(self, self.in_type, self.out_type, details)

    def forward(self, x, pos, edge_index, edge_attr):
        check_point_inputs("MessageBlock", self.in_type, self.kernel, x, pos, pos, edge_index, edge_attr)
        src, dst = edge_index
        x_edge = torch.cat([x.index_select(0, src), x.index_select(0, dst)], -1)
        rel = pos.index_select(0, src) - pos.index_select(0, dst)  # pos_j - pos_i
        pre = self._messages(rel, edge_attr, x_edge)
        if self.bias is not None and self.bias.bias is not None:
            pre = pre + self.bias.vector().to(pre)
        messages = self.message_gate(pre)
        summed = messages.new_zeros(x.shape[0], messages.shape[1]).index_add_(0, dst, messages)
        if self.aggregation == "mean":
            # index_add, not bincount: bincount's length depends on the values (no static shape)
            degree = summed.new_zeros(x.shape[0]).index_add_(0, dst, summed.new_ones(dst.shape[0])).clamp_min(1)
            summed = summed / degree[:, None]
        y = self.lin_self(x) + self.lin_msg(summed)
        return self.gate(y) if self.gate is not None else y

    def _messages(self, rel: torch.Tensor, edge_attr: torch.Tensor | None, x_edge: torch.Tensor) -> torch.Tensor:
        """``kernel.message`` in chunks of ``chunk_size`` edges, checkpointed in training but the last
        (its backward runs first, before any other chunk is made again, as in ``PointConv``)."""
        n_edges, step = rel.shape[0], self.chunk_size
        if n_edges <= step:
            return self.kernel.message(rel, edge_attr, x_edge)
        use_checkpoint = self.training and torch.is_grad_enabled()
        parts = []
        for start in range(0, n_edges, step):
            chunk = slice(start, start + step)
            args = (rel[chunk], edge_attr[chunk] if edge_attr is not None else None, x_edge[chunk])
            parts.append(
                checkpoint(self.kernel.message, *args, use_reentrant=False)
                if use_checkpoint and start + step < n_edges
                else self.kernel.message(*args)
            )
        return torch.cat(parts)


def reset_children(module: torch.nn.Module) -> None:
    """``reset_parameters()`` of every direct child of ``module`` that offers it."""
    for child in module.children():
        reset = getattr(child, "reset_parameters", None)
        if callable(reset):
            reset()


def _rename_pre_kernel_keys(state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Load checkpoints of MessageBlocks that held their kernel in a PointConv (``conv.kernel.*``,
    ``conv.bias.*``, before the kernel offered ``message``): the same tensors under new names."""
    for old, new in (("conv.kernel.", "kernel."), ("conv.bias.", "bias.")):
        for key in [k for k in state_dict if k.startswith(prefix + old)]:
            state_dict[prefix + new + key[len(prefix + old) :]] = state_dict.pop(key)
