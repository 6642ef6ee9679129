"""``(x2 ⊗ x1) @ A``, a bilinear map of two per-row vectors, without keeping the outer product.

A bilinear map ``B(x1, x2)`` of per-edge vectors ``x1`` ``(E, d1)`` and ``x2`` ``(E, d2)`` written as one
matrix is ``(x2 ⊗ x1) @ A`` with ``A`` ``(d2 d1, d_out)``: one outer product and one matrix product with
a wide output, the fast shapes on a CPU.  In plain autograd that product keeps the outer product
``(E, d2 d1)`` for ``A``'s gradient and forms ``(E, d2 d1)`` again for the gradient of the operands,
``d2`` times the memory of ``x1``: for the e3nn kernel MLP's output layer (``d2 = 12``) it was the
largest tensor of the whole layer.  :func:`outer_matmul` keeps ``x1``, ``x2`` and ``A`` only and forms
the outer product and its gradient one block of rows at a time, in the forward and again in the
backward (:data:`BLOCK_VALUES` values each), with the same matrix products:

    ``grad_A = sum_blocks (x2 ⊗ x1)^T g``,
    ``G = (g @ A^T).view(e, d2, d1)``, ``grad_x1 = x2^T G``, ``grad_x2 = G x1`` (per row).
"""

from __future__ import annotations

from typing import Any

import torch

from .blocks import row_blocks
from .transforms import compiling_or_transformed

__all__ = ["outer_matmul"]

#: Values of the outer product (and of its gradient) formed at once on the CPU: 1 MiB in float32.
BLOCK_VALUES = 1 << 18
#: The same on a GPU, where each block costs kernel launches: 64 MiB.
GPU_BLOCK_VALUES = 1 << 24
#: ``(d2, d1)`` from which :func:`_rows_times` takes a batched product.
_BMM_MIN = (8, 32)


def outer_matmul(x1: torch.Tensor, x2: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``(x2 ⊗ x1) @ matrix``: row ``(j, i)`` of the outer product is ``x2[:, j] x1[:, i]``.

    Shapes: ``x1`` ``(E, d1)``, ``x2`` ``(E, d2)``, ``matrix`` ``(d2 d1, d_out)`` -> ``(E, d_out)``.  The
    outer product ``(E, d2 d1)`` exists only a block of rows at a time and is not kept for backward
    (module docstring); under ``torch.compile`` or a ``torch.func`` transform, and in a backward with
    ``create_graph=True``, the same formulas run on whole tensors in torch's own operators.
    """
    if x1.ndim != 2 or x2.ndim != 2 or x1.shape[0] != x2.shape[0]:
        raise ValueError(f"outer_matmul: x1 (E, d1) and x2 (E, d2) expected, got {tuple(x1.shape)}, {tuple(x2.shape)}")
    if matrix.ndim != 2 or matrix.shape[0] != x1.shape[1] * x2.shape[1]:
        raise ValueError(
            f"outer_matmul: matrix ({x2.shape[1]} * {x1.shape[1]}, d_out) expected, got {tuple(matrix.shape)}"
        )
    if compiling_or_transformed() or len(_blocks(x1.shape[0], matrix.shape[0], x1.device)) <= 1:
        return _outer(x1, x2) @ matrix  # autograd keeps at most one block
    if not torch.is_grad_enabled() or not (x1.requires_grad or x2.requires_grad or matrix.requires_grad):
        return _blockwise_forward(x1, x2, matrix)
    return _OuterMatmul.apply(x1, x2, matrix)


def _outer(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    return (x2.unsqueeze(2) * x1.unsqueeze(1)).reshape(x1.shape[0], x1.shape[1] * x2.shape[1])


def _blocks(rows: int, width: int, device: torch.device) -> list[slice]:
    return row_blocks(rows, width, device, BLOCK_VALUES, GPU_BLOCK_VALUES)


def _blockwise_forward(x1: torch.Tensor, x2: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    out = x1.new_empty(x1.shape[0], matrix.shape[1])
    for block in _blocks(x1.shape[0], matrix.shape[0], x1.device):
        torch.mm(_outer(x1[block], x2[block]), matrix, out=out[block])
    return out


def _rows_times(b: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``(e, d1)``: per row ``b^T G`` of ``b`` ``(e, d2)`` and ``G`` ``(e, d2, d1)``.  A batched product
    where ``d2`` and ``d1`` are not small, else a product broadcast over ``d1`` and a sum (measured at
    ``e = 2048``, one CPU thread: ``d2 = 12, d1 = 72``: 0.22 against 0.46 ms; ``d2 = 4, d1 = 64``:
    0.51 against 0.17 ms)."""
    if b.shape[1] >= _BMM_MIN[0] and g.shape[2] >= _BMM_MIN[1]:
        return torch.bmm(b.unsqueeze(1), g).squeeze(1)
    return (g * b.unsqueeze(2)).sum(dim=1)


def _gradients(
    grad: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor, matrix: torch.Tensor, want: tuple[bool, bool, bool]
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The gradients of the rows given (one block, or all of them in a backward with ``create_graph``),
    in differentiable operators (module docstring's formulas)."""
    want_x1, want_x2, want_m = want
    n, d1, d2 = x1.shape[0], x1.shape[1], x2.shape[1]
    grad_x1 = grad_x2 = grad_m = None
    if want_x1 or want_x2:
        g = (grad @ matrix.T).view(n, d2, d1)
        if want_x1:
            grad_x1 = _rows_times(x2, g)
        if want_x2:
            grad_x2 = torch.bmm(g, x1.unsqueeze(2)).squeeze(2)
    if want_m:
        grad_m = _outer(x1, x2).T @ grad
    return grad_x1, grad_x2, grad_m


class _OuterMatmul(torch.autograd.Function):
    """:func:`outer_matmul` keeping ``x1``, ``x2`` and the matrix; the outer product is made again
    in backward, a block of rows at a time."""

    @staticmethod
    def forward(ctx: Any, x1: torch.Tensor, x2: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x1, x2, matrix)
        return _blockwise_forward(x1, x2, matrix)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x1, x2, matrix = ctx.saved_tensors
        want = tuple(ctx.needs_input_grad)
        if torch.is_grad_enabled():  # create_graph: whole tensors, differentiable
            return _gradients(grad, x1, x2, matrix, want)
        want_x1, want_x2, want_m = want
        grad_x1 = torch.empty_like(x1) if want_x1 else None
        grad_x2 = torch.empty_like(x2) if want_x2 else None
        grad_m = None
        for block in _blocks(x1.shape[0], matrix.shape[0], x1.device):
            g1, g2, gm = _gradients(grad[block], x1[block], x2[block], matrix, want)
            if want_x1:
                grad_x1[block] = g1
            if want_x2:
                grad_x2[block] = g2
            if want_m:
                grad_m = gm if grad_m is None else grad_m.add_(gm)
            del g1, g2, gm
        return grad_x1, grad_x2, grad_m
