"""Per-edge messages of one representation pair of a shared-basis kernel, in the cheaper of two orders.

For ``E`` rows (edges), ``M`` basis kernels ``phi[e, m]`` of shape ``(out_rep, in_rep)``, the input
fields ``f[e, i]`` (``n_in`` of them, each of size ``in_rep``) and the mixing weights ``W[o, m, i]``
(``n_out`` output fields), the message of output field ``o`` is

    ``y[e, a, o] = sum_{m, i, b} W[o, m, i] phi[e, m, a, b] f[e, i, b]``.

Two orders compute it, with the same floating-point work up to the ratio of the two intermediates:

* ``"responses"``: the basis kernels applied to the fields, ``R[e, a, m, i] = sum_b phi f``, then
  one product with the weights: the intermediate has ``E out_rep M n_in`` values;
* ``"weights"``: the fields mixed by the weights, ``U[e, b, m, o] = sum_i W f``, then one batched
  product with the basis kernels: ``E in_rep M n_out`` values.

The intermediate is the largest tensor of the step (written, read, and its gradient written again),
so :func:`mixed_message` takes the order with the smaller one.  Both are plain differentiable
products (``torch.compile`` and ``torch.func`` trace them).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["mixed_message", "cheaper_order"]

Order = Literal["responses", "weights"]

#: torch's CPU batched product runs matrices with ``rows x inner x columns`` below this through a
#: plain loop instead of its BLAS path, 2-3x slower for the shapes here (``(2000, 8, 16) x (2000,
#: 16, 3)``: 0.65 ms; with a fourth, zero column: 0.28 ms, forward and backward alike)
SMALL_BMM = 400


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``torch.bmm(a, b)``; on the CPU, ``b`` padded with zero columns up to :data:`SMALL_BMM`."""
    rows, inner = a.shape[1], a.shape[2]
    columns = b.shape[2]
    if a.device.type != "cpu" or rows * inner * columns >= SMALL_BMM or rows * inner == 0:
        return torch.bmm(a, b)
    padded = -(-SMALL_BMM // (rows * inner))  # the fewest columns that reach the BLAS path
    return torch.bmm(a, F.pad(b, (0, padded - columns)))[:, :, :columns]


def cheaper_order(out_rep: int, in_rep: int, n_out: int, n_in: int) -> Order:
    """The order of :func:`mixed_message` with the smaller intermediate (``"responses"`` on a tie)."""
    return "weights" if in_rep * n_out < out_rep * n_in else "responses"


def mixed_message(
    basis: torch.Tensor, features: torch.Tensor, weight: torch.Tensor, order: Order | None = None
) -> torch.Tensor:
    """``y[e, a, o] = sum_{m, i, b} weight[o, m, i] basis[e, m, a, b] features[e, i, b]``.

    Args:
        basis: ``(E, M, out_rep, in_rep)``, any strides.
        features: ``(E, n_in, in_rep)``.
        weight: ``(n_out, M, n_in)``.
        order: ``"responses"`` or ``"weights"`` (module docstring); ``None``: :func:`cheaper_order`.

    Returns:
        ``(E, out_rep, n_out)``.
    """
    E, M, ro, ri = basis.shape
    n_out, n_in = weight.shape[0], weight.shape[2]
    if features.shape != (E, n_in, ri) or weight.shape[1] != M:
        raise ValueError(
            f"mixed_message: basis {tuple(basis.shape)} (E, M, out_rep, in_rep), features "
            f"{tuple(features.shape)} and weight {tuple(weight.shape)} do not fit: expected features "
            f"({E}, n_in, {ri}) and weight (n_out, {M}, n_in) with n_in = {n_in}"
        )
    if order is None:
        order = cheaper_order(ro, ri, n_out, n_in)
    if order == "responses":
        # rows (a, m): the (small) basis is reordered, so that the responses are the product's
        # (E out_rep, M n_in) operand as they are (and not padded for _bmm: that would copy them)
        phi = basis.transpose(1, 2).reshape(E, ro * M, ri)
        # in_rep 1: an outer product (a batched product of 1-wide matrices is much slower)
        responses = phi * features.transpose(1, 2) if ri == 1 else torch.bmm(phi, features.transpose(1, 2))
        return (responses.view(E * ro, M * n_in) @ weight.reshape(n_out, M * n_in).T).view(E, ro, n_out)
    if order == "weights":
        # U[(e, b), (m, o)] = sum_i f[e, i, b] W[o, m, i], then per edge (a, (b, m)) x ((b, m), o)
        mixed = features.transpose(1, 2).reshape(E * ri, n_in) @ weight.permute(2, 1, 0).reshape(n_in, M * n_out)
        phi = basis.permute(0, 2, 3, 1).reshape(E, ro, ri * M)
        if ri > 1:
            # the product with the wide output (n_out columns, not out_rep): 1.26-1.5x faster forward
            # and backward on an AMD EPYC with MKL at in_rep 3-5 (the N-body model's (2000, 16, 3, 3,
            # 8, 16): 4.2-7.7 -> 3.0-3.2 ms), though its gradient comes back transposed
            return torch.bmm(phi, mixed.view(E, ri * M, n_out))
        # made transposed, (E, n_out, out_rep): the field-major layout in which the kernel's output
        # is read, so the gradient comes back contiguous (an N-body training step: 4 % faster)
        return _bmm(mixed.view(E, ri * M, n_out).transpose(1, 2), phi.transpose(1, 2)).transpose(1, 2)
    raise ValueError(f"mixed_message: order must be 'responses', 'weights' or None, got {order!r}")
