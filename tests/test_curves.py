"""Dense learning curves from Lightning's sparse CSV logs, and their plot."""

from __future__ import annotations

import json

import pytest

from steerable.tasks.curves import read_curves, write_curves

HEADER = "epoch,step,train_mse_step,train_mse_epoch,val_mse,val_cv_mse,test_mse\n"


def _log(folder, rows: str) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text(HEADER + rows)


def test_sparse_rows_and_resumed_versions_merge_into_one_value_per_epoch(tmp_path):
    # version_0: epochs 0-1 of an interrupted run (epoch 1's validation row is the stale one);
    # version_1: the resumed run, from epoch 1 on, with the final test row
    _log(tmp_path / "version_0", "0,4,0.9,,,,\n0,4,,,0.5,0.2,\n0,4,,0.8,,,\n1,9,,,0.45,0.2,\n")
    _log(
        tmp_path / "version_1",
        "1,9,,,0.4,0.2,\n1,9,,0.6,,,\n2,14,0.3,,,,\n2,14,,,0.3,0.2,\n2,14,,0.35,,,\n2,14,,,,,0.33\n",
    )
    curves = read_curves(tmp_path)
    assert curves == {
        "epoch": [0, 1, 2],
        "train_mse": [0.8, 0.6, 0.35],
        "val_mse": [0.5, 0.4, 0.3],
        "val_cv_mse": [0.2, 0.2, 0.2],
    }
    files = write_curves(tmp_path, tmp_path / "version_1", title="toy")
    lines = (tmp_path / "version_1" / "curves.csv").read_text().splitlines()
    assert lines[0] == "epoch,train_mse,val_mse,val_cv_mse" and lines[2] == "1,0.6,0.4,0.2"
    assert json.loads((tmp_path / "version_1" / "curves.json").read_text()) == curves
    if files["curves_png"] is not None:
        assert open(files["curves_png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_learning_curves_panels_and_errors():
    pytest.importorskip("matplotlib")
    from steerable.viz import plot_learning_curves

    fig = plot_learning_curves(
        {"epoch": [0, 1, 2], "train_loss": [1.0, 0.1, 0.01], "val_loss": [1.0, None, 0.05], "val_acc": [0.2, 0.5, 0.7]}
    )
    loss, acc = fig.axes
    assert loss.get_ylabel() == "loss" and loss.get_yscale() == "log"  # spans 100x
    assert acc.get_ylabel() == "acc" and acc.get_yscale() == "linear"
    assert [line.get_label() for line in loss.get_lines()] == ["train", "val"]
    assert len(loss.get_lines()[1].get_xdata()) == 2  # the missing epoch is skipped, not drawn as 0
    fig = plot_learning_curves({"epoch": [0, 1], "val_mse": [0.5, 0.4], "val_cv_mse": [0.2, 0.2]})
    assert len(fig.axes) == 1 and fig.axes[0].get_lines()[1].get_linestyle() == "--"  # the baseline joins mse
    with pytest.raises(ValueError, match="has 1 values for 2 epochs"):
        plot_learning_curves({"epoch": [0, 1], "val_mse": [0.5]})
    with pytest.raises(ValueError, match="no metric"):
        plot_learning_curves({"epoch": [0]})
