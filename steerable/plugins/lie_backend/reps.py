"""Representations of a Lie-backend group, built from the standard one by sums, products, duals and powers.

A :class:`LieRep` is an expression (``("std",)``, ``("ext", 2, ("std",))``, ...) evaluated in two ways:
on group elements (their standard matrices ``g``, ``(N, n, n)``) and on Lie-algebra elements
(``d rho(A)``, the derivative at the identity, used by the solver).  Bases (the contracts of the package
docstring):

* ``dual``: ``g -> g^-T`` (``A -> -A^T``);
* ``exterior_power(k)``: basis ``e_i1 ^ ... ^ e_ik``, ``i1 < ... < ik`` lexicographic; matrix entry
  ``(I, J)`` is the minor ``det rho(g)[I, J]``;
* ``symmetric_power(k)``: basis ``s_I`` for multisets ``i1 <= ... <= ik`` in lexicographic order,
  ``s_I`` the *normalised* symmetrisation ``N_I^-1/2 sum e_j1 x ... x e_jk`` over the ``N_I``
  distinct arrangements ``j`` of ``I``; the coordinates of ``x^{(x)k}`` in it are ``sqrt(N_I) x^I``
  (``N_I = k! / prod_i mult_i!``), and the representation is orthogonal whenever ``rho`` is;
* ``a + b``: block diagonal; ``a * b``: ``kron(a(g), b(g))``, channel ``i * b.size + j``;
* ``det``: ``g -> det g``.
"""

from __future__ import annotations

import itertools
import math
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import torch

from steerable.core.group import GroupElements, same_group
from steerable.core.representation import Rep

if TYPE_CHECKING:  # pragma: no cover
    from .group import LieGroup


@cache
def wedge_embedding(d: int, k: int) -> np.ndarray:
    """``(d^k, C(d, k))``: column ``I`` is ``(k!)^-1/2 sum_sigma sgn(sigma) e_{i_sigma(1)} x ... x e_{i_sigma(k)}``."""
    combos = list(itertools.combinations(range(d), k))
    out = np.zeros((d**k, len(combos)))
    scale = 1.0 / math.sqrt(math.factorial(k))
    for c, idx in enumerate(combos):
        for perm in itertools.permutations(range(k)):
            sign = np.linalg.det(np.eye(k)[list(perm)])
            flat = 0
            for p in perm:
                flat = flat * d + idx[p]
            out[flat, c] += round(sign) * scale
    return out


@cache
def symmetric_multisets(d: int, k: int) -> tuple[tuple[int, ...], ...]:
    """Multisets ``i1 <= ... <= ik`` of ``range(d)`` in lexicographic order (the symmetric-power basis)."""
    return tuple(itertools.combinations_with_replacement(range(d), k))


def multiset_count(idx: tuple[int, ...]) -> int:
    """``N_I``: the number of distinct arrangements of the multiset ``idx``."""
    count = math.factorial(len(idx))
    for i in set(idx):
        count //= math.factorial(idx.count(i))
    return count


@cache
def symmetric_embedding(d: int, k: int) -> np.ndarray:
    """``(d^k, C(d+k-1, k))``: column ``I`` is the normalised symmetrisation ``s_I``."""
    sets = symmetric_multisets(d, k)
    out = np.zeros((d**k, len(sets)))
    for c, idx in enumerate(sets):
        arrangements = set(itertools.permutations(idx))
        for arr in arrangements:
            flat = 0
            for i in arr:
                flat = flat * d + i
            out[flat, c] = 1.0 / math.sqrt(len(arrangements))
    return out


def _kron_power(mats: np.ndarray, k: int) -> np.ndarray:
    out = np.ones((len(mats), 1, 1))
    for _ in range(k):
        size = out.shape[1] * mats.shape[1]
        out = np.einsum("nij,nkl->nikjl", out, mats).reshape(len(mats), size, size)
    return out


def _kron_derivation(mats: np.ndarray, k: int) -> np.ndarray:
    """``sum_j I x .. x A x .. x I`` (``A`` in slot ``j``) for each ``A`` in ``mats`` ``(m, d, d)``."""
    d = mats.shape[-1]
    out = np.zeros((len(mats), d**k, d**k))
    for j in range(k):
        left, right = np.eye(d**j), np.eye(d ** (k - 1 - j))
        out += np.einsum("ab,mij,cd->maicbjd", left, mats, right).reshape(len(mats), d**k, d**k)
    return out


