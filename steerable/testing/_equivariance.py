"""Numerical equivariance and completeness checks for any module of any group.

All checks sample group elements through the :class:`~steerable.core.group.Group` interface and
report the relative error ``|f(g.x) - g.f(x)| / |g.f(x)|`` (Frobenius norms over the whole batch),
maximised over the sampled elements.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..core.group import Group, GroupElements
from ..core.mlp import KernelMLPSpec
from ..core.representation import FieldType, tensor_matrices
from ..nn.blocks import MessageBlock, PointConvBlock
from ..nn.grid_action import lattice_elements, transform_grid
from ..nn.grid_conv import GridConv
from ..nn.kernel import ImplicitKernel
from ..nn.point_conv import PointConv


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``|actual - expected| / |expected|`` (Frobenius); 0 when both vanish."""
    actual, expected = actual.detach(), expected.detach()
    denom = expected.norm()
    diff = (actual - expected).norm()
    if denom == 0:
        return float(diff)
    return float(diff / denom)


def _random_attr(attr_type: FieldType | None, rows: int, dtype, generator) -> torch.Tensor | None:
    if attr_type is None:
        return None
    return torch.randn(rows, attr_type.size, dtype=dtype, generator=generator)


def _elements(group: Group, elements: GroupElements | None, n: int, generator) -> GroupElements:
    return elements if elements is not None else group.sample(n, generator=generator)


# -- the MLP contract ----------------------------------------------------------------------------
def block_matrices(spec: KernelMLPSpec, elements: GroupElements) -> torch.Tensor:
    """``(n, D, D)`` block-diagonal action ``⊕_b kron(out_b(g), in_b(g))`` on the MLP output."""
    size = spec.out_size
    out = torch.zeros(len(elements), size, size, dtype=torch.float64)
    start, cache = 0, {}
    for ro, ri in spec.blocks:
        key = (id(ro), id(ri))
        if key not in cache:
            cache[key] = tensor_matrices(ro.matrices(elements), ri.matrices(elements))
        d = ro.size * ri.size
        out[:, start : start + d, start : start + d] = cache[key]
        start += d
    return out


def mlp_equivariance_error(
    mlp: torch.nn.Module,
    spec: KernelMLPSpec,
    *,
    n_points: int = 16,
    elements: GroupElements | None = None,
    n_elements: int = 4,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
) -> float:
    """Error of ``mlp(g pos, g attr) = ⊕_b kron(out_b(g), in_b(g)) mlp(pos, attr)``."""
    els = _elements(spec.group, elements, n_elements, generator)
    mlp = mlp.to(dtype)
    pos = torch.randn(n_points, spec.group.dim, dtype=dtype, generator=generator) * spec.max_radius / 2
    attr = _random_attr(spec.attr_type, n_points, dtype, generator)
    with torch.no_grad():
        base = mlp(pos, attr)
        acts = block_matrices(spec, els).to(dtype)
        worst = 0.0
        for k in range(len(els)):
            g = els[k]
            mat = g.matrices[0].to(dtype)
            attr_g = spec.attr_type.transform(attr, g) if attr is not None else None
            worst = max(worst, relative_error(mlp(pos @ mat.T, attr_g), base @ acts[k].T))
    return worst


# -- layers ----------------------------------------------------------------------------------------
def check_equivariance(
    module: torch.nn.Module,
    *,
    elements: GroupElements | None = None,
    n_elements: int = 4,
    dtype: torch.dtype = torch.float64,
    n_points: int = 24,
    grid_size: int = 9,
    batch: int = 2,
    translate: bool = True,
    generator: torch.Generator | None = None,
) -> float:
    """Relative equivariance error of an :class:`ImplicitKernel`, :class:`PointConv` or :class:`GridConv`,
    or of a block called like a point convolution (:class:`PointConvBlock`, :class:`MessageBlock`).

    Group elements default to ``n_elements`` samples; for a :class:`GridConv` they default to the
    group's lattice symmetries (:func:`lattice_elements`), the only ones that map the grid to itself.
    Point convolutions and blocks are also checked under a random translation of the positions when
    ``translate``.  The module is converted to ``dtype``; inputs are random.
    """
    module = module.to(dtype)
    was_training = module.training
    module.eval()
    try:
        if isinstance(module, GridConv):
            els = elements if elements is not None else lattice_elements(module.group)
            return _grid_error(module, els, dtype, grid_size, batch, generator)
        if isinstance(module, (PointConv, PointConvBlock, MessageBlock)):
            els = _elements(module.group, elements, n_elements, generator)
            return _point_error(module, els, dtype, n_points, translate, generator)
        if isinstance(module, ImplicitKernel):
            els = _elements(module.group, elements, n_elements, generator)
            return _kernel_error(module, els, dtype, n_points, generator)
    finally:
        module.train(was_training)
    raise TypeError(f"check_equivariance: unsupported module {type(module).__name__}")


def _kernel_error(kernel: ImplicitKernel, els, dtype, n_points, generator) -> float:
    pos = torch.randn(n_points, kernel.group.dim, dtype=dtype, generator=generator)
    attr = _random_attr(kernel.attr_type, n_points, dtype, generator)
    worst = 0.0
    with torch.no_grad():
        base = kernel(pos, attr)
        for k in range(len(els)):
            g = els[k]
            mat = g.matrices[0].to(dtype)
            rho_out = kernel.out_type.matrices(g)[0].to(dtype)
            rho_in = kernel.in_type.matrices(g)[0].to(dtype)
            attr_g = kernel.attr_type.transform(attr, g) if attr is not None else None
            worst = max(worst, relative_error(kernel(pos @ mat.T, attr_g), rho_out @ base @ rho_in.T))
    return worst


