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
    ref = {
        (j, i)
        for i in range(len(batch))
        for j in range(len(batch))
        if batch[i] == batch[j] and (pos[i] - pos[j]).norm() <= 0.5 and (loop or i != j)
    }
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


# -- batched implementation: brute force per graph, odd layouts, chunking, torch-cluster dispatch ------------


def _brute_radius(pos, r, batch, loop):
    """All (j, i) of one graph within r: the dense N x N difference norms, no chunking, no cdist."""
    d = (pos[:, None, :] - pos[None, :, :]).norm(dim=-1)
    ok = (batch[:, None] == batch[None, :]) & (d <= r)
    if not loop:
        ok &= ~torch.eye(len(batch), dtype=torch.bool)
    return {(j, i) for i, j in ok.nonzero().tolist()}


def _brute_knn(x, y, k, bx, by, exclude_self=False):
    """{(query, candidate)}: the k nearest candidates of each query in its graph."""
    out = set()
    for q in range(len(y)):
        cand = [j for j in range(len(x)) if bx[j] == by[q] and not (exclude_self and j == q)]
        cand.sort(key=lambda j: float((x[j] - y[q]).norm()))
        out |= {(q, j) for j in cand[:k]}
    return out


# graph ids 1 and 4 have no points; sizes 1 and 2 are below k
SIZES_WITH_GAPS = {0: 9, 2: 1, 3: 17, 5: 2, 6: 6}


def _gapped_batch() -> torch.Tensor:
    return torch.cat([torch.full((n,), g, dtype=torch.long) for g, n in SIZES_WITH_GAPS.items()])


