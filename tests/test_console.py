"""What a training run prints: quiet by default (progress bar and summary), everything with --verbose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny import tiny_nbody_flags

pytest.importorskip("lightning")

REPO = Path(__file__).resolve().parents[1]
TINY = tiny_nbody_flags()
#: lines of Lightning, torch and our simulator that said nothing to a user (before issue 15)
NOISE = (
    "GPU available",
    "TPU available",
    "Tip:",
    "litlogger",
    "litmodels",
    "_pytree",
    "LeafSpec",
    "simulating",
    "Trainable params",
    "does not have many workers",
)


def _run(tmp_path: Path, name: str, *extra: str) -> tuple[str, Path]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    out = tmp_path / name
    cmd = [
        sys.executable,
        "-m",
        "steerable.tasks",
        "nbody",
        *TINY,
        "--data-dir",
        str(tmp_path / name / "data"),
        "--out-dir",
        str(out),
        *extra,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr, out


def test_demo_run_is_quiet_and_writes_learning_curves(tmp_path):
    text, out = _run(tmp_path, "quiet")
    assert [n for n in NOISE if n in text] == []
    assert "Epoch 1" in text  # Lightning's progress bar is kept
    assert text.count("test MSE (positions)") == 1 and "run folder" in text
    png = next(out.glob("csv/version_0/curves.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100 and image.std() > 0.01
    rows = (out / "csv" / "version_0" / "curves.csv").read_text().splitlines()
    assert rows[0].split(",")[0] == "epoch" and {"train_mse", "val_mse"} <= set(rows[0].split(","))
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"] and all("," * 2 not in r for r in rows[1:])


def test_verbose_brings_the_details_back_and_no_progress_drops_the_bar(tmp_path):
    text, _ = _run(tmp_path, "verbose", "--verbose", "--no-progress")
    assert "GPU available" in text and "simulating" in text and "Trainable params" in text
    assert "Epoch 1" not in text
