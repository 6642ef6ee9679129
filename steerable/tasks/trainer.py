"""Shared Lightning driver of all tasks: fit with checkpoints and CSV logs, resume, test.

Layout under ``out_dir``: ``checkpoints/`` (``last.ckpt`` and the best by ``monitor``),
``csv/version_*/metrics.csv``.  The caller writes its own ``results.json`` (on rank 0).

Multi-process runs (``devices=2``, Lightning DDP: gloo on CPU, NCCL on GPUs) behave as one process:
the tasks log their epoch metrics with ``sync_dist=True``, so every rank sees the same ``monitor``
value and names the best checkpoint alike; the best path is taken from rank 0.  Resuming is exact
(:func:`train_sampler`, :class:`RandomStateCheckpoint`, which keeps every rank's random states): a
run interrupted after epoch ``k`` and resumed ends with the same weights as an uninterrupted run
with the same seed, in one process or several.
"""

from __future__ import annotations

import logging
import os
import random
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

__all__ = ["fit_and_test", "train_sampler", "RandomStateCheckpoint", "quiet_lightning", "launched_rank"]

#: warnings that say nothing to a user of the tasks (a Lightning internal deprecation, DDP's note
#: on gradient strides of small parameters; always: Lightning's hints about workers, batch counts
#: and distributed testing)
_NOISE = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    r".*Grad strides do not match bucket view strides.*",
    r".*does not have many workers.*",
    r".*number of training batches.*",
    r".*it is recommended to use `Trainer\(devices=1, num_nodes=1\)`.*",
    r"Checkpoint directory .* exists and is not empty.*",  # resuming: the folder is this run's (Task.run)
)


def quiet_lightning(verbose: bool = False) -> None:
    """Silence Lightning's info lines (GPU/TPU availability, tips, DDP set-up) and known noise
    warnings, unless ``verbose``.  Progress bars are not affected."""
    for pattern in _NOISE[2:] if verbose else _NOISE:  # the first two only without verbose
        warnings.filterwarnings("ignore", pattern)
    level = logging.INFO if verbose else logging.WARNING
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(level)


def train_sampler(dataset: Any, trainer: L.Trainer | None, seed: int) -> torch.utils.data.DistributedSampler:
    """The shuffling sampler of a training set: a new order each epoch, a function of ``(seed, epoch)``.

    A ``DistributedSampler`` over this process's share (``trainer.world_size`` ranks; all of it in
    one process).  Lightning calls its ``set_epoch`` before every epoch, also after a resume, so a
    resumed run sees the same orders as an uninterrupted one (a plain ``shuffle=True`` loader draws
    its order from the global random state, which a checkpoint does not hold).
    """
    world = trainer.world_size if trainer is not None else 1
    rank = trainer.global_rank if trainer is not None else 0
    return torch.utils.data.DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=False
    )


