"""The axial subgroups of O(3) by Schoenflies name, defined from scratch for the tests (not from the code
under test): an element is an orthogonal 3x3 matrix keeping the z axis, ``M = B ⊕ s`` with ``B`` in O(2)
acting on ``(x, y)`` and ``s = ±1`` on ``z``; with ``b = det B`` the groups allow

* Cs: ``I`` and ``diag(1, 1, -1)``;  Ci: ``I`` and ``-I``;
* Cinf: ``b = s = 1``;  Cinfv: ``s = 1``;  Dinf: ``b s = det M = 1``;  Cinfh: ``b = 1``;  Dinfh: all.
"""

from __future__ import annotations

import math

import torch

NAMES = ["Cs", "Ci", "Cinf", "Cinfv", "Dinf", "Cinfh", "Dinfh"]
#: the components ``(b, s)`` each group's definition allows (module docstring)
COMPONENTS = {
    "Cs": {(1, 1), (1, -1)},
    "Ci": {(1, 1), (1, -1)},
    "Cinf": {(1, 1)},
    "Cinfv": {(1, 1), (-1, 1)},
    "Dinf": {(1, 1), (-1, -1)},
    "Cinfh": {(1, 1), (1, -1)},
    "Dinfh": {(1, 1), (-1, 1), (1, -1), (-1, -1)},
}
FINITE = {"Cs": [torch.eye(3), torch.diag(torch.tensor([1.0, 1.0, -1.0]))], "Ci": [torch.eye(3), -torch.eye(3)]}


def rot_z(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def component_element(b: int, s: int, angle: float) -> torch.Tensor:
    """``B ⊕ s`` with ``B`` the rotation by ``angle`` (``b = 1``) or it after the mirror ``y -> -y`` (``b = -1``)."""
    m = rot_z(angle) @ torch.diag(torch.tensor([1.0, float(b), 1.0], dtype=torch.float64))
    m[2, 2] = float(s)
    return m


def in_group(name: str, m: torch.Tensor, tol: float = 1e-9) -> bool:
    """Whether ``m`` satisfies the definition of group ``name`` (module docstring)."""
    m = m.to(torch.float64)
    if (m.T @ m - torch.eye(3, dtype=torch.float64)).abs().max() > tol:
        return False
    if m[2, :2].abs().max() > tol or m[:2, 2].abs().max() > tol:  # z axis kept
        return False
    if name in FINITE:
        return any((m - e.to(m)).abs().max() <= tol for e in FINITE[name])
    b, s = round(float(torch.linalg.det(m[:2, :2]))), round(float(m[2, 2]))
    return (b, s) in COMPONENTS[name]


def definition_elements(name: str) -> torch.Tensor:
    """One matrix of every component of the group, at irrational-looking angles (built from the definition)."""
    if name in FINITE:
        return torch.stack(FINITE[name]).to(torch.float64)
    angles = iter([0.83, 2.41, 4.07, 5.59])
    return torch.stack([component_element(b, s, next(angles)) for b, s in sorted(COMPONENTS[name])])
