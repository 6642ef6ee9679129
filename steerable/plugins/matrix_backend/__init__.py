"""The matrix backend: finite subgroups of ``O(n)`` from generator matrices, no backend library needed.

Importing this module is cheap (numpy/torch are imported by the core anyway; group closures and
irreps are computed when a group is built).  Groups offered by name:

* the 32 crystallographic point groups of ``R^3`` and the 10 of ``R^2`` by Hermann–Mauguin symbol,
  e.g. ``st.group("m-3m")`` (48), ``st.group("6/mmm")`` (24), ``st.group("4mm", dim=2)`` (8);
  names that exist in both default to ``R^3``; settings in :mod:`.pointgroups`;
* ``C{N}`` and ``D{N}`` on ``R^2`` and ``R^3`` with the escnn backend's conventions (escnn is
  preferred for those names when installed; ask with ``backend="matrix"``);
* any finite group from its generators: :func:`group_from_generators`.

Hermann–Mauguin symbols are matched on the name as written (whitespace removed, case ignored,
:func:`raw_group_key`), keeping ``-`` and ``/`` (``-3m`` and ``3m``, ``-1`` and ``1``, ``-4`` and ``4``
are different groups) and brackets (``"(-3m)"`` is refused with a suggestion, not read as
``-3m``).  The old symbols ``m3m`` and
``m3`` are accepted for ``m-3m`` and ``m-3``.

Representations (:class:`~.group.MatrixRep`): trivial, standard, ``det``, regular, permutation (on a
point set), from generator images or from element matrices, direct sums (``a + b``), tensor
products (``a * b``) and all real irreps (``G.irreps()``).  Equivariant linear maps between any two:
:func:`~.solver.intertwiner_basis` (disk-cached).  Kernel MLP: :mod:`.mlp`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from steerable.registry import hookimpl
from steerable.registry.backend import Backend, GroupSpec, params_of

NAME = "matrix"
PRIORITY = 30

_SYMBOLS_3D = (
    "1",
    "-1",
    "2",
    "m",
    "2/m",
    "222",
    "mm2",
    "mmm",
    "4",
    "-4",
    "4/m",
    "422",
    "4mm",
    "-42m",
    "4/mmm",
    "3",
    "-3",
    "32",
    "3m",
    "-3m",
    "6",
    "-6",
    "6/m",
    "622",
    "6mm",
    "-6m2",
    "6/mmm",
    "23",
    "m-3",
    "432",
    "-43m",
    "m-3m",
)
_SYMBOLS_2D = ("1", "2", "m", "2mm", "3", "3m", "4", "4mm", "6", "6mm")
_ALIASES = {"m-3m": "m-?3m", "m-3": "m-?3"}  # m3m, m3: older notation of the same groups


def raw_group_key(name: str) -> str:
    """The name with whitespace removed and lower-cased, keeping ``-`` and ``/`` (they matter in HM symbols)."""
    return re.sub(r"\s", "", name).lower()


class RawGroupSpec(GroupSpec):
    """A :class:`GroupSpec` whose ``pattern`` is matched against :func:`raw_group_key` of the name.

    Needed because :func:`normalize_group_name` drops brackets and underscores, which are not part of
    Hermann–Mauguin symbols, and upper-cases, while the symbols are lower-case by convention.
    """

    def match(self, name: str) -> dict[str, int] | None:
        return params_of(re.fullmatch(self.pattern, raw_group_key(name)))


def _point_group_builder(symbol: str) -> Callable[..., Any]:
    def build(dim: int, **params: Any):
        if params:
            raise ValueError(f"point group {symbol!r} takes no parameters, got {sorted(params)}")
        from .pointgroups import build_point_group

        return build_point_group(symbol, dim)

    build.__name__ = f"build_{symbol}"
    return build


def _family_builder(which: str) -> Callable[..., Any]:
    def build(dim: int, **params: Any):
        from . import pointgroups

        return getattr(pointgroups, which)(dim, **params)

    build.__name__ = which
    return build


def _specs() -> list[GroupSpec]:
    specs: list[GroupSpec] = []
    for symbol in _SYMBOLS_3D + tuple(s for s in _SYMBOLS_2D if s not in _SYMBOLS_3D):
        dims = tuple(d for d, table in ((3, _SYMBOLS_3D), (2, _SYMBOLS_2D)) if symbol in table)
        pattern = _ALIASES.get(symbol, re.escape(symbol))
        kind = "crystallographic point group" + ("" if len(dims) == 2 else f" of R^{dims[0]}")
        specs.append(RawGroupSpec(NAME, symbol, pattern, dims, _point_group_builder(symbol), f"{kind} {symbol}"))
    specs.append(
        GroupSpec(
            NAME,
            "C{N}",
            r"C(?P<N>\d+)",
            (2, 3),
            _family_builder("build_cyclic"),
            "N rotations (on R^3 about z), from generator matrices",
        )
    )
    specs.append(
        GroupSpec(
            NAME,
            "D{N}",
            r"D(?P<N>\d+)",
            (2, 3),
            _family_builder("build_dihedral"),
            "N rotations and N mirrors (on R^3 about z), from generator matrices",
        )
    )
    return specs


def load() -> None:
    """Nothing beyond numpy and torch, which the core needs anyway."""
    import numpy  # noqa: F401


@hookimpl
def steerable_backends() -> list[Backend]:
    return [
        Backend(
            name=NAME,
            priority=PRIORITY,
            groups=_specs(),
            load=load,
            description=(
                "finite groups from generator matrices; crystallographic point groups; regular-field kernel MLP"
            ),
        )
    ]


def group_from_generators(generators: Any, name: str | None = None, **kwargs: Any):
    """The finite group generated by orthogonal matrices; see :func:`.group.group_from_generators`.

    With ``lie_algebra=[...]`` (Lie-algebra generators, ``n x n``): the group generated by their
    exponentials and the discrete ``generators``, built by the lie backend
    (:func:`steerable.plugins.lie_backend.group_from_generators`).
    """
    if kwargs.get("lie_algebra") is not None:
        from steerable.plugins.lie_backend import group_from_generators as build_lie

        return build_lie(generators, name, **kwargs)
    kwargs.pop("lie_algebra", None)
    from .group import group_from_generators as build

    return build(generators, name, **kwargs)


__all__ = ["group_from_generators", "steerable_backends", "RawGroupSpec", "raw_group_key", "NAME"]
