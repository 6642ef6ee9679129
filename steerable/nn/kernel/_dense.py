"""The dense layout: one MLP output block per (output field, input field) pair."""

from __future__ import annotations

from typing import Any

import torch

from ...core.representation import FieldType
from ...ops.message import message_sum
from ...ops.permute import permute_columns
from ._base import EnvelopeWidth, ImplicitKernel, Segment


class DenseKernel(ImplicitKernel):
    """Implicit kernel whose MLP emits every ``(out field, in field)`` block itself (``basis_size=None``).

    The MLP output is the kernel matrix block by block (output fields outer); output field ``o``'s
    rows are multiplied by the envelope ``exp(-|x|^2 / w_o^2)`` (``log_width`` ``(len(out_type),)``)
    and the whole kernel by ``gain / sqrt(in_type.size)``.  See :class:`ImplicitKernel` for the
    operations, shapes and arguments; the messages multiply the full ``(E, out, in)`` kernel.
    """

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        attr_type: FieldType | int | None = None,
        *,
        basis_size: None = None,
        max_radius: float | None = None,
        envelope_width: EnvelopeWidth = "auto",
        normalize: bool = True,
        **mlp: Any,
    ) -> None:
        if basis_size is not None:
            raise ValueError(f"DenseKernel: basis_size must be None (the dense layout has no basis), got {basis_size}")
        super().__init__(in_type, out_type, attr_type, basis_size=None, max_radius=max_radius)
        n_out, n_in = len(out_type), len(in_type)
        segments = [Segment([o], [i]) for o in range(n_out) for i in range(n_in)]
        blocks = tuple((ro, ri) for ro in out_type.reps for ri in in_type.reps)
        field_of_channel = torch.cat([torch.full((r.size,), k) for k, r in enumerate(out_type.reps)])
        self.register_buffer("field_of_channel", field_of_channel, persistent=False)
        self._build(blocks, segments, (n_out,), envelope_width, normalize, mlp)

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        self._check(pos, attr)
        n_edges, factor = pos.shape[0], self._factor(pos)
        flat = self._mlp_output(pos, attr)
        if self.log_width is None:
            kernel = permute_columns(flat, self.perm, self.inv_perm, factor)
            return kernel.view(n_edges, self.out_type.size, self.in_type.size)
        kernel = permute_columns(flat, self.perm, self.inv_perm).view(n_edges, self.out_type.size, self.in_type.size)
        envelope = self._envelope(pos)[:, self.field_of_channel]  # (E, out)
        return kernel * (envelope * factor)[:, :, None]

    def message(self, pos: torch.Tensor, attr: torch.Tensor | None, x_edge: torch.Tensor) -> torch.Tensor:
        self._check_features(x_edge, pos.shape[0], "x_edge")
        return torch.bmm(self(pos, attr), x_edge[:, :, None])[:, :, 0]

    def message_and_aggregate(
        self,
        pos: torch.Tensor,
        attr: torch.Tensor | None,
        x: torch.Tensor,
        src: torch.Tensor,
        dst: torch.Tensor,
        n_dst: int,
    ) -> torch.Tensor:
        self._check_features(x, None, "x")
        self._check_edges(pos, src, dst, n_dst)
        return message_sum(self(pos, attr), x[:, None, :], src, dst, n_dst).reshape(n_dst, self.out_type.size)
