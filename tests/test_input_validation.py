"""Bad input to the layers gets a clear error naming the problem (issue 15, defect 10), and the
value checks follow the documented rule (:mod:`steerable.nn.checks`): on CPU tensors always, on
accelerator tensors only in debug mode, never while compiling."""

from __future__ import annotations

import pytest
import torch
from _groups import make_fields, make_group

import steerable as st
from steerable.nn import checks
from steerable.nn.kernel import ImplicitKernel


@pytest.fixture
def layer_fields(request):
    G = make_group("matrix-C4", request)
    return (G, *make_fields(G))


def _graph(G, n=5, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = src != dst
    return torch.randn(n, G.dim, generator=gen, dtype=dtype), torch.stack([src[keep], dst[keep]])


@pytest.mark.parametrize("value", [2.5, True, 0, -3, "8"])
def test_chunk_size_must_be_a_positive_int(layer_fields, value):
    _, f_in, f_out = layer_fields
    with pytest.raises(ValueError, match=r"chunk_size must be positive \(an int or None\)"):
        st.PointConv(f_in, f_out, chunk_size=value, max_radius=1.0)
    with pytest.raises(ValueError, match=r"chunk_size must be positive \(an int or None\)"):
        st.MessageBlock(f_in, f_out, f_in, True, dict(chunk_size=value), max_radius=1.0)
    with pytest.raises(ValueError, match=r"chunk_size must be positive \(an int or None\)"):
        st.PointConvBlock(f_in, f_out, True, dict(chunk_size=value), max_radius=1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kernel_size=True), "kernel_size must be a positive int"),
        (dict(kernel_size=2.0), "kernel_size must be a positive int"),
        (dict(kernel_size=3, stride=0), "stride must be a positive int"),
        (dict(kernel_size=3, stride=True), "stride must be a positive int"),
        (dict(kernel_size=3, stride=(1, 0)), "stride must be a positive int"),
        (dict(kernel_size=3, dilation=0), "dilation must be a positive int"),
        (dict(kernel_size=3, dilation=False), "dilation must be a positive int"),
        (dict(kernel_size=3, padding=-1), "padding must be a non-negative int"),
        (dict(kernel_size=3, padding=True), "padding must be a non-negative int"),
        (dict(kernel_size=3, padding=(1, 1, 1)), "padding must be a non-negative int"),
        (dict(kernel_size=3, padding="same"), "padding must be a non-negative int"),
    ],
)
def test_grid_conv_refuses_bad_geometry(layer_fields, kwargs, message):
    _, f_in, f_out = layer_fields
    with pytest.raises(ValueError, match=message):
        st.GridConv(f_in, f_out, **kwargs)


def test_edge_attr_dtype_shape_and_values(layer_fields):
    G, f_in, f_out = layer_fields
    conv = st.PointConv(f_in, f_out, edge_attr=2, max_radius=1.0)
    pos, edge_index = _graph(G)
    x = torch.randn(pos.shape[0], f_in.size)
    attr = torch.randn(edge_index.shape[1], 2)
    conv(x, pos, edge_index, attr)  # valid
    with pytest.raises(TypeError, match="edge_attr is torch.int64 but x is torch.float32"):
        conv(x, pos, edge_index, attr.long())
    with pytest.raises(TypeError, match="edge_attr is torch.float64 but x is torch.float32"):
        conv(x, pos, edge_index, attr.double())
    with pytest.raises(ValueError, match="edge_attr contains NaN"):
        conv(x, pos, edge_index, torch.where(attr > 1, float("nan"), attr))
    with pytest.raises(ValueError, match=r"edge_attr must have shape \(20, 2\)"):
        conv(x, pos, edge_index, attr[:-1])
    block = st.MessageBlock(f_in, f_out, f_in, True, dict(edge_attr=2), max_radius=1.0)
    with pytest.raises(ValueError, match="MessageBlock: edge_attr contains NaN"):
        block(x, pos, edge_index, attr / 0)


