"""steerable.ops.message.message_sum: values, gradients, higher derivatives, block splitting."""

from __future__ import annotations

import pytest
import torch

from steerable.ops import message
from steerable.ops.message import message_sum


def _reference(phi, x, src, dst, n_dst):
    products = torch.einsum("epb,eib->epi", phi, x[src])
    return torch.zeros(n_dst, *products.shape[1:], dtype=phi.dtype).index_add(0, dst, products)


@pytest.mark.parametrize("b", [1, 3])  # scalar inputs take the outer-product path
@pytest.mark.parametrize("block_values", [message.BLOCK_VALUES, 7])  # one block; many (7 values: 1 edge each)
def test_message_sum_matches_reference_with_gradients(monkeypatch, b, block_values):
    monkeypatch.setattr(message, "BLOCK_VALUES", block_values)
    g = torch.Generator().manual_seed(0)
    n, n_dst, E, P, i = 6, 4, 15, 5, 2
    phi = torch.randn(E, P, b, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(n, i, b, generator=g, dtype=torch.float64, requires_grad=True)
    src, dst = torch.randint(0, n, (E,), generator=g), torch.randint(0, n_dst, (E,), generator=g)
    torch.testing.assert_close(message_sum(phi, x, src, dst, n_dst), _reference(phi, x, src, dst, n_dst))
    fn = lambda p, f: message_sum(p, f, src, dst, n_dst)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (phi, x))
    assert torch.autograd.gradgradcheck(fn, (phi, x))


def test_message_sum_gradient_of_one_input_only_and_no_edges():
    g = torch.Generator().manual_seed(1)
    phi = torch.randn(5, 3, 2, generator=g, requires_grad=True)
    x = torch.randn(4, 2, 2, generator=g)  # no gradient wanted: phi's gradient needs x, not phi
    src, dst = torch.tensor([0, 1, 2, 3, 0]), torch.tensor([1, 1, 0, 2, 2])
    (grad,) = torch.autograd.grad(message_sum(phi, x, src, dst, 3).sum(), phi)
    torch.testing.assert_close(grad, torch.autograd.grad(_reference(phi, x, src, dst, 3).sum(), phi)[0])
    empty = torch.zeros(0, dtype=torch.long)
    phi0 = torch.randn(0, 3, 2, requires_grad=True)
    out = message_sum(phi0, x.requires_grad_(), empty, empty, 3)
    assert out.shape == (3, 3, 2) and not out.any()
    g_phi, g_x = torch.autograd.grad(out.sum(), [phi0, x])
    assert g_phi.shape == (0, 3, 2) and not g_x.any()


def test_message_sum_names_bad_shapes():
    with pytest.raises(ValueError, match="phi .E, P, b. and x .N, i, b."):
        message_sum(
            torch.zeros(3, 2, 2),
            torch.zeros(4, 1, 3),
            torch.zeros(3, dtype=torch.long),
            torch.zeros(3, dtype=torch.long),
            2,
        )
    with pytest.raises(ValueError, match="src and dst must have shape"):
        message_sum(
            torch.zeros(3, 2, 2),
            torch.zeros(4, 1, 2),
            torch.zeros(2, dtype=torch.long),
            torch.zeros(3, dtype=torch.long),
            2,
        )
