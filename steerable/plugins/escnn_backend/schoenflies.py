"""The axial subgroups of ``O(3)`` by Schoenflies name: the groups of the implicit-kernel paper's
ModelNet comparison, as escnn subgroups of ``O(3)`` acting on ``(x, y, z)``.

Every group keeps the z axis (the third coordinate) as a line; ``R_z(θ)`` is the rotation
``[[c, -s, 0], [s, c, 0], [0, 0, 1]]``:

=========== =============================== ======================================================
name        escnn subgroup id of ``O(3)``   elements (matrices acting on coordinates)
=========== =============================== ======================================================
``Cs``      ``('cone', 1, adj)``            ``I`` and the mirror ``diag(1, 1, -1)`` (``z -> -z``);
                                            ``adj`` turns escnn's mirror plane (the xz plane) into
                                            the xy plane
``Ci``      ``(True, False, 1)``            ``I`` and the inversion ``-I`` (alias ``Inv``)
``Cinf``    ``(False, False, -1)``          ``R_z(θ)``: the escnn backend's ``SO(2)`` on ``R^3``
``Cinfv``   ``('cone', 0., -1)``            ``R_z(θ)`` and the mirrors in planes containing z: the
                                            escnn backend's ``O(2)`` on ``R^3``
``Dinf``    ``(False, True, -1)``           ``R_z(θ)`` and the half turns about horizontal axes
                                            (``diag(1, -1, -1) R_z(θ)``), all of determinant 1
``Cinfh``   ``(True, False, -1)``           ``± R_z(θ)``: the rotations, the inversion and their
                                            products (``-R_z(π)`` is the mirror ``z -> -z``)
``Dinfh``   ``(True, True, -1)``            ``± R_z(θ)``, ``± diag(1, -1, -1) R_z(θ)``: every
                                            orthogonal map keeping the z axis
=========== =============================== ======================================================

``Cinf`` and ``Cinfv`` are the very group objects ``st.group("SO(2)", dim=3)`` and
``st.group("O(2)", dim=3)`` (same elements, representations and kernels under either name).  The
paper's ``M`` is ``Cs``; it is not registered here because ``"m"`` (names ignore case) is the matrix
backend's Hermann-Mauguin symbol of the same group, which keeps it.

The continuous groups are built on escnn's own groups: ``Dinf`` on escnn's ``O(2)`` (element
``(f, θ)``: ``diag(1, -1, -1)^f R_z(θ)``), ``Cinfh`` on ``C2 x SO(2)`` (``(i, θ)``:
``(-1)^i R_z(θ)``), ``Dinfh`` on ``C2 x O(2)`` (``(i, (f, θ))``); the harmonic embedding and every
representation are the parent's, restricted by escnn.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch

from steerable.core.group import GroupElements
from steerable.core.mlp import KernelMLP, KernelMLPSpec

from .groups import EscnnGroup, EscnnRep, _check_dim, _parent, _registered_group

__all__ = [
    "AxialGroup",
    "build_ci",
    "build_cinf",
    "build_cinfh",
    "build_cinfv",
    "build_cs",
    "build_dinf",
    "build_dinfh",
]

#: escnn subgroup ids of the continuous axial groups built here, and the kind of their elements
_CONTINUOUS = {
    "Dinf": ((False, True, -1), "dinf"),
    "Cinfh": ((True, False, -1), "cinfh"),
    "Dinfh": ((True, True, -1), "dinfh"),
}


class AxialGroup(EscnnGroup):
    """``Dinf``, ``Cinfh`` or ``Dinfh`` (module docstring): an escnn subgroup of ``O(3)`` whose
    elements are a rotation angle about z and one or two bits.

    ``kind`` is ``"dinf"`` (escnn ``O(2)``: ``(f, θ)``), ``"cinfh"`` (``C2 x SO(2)``: ``(i, θ)``) or
    ``"dinfh"`` (``C2 x O(2)``: ``(i, (f, θ))``); ``f`` is the half turn about the x axis, ``i`` the
    inversion.
    """

    def _native(self, i: int, f: int, angle: float) -> Any:
        """The native element with inversion bit ``i``, half-turn bit ``f`` and angle ``angle``."""
        H = self.native
        if self.kind == "dinf":
            return H.element((f, angle))
        if self.kind == "cinfh":
            return H.element((i, angle))
        return H.element((i, (f, angle)))

    def _bits(self) -> list[tuple[int, int]]:
        """The ``(i, f)`` combinations of the group's components."""
        i_bits = (0,) if self.kind == "dinf" else (0, 1)
        f_bits = (0,) if self.kind == "cinfh" else (0, 1)
        return list(itertools.product(i_bits, f_bits))

    def sample(self, n: int, generator: torch.Generator | None = None) -> GroupElements:
        """``n`` Haar-random elements: a uniform component and a uniform angle in ``[0, 2π)``."""
        bits = self._bits()
        comp = torch.randint(len(bits), (n,), generator=generator).tolist()
        angles = (torch.rand(n, generator=generator, dtype=torch.float64) * (2 * math.pi)).tolist()
        return self._make([self._native(*bits[c], a) for c, a in zip(comp, angles)])

    def _candidates(self, m: np.ndarray) -> list:
        """Native elements that may have standard matrix ``m``: each component, with the angles the
        ``(x, y)`` block allows under either order of the reflection and the rotation (the caller keeps
        the one whose matrix matches)."""
        flip = np.diag([1.0, -1.0])
        candidates = []
        for i, f in self._bits():
            block = m[:2, :2] * (-1.0 if i else 1.0)
            blocks = [block @ flip, flip @ block] if f else [block]
            angles = {math.atan2(b[1, 0], b[0, 0]) % (2 * math.pi) for b in blocks}
            candidates += [self._native(i, f, a) for a in sorted(angles)]
        return candidates

    def irreps(self, max_frequency: int = 2) -> list[EscnnRep]:
        """Irreducible representations up to frequency ``max_frequency``, lowest first.

        ``Dinf``: escnn ``O(2)`` ids ``(0, 0), (1, 0), (1, 1), ..., (1, F)``; ``Cinfh``: ``((j,), (k,), 0)``
        and ``Dinfh``: ``((j,), o2_id, 0)``, for each frequency even (``j = 0``) then odd (``j = 1``)
        under the inversion.
        """
        F = int(max_frequency)
        o2 = [(0, 0), (1, 0)] + [(1, k) for k in range(1, F + 1)]
        if self.kind == "dinf":
            return [self.irrep(*i) for i in o2]
        rotation = [(k,) for k in range(F + 1)] if self.kind == "cinfh" else o2
        return [self.irrep((j,), r, 0) for r in rotation for j in (0, 1)]

    def irrep_band(self, irrep_id: tuple) -> int:
        """The harmonic degree a complete kernel needs to output the irrep with escnn id ``irrep_id``
        (used by :func:`~.embedding.choose_band_limit`).

        The degree-``l`` harmonics carry frequencies ``k <= l`` about z, with parity ``(-1)^l`` under
        the inversion and ``(-1)^(l + k)`` under the half turn about x.  ``Cinfh``, ``Dinfh``: the
        first degree with the irrep's frequency ``k`` and inversion parity ``j``, ``k + (k + j) mod 2``
        (one copy spans what the stabiliser allows: complex-type irreps, resp. a vertical mirror through
        every point).  ``Dinf``: a point off the z axis and the xy plane has a trivial stabiliser, and
        the values of one harmonic copy of a 2-dimensional irrep span only a line: degrees ``k`` and
        ``k + 1`` (whose copies are a quarter turn apart there) are needed, ``k + 1``; the sign irrep
        ``(1, 0)`` is ``z``, degree 1.
        """
        k = self.frequency(irrep_id)
        if self.kind == "dinf":
            return k + 1 if k >= 1 else int(irrep_id[0])
        return k + (k + int(irrep_id[0][0])) % 2

    def frequency(self, irrep_id: tuple) -> int:
        """The rotation frequency ``k`` about z of the irrep with escnn id ``irrep_id``."""
        if self.kind == "dinf":
            return int(irrep_id[1])
        rotation = irrep_id[1]
        return int(rotation[0] if self.kind == "cinfh" else rotation[1])

    def build_kernel_mlp(self, spec: KernelMLPSpec) -> KernelMLP:
        """The escnn kernel MLP, after making escnn list the irreps its layers meet.

        escnn decomposes tensor products of these groups' irreps numerically, searching only the
        irreps it has instantiated (up to ``groups.MAX_FREQUENCY`` at first): the linear maps
        between hidden irreps of frequency up to ``F`` need frequencies up to ``2 F``, instantiated here
        in order of frequency (the same order in every process)."""
        from .frontend import plan_inputs

        plan = plan_inputs(self, spec)
        attr = [self.frequency(tuple(i)) for _, rep in plan.attr_fields for i in rep.irreps]
        self.irreps(max_frequency=2 * max([plan.band_limit, *attr]))
        return super().build_kernel_mlp(spec)


