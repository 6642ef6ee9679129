"""Fast paths of the shared-basis kernel equal their reference paths, on every backend (float64).

* Pairs of representations that share an input representation are summed in one ``message_sum``
  when their bases are small (``MERGE_VALUES``); the reference sums each pair on its own
  (``MERGE_VALUES = 0``).
  In inference (no autograd) the merged bases are written into one buffer, with and without an
  envelope; the reference again sums pair by pair.
* Field types already grouped by representation skip the channel reordering; the reference is
  the same layer on an interleaved field type, its channels permuted by hand.
* ``enveloped_message_sum`` (enveloped bases formed one chunk of edges at a time, in forward and
  backward) equals ``message_sum`` of the bases formed whole, with first and second derivatives;
  the layer's eager path equals its whole-tensor path (``FUSED_SUMS = False``, as compiled).
"""

from __future__ import annotations

import pytest
import torch

import steerable as st
import steerable.nn.kernel._enveloped as enveloped
import steerable.nn.kernel._shared as shared
from steerable.ops.message import message_sum
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
    with torch.enable_grad():  # and the training path (merged by enveloped_message_sum) gives the same values
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


def _enveloped_inputs(b: int, envelope: bool, seed: int = 0):
    """Bases of three members (``M = 3``; 1, 2 and 3 rows of ``b`` values), an envelope ``(r2 (17,),
    c (3, 3))``, features ``(6, 4, b)`` and 17 edges, float64, all requiring gradients."""
    g = torch.Generator().manual_seed(seed)
    n_edges, n_nodes = 17, 6
    bases = [torch.randn(n_edges, 3, r * b, generator=g, dtype=torch.float64) for r in (1, 2, 3)]
    env = None
    if envelope:  # envelopes exp(-r2 c) between ~0.1 and 1
        env = (
            2 * torch.rand(n_edges, generator=g, dtype=torch.float64),
            torch.rand(3, 3, generator=g, dtype=torch.float64),
        )
    x = torch.randn(n_nodes, 4, b, generator=g, dtype=torch.float64)
    src = torch.randint(0, n_nodes, (n_edges,), generator=g)
    dst = torch.randint(0, n_nodes - 1, (n_edges,), generator=g)  # the last target gets nothing
    leaves = [*bases, *(env or []), x]
    for t in leaves:
        t.requires_grad_()
    return bases, env, x, src, dst, n_nodes, leaves


def _enveloped_reference(bases, env, x, src, dst, n_dst):
    """``message_sum`` of the concatenated enveloped bases ``b_t * exp(-r2 c_t)``, formed whole."""
    envs = [None] * len(bases) if env is None else [torch.exp(-env[0][:, None] * c) for c in env[1]]
    phi = torch.cat([(b if e is None else b * e[..., None]).flatten(1) for b, e in zip(bases, envs)], 1)
    return message_sum(phi.view(phi.shape[0], -1, x.shape[2]), x, src, dst, n_dst)


def _grads(out, w, inputs):
    return torch.autograd.grad((out * w).sum(), inputs)


# one chunk; many chunks and blocks of a few edges; one chunk of many blocks
@pytest.mark.parametrize("budget", [(1 << 20, 1 << 20), (40, 40), (1 << 20, 40)])
@pytest.mark.parametrize("envelope", [True, False])
@pytest.mark.parametrize("b", [1, 3])
def test_enveloped_message_sum_equals_the_formed_bases(monkeypatch, budget, envelope, b):
    """enveloped_message_sum (chunks of enveloped bases, never whole) equals message_sum of the
    enveloped bases formed whole: values and the gradients of bases, envelope and features, also
    with only some of them requiring one (the widths' gradient from the targets' sum S2 where
    neither x nor r2 needs one, and from the kept bases otherwise)."""
    monkeypatch.setattr(enveloped, "CHUNK_VALUES", budget[0])
    monkeypatch.setattr(enveloped, "BLOCK_VALUES", budget[1])
    bases, env, x, src, dst, n, leaves = _enveloped_inputs(b, envelope)
    w = torch.randn(n, 3 * 6, 4, dtype=torch.float64)
    fast = enveloped.enveloped_message_sum(bases, env, x, src, dst, n)
    ref = _enveloped_reference(bases, env, x, src, dst, n)
    assert ref.abs().max() > 1e-2
    torch.testing.assert_close(fast, ref, rtol=1e-13, atol=1e-13)
    for a, r in zip(_grads(fast, w, leaves), _grads(ref, w, leaves)):
        assert r.abs().max() > 1e-3
        torch.testing.assert_close(a, r, rtol=1e-13, atol=1e-13)
    # some inputs without a gradient: only the others are computed, the same; without x's and
    # r2's the bases are not kept (S2 in their place), with r2's they are
    for frozen in ([bases[0], x], [x, *(env[:1] if env else [])], [*bases, x]):
        for t in leaves:
            t.requires_grad_(not any(t is f for f in frozen))
        rest = [t for t in leaves if t.requires_grad]
        if not rest:  # no envelope: nothing left
            continue
        got = _grads(enveloped.enveloped_message_sum(bases, env, x, src, dst, n), w, rest)
        for a, r in zip(got, _grads(_enveloped_reference(bases, env, x, src, dst, n), w, rest)):
            assert r.abs().max() > 1e-3
            torch.testing.assert_close(a, r, rtol=1e-13, atol=1e-13)


