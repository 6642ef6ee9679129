"""Command line of the QM9 task: ``python -m steerable.tasks qm9 [--preset demo|full] ...``.

Settings: preset, then ``--config`` YAML (keys = option names with ``_``), then flags.  Writes
``checkpoints/`` (best by ``val_loss`` and ``last.ckpt``), ``csv/version_*/metrics.csv`` and
``results.json`` to ``--out-dir``; ``--resume PATH`` continues a run.  Prints the test MAE in the
literature's units.  ``--synthetic N`` writes a tiny generated QM9-format dataset to ``--root``
first (for offline smoke runs).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from ..settings import add_run_arguments, resolve_settings

__all__ = ["PRESETS", "build_parser", "resolve", "run", "main"]

PRESETS: dict[str, dict[str, Any]] = {
    "demo": dict(epochs=5, batch_size=16, hidden_scalars=8, hidden_vectors=4, layers=3, kernel_hidden=8,
                 out_dir="runs/qm9_demo"),
    "full": dict(epochs=300, batch_size=96, hidden_scalars=64, hidden_vectors=16, layers=7, kernel_hidden=32,
                 out_dir="runs/qm9_full"),
}
DEFAULTS: dict[str, Any] = dict(
    target="U0", root="data/qm9", group="O(3)", backend="escnn", sizes=None, seed=42, model_seed=0, lr=5e-4,
    weight_decay=0.0, kernel_layers=1, radial_features=8, cutoff=5.0, graph="radius", pool="sum",
    envelope_width=None, resume=None, ema=None, accelerator="auto", devices="auto", num_threads=1, progress=True,
    synthetic=None, out_dir="runs/qm9",
)
_MODEL_KEYS = ("group", "backend", "hidden_scalars", "hidden_vectors", "layers", "kernel_hidden", "kernel_layers",
               "radial_features", "cutoff", "graph", "pool", "envelope_width")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steerable.tasks qm9", description=__doc__.split("\n\n")[0])
    add_run_arguments(p, PRESETS)
    a = p.add_argument
    a("--target", help="mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G, cv (or U0_atom, ...)")
    a("--root", help="PyG QM9 root folder (raw/ and processed/)")
    a("--group"); a("--backend")
    a("--sizes", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="split sizes (default 100000 17748 13083, scaled to small data)")
    a("--seed", type=int); a("--model-seed", type=int)
    a("--epochs", type=int); a("--batch-size", type=int); a("--lr", type=float); a("--weight-decay", type=float)
    a("--hidden-scalars", type=int); a("--hidden-vectors", type=int); a("--layers", type=int)
    a("--kernel-hidden", type=int); a("--kernel-layers", type=int); a("--radial-features", type=int)
    a("--cutoff", type=float); a("--graph", choices=["radius", "bond"]); a("--pool", choices=["sum", "mean"])
    a("--envelope-width", type=float)
    a("--synthetic", type=int, metavar="N", help="first write N generated molecules to ROOT/raw (offline smoke test)")
    return p


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Preset, then ``--config`` YAML, then explicit flags (:func:`~steerable.tasks.settings.resolve_settings`)."""
    return resolve_settings(args, DEFAULTS, PRESETS)


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train and test; returns results (also written to ``results.json``)."""
    import lightning as L
    import torch

    from ..trainer import fit_and_test
    from .data import QM9DataModule, write_synthetic_qm9
    from .lit import QM9Module

    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))
    if cfg["synthetic"]:
        write_synthetic_qm9(cfg["root"], int(cfg["synthetic"]), seed=cfg["seed"])
    L.seed_everything(cfg["model_seed"], verbose=False)
    dm = QM9DataModule(cfg["root"], cfg["target"], tuple(cfg["sizes"]) if cfg["sizes"] else None, cfg["seed"], cfg["batch_size"])
    dm.prepare_data()
    dm.setup()
    module = QM9Module(mean=dm.mean, std=dm.std, lr=cfg["lr"], weight_decay=cfg["weight_decay"], epochs=cfg["epochs"],
                       **{k: cfg[k] for k in _MODEL_KEYS})
    m = fit_and_test(module, dm, cfg["out_dir"], cfg["epochs"], monitor="val_loss", resume=cfg["resume"],
                     progress=bool(cfg["progress"]), accelerator=cfg["accelerator"], devices=cfg["devices"], ema=cfg["ema"])
    res = {"target": cfg["target"], "unit": dm.unit, "group": cfg["group"], "backend": cfg["backend"] or "auto",
           "train_std": dm.std, **m}
    Path(cfg["out_dir"]).mkdir(parents=True, exist_ok=True)
    (Path(cfg["out_dir"]) / "results.json").write_text(json.dumps(res, indent=2))
    print(f"\nQM9 {cfg['target']} ({cfg['group']} / {res['backend']}): test MAE {m['test_mae']:.4g} {dm.unit}"
          f" (training std {dm.std:.4g}); {m['epochs']} epochs in {m['train_seconds']:.1f} s; best {m['best_checkpoint']}")
    return res


def main(argv: Sequence[str] | None = None) -> int:
    run(resolve(build_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
