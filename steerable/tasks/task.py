"""One driver for every task: a :class:`Task` is the task's settings plus its task-specific parts.

:meth:`Task.run` does what every task run does, in this order: torch threads, the task's ``before``
step (e.g. writing synthetic data; it may end the run), seeds, the data module (prepared and set up,
timed), the Lightning module, training and testing (:func:`~steerable.tasks.trainer.fit_and_test`:
checkpoints, CSV logs, resume, EMA), then ``results.json`` in the run folder and the printed summary.
Nothing heavy is imported until :meth:`Task.run`, so ``--help`` stays quick.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .settings import TaskSettings

__all__ = ["Task", "DRIVER_SETTINGS"]

#: settings :meth:`Task.run` reads itself (declared by :func:`~steerable.tasks.settings.run_section`,
#: plus ``epochs`` and ``model_seed``)
DRIVER_SETTINGS = (
    "out_dir", "resume", "accelerator", "devices", "num_threads", "progress", "ema", "epochs", "model_seed",
)

Config = Mapping[str, Any]


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
            ``last_checkpoint`` and ``data_seconds``.
        summary: ``results -> str`` printed at the end.
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

    def run(self, cfg: Config) -> dict[str, Any]:
        """Train and test with resolved settings ``cfg``; returns the results (also in ``results.json``)."""
        import lightning as L
        import torch

        from .trainer import fit_and_test

        if cfg["num_threads"]:
            torch.set_num_threads(int(cfg["num_threads"]))
        if self.before is not None and self.before(cfg):
            return {}
        L.seed_everything(cfg["model_seed"], workers=True, verbose=False)
        dm = self.datamodule(cfg)
        t0 = time.perf_counter()
        dm.prepare_data()
        dm.setup()
        data_seconds = time.perf_counter() - t0
        module = self.module(cfg, dm)
        out = Path(cfg["out_dir"]).resolve()
        metrics = fit_and_test(
            module, dm, out, cfg["epochs"], monitor=self.monitor, mode=self.mode, resume=cfg["resume"],
            progress=bool(cfg["progress"]), accelerator=cfg["accelerator"], devices=cfg["devices"], ema=cfg["ema"],
        )
        metrics["data_seconds"] = data_seconds
        results = self.results(cfg, dm, metrics)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        print()
        print(self.summary(results))
        return results

    def main(self, argv: Sequence[str] | None = None) -> int:
        """Command line: parse ``argv``, resolve, run; returns the exit status."""
        self.run(self.settings.parse(argv))
        return 0
