"""Kernel-MLP layers on features laid out irrep by irrep, multiplying only Schur blocks.

By Schur's lemma an equivariant linear map sends each irrep to copies of the same irrep only, so
with the fields grouped by irrep the expanded weight matrix is block diagonal: a dense product
spends most of its work on zeros (the SO(3) kernel MLP for blocks up to ``l = 2`` has hidden and
output irreps up to ``l = 4``: ~80 % of its last layer).  Here features travel as a list of
*runs*, one ``(E, copies * dim)`` tensor per irrep, never concatenated, and each layer multiplies
each run by its own diagonal block of escnn's expanded matrix.

The last layer's output runs are ordered by output block so that the change of basis of each
tensor-product block (``rho_o ⊗ rho_i = Q (⊕ irreps) Q^T``, float64 ``Q``) applies as a few small
products per block type, whose results are the kernel's blocks in their final order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from escnn.nn.modules.basismanager.basisexpansion_blocks import BlocksBasisExpansion

from steerable.core.constants import Float64Constants
from steerable.ops.transforms import transforms_active

from .linear import PlainLinear

Run = tuple[tuple, int]  # (irrep id, number of copies)

#: Relative size of the off-diagonal entries up to which an escnn basis of maps between copies of
#: one irrep counts as a multiple of the identity (:attr:`RunMap.scalar`): float32 round-off
SCALAR_TOLERANCE = 1e-6


class ScaledRun(NamedTuple):
    """A run given as the broadcast product ``values * scales``, formed only when needed.

    ``values`` ``(E, copies or 1, dim)``, ``scales`` ``(E, copies, 1)``: the first layer's harmonic
    copies (one harmonic times ``copies`` learned invariants).  A :class:`SchurLinear` consuming it
    keeps the two factors for backward, not their ``(E, copies * dim)`` product (the largest
    activation of the layer).  Worth it for a run used once: each use forms the product again in
    backward.
    """

    values: torch.Tensor
    scales: torch.Tensor

    def tensor(self) -> torch.Tensor:
        return (self.values * self.scales).flatten(1)


class _ScaledLinear(torch.autograd.Function):
    """``linear((values * scales).flatten(1), weight, bias)`` keeping the factors, not the product.

    The product is formed again in backward (one elementwise op) instead of being kept alive:
    it is the largest activation a kernel-MLP layer would otherwise store.  The backward is made
    of differentiable ops, so higher derivatives work.
    """

    @staticmethod
    def forward(
        ctx: Any, values: torch.Tensor, scales: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        ctx.save_for_backward(values, scales, weight)
        ctx.has_bias = bias is not None
        return torch.nn.functional.linear((values * scales).flatten(1), weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        values, scales, weight = ctx.saved_tensors
        product = values * scales  # (E, copies, dim)
        grad_values = grad_scales = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            grad_product = (grad @ weight).view_as(product)
            if ctx.needs_input_grad[0]:
                grad_values = (grad_product * scales).sum_to_size(values.shape)
            if ctx.needs_input_grad[1]:
                grad_scales = (grad_product * values).sum_to_size(scales.shape)
        if ctx.needs_input_grad[2]:
            grad_weight = grad.T @ product.flatten(1)
        if ctx.has_bias and ctx.needs_input_grad[3]:
            grad_bias = grad.sum(0)
        return grad_values, grad_scales, grad_weight, grad_bias


def _linear(run: torch.Tensor | ScaledRun, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if isinstance(run, ScaledRun):
        if transforms_active():  # torch.func: the product formed, torch's own linear
            return torch.nn.functional.linear(run.tensor(), weight, bias)
        return _ScaledLinear.apply(run.values, run.scales, weight, bias)
    return torch.nn.functional.linear(run, weight, bias)


class RunMap(NamedTuple):
    """Where one output run's map lives in escnn's parameters (see :meth:`SchurLinear.run_maps`).

    The escnn ``BlocksBasisExpansion`` of the layer expands, for the pair (irrep, irrep), the
    weights ``weights[start:stop].view(out_count, in_count, k)`` (all output copies of the irrep
    times all input copies, ``k`` basis maps) against its sampled basis ``(k, d, d)`` (the buffer
    ``sampled_basis`` of module ``expansion``): copy ``(o, c)`` of the block is
    ``sum_b W[o, c, b] B_b``.  The run takes output copies ``first .. first + copies``.
    """

    expansion: str
    start: int
    stop: int
    out_count: int
    in_count: int
    first: int
    copies: int
    size: int
    #: whether the basis is one multiple of the identity (real irreps): the factored product is then
    #: a product of the invariants alone
    scalar: bool


def _factored_linear(
    run: ScaledRun, coef: torch.Tensor, basis: torch.Tensor, scalar: bool, bias: torch.Tensor | None
) -> torch.Tensor:
    """``linear(run.tensor(), block, bias)`` for a run of ``c_in`` copies of one irrep given as one
    vector times ``c_in`` invariants (``values`` ``(E, 1, d)``, ``scales`` ``(E, c_in, 1)``), where
    copy ``(o, c)`` of ``block`` is ``sum_b coef[o, c, b] basis[b]`` (``coef`` ``(c_out, c_in, k)``,
    ``basis`` ``(k, d, d)``, :class:`RunMap`).

    The output is factored again: ``out[e, o] = sum_b (w_e @ coef_b^T)[o] (basis_b y_e)``, an
    ``(E, c_in) x (c_in, c_out)`` product and an outer product, instead of the
    ``(E, c_in d) x (c_in d, c_out d)`` product of the formed run (``d`` times the work, and a
    custom backward that forms the run again).
    """
    w, y = run.scales[..., 0], run.values[:, 0]  # (E, c_in), (E, d)
    if scalar:
        u = torch.nn.functional.linear(w, coef[..., 0] * basis[0, 0, 0])
        out = u * y if y.shape[1] == 1 else (u[:, :, None] * y[:, None, :]).flatten(1)
    else:
        u = torch.einsum("ec,ocb->ebo", w, coef)
        out = (u[..., None] * torch.einsum("bxy,ey->ebx", basis, y)[:, :, None, :]).sum(1).flatten(1)
    return out if bias is None else out + bias


class SchurLinear(torch.nn.Module):
    """escnn ``nn.Linear`` from runs of input irreps to runs of output irreps, on lists of tensors.

    Args:
        gs: escnn ``no_base_space`` of the group.
        in_runs: ``(irrep id, copies)`` of each input run; one run per irrep.
        out_runs: ``(irrep id, copies)`` of each output run, in output order; an irrep may have
            several runs (the last layer has one per output block type).

    Shapes: ``[(E, copies_k * dim_k) per input run] -> [(E, copies * dim) per output run]``.  An
    output run whose irrep is in no input run is zero (plus the bias, escnn's, trivial runs only).
    """

    def __init__(self, gs: Any, in_runs: list[Run], out_runs: list[Run], bias: bool = True) -> None:
        super().__init__()
        keys = [key for key, _ in in_runs]
        if len(set(keys)) != len(keys):
            raise ValueError(f"SchurLinear: each input irrep must form one run, got {keys}")
        H = gs.fibergroup
        flat = lambda runs: gs.type(*[H.irrep(*key) for key, copies in runs for _ in range(copies)])  # noqa: E731
        self.linear = PlainLinear(flat(in_runs), flat(out_runs), bias=bias)
        self.in_runs, self.out_runs = list(in_runs), list(out_runs)
        in_cols, start = {}, 0
        for k, (key, copies) in enumerate(in_runs):
            size = copies * H.irrep(*key).size
            in_cols[key] = (k, start, start + size)
            start += size
        # (row start, row stop, input run or None, column start, column stop) per output run
        self.plan: list[tuple[int, int, int | None, int, int]] = []
        row = 0
        for key, copies in out_runs:
            size = copies * H.irrep(*key).size
            k, c0, c1 = in_cols.get(key, (None, 0, 0))
            self.plan.append((row, row + size, k, c0, c1))
            row += size
        self.row_sizes = [r1 - r0 for r0, r1, _, _, _ in self.plan]
        self.maps = self._run_maps(H, out_runs)
        self._cut_weights()
        # runs that escnn's bias reaches (trivial irreps): others get none added
        expansion = getattr(self.linear, "bias_expansion", None)
        self.biased = [
            expansion is not None and bool(expansion[r0:r1].abs().sum() > 0) for r0, r1, _, _, _ in self.plan
        ]

    #: whether runs given as one vector times invariants are multiplied factored
    #: (:func:`_factored_linear`); ``False``: formed (the reference path, :class:`_ScaledLinear`)
    factored: bool = True

    def _run_maps(self, H: Any, out_runs: list[Run]) -> list[RunMap | None]:
        """The :class:`RunMap` of each output run (``None``: no input run of its irrep, or a layout
        of escnn's expansion other than the one described there: the run then uses the expanded
        matrix)."""
        expansion = self.linear._basisexpansion
        ranges = getattr(expansion, "_weights_ranges", None)
        # isinstance: linear.py gives each layer a private subclass of escnn's expansion
        if not isinstance(expansion, BlocksBasisExpansion) or ranges is None:
            return [None] * len(out_runs)
        maps: list[RunMap | None] = []
        seen: dict[tuple, int] = {}
        for (key, copies), (_, _, k, _, _) in zip(out_runs, self.plan):
            first = seen.get(key, 0)
            seen[key] = first + copies
            name = H.irrep(*key).name
            pair = (name, name)
            if k is None or pair not in ranges:
                maps.append(None)
                continue
            module = f"block_expansion_{expansion._escape_pair(pair)}"
            basis = getattr(expansion, module).sampled_basis  # (k, d, d, 1)
            d, dim = H.irrep(*key).size, basis.shape[0]
            start, stop = ranges[pair]
            out_count, in_count = expansion._out_count[name], expansion._in_count[name]
            if basis.shape != (dim, d, d, 1) or stop - start != out_count * in_count * dim:
                maps.append(None)
                continue
            b = basis[..., 0].double()
            # a multiple of the identity up to escnn's sampling round-off (O(2)'s bases carry
            # off-diagonal entries of ~2e-16)
            off = b[0] - b[0, 0, 0] * torch.eye(d, dtype=b.dtype) if dim == 1 else None
            scalar = off is not None and bool(off.abs().max() <= SCALAR_TOLERANCE * b[0, 0, 0].abs())
            maps.append(RunMap(module, start, stop, out_count, in_count, first, copies, d, scalar))
        return maps

    def run_blocks(self) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
        """Per output run, ``(coef (c_out, c_in, k), basis (k, d, d))`` with copy ``(o, c)`` of its
        block ``sum_b coef[o, c, b] basis[b]``, read from escnn's weights and sampled basis (the
        same numbers escnn's expansion multiplies); ``None`` where :attr:`maps` has none."""
        expansion = self.linear._basisexpansion
        # one split of the weights (its backward is one concatenation, not a zero-filled gradient
        # per slice); each run's copies are one contiguous range of them
        pieces = self.linear.weights.split(self._cut_sizes)
        out: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        for m, piece in zip(self.maps, self._cut_of_run):
            if m is None:
                out.append(None)
                continue
            basis = getattr(expansion, m.expansion).sampled_basis[..., 0]
            out.append((pieces[piece].view(m.copies, m.in_count, -1), basis))
        return out

    def _cut_weights(self) -> None:
        """``_cut_sizes``: a split of the weights into consecutive ranges, one per run with a map
        (gaps between them as ranges of their own); ``_cut_of_run``: each run's range index."""
        spans = []
        for j, m in enumerate(self.maps):
            if m is not None:
                per_copy = (m.stop - m.start) // m.out_count
                spans.append((m.start + m.first * per_copy, m.start + (m.first + m.copies) * per_copy, j))
        spans.sort()
        self._cut_sizes: list[int] = []
        self._cut_of_run: list[int | None] = [None] * len(self.maps)
        at = 0
        for a, b, j in spans:
            if a > at:
                self._cut_sizes.append(a - at)
            self._cut_of_run[j] = len(self._cut_sizes)
            self._cut_sizes.append(b - a)
            at = b
        total = self.linear.weights.shape[0]
        if total > at:
            self._cut_sizes.append(total - at)

    def forward(self, runs: list[torch.Tensor | ScaledRun]) -> list[torch.Tensor]:
        return list(self.lazy(runs))

    def lazy(self, runs: list[torch.Tensor | ScaledRun]) -> Iterator[torch.Tensor]:
        """The output runs, each computed when asked for (input runs may be :class:`ScaledRun`)."""
        first = runs[0]
        n = (first.values if isinstance(first, ScaledRun) else first).shape[0]
        if self.factored and all(m is not None or k is None for m, (_, _, k, _, _) in zip(self.maps, self.plan)):
            yield from self._lazy_from_weights(runs, n)
            return
        matrix, bias = self.linear.expanded()
        # row blocks by split (its backward assembles one gradient; slicing the whole matrix
        # per run would zero-fill a full-size gradient for each)
        rows = matrix.split(self.row_sizes)
        biases = bias.split(self.row_sizes) if bias is not None else [None] * len(rows)
        for block, b, (_, _, k, c0, c1) in zip(rows, biases, self.plan):
            if k is None:
                zero = block.new_zeros(n, block.shape[0])
                yield zero + b if b is not None else zero
            else:
                yield _linear(runs[k], block[:, c0:c1], b)

    def _lazy_from_weights(self, runs: list[torch.Tensor | ScaledRun], n: int) -> Iterator[torch.Tensor]:
        """:meth:`lazy` without escnn's expansion: each run's block from :meth:`run_blocks`
        (``kron``-structured, formed as one small product), factored runs multiplied factored."""
        bias = self.linear.bias_expansion @ self.linear.bias if self.linear.bias is not None else None
        biases = bias.split(self.row_sizes) if bias is not None else [None] * len(self.plan)
        for m, parts, b, biased, (r0, r1, k, _, _) in zip(self.maps, self.run_blocks(), biases, self.biased, self.plan):
            b = b if biased else None
            if parts is None:
                zero = self.linear.weights.new_zeros(n, r1 - r0)
                yield zero + b if b is not None else zero
                continue
            coef, basis = parts
            run = runs[k]
            if _rank_one(run):
                yield _factored_linear(run, coef, basis, m.scalar, b)
                continue
            block = torch.einsum("ocb,bxy->oxcy", coef, basis).reshape(r1 - r0, -1)
            yield _linear(run, block, b)


def _rank_one(run: torch.Tensor | ScaledRun) -> bool:
    """Whether ``run`` is one vector per row times invariants (a :class:`ScaledRun` of one value copy)."""
    return isinstance(run, ScaledRun) and run.values.shape[1] == 1


class _GatedRuns(torch.autograd.Function):
    """:class:`SchurGate`'s forward, keeping for backward its first input run and its outputs.

    ``y = run * σ(a)`` has ``dy/da = y (1 - σ(a))``: the gates' gradient needs the output (which the
    next layer keeps anyway), not the gated input, so the gated runs' inputs (the largest
    activations of a hidden layer) are not kept; ``σ`` is recomputed from the first run (scalars
    and gates, ``copies`` values per gated run instead of ``copies * dim``), and the ELU's
    derivative comes from its output.  The backward is made of differentiable ops on the saved
    input and outputs, so higher derivatives work.
    """

    @staticmethod
    def forward(ctx: Any, gate: SchurGate, first: torch.Tensor, *runs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = gate.gated_runs(first, runs)
        ctx.save_for_backward(first, *out)
        ctx.gate = gate
        return tuple(out)

    @staticmethod
    def backward(ctx: Any, g_scalars: torch.Tensor, *g_runs: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        first, elu, *ys = ctx.saved_tensors
        gate = ctx.gate
        sig = torch.sigmoid(first)  # whole: on column slices torch's CPU kernels run 3-6x slower
        grads_first = [_elu_backward(g_scalars, 1.0, 1, 1, True, elu)]  # from the output: elu(x) + 1 for x <= 0
        grad_runs: list[torch.Tensor | None] = []
        for j, (g, y) in enumerate(zip(g_runs, ys)):
            spread = gate.spread(j, g)
            # each gate's sum over its field's components, as one product with the 0/1 matrix (a
            # reduction over a short inner dimension runs ~5x slower)
            grads_first.append((g * y) @ spread.T)
            grad_runs.append(gate.gate_values(sig, j, spread).mul_(g) if ctx.needs_input_grad[2 + j] else None)
        grad_gates = torch.cat(grads_first[1:], dim=1)
        gates = sig[:, gate.n_scalars :]
        grad_first = torch.cat([grads_first[0], grad_gates - grad_gates * gates], dim=1)  # dy/da = y (1 - σ)
        return None, grad_first if ctx.needs_input_grad[1] else None, *grad_runs


_elu_backward = torch.ops.aten.elu_backward.default


class SchurGate(torch.nn.Module):
    """Gated nonlinearity on runs: ``[scalars + gates, gated irrep runs...] -> [ELU(scalars), gated...]``.

    The first run holds ``n_scalars`` scalars then one gate per gated field (in run order); each
    gated field is multiplied by the sigmoid of its gate (invariant), which commutes with the
    irrep: exact equivariance.  Shapes: runs ``(E, copies * dim)``.

    Each gate's sigmoid is spread over its field's values by a product with a 0/1 matrix
    (:meth:`gate_values`), so every product is of two ``(E, copies * dim)`` tensors (a product
    broadcast over the short ``dim`` runs several times slower, a gather too).  With autograd on
    and ``outputs_kept``, one :class:`_GatedRuns` node that keeps the first run and the outputs
    only (:attr:`lean`).
    """

    #: whether the spread sigmoids and, in training, :class:`_GatedRuns` are used; ``False``:
    #: torch's broadcast ops, which keep the gated runs' inputs too (the reference path of the tests)
    lean: bool = True

    def __init__(self, n_scalars: int, gated: list[tuple[int, int]], outputs_kept: bool = True) -> None:
        """``gated``: ``(copies, dim)`` of each gated run after the first; ``outputs_kept``: whether
        the next layer keeps the output runs themselves for its backward (then training keeps them,
        not the inputs, :class:`_GatedRuns`; otherwise, e.g. outputs concatenated next, torch's ops)."""
        super().__init__()
        self.n_scalars, self.gated, self.outputs_kept = n_scalars, gated, outputs_kept
        # first run's columns of each gated run's gates
        self.gate_columns = [n_scalars + sum(c for c, _ in gated[:j]) for j in range(len(gated))]
        # per gated run, (copies, copies * dim): 1 where a value belongs to a copy
        for j, (copies, dim) in enumerate(gated):
            self.register_buffer(f"spread{j}", torch.eye(copies).repeat_interleave(dim, 1), persistent=False)

    def spread(self, j: int, like: torch.Tensor) -> torch.Tensor:
        """Gated run ``j``'s ``(copies, copies * dim)`` 0/1 matrix, in ``like``'s dtype."""
        return getattr(self, f"spread{j}").to(like)

    def gate_values(self, sig: torch.Tensor, j: int, spread: torch.Tensor) -> torch.Tensor:
        """``(E, copies * dim)``: each value of gated run ``j`` its gate's entry of ``sig`` (the first
        run's sigmoids), exactly (a product with the 0/1 ``spread``)."""
        col = self.gate_columns[j]
        return sig[:, col : col + spread.shape[0]] @ spread

    def gated_runs(self, first: torch.Tensor, runs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``[ELU(scalars), run_j * σ(gate_j) ...]`` (no autograd bookkeeping of its own)."""
        sig = torch.sigmoid(first)  # whole: on column slices torch's CPU kernels run 3-6x slower
        out = [torch.nn.functional.elu_(first[:, : self.n_scalars].clone())]  # contiguous, then in place
        # in place on the fresh spread sigmoids: no third tensor of the run's size
        return out + [self.gate_values(sig, j, self.spread(j, run)).mul_(run) for j, run in enumerate(runs)]

    def forward(self, runs: list[torch.Tensor]) -> list[torch.Tensor]:
        first, s = runs[0], self.n_scalars
        if self.lean:
            if not (torch.is_grad_enabled() and any(r.requires_grad for r in runs)):
                return self.gated_runs(first, runs[1:])
            if self.outputs_kept and not transforms_active():
                return list(_GatedRuns.apply(self, first, *runs[1:]))
        # splits, not slices: their backward is one concatenation (slices zero-fill a gradient each)
        scalars, *gates = first.split([s] + [copies for copies, _ in self.gated], dim=1)
        # in place on a copy: autograd keeps the ELU's output (which the next layer keeps too),
        # not its input, a view that would keep the whole first run (scalars and gates) alive
        out = [torch.nn.functional.elu_(scalars.clone())]
        for run, gate, (copies, dim) in zip(runs[1:], gates, self.gated):
            # formed here, not kept factored (ScaledRun): each gated run feeds several output runs
            # of the next layer, and recomputing it for each costs more than it saves
            out.append((run.view(-1, copies, dim) * torch.sigmoid(gate)[:, :, None]).view(run.shape[0], -1))
        return out


class BlocksFromIrreps(torch.nn.Module):
    """The kernel's tensor-product blocks from their irreps: ``block = Q (⊕ irreps)`` per block.

    Args:
        groups: one entry per run of consecutive output blocks with one representation:
            ``(Q (d, d) float64 array, copies, [(irrep id, dim) of each irrep of the block, in
            Q's column order])``.

    Input: runs ordered group by group, within a group irrep by irrep (``copies`` fields each), as
    made by the last :class:`SchurLinear`.  Output ``(E, sum copies * d)``: the blocks, each
    row-major ``Q`` times its irreps.  ``Q`` is kept in float64 outside the buffers (``.float()``
    does not round it) and cast on use (:class:`~steerable.core.constants.Float64Constants`).
    """

    def __init__(self, groups: list[tuple[np.ndarray, int, list[tuple[tuple, int]]]]) -> None:
        super().__init__()
        self.groups: list[tuple[int, int, list[tuple[int, int]]]] = []  # (copies, d, [(column, dim)])
        self.bases = Float64Constants()
        for q, copies, irreps in groups:
            columns, col = [], 0
            for _, dim in irreps:
                columns.append((col, dim))
                col += dim
            if col != q.shape[0]:
                raise ValueError(f"BlocksFromIrreps: irreps of size {col} for a {q.shape} change of basis")
            self.bases.add(f"q{len(self.groups)}", np.asarray(q, dtype=np.float64))
            self.groups.append((copies, q.shape[0], columns))

    @property
    def piece_sizes(self) -> list[int]:
        return [copies * d for copies, d, _ in self.groups]

    def forward(self, runs: Iterable[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(self.pieces(runs)), dim=1)

    def pieces(self, runs: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
        """The output as one ``(E, copies * d)`` tensor per group, each made when asked for.

        ``runs`` may be an iterator (:meth:`SchurLinear.lazy`): then only one group's irreps
        exist at a time.
        """
        runs = iter(runs)
        whole = torch.is_grad_enabled()
        for g in range(len(self.groups)):
            # made by a function: its temporaries die when it returns (a generator's locals would
            # live across the yield, keeping this piece's concatenation or this piece alive while
            # the caller uses it and the next is made)
            yield self._piece(g, runs, whole)

    def _piece(self, g: int, runs: Iterator[torch.Tensor], whole: bool) -> torch.Tensor:
        """Group ``g``'s ``(E, copies * d)`` output from its irreps, the next runs of ``runs``.

        ``whole``: one product with the whole Q (the irreps side by side per copy, one
        concatenation) instead of one thin product per irrep; otherwise one irrep at a time,
        accumulated in place, so that no group's irreps exist twice.
        """
        copies, d, columns = self.groups[g]
        if whole:
            irreps = [next(runs) for _ in columns]
            n = irreps[0].shape[0]
            q = self.bases.get(f"q{g}", irreps[0])
            if len(irreps) == 1:
                flat = irreps[0].reshape(n * copies, d)
            else:
                flat = torch.cat([r.view(n, copies, dim) for r, (_, dim) in zip(irreps, columns)], dim=2)
                flat = flat.view(n * copies, d)
            del irreps
            return (flat @ q.T).view(n, copies * d)
        acc = None
        for col, dim in columns:
            irrep = next(runs)
            q = self.bases.get(f"q{g}", irrep)
            n = irrep.shape[0]
            flat = irrep.reshape(n * copies, dim)
            qt = q[:, col : col + dim].T
            acc = flat @ qt if acc is None else acc.addmm_(flat, qt)  # in place: acc is not saved
            del irrep, flat
        return acc.view(n, copies * d)
