"""Representations and field types.

Conventions (relied on everywhere, on every backend):

* Representations are real and orthogonal.  ``Rep.matrices(elements)`` returns ``(n, size, size)``
  float64 matrices acting on column vectors.
* A feature tensor stores its channels on the last axis for point clouds, ``(N, field.size)``, and
  on axis 1 for grids, ``(B, field.size, X, Y[, Z])``.  Channels follow the order in which the
  representations were listed in the :class:`FieldType`.
* The tensor product ``a ⊗ b`` acts on a row-major flattened ``size_a x size_b`` matrix ``K`` as
  ``kron(a(g), b(g))``, i.e. ``K -> a(g) K b(g)^T``.

Identity and portability:

* Groups and representations are identified by their ``key``, which includes the backend; names
  are for people.  Two representations with equal keys have the same matrices.
* A representation is *portable* when its matrices are fixed by the group's action on ``R^n``
  alone, so that every backend's copy of the group has the same ones: ``trivial`` and ``standard``
  always, others a backend declares (``det``).  Only portable representations cross from one
  backend's copy of a group to another's (:func:`transfer_rep`, used by :class:`FieldType` and
  :class:`~steerable.core.mlp.KernelMLPSpec`): ``FieldType(G, [H.standard_rep()])`` holds
  ``G.standard_rep()`` when ``G`` and ``H`` are the same group
  (:func:`~steerable.core.group.same_group`: same name, dimension and order, elements checked
  numerically), and raises otherwise; a non-portable representation of another backend (an irrep
  in that backend's basis, a regular representation with its element order) always raises.
* Field types compare equal when they transform the same way field by field: same group (possibly
  two backends' copies of it) and equal keys, or equal portable names.  Fields are grouped
  (:meth:`FieldType.by_rep`, :meth:`FieldType.runs`) by key.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import torch

from .group import Group, GroupElements, check_same_group, same_group


class Rep(abc.ABC):
    """A real orthogonal representation of a :class:`~steerable.core.group.Group`.

    Identity: representations compare equal (``==``, ``hash``) by :attr:`key`, which includes the
    group's key (hence the backend); field types group their fields by it.

    Attributes:
        group: the group represented.
        name: human-readable name, e.g. ``"trivial"``, ``"standard"``, ``"irrep(2)"``.
        size: dimension of the representation space.
        is_trivial: ``True`` for the one-dimensional trivial representation (gets a bias).
        native: the backend's own representation object.
    """

    group: Group
    name: str
    size: int
    is_trivial: bool = False
    native: Any = None

    @abc.abstractmethod
    def matrices(self, elements: GroupElements) -> torch.Tensor:
        """``(n, size, size)`` float64 matrices of the ``n`` elements."""

    @property
    def key(self) -> tuple:
        """What identifies this representation: ``(group.key, class, name, size)`` by default.

        Equal keys must mean equal matrices.  Backends whose names do not determine the matrices
        (user-named representations, wrapped native objects) override it with what does.
        """
        return (self.group.key, type(self).__qualname__, self.name, self.size)

    @property
    def portable(self) -> str | None:
        """The portable name of this representation (``"trivial"``, ``"standard"``, or another the
        backend declares in :meth:`Group.portable_reps`), or ``None``: only portable representations
        cross to another backend's copy of the group (:func:`transfer_rep`)."""
        key = self.key
        for name, rep in self.group.portable_reps().items():
            if rep is self or rep.key == key:
                return name
        return None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rep):
            return NotImplemented
        return self is other or self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"{self.name}[{self.size}]"


#: verified portable pairs of :func:`transfer_rep`: (source key, target key) -> max difference
_VERIFIED: dict[tuple[tuple, tuple], float] = {}
#: agreement required of two backends' matrices of one portable representation
PORTABLE_TOL = 1e-8


