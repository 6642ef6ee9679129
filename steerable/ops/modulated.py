"""Harmonics modulated by learned invariants, ``((h W + b) * (y Z)) M``, in well-shaped products.

A kernel MLP in *scalar form* (every feature of irrep type ``i`` a learned invariant times one fixed
harmonic ``y_i`` of the position) makes each output block as ``Q (⊕_q s_q y_q)``: the invariants of
the block's irreps ``q`` times their harmonics, side by side, through the block's change of basis
``Q``.  Written per edge and copy, that is a gather, a product broadcast over a short dimension and
an ``(E n, d) x (d, d)`` product with a narrow output, and the CPU has no fast form for any of them:
each runs 5-10x slower than elementwise products of equal shapes or matrix products with a wide
output (``benchmarks/README.md``, "Issue 18").  Here:

* ``S = h W + b`` ``(E, n k)``: the layer's weights ``W`` ``(n_h, n k)`` already hold each copy's
  invariant once per component of its irrep (the caller tiles the columns, a few thousand numbers);
* ``Y = y Z`` ``(E, n k)``: the harmonics ``y`` ``(E, n_y)`` times a constant ``Z`` that picks each
  component and repeats it over the ``n`` copies (or, for one irrep per block, also applies ``Q``);
* ``S * Y``, then per copy the mix ``M`` ``(k, d)`` (``Q^T`` on the components that are not
  structurally zero; ``None``: none), a few copies per row where ``d`` is small
  (:data:`MIN_OUTPUT_WIDTH`).

Autograd keeps neither ``S`` nor ``Y``: the backward makes them again from ``h`` and ``y`` (two matrix
products), in differentiable ops, so higher derivatives work.  :func:`modulated_matmul` makes the
same blocks without tiling, by a batched product per edge: less arithmetic where a block has many
irreps, but fast for some shapes only (the caller chooses).
"""

from __future__ import annotations

from typing import Any

import torch

from .transforms import compiling_or_transformed

__all__ = ["modulated_matmul", "modulated_product"]

#: Output width below which the mix multiplies several copies at once (with ``I_r ⊗ M``, ``r`` a
#: power of two dividing the copies): the CPU's product of a tall matrix with a narrow output runs
#: ~3x slower than with an output of 16-24 columns, which outweighs ``r`` times the arithmetic
#: (``(2048 * 8, 9) x (9, 9)``: 550 us; ``(2048 * 4, 18) x (18, 18)``: 160 us; ``r = 8``: 320 us).
MIN_OUTPUT_WIDTH = 16


def modulated_product(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    harmonics: torch.Tensor,
    mix: torch.Tensor | None = None,
) -> torch.Tensor:
    """``((h @ weight + bias) * (y @ harmonics))``, then each copy's ``k`` columns times ``mix``.

    Shapes: ``h`` ``(E, n_h)``, ``weight`` ``(n_h, n k)``, ``bias`` ``(n k,)`` or ``None``, ``y``
    ``(E, n_y)``, ``harmonics`` ``(n_y, n k)``, ``mix`` ``(k, d)`` or ``None`` (``d = k``) ->
    ``(E, n d)``, copy-major (copy ``c``: columns ``c d .. (c + 1) d``).
    """
    width = weight.shape[1]
    if harmonics.shape[1] != width or (bias is not None and bias.shape != (width,)):
        raise ValueError(
            f"modulated_product: weight {tuple(weight.shape)}, harmonics {tuple(harmonics.shape)} and "
            f"bias {None if bias is None else tuple(bias.shape)} must have the same number of columns"
        )
    _check_products("modulated_product", h, weight, y, harmonics)
    if mix is not None and (mix.dim() != 2 or width % mix.shape[0]):
        raise ValueError(f"modulated_product: mix {tuple(mix.shape)} does not divide {width} columns")
    if compiling_or_transformed():  # torch's own ops: autograd keeps S and Y
        return _mixed(_affine(h, weight, bias) * (y @ harmonics), mix)
    if not torch.is_grad_enabled():
        return _mixed(_affine(h, weight, bias).mul_(y @ harmonics), mix)
    return _ModulatedProduct.apply(h, weight, bias, y, harmonics, mix)


