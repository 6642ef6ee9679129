"""Completeness: does a kernel reach every value its symmetry allows at a point?

At a point ``x`` the constraint ``K(h x) = rho_out(h) K(x) rho_in(h)^-1`` only restricts ``K(x)`` by
the stabiliser ``H = {h : h x = x}``: ``K(x)`` must lie in the commutant
``{M : rho_out(h) M rho_in(h)^-1 = M for all h in H}`` (``rho_in(h)^-1 = rho_in(h)^T`` for orthogonal
representations; for a non-compact group such as the Lorentz group they differ).  A complete kernel
family reaches all of it: the span of ``K(x)`` over random initialisations (:func:`kernel_span_rank`)
has the commutant's dimension (:func:`commutant_dimension`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..core.group import Group, GroupElements
from ..core.representation import FieldType, tensor_matrices
from ._verified import VerifiedActions

__all__ = ["commutant_dimension", "finite_stabiliser", "kernel_span_rank", "stabiliser_on_axis"]


def kernel_span_rank(
    build: Callable[[], torch.nn.Module],
    pos: torch.Tensor,
    attr: torch.Tensor | None = None,
    *,
    n_inits: int = 32,
    rtol: float = 1e-6,
) -> int:
    """Dimension of the span of ``K(pos)`` over ``n_inits`` random initialisations.

    ``build()`` returns a freshly initialised :class:`ImplicitKernel` (or backend MLP taking
    ``(pos, attr)``); ``pos`` is ``(1, n)``.  Seeds ``0 .. n_inits - 1`` are set with
    ``torch.manual_seed`` before each ``build()``.  Compare the result with
    :func:`commutant_dimension` of the stabiliser of ``pos``.
    """
    values = []
    for seed in range(n_inits):
        torch.manual_seed(seed)
        module = build().to(torch.float64)
        with torch.no_grad():
            values.append(module(pos.to(torch.float64), attr).reshape(-1))
    stacked = torch.stack(values)
    sv = torch.linalg.svdvals(stacked)
    return int((sv > rtol * sv[0]).sum()) if sv.numel() and sv[0] > 0 else 0


def commutant_dimension(stabiliser: GroupElements, out_type: FieldType, in_type: FieldType) -> int:
    """``dim {M : rho_out(h) M rho_in(h)^-1 = M for all h}`` for the given (generating) elements.

    The matrices are verified first (:class:`~steerable.testing._verified.VerifiedActions`); row-major
    ``vec M`` moves by ``kron(rho_out(h), rho_in(h)^-T)``.
    """
    if len(stabiliser) == 0:
        return out_type.size * in_type.size
    actions = VerifiedActions(stabiliser.group, stabiliser)
    rho = tensor_matrices(actions.field(out_type), actions.field(in_type, contragredient=True))
    eye = torch.eye(out_type.size * in_type.size, dtype=torch.float64)
    rank = int(torch.linalg.matrix_rank(torch.cat(list(rho - eye)), atol=1e-8))
    return out_type.size * in_type.size - rank


def finite_stabiliser(group: Group, point: torch.Tensor, atol: float = 1e-8) -> GroupElements:
    """Elements of a finite group fixing ``point`` ``(n,)``."""
    els = group.elements()
    keep = ((els.matrices @ point.to(torch.float64)) - point.to(torch.float64)).norm(dim=-1) < atol
    index = torch.nonzero(keep).flatten().tolist()
    return group.elements_from_matrices(els.matrices[index])


def _candidates(dim: int) -> torch.Tensor:
    """Generators of the stabiliser of ``e_n`` (the last axis) in ``O(n)``, ``n`` = 2 or 3.

    2D: the mirror ``y -> -y``.  3D: rotations about ``z`` by 0.7 and 2.1 rad (incommensurate with
    pi: together they generate a dense subgroup of the rotations about ``z``, whose commutant is
    that of all of them) and two mirrors through planes containing ``z`` (at 0 and 0.3 rad).
    """
    if dim == 2:
        return torch.tensor([[[-1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)  # fixes e_2 = (0, 1)
    mats = []
    for angle in (0.7, 2.1):
        c, s = math.cos(angle), math.sin(angle)
        mats.append(torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64))
    for angle in (0.0, 0.3):
        u = torch.tensor([-math.sin(angle), math.cos(angle), 0.0], dtype=torch.float64)  # mirror normal
        mats.append(torch.eye(3, dtype=torch.float64) - 2 * torch.outer(u, u))
    return torch.stack(mats)


def stabiliser_on_axis(group: Group) -> tuple[torch.Tensor, GroupElements]:
    """A point on the last coordinate axis and (generators of) its stabiliser in ``group``.

    For a finite group: every element fixing ``e_n`` (:func:`finite_stabiliser`).  For a
    continuous group on ``R^2`` or ``R^3``: the identity and those of the generators of the
    stabiliser of ``e_n`` in ``O(n)`` (see :func:`_candidates`) that the group contains
    (``elements_from_matrices`` accepts them).  This is the whole stabiliser for every closed
    subgroup of ``O(2)`` / ``O(3)`` whose rotations, if any, are about the last axis or all
    rotations (SO(2), O(2) on R^2 and about z on R^3, SO(3), O(3)).

    Raises ``ValueError`` for a continuous group on another dimension or one that is not Euclidean
    (``group.is_euclidean()`` false, e.g. ``O(1,2)``).
    """
    point = torch.zeros(group.dim, dtype=torch.float64)
    point[-1] = 1.0
    if group.order is not None:
        return point, finite_stabiliser(group, point)
    if group.dim not in (2, 3):
        raise ValueError(f"stabiliser_on_axis: no stabiliser generators known for a continuous group on R^{group.dim}")
    if not group.is_euclidean():
        raise ValueError(
            f"stabiliser_on_axis: no stabiliser generators known for {group!r}, which preserves an indefinite "
            "form (its stabilisers contain boosts, which the candidates here, rotations and mirrors, miss)"
        )
    accepted = [torch.eye(group.dim, dtype=torch.float64)]
    for mat in _candidates(group.dim):
        try:
            group.elements_from_matrices(mat[None])
        except ValueError:
            continue
        accepted.append(mat)
    return point, group.elements_from_matrices(torch.stack(accepted))
