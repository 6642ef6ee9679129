"""One driver for every task: a :class:`Task` is the task's settings plus its task-specific parts.

:meth:`Task.run` does what every task run does, in this order: console noise off (unless
``--verbose``), torch threads, the task's ``before`` step (e.g. writing synthetic data; it may end
the run), the run folder (:func:`claim_out_dir`: a fresh run refuses a folder holding another
run's outputs unless ``--overwrite``), seeds, the data module (prepared and set up, timed), the Lightning module,
training and testing (:func:`~steerable.tasks.trainer.fit_and_test`: checkpoints, CSV logs, exact
resume, EMA, multi-process), then, on rank 0 only, the learning curves (``curves.csv``,
``curves.json``, ``curves.png`` beside ``metrics.csv``), ``results.json`` in the run folder and
the printed summary.  Nothing heavy is imported until :meth:`Task.run`, so ``--help`` stays quick.

Multi-process runs (``--devices 2``): Lightning's DDP starts the other ranks by running the same
command again; those skip the run-folder check and the ``before`` step (rank 0 did them), train
their share, and neither write nor print the results.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .settings import TaskSettings

__all__ = ["Task", "DRIVER_SETTINGS", "TaskError", "DataUnavailable", "claim_out_dir", "RUN_OUTPUTS"]

#: settings :meth:`Task.run` reads itself (declared by :func:`~steerable.tasks.settings.run_section`,
#: plus ``epochs`` and ``model_seed``)
DRIVER_SETTINGS = (
    "out_dir",
    "overwrite",
    "resume",
    "accelerator",
    "devices",
    "num_threads",
    "progress",
    "verbose",
    "ema",
    "epochs",
    "model_seed",
)
#: what a run writes in its folder (``--overwrite`` deletes exactly these)
RUN_OUTPUTS = ("checkpoints", "csv", "results.json")

Config = Mapping[str, Any]


class TaskError(Exception):
    """A problem of the run's settings or environment that the user fixes (the message says how);
    the command line prints it as one line and exits with status 2."""


class DataUnavailable(TaskError):
    """A task's data is neither on disk nor downloadable (the message names ``--root``)."""


def claim_out_dir(out: Path, resume: str | None, overwrite: bool) -> None:
    """Make ``out`` this run's folder, or raise :class:`TaskError`.

    * a fresh run (no ``resume``) needs a folder without a run's outputs (:data:`RUN_OUTPUTS`);
      with ``overwrite`` those are deleted first (other files are left alone);
    * ``resume`` must be an existing file, and either inside ``out`` (continuing that run, whose
      ``last.ckpt`` is then overwritten, never versioned as ``last-v1.ckpt``) or ``out`` must be
      free of another run's outputs.
    """
    present = [name for name in RUN_OUTPUTS if (out / name).exists()]
    if resume is not None:
        ckpt = Path(resume).resolve()
        if not ckpt.is_file():
            raise TaskError(f"--resume {resume}: no such checkpoint file")
        if present and out not in ckpt.parents:
            raise TaskError(
                f"--out-dir {out} holds another run ({', '.join(present)}) and --resume {resume} is not "
                "one of its checkpoints: resume into the checkpoint's own run folder or an empty one"
            )
        return
    if present and not overwrite:
        raise TaskError(
            f"--out-dir {out} already holds a run ({', '.join(present)}): pass another --out-dir, "
            "--overwrite to replace it, or --resume PATH to continue it"
        )
    for name in present:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


