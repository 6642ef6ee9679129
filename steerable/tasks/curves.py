"""Dense learning curves of a run, from Lightning's sparse CSV logs.

Lightning's ``CSVLogger`` writes one row per logging event (step rows, validation rows, the test
row), each with most columns empty, and a resumed run starts a new ``csv/version_N`` folder.
:func:`read_curves` merges every version into one value per epoch and metric (the epoch-level
``train_*`` and ``val_*`` metrics; ``train_mse_epoch`` is named ``train_mse``); :func:`write_curves`
writes them beside the latest ``metrics.csv`` as ``curves.csv`` (one row per epoch), ``curves.json``
(``{"epoch": [...], metric: [...]}``, ``null`` where an epoch has no value) and ``curves.png``
(:func:`steerable.viz.plot_learning_curves`; skipped with a one-line note without matplotlib).
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

__all__ = ["read_curves", "write_curves"]

_PREFIXES = ("train_", "val_")


def _version(path: Path) -> int:
    match = re.fullmatch(r"version_(\d+)", path.parent.name)
    return int(match.group(1)) if match else -1


def read_curves(csv_root: str | Path) -> dict[str, list]:
    """``{"epoch": [0, 1, ...], "train_mse": [...], "val_mse": [...], ...}`` from every
    ``csv_root/version_*/metrics.csv`` (later versions, i.e. resumed runs, win for an epoch)."""
    per_epoch: dict[int, dict[str, float]] = {}
    names: list[str] = []
    for path in sorted(Path(csv_root).glob("version_*/metrics.csv"), key=_version):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if not row.get("epoch"):
                    continue
                epoch = int(float(row["epoch"]))
                for key, value in row.items():
                    if not value or not key.startswith(_PREFIXES) or key.endswith("_step"):
                        continue
                    name = key[: -len("_epoch")] if key.endswith("_epoch") else key
                    if name not in names:
                        names.append(name)
                    per_epoch.setdefault(epoch, {})[name] = float(value)
    names.sort(key=lambda n: not n.startswith("train_"))  # train_*, then val_*, each in order of appearance
    epochs = sorted(per_epoch)
    curves: dict[str, list] = {"epoch": epochs}
    for name in names:
        curves[name] = [per_epoch[e].get(name) for e in epochs]
    return curves


def write_curves(csv_root: str | Path, log_dir: str | Path, *, title: str | None = None) -> dict[str, str | None]:
    """Write ``curves.csv``, ``curves.json`` and ``curves.png`` into ``log_dir``; returns their
    paths as ``curves_csv``, ``curves_json``, ``curves_png`` (``None`` when not written)."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    curves = read_curves(csv_root)
    names = [k for k in curves if k != "epoch"]
    csv_path, json_path, png_path = log_dir / "curves.csv", log_dir / "curves.json", log_dir / "curves.png"
    with open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", *names])
        for i, epoch in enumerate(curves["epoch"]):
            writer.writerow([epoch, *("" if curves[n][i] is None else repr(curves[n][i]) for n in names)])
    clean = {
        k: [None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v for v in vals]
        for k, vals in curves.items()
    }
    json_path.write_text(json.dumps(clean, indent=1))
    files: dict[str, str | None] = {"curves_csv": str(csv_path), "curves_json": str(json_path), "curves_png": None}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("  (learning-curve plot skipped: matplotlib is not installed; pip install 'steerable[viz]')")
        return files
    from ..viz import plot_learning_curves, save

    if curves["epoch"]:
        save(plot_learning_curves(curves, title=title), png_path)
        files["curves_png"] = str(png_path)
    return files
