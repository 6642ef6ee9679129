"""A steerable message-passing network for the charged N-body task, built on :class:`steerable.PointConv`.

Inputs of one batch of ``B`` systems of ``n`` particles (plain tensors, float):
``pos`` ``(B, n, 3)``, ``vel`` ``(B, n, 3)``, ``charges`` ``(B, n, 1)``.  Output: predicted positions
``(B, n, 3)`` = ``pos + displacement``.

* Graph: the fully connected graph of each system without self-loops (``n (n - 1)`` directed edges,
  PyG convention ``edge_index[0] = source j``, ``edge_index[1] = target i``), built in pure torch.
* Node input field ``[trivial x 2, standard x 2]``: charge ``q_i``, speed ``|v_i|``, velocity ``v_i``
  and position relative to the system's centre ``x_i - mean_j x_j``.
* Kernel attributes per edge ``j -> i``: ``q_i q_j`` and ``|x_j - x_i|``; with ``node_conditioning``
  also the scalar channels of the layer's input at ``i`` and at ``j`` (the kernel, hence the message,
  then depends non-linearly on both endpoints' invariant features, as the messages of EGNN and SEGNN
  do); with ``relative_velocity`` also the closing speed ``(v_j - v_i) . (x_j - x_i) / |x_j - x_i|``
  and the relative speed ``|v_j - v_i|``; with ``velocity_attribute`` also the relative velocity
  ``v_j - v_i`` itself, a vector (standard field) attribute, so that the kernel's blocks can point
  along it as well as along ``x_j - x_i``.
* Layers: ``h <- Gate(PointConv(h) + SelfLinear(h))`` (:class:`steerable.PointConvBlock`: messages
  linear in ``h_j``) or, with ``nonlinear_messages``, :class:`steerable.MessageBlock`: per edge
  ``m_ji = Gate(K(x_j - x_i, a_ji) [h_j ; h_i])``, then ``h_i <- Gate(W h_i + W' mean_j m_ji)``.
  Residual after the first layer.  With ``velocity_kernel`` each layer's output also gets
  ``K_v(v_i; q_i) h_i``, an implicit kernel evaluated at the particle's own velocity (a
  :class:`steerable.PointConv` over self-loops whose source sits at ``v_i`` and target at the
  origin): the update then depends on the velocity's direction, as SEGNN's updates do through
  their steerable node attributes.  The last
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
        kernel_basis: ``basis_size`` of each kernel (basis kernels per representation pair), or
            ``None`` / ``0`` for dense kernels (:class:`steerable.ImplicitKernel`).
        radial_features: radial basis size of the kernel MLPs.
        max_radius: radial basis range (distances in the benchmark's units; systems span ~5).
        envelope_width: initial width of the kernels' learnable Gaussian envelope, ``None`` for none.
        kernel_options: backend options forwarded to the kernel MLPs.
        node_conditioning: feed both endpoints' scalar features to each layer's kernels.
        relative_velocity: feed the closing speed and relative speed of each edge to the kernels.
        velocity_attribute: feed the relative velocity of each edge (a vector) to the kernels.
        galilean_inputs: node inputs use velocities relative to the system's mean velocity (speed
            and velocity fields), so that the learned part of the prediction, like the interactions,
            does not change when every velocity is shifted by the same vector; the velocity skip
            still uses ``v_i``.
        velocity_kernel: add ``K_v(v_i; q_i) h_i`` to each layer's output (see the module docstring;
            ``v_i`` relative to the mean velocity with ``galilean_inputs``).
        nonlinear_messages: per-edge gated messages (:class:`steerable.MessageBlock`) instead of
            a convolution summed at the targets (:class:`steerable.PointConvBlock`).
        position_updates: each hidden layer also moves the positions at which the next layer's
            kernels are evaluated by an equivariant vector output (a learned multi-step integrator,
            in the spirit of EGNN's coordinate updates); the displacement is the total move plus the
            last layer's output.
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
        kernel_basis: int | None = 8,
        radial_features: int = 8,
        max_radius: float = 4.0,
        envelope_width: float | None = None,
        kernel_options: dict[str, Any] | None = None,
        velocity_skip: float | None = 1.0,
        node_conditioning: bool = False,
        relative_velocity: bool = False,
        position_updates: bool = False,
        velocity_attribute: bool = False,
        nonlinear_messages: bool = False,
        galilean_inputs: bool = False,
        velocity_kernel: bool = False,
    ) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError(f"NBodyNet needs at least 2 layers, got {layers}")
        G = st.group(group, backend=backend) if backend else st.group(group)
        if G.dim != 3:
            raise ValueError(f"NBodyNet needs a group acting on R^3, got {G!r}")
        self.G = G
        s, v = G.trivial_rep(), G.standard_rep()
        self.galilean_inputs = galilean_inputs
        self.in_type = st.FieldType(G, [s, s, v, v])
        self.hidden_type = st.FieldType(G, [s] * hidden_scalars + [v] * hidden_vectors)
        self.out_type = st.FieldType(G, [v])
        self.node_conditioning, self.relative_velocity = node_conditioning, relative_velocity
        self.velocity_attribute = velocity_attribute
        self.position_updates = position_updates
        # with position updates every hidden block also outputs one vector: a step of the positions
        # at which the next layer's kernels are evaluated
        step_type = self.hidden_type + self.out_type if position_updates else self.hidden_type
        conv_kwargs = dict(
            hidden_channels=kernel_hidden,
            hidden_layers=kernel_layers,
            basis_size=kernel_basis or None,
            radial_features=radial_features,
            max_radius=max_radius,
            envelope_width=envelope_width,
        )
        if kernel_options:
            conv_kwargs["options"] = dict(kernel_options)
        types = [self.in_type] + [self.hidden_type] * (layers - 1)
        outs = [step_type] * (layers - 1) + [self.out_type]

        def block(t_in: st.FieldType, t_out: st.FieldType) -> torch.nn.Module:
            gate, kwargs = t_out is not self.out_type, dict(conv_kwargs, edge_attr=self._edge_type(t_in))
            if nonlinear_messages:
                return st.MessageBlock(t_in, t_out, self.hidden_type, gate, kwargs, aggregation="mean")
            return st.PointConvBlock(t_in, t_out, gate, kwargs)

        blocks = [block(t_in, t_out) for t_in, t_out in zip(types, outs)]
        self.blocks = torch.nn.ModuleList(blocks)
        # kernels of each particle's velocity; their one attribute is the charge
        self.velocity_kernels = torch.nn.ModuleList(
            [st.PointConv(t_in, t_out, 1, bias=False, **conv_kwargs) for t_in, t_out in zip(types, outs)]
        ) if velocity_kernel else None
        if velocity_skip is not None:
            self.velocity_skip = torch.nn.Parameter(torch.tensor(float(velocity_skip)))
        else:
            self.register_parameter("velocity_skip", None)
        self._edges: dict[tuple[int, int, str], torch.Tensor] = {}

    def _edge_type(self, node_type: st.FieldType) -> st.FieldType:
        """Kernel attributes of a layer whose input has ``node_type`` (see :meth:`_edge_attr`)."""
        n_scalars = 2 + (2 if self.relative_velocity else 0)
        n_scalars += 2 * len(node_type.trivial_channels) if self.node_conditioning else 0
        vectors = [self.G.standard_rep()] if self.velocity_attribute else []
        return st.FieldType(self.G, [self.G.trivial_rep()] * n_scalars + vectors)

    def _edge_attr(self, base: torch.Tensor, h: torch.Tensor, node_type: st.FieldType, edge_index: torch.Tensor,
                   rel_vel: torch.Tensor, v_ji: torch.Tensor) -> torch.Tensor:
        """Kernel attributes per edge ``j -> i``, invariants first (see the module docstring)."""
        parts = [base]
        if self.relative_velocity:
            parts.append(rel_vel)
        if self.node_conditioning:
            scalars = h[:, node_type.trivial_channels]
            parts += [scalars[edge_index[1]], scalars[edge_index[0]]]
        if self.velocity_attribute:
            parts.append(v_ji)
        return torch.cat(parts, dim=-1)

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
        # the interactions depend on velocities only through differences (Galilean invariance)
        vel_in = vel - vel.mean(1, keepdim=True) if self.galilean_inputs else vel
        speed = vel_in.norm(dim=-1, keepdim=True)
        x = torch.cat([charges, speed, vel_in, centred], -1).reshape(B * n, self.in_type.size)
        p = pos.reshape(B * n, 3)
        edge_index = self.edges(B, n, pos.device)
        src, dst = edge_index
        q = charges.reshape(B * n)
        qq = (q[src] * q[dst])[:, None]
        v = vel.reshape(B * n, 3)
        v_ji = v[src] - v[dst]

        def geometry(p_k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """Invariant edge attributes at positions ``p_k``: ``[q_i q_j, |x_ji|]`` and ``rel_vel``."""
            x_ji = p_k[src] - p_k[dst]
            dist = x_ji.norm(dim=-1, keepdim=True)
            # closing speed and relative speed: invariants a linear-and-gated kernel MLP cannot form
            # from x_ji and v_ji itself (they are bilinear)
            closing = (v_ji * x_ji).sum(-1, keepdim=True) / dist.clamp_min(1e-9)
            return torch.cat([qq, dist], -1), torch.cat([closing, v_ji.norm(dim=-1, keepdim=True)], -1)

        if self.velocity_kernels is not None:
            nodes = torch.arange(B * n, device=pos.device)
            v_in = vel_in.reshape(B * n, 3)  # relative to the mean velocity with galilean_inputs
            loops, at_velocity, q_node = torch.stack([nodes, nodes]), (v_in, torch.zeros_like(v_in)), q[:, None]
        h, node_type, p_k = x, self.in_type, p
        base, rel_vel = geometry(p_k)  # recomputed only when the positions move
        hidden = self.hidden_type.size
        for k, block in enumerate(self.blocks):
            out = block(h, p_k, edge_index, self._edge_attr(base, h, node_type, edge_index, rel_vel, v_ji))
            if self.velocity_kernels is not None:
                out = out + self.velocity_kernels[k](h, at_velocity, loops, q_node)
            if block is self.blocks[-1]:
                disp = (p_k - p + out).reshape(B, n, 3)
                break
            if self.position_updates:
                out, step = out[:, :hidden], out[:, hidden:]
                p_k = p_k + step
                base, rel_vel = geometry(p_k)
            h = out if k == 0 else h + out  # residual after the first layer
            node_type = self.hidden_type
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
