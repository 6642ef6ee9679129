"""The e3nn backend: SO(3) and O(3) groups, their irreps, the kernel MLP and the layers built on it.

Bounds (relative Frobenius errors, as in ``steerable.testing``, per block for the MLP): equivariance
<= 1e-13 in float64 (measured <= 1.1e-14, also after a float32 round trip: every part is exact, only
round-off remains; 9x margin) and <= 1e-5 in float32 (measured <= 2.8e-6; 3.6x margin).
Completeness: at a point, the span of a block over random initialisations equals
the dimension of the maps commuting with the point's stabiliser.
"""

from __future__ import annotations

import sys

import pytest
import torch

import steerable as st
from steerable.core.mlp import KernelMLPSpec
from steerable.core.representation import FieldType
from steerable.testing import (
    block_matrices,
    check_equivariance,
    commutant_dimension,
    kernel_span_rank,
    lattice_elements,
    layer_report,
)

pytest.importorskip("e3nn")

F64_BOUND, F32_BOUND = 1e-13, 1e-5
X0 = torch.tensor([0.3, -0.5, 0.4], dtype=torch.float64)


@pytest.fixture(scope="module", params=["SO(3)", "O(3)"])
def G(request):
    return st.group(request.param, backend="e3nn")


@pytest.fixture(scope="module")
def O3():
    return st.group("O(3)", backend="e3nn")


def _rotation_about(axis: torch.Tensor, angle: float) -> torch.Tensor:
    u = axis / axis.norm()
    cross = torch.tensor([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]], dtype=torch.float64)
    return torch.linalg.matrix_exp(angle * cross)


def _reflection(normal: torch.Tensor) -> torch.Tensor:
    n = normal / normal.norm()
    return torch.eye(3, dtype=torch.float64) - 2 * torch.outer(n, n)


def _stabiliser_of_x0(group):
    """Generators of the stabiliser of X0: two rotations about it, and (O(3)) a reflection through a
    plane containing it."""
    mats = [_rotation_about(X0, 0.7), _rotation_about(X0, 2.1)]
    if group.name == "O(3)":
        mats.append(_reflection(torch.linalg.cross(X0, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))))
    return group.elements_from_matrices(torch.stack(mats))


def _rerandomised(module: torch.nn.Module):
    """A callable giving ``module`` with all parameters redrawn, as a fresh e3nn init would (N(0, 1))."""

    def build():
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.randn_like(p))
        return module

    return build


def _block_errors(mlp, spec, elements, dtype, n_points=12, seed=0):
    """Per-block relative errors of ``mlp(g pos, g attr)[b]`` vs ``kron(out(g), in(g)) mlp(pos, attr)[b]``,
    the action from ``steerable.testing.block_matrices`` (max over ``elements``), and block norms."""
    gen = torch.Generator().manual_seed(seed)
    mlp = mlp.to(dtype)
    pos = torch.randn(n_points, 3, dtype=torch.float64, generator=gen)
    attr = None if spec.attr_type is None else torch.randn(n_points, spec.attr_size, dtype=torch.float64, generator=gen)
    sizes = [ro.size * ri.size for ro, ri in spec.blocks]
    cast = lambda t: None if t is None else t.to(dtype)  # noqa: E731
    with torch.no_grad():
        base = mlp(pos.to(dtype), cast(attr)).double()
        acts = block_matrices(spec, elements)  # (n, D, D) float64
        errors = [0.0] * len(sizes)
        for k in range(len(elements)):
            g = elements[k]
            attr_g = None if attr is None else spec.attr_type.transform(attr, g)
            moved = mlp(cast(pos @ g.matrices[0].T), cast(attr_g)).double()
            want = base @ acts[k].T
            for b, (got_b, want_b) in enumerate(zip(moved.split(sizes, 1), want.split(sizes, 1))):
                errors[b] = max(errors[b], float((got_b - want_b).norm() / want_b.norm().clamp_min(1e-300)))
    return errors, [float(block.norm()) for block in base.split(sizes, 1)]


# -- groups and representations -----------------------------------------------------------------
def test_group_basics(G):
    assert G.name in ("SO(3)", "O(3)") and G.dim == 3 and G.backend == "e3nn" and G.order is None
    assert st.group(G.name, backend="e3nn") == G and st.group(G.name, backend="e3nn") is st.group(
        G.name, backend="e3nn"
    )
    assert G.trivial_rep().is_trivial and G.trivial_rep().name == "trivial" and G.trivial_rep().size == 1
    assert G.standard_rep().name == "standard" and G.standard_rep().size == 3
    assert G.irrep(1, -1) is G.standard_rep() and G.irrep(1) is G.standard_rep()
    assert G.irrep(2, 1) is G.irrep(2, 1) and G.irrep(2).size == 5 and not G.irrep(2).is_trivial
    assert G.irrep(2).name.startswith("e3nn(")  # not "irrep(2)": the l >= 2 basis is e3nn's own
    field = G.field_type("2x0e + 1o + 2e")
    assert field.size == 10 and field.reps[0] is G.trivial_rep() and field.reps[2] is G.standard_rep()
    assert [r.size for r in G.irreps(2)] == ([1, 1, 3, 3, 5, 5] if G.name == "O(3)" else [1, 3, 5])
    with pytest.raises(ValueError, match="cannot read"):
        G.irreps("2x1q")


