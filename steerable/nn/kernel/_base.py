"""What every implicit kernel layout shares: the backend's MLP, the radial envelope, the gain and
the input checks; and the factory :class:`ImplicitKernel` that picks a layout."""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable
from typing import Any, Literal, NamedTuple

import torch

from ...core.group import Group, check_same_group
from ...core.mlp import KernelMLPSpec
from ...core.representation import FieldType, Rep, as_field_type
from ...ops.transforms import compiling_or_transformed
from .._repr import layer_repr, type_str
from ..checks import check_attributes, check_layer_dtype, check_max_radius, parameter_dtype

#: Default number of basis kernels per representation pair (shared-basis layout).
BASIS_SIZE = 8

#: ``envelope_width`` of a layer: a width in position units, ``"auto"`` (the default of every
#: layer: ``max_radius``, see :func:`initial_envelope_width`) or ``None`` (no envelope).
EnvelopeWidth = float | Literal["auto"] | None


def initial_envelope_width(width: EnvelopeWidth, max_radius: float, who: str = "ImplicitKernel") -> float | None:
    """The initial envelope width of a kernel, in position units (``None``: no envelope).

    The one rule of :class:`ImplicitKernel`, :class:`~steerable.nn.PointConv` and
    :class:`~steerable.nn.GridConv`: ``"auto"`` (their default) is ``max_radius``, so the envelope
    ``exp(-|x|^2 / w^2)`` starts at ``1/e`` at ``|x| = max_radius`` and at ``exp(-r^2 / max_radius^2)``
    beyond, whatever the data's units; a number is taken as the width itself.

    Raises:
        ValueError: ``width`` is not ``"auto"``, ``None`` or a finite number > 0.
    """
    if width is None:
        return None
    if isinstance(width, str):
        if width != "auto":
            raise ValueError(f"{who}: envelope_width must be a number > 0, 'auto' or None, got {width!r}")
        return float(max_radius)
    number = isinstance(width, (int, float)) and not isinstance(width, bool)
    if not number or not (math.isfinite(width) and width > 0):
        raise ValueError(f"{who}: envelope_width must be positive (a finite number, 'auto' or None), got {width!r}")
    return float(width)


class Segment(NamedTuple):
    """A sub-matrix of the kernel that one stretch of the MLP output fills, flattened row-major
    over ``(out field, out channel, in field, in channel)``."""

    out_fields: list[int]
    in_fields: list[int]


def matrix_permutation(out_type: FieldType, in_type: FieldType, segments: list[Segment]) -> torch.Tensor:
    """``perm`` with ``matrix.flatten()[k] = flat[perm[k]]`` for a flat layout made of ``segments``.

    The segments follow each other in ``flat`` and together cover the ``(out, in)`` matrix exactly once.
    """
    d_in = in_type.size
    parts = [
        (out_type.channels(s.out_fields)[:, None] * d_in + in_type.channels(s.in_fields)[None, :]).reshape(-1)
        for s in segments
    ]
    entry_of_flat = torch.cat(parts)
    perm = torch.empty_like(entry_of_flat)
    perm[entry_of_flat] = torch.arange(len(entry_of_flat))
    return perm


def check_basis_size(basis_size: Any) -> None:
    if basis_size is not None and (not isinstance(basis_size, int) or isinstance(basis_size, bool) or basis_size < 1):
        raise ValueError(f"ImplicitKernel: basis_size must be a positive int or None, got {basis_size!r}")


