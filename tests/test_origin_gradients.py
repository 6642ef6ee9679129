"""The kernel at and near the origin: exact position gradients (forces) with self-loops and
coincident points, and no NaN in half precision (issue 15, defect 3).

The escnn and e3nn kernel MLPs embed ``pos / sqrt(|pos|^2 + s^2)`` as solid harmonics and feed the
radial basis ``sqrt(|pos|^2 + s^2)``: smooth everywhere, so ``dE/dpos`` is exact also where an
edge has zero length.  Before, both divided by ``|pos|`` (clamped at 1e-15): the gradient of an
edge of zero length was ~1e14 and cancelled between its two ends (self-loops: relative error
2.6e-2 in float64, gradients exactly zero in float32), and the kernel jumped at coincident points
(relative error ~1e9 against finite differences), and float16 gave 0/0 at the centre tap.

Bounds, set near the measured values (stated margin):

* float64 autograd against a central finite difference (step 3e-7: its truncation error grows
  like ``(h / s)^2`` with the origin scale ``s``, its rounding error like ``eps / h``): measured
  <= 6.5e-10 (with the default ``s = max_radius / 70``; step 1e-6 gave 6.4e-9), bound 3e-9 (5x);
* float32 against float64 gradients: measured <= 5.4e-7 (escnn SO(2)), bound 5e-6 (9x);
* the kernel MLP's Jacobian at ``pos = 0`` against finite differences: measured <= 1.3e-10, same
  bound 3e-9; at ``|pos| = 1e-9`` against ``pos = 0`` (a continuous derivative): measured
  <= 1.1e-7 (escnn O(3)), bound 1e-6 (9x).
"""

from __future__ import annotations

import pytest
import torch

import steerable as st
from steerable.core.mlp import KernelMLPSpec

pytest.importorskip("escnn")
pytest.importorskip("e3nn")

FD_STEP, FD_BOUND, F32_BOUND, DRIFT_BOUND = 3e-7, 3e-9, 5e-6, 1e-6
CASES = [
    ("escnn", "SO(3)", 3),
    ("escnn", "O(3)", 3),
    ("escnn", "SO(2)", 2),
    ("escnn", "O(2)", 2),
    ("e3nn", "SO(3)", 3),
    ("e3nn", "O(3)", 3),
]
IDS = [f"{b}-{n}-R{d}" for b, n, d in CASES]


def _layer(backend: str, name: str, dim: int) -> st.PointConv:
    G = st.group(name, dim=dim, backend=backend)
    T, S = G.trivial_rep(), G.standard_rep()
    torch.manual_seed(0)
    return st.PointConv(st.FieldType(G, [T, S]), st.FieldType(G, [T, S, T]), max_radius=1.0)


