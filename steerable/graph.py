"""Graph construction: batched and vectorised in pure torch, or torch-cluster when it is installed.

Conventions (PyG): ``edge_index`` has shape ``(2, E)``; ``edge_index[0]`` is the source ``j`` and
``edge_index[1]`` the target ``i`` (messages flow ``j -> i``, as :class:`~steerable.PointConv`
expects).  ``batch`` is a ``(N,)`` long vector assigning each point to a graph; it must be sorted
(as produced by ``torch_geometric.data.Batch``).

Method (pure torch): the graphs of a batch are padded to the size ``M`` of the largest one and
the distances of every graph are computed at once, ``cdist`` on a ``(graphs, M, d)`` tensor, with
padding masked out; graphs (and, for one big graph, rows) are taken in chunks so that at most
``_CHUNK_ENTRIES`` distances are held at once.  Padding wastes work when graph sizes differ a lot
(the cost is ``graphs * M^2``, not ``sum n_b^2``), never memory beyond the chunk.  Distances are
exact differences (``cdist`` without the matrix-product shortcut), so ``|pos_j - pos_i| <= r`` is
decided as a brute-force loop would.

When ``torch_cluster`` is importable, :func:`radius_graph`, :func:`knn_graph` and :func:`knn` call
it instead (same edge sets, up to ties and points at exactly the cutoff; edge order may differ).
``pyg-lib`` is not used: it offers no radius or knn search of its own.
"""
from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import NamedTuple

import torch

__all__ = ["radius_graph", "knn_graph", "knn", "fps", "fully_connected_graph"]

_CHUNK_ENTRIES = 1 << 22  # distance-matrix entries held at once
_UNSET = object()
_torch_cluster: object = _UNSET  # the torch_cluster module, None when absent; set on first use


def _cluster() -> ModuleType | None:
    """``torch_cluster`` if importable (looked up once), else ``None``."""
    global _torch_cluster
    if _torch_cluster is _UNSET:
        try:
            import torch_cluster  # type: ignore[import-not-found]
        except ImportError:
            torch_cluster = None
        _torch_cluster = torch_cluster
    return _torch_cluster  # type: ignore[return-value]


class _Layout(NamedTuple):
    """Graphs of a sorted batch: ``starts`` ``(num,)`` first index of each graph, ``valid``
    ``(num, max_size)`` which padded slots hold a point, ``padded`` ``(num, max_size, d)``."""

    starts: torch.Tensor
    valid: torch.Tensor
    padded: torch.Tensor

    @property
    def max_size(self) -> int:
        return self.valid.shape[1]


def _check_batch(batch: torch.Tensor | None, n: int, what: str) -> None:
    if batch is None:
        return
    if not isinstance(batch, torch.Tensor) or batch.ndim != 1 or batch.numel() != n:
        shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
        raise ValueError(f"{what} must be a ({n},) tensor of graph ids, got {shape}")
    if batch.dtype.is_floating_point or batch.dtype == torch.bool:
        raise ValueError(f"{what} must hold integer graph ids, got {batch.dtype}")
    if n > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError(f"{what} must be sorted")
    if n and bool(batch[0] < 0):
        raise ValueError(f"{what} holds negative graph ids")


def _check_pos(pos: torch.Tensor, what: str) -> None:
    if not isinstance(pos, torch.Tensor) or pos.ndim != 2 or not pos.is_floating_point():
        desc = f"{tuple(pos.shape)} {pos.dtype}" if isinstance(pos, torch.Tensor) else type(pos).__name__
        raise ValueError(f"{what} must be a floating (N, d) tensor, got {desc}")


def _layout(pos: torch.Tensor, batch: torch.Tensor | None, num: int | None = None) -> _Layout:
    """Pad the graphs of ``pos`` (sorted ``batch``) to one ``(num, max_size, d)`` tensor."""
    n = pos.shape[0]
    if batch is None:
        counts = torch.tensor([n], device=pos.device)
        batch = torch.zeros(n, dtype=torch.long, device=pos.device)
    else:
        batch = batch.long()
        counts = torch.bincount(batch, minlength=num or 0)
    starts = torch.cumsum(counts, 0) - counts
    max_size = int(counts.max()) if counts.numel() else 0
    local = torch.arange(n, device=pos.device) - starts[batch]
    padded = pos.new_zeros(counts.numel(), max_size, pos.shape[1])
    padded[batch, local] = pos
    valid = torch.zeros(counts.numel(), max_size, dtype=torch.bool, device=pos.device)
    valid[batch, local] = True
    return _Layout(starts, valid, padded)


