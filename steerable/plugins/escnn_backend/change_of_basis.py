"""Fixed block-diagonal changes of basis, applied in float64-accurate form.

escnn represents a tensor product ``rho_a ⊗ rho_b`` as ``Q (⊕ irreps) Q^-1`` and keeps ``Q`` in
float32 inside its bases; the kernel MLP instead outputs the irreps and applies ``Q`` (float64)
itself, folded into the last layer's weights.
"""

from __future__ import annotations

import numpy as np
import torch

from steerable.core.constants import Float64Constants


class ChangeOfBasis(torch.nn.Module):
    """Apply fixed square matrices to consecutive channel blocks: ``y_b = Q_b x_b``.

    Args:
        matrices: one ``(d_b, d_b)`` array per block, in channel order; blocks with equal
            matrices share one batched product.

    The matrices are kept in float64 outside the module's buffers (so ``.float()`` does not round
    them) and cast to the input's dtype and device on use
    (:class:`~steerable.core.constants.Float64Constants`).  Shapes: ``(E, sum d_b) -> (E, sum d_b)``.
    """

    def __init__(self, matrices: list[np.ndarray]) -> None:
        super().__init__()
        groups: dict[tuple, tuple[np.ndarray, list[int]]] = {}
        offset = 0
        for q in matrices:
            q = np.asarray(q, dtype=np.float64)
            groups.setdefault((q.shape, q.tobytes()), (q, []))[1].append(offset)
            offset += q.shape[0]
        self.bases = Float64Constants(**{f"q{k}": q for k, (q, _) in enumerate(groups.values())})
        order: list[int] = []
        for k, (q, offsets) in enumerate(groups.values()):
            idx = torch.tensor(offsets)[:, None] + torch.arange(q.shape[0])
            self.register_buffer(f"index{k}", idx.reshape(-1), persistent=False)
            order += idx.reshape(-1).tolist()
        self.register_buffer("inverse", torch.argsort(torch.tensor(order)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        parts = []
        for k in range(len(self.bases)):
            q = self.bases.get(f"q{k}", x)
            blocks = x.index_select(1, getattr(self, f"index{k}")).view(n, -1, q.shape[0])
            parts.append((blocks @ q.T).reshape(n, -1))
        return torch.cat(parts, dim=1).index_select(1, self.inverse)
