"""Command line of the ModelNet task: ``python -m steerable.tasks modelnet [--preset demo|full] ...``.

Every setting is declared once in :data:`SETTINGS`; settings resolve in order: the declared defaults
(the ``full`` run), the preset (``demo`` when none is named), a ``--config`` YAML, then flags.
Writes ``checkpoints/`` (best by ``val_acc``, ``last.ckpt``), ``csv/version_*/metrics.csv``
(learning curves beside it) and ``results.json`` to ``--out-dir``;
``--resume PATH`` continues a run; prints the test accuracy.  ``--synthetic`` first writes generated
primitive shapes to ``--root`` (offline smoke runs).
"""

from __future__ import annotations

from typing import Any

from ..settings import (
    Setting,
    TaskSettings,
    equivariant_model_settings,
    fraction,
    non_negative,
    positive,
    run_section,
    section,
)
from ..task import Task

__all__ = ["PRESETS", "SETTINGS", "TASK", "build_parser", "resolve", "run", "main"]

_ROTATIONS = ("none", "z", "so3")
_DATA = section(
    "data",
    root=Setting(
        "data/modelnet40", "dataset root: raw/<class>/{train,test}/*.off (downloaded if missing)", metavar="DIR"
    ),
    name=Setting("40", "ModelNet10 or ModelNet40 (the download)", choices=("10", "40")),
    num_points=Setting(1024, "points sampled per shape", check=positive),
    batch_size=Setting(32, "shapes per batch", check=positive),
    rotation=Setting("none", "rotation augmentation of the training shapes", choices=_ROTATIONS),
    test_rotation=Setting("none", "rotation of the validation and test shapes", choices=_ROTATIONS),
    val_fraction=Setting(0.1, "part of the training set held out for validation", check=fraction),
    seed=Setting(0, "seed of the validation split"),
)
_OFFLINE = section(
    "offline data",
    synthetic=Setting(False, "first write generated primitive shapes to ROOT/raw (offline smoke runs)"),
)
_MODEL = section(
    "model",
    **equivariant_model_settings(
        group="SO(3)",
        group_help=(
            'symmetry group on R^3: "SO(3)", "O(3)" or an axial subgroup by Schoenflies name, "Cs", "Ci", '
            '"Cinf" (= "SO(2)" about z), "Cinfv" (= "O(2)"), "Dinf", "Cinfh", "Dinfh" (the paper\'s sweep: '
            "configs/modelnet_groups/); any name st.group knows on R^3"
        ),
        hidden_scalars=64,
        hidden_vectors=16,
        kernel_hidden=32,
        kernel_layers=1,
        radial_features=8,
    ),
    stages=Setting(3, "downsampling stages", check=positive),
    ratio=Setting(0.25, "fraction of the points each stage keeps", check=positive),
    k=Setting(16, "neighbours of each point", check=positive),
    sampling=Setting("fps", "downsampling: farthest points or random", choices=("fps", "random")),
    max_radius=Setting(1.0, "range of the radial basis (the shapes lie in the unit ball)", check=positive),
)
_TRAINING = section(
    "training",
    epochs=Setting(200, "epochs; with --resume the total, counting the checkpoint's", check=positive),
    lr=Setting(1e-3, "AdamW learning rate, cosine-annealed to 0", check=positive),
    weight_decay=Setting(0.0, "AdamW weight decay", check=non_negative),
    model_seed=Setting(0, "seed of the weights and of the shuffling"),
)

#: Presets, as changes to the declared defaults (the ``full`` ModelNet-40 run).
PRESETS: dict[str, dict[str, Any]] = {
    "full": {},
    "demo": dict(
        epochs=25,
        batch_size=8,
        num_points=128,
        hidden_scalars=8,
        hidden_vectors=4,
        stages=2,
        k=8,
        lr=5e-3,
        kernel_hidden=8,
        out_dir="runs/modelnet_demo",
    ),
}

SETTINGS = TaskSettings(
    "modelnet",
    "Train and test a ModelNet point-cloud classifier (steerable point convolutions).",
    [_DATA, _OFFLINE, _MODEL, _TRAINING, run_section("runs/modelnet_full")],
    PRESETS,
)


def _synthetic(cfg: dict[str, Any]) -> bool:
    if cfg["synthetic"]:
        from .data import write_synthetic_modelnet

        write_synthetic_modelnet(cfg["root"], seed=cfg["seed"])
    return False


def _datamodule(cfg: dict[str, Any]):
    from .data import ModelNetDataModule

    return ModelNetDataModule(**SETTINGS.select(cfg, "data"), shuffle_seed=cfg["model_seed"])


def _module(cfg: dict[str, Any], dm):
    from .lit import ModelNetModule

    return ModelNetModule(
        dm.num_classes,
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"],
        epochs=cfg["epochs"],
        **SETTINGS.select(cfg, "model"),
    )


def _results(cfg: dict[str, Any], dm, m: dict[str, Any]) -> dict[str, Any]:
    return {
        "group": cfg["group"],
        "backend": cfg["backend"] or "auto",
        "num_classes": dm.num_classes,
        "rotation": cfg["rotation"],
        "test_rotation": cfg["test_rotation"],
        **m,
    }


def _summary(r: dict[str, Any]) -> str:
    return (
        f"ModelNet ({r['num_classes']} classes, {r['group']} / {r['backend']}, train rot {r['rotation']}, "
        f"test rot {r['test_rotation']}): test accuracy {r['test_acc']:.4f} (chance {1 / r['num_classes']:.3f}); "
        f"{r['epochs']} epochs in {r['train_seconds']:.1f} s; best {r['best_checkpoint']}"
    )


TASK = Task(
    SETTINGS,
    monitor="val_acc",
    mode="max",
    datamodule=_datamodule,
    module=_module,
    results=_results,
    summary=_summary,
    before=_synthetic,
)
build_parser, resolve, run, main = TASK.build_parser, TASK.resolve, TASK.run, TASK.main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
