"""The irrep-wise escnn kernel MLP at a fixed set of points, in a few dense products. [issue 18]

A :class:`~steerable.nn.GridConv` evaluates its kernel MLP at the same ``k^d`` taps on every
training step.  Run layer by layer (:class:`~.irrepwise.IrrepwiseKernelMLP`), the MLP is a few
hundred small ops whose cost is their count, not their arithmetic (the taps are ~100 points).  Here
the same function is computed *transposed*, features as rows ``(F, E)``, in the row order of the
MLP's runs concatenated (run by run, copy-major within a run):

* everything that depends on the points alone (the harmonic embedding, the radial features of the
  softened radius) is computed once per dtype and device and kept;
* the first layer's input rows are ``W2[row] @ silu(W1 @ R^T + b1) + b2[row]`` (the invariant
  MLP, its last layer's rows repeated to the harmonic copies they scale) times the harmonic rows;
* each :class:`~.schur.SchurLinear` is one matrix ``(F_out, F_in)`` assembled from escnn's weights by
  one gather and one ``index_add`` (the same ``sum_b W_b basis_b`` the layer multiplies run by run,
  :meth:`~.schur.SchurLinear.run_blocks`), applied by one product; its bias is escnn's
  ``bias_expansion @ bias``;
* each :class:`~.schur.SchurGate` is one split, ELU, sigmoid, one gather of the gates to the rows
  they scale and one product;
* the change of basis of :class:`~.schur.BlocksFromIrreps` is a constant matrix folded into the
  last layer's weights.

:meth:`FixedPointsMLP.forward` returns ``mlp(points).T`` ``(D, E)``; equal to it to round-off in
values and gradients (``tests/test_grid_filter.py``).  Run with a ``tape``, the forward records
what :meth:`FixedPointsMLP.backward` needs to give the gradients of the tensors it read by hand
(no autograd; used by :class:`~steerable.nn.grid_filter.GridFilter`'s fused filter).  Built by
:func:`fixed_points_mlp`, which returns ``None`` for an MLP it does not cover (kernel attributes,
a Schur layer with a run that falls back to escnn's expanded matrix).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from steerable.core.memo import PointsMemo

from .irrepwise import IrrepwiseKernelMLP
from .schur import BlocksFromIrreps, SchurGate, SchurLinear


class _LinearIndex:
    """Where each weight of a :class:`SchurLinear` lands in its dense ``(F_out, F_in)`` matrix.

    ``entry`` (N,) flat matrix index, ``weight`` (N,) index into ``linear.weights``, and per entry
    ``(run, b, x, y)``: the value multiplying it is ``basis_run[b, x, y]`` (the run's sampled basis).
    With ``blocks`` (a float64 ``(D, F_out)`` matrix applied after the layer: the change of basis
    of :class:`BlocksFromIrreps`), the map is of ``blocks @ matrix``: each entry of row ``s`` is
    repeated for every ``r`` with ``blocks[r, s] != 0``, its value times ``scale = blocks[r, s]``.
    """

    def __init__(self, layer: SchurLinear, blocks: torch.Tensor | None = None) -> None:
        n_in = layer.linear.in_type.size
        self.blocks = blocks
        self.shape = (layer.linear.out_type.size if blocks is None else blocks.shape[0], n_in)
        offsets = np.concatenate([[0], np.cumsum(layer._cut_sizes)])
        entries, weights, values = [], [], []
        self.modules: list[str] = []
        for m, piece, (r0, _, _, c0, c1) in zip(layer.maps, layer._cut_of_run, layer.plan):
            if m is None:  # no input run of this irrep: zero rows (plus the bias)
                continue
            kb = (m.stop - m.start) // (m.out_count * m.in_count)
            d = m.size
            if c1 - c0 != m.in_count * d:
                raise ValueError("SchurLinear run map does not match its input run")
            o, x, c, y, b = np.meshgrid(
                np.arange(m.copies), np.arange(d), np.arange(m.in_count), np.arange(d), np.arange(kb), indexing="ij"
            )
            entries.append(((r0 + o * d + x) * n_in + c0 + c * d + y).ravel())
            weights.append((offsets[piece] + (o * m.in_count + c) * kb + b).ravel())
            # entries whose basis value is zero are left out (fixed by the group: the bases are constants)
            basis = getattr(layer.linear._basisexpansion, m.expansion).sampled_basis[..., 0].detach().cpu().numpy()
            keep = (basis[b, x, y] != 0).ravel()
            run = len(self.modules)
            self.modules.append(m.expansion)
            entries[-1], weights[-1] = entries[-1][keep], weights[-1][keep]
            values.append(np.stack([np.full(o.size, run), b.ravel(), x.ravel(), y.ravel()], 1)[keep])
        entry = np.concatenate(entries) if entries else np.zeros(0, dtype=np.int64)
        weight = np.concatenate(weights) if weights else np.zeros(0, dtype=np.int64)
        self.value_of = np.concatenate(values) if values else np.zeros((0, 4), dtype=np.int64)
        self.scale = None
        if blocks is not None:
            b = blocks.numpy()
            row, col = entry // n_in, entry % n_in
            k, r = np.nonzero(b.T[row])  # entry k (of row s) -> every row r with blocks[r, s] != 0
            entry, weight = r * n_in + col[k], weight[k]
            self.value_of = self.value_of[k]
            self.scale = torch.as_tensor(b[r, row[k]], dtype=torch.float64)
        self.entry = torch.as_tensor(entry, dtype=torch.long)
        self.weight = torch.as_tensor(weight, dtype=torch.long)

    def bias_matrix(self, layer: SchurLinear) -> torch.Tensor | None:
        """``(rows, n_bias)``: the layer's bias vector is ``bias_matrix @ linear.bias`` (escnn's
        ``bias_expansion``, with ``blocks`` applied), float64; ``None`` without bias."""
        if layer.linear.bias is None:
            return None
        expansion = layer.linear.bias_expansion.detach().cpu().double()
        return expansion if self.blocks is None else self.blocks @ expansion

    def values(self, layer: SchurLinear) -> torch.Tensor:
        """``(N,)``: the basis value of each entry, from the layer's current sampled bases."""
        expansion = layer.linear._basisexpansion
        bases = [getattr(expansion, name).sampled_basis[..., 0] for name in self.modules]
        if not bases:
            return layer.linear.weights.new_zeros(0)
        run, b, x, y = (torch.as_tensor(col, dtype=torch.long) for col in self.value_of.T)
        flat = torch.cat([basis.detach().cpu().reshape(-1) for basis in bases])  # index maps on the CPU
        starts = torch.tensor([0] + [basis.numel() for basis in bases[:-1]]).cumsum(0)
        dims = torch.tensor([basis.shape[1] for basis in bases])
        d = dims[run]
        values = flat[starts[run] + (b * d + x) * d + y]
        return values if self.scale is None else values.double() * self.scale


