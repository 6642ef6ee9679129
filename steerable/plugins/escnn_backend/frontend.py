"""The shared front end of the escnn kernel MLPs: what both pipelines feed their first layer.

:func:`plan_inputs` decides, from the spec alone, the output representations, the band limit of
the harmonic embedding and how the attributes split into invariants and extra fields;
:class:`EscnnKernelMLP` builds the modules every pipeline shares on that plan: the harmonic
embedding (:mod:`.embedding`), the radial basis and the invariant MLP that modulates each harmonic
copy (:meth:`EscnnKernelMLP.invariant_weights`).  The two pipelines, :mod:`.dense` and
:mod:`.irrepwise`, subclass it and add the equivariant layers.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np
import torch

from steerable.core.mlp import KernelMLPSpec
from steerable.core.radial import RadialBasis

from .embedding import HarmonicEmbedding, choose_band_limit, harmonic_reps
from .groups import EscnnGroup, EscnnRep

#: options of ``spec.options`` (module docstring of :mod:`steerable.plugins.escnn_backend.mlp`), with the
#: type their values must have
OPTIONS: dict[str, Any] = {
    **{name: numbers.Integral for name in ("max_band", "band", "fourier_band", "grid", "invariant_width")},
    "origin_scale": numbers.Real,
}


def native_rep(group: EscnnGroup, rep: Any, what: str) -> Any:
    """The escnn representation of ``H`` behind ``rep``, a representation of ``group``.

    The spec has already mapped another backend's portable representations onto ``group``'s own
    (:func:`steerable.core.representation.transfer_rep`), so anything else is an error.
    """
    if isinstance(rep, EscnnRep) and rep.native.group == group.native:
        return rep.native
    raise TypeError(f"{what}: {rep!r} is not a representation of the escnn group {group!r}")


def is_irrep(rep: Any) -> bool:
    """Whether ``rep`` is literally one of the group's irreps (irreducible, identity change of basis)."""
    return bool(rep.irreducible) and np.allclose(rep.change_of_basis, np.eye(rep.size))


class InputPlan(NamedTuple):
    """What the front end computes from a spec, before any module is built.

    Fields:

    * ``out_reps``: escnn representation ``out_rep_b ⊗ in_rep_b`` of each block, in block order.
    * ``needed``: escnn ids of the irreps of the output.
    * ``band_limit``: ``L`` of the harmonic embedding (``options["band"]`` may raise it).
    * ``unreachable``: output irreps the embedding cannot carry (see :func:`~.embedding.choose_band_limit`).
    * ``inv_channels``: attribute channels of trivial fields (fed to the invariant MLP).
    * ``field_channels``: attribute channels of the other fields (extra equivariant input fields).
    * ``attr_fields``: ``(offset, escnn representation)`` of each non-trivial attribute field.
    """

    out_reps: list[Any]
    needed: set[tuple]
    band_limit: int
    unreachable: list[tuple]
    inv_channels: list[int]
    field_channels: list[int]
    attr_fields: list[tuple[int, Any]]

    def irrepwise(self, group: EscnnGroup, spec: KernelMLPSpec) -> bool:
        """Whether the irrep-wise pipeline applies: a continuous group with the exact nonlinearity,
        whose harmonics stay irreducible and whose non-trivial attribute fields are irreducible."""
        if spec.nonlinearity != "exact" or group.order is not None:
            return False
        return all(is_irrep(rep) for rep in harmonic_reps(group, self.band_limit)) and all(
            len(rep.irreps) == 1 for _, rep in self.attr_fields
        )


def plan_inputs(group: EscnnGroup, spec: KernelMLPSpec) -> InputPlan:
    """Check ``spec`` against the escnn backend and plan the front end (raises ``ValueError`` / ``TypeError``)."""
    spec.require(backend="escnn", group_type=EscnnGroup, nonlinearities=("exact", "fourier"), options=OPTIONS)
    if spec.group != group:
        raise ValueError(f"KernelMLPSpec is for {spec.group!r}, not {group!r}")
    if spec.nonlinearity == "fourier" and group.order is not None:
        raise ValueError(f"nonlinearity='fourier' is for continuous groups; {group} uses exact regular fields")
    out_reps = [
        native_rep(group, ro, f"block {b} output").tensor(native_rep(group, ri, f"block {b} input"))
        for b, (ro, ri) in enumerate(spec.blocks)
    ]
    needed = {tuple(i) for rep in out_reps for i in rep.irreps}
    inv_channels: list[int] = []
    field_channels: list[int] = []
    attr_fields: list[tuple[int, Any]] = []
    if spec.attr_type is not None:
        for off, rep in zip(spec.attr_type.offsets, spec.attr_type.reps):
            native = native_rep(group, rep, "attribute rep")
            if rep.is_trivial:
                inv_channels.append(off)
            else:
                field_channels.extend(range(off, off + rep.size))
                attr_fields.append((off, native))
    L, unreachable = choose_band_limit(group, needed, spec.options.get("max_band"))
    band_limit = max(L, int(spec.options.get("band", 0)))
    return InputPlan(out_reps, needed, band_limit, unreachable, inv_channels, field_channels, attr_fields)


