"""Lightning module of the ModelNet task: cross-entropy, accuracy."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from ..optim import adam
from .model import ModelNetNet

__all__ = ["ModelNetModule"]


class ModelNetModule(L.LightningModule):
    """Wraps :class:`ModelNetNet`; logs ``{train,val,test}_loss`` and ``{train,val,test}_acc``."""

    def __init__(
        self, num_classes: int, lr: float = 1e-3, weight_decay: float = 0.0, epochs: int = 100, **model: Any
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = ModelNetNet(num_classes, **model)

    def forward(self, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        return self.net(pos, batch)

    def _step(self, data, prefix: str) -> torch.Tensor:
        logits = self.net(data.pos, data.batch)
        loss = torch.nn.functional.cross_entropy(logits, data.y)
        acc = (logits.argmax(-1) == data.y).float().mean()
        bs = int(data.num_graphs)
        self.log(f"{prefix}_loss", loss, prog_bar=True, batch_size=bs, sync_dist=True)
        self.log(f"{prefix}_acc", acc, prog_bar=True, batch_size=bs, sync_dist=True)
        return loss

    def training_step(self, data, batch_idx: int) -> torch.Tensor:
        return self._step(data, "train")

    def validation_step(self, data, batch_idx: int) -> None:
        self._step(data, "val")

    def test_step(self, data, batch_idx: int) -> None:
        self._step(data, "test")

    def configure_optimizers(self):
        opt = adam(self.parameters(), self.hparams.lr, self.hparams.weight_decay, decoupled=True)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.hparams.epochs))
        return {"optimizer": opt, "lr_scheduler": sched}
