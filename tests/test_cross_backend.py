"""The same user code on escnn and e3nn, and models that mix layers of both (issue 3).

Bounds (relative error), near the measured values: float64 <= 1e-13 (measured <= 2.1e-15 for the
three-layer mixed model, <= 8.6e-16 for single layers; ~50x margin), float32 <= 4e-6 (measured
<= 8e-7; 5x margin).
"""

from __future__ import annotations

import pytest
import torch

import steerable as st
from steerable.core.group import same_group
from steerable.testing import relative_error

pytest.importorskip("escnn")
pytest.importorskip("e3nn")

BACKENDS = ["escnn", "e3nn"]
F64 = 1e-13


def _fields(group_name: str, backend: str):
    G = st.group(group_name, backend=backend)
    scalar, vector = G.trivial_rep(), G.standard_rep()
    return G, st.FieldType(G, [scalar] * 2 + [vector] * 2), st.FieldType(G, [scalar] * 3 + [vector])


def _cloud(n: int = 10, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(n, 3, dtype=dtype, generator=gen)
    src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = src != dst
    return pos, torch.stack([src[keep], dst[keep]]), gen


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("group_name", ["SO(3)", "O(3)"])
def test_vector_layer_rotates_with_pos(backend, group_name):
    """(x, y, z) convention: vector outputs rotate with the very matrix applied to ``pos``."""
    G = st.group(group_name, backend=backend)
    vec = st.FieldType(G, [G.standard_rep()])
    torch.manual_seed(0)
    conv = st.PointConv(vec, vec, max_radius=1.0).double()
    pos, edge_index, gen = _cloud()
    velocity = torch.randn(pos.shape[0], 3, dtype=torch.float64, generator=gen)
    rot = G.sample(3, generator=gen).matrices
    for R in rot:
        out = conv(velocity @ R.T, pos @ R.T, edge_index)
        assert relative_error(out, conv(velocity, pos, edge_index) @ R.T) <= F64


@pytest.mark.parametrize("group_name", ["SO(3)", "O(3)"])
@pytest.mark.parametrize("dtype, bound", [(torch.float64, 1e-13), (torch.float32, 4e-6)], ids=["f64", "f32"])
def test_mixed_backend_model(group_name, dtype, bound):
    """Layer 1 from escnn, layer 2 from e3nn (and back): equal field types, equivariant model."""
    _, a_in, a_out = _fields(group_name, "escnn")
    _, b_in, b_out = _fields(group_name, "e3nn")
    # two groups (keys include the backend), one abstract group; equal field types across backends
    assert a_out.group != b_out.group and same_group(a_out.group, b_out.group)
    assert a_in == b_in and hash(a_in) == hash(b_in) and a_out == b_out
    torch.manual_seed(0)
    first, second = (
        st.PointConv(a_in, a_out, max_radius=1.0).to(dtype),
        st.PointConv(b_out, b_in, max_radius=1.0).to(dtype),
    )
    third = st.PointConv(a_in, a_out, max_radius=1.0).to(dtype)
    model = lambda x, pos, ei: third(second(first(x, pos, ei), pos, ei), pos, ei)  # noqa: E731

    pos, edge_index, gen = _cloud(dtype=dtype)
    x = torch.randn(pos.shape[0], a_in.size, dtype=dtype, generator=gen)
    base = model(x, pos, edge_index)
    assert base.abs().max() > 0
    for R in st.group(group_name, backend="e3nn").sample(3, generator=gen).matrices:
        els = first.group.elements_from_matrices(R[None])
        out = model(a_in.transform(x, els), pos @ R.to(dtype).T, edge_index)
        assert relative_error(out, a_out.transform(base, els)) <= bound


def test_pseudovector_does_not_flip_under_inversion():
    G = st.group("O(3)", backend="e3nn")
    inversion = G.elements_from_matrices(-torch.eye(3, dtype=torch.float64)[None])
    assert torch.equal(G.irrep(1, 1).matrices(inversion)[0], torch.eye(3, dtype=torch.float64))
    assert torch.equal(G.standard_rep().matrices(inversion)[0], -torch.eye(3, dtype=torch.float64))
    Ge = st.group("O(3)", backend="escnn")
    inversion_e = Ge.elements_from_matrices(-torch.eye(3, dtype=torch.float64)[None])
    pseudo = Ge.irrep(0, 1)  # escnn O(3) irrep (inversion flag 0, l=1): the pseudo-vector
    torch.testing.assert_close(pseudo.matrices(inversion_e)[0], torch.eye(3, dtype=torch.float64))


@pytest.mark.parametrize("group_name", ["SO(3)", "O(3)"])
def test_one_layer_between_two_backends(group_name):
    """A PointConv from an escnn field type to an e3nn one: the trivial and standard reps are
    portable, so the layer is built on the input's group and stays equivariant (float64,
    measured <= 6.7e-16); a non-portable irrep of the other backend is refused."""
    _, a_in, _ = _fields(group_name, "escnn")
    G, _, b_out = _fields(group_name, "e3nn")
    torch.manual_seed(0)
    conv = st.PointConv(a_in, b_out, max_radius=1.0).double()
    assert conv.group.backend == "escnn"
    pos, edge_index, gen = _cloud()
    x = torch.randn(pos.shape[0], a_in.size, dtype=torch.float64, generator=gen)
    base = conv(x, pos, edge_index)
    for R in G.sample(3, generator=gen).matrices:
        els = G.elements_from_matrices(R[None])  # e3nn elements act on the escnn field type too
        out = conv(a_in.transform(x, els), pos @ R.T, edge_index)
        assert relative_error(out, b_out.transform(base, els)) <= F64
    E = a_in.group
    higher = G.irrep(2)
    with pytest.raises(ValueError, match=r"cannot be used with .*\[escnn\]"):
        st.PointConv(a_in, st.FieldType(G, [higher]), max_radius=1.0)
    assert st.FieldType(E, [E.irrep(*((2,) if group_name == "SO(3)" else (0, 2)))]) != st.FieldType(G, [higher])


def test_pseudo_scalars_cross_between_backends():
    """``det`` (g -> det g) is portable on both backends: e3nn's 0o and escnn's restricted
    irrep(1, 0) are one field; its matrices are checked against numpy's determinant here."""
    E, G = st.group("O(3)", backend="escnn"), st.group("O(3)", backend="e3nn")
    field = st.FieldType(E, [G.irrep(0, -1), G.standard_rep()])
    assert field.reps == (E.det_rep(), E.standard_rep())
    assert field == st.FieldType(G, [G.irrep(0, -1), G.standard_rep()])
    els = G.sample(6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(field.matrices(els)[:, 0, 0], torch.linalg.det(els.matrices), atol=1e-12, rtol=0)
    S3 = st.group("SO(3)", backend="e3nn")
    assert st.FieldType(st.group("SO(3)", backend="escnn"), [S3.irrep(0, -1)]).reps[0].is_trivial
