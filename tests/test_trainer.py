"""The training driver (:func:`steerable.tasks.trainer.fit_and_test`) on a toy Lightning module:
which checkpoints it leaves and what they hold."""

from __future__ import annotations

import pytest
import torch

L = pytest.importorskip("lightning")

from steerable.tasks.trainer import fit_and_test  # noqa: E402


class _WorseningModule(L.LightningModule):
    """A linear model whose logged ``val_loss`` grows every epoch: the best checkpoint stays epoch 0."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        return self.layer(x).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", float(self.current_epoch), sync_dist=True)

    def test_step(self, batch, batch_idx):
        (x,) = batch
        self.log("test_loss", self.layer(x).pow(2).mean(), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Data(L.LightningDataModule):
    def _loader(self):
        data = torch.utils.data.TensorDataset(torch.randn(8, 2, generator=torch.Generator().manual_seed(0)))
        return torch.utils.data.DataLoader(data, batch_size=4)

    train_dataloader = val_dataloader = test_dataloader = _loader


def test_last_checkpoint_is_the_last_epoch_even_without_improvement(tmp_path):
    """``last.ckpt`` holds the final epoch (a ``--resume`` continues there), not the last improvement."""
    metrics = fit_and_test(_WorseningModule(), _Data(), tmp_path, 3, monitor="val_loss", progress=False)
    best = torch.load(metrics["best_checkpoint"], map_location="cpu", weights_only=False)
    last = torch.load(metrics["last_checkpoint"], map_location="cpu", weights_only=False)
    assert best["epoch"] == 0
    assert last["epoch"] == 2 and last["global_step"] == 3 * 2
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == sorted([tmp_path.joinpath(metrics["best_checkpoint"]).name, "last.ckpt"])