def transfer_rep(rep: Rep, group: Group, what: str = "representation") -> Rep:
    """``rep`` as a representation of ``group``: the one place where representations cross backends.

    * ``rep`` of ``group`` itself (equal keys): returned unchanged.
    * a portable ``rep`` (:attr:`Rep.portable`) of another backend's copy of the same group
      (:func:`~steerable.core.group.same_group`): ``group``'s own representation of that portable
      name, after checking once, on sampled elements, that both give the same matrices.
    * anything else raises a ``ValueError`` naming both groups: a non-portable representation
      (an irrep in a backend's own basis, a regular representation with a backend's element order)
      has no meaning on another backend's group, and a representation of a different group none at all.
    """
    if not isinstance(rep, Rep):
        raise TypeError(f"{what}: expected a Rep, got {type(rep).__name__}")
    source = rep.group
    if source is group or source.key == group.key:
        return rep
    if not same_group(source, group):
        raise ValueError(
            f"{what}: {rep!r} is a representation of {source!r} (order {source.order}), which is not the "
            f"group {group!r} (order {group.order})"
        )
    name = rep.portable
    if name is None:
        raise ValueError(
            f"{what}: {rep!r} of {source!r} cannot be used with {group!r}: only portable representations "
            f"({', '.join(sorted(group.portable_reps()))}) cross from one backend to another, and {rep!r} "
            f"is specific to the {source.backend} backend; build the field type from one backend's group"
        )
    target = group.portable_reps().get(name)
    if target is None:
        raise ValueError(f"{what}: {group!r} offers no portable {name!r} representation (from {rep!r} of {source!r})")
    pair = (rep.key, target.key)
    if pair not in _VERIFIED:
        if group.order is not None:
            els = group.elements()
        else:
            els = group.sample(8, generator=torch.Generator().manual_seed(0))
        theirs = rep.matrices(source.elements_from_matrices(els.matrices))
        diff = float((target.matrices(els) - theirs).abs().max()) if len(els) else 0.0
        if not diff <= PORTABLE_TOL:
            raise ValueError(
                f"{what}: {rep!r} of {source!r} and {target!r} of {group!r} are both declared portable as "
                f"{name!r} but their matrices differ by {diff:.2e}"
            )
        _VERIFIED[pair] = diff
    return target


T = TypeVar("T")


def run_lengths(items: Iterable[T], key: Callable[[T], Any] = lambda item: item) -> list[tuple[T, int]]:
    """Consecutive items with equal ``key``: ``[(first item of the run, length), ...]`` in order."""
    runs: list[tuple[T, int]] = []
    last: Any = None
    for item in items:
        k = key(item)
        if runs and k == last:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((item, 1))
            last = k
    return runs


