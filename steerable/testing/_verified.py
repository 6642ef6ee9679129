"""Representation matrices a check may trust: each one verified before it is used.

A check that transforms features with the backend's own matrices only asks the backend to agree
with itself: a backend whose ``standard_rep`` were ``det(g) * g`` (a valid representation, but not
the action on coordinates) would pass every equivariance test.  So before any matrix is used to
move features, :class:`VerifiedActions` checks the documented conventions
(:mod:`steerable.core.representation`):

* the standard representation *is* the coordinate action: ``standard_rep().matrices(g)`` equals
  ``g.matrices``, the matrices the checks use to move positions and grids;
* every representation is a homomorphism, ``rho(g h) = rho(g) rho(h)``, on sampled pairs (the
  product is built from matrices, ``group.elements_from_matrices(g.matrices @ h.matrices)``), maps
  the identity to ``I``, and gives the same matrices for elements rebuilt from their matrices;
* on a group acting orthogonally (``group.is_euclidean()``, ``eta = I``) every representation is
  real orthogonal (``rho(g)^T rho(g) = I``); on any other group (``O(p,q)``, the Lorentz group) every
  representation is invertible with a finite inverse; the trivial one is ``1``.

Deviations are measured relative to the size of the matrices compared (``max(1, |entries|)``): the
elements of a non-compact group (boosts) have entries ``~ cosh(rapidity)``, and round-off grows with
them.  Checks that need ``rho(g)^-T`` (the action on the input side of a kernel) take it from
:meth:`VerifiedActions.contragredient`: the matrices themselves on a Euclidean group (orthogonal,
verified), the transposed inverses otherwise.

A failed check raises :class:`ConventionError` (an ``AssertionError``) naming the representation,
the convention and the measured deviation.
"""

from __future__ import annotations

import torch

from ..core.group import Group, GroupElements
from ..core.representation import FieldType, Rep

__all__ = ["ConventionError", "VerifiedActions", "verify_coordinate_action", "verify_representation"]

#: largest entry-wise deviation accepted from a convention, relative to ``max(1, largest entry)`` of the
#: matrices compared; orthogonal float64 matrices (entries <= 1) have round-off ~1e-15, bounded boosts
#: ~1e-15 times their entries, and any real violation is O(1).
CONVENTION_ATOL = 1e-8


class ConventionError(AssertionError):
    """A group or representation breaks a documented convention (see :mod:`steerable.testing._verified`)."""


