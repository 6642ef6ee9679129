"""The e3nn kernel MLP without non-invariant attributes, evaluated in scalar form (same values, fewer ops).

Without non-invariant attributes every feature of :class:`~.mlp.E3nnKernelMLP` is a function of the
position alone, and every irrep copy of degree ``l`` in it is a scalar function times the solid
harmonic of the softened direction ``v``: ``f_(l,u)(pos) = s_(l,u)(pos) Y_l(v)``.  This holds for the
first tensor product (``1x0e ⊗ Y`` with per-edge weights: copy ``w`` of degree ``l`` is
``kappa w_(l,w) Y_l``), is kept by the gate (silu of the scalars, ``sigmoid(gate) * s Y_l`` for the
rest) and by every tensor product with ``e = Y``: the coupling of ``Y_l1(v) ⊗ Y_l2(v)`` to degree
``l3`` is a homogeneous polynomial of degree ``l1 + l2`` transforming as ``l3``, hence
``kappa |v|^(l1 + l2 - l3) Y_l3(v)`` (zero when ``l1 + l2 - l3`` is odd).  So a layer maps the scalars
``s_(l1,u)`` to

    ``s'_(l3,w) = sum_paths kappa_path |v|^(2 k_path) sum_u W_path[u, w] s_(l1,u)``,
    ``k_path = (l1 + l2 - l3) / 2``,

one matrix product ``[s, |v|^2 s, |v|^4 s, ...] @ W_big`` with ``W_big`` assembled from the layer's
weights and the constants ``kappa``; the output block of type ``(l_out, l_in)`` at copy ``n`` is
``sum_l3 s_(n,l3) C_(l3) Y_l3(v)``, with ``C_(l3)`` the columns of the block's change of basis for
``l3``: per block type, the irreps vectors ``s_(n,l3) Y_l3(v)`` (one gather of the scalars times one
gather of the harmonics) times ``C^T`` in one matrix product over all edges and copies.  (torch's
batched product of the per-edge ``(n, q) x (q, d)`` matrices instead ran its slow per-matrix path on
the CPU: 21 ms vs 5.5 ms fwd+bwd for ``8 x 5 x 25`` at 2048 edges.)  The blocks are handed out one
type at a time (:meth:`RadialForm.forward` is a generator), so the core can use each piece and free
it before the next is made.

The constants (``kappa`` per path, the gates' normalisation constants) are read off the e3nn modules
themselves, by evaluating each of them once at a fixed unit direction in float64 (linear in the
weights: one weight set to 1 per path), and the read-off is checked: a module whose output at the
probe is not of the assumed form raises.  The tests compare this form with the e3nn modules (values
and gradients, float64).  Cost per edge: ``O(paths x C x copies)`` multiply-adds in a few matrix
products instead of e3nn's per-path Clebsch-Gordan contractions of ``(E, C, 2l+1)`` tensors.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from e3nn import o3

from .paths import require_weighted_uvw

__all__ = ["RadialForm"]

_PROBE = (0.41, -0.63, 0.66)  # any unit direction in general position works
_TOL = 1e-10


def _slots(irreps: o3.Irreps) -> list[tuple[int, int]]:
    """``(l, offset)`` of every irrep copy of ``irreps``, in the flat (copy-major) layout's order."""
    out, offset = [], 0
    for mul, ir in irreps:
        for _ in range(mul):
            out.append((ir.l, offset))
            offset += ir.dim
    return out


def _coefficient(vec: torch.Tensor, y: torch.Tensor, what: str) -> float:
    """``kappa`` with ``vec = kappa y`` (checked)."""
    kappa = float(vec @ y / (y @ y))
    if float((vec - kappa * y).norm()) > _TOL * max(1.0, abs(kappa)):
        raise RuntimeError(f"RadialForm: {what} is not a multiple of the harmonic at the probe direction")
    return kappa


def _harmonics(sh: o3.SphericalHarmonics, lmax: int) -> list[torch.Tensor]:
    """``Y_l(u)`` for ``l = 0..lmax`` at the probe's unit direction ``u`` (float64)."""
    u = torch.tensor(_PROBE, dtype=torch.float64)
    u = u / u.norm()
    flat = sh(u[None])[0]
    return [flat[l * l : (l + 1) * (l + 1)] for l in range(lmax + 1)]


