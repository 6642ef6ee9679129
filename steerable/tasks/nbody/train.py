"""Command line of the N-body task: ``python -m steerable.tasks nbody [--preset demo|full] ...``.

Settings are resolved in order: the preset (:data:`PRESETS`), then a YAML ``--config`` file (keys
are the long option names with ``_``), then explicit flags.  The run writes to ``--out-dir``:
``checkpoints/`` (``last.ckpt`` and the best by ``val_mse``), ``csv/version_*/metrics.csv`` and
``results.json``; ``--resume PATH`` continues a run from a checkpoint (epoch and global step go on).

At the end it prints the test MSE of positions, the constant-velocity baseline ``x + v t`` on the
same test set, and the model's equivariance errors on test inputs.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

from ..settings import add_run_arguments, resolve_settings

__all__ = ["PRESETS", "build_parser", "resolve", "run", "main"]

#: Presets: ``demo`` finishes in a few minutes on 2 CPU cores; ``full`` is the benchmark's split.
PRESETS: dict[str, dict[str, Any]] = {
    "demo": dict(
        n_train=500, n_val=200, n_test=500, epochs=100, batch_size=50, lr=3e-3,
        hidden_scalars=8, hidden_vectors=8, layers=3, kernel_hidden=8, kernel_layers=1,
        out_dir="runs/nbody_demo",
    ),
    "full": dict(
        n_train=3000, n_val=2000, n_test=2000, epochs=150, batch_size=100, lr=2e-3,
        hidden_scalars=8, hidden_vectors=8, layers=4, kernel_hidden=16, kernel_layers=1,
        kernel_basis=16, relative_velocity=True, nonlinear_messages=True, galilean_inputs=True,
        position_updates=True, velocity_kernel=True, out_dir="runs/nbody_full",
    ),
}

DEFAULTS: dict[str, Any] = dict(
    group="O(3)", backend="escnn", seed=43, model_seed=0, data_dir="data/nbody", out_dir="runs/nbody",
    npy_dir=None, npy_suffix=None, frame_in=30, frame_out=40, weight_decay=0.0, radial_features=8,
    kernel_basis=8, node_conditioning=False, relative_velocity=False, position_updates=False,
    velocity_attribute=False, nonlinear_messages=False, galilean_inputs=False, velocity_kernel=False,
    max_radius=4.0, envelope_width=None, resume=None, ema=None, accelerator="auto", devices="auto",
    num_threads=1, progress=True, equivariance_batches=2, equivariance_elements=4, write_npy=None,
)

_MODEL_KEYS = (
    "group", "backend", "hidden_scalars", "hidden_vectors", "layers", "kernel_hidden", "kernel_layers",
    "kernel_basis", "node_conditioning", "relative_velocity", "position_updates", "velocity_attribute",
    "nonlinear_messages", "galilean_inputs", "velocity_kernel", "radial_features",
    "max_radius", "envelope_width", "lr", "weight_decay", "equivariance_batches", "equivariance_elements",
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m steerable.tasks nbody", description=__doc__.split("\n\n")[0])
    add_run_arguments(p, PRESETS)
    a = p.add_argument
    a("--group", help='symmetry group, e.g. "O(3)", "SO(3)" (default O(3))')
    a("--backend", help='backend: "escnn" (default) or "e3nn"; "auto" for the registry choice')
    a("--n-train", type=int); a("--n-val", type=int); a("--n-test", type=int)
    a("--epochs", type=int); a("--batch-size", type=int)
    a("--lr", type=float); a("--weight-decay", type=float)
    a("--hidden-scalars", type=int); a("--hidden-vectors", type=int); a("--layers", type=int)
    a("--kernel-hidden", type=int); a("--kernel-layers", type=int)
    a("--kernel-basis", type=int, help="basis kernels per representation pair (default 8; 0: dense kernels)")
    a("--node-conditioning", action=argparse.BooleanOptionalAction,
      help="feed both endpoints' scalar features to the kernels (non-linear messages)")
    a("--relative-velocity", action=argparse.BooleanOptionalAction, help="feed each edge's closing speed and relative speed to the kernels")
    a("--velocity-attribute", action=argparse.BooleanOptionalAction,
      help="feed each edge's relative velocity (a vector) to the kernels")
    a("--galilean-inputs", action=argparse.BooleanOptionalAction,
      help="node inputs use velocities relative to the system's mean velocity")
    a("--velocity-kernel", action=argparse.BooleanOptionalAction,
      help="add an implicit kernel of each particle's velocity applied to its features to every layer")
    a("--nonlinear-messages", action=argparse.BooleanOptionalAction,
      help="per-edge gated messages (steerable.MessageBlock) instead of linear convolution messages")
    a("--position-updates", action=argparse.BooleanOptionalAction,
      help="hidden layers move the positions the next kernels see (learned multi-step integrator)")
    a("--radial-features", type=int)
    a("--max-radius", type=float); a("--envelope-width", type=float)
    a("--seed", type=int, help="data seed (default 43; splits use seed, seed+1, seed+2)")
    a("--model-seed", type=int, help="seed of weights and shuffling (default 0)")
    a("--frame-in", type=int); a("--frame-out", type=int)
    a("--data-dir", help="cache of generated splits (default data/nbody)")
    a("--npy-dir", help="folder with the benchmark's loc_/vel_/edges_/charges_ .npy files to use instead")
    a("--npy-suffix", help='suffix of those files, e.g. "_charged5_initvel1small" (default: detect)')
    a("--write-npy", metavar="DIR", help="write the generated splits in the benchmark's .npy format and exit")
    a("--equivariance-batches", type=int); a("--equivariance-elements", type=int)
    return p


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """Preset, then ``--config`` YAML, then explicit flags (:func:`~steerable.tasks.settings.resolve_settings`)."""
    return resolve_settings(args, DEFAULTS, PRESETS)


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train and test with resolved settings ``cfg``; returns the results (also in results.json)."""
    import lightning as L
    import torch

    from ..trainer import fit_and_test
    from .data import load_or_generate, write_npy_split
    from .lit import NBodyDataModule, NBodyModule

    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))

    if cfg["write_npy"]:
        for split, n in (("train", cfg["n_train"]), ("valid", cfg["n_val"]), ("test", cfg["n_test"])):
            traj = load_or_generate(cfg["data_dir"], split, n, cfg["seed"], progress=cfg["progress"])
            for path in write_npy_split(cfg["write_npy"], split, traj):
                print(path)
        return {}

    out = Path(cfg["out_dir"]).resolve()
    L.seed_everything(cfg["model_seed"], workers=True, verbose=False)
    dm = NBodyDataModule(
        data_dir=cfg["data_dir"], n_train=cfg["n_train"], n_val=cfg["n_val"], n_test=cfg["n_test"],
        batch_size=cfg["batch_size"], seed=cfg["seed"], frame_in=cfg["frame_in"], frame_out=cfg["frame_out"],
        npy_dir=cfg["npy_dir"], npy_suffix=cfg["npy_suffix"], progress=cfg["progress"],
    )
    t0 = time.perf_counter()
    dm.prepare_data()
    gen_seconds = time.perf_counter() - t0
    module = NBodyModule(horizon=dm.horizon, **{k: cfg[k] for k in _MODEL_KEYS})
    tested = fit_and_test(
        module, dm, out, cfg["epochs"], monitor="val_mse", resume=cfg["resume"], progress=bool(cfg["progress"]),
        accelerator=cfg["accelerator"], devices=cfg["devices"], ema=cfg["ema"],
    )
    results = {
        "group": cfg["group"], "backend": cfg["backend"] or "auto", "preset": cfg["preset"],
        "n_train": cfg["n_train"], "n_val": cfg["n_val"], "n_test": cfg["n_test"], "epochs": tested["epochs"],
        "global_step": tested["global_step"], "test_mse": tested["test_mse"], "test_cv_mse": tested["test_cv_mse"],
        "test_equiv_displacement": tested.get("test_equiv_displacement"),
        "test_equiv_position": tested.get("test_equiv_position"),
        "best_checkpoint": tested["best_checkpoint"], "last_checkpoint": tested["last_checkpoint"],
        "data_seconds": gen_seconds, "train_seconds": tested["train_seconds"], "horizon": dm.horizon,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    _print_results(results)
    return results


def _print_results(r: dict[str, Any]) -> None:
    ratio = r["test_mse"] / r["test_cv_mse"] if r["test_cv_mse"] else float("nan")
    print()
    print(f"N-body ({r['preset']}, {r['group']} / {r['backend']}): {r['n_test']} test systems, horizon {r['horizon']:g}")
    print(f"  test MSE (positions)          {r['test_mse']:.6f}")
    print(f"  constant velocity x + v t     {r['test_cv_mse']:.6f}   (model / baseline = {ratio:.3f})")
    if r.get("test_equiv_displacement") is not None:
        print(
            f"  equivariance (rel. error)     displacement {r['test_equiv_displacement']:.2e}, "
            f"position {r['test_equiv_position']:.2e}  (group elements + translations, float32)"
        )
    print(f"  data ready in {r['data_seconds']:.1f} s; trained {r['epochs']} epochs / {r['global_step']} steps in {r['train_seconds']:.1f} s")
    print(f"  checkpoints: best {r['best_checkpoint']}, last {r['last_checkpoint']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run(resolve(args))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
