"""Command line of the QM9 task: ``python -m steerable.tasks qm9 [--preset demo|full] ...``.

Every setting is declared once in :data:`SETTINGS`; settings resolve in order: the declared defaults
(the ``full`` run), the preset (``demo`` when none is named), a ``--config`` YAML (keys = the
setting names), then flags.  Writes ``checkpoints/`` (best by ``val_loss`` and ``last.ckpt``),
``csv/version_*/metrics.csv`` (learning curves beside it) and ``results.json`` to ``--out-dir``;
``--resume PATH`` continues a run.  Prints the test MAE in the
literature's units.  ``--source qm9pack`` reads the real molecules offline from the PyPI package
``qm9pack`` (converted once into ``ROOT/qm9pack``).  ``--synthetic N`` writes a tiny generated
QM9-format dataset to ``--root`` first (for offline smoke runs).
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
from ..task import Task, TaskError

__all__ = ["PRESETS", "SETTINGS", "TASK", "build_parser", "resolve", "run", "main"]

_DATA = section(
    "data",
    target=Setting("U0", "target: mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G, cv (or U0_atom, ...)"),
    source=Setting(
        "pyg",
        "pyg: PyG's QM9 (download into ROOT); qm9pack: the offline PyPI package qm9pack "
        "(pip install qm9pack), converted once into ROOT/qm9pack",
        choices=("pyg", "qm9pack"),
    ),
    root=Setting("data/qm9", "QM9 root folder (PyG: raw/ and processed/; qm9pack: qm9pack/)", metavar="DIR"),
    molecules=Setting(
        None,
        "use only the first N molecules of the source (quick runs; the first are small); the split then scales to them",
        int,
        metavar="N",
        check=positive,
    ),
    sizes=Setting(
        None,
        "the first TRAIN/VAL/TEST molecules of the standard split's parts (100000 17748 13083 of "
        "a permutation seeded with --seed; scaled down to smaller data)",
        int,
        metavar=("TRAIN", "VAL", "TEST"),
        nargs=3,
        check=non_negative,
    ),
    seed=Setting(42, "seed of the random split"),
    batch_size=Setting(32, "molecules per batch", check=positive),
)
_OFFLINE = section(
    "offline data",
    synthetic=Setting(
        None, "first write N generated molecules to ROOT/raw (offline smoke runs)", int, metavar="N", check=positive
    ),
)
_MODEL = section(
    "model",
    **equivariant_model_settings(
        group="O(3)",
        group_help='symmetry group, e.g. "O(3)", "SO(3)"',
        hidden_scalars=64,
        hidden_vectors=16,
        kernel_hidden=32,
        kernel_layers=1,
        radial_features=32,
    ),
    layers=Setting(6, "point convolutions (at least 2)", check=positive),
    cutoff=Setting(
        2.0,
        "radius-graph cutoff in Angstrom, also the kernels' radial range (max_radius) on either graph "
        "(bond graph: 2 covers the longest QM9 bond, 1.75; radius graph: e.g. 5)",
        check=positive,
    ),
    graph=Setting("bond", "edges: the molecule's bonds, or all pairs within the cutoff", choices=("radius", "bond")),
    pool=Setting("sum", "pooling of the atoms' scalars", choices=("sum", "mean")),
    readout=Setting(
        "pooled",
        "pooled: pool the scalars, then the MLP; atom: the MLP per atom, then pool",
        choices=("pooled", "atom"),
    ),
    layer=Setting(
        "conv",
        "conv: point convolutions (linear messages); message: gated messages (steerable.MessageBlock)",
        choices=("conv", "message"),
    ),
    bond_attributes=Setting(True, "condition the kernels on the bond type of each edge (one-hot, 'none' included)"),
    atom_attributes=Setting(True, "condition the kernels on the atom types of both ends of each edge"),
    invariant_width=Setting(
        64, "width of the kernel MLP's invariant network (radial features and attributes)", check=positive
    ),
    envelope_width=ENVELOPE_WIDTH,
)
_TRAINING = section(
    "training",
    epochs=Setting(100, "epochs; with --resume the total, counting the checkpoint's", check=positive),
    lr=Setting(1e-3, "AdamW learning rate, cosine-annealed to 0", check=positive),
    weight_decay=Setting(0.0, "AdamW weight decay", check=non_negative),
    model_seed=Setting(0, "seed of the weights and of the shuffling"),
)

#: Presets, as changes to the declared defaults (the ``full`` run: the implicit-kernel paper's QM9 training,
#: O(3) kernels conditioned on bond and atom attributes, AdamW 1e-3, batch 32, 100 epochs; on the bond graph
#: with the kernels' radial range 2 Å, the longest QM9 bond being 1.75 Å).
PRESETS: dict[str, dict[str, Any]] = {
    "full": {},
    "demo": dict(
        epochs=5, batch_size=16, hidden_scalars=8, hidden_vectors=4, layers=3, kernel_hidden=8, out_dir="runs/qm9_demo"
    ),
}

SETTINGS = TaskSettings(
    "qm9",
    "Train and test one QM9 property (PyG's QM9 or the offline qm9pack, steerable point convolutions).",
    [_DATA, _OFFLINE, _MODEL, _TRAINING, run_section("runs/qm9_full")],
    PRESETS,
)


def _synthetic(cfg: dict[str, Any]) -> bool:
    if cfg["synthetic"] and cfg["source"] != "pyg":
        raise TaskError("QM9: --synthetic writes PyG-format data; use it with --source pyg")
    if cfg["synthetic"]:
        from .data import write_synthetic_qm9

        write_synthetic_qm9(cfg["root"], int(cfg["synthetic"]), seed=cfg["seed"])
    return False


def _datamodule(cfg: dict[str, Any]):
    from .data import QM9DataModule

    return QM9DataModule(**SETTINGS.select(cfg, "data"), shuffle_seed=cfg["model_seed"])


def _module(cfg: dict[str, Any], dm):
    from .lit import QM9Module

    return QM9Module(
        mean=dm.mean,
        std=dm.std,
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"],
        epochs=cfg["epochs"],
        **SETTINGS.select(cfg, "model"),
    )


def _results(cfg: dict[str, Any], dm, m: dict[str, Any]) -> dict[str, Any]:
    return {
        "target": cfg["target"],
        "source": cfg["source"],
        "unit": dm.unit,
        "group": cfg["group"],
        "backend": cfg["backend"] or "auto",
        "train_std": dm.std,
        **m,
    }


def _summary(r: dict[str, Any]) -> str:
    return (
        f"QM9 {r['target']} ({r['group']} / {r['backend']}): test MAE {r['test_mae']:.4g} {r['unit']}"
        f" (training std {r['train_std']:.4g}); {r['epochs']} epochs in {r['train_seconds']:.1f} s; "
        f"best {r['best_checkpoint']}"
    )


TASK = Task(
    SETTINGS,
    monitor="val_loss",
    mode="min",
    datamodule=_datamodule,
    module=_module,
    results=_results,
    summary=_summary,
    before=_synthetic,
)
build_parser, resolve, run, main = TASK.build_parser, TASK.resolve, TASK.run, TASK.main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
