"""The e3nn kernel MLP: ``(pos, attr) -> ⊕_b out_rep_b ⊗ in_rep_b``, exactly SO(3)/O(3)-equivariant.

Architecture (``C = spec.hidden_channels``, ``L = max_b (l_out_b + l_in_b)``, the band limit the
output needs):

1. **Harmonic embedding**, smooth at the origin: the solid harmonics ``Y_0(v) .. Y_L(v)`` (e3nn
   spherical harmonics without normalisation, component normalisation: polynomials, ``Y_l(v) =
   |v|^l Y_l(pos / |pos|)``) of the softened direction ``v = pos / r_s``, ``r_s = sqrt(|pos|^2 +
   s^2)`` with the origin scale ``s`` (``options["origin_scale"]``, default a tenth of the spacing of the
   radial basis centres, ``max_radius / (10 max(radial_features - 1, 1))``: the one rule,
   :meth:`~steerable.core.mlp.KernelMLPSpec.origin_scale`).  For ``|pos| >> s`` these
   are the harmonics of the direction; near the origin they fade in as ``(|pos| / s)^l``, and at
   ``pos = 0`` only ``Y_0`` is nonzero.  No division by ``|pos|``: gradients at and near the origin
   are exact and finite (forces with self-loops or coincident points), half precision gives no NaN.
   Parities ``(-1)^l`` in O(3); in SO(3) every internal irrep is labelled even.
2. **Scalar MLP** (``e3nn.nn.FullyConnectedNet``) of the invariants: ``RadialBasis(r_s)`` (a smooth
   function of ``|pos|^2``, where ``|pos|`` has a cone at the origin) and the invariant (``0e``)
   attributes.  It gives the per-edge weights of the first tensor product.
3. **First layer**: ``x0 = 1x0e ⊕ a`` (``a``: the non-invariant attributes, in e3nn's basis)
   tensored with ``e = Y ⊕ a`` by an ``o3.FullyConnectedTensorProduct`` whose weights come from
   step 2, so every output irrep starts as ``w(|pos|, invariants) Y_l(u)`` plus attribute couplings.
   Then an ``e3nn.nn.Gate`` (SiLU on ``C`` scalars, sigmoid gates on the rest).
4. ``spec.hidden_layers - 1`` further gated layers ``Gate(TP(h, e))`` with shared weights.  Hidden
   field: ``C`` copies of every irrep up to degree ``min(L, hidden_lmax)``.  In O(3) without
   non-invariant attributes only the natural parities ``(-1)^l``: a function of the position alone
   has no unnatural-parity part (``0o``, ``1e``, ``2o``...), so those output components are exact
   zeros (e.g. the cross-product part of a ``1o -> 1o`` kernel, which is a ``1e``); with
   non-invariant attributes both parities (``x × a`` is a ``1e``).  Using ``e``
   (not only ``Y``) as second operand lets attributes meet themselves (``a ⊗ a``).
5. **Output layer**: ``TP(h, e) -> ⊕_b ⊕_l (l, p_out p_in)`` (shared weights).  Because ``Y``
   reaches degree ``L``, every irrep in every ``out ⊗ in`` is reached (a plain linear map of a
   vector field could not produce ``l = 2``).  With ``hidden_layers = 0`` steps 3 and 5 are one
   tensor product with per-edge weights (then the output is at most linear in ``a``).
6. A fixed **change of basis** per block type (Clebsch–Gordan ``o3.wigner_3j`` scaled to an
   orthogonal matrix, and e3nn's ordering of ``(x, y, z)`` for degree 1) takes each block from
   irreps to the core's row-major ``out x in`` matrix layout.

Evaluation.  With non-invariant attributes the features are ``o3.Irreps`` vectors and the layers
e3nn's modules, with faster forms of the same maps (``mlp.use_forms = False`` runs the modules
alone): the first tensor product through its path values
(:class:`~.edge_weighted.EdgeWeightedForm`), the shared-weight ones as one matrix product of the
operands' outer product where that is dense enough (:class:`~.bilinear.BilinearForm`, degrees <= 1),
else as path values per input irrep and one matrix product per output irrep
(:class:`~.shared_weight.SharedWeightForm`).  Without them (invariant attributes only, or none: the
common case) every irrep copy of degree ``l`` of every feature is a scalar function times
``Y_l(v)``, and the same network runs in **scalar form** (:class:`~.radial.RadialForm`): each tensor
product is one matrix product of the per-copy scalars and their multiples by ``|v|^2, |v|^4, ...``
with a matrix assembled from the layer's weights and fixed path constants, the gate acts on the
scalars, and each block type's output is ``(scalars x gathered harmonics) @ C^T``.  Same parameters,
same values and gradients (float64 round-off; the tests compare both); the path constants are read
off the e3nn modules at construction.  ``mlp.scalar_form = False`` runs e3nn's modules instead (the
reference).  The output is also handed out one block type at a time (``piece_sizes`` / ``pieces``,
:class:`~steerable.core.mlp.StreamingKernelMLP`; made lazily in the scalar form), which the
shared-basis kernel uses pair by pair.

Options (``spec.options``): ``hidden_lmax`` (int >= 0, default 2): the highest degree kept in the
hidden field (0: scalars only, no gates); the output still reaches ``L`` through the last tensor
product.  ``origin_scale`` (a number > 0): ``s`` of step 1.
"""

