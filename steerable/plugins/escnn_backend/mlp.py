"""The escnn backend's kernel MLP (contract: :mod:`steerable.core.mlp`).

``mlp(pos (E, n), attr (E, a) or None) -> (E, D)``, block ``b`` of the output a row-major flattened
``out_rep_b x in_rep_b`` matrix transforming under ``kron(out_rep_b(g), in_rep_b(g))``.

Architecture (all equivariant layers are escnn ``nn.Linear`` on ``gspaces.no_base_space(H)``; plain
torch tensors go in and out, ``GeometricTensor`` is used only inside):

1. **Harmonic embedding** (:class:`~.embedding.HarmonicEmbedding`) of the direction ``u = pos/|pos|``
   up to the band limit ``L`` chosen by :func:`~.embedding.choose_band_limit`: the smallest ``L``
   whose harmonics, restricted to ``H``, contain every irrep of the output blocks.  This makes the
   MLP *complete*: equivariant linear maps and gates never create a frequency absent from their
   input, and the position alone only carries frequency 1.
2. **Invariant modulation**: ``C = hidden_channels`` copies of the embedding, each harmonic degree of
   each copy multiplied by a learnable function of the invariants (a small torch MLP of the radial
   basis ``RadialBasis(radial_features, max_radius)(|pos|)`` and of the trivial attribute channels).
   Non-trivial attribute fields are appended as extra input fields.
3. ``hidden_layers`` x (escnn ``Linear`` -> nonlinearity), then an escnn ``Linear`` to the irreps of
   ``⊕_b out_rep_b ⊗ in_rep_b`` and each block's change of basis (float64; escnn's tensor product
   is the row-major ``kron``, checked in the tests).

Two executions of the same layers.  When every input field is an irrep (continuous groups with
the exact nonlinearity, harmonics that stay irreducible: SO(3), O(3), SO(2)/O(2) on R^2) the layers
run irrep by irrep (:mod:`.schur`): one tensor per irrep, only the Schur blocks of each expanded
matrix multiplied, the output made one group of blocks at a time (:meth:`EscnnKernelMLP.pieces`).
Otherwise (finite groups' regular fields, restricted harmonics, ``"fourier"``) each layer is one
dense product on the concatenated features, the change of basis folded into the last weights.

Nonlinearities (``spec.nonlinearity``):

* ``"exact"`` (default, equivariant to round-off):
  - continuous groups: hidden field = ``C`` scalars (ELU) + ``C`` copies of every non-trivial irrep of
    ``H`` met in the embedding, the output and the attributes, each gated by its own sigmoid scalar;
  - finite groups: ``C`` regular fields with pointwise ELU (permutations commute with it), which also
    reaches irreps the band-limited embedding misses (e.g. the pseudo-scalars of FullOcta/FullIco).
    Completeness for finite groups relies on this nonlinearity: use ``hidden_layers >= 1`` (with
    ``hidden_layers=0`` the span at a point is limited by the few harmonic copies of each irrep).
* ``"fourier"`` (continuous groups only; approximate): ``C`` band-limited regular fields
  (``options["fourier_band"]``, default 2) with escnn's ``FourierELU`` on a sampled grid
  (``options["grid"]``: number of points; default 16 angles on SO(2)/O(2), 200 Thomson points on
  SO(3), and for O(3) a ``QuotientFourierELU`` on the sphere ``O(3)/O(2)`` with 200 Thomson points).
  Measured relative equivariance error (block standard->standard, ``hidden_channels=4``,
  ``hidden_layers=2``, float64 and float32 alike): SO(2) N=16: 9e-4 (N=32: 9e-5); O(2) N=16: 1e-3;
  SO(2) on R^3: 8e-4; O(2) on R^3: 5e-4; SO(3) 200 Thomson points: 1e-2; O(3) sphere quotient
  200 Thomson points: 5e-4.  The SO(3)/O(3) grids take minutes to compute on first use (escnn caches
  them on disk; ~1.5 s afterwards).

Measured (``exact``, blocks trivial->trivial, std->std, higher->std, std->higher, trivial->higher,
``hidden_channels=4``, ``hidden_layers=2``, one CPU thread, escnn disk cache warm; relative error
over 6 random elements):

========== ==== === ========== ========== ===========
group      dim   L  err f64    err f32    build [s]
========== ==== === ========== ========== ===========
SO(2)      2     3  3e-16      3e-7       0.0
O(2)       2     3  7e-16      3e-7       0.1
C8         2     3  1e-7       4e-7       0.0
D4         2     4  6e-16      1e-7       0.1
SO(2)      3     3  5e-16      3e-7       0.1
O(2)       3     3  5e-16      2e-7       0.1
C4         3     2  6e-16      2e-7       0.0
D3         3     3  5e-8       3e-7       0.1
SO(3)      3     3  5e-16      2e-7       0.0
O(3)       3     3  5e-16      3e-7       0.1
Octa       3     3  6e-8       5e-7       0.1
FullOcta   3     4  5e-8       4e-7       4.8
Ico        3     3  7e-8       6e-7       0.1
FullIco    3     4  2e-7       7e-7       24
========== ==== === ========== ========== ===========

The last layer outputs the irreps of each block and applies the tensor product's change of basis
itself, in float64 (escnn's own tensor-product type applies a float32 copy: SO(3)/O(3) measured 1e-8
that way).  The remaining float64 floor of ~1e-8..1e-7 of some groups comes from escnn's float32
bases for regular representations and restrictions; the others reach 1e-16.  The first build of
FullOcta/FullIco in a process is dominated by escnn building their regular representations in
Python; a cold escnn disk cache adds up to minutes for the finite 3D groups (irreps, restrictions).

Serialisation: use ``state_dict()`` (escnn modules hold local functions, so ``torch.save`` of the
whole module fails); ``copy.deepcopy`` works.

Options (``spec.options``): ``max_band`` (cap on ``L``), ``band`` (force a larger ``L``),
``fourier_band``, ``grid``, ``invariant_width`` (width of the invariant MLP, default 16).
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch

from steerable.core.mlp import KernelMLPSpec
from steerable.core.representation import run_lengths
from steerable.core.radial import RadialBasis

from .embedding import HarmonicEmbedding, choose_band_limit
from .groups import EscnnGroup, EscnnRep
from .change_of_basis import ChangeOfBasis
from .linear import expanded, unshare_basis
from .schur import BlocksFromIrreps, ScaledRun, SchurGate, SchurLinear

# Measured relative equivariance error of nonlinearity="fourier" with the default grids (float64,
# hidden_layers=2, hidden_channels=4, block standard->standard; tests/test_escnn_backend.py).
FOURIER_ERRORS = {
    "SO(2)": 9e-4,  # 16 angles (32 angles: 9e-5)
    "O(2)": 1e-3,  # 16 angles
    "SO(3)": 1e-2,  # 200 Thomson points on SO(3)
    "O(3)": 5e-4,  # 200 Thomson points on the sphere O(3)/O(2)
}


class _Gate(torch.nn.Module):
    """:class:`~.schur.SchurGate` on one concatenated tensor: ``[scalars | gates | gated fields]``
    -> ``[ELU(scalars) | gated * σ(gate)]``, consecutive gated fields of one size gated together.

    Each gated field is multiplied by the sigmoid of its own invariant gate, which commutes with any
    representation acting on the field: exact equivariance.
    """

    def __init__(self, n_scalars: int, gated_sizes: list[int]) -> None:
        super().__init__()
        runs = [(fields, size) for size, fields in run_lengths(gated_sizes)]  # runs of equal sizes
        self.split_sizes = [n_scalars + len(gated_sizes)] + [fields * size for fields, size in runs]
        self.gate = SchurGate(n_scalars, runs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.gate(list(x.split(self.split_sizes, dim=1))), dim=1)


class _EscnnLinear(torch.nn.Module):
    """escnn ``nn.Linear`` between two field types, on plain ``(E, in.size) -> (E, out.size)`` tensors.

    With ``output_basis`` (a :class:`~.change_of_basis.ChangeOfBasis` of the output channels) the
    layer computes ``Q (W x + b)``, folding ``Q`` into the small expanded matrix, not the activations.
    """

    def __init__(
        self, in_type: Any, out_type: Any, bias: bool = True, output_basis: ChangeOfBasis | None = None
    ) -> None:
        super().__init__()
        import escnn.nn as enn

        self.in_type, self.out_type = in_type, out_type
        self.linear = enn.Linear(in_type, out_type, bias=bias)
        unshare_basis(self.linear)
        self.output_basis = output_basis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        matrix, bias = expanded(self.linear)
        if self.output_basis is not None:
            matrix = self.output_basis(matrix.T).T
            bias = self.output_basis(bias[None])[0] if bias is not None else None
        return torch.nn.functional.linear(x, matrix, bias)


class _EscnnModule(torch.nn.Module):
    """Any escnn equivariant module, on plain tensors."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import escnn.nn as enn

        return self.module(enn.GeometricTensor(x, self.module.in_type)).tensor


