"""Finite subgroups of ``O(n)`` given by generator matrices, and their representations.

Conventions (those of :mod:`steerable.core.representation`):

* elements are stored as ``(N, n, n)`` float64 orthogonal matrices acting on column vectors;
  element ``0`` is the identity, the order is the breadth-first order of the closure;
* a representation is a table ``(N, d, d)`` of float64 orthogonal matrices, one per element, in the
  group's element order; :class:`~steerable.core.group.GroupElements` built by this backend carry
  their element indices as ``native`` (a ``(k,)`` long tensor);
* the regular representation is the *left* regular one, ``L(g) e_h = e_{gh}``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from steerable.core.group import Group, GroupElements, same_group
from steerable.core.mlp import KernelMLP, KernelMLPSpec
from steerable.core.representation import Rep

#: default bound on the order reached by the closure before giving up
MAX_ORDER = 2048
_TOL = 1e-6
#: the regular representation (and irreps(), computed from it) is tabulated up to this order
REGULAR_MAX_ORDER = 256


def _as_matrices(mats: Sequence | np.ndarray | torch.Tensor, what: str) -> np.ndarray:
    """Any stack of square matrices (tensor, array, list of either) as a float64 ``(k, d, d)`` array."""
    if isinstance(mats, torch.Tensor):
        arr = mats.detach().cpu().to(torch.float64).numpy()
    elif isinstance(mats, np.ndarray):
        arr = mats.astype(np.float64)
    else:
        arr = np.asarray(
            [m.detach().cpu().to(torch.float64).numpy() if isinstance(m, torch.Tensor) else m for m in mats],
            dtype=np.float64,
        )
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"{what}: expected square matrices (k, d, d), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: matrices contain NaN or infinite entries")
    return arr


def _check_orthogonal(mats: np.ndarray, what: str, tol: float = _TOL) -> None:
    eye = np.eye(mats.shape[-1])
    for k, m in enumerate(mats):
        err = np.abs(m.T @ m - eye).max()
        if err > tol:
            raise ValueError(
                f"{what}: matrix {k} is not orthogonal (max |M^T M - I| = {err:.2e} > {tol:g}):\n{np.round(m, 6)}\n"
                "steerable needs orthogonal representations; orthonormalise your basis first"
            )


def _digest(mats: np.ndarray) -> str:
    """A short hash of matrices rounded far above round-off (identity keys of groups and reps)."""
    import hashlib

    arr = np.ascontiguousarray(np.round(np.asarray(mats, dtype=np.float64), 8) + 0.0)  # + 0.0: no -0.0
    return hashlib.sha256(str(arr.shape).encode() + arr.tobytes()).hexdigest()[:16]


def _keys(mats: np.ndarray) -> np.ndarray:
    """``(k,)`` int64 hashes of matrices ``(k, d, d)`` rounded to a grid much finer than the spacing
    of distinct group elements and much coarser than round-off."""
    grid = np.round(mats.reshape(len(mats), -1) * 1e5).astype(np.int64)
    weights = _WEIGHTS.get(grid.shape[1])
    if weights is None:
        weights = _WEIGHTS[grid.shape[1]] = np.random.default_rng(12345).integers(1, 2**31, size=grid.shape[1])
    return grid @ weights  # wraps around on overflow: still a hash


_WEIGHTS: dict[int, np.ndarray] = {}


class _Lookup:
    """Finds the indices of matrices among a fixed set of mutually distant matrices (vectorised)."""

    def __init__(self, mats: np.ndarray) -> None:
        self.mats = mats
        keys = _keys(mats)
        self.order = np.argsort(keys)
        self.sorted = keys[self.order]

    def find_many(self, mats: np.ndarray) -> np.ndarray:
        """Index of each matrix ``(k, d, d)`` in the set, ``-1`` where absent."""
        if len(mats) == 0:
            return np.zeros(0, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.sorted, _keys(mats)), 0, len(self.sorted) - 1)
        index = self.order[pos]
        close = np.abs(self.mats[index] - mats).reshape(len(mats), -1).max(-1) < 1e3 * _TOL
        for k in np.flatnonzero(~close):  # hash miss (e.g. a value on a rounding boundary): scan
            dist = np.abs(self.mats - mats[k]).reshape(len(self.mats), -1).max(-1)
            j = int(dist.argmin())
            index[k] = j if dist[j] < 1e3 * _TOL else -1
        return index

    def find(self, m: np.ndarray) -> int | None:
        i = int(self.find_many(m[None])[0])
        return None if i < 0 else i


def closure(generators: np.ndarray, max_order: int = MAX_ORDER) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Breadth-first closure of orthogonal ``generators`` ``(k, n, n)``.

    Returns ``(elements (N, n, n), parent (N,), via (N,))`` with ``elements[i] = generators[via[i]] @
    elements[parent[i]]`` for ``i > 0`` (a spanning tree used to extend representations given on the
    generators).  Raises ``ValueError`` past ``max_order`` elements.  Cost ``O(N k)`` products.
    """
    n = generators.shape[-1]
    elements = [np.eye(n)]
    parent, via = [-1], [-1]
    table = {_keys(elements[0][None])[0]: 0}
    head = 0
    while head < len(elements):
        current = elements[head]
        for s, gen in enumerate(generators):
            prod = gen @ current
            key = _keys(prod[None])[0]
            if key in table:
                continue
            if len(elements) >= max_order:
                raise ValueError(
                    f"the generators do not close into a group of order <= {max_order} (max_order): "
                    "they generate an infinite group (e.g. a rotation by an irrational angle) or one "
                    "larger than max_order; pass max_order=... to allow more elements"
                )
            table[key] = len(elements)
            elements.append(prod)
            parent.append(head)
            via.append(s)
        head += 1
    return np.stack(elements), np.asarray(parent), np.asarray(via)