def test_standard_rep_is_the_coordinate_action(G):
    els = G.sample(16, generator=torch.Generator().manual_seed(1))
    assert els.matrices.dtype == torch.float64 and els.matrices.shape == (16, 3, 3)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(els.matrices @ els.matrices.transpose(1, 2), eye.expand(16, 3, 3), atol=1e-12)
    dets = torch.linalg.det(els.matrices)
    if G.name == "SO(3)":
        assert torch.allclose(dets, torch.ones(16, dtype=torch.float64))
    else:
        assert (dets < 0).any() and (dets > 0).any()
    assert torch.allclose(G.standard_rep().matrices(els), els.matrices, atol=1e-12)
    # a rotation about z by 90 degrees sends x to y in (x, y, z)
    rz = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    g = G.elements_from_matrices(rz[None])
    assert torch.allclose(
        G.standard_rep().matrices(g)[0] @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
        torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64),
        atol=1e-12,
    )
    # homomorphism and orthogonality of every irrep up to l = 3
    a, b = els[0], els[1]
    ab = G.elements_from_matrices(a.matrices @ b.matrices)
    for rep in G.irreps(3):
        assert torch.allclose(rep.matrices(ab), rep.matrices(a) @ rep.matrices(b), atol=1e-10)
        m = rep.matrices(els)
        assert m.dtype == torch.float64 and m.shape == (16, rep.size, rep.size)
        assert torch.allclose(m @ m.transpose(1, 2), torch.eye(rep.size, dtype=torch.float64).expand_as(m), atol=1e-10)


def test_parity_under_inversion(O3):
    inversion = O3.elements_from_matrices(-torch.eye(3, dtype=torch.float64)[None])
    assert torch.allclose(O3.standard_rep().matrices(inversion)[0], -torch.eye(3, dtype=torch.float64))
    assert torch.allclose(O3.irrep(1, 1).matrices(inversion)[0], torch.eye(3, dtype=torch.float64))  # 1e
    assert torch.allclose(O3.irrep(0, -1).matrices(inversion)[0], -torch.ones(1, 1, dtype=torch.float64))
    assert torch.allclose(O3.irrep(2, 1).matrices(inversion)[0], torch.eye(5, dtype=torch.float64))
    # a pseudo-vector transforms like the cross product of two vectors
    els = O3.sample(8, generator=torch.Generator().manual_seed(2))
    u, v = torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    for k in range(8):
        m = els.matrices[k]
        pseudo = O3.irrep(1, 1).matrices(els[k])[0]
        assert torch.allclose(torch.linalg.cross(m @ u, m @ v), pseudo @ torch.linalg.cross(u, v), atol=1e-12)


def test_so3_ignores_parity():
    G = st.group("SO(3)", backend="e3nn")
    assert G.irrep(1, 1) is G.irrep(1, -1) is G.standard_rep()
    assert G.irreps("1e + 1o + 1") == [G.standard_rep()] * 3


def test_elements_from_matrices_validates(G):
    rot = _rotation_about(X0, 0.3)
    assert torch.allclose(G.elements_from_matrices(rot[None]).matrices[0], rot)
    assert torch.allclose(G.identity().matrices[0], torch.eye(3, dtype=torch.float64))
    bad = torch.stack([rot, 2 * rot])
    with pytest.raises(ValueError, match="matrix 1 is not orthogonal"):
        G.elements_from_matrices(bad)
    with pytest.raises(ValueError, match=r"shape \(n, 3, 3\)"):
        G.elements_from_matrices(torch.eye(2)[None])
    reflection = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    if G.name == "SO(3)":
        with pytest.raises(ValueError, match="matrix 1 has determinant -1"):
            G.elements_from_matrices(torch.stack([rot, reflection]))
    else:
        g = G.elements_from_matrices(torch.stack([rot, reflection]))
        assert torch.allclose(G.standard_rep().matrices(g)[1], reflection)


def test_float32_matrices_are_accepted(G):
    rot = _rotation_about(X0, 1.1).float()
    g = G.elements_from_matrices(rot[None])
    assert g.matrices.dtype == torch.float64 and torch.allclose(g.matrices[0].float(), rot)
    m = g.matrices[0]  # projected: orthogonal to float64 round-off
    assert torch.allclose(m @ m.T, torch.eye(3, dtype=torch.float64), atol=1e-14)


# -- the kernel MLP ---------------------------------------------------------------------------------
def _mixed_blocks(G):
    reps = [G.irrep(0, 1), G.irrep(1, -1), G.irrep(1, 1), G.irrep(2, 1)]  # 0e 1o 1e 2e (SO(3): 0 1 1 2)
    return tuple((o, i) for o in reps for i in reps)


def _forced_zero(G, ro, ri) -> bool:
    """O(3) blocks that symmetry forces to zero without non-invariant attributes: no natural-parity
    irrep in out ⊗ in (e.g. 1e -> 0e, a pseudo-vector from a scalar function of a vector)."""
    if G.name == "SO(3)":
        return False
    p = ro.parity * ri.parity
    return not any(p == (-1) ** l for l in range(abs(ro.l - ri.l), ro.l + ri.l + 1))


