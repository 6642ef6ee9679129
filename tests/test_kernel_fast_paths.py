"""Fast paths of the shared-basis kernel equal their reference paths, on every backend (float64).

* Pairs of representations that share an input representation are summed in one ``message_sum``
  when their bases are small (``MERGE_VALUES``); the reference sums each pair on its own
  (``MERGE_VALUES = 0``).
  In inference (no autograd) the merged bases are written into one buffer, with and without an
  envelope; the reference again sums pair by pair.
* Field types already grouped by representation skip the channel reordering; the reference is
  the same layer on an interleaved field type, its channels permuted by hand.
"""

from __future__ import annotations

import pytest
import torch

import steerable as st
import steerable.nn.kernel._shared as shared
from tests._groups import GROUPS, make_fields, make_group


def _graph(n: int, seed: int = 0) -> torch.Tensor:
    """``edge_index`` of ``5 n`` random edges on ``n`` nodes."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (2, 5 * n), generator=g)


def _step(conv: st.PointConv, x: torch.Tensor, pos: torch.Tensor, ei: torch.Tensor, w: torch.Tensor):
    conv.zero_grad(set_to_none=True)
    x, pos = x.detach().requires_grad_(), pos.detach().requires_grad_()
    y = conv(x, pos, ei)
    (y * w).sum().backward()
    return [y.detach(), x.grad, pos.grad] + [p.grad for p in conv.parameters()]


@pytest.mark.parametrize("name", [*GROUPS, "escnn-SO(3)"])
def test_merged_message_sums_equal_per_pair(monkeypatch, request, name):
    G = make_group(name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    conv = st.PointConv(f_in, f_out, max_radius=2.0).double()
    n = 12
    ei = _graph(n)
    x = torch.randn(n, f_in.size, dtype=torch.float64)
    pos = torch.randn(n, G.dim, dtype=torch.float64)
    w = torch.randn(n, f_out.size, dtype=torch.float64)
    kernel = conv.kernel
    assert any(len(m) > 1 for m in kernel._by_input.values())  # some pairs share an input
    monkeypatch.setattr(shared, "MERGE_VALUES", 1 << 30)
    fast = _step(conv, x, pos, ei, w)
    monkeypatch.setattr(shared, "MERGE_VALUES", 0)
    reference = _step(conv, x, pos, ei, w)
    assert len(fast) == len(reference)
    for a, b in zip(fast, reference):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("envelope", ["auto", None])
@pytest.mark.parametrize("name", [*GROUPS, "escnn-SO(3)"])
def test_merged_message_sums_in_inference_equal_per_pair(monkeypatch, request, name, envelope):
    """The inference path (bases written into one buffer in place) equals pair-by-pair sums."""
    G = make_group(name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    conv = st.PointConv(f_in, f_out, max_radius=2.0, envelope_width=envelope).double().eval()
    assert (conv.kernel.log_width is None) == (envelope is None)
    assert any(len(m) > 1 for m in conv.kernel._by_input.values())  # some pairs share an input
    n = 12
    ei = _graph(n, seed=2)
    x = torch.randn(n, f_in.size, dtype=torch.float64)
    pos = torch.randn(n, G.dim, dtype=torch.float64)
    with torch.no_grad():
        monkeypatch.setattr(shared, "INFERENCE_MERGE_VALUES", 1 << 30)
        fast = conv(x, pos, ei)
        monkeypatch.setattr(shared, "INFERENCE_MERGE_VALUES", 0)
        reference = conv(x, pos, ei)
    assert reference.abs().max() > 1e-3  # not a comparison of zeros
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-13)
    monkeypatch.setattr(shared, "MERGE_VALUES", 1 << 30)
    with torch.enable_grad():  # and the training path (merged by _EnvelopedBases) gives the same values
        torch.testing.assert_close(conv(x, pos, ei).detach(), reference, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", [*GROUPS, "escnn-SO(3)"])
def test_grouped_fields_skip_the_reordering(request, name):
    """A layer on fields grouped by representation (scalars first) equals the same layer, same
    parameters, on the interleaved order (scalar, vector, scalar) with channels permuted by hand."""
    G = make_group(name, request)
    scalar, vector = G.trivial_rep(), G.standard_rep()
    interleaved = st.FieldType(G, [scalar, vector, scalar])
    grouped = st.FieldType(G, [scalar, scalar, vector])
    torch.manual_seed(0)
    ref = st.PointConv(interleaved, interleaved, max_radius=2.0).double()
    torch.manual_seed(0)
    fast = st.PointConv(grouped, grouped, max_radius=2.0).double()
    assert fast.kernel._inputs_grouped and fast.kernel._outputs_grouped
    assert not ref.kernel._inputs_grouped and not ref.kernel._outputs_grouped
    fast.load_state_dict(ref.state_dict())  # same pairs, same shapes: the same kernel
    v = vector.size
    # channel i of the grouped layout is channel order[i] of the interleaved one
    order = torch.tensor([0, 1 + v] + list(range(1, 1 + v)))
    n = 10
    ei = _graph(n, seed=1)
    x = torch.randn(n, interleaved.size, dtype=torch.float64)
    pos = torch.randn(n, G.dim, dtype=torch.float64)
    w = torch.randn(n, interleaved.size, dtype=torch.float64)
    a = _step(ref, x, pos, ei, w)
    b = _step(fast, x[:, order], pos, ei, w[:, order])
    torch.testing.assert_close(b[0], a[0][:, order], rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(b[1], a[1][:, order], rtol=1e-12, atol=1e-13)
    for g, h in zip(b[2:], a[2:]):
        torch.testing.assert_close(g, h, rtol=1e-12, atol=1e-13)


def test_enveloped_bases_equal_their_products_with_higher_derivatives():
    """``_EnvelopedBases`` (the training path's merged bases) equals the concatenated products,
    with first and second derivatives (gradcheck / gradgradcheck, float64)."""
    g = torch.Generator().manual_seed(0)
    bases = [torch.randn(5, 3, k, generator=g, dtype=torch.float64, requires_grad=True) for k in (1, 3, 9)]
    envs = [torch.rand(5, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in bases]
    fast = shared._EnvelopedBases.apply(3, *bases, *envs)
    reference = torch.cat([(b * e[..., None]).flatten(1) for b, e in zip(bases, envs)], dim=1)
    torch.testing.assert_close(fast, reference, rtol=0, atol=0)
    fn = lambda *t: shared._EnvelopedBases.apply(3, *t)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (*bases, *envs))
    assert torch.autograd.gradgradcheck(fn, (*bases, *envs))
