"""Harmonic embedding of a relative position, smooth at the origin, and the choice of its band limit.

The kernel MLP embeds the *softened direction* ``v = pos / r_s`` with the softened radius
``r_s = sqrt(|pos|^2 + s^2)`` (``s``: the origin scale,
:meth:`KernelMLPSpec.origin_scale <steerable.core.mlp.KernelMLPSpec.origin_scale>`) as the solid harmonics
of the *parent* group (``O(2)`` on ``R^2``, ``O(3)`` on ``R^3``): polynomials of ``v``, each block
transforming under one parent irrep in escnn's basis.  The degree-``l`` block is
``|v|^l Y_l(pos / |pos|)`` with ``|v| = |pos| / r_s``: the unit-norm harmonics for ``|pos| >> s``,
fading in as ``(|pos| / s)^l`` near the origin.  Everything is smooth (``r_s >= s > 0``, no division
by ``|pos|``): gradients at and near ``pos = 0`` are exact and finite (forces with self-loops or
coincident points), and half precision gives no NaN at the centre tap of a grid.  At ``pos = 0``
every non-invariant block is exactly zero, as symmetry demands.

* ``R^2``: ``[1, (c_1, s_1), ..., (c_L, s_L)]`` with ``c_k + i s_k = (v_x + i v_y)^k``
  (``= |v|^k (cos kθ, sin kθ)``); block ``k >= 1`` is escnn's ``O(2)`` irrep ``(1, k)`` (rotation by
  φ acts as the rotation by ``kφ``; the reflection ``diag(1, -1)`` maps ``θ -> -θ``), block 0 the
  trivial irrep ``(0, 0)``.  Size ``2L + 1``.
* ``R^3``: the real solid harmonics ``Y_l(v)``, ``l = 0..L``, scaled to ``|Y_l(u)| = 1`` on unit
  vectors and transforming under escnn's ``O(3)`` irrep ``(l mod 2, l)``.  They are built by escnn's
  recursion ``Y_l = C_l (Y_{l-1} ⊗ Y_1)`` (``C_l`` the rows of the Clebsch-Gordan change of basis
  that project onto ``l``; homogeneous of degree ``l``), with the constants kept in float64 (escnn's
  own ``HarmonicPolynomialR3Generator`` stores them in float32, which limits its equivariance to
  ~1e-6).  Size ``(L + 1)^2``.

Restricted to the subgroup ``H``, the parent irreps become (generally reducible) representations
of ``H``; the module reports them in :attr:`HarmonicEmbedding.reps`.  Completeness is unchanged by
the factor ``|v|^l``: it is invariant and nonzero away from the origin, where only the invariant
block may be nonzero anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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


def band_needed(group: EscnnGroup, irrep_id: tuple) -> int:
    """The harmonic degree a complete kernel needs to output an irrep of a continuous group: its
    frequency, unless the group says otherwise (``group.irrep_band(irrep_id)``: the axial groups of
    :mod:`.schoenflies`, e.g. ``Dinf``, whose generic points need two harmonic copies of an irrep)."""
    own = getattr(group, "irrep_band", None)
    return int(own(irrep_id)) if own is not None else frequency(group, irrep_id)


def choose_band_limit(
    group: EscnnGroup, needed: Iterable[tuple], max_band: int | None = None
) -> tuple[int, list[tuple]]:
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
            f = band_needed(group, irrep_id)
            if f > cap:
                raise ValueError(
                    f"{group}: the kernel needs harmonics of degree {f} for irrep {irrep_id}, above the band "
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
    """``pos (E, n) -> (E, size)``: parent solid harmonics of the softened direction up to band ``L``.

    Attributes:
        L: band limit.
        scale: the origin scale ``s`` of the softened radius (see the module docstring).
        reps: escnn representations of ``H``, one per degree ``0..L``, in channel order.
        size: number of output channels (``2L + 1`` on ``R^2``, ``(L + 1)^2`` on ``R^3``).
    """

    def __init__(self, group: EscnnGroup, L: int, scale: float) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"HarmonicEmbedding: the origin scale must be > 0, got {scale}")
        self.dim, self.L, self.scale = group.dim, L, float(scale)
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

    def soft_radius(self, pos: torch.Tensor) -> torch.Tensor:
        """``(E, n) -> (E,)``: ``r_s = sqrt(|pos|^2 + s^2)``, smooth and ``>= s`` (also in half precision)."""
        return (pos.pow(2).sum(-1) + self.scale**2).sqrt()

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        v = pos / self.soft_radius(pos)[:, None]  # |v| < 1, smooth; v = 0 at pos = 0
        ones = torch.ones_like(v[:, :1])
        if self.L == 0:
            return ones
        if self.dim == 2:
            c1, s1 = v[:, :1], v[:, 1:2]
            feats, c, s = [ones, c1, s1], c1, s1
            for _ in range(2, self.L + 1):
                c, s = c * c1 - s * s1, s * c1 + c * s1  # (v_x + i v_y)^k = (v_x + i v_y)^(k-1) (v_x + i v_y)
                feats += [c, s]
            return torch.cat(feats, -1)
        y1 = v @ self.constants.get("cob_1", v).T
        feats, y = [ones, y1], y1
        for l in range(2, self.L + 1):
            prod = (y[:, :, None] * y1[:, None, :]).flatten(1)  # row-major kron(Y_{l-1}, Y_1)
            y = prod @ self.constants.get(f"cob_{l}", v).T
            feats.append(y)
        return torch.cat(feats, -1)

    def extra_repr(self) -> str:
        return f"L={self.L}, size={self.size}, origin_scale={self.scale:.3g}"
