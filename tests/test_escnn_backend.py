"""Tests of the escnn backend: groups, conventions, kernel MLP equivariance and completeness.

Bounds (relative error ``|mlp(g.x) - kron(out(g), in(g)) mlp(x)| / |mlp(x)|``, from
``steerable.testing.mlp_equivariance_error``), set near the measured values with a stated margin:

* float64, groups that reach round-off (continuous groups, D4 on R^2, C4 on R^3): measured
  <= 7.1e-16, bound 1e-14 (14x);
* float64, the finite groups whose floor is escnn's float32-stored bases of regular
  representations and restrictions (C8, D3, Octa, Ico; FullOcta/FullIco slow): measured
  5.5e-8..1.2e-7, bound 5e-7 (4x);
* float32: measured <= 6.1e-7 (FullIco), bound 2e-6 (3.3x);
* ``nonlinearity="fourier"`` (approximate, default grids): measured 9.6e-4 (SO(2)), 7.1e-4 (O(2)),
  4.7e-4 (SO(2) on R^3), bound 2e-3 (2x..4x); slow: SO(3) 1.2e-2 (bound 2e-2), O(3) 2.7e-4 (1e-3).

The finite 3D groups with inversion (FullOcta, FullIco) take several seconds to build (escnn builds
their regular representations in Python), so their MLP tests are marked slow.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("escnn")

import steerable as st
from steerable.core.group import GroupElements
from steerable.core.mlp import KernelMLPSpec
from steerable.core.representation import FieldType, tensor_matrices
from steerable.plugins.escnn_backend.mlp import DenseKernelMLP, IrrepwiseKernelMLP
from steerable.testing import mlp_equivariance_error

ROUNDOFF_F64, FLOOR_F64, F32 = 1e-14, 5e-7, 2e-6
FOURIER = 2e-3
#: groups whose float64 error is escnn's float32 floor (bases of regular reps and restrictions)
AT_ESCNN_FLOOR = {("C8", 2), ("D3", 3), ("Octa", 3), ("FullOcta", 3), ("Ico", 3), ("FullIco", 3)}

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
MLP_PARAMS = [pytest.param(n, d, marks=pytest.mark.slow) if slow else (n, d) for n, d, _, slow in GROUPS]
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


def equivariance_error(mlp, spec: KernelMLPSpec, dtype, n_el: int = 4) -> float:
    """``steerable.testing.mlp_equivariance_error`` with this file's seeds."""
    gen = torch.Generator().manual_seed(3)
    return mlp_equivariance_error(mlp, spec, dtype=dtype, n_elements=n_el, generator=gen)


def f64_bound(name: str, dim: int) -> float:
    return FLOOR_F64 if (name, dim) in AT_ESCNN_FLOOR else ROUNDOFF_F64


