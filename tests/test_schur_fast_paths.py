"""The escnn backend's irrep-wise kernel MLP without escnn's basis expansion equals the reference path.

:class:`~steerable.plugins.escnn_backend.schur.SchurLinear` reads each run's block from escnn's
weights and sampled basis and multiplies the first layer's factored runs (one harmonic times
invariants) factored; ``SchurLinear.factored = False`` is the reference (escnn's expanded matrix,
runs formed).  Values and gradients (parameters, positions, attributes) must agree in float64.
"""

from __future__ import annotations

import pytest
import torch

import steerable as st
from steerable.core.mlp import KernelMLPSpec

pytest.importorskip("escnn")

from steerable.plugins.escnn_backend.schur import ScaledRun, SchurLinear

GROUPS = [("SO(3)", 3), ("O(3)", 3), ("O(2)", 2), ("SO(2)", 2)]


def _run(mlp, pos, attr, weights):
    for p in [pos, attr, *mlp.parameters()]:
        if p is not None:
            p.grad = None
    out = mlp(pos, attr)
    (out * weights).sum().backward()
    grads = [pos.grad.clone()] + ([attr.grad.clone()] if attr is not None else [])
    grads += [p.grad.clone() for p in mlp.parameters()]
    return out.detach(), grads


@pytest.mark.parametrize("name,dim", GROUPS)
@pytest.mark.parametrize("hidden_layers,with_attr", [(1, False), (2, True)])
def test_schur_layers_from_weights_equal_the_expansion(monkeypatch, name, dim, hidden_layers, with_attr):
    from steerable.plugins.escnn_backend.irrepwise import IrrepwiseKernelMLP

    monkeypatch.setattr(IrrepwiseKernelMLP, "use_scalar_form", False)  # the runs of irreps, not the scalar form
    G = st.group(name, dim=dim, backend="escnn")
    S, T = G.standard_rep(), G.trivial_rep()
    attr_type = st.FieldType(G, [T, S]) if with_attr else None
    torch.manual_seed(0)
    spec = KernelMLPSpec(G, ((S, S), (T, S), (S, T), (T, T)), attr_type, hidden_channels=3, hidden_layers=hidden_layers)
    mlp = G.build_kernel_mlp(spec).double()
    layers = [m for m in mlp.schur_layers if isinstance(m, SchurLinear)]
    # the fast path applies: every run with an input has its map in escnn's weights
    assert all(m is not None for layer in layers for m, plan in zip(layer.maps, layer.plan) if plan[2] is not None)
    pos = torch.randn(9, dim, dtype=torch.float64, requires_grad=True)
    attr = torch.randn(9, attr_type.size, dtype=torch.float64, requires_grad=True) if with_attr else None
    runs = mlp.input_runs(mlp.invariant_weights(pos, attr), mlp.embedding(pos), attr)
    assert any(isinstance(r, ScaledRun) for r in runs)  # the factored first layer is exercised
    weights = torch.randn(9, spec.out_size, dtype=torch.float64)
    fast = _run(mlp, pos, attr, weights)
    monkeypatch.setattr(SchurLinear, "factored", False)
    reference = _run(mlp, pos, attr, weights)
    torch.testing.assert_close(fast[0], reference[0], rtol=1e-12, atol=1e-13)
    assert len(fast[1]) == len(reference[1])
    for g, h in zip(fast[1], reference[1]):
        torch.testing.assert_close(g, h, rtol=1e-11, atol=1e-12)


def test_complex_irreps_use_the_general_basis():
    """SO(2)'s 2-dimensional irreps have a 2-dimensional space of self-maps: their runs are not
    multiples of the identity (the general branch of the fast path), SO(3)'s always are."""
    for (name, dim), scalar in {("SO(2)", 2): False, ("SO(3)", 3): True}.items():
        G = st.group(name, dim=dim, backend="escnn")
        S = G.standard_rep()
        mlp = G.build_kernel_mlp(KernelMLPSpec(G, ((S, S),), hidden_channels=2))
        maps = [m for layer in mlp.schur_layers if isinstance(layer, SchurLinear) for m in layer.maps if m]
        assert all(m.scalar for m in maps if m.size == 1)
        assert any(m.size > 1 for m in maps)
        assert all(m.scalar == scalar for m in maps if m.size > 1)


@pytest.mark.parametrize("lean", [True, False])
def test_gate_equals_its_formula_with_gradients(monkeypatch, lean):
    """SchurGate (training: one node keeping its first run and its outputs, ``lean``; reference:
    torch's ops, the ELU in place on a copy) equals ``F.elu`` of the scalars and the fields times
    the sigmoids of their gates: values, gradients equal to autograd's of the formula, gradcheck
    and gradgradcheck (float64), inputs left unchanged."""
    from steerable.plugins.escnn_backend.schur import SchurGate

    monkeypatch.setattr(SchurGate, "lean", lean)
    gate = SchurGate(2, [(3, 3), (1, 5)])
    g = torch.Generator().manual_seed(0)
    first = (3 * torch.randn(4, 2 + 3 + 1, generator=g, dtype=torch.float64)).requires_grad_()
    vectors = torch.randn(4, 9, generator=g, dtype=torch.float64, requires_grad=True)
    fives = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    before = first.detach().clone()
    assert (first < 0).any() and (first > 0).any()  # both branches of the ELU

    def reference(a, v, f):
        s = torch.sigmoid(a[:, 2:])
        return torch.cat(
            [torch.nn.functional.elu(a[:, :2]), (v.view(4, 3, 3) * s[:, :3, None]).flatten(1), f * s[:, 3:]], 1
        )

    fast = lambda a, v, f: torch.cat(gate([a, v, f]), dim=1)  # noqa: E731
    inputs = (first, vectors, fives)
    torch.testing.assert_close(fast(*inputs), reference(*inputs), rtol=0, atol=0)
    assert torch.equal(first.detach(), before)
    w = torch.randn(4, 2 + 9 + 5, generator=g, dtype=torch.float64)
    got = torch.autograd.grad((fast(*inputs) * w).sum(), inputs)
    for a, b in zip(got, torch.autograd.grad((reference(*inputs) * w).sum(), inputs)):
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15)
    assert torch.autograd.gradcheck(fast, inputs)
    assert torch.autograd.gradgradcheck(fast, inputs)


def test_lean_gate_keeps_no_gated_input():
    """In training the gate keeps its first run and its outputs only (the gated runs' inputs are
    not kept); the reference (torch's ops) keeps them (the check can fail)."""
    from steerable.plugins.escnn_backend.schur import SchurGate

    gate = SchurGate(2, [(3, 3), (1, 5)])
    first = torch.randn(4, 6, requires_grad=True)
    runs = [torch.randn(4, 9, requires_grad=True) * 1, torch.randn(4, 5, requires_grad=True) * 1]

    def kept(lean):
        SchurGate.lean, out = lean, []
        try:
            with torch.autograd.graph.saved_tensors_hooks(lambda t: out.append(t) or t, lambda t: t):
                y = gate([first * 1, *runs])
        finally:
            SchurGate.lean = True
        return out, y

    same = lambda a, b: a.data_ptr() == b.data_ptr()  # noqa: E731
    saved, y = kept(True)
    assert not any(same(t, r) for t in saved for r in runs)
    assert all(any(same(t, o) for t in saved) for o in y)
    saved, _ = kept(False)
    assert any(same(t, r) for t in saved for r in runs)
