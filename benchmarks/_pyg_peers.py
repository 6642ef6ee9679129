"""torch-geometric's QM9 peers (``SchNet``, ``DimeNetPlusPlus``) running on our pure-torch graph code.

torch-geometric builds both models' interaction graphs with torch-cluster's ``radius_graph`` and
DimeNet's angle triplets with torch_sparse's ``SparseTensor``; neither package is installed here.  This
module gives them :func:`steerable.graph.radius_graph` and :func:`triplets` (below, pure torch) instead:

* ``SchNet`` exposes its graph builder as the submodule ``interaction_graph``: :class:`SchNetPeer`
  replaces that submodule.
* ``DimeNet.forward`` calls the module-level names ``radius_graph`` and ``triplets`` of
  ``torch_geometric.nn.models.dimenet``.  :class:`PureTorchDimeNetPlusPlus` (a subclass) rebinds those
  two names only for the duration of its own ``forward`` (:func:`pure_torch_dimenet_ops`, restored in a
  ``finally``), so no other code sees the swap except code running inside that call.

Both wrappers take a PyG batch (``z``, ``pos`` in Å, ``batch``) and return a ``(B,)`` prediction.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator

import torch

from steerable.graph import radius_graph

Triplets = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def triplets(edge_index: torch.Tensor, num_nodes: int) -> Triplets:
    """DimeNet's angle triplets ``k -> j -> i`` of a directed graph, in pure torch.

    The contract of ``torch_geometric.nn.models.dimenet.triplets``: ``edge_index`` is ``(2, E)`` long with
    ``edge_index[0] = j`` (source) and ``edge_index[1] = i`` (target) of each edge ``j -> i``.  For every
    edge ``e = j -> i`` and every edge ``f = k -> j`` into its source with ``k != i`` there is one
    triplet.  Returns ``(i, j, idx_i, idx_j, idx_k, idx_kj, idx_ji)``: ``i = edge_index[1]`` and
    ``j = edge_index[0]`` (``(E,)`` each), then per triplet (``(T,)`` long each) its three nodes, the id
    ``f`` of the edge ``k -> j`` and the id ``e`` of the edge ``j -> i`` (ids are columns of
    ``edge_index``).  Order: by ``e`` ascending, and within one ``e`` by ``k`` ascending (then by ``f``
    for parallel edges), the order PyG's row-sorted sparse adjacency yields.
    """
    if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(
            f"triplets: edge_index must be a (2, E) tensor, got {getattr(edge_index, 'shape', type(edge_index))}"
        )
    if edge_index.dtype != torch.long:
        raise ValueError(f"triplets: edge_index must be torch.long, got {edge_index.dtype}")
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 0:
        raise ValueError(f"triplets: num_nodes must be a non-negative int, got {num_nodes!r}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(
            f"triplets: node ids must lie in [0, {num_nodes}), got [{int(edge_index.min())}, {int(edge_index.max())}]"
        )
    j, i = edge_index[0], edge_index[1]
    dev, n_edges = edge_index.device, edge_index.shape[1]
    # The edges into each node, grouped by target, then by source, then by edge id (stable sorts).
    by_source = torch.argsort(j, stable=True)
    into = by_source[torch.argsort(i[by_source], stable=True)]
    count_in = torch.bincount(i, minlength=num_nodes)
    first_in = torch.cumsum(count_in, 0) - count_in
    # For every edge e = j -> i, every edge f into j: the block into[first_in[j] : first_in[j] + count_in[j]].
    per_edge = count_in[j]
    idx_ji = torch.repeat_interleave(torch.arange(n_edges, device=dev), per_edge)
    start = torch.cumsum(per_edge, 0) - per_edge
    offset = torch.arange(idx_ji.numel(), device=dev) - start[idx_ji]
    idx_kj = into[first_in[j][idx_ji] + offset]
    idx_i, idx_j, idx_k = i[idx_ji], j[idx_ji], j[idx_kj]
    keep = idx_i != idx_k  # no back-tracking k = i
    return i, j, idx_i[keep], idx_j[keep], idx_k[keep], idx_kj[keep], idx_ji[keep]


def _pyg_style_radius_graph(
    x: torch.Tensor,
    r: float,
    batch: torch.Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int = 32,
    flow: str = "source_to_target",
    num_workers: int = 1,
    batch_size: int | None = None,
) -> torch.Tensor:
    """``torch_geometric.nn.radius_graph``'s signature on :func:`steerable.graph.radius_graph`.

    One difference: past ``max_num_neighbors`` sources per target ours keeps the nearest ones, PyG an
    arbitrary subset; a QM9 molecule (at most 29 atoms) never reaches DimeNet's cap of 32.
    ``num_workers`` and ``batch_size`` are accepted and ignored, as PyG ignores them on CPU.
    """
    if flow != "source_to_target":
        raise ValueError(f"radius_graph: only flow='source_to_target' is supported here, got {flow!r}")
    return radius_graph(x, r, batch, loop=loop, max_num_neighbors=max_num_neighbors)


_swap_lock = threading.RLock()


@contextlib.contextmanager
def pure_torch_dimenet_ops() -> Iterator[None]:
    """Within the block, ``torch_geometric.nn.models.dimenet`` builds its graph with our pure-torch
    radius graph and its triplets with :func:`triplets`; the module's own names come back on exit."""
    from torch_geometric.nn.models import dimenet

    with _swap_lock:
        missing = [name for name in ("radius_graph", "triplets") if not hasattr(dimenet, name)]
        if missing:
            raise RuntimeError(
                f"torch_geometric.nn.models.dimenet has no {missing}: this torch-geometric version builds "
                "DimeNet's graph differently; update benchmarks/_pyg_peers.py"
            )
        saved = dimenet.radius_graph, dimenet.triplets
        dimenet.radius_graph, dimenet.triplets = _pyg_style_radius_graph, triplets
        try:
            yield
        finally:
            dimenet.radius_graph, dimenet.triplets = saved


