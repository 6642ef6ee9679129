"""Steerable point-cloud classifier for ModelNet: implicit point convolutions with downsampling.

Stages ``s = 0..S-1``: points ``P_s`` (``P_0`` = input cloud), ``P_{s+1}`` = farthest-point (or random)
sample of ``P_s`` with ``ratio``.  Stage ``s`` runs a residual block on the kNN graph of ``P_s``
(``k`` neighbours, edges ``j -> i`` with PyG convention ``edge_index[0]`` = source) and then a
bipartite PointConv ``P_s -> P_{s+1}`` (each new point gathers its ``k`` nearest old points).
Input field: one invariant scalar (constant 1) per point; hidden fields: scalars + standard vectors;
edge attribute: the distance.  The last convolution outputs scalars; mean pooling; MLP head.

Invariant under the chosen group (e.g. ``SO(2)`` about z, ``SO(3)``, ``O(3)``) acting on positions
and under translations (positions are centred per cloud first).  Shapes: ``forward(pos (N, 3),
batch (N,)) -> (B, num_classes)`` logits.
"""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.nn import global_mean_pool

import steerable as st
from steerable.graph import fps, knn, knn_graph
from steerable.nn import Gate, PointConvBlock

__all__ = ["ModelNetNet"]


class _Down(torch.nn.Module):
    """Bipartite ``Gate(PointConv(P_s -> P_{s+1}))`` from a field on ``P_s`` to one on ``P_{s+1}``."""

    def __init__(self, in_type: st.FieldType, out_type: st.FieldType, conv_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.gate = Gate(out_type)
        self.conv = st.PointConv(in_type, self.gate.in_type, **conv_kwargs)

    def forward(self, x, pos_src, pos_dst, edge_index, edge_attr):
        return self.gate(self.conv(x, (pos_src, pos_dst), edge_index, edge_attr))


class ModelNetNet(torch.nn.Module):
    """Args:
    num_classes: output logits.  group, dim-3 group name (``"SO(2)"`` is taken about z); backend.
    hidden_scalars, hidden_vectors: fields per hidden layer.  stages: downsampling stages.
    ratio: kept fraction per stage.  k: neighbours.  sampling: ``"fps"`` or ``"random"``.
    kernel_hidden, kernel_layers, radial_features: kernel-MLP size.  max_radius: radial range
    (the cloud lies in the unit ball).
    """

    def __init__(
        self,
        num_classes: int,
        group: str = "SO(3)",
        backend: str | None = "escnn",
        hidden_scalars: int = 16,
        hidden_vectors: int = 8,
        stages: int = 2,
        ratio: float = 0.25,
        k: int = 16,
        sampling: str = "fps",
        kernel_hidden: int = 16,
        kernel_layers: int = 1,
        radial_features: int = 8,
        max_radius: float = 1.0,
        kernel_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        G = st.group(group, dim=3, backend=backend) if backend else st.group(group, dim=3)
        self.G, self.ratio, self.k, self.sampling, self.stages = G, ratio, k, sampling, stages
        s, v = G.trivial_rep(), G.standard_rep()
        in_type = st.FieldType(G, [s])
        hid = st.FieldType(G, [s] * hidden_scalars + [v] * hidden_vectors)
        out = st.FieldType(G, [s] * hidden_scalars)
        kw: dict[str, Any] = dict(
            edge_attr=1,
            hidden_channels=kernel_hidden,
            hidden_layers=kernel_layers,
            radial_features=radial_features,
            max_radius=max_radius,
        )
        if kernel_options:
            kw["options"] = dict(kernel_options)
        self.inp = PointConvBlock(in_type, hid, True, kw)
        self.local = torch.nn.ModuleList([PointConvBlock(hid, hid, True, kw) for _ in range(stages)])
        self.down = torch.nn.ModuleList([_Down(hid, hid, kw) for _ in range(stages - 1)] + [_Down(hid, out, kw)])
        self.head = torch.nn.Sequential(
            torch.nn.LayerNorm(hidden_scalars),
            torch.nn.Linear(hidden_scalars, 2 * hidden_scalars),
            torch.nn.SiLU(),
            torch.nn.Linear(2 * hidden_scalars, num_classes),
        )

    def _sample(self, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        if self.sampling == "fps":
            return fps(pos, self.ratio, batch, random_start=self.training)
        counts = torch.bincount(batch)
        idx = []
        start = 0
        for c in counts.tolist():
            m = max(1, int(-(-self.ratio * c // 1)))
            idx.append(start + torch.randperm(c, device=pos.device)[:m].sort().values)
            start += c
        return torch.cat(idx)

    def forward(self, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        pos = pos - global_mean_pool(pos, batch)[batch]
        x = pos.new_ones(pos.shape[0], 1)
        ei = knn_graph(pos, self.k, batch)
        ea = (pos[ei[0]] - pos[ei[1]]).norm(dim=-1, keepdim=True)
        h = self.inp(x, pos, ei, ea)
        for s in range(self.stages):
            h = h + self.local[s](h, pos, ei, ea)
            idx = self._sample(pos, batch)
            pos2, batch2 = pos[idx], batch[idx]
            row, col = knn(pos, pos2, self.k, batch, batch2)  # row: new point, col: old point
            bi = torch.stack([col, row])
            ba = (pos[col] - pos2[row]).norm(dim=-1, keepdim=True)
            h = self.down[s](h, pos, pos2, bi, ba)
            pos, batch = pos2, batch2
            if s + 1 < self.stages:
                ei = knn_graph(pos, self.k, batch)
                ea = (pos[ei[0]] - pos[ei[1]]).norm(dim=-1, keepdim=True)
        return self.head(global_mean_pool(h, batch))
