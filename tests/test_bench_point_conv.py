"""``benchmarks/point_conv.py --compile``: its compiled variants compute what the eager methods compute, and
its fallbacks (graph breaks allowed, then left out) report why.

Compiled with Dynamo's ``aot_eager`` backend (the same traced graphs and autograd split as Inductor, no
code generation: seconds instead of minutes); Inductor's numerics are ``tests/test_compile.py``'s.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

_BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(_BENCH))  # point_conv imports its sibling _common
_spec = importlib.util.spec_from_file_location("point_conv", _BENCH / "point_conv.py")
point_conv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(point_conv)


def _inputs(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(12, 3, generator=g, dtype=torch.float64) * 0.5
    ei = torch.stack([torch.randint(0, 12, (48,), generator=g), torch.arange(12).repeat_interleave(4)])
    return torch.randn(12, size, generator=g, dtype=torch.float64), pos, ei


def _outputs(run, mod, args):
    """The eval output under no_grad and the parameters' gradients of a training fwd+bwd (``y.sum()``)."""
    y = point_conv.eval_step(run, mod, *args).clone()
    point_conv.train_step(run, mod, *args)
    return y, [p.grad.clone() for p in mod.parameters() if p.grad is not None]


@pytest.mark.parametrize("method", ["ours-escnn", "e3nn"])
def test_compiled_variant_equals_eager(method):
    pytest.importorskip("escnn" if method == "ours-escnn" else "e3nn")
    torch.manual_seed(0)
    mod, run = point_conv.build_ours("escnn", 1, 1) if method == "ours-escnn" else point_conv.build_e3nn(1, 1)
    mod.double()
    args = _inputs(4)
    want_y, want_g = _outputs(run, mod, args)
    log: list[str] = []
    got = point_conv.compile_variant(run, mod, args, "default", backend="aot_eager", log=log.append)
    assert got is not None and got[0] == "+default", log  # one graph: fullgraph=True held
    y, grads = _outputs(got[1], mod, args)
    torch.testing.assert_close(y, want_y, rtol=1e-12, atol=1e-12)
    assert len(grads) == len(want_g) > 0
    for g, w in zip(grads, want_g):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    assert any("compiled+default" in line for line in log)


class _Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4, dtype=torch.float64)


def test_graph_break_falls_back_to_split_graphs():
    torch.manual_seed(0)
    mod = _Linear()

    def run(x, pos, ei):
        y = mod.lin(x)
        torch._dynamo.graph_break()  # refused by fullgraph=True, allowed without
        return y * pos.norm(dim=1, keepdim=True)

    args = _inputs(4)
    want_y, want_g = _outputs(run, mod, args)
    log: list[str] = []
    got = point_conv.compile_variant(run, mod, args, "reduce-overhead", backend="aot_eager", log=log.append)
    assert got is not None and got[0] == "+reduce-overhead(split)"
    assert any("fullgraph=True) failed" in line for line in log), log
    y, grads = _outputs(got[1], mod, args)
    torch.testing.assert_close(y, want_y, rtol=1e-12, atol=1e-12)
    for g, w in zip(grads, want_g):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_uncompilable_method_is_left_out_with_reasons():
    mod = _Linear()

    def failing_backend(gm, example_inputs):  # a compiler that fails on every graph
        raise RuntimeError("refuses to be compiled")

    log: list[str] = []
    got = point_conv.compile_variant(
        lambda x, pos, ei: mod.lin(x), mod, _inputs(4), "default", backend=failing_backend, log=log.append
    )
    assert got is None
    failures = [line for line in log if "failed" in line]
    assert len(failures) == 2 and "fullgraph=True" in failures[0] and "fullgraph=False" in failures[1], log
    assert all("refuses to be compiled" in line for line in failures)
