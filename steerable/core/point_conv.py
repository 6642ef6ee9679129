"""Steerable point convolution with an implicit kernel, as a torch-geometric ``MessagePassing`` layer."""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint
from torch_geometric.nn import MessagePassing

from .kernel import ImplicitKernel, InvariantBias
from .representation import FieldType, as_field_type

PairTensor = tuple[torch.Tensor, torch.Tensor]

# Entries of the per-edge kernel matrices held at once when chunk_size is automatic (~16 MB fp32).
_AUTO_CHUNK_ENTRIES = 1 << 22


class PointConv(MessagePassing):
    """``y_i = bias + sum_{j -> i} K(pos_j - pos_i, a_ji) x_j`` with an implicit steerable kernel ``K``.

    Conventions (PyG): ``edge_index[0]`` holds the source ``j``, ``edge_index[1]`` the target ``i``;
    the kernel is evaluated at ``pos[j] - pos[i]``; messages are summed at ``i``.  Equivariant under
    ``x -> rho_in(g) x``, ``pos -> g pos + t``, ``a -> rho_attr(g) a``.

    Shapes: ``x`` ``(N, in_type.size)`` or a pair ``(x_src, x_dst)`` (``x_dst`` unused, may be
    ``None``); ``pos`` ``(N, n)`` or a pair ``(pos_src, pos_dst)`` for bipartite / downsampled
    targets; ``edge_index`` ``(2, E)`` long; ``edge_attr`` ``(E, attr.size)``.  Returns
    ``(N_dst, out_type.size)``.

    Memory: edges are processed in chunks of ``chunk_size`` (automatic: about 4M kernel entries per
    chunk); in training each chunk is checkpointed, so peak memory is bounded by the chunk, not by
    ``E * out.size * in.size``.

    Args:
        in_type, out_type: input and output field types (same group).
        edge_attr: field type of edge attributes, or an int count of invariant scalars, or ``None``.
        bias: learnable bias on the invariant output channels.
        chunk_size: edges per chunk, or ``None`` for automatic.
        envelope_width: initial width of the learnable Gaussian radial envelope, ``None`` for none.
        **mlp: kernel MLP options (``hidden_channels``, ``hidden_layers``, ``radial_features``,
            ``max_radius``, ``nonlinearity``, ``options``), see :class:`~steerable.core.mlp.KernelMLPSpec`.
    """

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        edge_attr: FieldType | int | None = None,
        *,
        bias: bool = True,
        chunk_size: int | None = None,
        envelope_width: float | None = None,
        **mlp: Any,
    ) -> None:
        super().__init__(aggr="add", flow="source_to_target", node_dim=0)
        if not isinstance(in_type, FieldType) or not isinstance(out_type, FieldType):
            raise TypeError("PointConv: in_type and out_type must be FieldType instances")
        self.in_type, self.out_type = in_type, out_type
        self.attr_type = as_field_type(in_type.group, edge_attr, "PointConv edge_attr")
        self.kernel = ImplicitKernel(in_type, out_type, self.attr_type, envelope_width=envelope_width, **mlp)
        self.bias = InvariantBias(out_type) if bias else None
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"PointConv: chunk_size must be positive, got {chunk_size}")
        self.chunk_size = chunk_size or max(256, _AUTO_CHUNK_ENTRIES // (in_type.size * out_type.size))

    @property
    def group(self):
        return self.in_type.group

    def forward(
        self,
        x: torch.Tensor | tuple[torch.Tensor, torch.Tensor | None],
        pos: torch.Tensor | PairTensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x_src = x[0] if isinstance(x, (tuple, list)) else x
        pos_src, pos_dst = pos if isinstance(pos, (tuple, list)) else (pos, pos)
        self._check_inputs(x_src, pos_src, pos_dst, edge_index, edge_attr)

        n_edges, size = edge_index.shape[1], (pos_src.shape[0], pos_dst.shape[0])
        out = x_src.new_zeros(pos_dst.shape[0], self.out_type.size)
        chunked = n_edges > self.chunk_size
        for start in range(0, n_edges, self.chunk_size):
            stop = min(start + self.chunk_size, n_edges)
            attr = edge_attr[start:stop] if edge_attr is not None else None
            args = (x_src, pos_src, pos_dst, edge_index[:, start:stop], attr, size)
            if chunked and self.training and torch.is_grad_enabled():
                out = out + checkpoint(self._propagate_chunk, *args, use_reentrant=False)
            else:
                out = out + self._propagate_chunk(*args)
        if self.bias is not None and self.bias.bias is not None:
            out = out + self.bias.vector().to(out)
        return out

    def _propagate_chunk(self, x_src, pos_src, pos_dst, edge_index, edge_attr, size):
        return self.propagate(edge_index, x=(x_src, None), pos=(pos_src, pos_dst), edge_attr=edge_attr, size=size)

    def message(self, x_j: torch.Tensor, pos_j: torch.Tensor, pos_i: torch.Tensor, edge_attr: torch.Tensor | None) -> torch.Tensor:
        kernel = self.kernel(pos_j - pos_i, edge_attr)  # (E, out, in)
        return torch.bmm(kernel, x_j.unsqueeze(-1)).squeeze(-1)

    def _check_inputs(self, x, pos_src, pos_dst, edge_index, edge_attr) -> None:
        n = self.group.dim
        self.in_type.check(x, dim=-1, what="PointConv input x")
        if x.ndim != 2:
            raise ValueError(f"PointConv: x must have shape (N, {self.in_type.size}), got {tuple(x.shape)}")
        for name, p in (("pos", pos_src), ("target pos", pos_dst)):
            if not isinstance(p, torch.Tensor) or p.ndim != 2 or p.shape[1] != n:
                shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
                raise ValueError(f"PointConv: {name} must have shape (N, {n}) for {self.group!r}, got {shape}")
            if p.dtype != x.dtype:
                raise TypeError(f"PointConv: {name} is {p.dtype} but x is {x.dtype}")
            if not torch.isfinite(p).all():
                raise ValueError(f"PointConv: {name} contains NaN or infinite coordinates")
        if pos_src.shape[0] != x.shape[0]:
            raise ValueError(f"PointConv: {x.shape[0]} feature rows but {pos_src.shape[0]} source positions")
        if not torch.isfinite(x).all():
            raise ValueError("PointConv: input x contains NaN or infinite values")
        param = next(self.kernel.parameters(), None)
        if param is not None and param.dtype != x.dtype:
            raise TypeError(f"PointConv: input is {x.dtype} but the layer is {param.dtype} (use .to(dtype))")
        if not isinstance(edge_index, torch.Tensor) or edge_index.ndim != 2 or edge_index.shape[0] != 2:
            raise ValueError(f"PointConv: edge_index must have shape (2, E), got {getattr(edge_index, 'shape', edge_index)}")
        if edge_index.dtype != torch.long:
            raise TypeError(f"PointConv: edge_index must be torch.long, got {edge_index.dtype}")
        if edge_index.numel():
            if edge_index.min() < 0 or edge_index[0].max() >= pos_src.shape[0] or edge_index[1].max() >= pos_dst.shape[0]:
                raise ValueError(
                    f"PointConv: edge_index out of range for {pos_src.shape[0]} sources / {pos_dst.shape[0]} targets"
                )
        if self.attr_type is None:
            if edge_attr is not None:
                raise ValueError("PointConv: got edge_attr but the layer was built without edge_attr")
        else:
            if edge_attr is None:
                raise ValueError(f"PointConv: edge_attr of type {self.attr_type!r} is required")
            self.attr_type.check(edge_attr, dim=-1, what="PointConv edge_attr")
            if edge_attr.shape[0] != edge_index.shape[1]:
                raise ValueError(f"PointConv: {edge_index.shape[1]} edges but {edge_attr.shape[0]} edge_attr rows")

    def extra_repr(self) -> str:
        return f"{self.in_type!r} -> {self.out_type!r}, edge_attr={self.attr_type!r}, chunk_size={self.chunk_size}"
