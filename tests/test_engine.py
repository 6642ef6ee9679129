"""steerable.testing's engine: any callable, declared argument types, verified matrices, no side effects.

On ToyC4 (tests/toy, no backend library).  Hand-written functions whose equivariance (or its
absence) is known in closed form check the engine itself; bounds: 1e-12 in float64 for exactly
equivariant functions (round-off ~1e-16), > 0.05 for the broken ones (they are O(1) wrong).
"""

from __future__ import annotations

import pytest
import torch

import steerable as st
from steerable.testing import (
    ConventionError,
    GridField,
    assert_equivariant,
    check_equivariance,
    equivariance_error,
    equivariance_errors,
    layer_kind,
)


@pytest.fixture
def types(toy_group):
    G = toy_group
    return G, st.FieldType(G, [G.trivial_rep()]), st.FieldType(G, [G.standard_rep()])


def _snapshot(module: torch.nn.Module):
    return (
        module.training,
        [(n, p, p.dtype, p.detach().clone()) for n, p in module.named_parameters()],
        [(n, b.dtype, b.clone()) for n, b in module.named_buffers()],
        {k: v.clone() for k, v in module.state_dict().items()},
        [m.training for m in module.modules()],
    )


def _same(a, b) -> bool:
    if a[0] != b[0] or a[4] != b[4] or a[3].keys() != b[3].keys():
        return False
    params = all(
        n1 == n2 and p1 is p2 and d1 == d2 and torch.equal(v1, v2)
        for (n1, p1, d1, v1), (n2, p2, d2, v2) in zip(a[1], b[1])
    )
    buffers = all(n1 == n2 and d1 == d2 and torch.equal(v1, v2) for (n1, d1, v1), (n2, d2, v2) in zip(a[2], b[2]))
    return params and buffers and all(torch.equal(a[3][k], b[3][k]) for k in a[3])


def test_check_equivariance_leaves_the_module_as_it_was(toy_group):
    G = toy_group
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep(), G.sign])
    torch.manual_seed(0)
    layers = [
        st.ImplicitKernel(f, f, 1, max_radius=1.0),
        st.PointConv(f, f, edge_attr=1, max_radius=1.0),
        st.GridConv(f, f, 3, padding=1),
        st.PointConvBlock(f, f, True, dict(edge_attr=1), max_radius=1.0),
        st.MessageBlock(f, f, f, True, dict(edge_attr=1), max_radius=1.0),
    ]
    for layer in layers:
        layer.train()
        before = _snapshot(layer)
        assert check_equivariance(layer, dtype=torch.float64) < 1e-12
        assert _same(before, _snapshot(layer)), type(layer).__name__
        layer.eval()
        before = _snapshot(layer)
        check_equivariance(layer, dtype=torch.float64)
        assert _same(before, _snapshot(layer)) and next(layer.parameters()).dtype == torch.float32


def test_snapshot_detects_changes(toy_group):
    """The comparison above is not vacuous: a dtype change, a training flag or a value change is seen."""
    G = toy_group
    f = st.FieldType(G, [G.standard_rep()])
    conv = st.PointConv(f, f, max_radius=1.0)
    before = _snapshot(conv)
    assert not _same(before, _snapshot(conv.eval()))
    conv.train()
    with torch.no_grad():
        next(conv.parameters()).add_(1e-3)
    assert not _same(before, _snapshot(conv))
    assert not _same(_snapshot(conv), _snapshot(conv.double()))


