"""Convolutions over 2, 3 or 4 spatial axes with ``torch.nn.functional``'s signature.

torch has ``conv2d`` and ``conv3d`` but no ``conv4d``; groups on ``R^4`` (``SO(4)``, ``O(4)``, the
Lorentz group) need one for their grid convolutions.  :func:`conv_nd` computes a 4D convolution as
``kernel_size`` 3D convolutions, one per tap of the last axis, with the last axis folded into the
batch: no per-output-slice Python loop, autograd as usual.
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
    ``len(S) = len(K) = d`` in 2, 3 or 4, as ``F.conv2d`` / ``F.conv3d`` define it (zero padding);
    returns ``(B, C_out, *S')``."""
    d = weight.ndim - 2
    if d == 2:
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    if d == 3:
        return F.conv3d(x, weight, bias, stride, padding, dilation, groups)
    if d != 4:
        raise ValueError(f"conv_nd: 2, 3 or 4 spatial axes, got a weight of shape {tuple(weight.shape)}")
    pad = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    if pad[3]:
        x = F.pad(x, (pad[3], pad[3]))
    taps, step, spread = weight.shape[-1], stride[3], dilation[3]
    n_out = (x.shape[-1] - spread * (taps - 1) - 1) // step + 1
    batch = x.shape[0]
    out = None
    for j in range(taps):
        # the input slices that tap j meets, for every output position of the last axis
        start = j * spread
        part = x[..., start : start + step * (n_out - 1) + 1 : step]  # (B, C, X, Y, Z, n_out)
        part = part.permute(0, 5, 1, 2, 3, 4).reshape(batch * n_out, *part.shape[1:5])
        y = F.conv3d(part, weight[..., j], None, stride[:3], pad[:3], dilation[:3], groups)
        out = y if out is None else out + y
    assert out is not None
    out = out.reshape(batch, n_out, *out.shape[1:]).permute(0, 2, 3, 4, 5, 1)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1, 1, 1)
    return out.contiguous()
