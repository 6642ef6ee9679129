"""Shared Lightning driver of all tasks: fit with checkpoints and CSV logs, resume, test.

Layout under ``out_dir``: ``checkpoints/`` (``last.ckpt`` and the best by ``monitor``),
``csv/version_*/metrics.csv``.  The caller writes its own ``results.json``.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

__all__ = ["fit_and_test"]


def fit_and_test(
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    out_dir: str | Path,
    epochs: int,
    *,
    monitor: str = "val_loss",
    mode: str = "min",
    resume: str | None = None,
    progress: bool = True,
    accelerator: str = "auto",
    devices: Any = "auto",
    log_every_n_steps: int = 10,
    limit_train_batches: int | float | None = None,
    ema: float | None = None,
) -> dict[str, Any]:
    """Train ``module`` on ``datamodule`` for ``epochs``, then test the best checkpoint.

    Args:
        module, datamodule: the task's Lightning objects; ``module`` must log ``monitor`` in
            validation and its test metrics with ``self.log`` (prefix ``test_``).
        out_dir: run folder (created).  epochs: ``max_epochs`` (an absolute count; with
            ``resume`` the run continues from the checkpoint's epoch up to it).
        monitor, mode: metric and direction selecting the best checkpoint.
        resume: checkpoint path to continue from, or ``None``.
        progress: progress bars and model summary.
        ema: decay of an exponential moving average of the weights (Lightning's
            ``EMAWeightAveraging``, updated every step) used for validation, checkpoints and
            testing; ``None`` for the raw weights.

    Returns:
        the test metrics (floats) plus ``epochs``, ``global_step``, ``train_seconds``,
        ``best_checkpoint``, ``last_checkpoint``.
    """
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*number of training batches.*")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ckpt = ModelCheckpoint(
        dirpath=out / "checkpoints", filename="epoch{epoch:03d}-" + monitor + "{" + monitor + ":.5f}",
        auto_insert_metric_name=False, monitor=monitor, mode=mode, save_top_k=1, save_last=True,
    )
    callbacks: list[Any] = [ckpt]
    if ema:
        if not 0.0 < ema < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {ema}")
        # buffers are constants here (bases, indices): averaging them would only cost time
        callbacks.append(EMAWeightAveraging(decay=ema, use_buffers=False))
    trainer = L.Trainer(
        max_epochs=epochs, accelerator=accelerator, devices=devices,
        logger=CSVLogger(str(out), name="csv"), callbacks=callbacks, enable_progress_bar=progress,
        enable_model_summary=progress, log_every_n_steps=log_every_n_steps,
        limit_train_batches=limit_train_batches,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    seconds = time.perf_counter() - t0
    best = ckpt.best_model_path or None
    tested = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    metrics: dict[str, Any] = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
    metrics.update(
        epochs=trainer.current_epoch, global_step=trainer.global_step, train_seconds=seconds,
        best_checkpoint=best, last_checkpoint=str(out / "checkpoints" / "last.ckpt"),
    )
    return metrics