@pytest.mark.parametrize("dtype,bound", [(torch.float64, F64_BOUND), (torch.float32, F32_BOUND)])
def test_mlp_is_equivariant_per_block(G, dtype, bound):
    spec = KernelMLPSpec(G, _mixed_blocks(G), hidden_channels=8, hidden_layers=2)
    torch.manual_seed(0)
    mlp = G.build_kernel_mlp(spec)
    els = G.sample(6, generator=torch.Generator().manual_seed(3))
    if G.name == "O(3)":  # make sure reflections and the inversion itself are covered
        extra = torch.stack([-torch.eye(3, dtype=torch.float64), _reflection(X0)])
        els = G.elements_from_matrices(torch.cat([els.matrices, extra]))
    errors, norms = _block_errors(mlp, spec, els, dtype)
    for (ro, ri), err, norm in zip(spec.blocks, errors, norms):
        if _forced_zero(G, ro, ri):
            assert norm == 0.0, f"{ro.name} -> {ri.name} must vanish in O(3)"
        else:
            assert norm > 1e-3, f"block {ro.name} x {ri.name} is (nearly) zero"
            assert err <= bound, f"block {ro.name} x {ri.name}: {err:.2e} > {bound:.0e} ({dtype})"


def test_mlp_output_shape_and_origin(G):
    blocks = _mixed_blocks(G)
    mlp = G.build_kernel_mlp(KernelMLPSpec(G, blocks, hidden_channels=4, hidden_layers=1))
    pos = torch.zeros(3, 3)
    out = mlp(pos, None)
    assert out.shape == (3, sum(o.size * i.size for o, i in blocks)) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # at the origin only the invariant parts survive (u = 0 there): K(0) commutes with the whole group
    start = 0
    for ro, ri in blocks:
        block = out[0, start : start + ro.size * ri.size].detach().double().reshape(ro.size, ri.size)
        if ro is ri:
            assert torch.allclose(block, block[0, 0] * torch.eye(ro.size, dtype=torch.float64), atol=1e-6)
        else:
            assert block.abs().max() < 1e-6
        start += ro.size * ri.size
    out.sum().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in mlp.parameters())


def test_mlp_with_non_invariant_attributes(G):
    attrs = G.field_type("0e + 1o + 1e + 2e + 0o") if G.name == "O(3)" else G.field_type("0e + 1o + 2e")
    spec = KernelMLPSpec(G, _mixed_blocks(G), attrs, hidden_channels=6, hidden_layers=2)
    torch.manual_seed(0)
    mlp = G.build_kernel_mlp(spec)
    els = G.sample(4, generator=torch.Generator().manual_seed(4))
    for dtype, bound in [(torch.float64, F64_BOUND), (torch.float32, F32_BOUND)]:
        errors, norms = _block_errors(mlp, spec, els, dtype)
        assert max(errors) <= bound
        assert min(norms) > 1e-3  # with non-invariant attributes no block is forced to zero


def test_hidden_layers_zero_and_options(G):
    spec = KernelMLPSpec(G, _mixed_blocks(G)[:6], hidden_layers=0, options={"hidden_lmax": 1})
    mlp = G.build_kernel_mlp(spec)
    errors, _ = _block_errors(mlp, spec, G.sample(3, generator=torch.Generator().manual_seed(5)), torch.float64)
    assert max(errors) <= F64_BOUND
    unknown = r"e3nn backend: unknown kernel MLP options \['nope'\]; supported: \['hidden_lmax', 'origin_scale'\]"
    with pytest.raises(ValueError, match=unknown):
        G.build_kernel_mlp(KernelMLPSpec(G, _mixed_blocks(G)[:1], options={"nope": 1}))
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="e3nn backend: options\\['origin_scale'\\] must be a finite number > 0"):
            G.build_kernel_mlp(KernelMLPSpec(G, _mixed_blocks(G)[:1], options={"origin_scale": bad}))
    with pytest.raises(ValueError, match="e3nn backend: option 'hidden_lmax' must be int, got 1.5"):
        G.build_kernel_mlp(KernelMLPSpec(G, _mixed_blocks(G)[:1], options={"hidden_lmax": 1.5}))
    with pytest.raises(ValueError, match="e3nn backend: nonlinearity='fourier' is not supported .*supported: 'exact'"):
        G.build_kernel_mlp(KernelMLPSpec(G, _mixed_blocks(G)[:1], nonlinearity="fourier"))


def test_forced_zero_only_blocks_are_refused(O3):
    with pytest.raises(ValueError, match="forced to zero"):
        O3.build_kernel_mlp(KernelMLPSpec(O3, ((O3.irrep(1, 1), O3.trivial_rep()),)))


def test_float64_after_float32_keeps_exact_constants(G):
    """Built in float32 then converted: the Clebsch-Gordan constants are re-derived in float64."""
    spec = KernelMLPSpec(G, ((G.irrep(2), G.irrep(2)),), hidden_channels=4, hidden_layers=1)
    mlp = G.build_kernel_mlp(spec).float().double()
    errors, _ = _block_errors(mlp, spec, G.sample(3, generator=torch.Generator().manual_seed(6)), torch.float64)
    assert max(errors) <= F64_BOUND
    # loading a float32 state dict into a float64 module keeps the float64 constants too
    fresh = G.build_kernel_mlp(spec).double()
    fresh.load_state_dict(G.build_kernel_mlp(spec).state_dict())
    buffers = dict(fresh.named_buffers())
    masters = fresh.constants.tracked
    assert masters and all(torch.equal(buffers[k], m) for k, m in masters.items())