class FixedPointsMLP(torch.nn.Module):
    """``mlp(points).T`` ``(D, E)`` for points ``(E, n)`` that come again, in a few ops (module docstring).

    Holds index maps only (non-persistent buffers, no parameters): the MLP is passed at each call,
    so its current parameters, dtype and device are used.  Constants depending on the points and
    the bases are computed on first use per ``(dtype, device)`` and dropped when the module is
    moved or converted.
    """

    def __init__(self, mlp: IrrepwiseKernelMLP) -> None:
        super().__init__()
        layers = list(mlp.schur_layers)
        self._spec = mlp.spec  # what it was built for (see fits): the spec fixes the MLP's structure
        C = mlp.spec.hidden_channels
        n_deg = len(mlp.embedding.reps)
        # first layer's input rows: invariant-weight row and harmonic column of each
        w_row, y_col = [], []
        starts = np.concatenate([[0], np.cumsum([rep.size for rep in mlp.embedding.reps])])
        for parts in mlp._input_sources:
            for kind, a, b in parts:
                if kind != "harmonic":
                    raise ValueError("attribute fields")
                d = int(starts[a + 1] - starts[a])
                for c in range(C):
                    w_row += [c * n_deg + a] * d
                    y_col += list(range(b, b + d))
        self.register_buffer("w_row", torch.tensor(w_row, dtype=torch.long), persistent=False)
        self.register_buffer("y_col", torch.tensor(y_col, dtype=torch.long), persistent=False)
        self._steps: list[tuple[str, Any]] = []
        self._has_bias: dict[int, bool] = {}
        for j, layer in enumerate(layers):
            if isinstance(layer, SchurLinear):
                after = layers[j + 1] if j + 1 < len(layers) else None
                blocks = _blocks_matrix(after) if isinstance(after, BlocksFromIrreps) else None
                index = _LinearIndex(layer, blocks)
                self.register_buffer(f"entry{j}", index.entry, persistent=False)
                self.register_buffer(f"weight{j}", index.weight, persistent=False)
                self._steps.append(("linear", index))
                self._has_bias[j] = layer.linear.bias is not None
            elif isinstance(layer, SchurGate):
                copies = [c for c, _ in layer.gated]
                # the gate (row of the gates' block) of each gated row: copy-major runs
                starts = np.concatenate([[0], np.cumsum(copies)])[:-1]
                rows = [s + np.repeat(np.arange(c), d) for s, (c, d) in zip(starts, layer.gated)]
                gate_row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
                self.register_buffer(f"gate_row{j}", torch.as_tensor(gate_row, dtype=torch.long), persistent=False)
                self._steps.append(("gate", (layer.n_scalars, sum(copies))))
            elif isinstance(layer, BlocksFromIrreps):  # composed into the layer before
                if not isinstance(layers[j - 1], SchurLinear):
                    raise ValueError("BlocksFromIrreps after another layer than SchurLinear")
                self._steps.append(("blocks", None))
            else:  # pragma: no cover - the pipeline has these three layers only
                raise TypeError(type(layer).__name__)
        self._factor_first_layer(np.asarray(w_row), np.asarray(y_col), C * n_deg)
        # the module paths of :meth:`tensors`, and where each Schur linear step's tensors start
        self._paths = [("invariant_mlp", "0", "weight"), ("invariant_mlp", "0", "bias")]
        self._paths += [("invariant_mlp", "2", "weight"), ("invariant_mlp", "2", "bias")]
        self._tensor_of_step: dict[int, int] = {}
        for j, (kind, _) in enumerate(self._steps):
            if kind == "linear":
                self._tensor_of_step[j] = len(self._paths)
                names = ("weights", "bias") if self._has_bias[j] else ("weights",)
                self._paths += [("schur_layers", str(j), "linear", name) for name in names]
        self._cache: PointsMemo[dict[str, Any]] = PointsMemo()

    def _factor_first_layer(self, w_row: np.ndarray, y_col: np.ndarray, n_weights: int) -> None:
        """The first layer factored where each of its output rows reads one harmonic component
        (real irreps: every Schur map a multiple of the identity): ``h1 = (A u) * y_out + bias``
        with ``u`` the invariant MLP's output ``(C degrees, E)`` and ``A (F1, C degrees)`` the
        layer's matrix with its columns summed onto the invariant weight they read; the
        invariant MLP's last layer then folds into ``A`` (products of small matrices only).
        ``first_rows``: ``None`` where some row mixes components (the unfactored product)."""
        kind, index = self._steps[0]
        self.first_rows = None
        if kind != "linear" or index.blocks is not None:
            return
        n_in = index.shape[1]
        entry = self.get_buffer("entry0").numpy()
        rows, cols = entry // n_in, entry % n_in
        component = np.zeros(index.shape[0], dtype=np.int64)
        component[rows] = y_col[cols]
        if not np.array_equal(component[rows], y_col[cols]):
            return
        self.first_rows = (index.shape[0], n_weights)
        self.register_buffer("entry0", torch.as_tensor(rows * n_weights + w_row[cols]), persistent=False)
        self.register_buffer("y_out", torch.as_tensor(component), persistent=False)

    def fits(self, mlp: torch.nn.Module) -> bool:
        """Whether this was built for an MLP like ``mlp`` (same pipeline and spec: same structure)."""
        return type(mlp) is IrrepwiseKernelMLP and (mlp.spec is self._spec or mlp.spec == self._spec)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> FixedPointsMLP:
        self._cache.clear()
        return super()._apply(fn, *args, **kwargs)

    def _constants(self, mlp: IrrepwiseKernelMLP, pos: torch.Tensor) -> dict[str, Any]:
        """The constants of ``pos`` and the bases (see the class docstring), made on first use per
        dtype and device and kept while the same points come again: the same tensor unmodified
        (its version counter), or equal values."""
        return self._cache.get(pos, lambda pos: self._make_constants(mlp, pos))

    def _make_constants(self, mlp: IrrepwiseKernelMLP, pos: torch.Tensor) -> dict[str, Any]:
        """The constants of ``pos``, made afresh (``_constants`` keeps them)."""
        y = mlp.embedding(pos)  # (E, harmonics)
        radial = mlp.radial(mlp.embedding.soft_radius(pos))  # (E, radial features)
        rows = self.y_col if self.first_rows is None else self.y_out
        y_rows = y.T.index_select(0, rows).contiguous()
        cached = {"y_rows": y_rows, "radial_t": radial.T.contiguous(), "radial": radial}
        layers = list(mlp.schur_layers)
        for j, (kind, info) in enumerate(self._steps):
            if kind == "linear":
                cached[f"values{j}"] = info.values(layers[j]).to(pos)
                bias = info.bias_matrix(layers[j])
                cached[f"bias{j}"] = None if bias is None else bias.to(pos)
                cached[f"bias_t{j}"] = None if bias is None else cached[f"bias{j}"].t().contiguous()
        return cached

    def tensors(self, mlp: IrrepwiseKernelMLP) -> list[torch.Tensor]:
        """The tensors of ``mlp`` that :meth:`forward` reads, in its order: the invariant MLP's
        first and last layer (weight, bias each), then per Schur linear layer its weights and, where
        it has one, its bias.  Read through the module dictionaries (a few µs, called per step);
        where a name is not a plain parameter (e.g. a parametrization), through attributes."""
        try:
            out = []
            for path in self._paths:
                module = mlp
                for name in path[:-1]:
                    module = module._modules[name]
                out.append(module._parameters[path[-1]])
            return out
        except KeyError:
            return [functools.reduce(getattr, path, mlp) for path in self._paths]

    def forward(
        self,
        mlp: IrrepwiseKernelMLP,
        points: torch.Tensor,
        tensors: list[torch.Tensor] | None = None,
        tape: list[Any] | None = None,
    ) -> torch.Tensor:
        """``(D, E)``: ``mlp(points).T``, ``points`` ``(E, n)`` (not differentiated; constants
        computed from them are kept while the same values come again, per dtype and device).

        ``tensors``: the values of :meth:`tensors` to use (default: ``mlp``'s own).  ``tape``: a
        list that receives what :meth:`backward` needs (for a forward run without autograd, as in
        :class:`~steerable.nn.grid_filter.GridFilter`'s fused filter); without it the ops are
        recorded by autograd as usual."""
        consts = self._constants(mlp, points)
        y_rows, buffers = consts["y_rows"], self._buffers
        tensors = self.tensors(mlp) if tensors is None else tensors
        w1, b1, w2, b2 = tensors[:4]
        pre = torch.addmm(b1[:, None], w1, consts["radial_t"])
        hidden = F.silu(pre)
        v = torch.addmm(b2[:, None], w2, hidden)  # the invariant weights (C degrees, E)
        records: list[Any] = [consts, pre, hidden]
        h, k = v, 4
        for j, (kind, info) in enumerate(self._steps):
            if kind == "linear":
                weights = tensors[k]
                bias = torch.mv(consts[f"bias{j}"], tensors[k + 1])[:, None] if self._has_bias[j] else None
                k += 2 if self._has_bias[j] else 1
                matrix = self._matrix(j, weights, consts)
                if j == 0 and self.first_rows is not None:  # factored (see _factor_first_layer)
                    u = torch.mm(matrix, v)
                    h = u * y_rows if bias is None else torch.addcmul(bias, u, y_rows)
                    records += (matrix, v)
                    continue
                if j == 0:  # the invariant weights of each harmonic copy, times the copy
                    h = v.index_select(0, buffers["w_row"]) * y_rows  # (F0, E)
                records += (matrix, h)
                h = torch.mm(matrix, h) if bias is None else torch.addmm(bias, matrix, h)
            elif kind == "gate":
                n_scalars, n_gates = info
                scalars, gates, runs = h.split_with_sizes([n_scalars, n_gates, h.shape[0] - n_scalars - n_gates])
                sig = torch.sigmoid(gates)
                # each gated copy times its gate, broadcast over the irrep's components
                per_row = sig.index_select(0, buffers[f"gate_row{j}"])
                h = torch.cat([F.elu(scalars), runs * per_row])
                records += (scalars, sig, per_row, runs)
        if tape is not None:
            tape += records
        return h

    def _matrix(self, j: int, weights: torch.Tensor, consts: dict[str, Any]) -> torch.Tensor:
        """Schur linear layer ``j``'s dense matrix (see :class:`_LinearIndex`) from its ``weights``."""
        shape = self.first_rows if j == 0 and self.first_rows is not None else self._steps[j][1].shape
        flat = weights.index_select(0, self._buffers[f"weight{j}"]) * consts[f"values{j}"]
        return weights.new_zeros(shape[0] * shape[1]).index_add_(0, self._buffers[f"entry{j}"], flat).view(shape)

    def backward(
        self, tensors: list[torch.Tensor], tape: list[Any], grad: torch.Tensor, needs: list[bool] | tuple[bool, ...]
    ) -> list[torch.Tensor | None]:
        """The gradients of ``(forward(mlp, points, tensors, tape) * grad).sum()`` with respect to
        each of ``tensors`` (``None`` where ``needs`` is false), from the ``tape`` of that forward
        run, in a few products per layer (no autograd: a hand-written backward, equal to autograd's
        to round-off, ``tests/test_grid_filter.py``).  ``grad``: ``(D, E)``."""
        consts, pre, hidden = tape[:3]
        at = len(tape)  # the records are read back to front
        buffers = self._buffers
        grads: list[torch.Tensor | None] = [None] * len(tensors)
        g = grad
        for j in reversed(range(len(self._steps))):
            kind, info = self._steps[j]
            if kind == "gate":
                scalars, sig, per_row, runs = tape[at - 4 : at]
                at -= 4
                g_scalars, g_runs = g.split_with_sizes([info[0], g.shape[0] - info[0]])
                g_sig = torch.zeros_like(sig).index_add_(0, buffers[f"gate_row{j}"], g_runs * runs)
                g = torch.cat(
                    [
                        _elu_backward(g_scalars, 1.0, 1, 1, False, scalars),
                        _sigmoid_backward(g_sig, sig),
                        g_runs * per_row,
                    ]
                )
            elif kind == "linear":
                matrix, x = tape[at - 2 : at]
                at -= 2
                s = self._tensor_of_step[j]
                if self._has_bias[j] and needs[s + 1]:
                    grads[s + 1] = torch.mv(consts[f"bias_t{j}"], g.sum(1))
                if j == 0 and self.first_rows is not None:
                    g = g * consts["y_rows"]  # the gradient of u = matrix @ v
                if needs[s]:
                    g_matrix = torch.mm(g, x.t()).view(-1).index_select(0, buffers[f"entry{j}"])
                    g_matrix *= consts[f"values{j}"]
                    grads[s] = torch.zeros_like(tensors[s]).index_add_(0, buffers[f"weight{j}"], g_matrix)
                if not any(needs[:s]):
                    return grads
                g = torch.mm(matrix.t(), g)
                if j == 0 and self.first_rows is None:  # back through x = v[w_row] * y
                    g = hidden.new_zeros(tensors[2].shape[0], g.shape[1]).index_add_(
                        0, buffers["w_row"], g * consts["y_rows"]
                    )
        # the invariant MLP: g is the gradient of v = w2 @ hidden + b2
        if needs[2]:
            grads[2] = torch.mm(g, hidden.t())
        if needs[3]:
            grads[3] = g.sum(1)
        if needs[0] or needs[1]:
            g_pre = _silu_backward(torch.mm(tensors[2].t(), g), pre)
            if needs[0]:
                grads[0] = torch.mm(g_pre, consts["radial"])
            if needs[1]:
                grads[1] = g_pre.sum(1)
        return grads


