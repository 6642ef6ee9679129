"""Steerable residual point-convolution network for QM9 (invariant molecular properties).

* Nodes: one-hot atom type over H, C, N, O, F (5 invariant scalars).
* Graph: ``"radius"`` (all pairs within ``cutoff`` Angstrom, pure-torch
  :func:`steerable.graph.radius_graph`) or ``"bond"`` (the dataset's bonds).  PyG convention
  ``edge_index[0]`` = source ``j``, ``[1]`` = target ``i``.
* Edge attributes (6 invariant scalars): bond type one-hot (single/double/triple/aromatic/none) and
  the distance ``|pos_j - pos_i|``.
* Layers: ``h <- h + Gate(PointConv(h) + SelfLinear(h))`` over a hidden field of scalars and
  standard vectors; the last block outputs scalars only; sum (or mean) pooling; an MLP head.

Invariant under the chosen group (rotations / reflections), translations and atom permutations.
Shapes: ``forward(batch) -> (B,)`` standardised prediction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.nn import global_add_pool, global_mean_pool

import steerable as st
from steerable.graph import radius_graph
from steerable.nn import PointConvBlock

from .data import ATOM_TYPES

__all__ = ["QM9Net", "edge_features"]


def edge_features(batch, graph: str, cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edge_index (2, E), edge_attr (E, 6))`` for a PyG batch with ``pos``, ``edge_index``, ``edge_attr``."""
    pos, n = batch.pos, batch.pos.shape[0]
    bond_index = batch.edge_index
    bond_attr = batch.edge_attr[:, :4].to(pos.dtype)
    if graph == "bond":
        ei, battr = bond_index, bond_attr
    elif graph == "radius":
        ei = radius_graph(pos, cutoff, batch.batch)
        keys = bond_index[0] * n + bond_index[1]
        order = torch.argsort(keys)
        skeys = keys[order]
        q = ei[0] * n + ei[1]
        loc = torch.searchsorted(skeys, q).clamp(max=max(skeys.numel() - 1, 0))
        found = (skeys.numel() > 0) & (skeys[loc] == q) if skeys.numel() else torch.zeros_like(q, dtype=torch.bool)
        battr = torch.zeros(ei.shape[1], 4, dtype=pos.dtype, device=pos.device)
        if skeys.numel():
            battr[found] = bond_attr[order[loc[found]]]
    else:
        raise ValueError(f"graph must be 'radius' or 'bond', got {graph!r}")
    none = 1.0 - battr.sum(1, keepdim=True)
    dist = (pos[ei[0]] - pos[ei[1]]).norm(dim=-1, keepdim=True)
    return ei, torch.cat([battr, none, dist], 1)


class QM9Net(torch.nn.Module):
    """O(3)/SO(3)-steerable residual PointConv network with an invariant head.

    Args:
        group, backend: symmetry group name and backend (``None``: registry choice).
        hidden_scalars, hidden_vectors: trivial / standard fields per hidden layer.
        layers: number of point convolutions (>= 2).
        kernel_hidden, kernel_layers, radial_features: kernel-MLP size.
        cutoff: radius-graph cutoff in Angstrom (also the kernels' ``max_radius``).
        graph: ``"radius"`` or ``"bond"``.  pool: ``"sum"`` or ``"mean"``.
    """

    def __init__(
        self,
        group: str = "O(3)",
        backend: str | None = "escnn",
        hidden_scalars: int = 16,
        hidden_vectors: int = 8,
        layers: int = 4,
        kernel_hidden: int = 16,
        kernel_layers: int = 1,
        radial_features: int = 8,
        cutoff: float = 5.0,
        graph: str = "radius",
        pool: str = "sum",
        envelope_width: float | None = None,
        kernel_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError("QM9Net needs at least 2 layers")
        G = st.group(group, backend=backend) if backend else st.group(group)
        self.G, self.graph, self.cutoff, self.pool = G, graph, cutoff, pool
        s, v = G.trivial_rep(), G.standard_rep()
        self.in_type = st.FieldType(G, [s] * len(ATOM_TYPES))
        self.hidden_type = st.FieldType(G, [s] * hidden_scalars + [v] * hidden_vectors)
        self.out_type = st.FieldType(G, [s] * hidden_scalars)
        kw: dict[str, Any] = dict(
            edge_attr=6,
            hidden_channels=kernel_hidden,
            hidden_layers=kernel_layers,
            radial_features=radial_features,
            max_radius=cutoff,
            envelope_width=envelope_width,
        )
        if kernel_options:
            kw["options"] = dict(kernel_options)
        blocks = [PointConvBlock(self.in_type, self.hidden_type, True, kw)]
        blocks += [PointConvBlock(self.hidden_type, self.hidden_type, True, kw) for _ in range(layers - 2)]
        blocks.append(PointConvBlock(self.hidden_type, self.out_type, True, kw))
        self.blocks = torch.nn.ModuleList(blocks)
        self.head = torch.nn.Sequential(
            torch.nn.Linear(hidden_scalars, hidden_scalars), torch.nn.SiLU(), torch.nn.Linear(hidden_scalars, 1)
        )
        self.register_buffer("atom_types", torch.tensor(ATOM_TYPES), persistent=False)

    def forward(self, batch) -> torch.Tensor:
        pos = batch.pos
        x = (batch.z[:, None] == self.atom_types).to(pos.dtype)
        ei, ea = edge_features(batch, self.graph, self.cutoff)
        h = self.blocks[0](x, pos, ei, ea)
        for blk in self.blocks[1:-1]:
            h = h + blk(h, pos, ei, ea)
        h = self.blocks[-1](h, pos, ei, ea)
        b = batch.batch if batch.batch is not None else torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
        pooled = global_add_pool(h, b) if self.pool == "sum" else global_mean_pool(h, b)
        return self.head(pooled).squeeze(-1)