# -- the scalar form (fast path without non-invariant attributes) ---------------------------------
SCALAR_FORM_BOUND = 2e-14  # relative, float64; measured <= 1.6e-15 (values), <= 1.9e-15 (gradients): 10x margin


def _values_and_gradients(mlp, pos, attr, scalar_form: bool, forms: bool = True):
    """``mlp(pos, attr)`` and the gradients of a fixed random weighting of it with respect to the
    positions, the attributes and every parameter (float64)."""
    mlp.scalar_form, mlp.use_forms = scalar_form, forms
    pos = pos.clone().requires_grad_(True)
    attr = None if attr is None else attr.clone().requires_grad_(True)
    out = mlp(pos, attr)
    weights = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(11))
    inputs = [pos, *([] if attr is None else [attr]), *mlp.parameters()]
    grads = torch.autograd.grad((out * weights).sum(), inputs, allow_unused=True)
    return out.detach(), [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


@pytest.mark.parametrize(
    "hidden_layers,hidden_lmax,invariant_attr",
    [(0, 2, False), (1, 2, False), (1, 2, True), (2, 0, False), (3, 3, True)],
)
def test_scalar_form_equals_the_e3nn_modules(G, hidden_layers, hidden_lmax, invariant_attr):
    """Without non-invariant attributes the MLP runs in scalar form (``.radial``); it must give the
    values and gradients (positions, attributes, every parameter) of e3nn's modules, float64, also at
    and next to the origin; with a non-invariant attribute there is no scalar form."""
    attrs = G.field_type("2x0e") if invariant_attr else None
    spec = KernelMLPSpec(
        G, _mixed_blocks(G), attrs, hidden_channels=5, hidden_layers=hidden_layers, options={"hidden_lmax": hidden_lmax}
    )
    torch.manual_seed(1)
    mlp = G.build_kernel_mlp(spec).double()
    assert mlp.scalar_form and mlp.radial_form is not None
    _rerandomised(mlp)()  # N(0, 1) weights: every path with weight, not only e3nn's init scale
    gen = torch.Generator().manual_seed(12)
    pos = torch.randn(16, 3, dtype=torch.float64, generator=gen)
    pos[0] = 0.0
    pos[1] *= 1e-4  # inside the origin scale
    attr = None if attrs is None else torch.randn(16, 2, dtype=torch.float64, generator=gen)
    fast, fast_grads = _values_and_gradients(mlp, pos, attr, True)
    ref, ref_grads = _values_and_gradients(mlp, pos, attr, False)
    assert float((fast - ref).norm() / ref.norm()) <= SCALAR_FORM_BOUND
    names = ["pos", *([] if attr is None else ["attr"]), *(name for name, _ in mlp.named_parameters())]
    assert len(names) == len(fast_grads) == len(ref_grads)
    for name, f, r in zip(names, fast_grads, ref_grads):
        assert torch.isfinite(f).all(), name
        assert float((f - r).norm()) <= SCALAR_FORM_BOUND * max(float(r.norm()), 1e-300), name
    vector = KernelMLPSpec(G, _mixed_blocks(G)[:4], G.field_type("0e + 1o"), hidden_layers=1)
    with_vector = G.build_kernel_mlp(vector)
    assert with_vector.radial_form is None and not with_vector.scalar_form


def _check_forms(G, mlp, spec, pos, attr, seed: int) -> None:
    """With :attr:`use_forms` every form runs once (hooks) and the MLP has the values and gradients
    (positions, attributes, every parameter) of e3nn's modules alone (float64); then the kernel with
    the forms is equivariant and no block vanishes."""
    calls = []
    hooks = [form.register_forward_hook(lambda *_: calls.append(1)) for form in [mlp.first_form, *mlp.forms.values()]]
    fast, fast_grads = _values_and_gradients(mlp, pos, attr, False, forms=True)
    ref, ref_grads = _values_and_gradients(mlp, pos, attr, False, forms=False)
    for hook in hooks:
        hook.remove()
    assert len(calls) == len(hooks)  # the forms ran in the fast pass, e3nn's modules in the reference
    assert float((fast - ref).norm() / ref.norm()) <= SCALAR_FORM_BOUND
    names = ["pos", "attr", *(name for name, _ in mlp.named_parameters())]
    for name, f, r in zip(names, fast_grads, ref_grads, strict=True):
        assert torch.isfinite(f).all(), name
        assert float((f - r).norm()) <= SCALAR_FORM_BOUND * max(float(r.norm()), 1e-300), name
    mlp.use_forms = True
    errors, norms = _block_errors(mlp, spec, G.sample(3, generator=torch.Generator().manual_seed(seed)), torch.float64)
    assert max(errors) <= F64_BOUND and min(norms) > 1e-3


@pytest.mark.parametrize("outer_blocks", [False, True])
@pytest.mark.parametrize("hidden_layers", [1, 2])
def test_forms_equal_the_e3nn_modules(G, hidden_layers, outer_blocks, monkeypatch):
    """With a vector attribute the first tensor product runs through its path values
    (``.edge_weighted``) and the shared-weight ones as ``(e ⊗ h) @ A`` (``.bilinear``) where ``A`` is
    dense enough, else per output irrep (``.shared_weight``; in O(3) at these degrees): the values
    and gradients (positions, attributes, every parameter) of e3nn's modules, float64, also at the
    origin and after a float32 round trip; and equivariant.  ``outer_blocks``: the outer products of
    ``steerable.ops.outer`` and of the per-output-irrep form are formed a few edges at a time (as
    on large graphs)."""
    import steerable.ops.outer
    import steerable.plugins.e3nn_backend.shared_weight as shared_weight
    from steerable.plugins.e3nn_backend.bilinear import MIN_DENSITY, BilinearForm
    from steerable.plugins.e3nn_backend.shared_weight import SharedWeightForm

    if outer_blocks:
        monkeypatch.setattr(steerable.ops.outer, "BLOCK_VALUES", 256)
        monkeypatch.setattr(shared_weight, "BLOCK_VALUES", 256)

    attrs = G.field_type("1o")
    reps = [G.irrep(0, 1), G.irrep(1, -1)]
    blocks = tuple((o, i) for o in reps for i in reps)
    spec = KernelMLPSpec(G, blocks, attrs, hidden_channels=4, hidden_layers=hidden_layers)
    torch.manual_seed(2)
    mlp = G.build_kernel_mlp(spec).float().double()  # the constants come back exact
    expected = ["out_tp", "tps_0"] if hidden_layers == 2 else ["out_tp"]
    assert not mlp.scalar_form and sorted(mlp.forms) == expected and mlp.first_form is not None
    # O(3): both parities in the hidden field make A sparser than MIN_DENSITY
    kind = SharedWeightForm if G.name == "O(3)" else BilinearForm
    assert all(type(form) is kind for form in mlp.forms.values())
    assert all(form.density >= MIN_DENSITY for form in mlp.forms.values() if kind is BilinearForm)
    _rerandomised(mlp)()
    gen = torch.Generator().manual_seed(21)
    pos = torch.randn(16, 3, dtype=torch.float64, generator=gen)
    pos[0] = 0.0
    attr = torch.randn(16, 3, dtype=torch.float64, generator=gen)
    attr[1] = 0.0
    _check_forms(G, mlp, spec, pos, attr, seed=22)


def test_bilinear_form_only_where_it_pays(G):
    """Blocks up to degree 2 make the output layer's ``A`` sparser than :data:`MIN_DENSITY`: the
    per-output-irrep form runs there (measured faster for training); a module with external weights
    has no bilinear form."""
    from e3nn import o3

    from steerable.plugins.e3nn_backend.bilinear import MIN_DENSITY, BilinearForm, nonzero_entries
    from steerable.plugins.e3nn_backend.shared_weight import SharedWeightForm

    reps = [G.irrep(0, 1), G.irrep(1, -1), G.irrep(2, 1)]
    spec = KernelMLPSpec(G, tuple((o, i) for o in reps for i in reps), G.field_type("1o"), hidden_layers=1)
    assert type(G.build_kernel_mlp(spec).forms["out_tp"]) is SharedWeightForm
    external = o3.FullyConnectedTensorProduct("2x1e", "1x1e", "2x0e", shared_weights=False, internal_weights=False)
    assert BilinearForm.if_worthwhile(external) is None
    with pytest.raises(RuntimeError, match="own"):
        BilinearForm(external)
    # the density is counted per path before any index is built; the count is the built form's
    cases = {("2x0e+2x1o", "1x0e+1x1o"): True, ("2x0e+2x1o", "1x1o"): False, ("2x0e+2x1o+2x2e", "1x0e+1x1o"): False}
    for (irreps, attribute), dense in cases.items():  # densities 0.156, 0.125, 0.114
        tp = o3.FullyConnectedTensorProduct(irreps, attribute, irreps).double()
        form = BilinearForm(tp)
        assert nonzero_entries(tp) == int((form.coefficient != 0).sum())
        assert (form.density >= MIN_DENSITY) == dense
        assert (BilinearForm.if_worthwhile(tp) is not None) == dense


def test_edge_weighted_form_equals_the_tensor_product():
    """The first layer's form (``.edge_weighted``) on a tensor product with several input copies, an
    output no path reaches and unequal numbers of pairs (path, input copies) per output irrep:
    e3nn's values and the gradients of both inputs and the weights (float64), also for no edges;
    modules it cannot read are refused."""
    from e3nn import o3

    from steerable.plugins.e3nn_backend.edge_weighted import EdgeWeightedForm
    from steerable.plugins.e3nn_backend.group import float64_default

    with float64_default():
        tp = o3.FullyConnectedTensorProduct(
            "2x0e+1x1o", "0e+2x1o+2e", "8x0e+3x1e+8x1o+8x2e+2x3o+1x4e", shared_weights=False, internal_weights=False
        )
    form = EdgeWeightedForm(tp)
    assert len(form.pair_outputs) == sum(ins.path_shape[0] * ins.path_shape[1] for ins in tp.instructions)
    gen = torch.Generator().manual_seed(31)
    dims = (tp.irreps_in1.dim, tp.irreps_in2.dim, tp.weight_numel)
    inputs = [torch.randn(9, n, dtype=torch.float64, generator=gen) for n in dims]
    inputs[1][0] = 0.0
    fast, ref = [], []
    for module, store in ((form, fast), (tp, ref)):
        leaves = [x.clone().requires_grad_(True) for x in inputs]
        out = module(*leaves)
        cotangent = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(32))
        store.extend([out.detach(), *torch.autograd.grad((out * cotangent).sum(), leaves)])
    for f, r in zip(fast, ref, strict=True):
        assert float((f - r).norm()) <= SCALAR_FORM_BOUND * float(r.norm())
    assert fast[0][:, -9:].abs().max() == 0  # 1x4e: no path
    assert form(*(x[:0] for x in inputs)).shape == (0, tp.irreps_out.dim)
    with pytest.raises(ValueError, match="do not match"):
        form(inputs[0], inputs[1][:, :-1], inputs[2])
    shared = o3.FullyConnectedTensorProduct("2x1e", "1x1e", "2x0e")
    with pytest.raises(RuntimeError, match="per-sample"):
        EdgeWeightedForm(shared)
    with float64_default():
        unweighted = o3.TensorProduct(
            "1x1e", "1x1e", "1x0e", [(0, 0, 0, "uuu", False)], shared_weights=False, internal_weights=False
        )
    with pytest.raises(RuntimeError, match="weighted 'uvw'"):
        EdgeWeightedForm(unweighted)


