"""The layers on a CUDA device: same values and gradients as on the CPU, for every available backend.

Skipped without a CUDA device (CI has none); run on a GPU machine with ``pytest tests/test_cuda.py``.
CPU equivariance is tested everywhere else, so agreement with the CPU (float64: relative 1e-10;
float32: 1e-4) carries it over.  Also an N-body training run on the GPU through Lightning.
"""

from __future__ import annotations

import copy

import pytest
import torch

import steerable as st
from steerable.ops.message import message_sum
from steerable.testing import relative_error

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# (backend, group, dim): one continuous and one finite group where backends have them
CASES = [("escnn", "SO(3)", 3), ("escnn", "Octa", 3), ("e3nn", "O(3)", 3), ("matrix", "m-3m", 3), ("escnn", "C8", 2)]


def _group_or_skip(backend: str, name: str):
    status = {b.name: b for b in st.list_backends()}.get(backend)
    if status is None or not status.available:
        pytest.skip(f"backend {backend} not available here")
    return st.group(name, backend=backend)


def _fields(G):
    return st.FieldType(G, [G.trivial_rep(), G.standard_rep(), G.trivial_rep(), G.standard_rep()])


def _assert_same(cpu: torch.Tensor, gpu: torch.Tensor, bound: float) -> None:
    assert gpu.is_cuda
    assert relative_error(gpu.cpu(), cpu) <= bound


@pytest.mark.parametrize("basis_size", [8, None])
@pytest.mark.parametrize("backend,name,dim", CASES, ids=[f"{b}-{n}" for b, n, _ in CASES])
def test_point_conv_on_cuda_matches_cpu(backend, name, dim, basis_size):
    G = _group_or_skip(backend, name)
    f = _fields(G)
    torch.manual_seed(0)
    conv = st.PointConv(f, f, edge_attr=1, basis_size=basis_size, max_radius=1.0).double()
    gpu = copy.deepcopy(conv).cuda()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, f.size, generator=g, dtype=torch.float64, requires_grad=True)
    pos = torch.randn(30, dim, generator=g, dtype=torch.float64)
    edge_index = torch.randint(0, 30, (2, 200), generator=g)
    attr = torch.randn(200, 1, generator=g, dtype=torch.float64)
    x_gpu = x.detach().cuda().requires_grad_()
    y = conv(x, pos, edge_index, attr)
    y_gpu = gpu(x_gpu, pos.cuda(), edge_index.cuda(), attr.cuda())
    _assert_same(y, y_gpu, 1e-10)
    y.square().sum().backward()
    y_gpu.square().sum().backward()
    _assert_same(x.grad, x_gpu.grad, 1e-10)
    for p, p_gpu in zip(conv.parameters(), gpu.parameters()):
        if p.grad is not None:
            _assert_same(p.grad, p_gpu.grad, 1e-9)
    # float32 on the device, against the float64 CPU result
    y32 = (
        copy.deepcopy(conv)
        .float()
        .cuda()(x.detach().float().cuda(), pos.float().cuda(), edge_index.cuda(), attr.float().cuda())
    )
    _assert_same(y.detach().float(), y32, 1e-4)


@pytest.mark.parametrize("backend,name", [("escnn", "C8"), ("matrix", "4mm")])
def test_grid_conv_on_cuda_matches_cpu_and_caches(backend, name):
    G = _group_or_skip(backend, name)
    f = st.FieldType(G, [G.trivial_rep(), G.regular_rep()])
    torch.manual_seed(0)
    conv = st.GridConv(f, f, kernel_size=3, padding=1).double()
    gpu = copy.deepcopy(conv).cuda()
    x = torch.randn(2, f.size, *[10] * G.dim, dtype=torch.float64)
    _assert_same(conv(x), gpu(x.cuda()), 1e-10)
    gpu.eval()
    first = gpu(x.cuda())
    _assert_same(conv.eval()(x), first, 1e-10)
    assert torch.equal(gpu(x.cuda()), first)  # recomputed (no cache off the CPU), the same values


def test_message_sum_on_cuda_in_blocks(monkeypatch):
    from steerable.ops import message

    monkeypatch.setattr(message, "GPU_BLOCK_VALUES", 1 << 16)  # many blocks
    g = torch.Generator().manual_seed(0)
    n, E = 500, 20000
    phi = torch.randn(E, 24, 3, generator=g, dtype=torch.float64, requires_grad=True)
    x = torch.randn(n, 16, 3, generator=g, dtype=torch.float64, requires_grad=True)
    src, dst = torch.randint(0, n, (E,), generator=g), torch.randint(0, n, (E,), generator=g)
    out = message_sum(phi, x, src, dst, n)
    phi_gpu, x_gpu = phi.detach().cuda().requires_grad_(), x.detach().cuda().requires_grad_()
    out_gpu = message_sum(phi_gpu, x_gpu, src.cuda(), dst.cuda(), n)
    _assert_same(out, out_gpu, 1e-12)
    out.square().sum().backward()
    out_gpu.square().sum().backward()
    _assert_same(phi.grad, phi_gpu.grad, 1e-12)
    _assert_same(x.grad, x_gpu.grad, 1e-12)


@pytest.mark.parametrize("backend", ["escnn", "e3nn"])
def test_nbody_training_on_gpu(tmp_path, backend):
    _group_or_skip(backend, "O(3)")
    from steerable.tasks.nbody.train import build_parser, resolve, run

    argv = [
        "--preset",
        "demo",
        "--group",
        "O(3)",
        "--backend",
        backend,
        "--n-train",
        "60",
        "--n-val",
        "30",
        "--n-test",
        "30",
        "--batch-size",
        "10",
        "--epochs",
        "2",
        "--layers",
        "2",
        "--data-dir",
        str(tmp_path / "data"),
        "--out-dir",
        str(tmp_path / "run"),
        "--no-progress",
        "--accelerator",
        "gpu",
        "--devices",
        "1",
        "--equivariance-batches",
        "1",
        "--equivariance-elements",
        "2",
    ]
    result = run(resolve(build_parser().parse_args(argv)))
    assert result["epochs"] == 2
    assert result["test_mse"] < result["test_cv_mse"] * 2  # trained for two epochs only: sane, not good
    assert result["test_equiv_displacement"] < 1e-4
