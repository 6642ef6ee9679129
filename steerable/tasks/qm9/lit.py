"""Lightning module of the QM9 task: L1 loss on the standardised target, MAE in the literature's units."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from ..optim import adam
from .model import QM9Net

__all__ = ["QM9Module"]


class QM9Module(L.LightningModule):
    """Wraps :class:`QM9Net`; ``mean``/``std`` (target units) de-standardise predictions.

    Logs ``train_loss``, ``val_loss`` (standardised L1), ``val_mae`` and ``test_mae`` (target units).
    """

    def __init__(
        self,
        mean: float = 0.0,
        std: float = 1.0,
        lr: float = 5e-4,
        weight_decay: float = 0.0,
        epochs: int = 100,
        **model: Any,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = QM9Net(**model)
        self.mean, self.std = mean, std

    def forward(self, batch) -> torch.Tensor:
        """Prediction in target units, ``(B,)``."""
        return self.net(batch) * self.std + self.mean

    def _step(self, batch, prefix: str) -> torch.Tensor:
        pred = self.net(batch)
        target = (batch.y_target.to(pred.dtype) - self.mean) / self.std
        loss = torch.nn.functional.l1_loss(pred, target)
        bs = int(batch.num_graphs)
        self.log(f"{prefix}_loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        if prefix != "train":
            self.log(f"{prefix}_mae", loss * self.std, prog_bar=True, batch_size=bs, sync_dist=True)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self):
        opt = adam(self.parameters(), self.hparams.lr, self.hparams.weight_decay, decoupled=True)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.hparams.epochs))
        return {"optimizer": opt, "lr_scheduler": sched}
