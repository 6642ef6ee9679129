"""Global and per-graph pooling of point features (PyG ``batch`` vector) and global pooling of grids.

* :func:`global_pool` / :class:`GlobalPool`: ``sum`` or ``mean`` of the features, equivariant (the
  result is a feature of the same field type, one per graph).
* :func:`invariant_pool` / :class:`InvariantPool`: first an invariant per field and sample (trivial
  fields: their value; non-trivial fields: their Euclidean norm), then ``sum``, ``mean`` or ``max``
  over the samples; the result is invariant, one scalar per field.

Point features ``(N, C)`` are pooled over all points (``batch=None``, one graph) or per graph with a
``(N,)`` long ``batch`` vector of graph ids (need not be sorted).  Grid features ``(B, C, *spatial)``
are pooled over all grid locations of each element ``b``.  Graph ids with no node give zeros.  With
``num_graphs`` given nothing waits for the device; without it, it is ``batch.max() + 1`` (a host
synchronisation).  Ids outside ``[0, num_graphs)`` are an indexing error (reported by torch).
"""

from __future__ import annotations

from typing import Literal

import torch

from ..core.representation import FieldType
from ._fields import FieldLayer, safe_norm

__all__ = ["GlobalPool", "InvariantPool", "global_pool", "invariant_pool"]

_REDUCTIONS = ("sum", "mean", "max")


def _segment_reduce(
    x: torch.Tensor, batch: torch.Tensor | None, num_graphs: int | None, reduce: str, who: str
) -> torch.Tensor:
    """Reduce ``(N, C)`` rows per graph (``batch``) to ``(G, C)``, or ``(B, C, *s)`` over ``*s`` to ``(B, C)``."""
    if reduce not in _REDUCTIONS:
        raise ValueError(f"{who}: reduce must be one of {_REDUCTIONS}, got {reduce!r}")
    if x.ndim > 2:  # grid: over all locations of each element
        if batch is not None:
            raise ValueError(
                f"{who}: a batch vector applies to point features (N, C); grid features "
                f"{tuple(x.shape)} are pooled over their spatial axes"
            )
        flat = x.flatten(2)
        if flat.shape[2] == 0:
            return x.new_zeros(x.shape[:2])
        if reduce == "max":
            return flat.amax(dim=2)
        return flat.sum(dim=2) if reduce == "sum" else flat.mean(dim=2)
    if batch is None:
        if num_graphs not in (None, 1):
            raise ValueError(f"{who}: without a batch vector there is one graph, got num_graphs={num_graphs}")
        batch_size = 1
        index = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    else:
        if not isinstance(batch, torch.Tensor) or batch.dtype != torch.long or batch.shape != (x.shape[0],):
            raise ValueError(
                f"{who}: batch must be a ({x.shape[0]},) long tensor of graph ids, got "
                f"{tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__}"
                f"{' ' + str(batch.dtype) if isinstance(batch, torch.Tensor) else ''}"
            )
        if num_graphs is None:
            num_graphs = int(batch.max()) + 1 if batch.numel() else 0
        batch_size, index = num_graphs, batch
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
        raise ValueError(f"{who}: num_graphs must be a non-negative int, got {batch_size!r}")
    out = x.new_zeros(batch_size, x.shape[1])
    if reduce == "max":
        return out.scatter_reduce(0, index[:, None].expand_as(x), x, "amax", include_self=False)
    out = out.index_add(0, index, x)
    if reduce == "mean":
        counts = x.new_zeros(batch_size).index_add(0, index, x.new_ones(x.shape[0]))
        out = out / counts.clamp_min(1)[:, None]
    return out