@pytest.mark.parametrize("edge_blocks", [False, True])
def test_shared_weight_form_equals_the_tensor_product(edge_blocks, monkeypatch):
    """The per-output-irrep form (``.shared_weight``) on a tensor product with several copies of the
    first input's irreps, an output no path reaches and paths from every input irrep: e3nn's values
    (with and without gradients) and the gradients of both inputs and the weights (float64), also
    for no edges; modules it cannot read are refused.  ``edge_blocks``: a few edges at a time."""
    from e3nn import o3

    import steerable.plugins.e3nn_backend.shared_weight as shared_weight
    from steerable.plugins.e3nn_backend.group import float64_default
    from steerable.plugins.e3nn_backend.shared_weight import SharedWeightForm

    if edge_blocks:  # 4 edges per block (the largest outer product: 2 x 5 x 12 values per edge)
        monkeypatch.setattr(shared_weight, "BLOCK_VALUES", 480)
    with float64_default():
        tp = o3.FullyConnectedTensorProduct("3x0e+2x1o+2x2e", "0e+1o+2e+1o", "4x0e+3x1o+2x2e+2x3o+1x5e")
        tp.weight.data.normal_()
    form = SharedWeightForm(tp)
    gen = torch.Generator().manual_seed(35)
    inputs = [torch.randn(9, n, dtype=torch.float64, generator=gen) for n in (tp.irreps_in1.dim, tp.irreps_in2.dim)]
    inputs[1][0] = 0.0
    fast, ref = [], []
    for call, store in ((lambda a, b: form(tp, a, b), fast), (tp, ref)):
        leaves = [x.clone().requires_grad_(True) for x in inputs]
        tp.weight.grad = None
        out = call(*leaves)
        cotangent = torch.randn(out.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(36))
        (out * cotangent).sum().backward()
        store.extend([out.detach(), *(x.grad for x in leaves), tp.weight.grad.clone()])
    for f, r in zip(fast, ref, strict=True):
        assert float((f - r).norm()) <= SCALAR_FORM_BOUND * float(r.norm())
    assert fast[0][:, -11:].abs().max() == 0  # 1x5e: no path
    with torch.no_grad():
        assert float((form(tp, *inputs) - ref[0]).norm()) <= SCALAR_FORM_BOUND * float(ref[0].norm())
    assert form(tp, *(x[:0] for x in inputs)).shape == (0, tp.irreps_out.dim)
    with pytest.raises(ValueError, match="do not match"):
        form(tp, inputs[0], inputs[1][:, :-1])
    with float64_default():
        two_copies = o3.FullyConnectedTensorProduct("2x1o", "2x1o", "2x0e")
        external = o3.FullyConnectedTensorProduct("2x1o", "1x1o", "2x0e", shared_weights=False, internal_weights=False)
    for other in (two_copies, external):
        assert not SharedWeightForm.applies(other)
        with pytest.raises(RuntimeError, match="expected shared internal weights"):
            SharedWeightForm(other)


