"""Command line of the N-body task: ``python -m steerable.tasks nbody [--preset demo|full] ...``.

Every setting is declared once in :data:`SETTINGS` (flags, YAML keys, defaults, help); settings
resolve in order: the declared defaults (the ``full`` benchmark run), the preset (:data:`PRESETS`;
``demo`` when none is named: about 1 minute on 2 CPU cores, against about 25 minutes for
``--preset full``), a YAML ``--config`` file (keys are the setting names), then explicit flags.
The run writes to ``--out-dir``: ``checkpoints/`` (``last.ckpt`` and the best by ``val_mse``),
``csv/version_*/metrics.csv`` with the learning curves beside it and ``results.json``;
``--resume PATH`` continues a run from a checkpoint (exactly: same weights as without the
interruption).

At the end it prints the test MSE of positions, the constant-velocity baseline ``x + v t`` on the
same test set, and the model's equivariance errors on test inputs.
"""

from __future__ import annotations

from typing import Any

from ..settings import (
    ENVELOPE_WIDTH,
    Setting,
    TaskSettings,
    equivariant_model_settings,
    non_negative,
    positive,
    run_section,
    section,
)
from ..task import Task

__all__ = ["PRESETS", "SETTINGS", "TASK", "build_parser", "resolve", "run", "main"]

_DATA = section(
    "data",
    seed=Setting(43, "data seed (the train/valid/test splits use seed, seed+1, seed+2)"),
    data_dir=Setting("data/nbody", "cache of generated splits", metavar="DIR"),
    npy_dir=Setting(
        None, "folder with the benchmark's loc_/vel_/edges_/charges_ .npy files to use instead", str, metavar="DIR"
    ),
    npy_suffix=Setting(None, 'suffix of those files, e.g. "_charged5_initvel1small"; none: detect it', str),
    n_train=Setting(3000, "training trajectories", check=positive),
    n_val=Setting(2000, "validation trajectories", check=positive),
    n_test=Setting(2000, "test trajectories", check=positive),
    frame_in=Setting(30, "input frame; frames are 100 integration steps of dt = 0.001 apart", check=non_negative),
    frame_out=Setting(40, "target frame", check=positive),
    train_frame_shift=Setting(
        5,
        "also train on the frame pairs shifted by up to this many frames, (frame_in + s, frame_out + s) "
        "for |s| <= N: the same training trajectories and horizon, 2N + 1 samples per trajectory and "
        "epoch (0: the benchmark's single pair); validation and test keep the single pair",
        check=non_negative,
    ),
    batch_size=Setting(100, "systems per batch", check=positive),
)
_EXPORT = section(
    "export",
    write_npy=Setting(
        None, "write the generated splits in the benchmark's .npy format to DIR and exit", str, metavar="DIR"
    ),
)
_MODEL = section(
    "model",
    **equivariant_model_settings(
        group="O(3)",
        group_help='symmetry group, e.g. "O(3)", "SO(3)"',
        hidden_scalars=8,
        hidden_vectors=8,
        kernel_hidden=16,
        kernel_layers=1,
        radial_features=8,
    ),
    layers=Setting(4, "layers (at least 2)", check=positive),
    kernel_basis=Setting(16, "basis kernels per representation pair (0: dense kernels)", check=non_negative),
    max_radius=Setting(4.0, "range of the radial basis (systems span about 5)", check=positive),
    node_conditioning=Setting(False, "feed both endpoints' scalar features to the kernels (non-linear messages)"),
    relative_velocity=Setting(True, "feed each edge's closing speed and relative speed to the kernels"),
    velocity_attribute=Setting(False, "feed each edge's relative velocity (a vector) to the kernels"),
    galilean_inputs=Setting(True, "node inputs use velocities relative to the system's mean velocity"),
    velocity_kernel=Setting(
        True, "add an implicit kernel of each particle's velocity applied to its features to every layer"
    ),
    nonlinear_messages=Setting(
        True, "per-edge gated messages (steerable.MessageBlock) instead of linear convolution messages"
    ),
    position_updates=Setting(
        True, "hidden layers move the positions the next kernels see (learned multi-step integrator)"
    ),
    envelope_width=ENVELOPE_WIDTH,
)
_TRAINING = section(
    "training",
    epochs=Setting(24, "epochs; with --resume the total, counting the checkpoint's", check=positive),
    lr=Setting(2e-3, "Adam learning rate, cosine-annealed to 0", check=positive),
    weight_decay=Setting(0.0, "Adam weight decay", check=non_negative),
    model_seed=Setting(0, "seed of the weights and of the shuffling"),
    compile=Setting(
        False,
        "compile the training steps with torch.compile (Inductor): ~2x the eager throughput on one CPU "
        "thread after minutes of compilation (cached on disk); evaluation stays eager",
    ),
)
_EVALUATION = section(
    "evaluation",
    equivariance_batches=Setting(2, "test batches on which the equivariance error is measured", check=non_negative),
    equivariance_elements=Setting(4, "group elements sampled per measured batch", check=non_negative),
)