def test_widths_gradient_from_the_targets_sum_keeps_no_basis():
    """With only the bases and the widths requiring a gradient, autograd keeps no tensor of the
    bases' size (the widths' gradient comes from S2, per target), and the same call with
    ``WIDTHS_FROM_SUMS = False`` keeps the bases (the check can fail)."""
    bases, env, x, src, dst, n, _ = _enveloped_inputs(3, True)
    x.requires_grad_(False)
    env[0].requires_grad_(False)

    def saved_edges(flag):
        kept = []
        enveloped.WIDTHS_FROM_SUMS = flag
        try:
            with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t.shape) or t, lambda t: t):
                enveloped.enveloped_message_sum(bases, env, x, src, dst, n)
        finally:
            enveloped.WIDTHS_FROM_SUMS = True
        return [s for s in kept if len(s) == 3 and s[0] == src.shape[0]]  # (E, M, k) tensors

    assert saved_edges(True) == []
    assert sorted(saved_edges(False)) == sorted(b.shape for b in bases)


@pytest.mark.parametrize("keep", ["bases", "sums"])
@pytest.mark.parametrize("b", [1, 3])
def test_enveloped_message_sum_higher_derivatives(monkeypatch, b, keep):
    """gradcheck and gradgradcheck (the create_graph backward) in float64, over several chunks:
    with every input requiring a gradient (the bases kept), and with x and r2 not (S2 kept, the
    bases made again by ``recompute`` for the second derivative)."""
    monkeypatch.setattr(enveloped, "CHUNK_VALUES", 40)
    monkeypatch.setattr(enveloped, "BLOCK_VALUES", 40)
    bases, env, x, src, dst, n, leaves = _enveloped_inputs(b, True, seed=1)
    k = len(bases)
    if keep == "bases":
        fn = lambda *t: enveloped.enveloped_message_sum(t[:k], t[k : k + 2], t[-1], src, dst, n)  # noqa: E731
        inputs = tuple(leaves)
    else:
        r2, x0 = env[0].detach(), x.detach()

        def fn(*t):
            made = [u * 1.5 for u in t[:k]]  # bases made from leaves, as the MLP makes them
            again = lambda: [u * 1.5 for u in t[:k]]  # noqa: E731
            return enveloped.enveloped_message_sum(made, (r2, t[k]), x0, src, dst, n, recompute=again)

        inputs = (*leaves[:k], leaves[k + 1])
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_enveloped_message_sum_create_graph_needs_recompute():
    """Without ``recompute`` a create_graph backward that would need the unkept bases fails clearly."""
    bases, env, x, src, dst, n, _ = _enveloped_inputs(3, True)
    x.requires_grad_(False)
    env[0].requires_grad_(False)
    out = enveloped.enveloped_message_sum(bases, env, x, src, dst, n)
    with pytest.raises(RuntimeError, match="recompute"):
        torch.autograd.grad(out.sum(), [env[1]], create_graph=True)


def test_enveloped_message_sum_rejects_mismatched_shapes():
    bases, env, x, src, dst, n, _ = _enveloped_inputs(3, True)
    with pytest.raises(ValueError, match="bases"):
        enveloped.enveloped_message_sum([bases[0][:, :, :2]], None, x, src, dst, n)
    with pytest.raises(ValueError, match="envelope"):
        enveloped.enveloped_message_sum(bases, (env[0], env[1][:, :2]), x, src, dst, n)
    with pytest.raises(ValueError, match="envelope"):
        enveloped.enveloped_message_sum(bases, (env[0][:-1], env[1]), x, src, dst, n)


