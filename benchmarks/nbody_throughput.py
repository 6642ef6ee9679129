"""Training throughput (systems per second) of the N-body model on CPU, eager and compiled.

    python benchmarks/nbody_throughput.py [--group O(3)] [--backend escnn] [--preset demo|full]
                                          [--batch-size 100] [--steps 10] [--rounds 3]
                                          [--threads 1 2] [--kernel-basis 0 8] [--compile]
                                          [--compile-mode reduce-overhead] [--device cuda]

One training step = forward + MSE loss + backward + Adam step on a batch of random systems of 5
particles (the model cost does not depend on the data).  The variants (kernel layout x thread
count, each eager and, with ``--compile``, through ``torch.compile`` as ``--compile`` of the task
runs it) are measured interleaved: ``--rounds`` rounds of ``--steps`` steps of each in turn, so
all see the same load; each row reports the median round.  Ratio columns: against the dense
kernel (``--kernel-basis 0``) and, for compiled rows, against the same model eager.

``--device cuda`` trains on the GPU (each round ends with a synchronisation, so the time counts the
queued work); ``--compile-mode`` is ``torch.compile``'s ``mode`` (``reduce-overhead``: CUDA graphs,
which remove the launch overhead that dominates such small batches on a GPU).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from steerable.tasks.nbody.compiled import TrainingCompiler
from steerable.tasks.nbody.model import NBodyNet, build_nbody_net
from steerable.tasks.nbody.train import PRESETS, SETTINGS
from steerable.tasks.optim import adam


def _layout(basis: int) -> str:
    return "dense" if basis == 0 else f"basis {basis}"


def _batch(batch_size: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(batch_size, 5, 3, generator=g) * 1.5
    vel = torch.randn(batch_size, 5, 3, generator=g) * 0.3
    charges = torch.randint(0, 2, (batch_size, 5, 1), generator=g).float() * 2 - 1
    return pos, vel, charges, pos + vel


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trainer(
    model: NBodyNet,
    batch_size: int,
    compiled: bool,
    device: torch.device | str = "cpu",
    mode: str | None = None,
) -> Callable[[int], float]:
    """``run(steps) -> seconds`` of ``steps`` training steps of ``model`` on ``device`` (compiled on first
    use, with ``torch.compile``'s ``mode`` when given)."""
    device = torch.device(device)
    model.to(device)
    pos, vel, charges, target = (t.to(device) for t in _batch(batch_size))
    opt = adam(model.parameters(), lr=1e-3)  # the task's optimiser
    compiler = (TrainingCompiler(mode=mode) if mode else TrainingCompiler()) if compiled else None
    model.train()

    def run(steps: int) -> float:
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            if compiler:
                torch.compiler.cudagraph_mark_step_begin()  # a new step for CUDA graphs (reduce-overhead)
            pred = compiler(model, pos, vel, charges) if compiler else model(pos, vel, charges)
            loss = torch.nn.functional.mse_loss(pred, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        _sync(device)
        return time.perf_counter() - start

    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--group", default="O(3)")
    p.add_argument("--backend", default="escnn")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=10, help="steps per variant per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is reported)")
    p.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    p.add_argument("--kernel-basis", type=int, nargs="+", default=[0, 8], help="basis sizes to compare (0: dense)")
    p.add_argument("--compile", action="store_true", help="also measure each model through torch.compile")
    p.add_argument("--compile-mode", default=None, help='torch.compile mode of --compile, e.g. "reduce-overhead"')
    p.add_argument("--device", default="cpu", help='"cpu" (default) or "cuda"')
    args = p.parse_args()
    device = torch.device(args.device)
    preset = SETTINGS.preset(args.preset)
    batch = args.batch_size or preset["batch_size"]
    # the preset's model (the kernel basis is this benchmark's own axis)
    model_settings = dict(SETTINGS.select(preset, "model"), group=args.group, backend=args.backend)
    variants = []  # (basis, compiled, threads, parameters, build s, warm-up s, run)
    for basis in args.kernel_basis:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        model = build_nbody_net(**dict(model_settings, kernel_basis=basis))
        build = time.perf_counter() - t0
        n_params = sum(p.numel() for p in model.parameters())
        for threads in args.threads:
            for compiled in (False, True) if args.compile else (False,):
                torch.set_num_threads(threads)
                run = trainer(copy.deepcopy(model), batch, compiled, device, args.compile_mode)
                warm = run(2)  # compiles the compiled variant
                variants.append([basis, compiled, threads, n_params, build, warm, run, []])
    for _ in range(args.rounds):
        for v in variants:
            torch.set_num_threads(v[2])
            v[7].append(batch * args.steps / v[6](args.steps))
    print(
        f"N-body model ({args.preset} preset), {args.group} / {args.backend}, batch {batch}, "
        f"median of {args.rounds} rounds, on {device}"
        + (f" ({torch.cuda.get_device_name(device)}, torch {torch.__version__})" if device.type == "cuda" else "")
        + (f", compile mode {args.compile_mode}" if args.compile and args.compile_mode else "")
    )
    print("| kernel | mode | parameters | build s | warm-up s | threads | train samples/s | vs dense | vs eager |")
    print("|---|---|---|---|---|---|---|---|---|")
    rate = {(v[0], v[1], v[2]): statistics.median(v[7]) for v in variants}
    for basis, compiled, threads, n_params, build, warm, _, _ in variants:
        r = rate[basis, compiled, threads]
        dense = rate.get((0, compiled, threads))
        eager = rate[basis, False, threads]
        print(
            f"| {_layout(basis)} | {'compiled' if compiled else 'eager'} | {n_params} | {build:.1f} | {warm:.1f} "
            f"| {threads} | {r:.1f} | {f'{r / dense:.2f}' if dense else '-'} | {r / eager:.2f} |"
        )


if __name__ == "__main__":
    main()
