"""Equivariant linear maps by solving the intertwiner constraint numerically, cached on disk.

``Hom_G(rho_in, rho_out) = {W (d_out x d_in) : rho_out(s) W = W rho_in(s) for every generator s}``.
With ``vec`` row-major, ``vec(A W B) = kron(A, B^T) vec W``, so each generator contributes the
constraint matrix ``C_s = kron(rho_out(s), I) - kron(I, rho_in(s)^T)``; the solution space is the
null space of the stacked ``C_s``, found as the eigenvectors of ``sum_s C_s^T C_s`` with eigenvalue
~0 (the same null space, a ``d x d`` problem instead of a ``k d x d`` one).  Constraints on the
generators suffice: ``W`` then commutes with every product of them.

The basis is cached in memory and on disk under ``$STEERABLE_CACHE`` (default
``~/.cache/steerable``)``/matrix/hom-{key}.npz`` (:func:`cache_path`), keyed by a hash of the
problem (the group's generators, the generator images of both representations, the solver version
and its threshold), so it is computed once per machine.  A file is trusted only when it passes
:func:`check_cached_basis`: the stored key and solver version are this problem's, the checksum of
the basis matches, the shape is ``(dim Hom, d_out, d_in)`` with ``dim Hom`` from the characters,
every entry is finite, the basis is orthonormal and satisfies the constraints of every generator to
``CHECK_TOL``.  Anything else (empty, truncated, garbage, a corrupted entry, a stale file) gives one
:class:`~steerable.cache.CacheWarning` line and is solved again and rewritten.  Files are written
atomically under a unique temporary name (:func:`steerable.cache.atomic_write`), so concurrent
processes never read half a file.  An unwritable cache directory is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from steerable.cache import InvalidCache, atomic_write, digest, read_validated

from .group import MatrixRep

_MEMORY: dict[str, np.ndarray] = {}
#: null-space threshold on the eigenvalues of sum_s C_s^T C_s (entries of C_s are O(1))
EIG_TOL = 1e-9
#: part of the cache key and of every cache file: bump when the solver's output changes
SOLVER_VERSION = 2
#: max |rho_out(s) W - W rho_in(s)| and max |<W_i, W_j> - delta_ij| accepted for a cached basis
CHECK_TOL = 1e-7


def cache_dir() -> Path:
    """Where bases are stored: ``$STEERABLE_CACHE/matrix`` or ``~/.cache/steerable/matrix``."""
    root = os.environ.get("STEERABLE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "steerable")
    return Path(root) / "matrix"


def problem_key(rep_in: MatrixRep, rep_out: MatrixRep) -> str:
    """Hex SHA-256 of the problem: solver version, threshold, generators and both reps' generator images."""
    h = hashlib.sha256(f"hom-v{SOLVER_VERSION}-tol{EIG_TOL!r}".encode())
    for arr in (rep_in.group.generators, rep_in.generator_images, rep_out.generator_images):
        h.update(str(arr.shape).encode())
        h.update(np.round(arr, 9).tobytes())  # round so that round-off does not change the key
    return h.hexdigest()


def cache_path(rep_in: MatrixRep, rep_out: MatrixRep) -> Path:
    """The cache file of ``Hom_G(rep_in, rep_out)``: ``cache_dir() / "hom-{key[:32]}.npz"``."""
    return cache_dir() / f"hom-{problem_key(rep_in, rep_out)[:32]}.npz"


def check_cached_basis(basis: Any, rep_in: MatrixRep, rep_out: MatrixRep) -> None:
    """Raise :class:`~steerable.cache.InvalidCache` (the reason) unless ``basis`` is an orthonormal
    basis ``(dim Hom, d_out, d_in)`` of ``Hom_G(rep_in, rep_out)``: finite, of the dimension given
    by the characters, orthonormal and intertwining every generator to :data:`CHECK_TOL`."""
    shape = (character_hom_dimension(rep_in, rep_out), rep_out.size, rep_in.size)
    if not isinstance(basis, np.ndarray) or basis.dtype != np.float64 or basis.shape != shape:
        got = f"{basis.dtype} {basis.shape}" if isinstance(basis, np.ndarray) else type(basis).__name__
        raise InvalidCache(f"basis is {got}, expected float64 {shape}")
    if not np.isfinite(basis).all():
        raise InvalidCache("basis has non-finite entries")
    flat = basis.reshape(shape[0], shape[1] * shape[2])
    ortho = np.abs(flat @ flat.T - np.eye(len(basis))).max(initial=0.0)
    if ortho > CHECK_TOL:
        raise InvalidCache(f"basis is not orthonormal (max |<W_i, W_j> - delta_ij| = {ortho:.2e})")
    for a, b in zip(rep_in.generator_images, rep_out.generator_images):
        residual = np.abs(np.einsum("ij,kjl->kil", b, basis) - basis @ a).max(initial=0.0)
        if residual > CHECK_TOL:
            raise InvalidCache(f"basis does not intertwine a generator (max |rho_out W - W rho_in| = {residual:.2e})")