# -- the documented conventions, built independently of escnn's representations ----------------
def _rot2(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _quaternion_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix of a unit quaternion ``(x, y, z, w)`` (scalar last, escnn's ``"Q"``)."""
    x, y, z, w = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _planar_on(dim: int, m: np.ndarray) -> np.ndarray:
    """A planar matrix acting on ``(x, y)`` and fixing ``z`` on R^3 (the groups.py table)."""
    return m if dim == 2 else np.block([[m, np.zeros((2, 1))], [np.zeros((1, 2)), np.ones((1, 1))]])


def documented_matrix(G, element) -> np.ndarray:
    """The coordinate action of a continuous group's escnn element, from its parameters:
    SO(2) angle θ -> R(θ); O(2) (f, θ) -> R(θ) diag(1, -1)^f; SO(3) quaternion -> its rotation;
    O(3) (f, q) -> (-1)^f R(q).  On R^3 the planar groups fix z."""
    if G.kind == "so2":
        return _planar_on(G.dim, _rot2(float(element.to("radians"))))
    if G.kind == "o2":
        flip, angle = element.to("radians")
        return _planar_on(G.dim, _rot2(float(angle)) @ np.diag([1.0, -1.0 if int(flip) else 1.0]))
    if G.kind == "so3":
        return _quaternion_matrix(np.asarray(element.to("Q")))
    flip, q = element.to("Q")
    return (-1.0) ** int(flip) * _quaternion_matrix(np.asarray(q))


def documented_elements(name: str, dim: int) -> np.ndarray | None:
    """All element matrices of a finite group by the groups.py table (``None``: Ico, FullIco)."""
    if name[0] in "CD":
        N = int(name[1:])
        mats = [_rot2(2 * math.pi * k / N) for k in range(N)]
        if name[0] == "D":
            mats += [m @ np.diag([1.0, -1.0]) for m in mats]
        return np.stack([_planar_on(dim, m) for m in mats])
    if name in ("Octa", "FullOcta"):  # signed permutation matrices (det +1 only for Octa)
        import itertools

        mats = [
            np.diag(signs)[:, perm]
            for perm in itertools.permutations(range(3))
            for signs in itertools.product((1.0, -1.0), repeat=3)
        ]
        return np.stack([m for m in mats if name == "FullOcta" or np.linalg.det(m) > 0])
    return None


def _same_sets(a: np.ndarray, b: np.ndarray, tol: float = 1e-9) -> bool:
    dist = np.abs(a[:, None] - b[None]).reshape(len(a), len(b), -1).max(-1)
    return len(a) == len(b) and bool((dist.min(1) < tol).all() and (dist.min(0) < tol).all())


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
    # standard-rep convention, checked against matrices built from the documented parameters
    # (continuous groups) or the documented element sets (finite groups), not from escnn's rep
    std = S.matrices(els).numpy()
    if order is None:
        expected = np.stack([documented_matrix(G, e) for e in els.native])
        np.testing.assert_allclose(std, expected, atol=1e-12, rtol=0)
    else:
        every = S.matrices(G.elements()).numpy()
        documented = documented_elements(name, dim)
        if documented is not None:
            assert _same_sets(every, documented)
        else:  # Ico / FullIco: a closed set of `order` orthogonal matrices, 60 of them rotations
            assert all(_same_sets(np.einsum("ij,bjk->bik", g, every), every) for g in every)
            assert int((np.linalg.det(every) > 0).sum()) == 60
    torch.testing.assert_close(S.matrices(els), els.matrices, atol=1e-12, rtol=0)  # elements carry them
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
        st.group("SU(2)")
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
    assert equivariance_error(mlp, spec, torch.float64) <= f64_bound(name, dim)
    assert equivariance_error(mlp, spec, torch.float32) <= F32
    # at pos = 0 only the invariant part of the embedding survives: still finite
    assert torch.isfinite(mlp.to(torch.float64)(torch.zeros(2, dim, dtype=torch.float64), None)).all()


@pytest.mark.parametrize("name,dim", [("SO(3)", 3), ("O(3)", 3), ("SO(2)", 3), ("O(2)", 2)])
def test_mlp_float64_exact_for_continuous_groups(name, dim):
    """The tensor products' change of basis is applied in float64 (escnn keeps a float32 copy,
    measured 1e-8 on SO(3) that way), so continuous groups reach float64 round-off, also after a
    float32 round trip (the constants live outside the buffers): bound 1e-14."""
    G = G_(name, dim)
    torch.manual_seed(0)
    spec = KernelMLPSpec(G, blocks_of(G), hidden_channels=3, hidden_layers=1, radial_features=4)
    mlp = G.build_kernel_mlp(spec)
    assert equivariance_error(mlp, spec, torch.float64) <= ROUNDOFF_F64
    assert equivariance_error(mlp.float().double(), spec, torch.float64) <= ROUNDOFF_F64


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
    assert isinstance(mlp, IrrepwiseKernelMLP)
    assert any(mlp.attr_bases.master(f"q{k}") is not None for k in range(len(mlp.attr_bases)))
    assert equivariance_error(mlp, spec, torch.float64) <= ROUNDOFF_F64
    assert equivariance_error(mlp, spec, torch.float32) <= F32
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
    with pytest.raises(ValueError, match=r"escnn backend: unknown kernel MLP options \['nope'\]; supported: .*band"):
        G.build_kernel_mlp(KernelMLPSpec(G, ((S, S),), options={"nope": 1}))
    with pytest.raises(ValueError, match="escnn backend: option 'max_band' must be Integral, got '3'"):
        G.build_kernel_mlp(KernelMLPSpec(G, ((S, S),), options={"max_band": "3"}))
    with pytest.raises(ValueError, match="escnn backend: nonlinearity='relu' is not supported .*'exact', 'fourier'"):
        G.build_kernel_mlp(KernelMLPSpec(G, ((S, S),), nonlinearity="relu"))


def test_implicit_kernel_with_core():
    from steerable.nn.kernel import ImplicitKernel

    G = G_("D4", 2)
    fin = FieldType(G, [G.trivial_rep(), G.standard_rep()])
    fout = FieldType(G, [G.standard_rep(), G.irrep(1, 0)])
    k = ImplicitKernel(fin, fout, hidden_channels=2, max_radius=1.0).double()
    pos = torch.randn(7, 2, dtype=torch.float64)
    g = G.sample(1, torch.Generator().manual_seed(0))
    K, Kg = k(pos), k(pos @ g.matrices[0].T)
    expect = fout.matrices(g)[0] @ K @ fin.matrices(g)[0].T
    assert (Kg - expect).norm() / K.norm() <= ROUNDOFF_F64  # measured 9e-16 (D4 reaches round-off)


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
        ("SO(2)", 2, FOURIER),
        ("O(2)", 2, FOURIER),
        ("SO(2)", 3, FOURIER),
        # cold escnn cache: grids take minutes.  Measured 1.2e-2 and 2.7e-4
        pytest.param("SO(3)", 3, 2e-2, marks=pytest.mark.slow),
        pytest.param("O(3)", 3, 1e-3, marks=pytest.mark.slow),
    ],
)
def test_fourier_option(name, dim, bound):
    """nonlinearity='fourier' is only approximately equivariant: its error is bounded, not round-off."""
    G = G_(name, dim)
    S = G.standard_rep()
    torch.manual_seed(0)
    spec = KernelMLPSpec(G, ((S, S), (G.trivial_rep(), S)), hidden_channels=4, nonlinearity="fourier")
    mlp = G.build_kernel_mlp(spec)
    err = equivariance_error(mlp, spec, torch.float64, n_el=6)
    assert 1e-12 < err <= bound
    with pytest.raises(ValueError, match="nonlinearity='fourier' is for continuous groups"):
        D = G_("D4", 2)
        D.build_kernel_mlp(KernelMLPSpec(D, ((D.standard_rep(),) * 2,), nonlinearity="fourier"))


