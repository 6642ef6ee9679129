"""GridConv's assembled filter (:mod:`steerable.nn.grid_filter`) equals the reference construction.

The reference is the kernel's matrices at the taps, ``kernel(points)`` ``(k^d, out, in)``, moved to
conv layout (``GridConv.filter(reference=True)``).  On every backend that builds a GridConv (ToyC4,
matrix, escnn on R^2 and R^3, e3nn, lie on R^3, on R^4 through ``conv_nd`` and on a non-compact group
whose envelope reads ``|x^T eta x|``), both kernel layouts (shared basis, dense), with and without the
envelope, in float64: values, gradients with respect to every parameter (a random cotangent) and a
second derivative.  Measured relative differences <= 7.8e-15 (round-off: the same products summed in
another order); bound ``1e-13``, a margin of ~13x.  The layer's training forward must be the
convolution with that filter, and its parameter gradients the reference's.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _groups import make_group
from _lie import field_type as lie_types
from _lie import (
    lie_registered,  # noqa: F401 (an autouse fixture: the lie backend, a private cache)
    torus,
)

import steerable as st
from steerable.nn.grid_filter import GridFilter

BOUND = 1e-13


def _group(name: str, request: pytest.FixtureRequest) -> st.Group:
    if name == "lie-T2":
        return torus()
    if name.startswith("lie-"):
        return st.group(name[4:], backend="lie")
    return make_group(name, request)


def _fields(G: st.Group) -> tuple[st.FieldType, st.FieldType]:
    """Two scalars and a vector in, a vector and a scalar out (lie groups: their own kinds)."""
    if G.backend == "lie":
        return lie_types(G, ["s", "v", "s"]), lie_types(G, ["v", "s"])
    s, v = G.trivial_rep(), G.standard_rep()
    return st.FieldType(G, [s, v, s]), st.FieldType(G, [v, s])


#: group, kernel size (3D and 4D groups: 3, the grid of 27 / 81 taps)
GROUPS = [
    ("toy", 5),
    ("matrix-C4", 5),
    ("escnn-C4", 5),
    ("escnn-SO(3)", 3),
    ("e3nn-O(3)", 3),
    ("lie-SO(3)", 3),
    ("lie-T2", 3),
    ("lie-SO+(1,2)", 3),
]


def _conv(G: st.Group, kernel_size: int, basis_size: int | None, envelope: str | None) -> st.GridConv:
    f_in, f_out = _fields(G)
    torch.manual_seed(0)
    conv = st.GridConv(
        f_in, f_out, kernel_size, basis_size=basis_size, envelope_width=envelope, hidden_channels=2
    ).double()
    with torch.no_grad():  # away from the initial values (equal envelope widths, zero biases)
        for p in conv.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return conv


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    assert float(b.abs().max()) > 0
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("envelope", ["auto", None])
@pytest.mark.parametrize("basis_size", [3, None])
@pytest.mark.parametrize("group_name, kernel_size", GROUPS)
def test_assembled_filter_equals_the_reference(request, group_name, kernel_size, basis_size, envelope):
    G = _group(group_name, request)
    conv = _conv(G, kernel_size, basis_size, envelope)
    assert isinstance(conv.assembly, GridFilter)
    params = [p for p in conv.parameters() if p.requires_grad]
    fast, ref = conv.filter(), conv.filter(reference=True)
    assert fast.shape == ref.shape == (conv.out_type.size, conv.in_type.size, *([kernel_size] * G.dim))
    assert fast.is_contiguous()
    assert _rel(fast, ref) <= BOUND
    cotangent = torch.randn_like(ref, generator=torch.Generator().manual_seed(1))
    g_fast = torch.autograd.grad((fast * cotangent).sum(), params, create_graph=True, allow_unused=True)
    g_ref = torch.autograd.grad((ref * cotangent).sum(), params, create_graph=True, allow_unused=True)
    for gf, gr in zip(g_fast, g_ref):
        assert (gf is None) == (gr is None)
        if gr is not None:
            assert _rel(gf, gr) <= BOUND
    # a second derivative (e.g. a gradient penalty) through both constructions
    used = [(p, gf, gr) for p, gf, gr in zip(params, g_fast, g_ref) if gr is not None]
    h_fast = torch.autograd.grad(sum((gf**2).sum() for _, gf, _ in used), [p for p, _, _ in used], allow_unused=True)
    h_ref = torch.autograd.grad(sum((gr**2).sum() for _, _, gr in used), [p for p, _, _ in used], allow_unused=True)
    for hf, hr in zip(h_fast, h_ref):
        if hr is not None and float(hr.abs().max()) > 0:
            assert _rel(hf, hr) <= BOUND


@pytest.mark.parametrize("group_name, kernel_size", [("escnn-C4", 5), ("escnn-SO(3)", 3), ("lie-T2", 3)])
def test_training_forward_is_the_convolution_with_the_reference_filter(request, group_name, kernel_size):
    """The layer in training mode: output and parameter gradients equal ``conv(x, reference filter)``."""
    G = _group(group_name, request)
    conv = _conv(G, kernel_size, 3, "auto").train()
    size = 7 if G.dim < 4 else 5
    x = torch.randn(2, conv.in_type.size, *([size] * G.dim), dtype=torch.float64)
    params = list(conv.parameters())
    y = conv(x)
    weight = conv.filter(reference=True)
    ref = st.ops.conv.conv_nd(x, weight, conv.bias.vector(), conv.stride, conv.padding, conv.dilation)
    assert _rel(y, ref) <= BOUND
    cotangent = torch.randn_like(y)
    for g, r in zip(
        torch.autograd.grad((y * cotangent).sum(), params, allow_unused=True),
        torch.autograd.grad((ref * cotangent).sum(), params, allow_unused=True),
    ):
        assert (g is None) == (r is None)
        if r is not None:
            assert _rel(g, r) <= BOUND


def test_per_sample_filters_and_the_eval_cache_keep_working(toy_group):
    """With kernel attributes the filter is made per sample (the reference path); in eval mode the
    cached filter is the assembled one and follows a parameter edit."""
    G = toy_group
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    torch.manual_seed(0)
    conv = st.GridConv(f, f, 3, padding=1, kernel_attr=1).double()
    x, attr = torch.randn(2, f.size, 5, 5, dtype=torch.float64), torch.randn(2, 1, dtype=torch.float64)
    per_sample = conv.filter(attr)
    assert per_sample.shape == (2, f.size, f.size, 3, 3)
    y = conv(x, attr)
    one = F.conv2d(x[:1], per_sample[0], conv.bias.vector(), padding=1)
    assert _rel(y[:1], one) <= BOUND
    plain = st.GridConv(f, f, 3, padding=1).double().eval()
    with torch.no_grad():
        first = plain(x)
        assert _rel(first, F.conv2d(x, plain.filter(reference=True), plain.bias.vector(), padding=1)) <= BOUND
        plain.kernel.mixing[0].mul_(2.0)
        second = plain(x)
        assert _rel(second, F.conv2d(x, plain.filter(reference=True), plain.bias.vector(), padding=1)) <= BOUND
        assert _rel(second, first) > 1e-3


def test_a_kernel_assigned_later_gets_a_correct_filter(toy_group):
    """Index maps are used only for the kernel they were built for (layout, field types, basis
    size); another kernel assigned to the layer gets the reference construction."""
    G = toy_group
    f_in, f_out = st.FieldType(G, [G.trivial_rep(), G.standard_rep()]), st.FieldType(G, [G.standard_rep()])
    torch.manual_seed(0)
    conv = st.GridConv(f_in, f_out, 3, padding=1).double()
    same = st.nn.kernel.ImplicitKernel(f_in, f_out, basis_size=8, max_radius=conv.kernel.max_radius).double()
    dense = st.nn.kernel.ImplicitKernel(f_in, f_out, basis_size=None, max_radius=conv.kernel.max_radius).double()
    other = st.FieldType(G, [G.standard_rep(), G.trivial_rep()])  # equal size, other fields
    swapped = st.nn.kernel.ImplicitKernel(other, f_out, basis_size=8, max_radius=conv.kernel.max_radius).double()
    for kernel, assembled in ((same, True), (dense, False), (swapped, False)):
        conv.kernel = kernel
        assert conv.assembly.fits(kernel, 9) is assembled
        ref = kernel(conv.grid.double()).permute(1, 2, 0).reshape(f_out.size, f_in.size, 3, 3)
        assert _rel(conv.filter(), ref) <= BOUND


def _escnn(name: str) -> st.Group:
    pytest.importorskip("escnn")
    return st.group(name, backend="escnn")


def _compare_with_reference(conv: st.GridConv, bound: float) -> None:
    """Filter values and parameter gradients (a random cotangent) equal the reference construction's."""
    params = [p for p in conv.parameters() if p.requires_grad]
    fast, ref = conv.filter(), conv.filter(reference=True)
    assert _rel(fast, ref) <= bound
    cotangent = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1)).to(ref)
    g_fast = torch.autograd.grad((fast * cotangent).sum(), params, allow_unused=True)
    g_ref = torch.autograd.grad((ref * cotangent).sum(), params, allow_unused=True)
    for gf, gr in zip(g_fast, g_ref):
        assert (gf is None) == (gr is None)
        if gr is not None:
            assert _rel(gf, gr) <= bound