from __future__ import annotations

import numbers
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3

from steerable.core.constants import Float64Constants
from steerable.core.mlp import KernelMLPSpec
from steerable.core.radial import RadialBasis
from steerable.ops.permute import permute_columns

from .bilinear import BilinearForm
from .edge_weighted import EdgeWeightedForm
from .group import E3nnGroup, E3nnRep, float64_default
from .radial import RadialForm
from .shared_weight import SharedWeightForm


def _ir(rep: E3nnRep) -> o3.Irrep:
    """The internal e3nn irrep: SO(3) reps are all labelled even (parity has no meaning there)."""
    return o3.Irrep(rep.l, rep.parity)


def block_change_of_basis(out_rep: E3nnRep, in_rep: E3nnRep) -> tuple[list[o3.Irrep], torch.Tensor]:
    """The irreps of ``out ⊗ in`` and the orthogonal ``C`` with ``core block = C @ irreps vector``.

    Returns ``(irreps, C)``: ``irreps`` lists ``(l, p_out p_in)`` for ``l = |l1-l2| .. l1+l2``; ``C``
    is ``(d1 d2, d1 d2)`` float64.  Column block ``l`` is ``sqrt(2l+1) W_l`` with ``W_l =
    o3.wigner_3j(l1, l2, l)`` (invariant, unit Frobenius norm), conjugated into the core bases of
    ``out`` and ``in``: ``K = B1^T (sum_k W[:, :, k] v_k) B2`` flattened row-major, which maps
    ``D_l v`` to ``out(g) K in(g)^T``.
    """
    l1, l2 = out_rep.l, in_rep.l
    p = out_rep.parity * in_rep.parity
    irreps, cols = [], []
    b1, b2 = out_rep.basis, in_rep.basis
    for l in range(abs(l1 - l2), l1 + l2 + 1):
        w = o3.wigner_3j(l1, l2, l, dtype=torch.float64) * (2 * l + 1) ** 0.5  # (d1, d2, 2l+1)
        k = torch.einsum("ai,abk,bj->ijk", b1, w, b2)  # core basis: B^T M B with M in e3nn's
        cols.append(k.reshape(out_rep.size * in_rep.size, 2 * l + 1))
        irreps.append(o3.Irrep(l, p))
    return irreps, torch.cat(cols, dim=1)


def _restore_after_load(module: E3nnKernelMLP, keys: object) -> None:
    module.constants.restore_buffers(module)


