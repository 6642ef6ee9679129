"""Groups and batches of group elements, as the core sees them.

A :class:`Group` is a compact group ``G <= O(n)`` together with its action on ``R^n``.  The core only
ever needs three things from it: its representations (as matrices for sampled elements), its
elements (as ``n x n`` matrices acting on coordinates) and an equivariant MLP builder.  Everything
else (kernels, convolutions, equivariance checks) is group-agnostic.  Backends subclass
:class:`Group` and :class:`~steerable.core.representation.Rep`; the ``native`` attribute holds the
backend's own object and is interpreted by that backend only.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Sequence

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .mlp import KernelMLPSpec
    from .representation import Rep


class GroupElements:
    """A batch of ``n`` elements of one group.

    Attributes:
        group: the group the elements belong to.
        matrices: ``(n, d, d)`` float64 tensor, the standard representation of each element, i.e.
            the matrix that acts on coordinates ``x -> M @ x`` (column vectors, ``(x, y[, z])``).
        native: the backend's own handle for the elements (a list, a tensor, ...), or ``None``.
    """

    def __init__(self, group: "Group", matrices: torch.Tensor, native: Any = None) -> None:
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

    def __getitem__(self, index: int | slice) -> "GroupElements":
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        native = self.native[index] if self.native is not None else None
        return GroupElements(self.group, self.matrices[index], native)

    def __repr__(self) -> str:
        return f"GroupElements({self.group}, n={len(self)})"


class Group(abc.ABC):
    """A compact subgroup of ``O(n)`` acting on ``R^n``.

    Two groups compare equal when they have the same canonical ``name`` and ``dim``, whichever
    backend built them: layers of two backends can be mixed on the same group as long as their
    field types agree (trivial and standard representations use the same basis everywhere).

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
    def trivial_rep(self) -> "Rep":
        """The one-dimensional representation ``g -> 1`` (invariant scalars)."""

    @abc.abstractmethod
    def standard_rep(self) -> "Rep":
        """The ``n``-dimensional representation by the group's own matrices on ``(x, y[, z])``."""

    def irreps(self, max_frequency: int = 2) -> list["Rep"]:
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

    # -- the equivariant MLP ---------------------------------------------------------------
    @abc.abstractmethod
    def build_kernel_mlp(self, spec: "KernelMLPSpec") -> torch.nn.Module:
        """An equivariant MLP honouring :class:`~steerable.core.mlp.KernelMLPSpec`'s contract."""

    # -- identity --------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Group):
            return NotImplemented
        return (self.name, self.dim) == (other.name, other.dim)

    def __hash__(self) -> int:
        return hash((self.name, self.dim))

    def __repr__(self) -> str:
        return f"{self.name} on R^{self.dim} [{self.backend}]"


def check_same_group(groups: Sequence[Group], what: str) -> Group:
    """Return the common group of ``groups`` or raise a ``ValueError`` naming the mismatch."""
    first = groups[0]
    for other in groups[1:]:
        if other != first:
            raise ValueError(f"{what}: fields of different groups, {first!r} and {other!r}")
    return first