@pytest.mark.parametrize("loop", [False, True])
def test_radius_graph_gapped_batch_and_order(loop: bool) -> None:
    batch = _gapped_batch()
    pos = torch.rand(len(batch), 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ei = graph.radius_graph(pos, 0.6, batch, loop=loop)
    assert _edge_set(ei) == _brute_radius(pos, 0.6, batch, loop) and ei.shape[1] == len(_edge_set(ei))
    key = ei[1] * len(batch) + ei[0]  # documented order: by target, then source
    assert bool((key[1:] > key[:-1]).all())


def test_radius_graph_max_neighbors_batched_matches_nearest() -> None:
    batch = _gapped_batch()
    pos = torch.rand(len(batch), 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    ei = graph.radius_graph(pos, 0.7, batch, max_num_neighbors=3)
    within = _brute_radius(pos, 0.7, batch, False)
    for i in range(len(batch)):
        cand = sorted((float((pos[j] - pos[i]).norm()), j) for (j, t) in within if t == i)
        assert ei[0, ei[1] == i].tolist() == [j for _, j in cand[:3]]  # nearest first


@pytest.mark.parametrize("loop", [False, True])
def test_knn_graph_gapped_batch(loop: bool) -> None:
    batch = _gapped_batch()
    pos = torch.randn(len(batch), 3, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    ei = graph.knn_graph(pos, 4, batch, loop=loop)
    ref = {(j, i) for i, j in _brute_knn(pos, pos, 4, batch, batch, exclude_self=not loop)}
    assert _edge_set(ei) == ref and ei.shape[1] == len(ref)


def test_knn_bipartite_graph_without_candidates() -> None:
    bx = torch.tensor([0, 0, 0, 2, 2, 2, 2])  # graph 1 has queries but no candidates
    by = torch.tensor([0, 1, 1, 2, 2])
    g = torch.Generator().manual_seed(9)
    x, y = torch.randn(7, 3, generator=g), torch.randn(5, 3, generator=g)
    row, col = graph.knn(x, y, 2, bx, by)
    assert _edge_set(torch.stack([row, col])) == _brute_knn(x, y, 2, bx, by)
    assert not bool(((row == 1) | (row == 2)).any())


@pytest.mark.parametrize("entries", [40, 300, 5000])
def test_chunked_blocks_give_the_same_edges_in_order(monkeypatch: pytest.MonkeyPatch, entries: int) -> None:
    """40: rows of one graph split; 300: one graph per block; 5000: several graphs per block."""
    batch = _gapped_batch()
    pos = torch.rand(len(batch), 3, generator=torch.Generator().manual_seed(10), dtype=torch.float64)

    def build():
        return [
            graph.radius_graph(pos, 0.6, batch),
            graph.knn_graph(pos, 3, batch),
            graph.knn(pos, pos, 2, batch, batch),
            graph.fully_connected_graph(batch),
        ]

    full = build()
    monkeypatch.setattr(graph, "_CHUNK_ENTRIES", entries)
    chunked = build()
    for a, b in zip(full, chunked):
        assert torch.equal(a, b)


def test_empty_inputs_and_single_points() -> None:
    empty = torch.zeros(0, 3)
    none = torch.zeros(0, dtype=torch.long)
    assert graph.radius_graph(empty, 1.0, none).shape == (2, 0)
    assert graph.knn_graph(empty, 3, none).shape == (2, 0)
    assert graph.knn(empty, torch.randn(4, 3), 2).shape == (2, 0)
    assert graph.fps(empty, 0.5, none).shape == (0,)
    one = torch.zeros(1, 3)
    assert graph.radius_graph(one, 1.0).shape == (2, 0)
    assert graph.radius_graph(one, 1.0, loop=True).tolist() == [[0], [0]]
    assert graph.knn_graph(one, 3).shape == (2, 0)


def test_bad_inputs_are_named() -> None:
    pos = torch.rand(4, 3)
    with pytest.raises(ValueError, match="sorted"):
        graph.radius_graph(pos, 1.0, torch.tensor([1, 0, 0, 1]))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        graph.knn_graph(pos, 2, torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="positive int"):
        graph.knn_graph(pos, 0)
    with pytest.raises(ValueError, match="max_num_neighbors"):
        graph.radius_graph(pos, 1.0, max_num_neighbors=0)
    with pytest.raises(ValueError, match=r"floating \(N, d\)"):
        graph.radius_graph(torch.ones(4, 3, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="both batch_x and batch_y"):
        graph.knn(pos, pos, 1, torch.zeros(4, dtype=torch.long))


def test_fps_batched_matches_greedy_reference_per_graph() -> None:
    batch = _gapped_batch()
    pos = torch.randn(len(batch), 3, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    idx = graph.fps(pos, 0.4, batch)
    expected = []
    for g, n in SIZES_WITH_GAPS.items():
        members = (batch == g).nonzero().flatten().tolist()
        m = min(n, max(1, -(-2 * n // 5)))  # ceil(0.4 n)
        chosen = [members[0]]
        while len(chosen) < m:
            far = max(members, key=lambda j: (min(float((pos[j] - pos[c]).norm()) for c in chosen), -j))
            chosen.append(far)
        expected += chosen
    assert idx.tolist() == expected
    torch.manual_seed(0)
    rnd = graph.fps(pos, 0.4, batch, random_start=True)
    assert rnd.shape == idx.shape and torch.equal(batch[rnd], batch[idx])


def test_torch_cluster_is_optional_and_dispatched_to(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without torch_cluster (as here) the pure-torch path runs; with one, it is called with PyG's
    arguments and ``max_num_neighbors`` keeps the nearest sources of what it returns."""
    import sys
    import types

    monkeypatch.setattr(graph, "_torch_cluster", graph._UNSET)
    monkeypatch.setitem(sys.modules, "torch_cluster", None)  # makes `import torch_cluster` fail
    assert graph._cluster() is None
    batch = _gapped_batch()
    pos = torch.rand(len(batch), 3, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    fallback = graph.radius_graph(pos, 0.6, batch)
    capped = graph.radius_graph(pos, 0.6, batch, max_num_neighbors=2)

    calls = []
    fake = types.ModuleType("torch_cluster")

    def radius_graph(x, r, batch=None, loop=False, max_num_neighbors=32, flow="source_to_target"):
        calls.append(("radius_graph", max_num_neighbors, flow))
        ei = torch.tensor(sorted(_brute_radius(x, r, batch, loop)), dtype=torch.long).t()
        return ei[:, torch.randperm(ei.shape[1], generator=torch.Generator().manual_seed(0))]  # any order

    def knn_graph(x, k, batch=None, loop=False, flow="source_to_target"):
        calls.append(("knn_graph", k, flow))
        return torch.tensor(sorted((j, i) for i, j in _brute_knn(x, x, k, batch, batch, not loop))).t()

    def knn(x, y, k, batch_x=None, batch_y=None):
        calls.append(("knn", k))
        return torch.tensor(sorted(_brute_knn(x, y, k, batch_x, batch_y))).t()

    fake.radius_graph, fake.knn_graph, fake.knn = radius_graph, knn_graph, knn
    monkeypatch.setattr(graph, "_torch_cluster", fake)
    assert _edge_set(graph.radius_graph(pos, 0.6, batch)) == _edge_set(fallback)
    assert calls[-1] == ("radius_graph", max(SIZES_WITH_GAPS.values()), "source_to_target")
    assert torch.equal(graph.radius_graph(pos, 0.6, batch, max_num_neighbors=2), capped)  # nearest, in order
    assert _edge_set(graph.knn_graph(pos, 3, batch)) == _edge_set(graph._empty(pos.device)) | {
        (j, i) for i, j in _brute_knn(pos, pos, 3, batch, batch, True)
    }
    assert calls[-1] == ("knn_graph", 3, "source_to_target")
    graph.knn(pos, pos, 2, batch, batch)
    assert calls[-1] == ("knn", 2)


def test_skewed_graph_sizes_are_not_all_padded_to_the_largest(monkeypatch: pytest.MonkeyPatch) -> None:
    """One graph of 200 points among 300 of 3: the distances computed stay within twice (plus the
    slack for grouping tiny graphs) those a per-graph loop computes, and the edges are right."""
    sizes = [3] * 150 + [200] + [3] * 150
    batch = _batch(sizes)
    pos = torch.rand(len(batch), 3, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    computed = []
    real_distances = graph._distances

    def recording(q, p):
        computed.append(q.shape[0] * q.shape[1] * p.shape[1])
        return real_distances(q, p)

    monkeypatch.setattr(graph, "_distances", recording)
    ei = graph.radius_graph(pos, 0.3, batch)
    needed = sum(n * n for n in sizes)
    assert sum(computed) <= 2 * needed + graph._SLACK_ENTRIES * len(computed)
    assert sum(computed) < 0.05 * len(sizes) * 200 * 200  # padding all to 200 would be this x 20
    assert _edge_set(ei) == _brute_radius(pos, 0.3, batch, False)
