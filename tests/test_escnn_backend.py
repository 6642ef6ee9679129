"""Tests of the escnn backend: groups, conventions, kernel MLP equivariance and completeness.

Bounds (relative error ``|mlp(g.x) - kron(out(g), in(g)) mlp(x)| / |mlp(x)|``):
float64 <= 1e-5 and float32 <= 1e-4 (measured: ~1e-16..1e-7 in float64, the floor being escnn's
float32-stored bases; ~1e-7..1e-6 in float32).

The finite 3D groups with inversion (FullOcta, FullIco) take several seconds to build (escnn builds
their regular representations in Python), so their MLP tests are marked slow.
"""
from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("escnn")

import steerable as st  # noqa: E402
from steerable.core.group import GroupElements  # noqa: E402
from steerable.core.mlp import KernelMLPSpec  # noqa: E402
from steerable.core.representation import FieldType, tensor_matrices  # noqa: E402

# (name, dim, order, slow MLP)
GROUPS = [
    ("SO(2)", 2, None, False),
    ("O(2)", 2, None, False),
    ("C8", 2, 8, False),
    ("D4", 2, 8, False),
    ("SO(2)", 3, None, False),
    ("O(2)", 3, None, False),
    ("C4", 3, 4, False),
    ("D3", 3, 6, False),
    ("SO(3)", 3, None, False),
    ("O(3)", 3, None, False),
    ("Octa", 3, 24, False),
    ("FullOcta", 3, 48, True),
    ("Ico", 3, 60, False),
    ("FullIco", 3, 120, True),
]
IDS = [f"{n}-R{d}" for n, d, _, _ in GROUPS]
MLP_PARAMS = [
    pytest.param(n, d, marks=pytest.mark.slow) if slow else (n, d) for n, d, _, slow in GROUPS
]
MLP_IDS = [f"{n}-R{d}" for n, d, _, _ in GROUPS]


def G_(name: str, dim: int):
    return st.group(name, dim=dim, backend="escnn")


