"""The conformance suite: what every group of every backend must pass.

A plugin author runs it in one call::

    import steerable as st
    from steerable.testing.conformance import run_conformance

    report = run_conformance(st.group("HexLattice"))      # raises ConformanceError on a failure
    print(report)                                          # one line per check: value, bound, verdict
    report = run_conformance(G, raise_on_failure=False)    # or inspect report.failures

or as a pytest plugin, one test item per check::

    pytest -p steerable.testing.pytest_plugin --steerable-group HexLattice [--steerable-dim 2]
        [--steerable-backend matrix]

(``--steerable-group`` may be repeated; see :mod:`steerable.testing.pytest_plugin`).

The checks, in order (names as in the report):

* ``coordinate action``: ``standard_rep().matrices(g)`` equals ``g.matrices`` (sampled elements
  and the lattice symmetries);
* ``representations``: the trivial, standard and ``irreps(max_frequency=2)`` representations are
  homomorphisms (``rho(g h) = rho(g) rho(h)`` on sampled pairs), orthogonal on a Euclidean group and
  invertible on a non-compact one (``O(p,q)``), the trivial one ``1``;
* ``kernel``, ``point conv``, ``grid conv`` (groups on R^2 / R^3 / R^4, on the lattice symmetries), in
  float64 and float32: relative equivariance error on a mixed field (trivial + standard + a
  higher irrep, :func:`~steerable.testing.mixed_field_type`) at most the bound of the dtype;
* ``outputs carry signal``: every output field of the point convolution is non-zero (a zero
  layer would be equivariant);
* ``completeness``: at a point on the last axis the kernel's span over random parameters has the
  dimension of the maps commuting with the point's stabiliser
  (:func:`~steerable.testing.stabiliser_on_axis`); skipped, with the reason, for a continuous group
  whose stabiliser is not known;
* ``state_dict``: a freshly built layer loading another's ``state_dict`` gives the same outputs, up to
  rounding (256 units of the dtype's precision relative to the largest output).

Every transformation is built from verified matrices (:mod:`steerable.testing._verified`), so a
backend cannot pass by agreeing with itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.group import Group
from ..core.representation import FieldType
from ..nn.grid_action import lattice_elements
from ..nn.grid_conv import GridConv
from ..nn.kernel import ImplicitKernel
from ..nn.point_conv import PointConv
from ._completeness import commutant_dimension, kernel_span_rank, stabiliser_on_axis
from ._engine import copy_module
from ._equivariance import check_equivariance
from ._report import CHECK_RADIUS, mixed_field_type
from ._verified import verify_coordinate_action, verify_representation

__all__ = ["CHECKS", "DEFAULT_BOUNDS", "CheckResult", "ConformanceError", "ConformanceReport", "run_conformance"]

#: Default bounds on the relative equivariance error, for any backend.  Measured with the default
#: settings over every group family the built-in backends list: float64 at most 1.7e-7 (escnn's
#: FullIco; its other finite groups <= 9.7e-8; e3nn, the matrix backend and escnn's continuous
#: groups <= 5.8e-15), float32 at most 1.2e-6 (matrix m-3m grid conv); the bounds leave a
#: factor ~6 (float64) and ~4 (float32).  tests/test_conformance.py sets tighter bounds per backend.
DEFAULT_BOUNDS: dict[torch.dtype, float] = {torch.float64: 1e-6, torch.float32: 5e-6}

#: names of the checks, in the order they run
CHECKS = (
    "coordinate action",
    "representations",
    "kernel float64",
    "point conv float64",
    "grid conv float64",
    "kernel float32",
    "point conv float32",
    "grid conv float32",
    "outputs carry signal",
    "completeness",
    "state_dict",
)


class ConformanceError(AssertionError):
    """Raised by :func:`run_conformance` when a check fails; the message lists every failure."""


@dataclass
class CheckResult:
    """One check: ``passed`` (``None`` when skipped), the measured ``value`` and its ``bound`` if any."""

    name: str
    passed: bool | None
    detail: str = ""
    value: float | None = None
    bound: float | None = None

    def __str__(self) -> str:
        verdict = {True: "ok", False: "FAIL", None: "skipped"}[self.passed]
        number = f" {self.value:.2e}" if self.value is not None else ""
        bound = f" (bound {self.bound:.0e})" if self.bound is not None else ""
        return f"{self.name:<22} {verdict:<7}{number}{bound}{' - ' + self.detail if self.detail else ''}"


@dataclass
class ConformanceReport:
    """The results of :func:`run_conformance` for one group."""

    group: Group
    results: list[CheckResult] = field(default_factory=list)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.passed is False]

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no check named {name!r}; checks: {[r.name for r in self.results]}")

    def raise_for_failures(self) -> None:
        """Raise :class:`ConformanceError` listing every failed check."""
        if self.failures:
            lines = "\n".join(f"  {r}" for r in self.failures)
            raise ConformanceError(f"{self.group!r} fails {len(self.failures)} conformance check(s):\n{lines}")

    def __str__(self) -> str:
        return "\n".join([f"conformance of {self.group!r}"] + [f"  {r}" for r in self.results])


@dataclass
class _Layers:
    """The layers the suite checks, built once per group."""

    field: FieldType
    kernel: ImplicitKernel
    point: PointConv
    grid: GridConv | None


def _build(group: Group, mlp: dict[str, Any], seed: int) -> _Layers:
    torch.manual_seed(seed)
    f = mixed_field_type(group)
    grid = None
    if group.dim == 2:
        grid = GridConv(f, f, 5, padding=2, **mlp)
    elif group.dim in (3, 4):  # R^5 and beyond: 3^d taps, too slow for a default check
        grid = GridConv(f, f, 3, padding=1, **mlp)
    point_mlp = {"max_radius": CHECK_RADIUS, **mlp}  # the grid derives its own unless mlp sets one
    return _Layers(f, ImplicitKernel(f, f, 1, **point_mlp), PointConv(f, f, edge_attr=1, **point_mlp), grid)


def _coordinate_action(group: Group, gen: torch.Generator) -> CheckResult:
    verify_coordinate_action(group, group.sample(4, generator=gen))
    if group.dim in (2, 3, 4):
        verify_coordinate_action(group, lattice_elements(group))
    return CheckResult("coordinate action", True, "standard_rep().matrices(g) == g.matrices")


def _representations(group: Group, gen: torch.Generator) -> CheckResult:
    reps = {id(r): r for r in [group.trivial_rep(), group.standard_rep(), *group.irreps(max_frequency=2)]}
    elements = group.sample(4, generator=gen)
    for rep in reps.values():
        verify_representation(rep, elements, generator=gen)
    return CheckResult(
        "representations", True, f"{len(reps)} {'orthogonal' if group.is_euclidean() else 'invertible'} homomorphisms"
    )


def _equivariance(
    name: str,
    module: torch.nn.Module | None,
    group: Group,
    dtype: torch.dtype,
    bound: float,
    n_elements: int,
    seed: int,
) -> CheckResult:
    full = f"{name} {str(dtype).replace('torch.', '')}"
    gen = torch.Generator().manual_seed(seed)
    if module is None:
        return CheckResult(full, None, f"no grid convolution on R^{group.dim}")
    if isinstance(module, GridConv):
        elements = lattice_elements(group)
        if len(elements) < 2:
            return CheckResult(full, None, "the group has no lattice symmetry but the identity")
        value = check_equivariance(
            module, elements=elements, dtype=dtype, grid_size=7 if group.dim == 2 else 5, generator=gen
        )
        detail = f"{len(elements)} lattice symmetries"
    else:
        value = check_equivariance(module, dtype=dtype, n_elements=n_elements, n_points=12, generator=gen)
        detail = f"{n_elements} sampled elements"
    return CheckResult(full, value <= bound, detail, value, bound)


def _signal(layers: _Layers, group: Group) -> CheckResult:
    conv = _double_copy(layers.point)
    gen = torch.Generator().manual_seed(0)
    n = 10
    pos = torch.randn(n, group.dim, dtype=torch.float64, generator=gen)
    x = torch.randn(n, conv.in_type.size, dtype=torch.float64, generator=gen)
    src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = src != dst
    with torch.no_grad():
        y = conv(
            x,
            pos,
            torch.stack([src[keep], dst[keep]]),
            torch.randn(int(keep.sum()), 1, dtype=torch.float64, generator=gen),
        )
    scale = float(y.abs().max())
    start, silent = 0, []
    for rep in conv.out_type.reps:
        if float(y[:, start : start + rep.size].abs().max()) <= 1e-6 * max(scale, 1e-300):
            silent.append(repr(rep))
        start += rep.size
    if silent:
        return CheckResult("outputs carry signal", False, f"point conv output fields {silent} are zero")
    return CheckResult("outputs carry signal", True, "every output field of the point conv is non-zero")


def _double_copy(module: torch.nn.Module) -> torch.nn.Module:
    return copy_module(module).eval().double()


def _completeness(layers: _Layers, group: Group) -> CheckResult:
    try:
        point, stabiliser = stabiliser_on_axis(group)
    except ValueError as exc:
        return CheckResult("completeness", None, str(exc))
    f = layers.field
    expected = commutant_dimension(stabiliser, f, f)
    kernel = _double_copy(layers.kernel)

    def rerandomised() -> torch.nn.Module:  # kernel_span_rank seeds torch before each call
        with torch.no_grad():
            for p in kernel.parameters():
                p.copy_(torch.randn_like(p))
        return kernel

    rank = kernel_span_rank(
        rerandomised, 0.6 * point[None], torch.zeros(1, 1, dtype=torch.float64), n_inits=expected + 4
    )
    detail = f"at {(0.6 * point).tolist()} ({len(stabiliser)} stabiliser generators): rank {rank}, allowed {expected}"
    return CheckResult("completeness", rank == expected, detail, float(rank), float(expected))


#: how many units of rounding (relative to the largest output) two runs of the same weights may differ by
_ROUNDING_ULPS = 256


def _state_dict(group: Group, layers: _Layers, mlp: dict[str, Any], seed: int) -> CheckResult:
    fresh = _build(group, mlp, seed + 1)
    gen = torch.Generator().manual_seed(0)
    n = 8
    pos = torch.randn(n, group.dim, generator=gen)
    x = torch.randn(n, layers.field.size, generator=gen)
    edges = torch.randint(0, n, (2, 20), generator=gen)
    attr = torch.randn(20, 1, generator=gen)
    calls: list[tuple[str, str, Callable[[torch.nn.Module], torch.Tensor]]] = [
        ("kernel", "kernel", lambda m: m(pos, attr[:n])),
        ("point conv", "point", lambda m: m(x, pos, edges, attr)),
    ]
    if layers.grid is not None:
        img = torch.randn(1, layers.field.size, *(6,) * group.dim, generator=gen)
        calls.append(("grid conv", "grid", lambda m: m(img)))
    problems = []
    with torch.no_grad():
        for name, attr_name, call in calls:
            source, target = getattr(layers, attr_name), getattr(fresh, attr_name)
            before = call(target)
            target.load_state_dict(source.state_dict())
            after, wanted = call(target), call(source)
            # Equal weights give equal outputs up to rounding only: oneDNN and BLAS pick code paths by
            # memory alignment, so two identical convolutions can differ in the last bits.  A missing
            # or misloaded parameter shows as an O(1) difference, far above this bound.
            bound = _ROUNDING_ULPS * torch.finfo(wanted.dtype).eps * max(float(wanted.abs().max()), 1.0)
            if float((after - wanted).abs().max()) > bound:
                problems.append(
                    f"{name}: outputs differ by {float((after - wanted).abs().max()):.2e} after loading"
                    f" (bound {bound:.1e})"
                )
            elif float((before - wanted).abs().max()) <= bound:
                problems.append(f"{name}: two initialisations gave the same outputs, the round trip proves nothing")
    if problems:
        return CheckResult("state_dict", False, "; ".join(problems))
    return CheckResult("state_dict", True, f"{', '.join(c[0] for c in calls)}: the same outputs after loading")


def run_conformance(
    group: Group,
    *,
    bounds: dict[torch.dtype, float] | None = None,
    dtypes: Sequence[torch.dtype] = (torch.float64, torch.float32),
    checks: Sequence[str] | None = None,
    n_elements: int = 3,
    mlp: dict[str, Any] | None = None,
    seed: int = 0,
    raise_on_failure: bool = True,
) -> ConformanceReport:
    """Run the conformance checks (module doc) on ``group``.

    Args:
        group: the group to check, e.g. ``st.group("HexLattice")``.
        bounds: bound on the relative equivariance error per dtype (default :data:`DEFAULT_BOUNDS`).
        dtypes: the dtypes of the equivariance checks.
        checks: run only these (names from :data:`CHECKS`, dtype suffix optional: ``"kernel"``
            runs ``"kernel float64"`` and ``"kernel float32"``); default all.
        n_elements: sampled group elements per kernel / point conv check.
        mlp: kernel MLP options for every layer (``hidden_channels``, ...; default the backend's).
        seed: seeds the layers' initialisation and the random inputs.
        raise_on_failure: raise :class:`ConformanceError` if a check fails (after running all).

    Returns:
        the :class:`ConformanceReport`.  A check raising an exception counts as failed, with the
        exception as its detail (a :class:`~steerable.testing.ConventionError` names the broken
        convention).
    """
    if not isinstance(group, Group):
        raise TypeError(f"run_conformance: expected a Group, got {type(group).__name__}")
    bounds = {**DEFAULT_BOUNDS, **(bounds or {})}
    mlp = dict(mlp or {})
    wanted = None if checks is None else set(checks)
    unknown = (wanted or set()) - set(CHECKS) - {c.rsplit(" ", 1)[0] for c in CHECKS}
    if unknown:
        raise ValueError(f"run_conformance: unknown checks {sorted(unknown)}; known: {list(CHECKS)}")
    report = ConformanceReport(group)
    gen = torch.Generator().manual_seed(seed)
    layers: list[_Layers] = []

    def get_layers() -> _Layers:
        if not layers:
            layers.append(_build(group, mlp, seed))
        return layers[0]

    plan: list[tuple[str, Callable[[], CheckResult]]] = [
        ("coordinate action", lambda: _coordinate_action(group, gen)),
        ("representations", lambda: _representations(group, gen)),
    ]
    for dtype in dtypes:
        suffix = str(dtype).replace("torch.", "")
        for name, attr in (("kernel", "kernel"), ("point conv", "point"), ("grid conv", "grid")):
            plan.append(
                (
                    f"{name} {suffix}",
                    lambda name=name, attr=attr, dtype=dtype: _equivariance(
                        name, getattr(get_layers(), attr), group, dtype, bounds[dtype], n_elements, seed
                    ),
                )
            )
    plan += [
        ("outputs carry signal", lambda: _signal(get_layers(), group)),
        ("completeness", lambda: _completeness(get_layers(), group)),
        ("state_dict", lambda: _state_dict(group, get_layers(), mlp, seed)),
    ]
    for name, run in plan:
        if wanted is not None and name not in wanted and name.rsplit(" ", 1)[0] not in wanted:
            continue
        try:
            result = run()
        except Exception as exc:  # a broken backend fails the check, with the reason
            result = CheckResult(name, False, f"{type(exc).__name__}: {exc}")
        report.results.append(result)
    if raise_on_failure:
        report.raise_for_failures()
    return report
