"""Harmonic embedding of the direction of a relative position, and the choice of its band limit.

The kernel MLP starts from the direction ``u = pos / |pos|`` (``u = 0`` at ``pos = 0``, so that every
non-invariant component of the embedding vanishes there) and embeds it as the harmonics of the
*parent* group (``O(2)`` on ``R^2``, ``O(3)`` on ``R^3``), each block transforming under one parent
irrep in escnn's basis:

* ``R^2``: ``[1, (cos θ, sin θ), (cos 2θ, sin 2θ), ..., (cos Lθ, sin Lθ)]``; block ``k >= 1`` is
  escnn's ``O(2)`` irrep ``(1, k)`` (rotation by φ acts as the rotation by ``kφ``; the reflection
  ``diag(1, -1)`` maps ``θ -> -θ``), block 0 the trivial irrep ``(0, 0)``.  Size ``2L + 1``.
* ``R^3``: the real spherical harmonics ``Y_l(u)``, ``l = 0..L``, each normalised to ``|Y_l(u)| = 1``
  and transforming under escnn's ``O(3)`` irrep ``(l mod 2, l)``.  They are built by escnn's
  recursion ``Y_l = C_l (Y_{l-1} ⊗ Y_1)`` (``C_l`` the rows of the Clebsch-Gordan change of basis
  that project onto ``l``), with the constants kept in float64 (escnn's own
  ``HarmonicPolynomialR3Generator`` stores them in float32, which limits its equivariance to ~1e-6).
  Size ``(L + 1)^2``.

Restricted to the subgroup ``H``, the parent irreps become (generally reducible) representations
of ``H``; the module reports them in :attr:`HarmonicEmbedding.reps`.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch

from steerable.core.constants import Float64Constants

from .groups import EscnnGroup

# Largest band limits tried (override with ``options={"max_band": L}``).  Continuous groups need the
# exact band of each output frequency and raise past the cap; finite groups stop at the cap and
# reach the remaining irreps through regular fields and pointwise nonlinearities.
DEFAULT_MAX_BAND = {2: 32, 3: 8}
FINITE_MAX_BAND = {2: 8, 3: 4}


def parent_irrep(group: EscnnGroup, l: int) -> Any:
    """The escnn irrep of the parent group carried by the harmonics of degree ``l``."""
    if group.dim == 2:
        return group.parent.irrep(0, 0) if l == 0 else group.parent.irrep(1, l)
    return group.parent.irrep(l % 2, l)


def harmonic_reps(group: EscnnGroup, L: int) -> list[Any]:
    """Restrictions to ``H`` of the parent irreps of degrees ``0..L`` (cached on the group)."""
    cache: dict[int, Any] = group.__dict__.setdefault("_harmonic_rep_cache", {})
    for l in range(L + 1):
        if l not in cache:
            cache[l] = group.restrict(parent_irrep(group, l))
    return [cache[l] for l in range(L + 1)]


def frequency(group: EscnnGroup, irrep_id: tuple) -> int:
    """Frequency (rotation order) of an irrep of a continuous group, from its escnn id."""
    if group.kind in ("so2", "so3"):
        return int(irrep_id[0])
    if group.kind in ("o2", "o3"):
        return int(irrep_id[1])
    raise ValueError(f"{group} is finite: irreps have no frequency")


def choose_band_limit(group: EscnnGroup, needed: Iterable[tuple], max_band: int | None = None) -> tuple[int, list[tuple]]:
    """Smallest band limit ``L`` whose restricted harmonics contain every needed irrep of ``H``.

    Args:
        group: the group.
        needed: escnn ids of the irreps of ``H`` that the MLP must output.
        max_band: cap on ``L`` (default :data:`DEFAULT_MAX_BAND` / :data:`FINITE_MAX_BAND`).

    Returns:
        ``(L, unreachable)``: for continuous groups ``unreachable`` lists the irreps that no harmonic
        contains (e.g. the pseudo-scalar of ``O(3)``): no function of the position transforms under
        them, so the kernel's components there are zero by symmetry.  For finite groups it lists
        the irreps not yet contained at the cap (they are reached through the regular fields).

    Raises:
        ValueError: a continuous group needs a frequency above the cap.
    """
    needed = sorted(set(needed), key=str)
    if group.order is None:
        cap = DEFAULT_MAX_BAND[group.dim] if max_band is None else max_band
        L, unreachable = 0, []
        for irrep_id in needed:
            f = frequency(group, irrep_id)
            if f > cap:
                raise ValueError(
                    f"{group}: the kernel needs irrep {irrep_id} of frequency {f}, above the band "
                    f"limit cap {cap}; pass options={{'max_band': {f}}} to allow it"
                )
            ids = {tuple(r) for rep in harmonic_reps(group, f) for r in rep.irreps}
            if tuple(irrep_id) in ids:
                L = max(L, f)
            else:
                unreachable.append(irrep_id)
        return L, unreachable
    cap = FINITE_MAX_BAND[group.dim] if max_band is None else max_band
    for L in range(cap + 1):
        ids = {tuple(r) for rep in harmonic_reps(group, L) for r in rep.irreps}
        missing = [i for i in needed if tuple(i) not in ids]
        if not missing:
            return L, []
    return cap, missing


class HarmonicEmbedding(torch.nn.Module):
    """``pos (E, n) -> (E, size)``: parent harmonics of the direction up to band ``L``.

    Attributes:
        L: band limit.
        reps: escnn representations of ``H``, one per degree ``0..L``, in channel order.
        size: number of output channels (``2L + 1`` on ``R^2``, ``(L + 1)^2`` on ``R^3``).
    """

    def __init__(self, group: EscnnGroup, L: int) -> None:
        super().__init__()
        self.dim, self.L = group.dim, L
        self.reps = harmonic_reps(group, L)
        self.size = sum(r.size for r in self.reps)
        # the recursion's constants, float64 outside the buffers (.float() would round them)
        self.constants = Float64Constants()
        if self.dim == 3 and L >= 1:
            P = group.parent
            std = P.standard_representation()
            # (x, y, z) -> escnn's basis of the O(3) irrep (1, 1).
            self.constants.add("cob_1", np.asarray(std.change_of_basis_inv, dtype=np.float64))
            rng = np.random.default_rng(0)
            probe = rng.normal(size=3)
            probe /= np.linalg.norm(probe)
            y_prev = std.change_of_basis_inv @ probe
            y_1 = y_prev
            for l in range(2, L + 1):
                prod = P.irrep((l - 1) % 2, l - 1).tensor(P.irrep(1, 1))
                offset = 0
                for irrep_id in prod.irreps:
                    d = P.irrep(*irrep_id).size
                    if tuple(irrep_id) == (l % 2, l):
                        break
                    offset += d
                else:  # pragma: no cover - escnn always contains l in (l-1) ⊗ 1
                    raise AssertionError(f"no degree {l} in {prod}")
                cob = np.asarray(prod.change_of_basis_inv, dtype=np.float64)[offset : offset + 2 * l + 1]
                # |Y_l| is constant on the sphere (invariant): normalise it to one at a probe point.
                y = cob @ np.kron(y_prev, y_1)
                cob = cob / np.linalg.norm(y)
                y_prev = cob @ np.kron(y_prev, y_1)
                self.constants.add(f"cob_{l}", cob)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        r2 = pos.pow(2).sum(-1, keepdim=True)
        # u = 0 at pos = 0 (and finite gradients there): the clamp only acts below ~1e-15 |pos|.
        u = pos / r2.clamp_min(1e-30).sqrt()
        ones = torch.ones_like(u[:, :1])
        if self.L == 0:
            return ones
        if self.dim == 2:
            c1, s1 = u[:, :1], u[:, 1:2]
            feats, c, s = [ones, c1, s1], c1, s1
            for _ in range(2, self.L + 1):
                c, s = c * c1 - s * s1, s * c1 + c * s1  # angle addition: (k-1)θ + θ
                feats += [c, s]
            return torch.cat(feats, -1)
        y1 = u @ self.constants.get("cob_1", u).T
        feats, y = [ones, y1], y1
        for l in range(2, self.L + 1):
            prod = (y[:, :, None] * y1[:, None, :]).flatten(1)  # row-major kron(Y_{l-1}, Y_1)
            y = prod @ self.constants.get(f"cob_{l}", u).T
            feats.append(y)
        return torch.cat(feats, -1)
