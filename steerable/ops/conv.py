"""Convolutions over any number (>= 2) of spatial axes with ``torch.nn.functional``'s signature.

torch has ``conv2d`` and ``conv3d`` but no ``conv4d``; groups on ``R^4`` and beyond (``SO(4)``,
``O(4)``, the Lorentz group, ``SO(5)``) need one for their grid convolutions.  :func:`conv_nd`
computes a ``d``-dimensional convolution as ``kernel_size`` convolutions of dimension ``d - 1``, one
per tap of the last axis, with the last axis folded into the batch (no per-output-slice Python loop;
autograd as usual), down to ``conv3d``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["conv_nd"]


def conv_nd(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    padding: Sequence[int] | int,
    dilation: Sequence[int],
    groups: int = 1,
) -> torch.Tensor:
    """Cross-correlation of ``x`` ``(B, C_in, *S)`` with ``weight`` ``(C_out, C_in / groups, *K)``,
    ``len(S) = len(K) = d >= 2``, as ``F.conv2d`` / ``F.conv3d`` define it (zero padding); returns
    ``(B, C_out, *S')``."""
    d = weight.ndim - 2
    if d == 2:
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    if d == 3:
        return F.conv3d(x, weight, bias, stride, padding, dilation, groups)
    if d < 2 or x.ndim != d + 2:
        raise ValueError(
            f"conv_nd: 2 or more spatial axes, got an input of shape {tuple(x.shape)} "
            f"and a weight of shape {tuple(weight.shape)}"
        )
    pad = (padding,) * d if isinstance(padding, int) else tuple(padding)
    if pad[-1]:
        x = F.pad(x, (pad[-1], pad[-1]))
    taps, step, spread = weight.shape[-1], stride[-1], dilation[-1]
    n_out = (x.shape[-1] - spread * (taps - 1) - 1) // step + 1
    batch = x.shape[0]
    out = None
    for j in range(taps):
        # the input slices that tap j meets, for every output position of the last axis, in the batch
        part = x[..., j * spread : j * spread + step * (n_out - 1) + 1 : step]  # (B, C, *S[:-1], n_out)
        part = part.movedim(-1, 1).reshape(batch * n_out, *part.shape[1:-1])
        y = conv_nd(part, weight[..., j], None, stride[:-1], pad[:-1], dilation[:-1], groups)
        out = y if out is None else out + y
    assert out is not None
    out = out.reshape(batch, n_out, *out.shape[1:]).movedim(1, -1)
    if bias is not None:
        out = out + bias.view(1, -1, *([1] * d))
    return out.contiguous()
