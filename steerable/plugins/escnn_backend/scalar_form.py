"""The irrep-wise kernel MLP without attribute fields, evaluated in scalar form (same values, fewer ops).

Without non-invariant attributes every feature of :class:`~.irrepwise.IrrepwiseKernelMLP` is a function
of the position alone, and every copy of an irrep ``i`` in it is an invariant times the embedding's
harmonic of that irrep, ``f = s y_i(pos)`` (``y_i`` the block of :class:`~.embedding.HarmonicEmbedding`
that carries ``i``; ``y_0 = 1``).  This holds for the first layer's input (copy ``c`` of degree ``a``
is ``w[:, c, a] y_a``, :meth:`~.frontend.EscnnKernelMLP.invariant_weights`) and is kept by every layer
when each equivariant map between copies of one irrep is a multiple of the identity (irreps of real
type: SO(3), O(3), O(2) on R^2; checked on escnn's bases, :attr:`~.schur.RunMap.scalar`):

* :class:`~.schur.SchurLinear`: copy ``o`` of the output is ``sum_c coef[o, c] beta (s_c y_i) =
  (s @ (beta coef)^T)_o y_i``, and escnn's bias, on trivial irreps only, adds to ``s`` (``y_0 = 1``);
* :class:`~.schur.SchurGate`: ELU of the trivial values (``s`` itself), and ``sigmoid(gate) s y_i``;
* an irrep with no harmonic (O(3)'s odd-parity copies of even degree) stays exactly zero.

So each hidden layer is one matrix product of the invariants ``(E, n)`` (the weights assembled per
call from escnn's parameters: a gather and a scatter of a few thousand numbers), the invariant MLP's
last linear folded into the first (two linear maps in a row), the gates two elementwise products,
and each run of equal output blocks (``block = Q (⊕_i s_i y_i)``, :class:`~.schur.BlocksFromIrreps`)
made by :func:`steerable.ops.modulated.modulated_product`: the invariants (weights tiled over each
irrep's components) times the harmonics' components, then ``Q`` (folded into the constant on the
harmonics where a block has one irrep); blocks of :data:`BATCHED_TERMS` irreps or more by
:func:`~steerable.ops.modulated.modulated_matmul` (per edge, the copies' invariants times each
irrep's ``Q_q y_q``).
The tests compare this form with the layer-by-layer path (values and gradients, float64).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from steerable.core.constants import Float64Constants
from steerable.ops.modulated import modulated_matmul, modulated_product

from .schur import BlocksFromIrreps, SchurGate, SchurLinear

__all__ = ["ScalarForm", "scalar_form"]

#: Irreps per block from which a block is made by :func:`~steerable.ops.modulated.modulated_matmul`
#: (one invariant per copy and irrep, a batched product per edge) instead of
#: :func:`~steerable.ops.modulated.modulated_product` (invariants tiled over each irrep's
#: components): measured 2x faster at 5 irreps (``2 ⊗ 2``), 1.5-2x slower at 3 (``benchmarks/README.md``).
BATCHED_TERMS = 5


class _Entries:
    """One layer's weight in scalar form, as where its entries come from in escnn's flat weights.

    ``rows``: ``{(irrep id, copy): row}`` of the layer's input invariants; ``columns``: per output
    column ``(output run, copy)``.  Entry ``(row, column)`` is ``weights[index] * scale``.
    """

    def __init__(self, linear: SchurLinear, rows: dict[tuple[tuple, int], int], columns: list[tuple[int, int]]):
        src, dst, scale, bias_rows, bias_cols = [], [], [], [], []
        for col, (r, o) in enumerate(columns):
            m, (r0, _, k, _, _) = linear.maps[r], linear.plan[r]
            in_key, in_copies = linear.in_runs[k]
            per_copy = (m.stop - m.start) // m.out_count
            basis = getattr(linear.linear._basisexpansion, m.expansion).sampled_basis
            beta = float(basis[0, 0, 0, 0])
            for c in range(in_copies):
                row = rows.get((in_key, c))
                if row is not None:  # no row: an input copy that is zero (no harmonic of its irrep)
                    src.append(m.start + (m.first + o) * per_copy + c)
                    dst.append(row * len(columns) + col)
                    scale.append(beta)
            if linear.biased[r]:
                bias_rows.append(r0 + o)
                bias_cols.append(col)
        self.shape = (max(rows.values()) + 1, len(columns))
        self.index = {
            "src": torch.tensor(src, dtype=torch.long),
            "dst": torch.tensor(dst, dtype=torch.long),
            "bias_rows": torch.tensor(bias_rows, dtype=torch.long),
            "bias_cols": torch.tensor(bias_cols, dtype=torch.long),
        }
        self.scale = np.asarray(scale, dtype=np.float64)


class _Layer(torch.nn.Module):
    """One :class:`~.schur.SchurLinear` in scalar form: ``weight(linear)`` ``(rows, columns)`` and its bias."""

    def __init__(self, linear: SchurLinear, rows: dict[tuple[tuple, int], int], columns: list[tuple[int, int]]):
        super().__init__()
        entries = _Entries(linear, rows, columns)
        self.shape = entries.shape
        for name, index in entries.index.items():
            self.register_buffer(name, index, persistent=False)
        self.scales = Float64Constants(scale=entries.scale)

    def weight(self, linear: SchurLinear) -> tuple[torch.Tensor, torch.Tensor | None]:
        weights = linear.linear.weights
        picked = weights.index_select(0, self.src) * self.scales.get("scale", weights)
        w = weights.new_zeros(self.shape[0] * self.shape[1]).index_add(0, self.dst, picked).view(self.shape)
        if not len(self.bias_cols):
            return w, None
        full = linear.linear.bias_expansion @ linear.linear.bias  # escnn's bias on the flat output
        bias = weights.new_zeros(self.shape[1]).index_add(0, self.bias_cols, full.index_select(0, self.bias_rows))
        return w, bias


class ScalarForm(torch.nn.Module):
    """:class:`~.irrepwise.IrrepwiseKernelMLP`'s layers in scalar form (see the module docstring).

    Holds index buffers and float64 constants only; the weights are the owner's.  Build it with
    :func:`scalar_form` (``None`` where the form does not apply).  ``pieces(owner, pos, attr)``
    yields the owner's :meth:`~.irrepwise.IrrepwiseKernelMLP.pieces`.
    """

    def __init__(self, owner: Any) -> None:
        super().__init__()
        *hidden, last, to_blocks = owner.schur_layers
        group = owner.group.native
        key = lambda rep: tuple(rep.irreps[0])  # noqa: E731
        trivial = key(group.trivial_representation)
        C, n_deg = owner.spec.hidden_channels, len(owner.embedding.reps)
        # the embedding's block of each irrep: (first component, size)
        harmonic, offset = {}, 0
        for rep in owner.embedding.reps:
            harmonic[key(rep)] = (offset, rep.size)
            offset += rep.size
        # the first layer's input rows: the invariant MLP's outputs, (E, C, degrees) flattened
        rows = {(key(rep), c): c * n_deg + a for a, rep in enumerate(owner.embedding.reps) for c in range(C)}
        self.layers = torch.nn.ModuleList()
        self.gates: list[tuple[int, int]] = []  # per hidden layer: (scalars, gated copies)
        for linear, gate in zip(hidden[0::2], hidden[1::2]):
            gated_runs = [
                (j, copies) for j, (copies, _) in enumerate(gate.gated) if linear.out_runs[j + 1][0] in harmonic
            ]
            scalars = [(0, c) for c in range(gate.n_scalars)]
            gates = [(0, gate.gate_columns[j] + o) for j, copies in gated_runs for o in range(copies)]
            values = [(j + 1, o) for j, copies in gated_runs for o in range(copies)]
            self.layers.append(_Layer(linear, rows, scalars + gates + values))
            self.gates.append((len(scalars), len(values)))
            rows = {(trivial, c): c for c in range(gate.n_scalars)}
            for n, (r, o) in enumerate(values):
                rows[(linear.out_runs[r][0], o)] = len(scalars) + n
        # the last layer: per group of blocks, columns (copy, component of a live irrep), each the
        # invariant of its copy and irrep; the harmonics' constant picks each component's harmonic
        # (one live irrep: also applies Q) and the mix applies Q (several), module docstring
        self.bases = Float64Constants()
        columns, run = [], 0
        self.widths: list[int] = []  # per group: columns of the last layer (0: every irrep zero)
        self.batched: list[int] = []  # per group: its irreps where made by a batched product, else 0
        for g, (copies, d, irreps) in enumerate(to_blocks.groups):
            q_mat = to_blocks.bases.master(f"q{g}").numpy()
            live = []  # (run, Q's first column and width for it, the harmonic's first component)
            for col, dim in irreps:
                out_key = last.out_runs[run][0]
                if out_key in harmonic:
                    live.append((run, col, dim, harmonic[out_key][0]))
                run += 1
            batched = len(live) >= BATCHED_TERMS
            if batched:  # per copy and irrep one invariant; Q_q y_q per irrep, not tiled
                z = np.zeros((offset, len(live) * d))
                for q, (_, col, dim, first) in enumerate(live):
                    z[first : first + dim, q * d : (q + 1) * d] = q_mat[:, col : col + dim].T
                mix = None
                columns += [(r, n) for n in range(copies) for r, _, _, _ in live]
            elif len(live) == 1:
                ((r, col, dim, first),) = live
                z = np.zeros((offset, d))
                z[first : first + dim] = q_mat[:, col : col + dim].T
                mix = None
                columns += [(r, n) for n in range(copies) for _ in range(d)]
            else:
                k = sum(dim for _, _, dim, _ in live)
                z = np.zeros((offset, k))
                z[[first + m for _, _, dim, first in live for m in range(dim)], np.arange(k)] = 1.0
                mix = np.concatenate([q_mat[:, col : col + dim] for _, col, dim, _ in live], axis=1).T if live else None
                columns += [(r, n) for n in range(copies) for r, _, dim, _ in live for _ in range(dim)]
            self.bases.add(f"z{g}", (z if batched else np.tile(z, (1, copies))) if live else None)
            self.bases.add(f"mix{g}", mix)
            self.widths.append(copies * (len(live) if batched else z.shape[1]) if live else 0)
            self.batched.append(len(live) if batched else 0)
        self.layers.append(_Layer(last, rows, columns))

    def pieces(self, owner: Any, pos: torch.Tensor, attr: torch.Tensor | None) -> Iterator[torch.Tensor]:
        """The owner's output pieces ``(E, copies * d)`` per group of blocks, each made when asked for."""
        *hidden, last, _ = owner.schur_layers
        linears = [*hidden[0::2], last]
        y = owner.embedding(pos)
        # the layers themselves (slicing the Sequential would build and register a new module per call)
        *head, out = owner.invariant_mlp
        h = owner.invariants(pos, attr)
        for layer in head:
            h = layer(h)
        # the invariant MLP's last linear and the first layer: two linear maps in a row, one product
        weight, bias = self.layers[0].weight(linears[0])
        fused_bias = out.bias @ weight if bias is None else torch.addmm(bias, out.bias[None], weight)[0]
        weight = out.weight.T @ weight
        for t, (n_scalars, n_gated) in enumerate(self.gates):
            s = torch.addmm(fused_bias, h, weight)
            scalars, gates, values = s.split([n_scalars, n_gated, n_gated], dim=1)
            h = torch.cat([torch.nn.functional.elu(scalars), torch.sigmoid(gates) * values], dim=1)
            weight, fused_bias = self.layers[t + 1].weight(linears[t + 1])
        weights = weight.split(self.widths, dim=1)
        biases = fused_bias.split(self.widths) if fused_bias is not None else [None] * len(self.widths)
        del weight, fused_bias
        for g, (width, size) in enumerate(zip(self.widths, owner.piece_sizes)):
            if not width:  # every irrep of the group without a harmonic: exact zeros
                yield y.new_zeros(y.shape[0], size)
                continue
            z, mix = self.bases.get(f"z{g}", y), self.bases.get(f"mix{g}", y)
            if self.batched[g]:
                yield modulated_matmul(h, weights[g], biases[g], y, z, self.batched[g])
            else:
                yield modulated_product(h, weights[g], biases[g], y, z, mix)