def _read(path: Path, key: str, rep_in: MatrixRep, rep_out: MatrixRep) -> np.ndarray:
    with np.load(path, allow_pickle=False) as data:
        if set(data.files) != {"basis", "meta"}:
            raise InvalidCache(f"entries {sorted(data.files)}, expected ['basis', 'meta']")
        basis, meta = data["basis"], json.loads(str(data["meta"]))
    if meta.get("key") != key or meta.get("solver") != SOLVER_VERSION:
        raise InvalidCache("written for another problem or solver version")
    if meta.get("digest") != digest([basis]):
        raise InvalidCache("checksum mismatch (corrupted file)")
    check_cached_basis(basis, rep_in, rep_out)
    return basis


def _write(path: Path, key: str, basis: np.ndarray) -> None:
    meta = json.dumps({"key": key, "solver": SOLVER_VERSION, "digest": digest([basis])})
    try:
        atomic_write(path, lambda fh: np.savez(fh, basis=basis, meta=np.array(meta)))
    except OSError:
        pass  # read-only home or full disk: the cache is an optimisation only


def solve_intertwiners(gens_in: np.ndarray, gens_out: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``(k, d_out, d_in)`` of ``{W : out_s W = W in_s}`` for paired generator images.

    ``gens_in`` ``(m, d_in, d_in)``, ``gens_out`` ``(m, d_out, d_out)``; orthonormal in the Frobenius
    inner product.  No caching (see :func:`intertwiner_basis`).
    """
    d_in, d_out = gens_in.shape[-1], gens_out.shape[-1]
    eye_in, eye_out = np.eye(d_in), np.eye(d_out)
    gram = np.zeros((d_out * d_in, d_out * d_in))
    for a, b in zip(gens_in, gens_out):
        c = np.kron(b, eye_in) - np.kron(eye_out, a.T)
        gram += c.T @ c
    values, vectors = np.linalg.eigh(gram)
    basis = vectors[:, values < EIG_TOL * max(1.0, len(gens_in))]
    return np.ascontiguousarray(basis.T.reshape(-1, d_out, d_in))


def intertwiner_basis(rep_in: MatrixRep, rep_out: MatrixRep, *, use_cache: bool = True) -> np.ndarray:
    """Orthonormal basis ``(k, rep_out.size, rep_in.size)`` of ``Hom_G(rep_in, rep_out)``, cached.

    ``k`` is ``dim Hom_G(rep_in, rep_out) = (1/|G|) sum_g chi_in(g) chi_out(g)``.
    """
    if rep_in.group is not rep_out.group:
        raise ValueError("intertwiner_basis: representations of different groups")
    if not use_cache:
        return solve_intertwiners(rep_in.generator_images, rep_out.generator_images)
    key = problem_key(rep_in, rep_out)
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_path(rep_in, rep_out)
    basis = read_validated(path, lambda p: _read(p, key, rep_in, rep_out), what="matrix backend intertwiner cache")
    if basis is None:
        basis = solve_intertwiners(rep_in.generator_images, rep_out.generator_images)
        _write(path, key, basis)
    _MEMORY[key] = basis
    return basis


def hom_dimension(rep_in: MatrixRep, rep_out: MatrixRep) -> int:
    """``dim Hom_G(rep_in, rep_out)`` from the solver."""
    return int(intertwiner_basis(rep_in, rep_out).shape[0])


def character_hom_dimension(rep_in: MatrixRep, rep_out: MatrixRep) -> int:
    """``(1/|G|) sum_g chi_in(g) chi_out(g)``: the same number from character theory (real reps)."""
    value = float(np.dot(rep_in.character, rep_out.character)) / rep_in.group.order
    return int(round(value))