def _random_states() -> dict[str, Any]:
    """This process's global random states (python, numpy, torch, and CUDA's current device when CUDA
    is initialised), as plain types and tensors: checkpoints load with ``torch.load(weights_only=True)``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_random_states(state: dict[str, Any]) -> None:
    """Restore what :func:`_random_states` saved (the CUDA state only where CUDA is available)."""
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _gathered(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rank's ``state``, in rank order (a collective: every rank calls it); ``[state]`` in one process."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [state]
    states: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(states, state)
    return states


def _rank_and_world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class RandomStateCheckpoint(Callback):
    """Saves the global random states (python, numpy, torch, CUDA) of every process in checkpoints and
    restores each process's own on resuming, so randomness drawn during training (e.g. point
    sampling and rotation augmentations, a data loader's worker seeds) continues as without the
    interruption.

    Multi-process runs: Lightning builds the checkpoint on every rank (rank 0 writes it), so
    :meth:`state_dict` gathers the ranks' states (``all_gather_object``: a collective, as Lightning's
    checkpointing already is) and saves them as ``{"ranks": [state of rank 0, rank 1, ...]}``;
    resuming, rank ``r`` restores entry ``r``.  A resume with another number of processes than the
    checkpoint's cannot be exact (the data is split differently): ranks without a saved state keep
    their seeded states, with a warning.  Checkpoints of one-process runs written before (one state,
    no ``"ranks"``) load as rank 0's.

    When: Lightning loads callback states after setting up the model and right before the fit loop,
    whose first act is to create the training loader's iterator (which draws its base seed from
    torch's generator, as the uninterrupted run does after saving); the sanity check in between
    runs under ``isolate_rng`` (it leaves the states as it found them).
    """

    def state_dict(self) -> dict[str, Any]:
        return {"ranks": _gathered(_random_states())}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = list(state_dict["ranks"]) if "ranks" in state_dict else [dict(state_dict)]
        rank, world = _rank_and_world()
        if len(states) != world:
            warnings.warn(
                f"resuming with {world} process(es) from a checkpoint of {len(states)}: the run cannot be "
                "exactly that of an uninterrupted one (data split and random states differ)",
                stacklevel=2,
            )
        if rank < len(states):
            _set_random_states(states[rank])


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
    verbose: bool = False,
    accelerator: str = "auto",
    devices: Any = "auto",
    log_every_n_steps: int = 10,
    limit_train_batches: int | float | None = None,
    ema: float | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train ``module`` on ``datamodule`` for ``epochs``, then test the best checkpoint.

    Args:
        module, datamodule: the task's Lightning objects; ``module`` must log ``monitor`` in
            validation and its test metrics with ``self.log`` (prefix ``test_``), epoch-level
            metrics with ``sync_dist=True``; the training loader should shuffle with
            :func:`train_sampler`.
        out_dir: run folder (created).  epochs: ``max_epochs`` (an absolute count; with
            ``resume`` the run continues from the checkpoint's epoch up to it).
        monitor, mode: metric and direction selecting the best checkpoint.
        resume: checkpoint path to continue from, or ``None``.
        progress: Lightning's progress bar.  verbose: the model summary and Lightning's info lines.
        ema: decay of an exponential moving average of the weights (Lightning's
            ``EMAWeightAveraging``, updated every step) used for validation, checkpoints and
            testing; ``None`` for the raw weights.
        callbacks: further Lightning callbacks.

    Returns:
        the test metrics (floats) plus ``epochs``, ``global_step``, ``train_seconds``,
        ``best_checkpoint``, ``last_checkpoint``, ``log_dir`` (the CSV logger's folder) and
        ``global_rank`` (of this process; 0 in a single-process run).
    """
    quiet_lightning(verbose)
    # Buffers of the models are constants (bases, indices) that every rank builds alike, but some
    # backends register them in an order that depends on the process's hash seed (escnn's basis
    # expansions), and DDP broadcasts buffers by position: rank 0's values would land in other,
    # same-shaped buffers of the other ranks (a non-equivariant model there).  They are not synced.
    module._ddp_params_and_buffers_to_ignore = [name for name, _ in module.named_buffers()]
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ckpt = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="epoch{epoch:03d}-" + monitor + "{" + monitor + ":.5f}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        enable_version_counter=False,  # the run folder is this run's (see Task.run): never last-v1.ckpt
    )
    # Lightning's save_last=True writes last.ckpt only when the best checkpoint changes, so after the
    # last improvement it goes stale and a --resume from it replays epochs.  A second, unmonitored
    # checkpoint overwritten every epoch is the true last one.
    last = ModelCheckpoint(
        dirpath=out / "checkpoints", filename="last", save_top_k=1, monitor=None, enable_version_counter=False
    )
    all_callbacks: list[Any] = [ckpt, last, RandomStateCheckpoint(), *callbacks]
    if ema:
        if not 0.0 < ema < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {ema}")
        # buffers are constants here (bases, indices): averaging them would only cost time
        all_callbacks.append(EMAWeightAveraging(decay=ema, use_buffers=False))
    logger = CSVLogger(str(out), name="csv")
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=devices,
        logger=logger,
        callbacks=all_callbacks,
        enable_progress_bar=progress,
        enable_model_summary=verbose,
        log_every_n_steps=log_every_n_steps,
        limit_train_batches=limit_train_batches,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    seconds = time.perf_counter() - t0
    best = trainer.strategy.broadcast(ckpt.best_model_path, src=0) or None
    tested = trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False)
    metrics: dict[str, Any] = {k: float(v) for k, v in (tested[0] if tested else {}).items()}
    metrics.update(
        epochs=trainer.current_epoch,
        global_step=trainer.global_step,
        train_seconds=seconds,
        best_checkpoint=best,
        last_checkpoint=str(out / "checkpoints" / "last.ckpt"),
        log_dir=str(Path(logger.log_dir).resolve()),
        global_rank=trainer.global_rank,
    )
    return metrics


def launched_rank() -> int:
    """This process's rank as the launcher set it (``RANK``, else ``LOCAL_RANK`` + ``NODE_RANK``;
    0 without a launcher): known before Lightning starts, e.g. in the processes Lightning's DDP
    starts by running the command again."""
    if os.environ.get("RANK"):
        return int(os.environ["RANK"])
    return int(os.environ.get("LOCAL_RANK") or 0) + int(os.environ.get("NODE_RANK") or 0)
