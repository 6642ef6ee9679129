"""The axial subgroups of O(3) by Schoenflies name (escnn backend): Cs, Ci, Cinf, Cinfv, Dinf, Cinfh, Dinfh.

Every group is checked against its definition, written from scratch in ``tests/_axial.py`` (an
orthogonal map keeping the z axis, with the allowed combinations of ``det`` on the xy block and the
sign on z): sampled elements, the elements the group accepts and refuses, equivariance under one
element of every component, and completeness: at points on the z axis, on the x axis and in general
position, the kernel's span over random parameters is the commutant of the stabiliser computed from
the definition (this caught Dinf at a general point, rank 48 of 49 with one harmonic copy per irrep,
and the odd-parity irreps of Cinfh and Dinfh, zero at their lowest frequency).

Equivariance bounds (relative error, ``check_equivariance``), set from the values measured here
with the stated margin: kernels and point convolutions on a mixed field (trivial, standard, det and
a 2-dimensional irrep) under one element of every component, built from the definition: float64
measured <= 1.4e-14 (Dinfh, whose tensor products escnn decomposes numerically; the others <=
8.3e-15), bound 1e-13 (7x); float32 measured <= 4.2e-7, bound 2e-6 (4.7x).  Grid convolutions under
the group's lattice symmetries, float64: measured <= 4.8e-15, bound 1e-13 (the same bound, 20x).
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("escnn")

from _axial import COMPONENTS, FINITE, NAMES, component_element, definition_elements, in_group, rot_z

import steerable as st
from steerable.testing import check_equivariance, commutant_dimension, kernel_span_rank

F64_BOUND, F32_BOUND = 1e-13, 2e-6


@pytest.fixture(scope="module", params=NAMES)
def case(request):
    """``(name, group)``: Cinf and Cinfv are the groups named SO(2) and O(2) on R^3."""
    return request.param, st.group(request.param, backend="escnn")


# -- the groups are what their names say ---------------------------------------------------------
def test_sampled_elements_satisfy_the_definition(case):
    name, group = case
    mats = group.sample(256, generator=torch.Generator().manual_seed(0)).matrices
    assert mats.shape == (256, 3, 3) and mats.dtype == torch.float64
    bad = [k for k, m in enumerate(mats) if not in_group(name, m)]
    assert not bad, f"{group}: samples {bad[:5]} break the definition, e.g.\n{mats[bad[0]]}"
    # every component of the definition is sampled
    if name in FINITE:
        seen = {min(range(2), key=lambda i: float((m - FINITE[name][i].double()).abs().max())) for m in mats}
        assert seen == {0, 1}
        els = group.elements().matrices
        assert len(els) == 2 and all(
            min(float((e - m.double()).abs().max()) for e in els) < 1e-12 for m in FINITE[name]
        )
        return
    comps = {(round(float(torch.linalg.det(m[:2, :2]))), round(float(m[2, 2]))) for m in mats}
    assert comps == COMPONENTS[name]
    # and the angles cover the circle: the rotation part of each sample, sorted, has no gap > 0.3 rad
    angles = []
    for m in mats:
        block = m[:2, :2] * m[2, 2] if name == "Cinfh" else m[:2, :2]
        if torch.linalg.det(block) < 0:
            block = block @ torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
        angles.append(math.atan2(float(block[1, 0]), float(block[0, 0])) % (2 * math.pi))
    angles.sort()
    gaps = [b - a for a, b in zip(angles, angles[1:])] + [angles[0] + 2 * math.pi - angles[-1]]
    assert max(gaps) < 0.3


def test_elements_from_matrices_accepts_the_group_and_refuses_the_rest(case):
    name, group = case
    mine = definition_elements(name)
    assert torch.allclose(group.elements_from_matrices(mine).matrices, mine, atol=1e-12)
    # the components of Dinfh outside the group (all four at 1.3 rad for the finite groups) and a
    # quarter turn about x (which does not keep the z axis) are refused
    outside = COMPONENTS["Dinfh"] if name in FINITE else COMPONENTS["Dinfh"] - COMPONENTS[name]
    others = [component_element(b, s, 1.3) for b, s in sorted(outside)]
    tilted = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)  # R_x(90°)
    others.append(tilted)
    for m in others:
        assert not in_group(name, m)
        with pytest.raises(ValueError, match="not an element"):
            group.elements_from_matrices(m[None])


def test_names_and_aliases():
    assert st.group("Cinf") is st.group("SO(2)", dim=3, backend="escnn")
    assert st.group("Cinfv") is st.group("O(2)", dim=3, backend="escnn")
    assert st.group("Inv") is st.group("Ci") and st.group("C_inf_h") is st.group("Cinfh")
    for name in NAMES:
        G = st.group(name.lower())
        assert (G.dim, G.backend) == (3, "escnn")
        with pytest.raises(ValueError, match="not on R\\^2"):
            st.group(name, dim=2)
    # "m" stays the matrix backend's Hermann-Mauguin symbol (the same group as Cs)
    m = st.group("m")
    assert m.backend == "matrix"
    cs = st.group("Cs")
    for a in m.elements().matrices:
        assert min(float((a - b).abs().max()) for b in cs.elements().matrices) < 1e-12
    assert st.group("Cs").order == 2 and st.group("Dinfh").order is None


def test_pickles_by_name(case):
    import pickle

    _, group = case
    assert pickle.loads(pickle.dumps(group)) is group


# -- equivariance ----------------------------------------------------------------------------------
def _field(G) -> st.FieldType:
    higher = [r for r in G.irreps(max_frequency=2) if r.size == 2]
    reps = [G.trivial_rep(), G.standard_rep(), G.det_rep()] + higher[-1:]
    return st.FieldType(G, reps)


@pytest.mark.parametrize("dtype,bound", [(torch.float64, F64_BOUND), (torch.float32, F32_BOUND)])
def test_point_conv_equivariance(case, dtype, bound):
    name, group = case
    torch.manual_seed(0)
    f = _field(group)
    elements = group.elements_from_matrices(definition_elements(name))
    conv = st.PointConv(f, f, edge_attr=1, max_radius=1.5, hidden_layers=1)
    kernel = st.ImplicitKernel(f, f, 1, max_radius=1.5, hidden_layers=1)
    gen = torch.Generator().manual_seed(1)
    for module in (conv, kernel):
        err = check_equivariance(module, elements=elements, dtype=dtype, n_points=12, generator=gen)
        assert err <= bound, (type(module).__name__, err)


def test_grid_conv_equivariance(case):
    from steerable.nn.grid_action import lattice_elements

    name, group = case
    lattice = lattice_elements(group)
    # the lattice symmetries of the group are those of the cube's 48 that satisfy its definition
    assert all(in_group(name, m) for m in lattice.matrices)
    assert len(lattice) == {"Cs": 2, "Ci": 2, "Cinf": 4, "Cinfv": 8, "Dinf": 8, "Cinfh": 8, "Dinfh": 16}[name]
    torch.manual_seed(0)
    f = _field(group)
    grid = st.GridConv(f, f, 3, padding=1, max_radius=math.sqrt(3), hidden_layers=1)
    err = check_equivariance(grid, dtype=torch.float64, grid_size=5, generator=torch.Generator().manual_seed(2))
    assert err <= F64_BOUND


# -- completeness ----------------------------------------------------------------------------------
def _stabiliser(name: str, point: torch.Tensor) -> torch.Tensor:
    """Generators of the stabiliser of ``point`` in the group, from the definition.

    An axial map fixing a point ``p`` is a rotation about z (then ``p`` is on the z axis), the mirror
    in the vertical plane through ``p`` (on the axis: any vertical plane), the horizontal mirror or the
    half turn about the horizontal axis through ``p`` (both when ``p_z = 0``), or a product of them.
    The candidates: rotations about z by 0.7 and 2.1 rad (dense together), the vertical mirrors at
    angles ``φ`` and ``φ + 0.3`` (``φ`` the azimuth of ``p``), the mirror ``z -> -z`` and the half turn
    about the axis at ``φ``; kept are those fixing ``p`` that satisfy the group's definition.
    """
    phi = math.atan2(float(point[1]), float(point[0]))
    eye = torch.eye(3, dtype=torch.float64)

    def mirror(angle: float) -> torch.Tensor:  # in the vertical plane at ``angle``
        normal = torch.tensor([-math.sin(angle), math.cos(angle), 0.0], dtype=torch.float64)
        return eye - 2 * torch.outer(normal, normal)

    axis = torch.tensor([math.cos(phi), math.sin(phi), 0.0], dtype=torch.float64)
    candidates = [rot_z(0.7), rot_z(2.1), mirror(phi), mirror(phi + 0.3)]
    candidates += [torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)), 2 * torch.outer(axis, axis) - eye]
    keep = [eye] + [m for m in candidates if (m @ point - point).norm() < 1e-12 and in_group(name, m)]
    return torch.stack(keep)


@pytest.mark.parametrize(
    "point,expected",
    [
        # on the z axis: the stabiliser is the group's rotations about z and its vertical mirrors
        ((0.0, 0.0, 0.6), {"Cs": 1, "Ci": 1, "Cinf": 3, "Cinfv": 5, "Dinf": 3, "Cinfh": 3, "Dinfh": 5}),
        # on the x axis: its horizontal mirror, half turn about x and mirror in the xz plane
        ((0.6, 0.0, 0.0), {"Cs": 2, "Ci": 1, "Cinf": 1, "Cinfv": 2, "Dinf": 2, "Cinfh": 2, "Dinfh": 4}),
        # a generic point: the vertical mirror through it, if the group has one
        ((0.41, -0.27, 0.33), {"Cs": 1, "Ci": 1, "Cinf": 1, "Cinfv": 2, "Dinf": 1, "Cinfh": 1, "Dinfh": 2}),
    ],
)
def test_kernel_reaches_the_commutant_of_the_stabiliser(case, point, expected):
    name, group = case
    x = torch.tensor(point, dtype=torch.float64)
    stab_mats = _stabiliser(name, x)
    assert len(stab_mats) == expected[name]
    stab = group.elements_from_matrices(stab_mats)
    # every irrep up to frequency 2 (escnn's order) and the standard and det representations
    f = st.FieldType(group, [group.standard_rep(), group.det_rep(), *group.irreps(max_frequency=2)])
    allowed = commutant_dimension(stab, f, f)
    torch.manual_seed(0)
    kernel = st.ImplicitKernel(f, f, basis_size=None, max_radius=1.5, hidden_layers=1, hidden_channels=8).double()

    def rerandomised() -> torch.nn.Module:  # kernel_span_rank seeds torch before each call
        with torch.no_grad():
            for p in kernel.parameters():
                p.copy_(torch.randn_like(p))
        return kernel

    rank = kernel_span_rank(rerandomised, x[None], n_inits=allowed + 6)
    assert rank == allowed, (name, point, rank, allowed)
    assert allowed < f.size**2 or len(stab_mats) == 1  # a real constraint wherever the stabiliser is not trivial
