"""The escnn backend's private basis modules (:mod:`steerable.plugins.escnn_backend.linear`): each block
expansion as one matrix product equals escnn's ``einsum`` (float64, relative difference measured
<= 2e-16, bound 1e-14), and walking a model's modules (``zero_grad``, ``parameters``) compares no
escnn bases: every private module is listed once, by identity, and ``torch.allclose`` is never called.
"""

from __future__ import annotations

import pytest
import torch

import steerable as st

pytest.importorskip("escnn")
from escnn.nn.modules.basismanager.basisexpansion_singleblock import SingleBlockBasisExpansion

from steerable.plugins.escnn_backend.linear import PlainLinear


def _kernel(name: str, dense: bool) -> st.nn.kernel.ImplicitKernel:
    G = st.group(name, backend="escnn")
    s, v = G.trivial_rep(), G.standard_rep()
    f = st.FieldType(G, [s, v, s])
    torch.manual_seed(0)
    return st.nn.kernel.ImplicitKernel(f, f, basis_size=None if dense else 2, max_radius=1.0, hidden_channels=2)


def _block_expansions(module: torch.nn.Module) -> list[torch.nn.Module]:
    """Every module of the tree reached through ``_modules`` (no hashing), block expansions only."""
    found, stack = [], [module]
    while stack:
        m = stack.pop()
        if isinstance(m, SingleBlockBasisExpansion):
            found.append(m)
        stack.extend(c for c in m._modules.values() if c is not None)
    return found


@pytest.mark.parametrize("name, dense", [("SO(3)", False), ("C4", False), ("C4", True), ("O(2)", False)])
def test_block_expansion_as_one_product_equals_escnn(name, dense):
    kernel = _kernel(name, dense).double()
    blocks = _block_expansions(kernel)
    assert blocks
    gen = torch.Generator().manual_seed(1)
    for block in blocks:
        w = torch.randn(3, block.dimension(), dtype=torch.float64, generator=gen)
        ours, escnn = block(w), SingleBlockBasisExpansion.forward(block, w)
        assert ours.shape == escnn.shape
        assert float((ours - escnn).abs().max()) <= 1e-14 * float(escnn.abs().max())
    for linear in (m for m in kernel.modules() if isinstance(m, PlainLinear)):
        linear.weights.grad = None
        matrix, _ = linear.expand_parameters()
        (matrix * torch.randn_like(matrix)).sum().backward()  # the product's backward reaches the weights
        assert linear.weights.grad is not None and float(linear.weights.grad.abs().max()) > 0


def test_walking_modules_compares_no_bases(monkeypatch):
    kernel = _kernel("SO(3)", False)
    calls = []
    real = torch.allclose
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: calls.append(1) or real(*a, **k))
    listed = [m for m in kernel.modules() if isinstance(m, SingleBlockBasisExpansion)]
    kernel.zero_grad()
    assert calls == []
    blocks = _block_expansions(kernel)
    assert len(blocks) > len({id(b.basis) for b in blocks})  # equal bases in several layers
    assert sorted(map(id, listed)) == sorted(map(id, blocks))
