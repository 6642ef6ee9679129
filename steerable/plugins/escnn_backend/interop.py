"""Conversions between escnn's ``nn.FieldType`` and ours, so that escnn layers and ours compose.

* :func:`to_escnn` ``(field_type, gspace=None)``: our field type -> escnn's, on ``gspace`` (default
  ``gspaces.no_base_space(H)``: features without a base space, e.g. for escnn's ``nn.Linear`` on
  point features; pass e.g. ``gspaces.rot2dOnR2(4)`` for escnn's ``R2Conv``).
* :func:`from_escnn` ``(escnn_field_type, dim=None)``: escnn's field type -> ours, on the escnn
  backend's group of the same escnn group; ``G.field_type(escnn_field_type)`` does the same for a
  given group ``G``.

The fields are the same escnn representations: features keep their channel layout and basis, so a
tensor needs no conversion (escnn's ``GeometricTensor(x, to_escnn(f))`` wraps our ``x`` of type
``f``, its ``.tensor`` is ours again).  Only groups whose escnn group *is* ours convert, and a gspace
with a base space must act on coordinates as our group does (its ``basespace_action`` equals our
standard representation on every element, or on seeded samples of a continuous group): e.g. our
``D4``/``O(2)`` reflect about the x axis, which is escnn's ``flipRot2dOnR2(N, axis=0.0)``, not its
default ``axis=pi/2``.  Anything else raises an error that says what to pass instead.

Grid features: escnn's ``R2Conv``/``R3Conv`` take ``(B, C, X, Y[, Z])`` tensors whose spatial axis
``k`` holds coordinate ``k``, as :class:`~steerable.nn.grid_conv.GridConv` does (checked in the
tests by composing both layers), so images need no transposition either.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from steerable.core.group import same_group
from steerable.core.representation import FieldType, Rep, transfer_rep

from .groups import BACKEND, MATRIX_TOL, EscnnGroup, EscnnRep

__all__ = ["check_gspace", "field_type_of", "from_escnn", "to_escnn"]

#: our names of escnn's groups whose names differ
_OUR_NAMES = {
    "Octahedral": "Octa",
    "FullOctahedral": "FullOcta",
    "Icosahedral": "Ico",
    "FullIcosahedral": "FullIco",
}
#: elements of a continuous group on which a gspace's action on coordinates is compared with ours
_SAMPLES = 16


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{text[:57] + '...' if len(text) > 60 else text} ({type(value).__name__})"


def _escnn_field_type_class() -> type:
    from escnn.nn import FieldType as EscnnFieldType

    return EscnnFieldType


def check_gspace(group: EscnnGroup, gspace: Any, who: str) -> None:
    """Raise ``ValueError`` unless escnn's ``gspace`` can carry ``group``'s fields: its fibre group is
    ``group.native`` and, when it has a base space, it acts on ``R^group.dim`` by our standard
    representation (all elements of a finite group; ``16`` seeded samples of a continuous one)."""
    from escnn.gspaces import GSpace

    if not isinstance(gspace, GSpace):
        raise TypeError(f"{who}: expected an escnn gspace, got {_describe(gspace)}")
    if gspace.fibergroup != group.native:
        raise ValueError(
            f"{who}: the gspace {gspace} has the escnn group {gspace.fibergroup}, not {group.native} of {group!r}"
        )
    if gspace.dimensionality == 0:
        return
    if gspace.dimensionality != group.dim:
        raise ValueError(f"{who}: the gspace {gspace} acts on R^{gspace.dimensionality}, {group!r} on R^{group.dim}")
    if group.order is not None:
        elements = group.elements()
    else:
        elements = group.sample(_SAMPLES, generator=torch.Generator().manual_seed(0))
    theirs = np.stack([np.asarray(gspace.basespace_action(e), dtype=np.float64) for e in elements.native])
    worst = float(np.abs(theirs - elements.matrices.numpy()).max())
    if worst > MATRIX_TOL:
        hint = ""
        if group.name.startswith(("D", "O(2)")) and group.dim == 2:
            n = group.order // 2 if group.order is not None else -1
            hint = f"; {group} reflects about the x axis: use gspaces.flipRot2dOnR2({n}, axis=0.0)"
        raise ValueError(
            f"{who}: the gspace {gspace} acts on coordinates differently from {group!r} "
            f"(largest difference of the matrices {worst:.3g}){hint}"
        )


def _escnn_group(field_type: FieldType, who: str) -> tuple[EscnnGroup, list[EscnnRep]]:
    """The escnn backend's group of ``field_type`` and its representations there (portable
    representations of another backend's copy of the group are transferred)."""
    if not isinstance(field_type, FieldType):
        raise TypeError(f"{who}: expected a steerable FieldType, got {_describe(field_type)}")
    group = field_type.group
    if not isinstance(group, EscnnGroup):
        from steerable.registry import group as lookup

        try:
            target = lookup(group.name, dim=group.dim, backend=BACKEND)
        except (KeyError, ValueError) as exc:
            reason = str(exc).split(";")[0]
            raise ValueError(f"{who}: {group!r} has no escnn counterpart ({reason})") from None
        if not isinstance(target, EscnnGroup) or not same_group(group, target):
            raise ValueError(f"{who}: {group!r} is not the escnn backend's {target!r}")
        group = target
    reps = [transfer_rep(rep, group, who) for rep in field_type.reps]
    return group, reps  # type: ignore[return-value]


