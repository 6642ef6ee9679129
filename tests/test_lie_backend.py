"""The lie backend: SO(n), O(n) and groups from Lie-algebra generators.

Every transformation below is built here from the documented conventions (``g``, ``g^-T``, minors,
row-major ``kron``, ``det``), never taken from the backend: the backend's matrices are first checked
against them (``test_reps_follow_the_conventions``), and the layers are then checked with them.

Bounds (those of issue 16): relative equivariance error <= 1e-9 in float64 (measured <= 8.2e-15 over the
layer tests: the polynomial features and the solved bases are exact to round-off, a margin of 1e5 left
for other machines and larger fields) and <= 1e-4 in float32 (measured <= 3.4e-7; margin 300).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from _lie import (
    J,
    backend_rep,
    convention,
    field_matrices,
    layer_equivariance_error,
    lie_registered,  # noqa: F401 (an autouse fixture: the lie backend, a private cache)
    rel,
    torus,
)
from _lie import field_type as _types

import steerable as st
from steerable.plugins.lie_backend import solver
from steerable.plugins.lie_backend.reps import multiset_count, symmetric_multisets
from steerable.testing import commutant_dimension, kernel_span_rank, stabiliser_on_axis

BOUND = {torch.float64: 1e-9, torch.float32: 1e-4}


def group(name: str) -> st.Group:
    return torus() if name == "T2" else st.group(name, backend="lie")


# ------------------------------------------------------------------ the conventions: tests/_lie.py
def samples(G: st.Group, n: int = 3, seed: int = 0) -> torch.Tensor:
    return G.sample(n, generator=torch.Generator().manual_seed(seed)).matrices


# ------------------------------------------------------------------ groups by name, sampling, membership
def test_names_backends_and_keys():
    G4 = st.group("SO(4)")
    assert G4.backend == "lie" and G4.dim == 4 and G4.order is None
    assert st.group("O(5)").backend == "lie" and st.group("O(5)").dim == 5
    assert st.group("SO(3)", backend="lie").backend == "lie"
    if any(b.name == "escnn" and b.available for b in st.list_backends()):
        assert st.group("SO(2)").backend == "escnn" and st.group("O(3)").backend == "escnn"  # priority 10 < 40
    assert G4.key[0] == "lie" and G4.key[3] == 4
    assert G4 != st.group("O(4)") and G4 != st.group("SO(5)") and G4 == st.group("SO(4)")
    assert torch.equal(G4.quadratic_form(), torch.eye(4, dtype=torch.float64))


@pytest.mark.parametrize("name", ["SO(2)", "SO(4)", "O(3)", "O(4)"])
def test_haar_sampling(name):
    G = group(name)
    n = G.dim
    g = samples(G, 4000)
    assert g.shape == (4000, n, n) and g.dtype == torch.float64
    assert float((g.mT @ g - torch.eye(n)).abs().max()) < 1e-12
    det = torch.linalg.det(g)
    if name.startswith("SO"):
        assert float((det - 1).abs().max()) < 1e-12
    else:  # both components, each about half of the time (4000 draws: sd 0.008)
        assert abs(float((det < 0).double().mean()) - 0.5) < 0.04
    # Haar moments: E g = 0, E g_ij^2 = 1/n (sd of the estimates <= 1/sqrt(4000 n) ~ 0.016 / sqrt(n))
    assert float(g.mean(0).abs().max()) < 5 / math.sqrt(4000 * n)
    assert float(((g**2).mean(0) - 1 / n).abs().max()) < 0.05


def test_membership_errors():
    G = st.group("SO(4)")
    flip = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="matrix 0 is not an element of SO\\(4\\).*determinant"):
        G.elements_from_matrices(flip[None])
    with pytest.raises(ValueError, match="not orthogonal"):
        st.group("O(4)").elements_from_matrices(2 * torch.eye(4, dtype=torch.float64)[None])
    st.group("O(4)").elements_from_matrices(flip[None])
    T = torus()
    T.elements_from_matrices(samples(T, 5))
    swap13 = torch.from_numpy(np.eye(4)[[2, 1, 0, 3]])  # orthogonal, but mixes the two planes
    rot13 = torch.linalg.matrix_exp(torch.from_numpy(0.4 * J(4, 0, 2)))
    for bad in (swap13, rot13):
        with pytest.raises(ValueError, match="not an element of T2"):
            T.elements_from_matrices(bad[None])


# ------------------------------------------------------------------ representations
@pytest.mark.parametrize("name", ["SO(4)", "O(4)", "SO(5)", "T2"])
def test_reps_follow_the_conventions(name):
    G = group(name)
    g = samples(G, 4, seed=1)
    els = G.elements_from_matrices(g)
    for kind in ["s", "v", "dual", "det", "ext2", "ext3"]:
        assert rel(backend_rep(G, kind).matrices(els), convention(kind, g)) < 1e-13, kind
    v, w = G.standard_rep(), G.standard_rep().exterior_power(2)
    kron = torch.stack([torch.kron(a, b) for a, b in zip(convention("v", g), convention("ext2", g))])
    assert rel((v * w).matrices(els), kron) < 1e-13
    block = torch.stack([torch.block_diag(a, b) for a, b in zip(convention("v", g), convention("ext2", g))])
    assert rel((v + w).matrices(els), block) < 1e-13
    # Sym^k: the coordinates sqrt(N_I) x^I of x^{(x)k} (monomials, lexicographic multisets) are moved by Sym^k(g)
    x = torch.randn(5, G.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for k in (2, 3):
        sets = symmetric_multisets(G.dim, k)
        coords = lambda y, sets=sets: torch.stack(  # noqa: E731
            [math.sqrt(multiset_count(s)) * y[:, list(s)].prod(-1) for s in sets], -1
        )
        sym = v.symmetric_power(k).matrices(els)
        for i in range(len(g)):
            assert rel(coords(x @ g[i].T), coords(x) @ sym[i].T) < 1e-13
        assert float((sym.mT @ sym - torch.eye(len(sets))).abs().max()) < 1e-12  # orthogonal
    # homomorphisms: rho(a b) = rho(a) rho(b)
    a, b = G.elements_from_matrices(g[:2]), G.elements_from_matrices(g[2:])
    ab = G.elements_from_matrices(g[:2] @ g[2:])
    for rep in (w, v * w, v.symmetric_power(2), v.exterior_power(3).dual()):
        assert rel(rep.matrices(ab), rep.matrices(a) @ rep.matrices(b)) < 1e-13


@pytest.mark.parametrize("name", ["SO(4)", "O(3)", "T2"])
def test_lie_algebra_action_is_the_derivative(name):
    """``d rho(A) = d/dt rho(exp tA)`` at 0 (central difference, error O(t^2) ~ 1e-10)."""
    G = group(name)
    v = G.standard_rep()
    t = 1e-5
    for rep in (v.exterior_power(2), v * v.dual(), v.symmetric_power(3), v + G.det_rep()):
        for a in G.algebra:
            plus, minus = (torch.linalg.matrix_exp(torch.from_numpy(s * t * a))[None] for s in (1, -1))
            up, down = (rep.matrices(G.elements_from_matrices(m)) for m in (plus, minus))
            diff = (up - down) / (2 * t)
            assert float((diff[0] - torch.from_numpy(rep.on_algebra(a[None])[0])).abs().max()) < 1e-8


# ------------------------------------------------------------------ the solver
def _escnn_hom(G, a, b) -> int:
    from collections import Counter

    ca, cb = Counter(a.irreps), Counter(b.irreps)
    return sum(ca[i] * cb[i] * G.native.irrep(*i).sum_of_squares_constituents for i in ca)


@pytest.mark.parametrize("name", ["SO(2)", "O(2)", "SO(3)", "O(3)"])
def test_hom_dimensions_equal_escnn(name):
    pytest.importorskip("escnn")
    E, L = st.group(name, backend="escnn"), st.group(name, backend="lie")
    es, ev = E.trivial_rep().native, E.standard_rep().native
    # ∧²R^n is isomorphic to: trivial (SO(2)), det (O(2)), standard (SO(3)), standard x det (O(3))
    ewedge = {"SO(2)": es, "O(2)": E.det_rep().native, "SO(3)": ev, "O(3)": ev.tensor(E.det_rep().native)}[name]
    escnn_reps = [es, ev, ev.tensor(ev), ewedge]
    v = L.standard_rep()
    lie_reps = [L.trivial_rep(), v, v * v, v.exterior_power(2)]
    for (ea, la), (eb, lb) in itertools.product(zip(escnn_reps, lie_reps), repeat=2):
        assert solver.hom_dimension(la, lb) == _escnn_hom(E, ea, eb), (la, lb)


def test_cache_is_reused_and_validated(monkeypatch):
    G = st.group("SO(4)")
    v = G.standard_rep()
    rep_in, rep_out = v * v, v.exterior_power(2)
    solver._MEMORY.clear()  # an earlier test of the session may hold it in memory: then no file is written
    basis = solver.intertwiner_basis(rep_in, rep_out)
    path = solver.cache_dir() / f"hom-{solver._key(rep_in, rep_out)}.npy"
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    solver._MEMORY.clear()
    monkeypatch.setattr(solver, "solve", lambda *a: pytest.fail("solved again instead of reading the cache"))
    assert np.array_equal(solver.intertwiner_basis(rep_in, rep_out), basis)
    monkeypatch.undo()
    for bad in (np.random.default_rng(0).normal(size=basis.shape), basis[:, :, :3], np.full(basis.shape, np.nan)):
        np.save(path, bad)
        solver._MEMORY.clear()
        assert np.allclose(solver.intertwiner_basis(rep_in, rep_out), basis)  # recomputed, not trusted
        assert solver._load(path, rep_in, rep_out).shape == basis.shape  # rewritten: loads, passes every check


# ------------------------------------------------------------------ equivariance of the layers
FIELDS = {
    "SO(4)": (["s", "v", "dual", "ext2"], ["ext2", "v", "s"]),
    "O(4)": (["s", "v", "det", "ext2"], ["ext2", "det", "v", "s"]),
    "SO(5)": (["s", "v", "ext2"], ["ext2", "dual", "s"]),
    "T2": (["s", "v", "dual", "ext2"], ["ext2", "v", "s"]),
}


@pytest.mark.parametrize("name", list(FIELDS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_kernel_and_point_conv_equivariance(name, dtype):
    G = group(name)
    kin, kout = FIELDS[name]
    assert layer_equivariance_error(G, kin, kout, samples(G, 3, seed=4), dtype) <= BOUND[dtype]


# ------------------------------------------------------------------ completeness
def _stabiliser_e1(G, reflect: bool):
    """Generators of the stabiliser of e_1: two generic rotations of the last 3 coordinates (a dense
    subgroup of SO(3)), and for O(4) the reflection of the last coordinate."""
    mats = [torch.eye(4, dtype=torch.float64)]
    gen = torch.Generator().manual_seed(5)
    for _ in range(2):
        q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))
        q[:, 0] *= torch.sign(torch.linalg.det(q))
        mats.append(torch.block_diag(torch.ones(1, 1, dtype=torch.float64), q))
    if reflect:
        mats.append(torch.diag(torch.tensor([1.0, 1.0, 1.0, -1.0], dtype=torch.float64)))
    return G.elements_from_matrices(torch.stack(mats))


@pytest.mark.parametrize("name, expected", [("SO(4)", (1, 2, 1, 2)), ("O(4)", (1, 2, 1, 1))])
def test_completeness_at_e1(name, expected):
    G = st.group(name)
    stab = _stabiliser_e1(G, name == "O(4)")
    x0 = torch.tensor([[0.7, 0.0, 0.0, 0.0]], dtype=torch.float64)
    pairs = [("s", "v"), ("v", "v"), ("v", "s"), ("v", "ext2")]
    for (a, b), want in zip(pairs, expected):
        fin, fout = _types(G, [a]), _types(G, [b])
        assert commutant_dimension(stab, fout, fin) == want
        span = kernel_span_rank(
            lambda fin=fin, fout=fout: st.ImplicitKernel(fin, fout, hidden_channels=2, max_radius=1.0), x0, n_inits=12
        )
        assert span == want, (a, b)


@pytest.mark.parametrize("name", ["SO(2)", "O(2)", "SO(3)", "O(3)"])
def test_low_dimensions_equivariant_and_complete(name):
    G = st.group(name, backend="lie")
    point, stab = stabiliser_on_axis(G)
    kinds = ["s", "v", "ext2"]
    for a, b in itertools.product(kinds, repeat=2):
        fin, fout = _types(G, [a]), _types(G, [b])
        span = kernel_span_rank(
            lambda fin=fin, fout=fout: st.ImplicitKernel(fin, fout, hidden_channels=2, max_radius=1.0),
            0.6 * point[None],
            n_inits=12,
        )
        assert span == commutant_dimension(stab, fout, fin), (a, b)
    fin = _types(G, kinds)
    torch.manual_seed(0)
    kernel = st.ImplicitKernel(fin, fin, hidden_channels=2, max_radius=1.0).double()
    g = samples(G, 3)
    r = field_matrices(kinds, g)
    pos = torch.randn(5, G.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for i in range(3):
            assert rel(kernel(pos @ g[i].T), r[i] @ kernel(pos) @ r[i].T) <= BOUND[torch.float64]


# ------------------------------------------------------------------ conformance suite
@pytest.mark.parametrize("name", ["SO(4)", "O(4)"])
def test_conformance(name):
    from steerable.testing.conformance import run_conformance

    report = run_conformance(st.group(name), raise_on_failure=False)
    assert not report.failures, str(report)


# ------------------------------------------------------------------ group_from_generators and bad input
def test_group_from_generators_dispatch():
    finite = st.group_from_generators([np.array([[0.0, -1.0], [1.0, 0.0]])], "C4x")
    assert finite.backend == "matrix" and finite.order == 4
    T = torus()
    assert T.backend == "lie" and T.name == "T2" and T.dim == 4
    assert T == torus() and T != st.group("SO(4)")
    # O(2) from a Lie algebra and a reflection: same Hom dimensions as the named one
    O2 = st.group_from_generators([np.diag([1.0, -1.0])], lie_algebra=[J(2, 0, 1)])
    named = st.group("O(2)", backend="lie")
    for G in (O2, named):
        v = G.standard_rep()
        dims = [solver.hom_dimension(v * v, G.trivial_rep()), solver.hom_dimension(v.exterior_power(2), G.det_rep())]
        assert dims == [1, 1]


def test_bad_input():
    with pytest.raises(ValueError, match="does not close"):
        st.group_from_generators([], lie_algebra=[J(3, 0, 1), J(3, 1, 2)])  # [J01, J12] = J02 missing
    with pytest.raises(ValueError, match="linearly dependent"):
        st.group_from_generators([], lie_algebra=[J(3, 0, 1), 2 * J(3, 0, 1)])
    with pytest.raises(ValueError, match="no nondegenerate quadratic form"):
        st.group_from_generators([], lie_algebra=[np.eye(2)])  # dilations
    skewed = np.diag([2.0, 1.0]) @ J(2, 0, 1) @ np.diag([0.5, 1.0])  # SO(2) in non-orthogonal coordinates
    with pytest.raises(ValueError, match="does not act orthogonally in these coordinates"):
        st.group_from_generators([], lie_algebra=[skewed])
    with pytest.raises(ValueError, match="does not normalise"):
        st.group_from_generators([np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])], lie_algebra=[J(3, 0, 1)])
    with pytest.raises(ValueError, match="unknown group"):
        st.group("SO(1)")
    with pytest.raises(ValueError, match="unknown group"):
        st.group("O(3,1,2)")
    G4, G5 = st.group("SO(4)"), st.group("SO(5)")
    with pytest.raises(ValueError, match="SO\\(5\\)"):
        st.FieldType(G4, [G5.standard_rep()])
    with pytest.raises(ValueError, match="representation of SO\\(4\\)"):
        G4.standard_rep() + G5.standard_rep()
    with pytest.raises(ValueError, match="exterior_power"):
        G4.standard_rep().exterior_power(5)
    with pytest.raises(ValueError, match="unknown kernel MLP options"):
        st.ImplicitKernel(_types(G4, ["v"]), _types(G4, ["v"]), options={"fourier": 3}, max_radius=1.0)


# ------------------------------------------------------------------ finite groups through the lie solver
def _closure(generators: list[np.ndarray]) -> list[np.ndarray]:
    """Every element of the finite matrix group the ``generators`` generate (breadth first)."""
    n = generators[0].shape[0]
    found, frontier = [np.eye(n)], [np.eye(n)]
    while frontier:
        new = []
        for g in frontier:
            for h in generators:
                gh = np.round(g @ h, 12)
                if not any(np.allclose(gh, e) for e in found):
                    found.append(gh)
                    new.append(gh)
        frontier = new
    return found


@pytest.mark.parametrize(
    "name,generators",
    [
        ("D4", [np.array([[0.0, -1.0], [1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, -1.0]])]),
        (
            "O",
            [np.array([[0.0, -1.0, 0], [1.0, 0, 0], [0, 0, 1.0]]), np.array([[0, 0, 1.0], [1.0, 0, 0], [0, 1.0, 0]])],
        ),
    ],
)
def test_finite_groups_through_the_solver_have_the_character_theory_dimensions(name, generators):
    """A finite group handed to the lie backend (discrete generators, no algebra; ``group_from_generators``
    sends it to the matrix backend) gets ``dim Hom(A, B) = (1/|G|) sum_g chi_A(g) chi_B(g)``, computed
    here from the elements the test enumerates (D4 on R^2: 8; the cube's rotations O on R^3: 24)."""
    from steerable.plugins.lie_backend.group import group_from_lie_algebra

    elements = _closure(generators)
    assert len(elements) == {"D4": 8, "O": 24}[name]
    n = generators[0].shape[0]
    G = group_from_lie_algebra(generators, lie_algebra=np.zeros((0, n, n)), dim=n, name=f"{name}-lie")
    v, s = G.standard_rep(), G.trivial_rep()
    chars = {  # traces of the conventions: v, v (x) v, wedge^2 v (the 2x2 minors), trivial
        "v": [np.trace(g) for g in elements],
        "vv": [np.trace(g) ** 2 for g in elements],
        "ext2": [(np.trace(g) ** 2 - np.trace(g @ g)) / 2 for g in elements],
        "s": [1.0 for _ in elements],
    }
    reps = {"v": v, "vv": v * v, "ext2": v.exterior_power(2), "s": s}
    for a, b in itertools.product(reps, repeat=2):
        want = round(float(np.mean(np.array(chars[a]) * np.array(chars[b]))))
        assert solver.hom_dimension(reps[a], reps[b]) == want, (a, b)
