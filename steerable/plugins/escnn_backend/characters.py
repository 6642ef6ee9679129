"""Two of escnn's slow first-use computations, done exactly and cheaply from characters.

escnn builds the kernel MLP's equivariant linear layers from the decompositions of tensor products
of irreps, ``ψ_J ⊗ ψ_l = ⊕_j m_j ψ_j``.  For groups without an analytic rule (the finite 3D groups,
``FullOcta``/``FullIco``, the dihedral and ``O(2)`` groups, and the axial groups ``Dinf``,
``Cinfh``, ``Dinfh``) escnn's ``Group._tensor_product_irreps`` finds each ``m_j`` by solving the
Clebsch-Gordan system of *every* irrep ``j`` numerically, even though a linear layer on a point only
keeps ``j = trivial``: FullIco's two hidden layers solved 760 such systems (about 200 s of a 290 s
first build, profiled).  The multiplicities are integers fixed by character theory:

    ``m_j = <χ_J χ_l, χ_j> / c_j``, ``<a, b> = ∫_H a(h) b(h) dh``,

with ``c_j`` = 1, 2, 4 for escnn's real irreps of real, complex, quaternionic type (``<χ_j, χ_j>``).
The integral is a mean over the elements of a finite group, and for the continuous groups (a
rotation angle ``θ`` about z and one or two bits) a mean over the components and ``N`` equally
spaced angles, exact since the integrand is a trigonometric polynomial of degree at most
``k_J + k_l + k_j < N`` in ``θ`` (:func:`tensor_product_irreps`).  :func:`install` makes escnn
use this for one group; the list returned is escnn's (the irreps escnn has instantiated, in
escnn's order, with nonzero multiplicity), checked against escnn's numerical search in
``tests/test_escnn_construction.py``.  The Clebsch-Gordan coefficients that are used are still
escnn's.

:func:`build_regular_representation` builds escnn's regular representation of a finite group with
escnn's own formulas (``escnn.group.representation.build_regular_representation``: the same
irreps, the same change-of-basis matrix, bit for bit) without its ``|H|^2`` Python loop of group
products (FullIco: 14,400 products, ~20 s in every process): the regular character is ``|H|`` at
the identity and zero elsewhere, so the multiplicity of ``ψ_j`` is ``dim ψ_j / c_j``.
:func:`regular_representation` gives it to our group, and :func:`fast_regular_representations`
to the finite groups escnn builds inside a subgroup's construction (Ico, Octa).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .groups import EscnnGroup

__all__ = [
    "build_regular_representation",
    "fast_regular_representations",
    "install",
    "regular_representation",
    "tensor_product_irreps",
]

#: largest distance of a computed multiplicity from an integer accepted (else the quadrature is wrong)
INTEGRALITY_TOL = 1e-6


def _escnn_generic(native: Any) -> bool:
    """Whether ``native`` decomposes tensor products with escnn's generic numerical search."""
    from escnn.group import Group

    return type(native)._tensor_product_irreps is Group._tensor_product_irreps


def _frequency(group: EscnnGroup, irrep_id: tuple) -> int:
    """Rotation frequency about z of an irrep of a continuous group (``group.frequency`` for the
    axial groups of :mod:`.schoenflies`)."""
    own = getattr(group, "frequency", None)
    if own is not None:
        return int(own(irrep_id))
    from .embedding import frequency

    return frequency(group, irrep_id)


def _quadrature(group: EscnnGroup, n_angles: int) -> list:
    """Native elements whose uniform mean integrates, over ``group``, every trigonometric polynomial
    of degree ``< n_angles`` in the rotation angle (finite groups: all elements)."""
    if group.order is not None:
        return list(group._elements)
    angles = [2 * math.pi * k / n_angles for k in range(n_angles)]
    H = group.native
    if group.kind == "so2":
        return [H.element(a) for a in angles]
    if group.kind == "o2":
        return [H.element((f, a)) for f in (0, 1) for a in angles]
    bits = getattr(group, "_bits", None)
    if bits is None:
        raise ValueError(f"{group}: no character quadrature for kind {group.kind!r}")
    return [group._native(i, f, a) for i, f in bits() for a in angles]


