"""The irrep-wise pipeline of the escnn kernel MLP: features as runs of irreps, Schur blocks only.

Used for continuous groups with the exact nonlinearity whose harmonics and attribute fields are
irreducible (SO(3), O(3), SO(2)/O(2) on R^2): every input field is then an irrep, so each layer
multiplies only the diagonal blocks of escnn's expanded matrix (:mod:`.schur`), one tensor per
irrep, and the output is made one group of equal blocks at a time (:meth:`IrrepwiseKernelMLP.pieces`,
the core's streaming protocol :class:`steerable.core.mlp.StreamingKernelMLP`).  Where every feature is
an invariant times a harmonic (no attribute fields, irreps of real type) the same layers run in scalar
form (:mod:`.scalar_form`, :attr:`IrrepwiseKernelMLP.use_scalar_form`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from steerable.core.constants import Float64Constants
from steerable.core.mlp import KernelMLPSpec
from steerable.core.representation import run_lengths

from .frontend import EscnnKernelMLP, InputPlan, is_irrep
from .groups import EscnnGroup
from .scalar_form import scalar_form
from .schur import BlocksFromIrreps, ScaledRun, SchurGate, SchurLinear


class IrrepwiseKernelMLP(EscnnKernelMLP):
    """The front end's features as runs of irreps through :class:`~.schur.SchurLinear` and
    :class:`~.schur.SchurGate` layers, then :class:`~.schur.BlocksFromIrreps`.

    Shapes: ``pos`` ``(E, n)``, ``attr`` ``(E, spec.attr_size)`` or ``None`` -> ``(E, spec.out_size)``;
    :meth:`pieces` yields the same columns in pieces of widths :attr:`piece_sizes`.
    """

    def __init__(self, group: EscnnGroup, spec: KernelMLPSpec, plan: InputPlan | None = None) -> None:
        super().__init__(group, spec, plan)
        plan, gs, H, C = self.plan, self.gspace, group.native, spec.hidden_channels
        if not plan.irrepwise(group, spec):
            raise ValueError(f"{group}: the irrep-wise kernel MLP needs irreducible harmonics and attributes")
        key = lambda rep: tuple(rep.irreps[0])  # noqa: E731
        # input runs: C harmonic copies of each degree, then the attribute fields, one run per irrep
        sources: dict[tuple, list[tuple[str, int, int]]] = {}
        offset = 0
        for k, rep in enumerate(self.embedding.reps):
            sources.setdefault(key(rep), []).append(("harmonic", k, offset))
            offset += rep.size
        # an irreducible attribute in another basis than the irrep's (e.g. O(3)'s standard
        # representation, rho = Q psi Q^T) enters in the irrep's coordinates Q^T a; Q is kept in
        # float64 outside the buffers, like the output's changes of basis
        self.attr_bases = Float64Constants()
        self._attr_sizes: list[int] = []
        for k, (off, rep) in enumerate(plan.attr_fields):
            q = None if is_irrep(rep) else np.asarray(rep.change_of_basis, dtype=np.float64)
            self.attr_bases.add(f"q{k}", q)
            self._attr_sizes.append(rep.size)
            sources.setdefault(key(rep), []).append(("attribute", off, k))
        self._input_sources = list(sources.values())
        copies = lambda parts: sum(C if kind == "harmonic" else 1 for kind, _, _ in parts)  # noqa: E731
        current = [(k, copies(parts)) for k, parts in sources.items()]

        layers: list[torch.nn.Module] = []
        trivial = key(H.trivial_representation)
        ids = set(plan.needed) | set(sources)
        gated = [(i, C) for i in sorted(ids, key=str) if i != trivial]
        for _ in range(spec.hidden_layers):
            layers.append(SchurLinear(gs, current, [(trivial, C + C * len(gated))] + gated))
            layers.append(SchurGate(C, [(C, H.irrep(*i).size) for i, _ in gated]))
            current = [(trivial, C)] + gated
        # last layer: the irreps of each run of equal output blocks, then their change of basis
        runs = run_lengths(zip(spec.blocks, plan.out_reps), key=lambda pair: pair[0])
        groups = [(rep, n) for (_, rep), n in runs]
        out_runs = [(tuple(i), n) for rep, n in groups for i in rep.irreps]
        layers.append(SchurLinear(gs, current, out_runs))
        layers.append(
            BlocksFromIrreps(
                [(rep.change_of_basis, n, [(tuple(i), H.irrep(*i).size) for i in rep.irreps]) for rep, n in groups]
            )
        )
        self.schur_layers = torch.nn.ModuleList(layers)
        # the same layers on invariants alone, where every feature is an invariant times a harmonic
        self.scalar_form = scalar_form(self)

    def input_runs(
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
        size = self._attr_sizes[k]
        field = attr[:, offset : offset + size].to(like)
        q = self.attr_bases.get(f"q{k}", like)
        return field if q is None else field @ q

    @property
    def piece_sizes(self) -> list[int]:
        """Widths of :meth:`pieces` (one per run of equal output blocks)."""
        return self.schur_layers[-1].piece_sizes

    #: whether :attr:`scalar_form` (where it applies) computes the output; ``False``: layer by layer
    #: on the runs of irreps (the reference path of the tests)
    use_scalar_form: bool = True

    def pieces(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """The output as consecutive column pieces of widths :attr:`piece_sizes`, made one at a time."""
        if self.scalar_form is not None and self.use_scalar_form:
            return self.scalar_form.pieces(self, pos, attr)
        runs = self.input_runs(self.invariant_weights(pos, attr), self.embedding(pos), attr)
        *hidden, last, to_blocks = self.schur_layers
        for layer in hidden:
            runs = layer(runs)
        # the last layer's runs are made one group of blocks at a time (lazily)
        return to_blocks.pieces(last.lazy(runs))

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat(list(self.pieces(pos, attr)), dim=1)

    def fixed_points_mlp(self) -> torch.nn.Module | None:
        """An evaluator of this MLP's structure at points that come again (a grid's taps):
        ``evaluator(mlp, points) == mlp(points).T`` ``(D, E)`` in a few dense products, or ``None``
        where it does not apply (:mod:`.fixed_points`)."""
        from .fixed_points import fixed_points_mlp

        return fixed_points_mlp(self)
