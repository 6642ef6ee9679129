"""The matrix backend: point groups by name, representations, the intertwiner solver, the kernel MLP.

Bounds: equivariance relative error <= 1e-13 in float64 (measured <= 3.5e-15 over the representative
groups: 28x margin, room for the slow sweep) and <= 4e-6 in float32 (measured <= 6.8e-7; 6x);
grid convolutions on the group's lattice symmetries (all elements for the cubic, tetragonal,
orthorhombic, monoclinic and triclinic groups).  Every one of the 42 groups gets the order check;
the layer and completeness sweeps over all of them are marked slow, a representative subset runs by
default.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import steerable as st
from steerable.cache import CacheWarning
from steerable.core.group import GroupElements
from steerable.plugins.matrix_backend import _SYMBOLS_2D, _SYMBOLS_3D, group_from_generators
from steerable.plugins.matrix_backend.group import direct_sum, tensor_product
from steerable.plugins.matrix_backend.pointgroups import LATTICE_EXACT_2D, LATTICE_EXACT_3D, rot_z
from steerable.plugins.matrix_backend.solver import (
    character_hom_dimension,
    hom_dimension,
    intertwiner_basis,
    solve_intertwiners,
)
from steerable.testing import (
    check_equivariance,
    commutant_dimension,
    finite_stabiliser,
    kernel_span_rank,
    lattice_elements,
)

# symbol -> (order, number of proper rotations)
ORDERS_3D = {
    "1": (1, 1),
    "-1": (2, 1),
    "2": (2, 2),
    "m": (2, 1),
    "2/m": (4, 2),
    "222": (4, 4),
    "mm2": (4, 2),
    "mmm": (8, 4),
    "4": (4, 4),
    "-4": (4, 2),
    "4/m": (8, 4),
    "422": (8, 8),
    "4mm": (8, 4),
    "-42m": (8, 4),
    "4/mmm": (16, 8),
    "3": (3, 3),
    "-3": (6, 3),
    "32": (6, 6),
    "3m": (6, 3),
    "-3m": (12, 6),
    "6": (6, 6),
    "-6": (6, 3),
    "6/m": (12, 6),
    "622": (12, 12),
    "6mm": (12, 6),
    "-6m2": (12, 6),
    "6/mmm": (24, 12),
    "23": (12, 12),
    "m-3": (24, 12),
    "432": (24, 24),
    "-43m": (24, 12),
    "m-3m": (48, 24),
}
ORDERS_2D = {
    "1": (1, 1),
    "2": (2, 2),
    "m": (2, 1),
    "2mm": (4, 2),
    "3": (3, 3),
    "3m": (6, 3),
    "4": (4, 4),
    "4mm": (8, 4),
    "6": (6, 6),
    "6mm": (12, 6),
}
ALL = [(s, 3) for s in ORDERS_3D] + [(s, 2) for s in ORDERS_2D]
# one of each crystal family and irrep type (complex-type irreps: 4, 6, m-3); the rest is slow
REPRESENTATIVE = [
    ("m-3m", 3),
    ("6/mmm", 3),
    ("-3m", 3),
    ("-43m", 3),
    ("4", 3),
    ("m", 3),
    ("m-3", 3),
    ("4mm", 2),
    ("3m", 2),
    ("6", 2),
]
SWEEP = [pytest.param(*c, marks=[] if c in REPRESENTATIVE else pytest.mark.slow) for c in ALL]
BOUNDS = {torch.float64: 1e-13, torch.float32: 4e-6}


def _ids(case) -> str:
    return f"{case[0]}-R{case[1]}" if isinstance(case, tuple) else str(case)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """Keep the solver's disk cache out of the home directory."""
    monkeypatch.setenv("STEERABLE_CACHE", str(tmp_path / "cache"))


def _group(symbol: str, dim: int):
    return st.group(symbol, dim=dim, backend="matrix")


def _field(group, copies: int = 1) -> st.FieldType:
    """trivial + standard + the largest irrep: a non-uniform field reaching a non-standard irrep."""
    return st.FieldType(group, [group.trivial_rep(), group.standard_rep(), group.irreps()[-1]] * copies)


