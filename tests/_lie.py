"""Transformations and representation matrices built from the documented conventions, for the lie-backend
tests (never taken from the backend): rotations, boosts, reflections, minors, duals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch


def J(n: int, i: int, j: int) -> np.ndarray:
    """The rotation generator in the (i, j) plane: ``E_ij - E_ji``."""
    m = np.zeros((n, n))
    m[i, j], m[j, i] = 1.0, -1.0
    return m


def eta(p: int, q: int) -> torch.Tensor:
    """``diag(+1 (p times), -1 (q times))``: the form ``O(p,q)`` preserves (the issue's convention)."""
    return torch.diag(torch.tensor([1.0] * p + [-1.0] * q, dtype=torch.float64))


def rotation(n: int, i: int, j: int, angle: float) -> torch.Tensor:
    """Rotation by ``angle`` in the (i, j) plane: ``e_i -> cos e_i + sin e_j``."""
    g = torch.eye(n, dtype=torch.float64)
    c, s = math.cos(angle), math.sin(angle)
    g[i, i], g[i, j], g[j, i], g[j, j] = c, -s, s, c
    return g


def boost(n: int, i: int, j: int, rapidity: float) -> torch.Tensor:
    """Boost of rapidity ``rapidity`` mixing coordinate ``i`` (positive in eta) with ``j`` (negative):
    ``[[cosh, sinh], [sinh, cosh]]`` in the (i, j) plane."""
    g = torch.eye(n, dtype=torch.float64)
    c, s = math.cosh(rapidity), math.sinh(rapidity)
    g[i, i], g[i, j], g[j, i], g[j, j] = c, s, s, c
    return g


def flip(n: int, *axes: int) -> torch.Tensor:
    """The reflection negating the given coordinates."""
    d = torch.ones(n, dtype=torch.float64)
    d[list(axes)] = -1.0
    return torch.diag(d)


def minors(g: torch.Tensor, k: int) -> torch.Tensor:
    """``(N, C(n,k), C(n,k))``: entry ``(I, J)`` = ``det g[I, J]``, ``I``, ``J`` increasing, lexicographic."""
    combos = list(itertools.combinations(range(g.shape[-1]), k))
    out = torch.empty(g.shape[0], len(combos), len(combos), dtype=g.dtype)
    for a, rows in enumerate(combos):
        for b, cols in enumerate(combos):
            out[:, a, b] = torch.linalg.det(g[:, list(rows)][:, :, list(cols)])
    return out


def convention(kind: str, g: torch.Tensor) -> torch.Tensor:
    """The documented matrices of a representation named ``kind`` on elements ``g`` ``(N, n, n)``."""
    if kind == "s":
        return torch.ones(g.shape[0], 1, 1, dtype=g.dtype)
    if kind == "v":
        return g
    if kind == "dual":
        return torch.linalg.inv(g).mT
    if kind == "det":
        return torch.linalg.det(g)[:, None, None]
    if kind.startswith("ext"):
        return minors(g, int(kind[3:]))
    raise KeyError(kind)


def field_matrices(kinds: list[str], g: torch.Tensor) -> torch.Tensor:
    """Block-diagonal ``(N, C, C)``: the conventions of ``kinds`` in order."""
    return torch.stack([torch.block_diag(*[convention(k, g[i : i + 1])[0] for k in kinds]) for i in range(len(g))])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())