def _single_layer(tp: o3.TensorProduct, slots_in, slots_out, ys, with_batch: bool):
    """Per weight index ``j`` with a nonzero path: ``(j, in slot, k, out slot, kappa)`` for ``tp(x, Y)``.

    ``slots_in`` / ``slots_out``: ``_slots`` of ``tp``'s first input and output; the second input
    is ``Y`` (one copy per degree, ``tp.irreps_in2`` = degrees ``0..L`` in order).
    """
    entries = []
    y_flat = torch.cat(ys)
    weight_offset = 0
    in_first = [sum(m for m, _ in tp.irreps_in1[:i]) for i in range(len(tp.irreps_in1))]
    out_first = [sum(m for m, _ in tp.irreps_out[:i]) for i in range(len(tp.irreps_out))]
    require_weighted_uvw(tp, "RadialForm")
    for ins in tp.instructions:
        mul1, mul2, mul3 = ins.path_shape
        if mul2 != 1:
            raise RuntimeError("RadialForm: the second operand must hold one copy per degree")
        l1 = tp.irreps_in1[ins.i_in1].ir.l
        l2 = tp.irreps_in2[ins.i_in2].ir.l
        l3 = tp.irreps_out[ins.i_out].ir.l
        # probe: copy 0 of input irrep i_in1 set to Y_l1(u), weight of (u=0, w=0) set to 1
        x = torch.zeros(tp.irreps_in1.dim, dtype=torch.float64)
        s_in = in_first[ins.i_in1]
        off_in = slots_in[s_in][1]
        x[off_in : off_in + 2 * l1 + 1] = ys[l1]
        w = torch.zeros(tp.weight_numel, dtype=torch.float64)
        w[weight_offset] = 1.0
        if with_batch:
            out = tp(x[None], y_flat[None], w[None])[0]
        else:
            out = tp(x, y_flat, w)
        s_out = out_first[ins.i_out]
        off_out = slots_out[s_out][1]
        piece = out[off_out : off_out + 2 * l3 + 1]
        rest = torch.cat([out[:off_out], out[off_out + 2 * l3 + 1 :]])
        if rest.numel() and float(rest.abs().max()) > _TOL:
            raise RuntimeError(f"RadialForm: path {ins} reaches other outputs than its own")
        kappa = _coefficient(piece, ys[l3], f"path ({l1}, {l2}) -> {l3}")
        if (l1 + l2 - l3) % 2:
            if abs(kappa) > _TOL:
                raise RuntimeError(f"RadialForm: path ({l1}, {l2}) -> {l3} of odd degree is not zero")
        elif abs(kappa) > _TOL:
            k = (l1 + l2 - l3) // 2
            for u in range(mul1):
                for v in range(mul3):
                    j = weight_offset + u * mul3 + v
                    entries.append((j, s_in + u, k, out_first[ins.i_out] + v, kappa))
        weight_offset += mul1 * mul2 * mul3
    return entries


class _Layer(torch.nn.Module):
    """One tensor product with ``e = Y`` in scalar form: ``s (E, n_in) -> s' (E, n_out)``.

    ``entries``: ``(weight index, in slot, k, out slot, kappa)`` from :func:`_single_layer`;
    ``out_order``: the output slots to keep, in the order to give them (the last layer: the order
    the block types read them), or ``None`` for all in e3nn's order.

    ``forward(s, rho_powers, weight)``: ``rho_powers[k]`` = ``|v|^(2k)`` ``(E, 1)``, ``weight``: the
    e3nn module's flat shared weights ``(numel,)``.  The first layer (first operand the constant
    ``1x0e``, per-edge weights ``(E, numel)``) is :meth:`big_weight` of those weights itself.
    """

    def __init__(self, entries, n_in: int, n_out: int, out_order: list[int] | None = None) -> None:
        super().__init__()
        ks = sorted({k for _, _, k, _, _ in entries})
        self.ks = ks
        self.n_in, self.n_out = n_in, n_out
        col = {s: i for i, s in enumerate(out_order)} if out_order is not None else None
        if out_order is not None:
            self.n_out = len(out_order)
        src, dst, kappa = [], [], []
        for j, s_in, k, s_out, c in entries:
            if col is not None:
                if s_out not in col:
                    continue  # an output the blocks never read
                s_out = col[s_out]
            src.append(j)
            dst.append((ks.index(k) * n_in + s_in) * self.n_out + s_out)
            kappa.append(c)
        self.register_buffer("src", torch.tensor(src, dtype=torch.long), persistent=False)
        self.register_buffer("dst", torch.tensor(dst, dtype=torch.long), persistent=False)
        self.register_buffer("kappa", torch.tensor(kappa, dtype=torch.float64), persistent=False)

    def big_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """``W_big`` ``(len(ks) n_in, n_out)`` (shared weights) or ``(E, ...)`` flattened (per edge)."""
        picked = weight.index_select(-1, self.src) * self.kappa
        size = len(self.ks) * self.n_in * self.n_out
        zeros = picked.new_zeros(*weight.shape[:-1], size)
        return zeros.index_add(-1, self.dst, picked)

    def forward(self, s: torch.Tensor, rho_powers: dict[int, torch.Tensor], weight: torch.Tensor) -> torch.Tensor:
        big = self.big_weight(weight).view(len(self.ks) * self.n_in, self.n_out)
        ext = s if self.ks == [0] else torch.cat([s if k == 0 else s * rho_powers[k] for k in self.ks], dim=1)
        return ext @ big