def to_escnn(field_type: FieldType, gspace: Any = None) -> Any:
    """escnn's ``nn.FieldType`` with the fields of ``field_type``, in the same order and basis.

    Args:
        field_type: a field type of an escnn-backend group, or of another backend's copy of one
            whose representations are portable (trivial, standard, det).
        gspace: escnn gspace of the result; default ``gspaces.no_base_space(H)``.  One with a base
            space must act on coordinates as the group does (:func:`check_gspace`).

    Raises:
        TypeError: ``field_type`` is not a ``FieldType`` or ``gspace`` not a gspace.
        ValueError: the group has no escnn counterpart, a representation cannot cross to it, or the
            gspace's group or action on coordinates differs.
    """
    from escnn import gspaces

    group, reps = _escnn_group(field_type, "to_escnn")
    if gspace is None:
        gspace = gspaces.no_base_space(group.native)
    else:
        check_gspace(group, gspace, "to_escnn")
    return gspace.type(*[rep.native for rep in reps])


def _our_rep(group: EscnnGroup, native: Any) -> EscnnRep:
    """Our representation for escnn's ``native``: the group's named one when it is one (trivial,
    standard, det, regular, an irrep), so that names and identities are those of ``G.irrep(...)``."""
    for rep in (group.trivial_rep(), group.standard_rep(), group.det_rep()):
        if rep.native.name == native.name:
            return rep
    if group.order is not None and native.name == group.native.regular_representation.name:
        return group.regular_rep()
    from escnn.group import IrreducibleRepresentation

    if isinstance(native, IrreducibleRepresentation):
        return group.irrep(*native.id)
    return group.wrap(native)


def field_type_of(group: EscnnGroup, spec: Any, who: str = "field_type") -> FieldType:
    """Our field type of ``group`` for an escnn ``nn.FieldType`` (checked with :func:`check_gspace`)
    or a sequence of escnn ``Representation``\\ s of ``group.native`` and our representations of
    ``group`` (see :meth:`EscnnGroup.field_type`)."""
    from escnn.group import Representation

    if isinstance(spec, _escnn_field_type_class()):
        check_gspace(group, spec.gspace, who)
        items: Sequence[Any] = list(spec.representations)
    elif isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        items = list(spec)
    else:
        raise TypeError(
            f"{group.name}.{who}: expected an escnn nn.FieldType or a list of representations, got {_describe(spec)}"
        )
    reps: list[Rep] = []
    for k, item in enumerate(items):
        if isinstance(item, Representation):
            if item.group != group.native:
                raise ValueError(
                    f"{group.name}.{who}: field {k} is a representation of escnn's {item.group}, not of "
                    f"{group.native} ({group!r})"
                )
            reps.append(_our_rep(group, item))
        elif isinstance(item, Rep):
            reps.append(transfer_rep(item, group, f"{group.name}.{who}: field {k}"))
        else:
            raise TypeError(
                f"{group.name}.{who}: field {k} is {_describe(item)}, not an escnn Representation or a steerable Rep"
            )
    return FieldType(group, reps)


def from_escnn(escnn_field_type: Any, dim: int | None = None) -> FieldType:
    """Our field type with the fields of escnn's ``escnn_field_type``, on the escnn backend's group.

    Args:
        escnn_field_type: an escnn ``nn.FieldType``.
        dim: the dimension ``n`` the group acts on; default the gspace's base space, or the only
            dimension the group is offered on (e.g. 3 for SO(3)).  Needed for a planar group
            (``C_N``, ``D_N``, ``SO(2)``, ``O(2)``, offered on ``R^2`` and ``R^3``) on a gspace
            without a base space.

    Raises:
        TypeError: not an escnn ``FieldType``.
        ValueError: its group is not one of the escnn backend's, ``dim`` is needed or wrong, or
            the gspace acts on coordinates differently from our group.
    """
    if not isinstance(escnn_field_type, _escnn_field_type_class()):
        raise TypeError(f"from_escnn: expected an escnn nn.FieldType, got {_describe(escnn_field_type)}")
    from steerable.registry import group as lookup

    H = escnn_field_type.fibergroup
    name = _OUR_NAMES.get(H.name, H.name)
    space = escnn_field_type.gspace.dimensionality
    if dim is None:
        dim = space or (None if name in ("SO(2)", "O(2)") or name[:1] in ("C", "D") else 3)
        if dim is None:
            raise ValueError(
                f"from_escnn: {name} acts on R^2 and on R^3 and the field type's gspace has no base space: "
                "pass dim=2 or dim=3"
            )
    elif space and dim != space:
        raise ValueError(f"from_escnn: dim={dim}, but the field type's gspace acts on R^{space}")
    try:
        group = lookup(name, dim=dim, backend=BACKEND)
    except (KeyError, ValueError) as exc:
        reason = str(exc).split(";")[0]
        raise ValueError(
            f"from_escnn: escnn's {H} on R^{dim} is not one of the escnn backend's groups ({reason})"
        ) from None
    if not isinstance(group, EscnnGroup) or group.native != H:
        raise ValueError(f"from_escnn: escnn's {H} is not the escnn backend's {group!r} (another subgroup)")
    return field_type_of(group, escnn_field_type, "from_escnn")