#: escnn groups whose irrep-wise kernel MLP has the fixed-points evaluator (SO(2): complex irreps,
#: two basis maps per Schur block), and hidden layers
TRANSPOSED = [("SO(3)", 1, 3), ("SO(3)", 2, 3), ("O(3)", 1, 3), ("SO(2)", 1, 5), ("O(2)", 2, 5)]


@pytest.mark.parametrize("envelope", ["auto", None])
@pytest.mark.parametrize("group_name, hidden_layers, kernel_size", TRANSPOSED)
def test_the_fixed_points_evaluation_equals_the_reference(group_name, hidden_layers, kernel_size, envelope):
    """[issue 18] The escnn irrep-wise MLP at the grid's taps as a few dense products
    (``assembly.transposed``, :mod:`steerable.plugins.escnn_backend.fixed_points`), then the envelope
    rows and one mixing product: float64 values and gradients equal the reference (measured <= 1e-15;
    bound 1e-13).  Also after ``.float()`` (float32: measured ~1e-7, bound 1e-5; the constants are
    recomputed in the new dtype) and back to ``.double()`` (float64 again: the cache follows)."""
    conv = _transposed_conv(group_name, hidden_layers, kernel_size, envelope)
    # real irreps (identity Schur maps): the first layer factored; SO(2), O(2): the plain product
    assert (conv.assembly.transposed.first_rows is not None) == (group_name in ("SO(3)", "O(3)"))
    _compare_with_reference(conv, BOUND)
    # the evaluator alone: the MLP's output, transposed
    points = conv.grid.double()
    out = conv.assembly.transposed(conv.kernel.mlp, points)
    assert _rel(out, conv.kernel.mlp(points).T) <= BOUND
    conv.float()
    _compare_with_reference(conv, 1e-5)
    conv.double()
    _compare_with_reference(conv, BOUND)


