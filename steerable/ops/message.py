"""Point-convolution messages ``K_e x[src_e]`` summed at their targets, in bounded memory."""

from __future__ import annotations

from typing import Any

import torch

from .blocks import row_blocks
from .transforms import transforms_active

#: Values of per-edge products (messages, their gradients) held at once on the CPU: 512 KiB in
#: float32, within a core's L2 cache (twice 256 KiB measured 8-10 % faster on 1 MiB L2 cores:
#: half as many small batched products; ``benchmarks/README.md``).
BLOCK_VALUES = 1 << 17
#: The same on a GPU, where each block costs kernel launches and memory is plentiful: 64 MiB.
GPU_BLOCK_VALUES = 1 << 24


def _blocks(n_edges: int, values_per_edge: int, device: torch.device) -> list[slice]:
    return row_blocks(n_edges, values_per_edge, device, BLOCK_VALUES, GPU_BLOCK_VALUES)


def edge_products(phi: torch.Tensor, x: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """The messages of one block of edges: ``phi`` ``(e, P, b)`` times the sources' features
    ``x[src]`` ``(e, i, b)``, laid out ``(e, i, P)``: the long ``P`` innermost.  For scalar inputs
    (``b = 1``) an outer product (a batched matmul of 1-wide matrices is ~10x slower, an elementwise
    product broadcast over a short inner dimension ~4x); else ``x[src] @ phi^T``, a batched product
    with the wide output (``(e, P, b) @ (e, b, i)``, the narrow one, ran 3.5-6x slower at ``i = 8``
    and ``P >= 24`` on an AMD EPYC with MKL, and alike at ``i = 16``: ``benchmarks/README.md``)."""
    f = x.index_select(0, src)  # (e, i, b)
    return f * phi.transpose(1, 2) if x.shape[2] == 1 else torch.bmm(f, phi.transpose(1, 2))


def targets_gradient_t(grad: torch.Tensor, b_size: int) -> torch.Tensor | None:
    """``grad`` ``(n_dst, P, i)`` laid out ``(n_dst, i, P)`` (one copy) where :func:`basis_gradient_t`
    gathers from that layout (inputs of size ``b > 1``), else ``None``."""
    return grad.transpose(1, 2).contiguous() if b_size > 1 else None


def basis_gradient_t(
    grad: torch.Tensor, grad_t: torch.Tensor | None, dst: torch.Tensor, f: torch.Tensor
) -> torch.Tensor:
    """``(e, b, P)``: the per-edge matrices' gradient ``grad[dst] @ f`` transposed, for the targets'
    gradient ``grad`` ``(n_dst, P, i)`` (``grad_t``: the same laid out ``(n_dst, i, P)``, from
    :func:`targets_gradient_t`) and the sources' features ``f`` ``(e, i, b)``: ``f^T grad[dst]^T``, the
    batched product with the wide output, gathered from ``grad_t`` where ``b > 1``.  On an AMD EPYC
    with MKL (``i = 8-16``, ``P = 32-72``, ``b = 3-5``) 1.2-2.3x faster than ``grad[dst] @ f`` with
    strided factors, another 1.1-2.1x with the contiguous ``grad_t``; for ``b = 1`` the strided
    factors run faster (``benchmarks/README.md``)."""
    if grad_t is None:
        return torch.bmm(f.transpose(1, 2), grad.index_select(0, dst).transpose(1, 2))
    return torch.bmm(f.transpose(1, 2), grad_t.index_select(0, dst))


def feature_gradient_t(g: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """``(e, b, i)``: the sources' features' gradient ``g^T phi`` transposed, for ``g`` ``(e, P, i)``
    (the targets' gradient gathered per edge) and ``phi`` ``(e, P, b)``: ``phi^T g`` (2-4.6x faster
    than ``g^T phi`` at the sizes of :func:`basis_gradient_t`; alike for ``b = 1``)."""
    return torch.bmm(phi.transpose(1, 2), g)


class _MessageSum(torch.autograd.Function):
    """``out[t, p, i] = sum_{e: dst_e = t} sum_b phi[e, p, b] x[src_e, i, b]``.

    The per-edge products ``(E, i, P)`` (the largest tensors of a message-passing step) exist only
    one block of edges at a time, in the forward and in the backward, and are never kept: backward
    keeps ``phi``, the node features and the indices, and gathers again.  The products are laid out
    ``(e, i, P)`` (:func:`edge_products`) and summed into an ``(n_dst, i, P)`` buffer returned as
    its transposed view (strided, not contiguous); the gradients use batched matmuls.  The backward
    is made of differentiable ops, so higher derivatives work.
    """

    @staticmethod
    def forward(
        ctx: Any, phi: torch.Tensor, x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, n_dst: int
    ) -> torch.Tensor:
        want_phi, want_x = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.save_for_backward(phi if want_x else None, x if want_phi else None, src, dst)
        ctx.phi_shape, ctx.x_shape = phi.shape, x.shape
        n_edges, width, n_in = phi.shape[0], phi.shape[1], x.shape[1]
        # summed in the products' (n_dst, i, P) layout (edge_products), returned transposed
        out = phi.new_zeros(n_dst, n_in, width)
        for block in _blocks(n_edges, width * n_in, phi.device):
            product = edge_products(phi[block], x, src[block])
            out.index_add_(0, dst[block], product)
            del product  # before the next block's are made
        return out.transpose(1, 2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        phi, x, src, dst = ctx.saved_tensors
        want_phi, want_x = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # Under create_graph (higher derivatives) the gradient must be built from differentiable
        # ops: blocks are concatenated.  Otherwise they are written into one buffer (no copy).
        differentiable = torch.is_grad_enabled()
        grad_phi_parts: list[torch.Tensor] = []
        grad_phi = grad.new_empty(ctx.phi_shape) if want_phi and not differentiable else None
        n_src, n_in, b_size = ctx.x_shape
        grad_x_t = grad.new_zeros(n_src, b_size, n_in) if want_x else None  # transposed: (N, b, i)
        grad_t = targets_gradient_t(grad, b_size) if want_phi else None
        for block in _blocks(dst.shape[0], grad.shape[1] * grad.shape[2], grad.device):
            if want_phi:
                part_t = basis_gradient_t(grad, grad_t, dst[block], x.index_select(0, src[block]))  # (e, b, P)
                if differentiable:
                    grad_phi_parts.append(part_t.transpose(1, 2))
                else:
                    grad_phi[block].copy_(part_t.transpose(1, 2))
                del part_t
            if want_x:
                part = feature_gradient_t(grad.index_select(0, dst[block]), phi[block])
                grad_x_t = (
                    grad_x_t.index_add(0, src[block], part)
                    if differentiable
                    else grad_x_t.index_add_(0, src[block], part)
                )
                del part
        grad_x = grad_x_t.transpose(1, 2) if want_x else None
        if want_phi and differentiable:
            if not grad_phi_parts:  # no edges
                grad_phi = grad.new_zeros(ctx.phi_shape)
            else:
                grad_phi = grad_phi_parts[0] if len(grad_phi_parts) == 1 else torch.cat(grad_phi_parts)
        return grad_phi, grad_x, None, None, None


def message_sum(phi: torch.Tensor, x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, n_dst: int) -> torch.Tensor:
    """Sum at each target of the messages ``phi_e x[src_e]^T`` of its edges.

    Shapes: ``phi`` ``(E, P, b)`` per-edge matrices, ``x`` ``(N, i, b)`` source-node features
    (``i`` vectors of length ``b`` each), ``src``, ``dst`` ``(E,)`` long -> ``(n_dst, P, i)`` with
    ``out[t, :, k] = sum_{e: dst_e = t} phi_e @ x[src_e, k]``.  Memory: the per-edge products exist
    only ``BLOCK_VALUES`` (GPU: ``GPU_BLOCK_VALUES``) at a time, in forward and backward (see
    :class:`_MessageSum`); under a ``torch.func`` transform all at once, in torch's own ops.
    """
    if phi.ndim != 3 or x.ndim != 3 or phi.shape[2] != x.shape[2]:
        raise ValueError(
            f"message_sum: phi (E, P, b) and x (N, i, b) expected, got {tuple(phi.shape)}, {tuple(x.shape)}"
        )
    if src.shape != (phi.shape[0],) or dst.shape != (phi.shape[0],):
        raise ValueError(f"message_sum: src and dst must have shape ({phi.shape[0]},)")
    if transforms_active():  # torch.func: torch's own ops, all edges at once
        products = edge_products(phi, x, src)
        return products.new_zeros(n_dst, *products.shape[1:]).index_add(0, dst, products).transpose(1, 2)
    return _MessageSum.apply(phi, x, src, dst, n_dst)