def _blocks(num: int, rows: int, cols: int) -> Iterator[tuple[int, int, int, int]]:
    """``(g0, g1, a, b)``: graph ranges and row ranges with ``(g1 - g0) * (b - a) * cols`` bounded.

    Row ranges split a graph only when a single graph does not fit, so the blocks come in the order
    (graph, row): edges collected block after block stay sorted by target.
    """
    per_graph = max(1, rows * cols)
    graphs = max(1, _CHUNK_ENTRIES // per_graph)
    step = rows if graphs > 1 else max(1, _CHUNK_ENTRIES // max(1, cols))
    for g0 in range(0, num, graphs):
        for a in range(0, rows, max(1, step)):
            yield g0, min(num, g0 + graphs), a, min(rows, a + step)


def _distances(queries: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Batched exact Euclidean distances ``(G, R, d) x (G, M, d) -> (G, R, M)``."""
    return torch.cdist(queries, points, compute_mode="donot_use_mm_for_euclid_dist")


def _empty(device: torch.device) -> torch.Tensor:
    return torch.empty(2, 0, dtype=torch.long, device=device)


def _keep_nearest(edge_index: torch.Tensor, dist: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` shortest edges into each target (``edge_index[1]``), sorted by target, distance."""
    order = torch.sort(dist, stable=True).indices
    order = order[torch.sort(edge_index[1, order], stable=True).indices]
    tgt = edge_index[1, order]
    first = torch.searchsorted(tgt, tgt, right=False)  # index of the first edge of the same target
    rank = torch.arange(tgt.numel(), device=tgt.device) - first
    return edge_index[:, order[rank < k]]


def radius_graph(
    pos: torch.Tensor,
    r: float,
    batch: torch.Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int | None = None,
) -> torch.Tensor:
    """Edges ``j -> i`` for all pairs in the same graph with ``|pos_j - pos_i| <= r``.

    Args:
        pos: ``(N, d)`` positions.  r: cutoff radius.  batch: ``(N,)`` sorted graph ids or ``None``.
        loop: include self-loops ``i -> i``.
        max_num_neighbors: keep at most this many sources per target, the nearest ones; ``None``
            (default) keeps all.  PyG's default is 32, and PyG keeps an arbitrary subset; here the
            default is the plain cutoff graph, because a silent cap changes the graph (and the model)
            with the density of the data, and chunking already bounds the memory the cap exists for.

    Returns:
        ``(2, E)`` long, ``[0]`` source, ``[1]`` target; sorted by target, then by distance when
        ``max_num_neighbors`` is set, else by source index (the torch-cluster path may order differently).
    """
    _check_pos(pos, "radius_graph: pos")
    _check_batch(batch, pos.shape[0], "radius_graph: batch")
    if max_num_neighbors is not None and (isinstance(max_num_neighbors, bool) or
                                          not isinstance(max_num_neighbors, int) or max_num_neighbors < 1):
        raise ValueError(f"radius_graph: max_num_neighbors must be a positive int or None, got {max_num_neighbors!r}")
    if pos.shape[0] == 0:
        return _empty(pos.device)
    cluster = _cluster()
    if cluster is not None:
        cap = pos.shape[0] if batch is None else int(torch.bincount(batch.long()).max())
        ei = cluster.radius_graph(pos, r, batch, loop=loop, max_num_neighbors=cap, flow="source_to_target")
        if max_num_neighbors is not None:
            ei = _keep_nearest(ei, (pos[ei[0]] - pos[ei[1]]).norm(dim=1), max_num_neighbors)
        return ei.long()
    lay = _layout(pos, batch)
    m = lay.max_size
    cols = torch.arange(m, device=pos.device)
    out: list[torch.Tensor] = []
    for g0, g1, a, b in _blocks(len(lay.starts), m, m):
        d = _distances(lay.padded[g0:g1, a:b], lay.padded[g0:g1])  # (G, rows = targets, cols = sources)
        mask = (d <= r) & lay.valid[g0:g1, a:b, None] & lay.valid[g0:g1, None, :]
        if not loop:
            mask &= cols[a:b, None] != cols[None, :]
        if max_num_neighbors is not None:
            vals, idx = torch.topk(torch.where(mask, d, float("inf")), min(max_num_neighbors, m), dim=2,
                                   largest=False)
            keep = torch.isfinite(vals)
            gi, ri, _ = keep.nonzero(as_tuple=True)
            ci = idx[keep]
        else:
            gi, ri, ci = mask.nonzero(as_tuple=True)
        base = lay.starts[g0 + gi]
        out.append(torch.stack([base + ci, base + ri + a]))
    return torch.cat(out, dim=1).long() if out else _empty(pos.device)


def knn(
    x: torch.Tensor,
    y: torch.Tensor,
    k: int,
    batch_x: torch.Tensor | None = None,
    batch_y: torch.Tensor | None = None,
) -> torch.Tensor:
    """For every point of ``y`` its ``k`` nearest points of ``x`` (same graph).

    Args:
        x: ``(N_x, d)`` candidate points (sources).  y: ``(N_y, d)`` query points (targets).
        k: neighbours per query (fewer if the graph has fewer points).
        batch_x, batch_y: sorted graph ids of ``x`` and ``y``, or ``None`` (one graph).

    Returns:
        ``(2, E)`` long, PyG ``torch_geometric.nn.pool.knn`` layout: ``row = [0]`` indexes ``y``,
        ``col = [1]`` indexes ``x``; sorted by ``row``, then by distance.  For a bipartite
        message-passing edge index ``x -> y`` (source first) use ``knn(...).flip(0)``.
    """
    _check_pos(x, "knn: x")
    _check_pos(y, "knn: y")
    _check_k(k, "knn")
    if (batch_x is None) != (batch_y is None):
        raise ValueError("knn: give both batch_x and batch_y or neither")
    _check_batch(batch_x, x.shape[0], "knn: batch_x")
    _check_batch(batch_y, y.shape[0], "knn: batch_y")
    if x.shape[0] == 0 or y.shape[0] == 0:
        return _empty(x.device)
    cluster = _cluster()
    if cluster is not None:
        return cluster.knn(x, y, k, batch_x, batch_y).long()
    num = None
    if batch_x is not None:
        num = int(torch.maximum(batch_x.max(), batch_y.max())) + 1
    lx, ly = _layout(x, batch_x, num), _layout(y, batch_y, num)
    mx, my = lx.max_size, ly.max_size
    out: list[torch.Tensor] = []
    for g0, g1, a, b in _blocks(len(lx.starts), my, mx):
        d = _distances(ly.padded[g0:g1, a:b], lx.padded[g0:g1])  # (G, queries, candidates)
        d = torch.where(lx.valid[g0:g1, None, :], d, float("inf"))
        vals, idx = torch.topk(d, min(k, mx), dim=2, largest=False)
        keep = torch.isfinite(vals) & ly.valid[g0:g1, a:b, None]
        gi, ri, _ = keep.nonzero(as_tuple=True)
        out.append(torch.stack([ly.starts[g0 + gi] + ri + a, lx.starts[g0 + gi] + idx[keep]]))
    return torch.cat(out, dim=1).long() if out else _empty(x.device)


def _check_k(k: int, who: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{who}: k must be a positive int, got {k!r}")


def knn_graph(pos: torch.Tensor, k: int, batch: torch.Tensor | None = None, loop: bool = False) -> torch.Tensor:
    """Edges ``j -> i`` from each point's ``k`` nearest neighbours ``j`` (same graph).

    Args:
        pos: ``(N, d)``.  k: neighbours per target.  batch: ``(N,)`` sorted graph ids or ``None``.
        loop: whether a point may be its own neighbour (it then counts towards ``k``).

    Returns:
        ``(2, N*k)`` long (fewer for graphs with at most ``k`` points), ``[0]`` source, ``[1]`` target;
        sorted by target, then by distance.
    """
    _check_pos(pos, "knn_graph: pos")
    _check_k(k, "knn_graph")
    _check_batch(batch, pos.shape[0], "knn_graph: batch")
    if pos.shape[0] == 0:
        return _empty(pos.device)
    cluster = _cluster()
    if cluster is not None:
        return cluster.knn_graph(pos, k, batch, loop=loop, flow="source_to_target").long()
    lay = _layout(pos, batch)
    m = lay.max_size
    cols = torch.arange(m, device=pos.device)
    out: list[torch.Tensor] = []
    for g0, g1, a, b in _blocks(len(lay.starts), m, m):
        d = _distances(lay.padded[g0:g1, a:b], lay.padded[g0:g1])
        allowed = lay.valid[g0:g1, None, :]
        if not loop:
            allowed = allowed & (cols[a:b, None] != cols[None, :])
        vals, idx = torch.topk(torch.where(allowed, d, float("inf")), min(k, m), dim=2, largest=False)
        keep = torch.isfinite(vals) & lay.valid[g0:g1, a:b, None]
        gi, ri, _ = keep.nonzero(as_tuple=True)
        base = lay.starts[g0 + gi]
        out.append(torch.stack([base + idx[keep], base + ri + a]))
    return torch.cat(out, dim=1).long() if out else _empty(pos.device)


def _sq(diff: torch.Tensor) -> torch.Tensor:
    return (diff * diff).sum(-1)


def fps(
    pos: torch.Tensor,
    ratio: float = 0.5,
    batch: torch.Tensor | None = None,
    random_start: bool = False,
) -> torch.Tensor:
    """Farthest point sampling: indices of ``ceil(ratio * N_b)`` points per graph.

    Greedy: start at the first point of each graph (or a random one), then repeatedly take the
    point farthest from the chosen set (the first such point on ties).  All graphs advance together
    (padded as in the module docstring): ``max_b ceil(ratio * N_b)`` steps of one batched update.
    Returns ``(M,)`` long indices into ``pos``, grouped by graph in order (so ``batch[idx]`` stays
    sorted).  Deterministic when ``random_start=False``.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError("fps: ratio must be in (0, 1]")
    _check_pos(pos, "fps: pos")
    _check_batch(batch, pos.shape[0], "fps: batch")
    if pos.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=pos.device)
    lay = _layout(pos, batch)
    counts = lay.valid.sum(1)
    wanted = torch.minimum(torch.ceil(ratio * counts.double()).long().clamp_min(1), counts)
    wanted = torch.where(counts > 0, wanted, 0)
    steps = int(wanted.max())
    num = counts.numel()
    rows = torch.arange(num, device=pos.device)
    if random_start:
        first = (torch.rand(num, device=pos.device) * counts).long().clamp_max((counts - 1).clamp_min(0))
    else:
        first = torch.zeros(num, dtype=torch.long, device=pos.device)
    chosen = torch.zeros(num, max(steps, 1), dtype=torch.long, device=pos.device)
    chosen[:, 0] = first
    dist = _sq(lay.padded - lay.padded[rows, first][:, None])
    dist = torch.where(lay.valid, dist, float("-inf"))
    for t in range(1, steps):
        nxt = torch.argmax(dist, dim=1)
        chosen[:, t] = nxt
        dist = torch.minimum(dist, _sq(lay.padded - lay.padded[rows, nxt][:, None]))
    take = torch.arange(chosen.shape[1], device=pos.device)[None, :] < wanted[:, None]
    return (chosen + lay.starts[:, None])[take]


def fully_connected_graph(batch: torch.Tensor, loop: bool = False) -> torch.Tensor:
    """All ordered pairs ``j -> i`` within each graph of a sorted ``(N,)`` ``batch``; ``(2, E)`` long,
    sorted by target then source."""
    _check_batch(batch, batch.shape[0] if isinstance(batch, torch.Tensor) else -1, "fully_connected_graph: batch")
    if batch.shape[0] == 0:
        return _empty(batch.device)
    lay = _layout(torch.zeros(batch.shape[0], 1, device=batch.device), batch)
    m = lay.max_size
    cols = torch.arange(m, device=batch.device)
    out: list[torch.Tensor] = []
    for g0, g1, a, b in _blocks(len(lay.starts), m, m):
        mask = lay.valid[g0:g1, a:b, None] & lay.valid[g0:g1, None, :]
        if not loop:
            mask &= cols[a:b, None] != cols[None, :]
        gi, ri, ci = mask.nonzero(as_tuple=True)
        base = lay.starts[g0 + gi]
        out.append(torch.stack([base + ci, base + ri + a]))
    return torch.cat(out, dim=1) if out else _empty(batch.device)
