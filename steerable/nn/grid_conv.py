"""Steerable convolution on regular 2D/3D grids with an implicit kernel."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from ..core.representation import FieldType, as_field_type
from ..ops.conv import conv_nd
from ..ops.transforms import compiling_or_transformed
from ._repr import layer_repr
from .bias import InvariantBias
from .checks import check_attributes, check_layer_dtype, parameter_dtype
from .grid_filter import GridFilter, reference_filter
from .kernel import EnvelopeWidth, ImplicitKernel

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _tuple(value: int | tuple[int, ...], dim: int, what: str, minimum: int) -> tuple[int, ...]:
    """``value`` as ``dim`` ints ``>= minimum`` (one int is repeated); bools are refused."""
    values = (value,) * dim if _is_int(value) else tuple(value) if isinstance(value, (tuple, list)) else None
    if values is None or len(values) != dim or not all(_is_int(v) and v >= minimum for v in values):
        bound = "non-negative" if minimum == 0 else "positive"
        raise ValueError(f"GridConv: {what} must be a {bound} int or {dim} of them, got {value!r}")
    return values


def kernel_grid(kernel_size: int, dim: int) -> torch.Tensor:
    """``(kernel_size**dim, dim)`` sample points: axis ``k`` holds coordinate ``k``, centred, in ``[-1, 1]``."""
    half = (kernel_size - 1) / 2
    axis = (torch.arange(kernel_size, dtype=torch.float64) - half) / max(half, 1.0)
    mesh = torch.meshgrid(*([axis] * dim), indexing="ij")
    return torch.stack(mesh, dim=-1).reshape(-1, dim)


class _FilterCache(NamedTuple):
    """The eval-mode filter and bias of a :class:`GridConv` and copies of the tensors they were made from."""

    values: tuple[torch.Tensor, ...]  # a copy of each watched tensor, in the order of GridConv._watched
    weight: torch.Tensor
    bias: torch.Tensor | None


class _Registrations:
    """Counts parameters, buffers and submodules (re)assigned on any module since import.

    Replacing a tensor (``module.weight = Parameter(...)``, ``register_buffer``,
    ``load_state_dict(..., assign=True)``, a new submodule) goes through these registrations, so a
    cache that holds tensors knows it must look them up again when the count moved.
    """

    count = 0

    @classmethod
    def bump(cls, *args: Any) -> None:
        cls.count += 1


def _same_values(copies: tuple[torch.Tensor, ...], tensors: list[torch.Tensor]) -> bool:
    """Whether every tensor equals its copy (same count, shapes, dtypes and values)."""
    return len(copies) == len(tensors) and all(
        c.dtype == t.dtype and c.shape == t.shape and torch.equal(c, t) for c, t in zip(copies, tensors)
    )


torch.nn.modules.module.register_module_parameter_registration_hook(_Registrations.bump)
torch.nn.modules.module.register_module_buffer_registration_hook(_Registrations.bump)
torch.nn.modules.module.register_module_module_registration_hook(_Registrations.bump)


class GridConv(torch.nn.Module):
    """Steerable 2D/3D convolution whose filter is an implicit kernel sampled on the grid.

    Convention: spatial tensor axis ``k`` holds coordinate ``k`` (first spatial axis = x, second =
    y, third = z); the kernel is sampled at offsets from the kernel centre scaled to ``[-1, 1]``.
    The layer is a cross-correlation: ``y(p) = sum_a K(a) x(p + a)``, so ``K`` is evaluated at
    source minus target, as in :class:`~steerable.nn.point_conv.PointConv`.  Rotating the image by
    a lattice symmetry of the group (90° turns, axis flips) commutes with the layer exactly.
    With a stride, that needs output samples placed symmetrically about the input's centre: the
    layer refuses inputs whose size breaks it (:meth:`centring_excess`); for an odd
    ``kernel_size`` and stride 2 the input size must be odd, for an even ``kernel_size`` even
    (with odd dilation).

    Shapes: ``x`` ``(B, in_type.size, X, Y[, Z[, W, ...]])`` -> ``(B, out_type.size, X', Y'[, Z'[, W', ...]])``
    (R^4 and beyond: one convolution of one dimension less per tap of the last axis,
    :func:`steerable.ops.conv.conv_nd`);
    ``attr`` (only with ``kernel_attr``) ``(B, kernel_attr.size)``: per-sample conditioning (e.g. a
    time step) fed to the kernel MLP, giving each batch element its own filter.

    Without attributes the filter is assembled from the kernel's products straight into conv layout
    (:class:`~steerable.nn.grid_filter.GridFilter`: one mixing product per representation pair and
    one gather; ``filter(reference=True)`` gives the kernel's matrices moved to that layout, equal to
    round-off).  In eval mode without attributes, on the CPU, the filter is cached and recomputed only when a
    parameter of the kernel changes value (optimizer step, ``load_state_dict``, any in-place edit),
    so the layer costs one ``conv2d``/``conv3d``.  On an accelerator the filter is recomputed on
    every call (an MLP on ``kernel_size^d`` points, queued without waiting): comparing parameter
    values there would cost a host synchronisation per layer per call.

    Args:
        in_type, out_type: field types of a group acting on ``R^2`` or ``R^3``.
        kernel_size: filter width (the same along every axis).
        stride, padding, dilation: as in ``torch.nn.Conv2d``.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.
        bias: learnable bias on the invariant output channels.
        kernel_attr: field type (or int count of scalars) of per-sample kernel attributes.
        basis_size: basis kernels per representation pair, or ``None`` for a dense kernel
            (:class:`~steerable.nn.kernel.ImplicitKernel`).
        envelope_width: initial width of the learnable radial envelope in grid units (the filter
            spans ``[-1, 1]`` per axis); ``"auto"`` (default): ``max_radius``, the rule of every
            layer (:func:`~steerable.nn.kernel.initial_envelope_width`); ``None``: none.
        **mlp: kernel MLP options, see :class:`~steerable.core.mlp.KernelMLPSpec`.  ``max_radius``
            is derived from the filter's extent: ``sqrt(dim)``, the distance of a corner tap from
            the centre in grid units (no tap lies beyond it); it may be overridden.
    """

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        kernel_size: int,
        *,
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        padding_mode: str = "zeros",
        bias: bool = True,
        kernel_attr: FieldType | int | None = None,
        basis_size: int | None = ImplicitKernel.BASIS_SIZE,
        envelope_width: EnvelopeWidth = "auto",
        **mlp: Any,
    ) -> None:
        super().__init__()
        if not isinstance(in_type, FieldType) or not isinstance(out_type, FieldType):
            raise TypeError("GridConv: in_type and out_type must be FieldType instances")
        dim = in_type.group.dim
        if dim < 2:
            raise ValueError(f"GridConv supports groups on R^d, d >= 2, got {in_type.group!r}")
        if not _is_int(kernel_size) or kernel_size < 1:
            raise ValueError(f"GridConv: kernel_size must be a positive int, got {kernel_size!r}")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"GridConv: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        if dim > 3 and padding_mode != "zeros":
            raise ValueError(f"GridConv on R^{dim} supports padding_mode='zeros' only, got {padding_mode!r}")
        self.in_type, self.out_type, self.dim = in_type, out_type, dim
        self.kernel_size = kernel_size
        self.stride = _tuple(stride, dim, "stride", 1)
        self.padding = _tuple(padding, dim, "padding", 0)
        self.dilation = _tuple(dilation, dim, "dilation", 1)
        self.padding_mode = padding_mode
        self.attr_type = as_field_type(in_type.group, kernel_attr, "GridConv kernel_attr")
        max_radius = mlp.pop("max_radius", math.sqrt(dim))  # the corner taps: grid units
        self.kernel = ImplicitKernel(
            in_type,
            out_type,
            self.attr_type,
            basis_size=basis_size,
            max_radius=max_radius,
            envelope_width=envelope_width,
            **mlp,
        )
        self.bias = InvariantBias(out_type) if bias else None
        self.register_buffer("grid", kernel_grid(kernel_size, dim).float(), persistent=False)
        # the filter assembled straight into conv layout (None: a layout without one, the reference)
        self.assembly = GridFilter(self.kernel, kernel_size**dim) if GridFilter.supports(self.kernel) else None
        self._cache: _FilterCache | None = None
        self._watched: list[torch.Tensor] | None = None  # tensors the cached filter depends on
        self._watched_at = -1  # _Registrations.count when _watched was looked up

    @property
    def group(self):
        return self.in_type.group

    # -- the filter ------------------------------------------------------------------------
    def filter(self, attr: torch.Tensor | None = None, *, reference: bool = False) -> torch.Tensor:
        """The sampled filter: ``(out, in, k, ..., k)``, or ``(B, out, in, k, ..., k)`` with ``attr``.

        Without attributes it is assembled straight into conv layout (:mod:`~steerable.nn.grid_filter`;
        a kernel assigned after construction with other field types or layout gets the reference);
        ``reference=True`` builds it from the kernel's matrices instead (same values and gradients
        to round-off; for tests and comparisons).
        """
        k, d = self.kernel_size, self.dim
        points = self.grid.to(self._param_dtype())
        if attr is None:
            if self.assembly is not None and not reference and self.assembly.fits(self.kernel, points.shape[0]):
                return self.assembly(self.kernel, points, k)
            return reference_filter(self.kernel, points, k)
        batch = attr.shape[0]
        values = self.kernel(points.repeat(batch, 1), attr.repeat_interleave(points.shape[0], dim=0))
        values = values.view(batch, k**d, self.out_type.size, self.in_type.size)
        return values.permute(0, 2, 3, 1).reshape(batch, self.out_type.size, self.in_type.size, *([k] * d))

    def _param_dtype(self) -> torch.dtype:
        return parameter_dtype(self.kernel) or torch.get_default_dtype()

    def _cached_filter(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The filter and the bias vector, recomputed only when a tensor they depend on changed value.

        Values are compared, not version counters: an in-place edit through ``.data`` (as some
        EMA and weight-surgery code does) leaves the version counter unchanged.  The watched
        tensors (the kernel's parameters and gain, the bias) are small next to the filter they make;
        each is compared with its copy (``torch.equal``, one call per tensor: used on the CPU only,
        where reading values costs no synchronisation; ~2 us each).  They are looked up again
        (walking the MLP's module tree costs ~0.2 ms) only when some tensor or module was
        (re)assigned anywhere (:class:`_Registrations`): a replaced parameter is watched, not the
        old one.
        """
        if self._watched is None or self._watched_at != _Registrations.count:
            bias = [self.bias.bias] if self.bias is not None and self.bias.bias is not None else []
            self._watched = list(self.kernel.parameters()) + [self.kernel.gain] + bias
            self._watched_at = _Registrations.count
        cache = self._cache
        if cache is None or not _same_values(cache.values, self._watched):
            with torch.no_grad():
                values = tuple(t.detach().clone() for t in self._watched)
                bias_vector = self.bias.vector() if self.bias is not None else None
                cache = self._cache = _FilterCache(values, self.filter(), bias_vector)
        return cache.weight, cache.bias

    def _apply(self, fn, *args, **kwargs):  # .to(), .double(), ...: may replace tensors
        self._cache, self._watched = None, None
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True) -> GridConv:
        self._cache, self._watched = None, None
        return super().train(mode)

    # -- forward ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(x, attr)
        if attr is None:
            use_cache = (
                x.device.type == "cpu"  # elsewhere the value check would cost a host sync per call
                and not self.training
                and not torch.is_grad_enabled()
                and not compiling_or_transformed()
            )
            if use_cache:
                weight, bias = self._cached_filter()
            else:
                weight, bias = self.filter(), self._bias_vector()
            return self._conv(x, weight, bias, groups=1)
        batch = x.shape[0]
        weight = self.filter(attr).flatten(0, 1)  # (B*out, in, k..)
        bias = self._bias_vector()
        bias = bias.repeat(batch) if bias is not None else None
        y = self._conv(x.reshape(1, batch * self.in_type.size, *x.shape[2:]), weight, bias, groups=batch)
        return y.view(batch, self.out_type.size, *y.shape[2:])

    def _bias_vector(self) -> torch.Tensor | None:
        return self.bias.vector() if self.bias is not None else None

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: int) -> torch.Tensor:
        padding: Any = self.padding
        if self.padding_mode != "zeros" and any(self.padding):
            pad = [p for p in reversed(self.padding) for _ in range(2)]
            x = F.pad(x, pad, mode=self.padding_mode)
            padding = 0
        return conv_nd(x, weight, bias, self.stride, padding, self.dilation, groups)

    def centring_excess(self, spatial: tuple[int, ...] | torch.Size) -> tuple[int, ...]:
        """Per spatial axis ``(size + 2 padding - dilation (kernel_size - 1) - 1) % stride``.

        Output sample ``o`` sits at input coordinate ``o stride - padding + dilation (k - 1) / 2``
        (pixel units); the ``O = floor(L / stride) + 1`` samples, ``L = size + 2 padding -
        dilation (k - 1) - 1``, are symmetric about the input's centre ``(size - 1) / 2`` exactly
        when ``(O - 1) stride = L``, i.e. when this excess is 0.  Only then do the lattice
        symmetries (turns and flips about the grid centre) commute with the layer.
        """
        return tuple(
            (n + 2 * p - d * (self.kernel_size - 1) - 1) % s
            for n, p, d, s in zip(spatial, self.padding, self.dilation, self.stride)
        )

    def _check_inputs(self, x: torch.Tensor, attr: torch.Tensor | None) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != self.dim + 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            axes = "XYZW"[: self.dim] if self.dim <= 4 else [f"X{i}" for i in range(self.dim)]
            raise ValueError(
                f"GridConv on {self.group!r} expects (B, {self.in_type.size}, {', '.join(axes)}), got {shape}"
            )
        for axis, (n, p, d) in enumerate(zip(x.shape[2:], self.padding, self.dilation)):
            if n + 2 * p < d * (self.kernel_size - 1) + 1:
                raise ValueError(
                    f"GridConv: spatial size {n} (axis {axis}) with padding {p} is smaller than the "
                    f"filter's extent {d * (self.kernel_size - 1) + 1} (kernel_size {self.kernel_size}, dilation {d})"
                )
        excess = self.centring_excess(x.shape[2:])
        if any(excess):
            axis = next(a for a, e in enumerate(excess) if e)
            n, s = x.shape[2 + axis], self.stride[axis]
            raise ValueError(
                f"GridConv: stride {s} on spatial size {n} (axis {axis}) samples an output grid off the "
                f"input's centre, which breaks equivariance: (size + 2*padding - dilation*(kernel_size-1) - 1) "
                f"= {n + 2 * self.padding[axis] - self.dilation[axis] * (self.kernel_size - 1) - 1} must be a "
                f"multiple of the stride; crop or pad the input to size {n - excess[axis]} or "
                f"{n + s - excess[axis]} (or change padding / kernel_size)"
            )
        self.in_type.check(x, dim=1, what="GridConv input")
        check_layer_dtype(x, self._param_dtype(), "GridConv", "input")
        check_attributes(
            attr,
            self.attr_type,
            "GridConv",
            "kernel attributes",
            rows=(x.shape[0], "sample"),
            like=(x, "x"),
            built_without="kernel_attr",
        )

    def reset_parameters(self) -> None:
        """Re-initialise the kernel and the bias as at construction (the filter cache follows)."""
        self.kernel.reset_parameters()
        if self.bias is not None:
            self.bias.reset_parameters()
        self._cache = None

    def __repr__(self) -> str:
        details = [f"kernel_size={self.kernel_size}"]
        for name, default in (("stride", 1), ("padding", 0), ("dilation", 1)):
            value = getattr(self, name)
            if any(v != default for v in value):
                details.append(f"{name}={value[0] if len(set(value)) == 1 else value}")
        if self.padding_mode != "zeros":
            details.append(f"padding_mode={self.padding_mode!r}")
        details.append(self.kernel._details())
        if self.bias is None:
            details.append("bias=False")
        return layer_repr(self, self.in_type, self.out_type, details)
