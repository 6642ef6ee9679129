"""Graphs without edges or without nodes (issue 15, defect 1) on every backend and both kernel layouts.

Isolated points and empty radius graphs are valid input: a convolution's output is then its bias
alone, a block's what its self-interaction makes of the nodes; gradients flow (zero through the
kernel, every kernel parameter still gets one, as DDP expects).  Values are exact: no tolerance.
"""

from __future__ import annotations

import pytest
import torch
from _groups import GROUPS, make_fields, make_group

import steerable as st
from steerable.nn.kernel import ImplicitKernel

LAYOUTS = [8, None]


def _no_edges() -> torch.Tensor:
    return torch.zeros(2, 0, dtype=torch.long)


def _kernel_grads_are_zero(module: torch.nn.Module) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.count_nonzero(p.grad) == 0, name


@pytest.mark.parametrize("basis_size", LAYOUTS, ids=["shared", "dense"])
@pytest.mark.parametrize("group_name", GROUPS)
@pytest.mark.parametrize("n_nodes", [4, 0])
def test_point_conv_without_edges_is_its_bias(request, group_name, basis_size, n_nodes):
    G = make_group(group_name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    conv = st.PointConv(f_in, f_out, basis_size=basis_size, max_radius=1.0).double()
    with torch.no_grad():
        conv.bias.bias.normal_()
    x = torch.randn(n_nodes, f_in.size, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(n_nodes, G.dim, dtype=torch.float64, requires_grad=True)
    y = conv(x, pos, _no_edges())
    assert y.shape == (n_nodes, f_out.size) and y.dtype == torch.float64
    assert torch.equal(y, conv.bias.vector().expand(n_nodes, -1))
    (y * torch.randn_like(y)).sum().backward()
    assert torch.count_nonzero(x.grad) == 0 and torch.count_nonzero(pos.grad) == 0
    _kernel_grads_are_zero(conv.kernel)
    # bipartite: targets without edges get the bias too
    y2 = conv((x, None), (pos, torch.randn(3, G.dim, dtype=torch.float64)), _no_edges())
    assert torch.equal(y2, conv.bias.vector().expand(3, -1))


@pytest.mark.parametrize("basis_size", LAYOUTS, ids=["shared", "dense"])
@pytest.mark.parametrize("group_name", GROUPS)
def test_kernel_operations_on_zero_rows(request, group_name, basis_size):
    G = make_group(group_name, request)
    f_in, f_out = make_fields(G)
    kernel = ImplicitKernel(f_in, f_out, 2, basis_size=basis_size, max_radius=1.0)
    pos, attr = torch.zeros(0, G.dim), torch.zeros(0, 2)
    assert kernel(pos, attr).shape == (0, f_out.size, f_in.size)
    assert kernel.message(pos, attr, torch.zeros(0, f_in.size)).shape == (0, f_out.size)
    index = torch.zeros(0, dtype=torch.long)
    x = torch.randn(5, f_in.size, requires_grad=True)
    out = kernel.message_and_aggregate(pos, attr, x, index, index, 3)
    assert torch.equal(out, torch.zeros(3, f_out.size))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    _kernel_grads_are_zero(kernel)


@pytest.mark.parametrize("basis_size", LAYOUTS, ids=["shared", "dense"])
@pytest.mark.parametrize("group_name", GROUPS)
@pytest.mark.parametrize("n_nodes", [4, 0])
def test_blocks_without_edges(request, group_name, basis_size, n_nodes):
    G = make_group(group_name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    kw = dict(basis_size=basis_size)
    conv_block = st.PointConvBlock(f_in, f_out, True, kw, max_radius=1.0).train()
    message_block = st.MessageBlock(f_in, f_out, f_in, True, kw, max_radius=1.0)
    message_mean = st.MessageBlock(f_in, f_out, f_in, True, kw, aggregation="mean", max_radius=1.0)
    x = torch.randn(n_nodes, f_in.size, requires_grad=True)
    pos = torch.randn(n_nodes, G.dim)
    y = conv_block(x, pos, _no_edges(), None)
    expected = conv_block.gate(conv_block.lin(x) + conv_block.conv.bias.vector())
    assert y.shape == (n_nodes, f_out.size) and torch.equal(y, expected)
    y.sum().backward()
    _kernel_grads_are_zero(conv_block.conv.kernel)
    for block in (message_block, message_mean):
        y = block(x, pos, _no_edges(), None)
        assert y.shape == (n_nodes, f_out.size)
        assert torch.equal(y, block.gate(block.lin_self(x) + block.lin_msg(torch.zeros(n_nodes, f_in.size))))
        y.sum().backward()
        _kernel_grads_are_zero(block.kernel)
