"""Command line of the ModelNet task: ``python -m steerable.tasks modelnet [--preset demo|full] ...``.

Settings: preset, then ``--config`` YAML, then flags.  Writes ``checkpoints/`` (best by ``val_acc``,
``last.ckpt``), ``csv/version_*/metrics.csv`` and ``results.json`` to ``--out-dir``; ``--resume PATH``
continues a run; prints the test accuracy.  ``--synthetic`` first writes generated primitive shapes to
``--root`` (offline smoke runs).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from ..settings import add_run_arguments, resolve_settings

__all__ = ["PRESETS", "build_parser", "resolve", "run", "main"]

PRESETS: dict[str, dict[str, Any]] = {
    "demo": dict(epochs=25, batch_size=8, num_points=128, hidden_scalars=8, hidden_vectors=4, stages=2, k=8, lr=5e-3,
                 kernel_hidden=8, out_dir="runs/modelnet_demo"),
    "full": dict(epochs=200, batch_size=32, num_points=1024, hidden_scalars=64, hidden_vectors=16, stages=3, k=16,
                 kernel_hidden=32, out_dir="runs/modelnet_full"),
}
DEFAULTS: dict[str, Any] = dict(
    root="data/modelnet40", name="40", group="SO(3)", backend="escnn", rotation="none", test_rotation="none",
    ratio=0.25, sampling="fps", kernel_layers=1, radial_features=8, max_radius=1.0, lr=1e-3, weight_decay=0.0,
    seed=0, model_seed=0, val_fraction=0.1, resume=None, ema=None, accelerator="auto", devices="auto", num_threads=1,
    progress=True, synthetic=False, out_dir="runs/modelnet",
)
_MODEL_KEYS = ("group", "backend", "hidden_scalars", "hidden_vectors", "stages", "ratio", "k", "sampling",
               "kernel_hidden", "kernel_layers", "radial_features", "max_radius")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steerable.tasks modelnet", description=__doc__.split("\n\n")[0])
    add_run_arguments(p, PRESETS)
    a = p.add_argument
    a("--root", help="dataset root; raw/<class>/{train,test}/*.off (downloaded if missing)")
    a("--name", choices=["10", "40"]); a("--group", help='"SO(2)" (about z), "O(2)", "SO(3)", "O(3)", ...'); a("--backend")
    a("--rotation", choices=["none", "z", "so3"], help="train augmentation"); a("--test-rotation", choices=["none", "z", "so3"])
    a("--num-points", type=int); a("--epochs", type=int); a("--batch-size", type=int)
    a("--lr", type=float); a("--weight-decay", type=float)
    a("--hidden-scalars", type=int); a("--hidden-vectors", type=int); a("--stages", type=int)
    a("--ratio", type=float); a("--k", type=int); a("--sampling", choices=["fps", "random"])
    a("--kernel-hidden", type=int); a("--kernel-layers", type=int); a("--radial-features", type=int)
    a("--max-radius", type=float); a("--seed", type=int); a("--model-seed", type=int); a("--val-fraction", type=float)
    a("--synthetic", action="store_true", default=None, help="first write generated primitive shapes to ROOT/raw")
    return p


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Preset, then ``--config`` YAML, then explicit flags (:func:`~steerable.tasks.settings.resolve_settings`)."""
    return resolve_settings(args, DEFAULTS, PRESETS)


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train and test; returns results (also written to ``results.json``)."""
    import lightning as L
    import torch

    from ..trainer import fit_and_test
    from .data import ModelNetDataModule, write_synthetic_modelnet
    from .lit import ModelNetModule

    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))
    if cfg["synthetic"]:
        write_synthetic_modelnet(cfg["root"], seed=cfg["seed"])
    L.seed_everything(cfg["model_seed"], verbose=False)
    dm = ModelNetDataModule(cfg["root"], cfg["name"], cfg["num_points"], cfg["batch_size"], cfg["rotation"],
                            cfg["test_rotation"], cfg["val_fraction"], cfg["seed"])
    dm.prepare_data()
    dm.setup()
    module = ModelNetModule(dm.num_classes, lr=cfg["lr"], weight_decay=cfg["weight_decay"], epochs=cfg["epochs"],
                            **{k: cfg[k] for k in _MODEL_KEYS})
    m = fit_and_test(module, dm, cfg["out_dir"], cfg["epochs"], monitor="val_acc", mode="max", resume=cfg["resume"],
                     progress=bool(cfg["progress"]), accelerator=cfg["accelerator"], devices=cfg["devices"], ema=cfg["ema"])
    res = {"group": cfg["group"], "backend": cfg["backend"] or "auto", "num_classes": dm.num_classes,
           "rotation": cfg["rotation"], "test_rotation": cfg["test_rotation"], **m}
    (Path(cfg["out_dir"]) / "results.json").write_text(json.dumps(res, indent=2))
    print(f"\nModelNet ({dm.num_classes} classes, {cfg['group']} / {res['backend']}, train rot {cfg['rotation']}, "
          f"test rot {cfg['test_rotation']}): test accuracy {m['test_acc']:.4f} (chance {1 / dm.num_classes:.3f}); "
          f"{m['epochs']} epochs in {m['train_seconds']:.1f} s; best {m['best_checkpoint']}")
    return res


def main(argv: Sequence[str] | None = None) -> int:
    run(resolve(build_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
