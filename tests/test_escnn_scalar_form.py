"""The escnn irrep-wise kernel MLP in scalar form equals its layer-by-layer path, and its op is right.

:class:`~steerable.plugins.escnn_backend.scalar_form.ScalarForm` evaluates the MLP on invariants
alone where there are no attribute fields; ``IrrepwiseKernelMLP.use_scalar_form = False`` is the
reference (the runs of irreps through escnn's layers).  Values, gradients (positions, trivial
attributes, every parameter) and second derivatives must agree in float64.
:func:`steerable.ops.modulated.modulated_product` is checked against its formula written out here.
"""

from __future__ import annotations

import pytest
import torch

import steerable as st
from steerable.core.mlp import KernelMLPSpec
from steerable.ops.modulated import modulated_matmul, modulated_product

pytest.importorskip("escnn")

from steerable.plugins.escnn_backend.irrepwise import IrrepwiseKernelMLP


def _irreps(G, name: str) -> list:
    if name == "O(3)":  # scalars, vectors, pseudo-scalars (no harmonic of their own) and pseudo-vectors
        return [G.irrep(0, 0), G.irrep(1, 1), G.irrep(1, 0), G.irrep(0, 1)]
    if name == "O(2)":  # on the plane: scalars, the sign (no harmonic of its own), frequencies 1 and 2
        return [G.irrep(0, 0), G.irrep(1, 0), G.irrep(1, 1), G.irrep(1, 2)]
    return [G.irrep(l) for l in range(3)]


def _mlp(name: str, hidden_layers: int, invariant_attr: bool):
    G = st.group(name, backend="escnn")
    reps = _irreps(G, name)
    blocks = tuple((ro, ri) for ro in reps for ri in reps)
    attr_type = st.FieldType(G, [G.trivial_rep(), G.trivial_rep()]) if invariant_attr else None
    torch.manual_seed(0)
    spec = KernelMLPSpec(G, blocks, attr_type, hidden_channels=3, hidden_layers=hidden_layers, radial_features=4)
    mlp = G.build_kernel_mlp(spec).double()
    assert isinstance(mlp, IrrepwiseKernelMLP) and mlp.scalar_form is not None
    with torch.no_grad():  # every parameter away from its initial value (biases start at zero)
        for p in mlp.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return mlp, spec


def _evaluate(mlp, spec, scalar_form: bool, create_graph: bool = False):
    IrrepwiseKernelMLP.use_scalar_form = scalar_form
    try:
        gen = torch.Generator().manual_seed(1)
        pos = torch.randn(11, spec.group.dim, generator=gen, dtype=torch.float64)
        pos[0] = 0.0  # the origin: every non-invariant harmonic zero
        pos.requires_grad_(True)
        attr = torch.randn(11, 2, generator=gen, dtype=torch.float64) if spec.attr_type is not None else None
        if attr is not None:
            attr.requires_grad_(True)
        weights = torch.randn(11, spec.out_size, generator=gen, dtype=torch.float64)
        pieces = list(mlp.pieces(pos, attr))
        assert [p.shape[1] for p in pieces] == mlp.piece_sizes
        out = torch.cat(pieces, dim=1)
        inputs = [pos, *([attr] if attr is not None else []), *mlp.parameters()]
        grads = torch.autograd.grad((out * weights).sum(), inputs, create_graph=create_graph, allow_unused=True)
        result = [out.detach(), *[g.detach() if g is not None else None for g in grads]]
        if create_graph:  # a second derivative through the positions' gradient (forces)
            result += list(torch.autograd.grad(grads[0].pow(2).sum(), inputs[1:], allow_unused=True))
        return result
    finally:
        IrrepwiseKernelMLP.use_scalar_form = True


@pytest.mark.parametrize("name", ["SO(3)", "O(3)", "O(2)"])
@pytest.mark.parametrize("hidden_layers,invariant_attr", [(0, False), (1, True), (2, False)])
def test_scalar_form_equals_the_layers(name, hidden_layers, invariant_attr):
    mlp, spec = _mlp(name, hidden_layers, invariant_attr)
    fast = _evaluate(mlp, spec, True)
    reference = _evaluate(mlp, spec, False)
    assert reference[0].abs().max() > 1e-2 and fast[0].abs().max() > 1e-2
    assert len(fast) == len(reference)
    for a, b in zip(fast, reference):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)
    if name != "SO(3)":  # blocks of irreps without a harmonic (unnatural parity, the sign) stay exact zeros
        assert any(w == 0 for w in mlp.scalar_form.widths)
    else:  # the 2 x 2 blocks (five irreps) take the batched product, the others the tiled one
        assert 5 in mlp.scalar_form.batched and 0 in mlp.scalar_form.batched


@pytest.mark.parametrize("name", ["SO(3)", "O(3)", "O(2)"])
def test_scalar_form_second_derivatives(name):
    mlp, spec = _mlp(name, 1, False)
    fast = _evaluate(mlp, spec, True, create_graph=True)
    reference = _evaluate(mlp, spec, False, create_graph=True)
    assert len(fast) == len(reference)
    for a, b in zip(fast, reference):
        if a is None or b is None:  # a parameter one path does not reach is zero on the other
            assert a is None or not a.any()
            assert b is None or not b.any()
        else:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-11)