# -- groups by name --------------------------------------------------------------------------------
def test_all_42_registered():
    names = {(s.display, d) for s in st.list_groups() if s.backend == "matrix" for d in s.dims}
    assert {(s, 3) for s in _SYMBOLS_3D} <= names and {(s, 2) for s in _SYMBOLS_2D} <= names
    assert len(_SYMBOLS_3D) == 32 and len(_SYMBOLS_2D) == 10


@pytest.mark.parametrize("case", ALL, ids=_ids)
def test_order_and_structure(case):
    symbol, dim = case
    group = _group(symbol, dim)
    order, proper = (ORDERS_3D if dim == 3 else ORDERS_2D)[symbol]
    assert (group.name, group.dim, group.order) == (symbol, dim, order)
    mats = group.elements().matrices
    assert len(mats) == order
    assert torch.allclose(mats.transpose(1, 2) @ mats, torch.eye(dim, dtype=torch.float64).expand_as(mats), atol=1e-12)
    assert int((torch.linalg.det(mats) > 0).sum()) == proper
    # real irreps: sum d^2 / e = |G| (e = 1, 2, 4 for real, complex, quaternionic type)
    irreps = group.irreps()
    assert irreps[0] is group.trivial_rep()
    total = sum(r.size**2 / round(float(np.dot(r.character, r.character)) / order) for r in irreps)
    assert total == pytest.approx(order)
    lattice = LATTICE_EXACT_3D if dim == 3 else LATTICE_EXACT_2D
    if symbol in lattice:
        assert len(lattice_elements(group)) == order


def test_names_that_normalize_alike_stay_apart():
    # normalize_group_name drops '-': "-3m" and "3m" would both be "3M"
    pairs = [("-1", "1"), ("-3", "3"), ("-4", "4"), ("-6", "6"), ("-3m", "3m")]
    for bar, plain in pairs:
        for symbol in (bar, plain):
            group = st.group(symbol)  # default backend and dimension
            proper = int((torch.linalg.det(group.elements().matrices) > 0).sum())
            assert (group.name, group.dim, group.backend) == (symbol, 3, "matrix")
            assert (group.order, proper) == ORDERS_3D[symbol]
        assert st.group(bar) != st.group(plain)
    assert st.group("m3m").order == 48 and st.group("M -3 M").name == "m-3m"
    assert st.group("6/mmm").order == 24 and st.group("432").order == 24
    assert st.group("4mm").dim == 3 and st.group("4mm", dim=2).order == 8
    assert st.group("2mm").dim == 2
    assert st.group("C6", backend="matrix").order == 6 and st.group("D6", backend="matrix").order == 12
    with pytest.raises(ValueError, match="unknown group"):
        st.group("-5m")


def _documented_elements(symbol: str, dim: int) -> np.ndarray:
    """Element matrices by the documented conventions, built here: C{N}/D{N} rotate by 2πk/N
    (about z on R^3, fixing z) with the mirror diag(1, -1[, 1]); m-3m is every signed permutation
    matrix, 432 those of determinant +1."""
    import itertools

    if symbol in ("m-3m", "432"):
        mats = [
            np.diag(signs)[:, list(perm)]
            for perm in itertools.permutations(range(3))
            for signs in itertools.product((1.0, -1.0), repeat=3)
        ]
        return np.stack([m for m in mats if symbol == "m-3m" or np.linalg.det(m) > 0])
    N = int(symbol[1:])
    planar = [
        np.array(
            [
                [math.cos(2 * math.pi * k / N), -math.sin(2 * math.pi * k / N)],
                [math.sin(2 * math.pi * k / N), math.cos(2 * math.pi * k / N)],
            ]
        )
        for k in range(N)
    ]
    if symbol[0] == "D":
        planar += [m @ np.diag([1.0, -1.0]) for m in planar]
    return np.stack(
        [m if dim == 2 else np.block([[m, np.zeros((2, 1))], [np.zeros((1, 2)), np.ones((1, 1))]]) for m in planar]
    )


