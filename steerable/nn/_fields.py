"""Per-field bookkeeping shared by the field-wise layers (norm, dropout, pooling, nonlinearity).

Features carry their channels on axis 1: point features ``(N, C)``, grid features ``(B, C, X, Y[, Z])``.
A field is one representation of the :class:`~steerable.core.representation.FieldType`, i.e. a
contiguous block of ``rep.size`` channels.  On a Euclidean group (``group.is_euclidean()``) the
representations are orthogonal, so the Euclidean norm of every field is invariant: everything built
from field norms is equivariant.  On a non-compact group (``O(p,q)``, the Lorentz group) it is not (a
boost changes ``|v|``): the layers that use field norms (``needs_invariant_norms``) refuse such fields.
"""

from __future__ import annotations

import torch

from ..core.representation import FieldType

__all__ = ["FieldLayer", "along_axis1", "count_weights", "require_invariant_norms", "safe_norm"]


def along_axis1(vector: torch.Tensor, ndim: int) -> torch.Tensor:
    """A ``(C,)`` vector viewed as ``(1, C, 1, ...)`` to broadcast against ``ndim``-axis features."""
    return vector.view((1, -1) + (1,) * (ndim - 2))


def safe_norm(sq: torch.Tensor) -> torch.Tensor:
    """``sqrt(sq)`` with a finite (zero) gradient where ``sq == 0`` instead of NaN."""
    positive = sq > 0
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def count_weights(module: torch.nn.Module) -> int:
    """Number of scalar trainable parameters of ``module`` and its children."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def require_invariant_norms(field_type: FieldType, who: str) -> None:
    """Raise ``ValueError`` when a field's Euclidean norm is not invariant: a non-trivial field of size > 1
    of a group that is not Euclidean (its representations are not orthogonal; e.g. a Lorentz vector,
    whose norm a boost changes).  One-dimensional fields (``det``: ``+-1``) keep their norm."""
    group = field_type.group
    if group.is_euclidean():
        return
    bad = [i for i, rep in enumerate(field_type.reps) if not rep.is_trivial and rep.size > 1]
    if bad:
        rep = field_type.reps[bad[0]]
        raise ValueError(
            f"{who}: field {bad[0]} ({rep.name}) of {group!r} has no invariant Euclidean norm: the group preserves an "
            "indefinite form (group.quadratic_form() is not the identity) and its representations are not "
            "orthogonal, so a layer built on field norms would not be equivariant; use steerable.Gate (invariant "
            "gates from scalar fields) instead"
        )


class FieldLayer(torch.nn.Module):
    """Base of the field-wise layers: the field structure of ``field_type`` as non-persistent buffers.

    Buffers (moved with the module, not saved): ``field_of`` ``(C,)`` the field of each channel,
    ``trivial`` ``(F,)`` bool per field, ``trivial_fields`` / ``nontrivial_fields`` their indices.
    ``in_type`` is ``field_type``; ``out_type`` is ``field_type`` unless a subclass says otherwise.
    """

    #: the layer uses Euclidean norms of the non-trivial fields (refused on a non-Euclidean group)
    needs_invariant_norms = False

    def __init__(self, field_type: FieldType) -> None:
        super().__init__()
        if not isinstance(field_type, FieldType):
            raise TypeError(f"{type(self).__name__}: expected a FieldType, got {type(field_type).__name__}")
        if self.needs_invariant_norms:
            require_invariant_norms(field_type, type(self).__name__)
        self.in_type = self.out_type = self.field_type = field_type
        self.num_fields = len(field_type)
        sizes = torch.tensor([rep.size for rep in field_type.reps])
        trivial = torch.tensor([rep.is_trivial for rep in field_type.reps], dtype=torch.bool)
        field_of = torch.repeat_interleave(torch.arange(self.num_fields), sizes)
        self.register_buffer("field_of", field_of, persistent=False)
        self.register_buffer("trivial", trivial, persistent=False)
        self.register_buffer("trivial_fields", trivial.nonzero().flatten(), persistent=False)
        self.register_buffer("nontrivial_fields", (~trivial).nonzero().flatten(), persistent=False)

    # -- helpers ---------------------------------------------------------------------------
    def check(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` is floating ``(N, C)`` or ``(B, C, *spatial)``, ``C = size``."""
        who = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{who}: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[1] != self.field_type.size:
            raise ValueError(
                f"{who}: expected {self.field_type.size} channels on axis 1 for {self.field_type!r} "
                f"(point features (N, C) or grid features (B, C, X, ...)), got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"{who}: expected floating-point features, got {x.dtype}")

    def sq_norms(self, x: torch.Tensor) -> torch.Tensor:
        """Squared Euclidean norm of every field: ``(B, C, *s) -> (B, F, *s)``."""
        moved = x.movedim(1, -1)
        out = moved.new_zeros(moved.shape[:-1] + (self.num_fields,))
        return out.index_add(-1, self.field_of, moved * moved).movedim(-1, 1)

    def to_channels(self, per_field: torch.Tensor) -> torch.Tensor:
        """Values per field on axis 1, ``(B, F, *s)`` (or ``(F,)``), repeated over each field's channels."""
        return per_field.index_select(1 if per_field.ndim > 1 else 0, self.field_of)

    # -- printing --------------------------------------------------------------------------
    def describe(self) -> str:
        """Options shown by ``repr`` after the types (subclasses add theirs)."""
        return ""

    def __repr__(self) -> str:
        types = repr(self.in_type) if self.out_type == self.in_type else f"{self.in_type!r} -> {self.out_type!r}"
        extra = self.describe()
        return f"{type(self).__name__}({types}{' | ' + extra if extra else ''} | {count_weights(self)} weights)"
