"""GridConv values: the eval-mode filter cache and the padding modes, on ToyC4 (tests/toy).

The layer is checked against ``torch.nn.functional`` built from the layer's own filter (``filter()``,
computed afresh, never cached): ``F.pad`` with the mode, then ``conv2d`` with no padding.  Float64,
round-off only: tolerance ``1e-12`` (measured ~1e-16).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _groups import make_fields, make_group

import steerable as st
from steerable.testing import relative_error

TOL = dict(rtol=1e-12, atol=1e-12)


@pytest.fixture
def fields(toy_group):
    G = toy_group
    f_in = st.FieldType(G, [G.trivial_rep(), G.standard_rep(), G.sign])
    f_out = st.FieldType(G, [G.standard_rep(), G.trivial_rep(), G.trivial_rep()])
    return G, f_in, f_out


def _fresh(conv: st.GridConv, img: torch.Tensor) -> torch.Tensor:
    """The layer's output with a filter computed now (zero padding, as the cache tests use)."""
    return F.conv2d(img, conv.filter(), conv.bias.vector(), padding=conv.padding)


def _mlp_weight(conv: st.GridConv) -> torch.nn.Parameter:
    return next(p for p in conv.kernel.mlp.parameters() if p.ndim == 2)


EDITS = {
    # each changes only the filter's parameters (not the bias, which is applied outside the cache)
    "no_grad add_": lambda conv: torch.no_grad()(lambda: _mlp_weight(conv).add_(0.5))(),
    "data mul_": lambda conv: _mlp_weight(conv).data.mul_(2.0),
    "data copy_": lambda conv: _mlp_weight(conv).data.copy_(torch.randn_like(_mlp_weight(conv))),
    "mixing": lambda conv: conv.kernel.mixing[0].data.mul_(-1.0),
    "envelope": lambda conv: conv.kernel.log_width.data.add_(0.3),
    "load_state_dict": lambda conv: conv.load_state_dict(
        {k: v * 1.5 if k.startswith("kernel.mlp") else v for k, v in conv.state_dict().items()}
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_eval_cache_follows_in_place_parameter_updates(fields, edit):
    _, f_in, f_out = fields
    torch.manual_seed(0)
    conv = st.GridConv(f_in, f_out, 3, padding=1).double().eval()
    img = torch.randn(2, f_in.size, 7, 7, dtype=torch.float64)
    calls = {"n": 0}
    conv.kernel.mlp.register_forward_hook(lambda *a: calls.__setitem__("n", calls["n"] + 1))
    with torch.no_grad():
        first = conv(img)
        torch.testing.assert_close(first, _fresh(conv, img), **TOL)
        calls["n"] = 0
        assert conv(img).equal(first) and calls["n"] == 0  # the cached filter is used
        EDITS[edit](conv)
        after = conv(img)
        assert (after - first).abs().max() > 1e-3  # the edit shows ...
        torch.testing.assert_close(after, _fresh(conv, img), **TOL)  # ... as the fresh filter's output
        calls["n"] = 0
        assert conv(img).equal(after) and calls["n"] == 0  # and is cached again


def test_eval_cache_after_dtype_move(fields):
    _, f_in, f_out = fields
    conv = st.GridConv(f_in, f_out, 3, padding=1).eval()
    img = torch.randn(1, f_in.size, 6, 6)
    with torch.no_grad():
        conv(img)
        conv.double()
        torch.testing.assert_close(conv(img.double()), _fresh(conv, img.double()), **TOL)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("training", [True, False])
def test_padding_modes_match_pad_then_conv(fields, mode, training):
    """Padding (2, 1) (different per axis, so swapped axes show), stride (2, 1), every mode."""
    _, f_in, f_out = fields
    torch.manual_seed(1)
    conv = st.GridConv(f_in, f_out, 3, padding=(2, 1), stride=(2, 1), padding_mode=mode).double().train(training)
    with torch.no_grad():
        conv.bias.bias.normal_()
    img = torch.randn(2, f_in.size, 7, 6, dtype=torch.float64)
    # F.pad lists the last axis first: (y before, y after, x before, x after)
    padded = F.pad(img, (1, 1, 2, 2), mode="constant" if mode == "zeros" else mode)
    expected = F.conv2d(padded, conv.filter().detach(), conv.bias.vector().detach(), stride=(2, 1))
    with torch.set_grad_enabled(training):
        y = conv(img)
    assert y.shape == expected.shape == (2, f_out.size, 5, 6)
    torch.testing.assert_close(y, expected, **TOL)


def _replace_mlp_weight(conv: st.GridConv) -> None:
    """``module.weight = torch.nn.Parameter(...)`` on a matrix parameter of the kernel MLP."""
    name = next(n for n, p in conv.kernel.mlp.named_parameters() if p.ndim == 2)
    path, _, attr = name.rpartition(".")
    module = conv.kernel.mlp.get_submodule(path) if path else conv.kernel.mlp
    setattr(module, attr, torch.nn.Parameter(getattr(module, attr).detach() * -2.0))


REPLACEMENTS = {
    # each replaces tensors the filter depends on (a cache watching the old ones would go stale)
    "load_state_dict assign": lambda conv: conv.load_state_dict(
        {k: v * 1.5 if k.startswith("kernel.") and v.is_floating_point() else v for k, v in conv.state_dict().items()},
        assign=True,
    ),
    "parameter replaced": _replace_mlp_weight,
    "p.data assigned": lambda conv: setattr(_mlp_weight(conv), "data", _mlp_weight(conv).data * 3.0),
    "gain assigned": lambda conv: conv.kernel.register_buffer("gain", conv.kernel.gain * 2.0),
}


@pytest.mark.parametrize("edit", list(REPLACEMENTS))
@pytest.mark.parametrize("group_name", ["toy", "matrix-C4", "escnn-C4"])
def test_eval_cache_follows_replaced_tensors(request, group_name, edit):
    G = make_group(group_name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    conv = st.GridConv(f_in, f_out, 3, padding=1).double().eval()
    img = torch.randn(2, f_in.size, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        first = conv(img)
        assert conv(img).equal(first)  # cached
        REPLACEMENTS[edit](conv)
        after = conv(img)
        assert (after - first).abs().max() > 1e-3
        torch.testing.assert_close(after, _fresh(conv, img), **TOL)
        # later in-place edits of the new tensors are followed too
        _mlp_weight(conv).data.mul_(0.5)
        torch.testing.assert_close(conv(img), _fresh(conv, img), **TOL)


@pytest.mark.parametrize("group_name", ["matrix-C4", "escnn-C4"])
def test_eval_cache_follows_dtype_moves(request, group_name):
    G = make_group(group_name, request)
    f_in, f_out = make_fields(G)
    conv = st.GridConv(f_in, f_out, 3, padding=1).eval()
    img = torch.randn(1, f_in.size, 6, 6)
    with torch.no_grad():
        assert conv(img).dtype == torch.float32
        conv.to(torch.float64)
        out = conv(img.double())
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, _fresh(conv, img.double()), **TOL)
        conv.float()
        torch.testing.assert_close(conv(img), _fresh(conv, img), rtol=1e-5, atol=1e-6)


def _quarter_turn(G, f: torch.Tensor, field_type: st.FieldType) -> torch.Tensor:
    """``(g.f)[i, j] = rho(g) f[j, n-1-i]``: g = +90° about the grid centre, axis k = coordinate k
    (``g^-1 (x, y) = (y, -x)``), built here from the convention, not from the library."""
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    return field_type.transform(f.flip(-1).transpose(-2, -1), G.elements_from_matrices(rot[None]), dim=1)


STRIDED = [  # (kernel_size, padding, dilation, stride): the accepted sizes differ in parity
    (3, 1, 1, 2),
    (3, 0, 1, 2),
    (4, 1, 1, 2),
    (3, 1, 2, 2),
    (3, 1, 1, 3),
]


@pytest.mark.parametrize("kernel_size, padding, dilation, stride", STRIDED)
@pytest.mark.parametrize("group_name", ["matrix-C4", "escnn-C4"])
def test_stride_is_equivariant_where_accepted_and_refused_elsewhere(
    request, group_name, kernel_size, padding, dilation, stride
):
    """Sizes with ``(n + 2p - d(k-1) - 1) % s == 0`` commute with a quarter turn (float64,
    measured ~1e-16, bound 1e-12); the others are refused, and the strided output they would
    give (the stride-1 output subsampled) is far from equivariant (measured 1.2 to 1.8, bound 0.5)."""
    G = make_group(group_name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    kw = dict(padding=padding, dilation=dilation)
    conv = st.GridConv(f_in, f_out, kernel_size, stride=stride, **kw).double()
    dense = st.GridConv(f_in, f_out, kernel_size, **kw).double()
    dense.load_state_dict(conv.state_dict())
    seen = set()
    for n in range(8, 8 + 2 * stride):
        img = torch.randn(2, f_in.size, n, n, dtype=torch.float64)
        accepted = (n + 2 * padding - dilation * (kernel_size - 1) - 1) % stride == 0
        seen.add(accepted)
        with torch.no_grad():
            if accepted:
                out, out_turned = conv(img), conv(_quarter_turn(G, img, f_in))
                assert relative_error(out_turned, _quarter_turn(G, out, f_out)) < 1e-12
                torch.testing.assert_close(out, dense(img)[:, :, ::stride, ::stride], **TOL)
            else:
                with pytest.raises(ValueError, match=f"stride {stride} on spatial size {n} .* breaks equivariance"):
                    conv(img)

                def would_be(x):
                    return dense(x)[:, :, ::stride, ::stride]

                err = relative_error(would_be(_quarter_turn(G, img, f_in)), _quarter_turn(G, would_be(img), f_out))
                assert err > 0.5
    assert seen == {True, False}


class _OddGridsOnly(torch.nn.Module):
    """Equivariant on odd grid sizes only: on even ones it shifts the signal by a pixel (as a layer
    whose output samples are off-centre would)."""

    stride = (1, 1)  # declared like a convolution's, so check_equivariance tries grid_size and grid_size + 1

    def __init__(self, field: st.FieldType) -> None:
        super().__init__()
        self.in_type = self.out_type = field

    def forward(self, x: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        return x if x.shape[-1] % 2 else torch.roll(x, 1, dims=-1)


def test_check_equivariance_tries_even_and_odd_grid_sizes():
    """check_equivariance on a grid layer tries every size from grid_size to grid_size + stride: a layer
    that breaks the symmetry on even grids only is caught from an odd default grid_size (9)."""
    G = st.group("C4", backend="matrix")
    field = st.FieldType(G, [G.trivial_rep()])
    assert st.check_equivariance(_OddGridsOnly(field), kind="grid", grid_size=9) > 0.1
    conv = st.GridConv(field, field, 3, stride=2, padding=1)  # accepts odd sizes only: 9 of [9, 11]
    assert st.check_equivariance(conv, grid_size=9) < 1e-13


def test_eval_filter_is_not_cached_off_the_cpu():
    """On the meta device (shapes, no values) an eval-mode GridConv runs and caches nothing: off the
    CPU the cache's value comparison would cost one host synchronisation per layer per call."""
    G = st.group("C4", backend="matrix")
    f = st.FieldType(G, [G.trivial_rep(), G.regular_rep()])
    conv = st.GridConv(f, f, kernel_size=3, padding=1).eval().to("meta")
    with torch.no_grad():
        out = conv(torch.randn(2, f.size, 8, 8, device="meta"))
    assert out.device.type == "meta" and out.shape == (2, f.size, 8, 8)
    assert conv._cache is None