@pytest.mark.parametrize("hidden_layers", [0, 1])
def test_first_layer_form_in_the_kernel_mlp(G, hidden_layers):
    """With invariant and vector attributes and blocks up to degree 2 (no bilinear form there) the
    first tensor product runs through its form and the output one per output irrep: the MLP's
    values and gradients (positions, attributes, every parameter) equal e3nn's modules' (float64),
    and the kernel is equivariant."""
    reps = [G.irrep(0, 1), G.irrep(1, -1), G.irrep(2, 1)]
    spec = KernelMLPSpec(
        G,
        tuple((o, i) for o in reps for i in reps),
        G.field_type("0e + 1o"),
        hidden_channels=4,
        hidden_layers=hidden_layers,
    )
    torch.manual_seed(3)
    mlp = G.build_kernel_mlp(spec).double()
    assert mlp.first_form is not None and not mlp.scalar_form
    assert sorted(mlp.forms) == ([] if hidden_layers == 0 else ["out_tp"])
    assert all(type(form).__name__ == "SharedWeightForm" for form in mlp.forms.values())
    _rerandomised(mlp)()
    gen = torch.Generator().manual_seed(33)
    pos = torch.randn(12, 3, dtype=torch.float64, generator=gen)
    pos[0] = 0.0
    attr = torch.randn(12, 4, dtype=torch.float64, generator=gen)
    attr[1, 1:] = 0.0
    _check_forms(G, mlp, spec, pos, attr, seed=34)


