"""The automatic chunk: the values autograd keeps per edge, as steerable.nn.point_conv measures them."""

from __future__ import annotations

import pytest
import torch

import steerable as st
from steerable.nn import point_conv
from steerable.nn.point_conv import auto_chunk_size, saved_values_per_edge


def _saved_storages(kernel, fused: bool, n: int) -> int:
    """Values in the distinct storages saved by one call on ``n`` edges, counted here independently."""
    pos, attr = kernel.probe_inputs(n, torch.Generator().manual_seed(5))
    x = torch.randn(n, kernel.in_type.size).requires_grad_()
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes() // t.element_size()
        return t

    index = torch.arange(n)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if fused:
            kernel.message_and_aggregate(pos, attr, x, index, index, n)
        else:
            kernel.message(pos, attr, x)
    return sum(seen.values())


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("basis_size", [None, 4])
def test_saved_values_per_edge_is_the_growth_of_the_saved_set(fused, basis_size):
    """Per edge, the count predicts what one call on many more edges keeps (to 1 %), every layout of
    saved tensor included: the mixing's ``(E out_rep, M n_in)`` operands as much as ``(E, ...)``."""
    G = st.group("O(2)", backend="lie")
    s, v = G.trivial_rep(), G.standard_rep()
    f_in, f_out = st.FieldType(G, [s, v, v, s]), st.FieldType(G, [v, s, v])
    kernel = st.ImplicitKernel(f_in, f_out, 1, basis_size=basis_size, max_radius=1.0)
    per_edge = saved_values_per_edge(kernel, fused)
    fixed = _saved_storages(kernel, fused, 32) - 32 * per_edge
    assert per_edge > 0 and fixed >= 0
    predicted, kept = fixed + 640 * per_edge, _saved_storages(kernel, fused, 640)
    assert abs(predicted - kept) <= 0.01 * kept, (predicted, kept)


def test_auto_chunk_size_spends_the_budget(monkeypatch):
    G = st.group("O(2)", backend="lie")
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()] * 2)
    kernel = st.ImplicitKernel(f, f, basis_size=4, max_radius=1.0)
    monkeypatch.setattr(point_conv, "_AUTO_CHUNK_VALUES", 1 << 20)
    for fused in (True, False):
        chunk = auto_chunk_size(kernel, fused)
        assert chunk == max(256, int((1 << 20) // saved_values_per_edge(kernel, fused)))
        # one chunk's saved values (less the fixed part) stay within the budget
        grown = _saved_storages(kernel, fused, chunk) - _saved_storages(kernel, fused, 32)
        assert grown <= (1 << 20) * 1.01
