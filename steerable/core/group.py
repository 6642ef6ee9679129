"""Groups and batches of group elements, as the core sees them.

A :class:`Group` is a matrix group ``G <= GL(n)`` together with its action on ``R^n``, preserving a
nondegenerate quadratic form ``q(x) = x^T eta x`` (:meth:`Group.quadratic_form`; ``eta = I`` for the
compact groups ``G <= O(n)`` most backends serve, ``diag(+1, .., -1, ..)`` for ``O(p,q)``).  The core
only ever needs three things from it: its representations (as matrices for sampled elements), its
elements (as ``n x n`` matrices acting on coordinates) and an equivariant MLP builder.  Everything
else (kernels, convolutions, equivariance checks) is group-agnostic.  Backends subclass
:class:`Group` and :class:`~steerable.core.representation.Rep`; the ``native`` attribute holds the
backend's own object and is interpreted by that backend only.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .mlp import KernelMLP, KernelMLPSpec
    from .representation import Rep


class GroupElements:
    """A batch of ``n`` elements of one group.

    Attributes:
        group: the group the elements belong to.
        matrices: ``(n, d, d)`` float64 tensor, the standard representation of each element, i.e.
            the matrix that acts on coordinates ``x -> M @ x`` (column vectors, ``(x, y[, z])``).
        native: the backend's own handle for the elements (a list, a tensor, ...), or ``None``.
    """

    def __init__(self, group: Group, matrices: torch.Tensor, native: Any = None) -> None:
        matrices = torch.as_tensor(matrices, dtype=torch.float64)
        if matrices.ndim != 3 or matrices.shape[1:] != (group.dim, group.dim):
            raise ValueError(
                f"group elements of {group} need matrices of shape (n, {group.dim}, {group.dim}), "
                f"got {tuple(matrices.shape)}"
            )
        self.group = group
        self.matrices = matrices
        self.native = native

    def __len__(self) -> int:
        return self.matrices.shape[0]

    def __getitem__(self, index: int | slice) -> GroupElements:
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        native = self.native[index] if self.native is not None else None
        return GroupElements(self.group, self.matrices[index], native)

    def __repr__(self) -> str:
        return f"GroupElements({self.group}, n={len(self)})"


class Group(abc.ABC):
    """A matrix group acting on ``R^n`` that preserves the quadratic form of :meth:`quadratic_form`.

    Representations need not be orthogonal (they are for ``eta = I``): the kernel constraint is
    ``K(g x) = rho_out(g) K(x) rho_in(g)^-1`` and every check uses inverses, not transposes.

    Identity: two groups compare equal (``==``, ``hash``) when their :attr:`key` is equal, and the
    key includes the backend: escnn's ``D4`` and the matrix backend's ``D4`` are different groups,
    whose representations of the same name may be different matrices.  Whether two groups are the
    same abstract group acting on ``R^n`` in the same way (so that their *portable*
    representations, see :meth:`portable_reps`, may cross from one to the other) is
    :func:`same_group`, which checks it numerically.

    Attributes:
        name: canonical name, e.g. ``"SO(3)"``, ``"C8"``, ``"O(2)"``.
        dim: ``n``, the dimension of the space the group acts on.
        backend: name of the backend that built this group.
        order: number of elements, or ``None`` for an infinite group.
        native: the backend's own group object.
    """

    name: str
    dim: int
    backend: str
    order: int | None = None
    native: Any = None

    # -- representations -------------------------------------------------------------------
    @abc.abstractmethod
    def trivial_rep(self) -> Rep:
        """The one-dimensional representation ``g -> 1`` (invariant scalars)."""

    @abc.abstractmethod
    def standard_rep(self) -> Rep:
        """The ``n``-dimensional representation by the group's own matrices on ``(x, y[, z])``."""

    def irreps(self, max_frequency: int = 2) -> list[Rep]:
        """Irreducible representations, lowest frequency first: all of them for a finite group,
        those up to ``max_frequency`` for a continuous one.  Backends override this; the default
        offers only the trivial and standard representations."""
        return [self.trivial_rep(), self.standard_rep()]

    # -- elements --------------------------------------------------------------------------
    @abc.abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None) -> GroupElements:
        """``n`` random elements (Haar-distributed where the backend allows)."""

    def elements(self) -> GroupElements:
        """All elements of a finite group; raises ``ValueError`` for an infinite one."""
        raise ValueError(f"{self} is infinite ({self.backend} backend): use sample(n) instead")

    @abc.abstractmethod
    def elements_from_matrices(self, matrices: torch.Tensor) -> GroupElements:
        """The elements whose standard matrices are ``matrices`` ``(n, d, d)``.

        Raises ``ValueError`` naming the offending matrix when one is not in the group.
        """

    def identity(self) -> GroupElements:
        return self.elements_from_matrices(torch.eye(self.dim, dtype=torch.float64)[None])

    def quadratic_form(self) -> torch.Tensor:
        """``eta`` ``(n, n)`` float64, symmetric and invertible, with ``g^T eta g = eta`` for every element.

        The invariant the kernel envelope is a function of (``q(x) = x^T eta x``, which the Euclidean
        ``|x|^2`` is only when ``eta = I``).  The default is the identity: the group acts orthogonally
        (every backend serving subgroups of ``O(n)``).  A backend of other groups overrides it, e.g.
        ``diag(+1 (p times), -1 (q times))`` for ``O(p,q)``.
        """
        return torch.eye(self.dim, dtype=torch.float64)

    def is_euclidean(self) -> bool:
        """Whether :meth:`quadratic_form` is the identity (the group acts orthogonally on ``R^n``; its
        representations are then orthogonal and Euclidean field norms are invariant)."""
        return bool(torch.equal(self.quadratic_form(), torch.eye(self.dim, dtype=torch.float64)))

    def portable_reps(self) -> dict[str, Rep]:
        """The representations that may cross to another backend's copy of this group, by portable name.

        A portable representation has the same matrices on every backend for the same abstract
        group acting on ``R^n`` the same way: ``"trivial"`` (``g -> 1``) and ``"standard"`` (``g -> g``,
        the coordinate action) always; a backend may add others whose matrices are fixed by the
        group's action alone, e.g. ``"det"`` (``g -> det g``).  :func:`~steerable.core.representation.transfer_rep`
        maps a portable representation of one backend to the representation of the same portable
        name here, after checking their matrices agree; every other representation stays with its
        backend.
        """
        return {"trivial": self.trivial_rep(), "standard": self.standard_rep()}

    # -- the equivariant MLP ---------------------------------------------------------------
    @abc.abstractmethod
    def build_kernel_mlp(self, spec: KernelMLPSpec) -> KernelMLP:
        """An equivariant MLP honouring :class:`~steerable.core.mlp.KernelMLP`'s contract for ``spec``.

        ``spec`` arrives validated (:class:`~steerable.core.mlp.KernelMLPSpec`): its representations
        are this group's own.  The backend states what else it supports with
        :meth:`~steerable.core.mlp.KernelMLPSpec.require`.
        """

    # -- identity --------------------------------------------------------------------------
    @property
    def key(self) -> tuple:
        """What identifies this group: ``(backend, class, name, dim, order)`` by default.

        Two groups with equal keys must be interchangeable (same elements, same native handles,
        same representations); a backend whose groups are not determined by class, name, dimension
        and order (e.g. groups built from arbitrary generators) extends the key with what
        identifies them.
        """
        cls = type(self)
        return (self.backend, f"{cls.__module__}.{cls.__qualname__}", self.name, self.dim, self.order)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Group):
            return NotImplemented
        return self is other or self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"{self.name} on R^{self.dim} [{self.backend}]"