_elu_backward = torch.ops.aten.elu_backward.default
_sigmoid_backward = torch.ops.aten.sigmoid_backward.default
_silu_backward = torch.ops.aten.silu_backward.default


def _blocks_matrix(layer: BlocksFromIrreps) -> torch.Tensor:
    """``(D, F)`` float64: :class:`BlocksFromIrreps` as a matrix on its input rows (runs concatenated)."""
    total_in = sum(copies * d for copies, d, _ in layer.groups)
    out = torch.zeros(total_in, total_in, dtype=torch.float64)
    row = col = 0
    for g, (copies, d, columns) in enumerate(layer.groups):
        q = layer.bases.master(f"q{g}")
        for qc, dim in columns:
            for k in range(copies):
                out[row + k * d : row + (k + 1) * d, col + k * dim : col + (k + 1) * dim] = q[:, qc : qc + dim]
            col += copies * dim
        row += copies * d
    return out


def fixed_points_mlp(mlp: torch.nn.Module) -> FixedPointsMLP | None:
    """A :class:`FixedPointsMLP` for ``mlp``, or ``None`` where it does not apply
    (not the irrep-wise pipeline, kernel attributes, a Schur run without a map from escnn's weights)."""
    if type(mlp) is not IrrepwiseKernelMLP or mlp.spec.attr_type is not None:
        return None
    for layer in mlp.schur_layers:
        if isinstance(layer, SchurLinear) and not all(
            m is not None or k is None for m, (_, _, k, _, _) in zip(layer.maps, layer.plan)
        ):
            return None
    try:
        return FixedPointsMLP(mlp)
    except ValueError:
        return None
