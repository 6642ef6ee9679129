"""The escnn backend: subgroups of O(2) and O(3) with escnn-built kernel MLPs.

Importing this module is cheap: escnn is imported only by :func:`load` and by the group builders
(which import :mod:`.groups` lazily).  Groups offered (names as matched by the registry):

* on ``R^2`` (default) and ``R^3`` (about the z axis): ``SO(2)``, ``O(2)``, ``C{N}``, ``D{N}``;
* on ``R^3``: ``SO(3)``, ``O(3)``, ``Octa`` (24), ``FullOcta`` (48), ``Ico`` (60), ``FullIco`` (120);
* on ``R^3``, the axial subgroups of ``O(3)`` by Schoenflies name: ``Cs``, ``Ci`` (``Inv``), ``Cinf``,
  ``Cinfv``, ``Dinf``, ``Cinfh``, ``Dinfh`` (:mod:`.schoenflies`).

See :mod:`.groups` for the exact escnn subgroups and coordinate conventions, and :mod:`.mlp` for
the kernel MLP and its options.

First use: escnn computes irreps, restrictions and Clebsch-Gordan coefficients numerically the first
time they are needed and caches them on disk in its package folder.  Two of its generic routes are
replaced by exact character formulas with the same results (:mod:`.characters`: tensor-product
multiplicities, regular representations), and the groups that still take more than a few seconds on
an empty escnn cache print a one-line note on stderr before that build (:mod:`.first_use`).

Interop with escnn (:mod:`.interop`): :func:`to_escnn` and :func:`from_escnn` convert field types
(the same fields in the same basis: tensors pass unchanged), and ``G.field_type(escnn_field_type)``
gives ours for a group ``G``:

>>> import steerable as st
>>> from escnn import gspaces                                       # doctest: +SKIP
>>> G = st.group("C4", backend="escnn")                             # doctest: +SKIP
>>> f = G.field_type(gspaces.rot2dOnR2(4).type(*[G.native.regular_representation] * 2))  # doctest: +SKIP
>>> from_escnn(to_escnn(f, gspaces.rot2dOnR2(4))) == f              # doctest: +SKIP
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from steerable.registry import hookimpl
from steerable.registry.backend import Backend, GroupSpec

if TYPE_CHECKING:  # pragma: no cover
    from steerable.core.representation import FieldType

NAME = "escnn"

__all__ = ["from_escnn", "load", "steerable_backends", "to_escnn"]


def load() -> None:
    """Import escnn (raises ImportError with the reason when it is missing or broken)."""
    import escnn
    import escnn.gspaces
    import escnn.nn  # noqa: F401
    from escnn.group.groups import ico, octa

    # escnn's disk cache of the finite 3D groups' irreps logs every load ("[Memory] Loading ...");
    # silence it so that user output stays readable.
    for module, name in ((octa, "_build_octa_irrep_picklable"), (ico, "_build_ico_irrep_picklable")):
        cached = getattr(module, name, None)
        if hasattr(cached, "_verbose"):
            cached._verbose = 0


def to_escnn(field_type: FieldType, gspace: Any = None) -> Any:
    """escnn's ``nn.FieldType`` with the fields of our ``field_type`` (see :func:`.interop.to_escnn`)."""
    from .interop import to_escnn as convert

    return convert(field_type, gspace)


def from_escnn(escnn_field_type: Any, dim: int | None = None) -> FieldType:
    """Our ``FieldType`` with the fields of escnn's ``escnn_field_type`` (see :func:`.interop.from_escnn`)."""
    from .interop import from_escnn as convert

    return convert(escnn_field_type, dim)


def _lazy(builder: str, module: str = "groups"):
    def build(dim: int, **params: Any):
        return getattr(importlib.import_module(f"{__name__}.{module}"), builder)(dim, **params)

    build.__name__ = builder
    return build


def _specs() -> list[GroupSpec]:
    rows = [
        ("SO(2)", "SO2", (2, 3), "build_so2", "rotations of the plane (on R^3: about z)"),
        (
            "O(2)",
            "O2",
            (2, 3),
            "build_o2",
            "rotations and reflections of the plane (on R^3: about z, mirror planes through z)",
        ),
        ("C{N}", r"C(?P<N>\d+)", (2, 3), "build_cyclic", "N rotations (on R^3: about z)"),
        (
            "D{N}",
            r"D(?P<N>\d+)",
            (2, 3),
            "build_dihedral",
            "N rotations and N reflections (on R^3: about z, mirror planes through z)",
        ),
        ("SO(3)", "SO3", (3,), "build_so3", "rotations of R^3"),
        ("O(3)", "O3", (3,), "build_o3", "rotations and inversion of R^3"),
        ("Octa", "OCTA", (3,), "build_octa", "the 24 rotations of the cube"),
        ("FullOcta", "FULLOCTA", (3,), "build_full_octa", "the 48 symmetries of the cube (with inversion)"),
        ("Ico", "ICO", (3,), "build_ico", "the 60 rotations of the icosahedron"),
        ("FullIco", "FULLICO", (3,), "build_full_ico", "the 120 symmetries of the icosahedron (with inversion)"),
    ]
    specs = [
        GroupSpec(backend=NAME, display=d, pattern=p, dims=dims, build=_lazy(b), doc=doc) for d, p, dims, b, doc in rows
    ]
    # the axial subgroups of O(3) by Schoenflies name (module .schoenflies), all on R^3
    axial = [
        ("Cs", "CS", "build_cs", "identity and the mirror z -> -z (the paper's M)"),
        ("Ci", "CI|INV", "build_ci", "identity and the inversion -1 (alias Inv)"),
        ("Cinf", "CINF", "build_cinf", "rotations about z: SO(2) on R^3"),
        ("Cinfv", "CINFV", "build_cinfv", "rotations about z and mirror planes through z: O(2) on R^3"),
        ("Dinf", "DINF", "build_dinf", "rotations about z and half turns about horizontal axes"),
        ("Cinfh", "CINFH", "build_cinfh", "rotations about z, the inversion and their products"),
        ("Dinfh", "DINFH", "build_dinfh", "every orthogonal map keeping the z axis"),
    ]
    specs += [
        GroupSpec(backend=NAME, display=d, pattern=p, dims=(3,), build=_lazy(b, "schoenflies"), doc=doc)
        for d, p, b, doc in axial
    ]
    return specs


@hookimpl
def steerable_backends() -> list[Backend]:
    return [
        Backend(
            name=NAME,
            priority=10,
            groups=_specs(),
            load=load,
            description="escnn: subgroups of O(2) and O(3), exact harmonic-embedding kernel MLPs",
            requires=("escnn",),
        )
    ]