def _mirror_z_adjoint(parent: Any) -> Any:
    """The quarter turn about x that carries escnn's cone mirror (normal y) to the mirror ``z -> -z``."""
    q = np.array([math.sin(math.pi / 4), 0.0, 0.0, math.cos(math.pi / 4)])  # (x, y, z, w) quaternion
    return parent.element((0, q), "Q")


def build_cs(dim: int) -> EscnnGroup:
    _check_dim("Cs", dim, (3,))
    parent = _parent(3)
    return EscnnGroup("Cs", 3, "finite", parent, ("cone", 1, _mirror_z_adjoint(parent)))


def build_ci(dim: int) -> EscnnGroup:
    _check_dim("Ci", dim, (3,))
    return EscnnGroup("Ci", 3, "finite", _parent(3), (True, False, 1))


def build_cinf(dim: int) -> EscnnGroup:
    """``SO(2)`` on ``R^3`` (rotations about z), the registry's own object."""
    _check_dim("Cinf", dim, (3,))
    return _registered_group("SO(2)", 3)


def build_cinfv(dim: int) -> EscnnGroup:
    """``O(2)`` on ``R^3`` (rotations about z, mirrors through z), the registry's own object."""
    _check_dim("Cinfv", dim, (3,))
    return _registered_group("O(2)", 3)


def _axial(name: str):
    subgroup_id, kind = _CONTINUOUS[name]

    def build(dim: int) -> AxialGroup:
        _check_dim(name, dim, (3,))
        return AxialGroup(name, 3, kind, _parent(3), subgroup_id)

    build.__name__ = f"build_{name.lower()}"
    return build


build_dinf = _axial("Dinf")
build_cinfh = _axial("Cinfh")
build_dinfh = _axial("Dinfh")
