"""Reading an e3nn tensor product path by path: the pieces shared by its matrix forms.

A path ``(i1, i2, io)`` of an ``o3.TensorProduct`` in ``'uvw'`` mode maps copy ``u`` of its first
input irrep and copy ``v`` of its second to copy ``w`` of its output irrep by

    ``out[w, k] += W[u, v, w] sum_{i, j} K[i, j, k] x1[u, i] x2[v, j]``,

with ``K`` ``(2 l1 + 1, 2 l2 + 1, 2 l3 + 1)`` the path's Clebsch-Gordan coefficients times e3nn's
normalisations.  :func:`path_coefficients` reads ``K`` off the module itself (so the normalisations
come with it); :func:`check_reproduces` compares a form built from them with the module.  Used by
:mod:`.bilinear` and :mod:`.shared_weight` (shared weights) and :mod:`.edge_weighted` (per-edge
weights).
"""

from __future__ import annotations

from collections.abc import Callable
from math import prod

import torch
from e3nn import o3

__all__ = [
    "all_path_coefficients",
    "check_reproduces",
    "path_coefficients",
    "path_slices",
    "require_weighted_uvw",
    "unreadable_path",
]

_TOL = 1e-10


def unreadable_path(tp: o3.TensorProduct):
    """The first path of ``tp`` that is not weighted ``'uvw'`` (the only kind the forms read), or ``None``."""
    return next((ins for ins in tp.instructions if not ins.has_weight or ins.connection_mode != "uvw"), None)


def require_weighted_uvw(tp: o3.TensorProduct, owner: str) -> None:
    """Raise ``RuntimeError`` naming ``owner`` and the path if a path of ``tp`` is not weighted ``'uvw'``."""
    bad = unreadable_path(tp)
    if bad is not None:
        raise RuntimeError(f"{owner}: expected weighted 'uvw' paths, got {bad}")


def path_slices(tp: o3.TensorProduct, ins) -> list[slice]:
    """The slices of path ``ins``'s first input, second input and output in ``tp``'s flat layouts."""
    return [irreps.slices()[k] for irreps, k in zip((tp.irreps_in1, tp.irreps_in2, tp.irreps_out), ins[:3])]


def path_coefficients(tp: o3.TensorProduct, index: int) -> torch.Tensor:
    """``K`` ``(2 l1 + 1, 2 l2 + 1, 2 l3 + 1)`` of the weighted path ``index`` of ``tp`` (float64):
    the module at unit vectors in the first copies of its inputs, with its weight block's first entry
    set to 1 (the same for every row when the weights are per sample).  Raises ``RuntimeError`` if
    anything else than the path's first output copy is reached."""
    ins = tp.instructions[index]
    s1, s2, so = path_slices(tp, ins)
    d1, d2, dk = (irreps[k].ir.dim for irreps, k in zip((tp.irreps_in1, tp.irreps_in2, tp.irreps_out), ins[:3]))
    weight = torch.zeros(tp.weight_numel, dtype=torch.float64)
    weight[sum(prod(p.path_shape) for p in tp.instructions[:index] if p.has_weight)] = 1.0
    x1 = torch.zeros(d1, d2, tp.irreps_in1.dim, dtype=torch.float64)
    x2 = torch.zeros(d1, d2, tp.irreps_in2.dim, dtype=torch.float64)
    x1[:, :, s1.start : s1.start + d1] = torch.eye(d1, dtype=torch.float64)[:, None, :]
    x2[:, :, s2.start : s2.start + d2] = torch.eye(d2, dtype=torch.float64)[None, :, :]
    batch = d1 * d2
    with torch.no_grad():
        out = tp(x1.view(batch, -1), x2.view(batch, -1), weight if tp.shared_weights else weight.expand(batch, -1))
    out = out.view(d1, d2, -1)
    k = out[:, :, so.start : so.start + dk].clone()
    out[:, :, so.start : so.start + dk] = 0.0
    if float(out.abs().max()) > _TOL * max(1.0, float(k.abs().max())):
        raise RuntimeError(f"path {ins} of {tp} reaches other outputs than its first copy")
    return k


def all_path_coefficients(tp: o3.TensorProduct) -> list[torch.Tensor]:
    """``K`` of every path of ``tp``, in the order of ``tp.instructions``."""
    return [path_coefficients(tp, n) for n in range(len(tp.instructions))]


def check_reproduces(tp: o3.TensorProduct, form: Callable[..., torch.Tensor], name: str) -> None:
    """``form(x1, x2, weight)`` against ``tp(x1, x2, weight)`` at a random input (float64, per-sample
    weights if ``tp`` takes them); raises ``RuntimeError`` naming ``name`` on a mismatch."""
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(4, tp.irreps_in1.dim, dtype=torch.float64, generator=gen)
    x2 = torch.randn(4, tp.irreps_in2.dim, dtype=torch.float64, generator=gen)
    shape = (tp.weight_numel,) if tp.shared_weights else (4, tp.weight_numel)
    weight = torch.randn(shape, dtype=torch.float64, generator=gen)
    with torch.no_grad():
        ref = tp(x1, x2, weight)
        got = form(x1, x2, weight)
    if got.shape != ref.shape or float((got - ref).norm()) > 1e-12 * max(1.0, float(ref.norm())):
        raise RuntimeError(f"{name}: the read-off of {tp} does not reproduce it")
