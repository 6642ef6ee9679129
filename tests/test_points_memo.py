"""steerable.core.memo.PointsMemo: one value per (dtype, device), recomputed exactly when the points change."""

from __future__ import annotations

import torch

from steerable.core.memo import PointsMemo


def test_points_memo_reuses_kept_values_and_recomputes_changed_points():
    calls: list[torch.Tensor] = []

    def make(p: torch.Tensor) -> torch.Tensor:
        calls.append(p)
        assert not torch.is_grad_enabled()  # made without autograd
        return p.sum(-1)

    memo: PointsMemo[torch.Tensor] = PointsMemo()
    pts = torch.randn(5, 3, requires_grad=True)
    first = memo.get(pts, make)
    assert memo.get(pts, make) is first and len(calls) == 1  # the same tensor, unmodified
    assert memo.get(pts.detach().clone(), make) is first and len(calls) == 1  # equal values
    with torch.no_grad():
        pts.add_(1.0)  # modified in place: its version moves, the values differ
    torch.testing.assert_close(memo.get(pts, make), pts.detach().sum(-1))
    assert len(calls) == 2
    as64 = memo.get(pts.double(), make)  # another dtype: its own entry
    assert as64.dtype == torch.float64 and len(calls) == 3
    assert memo.get(pts, make).dtype == torch.float32 and len(calls) == 3
    memo.clear()
    memo.get(pts, make)
    assert len(calls) == 4
