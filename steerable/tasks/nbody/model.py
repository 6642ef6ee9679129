"""A steerable message-passing network for the charged N-body task, built on :class:`steerable.PointConv`.

Inputs of one batch of ``B`` systems of ``n`` particles (plain tensors, float):
``pos`` ``(B, n, 3)``, ``vel`` ``(B, n, 3)``, ``charges`` ``(B, n, 1)``.  Output: predicted positions
``(B, n, 3)`` = ``pos + displacement``.

* Graph: the fully connected graph of each system without self-loops (``n (n - 1)`` directed edges,
  PyG convention ``edge_index[0] = source j``, ``edge_index[1] = target i``), built in pure torch.
* Node input field ``[trivial x 2, standard x 2]``: charge ``q_i``, speed ``|v_i|``, velocity ``v_i``
  and position relative to the system's centre ``x_i - mean_j x_j``.
* Edge attributes (2 invariant scalars): ``q_i q_j`` and ``|x_j - x_i|``.
* Layers: ``h <- Gate(PointConv(h) + SelfLinear(h))`` (residual after the first layer); the last
  layer maps to one standard field; displacement = that field ``+ a v_i`` (``a`` learnable,
  initialised to the horizon, so training starts from the constant-velocity prediction).  ``FieldLinear`` (:class:`steerable.FieldLinear`) is the
  per-node equivariant linear map (the ``j = i`` term the graph lacks).

Equivariance: with ``g`` in the group (acting by its standard matrices) and a translation ``t``,
``model(g pos + t, g vel, q) = g model(pos, vel, q) + t`` exactly up to round-off for exact
backends; :func:`equivariance_error` measures it.
"""
from __future__ import annotations

from typing import Any

import torch

import steerable as st
from steerable.core.layers import PointConvBlock

__all__ = ["NBodyNet", "fully_connected_edges", "equivariance_error"]


def fully_connected_edges(n_systems: int, n_particles: int, device: torch.device | None = None) -> torch.Tensor:
    """``(2, n_systems * n (n - 1))`` long edge index of disjoint complete digraphs (no self-loops).

    Node ``b * n + k`` is particle ``k`` of system ``b``; row 0 holds sources, row 1 targets.
    """
    idx = torch.arange(n_particles, device=device)
    src, dst = torch.meshgrid(idx, idx, indexing="ij")
    keep = src != dst
    base = torch.stack([src[keep], dst[keep]])  # (2, n (n - 1))
    offsets = (torch.arange(n_systems, device=device) * n_particles).repeat_interleave(base.shape[1])
    return base.repeat(1, n_systems) + offsets