class _Characters:
    """Characters of the irreps of one group on quadratures, computed once per (irrep, quadrature).

    For escnn's direct products ``G1 x G2`` (FullOcta, FullIco, Cinfh, Dinfh) the irrep ``(a, b, 0)``
    with a real-type factor is ``ψ_a ⊗ ψ_b``, whose character is ``χ_a(g1) χ_b(g2)``: evaluated on
    the factors (escnn's product irreps are slow to evaluate), the elements split once.
    """

    def __init__(self, group: EscnnGroup) -> None:
        self.group = group
        self._points: dict[int, list] = {}
        self._split: dict[int, list] = {}
        self._values: dict[tuple, np.ndarray] = {}

    def points(self, n_angles: int) -> list:
        if n_angles not in self._points:
            self._points[n_angles] = _quadrature(self.group, n_angles)
        return self._points[n_angles]

    def _factor_character(self, irrep: Any, n_angles: int) -> np.ndarray | None:
        """``χ_a(g1) χ_b(g2)`` on the quadrature when ``irrep`` is a product irrep, else ``None``."""
        H = self.group.native
        if not (hasattr(H, "G1") and hasattr(H, "split_element")) or len(irrep.id) != 3 or irrep.id[2] != 0:
            return None
        psi1, psi2 = H.G1.irrep(*irrep.id[0]), H.G2.irrep(*irrep.id[1])
        if "R" not in (psi1.type, psi2.type):
            return None
        if n_angles not in self._split:
            self._split[n_angles] = [H.split_element(g) for g in self.points(n_angles)]
        return np.array([np.trace(psi1(g1)) * np.trace(psi2(g2)) for g1, g2 in self._split[n_angles]])

    def __call__(self, irrep: Any, n_angles: int) -> np.ndarray:
        key = (irrep.id, n_angles)
        if key not in self._values:
            values = self._factor_character(irrep, n_angles)
            if values is None:
                values = np.array([np.trace(irrep(g)) for g in self.points(n_angles)], dtype=np.float64)
            self._values[key] = np.asarray(values, dtype=np.float64)
        return self._values[key]


def tensor_product_irreps(group: EscnnGroup, J: Any, l: Any, characters: _Characters | None = None) -> list:
    """``[(j, m_j), ...]``: the irreps ``ψ_j`` escnn has instantiated for ``group.native`` with
    ``m_j > 0`` in ``ψ_J ⊗ ψ_l``, in escnn's order (what escnn's ``_tensor_product_irreps`` returns).

    Continuous groups: only irreps of frequency ``k_j <= k_J + k_l`` can occur (the integrand of
    every other one has no constant Fourier term), so only those are integrated, on
    ``N = 2 (k_J + k_l) + 1`` angles.

    Raises escnn's ``InsufficientIrrepsException`` (as escnn does) when the instantiated irreps do
    not fill ``ψ_J ⊗ ψ_l``, and ``ArithmeticError`` if a multiplicity is not an integer.
    """
    H = group.native
    characters = characters or _Characters(group)
    psi_J, psi_l = H.irrep(*H.get_irrep_id(J)), H.irrep(*H.get_irrep_id(l))
    if group.order is None:
        top = _frequency(group, psi_J.id) + _frequency(group, psi_l.id)
        n = 2 * top + 1
        candidates = [psi for psi in H.irreps() if _frequency(group, psi.id) <= top]
    else:
        n, candidates = 0, list(H.irreps())
    product = characters(psi_J, n) * characters(psi_l, n)
    found, size = [], 0
    for psi_j in candidates:
        m = float(np.mean(product * characters(psi_j, n))) / psi_j.sum_of_squares_constituents
        if abs(m - round(m)) > INTEGRALITY_TOL:
            raise ArithmeticError(
                f"{group}: multiplicity {m} of {psi_j.id} in {psi_J.id} x {psi_l.id} is not an integer"
            )
        if round(m) > 0:
            found.append((psi_j.id, int(round(m))))
            size += psi_j.size * int(round(m))
    if size < psi_J.size * psi_l.size:
        from escnn.group._numerical import InsufficientIrrepsException

        raise InsufficientIrrepsException(
            H,
            f"the irreps instantiated in {H} do not fill {psi_J.name} x {psi_l.name} (size {size} of "
            f"{psi_J.size * psi_l.size}); instantiate more irreps and repeat this call",
        )
    if size > psi_J.size * psi_l.size:  # pragma: no cover - character theory forbids it
        raise ArithmeticError(f"{group}: too many irreps in {psi_J.id} x {psi_l.id}")
    return found


