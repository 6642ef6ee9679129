"""Identity by key: groups and representations carry keys that include their backend; only portable
representations (trivial, standard, det) cross from one backend's copy of a group to another's,
through ``steerable.core.representation.transfer_rep``.

The transformations used in the equivariance check are built here from the documented conventions
(D4 on R^2: rotations by kπ/2 and the mirror diag(1, -1); trivial -> 1, standard -> the matrix,
det -> its determinant), not from the backends' representations.  Bound: 1e-13 in float64
(measured 1.5e-15; the layers are exact, only round-off remains: 66x margin).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import steerable as st
from steerable.core.group import Group, GroupElements, check_same_group, same_group
from steerable.core.mlp import KernelMLPSpec
from steerable.core.representation import FieldType, Rep, transfer_rep
from steerable.plugins.matrix_backend import group_from_generators
from steerable.plugins.matrix_backend.group import MatrixGroup, MatrixRep

ROT90 = np.array([[0.0, -1.0], [1.0, 0.0]])
MIRROR = np.diag([1.0, -1.0])


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERABLE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def two_d4():
    """The matrix backend's D4 and a second copy of the same group from generators given in the
    other order: another key (and another element order, so another regular representation)."""
    a = st.group("D4", dim=2, backend="matrix")
    b = group_from_generators([MIRROR, ROT90], name="D4")
    return a, b


def _documented_d4() -> torch.Tensor:
    rots = [np.linalg.matrix_power(ROT90, k) for k in range(4)]
    return torch.from_numpy(np.stack(rots + [r @ MIRROR for r in rots]))


def test_groups_and_reps_are_identified_by_key(two_d4):
    a, b = two_d4
    assert a.name == b.name == "D4" and a.order == b.order == 8
    assert a != b and a.key != b.key and hash(a) == hash(st.group("D4", dim=2, backend="matrix"))
    assert same_group(a, b)  # the same 8 matrices
    assert not np.array_equal(a.regular_rep().table, b.regular_rep().table)
    assert a.regular_rep() != b.regular_rep() and a.regular_rep().key != b.regular_rep().key
    assert a.trivial_rep().portable == "trivial" and a.standard_rep().portable == "standard"
    assert a.det_rep().portable == "det" and a.regular_rep().portable is None


def test_non_portable_reps_of_another_backend_are_refused(two_d4):
    """FieldType(A, [A.regular, B.regular]) used to build a PointConv with equivariance error 1.19."""
    a, b = two_d4
    with pytest.raises(ValueError, match=r"regular\[8\] of D4 on R\^2 \[matrix\] cannot be used with D4") as info:
        FieldType(a, [a.regular_rep(), b.regular_rep()])
    assert "only portable representations" in str(info.value)
    regular_b = FieldType(b, [b.regular_rep()])
    with pytest.raises(ValueError, match="cannot be used with"):
        st.PointConv(FieldType(a, [a.regular_rep()]), regular_b, max_radius=1.0)
    with pytest.raises(ValueError, match="cannot be used with"):
        st.FieldLinear(FieldType(a, [a.regular_rep()]), regular_b)
    with pytest.raises(ValueError, match="KernelMLPSpec block 0 input"):
        KernelMLPSpec(a, ((a.standard_rep(), b.regular_rep()),))
    with pytest.raises(ValueError, match="cannot be used with"):
        FieldType(a, [a.trivial_rep()]) + regular_b


def test_portable_reps_cross_and_stay_equivariant(two_d4):
    a, b = two_d4
    mixed = FieldType(a, [b.standard_rep(), a.trivial_rep(), b.det_rep()])
    assert mixed.reps == (a.standard_rep(), a.trivial_rep(), a.det_rep())
    assert all(r.group is a for r in mixed.reps)
    assert mixed == FieldType(b, [b.standard_rep(), b.trivial_rep(), b.det_rep()])
    assert hash(mixed) == hash(FieldType(b, [b.standard_rep(), b.trivial_rep(), b.det_rep()]))
    out_b = FieldType(b, [b.trivial_rep(), b.standard_rep()])
    torch.manual_seed(0)
    conv = st.PointConv(
        mixed, out_b, hidden_channels=2, max_radius=1.0
    ).double()  # one layer, two backends' field types
    lin = st.FieldLinear(mixed, out_b).double()
    gen = torch.Generator().manual_seed(1)
    pos = torch.randn(6, 2, dtype=torch.float64, generator=gen)
    x = torch.randn(6, mixed.size, dtype=torch.float64, generator=gen)
    src, dst = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    edges = torch.stack([src.flatten(), dst.flatten()])
    with torch.no_grad():
        base, base_lin = conv(x, pos, edges), lin(x)
    assert base.abs().max() > 1e-3
    worst = 0.0
    for m in _documented_d4():
        act_in = torch.block_diag(m, torch.ones(1, 1, dtype=torch.float64), torch.linalg.det(m).reshape(1, 1))
        act_out = torch.block_diag(torch.ones(1, 1, dtype=torch.float64), m)
        with torch.no_grad():
            moved, moved_lin = conv(x @ act_in.T, pos @ m.T, edges), lin(x @ act_in.T)
        worst = max(worst, float((moved - base @ act_out.T).norm() / base.norm()))
        torch.testing.assert_close(moved_lin, base_lin @ act_out.T, atol=1e-12, rtol=0)
    assert worst <= 1e-13


def test_elements_of_another_copy_are_recognised(two_d4):
    a, b = two_d4
    field = FieldType(a, [a.standard_rep(), a.regular_rep()])
    els_b = b.elements()
    mats = field.matrices(els_b)  # b's elements, recognised by their matrices
    torch.testing.assert_close(mats[:, :2, :2], els_b.matrices, atol=1e-12, rtol=0)
    other = st.group("C4", dim=2, backend="matrix")
    with pytest.raises(ValueError, match="elements of C4"):
        field.matrices(other.elements())


class _ImpostorRep(Rep):
    def __init__(self, group: Group, name: str, size: int) -> None:
        self.group, self.name, self.size, self.is_trivial = group, name, size, name == "trivial"

    def matrices(self, elements: GroupElements) -> torch.Tensor:
        if self.size == 1:
            return torch.ones(len(elements), 1, 1, dtype=torch.float64)
        return elements.matrices.clone()


class _ImpostorSO3(Group):
    """Named "SO(3)" and claiming to be e3nn's, but of order 2 ({I, -I}) or, with ``order=None``,
    only the rotations about z."""

    name, dim, backend = "SO(3)", 3, "e3nn"

    def __init__(self, order: int | None) -> None:
        self.order = order
        self._trivial, self._standard = _ImpostorRep(self, "trivial", 1), _ImpostorRep(self, "standard", 3)

    def trivial_rep(self) -> Rep:
        return self._trivial

    def standard_rep(self) -> Rep:
        return self._standard

    def _z_rotations(self, angles: torch.Tensor) -> torch.Tensor:
        c, s, one, zero = angles.cos(), angles.sin(), torch.ones_like(angles), torch.zeros_like(angles)
        return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], -1).reshape(-1, 3, 3)

    def sample(self, n: int, generator: torch.Generator | None = None) -> GroupElements:
        if self.order == 2:
            signs = 1.0 - 2.0 * torch.randint(2, (n,), generator=generator).double()
            return GroupElements(self, signs[:, None, None] * torch.eye(3, dtype=torch.float64))
        return GroupElements(self, self._z_rotations(torch.rand(n, generator=generator, dtype=torch.float64) * 6.28))

    def elements(self) -> GroupElements:
        if self.order != 2:
            return super().elements()
        return GroupElements(self, torch.stack([torch.eye(3), -torch.eye(3)]).double())

    def elements_from_matrices(self, matrices: torch.Tensor) -> GroupElements:
        mats = torch.as_tensor(matrices, dtype=torch.float64)
        for k, m in enumerate(mats):
            if self.order == 2:  # exactly I or -I
                ok = abs(float(m[0, 0])) == 1 and bool((m == m[0, 0] * torch.eye(3, dtype=torch.float64)).all())
            else:
                angle = torch.atan2(m[1, 0], m[0, 0])
                ok = torch.allclose(m, self._z_rotations(angle[None])[0], atol=1e-9)
            if not ok:
                raise ValueError(f"matrix {k} is not an element of the impostor")
        return GroupElements(self, mats)

    def build_kernel_mlp(self, spec: KernelMLPSpec) -> torch.nn.Module:  # pragma: no cover - never reached
        raise AssertionError("an impostor's MLP must never be built")


@pytest.mark.parametrize("order", [2, None], ids=["order-2", "z-rotations"])
def test_an_impostor_named_so3_is_refused(order):
    real = next((st.group("SO(3)", backend=b) for b in ("e3nn", "escnn") if b in _available()), None)
    if real is None:
        pytest.skip("no SO(3) backend installed")
    fake = _ImpostorSO3(order)
    assert fake.key != real.key and fake != real and not same_group(fake, real)
    with pytest.raises(ValueError, match=r"is a representation of SO\(3\) on R\^3 \[e3nn\] \(order "):
        FieldType(real, [fake.trivial_rep()])
    with pytest.raises(ValueError, match="fields of different groups"):
        check_same_group([real, fake], "test")
    with pytest.raises(ValueError, match="fields of different groups"):
        st.PointConv(FieldType(real, [real.standard_rep()]), FieldType(fake, [fake.standard_rep()]), max_radius=1.0)
    assert FieldType(real, [real.trivial_rep()]) != FieldType(fake, [fake.trivial_rep()])


def _available() -> set[str]:
    return {row.name for row in st.list_backends() if row.available}


def test_an_impostor_finite_group_of_the_same_name_and_order_is_refused():
    """Same name, dimension and order as the matrix backend's 4mm on R^2, other elements (the
    mirror at 22.5°): not the same group, so not even its trivial representation crosses."""
    real = st.group("4mm", dim=2, backend="matrix")
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    tilted = group_from_generators([ROT90, np.array([[c, s], [s, -c]])], name="4mm")
    assert tilted.order == real.order == 8 and not same_group(real, tilted)
    with pytest.raises(ValueError, match="which is not the group"):
        FieldType(real, [tilted.trivial_rep()])


class _LyingD4(MatrixGroup):
    """A copy of D4 whose "standard" representation is det ⊗ standard (a valid representation,
    not the coordinate action) while still declaring it portable."""

    def standard_rep(self) -> MatrixRep:
        table = self._elements * np.linalg.det(self._elements)[:, None, None]
        return self._cached("standard", lambda: MatrixRep(self, "standard", table, check=False))


def test_transfer_checks_the_matrices_of_a_declared_portable_rep(two_d4):
    a, _ = two_d4
    liar = _LyingD4(np.stack([MIRROR, ROT90]), "D4")
    assert same_group(a, liar)
    assert transfer_rep(liar.trivial_rep(), a) is a.trivial_rep()
    with pytest.raises(ValueError, match="both declared portable as 'standard' but their matrices differ by 2"):
        FieldType(a, [liar.standard_rep()])


def test_fields_are_grouped_by_key_not_by_name():
    """Two representations of one name and size with different matrices stay apart in by_rep, runs,
    FieldLinear and FieldType equality; equal matrices under another name are the same rep."""
    group = st.group("4mm", dim=2, backend="matrix")  # generators: 90° rotation, mirror
    sign = group.rep_from_generators([-np.eye(1), np.eye(1)], name="rho")  # -1 on the rotation
    flip = group.rep_from_generators([np.eye(1), -np.eye(1)], name="rho")  # -1 on the mirror
    assert (sign.name, sign.size) == (flip.name, flip.size) and sign != flip
    assert group.rep_from_generators([-np.eye(1), np.eye(1)], name="another name") == sign
    field = FieldType(group, [sign, flip, flip])
    assert [(rep, fields) for rep, fields in field.by_rep()] == [(sign, [0]), (flip, [1, 2])]
    assert field.runs() == [(sign, 1), (flip, 2)]
    assert FieldType(group, [sign]) != FieldType(group, [flip])
    lin = st.FieldLinear(FieldType(group, [sign]), FieldType(group, [flip]))
    assert len(lin.weights) == 0 and torch.equal(lin(torch.randn(5, 1)), torch.zeros(5, 1))
    mixed = st.FieldLinear(field, field).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    # the 90° rotation: sign -> -1, flip -> +1 (documented by the generator images above)
    act = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(mixed(x @ act.T), mixed(x) @ act.T, atol=1e-14, rtol=0)


def test_escnn_and_matrix_d4_do_not_mix_regular_reps():
    """The issue's case: escnn's D4 and the matrix backend's D4 are one group (same name, same 8
    matrices), but their regular representations order the elements differently."""
    pytest.importorskip("escnn")
    a, b = st.group("D4", dim=2, backend="escnn"), st.group("D4", dim=2, backend="matrix")
    assert a != b and same_group(a, b)
    refused = r"regular\[8\] of D4 on R\^2 \[matrix\] cannot be used with D4 on R\^2 \[escnn\]"
    with pytest.raises(ValueError, match=refused):
        FieldType(a, [a.regular_rep(), b.regular_rep()])
    both = FieldType(a, [a.trivial_rep(), b.standard_rep()])
    assert both.reps == (a.trivial_rep(), a.standard_rep())
    assert both == FieldType(b, [b.trivial_rep(), b.standard_rep()])
