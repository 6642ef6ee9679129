"""Equivariance checks of the library's layers and of kernel MLPs, built on the engine.

:func:`check_equivariance` reads the types a layer declares (``in_type``, ``out_type``, optional
``attr_type``; the group is ``in_type.group``) and how it is called (its ``forward`` signature):

* ``forward(pos, attr=None) -> (E, out, in)``: a kernel, ``K(g p, g a) rho_in(g) = rho_out(g) K(p, a)``
  (no transpose or inverse needed: this holds for non-orthogonal representations too);
* ``forward(x, pos, edge_index, edge_attr)``: a point convolution or block, positions rotated and
  translated (:class:`~steerable.nn.PointConv`, :class:`~steerable.nn.PointConvBlock`,
  :class:`~steerable.nn.MessageBlock`, or any module called that way);
* ``forward(x, attr=None)`` on a group of ``R^d``, ``d >= 2``: a grid convolution, checked on the
  lattice symmetries.

Inputs are random; the module is deep-copied (never changed, see :mod:`steerable.testing._engine`).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from ..core.group import Group, GroupElements
from ..core.mlp import KernelMLPSpec
from ..core.representation import FieldType, tensor_matrices
from ._engine import GridField, _compile, _Linear, errors_of, prepare, resolve
from ._verified import VerifiedActions

__all__ = ["block_matrices", "check_equivariance", "layer_equivariance_errors", "layer_kind", "mlp_equivariance_error"]

_KINDS = ("kernel", "point", "grid")


def _random(rows: int, field: FieldType | None, dtype, generator) -> torch.Tensor | None:
    return None if field is None else torch.randn(rows, field.size, dtype=dtype, generator=generator)


# -- the MLP contract ----------------------------------------------------------------------------
def block_matrices(spec: KernelMLPSpec, elements: GroupElements) -> torch.Tensor:
    """``(n, D, D)`` block-diagonal action ``⊕_b kron(out_b(g), in_b(g)^-T)`` on the MLP output
    (``in_b(g)^-T = in_b(g)`` for an orthogonal representation, used as it is on a Euclidean group).

    Built from the representations' own matrices (a backend may use it to build its MLP); the
    checks use verified matrices (:class:`~steerable.testing._verified.VerifiedActions`) instead.
    """
    euclidean = spec.group.is_euclidean()

    def contragredient(rep):
        mats = torch.as_tensor(rep.matrices(elements), dtype=torch.float64)
        return mats if euclidean else torch.linalg.inv(mats).transpose(1, 2)

    return _assemble(spec, lambda rep: rep.matrices(elements), len(elements), contragredient)


def _assemble(spec: KernelMLPSpec, matrices, n: int, contragredient=None) -> torch.Tensor:
    """Block ``b``: ``kron(matrices(out_b), contragredient(in_b))`` (``matrices`` when not given)."""
    contragredient = contragredient or matrices
    size = spec.out_size
    out = torch.zeros(n, size, size, dtype=torch.float64)
    start, cache = 0, {}
    for ro, ri in spec.blocks:
        key = (id(ro), id(ri))
        if key not in cache:
            cache[key] = tensor_matrices(matrices(ro), contragredient(ri))
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
    """Error of ``mlp(g pos, g attr) = ⊕_b kron(out_b(g), in_b(g)^-T) mlp(pos, attr)`` (a copy is checked)."""
    group = spec.group
    els = elements if elements is not None else group.sample(n_elements, generator=generator)
    actions = VerifiedActions(group, els)
    pos = torch.randn(n_points, group.dim, dtype=dtype, generator=generator) * spec.max_radius / 2
    attr = _random(n_points, spec.attr_type, dtype, generator)
    std = FieldType(group, [group.standard_rep()])
    action_in = [_compile(std, actions, "pos"), _compile(spec.attr_type, actions, "attr")]
    action_out = _Linear(_assemble(spec, actions.rep, len(els), actions.contragredient), "MLP output")
    fn = prepare(mlp, dtype)
    return max(errors_of(fn, [pos, attr], action_in, action_out, len(els), group.dim, False, generator))


# -- layers ----------------------------------------------------------------------------------------
def layer_kind(module: torch.nn.Module) -> str:
    """``"kernel"``, ``"point"`` or ``"grid"``: how :func:`check_equivariance` calls ``module`` (see module doc)."""
    for name in ("in_type", "out_type"):
        if not isinstance(getattr(module, name, None), FieldType):
            raise TypeError(
                f"check_equivariance: {type(module).__name__} declares no FieldType {name}; "
                "use steerable.testing.equivariance_error(fn, args, arg_types, out_type) for other callables"
            )
    params = list(inspect.signature(module.forward).parameters)
    if "edge_index" in params:
        return "point"
    if params and params[0] == "pos":
        return "kernel"
    if params and params[0] == "x" and module.in_type.group.dim >= 2:
        return "grid"
    raise TypeError(
        f"check_equivariance: cannot tell how to call {type(module).__name__}.forward{tuple(params)}; pass "
        "kind='kernel', 'point' or 'grid', or use steerable.testing.equivariance_error"
    )


def layer_equivariance_errors(
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
    kind: str | None = None,
) -> list[float]:
    """Per-element errors of :func:`check_equivariance` (same arguments), in the order of ``elements``."""
    kind = kind or layer_kind(module)
    if kind not in _KINDS:
        raise ValueError(f"check_equivariance: kind must be one of {_KINDS}, got {kind!r}")
    in_type, out_type = module.in_type, module.out_type
    attr_type: FieldType | None = getattr(module, "attr_type", None)
    group: Group = in_type.group
    grid = GridField(in_type), GridField(out_type)
    arg_types: list[Any] = {
        "kernel": [FieldType(group, [group.standard_rep()]), attr_type, in_type],
        "point": [in_type, "points", None, attr_type],
        "grid": [grid[0], attr_type],
    }[kind]
    out: Any = grid[1] if kind == "grid" else out_type
    group, els = resolve(arg_types, out, elements, n_elements, group, generator)
    actions = VerifiedActions(group, els)
    actions_in = [_compile(t, actions, f"{type(module).__name__} argument {i}") for i, t in enumerate(arg_types)]
    action_out = _compile(out, actions, f"{type(module).__name__} output")

    fn = prepare(module, dtype)
    n = group.dim
    if kind == "kernel":
        pos = torch.randn(n_points, n, dtype=dtype, generator=generator)
        attr = _random(n_points, attr_type, dtype, generator)
        probe = torch.eye(in_type.size, dtype=dtype).expand(n_points, -1, -1)  # K(p) @ I: every column of K
        layer = fn
        fn = lambda p, a, v: layer(p, a) @ v  # noqa: E731
        args: list[Any] = [pos, attr, probe]
    elif kind == "point":
        pos = torch.randn(n_points, n, dtype=dtype, generator=generator)
        x = torch.randn(n_points, in_type.size, dtype=dtype, generator=generator)
        src, dst = torch.meshgrid(torch.arange(n_points), torch.arange(n_points), indexing="ij")
        keep = src != dst
        edge_index = torch.stack([src[keep], dst[keep]])
        args = [x, pos, edge_index, _random(edge_index.shape[1], attr_type, dtype, generator)]
    device = next(iter([*module.parameters(), *module.buffers()]), torch.empty(0)).device

    def on_device(values: list[Any]) -> list[Any]:  # drawn on the CPU, reproducibly
        return [a.to(device) if isinstance(a, torch.Tensor) else a for a in values]

    if kind != "grid":
        return errors_of(
            fn, on_device(args), actions_in, action_out, len(els), n, translate and kind == "point", generator
        )
    # Grids: for a layer that declares a ``stride`` (a convolution), every size from grid_size to
    # grid_size + stride, odd and even alike, that the layer accepts (a strided layer refuses sizes
    # whose output samples are not centred on the input grid), so a size that breaks the symmetry
    # cannot hide behind one that keeps it; any other grid module is checked at grid_size alone.
    stride = max(getattr(module, "stride", (0,)))
    accepts = getattr(module, "centring_excess", None)
    sizes = [m for m in range(grid_size, grid_size + stride + 1) if accepts is None or not any(accepts((m,) * n))]
    if not sizes:
        raise ValueError(
            f"check_equivariance: {type(module).__name__} accepts no grid size in "
            f"[{grid_size}, {grid_size + stride}]; pass another grid_size"
        )
    worst = [0.0] * len(els)
    for m in sizes:
        x = torch.randn(batch, in_type.size, *(m,) * n, dtype=dtype, generator=generator)
        errors = errors_of(
            fn,
            on_device([x, _random(batch, attr_type, dtype, generator)]),
            actions_in,
            action_out,
            len(els),
            n,
            False,
            generator,
        )
        worst = [max(a, b) for a, b in zip(worst, errors)]
    return worst


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
    kind: str | None = None,
) -> float:
    """Worst relative equivariance error of a layer that declares its types (see the module doc).

    Group elements default to ``n_elements`` samples; for a grid convolution to the group's
    lattice symmetries (:func:`~steerable.nn.grid_action.lattice_elements`), the only ones that map
    the grid to itself.  Point convolutions and blocks are also checked under a random translation
    of the positions when ``translate``.  A copy of the module, in eval mode and converted to
    ``dtype``, is checked on random inputs: ``n_points`` points (kernels; point layers on the
    complete graph without self-loops), ``batch`` grids per size, of every size from ``grid_size``
    to ``grid_size + stride`` pixels per side that the layer accepts (odd and even sizes both; a
    grid module without a ``stride`` attribute at ``grid_size`` only).
    ``kind`` overrides how the module is called (``"kernel"``, ``"point"``, ``"grid"``).
    """
    return max(
        layer_equivariance_errors(
            module,
            elements=elements,
            n_elements=n_elements,
            dtype=dtype,
            n_points=n_points,
            grid_size=grid_size,
            batch=batch,
            translate=translate,
            generator=generator,
            kind=kind,
        )
    )