def test_the_fixed_points_evaluation_applies_only_where_it_is_built_for():
    """No evaluator for kernel attributes or the dense escnn pipeline (finite groups); a kernel
    assigned later with another MLP structure gets the generic assembly (still equal to the reference)."""
    G = _escnn("SO(3)")
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    torch.manual_seed(0)
    assert st.GridConv(f, f, 3, kernel_attr=1).assembly.transposed is None
    C4 = _escnn("C4")
    assert (
        st.GridConv(st.FieldType(C4, [C4.regular_rep()]), st.FieldType(C4, [C4.regular_rep()]), 3).assembly.transposed
        is None
    )
    conv = st.GridConv(f, f, 3, hidden_channels=3).double()
    assert conv.assembly.transposed is not None
    conv.kernel = st.nn.kernel.ImplicitKernel(
        f, f, basis_size=8, max_radius=conv.kernel.max_radius, hidden_channels=2
    ).double()
    assert not conv.assembly.transposed.fits(conv.kernel.mlp)
    _compare_with_reference(conv, BOUND)


def _transposed_conv(group_name: str, hidden_layers: int, kernel_size: int, envelope: str | None) -> st.GridConv:
    """A float64 GridConv with the fixed-points evaluator, parameters moved off their initial values."""
    G = _escnn(group_name)
    f_in = st.FieldType(G, [G.trivial_rep(), G.standard_rep(), G.trivial_rep()])
    f_out = st.FieldType(G, [G.standard_rep(), G.trivial_rep(), G.standard_rep()])
    torch.manual_seed(0)
    conv = st.GridConv(
        f_in, f_out, kernel_size, basis_size=3, envelope_width=envelope, hidden_channels=3, hidden_layers=hidden_layers
    ).double()
    with torch.no_grad():
        for p in conv.parameters():
            p.add_(0.3 * torch.randn_like(p))
    assert conv.assembly.transposed is not None
    return conv


