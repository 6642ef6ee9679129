"""Resuming is exact, and every run's outputs are its own (one run per --out-dir)."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("lightning")
from _tiny import tiny_nbody_flags
from lightning.pytorch.callbacks import Callback

from steerable.tasks.nbody.train import TASK, build_parser, main, resolve

TINY = ["--group", "SO(3)", *tiny_nbody_flags(n_train=30, equivariance_elements=1, no_progress=True)]


class _Interrupt(Callback):
    """Stops the run after its first epoch, as a killed job would leave it (last.ckpt of epoch 0)."""

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = True


def _cfg(tmp_path, out: str, *extra: str) -> dict:
    return resolve(
        build_parser().parse_args(
            [*TINY, "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / out), *extra]
        )
    )


def _weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_interrupted_and_resumed_run_equals_uninterrupted_run(tmp_path):
    """Before: the resumed epoch replayed epoch 0's shuffle order (max |dw| 6.5e-3)."""
    whole = TASK.run(_cfg(tmp_path, "whole"))
    part = TASK.run(_cfg(tmp_path, "part"), callbacks=[_Interrupt()])
    assert part["epochs"] == 1
    last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    resumed = TASK.run(_cfg(tmp_path, "part", "--resume", str(last)))
    assert resumed["epochs"] == whole["epochs"] == 2 and resumed["global_step"] == whole["global_step"]
    a, b = _weights(tmp_path / "whole" / "checkpoints" / "last.ckpt"), _weights(last)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a if a[k].is_floating_point())
    assert worst == 0.0, worst  # same operations in the same order: bit-identical on one CPU thread
    assert resumed["test_mse"] == whole["test_mse"]
    # the curves of the resumed run cover both epochs (the first from the interrupted run's log)
    curves = json.loads(open(resumed["curves_json"]).read())
    assert curves["epoch"] == [0, 1] and all(v is not None for v in curves["val_mse"])


def test_a_fresh_run_refuses_a_folder_holding_another_run(tmp_path, capsys):
    """Before: the second run wrote last-v1.ckpt while results.json pointed at the first run's last.ckpt."""
    first = TASK.run(_cfg(tmp_path, "run", "--epochs", "1"))
    assert main([*TINY, "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a run" in err[0] and "--overwrite" in err[0]
    # --overwrite replaces it: one last.ckpt, and results.json and the summary name this run's files
    second = TASK.run(_cfg(tmp_path, "run", "--overwrite"))
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert "last-v1.ckpt" not in names and len(names) == 2 and second["epochs"] == 2 != first["epochs"]
    assert torch.load(second["last_checkpoint"], weights_only=True)["epoch"] == 1
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["last_checkpoint"] == second["last_checkpoint"] and saved["epochs"] == 2
    printed = capsys.readouterr().out
    assert f"run folder {tmp_path / 'run'}: results.json, csv/version_0/metrics.csv" in printed
    # resuming from another folder's checkpoint into this one is refused too
    elsewhere = TASK.run(_cfg(tmp_path, "other", "--epochs", "1"))
    assert (
        main(
            [
                *TINY,
                "--data-dir",
                str(tmp_path / "data"),
                "--out-dir",
                str(tmp_path / "run"),
                "--resume",
                elsewhere["last_checkpoint"],
            ]
        )
        == 2
    )
    assert "is not one of its checkpoints" in capsys.readouterr().err
    assert main([*TINY, "--out-dir", str(tmp_path / "new"), "--resume", str(tmp_path / "nope.ckpt")]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err
