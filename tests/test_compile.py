"""The layers' forward paths compile whole (issue 15): no host synchronisation, no data-dependent
Python branch, so ``torch.compile(layer, fullgraph=True)`` captures one graph (the value checks of
:mod:`steerable.nn.checks` and the eval filter cache step aside while compiling).

The default suite captures with ``backend="aot_eager"`` (Dynamo's graph capture and AOT autograd's
forward and backward tracing, without code generation: seconds); the slow tests run Inductor.
Outputs and gradients are compared with eager mode in float64 (bound 1e-12, round-off only: the
graphs run the same ops) and, for Inductor, float32 (bound 1e-5: fused kernels reorder sums) and,
for the escnn layers whose weights go through escnn's basis expansion, float64 too (bound 1e-12).
The default suite also checks that those layers' traced graphs have static shapes only (what
Inductor failed on before: slice bounds read from tensors).
"""

from __future__ import annotations

import pytest
import torch
from _groups import make_fields, make_group

import steerable as st
from steerable.nn.kernel import ImplicitKernel

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _graph(G, n=9, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    src, dst = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = src != dst
    return torch.randn(n, G.dim, generator=gen, dtype=dtype), torch.stack([src[keep], dst[keep]])


def _cases(G, f_in, f_out, dtype):
    """``name -> (layer, inputs)``; every floating input requires a gradient."""
    pos, edge_index = _graph(G, dtype=dtype)
    x = torch.randn(pos.shape[0], f_in.size, dtype=dtype)
    gate = st.Gate(f_out)
    cases = {
        "kernel": (ImplicitKernel(f_in, f_out, 1, max_radius=1.0), (pos, torch.randn(pos.shape[0], 1, dtype=dtype))),
        "point_conv_shared": (st.PointConv(f_in, f_out, max_radius=1.0), (x, pos, edge_index)),
        "point_conv_dense": (st.PointConv(f_in, f_out, basis_size=None, max_radius=1.0), (x, pos, edge_index)),
        "gate": (gate, (torch.randn(pos.shape[0], gate.in_type.size, dtype=dtype),)),
        "message_block": (
            st.MessageBlock(f_in, f_out, f_in, True, {}, aggregation="mean", max_radius=1.0),
            (x, pos, edge_index, None),
        ),
    }
    if G.dim == 2:
        img = torch.randn(2, f_in.size, 7, 7, dtype=dtype)
        cases["grid_conv_train"] = (st.GridConv(f_in, f_out, 3, padding=1), (img,))
        cases["grid_conv_eval"] = (st.GridConv(f_in, f_out, 3, padding=1).eval(), (img,))
        cases["gate_grid"] = (gate, (torch.randn(2, gate.in_type.size, 5, 5, dtype=dtype),))
    return {name: (layer.to(dtype), args) for name, (layer, args) in cases.items()}


def _compare(layer, args, backend, tol):
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, backend=backend)
    inputs = [
        a.detach().clone().requires_grad_(a.is_floating_point()) if isinstance(a, torch.Tensor) else a for a in args
    ]
    if not layer.training:
        with torch.no_grad():
            torch.testing.assert_close(compiled(*inputs), layer(*inputs), **tol)
        return
    out, ref = compiled(*inputs), layer(*inputs)
    torch.testing.assert_close(out, ref, **tol)
    weights = torch.randn_like(ref)
    wrt = [a for a in inputs if isinstance(a, torch.Tensor) and a.requires_grad] + list(layer.parameters())
    got = torch.autograd.grad((out * weights).sum(), wrt, allow_unused=True)
    want = torch.autograd.grad((ref * weights).sum(), wrt, allow_unused=True)
    for g, w in zip(got, want):
        if w is None:
            assert g is None or torch.count_nonzero(g) == 0
        else:
            torch.testing.assert_close(g, w, **tol)


def _grid_case(group_name: str, case: str) -> bool:
    """Grid cases need a group on the plane (e3nn's O(3) acts on R^3)."""
    return group_name.startswith("e3nn") and case in ("grid_conv_train", "grid_conv_eval", "gate_grid")


CASES = [
    "kernel",
    "point_conv_shared",
    "point_conv_dense",
    "gate",
    "message_block",
    "grid_conv_train",
    "grid_conv_eval",
    "gate_grid",
]
QUICK = {("matrix-C4", "point_conv_shared")}  # the default suite's one compile (~5 s); the rest is slow


@pytest.mark.parametrize(
    "group_name, case",
    [
        pytest.param(g, c, marks=() if (g, c) in QUICK else pytest.mark.slow)
        for g in ["matrix-C4", "escnn-C4", "e3nn-O(3)"]
        for c in CASES
        if not _grid_case(g, c)
    ],
)
def test_layers_capture_one_graph(request, group_name, case):
    G = make_group(group_name, request)
    torch.manual_seed(0)
    layer, args = _cases(G, *make_fields(G), torch.float64)[case]
    _compare(layer, args, "aot_eager", dict(rtol=1e-12, atol=1e-12))


