"""Interop with e3nn: field types from ``o3.Irreps``, ``Irreps`` of a field type, and the change of basis
between our feature layout and e3nn's, checked against e3nn's own definitions.

Bounds (float64): the change of basis intertwines our representation with e3nn's ``D_from_matrix``
(built in float64) to 1e-13 absolute (measured 2.4e-15 up to l = 3; 40x margin); an e3nn
``o3.Linear`` between converted features is equivariant to 1e-14 relative error (measured 1.2e-16;
80x; the e3nn layer is exactly equivariant, so a wrong basis on either side gives errors of order 1).
"""

from __future__ import annotations

import pytest
import torch

import steerable as st
from steerable.testing import equivariance_error

o3 = pytest.importorskip("e3nn.o3")

SPEC = "4x0e + 2x1o + 1x2e + 1x0o + 1x1e + 1x3o"


@pytest.fixture(params=["O(3)", "SO(3)"])
def group(request):
    return st.group(request.param, backend="e3nn")


def test_field_type_accepts_irreps_objects(group):
    assert group.field_type(o3.Irreps(SPEC)) == group.field_type(SPEC)
    assert group.irreps(o3.Irreps("2x1o")) == [group.standard_rep()] * 2
    assert group.field_type(o3.Irrep("2e")) == group.field_type("2e")
    with pytest.raises(TypeError, match=r"string .* or an e3nn o3.Irreps, got 5 \(int\)"):
        group.field_type(5)


def test_irreps_round_trip():
    G = st.group("O(3)", backend="e3nn")
    assert G.irreps_of(G.field_type(SPEC)) == o3.Irreps(SPEC)
    assert G.irreps_of(G.field_type("0e + 0e + 1o + 0e")) == o3.Irreps("2x0e + 1x1o + 1x0e")  # order kept
    H = st.group("SO(3)", backend="e3nn")  # parity is a label only: that of the spherical harmonics
    assert H.irreps_of(H.field_type("2x0e + 1e + 2o + 3")) == o3.Irreps("2x0e + 1x1o + 1x2e + 1x3o")
    assert H.field_type(H.irreps_of(H.field_type(SPEC))) == H.field_type(SPEC)


def test_conversion_means_what_e3nn_computes(group):
    """A position p as a vector field is, in e3nn's basis, e3nn's Y_1(p) (unnormalised); the l = 2
    field of our spherical harmonics convention is e3nn's Y_2."""
    p = torch.randn(7, 3, dtype=torch.float64)
    vec = group.field_type("1o")
    expected = o3.spherical_harmonics(1, p, normalize=False, normalization="norm")
    torch.testing.assert_close(group.to_e3nn(p, vec), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(group.from_e3nn(expected, vec), p, rtol=0, atol=1e-12)


def test_change_of_basis_intertwines_with_e3nn(group):
    field = group.field_type(SPEC)
    E = group.change_of_basis(field)
    torch.testing.assert_close(E @ E.T, torch.eye(field.size, dtype=torch.float64), rtol=0, atol=1e-12)
    g = group.sample(6, generator=torch.Generator().manual_seed(0))
    ours = torch.stack([torch.block_diag(*[rep.matrices(g)[k] for rep in field.reps]) for k in range(6)])
    irreps = group.irreps_of(field)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds its so(3) generators in the default dtype
    try:  # an improper matrix (O(3)) acts by the parities; SO(3) samples only rotations
        theirs = torch.stack([irreps.D_from_matrix(m) for m in g.matrices])
    finally:
        torch.set_default_dtype(previous)
    torch.testing.assert_close(E @ ours, theirs.to(E) @ E, rtol=0, atol=1e-13)


def test_e3nn_module_between_converted_features_is_equivariant(group):
    fin, fout = group.field_type(SPEC), group.field_type("2x0e + 1x1o + 1x2e")
    torch.manual_seed(0)
    lin = o3.Linear(group.irreps_of(fin), group.irreps_of(fout)).double()

    def through_e3nn(x):
        return group.from_e3nn(lin(group.to_e3nn(x, fin, axis=-1)), fout, axis=-1)

    x = torch.randn(9, fin.size, dtype=torch.float64)
    assert through_e3nn(x).shape == (9, fout.size)
    assert equivariance_error(through_e3nn, [x], [fin], fout) <= 1e-14


def test_grid_features_convert_on_axis_1(group):
    field = group.field_type("1x0e + 1x1o")
    x = torch.randn(2, field.size, 3, 3, 3, dtype=torch.float64)
    y = group.to_e3nn(x, field)
    expected = (x.movedim(1, -1) @ group.change_of_basis(field).T).movedim(-1, 1)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
    torch.testing.assert_close(group.from_e3nn(y, field), x, rtol=0, atol=1e-15)


def test_bad_conversions_are_named(group):
    field = group.field_type("1x0e + 1x1o")
    with pytest.raises(ValueError, match=r"expected 4 channels on axis 1 .*got shape \(5, 3\)"):
        group.to_e3nn(torch.randn(5, 3), field)
    with pytest.raises(TypeError, match="floating-point tensor"):
        group.to_e3nn(torch.ones(5, 4, dtype=torch.long), field)
    C4 = st.group("C4", dim=3, backend="matrix")
    with pytest.raises(TypeError, match="cannot decompose"):
        group.irreps_of(st.FieldType(C4, [C4.regular_rep()]))
    with pytest.raises(TypeError, match="expected a FieldType"):
        group.irreps_of("1x0e")