def test_pieces_equal_the_whole_output(G):
    """The streaming protocol: one piece per block type, lined up with a shared-basis kernel's pairs
    (so the core uses them), whose concatenation has the values and gradients of ``mlp(pos)``
    (float64, exactly: the same operations), in the scalar form and through e3nn's modules."""
    from steerable.core.mlp import StreamingKernelMLP

    reps = [G.irrep(0, 1), G.irrep(1, -1), G.irrep(2, 1)]
    pairs = [(o, i) for o in reps for i in reps]
    spec = KernelMLPSpec(G, tuple(p for p in pairs for _ in range(3)), hidden_layers=1)  # 3 basis kernels a pair
    mlp = G.build_kernel_mlp(spec).double()
    assert isinstance(mlp, StreamingKernelMLP)
    assert mlp.piece_sizes == [3 * o.size * i.size for o, i in pairs]
    pos = torch.randn(9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(13))
    for scalar_form in (True, False):
        mlp.scalar_form = scalar_form
        whole = mlp(pos)
        pieces = list(mlp.pieces(pos))
        assert [p.shape[1] for p in pieces] == mlp.piece_sizes
        assert torch.equal(torch.cat(pieces, dim=1), whole)
        weights = torch.randn(whole.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(14))
        params = list(mlp.parameters())
        g_whole = torch.autograd.grad((whole * weights).sum(), params, allow_unused=True)
        g_pieces = torch.autograd.grad((torch.cat(pieces, dim=1) * weights).sum(), params, allow_unused=True)
        for a, b in zip(g_whole, g_pieces):
            assert (a is None and b is None) or torch.allclose(a, b, rtol=1e-14, atol=0)
    conv = st.PointConv(G.field_type("0e + 1o"), G.field_type("0e + 1o"), max_radius=1.0)
    inner = next(m for m in conv.modules() if hasattr(m, "piece_sizes"))
    assert inner.piece_sizes == [conv.kernel.basis_size * p.out_rep.size * p.in_rep.size for p in conv.kernel.pairs]


def test_scalar_form_refuses_a_layer_it_cannot_read(G):
    """The read-off of a tensor product's constants checks its assumptions: a second operand with two
    copies of a degree has no scalar form."""
    from e3nn import o3

    from steerable.plugins.e3nn_backend.radial import _harmonics, _single_layer, _slots

    sh = o3.SphericalHarmonics("0e + 1e", normalize=False, normalization="component")
    ys = _harmonics(sh, 1)
    tp = o3.FullyConnectedTensorProduct("2x1e", "2x0e", "3x1e").double()
    with pytest.raises(RuntimeError, match="one copy per degree"):
        _single_layer(tp, _slots(tp.irreps_in1), _slots(tp.irreps_out), ys, False)


# -- completeness ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "out_irrep,in_irrep",
    [((1, -1), (1, -1)), ((1, -1), (1, 1)), ((2, 1), (1, -1)), ((0, 1), (2, 1)), ((2, 1), (2, 1))],
)
def test_block_reaches_the_whole_kernel_space(G, out_irrep, in_irrep):
    ro, ri = G.irrep(*out_irrep), G.irrep(*in_irrep)
    spec = KernelMLPSpec(G, ((ro, ri),), hidden_channels=4, hidden_layers=1)
    if _forced_zero(G, ro, ri):
        pytest.skip("forced to zero")
    rank = kernel_span_rank(_rerandomised(G.build_kernel_mlp(spec)), X0[None], n_inits=30)
    allowed = commutant_dimension(_stabiliser_of_x0(G), FieldType(G, [ro]), FieldType(G, [ri]))
    assert rank == allowed
    if (ro.name, ri.name) == ("standard", "standard"):
        assert rank == (3 if G.name == "SO(3)" else 2)  # I, x x^T [, cross product: a pseudo-tensor]
    if G.name == "O(3)" and ri is G.irrep(1, 1) and ro is G.standard_rep():
        assert rank == 1  # pseudo-vector -> vector: only the cross product with x


@pytest.mark.parametrize(
    "out_irrep,in_irrep,expected",
    [
        ((1, -1), (1, -1), {"SO(3)": 9, "O(3)": 5}),
        ((1, 1), (0, 1), {"SO(3)": 3, "O(3)": 1}),
        ((2, 1), (1, -1), {"SO(3)": 15, "O(3)": 8}),
    ],
)
def test_completeness_with_a_vector_attribute(G, out_irrep, in_irrep, expected):
    """With a second vector ``a`` the stabiliser of ``(x, a)`` shrinks (trivial in SO(3), the reflection
    through the plane of x and a in O(3)); the block must reach the larger space, e.g. 1o -> 1o: 9 or 5,
    and in O(3) 0e -> 1e, forced to zero by x alone, becomes x × a (1 dimension)."""
    a0 = torch.tensor([0.2, 0.1, 0.7], dtype=torch.float64)
    ro, ri = G.irrep(*out_irrep), G.irrep(*in_irrep)
    spec = KernelMLPSpec(G, ((ro, ri),), G.field_type("1o"), hidden_channels=4, hidden_layers=2)
    rank = kernel_span_rank(_rerandomised(G.build_kernel_mlp(spec)), X0[None], a0[None], n_inits=30)
    mats = [_reflection(torch.linalg.cross(X0, a0))] if G.name == "O(3)" else [torch.eye(3, dtype=torch.float64)]
    allowed = commutant_dimension(G.elements_from_matrices(torch.stack(mats)), FieldType(G, [ro]), FieldType(G, [ri]))
    assert allowed == expected[G.name]
    assert rank == allowed


