"""Groups and representations of the escnn backend.

Every group is built as a subgroup ``H`` of a *parent* ``P``: ``O(2)`` for the groups acting on
``R^2`` and ``O(3)`` for those acting on ``R^3``.  The standard representation of ``H`` is the
parent's standard representation restricted to ``H``, so that it acts on coordinates ``(x, y)`` or
``(x, y, z)`` exactly as the matrices in :class:`~steerable.core.group.GroupElements` do, and the
harmonic embedding of the kernel MLP (:mod:`.embedding`) is the parent's harmonics restricted to
``H``.

escnn subgroup ids used (``P`` = ``o2_group`` or ``o3_group``; all verified numerically in
``tests/test_escnn_backend.py``):

========== ====== ============================ =============================================
name       dim    subgroup id of ``P``         action on coordinates
========== ====== ============================ =============================================
SO(2)      2      ``(None, -1)``               rotations ``[[c, -s], [s, c]]``
O(2)       2      ``P`` itself                 + reflection ``diag(1, -1)`` (about the x axis)
C{N}       2      ``(None, N)``                rotations by ``2πk/N``
D{N}       2      ``(0., N)``                  + reflection ``diag(1, -1)``
SO(2)      3      ``(False, False, -1)``       rotations about z, z fixed
O(2)       3      ``('cone', 0., -1)``         + mirror ``diag(1, -1, 1)`` (the xz plane)
C{N}       3      ``(False, False, N)``        rotations by ``2πk/N`` about z
D{N}       3      ``('cone', 0., N)``          + mirror ``diag(1, -1, 1)``
SO(3)      3      ``(False, 'so3')``           rotation matrices
O(3)       3      ``P`` itself                 rotations and ``-1``
Octa       3      ``(False, 'octa')``          the 24 rotations of the cube ``[-1, 1]^3``
FullOcta   3      ``(True, 'octa')``           those and their products with ``-1`` (48)
Ico        3      ``(False, 'ico')``           the 60 rotations of escnn's icosahedron
FullIco    3      ``(True, 'ico')``            those and their products with ``-1`` (120)
========== ====== ============================ =============================================

The axial subgroups of ``O(3)`` by Schoenflies name (``Cs``, ``Ci``, ``Cinf``, ``Cinfv``, ``Dinf``, ``Cinfh``,
``Dinfh``) are built in :mod:`.schoenflies` on the same parent.

The ``O(2)``/``D{N}`` groups on ``R^3`` are escnn's *cone* subgroups: their reflections are mirror
planes containing the z axis, i.e. the planar group acting on ``(x, y)`` and fixing ``z`` (escnn's
``(False, True, N)`` ids would instead use 180° rotations about horizontal axes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from steerable.core.group import Group, GroupElements, same_group
from steerable.core.mlp import KernelMLP, KernelMLPSpec
from steerable.core.representation import FieldType, Rep

BACKEND = "escnn"
# Maximum frequency escnn's continuous groups are built with.  It only bounds the irreps escnn lists
# by itself (e.g. ``G.irreps()``); irreps of any frequency can still be requested by id.
MAX_FREQUENCY = 8
# Tolerance for recognising a matrix as a group element.
MATRIX_TOL = 1e-6


def _escnn_group():
    import escnn.group as eg

    return eg


class EscnnRep(Rep):
    """A representation of an :class:`EscnnGroup`, backed by an escnn ``Representation`` of ``H``.

    ``matrices(elements)`` evaluates the escnn representation on the native elements; elements of
    another backend's copy of the group (:func:`~steerable.core.group.same_group`), or without
    native handles, are first recognised from their standard matrices.
    """

    def __init__(self, group: EscnnGroup, native: Any, name: str, is_trivial: bool = False) -> None:
        self.group = group
        self.native = native
        self.name = name
        self.size = int(native.size)
        self.is_trivial = is_trivial

    @property
    def key(self) -> tuple:
        """``(group.key, "escnn", native name)``: escnn names its representations uniquely per group."""
        return (self.group.key, "escnn", self.native.name)

    def __reduce__(self) -> tuple:
        """Pickled as its group and how to find or rebuild the escnn representation (escnn's
        representations hold local functions, which do not pickle)."""
        native = self.native
        recipe = (native.name, [tuple(i) for i in native.irreps], np.asarray(native.change_of_basis))
        return (_rebuild_rep, (self.group, self.name, self.is_trivial, recipe))

    def matrices(self, elements: GroupElements) -> torch.Tensor:
        native = self.group._native_elements(elements)
        if not native:
            return torch.zeros(0, self.size, self.size, dtype=torch.float64)
        mats = np.stack([np.asarray(self.native(e), dtype=np.float64) for e in native])
        return torch.from_numpy(mats.reshape(len(native), self.size, self.size))


class EscnnGroup(Group):
    """A subgroup ``H`` of ``O(2)`` or ``O(3)`` built with escnn (see the module docstring).

    Attributes:
        native: escnn group ``H``.
        parent: escnn ``O(2)`` or ``O(3)``.
        subgroup_id: escnn id of ``H`` in ``parent`` (``None`` when ``H`` is the parent).
        kind: how elements are parametrised: ``"so2"``, ``"o2"``, ``"so3"``, ``"o3"`` or ``"finite"``.
    """

    backend = BACKEND

    def __init__(self, name: str, dim: int, kind: str, parent: Any, subgroup_id: Any = None) -> None:
        self.name, self.dim, self.kind = name, dim, kind
        self.parent, self.subgroup_id = parent, subgroup_id
        from .characters import fast_regular_representations, install, regular_representation
        from .first_use import announce

        announce(name, dim)  # a one-line note when escnn's slow first-use computations are due
        if subgroup_id is None:
            self.native, self.inclusion = parent, (lambda e: e)
        else:
            with fast_regular_representations():  # escnn's finite groups build theirs when built
                self.native, self.inclusion, _ = parent.subgroup(subgroup_id)
        order = self.native.order()
        self.order = int(order) if order > 0 else None
        self._reps: dict[Any, EscnnRep] = {}
        self._std = self.wrap(self.restrict(parent.standard_representation()), "standard")
        self._trivial = self.wrap(self.native.trivial_representation, "trivial", is_trivial=True)
        if self.order is not None:
            self._elements = list(self.native.elements)
            mats = np.stack([np.asarray(self._std.native(e), dtype=np.float64) for e in self._elements])
            self._element_mats = torch.from_numpy(mats)
        # escnn's slow generic routes, replaced by exact character formulas (same results, :mod:`.characters`)
        install(self)
        if self.order is not None:
            regular_representation(self)

    def __reduce__(self) -> tuple:
        """Pickled by name: loading gets the registry's escnn group of that name and dimension
        (escnn's groups hold local functions, which do not pickle)."""
        return (_registered_group, (self.name, self.dim))

    # -- representations -------------------------------------------------------------------
    def restrict(self, parent_rep: Any) -> Any:
        """The escnn representation of ``H`` obtained by restricting a representation of the parent."""
        if self.subgroup_id is None:
            return parent_rep
        return self.parent.restrict_representation(self.subgroup_id, parent_rep)

    def wrap(self, native: Any, name: str | None = None, is_trivial: bool | None = None) -> EscnnRep:
        """The cached :class:`EscnnRep` of an escnn representation of ``H`` (one object per rep)."""
        if native.group != self.native:
            raise ValueError(f"{self}: representation {native} is not of {self.native}")
        key = native.name
        rep = self._reps.get(key)
        if rep is None:
            if is_trivial is None:
                is_trivial = native.size == 1 and native.is_trivial()
            rep = self._reps[key] = EscnnRep(self, native, name or native.name, is_trivial)
        return rep

    def trivial_rep(self) -> EscnnRep:
        return self._trivial

    def standard_rep(self) -> EscnnRep:
        return self._std

    def irrep(self, *id: Any) -> EscnnRep:
        """Irreducible representation with escnn id ``id``, e.g. ``irrep(2)`` of SO(3), ``irrep(1, 2)`` of O(2)."""
        native = self.native.irrep(*id)
        name = "irrep(" + ",".join(str(i).replace(" ", "") for i in native.id) + ")"
        return self.wrap(native, name, is_trivial=native.is_trivial())

    def irreps(self, max_frequency: int = 2) -> list[EscnnRep]:
        """Irreducible representations, lowest frequency first.

        Finite groups: all of them, in escnn's order.  Continuous groups: those of frequency up to
        ``max_frequency``: SO(2) ``(k,)``; O(2) ``(0, 0), (1, 0), (1, 1), ..., (1, F)``; SO(3) ``(l,)``;
        O(3) ``(0, l), (1, l)`` for each ``l`` (``j = 1``: odd under the inversion).
        """
        if self.order is not None:
            return [self.irrep(*r.id) for r in self.native.irreps()]
        F = int(max_frequency)
        if self.kind in ("so2", "so3"):
            ids = [(k,) for k in range(F + 1)]
        elif self.kind == "o2":
            ids = [(0, 0), (1, 0)] + [(1, k) for k in range(1, F + 1)]
        else:
            ids = [(j, l) for l in range(F + 1) for j in (0, 1)]
        return [self.irrep(*i) for i in ids]

    def det_rep(self) -> EscnnRep:
        """The sign representation ``g -> det g`` (pseudo-scalars; trivial on rotation groups): the
        parent's ``irrep(1, 0)`` restricted to ``H``."""
        if "_det" not in self.__dict__:
            self._det = self.wrap(self.restrict(self.parent.irrep(1, 0)), "det")
        return self._det

    def portable_reps(self) -> dict[str, EscnnRep]:
        """trivial, standard and ``det``: their matrices are fixed by the action on coordinates."""
        return {"trivial": self._trivial, "standard": self._std, "det": self.det_rep()}

    def field_type(self, spec: Any) -> FieldType:
        """Our field type for an escnn ``nn.FieldType`` of this group (its gspace, if it has a base
        space, must act on coordinates as this group does) or a list of escnn ``Representation``\\ s
        of ``native`` and of our representations; the same fields in the same order and basis.
        See :mod:`.interop` (``to_escnn`` goes back)."""
        from .interop import field_type_of

        return field_type_of(self, spec)

    def regular_rep(self) -> EscnnRep:
        """The regular representation (finite groups only): a permutation of ``order`` channels."""
        if self.order is None:
            raise ValueError(f"{self} is infinite: it has no (finite) regular representation")
        return self.wrap(self.native.regular_representation, "regular")

    # -- elements --------------------------------------------------------------------------
    def _make(self, native: list) -> GroupElements:
        """Wrap native elements, with their standard matrices (the core's ``GroupElements.matrices``)."""
        d = self.dim
        mats = np.zeros((len(native), d, d))
        for k, e in enumerate(native):
            mats[k] = np.asarray(self._std.native(e), dtype=np.float64).reshape(d, d)
        return GroupElements(self, torch.from_numpy(mats), native)

    def _native_elements(self, elements: GroupElements) -> list:
        """escnn elements of ``H`` for a batch (recognised from matrices when they are foreign)."""
        if elements.native is not None and elements.group == self:
            return list(elements.native)
        if not same_group(elements.group, self):
            raise ValueError(f"elements of {elements.group!r} given to a representation of {self!r}")
        return self.elements_from_matrices(elements.matrices).native

    def sample(self, n: int, generator: torch.Generator | None = None) -> GroupElements:
        """``n`` Haar-random elements (uniform over the elements of a finite group)."""
        H, kind = self.native, self.kind
        if kind == "finite":
            idx = torch.randint(len(self._elements), (n,), generator=generator).tolist()
            return GroupElements(self, self._element_mats[idx], [self._elements[i] for i in idx])
        flips = torch.randint(2, (n,), generator=generator).tolist()
        if kind in ("so2", "o2"):
            angles = (torch.rand(n, generator=generator, dtype=torch.float64) * (2 * math.pi)).tolist()
            if kind == "so2":
                native = [H.element(a) for a in angles]
            else:
                native = [H.element((f, a)) for f, a in zip(flips, angles)]
        else:
            # Haar on SO(3): a normalised Gaussian quaternion is uniform on S^3.
            q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
            q = (q / q.norm(dim=1, keepdim=True)).numpy()
            if kind == "so3":
                native = [H.element(qi, "Q") for qi in q]
            else:
                native = [H.element((f, qi), "Q") for f, qi in zip(flips, q)]
        return self._make(native)

    def elements(self) -> GroupElements:
        if self.order is None:
            return super().elements()
        return GroupElements(self, self._element_mats.clone(), list(self._elements))

    def _candidates(self, m: np.ndarray) -> list:
        """Native elements that may have standard matrix ``m`` (checked by the caller)."""
        H, kind = self.native, self.kind
        if kind in ("so2", "o2"):
            flip = int(np.linalg.det(m) < 0)
            block = m[:2, :2]
            if flip:
                # (1, θ) is R(θ) F or F R(θ) with F = diag(1, -1) on (x, y): try both conventions.
                f = np.diag([1.0, -1.0])
                angles = [math.atan2(*(block @ f)[[1, 0], 0]), math.atan2(*(f @ block)[[1, 0], 0])]
            else:
                angles = [math.atan2(block[1, 0], block[0, 0])]
            angles += [-a for a in angles]
            if kind == "so2":
                return [H.element(a % (2 * math.pi)) for a in angles] if not flip else []
            return [H.element((flip, a % (2 * math.pi))) for a in angles]
        if kind == "so3":
            return [H.element(m, "MAT")] if np.linalg.det(m) > 0 else []
        if kind == "o3":
            flip = int(np.linalg.det(m) < 0)
            return [H.element((flip, -m if flip else m), "MAT")]
        raise AssertionError(kind)

    def elements_from_matrices(self, matrices: torch.Tensor) -> GroupElements:
        mats = torch.as_tensor(matrices, dtype=torch.float64)
        if mats.ndim == 2:
            mats = mats[None]
        if mats.ndim != 3 or mats.shape[1:] != (self.dim, self.dim):
            raise ValueError(f"{self}: expected matrices of shape (n, {self.dim}, {self.dim}), got {tuple(mats.shape)}")
        native: list = []
        for k, m in enumerate(mats):
            if self.order is not None:
                dist = (self._element_mats - m).abs().flatten(1).amax(1)
                best = int(dist.argmin())
                if float(dist[best]) <= MATRIX_TOL:
                    native.append(self._elements[best])
                    continue
            else:
                m_np = m.numpy()
                if np.abs(m_np @ m_np.T - np.eye(self.dim)).max() <= MATRIX_TOL:
                    found = None
                    for cand in self._candidates(m_np):
                        if np.abs(np.asarray(self._std.native(cand)) - m_np).max() <= MATRIX_TOL:
                            found = cand
                            break
                    if found is not None:
                        native.append(found)
                        continue
            raise ValueError(f"matrix {k} is not an element of {self!r} (tolerance {MATRIX_TOL}):\n{m.numpy()}")
        return self._make(native)

    # -- the equivariant MLP ---------------------------------------------------------------
    def build_kernel_mlp(self, spec: KernelMLPSpec) -> KernelMLP:
        from .first_use import record
        from .mlp import build_kernel_mlp

        mlp = build_kernel_mlp(self, spec)
        record(self.name, self.dim)
        return mlp


# -- unpickling -----------------------------------------------------------------------------
def _registered_group(name: str, dim: int) -> EscnnGroup:
    from steerable.registry import group

    found = group(name, dim=dim, backend=BACKEND)
    assert isinstance(found, EscnnGroup), found
    return found


def _rebuild_rep(group: EscnnGroup, name: str, is_trivial: bool, recipe: tuple) -> EscnnRep:
    """The representation of ``group`` pickled by :meth:`EscnnRep.__reduce__`: the group's own for the
    named ones (trivial, standard, det, regular, irreps), else escnn's representation of that name,
    else one rebuilt from its irreps and change of basis (same matrices)."""
    native_name, irreps, change_of_basis = recipe
    named = {"trivial": group.trivial_rep, "standard": group.standard_rep, "det": group.det_rep}
    if group.order is not None:
        named["regular"] = group.regular_rep
    if name in named:
        return named[name]()
    for irrep in irreps:  # escnn builds its irreps on demand: make sure the ones needed exist
        group.native.irrep(*irrep)
    native = group.native.representations.get(native_name)
    if native is None:
        from escnn.group import Representation

        native = Representation(group.native, native_name, list(irreps), change_of_basis)
    return group.wrap(native, name, is_trivial)


# -- factories ------------------------------------------------------------------------------
def _parent(dim: int) -> Any:
    eg = _escnn_group()
    return eg.o2_group(MAX_FREQUENCY) if dim == 2 else eg.o3_group(MAX_FREQUENCY)


def _check_dim(name: str, dim: int, dims: Sequence[int]) -> None:
    if dim not in dims:
        raise ValueError(f"group {name} acts on R^n for n in {list(dims)}, not on R^{dim}")


def build_so2(dim: int) -> EscnnGroup:
    _check_dim("SO(2)", dim, (2, 3))
    sid = (None, -1) if dim == 2 else (False, False, -1)
    return EscnnGroup("SO(2)", dim, "so2", _parent(dim), sid)


def build_o2(dim: int) -> EscnnGroup:
    _check_dim("O(2)", dim, (2, 3))
    sid = None if dim == 2 else ("cone", 0.0, -1)
    return EscnnGroup("O(2)", dim, "o2", _parent(dim), sid)


def build_cyclic(dim: int, N: int) -> EscnnGroup:
    _check_dim(f"C{N}", dim, (2, 3))
    if N < 1:
        raise ValueError(f"C_N needs N >= 1, got {N}")
    sid = (None, N) if dim == 2 else (False, False, N)
    return EscnnGroup(f"C{N}", dim, "finite", _parent(dim), sid)


def build_dihedral(dim: int, N: int) -> EscnnGroup:
    _check_dim(f"D{N}", dim, (2, 3))
    if N < 2:
        raise ValueError(f"D_N needs N >= 2 here, got {N}")
    sid = (0.0, N) if dim == 2 else ("cone", 0.0, N)
    return EscnnGroup(f"D{N}", dim, "finite", _parent(dim), sid)


def build_so3(dim: int) -> EscnnGroup:
    _check_dim("SO(3)", dim, (3,))
    return EscnnGroup("SO(3)", 3, "so3", _parent(3), (False, "so3"))


def build_o3(dim: int) -> EscnnGroup:
    _check_dim("O(3)", dim, (3,))
    return EscnnGroup("O(3)", 3, "o3", _parent(3), None)


def _finite3d(name: str, sid: tuple) -> Callable[[int], EscnnGroup]:
    def build(dim: int) -> EscnnGroup:
        _check_dim(name, dim, (3,))
        return EscnnGroup(name, 3, "finite", _parent(3), sid)

    build.__name__ = f"build_{name.lower()}"
    return build


build_octa = _finite3d("Octa", (False, "octa"))
build_full_octa = _finite3d("FullOcta", (True, "octa"))
build_ico = _finite3d("Ico", (False, "ico"))
build_full_ico = _finite3d("FullIco", (True, "ico"))
