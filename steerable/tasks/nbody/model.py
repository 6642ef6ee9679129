"""A steerable message-passing network for the charged N-body task, built on :class:`steerable.PointConv`.

Inputs of one batch of ``B`` systems of ``n`` particles (plain tensors, float):
``pos`` ``(B, n, 3)``, ``vel`` ``(B, n, 3)``, ``charges`` ``(B, n, 1)``.  Output: predicted positions
``(B, n, 3)`` = ``pos + displacement``.

* Graph: the fully connected graph of each system without self-loops (``n (n - 1)`` directed edges,
  PyG convention ``edge_index[0] = source j``, ``edge_index[1] = target i``), built in pure torch.

:class:`NBodyNet` is composed from parts, each one class here:

* :class:`NodeInputs`: the node input field ``[trivial x 2, standard x 2]``: charge ``q_i``, speed
  ``|v_i|``, velocity ``v_i`` and position relative to the system's centre ``x_i - mean_j x_j``;
  with ``galilean`` the velocities relative to the system's mean velocity.
* :class:`EdgeFeatures`: the kernel attributes per edge ``j -> i``: ``q_i q_j`` and ``|x_j - x_i|``;
  with ``node_conditioning`` also the scalar channels of the layer's input at ``i`` and at ``j`` (the
  kernel, hence the message, then depends non-linearly on both endpoints' invariant features, as the
  messages of EGNN and SEGNN do); with ``relative_velocity`` also the closing speed
  ``(v_j - v_i) . (x_j - x_i) / |x_j - x_i|`` and the relative speed ``|v_j - v_i|``; with
  ``velocity_attribute`` also the relative velocity ``v_j - v_i`` itself, a vector (standard field)
  attribute, so that the kernel's blocks can point along it as well as along ``x_j - x_i``.
* The layer type (:data:`LAYER_TYPES`): ``"conv"``, ``h <- Gate(PointConv(h) + SelfLinear(h))``
  (:class:`steerable.PointConvBlock`: messages linear in ``h_j``), or ``"message"``,
  :class:`steerable.MessageBlock`: per edge ``m_ji = Gate(K(x_j - x_i, a_ji) [h_j ; h_i])``, then
  ``h_i <- Gate(W h_i + W' mean_j m_ji)``.  Residual after the first layer.  ``FieldLinear``
  (:class:`steerable.FieldLinear`) is the per-node equivariant linear map (the ``j = i`` term the
  graph lacks).
* :class:`VelocityKernel` (optional): each layer's output also gets ``K_v(v_i; q_i) h_i``, an implicit
  kernel evaluated at the particle's own velocity: the update then depends on the velocity's
  direction, as SEGNN's updates do through their steerable node attributes.
* :class:`PositionUpdate` (optional): each hidden layer also outputs one vector field, a step of the
  positions at which the next layer's kernels are evaluated (a learned multi-step integrator, in the
  spirit of EGNN's coordinate updates); the displacement is the total move plus the last layer's
  output.

The last layer maps to one standard field; displacement = that field ``+ a v_i`` (``a`` learnable,
initialised to the horizon, so training starts from the constant-velocity prediction).

Equivariance: with ``g`` in the group (acting by its standard matrices) and a translation ``t``,
``model(g pos + t, g vel, q) = g model(pos, vel, q) + t`` exactly up to round-off for exact
backends; :func:`equivariance_error` measures it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

import steerable as st

__all__ = [
    "NBodyNet",
    "build_nbody_net",
    "NodeInputs",
    "EdgeFeatures",
    "EdgeGeometry",
    "VelocityKernel",
    "PositionUpdate",
    "LAYER_TYPES",
    "fully_connected_edges",
    "equivariance_error",
]


def fully_connected_edges(n_systems: int, n_particles: int, device: torch.device | None = None) -> torch.Tensor:
    """``(2, n_systems * n (n - 1))`` long edge index of disjoint complete digraphs (no self-loops).

    Node ``b * n + k`` is particle ``k`` of system ``b``; row 0 holds sources, row 1 targets.
    """
    # source k, then every target but k in ascending order; no boolean mask, so the shapes are
    # static (torch.compile traces this without a data-dependent size)
    n_others = max(n_particles - 1, 0)
    src = torch.arange(n_particles, device=device).repeat_interleave(n_others)
    others = torch.arange(n_others, device=device).repeat(n_particles)
    base = torch.stack([src, others + (others >= src).long()])  # (2, n (n - 1))
    offsets = (torch.arange(n_systems, device=device) * n_particles).repeat_interleave(base.shape[1])
    return base.repeat(1, n_systems) + offsets


# -- node inputs ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NodeInputs:
    """The node input field ``[q_i, |v_i|, v_i, x_i - mean_j x_j]`` (types ``[trivial x 2, standard x 2]``).

    ``galilean``: velocities relative to the system's mean velocity (in the speed and the velocity
    field), so that the learned part of the prediction, like the interactions, does not change
    when every velocity is shifted by the same vector.
    """

    galilean: bool = False

    @staticmethod
    def field_type(G: st.Group) -> st.FieldType:
        s, v = G.trivial_rep(), G.standard_rep()
        return st.FieldType(G, [s, s, v, v])

    def velocities(self, vel: torch.Tensor) -> torch.Tensor:
        """The velocities the network sees ``(B, n, 3)``: ``vel``, or ``vel - mean`` with ``galilean``."""
        return vel - vel.mean(1, keepdim=True) if self.galilean else vel

    def __call__(self, pos: torch.Tensor, vel_in: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        """``(B n, 8)`` node features from ``pos``, ``vel_in`` (:meth:`velocities`), both ``(B, n, 3)``,
        and ``charges`` ``(B, n, 1)``."""
        centred = pos - pos.mean(1, keepdim=True)
        speed = vel_in.norm(dim=-1, keepdim=True)
        return torch.cat([charges, speed, vel_in, centred], -1).reshape(-1, 8)


# -- edge features ----------------------------------------------------------------------------------
class EdgeGeometry(NamedTuple):
    """Per-edge quantities of ``j -> i`` at the positions a layer sees.

    ``invariants`` ``(E, 2)``: ``[q_i q_j, |x_j - x_i|]``; ``velocity_invariants`` ``(E, 2)``: closing
    speed and relative speed; ``relative_velocity`` ``(E, 3)``: ``v_j - v_i``.
    """

    invariants: torch.Tensor
    velocity_invariants: torch.Tensor
    relative_velocity: torch.Tensor

    @classmethod
    def at(cls, pos: torch.Tensor, qq: torch.Tensor, v_ji: torch.Tensor, edge_index: torch.Tensor) -> EdgeGeometry:
        """The geometry at positions ``pos`` ``(N, 3)``; ``qq`` ``(E, 1)`` charge products, ``v_ji`` ``(E, 3)``."""
        src, dst = edge_index
        x_ji = pos[src] - pos[dst]
        dist = x_ji.norm(dim=-1, keepdim=True)
        # closing speed and relative speed: invariants a linear-and-gated kernel MLP cannot form from
        # x_ji and v_ji itself (they are bilinear)
        closing = (v_ji * x_ji).sum(-1, keepdim=True) / dist.clamp_min(1e-9)
        return cls(torch.cat([qq, dist], -1), torch.cat([closing, v_ji.norm(dim=-1, keepdim=True)], -1), v_ji)


@dataclasses.dataclass(frozen=True)
class EdgeFeatures:
    """Which kernel attributes each edge ``j -> i`` carries besides ``q_i q_j`` and ``|x_j - x_i|``.

    ``relative_velocity``: the closing speed and relative speed; ``node_conditioning``: the scalar
    channels of the layer's input at ``i`` and at ``j``; ``velocity_attribute``: ``v_j - v_i`` as a
    vector attribute.  Order of the attribute channels: the invariants, the velocity invariants, the
    target's scalars, the source's scalars, the vector.
    """

    relative_velocity: bool = False
    node_conditioning: bool = False
    velocity_attribute: bool = False

    def field_type(self, G: st.Group, node_type: st.FieldType) -> st.FieldType:
        """The attributes' field type for a layer whose input has ``node_type``."""
        n_scalars = 2 + (2 if self.relative_velocity else 0)
        n_scalars += 2 * len(node_type.trivial_channels) if self.node_conditioning else 0
        vectors = [G.standard_rep()] if self.velocity_attribute else []
        return st.FieldType(G, [G.trivial_rep()] * n_scalars + vectors)

    def __call__(
        self, geometry: EdgeGeometry, h: torch.Tensor, node_type: st.FieldType, edge_index: torch.Tensor
    ) -> torch.Tensor:
        """``(E, field_type(node_type).size)`` attributes of the layer whose input is ``h`` ``(N, node_type.size)``."""
        parts = [geometry.invariants]
        if self.relative_velocity:
            parts.append(geometry.velocity_invariants)
        if self.node_conditioning:
            scalars = h[:, node_type.trivial_channels]
            parts += [scalars[edge_index[1]], scalars[edge_index[0]]]
        if self.velocity_attribute:
            parts.append(geometry.relative_velocity)
        return torch.cat(parts, dim=-1)