def _deviation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest entry of ``|a - b|`` relative to ``max(1, largest entry of b)``."""
    if not a.numel():
        return 0.0
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def verify_coordinate_action(group: Group, elements: GroupElements, atol: float = CONVENTION_ATOL) -> None:
    """Raise :class:`ConventionError` unless ``group.standard_rep()`` is the action on coordinates.

    ``elements.matrices`` ``(n, d, d)`` act on column vectors ``(x, y[, z])``; the standard
    representation must return exactly these matrices (the group's own, not e.g. ``det(g) * g``).
    """
    rep = group.standard_rep()
    mats = torch.as_tensor(rep.matrices(elements), dtype=torch.float64)
    if mats.shape != elements.matrices.shape:
        raise ConventionError(
            f"{group!r}: standard_rep() gives matrices of shape {tuple(mats.shape)}, but the group acts on "
            f"R^{group.dim} by matrices of shape {tuple(elements.matrices.shape)}"
        )
    err = _deviation(mats, elements.matrices)
    if err > atol:
        k = int((mats - elements.matrices).abs().amax((1, 2)).argmax())
        dets = torch.linalg.det(elements.matrices)[:, None, None]
        hint = " (it is det(g) * g, not g)" if _deviation(mats, dets * elements.matrices) <= atol else ""
        raise ConventionError(
            f"{group!r}: standard_rep().matrices(g) must equal g.matrices, the action of g on coordinates; "
            f"max deviation {err:.2e} > {atol:g}{hint}, e.g. for g =\n{elements.matrices[k].numpy().round(6)}\n"
            f"standard_rep gives\n{mats[k].numpy().round(6)}"
        )


def _pairs(group: Group, elements: GroupElements, generator: torch.Generator) -> tuple[GroupElements, GroupElements]:
    """``(g, h)`` pairs: each given element with the next one and with a random element."""
    mats = elements.matrices
    other = torch.cat([mats.roll(1, 0), group.sample(len(elements), generator=generator).matrices])
    return group.elements_from_matrices(torch.cat([mats, mats])), group.elements_from_matrices(other)


def verify_representation(
    rep: Rep,
    elements: GroupElements,
    *,
    generator: torch.Generator | None = None,
    atol: float = CONVENTION_ATOL,
) -> torch.Tensor:
    """Check ``rep`` on ``elements`` and return its verified ``(n, size, size)`` float64 matrices.

    Checks: shape ``(n, size, size)``; orthogonal on a Euclidean group, invertible (finite inverse,
    ``rho(g)^-1 rho(g) = I``) on any other; ``1`` if ``rep.is_trivial``; ``rho(e) = I``;
    the same matrices for the elements rebuilt from their matrices; ``rho(g h) = rho(g) rho(h)`` for
    each given ``g`` paired with the next given element and with a random one.  Raises
    :class:`ConventionError` naming the failed convention.
    """
    group = elements.group
    gen = generator if generator is not None else torch.Generator().manual_seed(12345)
    what = f"{group!r}: representation {rep!r}"
    mats = torch.as_tensor(rep.matrices(elements), dtype=torch.float64)
    n, d = len(elements), rep.size
    if mats.shape != (n, d, d):
        raise ConventionError(f"{what}: matrices(elements) has shape {tuple(mats.shape)}, expected {(n, d, d)}")
    eye = torch.eye(d, dtype=torch.float64)
    if group.is_euclidean():
        err = _deviation(mats.transpose(1, 2) @ mats, eye.expand(n, d, d))
        if err > atol:
            raise ConventionError(f"{what} is not orthogonal: max |rho(g)^T rho(g) - I| = {err:.2e} > {atol:g}")
    else:
        inv = torch.linalg.inv(mats)
        err = _deviation(inv @ mats, eye.expand(n, d, d)) if bool(torch.isfinite(inv).all()) else float("inf")
        if err > atol:
            raise ConventionError(f"{what} is not invertible: max |rho(g)^-1 rho(g) - I| = {err:.2e} > {atol:g}")
    if rep.is_trivial and _deviation(mats, torch.ones_like(mats)) > atol:
        raise ConventionError(f"{what} is marked trivial but rho(g) != 1")
    err = _deviation(torch.as_tensor(rep.matrices(group.identity()), dtype=torch.float64)[0], eye)
    if err > atol:
        raise ConventionError(f"{what}: rho(identity) != I (max deviation {err:.2e})")
    g, h = _pairs(group, elements, gen)
    rho_g = torch.as_tensor(rep.matrices(g), dtype=torch.float64)
    err = _deviation(rho_g[:n], mats)
    if err > atol:
        raise ConventionError(
            f"{what}: elements rebuilt with elements_from_matrices(g.matrices) get other matrices (max deviation "
            f"{err:.2e}): the representation must depend on the element only"
        )
    gh = group.elements_from_matrices(g.matrices @ h.matrices)
    product = torch.as_tensor(rep.matrices(gh), dtype=torch.float64)
    err = _deviation(product, rho_g @ torch.as_tensor(rep.matrices(h), dtype=torch.float64))
    if err > atol:
        raise ConventionError(f"{what} is not a homomorphism: max |rho(gh) - rho(g) rho(h)| = {err:.2e} > {atol:g}")
    return mats


class VerifiedActions:
    """Verified matrices of the coordinate action and of representations, for fixed ``elements``.

    Construction checks :func:`verify_coordinate_action`; :meth:`rep` verifies a representation
    on first use (:func:`verify_representation`) and caches its matrices; :meth:`field` assembles a
    field type's block-diagonal matrices from them (here, not by :meth:`FieldType.matrices`).
    """

    def __init__(self, group: Group, elements: GroupElements, *, atol: float = CONVENTION_ATOL) -> None:
        if elements.group != group:
            raise ValueError(f"elements of {elements.group!r} given for a check of {group!r}")
        self.group, self.elements, self.atol = group, elements, atol
        self._gen = torch.Generator().manual_seed(12345)
        verify_coordinate_action(group, elements, atol)
        self._reps: dict[int, tuple[Rep, torch.Tensor]] = {}

    @property
    def coordinates(self) -> torch.Tensor:
        """``(n, d, d)``: the elements' matrices acting on positions (the standard representation)."""
        return self.elements.matrices

    def rep(self, rep: Rep) -> torch.Tensor:
        """``(n, size, size)`` verified float64 matrices of ``rep``."""
        hit = self._reps.get(id(rep))
        if hit is None:
            if rep.group != self.group:
                raise ValueError(f"representation {rep!r} of {rep.group!r} in a check of {self.group!r}")
            hit = self._reps[id(rep)] = (
                rep,
                verify_representation(rep, self.elements, generator=self._gen, atol=self.atol),
            )
        return hit[1]

    def contragredient(self, rep: Rep) -> torch.Tensor:
        """``(n, size, size)``: ``rho(g)^-T``, how the input side of a kernel moves (``K -> rho_out K rho_in^-1``
        is ``vec K -> kron(rho_out, rho_in^-T) vec K``, row-major).  On a Euclidean group the verified
        orthogonal matrices themselves (``rho^-T = rho``), bit for bit as before non-compact groups."""
        mats = self.rep(rep)
        return mats if self.group.is_euclidean() else torch.linalg.inv(mats).transpose(1, 2)

    def field(self, field_type: FieldType, contragredient: bool = False) -> torch.Tensor:
        """``(n, size, size)`` block-diagonal matrices of ``field_type``, blocks in field order
        (``rho(g)^-T`` blocks with ``contragredient``)."""
        if field_type.group != self.group:
            raise ValueError(f"field type {field_type!r} of another group in a check of {self.group!r}")
        n = len(self.elements)
        out = torch.zeros(n, field_type.size, field_type.size, dtype=torch.float64)
        start = 0
        block = self.contragredient if contragredient else self.rep
        for rep in field_type.reps:
            out[:, start : start + rep.size, start : start + rep.size] = block(rep)
            start += rep.size
        return out
