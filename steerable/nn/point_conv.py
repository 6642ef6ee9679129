"""Steerable point convolution with an implicit kernel (message passing over edges, PyG's edge convention)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from ..core.representation import FieldType, as_field_type
from ..ops.transforms import transforms_active
from ._repr import layer_repr
from .bias import InvariantBias
from .checks import (
    check_attributes,
    check_count,
    check_finite,
    check_index,
    check_layer_dtype,
    check_max_radius,
    parameter_dtype,
)
from .kernel import EnvelopeWidth, ImplicitKernel

PairTensor = tuple[torch.Tensor, torch.Tensor]


class _AddRows(torch.autograd.Function):
    """``total.index_add(0, index, rows)`` keeping only ``index`` for backward.

    Autograd's own ``index_add`` keeps ``rows`` alive for backward only to read its shape: with
    one chunk's output per call, that would keep every chunk's output until backward.
    """

    @staticmethod
    def forward(ctx: Any, total: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(index)
        return total.index_add(0, index, rows)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, torch.Tensor | None]:
        (index,) = ctx.saved_tensors
        return grad, None, (grad.index_select(0, index) if ctx.needs_input_grad[2] else None)


# Per-edge values kept for backward (kernel-MLP activations, basis kernels) held at once when
# chunk_size is automatic: 16M values, 64 MiB in float32.
_AUTO_CHUNK_VALUES = 1 << 24


def saved_values_per_edge(kernel: ImplicitKernel, fused: bool, n: int = 32) -> float:
    """Values autograd keeps per edge for backward, measured once on ``n`` probe edges.

    Counts the tensors saved by ``kernel.message_and_aggregate`` (``fused``) or ``kernel.message``
    (kernel-MLP activations, basis kernels; node features count as if per edge, erring on the safe
    side).  Backend-independent: whatever the MLP keeps is counted.
    """
    gen = torch.Generator().manual_seed(0)
    pos, attr = kernel.probe_inputs(n, gen)
    x = torch.randn(n, kernel.in_type.size, generator=gen).to(pos).requires_grad_()
    index = torch.arange(n)
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        if t.dim() and t.shape[0] == n:
            saved += t.numel()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if fused:
            kernel.message_and_aggregate(pos, attr, x, index, index, n)
        else:
            kernel.message(pos, attr, x)
    return saved / n


def auto_chunk_size(kernel: ImplicitKernel, fused: bool, n: int = 32) -> int:
    """Edges per chunk that keep about ``_AUTO_CHUNK_VALUES`` values for backward (at least 256),
    from :func:`saved_values_per_edge`, so automatic chunks fit the memory budget whatever the MLP."""
    return max(256, int(_AUTO_CHUNK_VALUES // saved_values_per_edge(kernel, fused, n)))


class PointConv(torch.nn.Module):
    """``y_i = bias + sum_{j -> i} K(pos_j - pos_i, a_ji) x_j`` with an implicit steerable kernel ``K``.

    Conventions (PyG): ``edge_index[0]`` holds the source ``j``, ``edge_index[1]`` the target ``i``;
    the kernel is evaluated at ``pos[j] - pos[i]``; messages are summed at ``i``.  Equivariant under
    ``x -> rho_in(g) x``, ``pos -> g pos + t``, ``a -> rho_attr(g) a``.

    Shapes: ``x`` ``(N, in_type.size)`` or a pair ``(x_src, x_dst)`` (``x_dst`` unused, may be
    ``None``); ``pos`` ``(N, n)`` or a pair ``(pos_src, pos_dst)`` for bipartite / downsampled
    targets; ``edge_index`` ``(2, E)`` long; ``edge_attr`` ``(E, attr.size)``.  Returns
    ``(N_dst, out_type.size)``.

    Computation: :meth:`ImplicitKernel.message_and_aggregate
    <steerable.nn.kernel.ImplicitKernel.message_and_aggregate>` of the layer's kernel, per chunk of
    edges.  With the default shared-basis kernel (``basis_size=M``,
    :class:`~steerable.nn.kernel.SharedBasisKernel`) no ``(E, out, in)`` kernel is built: each edge
    applies its ``M`` basis kernels per representation pair to the source features, the results
    are summed at the targets, and the learned mixing to output fields runs once per target node.
    With ``basis_size=None`` (:class:`~steerable.nn.kernel.DenseKernel`) each edge's full kernel
    multiplies its source features.

    Memory: per-edge messages (basis kernels applied to source features) and their gradients exist
    only one block of edges at a time and are never kept (:func:`~steerable.ops.message.message_sum`);
    what grows with the edges is the kernel MLP's activations.  Edges are processed in chunks of
    ``chunk_size`` (automatic: as many edges as keep about 16M values for backward, 64 MiB in
    float32, measured for the layer's kernel MLP at construction); with more than one chunk, each
    is summed and mixed for the targets it touches only, and checkpointed in training (all but the
    last, whose backward runs first), so peak memory is bounded by the chunk (plus the ``(N_dst,
    out)`` output), not by the edge count.

    Input checks (:mod:`steerable.nn.checks`): types, shapes, dtypes and devices are checked on
    every call; the checks that read values (``x``, positions and ``edge_attr`` finite,
    ``edge_index`` within range) run on CPU tensors always, on accelerator tensors only in debug
    mode (``steerable.nn.set_debug(True)`` or ``STEERABLE_DEBUG=1``), since each would make the host
    wait for the device; they are skipped under ``torch.compile``.  A graph without edges (or
    without nodes) is valid: the output is the bias alone.

    Radial range: ``max_radius`` is the length scale of the data, in the units of ``pos``: pass the
    cutoff your graph was built with (``radius_graph(pos, r)``: ``max_radius=r``; for a k-NN or
    fully connected graph, the largest edge length you expect).  The kernel then resolves edge
    lengths in ``[0, max_radius]``, and longer edges see a kernel that decays with the default
    envelope.  Without it (``None``) the kernel is scale-free: it sees ``x / sqrt(1 + |x|^2)``,
    which tells every distance from every other, at a resolution that falls with the distance
    (:class:`~steerable.nn.kernel.ImplicitKernel`, "Radial range").  Give the cutoff when you know it.

    Args:
        in_type, out_type: input and output field types (same group).
        edge_attr: field type of edge attributes, or an int count of invariant scalars, or ``None``.
        max_radius: the graph's cutoff in the units of ``pos`` (a finite number > 0), or ``None``
            (default) for the scale-free kernel.
        bias: learnable bias on the invariant output channels.
        chunk_size: edges per chunk, or ``None`` for automatic.
        basis_size: basis kernels per representation pair, or ``None`` for a dense kernel
            (:class:`~steerable.nn.kernel.ImplicitKernel`).
        envelope_width: initial width of the learnable Gaussian radial envelope in the units of
            ``pos``; ``"auto"`` (default): ``max_radius`` (none when ``max_radius`` is ``None``);
            ``None``: no envelope.
        **mlp: kernel MLP options (``hidden_channels``, ``hidden_layers``, ``radial_features``,
            ``nonlinearity``, ``options``), see :class:`~steerable.core.mlp.KernelMLPSpec`.
    """

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        edge_attr: FieldType | int | None = None,
        *,
        max_radius: float | None = None,
        bias: bool = True,
        chunk_size: int | None = None,
        basis_size: int | None = ImplicitKernel.BASIS_SIZE,
        envelope_width: EnvelopeWidth = "auto",
        **mlp: Any,
    ) -> None:
        super().__init__()
        if not isinstance(in_type, FieldType) or not isinstance(out_type, FieldType):
            raise TypeError("PointConv: in_type and out_type must be FieldType instances")
        max_radius = check_max_radius(max_radius, "PointConv")
        self.in_type, self.out_type = in_type, out_type
        self.attr_type = as_field_type(in_type.group, edge_attr, "PointConv edge_attr")
        self.kernel = ImplicitKernel(
            in_type,
            out_type,
            self.attr_type,
            basis_size=basis_size,
            max_radius=max_radius,
            envelope_width=envelope_width,
            **mlp,
        )
        self.bias = InvariantBias(out_type) if bias else None
        check_count(chunk_size, "PointConv", "chunk_size", allow_none=True)
        self.chunk_size = chunk_size or auto_chunk_size(self.kernel, fused=True)

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

        n_edges, n_dst = edge_index.shape[1], pos_dst.shape[0]
        if n_edges <= self.chunk_size:
            out = self._chunk_output(x_src, pos_src, pos_dst, edge_index, edge_attr)
        else:
            # Each chunk reads only the sources it uses and is summed at (and, with a shared basis,
            # mixed for) only the targets it touches (the per-target sums of a shared basis are
            # much wider than the output); the outputs are added in: memory and work per chunk are
            # bounded by the chunk, whatever the number of nodes.
            out = x_src.new_zeros(n_dst, self.out_type.size)
            plain = transforms_active()  # torch.func: torch's own ops, no recompute
            for start in range(0, n_edges, self.chunk_size):
                stop = min(start + self.chunk_size, n_edges)
                sources, local_src = torch.unique(edge_index[0, start:stop], return_inverse=True)
                targets, local_dst = torch.unique(edge_index[1, start:stop], return_inverse=True)
                attr = edge_attr[start:stop] if edge_attr is not None else None
                args = (x_src, pos_src, pos_dst, torch.stack([local_src, local_dst]), attr, sources, targets)
                # the last chunk is not checkpointed: its backward runs first, before any other chunk
                # is made again, so keeping it adds nothing to the peak and saves its recompute
                if self.training and torch.is_grad_enabled() and not plain and stop < n_edges:
                    part = checkpoint(self._chunk_output, *args, use_reentrant=False)
                else:
                    part = self._chunk_output(*args)
                out = out.index_add(0, targets, part) if plain else _AddRows.apply(out, targets, part)
        if self.bias is not None and self.bias.bias is not None:
            out = out + self.bias.vector().to(out)
        return out

    def _chunk_output(
        self,
        x_src: torch.Tensor,
        pos_src: torch.Tensor,
        pos_dst: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor | None,
        sources: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(n_targets, out)``: the messages of some edges summed at their targets.

        With ``sources`` / ``targets`` the edges index those rows of ``x_src`` / ``pos_src`` and
        ``pos_dst`` (gathered here, inside a checkpoint, so that no chunk's gathered rows are kept).
        """
        if sources is not None:
            x_src, pos_src = x_src.index_select(0, sources), pos_src.index_select(0, sources)
        if targets is not None:
            pos_dst = pos_dst.index_select(0, targets)
        src, dst = edge_index
        rel = pos_src.index_select(0, src) - pos_dst.index_select(0, dst)  # pos_j - pos_i
        return self.kernel.message_and_aggregate(rel, edge_attr, x_src, src, dst, pos_dst.shape[0])

    def _check_inputs(self, x, pos_src, pos_dst, edge_index, edge_attr) -> None:
        check_point_inputs("PointConv", self.in_type, self.kernel, x, pos_src, pos_dst, edge_index, edge_attr)

    def reset_parameters(self) -> None:
        """Re-initialise the kernel and the bias as at construction."""
        self.kernel.reset_parameters()
        if self.bias is not None:
            self.bias.reset_parameters()

    def __repr__(self) -> str:
        details = [self.kernel._details(), f"chunk_size={self.chunk_size}"]
        if self.bias is None:
            details.append("bias=False")
        return layer_repr(self, self.in_type, self.out_type, details)


def check_point_inputs(
    who: str,
    in_type: FieldType,
    kernel: ImplicitKernel,
    x: torch.Tensor,
    pos_src: torch.Tensor,
    pos_dst: torch.Tensor,
    edge_index: torch.Tensor,
    edge_attr: torch.Tensor | None,
) -> None:
    """Check the inputs of a point layer named ``who`` with node features of ``in_type``, edges through ``kernel``.

    ``x`` ``(N, in_type.size)`` finite, of the kernel's dtype; positions and edges as in
    :func:`check_graph`; ``edge_attr`` ``(E, kernel.attr_type.size)``, finite, of ``x``'s dtype,
    exactly when the kernel takes attributes.  Value checks (finiteness, index ranges) follow the
    rule of :mod:`steerable.nn.checks`.  Raises a ``ValueError`` or ``TypeError`` that names the
    offending argument.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: x must be a torch.Tensor, got {type(x).__name__}")
    in_type.check(x, dim=-1, what=f"{who} input x")
    if x.ndim != 2:
        raise ValueError(f"{who}: x must have shape (N, {in_type.size}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: x must be floating point, got {x.dtype}")
    check_layer_dtype(x, parameter_dtype(kernel), who, "input")
    check_graph(who, kernel.group, x, pos_src, pos_dst, edge_index)
    check_finite(x, who, "input x")
    check_attributes(
        edge_attr,
        kernel.attr_type,
        who,
        "edge_attr",
        rows=(edge_index.shape[1], "edge"),
        like=(x, "x"),
        built_without="edge_attr",
    )


def check_graph(
    who: str, group, x: torch.Tensor, pos_src: torch.Tensor, pos_dst: torch.Tensor, edge_index: torch.Tensor
) -> None:
    """Check positions and edges of a point layer named ``who`` whose source features are ``x``.

    ``pos_src`` ``(N, n)`` with one row per row of ``x``, ``pos_dst`` ``(N_dst, n)``, both finite and
    of ``x``'s dtype (``n = group.dim``); ``edge_index`` ``(2, E)`` long, sources ``< N``, targets
    ``< N_dst``.  Value checks follow the rule of :mod:`steerable.nn.checks`.  Raises a
    ``ValueError`` or ``TypeError`` that names the offending argument.
    """
    n = group.dim
    for name, p in (("pos", pos_src), ("target pos", pos_dst)):
        if not isinstance(p, torch.Tensor) or p.ndim != 2 or p.shape[1] != n:
            shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
            raise ValueError(f"{who}: {name} must have shape (N, {n}) for {group!r}, got {shape}")
        if p.dtype != x.dtype:
            raise TypeError(f"{who}: {name} is {p.dtype} but x is {x.dtype}")
        if p.device != x.device:
            raise ValueError(f"{who}: {name} is on {p.device} but x is on {x.device}")
    if pos_src.shape[0] != x.shape[0]:
        raise ValueError(f"{who}: {x.shape[0]} feature rows but {pos_src.shape[0]} source positions")
    if not isinstance(edge_index, torch.Tensor) or edge_index.ndim != 2 or edge_index.shape[0] != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, torch.Tensor) else type(edge_index).__name__
        raise ValueError(f"{who}: edge_index must have shape (2, E), got {shape}")
    if edge_index.dtype != torch.long:
        raise TypeError(f"{who}: edge_index must be torch.long, got {edge_index.dtype}")
    if edge_index.device != x.device:
        raise ValueError(f"{who}: edge_index is on {edge_index.device} but x is on {x.device}")
    check_finite(pos_src, who, "pos")
    if pos_dst is not pos_src:  # one tensor (the usual case): checked once
        check_finite(pos_dst, who, "target pos")
    check_index(edge_index, pos_src.shape[0], pos_dst.shape[0], who)