def modulated_matmul(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    y: torch.Tensor,
    harmonics: torch.Tensor,
    terms: int,
) -> torch.Tensor:
    """Per edge ``(h @ weight + bias).view(n, terms) @ (y @ harmonics).view(terms, d)``, flattened.

    The same blocks as :func:`modulated_product` with the invariants not tiled (``weight``
    ``(n_h, n terms)``, copy-major) and each irrep's change of basis applied to its harmonic
    (``harmonics`` ``(n_y, terms d)``), joined by a batched product: less arithmetic where a block
    has many irreps, but the CPU's batched products of small matrices run fast for some shapes
    only (the caller chooses).  ``(E, n d)``; autograd keeps the two small factors.
    """
    if weight.shape[1] % terms or harmonics.shape[1] % terms or (bias is not None and bias.shape != weight.shape[1:]):
        raise ValueError(
            f"modulated_matmul: weight {tuple(weight.shape)}, harmonics {tuple(harmonics.shape)} and bias "
            f"{None if bias is None else tuple(bias.shape)} do not split into {terms} irreps"
        )
    _check_products("modulated_matmul", h, weight, y, harmonics)
    n = h.shape[0]
    s = _affine(h, weight, bias).view(n, -1, terms)
    return torch.bmm(s, (y @ harmonics).view(n, terms, -1)).view(n, -1)


def _check_products(name: str, h: torch.Tensor, weight: torch.Tensor, y: torch.Tensor, harmonics: torch.Tensor) -> None:
    """``h @ weight`` and ``y @ harmonics`` are defined, on the same rows (raises ``ValueError``)."""
    if h.shape[0] != y.shape[0] or h.shape[1] != weight.shape[0] or y.shape[1] != harmonics.shape[0]:
        raise ValueError(
            f"{name}: h {tuple(h.shape)} @ weight {tuple(weight.shape)} and "
            f"y {tuple(y.shape)} @ harmonics {tuple(harmonics.shape)} do not match"
        )


def _affine(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return h @ weight if bias is None else torch.addmm(bias, h, weight)


def _mixed(p: torch.Tensor, mix: torch.Tensor | None, transpose: bool = False) -> torch.Tensor:
    """``p`` ``(E, n k)`` with each copy's ``k`` columns times ``mix`` ``(k, d)`` (``transpose``:
    times ``mix^T``, from ``(E, n d)`` to ``(E, n k)``)."""
    if mix is None:
        return p
    m = mix.T if transpose else mix
    k, d = m.shape
    n, copies = p.shape[0], p.shape[1] // k
    r = 1  # copies per product
    while d * r < MIN_OUTPUT_WIDTH and copies % (2 * r) == 0:
        r *= 2
    m = torch.block_diag(*[m] * r) if r > 1 else m
    return (p.reshape(n * copies // r, k * r) @ m).view(n, copies * d)


def _times(fresh: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``fresh * g``, in place on the fresh product unless autograd records it (``create_graph``)."""
    return fresh * g if torch.is_grad_enabled() else fresh.mul_(g)


class _ModulatedProduct(torch.autograd.Function):
    """:func:`modulated_product` keeping its inputs only; ``S`` and ``Y`` are made again in backward."""

    @staticmethod
    def forward(
        ctx: Any,
        h: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        y: torch.Tensor,
        harmonics: torch.Tensor,
        mix: torch.Tensor | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(h, weight, bias, y, harmonics, mix)
        return _mixed(_affine(h, weight, bias).mul_(y @ harmonics), mix)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, weight, bias, y, harmonics, mix = ctx.saved_tensors
        need_h, need_w, need_b, need_y, need_z, need_mix = ctx.needs_input_grad
        grad_h = grad_w = grad_b = grad_y = grad_z = grad_mix = None
        g = _mixed(grad, mix, transpose=True)  # (E, n k): the gradient of S * Y
        if need_h or need_w or need_b:
            grad_s = _times(y @ harmonics, g)
            if need_h:
                grad_h = grad_s @ weight.T
            if need_w:
                grad_w = h.T @ grad_s
            if need_b and bias is not None:
                grad_b = grad_s.sum(0)
            del grad_s
        if need_y or need_z:
            grad_yz = _times(_affine(h, weight, bias), g)
            if need_y:
                grad_y = grad_yz @ harmonics.T
            if need_z:
                grad_z = y.T @ grad_yz
            del grad_yz
        if need_mix:
            k, d = mix.shape
            p = _affine(h, weight, bias) * (y @ harmonics)
            grad_mix = p.reshape(-1, k).T @ grad.reshape(-1, d)
        return grad_h, grad_w, grad_b, grad_y, grad_z, grad_mix
