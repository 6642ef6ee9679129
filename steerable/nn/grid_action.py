"""The group's action on grid signals: lattice symmetries and how they move a sampled field."""

from __future__ import annotations

import itertools

import torch

from ..core.group import Group, GroupElements
from ..core.representation import FieldType

__all__ = ["transform_grid", "lattice_elements"]


def transform_grid(x: torch.Tensor, field_type: FieldType, element: GroupElements) -> torch.Tensor:
    """Act on a grid signal ``(B, C, *spatial)``: ``(g.x)(p) = rho(g) x(g^{-1} p)``.

    ``element`` must be one lattice symmetry (a signed permutation matrix); all spatial sizes must
    agree where the permutation exchanges axes.  Coordinates are centred on the grid centre.
    """
    mat = element.matrices[0].round()
    dim = mat.shape[0]
    spatial = x.shape[2:]
    if len(spatial) != dim:
        raise ValueError(f"transform_grid: expected {dim} spatial axes, got shape {tuple(x.shape)}")
    signed_permutation = torch.equal(mat.abs().sum(0), torch.ones(dim, dtype=mat.dtype))
    if not signed_permutation or (element.matrices[0] - mat).abs().max() > 1e-6:
        raise ValueError(f"transform_grid: {mat.tolist()} is not a lattice symmetry (signed permutation)")
    sizes = torch.tensor(spatial, dtype=torch.float64)
    coords = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in spatial], indexing="ij"), -1)
    centred = coords - (sizes - 1) / 2
    source = centred @ mat + (sizes - 1) / 2  # rows: g^{-1} p = M^T p
    index = source.round().long()
    if (index < 0).any() or (index >= sizes.long()).any():
        raise ValueError(f"transform_grid: spatial shape {tuple(spatial)} is not symmetric under {mat.tolist()}")
    flat = torch.zeros(index.shape[:-1], dtype=torch.long)
    for axis in range(dim):
        flat = flat * spatial[axis] + index[..., axis]
    moved = x.flatten(2)[:, :, flat.reshape(-1)].reshape(x.shape)
    return field_type.transform(moved, element, dim=1)


def lattice_elements(group: Group) -> GroupElements:
    """The elements of ``group`` whose matrices are signed permutations (they map grids to grids)."""
    dim = group.dim
    mats = []
    for perm in itertools.permutations(range(dim)):
        for signs in itertools.product((1.0, -1.0), repeat=dim):
            mat = torch.zeros(dim, dim, dtype=torch.float64)
            mat[list(perm), list(range(dim))] = torch.tensor(signs, dtype=torch.float64)
            mats.append(mat)
    accepted = []
    for mat in mats:
        try:
            group.elements_from_matrices(mat[None])
        except ValueError:
            continue
        accepted.append(mat)
    return group.elements_from_matrices(torch.stack(accepted))