#: Presets, as changes to the declared defaults (which are the ``full`` run, the benchmark's split).
#: ``demo`` finishes in a few minutes on 2 CPU cores: smaller data, linear-message layers.
PRESETS: dict[str, dict[str, Any]] = {
    "full": {},
    "demo": dict(
        n_train=500,
        train_frame_shift=0,
        n_val=200,
        n_test=500,
        epochs=100,
        batch_size=50,
        lr=3e-3,
        layers=3,
        kernel_hidden=8,
        kernel_basis=8,
        relative_velocity=False,
        nonlinear_messages=False,
        galilean_inputs=False,
        position_updates=False,
        velocity_kernel=False,
        out_dir="runs/nbody_demo",
    ),
}

SETTINGS = TaskSettings(
    "nbody",
    "Train and test the charged N-body task (EGNN / SEGNN benchmark, our simulator).",
    [_DATA, _MODEL, _TRAINING, _EVALUATION, _EXPORT, run_section("runs/nbody_full")],
    PRESETS,
)


def _write_npy(cfg: dict[str, Any]) -> bool:
    """``--write-npy DIR``: write the three splits as the benchmark's files and end the run."""
    if not cfg["write_npy"]:
        return False
    from .data import load_or_generate, write_npy_split

    for split, n in (("train", cfg["n_train"]), ("valid", cfg["n_val"]), ("test", cfg["n_test"])):
        traj = load_or_generate(cfg["data_dir"], split, n, cfg["seed"], progress=cfg["verbose"])
        for path in write_npy_split(cfg["write_npy"], split, traj):
            print(path)
    return True


def _datamodule(cfg: dict[str, Any]):
    from .lit import NBodyDataModule

    return NBodyDataModule(**SETTINGS.select(cfg, "data"), progress=cfg["verbose"], shuffle_seed=cfg["model_seed"])


def _module(cfg: dict[str, Any], dm):
    from .lit import NBodyModule

    return NBodyModule(
        model=SETTINGS.select(cfg, "model"),
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"],
        compile=cfg["compile"],
        horizon=dm.horizon,
        **SETTINGS.select(cfg, "evaluation"),
    )


def _results(cfg: dict[str, Any], dm, m: dict[str, Any]) -> dict[str, Any]:
    return {
        "group": cfg["group"],
        "backend": cfg["backend"] or "auto",
        "preset": cfg["preset"],
        "n_train": cfg["n_train"],
        "n_val": cfg["n_val"],
        "n_test": cfg["n_test"],
        "epochs": m["epochs"],
        "global_step": m["global_step"],
        "test_mse": m["test_mse"],
        "test_cv_mse": m["test_cv_mse"],
        "test_equiv_displacement": m.get("test_equiv_displacement"),
        "test_equiv_position": m.get("test_equiv_position"),
        "best_checkpoint": m["best_checkpoint"],
        "last_checkpoint": m["last_checkpoint"],
        "data_seconds": m["data_seconds"],
        "train_seconds": m["train_seconds"],
        "horizon": dm.horizon,
    }


def _summary(r: dict[str, Any]) -> str:
    ratio = r["test_mse"] / r["test_cv_mse"] if r["test_cv_mse"] else float("nan")
    lines = [
        f"N-body ({r['preset']}, {r['group']} / {r['backend']}): {r['n_test']} test systems, horizon {r['horizon']:g}",
        f"  test MSE (positions)          {r['test_mse']:.6f}",
        f"  constant velocity x + v t     {r['test_cv_mse']:.6f}   (model / baseline = {ratio:.3f})",
    ]
    if r.get("test_equiv_displacement") is not None:
        lines.append(
            f"  equivariance (rel. error)     displacement {r['test_equiv_displacement']:.2e}, "
            f"position {r['test_equiv_position']:.2e}  (group elements + translations, float32)"
        )
    lines.append(
        f"  data ready in {r['data_seconds']:.1f} s; trained {r['epochs']} epochs / {r['global_step']} steps "
        f"in {r['train_seconds']:.1f} s"
    )
    lines.append(f"  checkpoints: best {r['best_checkpoint']}, last {r['last_checkpoint']}")
    return "\n".join(lines)


TASK = Task(
    SETTINGS,
    monitor="val_mse",
    mode="min",
    datamodule=_datamodule,
    module=_module,
    results=_results,
    summary=_summary,
    before=_write_npy,
)
build_parser, resolve, run, main = TASK.build_parser, TASK.resolve, TASK.run, TASK.main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