def _inductor_params():
    for g in ["matrix-C4", "escnn-C4", "e3nn-O(3)"]:
        for c in CASES:
            if not _grid_case(g, c):
                yield pytest.param(g, c)


@pytest.mark.slow
@pytest.mark.parametrize("group_name, case", list(_inductor_params()))
def test_layers_compile_with_inductor(request, group_name, case):
    G = make_group(group_name, request)
    torch.manual_seed(0)
    layer, args = _cases(G, *make_fields(G), torch.float32)[case]
    _compare(layer, args, "inductor", dict(rtol=1e-5, atol=1e-5))


#: the cases whose escnn linear layers expand their weights with escnn's ``BlocksBasisExpansion``
#: (the dense kernel MLP); before, its slice bounds were 0-d tensors and Inductor failed to lower them
ESCNN_EXPANSION_CASES = ["point_conv_dense", "message_block"]


@pytest.mark.slow
@pytest.mark.parametrize("case", ESCNN_EXPANSION_CASES)
def test_escnn_expansion_compiles_with_inductor_in_float64(request, case):
    """Values and gradients of Inductor's code equal eager mode's to float64 round-off (bound 1e-12;
    fused kernels may reorder sums, which in float64 moves results by ~1e-16 relative)."""
    G = make_group("escnn-C4", request)
    torch.manual_seed(0)
    layer, args = _cases(G, *make_fields(G), torch.float64)[case]
    _compare(layer, args, "inductor", dict(rtol=1e-12, atol=1e-12))


def _data_dependent_nodes(layer, args) -> list[str]:
    """Nodes of the forward graph AOT autograd traces of ``layer(*args)`` (what Inductor lowers) that
    read a tensor's value into a size (``aten._local_scalar_dense``) or have a data-dependent
    (unbacked) size."""
    from torch._dynamo.backends.common import aot_autograd
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

    found: list[str] = []

    def inspect(gm, example_inputs):
        for node in gm.graph.nodes:
            value = node.meta.get("val")
            if node.target is torch.ops.aten._local_scalar_dense.default:
                found.append(f"{node.name}: reads a value")
            elif isinstance(value, torch.Tensor) and free_unbacked_symbols(value):
                found.append(f"{node.name}: shape {tuple(value.shape)}")
        return gm.forward

    torch._dynamo.reset()
    try:
        torch.compile(layer, fullgraph=True, backend=aot_autograd(fw_compiler=inspect))(*args)
    finally:
        torch._dynamo.reset()
    return found


@pytest.mark.parametrize("case", ESCNN_EXPANSION_CASES)
def test_escnn_expansion_has_static_shapes(request, case):
    """The traced graph of the escnn layers has no data-dependent size, what Inductor failed to
    lower (before: the expansion's slice bounds were read from 0-d tensors, ``_local_scalar_dense``,
    and the slices had unbacked sizes)."""
    G = make_group("escnn-C4", request)
    layer, args = _cases(G, *make_fields(G), torch.float64)[case]
    assert _data_dependent_nodes(layer, args) == []


def test_layers_run_on_the_meta_device(request):
    """Shapes only, no values (as ``torch.export`` and memory planning see them): no ``.item()``."""
    G = make_group("matrix-C4", request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    for name, (layer, args) in _cases(G, f_in, f_out, torch.float32).items():
        layer = layer.to("meta")
        out = layer(*[a.to("meta") if isinstance(a, torch.Tensor) else a for a in args])
        assert out.device.type == "meta", name


def test_point_conv_exports(request):
    G = make_group("matrix-C4", request)
    f_in, f_out = make_fields(G)
    conv = st.PointConv(f_in, f_out, max_radius=1.0).double()
    pos, edge_index = _graph(G)
    x = torch.randn(pos.shape[0], f_in.size, dtype=torch.float64)
    program = torch.export.export(conv, (x, pos, edge_index))
    torch.testing.assert_close(program.module()(x, pos, edge_index), conv(x, pos, edge_index), rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", ["point_conv_shared", "point_conv_dense", "grid_conv_train", "gate_grid"])
def test_no_host_synchronisation_on_cuda(request, case):
    """Forward and backward on a GPU never wait for the device (``set_sync_debug_mode("error")``
    raises on any synchronising call); the value checks stay off outside debug mode."""
    G = make_group("matrix-C4", request)
    torch.manual_seed(0)
    layer, args = _cases(G, *make_fields(G), torch.float32)[case]
    layer = layer.cuda()
    args = [a.cuda() if isinstance(a, torch.Tensor) else a for a in args]
    layer(*args).sum().backward()  # warm-up (first calls may initialise on the host)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        layer(*args).sum().backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