def test_scalar_form_under_torch_func():
    """``torch.func`` (the ops' own autograd, no custom backward) gives the reference's Jacobian."""
    mlp, spec = _mlp("SO(3)", 1, False)
    pos = torch.randn(5, 3, dtype=torch.float64)
    fast = torch.func.jacrev(lambda p: mlp(p).sum(0))(pos)
    IrrepwiseKernelMLP.use_scalar_form = False
    try:
        reference = torch.func.jacrev(lambda p: mlp(p).sum(0))(pos)
    finally:
        IrrepwiseKernelMLP.use_scalar_form = True
    torch.testing.assert_close(fast, reference, rtol=1e-11, atol=1e-12)


def test_scalar_form_applies_only_where_every_feature_is_an_invariant_times_a_harmonic():
    G = st.group("SO(3)", backend="escnn")
    S = G.standard_rep()
    vector_attr = KernelMLPSpec(G, ((S, S),), st.FieldType(G, [S]), hidden_channels=2, hidden_layers=1)
    assert G.build_kernel_mlp(vector_attr).scalar_form is None  # an attribute field: layers on runs
    plane = st.group("SO(2)", backend="escnn")  # complex irreps: maps between copies are 2-dimensional
    spec = KernelMLPSpec(plane, ((plane.standard_rep(),) * 2,), hidden_channels=2, hidden_layers=1)
    mlp = plane.build_kernel_mlp(spec)
    assert isinstance(mlp, IrrepwiseKernelMLP) and mlp.scalar_form is None


# -- the op ----------------------------------------------------------------------------------------
def _formula(h, weight, bias, y, harmonics, mix):
    s = h @ weight + (0 if bias is None else bias)
    p = s * (y @ harmonics)
    if mix is None:
        return p
    k, d = mix.shape
    return torch.einsum("eck,kd->ecd", p.view(p.shape[0], -1, k), mix).reshape(p.shape[0], -1)


@pytest.mark.parametrize("copies,k,d,with_bias", [(4, 3, 3, True), (2, 5, 9, False), (1, 2, 2, True), (40, 4, 4, True)])
def test_modulated_product_equals_its_formula(copies, k, d, with_bias):
    """Values, first and second derivatives (gradcheck) of every input, with the mix applied to
    one copy per row (``d = 9``) and to several (``d < MIN_OUTPUT_WIDTH``), or no mix."""
    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True)  # noqa: E731
    h, weight, y, harmonics = r(6, 4), r(4, copies * k), r(6, 3), r(3, copies * k)
    bias = r(copies * k) if with_bias else None
    mix = r(k, d) if k != d or copies != 40 else None
    args = (h, weight, bias, y, harmonics, mix)
    torch.testing.assert_close(modulated_product(*args), _formula(*args), rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(modulated_product(*args), _formula(*args), rtol=1e-12, atol=1e-12)
    inputs = tuple(a for a in args if a is not None)

    def fn(*flat):
        it = iter(flat)
        return modulated_product(*[next(it) if a is not None else None for a in args])

    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def test_modulated_product_rejects_mismatched_shapes():
    h, y = torch.randn(5, 4), torch.randn(5, 3)
    with pytest.raises(ValueError, match="same number of columns"):
        modulated_product(h, torch.randn(4, 6), None, y, torch.randn(3, 8))
    with pytest.raises(ValueError, match="do not match"):
        modulated_product(h, torch.randn(3, 6), None, y, torch.randn(3, 6))
    with pytest.raises(ValueError, match="does not divide"):
        modulated_product(h, torch.randn(4, 6), None, y, torch.randn(3, 6), torch.randn(4, 4))


@pytest.mark.parametrize("with_bias", [False, True])
def test_modulated_matmul_equals_its_formula(with_bias):
    gen = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64, requires_grad=True)  # noqa: E731
    copies, terms, d = 3, 5, 4
    h, weight, y, harmonics = r(6, 4), r(4, copies * terms), r(6, 3), r(3, terms * d)
    bias = r(copies * terms) if with_bias else None
    args = (h, weight, bias, y, harmonics)
    s = h @ weight + (0 if bias is None else bias)
    z = y @ harmonics
    expected = torch.einsum("ecq,eqd->ecd", s.view(6, copies, terms), z.view(6, terms, d)).reshape(6, -1)
    torch.testing.assert_close(modulated_matmul(*args, terms), expected, rtol=1e-12, atol=1e-12)
    inputs = tuple(a for a in args if a is not None)

    def fn(*flat):
        it = iter(flat)
        return modulated_matmul(*[next(it) if a is not None else None for a in args], terms)

    assert torch.autograd.gradcheck(fn, inputs)
    with pytest.raises(ValueError, match="do not split"):
        modulated_matmul(h, weight, bias, y, harmonics[:, :-1], terms)
    with pytest.raises(ValueError, match="do not match"):
        modulated_matmul(h[:-1], weight, bias, y, harmonics, terms)