def global_pool(
    x: torch.Tensor,
    batch: torch.Tensor | None = None,
    num_graphs: int | None = None,
    reduce: Literal["sum", "mean"] = "sum",
) -> torch.Tensor:
    """Equivariant sum or mean of features per graph (see the module docstring for ``batch``).

    Shapes: ``(N, C) -> (num_graphs, C)`` (``(1, C)`` without ``batch``); ``(B, C, *s) -> (B, C)``.
    ``max`` is refused: the channel-wise maximum of a non-trivial field is not equivariant.
    """
    if reduce not in ("sum", "mean"):
        raise ValueError(
            f"global_pool: reduce must be 'sum' or 'mean' (a channel-wise max is not "
            f"equivariant; use invariant_pool for max), got {reduce!r}"
        )
    return _segment_reduce(x, batch, num_graphs, reduce, "global_pool")


class GlobalPool(FieldLayer):
    """Module form of :func:`global_pool` for features of ``field_type`` (``in_type == out_type``).

    ``forward(x, batch=None, num_graphs=None)``.
    """

    def __init__(self, field_type: FieldType, reduce: Literal["sum", "mean"] = "sum") -> None:
        super().__init__(field_type)
        if reduce not in ("sum", "mean"):
            raise ValueError(f"GlobalPool: reduce must be 'sum' or 'mean', got {reduce!r}")
        self.reduce = reduce

    def reset_parameters(self) -> None:
        """Nothing to reset (no parameters)."""

    def forward(self, x: torch.Tensor, batch: torch.Tensor | None = None, num_graphs: int | None = None):
        self.check(x)
        return _segment_reduce(x, batch, num_graphs, self.reduce, "GlobalPool")

    def describe(self) -> str:
        return f"reduce={self.reduce}"


class InvariantPool(FieldLayer):
    """Invariant pooling: one scalar per field and graph, ``out_type = F x trivial``.

    Per sample, trivial fields keep their (signed) value and non-trivial fields are replaced by
    their Euclidean norm (gradient finite at zero norm); these invariants are then reduced per graph
    with ``reduce`` (``sum``, ``mean`` or ``max``).  ``forward(x, batch=None, num_graphs=None)``;
    shapes ``(N, C) -> (num_graphs, F)``, ``(B, C, *s) -> (B, F)``.  :meth:`invariants` gives the
    per-sample invariants ``(N, F)`` / ``(B, F, *s)``.
    """

    needs_invariant_norms = True  # [issue 16] refused on non-Euclidean groups

    def __init__(self, field_type: FieldType, reduce: Literal["sum", "mean", "max"] = "sum") -> None:
        super().__init__(field_type)
        if reduce not in _REDUCTIONS:
            raise ValueError(f"InvariantPool: reduce must be one of {_REDUCTIONS}, got {reduce!r}")
        self.reduce = reduce
        G = field_type.group
        self.out_type = FieldType(G, [G.trivial_rep()] * len(field_type))
        channels = torch.tensor(field_type.trivial_channels, dtype=torch.long)
        self.register_buffer("trivial_channels", channels, persistent=False)

    def reset_parameters(self) -> None:
        """Nothing to reset (no parameters)."""

    def invariants(self, x: torch.Tensor) -> torch.Tensor:
        """Per sample: trivial fields' values, non-trivial fields' norms; ``(B, C, *s) -> (B, F, *s)``."""
        self.check(x)
        norms = safe_norm(self.sq_norms(x))
        return norms.index_copy(1, self.trivial_fields, x.index_select(1, self.trivial_channels))

    def forward(self, x: torch.Tensor, batch: torch.Tensor | None = None, num_graphs: int | None = None):
        return _segment_reduce(self.invariants(x), batch, num_graphs, self.reduce, "InvariantPool")

    def describe(self) -> str:
        return f"reduce={self.reduce}"


def invariant_pool(
    x: torch.Tensor,
    field_type: FieldType,
    batch: torch.Tensor | None = None,
    num_graphs: int | None = None,
    reduce: Literal["sum", "mean", "max"] = "sum",
) -> torch.Tensor:
    """Functional :class:`InvariantPool`: ``(N, C) -> (num_graphs, F)``, ``(B, C, *s) -> (B, F)``."""
    return InvariantPool(field_type, reduce).to(x.device)(x, batch, num_graphs)
