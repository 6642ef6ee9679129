"""Kernels, grid and point convolutions and the checks in steerable.testing, on ToyC4.

ToyC4 (tests/toy) needs no backend library, so these tests cover the core alone.  Bounds on the relative
equivariance error (the toy MLP is exact up to round-off), measured over the layer and block tests below:
float64 <= 6.6e-16, bound 1e-14 (15x); float32 <= 2.5e-7, bound 2e-6 (8x).
"""

from __future__ import annotations

import math

import pytest
import torch

import steerable as st
from steerable.testing import (
    check_equivariance,
    commutant_dimension,
    finite_stabiliser,
    kernel_span_rank,
    lattice_elements,
    transform_grid,
)


@pytest.fixture
def fields(toy_group):
    G = toy_group
    f_in = st.FieldType(G, [G.trivial_rep(), G.standard_rep(), G.sign])
    f_out = st.FieldType(G, [G.standard_rep(), G.trivial_rep(), G.trivial_rep()])
    return G, f_in, f_out


def test_field_type_layout(fields):
    G, f_in, _ = fields
    assert f_in.size == 4 and f_in.offsets == (0, 1, 3)
    assert f_in.trivial_channels == [0]
    assert "1xtrivial[1]" in repr(f_in)
    with pytest.raises(ValueError, match="at least one"):
        st.FieldType(G, [])


def test_dense_kernel_blocks_follow_field_order(fields):
    _, f_in, f_out = fields
    kernel = st.ImplicitKernel(
        f_in, f_out, basis_size=None, envelope_width=None, normalize=False, max_radius=1.0
    ).double()
    pos = torch.randn(5, 2, dtype=torch.float64)
    flat, full = kernel.mlp(pos, None), kernel(pos)
    start = 0
    for o_off, ro in zip(f_out.offsets, f_out.reps):
        for i_off, ri in zip(f_in.offsets, f_in.reps):
            block = flat[:, start : start + ro.size * ri.size].view(5, ro.size, ri.size)
            assert torch.equal(full[:, o_off : o_off + ro.size, i_off : i_off + ri.size], block)
            start += ro.size * ri.size


def test_shared_basis_kernel_blocks_mix_the_basis(fields):
    """Block (o, i) = sum_m W[o, m, i] phi_m, phi_m the MLP's M blocks of the pair (rep_o, rep_i)."""
    _, f_in, f_out = fields
    M = 3
    kernel = st.ImplicitKernel(f_in, f_out, basis_size=M, envelope_width=None, normalize=False, max_radius=1.0).double()
    pos = torch.randn(5, 2, dtype=torch.float64)
    flat, full = kernel.mlp(pos, None), kernel(pos)
    out_groups, in_groups = f_out.by_rep(), f_in.by_rep()
    assert kernel.spec.blocks == tuple((ro, ri) for ro, _ in out_groups for ri, _ in in_groups for _ in range(M))
    start, pair = 0, 0
    for ro, outs in out_groups:
        for ri, ins in in_groups:
            basis = flat[:, start : start + M * ro.size * ri.size].view(5, M, ro.size, ri.size)
            w = kernel.mixing[pair].detach()
            for a, o in enumerate(outs):
                for b, i in enumerate(ins):
                    rows = slice(f_out.offsets[o], f_out.offsets[o] + ro.size)
                    cols = slice(f_in.offsets[i], f_in.offsets[i] + ri.size)
                    expected = torch.einsum("m,emab->eab", w[a, :, b], basis)
                    torch.testing.assert_close(full[:, rows, cols], expected, rtol=1e-12, atol=1e-14)
            start += M * ro.size * ri.size
            pair += 1
    assert start == flat.shape[1] and pair == len(kernel.mixing)