def _vector_field(s: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``v_i = sum_j exp(-|p_j - p_i|^2) s_j (p_j - p_i)``: scalars + positions -> an equivariant vector field."""
    rel = pos[None, :, :] - pos[:, None, :]
    weight = torch.exp(-rel.pow(2).sum(-1)) * s[None, :, 0]
    return (weight[..., None] * rel).sum(1)


def test_any_function_with_declared_types(types):
    G, scalar, vector = types
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(7, 1, dtype=torch.float64, generator=gen)
    pos = torch.randn(7, 2, dtype=torch.float64, generator=gen)
    assert equivariance_error(_vector_field, (s, pos), (scalar, "points"), vector, generator=gen) < 1e-12
    # the output at absolute positions is rotation- but not translation-equivariant: the translation is real
    absolute = lambda s, pos: pos * s  # noqa: E731
    assert equivariance_error(absolute, (s, pos), (scalar, "points"), vector, generator=gen) > 0.05
    assert equivariance_error(absolute, (s, pos), (scalar, "points"), vector, translate=False) < 1e-12
    # declaring the wrong output type is caught: a vector field is not a pair of scalars
    two_scalars = st.FieldType(G, [G.trivial_rep()] * 2)
    assert equivariance_error(_vector_field, (s, pos), (scalar, "points"), two_scalars, elements=G.elements()) > 0.05
    # invariant output (None), a tuple output, a dtype cast of the inputs
    distances = lambda pos: torch.cdist(pos, pos)  # noqa: E731
    assert equivariance_error(distances, (pos,), ("points",), None, group=G) < 1e-12
    assert (
        equivariance_error(
            lambda pos: pos.sum(0, keepdim=True), (pos,), ("points",), None, group=G, elements=G.elements()
        )
        > 0.05
    )
    both = lambda s, pos: (_vector_field(s, pos), torch.cdist(pos, pos))  # noqa: E731
    assert equivariance_error(both, (s, pos), (scalar, "points"), (vector, None), dtype=torch.float32) < 1e-5
    errors = equivariance_errors(_vector_field, (s, pos), (scalar, "points"), vector, elements=G.elements())
    assert len(errors) == 4 and max(errors) < 1e-12


def _circular_gradient(img: torch.Tensor) -> torch.Tensor:
    """``(B, 1, X, Y) -> (B, 2, X, Y)``: central differences on a periodic grid (d/dx along axis 2)."""
    dx = (img.roll(-1, 2) - img.roll(1, 2)) / 2
    dy = (img.roll(-1, 3) - img.roll(1, 3)) / 2
    return torch.cat([dx, dy], 1)


def test_grid_types(types):
    G, scalar, vector = types
    img = torch.randn(2, 1, 6, 6, dtype=torch.float64)
    # the gradient of a scalar image is a vector field: exactly equivariant under the 4 quarter turns
    assert equivariance_error(_circular_gradient, (img,), (GridField(scalar),), GridField(vector)) < 1e-12
    swapped = lambda img: _circular_gradient(img).flip(1)  # noqa: E731  (dy, dx): not a vector field
    assert equivariance_error(swapped, (img,), (GridField(scalar),), GridField(vector)) > 0.05
    # an element whose matrix is not the one its handle names is refused before any use
    with pytest.raises(ConventionError, match="must equal g.matrices"):
        angle = torch.tensor(0.3, dtype=torch.float64)
        rot = torch.stack([torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])])
        fake = st.GroupElements(G, rot[None], native=torch.tensor([0]))
        equivariance_error(_circular_gradient, (img,), (GridField(scalar),), GridField(vector), elements=fake)


def test_assert_equivariant_names_the_worst_element(types):
    G, scalar, vector = types
    s, pos = torch.randn(5, 1, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    assert assert_equivariant(_vector_field, (s, pos), (scalar, "points"), vector, bound=1e-12) < 1e-12
    half_broken = lambda s, pos: _vector_field(s, pos) + (pos[:1, :1] > 0).double() * pos  # noqa: E731
    with pytest.raises(AssertionError, match=r"relative error .* > bound 1\.0e-12 for element \d of 4"):
        assert_equivariant(half_broken, (s, pos), (scalar, "points"), vector, bound=1e-12, elements=G.elements())


def test_bad_types_and_modules_are_named(types):
    G, scalar, vector = types
    pos = torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="1 arguments but 2 arg_types"):
        equivariance_error(lambda p: p, (pos,), ("points", None), "points", group=G)
    with pytest.raises(TypeError, match="unknown type 'point'"):
        equivariance_error(lambda p: p, (pos,), ("point",), "points", group=G)
    with pytest.raises(ValueError, match="no FieldType among the types"):
        equivariance_error(lambda p: p, (pos,), ("points",), "points")
    with pytest.raises(ValueError, match="argument 0: expected a tensor with 2 channels on axis 1"):
        equivariance_error(lambda x: x, (torch.randn(4, 3),), (vector,), vector)
    with pytest.raises(TypeError, match="declares no FieldType in_type"):
        check_equivariance(torch.nn.Linear(2, 2))


def test_user_module_declaring_its_types(types):
    """Any module with in_type / out_type / attr_type and a point-conv signature is checked like PointConv."""
    G, scalar, vector = types

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
            self.in_type, self.out_type, self.attr_type = f, vector, None
            self.conv = st.PointConv(f, st.Gate(vector).in_type, max_radius=1.0)
            self.gate = st.Gate(vector)

        def forward(self, x, pos, edge_index, edge_attr=None):
            return self.gate(self.conv(x, pos, edge_index))

    model = Model()
    assert layer_kind(model) == "point"
    assert check_equivariance(model) < 1e-12


def test_modules_holding_autograd_tensors_are_copied(types):
    """Backends may cache weights computed with autograd (escnn does in eval mode); deepcopy refuses those."""
    G, scalar, vector = types
    conv = st.PointConv(vector, vector, max_radius=1.0)
    conv.cached = next(conv.parameters()) * 2  # a non-leaf tensor attribute
    assert not conv.cached.is_leaf
    before = conv.cached
    assert check_equivariance(conv) < 1e-12
    assert conv.cached is before and next(conv.parameters()).dtype == torch.float32


def test_mlp_check_leaves_the_mlp_as_it_was(types):
    from steerable.core.mlp import KernelMLPSpec
    from steerable.testing import mlp_equivariance_error

    G, scalar, vector = types
    S = G.standard_rep()
    spec = KernelMLPSpec(G, ((S, S), (G.sign, S)))
    mlp = G.build_kernel_mlp(spec).train()
    before = _snapshot(mlp)
    assert mlp_equivariance_error(mlp, spec, dtype=torch.float64) < 1e-14
    assert _same(before, _snapshot(mlp)) and next(mlp.parameters()).dtype == torch.float32