def _is_irrep(rep: Any) -> bool:
    """Whether ``rep`` is literally one of the group's irreps (irreducible, identity change of basis)."""
    return bool(rep.irreducible) and np.allclose(rep.change_of_basis, np.eye(rep.size))


def _native(group: EscnnGroup, rep: Any, what: str) -> Any:
    """The escnn representation of ``H`` behind ``rep`` (a Rep of ``group`` or of an equal group)."""
    if isinstance(rep, EscnnRep) and rep.group == group and rep.native.group == group.native:
        return rep.native
    if getattr(rep, "group", None) == group and rep.name in ("trivial", "standard"):
        # Same group from another backend: trivial and standard use the same basis everywhere.
        return (group.trivial_rep() if rep.name == "trivial" else group.standard_rep()).native
    raise TypeError(f"{what}: {rep!r} is not a representation of the escnn group {group!r}")


class EscnnKernelMLP(torch.nn.Module):
    """Complete, exactly equivariant kernel MLP of an :class:`EscnnGroup` (see the module docstring).

    Shapes: ``pos`` ``(E, n)``, ``attr`` ``(E, spec.attr_size)`` or ``None`` -> ``(E, spec.out_size)``.

    Attributes:
        band_limit: ``L`` of the harmonic embedding.
        unreachable: irreps of the output that the embedding cannot carry (continuous groups: zero
            by symmetry; finite groups: reached through the regular fields).
    """

    def __init__(self, group: EscnnGroup, spec: KernelMLPSpec) -> None:
        super().__init__()
        from escnn import gspaces

        if spec.group != group:
            raise ValueError(f"KernelMLPSpec is for {spec.group!r}, not {group!r}")
        if not spec.blocks:
            raise ValueError("KernelMLPSpec has no blocks")
        if spec.hidden_channels < 1 or spec.hidden_layers < 0:
            raise ValueError(
                f"need hidden_channels >= 1 and hidden_layers >= 0, got {spec.hidden_channels}, {spec.hidden_layers}"
            )
        if spec.nonlinearity not in ("exact", "fourier"):
            raise ValueError(f"escnn backend: unknown nonlinearity {spec.nonlinearity!r} (use 'exact' or 'fourier')")
        if spec.nonlinearity == "fourier" and group.order is not None:
            raise ValueError(f"nonlinearity='fourier' is for continuous groups; {group} uses exact regular fields")
        opts = dict(spec.options)
        known = {"max_band", "band", "fourier_band", "grid", "invariant_width"}
        if set(opts) - known:
            raise ValueError(f"escnn backend: unknown options {sorted(set(opts) - known)}; known: {sorted(known)}")

        self.group, self.spec = group, spec
        H = group.native
        gs = gspaces.no_base_space(H)
        C = spec.hidden_channels

        # -- output: one tensor-product field per block --------------------------------------
        out_reps = [
            _native(group, ro, "output rep").tensor(_native(group, ri, "input rep")) for ro, ri in spec.blocks
        ]
        out_type = gs.type(*out_reps)
        needed = {tuple(i) for rep in out_reps for i in rep.irreps}

        # -- attributes: trivial channels feed the invariant MLP, the rest are extra fields ----
        inv_idx: list[int] = []
        field_idx: list[int] = []
        attr_reps: list[Any] = []
        if spec.attr_type is not None:
            for off, rep in zip(spec.attr_type.offsets, spec.attr_type.reps):
                native = _native(group, rep, "attribute rep")
                if rep.is_trivial:
                    inv_idx.append(off)
                else:
                    field_idx.extend(range(off, off + rep.size))
                    attr_reps.append(native)
        self.register_buffer("inv_idx", torch.tensor(inv_idx, dtype=torch.long), persistent=False)
        self.register_buffer("field_idx", torch.tensor(field_idx, dtype=torch.long), persistent=False)

        # -- embedding ------------------------------------------------------------------------
        L, self.unreachable = choose_band_limit(group, needed, opts.get("max_band"))
        self.band_limit = max(L, int(opts.get("band", 0)))
        self.embedding = HarmonicEmbedding(group, self.band_limit)
        n_deg = len(self.embedding.reps)
        deg_of_channel = torch.cat([torch.full((r.size,), k) for k, r in enumerate(self.embedding.reps)])
        self.register_buffer("deg_of_channel", deg_of_channel, persistent=False)
        self.radial = RadialBasis(spec.radial_features, spec.max_radius)
        n_inv = spec.radial_features + len(inv_idx)
        width = int(opts.get("invariant_width", 16))
        self.invariant_mlp = torch.nn.Sequential(
            torch.nn.Linear(n_inv, width), torch.nn.SiLU(), torch.nn.Linear(width, C * n_deg)
        )
        in_type = gs.type(*(list(self.embedding.reps) * C + attr_reps))

        # -- irrep-by-irrep pipeline (continuous groups, inputs that are irreps: see .schur) ----
        self.schur_layers: torch.nn.ModuleList | None = None
        if spec.nonlinearity == "exact" and group.order is None:
            if all(_is_irrep(rep) for rep in self.embedding.reps) and all(len(rep.irreps) == 1 for rep in attr_reps):
                self._build_schur(gs, spec, needed, out_reps, attr_reps)
                self.in_type, self.out_type = in_type, out_type
                return

        # -- hidden layers --------------------------------------------------------------------
        layers: list[torch.nn.Module] = []
        current = in_type
        for _ in range(spec.hidden_layers):
            if spec.nonlinearity == "fourier":
                module = self._fourier(gs, C, opts)
                layers += [_EscnnLinear(current, module.in_type), _EscnnModule(module)]
                current = module.out_type
            elif group.order is not None:
                hidden = gs.type(*[H.regular_representation] * C)
                layers += [_EscnnLinear(current, hidden), torch.nn.ELU()]
                current = hidden
            else:
                ids = set(needed)
                for rep in list(self.embedding.reps) + attr_reps:
                    ids |= {tuple(i) for i in rep.irreps}
                # C copies of each irrep next to each other: the gate works on one view per irrep
                gated = [H.irrep(*i) for i in sorted(ids, key=str) if not H.irrep(*i).is_trivial() for _ in range(C)]
                triv = H.trivial_representation
                pre = gs.type(*([triv] * (C + len(gated)) + gated))
                layers += [_EscnnLinear(current, pre), _Gate(C, [r.size for r in gated])]
                current = gs.type(*([triv] * C + gated))
        # The last layer maps to the irreps of each block, and each block's change of basis (float64,
        # folded into the weights) turns them into the row-major tensor product: escnn's own tensor
        # product type would apply a float32 copy of it (equivariance ~1e-8 in float64, now ~1e-15).
        irreps_type = gs.type(*[H.irrep(*i) for rep in out_reps for i in rep.irreps])
        to_blocks = ChangeOfBasis([rep.change_of_basis for rep in out_reps])
        layers.append(_EscnnLinear(current, irreps_type, output_basis=to_blocks))
        self.layers = torch.nn.Sequential(*layers)
        self.in_type, self.out_type = in_type, out_type

    def _build_schur(self, gs: Any, spec: KernelMLPSpec, needed: set, out_reps: list, attr_reps: list) -> None:
        """Layers on runs of irreps (:mod:`.schur`), and where each input run comes from."""
        H, C = gs.fibergroup, spec.hidden_channels
        key = lambda rep: tuple(rep.irreps[0])  # noqa: E731
        # input runs: C harmonic copies of each degree, then the attribute fields, one run per irrep
        sources: dict[tuple, list[tuple[str, int, int]]] = {}
        offset = 0
        for k, rep in enumerate(self.embedding.reps):
            sources.setdefault(key(rep), []).append(("harmonic", k, offset))
            offset += rep.size
        attr_offsets = [off for off, rep in zip(spec.attr_type.offsets, spec.attr_type.reps) if not rep.is_trivial] if attr_reps else []
        # an irreducible attribute in another basis than the irrep's (e.g. O(3)'s standard
        # representation, rho = Q psi Q^T) enters in the irrep's coordinates Q^T a; Q is kept in
        # float64 outside the buffers, like the output's changes of basis
        self._attr_bases: list[torch.Tensor | None] = []
        self._attr_sizes: list[int] = []
        self._cast: dict[tuple, torch.Tensor] = {}
        for off, rep in zip(attr_offsets, attr_reps):
            q = None if _is_irrep(rep) else torch.as_tensor(np.asarray(rep.change_of_basis, dtype=np.float64))
            self._attr_bases.append(q)
            self._attr_sizes.append(rep.size)
            sources.setdefault(key(rep), []).append(("attribute", off, len(self._attr_bases) - 1))
        self._input_sources = list(sources.values())
        copies = lambda parts: sum(C if kind == "harmonic" else 1 for kind, _, _ in parts)  # noqa: E731
        current = [(k, copies(parts)) for k, parts in sources.items()]

        layers: list[torch.nn.Module] = []
        trivial = key(H.trivial_representation)
        ids = set(needed) | set(sources)
        gated = [(i, C) for i in sorted(ids, key=str) if i != trivial]
        for _ in range(spec.hidden_layers):
            layers.append(SchurLinear(gs, current, [(trivial, C + C * len(gated))] + gated))
            layers.append(SchurGate(C, [(C, H.irrep(*i).size) for i, _ in gated]))
            current = [(trivial, C)] + gated
        # last layer: the irreps of each run of equal output blocks, then their change of basis
        groups = [(rep, n) for (_, rep), n in run_lengths(zip(spec.blocks, out_reps), key=lambda pair: pair[0])]
        out_runs = [(tuple(i), n) for rep, n in groups for i in rep.irreps]
        layers.append(SchurLinear(gs, current, out_runs))
        layers.append(
            BlocksFromIrreps(
                [(rep.change_of_basis, n, [(tuple(i), H.irrep(*i).size) for i in rep.irreps]) for rep, n in groups]
            )
        )
        self.schur_layers = torch.nn.ModuleList(layers)

    def _input_runs(
        self, weights: torch.Tensor, y: torch.Tensor, attr: torch.Tensor | None
    ) -> list[torch.Tensor | ScaledRun]:
        """The first layer's input as runs of irreps: harmonic degree ``k`` times its ``C`` weights
        (kept factored, see :class:`~.schur.ScaledRun`), attribute fields as they are."""
        runs: list[torch.Tensor | ScaledRun] = []
        for parts in self._input_sources:
            factored = [
                ScaledRun(y[:, None, b : b + self.embedding.reps[a].size], weights[:, :, a, None])
                if kind == "harmonic"
                else self._attribute_field(attr, a, b, y)
                for kind, a, b in parts
            ]
            if len(factored) == 1:
                runs.append(factored[0])
            else:
                runs.append(torch.cat([r.tensor() if isinstance(r, ScaledRun) else r for r in factored], dim=1))
        return runs

    def _attribute_field(self, attr: torch.Tensor, offset: int, k: int, like: torch.Tensor) -> torch.Tensor:
        """Attribute field ``k`` (at ``offset``) in its irrep's coordinates."""
        q = self._attr_bases[k]
        field = attr[:, offset : offset + (q.shape[0] if q is not None else self._attr_sizes[k])].to(like)
        if q is None:
            return field
        cache = (k, like.dtype, like.device)
        if cache not in self._cast:
            self._cast[cache] = q.to(dtype=like.dtype, device=like.device)
        return field @ self._cast[cache]

    @staticmethod
    def _fourier(gs: Any, C: int, opts: dict) -> Any:
        """escnn Fourier nonlinearity on ``C`` band-limited regular fields (approximately equivariant)."""
        import escnn.nn as enn

        H = gs.fibergroup
        F = int(opts.get("fourier_band", 2))
        name = H.name
        if name == "SO(2)":
            return enn.FourierELU(gs, C, irreps=[(k,) for k in range(F + 1)], N=int(opts.get("grid", 16)), type="regular")
        if name == "O(2)":
            irreps = [(0, 0), (1, 0)] + [(1, k) for k in range(1, F + 1)]
            return enn.FourierELU(gs, C, irreps=irreps, N=int(opts.get("grid", 16)), type="regular")
        grid_n = int(opts.get("grid", 200))
        if name == "SO(3)":
            return enn.FourierELU(gs, C, irreps=[(l,) for l in range(F + 1)], type="thomson", N=grid_n)
        if name == "O(3)":
            grid = H.sphere_grid(type="thomson", N=grid_n)
            irreps = [(l % 2, l) for l in range(F + 1)]
            return enn.QuotientFourierELU(gs, ("cone", -1), C, irreps=irreps, grid=grid)
        raise ValueError(f"nonlinearity='fourier' is not available for {name}")

    @property
    def piece_sizes(self) -> list[int] | None:
        """Widths of :meth:`pieces` (one per run of equal output blocks)."""
        return None if self.schur_layers is None else self.schur_layers[-1].piece_sizes

    def pieces(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """The output as consecutive column pieces of widths :attr:`piece_sizes`, made one at a time."""
        if self.schur_layers is None:
            return iter([self(pos, attr)])
        return self._schur_pieces(self._invariant_weights(pos, attr), self.embedding(pos), attr)

    def _schur_pieces(self, weights: torch.Tensor, y: torch.Tensor, attr: torch.Tensor | None) -> Iterator[torch.Tensor]:
        runs = self._input_runs(weights, y, attr)
        *hidden, last, to_blocks = self.schur_layers
        for layer in hidden:
            runs = layer(runs)
        # the last layer's runs are made one group of blocks at a time (lazily)
        return to_blocks.pieces(last.lazy(runs))

    def _invariant_weights(self, pos: torch.Tensor, attr: torch.Tensor | None) -> torch.Tensor:
        """``(E, C, degrees)``: the learned function of the invariants scaling each harmonic copy."""
        r = pos.pow(2).sum(-1).clamp_min(1e-30).sqrt()
        invariants = self.radial(r)
        if len(self.inv_idx):
            invariants = torch.cat([invariants, attr[:, self.inv_idx].to(invariants)], dim=1)
        return self.invariant_mlp(invariants).view(pos.shape[0], self.spec.hidden_channels, -1)

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        E = pos.shape[0]
        weights = self._invariant_weights(pos, attr)  # (E, C, degrees)
        y = self.embedding(pos)  # (E, size)
        if self.schur_layers is not None:
            return torch.cat(list(self._schur_pieces(weights, y, attr)), dim=1)
        x = (weights[:, :, self.deg_of_channel] * y[:, None, :]).reshape(E, -1)
        if len(self.field_idx):
            x = torch.cat([x, attr[:, self.field_idx].to(x)], dim=1)
        return self.layers(x)

    def extra_repr(self) -> str:
        return f"{self.group}, band_limit={self.band_limit}, blocks={len(self.spec.blocks)}, out={self.spec.out_size}"
