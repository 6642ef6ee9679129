"""The escnn backend's inference cache of expanded weights (:meth:`PlainLinear.expanded`).

In eval mode without gradients on the CPU each escnn linear layer of a kernel MLP keeps its
expanded matrix and recomputes it only when a parameter's value changed; off the CPU it never
caches (checking a cache there would cost a host synchronisation per layer per call).  These
tests check that the cache follows every way users change or replace parameters (a stale cache
returns the old kernel silently), that it is used when nothing changed, and that no value is read
off the CPU (the meta device has no values).

Reference: the same module in training mode, which always expands afresh; equal to round-off
(the same operations: bound 1e-13 in float64).
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("escnn")

import steerable as st
from steerable.nn.kernel import ImplicitKernel
from steerable.plugins.escnn_backend.linear import PlainLinear

TOL = dict(rtol=1e-13, atol=1e-13)


def _kernel(group: str, dim: int) -> ImplicitKernel:
    """A dense-layout kernel: escnn's ``C4`` (dense pipeline) or ``SO(3)`` (irrep-wise pipeline)."""
    G = st.group(group, dim=dim, backend="escnn")
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    torch.manual_seed(0)
    return ImplicitKernel(f, f, basis_size=None, max_radius=1.0).double().eval()


def _linears(kernel: ImplicitKernel) -> list[PlainLinear]:
    return [m for m in kernel.modules() if isinstance(m, PlainLinear)]


def _fresh(kernel: ImplicitKernel, pos: torch.Tensor) -> torch.Tensor:
    """The kernel with every expansion made now (training mode caches nothing)."""
    kernel.train()
    try:
        with torch.no_grad():
            return kernel(pos)
    finally:
        kernel.eval()


def _replace_weights(kernel: ImplicitKernel) -> None:
    linear = _linears(kernel)[0]
    linear.weights = torch.nn.Parameter(linear.weights.detach() * -2.0)


EDITS = {
    "no_grad add_": lambda k: torch.no_grad()(lambda: _linears(k)[0].weights.add_(0.5))(),
    "data mul_": lambda k: _linears(k)[0].weights.data.mul_(2.0),
    "data copy_": lambda k: _linears(k)[0].weights.data.copy_(torch.randn_like(_linears(k)[0].weights)),
    "bias data add_": lambda k: next(lin for lin in _linears(k) if lin.bias is not None).bias.data.add_(1.0),
    "load_state_dict": lambda k: k.load_state_dict(
        {n: v * 1.5 if "weights" in n else v for n, v in k.state_dict().items()}
    ),
    "load_state_dict assign": lambda k: k.load_state_dict(
        {n: v * 1.5 if "weights" in n else v for n, v in k.state_dict().items()}, assign=True
    ),
    "parameter replaced": _replace_weights,
    "p.data assigned": lambda k: setattr(_linears(k)[0].weights, "data", _linears(k)[0].weights.data * 3.0),
}


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("group, dim", [("C4", 2), ("SO(3)", 3)], ids=["C4-dense", "SO3-irrepwise"])
def test_eval_cache_follows_parameter_changes(group, dim, edit):
    kernel = _kernel(group, dim)
    pos = torch.randn(11, dim, dtype=torch.float64)
    expansions = {"n": 0}
    for linear in _linears(kernel):
        original = linear.expand_parameters

        def counting(original=original):
            expansions["n"] += 1
            return original()

        linear.expand_parameters = counting
    with torch.no_grad():
        first = kernel(pos)
        torch.testing.assert_close(first, _fresh(kernel, pos), **TOL)
        expansions["n"] = 0
        assert kernel(pos).equal(first) and expansions["n"] == 0  # the cached matrices are used
        EDITS[edit](kernel)
        after = kernel(pos)
        assert (after - first).abs().max() > 1e-3  # the change shows ...
        torch.testing.assert_close(after, _fresh(kernel, pos), **TOL)  # ... as the fresh expansion's output
        expansions["n"] = 0
        assert kernel(pos).equal(after) and expansions["n"] == 0  # and is cached again
        _linears(kernel)[0].weights.data.mul_(0.5)  # later edits of a replaced tensor are followed too
        torch.testing.assert_close(kernel(pos), _fresh(kernel, pos), **TOL)


def test_no_cache_and_no_value_read_off_the_cpu():
    """On the meta device (shapes, no values) an eval-mode escnn kernel runs without gradients: the
    cache check reads no value there.  Before, it compared parameter values with ``torch.equal``,
    one host synchronisation per layer per call on a GPU."""
    kernel = _kernel("C4", 2).to("meta")
    with torch.no_grad():
        out = kernel(torch.randn(5, 2, dtype=torch.float64, device="meta"))
    assert out.device.type == "meta" and out.shape == (5, 3, 3)
    assert all(linear._expansion is None for linear in _linears(kernel))


def test_cache_after_dtype_move():
    kernel = _kernel("C4", 2).float()
    pos = torch.randn(6, 2)
    with torch.no_grad():
        kernel(pos)
        kernel.double()
        torch.testing.assert_close(kernel(pos.double()), _fresh(kernel, pos.double()), **TOL)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_eval_point_conv_has_no_host_synchronisation_on_cuda():
    """An eval-mode escnn PointConv without gradients never waits for the device."""
    G = st.group("C4", backend="escnn")
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    conv = st.PointConv(f, f, basis_size=None, max_radius=1.0).cuda().eval()
    x, pos = torch.randn(6, f.size, device="cuda"), torch.randn(6, 2, device="cuda")
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 0]], device="cuda")
    with torch.no_grad():
        conv(x, pos, edge_index)  # warm-up (first calls may initialise on the host)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            conv(x, pos, edge_index)
        finally:
            torch.cuda.set_sync_debug_mode("default")