def test_point_inputs_name_the_problem(layer_fields):
    G, f_in, f_out = layer_fields
    conv = st.PointConv(f_in, f_out, max_radius=1.0)
    pos, edge_index = _graph(G)
    x = torch.randn(pos.shape[0], f_in.size)
    cases = [
        ((x.long(), pos, edge_index), TypeError, "x must be floating point"),
        ((x.double(), pos, edge_index), TypeError, "input is torch.float64 but the layer is torch.float32"),
        ((x, pos.double(), edge_index), TypeError, "pos is torch.float64 but x is torch.float32"),
        ((x, pos[:, :1], edge_index), ValueError, r"pos must have shape \(N, 2\)"),
        ((x, pos, edge_index.int()), TypeError, "edge_index must be torch.long"),
        ((x, pos, edge_index.T), ValueError, r"edge_index must have shape \(2, E\)"),
        ((x, pos, edge_index + 1), ValueError, r"sources must lie in \[0, 5\), got values in \[1, 5\]"),
        ((x, (pos, pos[:3]), edge_index), ValueError, r"targets must lie in \[0, 3\)"),
        ((x, pos, edge_index - 1), ValueError, r"sources must lie in \[0, 5\)"),
        ((x / 0, pos, edge_index), ValueError, "input x contains NaN"),
        ((x, pos / 0, edge_index), ValueError, "pos contains NaN"),
        (("x", pos, edge_index), TypeError, "x must be a torch.Tensor"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            conv(*args)


def test_kernel_operations_check_attributes(layer_fields):
    G, f_in, f_out = layer_fields
    kernel = ImplicitKernel(f_in, f_out, 2, max_radius=1.0)
    pos = torch.randn(6, G.dim)
    with pytest.raises(TypeError, match="attributes are torch.float64 but positions are torch.float32"):
        kernel(pos, torch.randn(6, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"attributes must have shape \(6, 2\)"):
        kernel(pos, torch.randn(5, 2))
    index = torch.zeros(6, dtype=torch.long)
    with pytest.raises(ValueError, match="n_dst must be a non-negative int"):
        kernel.message_and_aggregate(pos, torch.randn(6, 2), torch.randn(3, f_in.size), index, index, True)


def test_grid_conv_checks_kernel_attributes(layer_fields):
    _, f_in, f_out = layer_fields
    conv = st.GridConv(f_in, f_out, 3, kernel_attr=1)
    img = torch.randn(2, f_in.size, 5, 5)
    with pytest.raises(TypeError, match="kernel attributes are torch.float64 but x is torch.float32"):
        conv(img, torch.randn(2, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="kernel attributes contains NaN"):
        conv(img, torch.full((2, 1), float("nan")))


def test_value_checks_follow_the_rule(monkeypatch):
    cpu = torch.zeros(3)
    assert checks.reads_values(cpu)
    meta = torch.empty(3, device="meta")  # stands for an accelerator: no values to read cheaply
    monkeypatch.setattr(checks, "_debug", False)
    assert not checks.reads_values(meta)
    checks.check_finite(meta, "who", "x")  # skipped: no host synchronisation
    checks.set_debug(True)
    assert checks.is_debug() and checks.reads_values(meta)
    checks.set_debug(False)
    assert not checks.is_debug()
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not checks.reads_values(cpu)


def test_kernel_and_grid_name_size_and_dtype_problems(layer_fields):
    G, f_in, f_out = layer_fields
    kernel = ImplicitKernel(f_in, f_out, max_radius=1.0)
    with pytest.raises(TypeError, match="positions are torch.float64 but the kernel is torch.float32"):
        kernel(torch.randn(4, G.dim, dtype=torch.float64))
    conv = st.GridConv(f_in, f_out, 5, dilation=2)
    with pytest.raises(ValueError, match=r"size 8 \(axis 0\) with padding 0 is smaller than the filter's extent 9"):
        conv(torch.randn(1, f_in.size, 8, 9))
