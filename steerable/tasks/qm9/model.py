"""Steerable residual point-convolution network for QM9 (invariant molecular properties).

* Nodes: one-hot atom type over H, C, N, O, F (5 invariant scalars).
* Graph: ``"radius"`` (all pairs within ``cutoff`` Angstrom, pure-torch
  :func:`steerable.graph.radius_graph`) or ``"bond"`` (the dataset's bonds).  PyG convention
  ``edge_index[0]`` = source ``j``, ``[1]`` = target ``i``.
* Kernel attributes (invariant scalars, :func:`edge_features`): the distance ``|pos_j - pos_i|``; with
  ``bond_attributes`` the bond type one-hot (single/double/triple/aromatic/none, 5); with
  ``atom_attributes`` the atom types of both ends (one-hot of ``j`` then of ``i``, 10): the implicit
  kernel conditioned on bond and atom attributes of the implicit-kernel paper's best QM9 variant.
* Layers (``layer``): ``"conv"``: ``h <- h + Gate(PointConv(h) + SelfLinear(h))``; ``"message"``:
  :class:`steerable.MessageBlock` (a gated message per edge from one kernel on both ends' fields),
  residual the same way.  Hidden fields: scalars and standard vectors; the last block outputs
  scalars only.
* Read-out (``readout``): ``"atom"``: an MLP per atom on its scalars, then the sum (or mean) over
  the molecule; ``"pooled"``: the sum (or mean) of the scalars, then the MLP.

Invariant under the chosen group (rotations / reflections), translations and atom permutations.
Shapes: ``forward(batch) -> (B,)`` standardised prediction.
"""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.nn import global_add_pool, global_mean_pool

import steerable as st
from steerable.graph import radius_graph
from steerable.nn import MessageBlock, PointConvBlock

from .data import ATOM_TYPES

__all__ = ["QM9Net", "edge_features", "attribute_count"]

BOND_TYPES = 4  # single, double, triple, aromatic (PyG's edge_attr); "none" is added as a fifth


def attribute_count(bond_attributes: bool = True, atom_attributes: bool = False) -> int:
    """Number of kernel attributes :func:`edge_features` returns for these flags."""
    return 1 + (BOND_TYPES + 1) * bond_attributes + 2 * len(ATOM_TYPES) * atom_attributes


