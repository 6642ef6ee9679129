"""One equivariance engine for any callable: ``|f(g.x) - g.f(x)| / |g.f(x)|`` over group elements.

How each argument (and the output) moves under a group element ``g`` is declared by its *type*:

* a :class:`~steerable.core.representation.FieldType`: features with the channels on axis 1
  (``(N, C)`` point features, ``(B, C, X, Y[, Z])`` grid features, ``(E, C, ...)`` anything),
  multiplied by ``rho(g)`` on that axis, pixels left in place;
* ``"points"``: positions ``(N, n)``, moved to ``g p + t`` with one random translation ``t`` per
  element shared by every ``"points"`` argument and output (``t = 0`` with ``translate=False``);
* :class:`GridField` ``(field_type)``: a grid signal ``(B, C, X, Y[, Z])``, moved as a field on the
  grid, ``(g.x)(p) = rho(g) x(g^{-1} p)`` (:func:`~steerable.nn.grid_action.transform_grid`); the
  elements must be lattice symmetries (they default to all of them,
  :func:`~steerable.nn.grid_action.lattice_elements`);
* ``None``: passed unchanged (``edge_index``, a batch vector, an absent attribute); as the output
  type: the output is invariant;
* a tuple of types, for a tuple argument (e.g. ``(pos_src, pos_dst)``) or a tuple output.

Every matrix used comes from :class:`~steerable.testing._verified.VerifiedActions`: the standard
representation is checked to be the coordinate action and every representation a homomorphism
before anything is moved, so a check never takes its expected value from the backend under test.

A module is never touched: it is deep-copied, the copy put in eval mode and, when ``dtype`` is
given, converted to it (the inputs too).  A plain function is called as it is (only its inputs
are converted).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..core.group import Group, GroupElements
from ..core.representation import FieldType
from ..nn.grid_action import lattice_elements, transform_grid
from ._verified import VerifiedActions

__all__ = [
    "GridField",
    "assert_equivariant",
    "equivariance_error",
    "equivariance_errors",
    "relative_error",
]


@dataclass(frozen=True)
class GridField:
    """Argument or output type of a grid signal ``(B, field_type.size, X, Y[, Z])`` (see module doc)."""

    field_type: FieldType


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``|actual - expected| / |expected|`` (Frobenius); 0 when both vanish."""
    actual, expected = actual.detach(), expected.detach()
    denom = expected.norm()
    diff = (actual - expected).norm()
    if denom == 0:
        return float(diff)
    return float(diff / denom)


# -- actions: how one value moves under element k ------------------------------------------------
class _Action:
    grid = False

    def apply(self, value: Any, k: int, shift: torch.Tensor | None) -> Any:
        raise NotImplementedError


class _Unchanged(_Action):
    def apply(self, value, k, shift):
        return value


class _Linear(_Action):
    """``x -> M_k x`` on axis 1 (``mats`` ``(n, C, C)`` float64, verified by the caller)."""

    def __init__(self, mats: torch.Tensor, what: str) -> None:
        self.mats, self.what = mats, what

    def apply(self, value, k, shift):
        size = self.mats.shape[-1]
        if not isinstance(value, torch.Tensor) or value.ndim < 2 or value.shape[1] != size:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{self.what}: expected a tensor with {size} channels on axis 1, got {shape}")
        mat = self.mats[k].to(value)
        return torch.einsum("ij,bj...->bi...", mat, value)


class _Points(_Action):
    def __init__(self, coords: torch.Tensor, what: str) -> None:
        self.coords, self.what = coords, what

    def apply(self, value, k, shift):
        n = self.coords.shape[-1]
        if not isinstance(value, torch.Tensor) or value.ndim != 2 or value.shape[1] != n:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{self.what}: positions must have shape (N, {n}), got {shape}")
        moved = value @ self.coords[k].to(value).T
        return moved + shift.to(value) if shift is not None else moved


class _Grid(_Action):
    grid = True

    def __init__(self, field: _Linear, scalars: Callable[[int], FieldType], elements: GroupElements) -> None:
        self.field, self.scalars, self.elements = field, scalars, elements

    def apply(self, value, k, shift):
        if not isinstance(value, torch.Tensor) or value.ndim < 3:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{self.field.what}: expected a grid signal (B, C, X, Y[, Z]), got {shape}")
        # pixels moved by transform_grid on C scalar channels (the verified trivial rep), channels by rho
        moved = transform_grid(value, self.scalars(value.shape[1]), self.elements[k])
        return self.field.apply(moved, k, shift)


class _Tuple(_Action):
    def __init__(self, parts: Sequence[_Action], what: str) -> None:
        self.parts, self.what = tuple(parts), what
        self.grid = any(p.grid for p in self.parts)

    def apply(self, value, k, shift):
        if not isinstance(value, (tuple, list)) or len(value) != len(self.parts):
            raise ValueError(f"{self.what}: expected a tuple of {len(self.parts)} values, got {type(value).__name__}")
        return type(value)(p.apply(v, k, shift) for p, v in zip(self.parts, value))


