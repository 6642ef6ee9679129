"""Representations and field types.

Conventions (relied on everywhere, on every backend):

* Representations are real and orthogonal.  ``Rep.matrices(elements)`` returns ``(n, size, size)``
  float64 matrices acting on column vectors.
* A feature tensor stores its channels on the last axis for point clouds, ``(N, field.size)``, and
  on axis 1 for grids, ``(B, field.size, X, Y[, Z])``.  Channels follow the order in which the
  representations were listed in the :class:`FieldType`.
* The tensor product ``a ⊗ b`` acts on a row-major flattened ``size_a x size_b`` matrix ``K`` as
  ``kron(a(g), b(g))``, i.e. ``K -> a(g) K b(g)^T``.
"""
from __future__ import annotations

import abc
from typing import Any, Callable, Iterable, TypeVar

import torch

from .group import Group, GroupElements, check_same_group


class Rep(abc.ABC):
    """A real orthogonal representation of a :class:`~steerable.core.group.Group`.

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

    def __repr__(self) -> str:
        return f"{self.name}[{self.size}]"


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
        reps = list(reps)
        if not reps:
            raise ValueError("a FieldType needs at least one representation")
        for i, rep in enumerate(reps):
            if not isinstance(rep, Rep):
                raise TypeError(f"FieldType entry {i} is {type(rep).__name__}, not a Rep")
            if rep.group != group:
                raise ValueError(
                    f"FieldType of {group!r} got representation {i} ({rep!r}) of {rep.group!r}"
                )
        self.group = group
        self.reps: tuple[Rep, ...] = tuple(reps)
        sizes = [rep.size for rep in reps]
        self.offsets: tuple[int, ...] = tuple(int(s) for s in torch.tensor([0] + sizes).cumsum(0)[:-1])
        self.size: int = sum(sizes)

    # -- structure -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.reps)

    def __iter__(self):
        return iter(self.reps)

    def __add__(self, other: "FieldType") -> "FieldType":
        check_same_group([self.group, other.group], "FieldType +")
        return FieldType(self.group, self.reps + other.reps)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldType):
            return NotImplemented
        return self.group == other.group and [(r.name, r.size) for r in self.reps] == [
            (r.name, r.size) for r in other.reps
        ]

    def __hash__(self) -> int:
        return hash((self.group, tuple((r.name, r.size) for r in self.reps)))

    def runs(self) -> list[tuple[Rep, int]]:
        """Consecutive repeats of the same representation: ``[(rep, count), ...]`` in channel order."""
        return run_lengths(self.reps, key=lambda rep: (rep.name, rep.size))

    def by_rep(self) -> list[tuple[Rep, list[int]]]:
        """Fields grouped by representation: ``[(rep, [field index, ...]), ...]``, first appearance first.

        Representations are identified by ``(name, size)``, the convention of every backend.
        """
        groups: dict[tuple[str, int], tuple[Rep, list[int]]] = {}
        for k, rep in enumerate(self.reps):
            groups.setdefault((rep.name, rep.size), (rep, []))[1].append(k)
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
    def matrices(self, elements: GroupElements) -> torch.Tensor:
        """``(n, size, size)`` float64 block-diagonal matrices of the whole field."""
        out = torch.zeros(len(elements), self.size, self.size, dtype=torch.float64)
        cache: dict[int, torch.Tensor] = {}
        for off, rep in zip(self.offsets, self.reps):
            block = cache.get(id(rep))
            if block is None:
                block = cache[id(rep)] = rep.matrices(elements)
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


def as_field_type(group: Group, value: "FieldType | int | None", what: str) -> FieldType | None:
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

