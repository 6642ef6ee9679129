"""Groups of every backend for the layer tests: ToyC4 (tests/toy, no backend library), the matrix
backend's C4 and, where installed, escnn's C4 and e3nn's O(3)."""

from __future__ import annotations

import pytest

import steerable as st

#: ``"toy"`` or ``"<backend>-<group name>"``
GROUPS = ["toy", "matrix-C4", "escnn-C4", "e3nn-O(3)"]
#: groups acting on the plane, for grid layers
PLANAR = ["toy", "matrix-C4", "escnn-C4"]


def make_group(name: str, request: pytest.FixtureRequest) -> st.Group:
    """The group named ``name`` (one of :data:`GROUPS`); skips when its backend is not installed."""
    if name == "toy":
        return request.getfixturevalue("toy_group")
    backend, group_name = name.split("-", 1)
    if backend != "matrix":
        pytest.importorskip(backend)
    return st.group(group_name, backend=backend)


def make_fields(G: st.Group) -> tuple[st.FieldType, st.FieldType]:
    """An input type (scalar, vector, scalar) and an output type (vector, scalar, scalar)."""
    scalar, vector = G.trivial_rep(), G.standard_rep()
    return st.FieldType(G, [scalar, vector, scalar]), st.FieldType(G, [vector, scalar, scalar])