def _groups_of(spec: Any) -> list[Group]:
    if isinstance(spec, FieldType):
        return [spec.group]
    if isinstance(spec, GridField):
        return [spec.field_type.group]
    if isinstance(spec, (tuple, list)):
        return [g for s in spec for g in _groups_of(s)]
    return []


def _has_grid(spec: Any) -> bool:
    return isinstance(spec, GridField) or (isinstance(spec, (tuple, list)) and any(_has_grid(s) for s in spec))


def _compile(spec: Any, actions: VerifiedActions, what: str) -> _Action:
    if spec is None:
        return _Unchanged()
    if isinstance(spec, str) and spec == "points":
        return _Points(actions.coordinates, what)
    if isinstance(spec, FieldType):
        return _Linear(actions.field(spec), what)
    if isinstance(spec, GridField):
        group = actions.group
        trivial = group.trivial_rep()
        actions.rep(trivial)  # transform_grid moves the pixels of C copies of it: verify it is 1
        scalars = lambda c: FieldType(group, [trivial] * c)  # noqa: E731
        return _Grid(_Linear(actions.field(spec.field_type), what), scalars, actions.elements)
    if isinstance(spec, (tuple, list)):
        return _Tuple([_compile(s, actions, f"{what}[{i}]") for i, s in enumerate(spec)], what)
    raise TypeError(
        f"{what}: unknown type {spec!r}; use a FieldType, GridField(field_type), 'points', None or a tuple of them"
    )