def _graph(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Five points, nodes 1 and 3 at the same place; every node has a self-loop, 1 <-> 3 are joined
    (an edge of length zero between distinct nodes), and every node has an edge of nonzero length,
    shorter than the radial range ``max_radius = 1`` (beyond it the e3nn kernel underflows to 0)."""
    pos = 0.3 * torch.randn(5, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pos[3] = pos[1]
    src = torch.tensor([0, 1, 2, 3, 4, 1, 3, 0, 2, 4, 3, 1])
    dst = torch.tensor([0, 1, 2, 3, 4, 3, 1, 1, 0, 3, 3, 0])
    return pos, torch.stack([src, dst])


def _energy_gradient(conv: st.PointConv, x: torch.Tensor, pos: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    pos = pos.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(conv(x, pos, edges).sum(), pos)
    return grad


def _finite_difference(conv: st.PointConv, x: torch.Tensor, pos: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    fd = torch.zeros_like(pos)
    with torch.no_grad():
        for i in range(pos.shape[0]):
            for k in range(pos.shape[1]):
                step = torch.zeros_like(pos)
                step[i, k] = FD_STEP
                fd[i, k] = (conv(x, pos + step, edges).sum() - conv(x, pos - step, edges).sum()) / (2 * FD_STEP)
    return fd


@pytest.mark.parametrize("backend,name,dim", CASES, ids=IDS)
def test_forces_with_self_loops_and_coincident_points(backend, name, dim):
    """``dE/dpos`` of ``E = sum(PointConv(x, pos, edges))`` equals a float64 central finite difference,
    and float32 gives the same nonzero gradients (before: 1e9 off, and exactly zero in float32)."""
    conv = _layer(backend, name, dim).double()
    pos, edges = _graph(dim)
    x = torch.randn(5, conv.in_type.size, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grad = _energy_gradient(conv, x, pos, edges)
    fd = _finite_difference(conv, x, pos, edges)
    assert torch.isfinite(grad).all()
    err = float((grad - fd).norm() / fd.norm())
    assert err <= FD_BOUND, f"autograd vs finite differences: {err:.2e}"
    grad32 = _energy_gradient(conv.float(), x.float(), pos.float(), edges)
    assert (grad32.norm(dim=1) > 0).all(), grad32
    err32 = float((grad32.double() - grad).norm() / grad.norm())
    assert err32 <= F32_BOUND, f"float32 vs float64 gradients: {err32:.2e}"


@pytest.mark.parametrize("backend,name,dim", CASES, ids=IDS)
def test_self_loops_alone_contribute_no_force(backend, name, dim):
    """A self-loop's relative position is identically zero: adding self-loops changes the energy by
    a constant and the forces not at all (before: float32 cancellation of ~1e14 terms)."""
    conv = _layer(backend, name, dim)
    pos, edges = _graph(dim)
    pos = pos.float()
    x = torch.randn(5, conv.in_type.size, generator=torch.Generator().manual_seed(2))
    loops = edges[:, :5]
    others = edges[:, 5:]
    with_loops = _energy_gradient(conv, x, pos, edges)
    without = _energy_gradient(conv, x, pos, others)
    assert torch.equal(loops[0], loops[1])
    torch.testing.assert_close(with_loops, without, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend,name,dim", CASES, ids=IDS)
def test_kernel_mlp_is_differentiable_at_the_origin(backend, name, dim):
    """The MLP's Jacobian at ``pos = 0`` is finite, equals finite differences, and is the limit of the
    Jacobian at ``|pos| -> 0`` (before: ~1e15 at 1e-15 and a jump at 0)."""
    G = st.group(name, dim=dim, backend=backend)
    T, S = G.trivial_rep(), G.standard_rep()
    torch.manual_seed(0)
    mlp = G.build_kernel_mlp(KernelMLPSpec(G, ((S, S), (T, S), (S, T)), hidden_channels=3)).double()

    def jacobian(at: torch.Tensor) -> torch.Tensor:
        return torch.autograd.functional.jacobian(lambda p: mlp(p[None], None)[0], at)  # (out, dim)

    origin = torch.zeros(dim, dtype=torch.float64)
    jac = jacobian(origin)
    assert torch.isfinite(jac).all() and jac.abs().max() > 1e-3  # the vector blocks grow linearly
    with torch.no_grad():
        steps = torch.eye(dim, dtype=torch.float64) * FD_STEP
        fd = torch.stack([(mlp(s[None], None)[0] - mlp(-s[None], None)[0]) / (2 * FD_STEP) for s in steps], dim=1)
    err = float((jac - fd).norm() / fd.norm())
    assert err <= FD_BOUND, f"Jacobian at 0 vs finite differences: {err:.2e}"
    near = torch.full((dim,), 1e-9 / dim**0.5, dtype=torch.float64)
    drift = float((jacobian(near) - jac).norm() / jac.norm())
    assert drift <= DRIFT_BOUND, f"Jacobian at |pos| = 1e-9 vs at 0: {drift:.2e}"
    # at the origin only the invariant part of the kernel survives: the (S, T) / (T, S) blocks vanish
    at0 = mlp(origin[None], None)[0].detach()
    assert at0[S.size**2 :].abs().max() == 0.0


@pytest.mark.parametrize(
    "backend,name,dim,size",
    [("escnn", "C4", 2, 3), ("escnn", "SO(2)", 2, 5), ("escnn", "SO(3)", 3, 3), ("e3nn", "O(3)", 3, 3)],
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_grid_conv_has_no_nan(backend, name, dim, size, dtype):
    """An odd-sized GridConv samples its kernel at 0 (the centre tap): in float16 this gave 0/0 = NaN
    on escnn and e3nn.  CPU convolutions run in float16 and bfloat16 (torch >= 2.1)."""
    G = st.group(name, dim=dim, backend=backend)
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    torch.manual_seed(0)
    conv = st.GridConv(f, f, size).to(dtype)
    x = torch.randn(1, f.size, *([size + 2] * dim)).to(dtype)
    with torch.no_grad():
        weight, out = conv.filter(), conv(x)
    assert torch.isfinite(weight).all() and torch.isfinite(out).all()
    assert weight.abs().max() > 0


@pytest.mark.parametrize("backend", ["escnn", "e3nn"])
def test_origin_scale_option(backend):
    """``options={"origin_scale": s}`` sets the softening length; it must be a finite number > 0, and
    far from the origin (``|pos| >> s``) the kernel hardly depends on it."""
    G = st.group("SO(3)", backend=backend)
    S = G.standard_rep()
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="origin_scale"):
            G.build_kernel_mlp(KernelMLPSpec(G, ((S, S),), options={"origin_scale": bad}))
    with pytest.raises(ValueError, match="origin_scale"):
        G.build_kernel_mlp(KernelMLPSpec(G, ((S, S),), options={"origin_scale": "small"}))
    outs = []
    for scale in (1e-3, 2e-3):
        torch.manual_seed(0)
        mlp = G.build_kernel_mlp(KernelMLPSpec(G, ((S, S),), options={"origin_scale": scale})).double()
        pos = torch.tensor([[0.3, -0.4, 0.5]], dtype=torch.float64)
        outs.append(mlp(pos, None).detach())
    # s enters as s^2 / |pos|^2 ~ 1e-5: the outputs differ by about that, relatively
    assert float((outs[0] - outs[1]).norm() / outs[0].norm()) < 1e-4