def scalar_form(owner: Any) -> ScalarForm | None:
    """The :class:`ScalarForm` of ``owner`` (an :class:`~.irrepwise.IrrepwiseKernelMLP`), or ``None``
    where it does not apply: attribute fields, an equivariant map between copies of one irrep that is
    not a multiple of the identity (SO(2)'s complex irreps), or escnn layers of another layout."""
    if owner.plan.attr_fields:
        return None
    *hidden, last, to_blocks = owner.schur_layers
    if not isinstance(to_blocks, BlocksFromIrreps) or not all(
        isinstance(a, SchurLinear) and isinstance(b, SchurGate) for a, b in zip(hidden[0::2], hidden[1::2])
    ):
        return None
    reps = owner.embedding.reps
    keys = [tuple(rep.irreps[0]) for rep in reps]
    trivial = tuple(owner.group.native.trivial_representation.irreps[0])
    if len(set(keys)) != len(keys) or keys[0] != trivial or reps[0].size != 1:
        return None
    for linear in [*hidden[0::2], last]:
        for (out_key, _), m, (_, _, k, _, _), biased in zip(linear.out_runs, linear.maps, linear.plan, linear.biased):
            if out_key not in keys:
                continue  # zero throughout (no harmonic of its irrep)
            if k is None or m is None or not m.scalar or (biased and out_key != trivial):
                return None
    for linear, gate in zip(hidden[0::2], hidden[1::2]):
        if gate.n_scalars + sum(c for c, _ in gate.gated) != linear.out_runs[0][1]:
            return None
    return ScalarForm(owner)
