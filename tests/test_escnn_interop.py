"""Interop with escnn: ``G.field_type(escnn_field_type)``, ``to_escnn`` / ``from_escnn``, and escnn
layers composed with ours.

Reference matrices are built from the documented conventions, not taken from the code under test:
an element of SO(2)/C_N/O(2)/D_N with coordinate matrix ``M = R(t) diag(1, -1)^f`` (reflection about
the x axis, verified by the group tests) acts on escnn's irrep ``(1, k)`` (O(2)) or ``k`` (SO(2)) by
``R(k t) diag(1, -1)^f``, on the sign irrep by ``(-1)^f``, on C4's irrep 2 by ``cos(2 t)``; and
escnn's own representation objects
give the matrices of the escnn side.

Bounds: the converted types' matrices equal the documented ones to 1e-14 (measured 9.4e-16, SO(2)
with frequency 3; 10x) and escnn's to the same bound (the same representation objects; escnn's
direct sums apply a change of basis: 5.6e-17).  escnn's ``R2Conv``
followed by our ``GridConv`` (C4, 90° turns, float64): measured 1.1e-7, the floor of escnn's
``R2Conv`` alone (1.2e-7: it samples its basis in float32); bound 5e-7 (4.5x).  escnn's
``nn.Linear`` then our ``PointConv`` (SO(3), float64): measured 4.2e-16; bound 1e-14 (24x).  A
wrong basis or axis convention gives errors of order 1.
"""

from __future__ import annotations

import math

import pytest
import torch

escnn = pytest.importorskip("escnn")
from escnn import gspaces  # noqa: E402
from escnn import nn as enn  # noqa: E402

import steerable as st  # noqa: E402
from steerable.plugins.escnn_backend import from_escnn, to_escnn  # noqa: E402
from steerable.plugins.escnn_backend.linear import PlainLinear  # noqa: E402
from steerable.testing import GridField, equivariance_error  # noqa: E402

ESCNN_FLOOR, ROUNDOFF = 5e-7, 1e-14


def _rot(t: float) -> torch.Tensor:
    return torch.tensor([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]], dtype=torch.float64)


def _planar_reference(M: torch.Tensor, kinds: list[tuple[str, int]]) -> torch.Tensor:
    """Block-diagonal matrices of ``("trivial", 0)``, ``("sign", 0)``, ``("cos", k)`` and ``("irrep", k)``
    fields for the element with coordinate matrix ``M`` (module docstring)."""
    flip = bool(torch.det(M) < 0)
    t = math.atan2(float(M[1, 0]), float(M[0, 0]))
    mirror = torch.diag(torch.tensor([1.0, -1.0 if flip else 1.0], dtype=torch.float64))
    blocks = []
    for kind, k in kinds:
        if kind == "trivial":
            blocks.append(torch.ones(1, 1, dtype=torch.float64))
        elif kind == "sign":
            blocks.append(torch.full((1, 1), -1.0 if flip else 1.0, dtype=torch.float64))
        elif kind == "cos":  # C_N's real 1-dimensional irrep k = N/2: cos(k t), i.e. (-1)^(turns)
            blocks.append(torch.full((1, 1), math.cos(k * t), dtype=torch.float64))
        else:
            blocks.append(_rot(k * t) @ mirror)
    return torch.block_diag(*blocks)


PLANAR = {
    # group name, escnn gspace, escnn irrep ids and the reference kinds of those fields
    "C4": (
        lambda: gspaces.rot2dOnR2(4),
        [(0,), (1,), (2,), (1,)],
        [("trivial", 0), ("irrep", 1), ("cos", 2), ("irrep", 1)],
    ),
    "SO(2)": (lambda: gspaces.rot2dOnR2(-1), [(0,), (3,), (1,)], [("trivial", 0), ("irrep", 3), ("irrep", 1)]),
    "O(2)": (
        lambda: gspaces.flipRot2dOnR2(-1, axis=0.0),
        [(0, 0), (1, 0), (1, 2), (1, 1)],
        [("trivial", 0), ("sign", 0), ("irrep", 2), ("irrep", 1)],
    ),
    "D4": (
        lambda: gspaces.flipRot2dOnR2(4, axis=0.0),
        [(0, 0), (1, 1), (1, 0)],
        [("trivial", 0), ("irrep", 1), ("sign", 0)],
    ),
}  # fmt: skip


def _escnn_matrices(escnn_type, elements) -> torch.Tensor:
    return torch.stack([torch.from_numpy(escnn_type.representation(e)).double() for e in elements.native])