# -- layer types ------------------------------------------------------------------------------------
#: ``build(t_in, t_out, message_type, gate, kernel_kwargs) -> module(h, pos, edge_index, edge_attr)``
LayerBuilder = Callable[[st.FieldType, st.FieldType, st.FieldType, bool, dict[str, Any]], torch.nn.Module]


def _conv_layer(
    t_in: st.FieldType, t_out: st.FieldType, message_type: st.FieldType, gate: bool, kernel_kwargs: dict[str, Any]
) -> torch.nn.Module:
    return st.PointConvBlock(t_in, t_out, gate, kernel_kwargs)


def _message_layer(
    t_in: st.FieldType, t_out: st.FieldType, message_type: st.FieldType, gate: bool, kernel_kwargs: dict[str, Any]
) -> torch.nn.Module:
    return st.MessageBlock(t_in, t_out, message_type, gate, kernel_kwargs, aggregation="mean")


#: layer type name -> builder: ``"conv"`` linear messages summed at the targets
#: (:class:`steerable.PointConvBlock`), ``"message"`` gated per-edge messages averaged at the targets
#: (:class:`steerable.MessageBlock`, messages of the hidden type)
LAYER_TYPES: dict[str, LayerBuilder] = {"conv": _conv_layer, "message": _message_layer}


