"""steerable.ops.mixed.mixed_message: both orders against the formula, gradients, edge cases; the kernel's use."""

from __future__ import annotations

import pytest
import torch

import steerable as st
from steerable.nn.kernel import _shared
from steerable.ops import mixed
from steerable.ops.mixed import cheaper_order, mixed_message

ORDERS = ["responses", "weights"]


def _inputs(E, M, ro, ri, n_out, n_in, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(E, M, ro, ri, generator=g, dtype=torch.float64, requires_grad=True)
    features = torch.randn(E, n_in, ri, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(n_out, M, n_in, generator=g, dtype=torch.float64, requires_grad=True)
    return basis, features, weight


def _formula(basis, features, weight):
    return torch.einsum("omi,emab,eib->eao", weight, basis, features)


@pytest.mark.parametrize("order", ORDERS + [None])
@pytest.mark.parametrize("shape", [(3, 1, 2, 4), (1, 3, 4, 2), (3, 3, 2, 2), (5, 3, 1, 3), (1, 1, 3, 2)])
def test_orders_equal_the_formula_with_gradients(order, shape):
    ro, ri, n_out, n_in = shape
    basis, features, weight = _inputs(6, 3, ro, ri, n_out, n_in)
    got = mixed_message(basis, features, weight, order)
    assert got.shape == (6, ro, n_out)
    torch.testing.assert_close(got, _formula(basis, features, weight), rtol=1e-12, atol=1e-12)
    fn = lambda b, f, w: mixed_message(b, f, w, order)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (basis, features, weight))
    assert torch.autograd.gradgradcheck(fn, (basis, features, weight))


@pytest.mark.parametrize("order", ORDERS)
def test_strided_basis_no_rows_and_torch_func(order):
    basis, features, weight = _inputs(5, 2, 3, 3, 2, 4)
    strided = basis.detach().transpose(2, 3)  # a non-contiguous view, as the kernel's reshapes give
    torch.testing.assert_close(
        mixed_message(strided, features, weight, order), _formula(strided, features, weight), rtol=1e-12, atol=1e-12
    )
    empty = mixed_message(basis[:0], features[:0], weight, order)
    assert empty.shape == (0, 3, 2)
    empty.sum().backward()
    assert weight.grad is not None and torch.all(weight.grad == 0)
    # torch.func traces the plain products: the Jacobian equals the formula's
    jac = torch.func.jacrev(lambda f: mixed_message(basis.detach(), f, weight.detach(), order))(features.detach())
    ref = torch.func.jacrev(lambda f: _formula(basis.detach(), f, weight.detach()))(features.detach())
    torch.testing.assert_close(jac, ref, rtol=1e-12, atol=1e-12)


def test_cheaper_order_compares_the_intermediates():
    # responses: E out_rep M n_in values; weights: E in_rep M n_out values
    assert cheaper_order(out_rep=3, in_rep=1, n_out=8, n_in=16) == "weights"
    assert cheaper_order(out_rep=1, in_rep=3, n_out=16, n_in=16) == "responses"
    assert cheaper_order(out_rep=3, in_rep=3, n_out=16, n_in=16) == "responses"  # a tie
    assert cheaper_order(out_rep=3, in_rep=3, n_out=8, n_in=16) == "weights"


def test_bad_shapes_and_order_are_named():
    basis, features, weight = _inputs(4, 2, 3, 3, 2, 5)
    with pytest.raises(ValueError, match=r"features \(4, 5, 1\).*expected features \(4, n_in, 3\)"):
        mixed_message(basis, features[..., :1], weight)
    with pytest.raises(ValueError, match=r"weight \(2, 3, 5\).*weight \(n_out, 2, n_in\)"):
        mixed_message(basis, features, torch.randn(2, 3, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"features \(3, 5, 3\)"):
        mixed_message(basis, features[:3], weight)
    with pytest.raises(ValueError, match="order must be 'responses', 'weights' or None, got 'fast'"):
        mixed_message(basis, features, weight, "fast")  # type: ignore[arg-type]


@pytest.mark.parametrize("order", ORDERS)
def test_kernel_messages_equal_in_either_order(monkeypatch, order):
    """SharedBasisKernel.message with every pair forced to one order equals the (E, out, in) kernel
    applied per edge, values and gradients (float64, O(2) fields of both sizes, so both orders meet every pair type)."""
    G = st.group("O(2)", backend="lie")
    s, v = G.trivial_rep(), G.standard_rep()
    f_in, f_out = st.FieldType(G, [s, v, v, s, v]), st.FieldType(G, [v, s, s, s, v])
    torch.manual_seed(0)
    kernel = st.ImplicitKernel(f_in, f_out, 1, basis_size=3, envelope_width=0.8, max_radius=1.0).double()
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(9, 2, generator=g, dtype=torch.float64, requires_grad=True)
    attr = torch.randn(9, 1, generator=g, dtype=torch.float64)
    x = torch.randn(9, f_in.size, generator=g, dtype=torch.float64, requires_grad=True)
    reference = torch.einsum("eoi,ei->eo", kernel(pos, attr), x)
    calls: list[str] = []

    def forced(basis, features, weight, _order=None):
        calls.append(order)
        return mixed.mixed_message(basis, features, weight, order)

    monkeypatch.setattr(_shared, "mixed_message", forced)
    got = kernel.message(pos, attr, x)
    assert len(calls) == len(kernel.pairs)
    torch.testing.assert_close(got, reference, rtol=1e-12, atol=1e-12)
    w = torch.linspace(-1, 1, got.numel(), dtype=got.dtype).view(got.shape)
    params = [pos, x, *kernel.parameters()]
    for a, b in zip(
        torch.autograd.grad((got * w).sum(), params, retain_graph=True, allow_unused=True),
        torch.autograd.grad((reference * w).sum(), params, allow_unused=True),
    ):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


# rows x inner x columns below SMALL_BMM (padded), above it (twice), and no rows
@pytest.mark.parametrize("shape", [(4, 2, 3, 5), (3, 16, 8, 4), (2, 9, 3, 16), (3, 0, 4, 2)])
def test_small_batched_products_padded_to_the_blas_path_are_exact(shape):
    E, rows, inner, columns = shape
    g = torch.Generator().manual_seed(2)
    a = torch.randn(E, rows, inner, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(E, inner, columns, generator=g, dtype=torch.float64, requires_grad=True)
    got, ref = mixed._bmm(a, b), torch.bmm(a, b)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-14)
    w = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    for x, y in zip(torch.autograd.grad((got * w).sum(), (a, b)), torch.autograd.grad((ref * w).sum(), (a, b))):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-14)
