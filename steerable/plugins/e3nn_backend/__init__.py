"""The e3nn backend: SO(3) and O(3) on R^3 through irreps, spherical harmonics and gated tensor products.

Importing this module is cheap: e3nn is imported by :func:`_load` (called once by the registry, which
reports an ImportError as "unavailable") and by the group builders, which import
:mod:`.group` and :mod:`.mlp` lazily.

>>> import steerable as st
>>> G = st.group("O(3)", backend="e3nn")                  # doctest: +SKIP
>>> f = G.field_type("4x0e + 2x1o + 1e + 2e")               # doctest: +SKIP
>>> conv = st.PointConv(f, G.field_type("0e + 1o"), edge_attr=1, max_radius=5.0)   # doctest: +SKIP
>>> G.irrep(1, -1) is G.standard_rep()                      # doctest: +SKIP
True
"""

from __future__ import annotations

from typing import Any

from steerable.registry import hookimpl
from steerable.registry.backend import Backend, GroupSpec

__all__ = ["steerable_backends"]


def _load() -> None:
    """Import e3nn and the plugin's group module, whose import checks e3nn's basis conventions.

    Failing here (missing e3nn, a broken install, a version with other conventions) makes the
    registry report the backend as unavailable with the reason instead of failing at build time.
    """
    import e3nn  # noqa: F401

    from . import group  # noqa: F401


def _build_so3(dim: int, **params: Any):
    from .group import build_group

    return build_group(dim, with_inversion=False, **params)


def _build_o3(dim: int, **params: Any):
    from .group import build_group

    return build_group(dim, with_inversion=True, **params)


@hookimpl
def steerable_backends() -> list[Backend]:
    return [
        Backend(
            name="e3nn",
            priority=20,
            groups=[
                GroupSpec("e3nn", "SO(3)", "SO3", (3,), _build_so3, "rotations of R^3 (irreps l, spherical harmonics)"),
                GroupSpec("e3nn", "O(3)", "O3", (3,), _build_o3, "rotations and reflections of R^3 (irreps le / lo)"),
            ],
            load=_load,
            description="SO(3) and O(3) through e3nn irreps, spherical harmonics and gated tensor products",
            requires=("e3nn",),
        )
    ]
