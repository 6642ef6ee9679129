"""The implicit steerable kernel: an equivariant MLP of the relative position, shaped as a matrix."""
from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import torch

from ..core.group import check_same_group
from ..core.mlp import KernelMLPSpec
from ..core.representation import FieldType, as_field_type
from ..ops.message import message_sum
from ..ops.permute import permute_columns


def _check_points(pos: torch.Tensor, dim: int, what: str) -> None:
    if not isinstance(pos, torch.Tensor):
        raise TypeError(f"{what}: positions must be a torch.Tensor, got {type(pos).__name__}")
    if pos.ndim != 2 or pos.shape[1] != dim:
        raise ValueError(f"{what}: positions must have shape (E, {dim}), got {tuple(pos.shape)}")
    if not pos.is_floating_point():
        raise TypeError(f"{what}: positions must be floating point, got {pos.dtype}")


def _matrix_permutation(
    out_type: FieldType, in_type: FieldType, segments: list[tuple[list[int], list[int]]]
) -> torch.Tensor:
    """``perm`` with ``matrix.flatten()[k] = flat[perm[k]]`` for a flat layout made of ``segments``.

    Segment ``(outs, ins)`` is the ``(len(outs) x out_rep, len(ins) x in_rep)`` sub-matrix of the
    listed output and input fields, flattened row-major over ``(out field, out channel, in field,
    in channel)``; the segments follow each other and together cover the matrix exactly once.
    """
    d_in = in_type.size
    parts = [
        (out_type.channels(outs)[:, None] * d_in + in_type.channels(ins)[None, :]).reshape(-1)
        for outs, ins in segments
    ]
    entry_of_flat = torch.cat(parts)
    perm = torch.empty_like(entry_of_flat)
    perm[entry_of_flat] = torch.arange(len(entry_of_flat))
    return perm


