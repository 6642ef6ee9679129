"""steerable.tasks.optim.adam: the fused step where it exists, the same update as the loop."""

from __future__ import annotations

import pytest
import torch

from steerable.tasks.optim import adam


@pytest.mark.parametrize("decoupled", [False, True])
def test_fused_step_equals_the_loop(decoupled):
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, dtype=torch.float64)) for s in [(3, 4), (5,), ()]]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fused = adam(params, 1e-2, weight_decay=0.1, decoupled=decoupled)
    loop = (torch.optim.AdamW if decoupled else torch.optim.Adam)(twins, lr=1e-2, weight_decay=0.1, foreach=False)
    assert fused.param_groups[0]["fused"] is True and type(fused) is type(loop)
    for step in range(4):
        for p, q in zip(params, twins):
            p.grad = torch.sin(p.detach() * (step + 1))
            q.grad = p.grad.clone()
        fused.step()
        loop.step()
    for p, q in zip(params, twins):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
    assert fused.state_dict()["state"].keys() == loop.state_dict()["state"].keys()


def test_devices_without_the_fused_kernel_take_the_loop():
    params = [torch.nn.Parameter(torch.empty(3, device="meta"))]
    assert not adam(params, 1e-3).param_groups[0]["fused"]
    with pytest.raises(ValueError, match="empty parameter list"):
        adam([], 1e-3)