class _Gate(torch.nn.Module):
    """An e3nn ``Gate`` in scalar form: ``[a silu(s_0) | b_u sigmoid(g_u) s_u]``.

    ``a`` and ``b`` (e3nn's normalisation constants) are read off the module at the probe.
    """

    def __init__(self, gate, ys) -> None:
        super().__init__()
        irreps_in = gate.irreps_in
        slots = _slots(irreps_in)
        n_scalars = gate.act_scalars.irreps_in.num_irreps
        n_gates = gate.act_gates.irreps_in.num_irreps if gate.act_gates.irreps_in.dim else 0
        gated_slots = slots[n_scalars + n_gates :]
        if len(gated_slots) != n_gates:
            raise RuntimeError("RadialForm: a gate with as many gates as gated irreps was expected")
        self.n_scalars, self.n_gates = n_scalars, n_gates
        # probe 1: every scalar 1 (Y_0 = 1), gates 0, gated 0 -> a silu(1)
        x = torch.zeros(irreps_in.dim, dtype=torch.float64)
        x[:n_scalars] = 1.0
        out = gate(x[None])[0]
        a = float(out[0]) / float(torch.nn.functional.silu(torch.tensor(1.0, dtype=torch.float64)))
        if float((out[:n_scalars] - a * torch.nn.functional.silu(x[:n_scalars])).abs().max()) > _TOL:
            raise RuntimeError("RadialForm: the gate's scalars are not a multiple of silu")
        self.a = a
        b = []
        if n_gates:
            # probe 2: scalars 0, gates 0 (sigmoid 1/2), every gated copy Y_l(u) -> b_u / 2 Y_l(u)
            x = torch.zeros(irreps_in.dim, dtype=torch.float64)
            for l, off in gated_slots:
                x[off : off + 2 * l + 1] = ys[l]
            out = gate(x[None])[0]
            out_slots = _slots(gate.irreps_out)[n_scalars:]
            for (l, _), (l_out, off) in zip(gated_slots, out_slots):
                if l_out != l:
                    raise RuntimeError("RadialForm: the gate reorders its gated irreps")
                b.append(2.0 * _coefficient(out[off : off + 2 * l + 1], ys[l], "a gated irrep"))
        self.register_buffer("b", torch.tensor(b, dtype=torch.float64), persistent=False)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        scalars = torch.nn.functional.silu(s[:, : self.n_scalars]) * self.a
        if not self.n_gates:
            return scalars
        gates, gated = s[:, self.n_scalars :].split([self.n_gates, self.n_gates], dim=1)
        return torch.cat([scalars, torch.sigmoid(gates) * self.b * gated], dim=1)