# -- the engine ------------------------------------------------------------------------------------
def _cast(value: Any, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return value
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


def _leaves(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _leaves(v)]
    return []


def _tree_error(actual: Any, expected: Any) -> float:
    """:func:`relative_error` over all tensors of (possibly nested tuple) outputs together."""
    a, e = _leaves(actual), _leaves(expected)
    if len(a) != len(e) or any(x.shape != y.shape for x, y in zip(a, e)):
        raise ValueError("equivariance check: f(g.x) and g.f(x) have different structures or shapes")
    if not a:
        raise ValueError("equivariance check: the function returned no tensor")
    flat_a = torch.cat([x.detach().reshape(-1).to(torch.float64) for x in a])
    flat_e = torch.cat([x.detach().reshape(-1).to(torch.float64) for x in e])
    return relative_error(flat_a, flat_e)


def _non_leaves(value: Any, found: dict[int, torch.Tensor], depth: int = 0) -> None:
    if isinstance(value, torch.Tensor):
        if not value.is_leaf:
            found[id(value)] = value.detach().clone()
    elif depth < 3 and isinstance(value, (tuple, list)):
        for v in value:
            _non_leaves(v, found, depth + 1)
    elif depth < 3 and isinstance(value, dict):
        for v in value.values():
            _non_leaves(v, found, depth + 1)


def copy_module(module: torch.nn.Module) -> torch.nn.Module:
    """``copy.deepcopy(module)``, also when it holds tensors computed with autograd (e.g. weights a
    backend caches in eval mode), which ``deepcopy`` refuses: the copy gets detached clones of them."""
    memo: dict[int, Any] = {}
    for sub in module.modules():
        _non_leaves(vars(sub), memo)
    return copy.deepcopy(module, memo)


def prepare(fn: Callable, dtype: torch.dtype | None) -> Callable:
    """A module's deep copy in eval mode (converted to ``dtype`` if given); a function unchanged."""
    if isinstance(fn, torch.nn.Module):
        fn = copy_module(fn).eval()
        if dtype is not None:
            fn = fn.to(dtype)
    return fn


def resolve(
    arg_types: Sequence[Any],
    out_type: Any,
    elements: GroupElements | None,
    n_elements: int,
    group: Group | None,
    generator: torch.Generator | None,
) -> tuple[Group, GroupElements]:
    """The group of the types (all must agree) and the elements to check (lattice ones for grids)."""
    groups = _groups_of(list(arg_types)) + _groups_of(out_type)
    if group is not None:
        groups = [group] + groups
    if elements is not None:
        groups = [elements.group] + groups
    if not groups:
        raise ValueError("equivariance check: no FieldType among the types; pass group= or elements=")
    for other in groups[1:]:
        if other != groups[0]:
            raise ValueError(f"equivariance check: types of different groups, {groups[0]!r} and {other!r}")
    group = groups[0]
    if elements is None:
        grid = any(_has_grid(t) for t in arg_types) or _has_grid(out_type)
        elements = lattice_elements(group) if grid else group.sample(n_elements, generator=generator)
    if len(elements) == 0:
        raise ValueError("equivariance check: no group elements to check")
    return group, elements


def errors_of(
    fn: Callable,
    args: Sequence[Any],
    actions_in: Sequence[_Action],
    action_out: _Action,
    n_elements: int,
    coords_dim: int,
    translate: bool,
    generator: torch.Generator | None,
    kwargs: dict[str, Any] | None = None,
) -> list[float]:
    """Per-element errors of an already prepared ``fn`` with compiled actions."""
    kwargs = kwargs or {}
    errors = []
    with torch.no_grad():
        base = fn(*args, **kwargs)
        for k in range(n_elements):
            shift = torch.randn(1, coords_dim, dtype=torch.float64, generator=generator) if translate else None
            moved = [a.apply(v, k, shift) for a, v in zip(actions_in, args)]
            errors.append(_tree_error(fn(*moved, **kwargs), action_out.apply(base, k, shift)))
    return errors


def equivariance_errors(
    fn: Callable,
    args: Sequence[Any],
    arg_types: Sequence[Any],
    out_type: Any,
    *,
    elements: GroupElements | None = None,
    n_elements: int = 4,
    dtype: torch.dtype | None = None,
    translate: bool = True,
    generator: torch.Generator | None = None,
    group: Group | None = None,
    kwargs: dict[str, Any] | None = None,
) -> list[float]:
    """Relative error ``|f(g.x) - g.f(x)| / |g.f(x)|`` for each element ``g`` (see :func:`equivariance_error`)."""
    args = list(args)
    arg_types = list(arg_types)
    if len(args) != len(arg_types):
        raise ValueError(f"equivariance check: {len(args)} arguments but {len(arg_types)} arg_types")
    group, elements = resolve(arg_types, out_type, elements, n_elements, group, generator)
    actions = VerifiedActions(group, elements)
    actions_in = [_compile(t, actions, f"argument {i}") for i, t in enumerate(arg_types)]
    action_out = _compile(out_type, actions, "output")
    fn = prepare(fn, dtype)
    return errors_of(
        fn,
        _cast(args, dtype),
        actions_in,
        action_out,
        len(elements),
        group.dim,
        translate,
        generator,
        _cast(kwargs, dtype) if kwargs else None,
    )


def equivariance_error(
    fn: Callable,
    args: Sequence[Any],
    arg_types: Sequence[Any],
    out_type: Any,
    *,
    elements: GroupElements | None = None,
    n_elements: int = 4,
    dtype: torch.dtype | None = None,
    translate: bool = True,
    generator: torch.Generator | None = None,
    group: Group | None = None,
    kwargs: dict[str, Any] | None = None,
) -> float:
    """Worst relative equivariance error ``max_g |f(g.x) - g.f(x)| / |g.f(x)|`` of any callable.

    Args:
        fn: a module or a function, called as ``fn(*args, **kwargs)``.  A module is deep-copied
            (the copy in eval mode, converted to ``dtype`` if given): the caller's module, its
            parameters, dtype and training flag are never changed.
        args: the positional arguments (tensors, tuples of tensors, anything for ``None`` types).
        arg_types: one type per argument: a ``FieldType`` (channels on axis 1), ``"points"``
            (positions ``(N, n)``, rotated and translated), :class:`GridField` ``(field_type)``,
            ``None`` (unchanged) or a tuple of these (see :mod:`steerable.testing._engine`).
        out_type: the same for the output (``None``: the output must be invariant).
        elements: the group elements ``g``; default ``n_elements`` samples, or every lattice
            symmetry when a grid type is involved.
        dtype: convert floating-point inputs (and the module copy) to this dtype.
        translate: draw a translation ``t ~ N(0, I)`` per element for the ``"points"``.
        generator: random source of the samples and translations.
        group: the group, when no ``FieldType`` among the types names it (e.g. only ``"points"``).
        kwargs: keyword arguments passed unchanged.

    Returns:
        the largest relative error (Frobenius norms over all output tensors together).

    Raises:
        ConventionError: the group's standard representation is not its coordinate action, or a
            representation used is not a homomorphism (orthogonal on a Euclidean group, invertible otherwise).
    """
    return max(
        equivariance_errors(
            fn,
            args,
            arg_types,
            out_type,
            elements=elements,
            n_elements=n_elements,
            dtype=dtype,
            translate=translate,
            generator=generator,
            group=group,
            kwargs=kwargs,
        )
    )


def assert_equivariant(
    fn: Callable,
    args: Sequence[Any],
    arg_types: Sequence[Any],
    out_type: Any,
    *,
    bound: float,
    elements: GroupElements | None = None,
    **options: Any,
) -> float:
    """:func:`equivariance_error` for tests: raises ``AssertionError`` above ``bound``, else returns the error.

    The message gives the measured error, the bound and the worst element's matrix.  ``options``
    are those of :func:`equivariance_error`.
    """
    group, els = resolve(
        list(arg_types),
        out_type,
        elements,
        options.pop("n_elements", 4),
        options.pop("group", None),
        options.get("generator"),
    )
    errors = equivariance_errors(fn, args, arg_types, out_type, elements=els, group=group, **options)
    worst = max(range(len(errors)), key=lambda k: errors[k])
    if not errors[worst] <= bound:
        raise AssertionError(
            f"not equivariant: relative error {errors[worst]:.3e} > bound {bound:.1e} for element {worst} of "
            f"{len(errors)} of {group!r}, g =\n{els.matrices[worst].numpy().round(6)}\n(errors: "
            f"{', '.join(f'{e:.1e}' for e in errors)})"
        )
    return errors[worst]
