"""A typed sequential container: field types are checked between layers when it is built."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from ..core.representation import FieldType
from ._fields import count_weights

__all__ = ["Sequential"]


class _Function(torch.nn.Module):
    """A plain callable as a module (so that it can sit in the container); untyped."""

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> torch.Tensor:
        return self.fn(*args)

    def __repr__(self) -> str:
        return getattr(self.fn, "__name__", None) or repr(self.fn)


def _positional_capacity(layer: Callable[..., Any]) -> tuple[int, int]:
    """``(required, maximum)`` positional arguments of ``layer``'s call (``maximum`` may be large)."""
    target = layer.fn if isinstance(layer, _Function) else layer
    target = target.forward if isinstance(target, torch.nn.Module) else target
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: one argument
        return 1, 1
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return sum(p.default is p.empty for p in positional), 1 << 30
    return sum(p.default is p.empty for p in positional), len(positional)


def _describe(index: int, layer: torch.nn.Module) -> str:
    inner = layer.fn if isinstance(layer, _Function) else layer
    return f"layer {index} ({getattr(inner, '__name__', type(inner).__name__)})"


class Sequential(torch.nn.Module):
    """Layers applied in order, with their field types checked between them at construction.

    Type rule: a layer is *typed* on the input side if it has an ``in_type`` attribute that is a
    :class:`~steerable.core.representation.FieldType`, on the output side if it has an ``out_type``.
    Walking the layers, the current type starts unknown; each typed input must equal the current type
    (else a ``ValueError`` naming both layers and both types); each typed output becomes the current
    type.  Layers without types (plain functions such as ``torch.tanh``, untyped modules) pass the
    current type through unchanged: they are assumed to keep the layout, which is the user's claim.
    ``in_type`` of the whole is the first layer input type met before any output type, ``out_type``
    the last output type (``None`` if none).

    Call rule: ``seq(x, *extra)``.  A layer whose call has at least two required positional
    parameters (e.g. :class:`~steerable.PointConv` ``(x, pos, edge_index, edge_attr=None)``) receives
    ``x`` followed by as many of ``extra`` as it accepts; every other layer (pointwise ones: ``Gate``,
    ``FieldNorm``, functions of one tensor) receives ``x`` alone.  Each layer's output is the next
    layer's ``x``.  Plain callables are wrapped in a module; for pickling they must be module-level.
    """

    def __init__(self, *layers: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential: give at least one layer")
        modules = []
        for i, layer in enumerate(layers):
            if not callable(layer):
                raise TypeError(f"Sequential: layer {i} is a {type(layer).__name__}, not a module or callable")
            modules.append(layer if isinstance(layer, torch.nn.Module) else _Function(layer))
        self.layers = torch.nn.ModuleList(modules)
        self._extra = []
        for layer in modules:
            required, maximum = _positional_capacity(layer)
            self._extra.append(maximum - 1 if required >= 2 else 0)
        self.in_type, self.out_type = self._check_types()

    def _check_types(self) -> tuple[FieldType | None, FieldType | None]:
        first_in: FieldType | None = None
        current: FieldType | None = None
        source = -1
        for i, layer in enumerate(self.layers):
            t_in, t_out = getattr(layer, "in_type", None), getattr(layer, "out_type", None)
            if isinstance(t_in, FieldType):
                if current is None:  # no output type met yet: the first typed input is the whole's
                    first_in = first_in or t_in
                elif t_in != current:
                    raise ValueError(
                        f"Sequential: {_describe(i, layer)} expects in_type {t_in!r} but "
                        f"{_describe(source, self.layers[source])} gives out_type {current!r}"
                    )
            if isinstance(t_out, FieldType):
                current, source = t_out, i
        return first_in, current

    def forward(self, x: torch.Tensor, *extra: Any) -> torch.Tensor:
        for layer, n_extra in zip(self.layers, self._extra):
            x = layer(x, *extra[:n_extra]) if n_extra else layer(x)
        return x

    def reset_parameters(self) -> None:
        """Reset every layer that has a ``reset_parameters``."""
        for layer in self.layers:
            reset = getattr(layer, "reset_parameters", None)
            if callable(reset):
                reset()

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, index: int) -> torch.nn.Module:
        return self.layers[index]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self) -> str:
        head = f"Sequential({self.in_type!r} -> {self.out_type!r} | {count_weights(self)} weights)"
        lines = [f"  ({i}): " + repr(layer).replace("\n", "\n  ") for i, layer in enumerate(self.layers)]
        return "\n".join([head] + lines)