def test_reps_survive_registry_reset():
    """Reps of an equal group built before ``reset_registry()`` still work with the new group object."""
    old = G_("SO(3)", 3)
    S_old = old.standard_rep()
    st.reset_registry()
    new = G_("SO(3)", 3)
    assert new == old
    assert S_old.key == new.standard_rep().key and S_old == new.standard_rep()
    spec = KernelMLPSpec(new, ((S_old, new.irrep(2)),), hidden_channels=2)
    mlp = new.build_kernel_mlp(spec)
    assert equivariance_error(mlp, spec, torch.float64) <= ROUNDOFF_F64


# -- the irrep-by-irrep pipeline (continuous groups) ------------------------------------------------
@pytest.mark.parametrize("name,dim", [("SO(3)", 3), ("O(3)", 3), ("O(2)", 2)])
def test_schur_layers_equal_the_dense_products(name, dim):
    """The irrep-wise path multiplies only the diagonal blocks of escnn's expanded matrices: check
    that every skipped entry is zero, i.e. each layer equals its dense product (float64, 1e-12),
    and that the pieces the core consumes one by one equal an independent dense evaluation of the
    last layer followed by escnn's own change of basis of each block (``rep.change_of_basis``)."""
    from steerable.plugins.escnn_backend.schur import ScaledRun, SchurLinear

    G = G_(name, dim)
    torch.manual_seed(0)
    spec = KernelMLPSpec(G, blocks_of(G), hidden_channels=3, hidden_layers=2, radial_features=4)
    mlp = G.build_kernel_mlp(spec).double()
    assert isinstance(mlp, IrrepwiseKernelMLP)
    pos = torch.randn(7, dim, dtype=torch.float64)
    runs = mlp.input_runs(mlp.invariant_weights(pos, None), mlp.embedding(pos), None)
    checked = 0
    dense_out = None
    for layer in mlp.schur_layers[:-1]:
        out = layer(runs)
        if isinstance(layer, SchurLinear):
            x = torch.cat([r.tensor() if isinstance(r, ScaledRun) else r for r in runs], dim=1)
            matrix, bias = layer.linear.expand_parameters()
            dense = torch.nn.functional.linear(x, matrix, bias)
            torch.testing.assert_close(torch.cat(out, dim=1), dense, rtol=1e-12, atol=1e-12)
            checked += 1
            dense_out = dense
        runs = out
    assert checked == 3  # two hidden layers and the last
    # the blocks from the last layer's irreps, by hand: for each run of equal blocks, its irreps
    # (copy-major runs, one per irrep of out ⊗ in) times escnn's change of basis Q of out ⊗ in
    expected, col = [], 0
    blocks = list(spec.blocks)
    while blocks:
        ro, ri = blocks[0]
        n = next((k for k, pair in enumerate(blocks) if pair != (ro, ri)), len(blocks))
        tensor = ro.native.tensor(ri.native)
        parts = []
        for irrep in tensor.irreps:
            d = G.native.irrep(*irrep).size
            parts.append(dense_out[:, col : col + n * d].reshape(-1, n, d))
            col += n * d
        q = torch.as_tensor(np.asarray(tensor.change_of_basis, dtype=np.float64))
        expected.append(torch.einsum("ij,ecj->eci", q, torch.cat(parts, dim=2)).reshape(pos.shape[0], -1))
        blocks = blocks[n:]
    assert col == dense_out.shape[1]
    pieces = list(mlp.pieces(pos, None))
    assert [p.shape[1] for p in pieces] == mlp.piece_sizes == [e.shape[1] for e in expected]
    for piece, want in zip(pieces, expected):
        torch.testing.assert_close(piece, want, rtol=1e-12, atol=1e-12)