def _graph_has(t: torch.Tensor, name: str) -> bool:
    """Whether a node of type ``name`` is in the autograd graph of ``t``."""
    seen, stack = set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == name:
            return True
        stack += [n for n, _ in node.next_functions]
    return False


@pytest.mark.parametrize("frozen", [(), ("mixing",), ("mlp",), ("log_width", "mixing")])
@pytest.mark.parametrize("envelope", ["auto", None])
@pytest.mark.parametrize("group_name, hidden_layers, kernel_size", TRANSPOSED + [("O(2)", 0, 5)])
def test_the_fused_filter_equals_autograd_through_the_same_ops(
    group_name, hidden_layers, kernel_size, envelope, frozen
):
    """[issue 18] The fixed-points filter in training (``assembly.fused``: one autograd node, forward
    without autograd, hand-written backward, :class:`~steerable.nn.grid_filter._FixedTapFilter`)
    equals autograd through the same ops (``fused = False``) and the reference construction in
    float64: values and the gradient of every parameter that wants one, also with groups of
    parameters frozen (the backward skips what is not needed).  Measured <= 1.2e-15; bound 1e-13."""
    conv = _transposed_conv(group_name, hidden_layers, kernel_size, envelope)
    for name, p in conv.kernel.named_parameters():
        if name.split(".")[0] in frozen:
            p.requires_grad_(False)
    params = [p for p in conv.kernel.parameters() if p.requires_grad]
    fused = conv.filter()
    assert _graph_has(fused, "_FixedTapFilterBackward")
    conv.assembly.fused = False
    plain = conv.filter()
    assert not _graph_has(plain, "_FixedTapFilterBackward")
    ref = conv.filter(reference=True)
    assert _rel(fused, plain) <= BOUND and _rel(fused, ref) <= BOUND
    cotangent = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1), dtype=ref.dtype)
    g_fused = torch.autograd.grad((fused * cotangent).sum(), params, allow_unused=True)
    g_plain = torch.autograd.grad((plain * cotangent).sum(), params, allow_unused=True)
    g_ref = torch.autograd.grad((ref * cotangent).sum(), params, allow_unused=True)
    for gf, gp, gr in zip(g_fused, g_plain, g_ref):
        assert gr is not None and gf is not None and gp is not None
        assert _rel(gf, gr) <= BOUND and _rel(gp, gr) <= BOUND


