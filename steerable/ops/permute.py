"""Column permutations whose backward is a gather too (not the scatter of generic indexing)."""

from __future__ import annotations

from typing import Any

import torch


class _PermuteColumns(torch.autograd.Function):
    """``flat[:, perm] * scale`` for a permutation ``perm``, with a gather (not a scatter) backward.

    The generic backward of advanced indexing is an accumulating ``index_put_`` (a scatter that
    must allow repeated indices); for a bijection the gradient is just the inverse gather
    ``grad[:, inv_perm] * scale``.  The scalar ``scale`` is applied in place on the fresh output, so
    no second ``(E, D)`` buffer is made.  Backward calls this function again, so higher
    derivatives work.
    """

    @staticmethod
    def forward(
        ctx: Any, flat: torch.Tensor, perm: torch.Tensor, inv_perm: torch.Tensor, scale: float | torch.Tensor
    ) -> torch.Tensor:
        scale_is_tensor = isinstance(scale, torch.Tensor)
        ctx.save_for_backward(perm, inv_perm, scale if scale_is_tensor else None)
        ctx.scale = None if scale_is_tensor else scale
        out = flat.index_select(1, perm)
        # a tensor scale is always applied: comparing it with 1 would read its value (a host sync)
        return out.mul_(scale) if scale_is_tensor or scale != 1.0 else out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        perm, inv_perm, scale_tensor = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        scale = scale_tensor if scale_tensor is not None else ctx.scale
        return _PermuteColumns.apply(grad.contiguous(), inv_perm, perm, scale), None, None, None


def permute_columns(
    x: torch.Tensor, perm: torch.Tensor, inv_perm: torch.Tensor, scale: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """``x[:, perm] * scale`` for a permutation ``perm`` of the columns of ``x`` ``(E, D)``.

    ``scale``: a float or a 0-d tensor (not differentiated: a constant such as a kernel's gain).

    ``inv_perm`` must be ``argsort(perm)``.  Backward is the gather ``grad[:, inv_perm] * scale``
    (generic indexing accumulates with a scatter, and ``index_select`` along columns zero-fills a
    full gradient for every call), and ``scale`` costs no second ``(E, D)`` buffer.
    """
    return _PermuteColumns.apply(x, perm, inv_perm, scale)
