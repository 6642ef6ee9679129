"""Input checks of the layers, and the rule for the checks that read whole tensors.

Cheap checks (types, shapes, dtypes: metadata only) run on every call.  Checks that read the
values of a tensor (``isfinite(x).all()``, index ranges through ``min()`` / ``max()``) make the
host wait for the device, once per layer per call; they run

* always on CPU tensors (no device to wait for),
* on accelerator tensors only in debug mode (:func:`set_debug` or the environment variable
  ``STEERABLE_DEBUG=1``),
* never while ``torch.compile`` / ``torch.export`` trace a layer (they would break the graph).

Without them a bad index on an accelerator surfaces as the device's own error (as in PyG).
"""

from __future__ import annotations

import math
import numbers
import os
from typing import TYPE_CHECKING, Any

import torch

from ..ops.transforms import compiling_or_transformed

if TYPE_CHECKING:
    from ..core.representation import FieldType

__all__ = [
    "set_debug",
    "is_debug",
    "reads_values",
    "check_count",
    "check_max_radius",
    "check_finite",
    "check_index",
    "parameter_dtype",
    "check_layer_dtype",
    "check_attributes",
]

_debug = os.environ.get("STEERABLE_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def set_debug(enabled: bool = True) -> None:
    """Run the value checks (finite inputs, index ranges) on accelerator tensors too (slow: a host
    synchronisation per layer per call).  The default comes from ``STEERABLE_DEBUG``."""
    global _debug
    _debug = bool(enabled)


def is_debug() -> bool:
    """Whether value checks run on accelerator tensors (:func:`set_debug`)."""
    return _debug


def reads_values(t: torch.Tensor) -> bool:
    """Whether the checks that read ``t``'s values run now (see the module's rule)."""
    if compiling_or_transformed():
        return False
    return t.device.type == "cpu" or _debug


def check_count(value: Any, who: str, what: str, minimum: int = 1, allow_none: bool = False) -> None:
    """``value`` is an int (not a bool) ``>= minimum`` (or ``None`` when ``allow_none``)."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = "an int" + (" or None" if allow_none else "")
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{who}: {what} must be {bound} ({kind}), got {value!r}")


def check_max_radius(value: Any, who: str) -> float | None:
    """The radial range ``max_radius`` of a layer named ``who``: ``None`` (scale-free, see
    :class:`~steerable.nn.kernel.ImplicitKernel`) or a finite number > 0, as a float.

    Raises:
        ValueError: ``value`` is neither ``None`` nor a finite number > 0.
    """
    if value is None:
        return None
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)  # numpy scalars too
    if not number or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{who}: max_radius must be a finite number > 0 or None, got {value!r}")
    return float(value)


def check_finite(t: torch.Tensor, who: str, what: str) -> None:
    """``t`` has no NaN or infinite value (only where :func:`reads_values`)."""
    if reads_values(t) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{who}: {what} contains NaN or infinite values")


def check_index(edge_index: torch.Tensor, n_src: int, n_dst: int, who: str) -> None:
    """Sources ``edge_index[0]`` in ``[0, n_src)``, targets ``edge_index[1]`` in ``[0, n_dst)``
    (only where :func:`reads_values`)."""
    if not edge_index.numel() or not reads_values(edge_index):
        return
    for row, name, n in ((0, "sources", n_src), (1, "targets", n_dst)):
        low, high = int(edge_index[row].min()), int(edge_index[row].max())
        if low < 0 or high >= n:
            raise ValueError(
                f"{who}: edge_index out of range for {n_src} sources / {n_dst} targets: "
                f"{name} must lie in [0, {n}), got values in [{low}, {high}]"
            )


def parameter_dtype(module: torch.nn.Module) -> torch.dtype | None:
    """The dtype of ``module``'s first parameter, ``None`` when it has none."""
    param = next(module.parameters(), None)
    return None if param is None else param.dtype


def _is(name: str) -> str:
    return "are" if name.endswith("s") else "is"


def check_layer_dtype(t: torch.Tensor, dtype: torch.dtype | None, who: str, what: str, layer: str = "layer") -> None:
    """``t`` (called ``what``) has the layer's floating ``dtype`` (no check when ``dtype`` is ``None``).

    Raises:
        TypeError: ``"{who}: {what} is <dtype> but the {layer} is <dtype> (use .to(dtype))"``.
    """
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{who}: {what} {_is(what)} {t.dtype} but the {layer} is {dtype} (use .to(dtype))")


def check_attributes(
    attr: torch.Tensor | None,
    attr_type: FieldType | None,
    who: str,
    what: str,
    *,
    rows: tuple[int, str],
    like: tuple[torch.Tensor, str],
    built_without: str,
    finite: bool = True,
) -> None:
    """The attributes ``attr`` (called ``what``) of a layer named ``who`` built with ``attr_type``.

    The one check of kernel attributes for every layer (the kernel's attributes, a grid
    convolution's per-sample kernel attributes, a point layer's ``edge_attr``):

    * ``attr`` is given exactly when ``attr_type`` is not ``None`` (``built_without`` names the
      construction argument that was left out);
    * ``attr`` is ``(rows[0], attr_type.size)``, one row per ``rows[1]`` (``attr_type.check`` on
      the last axis first, which names a wrong channel count);
    * of the dtype of ``like[0]`` (called ``like[1]``);
    * finite, when ``finite`` (only where :func:`reads_values`).

    Raises:
        ValueError, TypeError: naming ``who``, ``what`` and the problem.
    """
    if attr_type is None:
        if attr is not None:
            raise ValueError(f"{who}: got {what} but the layer was built without {built_without}")
        return
    if attr is None:
        raise ValueError(f"{who}: {what} of type {attr_type!r} {_is(what)} required")
    attr_type.check(attr, dim=-1, what=f"{who} {what}")
    n, per = rows
    if attr.ndim != 2 or attr.shape[0] != n:
        raise ValueError(
            f"{who}: {what} must have shape ({n}, {attr_type.size}) (one row per {per}), got {tuple(attr.shape)}"
        )
    other, other_name = like
    if attr.dtype != other.dtype:
        raise TypeError(f"{who}: {what} {_is(what)} {attr.dtype} but {other_name} {_is(other_name)} {other.dtype}")
    if finite:
        check_finite(attr, who, what)
