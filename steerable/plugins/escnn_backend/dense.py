"""The dense pipeline of the escnn kernel MLP: each layer one product on the concatenated features.

Used for finite groups (``C`` regular fields with a pointwise ELU), for continuous groups whose
restricted harmonics are reducible (SO(2), O(2) on R^3) and for ``nonlinearity="fourier"``.  The
last layer outputs the irreps of every block and folds each block's change of basis (float64,
:class:`~.change_of_basis.ChangeOfBasis`) into its weights.
"""

from __future__ import annotations

from typing import Any

import torch

from steerable.core.mlp import KernelMLPSpec
from steerable.core.representation import run_lengths

from .change_of_basis import ChangeOfBasis
from .frontend import EscnnKernelMLP, InputPlan
from .groups import EscnnGroup
from .linear import PlainLinear
from .schur import SchurGate


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
        # its outputs are concatenated: the next layer keeps the concatenation, not them
        self.gate = SchurGate(n_scalars, runs, outputs_kept=False)

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
        self.in_type, self.out_type = in_type, out_type
        self.linear = PlainLinear(in_type, out_type, bias=bias)
        self.output_basis = output_basis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        matrix, bias = self.linear.expanded()
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


def fourier_nonlinearity(gs: Any, C: int, options: dict) -> Any:
    """escnn Fourier nonlinearity on ``C`` band-limited regular fields (approximately equivariant)."""
    import escnn.nn as enn

    H = gs.fibergroup
    F = int(options.get("fourier_band", 2))
    name = H.name
    if name == "SO(2)":
        irreps = [(k,) for k in range(F + 1)]
        return enn.FourierELU(gs, C, irreps=irreps, N=int(options.get("grid", 16)), type="regular")
    if name == "O(2)":
        irreps = [(0, 0), (1, 0)] + [(1, k) for k in range(1, F + 1)]
        return enn.FourierELU(gs, C, irreps=irreps, N=int(options.get("grid", 16)), type="regular")
    grid_n = int(options.get("grid", 200))
    if name == "SO(3)":
        return enn.FourierELU(gs, C, irreps=[(l,) for l in range(F + 1)], type="thomson", N=grid_n)
    if name == "O(3)":
        grid = H.sphere_grid(type="thomson", N=grid_n)
        irreps = [(l % 2, l) for l in range(F + 1)]
        return enn.QuotientFourierELU(gs, ("cone", -1), C, irreps=irreps, grid=grid)
    raise ValueError(f"nonlinearity='fourier' is not available for {name}")


class DenseKernelMLP(EscnnKernelMLP):
    """The front end's features concatenated, then ``hidden_layers`` x (escnn ``Linear`` ->
    nonlinearity) and a last ``Linear`` to the blocks (see the module docstring).

    Shapes: ``pos`` ``(E, n)``, ``attr`` ``(E, spec.attr_size)`` or ``None`` -> ``(E, spec.out_size)``.
    """

    def __init__(self, group: EscnnGroup, spec: KernelMLPSpec, plan: InputPlan | None = None) -> None:
        super().__init__(group, spec, plan)
        plan, gs, H, C = self.plan, self.gspace, group.native, spec.hidden_channels
        deg_of_channel = torch.cat([torch.full((r.size,), k) for k, r in enumerate(self.embedding.reps)])
        self.register_buffer("deg_of_channel", deg_of_channel, persistent=False)
        self.register_buffer("field_idx", torch.tensor(plan.field_channels, dtype=torch.long), persistent=False)
        attr_reps = [rep for _, rep in plan.attr_fields]
        layers: list[torch.nn.Module] = []
        current = self.in_type
        for _ in range(spec.hidden_layers):
            if spec.nonlinearity == "fourier":
                module = fourier_nonlinearity(gs, C, spec.options)
                layers += [_EscnnLinear(current, module.in_type), _EscnnModule(module)]
                current = module.out_type
            elif group.order is not None:
                hidden = gs.type(*[H.regular_representation] * C)
                layers += [_EscnnLinear(current, hidden), torch.nn.ELU()]
                current = hidden
            else:
                ids = set(plan.needed)
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
        irreps_type = gs.type(*[H.irrep(*i) for rep in plan.out_reps for i in rep.irreps])
        to_blocks = ChangeOfBasis([rep.change_of_basis for rep in plan.out_reps])
        layers.append(_EscnnLinear(current, irreps_type, output_basis=to_blocks))
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        E = pos.shape[0]
        weights = self.invariant_weights(pos, attr)  # (E, C, degrees)
        y = self.embedding(pos)  # (E, size)
        x = (weights[:, :, self.deg_of_channel] * y[:, None, :]).reshape(E, -1)
        if len(self.field_idx):
            x = torch.cat([x, attr[:, self.field_idx].to(x)], dim=1)
        return self.layers(x)