def _point_error(conv: PointConv | PointConvBlock | MessageBlock, els, dtype, n_points, translate, generator) -> float:
    n = conv.group.dim
    pos = torch.randn(n_points, n, dtype=dtype, generator=generator)
    x = torch.randn(n_points, conv.in_type.size, dtype=dtype, generator=generator)
    src, dst = torch.meshgrid(torch.arange(n_points), torch.arange(n_points), indexing="ij")
    keep = src != dst
    edge_index = torch.stack([src[keep], dst[keep]])
    attr = _random_attr(conv.attr_type, edge_index.shape[1], dtype, generator)
    worst = 0.0
    with torch.no_grad():
        base = conv(x, pos, edge_index, attr)
        for k in range(len(els)):
            g = els[k]
            shift = torch.randn(1, n, dtype=dtype, generator=generator) if translate else 0.0
            pos_g = pos @ g.matrices[0].to(dtype).T + shift
            attr_g = conv.attr_type.transform(attr, g) if attr is not None else None
            out = conv(conv.in_type.transform(x, g), pos_g, edge_index, attr_g)
            worst = max(worst, relative_error(out, conv.out_type.transform(base, g)))
    return worst


def _grid_error(conv: GridConv, els, dtype, grid_size, batch, generator) -> float:
    spatial = (grid_size,) * conv.dim
    x = torch.randn(batch, conv.in_type.size, *spatial, dtype=dtype, generator=generator)
    attr = _random_attr(conv.attr_type, batch, dtype, generator)
    worst = 0.0
    with torch.no_grad():
        base = conv(x, attr)
        for k in range(len(els)):
            g = els[k]
            attr_g = conv.attr_type.transform(attr, g) if attr is not None else None
            out = conv(transform_grid(x, conv.in_type, g), attr_g)
            worst = max(worst, relative_error(out, transform_grid(base, conv.out_type, g)))
    return worst


# -- completeness ------------------------------------------------------------------------------
def kernel_span_rank(
    build: Callable[[], torch.nn.Module],
    pos: torch.Tensor,
    attr: torch.Tensor | None = None,
    *,
    n_inits: int = 32,
    rtol: float = 1e-6,
) -> int:
    """Dimension of the span of ``K(pos)`` over ``n_inits`` random initialisations.

    ``build()`` returns a freshly initialised :class:`ImplicitKernel` (or backend MLP taking
    ``(pos, attr)``); ``pos`` is ``(1, n)``.  Compare the result with the dimension of the maps
    that commute with the stabiliser of ``pos`` (:func:`commutant_dimension`): an equal rank means
    the kernel reaches every value the symmetry allows at that point.
    """
    values = []
    for seed in range(n_inits):
        torch.manual_seed(seed)
        module = build().to(torch.float64)
        with torch.no_grad():
            values.append(module(pos.to(torch.float64), attr).reshape(-1))
    stacked = torch.stack(values)
    sv = torch.linalg.svdvals(stacked)
    return int((sv > rtol * sv[0]).sum()) if sv.numel() and sv[0] > 0 else 0


def commutant_dimension(stabiliser: GroupElements, out_type: FieldType, in_type: FieldType) -> int:
    """``dim {M : rho_out(h) M rho_in(h)^T = M for all h}`` for the given (generating) elements."""
    rho_out, rho_in = out_type.matrices(stabiliser), in_type.matrices(stabiliser)
    eye = torch.eye(out_type.size * in_type.size, dtype=torch.float64)
    constraints = [tensor_matrices(rho_out, rho_in)[k] - eye for k in range(len(stabiliser))]
    if not constraints:
        return out_type.size * in_type.size
    stacked = torch.cat(constraints)
    rank = int(torch.linalg.matrix_rank(stacked, atol=1e-8))
    return out_type.size * in_type.size - rank


def finite_stabiliser(group: Group, point: torch.Tensor, atol: float = 1e-8) -> GroupElements:
    """Elements of a finite group fixing ``point`` ``(n,)``."""
    els = group.elements()
    keep = ((els.matrices @ point.to(torch.float64)) - point.to(torch.float64)).norm(dim=-1) < atol
    index = torch.nonzero(keep).flatten().tolist()
    return group.elements_from_matrices(els.matrices[index])


def mixed_field_type(group: Group, copies: int = 1) -> FieldType:
    """A non-uniform field for checks: trivial, standard and a higher-frequency irrep (if any)."""
    reps = [group.trivial_rep(), group.standard_rep()]
    higher = [r for r in group.irreps(max_frequency=2) if r is not reps[0] and r is not reps[1] and r.size > 1]
    if not higher:
        higher = [r for r in group.irreps(max_frequency=2) if r is not reps[0] and r is not reps[1]]
    if higher:
        reps.append(higher[-1])
    return FieldType(group, reps * copies)


def layer_report(group: Group, *, dtype: torch.dtype = torch.float64, seed: int = 0) -> dict[str, float]:
    """Equivariance errors of a kernel, a point conv and (in 2D/3D) a grid conv on mixed fields."""
    torch.manual_seed(seed)
    field = mixed_field_type(group)
    report = {
        "kernel": check_equivariance(ImplicitKernel(field, field, 1), dtype=dtype),
        "point conv": check_equivariance(PointConv(field, field, edge_attr=1), dtype=dtype),
    }
    if group.dim in (2, 3):
        size = 5 if group.dim == 2 else 3
        report["grid conv"] = check_equivariance(
            GridConv(field, field, size, padding=size // 2), dtype=dtype, grid_size=7 if group.dim == 2 else 5
        )
    return report