class MatrixGroup(Group):
    """A finite subgroup of ``O(n)`` enumerated from generator matrices (see :func:`group_from_generators`).

    Attributes beyond :class:`~steerable.core.group.Group`'s: ``generators`` ``(k, n, n)``,
    ``mult`` ``(N, N)`` (``mult[i, j]`` = index of ``g_i g_j``) and ``inverse`` ``(N,)``.
    """

    backend = "matrix"

    def __init__(self, generators: np.ndarray, name: str, max_order: int = MAX_ORDER) -> None:
        self.name, self.dim = name, int(generators.shape[-1])
        self.generators = generators
        self._elements, self._parent, self._via = closure(generators, max_order)
        self.order = len(self._elements)
        self.native = self
        self._lookup = _Lookup(self._elements)
        self.gen_index = self._lookup.find_many(generators)
        # Multiplication table, one row at a time (N products of n x n each) to bound memory.
        self.mult = np.stack(
            [self._lookup.find_many(np.einsum("ij,bjk->bik", g, self._elements)) for g in self._elements]
        )
        if (self.mult < 0).any():  # cannot happen for a closed set; guards against tolerance trouble
            raise ValueError(f"{name}: the closure is not closed under products (generators too noisy?)")
        self.inverse = np.argmax(self.mult == 0, axis=1)
        self._reps: dict[str, MatrixRep] = {}
        self._irreps: list[MatrixRep] | None = None
        self._key = super().key + (_digest(generators),)

    @property
    def key(self) -> tuple:
        """The default key plus a digest of the generators: groups built from different generators
        never compare equal, whatever their names."""
        return self._key

    def portable_reps(self) -> dict[str, MatrixRep]:
        """trivial, standard, and ``det`` (``g -> det g``, the same matrices on every backend)."""
        return {"trivial": self.trivial_rep(), "standard": self.standard_rep(), "det": self.det_rep()}

    # -- elements -------------------------------------------------------------------------
    def _batch(self, index: np.ndarray | torch.Tensor) -> GroupElements:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        return GroupElements(
            self, torch.from_numpy(self._elements[index.numpy()]).reshape(-1, self.dim, self.dim), index
        )

    def elements(self) -> GroupElements:
        return self._batch(np.arange(self.order))

    def sample(self, n: int, generator: torch.Generator | None = None) -> GroupElements:
        return self._batch(torch.randint(self.order, (n,), generator=generator))

    def elements_from_matrices(self, matrices: torch.Tensor) -> GroupElements:
        mats = _as_matrices(matrices, f"{self.name}.elements_from_matrices")
        if mats.shape[1:] != (self.dim, self.dim):
            raise ValueError(f"{self!r}: element matrices must be {self.dim}x{self.dim}, got shape {mats.shape}")
        index = self._lookup.find_many(mats)
        if (index < 0).any():
            k = int(np.flatnonzero(index < 0)[0])
            raise ValueError(f"matrix {k} is not an element of {self!r}:\n{np.round(mats[k], 6)}")
        return self._batch(index)

    def indices(self, elements: GroupElements) -> np.ndarray:
        """Element indices ``(k,)`` of a batch of elements (of this group, from any backend)."""
        native = elements.native
        same_key = elements.group is self or elements.group.key == self.key
        if same_key and isinstance(native, torch.Tensor) and native.dtype == torch.long:
            return native.numpy()
        if not same_key and not same_group(elements.group, self):
            raise ValueError(f"elements of {elements.group!r} given to a representation of {self!r}")
        return self.elements_from_matrices(elements.matrices).native.numpy()

    # -- representations ------------------------------------------------------------------
    def _cached(self, name: str, build) -> MatrixRep:
        if name not in self._reps:
            self._reps[name] = build()
        return self._reps[name]

    def trivial_rep(self) -> MatrixRep:
        return self._cached("trivial", lambda: MatrixRep(self, "trivial", np.ones((self.order, 1, 1)), check=False))

    def standard_rep(self) -> MatrixRep:
        return self._cached("standard", lambda: MatrixRep(self, "standard", self._elements.copy(), check=False))

    def det_rep(self) -> MatrixRep:
        """The sign representation ``g -> det(g) = ±1`` (pseudo-scalars)."""
        dets = np.round(np.linalg.det(self._elements))[:, None, None]
        return self._cached("det", lambda: MatrixRep(self, "det", dets, check=False))

    def regular_rep(self) -> MatrixRep:
        """The left regular representation ``L(g) e_h = e_{gh}`` (size ``|G|``; table ``|G|^3`` floats)."""
        if self.order > REGULAR_MAX_ORDER:
            raise ValueError(
                f"{self.name}: the regular representation of a group of order {self.order} needs a "
                f"{self.order}^3 table (limit: order {REGULAR_MAX_ORDER}); irreps() is built from it too"
            )

        def build() -> MatrixRep:
            table = np.zeros((self.order, self.order, self.order))
            rows = self.mult  # rows[g, h] = gh: column h of L(g) is e_{gh}
            table[np.arange(self.order)[:, None], rows, np.arange(self.order)[None, :]] = 1.0
            return MatrixRep(self, "regular", table, check=False)

        return self._cached("regular", build)

    def permutation_rep(self, points: np.ndarray | torch.Tensor, name: str = "permutation") -> MatrixRep:
        """The permutation representation on a finite ``G``-invariant point set ``(m, n)``.

        ``P(g) e_j = e_i`` where ``g x_j = x_i`` (e.g. the 8 vertices of a cube for ``m-3m``).
        """
        pts = np.asarray(points.numpy() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != self.dim:
            raise ValueError(f"permutation_rep: points must have shape (m, {self.dim}), got {pts.shape}")
        moved = np.einsum("gij,mj->gmi", self._elements, pts)  # (N, m, n)
        dist = np.linalg.norm(moved[:, :, None, :] - pts[None, None, :, :], axis=-1)  # (N, m_from, m_to)
        target = dist.argmin(-1)
        if (dist.min(-1) > 1e-6).any():
            g, j = map(int, np.argwhere(dist.min(-1) > 1e-6)[0])
            raise ValueError(
                f"permutation_rep: the points are not {self.name}-invariant (element {g} moves point {j} off the set)"
            )
        table = np.zeros((self.order, len(pts), len(pts)))
        table[np.arange(self.order)[:, None], target, np.arange(len(pts))[None, :]] = 1.0
        return MatrixRep(self, name, table, check=False)

    def rep_from_generators(self, images: Sequence | np.ndarray | torch.Tensor, name: str) -> MatrixRep:
        """The representation sending ``self.generators[k]`` to ``images[k]`` ``(k, d, d)``.

        Raises ``ValueError`` when the images are not orthogonal or do not define a homomorphism.
        """
        imgs = _as_matrices(images, f"rep_from_generators({name!r})")
        if len(imgs) != len(self.generators):
            raise ValueError(f"rep_from_generators: {len(self.generators)} generators but {len(imgs)} images")
        _check_orthogonal(imgs, f"rep_from_generators({name!r})")
        table = np.zeros((self.order, imgs.shape[1], imgs.shape[1]))
        table[0] = np.eye(imgs.shape[1])
        for i in range(1, self.order):  # BFS order: the parent is always built first
            table[i] = imgs[self._via[i]] @ table[self._parent[i]]
        return MatrixRep(self, name, table)

    def rep_from_elements(self, matrices: Sequence | np.ndarray | torch.Tensor, name: str) -> MatrixRep:
        """The representation with ``matrices[i]`` ``(N, d, d)`` for element ``i`` (order of :meth:`elements`)."""
        table = _as_matrices(matrices, f"rep_from_elements({name!r})")
        if len(table) != self.order:
            raise ValueError(f"rep_from_elements: {self.order} elements but {len(table)} matrices")
        _check_orthogonal(table, f"rep_from_elements({name!r})")
        return MatrixRep(self, name, table)

    def irreps(self, max_frequency: int = 2) -> list[MatrixRep]:
        """All real irreducible representations (``max_frequency`` is ignored: the group is finite).

        Trivial first, then by size; the trivial and (when irreducible) the standard and ``det``
        representations are returned as the very objects of :meth:`trivial_rep` etc.
        """
        if self._irreps is None:
            from .decompose import real_irreps

            self._irreps = real_irreps(self)
        return list(self._irreps)

    # -- the kernel MLP -------------------------------------------------------------------
    def build_kernel_mlp(self, spec: KernelMLPSpec) -> KernelMLP:
        from .mlp import RegularKernelMLP

        return RegularKernelMLP(spec)


class MatrixRep(Rep):
    """A real orthogonal representation stored as a table of matrices ``(N, d, d)`` float64.

    ``a + b`` is the direct sum and ``a * b`` the tensor product (``kron(a(g), b(g))``).
    """

    def __init__(self, group: MatrixGroup, name: str, table: np.ndarray, check: bool = True) -> None:
        self.group, self.name = group, name
        self.table = np.ascontiguousarray(table, dtype=np.float64)
        self.size = int(self.table.shape[-1])
        self.native = self
        if check:
            self._check_homomorphism()
        self.is_trivial = self.size == 1 and bool(np.allclose(self.table, 1.0))
        self._torch = torch.from_numpy(self.table)
        self._key = (group.key, "table", _digest(self.generator_images))

    @property
    def key(self) -> tuple:
        """``(group.key, "table", digest of the generators' matrices)``: equal matrices, equal keys,
        whatever the names given to them."""
        return self._key

    def _check_homomorphism(self) -> None:
        g = self.group
        lhs = np.einsum("aij,bjk->abik", self.table, self.table)  # rho(a) rho(b)
        err = np.abs(lhs - self.table[g.mult]).max(axis=(-1, -2))
        if err.max() > 1e-6:
            a, b = map(int, np.unravel_index(err.argmax(), err.shape))
            raise ValueError(
                f"representation {self.name!r} of {g.name} is not a homomorphism: "
                f"rho(g{a}) rho(g{b}) != rho(g{a} g{b}) (max error {err.max():.2e}); "
                f"check the matrices given for the generators {g.generators.shape[0]} against the group relations"
            )

    def matrices(self, elements: GroupElements) -> torch.Tensor:
        return self._torch[torch.from_numpy(self.group.indices(elements))].clone()

    @property
    def character(self) -> np.ndarray:
        """``(N,)`` traces, in element order."""
        return np.trace(self.table, axis1=1, axis2=2)

    @property
    def generator_images(self) -> np.ndarray:
        """``(k, d, d)`` the matrices of the group's generators (what defines this representation)."""
        return self.table[self.group.gen_index]

    def __add__(self, other: MatrixRep) -> MatrixRep:
        return direct_sum(self, other)

    def __mul__(self, other: MatrixRep) -> MatrixRep:
        return tensor_product(self, other)


def direct_sum(*reps: MatrixRep, name: str | None = None) -> MatrixRep:
    """``rho_1 ⊕ rho_2 ⊕ ...`` (block diagonal, blocks in order)."""
    group = reps[0].group
    if any(r.group is not group for r in reps):
        raise ValueError("direct_sum: representations of different groups")
    size = sum(r.size for r in reps)
    table = np.zeros((group.order, size, size))
    off = 0
    for r in reps:
        table[:, off : off + r.size, off : off + r.size] = r.table
        off += r.size
    return MatrixRep(group, name or "+".join(r.name for r in reps), table, check=False)


def tensor_product(a: MatrixRep, b: MatrixRep, name: str | None = None) -> MatrixRep:
    """``a ⊗ b`` acting by ``kron(a(g), b(g))`` on row-major flattened ``a.size x b.size`` matrices."""
    if a.group is not b.group:
        raise ValueError("tensor_product: representations of different groups")
    table = np.einsum("nij,nkl->nikjl", a.table, b.table).reshape(a.group.order, a.size * b.size, a.size * b.size)
    return MatrixRep(a.group, name or f"({a.name})x({b.name})", table, check=False)


def group_from_generators(
    generators: Sequence | np.ndarray | torch.Tensor,
    name: str | None = None,
    *,
    dim: int | None = None,
    max_order: int = MAX_ORDER,
) -> MatrixGroup:
    """The finite group generated by orthogonal ``generators`` ``(k, n, n)`` (``n >= 2``).

    Args:
        generators: generator matrices acting on column vectors ``(x, y[, z, ...])``; may be empty
            when ``dim`` is given (the trivial group).
        name: canonical name; default: a name derived from the generators.  Groups compare equal by
            key, which includes a digest of the generators, so two different groups given the same
            name never compare equal.
        dim: ``n``, needed only for an empty generator list.
        max_order: give up with a ``ValueError`` past this many elements.

    Raises:
        ValueError: non-square, non-finite or non-orthogonal generators, ``n < 2``, or generators
            that do not close within ``max_order`` elements.
    """
    if len(generators) == 0:
        if dim is None:
            raise ValueError("group_from_generators: no generators; pass dim=n for the trivial group")
        gens = np.eye(dim)[None]
    else:
        gens = _as_matrices(generators, "group_from_generators")
    if gens.shape[-1] < 2:
        raise ValueError(f"group_from_generators: groups act on R^n with n >= 2, got n = {gens.shape[-1]}")
    if dim is not None and gens.shape[-1] != dim:
        raise ValueError(f"group_from_generators: dim={dim} but the generators are {gens.shape[-1]}x{gens.shape[-1]}")
    _check_orthogonal(gens, "group_from_generators")
    if name is None:
        import hashlib

        name = "G_" + hashlib.sha256(np.round(gens, 8).tobytes()).hexdigest()[:10]
    return MatrixGroup(gens, name, max_order=max_order)
