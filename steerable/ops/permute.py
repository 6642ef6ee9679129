"""Row and column permutations whose backward is a gather too (not the scatter of generic indexing)."""

from __future__ import annotations

from typing import Any

import torch


class _Permute(torch.autograd.Function):
    """``x.index_select(dim, perm) * scale`` for a permutation ``perm`` along ``dim`` (0 or 1), with a
    gather (not a scatter) backward.

    The generic backward of advanced indexing is an accumulating ``index_put_`` (a scatter that
    must allow repeated indices); for a bijection the gradient is just the inverse gather
    ``grad.index_select(dim, inv_perm) * scale``.  The scalar ``scale`` is applied in place on the
    fresh output, so no second buffer is made.  Backward calls this function again, so higher
    derivatives work.
    """

    generate_vmap_rule = True  # the forward is plain torch ops: torch.func.vmap batches it as is

    @staticmethod
    def forward(
        x: torch.Tensor, dim: int, perm: torch.Tensor, inv_perm: torch.Tensor, scale: float | torch.Tensor
    ) -> torch.Tensor:
        out = x.index_select(dim, perm)
        # a tensor scale is always applied: comparing it with 1 would read its value (a host sync)
        return out.mul_(scale) if isinstance(scale, torch.Tensor) or scale != 1.0 else out

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        # a separate setup_context (not a ctx argument of forward) is what torch.func transforms need
        _, dim, perm, inv_perm, scale = inputs
        scale_is_tensor = isinstance(scale, torch.Tensor)
        ctx.save_for_backward(perm, inv_perm, scale if scale_is_tensor else None)
        ctx.dim, ctx.scale = dim, None if scale_is_tensor else scale

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None]:
        perm, inv_perm, scale_tensor = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        scale = scale_tensor if scale_tensor is not None else ctx.scale
        return _Permute.apply(grad.contiguous(), ctx.dim, inv_perm, perm, scale), None, None, None, None


def permute_columns(
    x: torch.Tensor, perm: torch.Tensor, inv_perm: torch.Tensor, scale: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """``x[:, perm] * scale`` for a permutation ``perm`` of the columns of ``x`` ``(E, D)``.

    ``scale``: a float or a 0-d tensor (not differentiated: a constant such as a kernel's gain).

    ``inv_perm`` must be ``argsort(perm)``.  Backward is the gather ``grad[:, inv_perm] * scale``
    (generic indexing accumulates with a scatter, and ``index_select`` along columns zero-fills a
    full gradient for every call), and ``scale`` costs no second ``(E, D)`` buffer.
    """
    return _Permute.apply(x, 1, perm, inv_perm, scale)


def permute_rows(
    x: torch.Tensor, perm: torch.Tensor, inv_perm: torch.Tensor, scale: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """``x[perm] * scale`` for a permutation ``perm`` of the rows of ``x`` ``(R, ...)``; as
    :func:`permute_columns` (``inv_perm = argsort(perm)``, a gather backward)."""
    return _Permute.apply(x, 0, perm, inv_perm, scale)
