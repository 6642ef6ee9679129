"""A tensor product with per-edge weights as one matrix product, one gather and one product.

The first layer of :class:`~.mlp.E3nnKernelMLP` with non-invariant attributes is ``TP(x0, e, w)``:
``x0 = 1x0e ⊕ a`` and ``e = Y ⊕ a`` (one copy of each irrep), weights ``w`` ``(E, weight_numel)``
from the scalar MLP.  e3nn evaluates it path by path with per-edge weights (several small ops on
``(E, mul, 2l+1)`` tensors per path).  In the notation of :mod:`.paths`, output column ``d = (o, w,
k)`` (copy ``w``, component ``k`` of output irrep ``o``) is

    ``out[d] = sum_q W[q, w] T_q[k]``,  ``T_q[k] = sum_{i, j} K_p[i, j, k] x0[u, i] e[v, j]``,

a sum over the pairs ``q = (p, u, v)`` of the paths ``p`` into ``o`` and their input copies.  With
``Q`` the most pairs of any output irrep, both factors are laid out as ``(E, Q, D)`` tensors (pairs
beyond an irrep's own count read zeros): the path values as one matrix product ``(e ⊗ x0) @ K``
with the fixed ``K`` ``(d2 d1, Q D)`` (each ``T_q`` repeated over the copies ``w``), the weights by
one gather.  The output is their elementwise product summed over ``q``: per edge ``Q D`` products,
the module's own work up to the padding, in five operators instead of several per path; measured
2x faster than e3nn's code for training (``benchmarks/README.md``).  (The contraction is a ``bmm``
over edges of ``(M x Q) @ (Q x c)`` too, but torch's CPU ``bmm`` runs tiny matrices one at a time,
and broadcasting the per-edge ``W`` and ``T`` against each other was slower still.)
"""

from __future__ import annotations

import torch
from e3nn import o3

from .paths import all_path_coefficients, check_reproduces, outer, path_slices

__all__ = ["EdgeWeightedForm"]


class EdgeWeightedForm(torch.nn.Module):
    """``tp(x1, x2, weight)`` of an ``o3.TensorProduct`` with per-sample weights and weighted ``'uvw'``
    paths only, as ``sum_q ((x2 ⊗ x1) @ K)[q] * weight[index][q]`` (module docstring).

    Holds constants only: ``expansion`` (float64 ``K`` ``(d2 d1, Q D)``, to be tracked by the owner's
    :class:`~steerable.core.constants.Float64Constants`) and ``weight_index`` ``(Q D,)`` (into the
    weights with a zero appended).  ``forward(x1 (E, d1), x2 (E, d2), weight (E, weight_numel)) ->
    (E, D)``, ``D = tp.irreps_out.dim``, in e3nn's layout.  ``tp`` must be in float64 (the read-off is
    exact there).  Raises ``RuntimeError`` for a module it cannot read (shared weights, other paths
    than weighted ``'uvw'``, a read-off that does not reproduce the module).
    """

    def __init__(self, tp: o3.TensorProduct) -> None:
        super().__init__()
        if tp.shared_weights or tp.internal_weights:
            raise RuntimeError("EdgeWeightedForm: the tensor product must take per-sample weights")
        for ins in tp.instructions:
            if not ins.has_weight or ins.connection_mode != "uvw":
                raise RuntimeError(f"EdgeWeightedForm: expected weighted 'uvw' paths, got {ins}")
        if not tp.instructions:
            raise RuntimeError(f"EdgeWeightedForm: {tp} has no paths")
        d1, d2, dout = tp.irreps_in1.dim, tp.irreps_in2.dim, tp.irreps_out.dim
        self.dims = (d1, d2, tp.weight_numel, dout)
        # per output irrep, its pairs q: the column of K (d2 d1, c) and the weight indices (M,)
        pairs: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in tp.irreps_out]
        weight_start = 0
        for ins, k in zip(tp.instructions, all_path_coefficients(tp), strict=True):
            mul1, mul2, mulo = ins.path_shape
            s1, s2, _ = path_slices(tp, ins)
            a, b, c = k.shape
            for u in range(mul1):
                for v in range(mul2):
                    block = torch.zeros(d2, d1, c, dtype=torch.float64)  # rows (j, i) of the outer product
                    block[s2.start + v * b : s2.start + (v + 1) * b, s1.start + u * a : s1.start + (u + 1) * a] = (
                        k.permute(1, 0, 2)
                    )
                    first = weight_start + (u * mul2 + v) * mulo
                    pairs[ins.i_out].append((block.view(d2 * d1, c), torch.arange(first, first + mulo)))
            weight_start += mul1 * mul2 * mulo
        self.pairs = max((len(p) for p in pairs), default=0)
        expansion = torch.zeros(d2 * d1, self.pairs, dout, dtype=torch.float64)
        weight_index = torch.full((self.pairs, dout), tp.weight_numel, dtype=torch.long)  # the appended zero
        for o_pairs, out_slice, mul_ir in zip(pairs, tp.irreps_out.slices(), tp.irreps_out, strict=True):
            for q, (column, index) in enumerate(o_pairs):
                # column d = (w, k) of this irrep: T_q[k], weight W[q, w]
                expansion[:, q, out_slice] = column.repeat(1, mul_ir.mul)
                weight_index[q, out_slice] = index.repeat_interleave(mul_ir.ir.dim)
        self.register_buffer("expansion", expansion.view(d2 * d1, -1), persistent=False)
        self.register_buffer("weight_index", weight_index.view(-1), persistent=False)
        check_reproduces(tp, self, "EdgeWeightedForm")

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        n = x1.shape[0]
        d1, d2, numel, dout = self.dims
        if x1.shape != (n, d1) or x2.shape != (n, d2) or weight.shape != (n, numel):
            raise ValueError(
                f"EdgeWeightedForm: inputs {tuple(x1.shape)}, {tuple(x2.shape)} and weights {tuple(weight.shape)} "
                f"do not match (E, {d1}), (E, {d2}), (E, {numel})"
            )
        values = (outer(x1, x2) @ self.expansion).view(n, self.pairs, dout)
        padded = torch.cat([weight, weight.new_zeros(n, 1)], dim=1)
        return (padded.index_select(1, self.weight_index).view(n, self.pairs, dout) * values).sum(1)