@pytest.mark.parametrize("case", [("m-3m", 3), ("432", 3), ("C5", 2), ("D4", 2), ("C4", 3), ("D3", 3)], ids=_ids)
def test_representations_follow_the_documented_conventions(case):
    """Elements, and the trivial, standard, det and regular representations, against matrices built
    independently here (not from the backend's tables)."""
    symbol, dim = case
    group = st.group(symbol, dim=dim, backend="matrix")
    els = group.elements()
    coords = els.matrices.numpy()
    documented = _documented_elements(symbol, dim)
    # the elements are exactly the documented set
    dist = np.abs(coords[:, None] - documented[None]).reshape(len(coords), len(documented), -1).max(-1)
    assert len(coords) == len(documented) and (dist.min(0) < 1e-12).all() and (dist.min(1) < 1e-12).all()
    # standard: the coordinate matrix itself (not e.g. det(g) g); det: numpy's determinant; trivial: 1
    np.testing.assert_allclose(group.standard_rep().matrices(els).numpy(), coords, atol=1e-12, rtol=0)
    np.testing.assert_allclose(group.det_rep().matrices(els).numpy()[:, 0, 0], np.linalg.det(coords), atol=1e-12)
    np.testing.assert_array_equal(group.trivial_rep().matrices(els).numpy(), np.ones((len(els), 1, 1)))
    # left regular: L(g_i) e_j = e_k where g_k = g_i g_j, products found by matrix multiplication
    reg = group.regular_rep().matrices(els).numpy()
    for i in range(len(els)):
        prod = np.einsum("ij,bjk->bik", coords[i], coords)
        k = np.abs(prod[:, None] - coords[None]).reshape(len(els), len(els), -1).max(-1).argmin(1)
        expected = np.zeros((len(els), len(els)))
        expected[k, np.arange(len(els))] = 1.0
        np.testing.assert_array_equal(reg[i], expected)
    # foreign element batches are recognised from their matrices (no native indices)
    plain = GroupElements(group, torch.from_numpy(documented[::-1].copy()))
    np.testing.assert_allclose(group.standard_rep().matrices(plain).numpy(), documented[::-1], atol=1e-12)


# -- layers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("symbol,dim", SWEEP)
def test_layers_equivariant(symbol, dim):
    group = _group(symbol, dim)
    field = _field(group)
    torch.manual_seed(0)
    tiny = dict(hidden_channels=2, hidden_layers=1)
    gen = torch.Generator().manual_seed(1)
    for dtype in (torch.float64, torch.float32):
        errors = {
            "kernel": check_equivariance(
                st.ImplicitKernel(field, field, 1, max_radius=1.0, **tiny), dtype=dtype, n_elements=4, generator=gen
            ),
            "point": check_equivariance(
                st.PointConv(field, field, edge_attr=1, max_radius=1.0, **tiny),
                dtype=dtype,
                n_elements=3,
                n_points=8,
                generator=gen,
            ),
        }
        els = lattice_elements(group)
        grid = st.GridConv(field, field, 3, padding=1, **tiny)
        errors["grid"] = check_equivariance(
            grid, elements=els, dtype=dtype, grid_size=4 if dim == 3 else 6, generator=gen
        )
        assert max(errors.values()) <= BOUNDS[dtype], f"{group} {dtype}: {errors}"


def test_attributes_in_a_nontrivial_representation():
    group = _group("m-3m", 3)
    field = _field(group)
    attr = st.FieldType(group, [group.standard_rep(), group.det_rep()])  # an edge vector and a pseudo-scalar
    torch.manual_seed(0)
    bound = BOUNDS[torch.float64]  # measured 1.4e-15 and 1.1e-15
    assert (
        check_equivariance(st.PointConv(field, field, edge_attr=attr, hidden_channels=2, max_radius=1.0), n_points=8)
        <= bound
    )
    assert check_equivariance(st.ImplicitKernel(field, field, attr, hidden_channels=2, max_radius=1.0)) <= bound


def _special_points(group) -> list[torch.Tensor]:
    """A generic point, a point on the principal axis and one on a mirror plane (if any)."""
    n = group.dim
    points = [
        torch.tensor([0.31, -0.52, 0.71][:n], dtype=torch.float64),
        torch.tensor([0.0] * (n - 1) + [0.6], dtype=torch.float64),
    ]
    mats = group.elements().matrices
    for m in mats:  # a mirror: eigenvalue -1 once, others +1
        values = torch.linalg.eigvalsh((m + m.T) / 2)
        if torch.linalg.det(m) < 0 and (values > 0).sum() == n - 1 and torch.allclose(m, m.T):
            normal = torch.linalg.eigh((m + m.T) / 2).eigenvectors[:, 0]
            generic = torch.tensor([0.43, 0.27, -0.38][:n], dtype=torch.float64)
            points.append(generic - (generic @ normal) * normal)
            break
    return points