def higher_rep(G):
    """A non-trivial irrep of higher frequency / dimension than the standard representation."""
    n = G.name
    if n in ("SO(2)", "SO(3)"):
        return G.irrep(2)
    if n == "O(2)":
        return G.irrep(1, 2)
    if n == "O(3)":
        return G.irrep(0, 2)
    if n[0] == "C":
        return G.irrep(min(2, int(n[1:]) // 2))
    if n[0] == "D":
        N = int(n[1:])
        return G.irrep(1, 2) if N > 4 else G.irrep(1, 1) if N < 4 else G.irrep(0, 2)
    return max(reversed(G.irreps()), key=lambda r: r.size)  # Octa: irrep(3) (T2), not T1 = standard


def blocks_of(G):
    T, S, Hr = G.trivial_rep(), G.standard_rep(), higher_rep(G)
    return ((T, T), (S, S), (Hr, S), (S, Hr), (T, Hr))


def expected_block(out: torch.Tensor, spec: KernelMLPSpec, elements: GroupElements) -> torch.Tensor:
    """``kron(out_b(g), in_b(g)) @ out[block b]`` for one element, all blocks."""
    parts, off = [], 0
    for ro, ri in spec.blocks:
        K = tensor_matrices(ro.matrices(elements), ri.matrices(elements))[0].to(out)
        d = ro.size * ri.size
        parts.append(out[:, off : off + d] @ K.T)
        off += d
    return torch.cat(parts, 1)


def equivariance_error(mlp, G, dtype, n_el: int = 4, attr_type: FieldType | None = None) -> float:
    mlp = mlp.to(dtype)
    gen = torch.Generator().manual_seed(3)
    pos = torch.randn(16, G.dim, generator=gen, dtype=torch.float64).to(dtype)
    attr = None if attr_type is None else torch.randn(16, attr_type.size, generator=gen, dtype=torch.float64).to(dtype)
    out = mlp(pos, attr)
    els = G.sample(n_el, gen)
    worst = 0.0
    for k in range(n_el):
        g = els[k]
        M = g.matrices[0].to(dtype)
        attr_g = None if attr is None else attr_type.transform(attr, g)
        moved = mlp(pos @ M.T, attr_g)
        err = (moved - expected_block(out, mlp.spec, g)).norm() / out.norm()
        worst = max(worst, float(err.detach()))
    return worst


# -- groups ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,dim,order,_slow", GROUPS, ids=IDS)
def test_group_basics(name, dim, order, _slow):
    G = G_(name, dim)
    assert G.name == name and G.dim == dim and G.order == order and G.backend == "escnn"
    T, S = G.trivial_rep(), G.standard_rep()
    assert T.is_trivial and T.size == 1 and not S.is_trivial and S.size == dim
    assert G.standard_rep() is S and G.trivial_rep() is T  # cached objects
    gen = torch.Generator().manual_seed(0)
    els = G.sample(6, gen)
    # standard-rep convention: the element matrices are the standard representation, orthogonal
    torch.testing.assert_close(S.matrices(els), els.matrices, atol=1e-12, rtol=0)
    eye = torch.eye(dim, dtype=torch.float64).expand(6, dim, dim)
    torch.testing.assert_close(els.matrices @ els.matrices.transpose(1, 2), eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(T.matrices(els), torch.ones(6, 1, 1, dtype=torch.float64))
    # round trip through matrices; reps evaluate on elements recognised from matrices
    back = G.elements_from_matrices(els.matrices)
    torch.testing.assert_close(back.matrices, els.matrices, atol=1e-12, rtol=0)
    plain = GroupElements(G, els.matrices)  # no native handles
    torch.testing.assert_close(S.matrices(plain), els.matrices, atol=1e-12, rtol=0)
    # homomorphism: matrices of products
    a, b = G.sample(1, gen), G.sample(1, gen)
    ab = G.elements_from_matrices(a.matrices @ b.matrices)
    R = higher_rep(G)
    torch.testing.assert_close(R.matrices(ab)[0], R.matrices(a)[0] @ R.matrices(b)[0], atol=1e-9, rtol=0)
    if order is not None:
        allel = G.elements()
        assert len(allel) == order
        flat = allel.matrices.flatten(1)
        assert torch.cdist(flat, flat).add(torch.eye(order, dtype=torch.float64)).min() > 1e-3  # distinct
        torch.testing.assert_close(G.elements_from_matrices(allel.matrices).matrices, allel.matrices)
        if order <= 60:  # escnn builds FullIco's regular representation slowly (~10 s)
            assert G.regular_rep().size == order and G.regular_rep() is G.regular_rep()
    else:
        with pytest.raises(ValueError):
            G.elements()


@pytest.mark.parametrize("name,dim,order,_slow", GROUPS, ids=IDS)
def test_bad_matrix(name, dim, order, _slow):
    G = G_(name, dim)
    bad = torch.eye(dim, dtype=torch.float64)
    bad[0, 0] = 2.0  # not orthogonal
    with pytest.raises(ValueError, match="not an element"):
        G.elements_from_matrices(bad[None])
    # an orthogonal matrix outside the group (every orthogonal matrix is in O(2) on R^2 / O(3))
    c, s = math.cos(0.3), math.sin(0.3)
    if (name, dim) in (("O(2)", 2), ("O(3)", 3)):
        return
    if dim == 2:
        rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
        m = rot if name[0] == "D" else rot @ torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    elif name == "SO(3)":
        m = -torch.eye(3, dtype=torch.float64)
    else:
        m = torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)  # about x
    with pytest.raises(ValueError, match="not an element"):
        G.elements_from_matrices(m[None])


def test_so3_o3_matrices_and_conventions():
    S3, O3 = G_("SO(3)", 3), G_("O(3)", 3)
    with pytest.raises(ValueError):
        S3.elements_from_matrices(-torch.eye(3, dtype=torch.float64)[None])
    inv = O3.elements_from_matrices(-torch.eye(3, dtype=torch.float64)[None])
    torch.testing.assert_close(O3.irrep(1, 0).matrices(inv), -torch.ones(1, 1, 1, dtype=torch.float64))
    torch.testing.assert_close(O3.irrep(0, 1).matrices(inv), torch.eye(3, dtype=torch.float64)[None])
    # planar groups on R^3 fix z; O(2)/D_N mirror planes contain z (diag(1, -1, 1) is in the group)
    for name in ("O(2)", "D4"):
        G = G_(name, 3)
        m = G.elements_from_matrices(torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64))[None])
        assert m.matrices.shape == (1, 3, 3)
    for name in ("SO(2)", "O(2)", "C4", "D4"):
        els = G_(name, 3).sample(5, torch.Generator().manual_seed(1)).matrices
        torch.testing.assert_close(els[:, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(5, 3))
        # the (x, y) block is the planar group's matrix
        planar = G_(name, 2)
        planar.elements_from_matrices(els[:, :2, :2])
    # 2D reflections: diag(1, -1) belongs to O(2) and D_N
    for name in ("O(2)", "D5"):
        G_(name, 2).elements_from_matrices(torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))[None])


