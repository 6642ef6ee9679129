"""FieldType.transform and Gate against explicit computations (ToyC4, tests/toy).

The expected values are built here: the action from verified matrices
(:class:`steerable.testing.VerifiedActions`, which checks the conventions first) applied element by
element, the gate from its documented formula.  Both are exact computations (bound 1e-12, float64).
"""

from __future__ import annotations

import pytest
import torch

import steerable as st
from steerable.testing import VerifiedActions


@pytest.fixture
def field(toy_group):
    G = toy_group
    return st.FieldType(G, [G.standard_rep(), G.sign, G.trivial_rep(), G.standard_rep()])  # size 6


@pytest.mark.parametrize("dim", [-1, 1])
def test_transform_batched_elements(field, dim):
    """Several elements at once (leading batch axis): slice k is moved by element k."""
    G = field.group
    els = G.elements_from_matrices(G.elements().matrices[[1, 3, 2, 1, 0]])  # repeats, non-symmetric rotations
    mats = VerifiedActions(G, els).field(field)
    shape = (5, 3, field.size) if dim == -1 else (5, field.size, 4, 2)
    x = torch.randn(*shape, dtype=torch.float64)
    y = field.transform(x, els, dim=dim)
    axis = -1 if dim == -1 else dim - 1  # the channel axis of one slice x[k]
    for k in range(len(els)):
        expected = torch.einsum("ij,...j->...i", mats[k], x[k].movedim(axis, -1)).movedim(-1, axis)
        torch.testing.assert_close(y[k], expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(y[0], x[0])  # element 1 is a quarter turn: the check is not vacuous
    with pytest.raises(ValueError, match="5 elements but a leading batch of 4"):
        field.transform(x[:4], els, dim=dim)


def test_transform_single_element_any_shape(field):
    G = field.group
    g = G.elements()[1]
    x = torch.randn(2, 3, field.size, dtype=torch.float64)
    expected = x @ VerifiedActions(G, g).field(field)[0].T
    torch.testing.assert_close(field.transform(x, g), expected, rtol=1e-12, atol=1e-12)


def test_gate_values(field):
    """Trivial fields: SiLU; non-trivial field m (in order): times sigmoid(gate m), gates appended after."""
    G = field.group
    gate = st.Gate(field)
    assert gate.in_type.size == field.size + 3 and gate.n_gates == 3  # standard, sign, standard are gated
    x = torch.randn(7, gate.in_type.size, dtype=torch.float64)
    gates = torch.sigmoid(x[:, 6:])
    expected = torch.cat(
        [
            x[:, 0:2] * gates[:, 0:1],  # field 0: standard
            x[:, 2:3] * gates[:, 1:2],  # field 1: sign (one-dimensional, non-trivial: gated, not SiLU)
            torch.nn.functional.silu(x[:, 3:4]),  # field 2: trivial
            x[:, 4:6] * gates[:, 2:3],  # field 3: standard
        ],
        -1,
    )
    torch.testing.assert_close(gate(x), expected, rtol=1e-12, atol=1e-12)
    scalars = st.Gate(st.FieldType(G, [G.trivial_rep()] * 2))
    assert scalars.n_gates == 0 and scalars.in_type.size == 2
    s = torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(scalars(s), torch.nn.functional.silu(s), rtol=1e-12, atol=1e-12)
