"""Training throughput (systems per second) of the default N-body model on CPU.

    python benchmarks/nbody_throughput.py [--group O(3)] [--backend escnn] [--preset demo|full]
                                          [--batch-size 100] [--steps 10] [--threads 1 2]
                                          [--kernel-basis 0 8]

One training step = forward + MSE loss + backward + Adam step on a batch of random systems of 5
particles (the model cost does not depend on the data).  Prints one row per kernel layout and
thread count; the dense kernel (``--kernel-basis 0``) is the baseline of the ratio column.
"""

from __future__ import annotations

import argparse
import time

import torch

from steerable.tasks.nbody.model import NBodyNet, build_nbody_net
from steerable.tasks.nbody.train import PRESETS, SETTINGS


def _layout(basis: int) -> str:
    return "dense" if basis == 0 else f"basis {basis}"


def measure(model: NBodyNet, batch_size: int, steps: int, warmup: int = 2) -> float:
    """Training samples (systems) per second over ``steps`` steps after ``warmup`` steps."""
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(batch_size, 5, 3, generator=g) * 1.5
    vel = torch.randn(batch_size, 5, 3, generator=g) * 0.3
    charges = torch.randint(0, 2, (batch_size, 5, 1), generator=g).float() * 2 - 1
    target = pos + vel
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model(pos, vel, charges), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return batch_size * steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--group", default="O(3)")
    p.add_argument("--backend", default="escnn")
    p.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    p.add_argument("--kernel-basis", type=int, nargs="+", default=[0, 8], help="basis sizes to compare (0: dense)")
    args = p.parse_args()
    preset = SETTINGS.preset(args.preset)
    batch = args.batch_size or preset["batch_size"]
    # the preset's model (the kernel basis is this benchmark's own axis)
    model_settings = dict(SETTINGS.select(preset, "model"), group=args.group, backend=args.backend)
    rows = []
    for basis in args.kernel_basis:
        torch.manual_seed(0)
        t0 = time.perf_counter()
        model = build_nbody_net(**dict(model_settings, kernel_basis=basis))
        build = time.perf_counter() - t0
        n_params = sum(p.numel() for p in model.parameters())
        for threads in args.threads:
            torch.set_num_threads(threads)
            rows.append((basis, n_params, build, threads, measure(model, batch, args.steps)))
    print(f"N-body model ({args.preset} preset), {args.group} / {args.backend}, batch {batch}")
    print("| kernel | parameters | build s | threads | train samples/s | vs dense |")
    print("|---|---|---|---|---|---|")
    dense = {threads: rate for basis, _, _, threads, rate in rows if basis == 0}
    for basis, n_params, build, threads, rate in rows:
        ratio = f"{rate / dense[threads]:.2f}" if threads in dense else "-"
        print(f"| {_layout(basis)} | {n_params} | {build:.1f} | {threads} | {rate:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
