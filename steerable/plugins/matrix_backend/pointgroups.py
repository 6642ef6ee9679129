"""The 32 crystallographic point groups of R^3 and the 10 of R^2, by Hermann–Mauguin symbol.

Settings (Cartesian coordinates, so every matrix is orthogonal):

* the principal axis (2, 3, 4, 6, -3, -4, -6) is z; monoclinic ``2``, ``m``, ``2/m``: 2-fold along z,
  mirror perpendicular to z;
* orthorhombic and tetragonal: the secondary 2-folds/mirror normals along x and y (tetragonal
  tertiary ones along the diagonals; ``-42m``: 2-folds along x, y, mirrors normal to x±y);
* trigonal and hexagonal: the hexagonal a-axis along x, b at 120° in the xy plane; ``32`` has a
  2-fold along x, ``3m`` a mirror normal to x, ``-6m2`` mirrors normal to x;
* cubic: the cubic axes are x, y, z; the 3-folds are the cube diagonals (``(x, y, z) -> (z, x, y)``);
* 2D: rotations about the origin; ``m`` mirrors x -> -x; ``{N}mm`` adds the mirror y -> -y (about the
  x axis, as escnn's ``D{N}``), ``3m`` too.

``POINT_GROUPS_3D`` / ``POINT_GROUPS_2D`` map a symbol to ``(generators, order)``.
"""

from __future__ import annotations

import math

import numpy as np


def rot_z(angle: float, dim: int = 3) -> np.ndarray:
    """Rotation by ``angle`` about z (in 2D: about the origin)."""
    c, s = math.cos(angle), math.sin(angle)
    m = np.eye(dim)
    m[:2, :2] = [[c, -s], [s, c]]
    return m


def mirror(normal: tuple[float, ...]) -> np.ndarray:
    """Reflection ``I - 2 n n^T`` through the plane (line) with unit normal ``normal``."""
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    return np.eye(len(n)) - 2.0 * np.outer(n, n)


def rot_x_pi() -> np.ndarray:
    """The 2-fold rotation about x."""
    return np.diag([1.0, -1.0, -1.0])


_I = -np.eye(3)  # inversion
_C3_111 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # 3-fold about [111]
_MX, _MY, _MZ = mirror((1, 0, 0)), mirror((0, 1, 0)), mirror((0, 0, 1))
_P = math.pi


def _table_3d() -> dict[str, tuple[list[np.ndarray], int]]:
    r = rot_z
    return {
        # triclinic
        "1": ([], 1),
        "-1": ([_I], 2),
        # monoclinic
        "2": ([r(_P)], 2),
        "m": ([_MZ], 2),
        "2/m": ([r(_P), _I], 4),
        # orthorhombic
        "222": ([r(_P), rot_x_pi()], 4),
        "mm2": ([_MX, _MY], 4),
        "mmm": ([_MX, _MY, _MZ], 8),
        # tetragonal
        "4": ([r(_P / 2)], 4),
        "-4": ([-r(_P / 2)], 4),
        "4/m": ([r(_P / 2), _I], 8),
        "422": ([r(_P / 2), rot_x_pi()], 8),
        "4mm": ([r(_P / 2), _MX], 8),
        "-42m": ([-r(_P / 2), rot_x_pi()], 8),
        "4/mmm": ([r(_P / 2), _MX, _I], 16),
        # trigonal
        "3": ([r(2 * _P / 3)], 3),
        "-3": ([-r(2 * _P / 3)], 6),
        "32": ([r(2 * _P / 3), rot_x_pi()], 6),
        "3m": ([r(2 * _P / 3), _MX], 6),
        "-3m": ([-r(2 * _P / 3), rot_x_pi()], 12),
        # hexagonal
        "6": ([r(_P / 3)], 6),
        "-6": ([-r(_P / 3)], 6),
        "6/m": ([r(_P / 3), _I], 12),
        "622": ([r(_P / 3), rot_x_pi()], 12),
        "6mm": ([r(_P / 3), _MX], 12),
        "-6m2": ([-r(_P / 3), _MX], 12),
        "6/mmm": ([r(_P / 3), _MX, _I], 24),
        # cubic
        "23": ([r(_P), _C3_111], 12),
        "m-3": ([r(_P), _C3_111, _I], 24),
        "432": ([r(_P / 2), _C3_111], 24),
        "-43m": ([-r(_P / 2), _C3_111], 24),
        "m-3m": ([r(_P / 2), _C3_111, _I], 48),
    }


def _table_2d() -> dict[str, tuple[list[np.ndarray], int]]:
    r = lambda a: rot_z(a, 2)  # noqa: E731
    my = mirror((0, 1))
    return {
        "1": ([], 1),
        "2": ([r(_P)], 2),
        "m": ([mirror((1, 0))], 2),
        "2mm": ([r(_P), my], 4),
        "3": ([r(2 * _P / 3)], 3),
        "3m": ([r(2 * _P / 3), my], 6),
        "4": ([r(_P / 2)], 4),
        "4mm": ([r(_P / 2), my], 8),
        "6": ([r(_P / 3)], 6),
        "6mm": ([r(_P / 3), my], 12),
    }


POINT_GROUPS_3D = _table_3d()
POINT_GROUPS_2D = _table_2d()
#: the groups whose matrices are all signed permutations (grid convolutions exact for all elements)
LATTICE_EXACT_3D = (
    "1",
    "-1",
    "2",
    "m",
    "2/m",
    "222",
    "mm2",
    "mmm",
    "4",
    "-4",
    "4/m",
    "422",
    "4mm",
    "-42m",
    "4/mmm",
    "23",
    "m-3",
    "432",
    "-43m",
    "m-3m",
)
LATTICE_EXACT_2D = ("1", "2", "m", "2mm", "4", "4mm")


def build_point_group(symbol: str, dim: int):
    """The point group ``symbol`` (a key of the tables) on ``R^dim`` as a :class:`~.group.MatrixGroup`."""
    from .group import group_from_generators

    table = POINT_GROUPS_3D if dim == 3 else POINT_GROUPS_2D if dim == 2 else {}
    if symbol not in table:
        raise ValueError(f"point group {symbol!r} is not defined on R^{dim}")
    gens, order = table[symbol]
    group = group_from_generators(gens, symbol, dim=dim)
    assert group.order == order, (symbol, group.order, order)  # the table documents the order
    return group


def build_cyclic(dim: int, N: int):
    """``C_N``: rotations by ``2πk/N`` (on R^3 about z), the convention of the escnn backend."""
    from .group import group_from_generators

    if N < 1:
        raise ValueError(f"C{N}: N must be >= 1")
    return group_from_generators([rot_z(2 * _P / N, dim)], f"C{N}", dim=dim)


def build_dihedral(dim: int, N: int):
    """``D_N``: ``C_N`` and the mirror ``y -> -y`` (on R^3: the xz plane), as the escnn backend."""
    from .group import group_from_generators

    if N < 1:
        raise ValueError(f"D{N}: N must be >= 1")
    return group_from_generators([rot_z(2 * _P / N, dim), mirror((0, 1) if dim == 2 else (0, 1, 0))], f"D{N}", dim=dim)