def test_rep_caching_and_names():
    G = G_("SO(3)", 3)
    assert G.irrep(2) is G.irrep(2) and G.irrep(2).name == "irrep(2)" and G.irrep(2).size == 5
    D = G_("D4", 2)
    assert D.irrep(1, 1).name == "irrep(1,1)" and D.regular_rep().name == "regular"
    with pytest.raises(ValueError):
        G.regular_rep()


def test_tensor_product_is_row_major_kron():
    for name, dim in [("SO(3)", 3), ("O(2)", 3), ("D4", 2)]:
        G = G_(name, dim)
        a, b = G.standard_rep(), higher_rep(G)
        rep = a.native.tensor(b.native)
        els = G.sample(3, torch.Generator().manual_seed(0))
        got = torch.stack([torch.as_tensor(rep(e)) for e in els.native])
        torch.testing.assert_close(got, tensor_matrices(a.matrices(els), b.matrices(els)), atol=1e-10, rtol=0)


# -- registry ----------------------------------------------------------------------------------
def test_registry_integration():
    assert st.group("SO(3)", backend="escnn").backend == "escnn"
    c4 = st.group("C4", dim=3)
    assert c4.dim == 3 and c4.name == "C4" and c4.order == 4
    assert st.group("C4").dim == 2
    assert st.group("c4", backend="escnn") is st.group("C4", backend="escnn")
    assert st.group("Ico").order == 60 and st.group("fullocta").order == 48
    with pytest.raises(ValueError, match="known groups") as info:
        st.group("SO(4)")
    assert "SO(3)" in str(info.value) and "C{N}" in str(info.value)
    with pytest.raises(ValueError):
        st.group("SO(3)", dim=2)
    rows = {row.name: row for row in st.list_backends()}
    assert rows["escnn"].available and "Octa" in rows["escnn"].groups