class RadialForm(torch.nn.Module):
    """:class:`~.mlp.E3nnKernelMLP`'s layers in scalar form (see the module docstring).

    Holds constants only (float64 buffers, tracked by the owner's
    :class:`~steerable.core.constants.Float64Constants`); the weights are the owner's e3nn modules'.
    ``forward(owner, v, scalars)`` yields the owner's blocks one type at a time (``(E, n_t d_t)``,
    in the owner's type order) from the softened direction and the scalar MLP's input.
    """

    def __init__(self, owner, types: list[tuple[torch.Tensor, list[tuple[int, int]], torch.Tensor]]) -> None:
        """``types``: per block type, ``(gather (n_t, d_t), [(l3, column) allowed], C_t (d_t, d_t))``
        as planned by the owner (``gather`` rows: the blocks of the type, in output order)."""
        super().__init__()
        lmax = owner.lmax
        ys = _harmonics(owner.sh, lmax)
        if abs(float(ys[0][0]) - 1.0) > _TOL:
            raise RuntimeError("RadialForm: expected Y_0 = 1 (component normalisation)")
        # output slots of the last layer, in the order the block types read them: (t, n, q)
        last = owner.out_tp if owner.out_tp is not None else owner.first_tp
        out_slots = _slots(last.irreps_out)
        slot_at = {off: i for i, (_, off) in enumerate(out_slots)}
        order, self.per_type = [], []
        for t, (gather, allowed, cmat) in enumerate(types):
            n_t, d_t = gather.shape
            for n in range(n_t):
                for _l3, col in allowed:
                    order.append(slot_at[int(gather[n, col])])
            self.per_type.append((n_t, len(allowed), d_t))
            # the allowed columns of C_t, the harmonic component and the scalar each one takes
            cols = [col + m for _l, col in allowed for m in range(2 * _l + 1)]
            y_index = [l3 * l3 + m for l3, _c in allowed for m in range(2 * l3 + 1)]
            q_index = [q for q, (l3, _c) in enumerate(allowed) for _m in range(2 * l3 + 1)]
            self.register_buffer(f"cob_{t}", cmat[:, cols].T.contiguous(), persistent=False)  # (d', d_t)
            self.register_buffer(f"y_index_{t}", torch.tensor(y_index, dtype=torch.long), persistent=False)
            self.register_buffer(f"q_index_{t}", torch.tensor(q_index, dtype=torch.long), persistent=False)
        self.first = _Layer(
            _single_layer(owner.first_tp, _slots(owner.irreps_x0), _slots(owner.first_tp.irreps_out), ys, True),
            1,
            owner.first_tp.irreps_out.num_irreps,
            order if owner.out_tp is None else None,
        )
        if self.first.ks != [0]:
            raise RuntimeError("RadialForm: the first layer couples Y_l to degree l only")
        self.gates = torch.nn.ModuleList([_Gate(g, ys) for g in owner.gates])
        self.layers = torch.nn.ModuleList()
        for tp in [*owner.tps, *([owner.out_tp] if owner.out_tp is not None else [])]:
            is_last = tp is owner.out_tp
            self.layers.append(
                _Layer(
                    _single_layer(tp, _slots(tp.irreps_in1), _slots(tp.irreps_out), ys, False),
                    tp.irreps_in1.num_irreps,
                    tp.irreps_out.num_irreps,
                    order if is_last else None,
                )
            )
        self.ks = sorted({k for layer in self.layers for k in layer.ks} - {0})

    def forward(self, owner, v: torch.Tensor, scalars: torch.Tensor) -> Iterator[torch.Tensor]:
        """The blocks of each type, ``(E, n_t d_t)`` each, in the owner's type order, from the softened
        direction ``v`` ``(E, 3)`` and the scalar MLP's input ``scalars``; each type's blocks are made
        only when asked for (the layers before them once, at the first)."""
        y = owner.sh(v)  # solid harmonics of the softened direction
        rho = v.pow(2).sum(-1, keepdim=True)  # |v|^2
        powers = {1: rho}
        for k in self.ks:
            if k > 1:
                powers[k] = rho.pow(k)
        w = owner.scalar_mlp(scalars)
        s = self.first.big_weight(w)  # (E, n_first): 1x0e ⊗ Y_l, copy-wise
        if owner.out_tp is not None:
            s = self.gates[0](s)
            for layer, gate, tp in zip(self.layers, self.gates[1:], owner.tps):
                s = gate(layer(s, powers, tp.weight))
            s = self.layers[-1](s, powers, owner.out_tp.weight)
        del v, scalars, rho, powers, w  # the pieces below need only s and y: free the rest first
        per_type = s.split([n_t * q_t for n_t, q_t, _ in self.per_type], dim=1)
        for t, f in enumerate(per_type):
            yield self._blocks(t, f, y)  # not bound here: the consumer's reference is the only one

    def _blocks(self, t: int, f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Type ``t``'s blocks ``(E, n_t d_t)`` from its scalars ``f`` ``(E, n_t q_t)`` and the harmonics."""
        (n_t, q_t, d_t), n_edges = self.per_type[t], y.shape[0]
        if q_t == 0:  # every irrep of the type forbidden (O(3), unnatural parity): exact zeros
            return y.new_zeros(n_edges, n_t * d_t)
        cob, y_index, q_index = (getattr(self, f"{name}_{t}") for name in ("cob", "y_index", "q_index"))
        # the blocks' irreps vectors s_(n,l3) Y_l3(v), then each block's change of basis
        irreps = f.view(n_edges, n_t, q_t).index_select(2, q_index) * y.index_select(1, y_index)[:, None, :]
        return (irreps.view(n_edges * n_t, -1) @ cob).view(n_edges, n_t * d_t)
