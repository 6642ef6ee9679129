"""Pure-torch graph utilities against brute-force references."""
from __future__ import annotations

import pytest
import torch

from steerable import graph


def _batch(sizes: list[int]) -> torch.Tensor:
    return torch.cat([torch.full((n,), i, dtype=torch.long) for i, n in enumerate(sizes)])


def _edge_set(ei: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, ei.t().tolist()))


@pytest.mark.parametrize("loop", [False, True])
def test_radius_graph_brute_force(loop: bool) -> None:
    g = torch.Generator().manual_seed(0)
    sizes = [7, 1, 12, 5]
    batch = _batch(sizes)
    pos = torch.rand(len(batch), 3, generator=g)
    ei = graph.radius_graph(pos, 0.5, batch, loop=loop)
    ref = {(j, i) for i in range(len(batch)) for j in range(len(batch))
           if batch[i] == batch[j] and (pos[i] - pos[j]).norm() <= 0.5 and (loop or i != j)}
    assert _edge_set(ei) == ref and ei.shape[1] == len(ref)


def test_radius_graph_max_neighbors_keeps_nearest() -> None:
    pos = torch.rand(30, 3, generator=torch.Generator().manual_seed(1))
    ei = graph.radius_graph(pos, 10.0, max_num_neighbors=4)
    assert ei.shape[1] == 30 * 4
    for i in range(30):
        src = ei[0, ei[1] == i]
        d = (pos - pos[i]).norm(dim=1)
        d[i] = float("inf")
        assert set(src.tolist()) == set(torch.topk(d, 4, largest=False).indices.tolist())


def test_knn_graph_brute_force() -> None:
    batch = _batch([6, 9, 2])
    pos = torch.randn(len(batch), 3, generator=torch.Generator().manual_seed(2))
    ei = graph.knn_graph(pos, 3, batch)
    for i in range(len(batch)):
        src = ei[0, ei[1] == i].tolist()
        same = (batch == batch[i]).nonzero().flatten().tolist()
        cand = sorted((float((pos[j] - pos[i]).norm()), j) for j in same if j != i)
        assert set(src) == {j for _, j in cand[:3]}


def test_knn_bipartite_matches_brute_force() -> None:
    bx, by = _batch([8, 5]), _batch([3, 2])
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(13, 3, generator=g), torch.randn(5, 3, generator=g)
    row, col = graph.knn(x, y, 2, bx, by)
    for q in range(5):
        cand = (bx == by[q]).nonzero().flatten()
        d = (x[cand] - y[q]).norm(dim=1)
        assert set(col[row == q].tolist()) == set(cand[torch.topk(d, 2, largest=False).indices].tolist())


def test_fps_properties() -> None:
    batch = _batch([10, 20])
    pos = torch.randn(30, 3, generator=torch.Generator().manual_seed(4))
    idx = graph.fps(pos, 0.5, batch)
    assert idx.shape == (15,) and len(set(idx.tolist())) == 15
    assert (batch[idx] == torch.tensor([0] * 5 + [1] * 10)).all()
    # greedy farthest-point property of the second pick in graph 0
    assert idx[1] == torch.argmax((pos[:10] - pos[0]).norm(dim=1))
    # each new pick maximises distance to the chosen set (brute force)
    sel = idx[5:]
    for t in range(1, len(sel)):
        d = torch.cdist(pos[10:30], pos[sel[:t]]).min(dim=1).values
        assert torch.isclose(d.max(), d[sel[t] - 10])


def test_fully_connected_graph() -> None:
    batch = _batch([3, 1, 4])
    ei = graph.fully_connected_graph(batch)
    assert ei.shape[1] == 3 * 2 + 0 + 4 * 3
    assert (batch[ei[0]] == batch[ei[1]]).all() and (ei[0] != ei[1]).all()


def test_chunking_equivalence(monkeypatch: pytest.MonkeyPatch) -> None:
    pos = torch.rand(50, 3, generator=torch.Generator().manual_seed(5))
    full = graph.radius_graph(pos, 0.3)
    monkeypatch.setattr(graph, "_CHUNK_ENTRIES", 120)  # forces chunks of 2 rows
    assert _edge_set(graph.radius_graph(pos, 0.3)) == _edge_set(full)
    knn_chunked = graph.knn_graph(pos, 4)
    monkeypatch.setattr(graph, "_CHUNK_ENTRIES", 1 << 22)
    assert _edge_set(knn_chunked) == _edge_set(graph.knn_graph(pos, 4))