class LieRep(Rep):
    """A representation of a :class:`~.group.LieGroup` given by an expression in the standard one.

    Attributes beyond :class:`~steerable.core.representation.Rep`'s: ``expr`` (the canonical
    expression tree, part of :attr:`key`) and ``parts`` (the operand representations).
    """

    def __init__(
        self, group: LieGroup, op: str, parts: tuple[LieRep, ...] = (), k: int = 0, name: str | None = None
    ) -> None:
        self.group, self.op, self.parts, self.k = group, op, parts, k
        d = group.dim
        sizes = [p.size for p in parts]
        self.size = {
            "trivial": 1,
            "std": d,
            "det": 1,
            "dual": sizes[0] if parts else 0,
            "sum": sum(sizes),
            "tensor": math.prod(sizes),
            "ext": math.comb(sizes[0], k) if parts else 0,
            "sym": math.comb(sizes[0] + k - 1, k) if parts else 0,
        }[op]
        if self.size == 0:
            raise ValueError(
                f"{group!r}: the representation {op}{k or ''} of {[p.name for p in parts]} is zero-dimensional"
            )
        self.name = name or self._default_name()
        self.native = self
        self.is_trivial = op == "trivial" or (op == "det" and group.special)
        self.expr = self._canonical()
        self._key = (group.key, "lie", self.expr)

    def _default_name(self) -> str:
        names = [p.name for p in self.parts]
        return {
            "trivial": "trivial",
            "std": "standard",
            "det": "det",
            "dual": f"dual({names[0] if names else ''})",
            "sum": "+".join(names),
            "tensor": "x".join(f"({n})" for n in names),
            "ext": f"ext{self.k}({names[0] if names else ''})",
            "sym": f"sym{self.k}({names[0] if names else ''})",
        }[self.op]

    def _canonical(self) -> tuple:
        """Expression tree identifying the matrices: a dual of an orthogonal group's representation is itself
        (``g^-T = g``), ``det`` of a group of determinant 1 is trivial."""
        if self.op == "dual" and self.group.orthogonal:
            return self.parts[0].expr
        if self.op == "det" and self.group.special:
            return ("trivial",)
        return (self.op, self.k, *[p.expr for p in self.parts])

    @property
    def key(self) -> tuple:
        """``(group.key, "lie", canonical expression)``: equal expressions, equal matrices."""
        return self._key

    # -- evaluation ----------------------------------------------------------------------------
    def on_matrices(self, g: np.ndarray) -> np.ndarray:
        """``(N, size, size)`` matrices of the elements with standard matrices ``g`` ``(N, n, n)``."""
        op, n = self.op, len(g)
        if op == "trivial":
            return np.ones((n, 1, 1))
        if op == "std":
            return g.copy()
        if op == "det":
            return np.linalg.det(g)[:, None, None]
        if op == "dual":
            return np.swapaxes(np.linalg.inv(self.parts[0].on_matrices(g)), 1, 2)
        if op == "sum":
            out = np.zeros((n, self.size, self.size))
            off = 0
            for p in self.parts:
                out[:, off : off + p.size, off : off + p.size] = p.on_matrices(g)
                off += p.size
            return out
        if op == "tensor":
            out = np.ones((n, 1, 1))
            for p in self.parts:
                m = p.on_matrices(g)
                size = out.shape[1] * p.size
                out = np.einsum("nij,nkl->nikjl", out, m).reshape(n, size, size)
            return out
        emb = self._embedding()
        return np.einsum("ai,nab,bj->nij", emb, _kron_power(self.parts[0].on_matrices(g), self.k), emb)

    def on_algebra(self, a: np.ndarray) -> np.ndarray:
        """``(m, size, size)``: ``d rho(A)`` for Lie-algebra elements ``a`` ``(m, n, n)``."""
        op, m = self.op, len(a)
        if op == "trivial":
            return np.zeros((m, 1, 1))
        if op == "std":
            return a.copy()
        if op == "det":
            return np.trace(a, axis1=1, axis2=2)[:, None, None]
        if op == "dual":
            return -np.swapaxes(self.parts[0].on_algebra(a), 1, 2)
        if op == "sum":
            out = np.zeros((m, self.size, self.size))
            off = 0
            for p in self.parts:
                out[:, off : off + p.size, off : off + p.size] = p.on_algebra(a)
                off += p.size
            return out
        if op == "tensor":
            out, size = np.zeros((m, 1, 1)), 1
            for p in self.parts:  # d(a x b) = da x I + I x db
                da = p.on_algebra(a)
                out = np.einsum("nij,kl->nikjl", out, np.eye(p.size)) + np.einsum("ij,nkl->nikjl", np.eye(size), da)
                size *= p.size
                out = out.reshape(m, size, size)
            return out
        emb = self._embedding()
        return np.einsum("ai,nab,bj->nij", emb, _kron_derivation(self.parts[0].on_algebra(a), self.k), emb)

    def _embedding(self) -> np.ndarray:
        d = self.parts[0].size
        return wedge_embedding(d, self.k) if self.op == "ext" else symmetric_embedding(d, self.k)

    def matrices(self, elements: GroupElements) -> torch.Tensor:
        if elements.group is not self.group and elements.group.key != self.group.key:
            if not same_group(elements.group, self.group):
                raise ValueError(f"elements of {elements.group!r} given to a representation of {self.group!r}")
            elements = self.group.elements_from_matrices(elements.matrices)
        return torch.from_numpy(self.on_matrices(elements.matrices.numpy()))

    # -- constructions -------------------------------------------------------------------------
    def _same_group(self, other: object, what: str) -> LieRep:
        if not isinstance(other, LieRep):
            raise TypeError(f"{what}: expected a representation of the lie backend, got {type(other).__name__}")
        if other.group.key != self.group.key:
            raise ValueError(f"{what}: {self!r} is a representation of {self.group!r} but {other!r} of {other.group!r}")
        return other

    def __add__(self, other: LieRep) -> LieRep:
        """Direct sum (block diagonal, ``self`` first)."""
        return LieRep(self.group, "sum", (self, self._same_group(other, "direct sum")))

    def __mul__(self, other: LieRep) -> LieRep:
        """Tensor product ``kron(self(g), other(g))`` (row-major: channel ``i * other.size + j``)."""
        return LieRep(self.group, "tensor", (self, self._same_group(other, "tensor product")))

    def dual(self) -> LieRep:
        """``g -> rho(g)^-T`` (the same matrices as ``self`` on a group acting orthogonally)."""
        return LieRep(self.group, "dual", (self,))

    def exterior_power(self, k: int) -> LieRep:
        """``∧^k``: basis ``e_I``, ``I`` increasing tuples in lexicographic order; entries the ``k x k`` minors."""
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= self.size:
            raise ValueError(f"exterior_power: k must be an int in [1, {self.size}] for {self!r}, got {k!r}")
        return LieRep(self.group, "ext", (self,), k)

    def symmetric_power(self, k: int) -> LieRep:
        """``Sym^k`` in the normalised-symmetrisation basis of the module docstring (``k = 0``: trivial)."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise ValueError(f"symmetric_power: k must be an int >= 0, got {k!r}")
        if k == 0:
            return self.group.trivial_rep()
        return LieRep(self.group, "sym", (self,), k)

    @property
    def degree(self) -> int:
        """The polynomial degree the kernel MLP embeds the position to for this representation; a block
        ``(out, in)`` gets ``out.degree + in.degree``.

        Groups from generators: the degree of ``rho(g)`` in the entries of ``g`` (standard 1, ``det``
        ``n``, sums the maximum, products the sum, powers ``k`` times; a dual that of its operand, since
        ``g^-T = eta g eta^-1`` for a group preserving ``eta``).  ``SO(n)``, ``O(n)``: the length of
        the longest first row of a Young diagram in the representation (standard, its exterior powers
        and ``det`` 1, ``Sym^k`` ``k``, products the sum): a degree-``k`` polynomial reaches the
        spherical harmonics ``[k]``, the only constituents with vectors fixed by the stabiliser
        ``SO(n-1)`` / ``O(n-1)`` of a point, and ``[k]`` occurs in ``a ⊗ b`` only for ``k`` at most the
        sum of their first rows.  ``SO+(p,q)``, ``SO(p,q)``, ``O(p,q)``: the same rule, for the same reason
        (they are Zariski-dense in the complex groups ``SO(n, C)``, ``O(n, C)``, as ``SO(n)``, ``O(n)`` are,
        so their equivariant polynomials and the stabilisers of non-null points, ``SO(n-1, C)`` or
        ``O(n-1, C)``, behave alike).
        """
        from .group import NAMED

        op, named = self.op, self.group.kind in NAMED
        if op == "trivial" or self.is_trivial:
            return 0
        if op == "std":
            return 1
        if op == "det":
            return 1 if named else self.group.dim
        if op == "dual":
            return self.parts[0].degree
        if op == "sum":
            return max(p.degree for p in self.parts)
        if op == "tensor":
            return sum(p.degree for p in self.parts)
        base = self.parts[0]
        if op == "ext" and named and base.degree <= 1:
            return base.degree  # exterior powers of the standard representation: one column
        return self.k * base.degree