@pytest.mark.parametrize("basis_size", [None, 1, 4])
def test_point_conv_messages_equal_materialised_kernel(fields, basis_size):
    """mix(sum of responses) equals sum_j K(pos_j - pos_i) x_j with the kernel built in full."""
    _, f_in, f_out = fields
    torch.manual_seed(2)
    conv = st.PointConv(
        f_in, f_out, edge_attr=1, basis_size=basis_size, envelope_width=0.8, bias=False, max_radius=1.0
    ).double()
    x = torch.randn(9, f_in.size, dtype=torch.float64)
    pos = torch.randn(9, 2, dtype=torch.float64)
    edge_index = torch.randint(0, 9, (2, 30))
    attr = torch.randn(30, 1, dtype=torch.float64)
    kernel = conv.kernel(pos[edge_index[0]] - pos[edge_index[1]], attr)
    messages = torch.einsum("eoi,ei->eo", kernel, x[edge_index[0]])
    expected = torch.zeros(9, f_out.size, dtype=torch.float64).index_add(0, edge_index[1], messages)
    torch.testing.assert_close(conv(x, pos, edge_index, attr), expected, rtol=1e-12, atol=1e-12)


def test_basis_size_is_validated(fields):
    _, f_in, f_out = fields
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="basis_size must be a positive int or None"):
            st.ImplicitKernel(f_in, f_out, basis_size=bad, max_radius=1.0)


@pytest.mark.parametrize("dtype, bound", [(torch.float64, 1e-14), (torch.float32, 2e-6)])
@pytest.mark.parametrize("basis_size", [None, 4])
def test_layers_are_equivariant(fields, dtype, bound, basis_size):
    _, f_in, f_out = fields
    torch.manual_seed(0)
    kw = dict(basis_size=basis_size)
    assert check_equivariance(st.ImplicitKernel(f_in, f_out, 2, max_radius=1.0, **kw), dtype=dtype) < bound
    assert check_equivariance(st.PointConv(f_in, f_out, edge_attr=2, max_radius=1.0, **kw), dtype=dtype) < bound
    assert check_equivariance(st.GridConv(f_in, f_out, 5, padding=2, **kw), dtype=dtype) < bound
    std = st.FieldType(f_in.group, [f_in.group.standard_rep()])
    grid_attr = st.GridConv(f_in, f_out, 3, padding=1, kernel_attr=std, **kw)
    assert check_equivariance(grid_attr, dtype=dtype) < bound


@pytest.mark.parametrize("dtype, bound", [(torch.float64, 1e-14), (torch.float32, 2e-6)])
@pytest.mark.parametrize("gate", [True, False])
def test_blocks_are_equivariant(fields, dtype, bound, gate):
    _, f_in, f_out = fields
    torch.manual_seed(0)
    kw = dict(edge_attr=2, basis_size=4)
    for block in (
        st.PointConvBlock(f_in, f_out, gate, kw, max_radius=1.0),
        st.MessageBlock(f_in, f_out, f_in, gate, kw, max_radius=1.0),
    ):
        assert block.in_type is f_in and block.attr_type.size == 2
        assert block.out_type.size == f_out.size
        assert check_equivariance(block, dtype=dtype) < bound


def test_message_block_bad_input_is_named(fields):
    _, f_in, f_out = fields
    with pytest.raises(ValueError, match="aggregation must be 'sum' or 'mean', got 'max'"):
        st.MessageBlock(f_in, f_out, f_in, True, {}, aggregation="max", max_radius=1.0)
    block = st.MessageBlock(f_in, f_out, f_in, True, {}, max_radius=1.0)
    x, pos, edges = torch.randn(3, f_in.size), torch.randn(3, 2), torch.tensor([[0, 1], [1, 2]])
    assert block(x, pos, edges, None).shape == (3, f_out.size)
    with pytest.raises(ValueError, match="MessageBlock input x"):
        block(torch.randn(3, f_in.size + 1), pos, edges, None)
    with pytest.raises(ValueError, match="MessageBlock: 3 feature rows but 2 source positions"):
        block(x, pos[:2], edges, None)
    with pytest.raises(ValueError, match="MessageBlock: edge_index out of range for 3 sources / 3 targets"):
        block(x, pos, torch.tensor([[0, 3], [1, 2]]), None)