@functools.cache
def _dimenet_plus_plus() -> type:
    from torch_geometric.nn.models import DimeNetPlusPlus

    class PureTorchDimeNetPlusPlus(DimeNetPlusPlus):
        """torch-geometric's ``DimeNetPlusPlus`` whose forward uses our radius graph and triplets."""

        def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
            with pure_torch_dimenet_ops():
                return super().forward(z, pos, batch)

    return PureTorchDimeNetPlusPlus


# DimeNet++'s published QM9 setting (Gasteiger et al. 2020, its reference config).
DIMENET_PP_QM9 = dict(
    hidden_channels=128,
    out_emb_channels=256,
    int_emb_size=64,
    basis_emb_size=8,
    num_blocks=4,
    num_spherical=7,
    num_radial=6,
    cutoff=5.0,
    envelope_exponent=5,
    num_before_skip=1,
    num_after_skip=2,
    num_output_layers=3,
)


class DimeNetPPPeer(torch.nn.Module):
    """torch-geometric's ``DimeNetPlusPlus`` (one output) on a PyG batch: ``(B,)`` prediction.

    ``options`` override :data:`DIMENET_PP_QM9` (e.g. ``output_initializer="glorot_orthogonal"`` for a
    network whose output does not start at zero).
    """

    def __init__(self, **options) -> None:
        super().__init__()
        self.net = _dimenet_plus_plus()(out_channels=1, **{**DIMENET_PP_QM9, **options})

    def forward(self, batch) -> torch.Tensor:
        return self.net(batch.z, batch.pos, batch.batch).squeeze(-1)


class _TorchRadiusGraph(torch.nn.Module):
    """SchNet's interaction graph (edges within ``cutoff`` and their lengths) from our pure-torch builder."""

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff

    def forward(self, pos: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ei = radius_graph(pos, self.cutoff, batch)
        return ei, (pos[ei[0]] - pos[ei[1]]).norm(dim=-1)


class SchNetPeer(torch.nn.Module):
    """torch-geometric's ``SchNet`` (128 channels, 128 filters, 6 interactions, 50 Gaussians: its QM9
    setting) on a PyG batch, ``(B,)`` prediction, its graph from our pure-torch radius graph."""

    def __init__(self, cutoff: float = 5.0) -> None:
        super().__init__()
        from torch_geometric.nn.models import SchNet

        self.net = SchNet(hidden_channels=128, num_filters=128, num_interactions=6, num_gaussians=50, cutoff=cutoff)
        self.net.interaction_graph = _TorchRadiusGraph(cutoff)

    def forward(self, batch) -> torch.Tensor:
        return self.net(batch.z, batch.pos, batch.batch).squeeze(-1)