def form_radius2(pos: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """``|x^T eta x|`` ``(E,)`` of positions ``(E, n)``: the envelope's invariant on a non-compact group. [issue 16]

    For ``O(p,q)`` (``eta = diag(+1 x p, -1 x q)``) it is the invariant interval's size: ``exp(-|q| / w^2)``
    decays with the proper time of timelike and the proper length of spacelike ``x``, and is ``1`` on the
    whole light cone (``q = 0``), where no invariant function can decay (a boost moves a lightlike ``x``
    along its ray to any length).  So the envelope is bounded by 1 everywhere, but not integrable over
    ``R^{p,q}`` (no non-zero invariant function is: the orbits, hyperboloids, have infinite volume);
    locality must come from the graph (e.g. :func:`steerable.interval_graph.interval_graph`), and
    positions far along the light cone see the polynomial kernel features unattenuated.
    """
    return torch.einsum("ei,ij,ej->e", pos, eta.to(pos), pos).abs()


class ImplicitKernel(torch.nn.Module, abc.ABC):
    """``K(x, a) in R^{out_type.size x in_type.size}`` with ``K(g x, g a) = rho_out(g) K(x, a) rho_in(g)^-1``.

    The kernel is built from the backend's equivariant MLP (contract: :mod:`steerable.core.mlp`).
    ``ImplicitKernel(...)`` builds one of two layouts, both instances of this class:

    * :class:`~steerable.nn.kernel.SharedBasisKernel` (``basis_size=M``, the default): ``M`` basis
      kernels per pair of representations, mixed per pair of fields by learned weights;
    * :class:`~steerable.nn.kernel.DenseKernel` (``basis_size=None``): one MLP output block per
      (output field, input field) pair, the kernel MLP of the paper taken literally.

    Every layout multiplies its MLP's blocks by a learnable Gaussian envelope ``exp(-|x|^2 / w^2)``
    (on a group with an indefinite form ``eta``, ``group.is_euclidean()`` false: ``exp(-|x^T eta x| / w^2)``,
    see :func:`form_radius2`; invariant, so equivariance is kept; one width per output field (dense) or
    per basis kernel (shared basis), stored as ``log_width``; initial width ``max_radius`` by default,
    :func:`initial_envelope_width`) and the kernel by the fan-in factor
    ``gain / sqrt(in_type.size)``, where the constant ``gain`` (calibrated once at construction)
    gives the MLP output the RMS ``INIT_RMS = 0.1`` on positions ``~ N(0, (max_radius / 2)^2)``
    (and standard normal attributes), whatever the backend.

    Operations (PyG's names).  Shapes: ``pos`` ``(E, n)`` the points at which the kernel is
    evaluated (for a convolution: ``pos[j] - pos[i]`` of edge ``j -> i``), ``attr``
    ``(E, attr_type.size)`` or ``None``:

    * ``forward(pos, attr) -> (E, out, in)``: the kernel matrices;
    * ``message(pos, attr, x_edge) -> (E, out)``: ``K(pos_e, attr_e) @ x_edge[e]`` for every ``e``,
      with ``x_edge`` ``(E, in)`` (one input vector per evaluation: an edge's source features, or a
      node's own features for a per-node kernel);
    * ``message_and_aggregate(pos, attr, x, src, dst, n_dst) -> (n_dst, out)``:
      ``sum_{e: dst_e = t} K(pos_e, attr_e) @ x[src_e]`` with ``x`` ``(N, in)`` node features and
      ``src``, ``dst`` ``(E,)`` long; no per-edge message tensor is kept
      (:func:`~steerable.ops.message.message_sum`).

    Radial range: ``max_radius`` (in the units of the positions) is the largest norm the kernel
    resolves: the radial basis covers ``[0, max_radius]`` and every backend scales its
    position features by it, so the kernel built for ``max_radius = R`` at ``R x`` equals the
    kernel built for ``max_radius = 1`` at ``x`` (same weights), and kernel values at different
    radii in ``(0, max_radius]`` differ (no flat region; ``tests/test_radial_range.py``).  Beyond
    ``max_radius`` the radial features fade out (below 1e-2 of their peak past ``max_radius``
    plus three centre spacings); with the default envelope the kernel then decays like
    ``exp(-|x|^2 / max_radius^2)`` on every backend.  The MLP never sees a position farther than
    ``MLP_REACH * max_radius`` (farther ones are pulled back onto that sphere, see
    :attr:`MLP_REACH`), so the kernel is finite and never NaN at any finite position, and bounded
    without an envelope too (``envelope_width=None``: the escnn kernels tend to a function of the
    direction alone, the e3nn kernel to zero, the matrix (linear) and lie (polynomial) kernels grow
    up to ``MLP_REACH * max_radius`` and stay there).

    Scale-free (``max_radius=None``, the default of the point layers when no cutoff is given): the
    MLP sees ``x / sqrt(1 + |x|^2)`` (an invariant rescaling, smooth, norm below 1) with
    ``max_radius = 1`` and, by default, no envelope.  The map is one to one in ``|x|``, so kernels
    at different distances differ at every scale (at ``|x| = 2, 3, 5`` the compressed norms are
    0.89, 0.95, 0.98), with a resolution that falls like ``|x|^-3`` far out: give the data's
    cutoff when you know it.  On a non-compact group (``eta`` set) there is no invariant norm to
    compress with; there ``None`` means ``max_radius = 1``.

    Args:
        in_type, out_type: field types of the input and output features (one group).
        attr_type: field type of kernel attributes (edge features, conditioning), an int count of
            invariant scalars, or ``None``.
        basis_size: number ``M`` of basis kernels per representation pair, or ``None`` for the
            dense layout.
        max_radius: the radial range, in the units of the positions (for a point convolution the
            cutoff of its graph), or ``None`` for the scale-free kernel (above).
        envelope_width: initial width ``w`` of the learnable radial envelope (in units of the
            positions), ``"auto"`` (default) for ``max_radius`` (no envelope when scale-free), or
            ``None`` for no envelope.
        normalize: apply the fan-in factor (``gain = 1`` and no ``1 / sqrt(in)`` otherwise).
        **mlp: further :class:`~steerable.core.mlp.KernelMLPSpec` fields (``hidden_channels``,
            ``hidden_layers``, ``radial_features``, ``nonlinearity``, ``options``).
    """

    #: RMS of the MLP output at initialisation, whatever the backend (see ``gain``).
    INIT_RMS = 0.1
    #: The MLP is evaluated at ``|x| <= MLP_REACH * max_radius``; farther positions are pulled
    #: back onto that sphere (their kernel is the one there in the same direction, times the
    #: envelope, which starts at ``exp(-MLP_REACH^2)`` there).
    MLP_REACH = 16.0
    #: Default number of basis kernels per representation pair.
    BASIS_SIZE = BASIS_SIZE

    in_type: FieldType
    out_type: FieldType
    attr_type: FieldType | None
    group: Group
    basis_size: int | None
    spec: KernelMLPSpec
    mlp: torch.nn.Module
    log_width: torch.nn.Parameter | None
    gain: torch.Tensor
    scale: float

    def __new__(cls, *args: Any, **kwargs: Any) -> ImplicitKernel:
        if cls is ImplicitKernel:  # the factory: pick the layout
            from ._dense import DenseKernel
            from ._shared import SharedBasisKernel

            basis_size = kwargs.get("basis_size", BASIS_SIZE)
            check_basis_size(basis_size)
            cls = DenseKernel if basis_size is None else SharedBasisKernel
        return super().__new__(cls)

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        attr_type: FieldType | int | None = None,
        *,
        basis_size: int | None,
        max_radius: float | None,
    ) -> None:
        """Check and store the types and the radial range; a layout's ``__init__`` then calls :meth:`_build`."""
        super().__init__()
        for t in (in_type, out_type):
            if not isinstance(t, FieldType):
                raise TypeError(f"ImplicitKernel: expected FieldType, got {type(t).__name__}")
        self.group = check_same_group([in_type.group, out_type.group], "ImplicitKernel")
        self.in_type, self.out_type = in_type, out_type
        self.attr_type = as_field_type(self.group, attr_type, "ImplicitKernel attr_type")
        check_basis_size(basis_size)
        self.basis_size = basis_size
        radius = check_max_radius(max_radius, "ImplicitKernel")
        #: no length scale given: the MLP sees ``x / sqrt(1 + |x|^2)`` (class doc, "Radial range")
        self.scale_free = radius is None
        self.max_radius = 1.0 if radius is None else radius

    def _build(
        self,
        blocks: tuple[tuple[Rep, Rep], ...],
        segments: list[Segment],
        n_envelopes: tuple[int, ...],
        envelope: EnvelopeWidth,
        normalize: bool,
        mlp: dict[str, Any],
    ) -> None:
        """The MLP emitting ``blocks``, laid out as ``segments`` of the matrix; ``log_width`` of shape
        ``n_envelopes``; the fan-in factor and the gain."""
        self.spec = KernelMLPSpec(self.group, blocks, self.attr_type, max_radius=self.max_radius, **mlp)
        self.mlp = self.group.build_kernel_mlp(self.spec)
        perm = matrix_permutation(self.out_type, self.in_type, segments)
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inv_perm", torch.argsort(perm), persistent=False)
        if self.scale_free and envelope == "auto" and self.group.is_euclidean():
            envelope = None  # compressed positions are bounded; an envelope would blind it far away
        self.envelope_width = initial_envelope_width(envelope, self.max_radius)
        self.normalize = normalize
        if self.envelope_width is not None:
            self.log_width = torch.nn.Parameter(torch.full(n_envelopes, math.log(self.envelope_width)))
        else:
            self.register_parameter("log_width", None)
        # [issue 16] the envelope's invariant: |x|^2 on a Euclidean group, |x^T eta x| on a non-compact one
        euclidean = self.group.is_euclidean()
        self.register_buffer("eta", None if euclidean else self.group.quadratic_form(), persistent=False)
        self.scale = 1.0 / math.sqrt(self.in_type.size) if normalize else 1.0
        # Backends' MLPs start at very different output scales (measured at init: escnn ~0.07,
        # e3nn ~1 RMS), so the same model would train differently on each (the N-body model
        # diverged on e3nn).  Calibrate once: a constant (hence equivariance-preserving) gain giving
        # the MLP output RMS ``INIT_RMS`` on a fixed sample of positions ~ N(0, (max_radius/2)^2)
        # and standard normal attributes.  Small kernels at init keep deep stacks close to their
        # residual / self-interaction path (unit RMS made the N-body demo 27x worse).  It is a
        # persistent buffer, so a loaded checkpoint keeps the gain its weights were trained with.
        gain = self._calibrate() if normalize else 1.0
        self.register_buffer("gain", torch.tensor(float(gain), dtype=torch.float64))

    def probe_inputs(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Standard normal ``(pos (n, dim), attr (n, attr.size) or None)`` in the MLP's dtype, for
        measurements at construction (gain calibration, memory per edge)."""
        dtype = next((p.dtype for p in self.mlp.parameters()), torch.get_default_dtype())
        pos = torch.randn(n, self.group.dim, generator=generator).to(dtype)
        attr = torch.randn(n, self.attr_type.size, generator=generator).to(dtype) if self.attr_type else None
        return pos, attr

    @torch.no_grad()
    def _calibrate(self, n_points: int = 256) -> float:
        pos, attr = self.probe_inputs(n_points, torch.Generator().manual_seed(0))
        rms = float(self.mlp(self._within_reach(pos * (self.spec.max_radius / 2)), attr).pow(2).mean().sqrt())
        return self.INIT_RMS / rms if rms > 0 and math.isfinite(rms) else 1.0

    def _mlp_output(self, pos: torch.Tensor, attr: torch.Tensor | None) -> torch.Tensor:
        """The MLP's output ``(E, spec.out_size)``; for ``E = 0`` zeros of ``pos``'s dtype and device.

        Backends' MLPs reshape with ``-1`` and fail on zero rows (an empty graph, a graph without
        edges); the MLP is skipped then.  The zeros stay connected to the MLP's parameters (with a
        zero gradient), so an empty batch leaves no parameter without a gradient (as DDP expects).
        """
        if pos.shape[0] == 0:
            return self._empty_rows(pos, attr, self.spec.out_size)
        return self.mlp(self._within_reach(pos), attr)

    def _mlp_pieces(self, pos: torch.Tensor, attr: torch.Tensor | None, sizes: list[int]) -> Iterable[torch.Tensor]:
        """The MLP's output as consecutive column pieces of widths ``sizes`` (``sum(sizes) = out_size``).

        An MLP that hands out its output in pieces lined up with ``sizes`` (``core.mlp``) yields
        them one at a time (no concatenated output); otherwise the output is split.
        """
        if pos.shape[0] and getattr(self.mlp, "piece_sizes", None) == sizes:
            return self.mlp.pieces(self._within_reach(pos), attr)
        return self._mlp_output(pos, attr).split(sizes, dim=1)

    def _within_reach(self, pos: torch.Tensor) -> torch.Tensor:
        """``pos`` with the rows beyond ``MLP_REACH * max_radius`` pulled back onto that sphere.

        Rows inside are returned bit for bit (scaled by exactly 1), so is their gradient; the
        factor is invariant, so equivariance is kept.  Without it a backend whose features grow
        with ``|x|`` (lie: polynomials, matrix: linear) overflows far away, and ``inf`` times the
        envelope's 0 is NaN.  The squared norm is taken in float32 at least (half overflows).
        On a non-compact group (``eta`` set) the Euclidean norm is not invariant and no invariant
        bounds a boost's orbit, so positions pass unchanged (locality comes from the graph there).
        """
        if self.eta is not None:
            return pos
        if self.scale_free:  # invariant factor 1 / sqrt(1 + |x|^2): smooth, and |x'| < 1 always
            wide = pos if pos.dtype in (torch.float32, torch.float64) else pos.float()
            return pos * torch.rsqrt(1 + wide.pow(2).sum(-1, keepdim=True)).to(pos.dtype)
        limit = self.MLP_REACH * self.max_radius
        wide = pos if pos.dtype in (torch.float32, torch.float64) else pos.float()
        r2 = wide.pow(2).sum(-1, keepdim=True)
        outside = r2 > limit**2
        if pos.device.type == "cpu" and not compiling_or_transformed() and not bool(outside.any()):
            return pos  # every row inside (a host read, free on the CPU): the same values and gradients
        pulled = limit * torch.rsqrt(r2.clamp_min(limit**2))  # finite gradient everywhere
        return pos * torch.where(outside, pulled, torch.ones_like(r2)).to(pos.dtype)

    def _empty_rows(self, pos: torch.Tensor, attr: torch.Tensor | None, width: int) -> torch.Tensor:
        """``(0, width)`` zeros of ``pos``'s dtype and device, depending on the (empty) inputs and on
        every MLP parameter, so that gradients with respect to them all are defined (and zero)."""
        out = pos.new_zeros(0, width) + pos.sum() * 0
        if attr is not None:
            out = out + attr.sum().to(out) * 0
        for p in self.mlp.parameters():
            out = out + p.reshape(-1)[:1].sum().to(out) * 0
        return out

    def _factor(self, like: torch.Tensor) -> torch.Tensor:
        """The constant factor of the whole kernel, ``gain / sqrt(in)`` (1 without ``normalize``): a
        0-d tensor of ``like``'s dtype (no ``float(gain)``: that would wait for the device)."""
        return self.gain.to(like.dtype) * self.scale

    def _envelope(self, pos: torch.Tensor) -> torch.Tensor:
        """``exp(-|x|^2 / w^2)`` (``exp(-|x^T eta x| / w^2)`` on a non-compact group): ``(E, *log_width.shape)``."""
        r2, inv_w2 = self._envelope_factors(pos)
        return torch.exp(-r2.view(-1, *([1] * inv_w2.ndim)) * inv_w2)

    def _envelope_factors(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(r2 (E,), 1 / w^2 (*log_width.shape))``: the envelope is ``exp(-r2[e] / w^2)``
        (:meth:`_envelope`), ``r2 = |x|^2`` (``|x^T eta x|`` on a non-compact group)."""
        assert self.log_width is not None
        inv_w2 = torch.exp(-2.0 * self.log_width).to(pos)
        r2 = pos.pow(2).sum(-1) if self.eta is None else form_radius2(pos, self.eta)
        return r2, inv_w2

    # -- input checks ---------------------------------------------------------------------------
    def _check(self, pos: torch.Tensor, attr: torch.Tensor | None) -> None:
        """``pos`` ``(E, n)`` floating, of the kernel's dtype; ``attr`` as in
        :func:`~steerable.nn.checks.check_attributes`."""
        n = self.group.dim
        if not isinstance(pos, torch.Tensor):
            raise TypeError(f"ImplicitKernel: positions must be a torch.Tensor, got {type(pos).__name__}")
        if pos.ndim != 2 or pos.shape[1] != n:
            raise ValueError(f"ImplicitKernel: positions must have shape (E, {n}), got {tuple(pos.shape)}")
        if not pos.is_floating_point():
            raise TypeError(f"ImplicitKernel: positions must be floating point, got {pos.dtype}")
        check_layer_dtype(pos, parameter_dtype(self.mlp), "ImplicitKernel", "positions", layer="kernel")
        check_attributes(
            attr,
            self.attr_type,
            "ImplicitKernel",
            "attributes",
            rows=(pos.shape[0], "position"),
            like=(pos, "positions"),
            built_without="attr_type",
            finite=False,  # the layers check their attributes; the kernel is called per chunk
        )

    def _check_features(self, x: torch.Tensor, rows: int | None, what: str) -> None:
        """``x`` ``(rows, in)`` (any number of rows when ``rows`` is ``None``) of the kernel's dtype."""
        self.in_type.check(x, dim=-1, what=f"ImplicitKernel {what}")
        if x.ndim != 2 or (rows is not None and x.shape[0] != rows):
            expected = f"({rows if rows is not None else 'N'}, {self.in_type.size})"
            raise ValueError(f"ImplicitKernel: {what} must have shape {expected}, got {tuple(x.shape)}")

    def _check_edges(self, pos: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, n_dst: int) -> None:
        for name, index in (("src", src), ("dst", dst)):
            if not isinstance(index, torch.Tensor) or index.dtype != torch.long or index.shape != (pos.shape[0],):
                got = (index.dtype, tuple(index.shape)) if isinstance(index, torch.Tensor) else type(index).__name__
                raise ValueError(f"ImplicitKernel: {name} must be a long tensor of shape ({pos.shape[0]},), got {got}")
        if not isinstance(n_dst, int) or isinstance(n_dst, bool) or n_dst < 0:
            raise ValueError(f"ImplicitKernel: n_dst must be a non-negative int, got {n_dst!r}")

    # -- operations -----------------------------------------------------------------------------
    @abc.abstractmethod
    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        """The kernel at ``pos``: ``(E, out, in)``."""

    @abc.abstractmethod
    def message(self, pos: torch.Tensor, attr: torch.Tensor | None, x_edge: torch.Tensor) -> torch.Tensor:
        """``K(pos_e, attr_e) @ x_edge[e]`` for every ``e``: ``(E, out)``, ``x_edge`` ``(E, in)``."""

    @abc.abstractmethod
    def message_and_aggregate(
        self,
        pos: torch.Tensor,
        attr: torch.Tensor | None,
        x: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        n_dst: int,
    ) -> torch.Tensor:
        """``sum_{e: dst_e = t} K(pos_e, attr_e) @ x[src_e]``: ``(n_dst, out)``, ``x`` ``(N, in)``."""

    # -- re-initialisation and printing ------------------------------------------------------
    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Re-initialise every parameter as at construction, in place (dtype, device kept).

        The MLP's parameters are copied from a freshly built MLP of the same spec, the envelope
        widths set to their initial value, the layout's own weights redrawn
        (:meth:`_reset_layout`) and the gain recalibrated for the new MLP.  Random draws come in the
        order of construction, so under the same seed the weights are those of a new layer.
        """
        self._reset_layout()  # first, as at construction: the same seed gives the same weights
        fresh = self.group.build_kernel_mlp(self.spec).train(self.mlp.training)
        mine, new = list(self.mlp.named_parameters()), list(fresh.named_parameters())
        if [(n, p.shape) for n, p in mine] != [(n, p.shape) for n, p in new]:
            raise RuntimeError(
                f"ImplicitKernel.reset_parameters: a fresh {type(self.mlp).__name__} has other parameters"
            )
        for (_, p), (_, q) in zip(mine, new):
            p.copy_(q)
        if self.log_width is not None:
            self.log_width.fill_(math.log(self.envelope_width))
        if self.normalize:
            self.gain.fill_(self._calibrate())

    def _reset_layout(self) -> None:
        """Redraw the layout's own weights (none by default)."""

    def extra_repr(self) -> str:
        return self._details()

    def _details(self) -> str:
        layout = "dense" if self.basis_size is None else f"basis_size={self.basis_size}"
        attr = [f"attr={type_str(self.attr_type)}"] if self.attr_type is not None else []
        spec = self.spec
        mlp = f"mlp={type(self.mlp).__name__}({spec.hidden_channels}x{spec.hidden_layers})"
        radius = "max_radius=None (scale-free)" if self.scale_free else f"max_radius={spec.max_radius:g}"
        return ", ".join([*attr, radius, layout, mlp])

    def __repr__(self) -> str:
        return layer_repr(self, self.in_type, self.out_type, [self._details()])