class ImplicitKernel(torch.nn.Module):
    """``K(x, a) in R^{out_type.size x in_type.size}`` with ``K(g x, g a) = rho_out(g) K(x, a) rho_in(g)^T``.

    The kernel is built from the backend's equivariant MLP (contract: :mod:`steerable.core.mlp`) in
    one of two layouts:

    * **shared basis** (``basis_size=M``, the default): fields are grouped by representation, and
      for every pair of an output representation ``rho_o`` and an input representation ``rho_i`` the
      MLP emits ``M`` basis kernels ``phi_m(x, a)`` of type ``rho_o ⊗ rho_i``; the block of output
      field ``o`` and input field ``i`` is the learned combination ``sum_m W[o, m, i] phi_m``.  The
      MLP output no longer grows with the number of fields (``M`` per representation pair instead
      of one per field pair), and :meth:`aggregate` / :meth:`mix` let a point convolution contract
      messages without building ``E x out x in`` kernels.  A scalar mix of kernels of one type is
      equivariant; every block still reaches the whole space the symmetry allows (each ``phi_m``
      does, :mod:`steerable.core.mlp`).
    * **dense** (``basis_size=None``): one MLP output block per (output field, input field) pair,
      the kernel MLP of the paper taken literally.

    Each basis kernel (shared) or output field (dense) is multiplied by a learnable Gaussian
    envelope ``exp(-|x|^2 / w^2)`` (invariant, so equivariance is kept), and the kernel by the
    fan-in factor ``gain / sqrt(in_type.size)``, where the constant ``gain`` (calibrated once at
    construction) gives the MLP output the RMS ``INIT_RMS = 0.1`` at initialisation, whatever the
    backend.

    Shapes: ``pos`` ``(E, n)``, ``attr`` ``(E, attr_type.size)`` or ``None`` -> ``(E, out, in)``.

    Args:
        in_type, out_type: field types of the input and output features (one group).
        attr_type: field type of kernel attributes (edge features, conditioning), an int count of
            invariant scalars, or ``None``.
        basis_size: number ``M`` of basis kernels per representation pair, or ``None`` for the
            dense layout.
        envelope_width: initial width ``w`` of the learnable radial envelope (in units of the
            positions), or ``None`` for no envelope.
        normalize: apply the fan-in factor.
        **mlp: :class:`~steerable.core.mlp.KernelMLPSpec` fields (``hidden_channels``,
            ``hidden_layers``, ``radial_features``, ``max_radius``, ``nonlinearity``, ``options``).
    """

    #: RMS of the MLP output at initialisation, whatever the backend (see ``gain``).
    INIT_RMS = 0.1
    #: Default number of basis kernels per representation pair.
    BASIS_SIZE = 8

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        attr_type: FieldType | int | None = None,
        *,
        basis_size: int | None = BASIS_SIZE,
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
        if basis_size is not None and (not isinstance(basis_size, int) or basis_size < 1):
            raise ValueError(f"ImplicitKernel: basis_size must be a positive int or None, got {basis_size!r}")
        self.basis_size = basis_size

        if basis_size is None:
            segments = [([o], [i]) for o in range(len(out_type)) for i in range(len(in_type))]
            blocks = tuple((ro, ri) for ro in out_type.reps for ri in in_type.reps)
            n_envelopes: tuple[int, ...] = (len(out_type),)
            field_of_channel = torch.cat([torch.full((r.size,), k) for k, r in enumerate(out_type.reps)])
            self.register_buffer("field_of_channel", field_of_channel, persistent=False)
        else:
            M = basis_size
            out_groups, in_groups = out_type.by_rep(), in_type.by_rep()
            # (out rep, out fields, in rep, in fields, offset of the input group in the grouped layout)
            in_offsets = torch.tensor([0] + [r.size * len(f) for r, f in in_groups]).cumsum(0).tolist()
            self._pairs = [
                (ro, outs, ri, ins, in_offsets[k]) for ro, outs in out_groups for k, (ri, ins) in enumerate(in_groups)
            ]
            segments = [(outs, ins) for _, outs, _, ins, _ in self._pairs]
            blocks = tuple((ro, ri) for ro, _, ri, _, _ in self._pairs for _ in range(M))
            # W[o, m, i] ~ N(0, 1/M): a block sums M basis kernels, so it starts at their scale
            self.mixing = torch.nn.ParameterList(
                torch.nn.Parameter(torch.randn(len(outs), M, len(ins)) / math.sqrt(M))
                for _, outs, _, ins, _ in self._pairs
            )
            n_envelopes = (len(self._pairs), M)
            # input channels grouped by representation, and output channels back to field order
            input_order = in_type.channels([k for _, f in in_groups for k in f])
            self.register_buffer("input_order", input_order, persistent=False)
            grouped_out = out_type.channels([k for _, f in out_groups for k in f])
            self.register_buffer("output_order", torch.argsort(grouped_out), persistent=False)
        self.spec = KernelMLPSpec(self.group, blocks, attr_type, **mlp)
        self.mlp = self.group.build_kernel_mlp(self.spec)
        perm = _matrix_permutation(out_type, in_type, segments)
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inv_perm", torch.argsort(perm), persistent=False)

        if envelope_width is not None:
            if not envelope_width > 0:
                raise ValueError(f"envelope_width must be positive, got {envelope_width}")
            self.log_width = torch.nn.Parameter(torch.full(n_envelopes, math.log(envelope_width)))
        else:
            self.register_parameter("log_width", None)
        self.scale = 1.0 / math.sqrt(in_type.size) if normalize else 1.0
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
        rms = float(self.mlp(pos * (self.spec.max_radius / 2), attr).pow(2).mean().sqrt())
        return self.INIT_RMS / rms if rms > 0 and math.isfinite(rms) else 1.0

    def _check(self, pos: torch.Tensor, attr: torch.Tensor | None) -> None:
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

    def _envelope(self, pos: torch.Tensor) -> torch.Tensor:
        """``exp(-|x|^2 / w^2)``: ``(E, out fields)`` (dense) or ``(E, pairs, M)`` (shared basis)."""
        inv_w2 = torch.exp(-2.0 * self.log_width).to(pos)
        r2 = pos.pow(2).sum(-1)
        return torch.exp(-r2.view(-1, *([1] * inv_w2.ndim)) * inv_w2)

    def _basis(self, pos: torch.Tensor, attr: torch.Tensor | None) -> Iterator[torch.Tensor]:
        """Basis kernels with their envelopes, one ``(E, M, out_rep, in_rep)`` tensor per pair.

        An MLP that hands out its output in pieces lined up with the pairs (``core.mlp``) yields
        them one at a time: no concatenated output, and each pair's basis can be freed once used.
        """
        n, M = pos.shape[0], self.basis_size
        sizes = [M * ro.size * ri.size for ro, _, ri, _, _ in self._pairs]
        if getattr(self.mlp, "piece_sizes", None) == sizes:
            parts: Iterable[torch.Tensor] = self.mlp.pieces(pos, attr)
        else:
            parts = self.mlp(pos, attr).split(sizes, dim=1)
        env = self._envelope(pos) if self.log_width is not None else None
        for t, (part, (ro, _, ri, _, _)) in enumerate(zip(parts, self._pairs)):
            b = part.view(n, M, ro.size, ri.size)
            yield b if env is None else b * env[:, t, :, None, None]
            del part, b  # before the next pair's are made

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        self._check(pos, attr)
        n_edges = pos.shape[0]
        scale = self.scale * float(self.gain)
        if self.basis_size is None:
            flat = self.mlp(pos, attr)
            if self.log_width is None:
                kernel = permute_columns(flat, self.perm, self.inv_perm, scale)
                return kernel.view(n_edges, self.out_type.size, self.in_type.size)
            kernel = permute_columns(flat, self.perm, self.inv_perm)
            kernel = kernel.view(n_edges, self.out_type.size, self.in_type.size)
            envelope = self._envelope(pos)[:, self.field_of_channel]  # (E, out)
            return kernel * (envelope * scale)[:, :, None]
        blocks = [
            torch.einsum("emab,omi->eoaib", b, w.to(b)).reshape(n_edges, -1)
            for b, w in zip(self._basis(pos, attr), self.mixing)
        ]
        kernel = permute_columns(torch.cat(blocks, dim=1), self.perm, self.inv_perm, scale)
        return kernel.view(n_edges, self.out_type.size, self.in_type.size)

    # -- messages without materialising the kernel ----------------------------------------------
    # A point convolution computes y_i = sum_j K(x_ji) f_j as mix(aggregate(...)): the per-edge
    # responses are the basis kernels applied to the source features, summed at the targets
    # (message_sum, never stored per edge), and the learned mixing (linear, the same for every
    # edge) is applied once per target after the sum.

    def gather_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Node features ``(N, in)`` in the channel layout :meth:`aggregate` expects."""
        return x if self.basis_size is None else x.index_select(1, self.input_order)

    def aggregate(
        self,
        pos: torch.Tensor,
        attr: torch.Tensor | None,
        x: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        n_dst: int,
    ) -> list[torch.Tensor]:
        """Responses of every edge to its source's features, summed at its target.

        ``pos`` ``(E, n)`` and ``attr`` are the kernel's arguments per edge, ``x`` ``(N, in)``
        node features laid out by :meth:`gather_inputs`, ``src``, ``dst`` ``(E,)`` each edge's
        source and target.  Returns one ``(n_dst, R_t)`` tensor per representation pair, with
        ``R_t = M x out_rep.size x n_in`` (dense layout: the single tensor ``sum K x[src]``), which
        :meth:`mix` turns into ``sum_{e: dst_e = t} K(pos_e, attr_e) x[src_e]``.  No per-edge
        response tensor is kept (:func:`~steerable.ops.message.message_sum`).
        """
        if self.basis_size is None:
            return [message_sum(self(pos, attr), x[:, None, :], src, dst, n_dst).view(n_dst, -1)]
        self._check(pos, attr)
        n, M = pos.shape[0], self.basis_size
        sums = []
        for b, (ro, _, ri, ins, offset) in zip(self._basis(pos, attr), self._pairs):
            f = x[:, offset : offset + len(ins) * ri.size].view(x.shape[0], len(ins), ri.size)
            sums.append(message_sum(b.view(n, M * ro.size, ri.size), f, src, dst, n_dst).view(n_dst, -1))
            del b  # before the next pair's basis is made (kept by autograd only if needed)
        return sums

    def mix(self, responses: list[torch.Tensor]) -> torch.Tensor:
        """Summed responses (one ``(N, R_t)`` tensor per pair) -> ``(N, out)``, channels in field order."""
        if self.basis_size is None:
            return responses[0]
        n, M = responses[0].shape[0], self.basis_size
        by_out: dict[int, torch.Tensor] = {}
        for part, w, (ro, outs, _, ins, _) in zip(responses, self.mixing, self._pairs):
            g = part.view(n, M, ro.size, len(ins)).transpose(1, 2).reshape(n * ro.size, M * len(ins))
            y = (g @ w.to(g).view(len(outs), -1).T).view(n, ro.size, len(outs)).transpose(1, 2)
            key = outs[0]
            by_out[key] = by_out[key] + y if key in by_out else y
        grouped = torch.cat([y.reshape(n, -1) for y in by_out.values()], dim=1)
        return grouped.index_select(1, self.output_order) * (self.scale * float(self.gain))

    def extra_repr(self) -> str:
        layout = "dense" if self.basis_size is None else f"basis_size={self.basis_size}"
        return f"{self.in_type!r} -> {self.out_type!r}, attr={self.attr_type!r}, {layout}"