def _our_matrices(field_type, elements) -> torch.Tensor:
    mats = [rep.matrices(elements) for rep in field_type.reps]
    return torch.stack([torch.block_diag(*[m[k] for m in mats]) for k in range(len(elements))])


@pytest.mark.parametrize("name", list(PLANAR))
def test_converted_types_have_escnn_and_documented_matrices(name):
    make_gspace, ids, kinds = PLANAR[name]
    gs = make_gspace()
    G = st.group(name, backend="escnn")
    theirs = gs.type(*[gs.fibergroup.irrep(*i) for i in ids])  # escnn's own objects
    ours = G.field_type(theirs)
    assert ours.size == theirs.size and len(ours) == len(ids)
    elements = G.sample(6, generator=torch.Generator().manual_seed(0))
    reference = torch.stack([_planar_reference(M, kinds) for M in elements.matrices])
    torch.testing.assert_close(_escnn_matrices(theirs, elements), reference, rtol=0, atol=ROUNDOFF)
    torch.testing.assert_close(_our_matrices(ours, elements), reference, rtol=0, atol=ROUNDOFF)
    # the standard representation is an irrep ((1,) or (1, 1)) whose matrices are the coordinate action
    std = G.field_type([G.standard_rep()])
    torch.testing.assert_close(_our_matrices(std, elements), elements.matrices, rtol=0, atol=ROUNDOFF)


@pytest.mark.parametrize("name, dim", [("C4", 2), ("D4", 2), ("SO(3)", 3), ("O(3)", 3), ("Octa", 3), ("C4", 3)])
def test_round_trips(name, dim):
    G = st.group(name, dim=dim, backend="escnn")
    reps = [G.trivial_rep(), G.standard_rep(), G.det_rep(), G.irreps()[-1]]
    if G.order is not None:
        reps.append(G.regular_rep())
    f = st.FieldType(G, reps)
    e = to_escnn(f)
    assert e.gspace.fibergroup == G.native and e.size == f.size
    assert [r.name for r in e.representations] == [r.native.name for r in f.reps]
    back = from_escnn(e, dim=dim)
    assert back == f and back.group is G
    assert [r.name for r in back.reps] == [r.name for r in f.reps]  # the group's named representations
    assert G.field_type(e) == f and G.field_type(list(e.representations)) == f
    elements = G.sample(4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_escnn_matrices(e, elements), _our_matrices(f, elements), rtol=0, atol=ROUNDOFF)
    # on a gspace with a base space, the dimension comes from it
    spaces = {("C4", 2): gspaces.rot2dOnR2(4), ("SO(3)", 3): gspaces.rot3dOnR3(), ("C4", 3): gspaces.rot2dOnR3(4)}
    if (name, dim) in spaces:
        assert from_escnn(to_escnn(f, spaces[name, dim])) == f


def test_portable_fields_of_other_backends_convert():
    M = st.group("C4", backend="matrix")
    e = to_escnn(st.FieldType(M, [M.trivial_rep(), M.standard_rep()]), gspaces.rot2dOnR2(4))
    G = st.group("C4", backend="escnn")
    assert from_escnn(e) == st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    with pytest.raises(ValueError, match="only portable representations"):
        to_escnn(st.FieldType(M, [M.regular_rep()]))