@pytest.mark.parametrize("envelope", ["auto", None])
@pytest.mark.parametrize("name", [*GROUPS, "escnn-SO(3)"])
def test_fused_sums_equal_the_whole_tensor_path(monkeypatch, request, name, envelope):
    """The layer's eager path (enveloped_message_sum, the inference buffer) equals the whole-tensor
    path of compiled graphs (``FUSED_SUMS = False``): training values and gradients, and inference."""
    G = make_group(name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    conv = st.PointConv(f_in, f_out, max_radius=2.0, envelope_width=envelope).double()
    n = 12
    ei = _graph(n, seed=3)
    x = torch.randn(n, f_in.size, dtype=torch.float64)
    pos = torch.randn(n, G.dim, dtype=torch.float64)
    w = torch.randn(n, f_out.size, dtype=torch.float64)
    fast = _step(conv, x, pos, ei, w)
    with torch.no_grad():
        fast_eval = conv.eval()(x, pos, ei)
    monkeypatch.setattr(shared, "FUSED_SUMS", False)
    with torch.no_grad():
        ref_eval = conv(x, pos, ei)
    reference = _step(conv.train(), x, pos, ei, w)
    assert reference[0].abs().max() > 1e-3
    torch.testing.assert_close(fast_eval, ref_eval, rtol=1e-12, atol=1e-13)
    for a, b in zip(fast, reference):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


def _param_step(conv, x, pos, ei, w, create_graph=False):
    """Values and parameter gradients with ``x`` and ``pos`` fixed (no gradient: a first layer, the
    path where the widths' gradient comes from the targets' sums); with ``create_graph`` also a
    second derivative: the gradient of ``sum(grad_p . v_p)`` (random ``v``) over the parameters."""
    params = [p for p in conv.parameters()]
    y = conv(x, pos, ei)
    grads = torch.autograd.grad((y * w).sum(), params, create_graph=create_graph, allow_unused=True)
    out = [y.detach()] + [g.detach() if g is not None else None for g in grads]
    if create_graph:
        gen = torch.Generator().manual_seed(5)
        dot = sum((g * torch.randn(g.shape, generator=gen, dtype=g.dtype)).sum() for g in grads if g is not None)
        out += list(torch.autograd.grad(dot, params, allow_unused=True))
    return out


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("name", [*GROUPS, "escnn-SO(3)"])
def test_fixed_inputs_path_equals_the_reference(monkeypatch, request, name, create_graph):
    """With ``x`` and ``pos`` not requiring a gradient the layer keeps no basis (the widths'
    gradient from S2; escnn: the lean gate too); values, parameter gradients and (create_graph,
    bases made again by the MLP) second derivatives equal the whole-tensor path with the bases kept
    and torch's gate (``FUSED_SUMS = False``, ``WIDTHS_FROM_SUMS = False``, ``SchurGate.lean = False``,
    escnn's MLP layer by layer, not in scalar form)."""
    G = make_group(name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(0)
    conv = st.PointConv(f_in, f_out, max_radius=2.0).double()
    assert conv.kernel.log_width is not None
    n = 12
    ei = _graph(n, seed=4)
    x = torch.randn(n, f_in.size, dtype=torch.float64)
    pos = torch.randn(n, G.dim, dtype=torch.float64)
    w = torch.randn(n, f_out.size, dtype=torch.float64)
    calls, recompute = [], shared.SharedBasisKernel._recompute_bases
    monkeypatch.setattr(shared.SharedBasisKernel, "_recompute_bases", lambda *a: calls.append(1) or recompute(*a))
    fast = _param_step(conv, x, pos, ei, w, create_graph)
    assert bool(calls) == create_graph  # the second derivative made the bases again
    monkeypatch.setattr(shared, "FUSED_SUMS", False)
    monkeypatch.setattr(enveloped, "WIDTHS_FROM_SUMS", False)
    if name.startswith("escnn"):
        from steerable.plugins.escnn_backend.irrepwise import IrrepwiseKernelMLP
        from steerable.plugins.escnn_backend.schur import SchurGate

        monkeypatch.setattr(SchurGate, "lean", False)
        monkeypatch.setattr(IrrepwiseKernelMLP, "use_scalar_form", False)  # layer by layer on the runs
    reference = _param_step(conv, x, pos, ei, w, create_graph)
    assert reference[0].abs().max() > 1e-3
    width_grad = [g for g, (k, _) in zip(reference[1:], conv.named_parameters()) if k.endswith("log_width")]
    assert width_grad and width_grad[0].abs().max() > 1e-6  # the widths' gradient is compared
    assert len(fast) == len(reference)
    for a, b in zip(fast, reference):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)
