"""The real irreducible representations of a finite matrix group, found numerically.

Method: a symmetric element ``S`` of the commutant of a representation commutes with every
``rho(g)``, so its eigenspaces are invariant subspaces.  For an irreducible real representation the
symmetric elements of the commutant (``R``, ``C`` or ``H``) are multiples of the identity, so a piece
is irreducible exactly when a random symmetric commutant element is scalar on it.  Starting from the
regular representation (which contains every irrep) we split recursively, then keep one piece per
character (real irreps are told apart by their characters).  Deterministic (fixed seed).
"""

from __future__ import annotations

import numpy as np

from .group import MatrixGroup, MatrixRep
from .solver import solve_intertwiners


def _split(
    table: np.ndarray, gen_index: np.ndarray, rng: np.random.Generator, basis: np.ndarray | None = None
) -> list[np.ndarray]:
    """Split the representation ``table`` ``(N, d, d)`` into irreducible pieces (their tables).

    ``basis`` ``(k, d, d)`` spans the commutant when known in closed form; else it is solved for.
    """
    d = table.shape[-1]
    if d == 1:
        return [table]
    if basis is None:
        gens = table[gen_index]
        basis = solve_intertwiners(gens, gens)  # the commutant, (k, d, d)
    sym = basis + basis.transpose(0, 2, 1)
    s = np.einsum("k,kij->ij", rng.standard_normal(len(basis)), sym)
    values, vectors = np.linalg.eigh(s)
    scale = max(1.0, float(np.abs(values).max()))
    # Cluster sorted eigenvalues; a generic draw separates distinct pieces by O(1) gaps.
    cuts = np.flatnonzero(np.diff(values) > 1e-6 * scale) + 1
    groups = np.split(np.arange(d), cuts)
    if len(groups) == 1:
        return [table]  # every symmetric commutant element is scalar: irreducible
    pieces = []
    for idx in groups:
        q = vectors[:, idx]  # orthonormal basis of an invariant subspace
        pieces.extend(_split(np.einsum("ia,nij,jb->nab", q, table, q), gen_index, rng))
    return pieces


def real_irreps(group: MatrixGroup) -> list[MatrixRep]:
    """One representative of every real irrep of ``group``: trivial first, then by size.

    The trivial, ``det`` and standard representations are reused (same objects) when irreducible,
    so that field types built from either compare equal.  Checked: ``sum_i d_i^2 / e_i = |G|`` with
    ``e_i = <chi_i, chi_i>`` the dimension of the irrep's commutant (1, 2 or 4).
    """
    rng = np.random.default_rng(0)
    # The commutant of the left regular representation is spanned by the right regular one,
    # R(g) e_h = e_{h g^-1}: no solve needed for the (large) first split.
    n = group.order
    right = np.zeros((n, n, n))
    right[np.arange(n)[:, None], group.mult[:, group.inverse].T, np.arange(n)[None, :]] = 1.0
    pieces = _split(group.regular_rep().table, group.gen_index, rng, basis=right)
    known = [group.trivial_rep(), group.det_rep(), group.standard_rep()]
    reps: list[MatrixRep] = []
    chars: list[np.ndarray] = []
    for table in sorted(pieces, key=lambda t: t.shape[-1]):
        char = np.trace(table, axis1=1, axis2=2)
        if any(np.allclose(char, c, atol=1e-6) for c in chars):
            continue
        chars.append(char)
        same = [r for r in known if r.size == table.shape[-1] and np.allclose(r.character, char, atol=1e-6)]
        if same and same[0] not in reps:
            reps.append(same[0])
        else:
            # Round entries that are integers up to round-off, for prettier (and exactly) integer irreps.
            table = np.where(np.abs(table - np.round(table)) < 1e-12, np.round(table), table)
            reps.append(MatrixRep(group, "irrep", table, check=False))
    total = sum(r.size**2 / round(float(np.dot(r.character, r.character)) / group.order) for r in reps)
    if abs(total - group.order) > 1e-6:
        raise RuntimeError(f"irreps of {group.name}: decomposition failed (sum d^2/e = {total} != {group.order})")
    reps.sort(key=lambda r: (not r.is_trivial, r.size))
    for i, rep in enumerate(reps):
        if rep not in known:
            rep.name = f"irrep{i}"  # position in the returned list: stable and unique
    return reps
