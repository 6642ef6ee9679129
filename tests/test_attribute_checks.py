"""One check of kernel attributes for every layer (``steerable.nn.checks.check_attributes``): a
kernel's attributes, a grid convolution's per-sample kernel attributes and a point layer's
``edge_attr`` are refused with the same messages, naming the layer, the argument and the problem."""

from __future__ import annotations

import pytest
import torch

import steerable as st


@pytest.fixture(scope="module")
def layers():
    """name -> (call(attr), what the argument is called, rows, what a row is, what the dtype is compared to)."""
    G = st.group("C4", backend="matrix")
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    kernel = st.ImplicitKernel(f, f, 2, max_radius=2.0)
    grid = st.GridConv(f, f, 3, kernel_attr=2)
    conv = st.PointConv(f, f, edge_attr=2, max_radius=2.0)
    block = st.MessageBlock(f, f, f, True, {"edge_attr": 2}, max_radius=2.0)
    pos = torch.randn(4, 2)
    edges = torch.tensor([[0, 1, 2], [1, 2, 3]])
    x, img = torch.randn(4, f.size), torch.randn(5, f.size, 6, 6)
    return {
        "ImplicitKernel": (lambda a: kernel(pos, a), "attributes", 4, "position", "positions"),
        "GridConv": (lambda a: grid(img, a), "kernel attributes", 5, "sample", "x"),
        "PointConv": (lambda a: conv(x, pos, edges, a), "edge_attr", 3, "edge", "x"),
        "MessageBlock": (lambda a: block(x, pos, edges, a), "edge_attr", 3, "edge", "x"),
    }


@pytest.mark.parametrize("who", ["ImplicitKernel", "GridConv", "PointConv", "MessageBlock"])
def test_attributes_are_checked_alike(layers, who):
    call, what, rows, per, like = layers[who]
    call(torch.randn(rows, 2))  # valid
    verb = "are" if what.endswith("s") else "is"
    cases = [
        (None, ValueError, f"{who}: {what} of type .* {verb} required"),
        (torch.randn(rows + 1, 2), ValueError, rf"{who}: {what} must have shape \({rows}, 2\) \(one row per {per}\)"),
        (torch.randn(rows, 3), ValueError, f"{who} {what}: expected 2 channels"),
        (torch.randn(rows, 2).double(), TypeError, f"{who}: {what} {verb} torch.float64 but {like}"),
    ]
    for attr, error, message in cases:
        with pytest.raises(error, match=message):
            call(attr)
    if who != "ImplicitKernel":  # the kernel leaves the finiteness of attributes to its layers
        with pytest.raises(ValueError, match=f"{who}: {what} contains NaN or infinite values"):
            call(torch.full((rows, 2), float("nan")))


def test_layers_built_without_attributes_refuse_them():
    G = st.group("C4", backend="matrix")
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    pos, edges = torch.randn(4, 2), torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="ImplicitKernel: got attributes but the layer was built without attr_type"):
        st.ImplicitKernel(f, f, max_radius=1.0)(pos, torch.randn(4, 1))
    with pytest.raises(ValueError, match="GridConv: got kernel attributes but the layer was built without kernel_attr"):
        st.GridConv(f, f, 3)(torch.randn(1, f.size, 5, 5), torch.randn(1, 1))
    with pytest.raises(ValueError, match="PointConv: got edge_attr but the layer was built without edge_attr"):
        st.PointConv(f, f, max_radius=1.0)(torch.randn(4, f.size), pos, edges, torch.randn(2, 1))