class NBodyNet(torch.nn.Module):
    """Steerable point-convolution network predicting positions after a fixed horizon.

    Args:
        group: name of the group (``"O(3)"``, ``"SO(3)"``, or any 3D group a backend offers).
        backend: backend name (``"escnn"``, ``"e3nn"``) or ``None`` for the registry's choice.
        hidden_scalars, hidden_vectors: number of trivial and standard fields per hidden layer.
        layers: number of point convolutions (>= 2).
        kernel_hidden: ``hidden_channels`` of each kernel MLP.
        kernel_layers: ``hidden_layers`` of each kernel MLP.
        radial_features: radial basis size of the kernel MLPs.
        max_radius: radial basis range (distances in the benchmark's units; systems span ~5).
        envelope_width: initial width of the kernels' learnable Gaussian envelope, ``None`` for none.
        kernel_options: backend options forwarded to the kernel MLPs.
        velocity_skip: initial value of a learnable coefficient ``a`` adding ``a * v_i`` to the
            displacement (an equivariant skip from the input velocity: with ``a = horizon`` the
            untrained model starts near the constant-velocity prediction); ``None`` for none.

    Shapes: ``forward(pos (B, n, 3), vel (B, n, 3), charges (B, n, 1)) -> (B, n, 3)``.
    """

    def __init__(
        self,
        group: str = "O(3)",
        backend: str | None = "escnn",
        hidden_scalars: int = 8,
        hidden_vectors: int = 8,
        layers: int = 3,
        kernel_hidden: int = 8,
        kernel_layers: int = 1,
        radial_features: int = 8,
        max_radius: float = 4.0,
        envelope_width: float | None = None,
        kernel_options: dict[str, Any] | None = None,
        velocity_skip: float | None = 1.0,
    ) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError(f"NBodyNet needs at least 2 layers, got {layers}")
        G = st.group(group, backend=backend) if backend else st.group(group)
        if G.dim != 3:
            raise ValueError(f"NBodyNet needs a group acting on R^3, got {G!r}")
        self.G = G
        s, v = G.trivial_rep(), G.standard_rep()
        self.in_type = st.FieldType(G, [s, s, v, v])
        self.hidden_type = st.FieldType(G, [s] * hidden_scalars + [v] * hidden_vectors)
        self.out_type = st.FieldType(G, [v])
        conv_kwargs = dict(
            edge_attr=2,
            hidden_channels=kernel_hidden,
            hidden_layers=kernel_layers,
            radial_features=radial_features,
            max_radius=max_radius,
            envelope_width=envelope_width,
        )
        if kernel_options:
            conv_kwargs["options"] = dict(kernel_options)
        blocks = [PointConvBlock(self.in_type, self.hidden_type, True, conv_kwargs)]
        blocks += [PointConvBlock(self.hidden_type, self.hidden_type, True, conv_kwargs) for _ in range(layers - 2)]
        blocks.append(PointConvBlock(self.hidden_type, self.out_type, False, conv_kwargs))
        self.blocks = torch.nn.ModuleList(blocks)
        if velocity_skip is not None:
            self.velocity_skip = torch.nn.Parameter(torch.tensor(float(velocity_skip)))
        else:
            self.register_parameter("velocity_skip", None)
        self._edges: dict[tuple[int, int, str], torch.Tensor] = {}

    def edges(self, n_systems: int, n_particles: int, device: torch.device) -> torch.Tensor:
        """Cached :func:`fully_connected_edges`."""
        key = (n_systems, n_particles, str(device))
        if key not in self._edges:
            if len(self._edges) > 8:
                self._edges.clear()
            self._edges[key] = fully_connected_edges(n_systems, n_particles, device)
        return self._edges[key]

    def displacement(self, pos: torch.Tensor, vel: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        """Predicted displacement ``(B, n, 3)`` (translation invariant, rotation equivariant)."""
        B, n, _ = pos.shape
        centred = pos - pos.mean(1, keepdim=True)
        speed = vel.norm(dim=-1, keepdim=True)
        x = torch.cat([charges, speed, vel, centred], -1).reshape(B * n, self.in_type.size)
        p = pos.reshape(B * n, 3)
        edge_index = self.edges(B, n, pos.device)
        src, dst = edge_index
        q = charges.reshape(B * n)
        edge_attr = torch.stack([q[src] * q[dst], (p[src] - p[dst]).norm(dim=-1)], -1)
        h = self.blocks[0](x, p, edge_index, edge_attr)
        for block in self.blocks[1:-1]:
            h = h + block(h, p, edge_index, edge_attr)
        disp = self.blocks[-1](h, p, edge_index, edge_attr).reshape(B, n, 3)
        if self.velocity_skip is not None:
            disp = disp + self.velocity_skip * vel
        return disp

    def forward(self, pos: torch.Tensor, vel: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        return pos + self.displacement(pos, vel, charges)


@torch.no_grad()
def equivariance_error(
    model: NBodyNet,
    pos: torch.Tensor,
    vel: torch.Tensor,
    charges: torch.Tensor,
    n_elements: int = 4,
    elements: "st.GroupElements | None" = None,
    translate: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Relative equivariance errors of ``model`` on a batch, maximised over group elements.

    For each sampled ``g`` (and a random translation ``t`` when ``translate``) compares
    ``model(g pos + t, g vel, q)`` with ``g model(pos, vel, q) + t``.  Returns
    ``{"displacement": max_g |d(g.) - g d(.)| / |d(.)|, "position": same on the positions}``
    (Frobenius norms over the batch; the displacement error is the stricter one).
    Shapes: ``pos``, ``vel`` ``(B, n, 3)``, ``charges`` ``(B, n, 1)``.
    """
    was_training = model.training
    model.eval()
    els = elements if elements is not None else model.G.sample(n_elements, generator=generator)
    base_disp = model.displacement(pos, vel, charges)
    base = pos + base_disp
    worst = {"displacement": 0.0, "position": 0.0}
    for k in range(len(els)):
        R = els.matrices[k].to(pos)
        t = torch.randn(1, 1, 3, generator=generator).to(pos) if translate else torch.zeros(1, 1, 3).to(pos)
        out = model(pos @ R.T + t, vel @ R.T, charges)
        disp = out - (pos @ R.T + t)
        expect_disp = base_disp @ R.T
        expect = base @ R.T + t
        worst["displacement"] = max(worst["displacement"], float((disp - expect_disp).norm() / expect_disp.norm()))
        worst["position"] = max(worst["position"], float((out - expect).norm() / expect.norm()))
    model.train(was_training)
    return worst
