"""Equivariant linear maps by solving the intertwiner constraint numerically, cached on disk.

``Hom_G(rho_in, rho_out) = {W (d_out x d_in) : rho_out(s) W = W rho_in(s) for every generator s}``.
With ``vec`` row-major, ``vec(A W B) = kron(A, B^T) vec W``, so each generator contributes the
constraint matrix ``C_s = kron(rho_out(s), I) - kron(I, rho_in(s)^T)``; the solution space is the
null space of the stacked ``C_s``, found as the eigenvectors of ``sum_s C_s^T C_s`` with eigenvalue
~0 (the same null space, a ``d x d`` problem instead of a ``k d x d`` one).  Constraints on the
generators suffice: ``W`` then commutes with every product of them.

The basis is cached in memory and on disk under ``$STEERABLE_CACHE`` (default
``~/.cache/steerable``)``/matrix/``, keyed by a hash of the generator images of both
representations, so it is computed once per machine.  An unwritable cache directory is skipped.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .group import MatrixRep

_MEMORY: dict[str, np.ndarray] = {}
#: null-space threshold on the eigenvalues of sum_s C_s^T C_s (entries of C_s are O(1))
EIG_TOL = 1e-9


def cache_dir() -> Path:
    """Where bases are stored: ``$STEERABLE_CACHE/matrix`` or ``~/.cache/steerable/matrix``."""
    root = os.environ.get("STEERABLE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "steerable")
    return Path(root) / "matrix"


def _key(rep_in: MatrixRep, rep_out: MatrixRep) -> str:
    digest = hashlib.sha256(b"hom-v1")
    for arr in (rep_in.group.generators, rep_in.generator_images, rep_out.generator_images):
        digest.update(str(arr.shape).encode())
        digest.update(np.round(arr, 9).tobytes())  # round so that round-off does not change the key
    return digest.hexdigest()[:32]


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
    key = _key(rep_in, rep_out)
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / f"hom-{key}.npy"
    basis = None
    if path.is_file():
        try:
            basis = np.load(path)
            if basis.ndim != 3 or basis.shape[1:] != (rep_out.size, rep_in.size):
                basis = None  # stale or foreign file: recompute
        except (OSError, ValueError):
            basis = None
    if basis is None:
        basis = solve_intertwiners(rep_in.generator_images, rep_out.generator_images)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, basis)
            os.replace(tmp, path)  # atomic: parallel processes never read half a file
        except OSError:
            pass  # read-only home or full disk: the cache is an optimisation only
    _MEMORY[key] = basis
    return basis


def hom_dimension(rep_in: MatrixRep, rep_out: MatrixRep) -> int:
    """``dim Hom_G(rep_in, rep_out)`` from the solver."""
    return int(intertwiner_basis(rep_in, rep_out).shape[0])


def character_hom_dimension(rep_in: MatrixRep, rep_out: MatrixRep) -> int:
    """``(1/|G|) sum_g chi_in(g) chi_out(g)``: the same number from character theory (real reps)."""
    value = float(np.dot(rep_in.character, rep_out.character)) / rep_in.group.order
    return int(round(value))
