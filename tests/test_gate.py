"""``Gate`` takes channels on axis 1, for point features ``(N, C)`` and grid features
``(B, C, X, Y)`` alike (issue 15): on a grid it acts per pixel exactly as on points, and it commutes
with a 90° turn of the grid.  The turn is built here from the documented convention (spatial axis
``k`` holds coordinate ``k``): ``(g.f)(p) = rho(g) f(g^-1 p)`` with ``g`` the rotation by +90°,
``g^-1 (x, y) = (y, -x)``, i.e. ``(g.f)[i, j] = rho(g) f[j, n-1-i]`` on an ``n x n`` grid."""

from __future__ import annotations

import math

import pytest
import torch
from _groups import PLANAR, make_group

import steerable as st
from steerable.testing import relative_error


def _gate(G) -> st.Gate:
    scalar, vector = G.trivial_rep(), G.standard_rep()
    return st.Gate(st.FieldType(G, [scalar, vector, scalar, vector]))


@pytest.mark.parametrize("group_name", PLANAR)
def test_gate_on_grid_is_the_point_gate_per_pixel(request, group_name):
    G = make_group(group_name, request)
    gate = _gate(G)
    img = torch.randn(2, gate.in_type.size, 5, 6, dtype=torch.float64)
    out = gate(img)
    assert out.shape == (2, gate.out_type.size, 5, 6)
    points = img.permute(0, 2, 3, 1).reshape(-1, gate.in_type.size)
    expected = gate(points).view(2, 5, 6, -1).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, expected, rtol=1e-15, atol=1e-15)  # layouts differ: round-off only
    # the gates (last channels) scale the vectors of their own pixel only
    vector_norm = out[:, 1:3].norm(dim=1)
    sig = torch.sigmoid(img[:, gate.out_type.size])
    torch.testing.assert_close(vector_norm, img[:, 1:3].norm(dim=1) * sig, rtol=1e-12, atol=0)


@pytest.mark.parametrize("group_name", PLANAR)
def test_gate_on_grid_commutes_with_a_quarter_turn(request, group_name):
    G = make_group(group_name, request)
    gate = _gate(G)
    angle = math.pi / 2
    rot = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float64)
    g = G.elements_from_matrices(rot[None])

    def turn(f: torch.Tensor, field_type: st.FieldType) -> torch.Tensor:
        moved = f.flip(-1).transpose(-2, -1)  # moved[i, j] = f[j, n-1-i]
        return field_type.transform(moved, g, dim=1)

    img = torch.randn(3, gate.in_type.size, 7, 7, dtype=torch.float64)
    lhs, rhs = gate(turn(img, gate.in_type)), turn(gate(img), gate.out_type)
    assert relative_error(lhs, rhs) < 1e-14  # measured 0 (float64: exact up to round-off)
    assert relative_error(turn(img, gate.in_type), img) > 0.5  # the turn moves the signal


def test_gate_checks_its_input(request):
    G = make_group("matrix-C4", request)
    gate = _gate(G)
    with pytest.raises(ValueError, match=r"Gate input: expected 8 channels on axis 1"):
        gate(torch.randn(4, 7))
    with pytest.raises(ValueError, match=r"Gate input: expected 8 channels on axis 1"):
        gate(torch.randn(2, 5, 5, 8))  # channels last: refused, not gated along the wrong axis
    with pytest.raises(ValueError, match="channels on axis 1"):
        gate(torch.randn(8))
