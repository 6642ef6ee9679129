"""Row and column permutations (``steerable.ops.permute``) equal plain indexing, and their gather
backward is the true gradient (float64 gradcheck and gradgradcheck)."""

from __future__ import annotations

import pytest
import torch

from steerable.ops import permute_columns, permute_rows


@pytest.mark.parametrize("scale", [1.0, 0.5, torch.tensor(2.5, dtype=torch.float64)])
@pytest.mark.parametrize("axis", [0, 1])
def test_permutation_equals_indexing_and_its_gradient(axis, scale):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, dtype=torch.float64, generator=g, requires_grad=True)
    perm = torch.randperm(x.shape[axis], generator=g)
    inv = torch.argsort(perm)
    permute = permute_rows if axis == 0 else permute_columns
    expected = (x[perm] if axis == 0 else x[:, perm]) * scale
    torch.testing.assert_close(permute(x, perm, inv, scale), expected, rtol=0, atol=0)
    assert torch.autograd.gradcheck(lambda t: permute(t, perm, inv, scale), (x,))
    assert torch.autograd.gradgradcheck(lambda t: permute(t, perm, inv, scale), (x,))


@pytest.mark.parametrize("axis", [0, 1])
def test_permutation_under_torch_func_grad_and_vmap(axis):
    """torch.func transforms (grad, vmap over a leading batch) give what plain indexing gives."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, 6, dtype=torch.float64, generator=g)
    w = torch.randn(5, 6, dtype=torch.float64, generator=g)
    perm = torch.randperm(x.shape[1 + axis], generator=g)
    inv = torch.argsort(perm)
    permute = permute_rows if axis == 0 else permute_columns

    def loss(t: torch.Tensor, fn) -> torch.Tensor:
        return (fn(t) * w).sin().sum()

    ours = torch.func.vmap(torch.func.grad(lambda t: loss(t, lambda u: permute(u, perm, inv, 0.5))))(x)
    ref = torch.func.vmap(torch.func.grad(lambda t: loss(t, lambda u: (u[perm] if axis == 0 else u[:, perm]) * 0.5)))(x)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-15)