class FieldType:
    """An ordered list of representations of one group: the channel layout of a feature tensor.

    ``FieldType(G, [scalar] * 2 + [vector] * 2)`` has ``size == 8``: channels 0 and 1 are the two
    scalars, channels 2..4 the first vector ``(x, y, z)``, channels 5..7 the second.
    """

    def __init__(self, group: Group, reps: Iterable[Rep]) -> None:
        if not isinstance(group, Group):
            raise TypeError(f"FieldType: expected a Group, got {type(group).__name__}")
        reps = list(reps)
        if not reps:
            raise ValueError("a FieldType needs at least one representation")
        self.group = group
        self.reps: tuple[Rep, ...] = tuple(
            transfer_rep(rep, group, f"FieldType of {group!r}, entry {i}") for i, rep in enumerate(reps)
        )
        sizes = [rep.size for rep in self.reps]
        self.offsets: tuple[int, ...] = tuple(int(s) for s in torch.tensor([0] + sizes).cumsum(0)[:-1])
        self.size: int = sum(sizes)

    # -- structure -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.reps)

    def __iter__(self) -> Iterator[Rep]:
        return iter(self.reps)

    def __add__(self, other: FieldType) -> FieldType:
        check_same_group([self.group, other.group], "FieldType +")
        return FieldType(self.group, self.reps + other.reps)

    def _layout(self) -> tuple:
        """Per field, what it transforms by: the portable name, or the representation's key."""
        layout = self.__dict__.get("_layout_cache")
        if layout is None:
            layout = self.__dict__["_layout_cache"] = tuple(
                ("portable", rep.portable, rep.size) if rep.portable else rep.key for rep in self.reps
            )
        return layout

    def __eq__(self, other: object) -> bool:
        """Same transformation law field by field: the same group (:func:`~steerable.core.group.same_group`,
        so possibly two backends' copies of it) and, per field, the same representation (equal
        keys) or the same portable representation (e.g. trivial and standard on escnn and e3nn)."""
        if not isinstance(other, FieldType):
            return NotImplemented
        if len(self.reps) != len(other.reps) or not same_group(self.group, other.group):
            return False
        return self._layout() == other._layout()

    def __hash__(self) -> int:
        return hash((self.group.dim, self.group.order, self._layout()))

    def runs(self) -> list[tuple[Rep, int]]:
        """Consecutive repeats of the same representation (by :attr:`Rep.key`): ``[(rep, count), ...]``."""
        return run_lengths(self.reps, key=lambda rep: rep.key)

    def by_rep(self) -> list[tuple[Rep, list[int]]]:
        """Fields grouped by representation: ``[(rep, [field index, ...]), ...]``, first appearance first.

        Representations are identified by :attr:`Rep.key` (which includes the backend), so two
        representations of one name with different matrices never share a group.
        """
        groups: dict[tuple, tuple[Rep, list[int]]] = {}
        for k, rep in enumerate(self.reps):
            groups.setdefault(rep.key, (rep, []))[1].append(k)
        return list(groups.values())

    def channels(self, fields: Iterable[int]) -> torch.Tensor:
        """Long tensor of the channel indices of ``fields``, field after field."""
        parts = [torch.arange(self.offsets[k], self.offsets[k] + self.reps[k].size) for k in fields]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)

    def __repr__(self) -> str:
        return f"FieldType({self.group.name}, {' + '.join(f'{n}x{r!r}' for r, n in self.runs())})"

    @property
    def trivial_channels(self) -> list[int]:
        """Channel indices of the trivial (invariant scalar) fields."""
        return [off for off, rep in zip(self.offsets, self.reps) if rep.is_trivial]

    @property
    def is_invariant(self) -> bool:
        return all(rep.is_trivial for rep in self.reps)

    # -- action ----------------------------------------------------------------------------
    def elements_of_group(self, elements: GroupElements) -> GroupElements:
        """``elements`` as elements of :attr:`group` (recognised from their matrices when they come
        from another backend's copy of the group); ``ValueError`` for elements of another group."""
        if elements.group is self.group or elements.group.key == self.group.key:
            return elements
        if not same_group(elements.group, self.group):
            raise ValueError(f"elements of {elements.group!r} given to a field type of {self.group!r}")
        return self.group.elements_from_matrices(elements.matrices)

    def matrices(self, elements: GroupElements) -> torch.Tensor:
        """``(n, size, size)`` float64 block-diagonal matrices of the whole field."""
        elements = self.elements_of_group(elements)
        out = torch.zeros(len(elements), self.size, self.size, dtype=torch.float64)
        cache: dict[tuple, torch.Tensor] = {}
        for off, rep in zip(self.offsets, self.reps):
            block = cache.get(rep.key)
            if block is None:
                block = cache[rep.key] = rep.matrices(elements)
            out[:, off : off + rep.size, off : off + rep.size] = block
        return out

    def transform(self, features: torch.Tensor, elements: GroupElements, dim: int = -1) -> torch.Tensor:
        """Apply the representation of each element to ``features``.

        ``features`` has ``size`` channels on axis ``dim``; its leading axis is the element batch
        when ``len(elements) > 1``: ``(n, ..., size, ...)``.  With one element any shape works.
        """
        self.check(features, dim=dim, what="transform")
        mats = self.matrices(elements).to(features)
        x = features.movedim(dim, -1)
        if len(elements) == 1:
            y = x @ mats[0].T
        else:
            if x.shape[0] != len(elements):
                raise ValueError(f"{len(elements)} elements but a leading batch of {x.shape[0]}")
            shape = x.shape
            y = torch.einsum("nij,nkj->nki", mats, x.reshape(shape[0], -1, self.size)).reshape(shape)
        return y.movedim(-1, dim)

    def check(self, features: torch.Tensor, dim: int, what: str) -> None:
        """Raise a ``ValueError`` naming the problem unless ``features`` fits this field type."""
        if not isinstance(features, torch.Tensor):
            raise TypeError(f"{what}: expected a torch.Tensor, got {type(features).__name__}")
        if features.ndim == 0 or features.shape[dim] != self.size:
            raise ValueError(
                f"{what}: expected {self.size} channels on axis {dim} for {self!r}, "
                f"got a tensor of shape {tuple(features.shape)}"
            )


def tensor_matrices(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched Kronecker product ``(n, p, p) x (n, q, q) -> (n, pq, pq)`` (row-major ``a ⊗ b``)."""
    n, p, _ = a.shape
    q = b.shape[1]
    return torch.einsum("nij,nkl->nikjl", a, b).reshape(n, p * q, p * q)


def as_field_type(group: Group, value: FieldType | int | None, what: str) -> FieldType | None:
    """Accept a FieldType, an int count of invariant scalars, or ``None``."""
    if value is None or isinstance(value, FieldType):
        if value is not None:
            check_same_group([group, value.group], what)
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{what}: a negative number of scalars ({value})")
        return FieldType(group, [group.trivial_rep()] * value) if value else None
    raise TypeError(f"{what}: expected a FieldType or an int count of scalars, got {value!r}")
