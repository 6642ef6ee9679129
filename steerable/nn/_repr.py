"""Compact printing of the layers: one line per layer, e.g.
``PointConv(C4[escnn]: 1xtrivial+1xstandard -> 2xtrivial | basis_size=8, mlp=EscnnKernelMLP(8x1), 412 weights)``.

Backend internals (basis-expansion nodes, parameter lists) are never printed; the weight count is
``sum(p.numel() for p in module.parameters())``.
"""

from __future__ import annotations

import torch

from ..core.representation import FieldType


def type_str(field_type: FieldType | None) -> str:
    """``"2xtrivial+1xstandard"``: the runs of equal representations of ``field_type``."""
    if field_type is None:
        return "None"
    return "+".join(f"{n}x{rep.name}" for rep, n in field_type.runs())


def weight_count(module: torch.nn.Module) -> int:
    """Number of learnable values: ``sum(p.numel() for p in module.parameters())``."""
    return sum(p.numel() for p in module.parameters())


def layer_repr(module: torch.nn.Module, in_type: FieldType, out_type: FieldType, details: list[str]) -> str:
    """``Name(G[backend]: in -> out | detail, ..., N weights)`` on one line."""
    group = in_type.group
    parts = [*details, f"{weight_count(module)} weights"]
    return (
        f"{type(module).__name__}({group.name}[{group.backend}]: {type_str(in_type)} -> {type_str(out_type)}"
        f" | {', '.join(parts)})"
    )


def child_line(module: torch.nn.Module) -> str:
    """A submodule on one line: its own repr when that is one line, else its class and weight count."""
    text = repr(module)
    return text if "\n" not in text else f"{type(module).__name__}({weight_count(module)} weights)"


def block_repr(module: torch.nn.Module, in_type: FieldType, out_type: FieldType, details: list[str]) -> str:
    """The block's line, then one line per child: ``  (name): Child(...)``."""
    lines = [layer_repr(module, in_type, out_type, details)[:-1]]
    lines += [f"  ({name}): {child_line(child)}" for name, child in module.named_children()]
    return "\n".join(lines) + "\n)"