@pytest.mark.parametrize("symbol,dim", SWEEP)
def test_kernel_complete(symbol, dim):
    """Over random inits, K(x) spans every map commuting with the stabiliser of x."""
    group = _group(symbol, dim)
    in_type = st.FieldType(group, [group.trivial_rep(), group.standard_rep()])
    out_type = st.FieldType(group, [group.irreps()[-1], group.standard_rep()])
    build = lambda: st.ImplicitKernel(in_type, out_type, None, hidden_channels=3, hidden_layers=1, max_radius=1.0)  # noqa: E731
    for point in _special_points(group):
        expected = commutant_dimension(finite_stabiliser(group, point), out_type, in_type)
        rank = kernel_span_rank(build, point[None], n_inits=expected + 4)
        assert rank == expected, f"{group} at {point.tolist()}: span {rank}, allowed {expected}"


def test_kernel_complete_mixed_fields_m3m():
    group = _group("m-3m", 3)
    field = _field(group)  # 1 + 3 + 3: 49 entries
    for point in _special_points(group):
        expected = commutant_dimension(finite_stabiliser(group, point), field, field)
        assert (
            kernel_span_rank(
                lambda: st.ImplicitKernel(field, field, None, hidden_channels=3, max_radius=1.0),
                point[None],
                n_inits=expected + 4,
            )
            == expected
        )


# -- representations and the intertwiner solver ------------------------------------------------------
def _random_rep(group, rng: np.random.Generator):
    """A random orthogonal representation: a direct sum of irreps (and a tensor product) in a random basis."""
    irreps = group.irreps()
    picks = [irreps[i] for i in rng.integers(len(irreps), size=int(rng.integers(1, 4)))]
    if rng.random() < 0.5:
        picks.append(tensor_product(irreps[int(rng.integers(len(irreps)))], group.standard_rep()))
    rep = direct_sum(*picks)
    q, _ = np.linalg.qr(rng.standard_normal((rep.size, rep.size)))
    return group.rep_from_elements(q @ rep.table @ q.T, name="random")


@pytest.mark.parametrize("case", [("m-3m", 3), ("6/mmm", 3), ("m-3", 3), ("4", 3), ("3m", 2), ("23", 3)], ids=_ids)
def test_hom_dimension_matches_characters(case):
    group = _group(*case)
    rng = np.random.default_rng(0)
    for _ in range(4):
        a, b = _random_rep(group, rng), _random_rep(group, rng)
        b = group.rep_from_elements(direct_sum(b, a).table, name="b+a") if rng.random() < 0.5 else b
        basis = intertwiner_basis(a, b)
        assert basis.shape[0] == hom_dimension(a, b) == character_hom_dimension(a, b)
        # orthonormal, and equivariant for every element (not only the generators)
        gram = np.einsum("kij,lij->kl", basis, basis)
        assert np.allclose(gram, np.eye(len(basis)), atol=1e-10)
        if len(basis):
            assert (
                np.abs(np.einsum("nij,kjl->nkil", b.table, basis) - np.einsum("kij,njl->nkil", basis, a.table)).max()
                < 1e-9
            )


def test_regular_and_permutation_reps():
    group = _group("m-3m", 3)
    reg = group.regular_rep()
    cube = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    perm = group.permutation_rep(cube, name="cube vertices")
    assert (perm.size, reg.size) == (8, 48)
    # Hom(regular, V) has dim V.size: what the MLP's closed-form output layer parametrises
    for rep in group.irreps() + [perm]:
        assert hom_dimension(reg, rep) == rep.size
    # a permutation rep contains the trivial one once per orbit
    assert hom_dimension(group.trivial_rep(), perm) == 1
    assert hom_dimension(perm, group.standard_rep()) == 1  # vertices -> vector: the vertex position
    with pytest.raises(ValueError, match="not m-3m-invariant"):
        group.permutation_rep(cube[:4])