def install(group: EscnnGroup) -> None:
    """Make escnn decompose tensor products of ``group.native``'s irreps with
    :func:`tensor_product_irreps` (once; only where escnn would use its generic numerical search).

    escnn's group objects are shared (one per group and parameters), so the escnn models of the
    same process use it too; it returns escnn's own answer.
    """
    H = group.native
    if "_tensor_product_irreps" in H.__dict__ or not _escnn_generic(H):
        return
    characters = _Characters(group)
    memo: dict[tuple, list] = {}

    def decompose(J: Any, l: Any) -> list:
        key = (H.get_irrep_id(J), H.get_irrep_id(l), tuple(psi.id for psi in H.irreps()))
        if key not in memo:
            memo[key] = tensor_product_irreps(group, J, l, characters)
        return list(memo[key])

    H._tensor_product_irreps = decompose


def build_regular_representation(native: Any) -> tuple[list, np.ndarray, np.ndarray]:
    """``(irreps, change_of_basis, change_of_basis_inv)`` of the regular representation of a finite
    escnn group: the same as ``escnn.group.representation.build_regular_representation(native)``
    (the module docstring), with ``O(|H|)`` evaluations of the irreps instead of ``|H|^2`` products."""
    from escnn.group import directsum

    elements = list(native.elements)
    size = len(elements)
    irreps, multiplicities = [], []
    for irrep in native.irreps():
        m = int(round(irrep.size / irrep.sum_of_squares_constituents))
        irreps += [irrep] * m
        multiplicities.append((irrep, m))
    P = directsum(irreps, name="irreps")
    v = np.zeros((size, 1))
    p = 0
    for irrep, m in multiplicities:
        s = irrep.size
        v[p : p + m * s, 0] = np.eye(m, s).reshape(-1) * np.sqrt(s)
        p += m * s
    change_of_basis = np.zeros((size, size))
    for k, e in enumerate(elements):
        change_of_basis[k, :] = (P(e) @ v).T
    change_of_basis /= np.sqrt(size)
    return irreps, change_of_basis, change_of_basis.T


def regular_representation(group: EscnnGroup) -> Any:
    """escnn's regular representation of the finite ``group.native`` (stored in its
    ``representations["regular"]``, where escnn's ``regular_representation`` finds it), built by
    :func:`build_regular_representation` with escnn's arguments (``Group.regular_representation``)."""
    from escnn.group import Representation

    H = group.native
    if "regular" not in H.representations:
        irreps, change_of_basis, change_of_basis_inv = build_regular_representation(H)
        H.representations["regular"] = Representation(
            H,
            "regular",
            [r.id for r in irreps],
            change_of_basis,
            ["pointwise", "norm", "gated", "concatenated"],
            change_of_basis_inv=change_of_basis_inv,
        )
    return H.representations["regular"]


@contextlib.contextmanager
def fast_regular_representations() -> Iterator[None]:
    """While active, escnn builds regular representations with :func:`build_regular_representation`
    (escnn's finite groups build their own in their constructors: Ico, Octa, their factors).

    escnn's ``Group.regular_representation`` looks ``escnn.group.representation.build_regular_representation``
    up when it runs; it is replaced for the duration only (and restored on any exit).
    """
    import escnn.group.representation as module

    original = module.build_regular_representation
    module.build_regular_representation = build_regular_representation
    try:
        yield
    finally:
        module.build_regular_representation = original