#: verified answers of :func:`same_group`, by pair of keys
_SAME: dict[tuple[tuple, tuple], bool] = {}
#: elements sampled from each continuous group by :func:`same_group`
_SAME_SAMPLES = 8


def _contains(group: Group, matrices: torch.Tensor) -> bool:
    try:
        group.elements_from_matrices(matrices)
    except ValueError:
        return False
    return True


def same_group(a: Group, b: Group) -> bool:
    """Whether ``a`` and ``b`` are the same group acting on ``R^n`` the same way, e.g. escnn's and
    e3nn's ``SO(3)``: then their portable representations are interchangeable.

    Equal keys answer at once.  Otherwise (two backends' copies of a group, or an impostor) the
    groups must have the same canonical ``name``, ``dim`` and ``order`` and contain each other's
    elements, checked numerically: all of them for finite groups (then the sets are equal), ``8``
    seeded samples each way for continuous ones.  The name is required too, so that groups are
    never merged behind the user's back (the matrix backend's ``4mm`` on ``R^2`` has the elements
    of escnn's ``D4`` but stays a different group).  The answer is cached per pair of keys.
    """
    if a is b or a.key == b.key:
        return True
    if (a.name, a.dim, a.order) != (b.name, b.dim, b.order):
        return False
    pair = (a.key, b.key)
    if pair not in _SAME:
        if a.order is not None:
            answer = _contains(b, a.elements().matrices)
        else:
            gen = torch.Generator().manual_seed(0)
            answer = _contains(b, a.sample(_SAME_SAMPLES, generator=gen).matrices) and _contains(
                a, b.sample(_SAME_SAMPLES, generator=gen).matrices
            )
        _SAME[pair] = _SAME[(b.key, a.key)] = answer
    return _SAME[pair]


def check_same_group(groups: Sequence[Group], what: str) -> Group:
    """Return the first of ``groups`` if all are the same group (:func:`same_group`), else raise a
    ``ValueError`` naming the mismatch.

    Two backends' copies of one group pass; a layer built on the returned group then accepts the
    other copy's portable representations only (:func:`~steerable.core.representation.transfer_rep`
    maps them onto the returned group and refuses the rest with a clear error).
    """
    first = groups[0]
    for other in groups[1:]:
        if not same_group(first, other):
            raise ValueError(
                f"{what}: fields of different groups, {first!r} (order {first.order}) and "
                f"{other!r} (order {other.order})"
            )
    return first