def test_message_block_sums_per_edge_messages(fields):
    """Each edge's message is gated on its own, from its source and target features through K."""
    G, f_in, f_out = fields
    torch.manual_seed(0)
    block = st.MessageBlock(f_in, f_out, f_in, True, dict(edge_attr=1, basis_size=4), max_radius=1.0).double()
    with torch.no_grad():
        block.bias.bias.normal_()  # a bias that shows (it starts at zero)
    x, pos = torch.randn(4, f_in.size, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    edge_index = torch.tensor([[0, 1, 2, 3, 1], [1, 0, 1, 1, 3]])
    attr = torch.randn(5, 1, dtype=torch.float64)
    summed = torch.zeros(4, f_in.size, dtype=torch.float64)
    for e, (j, i) in enumerate(edge_index.T.tolist()):
        pair = torch.cat([x[j], x[i]])
        pre = block.kernel((pos[j] - pos[i])[None], attr[[e]])[0] @ pair + block.bias.vector()
        summed[i] += block.message_gate(pre[None])[0]
    expect = block.gate(block.lin_self(x) + block.lin_msg(summed))
    assert torch.allclose(block(x, pos, edge_index, attr), expect, atol=1e-12)


@pytest.mark.parametrize("basis_size", [None, 4])
def test_message_block_chunking_is_exact(fields, basis_size):
    """Messages in chunks of 3 edges (checkpointed in training) equal one chunk: values and gradients."""
    _, f_in, f_out = fields
    torch.manual_seed(5)
    kw = dict(edge_attr=1, basis_size=basis_size)
    whole = st.MessageBlock(f_in, f_out, f_in, True, kw, max_radius=1.0).double()
    chunked = st.MessageBlock(f_in, f_out, f_in, True, dict(kw, chunk_size=3), max_radius=1.0).double()
    chunked.load_state_dict(whole.state_dict())
    assert chunked.chunk_size == 3 and whole.chunk_size >= 256
    x = torch.randn(6, f_in.size, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    edge_index = torch.randint(0, 6, (2, 11))
    attr = torch.randn(11, 1, dtype=torch.float64)
    y1, y2 = whole(x, pos, edge_index, attr), chunked(x, pos, edge_index, attr)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    g1 = torch.autograd.grad(y1.square().sum(), [x, pos, *whole.parameters()])
    g2 = torch.autograd.grad(y2.square().sum(), [x, pos, *chunked.parameters()])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="MessageBlock: chunk_size must be positive"):
        st.MessageBlock(f_in, f_out, f_in, True, dict(kw, chunk_size=0), max_radius=1.0)
    # checkpoints from when the kernel sat in a PointConv (conv.kernel.*, conv.bias.*) still load
    old_names = {
        k.replace("kernel.", "conv.kernel.", 1)
        if k.startswith("kernel.")
        else k.replace("bias.", "conv.bias.", 1)
        if k.startswith("bias.")
        else k: v
        for k, v in whole.state_dict().items()
    }
    assert "conv.kernel.gain" in old_names and "conv.bias.bias" in old_names
    again = st.MessageBlock(f_in, f_out, f_in, True, kw, max_radius=1.0).double()
    again.load_state_dict(old_names)
    torch.testing.assert_close(again(x, pos, edge_index, attr), y1, rtol=0, atol=0)


def test_equivariance_check_can_fail(fields):
    """A layer that breaks the symmetry is caught: the check is not vacuous."""
    _, f_in, f_out = fields
    conv = st.PointConv(f_in, f_out, max_radius=1.0).double()
    with torch.no_grad():
        conv.kernel.mlp.net[0].weight[:, 0] += 1.0  # still averaged, so still equivariant ...
    assert check_equivariance(conv) < 1e-14
    conv.kernel.mlp.acts = conv.kernel.mlp.acts[[0, 0, 0, 0]]  # ... but not after breaking the average
    assert check_equivariance(conv) > 1e-3


def test_kernel_is_complete(fields):
    G, f_in, f_out = fields
    vec = st.FieldType(G, [G.standard_rep()])
    x0 = torch.tensor([[0.3, 0.7]], dtype=torch.float64)
    expected = commutant_dimension(finite_stabiliser(G, x0[0]), vec, vec)
    assert expected == 4  # C4 fixes no point but the origin
    origin = torch.zeros(1, 2, dtype=torch.float64)
    at_origin = commutant_dimension(finite_stabiliser(G, origin[0]), vec, vec)
    assert at_origin == 2
    for basis_size in (None, 1, 8):
        make = lambda basis_size=basis_size: st.ImplicitKernel(vec, vec, basis_size=basis_size, max_radius=1.0)  # noqa: E731
        assert kernel_span_rank(make, x0) == expected
        assert kernel_span_rank(make, origin) == at_origin


def test_transform_grid_matches_rot90(fields):
    G, *_ = fields
    scalar = st.FieldType(G, [G.trivial_rep()])
    quarter = G.elements_from_matrices(torch.tensor([[[0.0, -1.0], [1.0, 0.0]]]))
    img = torch.arange(9.0, dtype=torch.float64).view(1, 1, 3, 3)
    # axis 0 = x, axis 1 = y: a +90° turn maps (x, y) -> (-y, x), i.e. rot90 in the (x, y) plane
    assert torch.equal(transform_grid(img, scalar, quarter), torch.rot90(img, 1, dims=(2, 3)))
    assert len(lattice_elements(G)) == 4


@pytest.mark.parametrize("basis_size", [None, 4])
def test_point_conv_chunking_is_exact(fields, basis_size):
    _, f_in, f_out = fields
    torch.manual_seed(1)
    whole = st.PointConv(f_in, f_out, edge_attr=1, basis_size=basis_size, max_radius=1.0).double()
    chunked = st.PointConv(f_in, f_out, edge_attr=1, chunk_size=7, basis_size=basis_size, max_radius=1.0).double()
    chunked.load_state_dict(whole.state_dict())
    x = torch.randn(10, f_in.size, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(10, 2, dtype=torch.float64)
    edge_index = torch.randint(0, 10, (2, 40))
    attr = torch.randn(40, 1, dtype=torch.float64)
    y1, y2 = whole(x, pos, edge_index, attr), chunked(x, pos, edge_index, attr)
    torch.testing.assert_close(y1, y2)
    g1 = torch.autograd.grad(y1.square().sum(), [x, *whole.parameters()])
    g2 = torch.autograd.grad(y2.square().sum(), [x, *chunked.parameters()])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_point_conv_chunks_are_checkpointed_but_the_last(fields, monkeypatch):
    """Training with 6 chunks: every chunk but the last is made again in backward (11 calls of the
    kernel), so the saved activations never exceed one chunk's; in eval, 6 calls."""
    _, f_in, f_out = fields
    conv = st.PointConv(f_in, f_out, chunk_size=7, max_radius=1.0).double()
    calls = []
    original = conv.kernel.message_and_aggregate
    monkeypatch.setattr(conv.kernel, "message_and_aggregate", lambda *a: calls.append(1) or original(*a))
    x = torch.randn(10, f_in.size, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(10, 2, dtype=torch.float64)
    edge_index = torch.randint(0, 10, (2, 40))
    conv(x, pos, edge_index).square().sum().backward()
    assert len(calls) == 6 + 5
    calls.clear()
    with torch.no_grad():
        conv.eval()(x, pos, edge_index)
    assert len(calls) == 6


def test_point_conv_conventions(fields):
    """Edge (j -> i) = (edge_index[0], edge_index[1]); kernel at pos[j] - pos[i]; sum at i."""
    _, f_in, f_out = fields
    conv = st.PointConv(f_in, f_out, bias=False, max_radius=1.0).double()
    pos = torch.randn(3, 2, dtype=torch.float64)
    x = torch.randn(3, f_in.size, dtype=torch.float64)
    y = conv(x, pos, torch.tensor([[0, 1], [2, 2]]))
    k = conv.kernel(torch.stack([pos[0] - pos[2], pos[1] - pos[2]]))
    torch.testing.assert_close(y[2], k[0] @ x[0] + k[1] @ x[1])
    assert y[:2].abs().max() == 0
    # bipartite: two targets of their own
    targets = torch.randn(2, 2, dtype=torch.float64)
    yb = conv(x, (pos, targets), torch.tensor([[0, 2], [1, 0]]))
    assert yb.shape == (2, f_out.size)
    torch.testing.assert_close(yb[1], conv.kernel((pos[0] - targets[1])[None])[0] @ x[0])


def test_grid_conv_cache_and_attributes(fields):
    _, f_in, f_out = fields
    conv = st.GridConv(f_in, f_out, 3, padding=1).eval()
    img = torch.randn(2, f_in.size, 6, 6)
    with torch.no_grad():
        first = conv(img)
        assert conv._cache is not None and conv(img).equal(first)
        for p in conv.parameters():
            p.add_(0.1)  # an in-place change invalidates the cached filter
        assert not conv(img).equal(first)
    conv.train()
    torch.testing.assert_close(conv(img), torch.nn.functional.conv2d(img, conv.filter(), conv.bias.vector(), padding=1))

    cond = st.GridConv(f_in, f_out, 3, padding=1, kernel_attr=1)
    attr = torch.tensor([[0.0], [2.0]])
    y = cond(img, attr)
    single = [cond(img[b : b + 1], attr[b : b + 1]) for b in range(2)]
    torch.testing.assert_close(y, torch.cat(single))
    assert not torch.allclose(single[0], cond(img[:1], attr[1:]))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_grid_conv_padding_modes_and_stride(fields, mode):
    _, f_in, f_out = fields
    conv = st.GridConv(f_in, f_out, 3, padding=1, stride=2, padding_mode=mode)
    assert conv(torch.randn(1, f_in.size, 9, 9)).shape == (1, f_out.size, 5, 5)


def test_bad_input_is_named(fields, plugin_path):
    G, f_in, f_out = fields
    conv = st.PointConv(f_in, f_out, max_radius=1.0)
    pos, ei = torch.randn(4, 2), torch.tensor([[0, 1], [1, 2]])
    with pytest.raises(ValueError, match="expected 4 channels"):
        conv(torch.randn(4, 3), pos, ei)
    with pytest.raises(ValueError, match=r"pos must have shape \(N, 2\)"):
        conv(torch.randn(4, 4), torch.randn(4, 3), ei)
    with pytest.raises(ValueError, match="NaN or infinite"):
        conv(torch.randn(4, 4), torch.full((4, 2), math.nan), ei)
    with pytest.raises(TypeError, match="float64 but the layer is torch.float32"):
        conv(torch.randn(4, 4, dtype=torch.float64), pos.double(), ei)
    with pytest.raises(ValueError, match="out of range"):
        conv(torch.randn(4, 4), pos, torch.tensor([[0], [9]]))
    with pytest.raises(ValueError, match="edge_attr"):
        conv(torch.randn(4, 4), pos, ei, torch.randn(2, 1))
    grid = st.GridConv(f_in, f_out, 3)
    with pytest.raises(ValueError, match=r"expects \(B, 4, X, Y\)"):
        grid(torch.randn(4, 5, 5))
    with pytest.raises(ValueError, match="expected 4 channels"):
        grid(torch.randn(1, 3, 5, 5))

    class OtherGroup(type(G)):
        name = "OtherC4"

    other = OtherGroup()
    with pytest.raises(ValueError, match="fields of different groups"):
        st.PointConv(f_in, st.FieldType(other, [other.trivial_rep()]), max_radius=1.0)
    with pytest.raises(ValueError, match="FieldType of ToyC4"):
        st.FieldType(G, [other.trivial_rep()])


@pytest.mark.parametrize("basis_size", [None, 4])
def test_point_conv_second_derivatives(fields, basis_size):
    """Forces-style training differentiates through the gradient: gradgradcheck in float64."""
    _, f_in, f_out = fields
    torch.manual_seed(2)
    conv = st.PointConv(f_in, f_out, edge_attr=1, basis_size=basis_size, max_radius=1.0).double()
    pos = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, f_in.size, dtype=torch.float64, requires_grad=True)
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 0], [1, 2, 3, 4, 0, 2]])
    attr = torch.randn(6, 1, dtype=torch.float64)
    assert torch.autograd.gradgradcheck(lambda p, f: conv(f, p, edge_index, attr), (pos, x))
