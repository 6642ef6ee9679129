"""Bonds of a neutral QM9 molecule from its geometry: connectivity from covalent radii, Kekulé bond orders.

* Connectivity: atoms ``i, j`` are bonded when ``|pos_i - pos_j| < TOLERANCE * (r_i + r_j)`` with the
  single-bond covalent radii :data:`COVALENT_RADII` (Cordero et al., Dalton Trans. 2008, Å).  QM9's
  geometries are DFT equilibria: over every 13th molecule (10,064), the ratio ``d / (r_i + r_j)`` of all
  atom pairs has a gap between 1.14 and 1.16 (bonds up to 1.14, the longest strained cage bonds; the
  closest non-bonded pairs, e.g. bridgeheads of bicyclo[1.1.1] cages, from 1.16), so the cut is 1.15.
* Orders: every atom takes its neutral valence (:data:`VALENCE`: H 1, C 4, N 3, O 2, F 1); the missing
  valence ``VALENCE - degree`` is shared out over bonds as extra orders (a Kekulé structure; aromatic
  rings come out as alternating single/double bonds, as in the SDF files PyG's ``QM9`` reads).  An
  exhaustive search takes the most constrained atom first and its shortest bonds first.  Molecules with
  no neutral Kekulé structure (charge-separated ones, e.g. an isocyanide's N+≡C-) keep a partial
  assignment and are reported by :func:`perceive_bonds` (``complete=False``).

Everything is numpy and plain Python (no rdkit).
"""

from __future__ import annotations

import numpy as np

__all__ = ["COVALENT_RADII", "VALENCE", "TOLERANCE", "connectivity", "bond_orders", "perceive_bonds"]

#: single-bond covalent radii in Å by atomic number (Cordero et al. 2008; C: sp3)
COVALENT_RADII = {1: 0.31, 6: 0.76, 7: 0.71, 8: 0.66, 9: 0.57}
#: neutral valence by atomic number
VALENCE = {1: 1, 6: 4, 7: 3, 8: 2, 9: 1}
#: search steps per molecule before giving up (a neutral Kekulé structure is found in a few steps)
MAX_STEPS = 2000
#: bonded when the distance is below TOLERANCE times the sum of the covalent radii
TOLERANCE = 1.15


def connectivity(z: np.ndarray, pos: np.ndarray, tolerance: float = TOLERANCE) -> np.ndarray:
    """Bonded pairs ``(E, 2)`` with ``i < j`` in row-major order, from atomic numbers ``z (n,)`` and
    positions ``pos (n, 3)`` in Å."""
    try:
        r = np.array([COVALENT_RADII[int(a)] for a in z])
    except KeyError as exc:
        raise ValueError(f"no covalent radius for atomic number {exc.args[0]} (QM9 has H, C, N, O, F)") from None
    d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    i, j = np.nonzero(np.triu(d < tolerance * (r[:, None] + r[None, :]), k=1))
    return np.stack([i, j], 1)


def bond_orders(z: np.ndarray, pairs: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, bool]:
    """Bond orders ``(E,)`` in {1, 2, 3} for bonded ``pairs (E, 2)`` of lengths ``lengths (E,)``, and whether
    every atom reached its neutral valence (see the module docstring)."""
    n, e = len(z), len(pairs)
    free = np.array([VALENCE[int(a)] for a in z]) - np.bincount(pairs.ravel(), minlength=n)
    order = np.ones(e, dtype=np.int64)
    if e == 0 or not (free > 0).any():
        return order, bool((free == 0).all())
    incident: list[list[int]] = [[] for _ in range(n)]
    # relative length: a bond much shorter than its single-bond length is the likelier multiple bond
    rel = lengths / np.array([COVALENT_RADII[int(z[a])] + COVALENT_RADII[int(z[b])] for a, b in pairs])
    for k in np.argsort(rel, kind="stable"):
        incident[pairs[k, 0]].append(int(k))
        incident[pairs[k, 1]].append(int(k))
    best = [order.copy(), int(np.clip(free, 0, None).sum())]
    budget = [MAX_STEPS]

    def candidates(a: int) -> list[int]:
        return [k for k in incident[a] if order[k] < 3 and free[pairs[k, 0] + pairs[k, 1] - a] > 0]

    def search() -> bool:
        open_atoms = np.nonzero(free > 0)[0]
        left = int(free[open_atoms].sum())
        if left < best[1]:
            best[0], best[1] = order.copy(), left
        if left == 0:
            return True
        budget[0] -= 1
        if budget[0] < 0:
            return False
        cands = {int(a): candidates(int(a)) for a in open_atoms}
        a = min(cands, key=lambda b: len(cands[b]))
        for k in cands[a]:
            i, j = pairs[k]
            order[k] += 1
            free[i] -= 1
            free[j] -= 1
            if search():
                return True
            order[k] -= 1
            free[i] += 1
            free[j] += 1
        return False

    if search():
        return order, bool((free == 0).all())
    return best[0], False


def perceive_bonds(z: np.ndarray, pos: np.ndarray, tolerance: float = TOLERANCE) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(pairs (E, 2), orders (E,), complete)`` of a molecule: :func:`connectivity` then :func:`bond_orders`."""
    pairs = connectivity(z, pos, tolerance)
    lengths = np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=-1) if len(pairs) else np.zeros(0)
    orders, complete = bond_orders(z, pairs, lengths)
    return pairs, orders, complete
