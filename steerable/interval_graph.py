"""Graphs invariant under a group preserving an indefinite quadratic form (the Lorentz group, ``O(p,q)``).

A Euclidean radius graph (``|x_i - x_j| <= r``, :func:`steerable.graph.radius_graph`) is invariant under
rotations but not under boosts: a boost changes Euclidean distances, so the graph of the moved points is
another graph and a point convolution on it is not equivariant.  :func:`interval_graph` connects points by
the group's invariant instead, ``|q(x_i - x_j)| <= r^2`` with ``q(x) = x^T eta x``
(:meth:`~steerable.core.group.Group.quadratic_form`), which every element of the group and every
translation preserve, so ``interval_graph(g pos + t) == interval_graph(pos)`` (as sets of edges, up to
round-off at the threshold).  For the Lorentz group ``q`` is the squared proper time (timelike) or minus
the squared proper length (spacelike) of the separation: the graph links events that are close in the
invariant interval, which includes lightlike separations of any length (the set ``|q| <= r^2`` is
unbounded; no invariant neighbourhood is bounded).  ``causal=True`` keeps only the edges from an event
to events in its future light cone (``q(x_i - x_j) >= 0``, ``(x_i - x_j)_time > 0``), invariant under
the orthochronous groups (``SO+(1,q)``; refused for groups that reverse time).
"""

from __future__ import annotations

import torch

from .core.group import Group

__all__ = ["interval_graph"]

#: rows of the pairwise table processed at once (memory: ROWS x N x n)
ROWS = 1024


def _time_axis(group: Group, eta: torch.Tensor) -> int:
    """The time coordinate of a diagonal form of signature ``(1, q)``; raise unless the group keeps its sign."""
    diag = eta.diag()
    if not torch.equal(eta, torch.diag(diag)) or int((diag > 0).sum()) != 1:
        raise ValueError(
            f"interval_graph(causal=True): needs a diagonal form with one positive direction (time), {group!r} "
            f"preserves eta with diagonal {diag.tolist()}"
        )
    axis = int(diag.argmax())
    reversal = torch.eye(group.dim, dtype=torch.float64)
    reversal[axis, axis] = -1.0
    try:
        group.elements_from_matrices(reversal[None])
    except ValueError:
        pass
    else:
        raise ValueError(
            f"interval_graph(causal=True): {group!r} contains the time reversal, which maps future to past: a "
            "causal graph is not invariant under it (use SO+(1,q), e.g. 'Lorentz', or causal=False)"
        )
    return axis


def interval_graph(
    pos: torch.Tensor,
    group: Group,
    r: float,
    *,
    batch: torch.Tensor | None = None,
    loop: bool = False,
    causal: bool = False,
) -> torch.Tensor:
    """``edge_index`` ``(2, E)`` long (PyG: row 0 source ``j``, row 1 target ``i``) of the pairs with
    ``|q(pos_i - pos_j)| <= r^2``, within each graph of ``batch`` (``(N,)`` graph ids, or ``None``: one graph).

    Args:
        pos: ``(N, n)`` floating-point positions (events), ``n = group.dim``.
        group: the group whose :meth:`~steerable.core.group.Group.quadratic_form` defines ``q``.
        r: the interval radius, ``> 0``.
        loop: include the self-loops ``i -> i``.
        causal: keep only ``j -> i`` with ``pos_i - pos_j`` in the closed future light cone
            (``q >= 0``, time component ``> 0``); needs a group that does not reverse time.

    Edges are sorted by target, then source.  Cost ``O(N^2)`` per graph (pure torch, rows in chunks).
    """
    if not isinstance(pos, torch.Tensor) or pos.ndim != 2 or pos.shape[1] != group.dim or not pos.is_floating_point():
        shape = tuple(pos.shape) if isinstance(pos, torch.Tensor) else type(pos).__name__
        raise ValueError(f"interval_graph: pos must be a floating tensor of shape (N, {group.dim}), got {shape}")
    if not isinstance(r, (int, float)) or isinstance(r, bool) or not r > 0:
        raise ValueError(f"interval_graph: r must be a positive number, got {r!r}")
    n = pos.shape[0]
    if batch is not None and (not isinstance(batch, torch.Tensor) or batch.shape != (n,) or batch.dtype != torch.long):
        raise ValueError(f"interval_graph: batch must be a long tensor of shape ({n},) or None")
    eta = group.quadratic_form()
    axis = _time_axis(group, eta) if causal else None
    eta = eta.to(pos)
    edges = []
    for start in range(0, n, ROWS):
        rows = torch.arange(start, min(n, start + ROWS), device=pos.device)
        diff = pos[rows, None, :] - pos[None, :, :]  # (R, N, n): pos_i - pos_j, i the target
        q = torch.einsum("rja,ab,rjb->rj", diff, eta, diff)
        keep = q.abs() <= r * r
        if causal:
            keep &= (q >= 0) & (diff[..., axis] > 0)
        if batch is not None:
            keep &= batch[rows, None] == batch[None, :]
        self_pair = rows[:, None] == torch.arange(n, device=pos.device)[None, :]
        keep = keep | self_pair if loop else keep & ~self_pair
        target, source = keep.nonzero(as_tuple=True)
        edges.append(torch.stack([source, rows[target]]))
    if not edges:
        return torch.zeros(2, 0, dtype=torch.long, device=pos.device)
    return torch.cat(edges, 1)