@pytest.mark.parametrize("group_name, hidden_layers, kernel_size", [("SO(3)", 1, 3), ("O(2)", 2, 5)])
def test_the_fused_filter_passes_gradcheck_and_gradgradcheck(group_name, hidden_layers, kernel_size):
    """The fused filter as a function of every tensor it reads (float64): finite differences agree
    with its hand-written backward (``gradcheck``) and with the derivative of that backward
    (``gradgradcheck``: a backward asked for a graph differentiates the autograd construction)."""
    from steerable.nn.grid_filter import _FixedTapFilter

    conv = _transposed_conv(group_name, hidden_layers, kernel_size, "auto")
    assembly, kernel, points = conv.assembly, conv.kernel, conv.grid.double()
    tensors = [t.detach().clone().requires_grad_() for t in assembly._tensors(kernel)]

    def fn(*ts: torch.Tensor) -> torch.Tensor:
        return _FixedTapFilter.apply(assembly, kernel, points, *ts)

    assert torch.autograd.gradcheck(fn, tensors)
    assert torch.autograd.gradgradcheck(fn, tensors)


def test_the_fused_filter_refuses_a_parameter_changed_before_backward():
    """The backward reads its tape: a parameter edited in place between forward and backward makes
    autograd's usual error (as the unfused graph does), not a gradient of stale values."""
    conv = _transposed_conv("SO(3)", 1, 3, "auto")
    out = conv.filter()
    with torch.no_grad():
        conv.kernel.mixing[0].mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


class _FilterOf(torch.nn.Module):
    """``conv.filter()`` as a module's forward (for ``torch.func.functional_call``)."""

    def __init__(self, conv: st.GridConv) -> None:
        super().__init__()
        self.conv = conv

    def forward(self) -> torch.Tensor:
        return self.conv.filter()


def test_the_fixed_points_filter_under_torch_func_and_in_a_gradient_penalty():
    """Under a ``torch.func`` transform the filter takes autograd's ops (no custom Function there):
    ``torch.func.grad`` of the filter through ``functional_call`` equals the fused path's gradients.
    A second derivative through the fused path (``create_graph=True``) equals the unfused one."""
    conv = _transposed_conv("SO(3)", 1, 3, "auto")
    params = dict(conv.kernel.named_parameters())
    names = list(params)
    cotangent = torch.randn(conv.filter().shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def filter_loss(p: dict[str, torch.Tensor]) -> torch.Tensor:
        # the filter with the kernel's parameters replaced by p
        replaced = {f"conv.kernel.{k}": v for k, v in p.items()}
        return (torch.func.functional_call(_FilterOf(conv), replaced, ()) * cotangent).sum()

    got = torch.func.grad(filter_loss)({k: v.detach() for k, v in params.items()})
    want = torch.autograd.grad((conv.filter() * cotangent).sum(), [params[n] for n in names])
    for n, w in zip(names, want):
        assert _rel(got[n], w) <= BOUND
    penalties = []
    for fused in (True, False):
        conv.assembly.fused = fused
        g = torch.autograd.grad((conv.filter() * cotangent).sum(), list(params.values()), create_graph=True)
        penalties.append(torch.autograd.grad(sum((gi**2).sum() for gi in g), list(params.values()), allow_unused=True))
    for a, b in zip(*penalties):
        assert (a is None) == (b is None)
        if b is not None and float(b.abs().max()) > 0:
            assert _rel(a, b) <= BOUND


def test_the_fixed_points_filter_under_autocast_takes_autograd():
    """Under CPU autocast (bfloat16 products) the filter is autograd's (no fused node): its forward
    and parameter gradients are those of the unfused construction under the same autocast."""
    conv = _transposed_conv("SO(3)", 1, 3, "auto").float()
    params = list(conv.kernel.parameters())
    results = []
    for fused in (True, False):
        conv.assembly.fused = fused
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv.filter()
        assert not _graph_has(out, "_FixedTapFilterBackward")
        results.append((out, torch.autograd.grad(out.float().sum(), params)))
    (a, ga), (b, gb) = results
    assert torch.equal(a, b)
    for x, y in zip(ga, gb):
        assert torch.equal(x, y)
