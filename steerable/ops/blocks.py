"""Blocks of rows within a budget of values: the bounded-memory loops of the ops and layers."""

from __future__ import annotations

import torch

__all__ = ["row_blocks"]


def row_blocks(rows: int, values_per_row: int, device: torch.device, cpu_budget: int, gpu_budget: int) -> list[slice]:
    """Consecutive slices of ``rows`` rows, each of at most ``budget // values_per_row`` rows (at least
    one), with the budget ``cpu_budget`` on the CPU and ``gpu_budget`` elsewhere (where each block
    costs kernel launches).  The callers pass their module's budget constants at call time, so that
    tests can shrink them."""
    budget = cpu_budget if device.type == "cpu" else gpu_budget
    step = max(1, budget // max(1, values_per_row))
    return [slice(start, min(start + step, rows)) for start in range(0, rows, step)]
