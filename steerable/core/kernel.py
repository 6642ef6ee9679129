"""The implicit steerable kernel: an equivariant MLP of the relative position, shaped as a matrix."""
from __future__ import annotations

import math
from typing import Any

import torch

from .group import check_same_group
from .mlp import KernelMLPSpec
from .representation import FieldType, as_field_type


class _PermuteColumns(torch.autograd.Function):
    """``flat[:, perm] * scale`` for a permutation ``perm``, with a gather (not a scatter) backward.

    The generic backward of advanced indexing is an accumulating ``index_put_`` (a scatter that
    must allow repeated indices); for a bijection the gradient is just the inverse gather
    ``grad[:, inv_perm] * scale``.  The scalar ``scale`` is applied in place on the fresh output, so
    no second ``E x d_out x d_in`` buffer is made.  Backward calls this function again, so higher
    derivatives work.
    """

    @staticmethod
    def forward(ctx: Any, flat: torch.Tensor, perm: torch.Tensor, inv_perm: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(perm, inv_perm)
        ctx.scale = scale
        out = flat.index_select(1, perm)
        return out.mul_(scale) if scale != 1.0 else out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        perm, inv_perm = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        return _PermuteColumns.apply(grad.contiguous(), inv_perm, perm, ctx.scale), None, None, None


def _check_points(pos: torch.Tensor, dim: int, what: str) -> None:
    if not isinstance(pos, torch.Tensor):
        raise TypeError(f"{what}: positions must be a torch.Tensor, got {type(pos).__name__}")
    if pos.ndim != 2 or pos.shape[1] != dim:
        raise ValueError(f"{what}: positions must have shape (E, {dim}), got {tuple(pos.shape)}")
    if not pos.is_floating_point():
        raise TypeError(f"{what}: positions must be floating point, got {pos.dtype}")


class ImplicitKernel(torch.nn.Module):
    """``K(x, a) in R^{out_type.size x in_type.size}`` with ``K(g x, g a) = rho_out(g) K(x, a) rho_in(g)^T``.

    The backend's equivariant MLP maps ``(x, a)`` to ``⊕_{i,j} rho_out_i ⊗ rho_in_j``; this module
    scatters its blocks into the full matrix, multiplies each output field by a learnable Gaussian
    envelope ``exp(-|x|^2 / w^2)`` (invariant, so equivariance is kept) and by the fan-in factor
    ``gain / sqrt(in_type.size)``, where the constant ``gain`` (calibrated once at construction)
    gives the MLP output the RMS ``INIT_RMS = 0.1`` at initialisation, whatever the backend.

    Shapes: ``pos`` ``(E, n)``, ``attr`` ``(E, attr_type.size)`` or ``None`` -> ``(E, out, in)``.

    Args:
        in_type, out_type: field types of the input and output features (one group).
        attr_type: field type of kernel attributes (edge features, conditioning), an int count of
            invariant scalars, or ``None``.
        envelope_width: initial width ``w`` of the learnable radial envelope (in units of the
            positions), or ``None`` for no envelope.
        normalize: apply the fan-in factor.
        **mlp: :class:`~steerable.core.mlp.KernelMLPSpec` fields (``hidden_channels``,
            ``hidden_layers``, ``radial_features``, ``max_radius``, ``nonlinearity``, ``options``).
    """

    #: RMS of the MLP output at initialisation, whatever the backend (see ``gain``).
    INIT_RMS = 0.1

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        attr_type: FieldType | int | None = None,
        *,
        envelope_width: float | None = 1.0,
        normalize: bool = True,
        **mlp: Any,
    ) -> None:
        super().__init__()
        for t in (in_type, out_type):
            if not isinstance(t, FieldType):
                raise TypeError(f"ImplicitKernel: expected FieldType, got {type(t).__name__}")
        self.group = check_same_group([in_type.group, out_type.group], "ImplicitKernel")
        attr_type = as_field_type(self.group, attr_type, "ImplicitKernel attr_type")
        self.in_type, self.out_type, self.attr_type = in_type, out_type, attr_type
        blocks = tuple((ro, ri) for ro in out_type.reps for ri in in_type.reps)
        self.spec = KernelMLPSpec(self.group, blocks, attr_type, **mlp)
        self.mlp = self.group.build_kernel_mlp(self.spec)

        # perm[k] = index in the MLP output of entry k of the row-major (out, in) kernel matrix.
        d_out, d_in = out_type.size, in_type.size
        perm = torch.empty(d_out * d_in, dtype=torch.long)
        start = 0
        for o_off, ro in zip(out_type.offsets, out_type.reps):
            for i_off, ri in zip(in_type.offsets, in_type.reps):
                rows = torch.arange(o_off, o_off + ro.size)[:, None]
                cols = torch.arange(i_off, i_off + ri.size)[None, :]
                perm[(rows * d_in + cols).reshape(-1)] = torch.arange(start, start + ro.size * ri.size)
                start += ro.size * ri.size
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inv_perm", torch.argsort(perm), persistent=False)

        field_of_channel = torch.cat([torch.full((r.size,), k) for k, r in enumerate(out_type.reps)])
        self.register_buffer("field_of_channel", field_of_channel, persistent=False)
        if envelope_width is not None:
            if not envelope_width > 0:
                raise ValueError(f"envelope_width must be positive, got {envelope_width}")
            self.log_width = torch.nn.Parameter(torch.full((len(out_type),), math.log(envelope_width)))
        else:
            self.register_parameter("log_width", None)
        self.scale = 1.0 / math.sqrt(d_in) if normalize else 1.0
        # Backends' MLPs start at very different output scales (measured at init: escnn ~0.07,
        # e3nn ~1 RMS), so the same model would train differently on each (the N-body model
        # diverged on e3nn).  Calibrate once: a constant (hence equivariance-preserving) gain giving
        # the MLP output RMS ``INIT_RMS`` on a fixed sample of positions ~ N(0, (max_radius/2)^2)
        # and standard normal attributes.  Small kernels at init keep deep stacks close to their
        # residual / self-interaction path (unit RMS made the N-body demo 27x worse).  It is a
        # persistent buffer, so a loaded checkpoint keeps the gain its weights were trained with.
        gain = self._calibrate() if normalize else 1.0
        self.register_buffer("gain", torch.tensor(float(gain), dtype=torch.float64))

    @torch.no_grad()
    def _calibrate(self, n_points: int = 256) -> float:
        gen = torch.Generator().manual_seed(0)
        dtype = next((p.dtype for p in self.mlp.parameters()), torch.get_default_dtype())
        pos = torch.randn(n_points, self.group.dim, generator=gen).to(dtype) * (self.spec.max_radius / 2)
        attr = torch.randn(n_points, self.attr_type.size, generator=gen).to(dtype) if self.attr_type else None
        rms = float(self.mlp(pos, attr).pow(2).mean().sqrt())
        return self.INIT_RMS / rms if rms > 0 and math.isfinite(rms) else 1.0

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        _check_points(pos, self.group.dim, "ImplicitKernel")
        if self.attr_type is None:
            if attr is not None:
                raise ValueError("ImplicitKernel: got attributes but was built with attr_type=None")
        else:
            if attr is None:
                raise ValueError(f"ImplicitKernel: attributes of type {self.attr_type!r} are required")
            self.attr_type.check(attr, dim=-1, what="ImplicitKernel attributes")
            if attr.shape[0] != pos.shape[0]:
                raise ValueError(
                    f"ImplicitKernel: {pos.shape[0]} positions but {attr.shape[0]} attribute rows"
                )
        flat = self.mlp(pos, attr)
        n_edges = pos.shape[0]
        scale = self.scale * float(self.gain)
        if self.log_width is None:
            # one gather pass with the fan-in factor applied in place
            kernel = _PermuteColumns.apply(flat, self.perm, self.inv_perm, scale)
            return kernel.view(n_edges, self.out_type.size, self.in_type.size)
        kernel = _PermuteColumns.apply(flat, self.perm, self.inv_perm, 1.0)
        kernel = kernel.view(n_edges, self.out_type.size, self.in_type.size)
        inv_w2 = torch.exp(-2.0 * self.log_width)[self.field_of_channel].to(pos)
        envelope = torch.exp(-pos.pow(2).sum(-1, keepdim=True) * inv_w2)  # (E, out)
        if scale != 1.0:
            envelope = envelope * scale  # fold the fan-in factor into the small (E, out) factor
        return kernel * envelope[:, :, None]

    def extra_repr(self) -> str:
        return f"{self.in_type!r} -> {self.out_type!r}, attr={self.attr_type!r}"


class InvariantBias(torch.nn.Module):
    """A learnable bias on the trivial (invariant) channels of ``out_type``; others get none."""

    def __init__(self, out_type: FieldType) -> None:
        super().__init__()
        channels = torch.tensor(out_type.trivial_channels, dtype=torch.long)
        self.register_buffer("channels", channels, persistent=False)
        self.size = out_type.size
        self.bias = torch.nn.Parameter(torch.zeros(len(channels))) if len(channels) else None

    def vector(self) -> torch.Tensor | None:
        """The bias as a full ``(out_type.size,)`` vector, zero on non-invariant channels."""
        if self.bias is None:
            return None
        full = self.bias.new_zeros(self.size)
        return full.index_copy(0, self.channels, self.bias)
