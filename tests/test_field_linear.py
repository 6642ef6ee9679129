"""FieldLinear: input checks, point and grid features (channels on axis 1), reset_parameters, repr.

Bounds: relative equivariance error <= 1e-14 in float64 under the 90-degree turns of C4 (matrix and
escnn backends) and the 48 lattice symmetries of m-3m (measured <= 6.2e-17: a per-pixel linear map
moves no values between pixels, so only round-off remains; 160x margin, while mixing channels of
different fields, or mixing along a spatial axis, gives errors of order 1).
"""

from __future__ import annotations

import re

import pytest
import torch

import steerable as st
from steerable.testing import GridField, equivariance_error


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERABLE_CACHE", str(tmp_path / "cache"))


def _types(name: str = "C4", dim: int = 2):
    G = st.group(name, dim=dim, backend="matrix")
    s, v, r = G.trivial_rep(), G.standard_rep(), G.regular_rep()
    return G, st.FieldType(G, [s, v, r, s]), st.FieldType(G, [v, s, r, r, s])


def test_wrong_inputs_are_named():
    _, fin, fout = _types()
    lin = st.FieldLinear(fin, fout)
    size = fin.size
    with pytest.raises(ValueError, match=rf"expected {size} channels on axis 1 .*got shape \(5, {size + 1}\)"):
        lin(torch.randn(5, size + 1))
    with pytest.raises(ValueError, match=rf"got shape \({size},\)"):
        lin(torch.randn(size))
    with pytest.raises(ValueError, match=rf"expected {size} channels on axis 1.*got shape \(2, 7, 7, {size}\)"):
        lin(torch.randn(2, 7, 7, size))  # channels last: the old layout of grid features
    with pytest.raises(TypeError, match="floating-point"):
        lin(torch.ones(3, size, dtype=torch.long))
    with pytest.raises(TypeError, match="expected a torch.Tensor, got list"):
        lin([[0.0] * size])
    with pytest.raises(TypeError, match="bias must be a bool"):
        st.FieldLinear(fin, fout, bias="yes")


@pytest.mark.parametrize("name, dim, shape", [("C4", 2, (2, 7, 6)), ("m-3m", 3, (2, 5, 4, 3))])
def test_grid_features_are_mapped_pixel_by_pixel(name, dim, shape):
    """Grid output at each pixel is the point map of that pixel's channels (bias included)."""
    _, fin, fout = _types(name, dim)
    lin = st.FieldLinear(fin, fout).double()
    with torch.no_grad():
        lin.bias.normal_()
    x = torch.randn((shape[0], fin.size) + shape[1:], dtype=torch.float64)
    y = lin(x)
    assert y.shape == (shape[0], fout.size) + shape[1:]
    points = x.movedim(1, -1).reshape(-1, fin.size)
    expected = lin(points).reshape(shape[:1] + shape[1:] + (fout.size,)).movedim(-1, 1)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name, dim, backend", [("C4", 2, "matrix"), ("C4", 2, None), ("m-3m", 3, "matrix")])
def test_equivariant_on_grid_features(name, dim, backend):
    G = st.group(name, dim=dim, backend=backend)
    fin = st.FieldType(G, [G.trivial_rep(), G.standard_rep(), G.regular_rep()])
    fout = st.FieldType(G, [G.regular_rep(), G.trivial_rep(), G.standard_rep()])
    lin = st.FieldLinear(fin, fout).double()
    with torch.no_grad():
        lin.bias.normal_()
    spatial = (6, 6) if dim == 2 else (4, 4, 4)
    x = torch.randn((2, fin.size) + spatial, dtype=torch.float64)
    err = equivariance_error(lin, [x], [GridField(fin)], GridField(fout), translate=False)
    assert err <= 1e-14
    # and on point features, the same layer
    assert equivariance_error(lin, [torch.randn(9, fin.size, dtype=torch.float64)], [fin], fout) <= 1e-14


@pytest.mark.parametrize("shape", [(0,), (0, 5, 5), (2, 0, 4)])
def test_empty_input_gives_empty_output(shape):
    """Zero points (an empty graph), an empty batch or an empty grid axis: the output has the same
    leading and spatial sizes, and the bias alone where there are values."""
    _, fin, fout = _types()
    lin = st.FieldLinear(fin, fout)
    x = torch.randn((shape[0], fin.size) + shape[1:])
    y = lin(x)
    assert y.shape == (shape[0], fout.size) + shape[1:]
    y.sum().backward()  # gradients flow (to zero) without error


def test_reset_parameters_redraws_like_a_fresh_layer():
    _, fin, fout = _types()
    torch.manual_seed(3)
    fresh = st.FieldLinear(fin, fout)
    lin = st.FieldLinear(fin, fout)
    with torch.no_grad():
        for p in lin.parameters():
            p.fill_(7.0)
    torch.manual_seed(3)
    lin.reset_parameters()
    assert lin.bias is not None and torch.equal(lin.bias, torch.zeros_like(lin.bias))
    for a, b in zip(lin.weights, fresh.weights):
        assert torch.equal(a, b)


def test_repr_is_one_line_with_types_and_weight_count():
    _, fin, fout = _types()
    lin = st.FieldLinear(fin, fout)
    text = repr(lin)
    count = sum(p.numel() for p in lin.parameters())
    # s: 2 in x 2 out, v: 1 x 1, regular: 1 x 2, plus 2 biases
    assert count == 4 + 1 + 2 + 2
    assert text == f"FieldLinear({fin!r} -> {fout!r} | {count} weights)"
    assert "\n" not in text and re.search(r"\| 9 weights\)$", text)
