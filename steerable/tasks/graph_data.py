"""A Lightning data module base for torch-geometric datasets split into train/val/test."""

from __future__ import annotations

import lightning as L
from torch_geometric.loader import DataLoader

from .trainer import train_sampler


class GraphSplitDataModule(L.LightningDataModule):
    """Serves ``self._splits[{"train", "val", "test"}]`` (PyG datasets) with PyG's batching loader.

    Subclasses fill ``_splits`` in ``setup`` and set ``batch_size``, ``num_workers`` and
    ``shuffle_seed``; training batches are shuffled by :func:`~.trainer.train_sampler` (an order
    per ``(shuffle_seed, epoch)``, exact on resume, split over the ranks of a multi-process run),
    the others are not.
    """

    _splits: dict
    batch_size: int
    num_workers: int
    shuffle_seed: int = 0

    def _loader(self, split: str, train: bool) -> DataLoader:
        sampler = train_sampler(self._splits[split], self.trainer, self.shuffle_seed) if train else None
        return DataLoader(
            self._splits[split], batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