def test_solver_cache_on_disk(tmp_path, monkeypatch):
    """The basis is read back from disk, not recomputed: a valid basis different from the solver's
    (an orthogonal recombination of it, written with its checksum) is what a fresh lookup returns,
    without calling the solver; a file of the wrong shape is recomputed and rewritten (the
    corruption cases are in test_matrix_cache.py)."""
    from steerable.plugins.matrix_backend import solver

    monkeypatch.setenv("STEERABLE_CACHE", str(tmp_path / "fresh"))
    group = group_from_generators([rot_z(2 * math.pi / 5, 2)], name="C5-cache-test")
    rep_in = tensor_product(group.standard_rep(), group.standard_rep())
    rep_out = group.standard_rep() + group.trivial_rep()
    calls = []
    real_solve = solver.solve_intertwiners
    monkeypatch.setattr(solver, "solve_intertwiners", lambda *a: calls.append(a) or real_solve(*a))
    first = intertwiner_basis(rep_in, rep_out)
    files = list((tmp_path / "fresh" / "matrix").glob("hom-*.npz"))
    assert files == [solver.cache_path(rep_in, rep_out)]
    assert len(calls) == 1 and len(first) == character_hom_dimension(rep_in, rep_out) == 2
    with np.load(files[0]) as data:
        np.testing.assert_array_equal(data["basis"], first)
    # another orthonormal basis of the same space: what a process finding this file must return
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((len(first), len(first))))
    other = np.einsum("kl,lij->kij", q, first)
    assert np.abs(other - first).max() > 0.1
    key = solver.problem_key(rep_in, rep_out)
    solver._write(files[0], key, other)
    solver._MEMORY.clear()
    again = intertwiner_basis(rep_in, rep_out)
    np.testing.assert_array_equal(again, other)
    assert len(calls) == 1  # read, not solved
    assert intertwiner_basis(rep_in, rep_out) is again  # and kept in memory
    # a stale file (wrong shape, consistent checksum) is not trusted: solved again and replaced
    solver._write(files[0], key, np.zeros((2, 5, 5)))
    solver._MEMORY.clear()
    with pytest.warns(CacheWarning, match="expected float64"):
        fixed = intertwiner_basis(rep_in, rep_out)
    assert len(calls) == 2 and fixed.shape == first.shape
    with np.load(files[0]) as data:
        np.testing.assert_array_equal(data["basis"], fixed)


# -- ad-hoc groups and bad input -----------------------------------------------------------------------
def test_group_from_generators_in_4d():
    """The permutations of 4 coordinates (S4, order 24) acting on R^4: the core's point conv is dimension-agnostic."""
    swap = np.eye(4)[[1, 0, 2, 3]]
    cycle = np.eye(4)[[1, 2, 3, 0]]
    group = group_from_generators([swap, cycle], name="S4-on-R4")
    assert group.order == 24 and group.dim == 4
    field = st.FieldType(group, [group.trivial_rep(), group.standard_rep(), group.det_rep()])
    torch.manual_seed(0)
    assert (
        check_equivariance(st.PointConv(field, field, hidden_channels=2, max_radius=1.0), n_points=8)
        <= BOUNDS[torch.float64]
    )


def test_bad_generators():
    with pytest.raises(ValueError, match="not orthogonal"):
        group_from_generators([np.array([[1.0, 0.5], [0.0, 1.0]])])
    with pytest.raises(ValueError, match="do not close"):
        group_from_generators([rot_z(1.0, 2)])  # a rotation by an irrational multiple of pi
    with pytest.raises(ValueError, match="max_order"):
        group_from_generators([rot_z(2 * math.pi / 100, 2)], max_order=50)
    assert group_from_generators([rot_z(2 * math.pi / 100, 2)]).order == 100
    with pytest.raises(ValueError, match="n >= 2"):
        group_from_generators([np.array([[-1.0]])])
    with pytest.raises(ValueError, match="square"):
        group_from_generators([np.ones((2, 3))])
    with pytest.raises(ValueError, match="dim=n"):
        group_from_generators([])


