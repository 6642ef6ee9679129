"""A tensor product with shared weights as path values per input irrep, then linear layers.

The hidden and output layers of :class:`~.mlp.E3nnKernelMLP` with non-invariant attributes are
``TP(h, e)`` with shared weights: ``h`` holds ``U`` copies of each irrep, ``e = Y ⊕ a`` one copy of
each.  In the notation of :mod:`.paths`, copy ``w`` of output irrep ``o`` is

    ``out_o[w, k] = sum_{p into o} sum_u W_p[u, w] T_p[u, k]``,
    ``T_p[u, k] = sum_{i, j} K_p[i, j, k] h[u, i] e[j]``.

Both sums are matrix products with a wide operand:

1. per input irrep ``i1`` of ``h``, the path values of all its paths at once,
   ``T = (h_i1 ⊗ e) @ K_i1``: rows ``(edge, u)``, columns ``(o, k, p)``, with the fixed ``K_i1``
   ``(a d2, sum_p c_p)`` (zero outside each path's rows of ``e``: ``e`` is short);
2. per input irrep ``i1`` and output irrep ``o``, those values permuted to rows ``(edge, k)`` and
   columns ``(p, u)``, times the stacked weights ``W`` ``(paths U, M)``: the shared weights applied
   as in a linear layer, summed over ``i1``.

The arithmetic is about that of the module (no dense ``A`` with the zeros of every path's
Clebsch-Gordan block as in :mod:`.bilinear`, whose density falls with the degrees), in a few
operators per input irrep and per pair (input irrep, output irrep) instead of e3nn's several per
path; the inputs and weights are split into views, so their gradients are one concatenation each.
Measured against e3nn's code and :class:`~.bilinear.BilinearForm` in ``benchmarks/README.md``:
used where ``A`` is too sparse for the latter.

The form runs a block of edges at a time (:data:`BLOCK_VALUES`), so the outer products and path
values (``U a d2`` and ``U sum_p c_p`` values per edge and input irrep) never exist for all edges at
once: in ``PointConv`` at degrees <= 2 with a vector attribute (``E = 2048``) the peak memory fell by
45 % without gradients and by 30 % with them, at the same time (25 % less at ``E = 8192``).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from e3nn import o3

from steerable.ops.blocks import row_blocks

from .paths import all_path_coefficients, check_reproduces, unreadable_path

__all__ = ["SharedWeightForm"]

#: Values of the outer products (the largest transient, ``U a d2`` per edge for an input irrep
#: ``U x a``) formed at once: 4 MiB in float32 (2^18-2^20 measured alike).
BLOCK_VALUES = 1 << 20
#: The same on a GPU, where each block costs kernel launches: 64 MiB.
GPU_BLOCK_VALUES = 1 << 24


class SharedWeightForm(torch.nn.Module):
    """``tp(x1, x2)`` of an ``o3.TensorProduct`` with shared internal weights, weighted ``'uvw'`` paths
    and one copy of each irrep of ``x2``, by the two matrix products of the module docstring.

    Holds constants only (``coefficients_<i1>``: float64 ``K`` per input irrep of ``x1``, to be
    tracked by the owner's :class:`~steerable.core.constants.Float64Constants`); ``forward(tp, x1
    (E, d1), x2 (E, d2))`` takes the weights from ``tp`` and returns ``(E, tp.irreps_out.dim)`` in
    e3nn's layout.  ``tp`` must be in float64 at construction (the read-off is exact there).
    Raises ``RuntimeError`` for a module it cannot read; :meth:`applies` says beforehand.
    """

    def __init__(self, tp: o3.TensorProduct) -> None:
        super().__init__()
        if not self.applies(tp):
            raise RuntimeError(
                f"SharedWeightForm: expected shared internal weights, weighted 'uvw' paths and one copy of "
                f"each irrep of the second input, got {tp}"
            )
        d2 = tp.irreps_in2.dim
        self.dims = (tp.irreps_in1.dim, d2)
        slices2 = tp.irreps_in2.slices()
        coefficients = all_path_coefficients(tp)
        paths: dict[tuple[int, int], list[int]] = defaultdict(list)  # (i1, o) -> its paths
        for n, ins in enumerate(tp.instructions):
            paths[(ins.i_in1, ins.i_out)].append(n)
        self.irreps_in1 = [(mul_ir.mul, mul_ir.ir.dim) for mul_ir in tp.irreps_in1]
        self.irreps_out = [(mul_ir.mul, mul_ir.ir.dim) for mul_ir in tp.irreps_out]
        self.dim_out = tp.irreps_out.dim
        self.values_per_edge = max(mul * dim for mul, dim in self.irreps_in1) * d2
        #: the weights' blocks, one per path: (U, M)
        self.weight_shapes = [(ins.path_shape[0], ins.path_shape[2]) for ins in tp.instructions]
        #: per input irrep i1 of x1 with paths: its blocks (o, its paths), columns (k, path) each
        self.blocks: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)
        for (i1, o), members in sorted(paths.items()):
            self.blocks[i1].append((o, members))
        for i1, blocks in self.blocks.items():
            a = tp.irreps_in1[i1].ir.dim
            columns = []
            for o, members in blocks:
                c = tp.irreps_out[o].ir.dim
                block = torch.zeros(a, d2, c, len(members), dtype=torch.float64)  # rows (i, j) of h_i1 ⊗ x2
                for q, n in enumerate(members):
                    block[:, slices2[tp.instructions[n].i_in2], :, q] = coefficients[n]
                columns.append(block.reshape(a * d2, -1))
            self.register_buffer(f"coefficients_{i1}", torch.cat(columns, dim=1), persistent=False)
        check_reproduces(tp, lambda x1, x2, weight: self._evaluate(x1, x2, weight), "SharedWeightForm")

    @staticmethod
    def applies(tp: o3.TensorProduct) -> bool:
        """Whether ``tp`` has the structure this form reads."""
        return (
            tp.internal_weights
            and bool(tp.instructions)
            and unreadable_path(tp) is None
            and all(mul_ir.mul == 1 for mul_ir in tp.irreps_in2)
        )

    def forward(self, tp: o3.TensorProduct, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        n = x1.shape[0]
        if x1.ndim != 2 or x1.shape[1] != self.dims[0] or x2.shape != (n, self.dims[1]):
            raise ValueError(f"SharedWeightForm: inputs {tuple(x1.shape)} and {tuple(x2.shape)} do not match {tp}")
        blocks = row_blocks(n, self.values_per_edge, x1.device, BLOCK_VALUES, GPU_BLOCK_VALUES)
        if len(blocks) <= 1:
            return self._evaluate(x1, x2, tp.weight)
        if torch.is_grad_enabled():
            return torch.cat([self._evaluate(x1[b], x2[b], tp.weight) for b in blocks])
        out = x1.new_empty(n, self.dim_out)
        for b in blocks:
            out[b] = self._evaluate(x1[b], x2[b], tp.weight)
        return out

    def _evaluate(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        n, d2 = x1.shape[0], x2.shape[1]
        # splits, not slices: one gradient concatenation each instead of a zero-filled copy per slice
        h_parts = x1.split([mul * dim for mul, dim in self.irreps_in1], dim=1)
        weights = weight.split([u * m for u, m in self.weight_shapes])
        sums: list[torch.Tensor | None] = [None] * len(self.irreps_out)  # (E c, M) per output irrep
        for i1, blocks in self.blocks.items():
            mul, a = self.irreps_in1[i1]
            outer = h_parts[i1].view(n, mul, a, 1) * x2.view(n, 1, 1, d2)
            values = outer.view(n * mul, a * d2) @ getattr(self, f"coefficients_{i1}")  # (E U, blocks' columns)
            widths = [self.irreps_out[o][1] * len(members) for o, members in blocks]
            for (o, members), t in zip(blocks, values.view(n, mul, sum(widths)).split(widths, dim=2), strict=True):
                c = self.irreps_out[o][1]
                # rows (edge, k), columns (path, u): the shared weights act as in a linear layer; a copy
                # where the reshape is a strided view (autograd keeps z: a view would keep all the values)
                z = t.view(n, mul, c, len(members)).permute(0, 2, 3, 1).reshape(n * c, len(members) * mul).contiguous()
                w = torch.cat([weights[p].view(self.weight_shapes[p]) for p in members])  # (paths U, M)
                term = z @ w
                sums[o] = term if sums[o] is None else sums[o].add_(term)
        parts = [
            x1.new_zeros(n, mul * dim) if y is None else y.view(n, dim, mul).transpose(1, 2).reshape(n, mul * dim)
            for y, (mul, dim) in zip(sums, self.irreps_out, strict=True)
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