# -- layers, through the core ---------------------------------------------------------------------
@pytest.mark.slow  # ~10 s per case (all 24/48 lattice symmetries); the mixed-field test below is the fast one
@pytest.mark.parametrize("dtype,bound", [(torch.float64, F64_BOUND), (torch.float32, F32_BOUND)])
def test_layers_are_equivariant(G, dtype, bound):
    """The core's own report (default MLP size: 16 channels, 2 layers) on trivial + standard + l=2."""
    torch.manual_seed(0)
    report = layer_report(G, dtype=dtype)
    assert set(report) == {"kernel", "point conv", "grid conv"}
    assert max(report.values()) <= bound, report


def test_point_conv_with_mixed_fields_and_edge_attributes(G):
    torch.manual_seed(0)
    f_in, f_out = G.field_type("2x0e + 1o + 2e"), G.field_type("0e + 2x1o + 1e")
    attrs = G.field_type("0e + 1o + 1e") if G.name == "O(3)" else G.field_type("0e + 1o")
    conv = st.PointConv(f_in, f_out, edge_attr=attrs, hidden_channels=4, hidden_layers=1, max_radius=1.0)
    grid = st.GridConv(f_in, f_out, 3, padding=1, hidden_channels=4, hidden_layers=1)
    mats = lattice_elements(G).matrices  # 24 (SO(3)) or 48 (O(3)) signed permutations: take a few
    lattice = G.elements_from_matrices(
        torch.cat([mats[1::7], -torch.eye(3, dtype=torch.float64)[None]]) if G.name == "O(3)" else mats[1::7]
    )
    for dtype, bound in [(torch.float64, F64_BOUND), (torch.float32, F32_BOUND)]:
        assert check_equivariance(conv, n_elements=3, n_points=12, dtype=dtype) <= bound
        assert check_equivariance(grid, elements=lattice, grid_size=5, dtype=dtype) <= bound


def test_trivial_and_standard_reps_of_another_backend_are_interchangeable():
    """Trivial and standard reps use the same basis on every backend: field types built from them
    compare equal across backends, and the e3nn MLP accepts another backend's copies of them (the
    spec maps them onto e3nn's own); a non-portable irrep of escnn is refused, naming both groups."""
    pytest.importorskip("escnn")
    E, G = st.group("SO(3)", backend="escnn"), st.group("SO(3)", backend="e3nn")
    assert FieldType(E, [E.trivial_rep(), E.standard_rep()]) == FieldType(G, [G.trivial_rep(), G.standard_rep()])
    els = G.sample(4, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(E.standard_rep().matrices(els), G.standard_rep().matrices(els), atol=1e-10)
    spec = KernelMLPSpec(G, ((E.standard_rep(), E.trivial_rep()), (G.irrep(2), E.standard_rep())), hidden_layers=1)
    assert spec.blocks[0] == (G.standard_rep(), G.trivial_rep()) and spec.blocks[0][0] is G.standard_rep()
    errors, norms = _block_errors(G.build_kernel_mlp(spec), spec, els, torch.float64)
    assert max(errors) <= F64_BOUND and min(norms) > 1e-3
    refused = r"irrep\(2\).*SO\(3\) on R\^3 \[escnn\] cannot be used with SO\(3\) on R\^3 \[e3nn\]"
    with pytest.raises(ValueError, match=refused):
        KernelMLPSpec(G, ((E.irrep(2), E.trivial_rep()),))


# -- registry -------------------------------------------------------------------------------------
def test_found_through_the_entry_point():
    st.reset_registry()
    try:
        rows = {row.name: row for row in st.list_backends()}
        assert rows["e3nn"].available and rows["e3nn"].reason is None
        assert rows["e3nn"].groups == ["SO(3)", "O(3)"]
        assert st.group("so3", backend="e3nn").backend == "e3nn"
        with pytest.raises(ValueError, match=r"not on R\^2"):
            st.group("SO(3)", dim=2, backend="e3nn")
    finally:
        st.reset_registry()


def test_plugin_import_is_light():
    import subprocess

    code = "import sys, steerable.plugins.e3nn_backend as p; p.steerable_backends(); print('e3nn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_e3nn_is_reported_and_isolated(monkeypatch):
    for name in [m for m in sys.modules if m == "e3nn" or m.startswith(("e3nn.", "steerable.plugins.e3nn_backend."))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "e3nn", None)  # `import e3nn` now raises ImportError
    st.reset_registry()
    try:
        rows = {row.name: row for row in st.list_backends()}
        assert not rows["e3nn"].available and "e3nn" in rows["e3nn"].reason
        with pytest.raises(RuntimeError, match="backend 'e3nn' is unavailable"):
            st.group("SO(3)", backend="e3nn")
        if "escnn" in rows and rows["escnn"].available:
            assert st.group("SO(3)").backend == "escnn"
    finally:
        st.reset_registry()
