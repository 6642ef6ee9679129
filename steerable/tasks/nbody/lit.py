"""Lightning wrappers for the N-body task: :class:`NBodyDataModule` and :class:`NBodyModule`.

Metrics (all MSE of positions, mean over systems, particles and the 3 axes, the benchmark's unit):
``train_mse``, ``val_mse``, ``test_mse``; the constant-velocity baseline ``pos + vel * horizon`` on
the same samples as ``val_cv_mse`` / ``test_cv_mse``; the equivariance of the model on the first
test batches (rotations/reflections sampled from the group, plus random translations) as
``test_equiv_displacement`` and ``test_equiv_position`` (relative errors, see
:func:`.model.equivariance_error`).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from ..optim import adam
from ..trainer import train_sampler
from .compiled import TrainingCompiler
from .data import DEFAULT_SEED, DEFAULT_SIZES, NBodyDataset, load_npy_split, load_or_generate
from .model import build_nbody_net, equivariance_error
from .simulate import SimulationConfig

__all__ = ["NBodyDataModule", "NBodyModule"]


class NBodyDataModule(L.LightningDataModule):
    """Train/valid/test splits of the charged N-body task.

    Args:
        data_dir: cache folder of generated splits (created when missing).
        n_train, n_val, n_test: trajectories used per split (the first ones of each split).
        batch_size: systems per batch.
        seed: data seed (split seeds are ``seed``, ``seed + 1``, ``seed + 2``).
        frame_in, frame_out: input and target frames (30 -> 40: 1000 integration steps).
        npy_dir: folder of the benchmark's ``.npy`` files to use instead of generated data.
        npy_suffix: their suffix (e.g. ``"_charged5_initvel1small"``), ``None`` to detect it.
        num_workers: DataLoader workers (0: the data is small tensors in memory).
        progress: show the simulation progress bar when generating.
        shuffle_seed: seed of the training order (one per ``(shuffle_seed, epoch)``, see
            :func:`~steerable.tasks.trainer.train_sampler`).
        train_frame_shift: ``k > 0`` also trains on the pairs ``(frame_in + s, frame_out + s)``,
            ``0 < |s| <= k``, of the same training trajectories (``2k + 1`` samples per trajectory
            and epoch); validation and test keep the benchmark's single pair.
    """

    def __init__(
        self,
        data_dir: str = "data/nbody",
        n_train: int = DEFAULT_SIZES["train"],
        n_val: int = DEFAULT_SIZES["valid"],
        n_test: int = DEFAULT_SIZES["test"],
        batch_size: int = 100,
        seed: int = DEFAULT_SEED,
        frame_in: int = 30,
        frame_out: int = 40,
        npy_dir: str | None = None,
        npy_suffix: str | None = None,
        num_workers: int = 0,
        progress: bool = False,
        shuffle_seed: int = 0,
        train_frame_shift: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.sizes = {"train": n_train, "valid": n_val, "test": n_test}
        self.datasets: dict[str, NBodyDataset] = {}
        self.generation_seconds = 0.0

    @property
    def horizon(self) -> float:
        """Prediction horizon in time units (1.0 for frames 30 -> 40)."""
        return SimulationConfig().horizon(self.hparams.frame_in, self.hparams.frame_out)

    def _load(self, split: str) -> NBodyDataset:
        hp = self.hparams
        if hp.npy_dir:
            traj = load_npy_split(hp.npy_dir, split, hp.npy_suffix, n_traj=self.sizes[split])
        else:
            traj = load_or_generate(hp.data_dir, split, self.sizes[split], hp.seed, progress=hp.progress)
            self.generation_seconds += traj.seconds
        if len(traj) < self.sizes[split]:
            raise ValueError(f"{split}: asked for {self.sizes[split]} trajectories, the files hold {len(traj)}")
        k = hp.train_frame_shift if split == "train" else 0
        return NBodyDataset(traj, hp.frame_in, hp.frame_out, shifts=range(-k, k + 1))

    def prepare_data(self) -> None:
        if not self.hparams.npy_dir:
            for split in ("train", "valid", "test"):
                if self.sizes[split] > 0:
                    hp = self.hparams
                    t = load_or_generate(hp.data_dir, split, self.sizes[split], hp.seed, progress=hp.progress)
                    self.generation_seconds += t.seconds

    def setup(self, stage: str | None = None) -> None:
        needed = {"fit": ("train", "valid"), "validate": ("valid",), "test": ("test",), "predict": ("test",)}
        for split in needed.get(stage, ("train", "valid", "test")) if stage else ("train", "valid", "test"):
            if split not in self.datasets:
                self.datasets[split] = self._load(split)

    def _loader(self, split: str, train: bool) -> torch.utils.data.DataLoader:
        sampler = train_sampler(self.datasets[split], self.trainer, self.hparams.shuffle_seed) if train else None
        return torch.utils.data.DataLoader(
            self.datasets[split],
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            num_workers=self.hparams.num_workers,
            drop_last=False,
        )

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("valid", False)

    def test_dataloader(self):
        return self._loader("test", False)


class NBodyModule(L.LightningModule):
    """Trains an :class:`~.model.NBodyNet` with the MSE of predicted positions.

    Args:
        model: the task's model settings (:func:`~.model.build_nbody_net` keyword arguments; the
            ``model`` section of ``python -m steerable.tasks nbody --help``).
        lr: Adam learning rate (cosine-annealed to 0 over ``max_epochs``).
        weight_decay: Adam weight decay.
        horizon: prediction horizon in time units, for the constant-velocity baseline.
        equivariance_batches: number of test batches on which equivariance is measured.
        equivariance_elements: group elements sampled per measured batch.
        velocity_skip: add ``a * v`` to the displacement, ``a`` learnable and initialised to
            ``horizon`` (see :class:`~.model.NBodyNet`).
        compile: run the training steps' forward (and so backward) through ``torch.compile``
            (:class:`~.compiled.TrainingCompiler`; same values up to float round-off); evaluation
            stays eager.
    """

    def __init__(
        self,
        model: dict[str, Any] | None = None,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        horizon: float = 1.0,
        equivariance_batches: int = 2,
        equivariance_elements: int = 4,
        velocity_skip: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_nbody_net(**(model or {}), velocity_skip=horizon if velocity_skip else None)
        self._equiv: dict[str, float] = {}
        self._compiler = TrainingCompiler() if compile else None

    def forward(self, pos: torch.Tensor, vel: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        if self._compiler is not None:
            return self._compiler(self.model, pos, vel, charges)
        return self.model(pos, vel, charges)

    def _step(self, batch, prefix: str) -> torch.Tensor:
        pos, vel, charges, target = batch
        mse = torch.nn.functional.mse_loss(self(pos, vel, charges), target)
        bs = pos.shape[0]
        on_step = prefix == "train"
        # sync_dist: every rank of a multi-process run sees the mean over all ranks (same best checkpoint)
        self.log(f"{prefix}_mse", mse, prog_bar=True, on_step=on_step, on_epoch=True, batch_size=bs, sync_dist=True)
        if prefix != "train":
            cv = torch.nn.functional.mse_loss(pos + vel * self.hparams.horizon, target)
            self.log(f"{prefix}_cv_mse", cv, on_epoch=True, batch_size=bs, sync_dist=True)
        return mse

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def on_test_epoch_start(self) -> None:
        self._equiv = {}

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")
        if batch_idx < self.hparams.equivariance_batches:
            pos, vel, charges, _ = batch
            gen = torch.Generator().manual_seed(1000 + batch_idx)
            with torch.inference_mode(False), torch.no_grad():
                errs = equivariance_error(
                    self.model,
                    pos.clone(),
                    vel.clone(),
                    charges.clone(),
                    self.hparams.equivariance_elements,
                    generator=gen,
                )
            for key, value in errs.items():
                self._equiv[key] = max(self._equiv.get(key, 0.0), value)

    def on_test_epoch_end(self) -> None:
        for key, value in self._equiv.items():
            self.log(f"test_equiv_{key}", value, sync_dist=True, reduce_fx="max")

    def configure_optimizers(self):
        opt = adam(self.parameters(), self.hparams.lr, self.hparams.weight_decay)
        epochs = self.trainer.max_epochs if self.trainer is not None and self.trainer.max_epochs else 1
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