class EscnnKernelMLP(torch.nn.Module):
    """Front end of the escnn kernel MLPs (contract: :class:`steerable.core.mlp.KernelMLP`).

    Shapes: ``pos`` ``(E, n)``, ``attr`` ``(E, spec.attr_size)`` or ``None`` -> ``(E, spec.out_size)``
    (``forward`` is the pipeline's).  Build one with :func:`.mlp.build_kernel_mlp`, which picks the
    pipeline.

    Attributes:
        band_limit: ``L`` of the harmonic embedding.
        unreachable: irreps of the output that the embedding cannot carry (continuous groups: zero
            by symmetry; finite groups: reached through the regular fields).
        embedding: the :class:`~.embedding.HarmonicEmbedding`.
        in_type, out_type: escnn field types of the first layer's input and of the output blocks.
    """

    def __init__(self, group: EscnnGroup, spec: KernelMLPSpec, plan: InputPlan | None = None) -> None:
        super().__init__()
        from escnn import gspaces

        plan = plan_inputs(group, spec) if plan is None else plan
        self.group, self.spec, self.plan = group, spec, plan
        self.gspace = gs = gspaces.no_base_space(group.native)
        self.out_type = gs.type(*plan.out_reps)
        self.register_buffer("inv_idx", torch.tensor(plan.inv_channels, dtype=torch.long), persistent=False)
        self.band_limit, self.unreachable = plan.band_limit, plan.unreachable
        self.embedding = HarmonicEmbedding(group, self.band_limit, spec.origin_scale("escnn backend"))
        self.radial = RadialBasis(spec.radial_features, spec.max_radius)
        n_inv = spec.radial_features + len(plan.inv_channels)
        width = int(spec.options.get("invariant_width", 16))
        n_deg = len(self.embedding.reps)
        self.invariant_mlp = torch.nn.Sequential(
            torch.nn.Linear(n_inv, width), torch.nn.SiLU(), torch.nn.Linear(width, spec.hidden_channels * n_deg)
        )
        attr_reps = [rep for _, rep in plan.attr_fields]
        self.in_type = gs.type(*(list(self.embedding.reps) * spec.hidden_channels + attr_reps))

    def invariants(self, pos: torch.Tensor, attr: torch.Tensor | None) -> torch.Tensor:
        """``(E, radial_features + trivial attribute channels)``: the invariant MLP's input.

        The radial basis reads the softened radius ``r_s = sqrt(|pos|^2 + s^2)`` of the embedding, a
        smooth function of ``|pos|^2`` (``|pos|`` itself has a cone at the origin)."""
        invariants = self.radial(self.embedding.soft_radius(pos))
        if len(self.inv_idx):
            invariants = torch.cat([invariants, attr[:, self.inv_idx].to(invariants)], dim=1)
        return invariants

    def invariant_weights(self, pos: torch.Tensor, attr: torch.Tensor | None) -> torch.Tensor:
        """``(E, C, degrees)``: the learned function of the invariants scaling each harmonic copy."""
        return self.invariant_mlp(self.invariants(pos, attr)).view(pos.shape[0], self.spec.hidden_channels, -1)

    def __reduce__(self) -> tuple:
        """Pickled as its spec and state dict, rebuilt on load (escnn's groups, types and bases hold
        local functions, which do not pickle): ``pickle``, ``torch.save(model)``, multiprocessing
        and ``ddp_spawn`` work.  The rebuilt module has the same parameters, buffers, dtype, device,
        mode and ``requires_grad`` flags; hooks and attributes added to the module are not kept."""
        frozen = [name for name, p in self.named_parameters() if not p.requires_grad]
        return (_rebuild, (type(self), self.spec, self.state_dict(), self.training, frozen))

    def __deepcopy__(self, memo: dict) -> EscnnKernelMLP:
        """A rebuilt copy (see :meth:`__reduce__`), with its own parameters."""
        frozen = [name for name, p in self.named_parameters() if not p.requires_grad]
        new = memo[id(self)] = _rebuild(type(self), self.spec, self.state_dict(), self.training, frozen)
        return new

    def extra_repr(self) -> str:
        return f"{self.group}, band_limit={self.band_limit}, blocks={len(self.spec.blocks)}, out={self.spec.out_size}"


def _rebuild(
    cls: type, spec: KernelMLPSpec, state: dict[str, torch.Tensor], training: bool, frozen: list[str]
) -> EscnnKernelMLP:
    """An escnn kernel MLP of class ``cls`` for ``spec`` with the given state (see
    :meth:`EscnnKernelMLP.__reduce__`): dtype and device are those of the state's tensors."""
    module = cls(spec.group, spec)
    ref = next((t for t in state.values() if t.is_floating_point()), None)
    if ref is not None:
        module.to(device=ref.device, dtype=ref.dtype)
    module.load_state_dict(state)
    for name in frozen:
        module.get_parameter(name).requires_grad_(False)
    return module.train(training)