def test_bad_representations():
    group = _group("4mm", 2)  # generators: 90° rotation, mirror
    with pytest.raises(ValueError, match="not a homomorphism"):
        group.rep_from_generators([rot_z(math.pi / 3, 2), np.diag([1.0, -1.0])], name="wrong")  # 60° has order 6
    with pytest.raises(ValueError, match="not orthogonal"):
        group.rep_from_generators([2 * np.eye(2), np.eye(2)], name="scaled")
    with pytest.raises(ValueError, match="2 generators but 1"):
        group.rep_from_generators([np.eye(2)], name="short")
    shuffled = group.regular_rep().table[np.random.default_rng(0).permutation(group.order)]
    with pytest.raises(ValueError, match="not a homomorphism"):
        group.rep_from_elements(shuffled, name="shuffled")
    ok = group.rep_from_generators([rot_z(math.pi, 2), np.diag([1.0, -1.0])], name="frequency 2")
    assert hom_dimension(ok, ok) == 2  # sum of two different 1D irreps
    with pytest.raises(ValueError, match="not an element"):
        group.elements_from_matrices(torch.from_numpy(rot_z(0.3, 2))[None])
    field = _field(group)
    with pytest.raises(ValueError, match="exact"):
        st.ImplicitKernel(field, field, nonlinearity="fourier", max_radius=1.0)
    with pytest.raises(ValueError, match="options"):
        st.ImplicitKernel(field, field, options={"bogus": 1}, max_radius=1.0)


def test_solver_finds_the_commutant():
    q = rot_z(2 * math.pi / 3, 2)
    basis = solve_intertwiners(q[None], q[None])  # rotations commuting with a 120° rotation: a + bJ
    assert basis.shape == (2, 2, 2)


# -- cross-check with escnn ----------------------------------------------------------------------------
def _escnn_hom_dimension(rep_in, rep_out) -> int:
    """``sum_psi m_in(psi) m_out(psi) e(psi)`` from escnn's own irrep decomposition."""
    from collections import Counter

    m_in, m_out = Counter(rep_in.irreps), Counter(rep_out.irreps)
    group = rep_in.group
    return sum(m_in[i] * m_out[i] * group.irrep(*i).sum_of_squares_constituents for i in m_in)


@pytest.mark.parametrize("name,dim", [("C3", 2), ("C4", 2), ("C8", 2), ("D3", 2), ("D4", 2), ("D6", 2), ("432", 3)])
def test_hom_dimensions_agree_with_escnn(name, dim):
    """Same constructions from the standard representation: equal dim Hom_G on both backends."""
    eg = pytest.importorskip("escnn.group")
    mine = _group(name, dim)
    if name == "432":
        theirs = eg.octa_group()
        std = theirs.irrep(1)  # the 3D rotation representation of the cube's rotations
    elif name.startswith("C"):
        theirs = eg.cyclic_group(int(name[1:]))
        std = theirs.irrep(1)
    else:
        theirs = eg.dihedral_group(int(name[1:]))
        std = theirs.irrep(1, 1)

    def sq(rep):  # rep ⊗ rep on either backend
        return rep.tensor(rep) if hasattr(rep, "tensor") else rep * rep

    pairs = {  # label -> (input, output) as functions of (standard, regular, trivial)
        "std -> std": (lambda s, r, t: s, lambda s, r, t: s),
        "std x std -> std": (lambda s, r, t: sq(s), lambda s, r, t: s),
        "std x std -> std x std": (lambda s, r, t: sq(s), lambda s, r, t: sq(s)),
        "regular -> std x std": (lambda s, r, t: r, lambda s, r, t: sq(s)),
        "regular -> regular": (lambda s, r, t: r, lambda s, r, t: r),
        "trivial -> std x std": (lambda s, r, t: t, lambda s, r, t: sq(s)),
    }
    for label, (make_in, make_out) in pairs.items():
        e_args = (std, theirs.regular_representation, theirs.trivial_representation)
        m_args = (mine.standard_rep(), mine.regular_rep(), mine.trivial_rep())
        e_in, e_out, m_in, m_out = make_in(*e_args), make_out(*e_args), make_in(*m_args), make_out(*m_args)
        assert hom_dimension(m_in, m_out) == _escnn_hom_dimension(e_in, e_out), f"{name}: {label}"