def test_mismatches_are_named():
    C4, D4 = st.group("C4", backend="escnn"), st.group("D4", backend="escnn")
    f = st.FieldType(C4, [C4.standard_rep()])
    with pytest.raises(ValueError, match=r"has the escnn group D4, not C4"):
        to_escnn(f, gspaces.flipRot2dOnR2(4, axis=0.0))
    with pytest.raises(ValueError, match=r"has the escnn group C8, not C4"):
        C4.field_type(gspaces.rot2dOnR2(8).type(gspaces.rot2dOnR2(8).regular_repr))
    with pytest.raises(ValueError, match=r"field 0 is a representation of escnn's C8, not of C4"):
        C4.field_type([gspaces.rot2dOnR2(8).regular_repr])
    # escnn's default dihedral gspace reflects about the y axis: same group, other action on R^2
    with pytest.raises(ValueError, match=r"acts on coordinates differently .*flipRot2dOnR2\(4, axis=0.0\)"):
        to_escnn(st.FieldType(D4, [D4.standard_rep()]), gspaces.flipRot2dOnR2(4))
    with pytest.raises(ValueError, match="acts on coordinates differently"):  # C2 as a flip, not a turn
        from_escnn(gspaces.flip2dOnR2().type(gspaces.flip2dOnR2().trivial_repr))
    with pytest.raises(ValueError, match="acts on R\\^3, C4 on R\\^2"):
        to_escnn(f, gspaces.rot2dOnR3(4))
    with pytest.raises(ValueError, match=r"acts on R\^2 and on R\^3 .* pass dim=2 or dim=3"):
        from_escnn(to_escnn(f))
    with pytest.raises(ValueError, match=r"dim=3, but the field type's gspace acts on R\^2"):
        from_escnn(to_escnn(f, gspaces.rot2dOnR2(4)), dim=3)
    with pytest.raises(TypeError, match=r"expected an escnn nn.FieldType or a list of representations, got 5 \(int\)"):
        C4.field_type(5)
    with pytest.raises(TypeError, match="expected an escnn nn.FieldType"):
        from_escnn(f)
    with pytest.raises(TypeError, match="expected a steerable FieldType"):
        to_escnn(to_escnn(f))
    with pytest.raises(TypeError, match="expected an escnn gspace"):
        to_escnn(f, "rot2dOnR2")
    e3 = pytest.importorskip("e3nn")
    assert e3
    E = st.group("SO(3)", backend="e3nn")
    with pytest.raises(ValueError, match="only portable representations"):
        to_escnn(E.field_type("1x2e"))


def test_escnn_r2conv_then_our_grid_conv_is_equivariant():
    """escnn's images are ``(B, C, X, Y)`` with spatial axis k holding coordinate k, like ours:
    composed, the layers stay equivariant under our grid action (90° turns of C4)."""
    torch.manual_seed(0)
    G, gs = st.group("C4", backend="escnn"), gspaces.rot2dOnR2(4)
    f_in = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    f_mid = st.FieldType(G, [G.regular_rep(), G.standard_rep(), G.irrep(2)])
    theirs = enn.R2Conv(to_escnn(f_in, gs), to_escnn(f_mid, gs), kernel_size=3, padding=1).double()
    ours = st.GridConv(f_mid, f_in, 3, padding=1).double()

    def composed(x):
        return ours(theirs(enn.GeometricTensor(x, to_escnn(f_in, gs))).tensor)

    x = torch.randn(2, f_in.size, 9, 9, dtype=torch.float64)
    assert composed(x).shape == (2, f_in.size, 9, 9)
    assert equivariance_error(composed, [x], [GridField(f_in)], GridField(f_in)) <= ESCNN_FLOOR


def test_escnn_linear_then_our_point_conv_is_equivariant():
    torch.manual_seed(0)
    G = st.group("SO(3)", backend="escnn")
    f_in = st.FieldType(G, [G.trivial_rep(), G.standard_rep(), G.irrep(2)])
    f_mid = st.FieldType(G, [G.irrep(1), G.irrep(0), G.irrep(2)])
    f_out = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    linear = enn.Linear(to_escnn(f_in), to_escnn(f_mid)).double().eval()
    conv = st.PointConv(f_mid, f_out, max_radius=2.0).double()
    n = 7
    src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    edge_index = torch.stack([src.flatten(), dst.flatten()])

    def composed(x, pos):
        return conv(linear(enn.GeometricTensor(x, to_escnn(f_in))).tensor, pos, edge_index)

    x, pos = torch.randn(n, f_in.size, dtype=torch.float64), torch.randn(n, 3, dtype=torch.float64)
    out = composed(x, pos)
    assert out.shape == (n, f_out.size) and out.abs().max() > 1e-3
    assert equivariance_error(composed, [x, pos], [f_in, "points"], f_out) <= ROUNDOFF


def test_escnn_layers_converted_to_float64_leave_ours_alone():
    """escnn shares its sampled bases between layers: before, an escnn ``Linear.double()`` left
    float64 bases in escnn's cache, and a float32 kernel MLP built afterwards failed (Float vs Double)."""
    G = st.group("SO(3)", backend="escnn")
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    enn.Linear(to_escnn(f), to_escnn(f)).double()
    conv = st.PointConv(f, f, max_radius=1.0)
    x, pos = torch.randn(3, f.size), torch.randn(3, 3)
    out = conv(x, pos, torch.tensor([[0, 1, 2], [1, 2, 0]]))
    bases = [b for m in conv.modules() if isinstance(m, PlainLinear) for b in m.buffers() if b.is_floating_point()]
    assert out.dtype == torch.float32 and bases and all(b.dtype == torch.float32 for b in bases)