class E3nnKernelMLP(torch.nn.Module):
    """``mlp(pos (E, 3), attr (E, a) | None) -> (E, spec.out_size)`` per the core's contract.

    See the module docstring for the architecture.  Block ``b`` of the output is the row-major
    ``out_rep_b.size x in_rep_b.size`` matrix transforming as ``kron(out_rep_b(g), in_rep_b(g))``.
    """

    def __init__(self, spec: KernelMLPSpec) -> None:
        super().__init__()
        # Build in float64 so that the fixed constants (Clebsch-Gordan / Wigner-3j buffers of e3nn's
        # tensor products, changes of basis) are exact, keep float64 masters of them, then move to
        # the default dtype.  Every dtype or device change rewrites them from the masters, so
        # float32 -> float64 later still gives float64 round-off (float32-rounded constants would
        # cap it near 1e-7).
        default = torch.get_default_dtype()
        with float64_default():
            self._build(spec)
        self.constants = Float64Constants()
        self.constants.track_buffers(self)
        self.to(default)
        # a state dict saved in float32 would otherwise overwrite the constants with rounded values
        self.register_load_state_dict_post_hook(_restore_after_load)  # a module-level function: picklable

    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        super()._apply(fn, recurse)
        if "constants" in self._modules:  # not yet during construction
            self.constants.restore_buffers(self)
        return self

    def __deepcopy__(self, memo: dict) -> E3nnKernelMLP:
        """Rebuilt from the spec with this module's parameters, dtype, device and mode: e3nn's generated
        code re-creates its constant tensors when copied, from their current (maybe float32-rounded)
        values, which no master restores; a rebuilt module has exact ones.  ``requires_grad`` flags
        are kept; hooks and added attributes are not."""
        ref = next(iter([*self.parameters(), *self.buffers()]), None)
        new = type(self)(self.spec)
        if ref is not None:
            new = new.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else None)
        new.load_state_dict(self.state_dict())
        for name, param in self.named_parameters():
            if not param.requires_grad:
                new.get_parameter(name).requires_grad_(False)
        new.train(self.training)
        new.scalar_form = self.scalar_form
        new.use_forms = self.use_forms
        memo[id(self)] = new
        return new

    def _build(self, spec: KernelMLPSpec) -> None:
        spec.require(
            backend="e3nn",
            group_type=E3nnGroup,
            nonlinearities=("exact",),
            options={"hidden_lmax": int, "origin_scale": numbers.Real},
        )
        group = spec.group
        self.spec = spec
        dtype = torch.float64
        blocks = [
            (group.as_e3nn_rep(o, f"block {b} output"), group.as_e3nn_rep(i, f"block {b} input"))
            for b, (o, i) in enumerate(spec.blocks)
        ]
        c = spec.hidden_channels

        # -- 1. harmonic embedding up to the band limit the output needs ---------------------
        self.lmax = max(1, max(o.l + i.l for o, i in blocks))
        sh_parity = -1 if group.with_inversion else 1
        self.irreps_sh = o3.Irreps([(1, (l, sh_parity**l)) for l in range(self.lmax + 1)])
        self.sh = o3.SphericalHarmonics(self.irreps_sh, normalize=False, normalization="component")
        self.origin_scale = spec.origin_scale("e3nn backend")

        # -- 2. attributes: invariant channels feed the scalar MLP, the rest enter as irreps ---
        inv_channels, eq_channels, eq_irreps, attr_blocks = [], [], [], []
        if spec.attr_type is not None:
            for off, rep in zip(spec.attr_type.offsets, spec.attr_type.reps):
                rep = group.as_e3nn_rep(rep, "attribute")
                if rep.is_trivial:
                    inv_channels.append(off)
                else:
                    eq_channels.extend(range(off, off + rep.size))
                    eq_irreps.append((1, _ir(rep)))
                    attr_blocks.append(rep.basis)
        self.register_buffer("inv_channels", torch.tensor(inv_channels, dtype=torch.long), persistent=False)
        self.register_buffer("eq_channels", torch.tensor(eq_channels, dtype=torch.long), persistent=False)
        # core -> e3nn basis of the non-invariant attributes (block diagonal, identity but for l = 1)
        to_e3nn = torch.block_diag(*attr_blocks) if attr_blocks else torch.zeros(0, 0, dtype=torch.float64)
        self.register_buffer("attr_to_e3nn", to_e3nn.to(dtype), persistent=False)
        self.irreps_x0 = o3.Irreps([(1, (0, 1))] + eq_irreps)
        # Every tensor product takes the "edge" irreps e = Y ⊕ (non-invariant attributes) as its second
        # operand, so that attributes meet themselves too (a ⊗ a has the l = 2 part Y_2(a) that a
        # 1o -> 1o kernel with a vector attribute needs: measured rank 7 of 9 without it).
        self.irreps_e = self.irreps_sh + o3.Irreps(eq_irreps)
        # O(3): a function of the position alone has no component of unnatural parity (0o, 1e, 2o...:
        # the reflections through planes containing the position forbid it), so without
        # non-invariant attributes those are left out of the hidden field and of the output (exact
        # zeros, half the cost).  Any non-scalar attribute can create them (x × a is a 1e).
        natural_only = group.with_inversion and not eq_irreps
        if not group.with_inversion:
            hidden_parities: tuple[int, ...] = (1,)
        else:
            hidden_parities = (1, -1)

        def allowed(l: int, p: int) -> bool:
            if natural_only:
                return p == (-1) ** l
            return p in hidden_parities

        self.radial = RadialBasis(spec.radial_features, spec.max_radius)
        n_scalars = spec.radial_features + len(inv_channels)

        # -- output irreps, sorted, and the map from them to the core's block layout -----------
        irreps_out, gather, scatter, cob, columns = self._plan_output(blocks, allowed)
        if irreps_out.dim == 0:
            raise ValueError(
                f"E3nnKernelMLP: every block of {[(o.name, i.name) for o, i in blocks]} is forced to zero by "
                f"{group.name} symmetry (no pseudo-tensor attribute to couple to)"
            )
        self.irreps_out = irreps_out
        self._pad = any(bool((g == irreps_out.dim).any()) for g in gather)  # some components forced to 0
        self._types = len(gather)
        for t, (g, _s, cmat) in enumerate(zip(gather, scatter, cob)):
            self.register_buffer(f"gather_{t}", g, persistent=False)
            self.register_buffer(f"basis_{t}", cmat.to(dtype), persistent=False)
        order = torch.cat([s.reshape(-1) for s in scatter])
        self.register_buffer("unscatter", torch.argsort(order), persistent=False)
        self.register_buffer("scatter_order", order, persistent=False)  # its inverse
        self._in_order = bool(torch.equal(order, torch.arange(order.numel())))  # types already in output order
        self._type_sizes = [g.numel() for g in gather]

        # -- 3.-5. the equivariant layers ----------------------------------------------------
        hidden_lmax = int(spec.options.get("hidden_lmax", 2))
        if hidden_lmax < 0:
            raise ValueError(f"hidden_lmax must be >= 0, got {hidden_lmax}")
        hidden_types = [
            (l, p) for l in range(min(self.lmax, hidden_lmax) + 1) for p in hidden_parities if allowed(l, p)
        ]
        gated = o3.Irreps([(c, ir) for ir in hidden_types if ir != (0, 1)])

        def gate() -> e3nn_nn.Gate:
            return e3nn_nn.Gate(
                o3.Irreps([(c, (0, 1))]),
                [torch.nn.functional.silu],
                o3.Irreps([(gated.num_irreps, (0, 1))]) if gated.num_irreps else o3.Irreps(""),
                [torch.sigmoid] if gated.num_irreps else [],  # hidden_lmax = 0: scalars only
                gated,
            )

        first_out = gate().irreps_in if spec.hidden_layers > 0 else irreps_out
        self.first_tp = o3.FullyConnectedTensorProduct(
            self.irreps_x0, self.irreps_e, first_out, shared_weights=False, internal_weights=False
        )
        self.scalar_mlp = e3nn_nn.FullyConnectedNet(
            [n_scalars, max(c, 8), self.first_tp.weight_numel], torch.nn.functional.silu
        )
        self.gates = torch.nn.ModuleList()
        self.tps = torch.nn.ModuleList()
        if spec.hidden_layers > 0:
            self.gates.append(gate())
            h = self.gates[0].irreps_out
            for _ in range(spec.hidden_layers - 1):
                g = gate()
                self.tps.append(o3.FullyConnectedTensorProduct(h, self.irreps_e, g.irreps_in))
                self.gates.append(g)
                h = g.irreps_out
            self.out_tp = o3.FullyConnectedTensorProduct(h, self.irreps_e, irreps_out)
        else:
            self.out_tp = None
        if self.first_tp.weight_numel == 0:
            raise ValueError("E3nnKernelMLP: no tensor-product path reaches the requested output")
        # -- 7. the scalar form, used without non-invariant attributes (same values, see .radial) ---
        self.radial_form = RadialForm(self, list(zip(gather, columns, cob))) if not eq_irreps else None
        #: evaluate through the scalar form when there is one (``False``: e3nn's modules, the reference)
        self.scalar_form = self.radial_form is not None
        # -- 8. otherwise, the first tensor product through its path values (.edge_weighted) and the
        # shared-weight ones as one matrix product where that pays (.bilinear), else per output
        # irrep (.shared_weight)
        self.first_form = EdgeWeightedForm(self.first_tp) if eq_irreps else None
        #: the faster forms of the shared-weight tensor products, by name (``tps_<n>``, ``out_tp``)
        self.forms = torch.nn.ModuleDict()
        if eq_irreps:
            for name, tp in [*((f"tps_{n}", tp) for n, tp in enumerate(self.tps)), ("out_tp", self.out_tp)]:
                if tp is None:
                    continue
                form = BilinearForm.if_worthwhile(tp)
                if form is None and SharedWeightForm.applies(tp):
                    form = SharedWeightForm(tp)
                if form is not None:
                    self.forms[name] = form
        #: run the tensor products through :attr:`first_form` and :attr:`forms` where they have one
        #: (``False``: e3nn's modules, the reference)
        self.use_forms = True

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _plan_output(
        blocks: Sequence[tuple[E3nnRep, E3nnRep]], allowed: Callable[[int, int], bool]
    ) -> tuple[o3.Irreps, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[list[tuple[int, int]]]]:
        """Sorted output irreps, and per block type: gather indices, core positions, change of basis,
        and ``(l, first column)`` of each produced irrep in the change of basis.

        The last layer outputs ``irreps_out = ⊕_(l,p) M_(l,p) x (l,p)`` (e3nn layout: copy-major).
        Blocks of the same type ``(l1, p1, l2, p2)`` share one change of basis ``C_t``; for type ``t``
        ``gather_t`` ``(n_t, d_t)`` picks each block's irreps vector out of the last layer's output
        and ``scatter_t`` ``(n_t, d_t)`` says where that block sits in the core's flat output.
        Irreps for which ``allowed(l, p)`` is false are not produced: their gather index is
        ``irreps_out.dim``, a zero column appended in ``forward``.
        """
        types: dict[tuple[int, int, int, int], list[int]] = defaultdict(list)
        offsets, start = [], 0
        for b, (o, i) in enumerate(blocks):
            types[(o.l, o.parity, i.l, i.parity)].append(b)
            offsets.append(start)
            start += o.size * i.size
        decomp = {key: block_change_of_basis(blocks[bs[0]][0], blocks[bs[0]][1]) for key, bs in types.items()}
        mult: dict[tuple[int, int], int] = defaultdict(int)
        for key, bs in types.items():
            for ir in decomp[key][0]:
                if allowed(ir.l, ir.p):
                    mult[(ir.l, ir.p)] += len(bs)
        order = sorted(mult, key=lambda ir: (ir[0], -ir[1]))  # e3nn's sort: l, then even before odd
        irreps_out = o3.Irreps([(mult[ir], ir) for ir in order])
        base, run = {}, 0
        for ir in order:
            base[ir] = run
            run += mult[ir] * (2 * ir[0] + 1)
        used: dict[tuple[int, int], int] = defaultdict(int)  # copies of each irrep handed out so far
        gather, scatter, cob, columns = [], [], [], []
        for key, bs in types.items():
            irs, cmat = decomp[key]
            starts = [sum(2 * ir.l + 1 for ir in irs[:k]) for k in range(len(irs))]
            columns.append([(ir.l, c) for ir, c in zip(irs, starts) if allowed(ir.l, ir.p)])
            size = cmat.shape[0]
            g = torch.empty(len(bs), size, dtype=torch.long)
            for n, _b in enumerate(bs):
                col = 0
                for ir in irs:
                    d = 2 * ir.l + 1
                    if not allowed(ir.l, ir.p):
                        g[n, col : col + d] = run  # the zero column
                        col += d
                        continue
                    first = base[(ir.l, ir.p)] + used[(ir.l, ir.p)] * d
                    g[n, col : col + d] = torch.arange(first, first + d)
                    used[(ir.l, ir.p)] += 1
                    col += d
            gather.append(g)
            scatter.append(torch.tensor([offsets[b] for b in bs])[:, None] + torch.arange(size)[None, :])
            cob.append(cmat)
        return irreps_out, gather, scatter, cob, columns

    # ------------------------------------------------------------------------------------------
    @property
    def piece_sizes(self) -> list[int] | None:
        """Widths of :meth:`pieces`: one piece per block type (``None`` when the types are not in
        output order: then the core asks for the whole output)."""
        return list(self._type_sizes) if self._in_order else None

    def pieces(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """The output one block type at a time (:class:`~steerable.core.mlp.StreamingKernelMLP`):
        ``(E, piece_sizes[k])`` each, made when asked for in the scalar form."""
        if self.scalar_form and self._in_order:
            return self.radial_form(self, *self._inputs(pos, attr))
        return iter(self.forward(pos, attr).split(self._type_sizes, dim=1))

    def _inputs(self, pos: torch.Tensor, attr: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked inputs -> the softened direction ``v`` ``(E, 3)`` and the scalar MLP's input."""
        if pos.ndim != 2 or pos.shape[1] != 3:
            raise ValueError(f"E3nnKernelMLP: positions must have shape (E, 3), got {tuple(pos.shape)}")
        if (attr is None) != (self.spec.attr_type is None):
            raise ValueError(
                f"E3nnKernelMLP: built for attr_type={self.spec.attr_type!r} but got "
                f"{'no attributes' if attr is None else 'attributes'}"
            )
        # e3nn's spherical harmonics take (x, y, z) vectors with D_from_matrix(R) for R on (x, y, z).
        soft_radius = (pos.pow(2).sum(-1) + self.origin_scale**2).sqrt()  # >= s: smooth, no 0/0
        scalars = self.radial(soft_radius)
        if attr is not None and len(self.inv_channels):
            scalars = torch.cat([scalars, attr.to(pos.dtype)[:, self.inv_channels]], dim=-1)
        return pos / soft_radius[:, None], scalars

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        """``pos`` ``(E, 3)`` in ``(x, y, z)``, ``attr`` ``(E, attr_size)`` or ``None`` -> ``(E, out_size)``."""
        v, scalars = self._inputs(pos, attr)
        n = pos.shape[0]
        if self.scalar_form:
            parts = list(self.radial_form(self, v, scalars))
            flat = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
            return flat if self._in_order else permute_columns(flat, self.unscatter, self.scatter_order)
        e = self.sh(v)  # solid harmonics of the softened direction
        x0 = pos.new_ones(n, 1)
        if attr is not None:
            attr = attr.to(pos.dtype)
            if len(self.eq_channels):
                eq = attr[:, self.eq_channels] @ self.attr_to_e3nn.T
                x0 = torch.cat([x0, eq], dim=-1)
                e = torch.cat([e, eq], dim=-1)
        weight = self.scalar_mlp(scalars)
        if self.use_forms and self.first_form is not None:
            h = self.first_form(x0, e, weight)
        else:
            h = self.first_tp(x0, e, weight)
        if self.out_tp is not None:
            h = self.gates[0](h)
            for layer, (tp, gate) in enumerate(zip(self.tps, self.gates[1:])):
                h = gate(self._product(f"tps_{layer}", tp, h, e))
            h = self._product("out_tp", self.out_tp, h, e)
        if self._pad:
            h = torch.cat([h, h.new_zeros(n, 1)], dim=-1)
        parts = []
        for t in range(self._types):
            gather, basis = getattr(self, f"gather_{t}"), getattr(self, f"basis_{t}")
            # index_select: its backward is an index_add, where advanced indexing's is an
            # accumulating index_put (several times slower)
            picked = h.index_select(1, gather.reshape(-1)).view(n, *gather.shape)
            parts.append((picked @ basis.T).reshape(n, -1))  # (E, n_t, d_t) in core layout
        flat = torch.cat(parts, dim=-1)
        return flat if self._in_order else permute_columns(flat, self.unscatter, self.scatter_order)

    def _product(self, name: str, tp: o3.TensorProduct, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``tp(h, e)``, through its form where it has one and :attr:`use_forms` is set."""
        if self.use_forms and name in self.forms:
            return self.forms[name](tp, h, e)
        return tp(h, e)

    def extra_repr(self) -> str:
        return f"x0={self.irreps_x0}, e={self.irreps_e}, out={self.irreps_out}"