# -- velocity kernel --------------------------------------------------------------------------------
class VelocityKernel(torch.nn.Module):
    """``K_v(v_i; q_i) h_i``: an implicit kernel of each particle's own velocity ``v_i`` (attribute: its
    charge) applied to its own features, one message per particle.

    ``kernel_kwargs`` are :class:`steerable.ImplicitKernel` options (sizes, ``basis_size``,
    ``envelope_width``).  The kernel's ``message`` applies it without building the ``(N, out, in)``
    kernels (shared-basis layout).

    Equivariance: ``K_v(g v; q) rho_in(g) h = rho_out(g) K_v(v; q) h``.
    Shapes: ``forward(h (N, in_type.size), vel (N, 3), charges (N, 1)) -> (N, out_type.size)``.
    """

    def __init__(self, in_type: st.FieldType, out_type: st.FieldType, kernel_kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.kernel = st.ImplicitKernel(in_type, out_type, 1, **kernel_kwargs)

    def forward(self, h: torch.Tensor, vel: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        return self.kernel.message(vel, charges, h)


# -- position update --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PositionUpdate:
    """Hidden layers output ``hidden_size`` feature channels and then one vector: a step of the positions.

    ``step_type(hidden_type, vector_type)`` is the layers' output type; ``__call__(out, pos)`` splits
    a layer's output ``(N, hidden_size + 3)`` into the features ``(N, hidden_size)`` and the moved
    positions ``pos + step`` ``(N, 3)``.
    """

    hidden_size: int

    @staticmethod
    def step_type(hidden_type: st.FieldType, vector_type: st.FieldType) -> st.FieldType:
        return hidden_type + vector_type

    def __call__(self, out: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return out[:, : self.hidden_size], pos + out[:, self.hidden_size :]


# -- the network ------------------------------------------------------------------------------------
class NBodyNet(torch.nn.Module):
    """Steerable point-convolution network predicting positions after a fixed horizon.

    Args:
        group: name of the group (``"O(3)"``, ``"SO(3)"``, or any 3D group a backend offers).
        backend: backend name (``"escnn"``, ``"e3nn"``) or ``None`` for the registry's choice.
        hidden_scalars, hidden_vectors: number of trivial and standard fields per hidden layer.
        layers: number of layers (>= 2).
        kernel_hidden: ``hidden_channels`` of each kernel MLP.
        kernel_layers: ``hidden_layers`` of each kernel MLP.
        kernel_basis: ``basis_size`` of each kernel (basis kernels per representation pair), or
            ``None`` / ``0`` for dense kernels (:class:`steerable.ImplicitKernel`).
        radial_features: radial basis size of the kernel MLPs.
        max_radius: radial basis range (distances in the benchmark's units; systems span ~5).
        envelope_width: initial width of the kernels' learnable Gaussian envelope, ``None`` for none.
        kernel_options: backend options forwarded to the kernel MLPs.
        velocity_skip: initial value of a learnable coefficient ``a`` adding ``a * v_i`` to the
            displacement (an equivariant skip from the input velocity: with ``a = horizon`` the
            untrained model starts near the constant-velocity prediction); ``None`` for none.
        inputs: the node inputs (:class:`NodeInputs`); the velocity skip always uses ``v_i`` itself.
        edge_features: the kernel attributes (:class:`EdgeFeatures`).
        layer_type: a key of :data:`LAYER_TYPES` (``"conv"`` or ``"message"``).
        velocity_kernel: add a :class:`VelocityKernel` of the velocities the inputs use to each layer.
        position_updates: hidden layers move the positions the next layer sees (:class:`PositionUpdate`).

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
        *,
        inputs: NodeInputs = NodeInputs(),
        edge_features: EdgeFeatures = EdgeFeatures(),
        layer_type: str = "conv",
        velocity_kernel: bool = False,
        position_updates: bool = False,
    ) -> None:
        super().__init__()
        if layers < 2:
            raise ValueError(f"NBodyNet needs at least 2 layers, got {layers}")
        if layer_type not in LAYER_TYPES:
            raise ValueError(f"NBodyNet: unknown layer_type {layer_type!r}; expected one of {sorted(LAYER_TYPES)}")
        G = st.group(group, backend=backend) if backend else st.group(group)
        if G.dim != 3:
            raise ValueError(f"NBodyNet needs a group acting on R^3, got {G!r}")
        self.G, self.inputs, self.edge_features = G, inputs, edge_features
        s, v = G.trivial_rep(), G.standard_rep()
        self.in_type = inputs.field_type(G)
        self.hidden_type = st.FieldType(G, [s] * hidden_scalars + [v] * hidden_vectors)
        self.out_type = st.FieldType(G, [v])
        self.position_update = PositionUpdate(self.hidden_type.size) if position_updates else None
        step_type = PositionUpdate.step_type(self.hidden_type, self.out_type) if position_updates else self.hidden_type
        kernel_kwargs: dict[str, Any] = dict(  # of every implicit kernel
            hidden_channels=kernel_hidden,
            hidden_layers=kernel_layers,
            basis_size=kernel_basis or None,
            radial_features=radial_features,
            max_radius=max_radius,
            envelope_width=envelope_width,
        )
        if kernel_options:
            kernel_kwargs["options"] = dict(kernel_options)
        types = [self.in_type] + [self.hidden_type] * (layers - 1)
        outs = [step_type] * (layers - 1) + [self.out_type]
        build = LAYER_TYPES[layer_type]
        # every layer, then every velocity kernel: the order in which parameters are drawn
        self.blocks = torch.nn.ModuleList(
            [
                build(
                    t_in,
                    t_out,
                    self.hidden_type,
                    t_out is not self.out_type,
                    dict(kernel_kwargs, edge_attr=edge_features.field_type(G, t_in)),
                )
                for t_in, t_out in zip(types, outs)
            ]
        )
        self.velocity_kernels = (
            torch.nn.ModuleList([VelocityKernel(t_in, t_out, kernel_kwargs) for t_in, t_out in zip(types, outs)])
            if velocity_kernel
            else None
        )
        if velocity_skip is not None:
            self.velocity_skip = torch.nn.Parameter(torch.tensor(float(velocity_skip)))
        else:
            self.register_parameter("velocity_skip", None)
        self._edges: dict[tuple[int, int, str], torch.Tensor] = {}

    def edges(self, n_systems: int, n_particles: int, device: torch.device) -> torch.Tensor:
        """Cached :func:`fully_connected_edges` (built afresh while ``torch.compile`` traces: a few
        static-shape ops in the graph, where a cache filled during tracing would change the
        module's state and force a second compilation on the next call)."""
        if torch.compiler.is_compiling():
            return fully_connected_edges(n_systems, n_particles, device)
        key = (n_systems, n_particles, str(device))
        if key not in self._edges:
            if len(self._edges) > 8:
                self._edges.clear()
            self._edges[key] = fully_connected_edges(n_systems, n_particles, device)
        return self._edges[key]

    def displacement(self, pos: torch.Tensor, vel: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        """Predicted displacement ``(B, n, 3)`` (translation invariant, rotation equivariant)."""
        B, n, _ = pos.shape
        vel_in = self.inputs.velocities(vel)
        x = self.inputs(pos, vel_in, charges)
        p = pos.reshape(B * n, 3)
        edge_index = self.edges(B, n, pos.device)
        src, dst = edge_index
        q = charges.reshape(B * n, 1)
        qq = q[src] * q[dst]
        # the interactions depend on velocities only through differences (Galilean invariance)
        v = vel.reshape(B * n, 3)
        v_ji = v[src] - v[dst]
        v_node = vel_in.reshape(B * n, 3)

        h, node_type, p_k = x, self.in_type, p
        geometry = EdgeGeometry.at(p_k, qq, v_ji, edge_index)  # recomputed only when the positions move
        for k, block in enumerate(self.blocks):
            out = block(h, p_k, edge_index, self.edge_features(geometry, h, node_type, edge_index))
            if self.velocity_kernels is not None:
                out = out + self.velocity_kernels[k](h, v_node, q)
            if k == len(self.blocks) - 1:
                break
            if self.position_update is not None:
                out, p_k = self.position_update(out, p_k)
                geometry = EdgeGeometry.at(p_k, qq, v_ji, edge_index)
            h = out if k == 0 else h + out  # residual after the first layer
            node_type = self.hidden_type
        disp = (p_k - p + out).reshape(B, n, 3)
        if self.velocity_skip is not None:
            disp = disp + self.velocity_skip * vel
        return disp

    def forward(self, pos: torch.Tensor, vel: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        return pos + self.displacement(pos, vel, charges)


def build_nbody_net(
    *,
    relative_velocity: bool = False,
    node_conditioning: bool = False,
    velocity_attribute: bool = False,
    galilean_inputs: bool = False,
    nonlinear_messages: bool = False,
    **options: Any,
) -> NBodyNet:
    """:class:`NBodyNet` from the task's flat model settings (``python -m steerable.tasks nbody --help``).

    The three edge switches make the :class:`EdgeFeatures`, ``galilean_inputs`` the
    :class:`NodeInputs`, ``nonlinear_messages`` picks the ``"message"`` layer type; every other
    setting (``velocity_kernel``, ``position_updates``, sizes, kernel options) is an argument of
    :class:`NBodyNet` of the same name.
    """
    return NBodyNet(
        inputs=NodeInputs(galilean_inputs),
        edge_features=EdgeFeatures(relative_velocity, node_conditioning, velocity_attribute),
        layer_type="message" if nonlinear_messages else "conv",
        **options,
    )


@torch.no_grad()
def equivariance_error(
    model: NBodyNet,
    pos: torch.Tensor,
    vel: torch.Tensor,
    charges: torch.Tensor,
    n_elements: int = 4,
    elements: st.GroupElements | None = None,
    translate: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Relative equivariance errors of ``model`` on a batch, maximised over group elements.

    Measured by :func:`steerable.testing.equivariance_error`: for each ``g`` (and a random
    translation ``t`` when ``translate``) it compares ``model(g pos + t, g vel, q)`` with
    ``g model(pos, vel, q) + t``.  Returns ``{"displacement": max_g |d(g.) - g d(.)| / |g d(.)|,
    "position": the same on the predicted positions}`` (Frobenius norms over the batch; the
    displacement error is the stricter one).  The model is evaluated in eval mode and left in the
    mode it had.  Shapes: ``pos``, ``vel`` ``(B, n, 3)``, ``charges`` ``(B, n, 1)``.
    """
    from steerable.testing import equivariance_error as engine_error

    batch, n, dim = pos.shape
    vector = st.FieldType(model.G, [model.G.standard_rep()])
    els = elements if elements is not None else model.G.sample(n_elements, generator=generator)

    def per_point(fn):  # the engine moves (N, 3) points and (N, 3) vector features
        return lambda p, v, q: fn(p.view(batch, n, dim), v.view(batch, n, dim), q).reshape(batch * n, dim)

    args = (pos.reshape(-1, dim), vel.reshape(-1, dim), charges)
    types = ("points", vector, None)
    was_training = model.training
    model.eval()
    try:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator)) if generator is not None else 0
        errors = {}
        for name, fn, out_type in (("displacement", model.displacement, vector), ("position", model, "points")):
            gen = torch.Generator().manual_seed(seed)  # the same translations for both measures
            errors[name] = engine_error(
                per_point(fn), args, types, out_type, elements=els, translate=translate, generator=gen, group=model.G
            )
    finally:
        model.train(was_training)
    return errors
