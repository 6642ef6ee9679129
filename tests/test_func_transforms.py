"""Layers under ``torch.func`` transforms (``grad``, ``vmap`` and per-sample gradients): they take
torch's own operators there (``steerable.ops.transforms_active``) and give what eager autograd
gives, float64, on every backend (bound 1e-10: measured ~1e-15, a difference of summation order)."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, grad, vmap

import steerable as st
from steerable.ops import compiling_or_transformed, transforms_active
from tests._groups import GROUPS, PLANAR, make_fields, make_group

TOL = 1e-10


def _point_case(name: str, request: pytest.FixtureRequest, chunk_size: int | None):
    G = make_group(name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    conv = st.PointConv(f_in, f_out, max_radius=1.5, chunk_size=chunk_size).double()
    g = torch.Generator().manual_seed(1)
    n = 12
    pos = torch.randn(n, G.dim, generator=g, dtype=torch.float64) * 0.6
    x = torch.randn(n, f_in.size, generator=g, dtype=torch.float64)
    edge_index = torch.randint(0, n, (2, 5 * n), generator=g)
    weight = torch.randn(n, f_out.size, generator=g, dtype=torch.float64)
    return conv, x, pos, edge_index, weight


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in module.named_parameters()}


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and float((a - b).abs().max()) <= TOL * max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("chunk_size", [None, 16])
@pytest.mark.parametrize("name", [*GROUPS, "escnn-SO(3)"])
def test_point_conv_grad_equals_autograd(request, name, chunk_size, training):
    """``torch.func.grad`` with respect to parameters, features and positions (forces) equals
    ``backward()``, in one chunk and in several (``chunk_size=16`` of 60 edges)."""
    conv, x, pos, edge_index, weight = _point_case(name, request, chunk_size)
    conv.train(training)

    def loss(params, x, pos):
        return (functional_call(conv, params, (x, pos, edge_index)) * weight).sum()

    got_params, got_x, got_pos = grad(loss, argnums=(0, 1, 2))(_params(conv), x, pos)
    x_ref, pos_ref = x.clone().requires_grad_(), pos.clone().requires_grad_()
    (conv(x_ref, pos_ref, edge_index) * weight).sum().backward()
    assert _close(got_x, x_ref.grad) and _close(got_pos, pos_ref.grad)
    for key, param in conv.named_parameters():
        assert _close(got_params[key], param.grad), key


@pytest.mark.parametrize("name", [*GROUPS, "escnn-SO(3)"])
def test_point_conv_vmap_and_per_sample_gradients(request, name):
    """``vmap`` over a batch of feature sets equals a loop of calls (inference and training), and
    ``vmap(grad)`` gives each set's parameter gradients (per-sample gradients)."""
    conv, x, pos, edge_index, weight = _point_case(name, request, None)
    batch = torch.stack([x, 2 * x.flip(0), -x])
    params = _params(conv)
    for training in (False, True):
        conv.train(training)
        got = vmap(lambda xs: functional_call(conv, params, (xs, pos, edge_index)))(batch)
        with torch.no_grad():
            want = torch.stack([conv(xs, pos, edge_index) for xs in batch])
        assert _close(got, want)

    def loss(params, xs):
        return (functional_call(conv, params, (xs, pos, edge_index)) * weight).sum()

    per_sample = vmap(grad(loss), in_dims=(None, 0))(params, batch)
    for b, xs in enumerate(batch):
        conv.zero_grad(set_to_none=True)
        loss(dict(conv.named_parameters()), xs).backward()
        for key, param in conv.named_parameters():
            assert _close(per_sample[key][b], param.grad), (key, b)


@pytest.mark.parametrize("name", PLANAR)
def test_grid_conv_grad_and_vmap(request, name):
    """GridConv: ``grad`` equals ``backward()`` and ``vmap`` equals a loop (the eval filter cache is
    not used under a transform)."""
    G = make_group(name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    conv = st.GridConv(f_in, f_out, kernel_size=3, padding=1, hidden_channels=4, hidden_layers=1).double().eval()
    g = torch.Generator().manual_seed(2)
    img = torch.randn(2, f_in.size, 6, 6, generator=g, dtype=torch.float64)
    weight = torch.randn(2, f_out.size, 6, 6, generator=g, dtype=torch.float64)
    params = _params(conv)

    got = grad(lambda p: (functional_call(conv, p, (img,)) * weight).sum())(params)
    (conv(img) * weight).sum().backward()
    for key, param in conv.named_parameters():
        assert _close(got[key], param.grad), key
    batched = vmap(lambda im: functional_call(conv, params, (im[None],))[0])(img)
    with torch.no_grad():
        assert _close(batched, conv(img))


def test_transforms_active_is_true_only_inside_a_transform():
    seen = []
    grad(lambda t: (seen.append((transforms_active(), compiling_or_transformed())), t.sum())[1])(torch.ones(2))
    vmap(lambda t: (seen.append((transforms_active(), compiling_or_transformed())), t)[1])(torch.ones(2, 2))
    assert seen == [(True, True), (True, True)]
    assert not transforms_active() and not compiling_or_transformed()
