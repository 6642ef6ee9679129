"""Graph construction: batched and vectorised in pure torch, or torch-cluster when it is installed.

Conventions (PyG): ``edge_index`` has shape ``(2, E)``; ``edge_index[0]`` is the source ``j`` and
``edge_index[1]`` the target ``i`` (messages flow ``j -> i``, as :class:`~steerable.PointConv`
expects).  ``batch`` is a ``(N,)`` long vector assigning each point to a graph; it must be sorted
(as produced by ``torch_geometric.data.Batch``).

Method (pure torch): consecutive graphs of the batch are taken in chunks, each padded to the size
of its largest graph, and the distances of a whole chunk come from one batched ``cdist`` on a
``(graphs, size, d)`` tensor, with the padding masked out.  A chunk holds at most
``_CHUNK_ENTRIES`` distances (one graph too big for that is split by rows) and at most about twice
the distances its graphs need, so graphs of very different sizes are not padded to the largest:
memory is bounded and the work stays within about twice a per-graph loop's, in a few large calls.
Distances are exact differences (``cdist`` without the matrix-product shortcut), so
``|pos_j - pos_i| <= r`` is decided as a brute-force loop would.  Reading the graph sizes is one
host synchronisation per call (output sizes depend on the data anyway).

When ``torch_cluster`` is importable, :func:`radius_graph`, :func:`knn_graph` and :func:`knn` call
it instead (same edge sets, up to ties and points at exactly the cutoff; edge order may differ).
``pyg-lib`` is not used: it offers no radius or knn search of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import torch

__all__ = ["fps", "fully_connected_graph", "knn", "knn_graph", "radius_graph"]

_CHUNK_ENTRIES = 1 << 22  # distance-matrix entries held at once
_SLACK_ENTRIES = 1 << 12  # padding always allowed in a chunk (groups many tiny graphs)
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


class _Graphs:
    """The graphs of a sorted batch of ``n`` points: sizes and first indices (host lists, one
    synchronisation to read them) and each point's graph ``gid`` and index ``local`` within it."""

    def __init__(self, n: int, batch: torch.Tensor | None, device: torch.device, num: int | None = None) -> None:
        if batch is None:
            self.counts = [n]
            self.gid = torch.zeros(n, dtype=torch.long, device=device)
        else:
            self.gid = batch.long()
            self.counts = torch.bincount(self.gid, minlength=num or 0).tolist()
        starts = [0]
        for c in self.counts[:-1]:
            starts.append(starts[-1] + c)
        self.starts = starts
        self.starts_t = torch.tensor(starts, dtype=torch.long, device=device)
        self.local = torch.arange(n, device=device) - self.starts_t[self.gid]

    def pad(self, values: torch.Tensor, g0: int, g1: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Graphs ``g0 .. g1-1`` of ``values`` ``(n, d)`` padded: ``(G, size, d)`` and the valid mask ``(G, size)``."""
        s, e = self.starts[g0], self.starts[g1 - 1] + self.counts[g1 - 1]
        rows, cols = self.gid[s:e] - g0, self.local[s:e]
        padded = values.new_zeros(g1 - g0, size, values.shape[1])
        padded[rows, cols] = values[s:e]
        valid = torch.zeros(g1 - g0, size, dtype=torch.bool, device=values.device)
        valid[rows, cols] = True
        return padded, valid


def _graph_chunks(rows: list[int], cols: list[int]) -> Iterator[tuple[int, int, int, int]]:
    """Consecutive graph ranges ``(g0, g1, R, M)`` padded to ``R`` rows and ``M`` columns.

    A range grows while its padded size ``(g1 - g0) * R * M`` stays within ``_CHUNK_ENTRIES`` and
    within twice its real size ``sum rows_g * cols_g`` (plus a little slack): graphs of very
    different sizes are not padded to the largest, so the work stays within twice a per-graph loop's.
    A graph larger than the budget on its own forms a range alone.  Ranges without work are skipped.
    """
    g, num = 0, len(rows)
    while g < num:
        g1, r_max, c_max, real = g, 0, 0, 0
        while g1 < num:
            r, c = max(r_max, rows[g1]), max(c_max, cols[g1])
            padded, grown = (g1 - g + 1) * r * c, real + rows[g1] * cols[g1]
            if g1 > g and (padded > _CHUNK_ENTRIES or padded > 2 * grown + _SLACK_ENTRIES):
                break
            g1, r_max, c_max, real = g1 + 1, r, c, grown
        if r_max and c_max:
            yield g, g1, r_max, c_max
        g = g1


def _pair_blocks(
    queries: torch.Tensor, q: _Graphs, points: torch.Tensor, p: _Graphs
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Blocks ``(g0, a, Q, Q_valid, P, P_valid)`` covering every (query, point) pair of the same graph.

    ``Q`` ``(G, rows, d)`` are query rows ``a ..`` of graphs ``g0 ..``, ``P`` ``(G, M, d)`` those
    graphs' points, both padded (``*_valid`` masks), at most about ``_CHUNK_ENTRIES`` pairs per
    block.  Rows of one graph are split only when the graph alone exceeds the budget, so blocks come
    in (graph, row) order: edges collected block after block stay sorted by query.
    """
    for g0, g1, r, m in _graph_chunks(q.counts, p.counts):
        qs, qv = q.pad(queries, g0, g1, r)
        ps, pv = p.pad(points, g0, g1, m)
        step = r if (g1 - g0) * r * m <= _CHUNK_ENTRIES else max(1, _CHUNK_ENTRIES // m)
        for a in range(0, r, step):
            yield g0, a, qs[:, a : a + step], qv[:, a : a + step], ps, pv


def _distances(queries: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Batched exact Euclidean distances ``(G, R, d) x (G, M, d) -> (G, R, M)``."""
    return torch.cdist(queries, points, compute_mode="donot_use_mm_for_euclid_dist")


def _not_self(a: int, rows: int, cols: int, device: torch.device) -> torch.Tensor:
    """``(rows, cols)`` mask, False where row ``a + i`` is column ``j`` (a point and itself)."""
    return torch.arange(a, a + rows, device=device)[:, None] != torch.arange(cols, device=device)[None, :]


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
    if max_num_neighbors is not None and (
        isinstance(max_num_neighbors, bool) or not isinstance(max_num_neighbors, int) or max_num_neighbors < 1
    ):
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
    graphs = _Graphs(pos.shape[0], batch, pos.device)
    out: list[torch.Tensor] = []
    for g0, a, tgt, tgt_valid, src, src_valid in _pair_blocks(pos, graphs, pos, graphs):
        d = _distances(tgt, src)  # (G, rows = targets, cols = sources)
        mask = (d <= r) & tgt_valid[:, :, None] & src_valid[:, None, :]
        if not loop:
            mask &= _not_self(a, d.shape[1], d.shape[2], pos.device)
        if max_num_neighbors is not None:
            k = min(max_num_neighbors, d.shape[2])
            vals, idx = torch.topk(torch.where(mask, d, float("inf")), k, dim=2, largest=False)
            keep = torch.isfinite(vals)
            gi, ri, _ = keep.nonzero(as_tuple=True)
            ci = idx[keep]
        else:
            gi, ri, ci = mask.nonzero(as_tuple=True)
        base = graphs.starts_t[g0 + gi]
        out.append(torch.stack([base + ci, base + ri + a]))
    return torch.cat(out, dim=1) if out else _empty(pos.device)


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
    if batch_x is not None and batch_y is not None:
        num = int(torch.maximum(batch_x.max(), batch_y.max())) + 1
    gx, gy = _Graphs(x.shape[0], batch_x, x.device, num), _Graphs(y.shape[0], batch_y, y.device, num)
    out: list[torch.Tensor] = []
    for g0, a, qry, qry_valid, cand, cand_valid in _pair_blocks(y, gy, x, gx):
        d = torch.where(cand_valid[:, None, :], _distances(qry, cand), float("inf"))  # (G, queries, candidates)
        vals, idx = torch.topk(d, min(k, d.shape[2]), dim=2, largest=False)
        keep = torch.isfinite(vals) & qry_valid[:, :, None]
        gi, ri, _ = keep.nonzero(as_tuple=True)
        out.append(torch.stack([gy.starts_t[g0 + gi] + ri + a, gx.starts_t[g0 + gi] + idx[keep]]))
    return torch.cat(out, dim=1) if out else _empty(x.device)


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
    graphs = _Graphs(pos.shape[0], batch, pos.device)
    out: list[torch.Tensor] = []
    for g0, a, tgt, tgt_valid, src, src_valid in _pair_blocks(pos, graphs, pos, graphs):
        d = _distances(tgt, src)
        allowed = src_valid[:, None, :]
        if not loop:
            allowed = allowed & _not_self(a, d.shape[1], d.shape[2], pos.device)
        vals, idx = torch.topk(torch.where(allowed, d, float("inf")), min(k, d.shape[2]), dim=2, largest=False)
        keep = torch.isfinite(vals) & tgt_valid[:, :, None]
        gi, ri, _ = keep.nonzero(as_tuple=True)
        base = graphs.starts_t[g0 + gi]
        out.append(torch.stack([base + idx[keep], base + ri + a]))
    return torch.cat(out, dim=1) if out else _empty(pos.device)


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
    graphs = _Graphs(pos.shape[0], batch, pos.device)
    out: list[torch.Tensor] = []
    for g0, g1, m, _ in _graph_chunks(graphs.counts, graphs.counts):
        padded, valid = graphs.pad(pos, g0, g1, m)
        chosen, take = _fps_padded(padded, valid, valid.sum(1), ratio, random_start)
        out.append((chosen + graphs.starts_t[g0:g1, None])[take])
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long, device=pos.device)


def _fps_padded(
    padded: torch.Tensor, valid: torch.Tensor, counts: torch.Tensor, ratio: float, random_start: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Farthest point sampling in ``G`` padded graphs at once: ``(G, steps)`` local indices chosen and
    the mask of those that count (``ceil(ratio * n_g)`` per graph)."""
    num = counts.numel()
    wanted = torch.minimum(torch.ceil(ratio * counts.double()).long().clamp_min(1), counts)
    steps = int(wanted.max())
    rows = torch.arange(num, device=padded.device)
    if random_start:
        first = (torch.rand(num, device=padded.device) * counts).long().clamp_max(counts - 1)
    else:
        first = torch.zeros(num, dtype=torch.long, device=padded.device)
    chosen = torch.zeros(num, steps, dtype=torch.long, device=padded.device)
    chosen[:, 0] = first
    dist = torch.where(valid, _sq(padded - padded[rows, first][:, None]), float("-inf"))
    for t in range(1, steps):
        nxt = torch.argmax(dist, dim=1)
        chosen[:, t] = nxt
        dist = torch.minimum(dist, _sq(padded - padded[rows, nxt][:, None]))
    return chosen, torch.arange(steps, device=padded.device)[None, :] < wanted[:, None]


def fully_connected_graph(batch: torch.Tensor, loop: bool = False) -> torch.Tensor:
    """All ordered pairs ``j -> i`` within each graph of a sorted ``(N,)`` ``batch``; ``(2, E)`` long,
    sorted by target then source."""
    _check_batch(batch, batch.shape[0] if isinstance(batch, torch.Tensor) else -1, "fully_connected_graph: batch")
    if batch.shape[0] == 0:
        return _empty(batch.device)
    graphs = _Graphs(batch.shape[0], batch, batch.device)
    out: list[torch.Tensor] = []
    for g0, g1, m, _ in _graph_chunks(graphs.counts, graphs.counts):
        valid = graphs.pad(torch.zeros(batch.shape[0], 1, device=batch.device), g0, g1, m)[1]
        step = m if (g1 - g0) * m * m <= _CHUNK_ENTRIES else max(1, _CHUNK_ENTRIES // m)
        for a in range(0, m, step):
            rows = valid[:, a : a + step]
            mask = rows[:, :, None] & valid[:, None, :]
            if not loop:
                mask &= _not_self(a, rows.shape[1], m, batch.device)
            gi, ri, ci = mask.nonzero(as_tuple=True)
            base = graphs.starts_t[g0 + gi]
            out.append(torch.stack([base + ci, base + ri + a]))
    return torch.cat(out, dim=1) if out else _empty(batch.device)
