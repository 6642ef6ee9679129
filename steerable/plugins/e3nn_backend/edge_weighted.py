"""A tensor product with per-edge weights: its path values as one matrix product, then the weights.

The first layer of :class:`~.mlp.E3nnKernelMLP` with non-invariant attributes is ``TP(x0, e, w)``:
``x0 = 1x0e ⊕ a`` and ``e = Y ⊕ a`` (one copy of each irrep), weights ``w`` ``(E, weight_numel)``
from the scalar MLP.  In the notation of :mod:`.paths`, copy ``w`` of output irrep ``o`` is

    ``out_o[w, :] = sum_q W_q[w] T_q``,  ``T_q[k] = sum_{i, j} K_p[i, j, k] x0[u, i] e[v, j]``,

a sum over the pairs ``q = (p, u, v)`` of the paths ``p`` into ``o`` and their input copies, with
``W_q`` ``(E, M)`` the weights of pair ``q`` (consecutive in ``w``: e3nn's layout is path, ``u``,
``v``, ``w``).  Here the path values ``T`` of every pair come from one matrix product ``(e ⊗ x0) @
K`` (``K`` ``(d2 d1, sum_q (2 l_q + 1))``, fixed), and each pair adds the outer product ``W_q ⊗
T_q`` ``(E, M, 2 l + 1)`` to its output irrep.  The weights and the path values are split into
views, not gathered, so autograd keeps no copies and their gradients are one concatenation each.
Per edge this is the module's own ``sum_q M (2 l_q + 1)`` products, without e3nn's per-path
contractions of ``(E, mul, 2l+1)`` tensors; measured 1.65x faster forward and for training, at
less peak memory than e3nn's module (``benchmarks/README.md``).  (Laying both factors out as
``(E, pairs, D)`` tensors for one product was as fast for training but took 4x the memory; torch's
CPU ``bmm`` runs tiny per-edge matrices one at a time.)
"""

from __future__ import annotations

import torch
from e3nn import o3

from steerable.ops.outer import outer_matmul

from .paths import all_path_coefficients, check_reproduces, path_slices, require_weighted_uvw

__all__ = ["EdgeWeightedForm"]


class EdgeWeightedForm(torch.nn.Module):
    """``tp(x1, x2, weight)`` of an ``o3.TensorProduct`` with per-sample weights and weighted ``'uvw'``
    paths only, as ``sum_q weight_q ⊗ ((x2 ⊗ x1) @ K)_q`` per output irrep (module docstring).

    Holds one constant, ``values`` (float64 ``K`` ``(d2 d1, sum_q (2 l_q + 1))``, to be tracked by the
    owner's :class:`~steerable.core.constants.Float64Constants`).  ``forward(x1 (E, d1), x2 (E, d2),
    weight (E, weight_numel)) -> (E, tp.irreps_out.dim)`` in e3nn's layout.  ``tp`` must be in float64
    (the read-off is exact there).  Raises ``RuntimeError`` for a module it cannot read (shared
    weights, other paths than weighted ``'uvw'``, a read-off that does not reproduce the module).
    """

    def __init__(self, tp: o3.TensorProduct) -> None:
        super().__init__()
        if tp.shared_weights or tp.internal_weights:
            raise RuntimeError("EdgeWeightedForm: the tensor product must take per-sample weights")
        if not tp.instructions:
            raise RuntimeError(f"EdgeWeightedForm: {tp} has no paths")
        require_weighted_uvw(tp, "EdgeWeightedForm")
        d1, d2 = tp.irreps_in1.dim, tp.irreps_in2.dim
        self.dims = (d1, d2, tp.weight_numel)
        #: per output irrep ``(M, 2 l + 1)``; per pair ``q`` (in the weights' order) its output irrep
        self.irreps_out = [(mul_ir.mul, mul_ir.ir.dim) for mul_ir in tp.irreps_out]
        self.pair_outputs: list[int] = []
        self.weight_sizes: list[int] = []
        self.value_sizes: list[int] = []
        columns = []
        for ins, k in zip(tp.instructions, all_path_coefficients(tp), strict=True):
            mul1, mul2, mulo = ins.path_shape
            s1, s2, _ = path_slices(tp, ins)
            a, b, c = k.shape
            for u in range(mul1):
                for v in range(mul2):  # weights (u, v, :) follow (u, v - 1, :): consecutive pairs
                    block = torch.zeros(d2, d1, c, dtype=torch.float64)  # rows (j, i) of the outer product
                    rows2, rows1 = (
                        slice(s2.start + v * b, s2.start + (v + 1) * b),
                        slice(s1.start + u * a, s1.start + (u + 1) * a),
                    )
                    block[rows2, rows1] = k.permute(1, 0, 2)
                    columns.append(block.view(d2 * d1, c))
                    self.pair_outputs.append(ins.i_out)
                    self.weight_sizes.append(mulo)
                    self.value_sizes.append(c)
        if sum(self.weight_sizes) != tp.weight_numel:
            raise RuntimeError(f"EdgeWeightedForm: the weights of {tp} are not one block per path")
        self.register_buffer("values", torch.cat(columns, dim=1), persistent=False)
        check_reproduces(tp, self, "EdgeWeightedForm")

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        n = x1.shape[0]
        d1, d2, numel = self.dims
        if x1.shape != (n, d1) or x2.shape != (n, d2) or weight.shape != (n, numel):
            raise ValueError(
                f"EdgeWeightedForm: inputs {tuple(x1.shape)}, {tuple(x2.shape)} and weights {tuple(weight.shape)} "
                f"do not match (E, {d1}), (E, {d2}), (E, {numel})"
            )
        path_values = outer_matmul(x1, x2, self.values).split(self.value_sizes, dim=1)
        sums: list[torch.Tensor | None] = [None] * len(self.irreps_out)
        for o, w, t in zip(self.pair_outputs, weight.split(self.weight_sizes, dim=1), path_values, strict=True):
            term = w.unsqueeze(2) * t.unsqueeze(1)  # (E, M, 2l + 1)
            sums[o] = term if sums[o] is None else sums[o].add_(term)  # (mul's backward needs no output)
        parts = [
            x1.new_zeros(n, mul * dim) if s is None else s.reshape(n, mul * dim)
            for s, (mul, dim) in zip(sums, self.irreps_out, strict=True)
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