@dataclasses.dataclass(frozen=True)
class Task:
    """A task: its settings and the parts of a run that differ between tasks.

    Args:
        settings: the declaration (:class:`~steerable.tasks.settings.TaskSettings`).
        monitor, mode: the validation metric that selects the best checkpoint, ``"min"`` or ``"max"``.
        datamodule: ``cfg -> LightningDataModule``.
        module: ``(cfg, datamodule) -> LightningModule`` (called after the data is set up, so it can
            read statistics such as the number of classes).
        results: ``(cfg, datamodule, metrics) -> dict`` written to ``results.json``; ``metrics`` holds
            the test metrics, ``epochs``, ``global_step``, ``train_seconds``, ``best_checkpoint``,
            ``last_checkpoint`` and ``data_seconds``.  The driver adds ``results_json``,
            ``metrics_csv`` and ``curves`` (paths) to what it returns.
        summary: ``results -> str`` printed at the end (the driver adds a line naming the files).
        before: ``cfg -> bool``, run before anything else; ``True`` ends the run there (returning ``{}``).
    """

    settings: TaskSettings
    monitor: str
    mode: str
    datamodule: Callable[[Config], Any]
    module: Callable[[Config, Any], Any]
    results: Callable[[Config, Any, dict[str, Any]], dict[str, Any]]
    summary: Callable[[dict[str, Any]], str]
    before: Callable[[Config], bool] | None = None

    def __post_init__(self) -> None:
        missing = [name for name in DRIVER_SETTINGS if name not in self.settings.settings]
        if missing:
            raise ValueError(f"task {self.settings.task!r} does not declare the driver's settings {missing}")
        if self.mode not in ("min", "max"):
            raise ValueError(f"task {self.settings.task!r}: mode must be 'min' or 'max', got {self.mode!r}")

    def build_parser(self):
        """The task's ``argparse`` parser (:meth:`TaskSettings.build_parser`)."""
        return self.settings.build_parser()

    def resolve(self, args) -> dict[str, Any]:
        """Resolved settings of parsed ``args`` (:meth:`TaskSettings.resolve`)."""
        return self.settings.resolve(args)

    def run(self, cfg: Config, *, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
        """Train and test with resolved settings ``cfg``; returns the results (also in ``results.json``).

        ``callbacks``: further Lightning callbacks.  Raises :class:`TaskError` for an out-dir that
        holds another run, a missing ``--resume`` file or unavailable data.
        """
        import lightning as L
        import torch

        from .curves import write_curves
        from .trainer import fit_and_test, launched_rank, quiet_lightning

        out = Path(cfg["out_dir"]).resolve()
        rank_zero = launched_rank() == 0  # the other ranks start once rank 0 trains: they skip what it did
        quiet_lightning(bool(cfg["verbose"]))
        if cfg["num_threads"]:
            torch.set_num_threads(int(cfg["num_threads"]))
        if rank_zero and self.before is not None and self.before(cfg):
            return {}  # e.g. --write-npy: no training, the run folder is not used
        if rank_zero:
            claim_out_dir(out, cfg["resume"], bool(cfg["overwrite"]))
        L.seed_everything(cfg["model_seed"], workers=True, verbose=False)
        dm = self.datamodule(cfg)
        t0 = time.perf_counter()
        dm.prepare_data()
        dm.setup()
        data_seconds = time.perf_counter() - t0
        module = self.module(cfg, dm)
        metrics = fit_and_test(
            module,
            dm,
            out,
            cfg["epochs"],
            monitor=self.monitor,
            mode=self.mode,
            resume=cfg["resume"],
            progress=bool(cfg["progress"]),
            verbose=bool(cfg["verbose"]),
            accelerator=cfg["accelerator"],
            devices=cfg["devices"],
            ema=cfg["ema"],
            callbacks=callbacks,
        )
        rank, log_dir = metrics.pop("global_rank"), Path(metrics.pop("log_dir"))
        metrics["data_seconds"] = data_seconds
        results = self.results(cfg, dm, metrics)
        if rank != 0:
            return results
        curves = write_curves(out / "csv", log_dir, title=f"{self.settings.task} ({cfg['preset']})")
        files = {"results_json": str(out / "results.json"), "metrics_csv": str(log_dir / "metrics.csv"), **curves}
        results = {**results, **files}
        (out / "results.json").write_text(json.dumps(results, indent=2))
        print()
        print(self.summary(results))
        shown = ", ".join(
            str(Path(files[k]).relative_to(out)) for k in ("metrics_csv", "curves_csv", "curves_png") if files.get(k)
        )
        print(f"  run folder {out}: results.json, {shown}")
        return results

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Command line: parse ``argv``, resolve, run; returns the exit status.

        A bad setting value, a missing ``--config`` file, an out-dir holding another run or
        unavailable data is one line on stderr (what is wrong and what to do), exit status 2.
        """
        prog = f"python -m steerable.tasks {self.settings.task}"
        try:
            cfg = self.settings.parse(argv)
        except (ValueError, FileNotFoundError) as exc:  # the settings' errors name the flag or file
            return _fail(prog, exc)
        try:
            self.run(cfg)
        except TaskError as exc:
            return _fail(prog, exc)
        return 0


def _fail(prog: str, exc: BaseException) -> int:
    print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
    return 2