def test_plugin_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, steerable.plugins.escnn_backend as m; m.steerable_backends(); print('escnn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# -- the kernel MLP ----------------------------------------------------------------------------
@pytest.mark.parametrize("name,dim", MLP_PARAMS, ids=MLP_IDS)
def test_mlp_equivariance(name, dim):
    G = G_(name, dim)
    torch.manual_seed(0)
    spec = KernelMLPSpec(G, blocks_of(G), hidden_channels=3, hidden_layers=2, radial_features=4)
    mlp = G.build_kernel_mlp(spec)
    out = mlp(torch.randn(5, dim), None)
    assert out.shape == (5, spec.out_size)
    # no block vanishes identically (all test blocks are reachable for every group)
    off = 0
    for ro, ri in spec.blocks:
        d = ro.size * ri.size
        assert out[:, off : off + d].abs().max() > 1e-6, (ro, ri)
        off += d
    assert equivariance_error(mlp, G, torch.float64) <= 1e-5
    assert equivariance_error(mlp, G, torch.float32) <= 1e-4
    # at pos = 0 only the invariant part of the embedding survives: still finite
    assert torch.isfinite(mlp.to(torch.float64)(torch.zeros(2, dim, dtype=torch.float64), None)).all()


@pytest.mark.parametrize("name,dim", [("SO(3)", 3), ("O(3)", 3), ("SO(2)", 3), ("O(2)", 2)])
def test_mlp_float64_exact_for_continuous_groups(name, dim):
    """The tensor products' change of basis is applied in float64 (escnn keeps a float32 copy,
    measured 1e-8 on SO(3) that way), so continuous groups reach float64 round-off: bound 1e-12."""
    G = G_(name, dim)
    torch.manual_seed(0)
    spec = KernelMLPSpec(G, blocks_of(G), hidden_channels=3, hidden_layers=1, radial_features=4)
    assert equivariance_error(G.build_kernel_mlp(spec), G, torch.float64) <= 1e-12


def test_mlp_gradients_finite_at_origin():
    G = G_("SO(3)", 3)
    mlp = G.build_kernel_mlp(KernelMLPSpec(G, ((G.standard_rep(), G.standard_rep()),), hidden_channels=2))
    pos = torch.zeros(3, 3, requires_grad=True)
    mlp(pos, None).sum().backward()
    assert torch.isfinite(pos.grad).all()


def test_mlp_attributes():
    G = G_("SO(3)", 3)
    T, S = G.trivial_rep(), G.standard_rep()
    attr_type = FieldType(G, [T, S, T])
    spec = KernelMLPSpec(G, ((S, S), (T, S)), attr_type=attr_type, hidden_channels=2)
    mlp = G.build_kernel_mlp(spec)
    # the vector attribute is one irrep in another basis: it enters the irrep-by-irrep layers in
    # the irrep's coordinates, exactly (float64 round-off)
    assert mlp.schur_layers is not None and any(q is not None for q in mlp._attr_bases)
    assert equivariance_error(mlp, G, torch.float64, attr_type=attr_type) <= 1e-12
    assert equivariance_error(mlp, G, torch.float32, attr_type=attr_type) <= 1e-4
    # the attributes matter
    pos, attr = torch.randn(4, 3), torch.randn(4, attr_type.size)
    mlp = mlp.float()
    assert (mlp(pos, attr) - mlp(pos, attr * 2)).abs().max() > 1e-6


def test_band_limit_choice_and_cap():
    G = G_("SO(3)", 3)
    S = G.standard_rep()
    mlp = G.build_kernel_mlp(KernelMLPSpec(G, ((G.irrep(2), S),), hidden_channels=1, hidden_layers=0))
    assert mlp.band_limit == 3  # 2 ⊗ 1 = 1 + 2 + 3
    with pytest.raises(ValueError, match="band limit cap"):
        G.build_kernel_mlp(KernelMLPSpec(G, ((G.irrep(2), S),), options={"max_band": 2}))
    O3 = G_("O(3)", 3)
    # pseudo-vector -> vector: its pseudo-scalar part can't be a function of the position
    mlp = O3.build_kernel_mlp(KernelMLPSpec(O3, ((O3.irrep(0, 1), O3.standard_rep()),), hidden_channels=1))
    assert (1, 0) in mlp.unreachable
    with pytest.raises(ValueError, match="unknown options"):
        G.build_kernel_mlp(KernelMLPSpec(G, ((S, S),), options={"nope": 1}))


def test_implicit_kernel_with_core():
    from steerable.nn.kernel import ImplicitKernel

    G = G_("D4", 2)
    fin = FieldType(G, [G.trivial_rep(), G.standard_rep()])
    fout = FieldType(G, [G.standard_rep(), G.irrep(1, 0)])
    k = ImplicitKernel(fin, fout, hidden_channels=2).double()
    pos = torch.randn(7, 2, dtype=torch.float64)
    g = G.sample(1, torch.Generator().manual_seed(0))
    K, Kg = k(pos), k(pos @ g.matrices[0].T)
    expect = fout.matrices(g)[0] @ K @ fin.matrices(g)[0].T
    assert (Kg - expect).norm() / K.norm() < 1e-6


# -- completeness ------------------------------------------------------------------------------
def _rotation(axis: torch.Tensor, angle: float) -> torch.Tensor:
    a = axis / axis.norm()
    K = torch.tensor([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K


def stabiliser(G, x0: torch.Tensor) -> GroupElements:
    """Elements (or generators) of the stabiliser of ``x0`` in ``G``."""
    u = x0 / x0.norm()
    mats = [torch.eye(G.dim, dtype=torch.float64)]
    if G.order is not None:
        els = G.elements()
        keep = ((els.matrices @ x0) - x0).norm(dim=1) < 1e-9
        return GroupElements(G, els.matrices[keep], [e for e, k in zip(els.native, keep.tolist()) if k])
    if G.name == "O(2)" and G.dim == 2:
        mats.append(2 * torch.outer(u, u) - torch.eye(2, dtype=torch.float64))
    if G.name == "O(2)" and G.dim == 3:
        n = torch.linalg.cross(torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), u)
        mats.append(torch.eye(3, dtype=torch.float64) - 2 * torch.outer(n, n) / n.dot(n))
    if G.name in ("SO(3)", "O(3)"):
        mats += [_rotation(u, a) for a in (0.7, 2.1)]
    if G.name == "O(3)":
        n = torch.linalg.cross(u, torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64))
        mats.append(torch.eye(3, dtype=torch.float64) - 2 * torch.outer(n, n) / n.dot(n))
    return G.elements_from_matrices(torch.stack(mats))


def expected_rank(ro, ri, stab: GroupElements) -> int:
    rho = tensor_matrices(ro.matrices(stab), ri.matrices(stab))
    eye = torch.eye(rho.shape[1], dtype=torch.float64)
    stacked = (rho - eye).reshape(-1, rho.shape[1])
    return rho.shape[1] - int(torch.linalg.matrix_rank(stacked, atol=1e-8))


def spanned_rank(mlp, x0: torch.Tensor, block: slice, seeds: int = 30) -> tuple[int, torch.Tensor]:
    mlp = mlp.double()
    vals = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        with torch.no_grad():
            for p in mlp.parameters():
                p.normal_()
        vals.append(mlp(x0[None], None)[0, block])
    sv = torch.linalg.svdvals(torch.stack(vals))
    return int((sv > 1e-6 * sv[0]).sum()), sv


COMPLETENESS = [
    ("SO(3)", 3, None),
    ("O(3)", 3, None),
    ("SO(2)", 2, None),
    ("O(2)", 2, None),
    ("SO(2)", 3, None),
    ("O(2)", 3, None),
    ("C8", 2, None),
    ("D4", 2, None),
    ("D4", 2, (1.0, 0.0)),  # on a mirror axis: stabiliser {e, s}
    ("C4", 3, None),
    ("D3", 3, None),
    ("Octa", 3, None),
    ("Octa", 3, (0.0, 0.0, 1.0)),  # on a 4-fold axis: stabiliser C4
    pytest.param("FullOcta", 3, None, marks=pytest.mark.slow),
    pytest.param("Ico", 3, None, marks=pytest.mark.slow),
    pytest.param("FullIco", 3, None, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,dim,point", COMPLETENESS)
def test_completeness(name, dim, point):
    G = G_(name, dim)
    x0 = torch.tensor(point if point else [0.61, -0.37, 0.52][:dim], dtype=torch.float64)
    stab = stabiliser(G, x0)
    S, Hr = G.standard_rep(), higher_rep(G)
    blocks = ((S, S), (Hr, S))
    spec = KernelMLPSpec(G, blocks, hidden_channels=4, hidden_layers=2, radial_features=4)
    mlp = G.build_kernel_mlp(spec)
    off = 0
    for ro, ri in blocks:
        d = ro.size * ri.size
        want = expected_rank(ro, ri, stab)
        got, sv = spanned_rank(mlp, x0, slice(off, off + d))
        assert got == want, (ro, ri, got, want, sv)
        off += d
    if G.name == "SO(3)":
        assert expected_rank(S, S, stab) == 3
    if G.name == "O(3)":
        assert expected_rank(S, S, stab) == 2
    if G.name in ("SO(2)", "O(2)") and dim == 2:
        assert expected_rank(S, S, stab) == (4 if G.name == "SO(2)" else 2)


# -- approximate (Fourier) nonlinearity --------------------------------------------------------
@pytest.mark.parametrize(
    "name,dim,bound",
    [
        ("SO(2)", 2, 1e-2),
        ("O(2)", 2, 1e-2),
        ("SO(2)", 3, 1e-2),
        pytest.param("SO(3)", 3, 5e-2, marks=pytest.mark.slow),  # cold escnn cache: grids take minutes
        pytest.param("O(3)", 3, 5e-2, marks=pytest.mark.slow),
    ],
)
def test_fourier_option(name, dim, bound):
    """nonlinearity='fourier' is only approximately equivariant: its error is bounded, not round-off."""
    G = G_(name, dim)
    S = G.standard_rep()
    torch.manual_seed(0)
    spec = KernelMLPSpec(G, ((S, S), (G.trivial_rep(), S)), hidden_channels=4, nonlinearity="fourier")
    mlp = G.build_kernel_mlp(spec)
    err = equivariance_error(mlp, G, torch.float64, n_el=6)
    assert 1e-12 < err <= bound
    with pytest.raises(ValueError, match="continuous"):
        D = G_("D4", 2)
        D.build_kernel_mlp(KernelMLPSpec(D, ((D.standard_rep(),) * 2,), nonlinearity="fourier"))


def test_reps_survive_registry_reset():
    """Reps of an equal group built before ``reset_registry()`` still work with the new group object."""
    old = G_("SO(3)", 3)
    S_old = old.standard_rep()
    st.reset_registry()
    new = G_("SO(3)", 3)
    assert new == old
    mlp = new.build_kernel_mlp(KernelMLPSpec(new, ((S_old, new.irrep(2)),), hidden_channels=2))
    assert equivariance_error(mlp, new, torch.float64) <= 1e-5


# -- the irrep-by-irrep pipeline (continuous groups) ------------------------------------------------
@pytest.mark.parametrize("name,dim", [("SO(3)", 3), ("O(3)", 3), ("O(2)", 2)])
def test_schur_layers_equal_the_dense_products(name, dim):
    """The Schur path multiplies only the diagonal blocks of escnn's expanded matrices: check
    that every skipped entry is zero, i.e. each layer equals its dense product (float64, 1e-12),
    and that the pieces the core consumes one by one are the MLP's output."""
    from steerable.plugins.escnn_backend.schur import ScaledRun, SchurLinear

    G = G_(name, dim)
    torch.manual_seed(0)
    spec = KernelMLPSpec(G, blocks_of(G), hidden_channels=3, hidden_layers=2, radial_features=4)
    mlp = G.build_kernel_mlp(spec).double()
    assert mlp.schur_layers is not None
    pos = torch.randn(7, dim, dtype=torch.float64)
    runs = mlp._input_runs(mlp._invariant_weights(pos, None), mlp.embedding(pos), None)
    checked = 0
    for layer in mlp.schur_layers[:-1]:
        out = layer(runs)
        if isinstance(layer, SchurLinear):
            x = torch.cat([r.tensor() if isinstance(r, ScaledRun) else r for r in runs], dim=1)
            matrix, bias = layer.linear.expand_parameters()
            dense = torch.nn.functional.linear(x, matrix, bias)
            torch.testing.assert_close(torch.cat(out, dim=1), dense, rtol=1e-12, atol=1e-12)
            checked += 1
        runs = out
    assert checked == 3  # two hidden layers and the last
    pieces = list(mlp.pieces(pos, None))
    assert [p.shape[1] for p in pieces] == mlp.piece_sizes
    torch.testing.assert_close(torch.cat(pieces, dim=1), mlp(pos, None), rtol=0, atol=0)


@pytest.mark.parametrize("values_shape", [(5, 1, 3), (5, 4, 3)])  # a harmonic shared by all copies, or one per copy
def test_scaled_linear_gradients(values_shape):
    from steerable.plugins.escnn_backend.schur import _ScaledLinear

    g = torch.Generator().manual_seed(0)
    values = torch.randn(*values_shape, generator=g, dtype=torch.float64, requires_grad=True)
    scales = torch.randn(5, 4, 1, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 12, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    expected = torch.nn.functional.linear((values * scales).flatten(1), weight, bias)
    torch.testing.assert_close(_ScaledLinear.apply(values, scales, weight, bias), expected)
    assert torch.autograd.gradcheck(_ScaledLinear.apply, (values, scales, weight, bias))
    assert torch.autograd.gradgradcheck(_ScaledLinear.apply, (values, scales, weight, bias))


def test_mlp_second_derivatives():
    """Training on forces differentiates the kernel twice: gradgradcheck through the Schur path."""
    G = G_("SO(3)", 3)
    torch.manual_seed(0)
    S = G.standard_rep()
    mlp = G.build_kernel_mlp(KernelMLPSpec(G, ((S, S), (G.trivial_rep(), S)), hidden_channels=2)).double()
    pos = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda p: mlp(p, None), (pos,))
