"""Equivariant linear maps between representations of a Lie-backend group, solved numerically, cached on disk.

``Hom_G(rho_in, rho_out) = {W (d_out x d_in) : d rho_out(A) W = W d rho_in(A) for every Lie-algebra basis
element A, and rho_out(h) W = W rho_in(h) for every discrete generator h}``.  With ``vec`` row-major,
``vec(a W - W b) = C vec W``, ``C = kron(a, I) - kron(I, b^T)``; the solution space is the null space of
the stacked ``C``.  It is found from ``sum C^T C`` (assembled from Kronecker products of the small
matrices, never by multiplying the big ones): eigenvectors with eigenvalue below ``EIG_TOL`` times its
largest (or 1), i.e. the right singular vectors of the stacked ``C`` with singular value below
``sqrt(EIG_TOL)`` times its largest.  The basis is orthonormal in the Frobenius inner product.

Cache: in memory and under ``$STEERABLE_CACHE`` (default ``~/.cache/steerable``) ``/lie/hom-<key>.npy``,
``key`` a hash of both representations' constraint matrices.  A file is used only if it has the right
shape, finite entries, orthonormal rows and satisfies the constraints (residual below ``CHECK_TOL``);
otherwise it is recomputed and rewritten (one :class:`~steerable.cache.CacheWarning` line).  Reads and
atomic writes are :mod:`steerable.cache`'s; an unwritable cache folder is skipped.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from steerable.cache import InvalidCache, atomic_write, read_validated

from .reps import LieRep

_MEMORY: dict[str, np.ndarray] = {}
#: null-space threshold on the eigenvalues of sum C^T C, relative to the largest (or 1, whichever is more);
#: the smallest non-zero eigenvalue of these problems is O(1), the zero ones come out below 1e-12
EIG_TOL = 1e-8
#: a cached basis must satisfy the constraints to this residual (max entry) and be orthonormal to it
CHECK_TOL = 1e-9


def cache_dir() -> Path:
    """``$STEERABLE_CACHE/lie`` or ``~/.cache/steerable/lie``."""
    root = os.environ.get("STEERABLE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "steerable")
    return Path(root) / "lie"


def constraints(rep: LieRep) -> tuple[np.ndarray, np.ndarray]:
    """``(d rho(A_k) (k, d, d), rho(h_j) (m, d, d))`` over the group's algebra basis and discrete generators."""
    g = rep.group
    return rep.on_algebra(g.algebra), rep.on_matrices(g.discrete)


def _gram(pairs: list[tuple[np.ndarray, np.ndarray]], d_out: int, d_in: int) -> np.ndarray:
    """``sum C^T C`` for ``C = kron(a, I) - kron(I, b^T)`` over ``(a, b)`` pairs, from small Kronecker products."""
    i_out, i_in = np.eye(d_out), np.eye(d_in)
    gram = np.zeros((d_out * d_in, d_out * d_in))
    for a, b in pairs:
        gram += np.kron(a.T @ a, i_in) + np.kron(i_out, b @ b.T) - np.kron(a.T, b.T) - np.kron(a, b)
    return gram


def residual(basis: np.ndarray, rep_in: LieRep, rep_out: LieRep) -> float:
    """Max entry of ``a W - W b`` over the constraints and the basis ``(k, d_out, d_in)``."""
    (alg_in, disc_in), (alg_out, disc_out) = constraints(rep_in), constraints(rep_out)
    worst = 0.0
    for a, b in list(zip(alg_out, alg_in)) + list(zip(disc_out, disc_in)):
        if len(basis):
            worst = max(worst, float(np.abs(np.einsum("ij,kjl->kil", a, basis) - basis @ b).max()))
    return worst


def solve(rep_in: LieRep, rep_out: LieRep) -> np.ndarray:
    """Orthonormal basis ``(k, rep_out.size, rep_in.size)`` of ``Hom_G(rep_in, rep_out)``, without caching."""
    (alg_in, disc_in), (alg_out, disc_out) = constraints(rep_in), constraints(rep_out)
    d_out, d_in = rep_out.size, rep_in.size
    pairs = list(zip(alg_out, alg_in)) + list(zip(disc_out, disc_in))
    if not pairs:  # the trivial group
        return np.eye(d_out * d_in).reshape(-1, d_out, d_in)
    values, vectors = np.linalg.eigh(_gram(pairs, d_out, d_in))
    keep = values < EIG_TOL * max(values[-1], 1.0)
    return np.ascontiguousarray(vectors[:, keep].T.reshape(int(keep.sum()), d_out, d_in))


def _key(rep_in: LieRep, rep_out: LieRep) -> str:
    h = hashlib.sha256(b"lie-hom-v1")
    for arr in (*constraints(rep_in), *constraints(rep_out)):
        h.update(str(arr.shape).encode())
        h.update(np.ascontiguousarray(np.round(arr, 9) + 0.0).tobytes())
    return h.hexdigest()[:32]


def _load(path: Path, rep_in: LieRep, rep_out: LieRep) -> np.ndarray:
    """The cached basis at ``path``; raises :class:`~steerable.cache.InvalidCache` naming what is wrong."""
    basis = np.load(path, allow_pickle=False)
    if not isinstance(basis, np.ndarray) or basis.ndim != 3 or basis.shape[1:] != (rep_out.size, rep_in.size):
        raise InvalidCache(f"shape {getattr(basis, 'shape', None)}, expected (k, {rep_out.size}, {rep_in.size})")
    if not np.isfinite(basis).all():
        raise InvalidCache("non-finite entries")
    flat = basis.reshape(len(basis), rep_out.size * rep_in.size)
    if np.abs(flat @ flat.T - np.eye(len(basis))).max(initial=0.0) > CHECK_TOL:
        raise InvalidCache("rows are not orthonormal")
    if residual(basis, rep_in, rep_out) > CHECK_TOL:
        raise InvalidCache("the basis does not satisfy the constraints")
    return basis


def _write(path: Path, basis: np.ndarray) -> None:
    try:
        atomic_write(path, lambda handle: np.save(handle, basis))
    except OSError:
        pass  # read-only home or a full disk: the cache is an optimisation only


def intertwiner_basis(rep_in: LieRep, rep_out: LieRep, *, use_cache: bool = True) -> np.ndarray:
    """Orthonormal basis ``(k, rep_out.size, rep_in.size)`` of ``Hom_G(rep_in, rep_out)``, cached (see module)."""
    for rep in (rep_in, rep_out):
        if not isinstance(rep, LieRep):
            raise TypeError(f"intertwiner_basis: expected representations of the lie backend, got {type(rep).__name__}")
    if rep_in.group.key != rep_out.group.key:
        raise ValueError(
            f"intertwiner_basis: {rep_in!r} is a representation of {rep_in.group!r}, {rep_out!r} of {rep_out.group!r}"
        )
    if not use_cache:
        return solve(rep_in, rep_out)
    key = _key(rep_in, rep_out)
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / f"hom-{key}.npy"
    basis = read_validated(path, lambda f: _load(f, rep_in, rep_out), what="lie intertwiner cache")
    if basis is None:
        basis = solve(rep_in, rep_out)
        _write(path, basis)
    _MEMORY[key] = basis
    return basis


def hom_dimension(rep_in: LieRep, rep_out: LieRep) -> int:
    """``dim Hom_G(rep_in, rep_out)`` from the solver."""
    return int(intertwiner_basis(rep_in, rep_out).shape[0])
