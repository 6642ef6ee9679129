"""Time per training epoch of the ModelNet-40 group sweep (``configs/modelnet_groups/*.yaml``) on this machine.

    python benchmarks/modelnet_groups.py [--groups so3 cs ...] [--steps 2] [--num-points 1024]
                                         [--batch-size 32] [--device cpu|cuda]

The archive cannot be downloaded here, so the shapes are the generated primitives the tests use
(``write_synthetic_modelnet``, read through the task's own data module: the same loader, point
sampling and batching as a real run); the network's cost does not depend on which shapes they are.
Each sweep config is resolved as the task resolves it (``--num-points`` / ``--batch-size`` override
its values for reduced checks).  A training step is forward + cross-entropy + backward + AdamW step;
after one unmeasured step, the median of ``--steps`` steps is extrapolated to one epoch of
ModelNet-40: its 9,843 training shapes less the validation part (``val_fraction``), in batches.
Prints one markdown row per group: parameters, seconds per step, minutes per epoch, and the
first construction of the network (escnn builds its bases then; a cold disk cache costs more).
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from steerable.tasks.modelnet.data import ModelNetDataModule, write_synthetic_modelnet
from steerable.tasks.modelnet.model import ModelNetNet
from steerable.tasks.modelnet.train import SETTINGS, build_parser, resolve
from steerable.tasks.optim import adam

SWEEP = Path(__file__).resolve().parents[1] / "configs" / "modelnet_groups"
#: training shapes of ModelNet-40 (the archive's train split)
MODELNET40_TRAIN = 9843


def sweep_configs(names: list[str] | None = None) -> dict[str, dict]:
    """The resolved settings of each sweep config, by file stem (all of them when ``names`` is None)."""
    found = {p.stem: p for p in sorted(SWEEP.glob("*.yaml"))}
    unknown = sorted(set(names or []) - set(found))
    if unknown:
        raise SystemExit(f"unknown sweep configs {unknown}; known: {sorted(found)}")
    chosen = names or list(found)
    return {n: resolve(build_parser().parse_args(["--config", str(found[n]), "--no-progress"])) for n in chosen}


def time_steps(cfg: dict, batch, steps: int, device: str) -> tuple[int, float, float]:
    """``(parameters, construction seconds, median seconds per training step)`` of the config's network."""
    torch.manual_seed(0)
    start = time.perf_counter()
    net = ModelNetNet(5, **SETTINGS.select(cfg, "model")).to(device).train()
    built = time.perf_counter() - start
    opt = adam(net.parameters(), cfg["lr"], decoupled=True)  # the task's optimiser
    pos, index, y = batch.pos.to(device), batch.batch.to(device), batch.y.to(device)
    times = []
    for i in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(pos, index), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step is unmeasured (lazy buffers, allocator warm-up)
            times.append(time.perf_counter() - t0)
    return sum(p.numel() for p in net.parameters()), built, statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--groups", nargs="+", default=None, help="sweep config stems (default: all)")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--num-points", type=int, default=None, help="override the configs' points per shape")
    p.add_argument("--batch-size", type=int, default=None, help="override the configs' batch size")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = p.parse_args()
    configs = sweep_configs(args.groups)
    print(f"torch threads {torch.get_num_threads()}, device {args.device}")
    print("| config | group | parameters | first build (s) | s / step | min / epoch (ModelNet-40) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as root:
        write_synthetic_modelnet(root, per_class=(8, 2), seed=0)
        for name, cfg in configs.items():
            for key in ("num_points", "batch_size"):
                if getattr(args, key) is not None:
                    cfg = {**cfg, key: getattr(args, key)}
            dm = ModelNetDataModule(root, num_points=cfg["num_points"], batch_size=cfg["batch_size"], val_fraction=0.0)
            dm.prepare_data()
            dm.setup()
            batch = next(iter(dm.train_dataloader()))
            if int(batch.num_graphs) != cfg["batch_size"]:
                raise SystemExit(f"the generated set holds only {int(batch.num_graphs)} shapes per batch")
            params, built, step = time_steps(cfg, batch, args.steps, args.device)
            per_epoch = math.ceil(MODELNET40_TRAIN * (1 - cfg["val_fraction"]) / cfg["batch_size"])
            print(
                f"| {name} | {cfg['group']} | {params:,} | {built:.1f} | {step:.2f} | {per_epoch * step / 60:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