def _bond_attributes(batch, ei: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(E, 4)`` bond one-hot of the edges ``ei`` (zeros for a pair that is not bonded)."""
    n = batch.pos.shape[0]
    bond_index, bond_attr = batch.edge_index, batch.edge_attr[:, :BOND_TYPES].to(dtype)
    out = torch.zeros(ei.shape[1], BOND_TYPES, dtype=dtype, device=ei.device)
    if bond_index.shape[1] == 0 or ei.shape[1] == 0:
        return out
    keys = bond_index[0] * n + bond_index[1]
    order = torch.argsort(keys)
    skeys = keys[order]
    q = ei[0] * n + ei[1]
    loc = torch.searchsorted(skeys, q).clamp(max=skeys.numel() - 1)
    found = skeys[loc] == q
    out[found] = bond_attr[order[loc[found]]]
    return out


def edge_features(
    batch,
    graph: str,
    cutoff: float,
    bond_attributes: bool = True,
    atom_attributes: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edge_index (2, E), edge_attr (E, attribute_count(...)))`` for a PyG batch with ``pos``, ``z``,
    ``edge_index`` and ``edge_attr`` (bond one-hot).

    Columns, in order: with ``bond_attributes`` the bond one-hot single/double/triple/aromatic and
    "none" (5); the distance ``|pos_j - pos_i|`` in Å (1); with ``atom_attributes`` the one-hot atom
    type (H C N O F) of the source ``j`` then of the target ``i`` (10).  All are invariant scalars.
    """
    pos = batch.pos
    if graph == "bond":
        ei = batch.edge_index
        battr = batch.edge_attr[:, :BOND_TYPES].to(pos.dtype)
    elif graph == "radius":
        ei = radius_graph(pos, cutoff, batch.batch)
        battr = _bond_attributes(batch, ei, pos.dtype) if bond_attributes else None
    else:
        raise ValueError(f"graph must be 'radius' or 'bond', got {graph!r}")
    cols = []
    if bond_attributes:
        cols += [battr, 1.0 - battr.sum(1, keepdim=True)]
    cols.append((pos[ei[0]] - pos[ei[1]]).norm(dim=-1, keepdim=True))
    if atom_attributes:
        onehot = (batch.z[:, None] == torch.tensor(ATOM_TYPES, device=pos.device)).to(pos.dtype)
        cols += [onehot[ei[0]], onehot[ei[1]]]
    return ei, torch.cat(cols, 1)


class QM9Net(torch.nn.Module):
    """O(3)/SO(3)-steerable residual network of implicit-kernel layers with an invariant read-out.

    Args:
        group, backend: symmetry group name and backend (``None``: registry choice).
        hidden_scalars, hidden_vectors: trivial / standard fields per hidden layer.
        layers: number of point convolutions / message blocks (>= 2).
        kernel_hidden, kernel_layers, radial_features: kernel-MLP size (``radial_features`` Gaussians
            of the distance spread over ``[0, cutoff]``).
        cutoff: radius-graph cutoff in Angstrom (also the kernels' ``max_radius``).
        graph: ``"radius"`` or ``"bond"``.  pool: ``"sum"`` or ``"mean"``.
        bond_attributes, atom_attributes: kernel attributes (see :func:`edge_features`).
        layer: ``"conv"`` (linear messages, :class:`steerable.PointConvBlock`) or ``"message"``
            (gated messages, :class:`steerable.MessageBlock`).
        readout: ``"atom"`` (MLP per atom, then pooling) or ``"pooled"`` (pooling, then the MLP).
        invariant_width: width of the kernel MLP's invariant network (radial features and
            attributes), ``None`` for the backend's default.
        basis_size: basis kernels per pair of representations (``None``: the dense layout, one
            kernel per pair of fields).
        envelope_width, kernel_options: passed to the kernels.
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
        bond_attributes: bool = True,
        atom_attributes: bool = True,
        layer: str = "conv",
        readout: str = "pooled",
        invariant_width: int | None = None,
        basis_size: int | None = 8,
    ) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError("QM9Net needs at least 2 layers")
        if layer not in ("conv", "message"):
            raise ValueError(f"QM9Net: layer must be 'conv' or 'message', got {layer!r}")
        if readout not in ("atom", "pooled"):
            raise ValueError(f"QM9Net: readout must be 'atom' or 'pooled', got {readout!r}")
        if pool not in ("sum", "mean"):
            raise ValueError(f"QM9Net: pool must be 'sum' or 'mean', got {pool!r}")
        G = st.group(group, backend=backend) if backend else st.group(group)
        self.G, self.graph, self.cutoff, self.pool, self.readout = G, graph, cutoff, pool, readout
        self.bond_attributes, self.atom_attributes = bool(bond_attributes), bool(atom_attributes)
        s, v = G.trivial_rep(), G.standard_rep()
        self.in_type = st.FieldType(G, [s] * len(ATOM_TYPES))
        self.hidden_type = st.FieldType(G, [s] * hidden_scalars + [v] * hidden_vectors)
        self.out_type = st.FieldType(G, [s] * hidden_scalars)
        options = dict(kernel_options or {})
        if invariant_width is not None:
            options["invariant_width"] = int(invariant_width)
        kw: dict[str, Any] = dict(
            edge_attr=attribute_count(self.bond_attributes, self.atom_attributes),
            hidden_channels=kernel_hidden,
            hidden_layers=kernel_layers,
            radial_features=radial_features,
            max_radius=cutoff,
            envelope_width=envelope_width,
            basis_size=basis_size,
        )
        if options:
            kw["options"] = options
        types = [self.in_type] + [self.hidden_type] * (layers - 1) + [self.out_type]
        self.blocks = torch.nn.ModuleList(self._block(t_in, t_out, kw, layer) for t_in, t_out in zip(types, types[1:]))
        self.head = torch.nn.Sequential(
            torch.nn.Linear(hidden_scalars, hidden_scalars), torch.nn.SiLU(), torch.nn.Linear(hidden_scalars, 1)
        )
        # the prediction starts at the training mean (standardised 0): no initial transient of
        # sums over ~18 atoms to unlearn
        torch.nn.init.zeros_(self.head[-1].weight)
        torch.nn.init.zeros_(self.head[-1].bias)
        self.register_buffer("atom_types", torch.tensor(ATOM_TYPES), persistent=False)

    @staticmethod
    def _block(t_in: st.FieldType, t_out: st.FieldType, kw: dict[str, Any], layer: str) -> torch.nn.Module:
        if layer == "message":
            return MessageBlock(t_in, t_out, t_out, True, kw)
        return PointConvBlock(t_in, t_out, True, kw)

    def forward(self, batch) -> torch.Tensor:
        pos = batch.pos
        x = (batch.z[:, None] == self.atom_types).to(pos.dtype)
        ei, ea = edge_features(batch, self.graph, self.cutoff, self.bond_attributes, self.atom_attributes)
        h = self.blocks[0](x, pos, ei, ea)
        for blk in self.blocks[1:-1]:
            h = h + blk(h, pos, ei, ea)
        h = self.blocks[-1](h, pos, ei, ea)
        b = batch.batch if batch.batch is not None else torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
        pool = global_add_pool if self.pool == "sum" else global_mean_pool
        if self.readout == "atom":
            return pool(self.head(h), b).squeeze(-1)
        return self.head(pool(h, b)).squeeze(-1)
