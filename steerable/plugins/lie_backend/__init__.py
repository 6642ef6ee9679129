"""The lie backend: matrix groups given by a Lie algebra (and discrete generators), solved numerically.

Groups offered (backend name ``"lie"``, priority 40: escnn, e3nn and matrix are preferred for the names
they also offer):

* ``"SO(n)"`` and ``"O(n)"`` on ``R^n`` for ``n = 2 .. MAX_NAMED_N`` (16): Lie algebra ``L_ij = E_ij -
  E_ji`` (``i < j``, lexicographic); ``O(n)`` adds the reflection ``diag(-1, 1, ..., 1)``.  For ``n = 2,
  3`` escnn serves the names by default; ask for this backend with ``st.group("SO(3)", backend="lie")``.
  Larger ``n``: ``group_from_generators([], lie_algebra=so_basis(n))``;
* ``"O(p,q)"``, ``"SO(p,q)"``, ``"SO+(p,q)"`` on ``R^(p+q)`` for ``p, q >= 1``, ``p + q <= MAX_SIGNATURE_N``
  (8; any size from :func:`indefinite_orthogonal`): the group preserving ``eta = diag(+1 (p times), -1 (q
  times))`` **in the coordinate order given** (``"O(1,3)"``: time first, ``x = (t, x, y, z)``, ``eta =
  diag(1, -1, -1, -1)``, timelike vectors have ``x^T eta x > 0``; ``"O(3,1)"`` is the other convention,
  time last, spacelike positive); ``SO(p,q)`` its determinant-1 part, ``SO+(p,q)`` its identity component
  (no reversal of the first ``p`` or of the last ``q`` coordinates).  ``"Lorentz"`` is ``SO+(1,3)``.
  Names keep the comma: ``"O(1,3)"``, ``"so+(1, 3)"``;
* any group from Lie-algebra generators and discrete generators preserving a nondegenerate quadratic
  form: ``st.group_from_generators(generators, name, lie_algebra=[...], dim=n)``, e.g. the torus ``T2`` on
  ``R^4`` from ``J12`` and ``J34``, or ``SO+(1,1)`` on ``R^2`` from the boost ``[[0, 1], [1, 0]]``.  The
  algebra must close under commutators and the discrete generators must normalise it; generators
  preserving no nondegenerate quadratic form, or a definite one other than the identity (a compact group
  in skewed coordinates), are refused with the reason.

Conventions (contracts):

* ``G.sample(n).matrices``: ``(n, d, d)`` float64.  ``SO(n)``, ``O(n)``: Haar (QR of a Gaussian matrix
  with the signs of ``diag R`` moved into ``Q``; ``O(n)`` covers both components).  ``O(p,q)`` and its
  subgroups (non-compact: a bounded distribution): ``C B R``, ``R`` Haar in ``SO(p) x SO(q)``, ``B`` a boost
  of rapidity uniform in ``[0, 2]`` in a Gaussian direction, ``C`` a uniformly drawn component
  representative (every component covered).  Groups from generators: ``exp(sum_k c_k A_k)``, ``c_k``
  uniform in ``[-pi, pi)`` (scaled down to rapidity 2 when larger), times a random word of at most 4
  discrete generators.  ``G.elements_from_matrices`` checks membership (``g^T eta g = eta``, components)
  and names the failing matrix.
* ``G.quadratic_form()``: the invariant form ``eta`` (the identity for the groups acting orthogonally).
* ``G.key`` = ``("lie", class, name, n, None, kind, digest(algebra), digest(discrete generators))``.
* Representations (:class:`~.reps.LieRep`): ``trivial_rep()``, ``standard_rep()`` (``g``), ``det_rep()`` /
  ``G.det`` (``det g``; trivial on a group of determinant 1), ``rep.dual()`` (``g^-T``),
  ``rep.exterior_power(k)`` (basis ``e_i1 ^ ... ^ e_ik``, ``i1 < ... < ik`` lexicographic, matrices
  the ``k x k`` minors), ``rep.symmetric_power(k)`` (basis: multisets ``i1 <= ... <= ik`` in
  lexicographic order, vector ``s_I`` the normalised symmetrisation, i.e. the monomial ``x^I`` scaled by
  ``sqrt(k! / prod mult!)``; orthogonal for orthogonal ``g``), ``r1 + r2`` (block diagonal), ``r1 * r2``
  (``kron``, channel ``i * d2 + j``).  Each knows ``d rho(A)`` (``rep.on_algebra``).  Portable:
  trivial, standard and ``det`` (when some element has determinant -1).  Keys: ``(G.key, "lie",
  expression)``; on a group acting orthogonally ``rep.dual()`` has the key (and matrices) of ``rep``.
* Equivariant maps: :func:`~.solver.intertwiner_basis` (null space of the ``d rho(A_k)`` and
  ``rho(h) - I`` constraints, cached on disk under ``$STEERABLE_CACHE/lie``).
* Kernel MLP: :mod:`.mlp` (equivariant polynomials of the position times learned invariant functions;
  exact and complete).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from steerable.registry import hookimpl
from steerable.registry.backend import Backend, GroupSpec

if TYPE_CHECKING:  # pragma: no cover
    from .group import LieGroup

NAME = "lie"
PRIORITY = 40
#: ``SO(n)``, ``O(n)`` are registered by name for ``n = 2 .. MAX_NAMED_N``
MAX_NAMED_N = 16
#: ``O(p,q)``, ``SO(p,q)``, ``SO+(p,q)`` are registered by name for ``p, q >= 1``, ``p + q <= MAX_SIGNATURE_N``
MAX_SIGNATURE_N = 8


def _builder(kind: str, n: int) -> Callable[..., Any]:
    def build(dim: int, **params: Any):
        if params:
            raise ValueError(f"{kind}({n}) takes no parameters, got {sorted(params)}")
        from .group import orthogonal, special_orthogonal

        return (special_orthogonal if kind == "SO" else orthogonal)(n)

    build.__name__ = f"build_{kind}{n}"
    return build


def _signature_builder(kind: str, p: int, q: int) -> Callable[..., Any]:
    def build(dim: int, **params: Any):
        if params:
            raise ValueError(f"{kind}({p},{q}) takes no parameters, got {sorted(params)}")
        from .group import indefinite_orthogonal

        return indefinite_orthogonal(p, q, kind)

    build.__name__ = f"build_{kind}{p}_{q}"
    return build


_SIGNATURE_DOCS = {
    "O": "the orthogonal group of eta = diag(+1 x{p}, -1 x{q}) (four components)",
    "SO": "O({p},{q}) elements of determinant 1 (two components)",
    "SO+": "the identity component of O({p},{q})",
}


def _signature_specs() -> list[GroupSpec]:
    specs = []
    for n in range(2, MAX_SIGNATURE_N + 1):
        for p in range(1, n):
            q = n - p
            for kind in ("O", "SO", "SO+"):
                display = f"{kind}({p},{q})"
                pattern = re.escape(f"{kind}{p},{q}")
                doc = _SIGNATURE_DOCS[kind].format(p=p, q=q)
                specs.append(GroupSpec(NAME, display, pattern, (n,), _signature_builder(kind, p, q), doc))
    specs.append(
        GroupSpec(
            NAME,
            "Lorentz",
            "LORENTZ",
            (4,),
            _signature_builder("SO+", 1, 3),
            "SO+(1,3), the proper orthochronous Lorentz group, eta = diag(1, -1, -1, -1) (time first)",
        )
    )
    return specs


def _specs() -> list[GroupSpec]:
    specs = _signature_specs()
    for n in range(2, MAX_NAMED_N + 1):
        specs.append(
            GroupSpec(NAME, f"SO({n})", f"SO{n}", (n,), _builder("SO", n), f"rotations of R^{n} (Lie algebra)")
        )
        specs.append(
            GroupSpec(
                NAME,
                f"O({n})",
                f"O{n}",
                (n,),
                _builder("O", n),
                f"rotations and reflections of R^{n} (Lie algebra and a reflection)",
            )
        )
    return specs


def load() -> None:
    """Nothing beyond numpy and torch."""
    import numpy  # noqa: F401


@hookimpl
def steerable_backends() -> list[Backend]:
    return [
        Backend(
            name=NAME,
            priority=PRIORITY,
            groups=_specs(),
            load=load,
            description="SO(n), O(n), O(p,q), SO(p,q), SO+(p,q), Lorentz and groups from Lie-algebra generators; "
            "numerical intertwiners, polynomial kernel MLP",
        )
    ]


def group_from_generators(generators: Any, name: str | None = None, *, lie_algebra: Any, dim: int | None = None):
    """The group generated by ``exp`` of ``lie_algebra`` and the discrete ``generators``; see
    :func:`.group.group_from_lie_algebra`."""
    from .group import group_from_lie_algebra

    return group_from_lie_algebra(generators, name, lie_algebra=lie_algebra, dim=dim)


def so_basis(n: int):
    """``(n(n-1)/2, n, n)``: ``L_ij = E_ij - E_ji``, ``i < j`` lexicographic."""
    from .algebra import so_basis as build

    return build(n)


def indefinite_orthogonal(p: int, q: int, kind: str = "O") -> LieGroup:
    """``O(p,q)``, ``SO(p,q)`` or ``SO+(p,q)`` for any ``p, q >= 1``; see :func:`.group.indefinite_orthogonal`."""
    from .group import indefinite_orthogonal as build

    return build(p, q, kind)


__all__ = [
    "MAX_NAMED_N",
    "MAX_SIGNATURE_N",
    "NAME",
    "indefinite_orthogonal",
    "PRIORITY",
    "group_from_generators",
    "so_basis",
    "steerable_backends",
]
