"""Pure-torch graph construction (no torch-cluster / pyg-lib needed).

Conventions (PyG): ``edge_index`` has shape ``(2, E)``; ``edge_index[0]`` is the source ``j`` and
``edge_index[1]`` the target ``i`` (messages flow ``j -> i``, as :class:`~steerable.PointConv`
expects).  ``batch`` is a ``(N,)`` long vector assigning each point to a graph; it must be sorted
(as produced by ``torch_geometric.data.Batch``).  Distances are computed per batch element and in
row chunks, so peak memory is ``O(chunk * N_graph)`` instead of ``O(N^2)``.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch

__all__ = ["radius_graph", "knn_graph", "knn", "fps", "fully_connected_graph"]

_CHUNK_ENTRIES = 1 << 22  # distance-matrix entries held at once


def _segments(batch: torch.Tensor | None, n: int, device: torch.device) -> list[tuple[int, int]]:
    """Contiguous ``(start, end)`` ranges of each graph in a sorted ``batch`` vector of length ``n``."""
    if batch is None:
        return [(0, n)]
    if batch.numel() != n:
        raise ValueError(f"batch has {batch.numel()} entries, expected {n}")
    if n > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("batch must be sorted")
    if n == 0:
        return []
    counts = torch.bincount(batch.long())
    ends = torch.cumsum(counts, 0).tolist()
    starts = [0] + ends[:-1]
    return [(s, e) for s, e in zip(starts, ends) if e > s]


def _segments_by_id(batch: torch.Tensor | None, n: int, num: int) -> list[tuple[int, int]]:
    """``(start, end)`` for graph ids ``0..num-1`` (empty ranges kept), for pairing two batches."""
    if batch is None:
        return [(0, n)]
    counts = torch.bincount(batch.long(), minlength=num)
    ends = torch.cumsum(counts, 0).tolist()
    starts = [0] + ends[:-1]
    return list(zip(starts, ends))


def _row_chunks(n_rows: int, n_cols: int) -> Iterator[tuple[int, int]]:
    step = max(1, _CHUNK_ENTRIES // max(1, n_cols))
    for s in range(0, n_rows, step):
        yield s, min(n_rows, s + step)


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
        max_num_neighbors: keep at most this many sources per target (the nearest ones); ``None``
            keeps all (unlike PyG, whose default is 32).

    Returns:
        ``(2, E)`` long; sorted by target, then by distance when ``max_num_neighbors`` is set,
        else by source index.
    """
    out: list[torch.Tensor] = []
    for s, e in _segments(batch, pos.shape[0], pos.device):
        p = pos[s:e]
        for a, b in _row_chunks(e - s, e - s):
            d = torch.cdist(p[a:b], p)  # (rows=targets, cols=sources)
            mask = d <= r
            if not loop:
                rows = torch.arange(a, b, device=pos.device)
                mask[rows - a, rows] = False
            if max_num_neighbors is not None:
                dm = torch.where(mask, d, torch.full_like(d, float("inf")))
                k = min(max_num_neighbors, dm.shape[1])
                vals, idx = torch.topk(dm, k, dim=1, largest=False)
                keep = torch.isfinite(vals)
                tgt = (torch.arange(a, b, device=pos.device)[:, None].expand_as(idx))[keep]
                src = idx[keep]
            else:
                ti, sj = mask.nonzero(as_tuple=True)
                tgt, src = ti + a, sj
            out.append(torch.stack([src + s, tgt + s]))
    if not out:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    return torch.cat(out, dim=1).long()


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
        ``col = [1]`` indexes ``x``.  For a bipartite message-passing edge index ``x -> y``
        (source first) use ``knn(...).flip(0)``.
    """
    num = 1
    if batch_x is not None or batch_y is not None:
        if batch_x is None or batch_y is None:
            raise ValueError("knn: give both batch_x and batch_y or neither")
        num = int(max(batch_x.max().item() if batch_x.numel() else -1, batch_y.max().item() if batch_y.numel() else -1)) + 1
    seg_x = _segments_by_id(batch_x, x.shape[0], num)
    seg_y = _segments_by_id(batch_y, y.shape[0], num)
    out: list[torch.Tensor] = []
    for (xs, xe), (ys, ye) in zip(seg_x, seg_y):
        if xe == xs or ye == ys:
            continue
        kk = min(k, xe - xs)
        for a, b in _row_chunks(ye - ys, xe - xs):
            d = torch.cdist(y[ys + a : ys + b], x[xs:xe])
            idx = torch.topk(d, kk, dim=1, largest=False).indices
            row = torch.arange(ys + a, ys + b, device=x.device)[:, None].expand_as(idx)
            out.append(torch.stack([row.reshape(-1), (idx + xs).reshape(-1)]))
    if not out:
        return torch.empty(2, 0, dtype=torch.long, device=x.device)
    return torch.cat(out, dim=1).long()


def knn_graph(pos: torch.Tensor, k: int, batch: torch.Tensor | None = None, loop: bool = False) -> torch.Tensor:
    """Edges ``j -> i`` from each point's ``k`` nearest neighbours ``j`` (same graph).

    Args:
        pos: ``(N, d)``.  k: neighbours per target.  batch: ``(N,)`` sorted graph ids or ``None``.
        loop: whether a point may be its own neighbour (it then counts towards ``k``).

    Returns:
        ``(2, N*k)`` long (fewer for graphs with at most ``k`` points), ``[0]`` source, ``[1]`` target.
    """
    out: list[torch.Tensor] = []
    for s, e in _segments(batch, pos.shape[0], pos.device):
        p = pos[s:e]
        n = e - s
        kk = min(k, n if loop else n - 1)
        if kk <= 0:
            continue
        for a, b in _row_chunks(n, n):
            d = torch.cdist(p[a:b], p)
            if not loop:
                rows = torch.arange(a, b, device=pos.device)
                d[rows - a, rows] = float("inf")
            idx = torch.topk(d, kk, dim=1, largest=False).indices
            tgt = torch.arange(a, b, device=pos.device)[:, None].expand_as(idx)
            out.append(torch.stack([idx.reshape(-1) + s, tgt.reshape(-1) + s]))
    if not out:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    return torch.cat(out, dim=1).long()


def fps(
    pos: torch.Tensor,
    ratio: float = 0.5,
    batch: torch.Tensor | None = None,
    random_start: bool = False,
) -> torch.Tensor:
    """Farthest point sampling: indices of ``ceil(ratio * N_b)`` points per graph.

    Greedy: start at the first point of each graph (or a random one), then repeatedly take the
    point farthest from the chosen set.  Returns ``(M,)`` long indices into ``pos``, grouped by
    graph in order (so ``batch[idx]`` stays sorted).  Deterministic when ``random_start=False``.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError("fps: ratio must be in (0, 1]")
    out: list[torch.Tensor] = []
    for s, e in _segments(batch, pos.shape[0], pos.device):
        p = pos[s:e]
        n = e - s
        m = max(1, int(-(-ratio * n // 1)))  # ceil
        m = min(m, n)
        chosen = torch.empty(m, dtype=torch.long, device=pos.device)
        first = int(torch.randint(n, (1,)).item()) if random_start else 0
        chosen[0] = first
        dist = ((p - p[first]) ** 2).sum(-1)
        for t in range(1, m):
            nxt = torch.argmax(dist)
            chosen[t] = nxt
            dist = torch.minimum(dist, ((p - p[nxt]) ** 2).sum(-1))
        out.append(chosen + s)
    if not out:
        return torch.empty(0, dtype=torch.long, device=pos.device)
    return torch.cat(out)


def fully_connected_graph(batch: torch.Tensor, loop: bool = False) -> torch.Tensor:
    """All ordered pairs ``j -> i`` within each graph of a sorted ``(N,)`` ``batch``; ``(2, E)`` long."""
    out: list[torch.Tensor] = []
    for s, e in _segments(batch, batch.shape[0], batch.device):
        idx = torch.arange(s, e, device=batch.device)
        src = idx.repeat(e - s)
        tgt = idx.repeat_interleave(e - s)
        if not loop:
            keep = src != tgt
            src, tgt = src[keep], tgt[keep]
        out.append(torch.stack([src, tgt]))
    if not out:
        return torch.empty(2, 0, dtype=torch.long, device=batch.device)
    return torch.cat(out, dim=1)
