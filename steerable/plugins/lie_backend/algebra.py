"""Lie algebras as lists of matrices: the ``so(n)`` and ``so(p,q)`` bases, closure checks, invariant quadratic forms.

All arrays are float64 numpy: an algebra is ``(k, n, n)`` (basis ``A_1 .. A_k``), discrete generators
``(m, n, n)``.  The group they generate acts on column vectors of ``R^n``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch

#: relative tolerance of the closure, normaliser and invariance checks on user-given generators
CHECK_TOL = 1e-8


def as_matrices(mats: Sequence | np.ndarray | torch.Tensor, what: str, n: int | None = None) -> np.ndarray:
    """A stack of square matrices (tensor, array, list of either) as float64 ``(k, d, d)``; ``(0, n, n)`` when empty."""
    if isinstance(mats, torch.Tensor):
        arr = mats.detach().cpu().to(torch.float64).numpy()
    elif isinstance(mats, np.ndarray):
        arr = mats.astype(np.float64)
    else:
        items = [m.detach().cpu().to(torch.float64).numpy() if isinstance(m, torch.Tensor) else m for m in mats]
        if not items:
            return np.zeros((0, n or 0, n or 0))
        arr = np.asarray(items, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise ValueError(f"{what}: expected square matrices (k, n, n), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: matrices contain NaN or infinite entries")
    if n is not None and len(arr) and arr.shape[-1] != n:
        raise ValueError(f"{what}: expected {n}x{n} matrices, got {arr.shape[-1]}x{arr.shape[-1]}")
    return arr


def so_basis(n: int) -> np.ndarray:
    """``L_ij = E_ij - E_ji`` for ``i < j`` in lexicographic order: ``(n(n-1)/2, n, n)``, a basis of ``so(n)``."""
    pairs = list(itertools.combinations(range(n), 2))
    basis = np.zeros((len(pairs), n, n))
    for k, (i, j) in enumerate(pairs):
        basis[k, i, j], basis[k, j, i] = 1.0, -1.0
    return basis


def signature_form(p: int, q: int) -> np.ndarray:
    """``eta = diag(+1 (p times), -1 (q times))``: the form ``O(p,q)`` preserves, in this coordinate order."""
    return np.diag(np.concatenate([np.ones(p), -np.ones(q)]))


def so_pq_basis(p: int, q: int) -> np.ndarray:
    """Basis ``(n(n-1)/2, n, n)`` of ``so(p,q) = {A : A^T eta + eta A = 0}``, ``n = p + q``, pairs ``i < j``
    lexicographic: ``E_ij - E_ji`` (a rotation) when ``i``, ``j`` are both among the first ``p`` or both among
    the last ``q`` coordinates, ``E_ij + E_ji`` (a boost) when ``i < p <= j``.  ``q = 0`` gives :func:`so_basis`."""
    basis = so_basis(p + q)
    for k, (i, j) in enumerate(itertools.combinations(range(p + q), 2)):
        if i < p <= j:
            basis[k, j, i] = 1.0
    return basis


def digest(*arrays: np.ndarray) -> str:
    """A short hash of matrices rounded far above round-off (identity keys, cache keys)."""
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(np.round(np.asarray(arr, dtype=np.float64), 9) + 0.0)  # + 0.0: no -0.0
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def _span_residual(basis_flat: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Relative distance of each matrix ``(m, n, n)`` from the span of rows ``basis_flat`` ``(k, n^2)``."""
    flat = mats.reshape(len(mats), -1)
    rest = flat - (flat @ basis_flat.T) @ basis_flat
    return np.linalg.norm(rest, axis=1) / np.maximum(np.linalg.norm(flat, axis=1), 1.0)


