"""``outer_matmul`` (``steerable.ops.outer``) equals the outer product times the matrix, in blocks of
rows or whole, with the true gradients (float64 gradcheck and gradgradcheck), under ``torch.func``,
and with inputs checked up front."""

from __future__ import annotations

import pytest
import torch

import steerable.ops.outer as outer_module
from steerable.ops import outer_matmul


def _reference(x1: torch.Tensor, x2: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Row ``(j, i)`` of the outer product is ``x2[:, j] x1[:, i]``, written out with einsum."""
    e = x1.shape[0]
    return torch.einsum("ej,ei->eji", x2, x1).reshape(e, -1) @ matrix


def _inputs(rows: int, d1: int, d2: int, d_out: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(rows, d1, dtype=torch.float64, generator=g),
        torch.randn(rows, d2, dtype=torch.float64, generator=g),
        torch.randn(d2 * d1, d_out, dtype=torch.float64, generator=g),
    )


@pytest.fixture
def small_blocks(monkeypatch):
    """A block budget of 64 values: the inputs below take several blocks, one ending short."""
    monkeypatch.setattr(outer_module, "BLOCK_VALUES", 64)


WANTED = [(True, True, True), (True, False, True), (False, True, False), (True, False, False)]


@pytest.mark.parametrize("wanted", WANTED)
@pytest.mark.parametrize("shape", [(11, 5, 3, 4), (9, 2, 9, 3)])  # d2 = 3: a sum; d2 = 9 with d1 = 2: a sum too
def test_blocks_equal_the_whole_product(small_blocks, shape, wanted):
    x1, x2, matrix = _inputs(*shape)
    for t, w in zip((x1, x2, matrix), wanted, strict=True):
        t.requires_grad_(w)
    got = outer_matmul(x1, x2, matrix)
    assert got.grad_fn is not None and "OuterMatmul" in type(got.grad_fn).__name__  # the blockwise path ran
    torch.testing.assert_close(got, _reference(x1, x2, matrix), rtol=0, atol=1e-12)
    inputs = tuple(t for t in (x1, x2, matrix) if t.requires_grad)

    def fn(*args):
        it = iter(args)
        return outer_matmul(*(next(it) if t.requires_grad else t for t in (x1, x2, matrix)))

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_batched_rows_times_matches_the_sum(small_blocks, monkeypatch):
    """Both ways of ``x2^T G`` per row (batched product, broadcast sum) give the same gradient."""
    x1, x2, matrix = _inputs(13, 6, 4, 5, seed=1)
    x1.requires_grad_()
    grads = []
    for bmm_min in ((1, 1), (100, 100)):
        monkeypatch.setattr(outer_module, "_BMM_MIN", bmm_min)
        (outer_matmul(x1, x2, matrix) * torch.arange(5.0, dtype=torch.float64)).sum().backward()
        grads.append(x1.grad.clone())
        x1.grad = None
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)


def test_without_gradients_and_in_one_block(small_blocks):
    x1, x2, matrix = _inputs(10, 4, 3, 2)
    with torch.no_grad():
        torch.testing.assert_close(outer_matmul(x1, x2, matrix), _reference(x1, x2, matrix), rtol=0, atol=1e-12)
    small = _inputs(2, 4, 3, 2)  # 24 values: one block, torch's own operators
    got = outer_matmul(*(t.requires_grad_() for t in small))
    assert "OuterMatmul" not in type(got.grad_fn).__name__
    torch.testing.assert_close(got, _reference(*small), rtol=0, atol=1e-12)


def test_empty_rows(small_blocks):
    x1, x2, matrix = _inputs(0, 4, 3, 2)
    x1.requires_grad_()
    matrix.requires_grad_()
    out = outer_matmul(x1, x2, matrix)
    assert out.shape == (0, 2)
    out.sum().backward()
    assert x1.grad.shape == (0, 4) and torch.equal(matrix.grad, torch.zeros_like(matrix))


def test_under_torch_func(small_blocks):
    """``torch.func.grad`` and ``vmap`` (the plain-operator path) give the blockwise path's gradient."""
    x1, x2, matrix = _inputs(12, 5, 3, 4, seed=2)

    def loss(a: torch.Tensor) -> torch.Tensor:
        return outer_matmul(a, x2, matrix).sin().sum()

    x = x1.clone().requires_grad_()
    loss(x).backward()
    torch.testing.assert_close(torch.func.grad(loss)(x1), x.grad, rtol=0, atol=1e-12)
    batch = torch.stack([x1, 2 * x1])
    torch.testing.assert_close(torch.func.vmap(torch.func.grad(loss))(batch)[0], x.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("x1", "x2", "matrix", "match"),
    [
        ((4, 3), (5, 2), (6, 1), "x1 \\(E, d1\\) and x2 \\(E, d2\\)"),
        ((4, 3, 1), (4, 2), (6, 1), "x1 \\(E, d1\\) and x2 \\(E, d2\\)"),
        ((4, 3), (4, 2), (5, 1), "matrix \\(2 \\* 3, d_out\\)"),
        ((4, 3), (4, 2), (6,), "matrix \\(2 \\* 3, d_out\\)"),
    ],
)
def test_bad_shapes_are_named(x1, x2, matrix, match):
    with pytest.raises(ValueError, match=match):
        outer_matmul(torch.zeros(x1), torch.zeros(x2), torch.zeros(matrix))