def test_pipeline_choice_and_protocols():
    """Continuous groups with irreducible inputs stream their output (StreamingKernelMLP); finite
    groups and restricted harmonics use the dense pipeline, which does not claim to."""
    from steerable.core.mlp import KernelMLP, StreamingKernelMLP

    for (name, dim), pipeline in {
        ("SO(3)", 3): IrrepwiseKernelMLP,
        ("O(2)", 2): IrrepwiseKernelMLP,
        ("D4", 2): DenseKernelMLP,
        ("SO(2)", 3): DenseKernelMLP,
    }.items():
        G = G_(name, dim)
        mlp = G.build_kernel_mlp(KernelMLPSpec(G, ((G.standard_rep(), G.standard_rep()),), hidden_channels=2))
        assert type(mlp) is pipeline and isinstance(mlp, KernelMLP)
        assert isinstance(mlp, StreamingKernelMLP) == (pipeline is IrrepwiseKernelMLP)
    G = G_("SO(3)", 3)
    fourier = G.build_kernel_mlp(KernelMLPSpec(G, ((G.standard_rep(),) * 2,), nonlinearity="fourier", hidden_layers=0))
    assert type(fourier) is DenseKernelMLP


@pytest.mark.parametrize("name,dim", [("SO(3)", 3), ("D4", 2)])
def test_mlp_copies_and_moves(name, dim):
    """deepcopy and state_dict round trips reproduce the output exactly; converting the module drops
    every cached cast of its float64 constants (Float64Constants in the embedding, the changes of
    basis and the attribute bases)."""
    import copy

    from steerable.core.constants import Float64Constants

    G = G_(name, dim)
    T, S = G.trivial_rep(), G.standard_rep()
    spec = KernelMLPSpec(G, blocks_of(G), attr_type=FieldType(G, [T, S]), hidden_channels=2)
    torch.manual_seed(0)
    mlp = G.build_kernel_mlp(spec).double()
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(4, dim, dtype=torch.float64, generator=gen)
    attr = torch.randn(4, 1 + dim, dtype=torch.float64, generator=gen)
    out = mlp(pos, attr)
    constants = [m for m in mlp.modules() if isinstance(m, Float64Constants)]
    assert constants and any(c._cache for c in constants)
    torch.testing.assert_close(copy.deepcopy(mlp)(pos, attr), out, rtol=0, atol=0)
    fresh = G.build_kernel_mlp(spec).double()
    fresh.load_state_dict(mlp.state_dict())
    torch.testing.assert_close(fresh(pos, attr), out, rtol=0, atol=0)
    mlp.float()
    assert not any(c._cache for c in constants)


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