def check_algebra(algebra: np.ndarray, discrete: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``algebra`` is a linearly independent basis closed under commutators and
    the ``discrete`` generators are invertible and normalise it (``h A h^-1`` in the span)."""
    k = len(algebra)
    if k:
        sv = np.linalg.svd(algebra.reshape(k, -1), compute_uv=False)
        if sv[-1] < CHECK_TOL * max(sv[0], 1.0):
            raise ValueError(
                f"lie_algebra: the {k} generators are linearly dependent (smallest singular value {sv[-1]:.1e})"
            )
        q = np.linalg.qr(algebra.reshape(k, -1).T)[0].T  # orthonormal rows spanning the algebra
        for i, j in itertools.combinations(range(k), 2):
            comm = algebra[i] @ algebra[j] - algebra[j] @ algebra[i]
            res = float(_span_residual(q, comm[None])[0])
            if res > CHECK_TOL:
                raise ValueError(
                    f"lie_algebra: the algebra does not close: the commutator [A_{i}, A_{j}] is not in the span of the "
                    f"generators (relative residual {res:.2e}); add it (and its commutators) to lie_algebra"
                )
    for j, h in enumerate(discrete):
        if abs(np.linalg.det(h)) < CHECK_TOL:
            raise ValueError(f"generators: discrete generator {j} is singular")
        if k:
            conj = np.einsum("ij,kjl,lm->kim", h, algebra, np.linalg.inv(h))
            res = _span_residual(q, conj)
            if res.max() > CHECK_TOL:
                raise ValueError(
                    f"generators: discrete generator {j} does not normalise the Lie algebra "
                    f"(h A_{int(res.argmax())} h^-1 "
                    f"is not in its span, residual {res.max():.2e}): the group would not be closed"
                )


def invariant_symmetric_forms(algebra: np.ndarray, discrete: np.ndarray, n: int) -> np.ndarray:
    """Orthonormal basis ``(b, n, n)`` of the symmetric ``S`` with ``A^T S + S A = 0`` and ``h^T S h = S``."""
    eye = np.eye(n)
    rows = []
    for a in algebra:  # vec(A^T S + S A) = (kron(A^T, I) + kron(I, A^T)) vec S  (row-major vec)
        rows.append(np.kron(a.T, eye) + np.kron(eye, a.T))
    for h in discrete:  # vec(h^T S h - S)
        rows.append(np.kron(h.T, h.T) - np.eye(n * n))
    sym = np.zeros((n * n, n * (n + 1) // 2))  # symmetric matrices, parametrised by the upper triangle
    for c, (i, j) in enumerate(itertools.combinations_with_replacement(range(n), 2)):
        sym[i * n + j, c] = sym[j * n + i, c] = 1.0
    if not rows:
        null = np.eye(sym.shape[1])
    else:
        c = np.concatenate(rows) @ sym
        _, s, vt = np.linalg.svd(c)
        s = np.concatenate([s, np.zeros(vt.shape[0] - len(s))])
        null = vt[s < 1e-9 * max(1.0, s[0] if len(s) else 1.0)].T
    forms = (sym @ null).T.reshape(-1, n, n)
    if len(forms):
        flat = np.linalg.qr(forms.reshape(len(forms), -1).T)[0].T
        forms = flat.reshape(-1, n, n)
    return forms


def _canonical_sign(form: np.ndarray) -> np.ndarray:
    """``form`` times ``sqrt(n) / |form|_F``, signed so that its first non-zero diagonal entry (or, with a
    zero diagonal, its first non-zero entry) is positive, entries below ``1e-12`` set to zero:
    ``diag(1, -1, -1, -1)`` stays itself."""
    diag = np.diag(form)
    pivot = (
        diag[np.abs(diag) > 1e-9] if (np.abs(diag) > 1e-9).any() else form.reshape(-1)[np.abs(form.reshape(-1)) > 1e-9]
    )
    scale = math.sqrt(form.shape[0]) / np.linalg.norm(form)
    out = form * scale * (1.0 if pivot[0] > 0 else -1.0)
    return np.where(np.abs(out) < 1e-12, 0.0, out)  # round-off of the null space, not structure


def classify_form(algebra: np.ndarray, discrete: np.ndarray, n: int) -> np.ndarray:
    """The invariant quadratic form ``eta`` ``(n, n)`` of the group the generators generate.

    * Skew-symmetric algebra and orthogonal discrete generators (a compact group acting orthogonally):
      the identity.
    * Otherwise the symmetric ``S`` with ``A^T S + S A = 0``, ``h^T S h = S``: when they form a line, its
      element scaled to ``|eta|_F = sqrt(n)`` and signed by :func:`_canonical_sign`; when there are several, the
      same for a fixed (seeded) combination of them.  It must be nondegenerate and indefinite (a
      non-compact group, ``O(p,q)`` type).

    Raises ``ValueError`` saying what the generators preserve instead: nothing, only degenerate forms,
    or a definite form that is not the identity (a compact group in non-orthogonal coordinates).
    """
    skew = all(np.abs(a + a.T).max() <= CHECK_TOL * max(1.0, np.abs(a).max()) for a in algebra)
    orth = all(np.abs(h.T @ h - np.eye(n)).max() <= CHECK_TOL for h in discrete)
    if skew and orth:
        return np.eye(n)
    forms = invariant_symmetric_forms(algebra, discrete, n)
    if len(forms) == 0:
        raise ValueError(
            "group_from_generators: the generators preserve no nondegenerate quadratic form (no symmetric S with "
            "A^T S + S A = 0 and h^T S h = S exists): steerable needs a group preserving one"
        )
    if len(forms) == 1:
        combo = forms[0]
    else:
        combo = np.einsum("b,bij->ij", np.random.default_rng(0).normal(size=len(forms)), forms)
    values = np.linalg.eigvalsh(combo)
    if np.abs(values).min() < 1e-9 * np.abs(values).max():
        raise ValueError("group_from_generators: the generators preserve only degenerate quadratic forms")
    p, q = int((values > 0).sum()), int((values < 0).sum())
    if p and q:
        return _canonical_sign(0.5 * (combo + combo.T))
    raise ValueError(
        "group_from_generators: the group is compact but does not act orthogonally in these coordinates (the "
        "invariant form is not the identity); conjugate the generators by S^(1/2) for an invariant positive form S "
        "so that the Lie algebra is skew-symmetric and the discrete generators orthogonal"
    )


def diagonal_frame(eta: np.ndarray) -> tuple[np.ndarray, int]:
    """``(P, p)`` with ``eta = P^T diag(+1 (p times), -1 (q times)) P``: in the coordinates ``P x`` the group is a
    subgroup of the standard ``O(p,q)`` (positive directions first)."""
    values, vectors = np.linalg.eigh(eta)
    order = np.argsort(-values, kind="stable")
    values, vectors = values[order], vectors[:, order]
    return np.sqrt(np.abs(values))[:, None] * vectors.T, int((values > 0).sum())


def boost_norm(x: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Largest rapidity of algebra elements ``x`` ``(m, n, n)`` preserving ``eta``: the spectral norm of the
    symmetric part of ``P x P^-1``, where ``eta = P^T D P`` with ``D = diag(+-1)`` (in such a frame the
    algebra is ``so(p,q)``, rotations skew-symmetric, boosts symmetric).  ``(m,)``; 0 for rotations."""
    frame, _ = diagonal_frame(eta)
    y = np.einsum("ij,mjk,kl->mil", frame, x, np.linalg.inv(frame))
    return np.linalg.norm(0.5 * (y + np.swapaxes(y, 1, 2)), ord=2, axis=(1, 2))
