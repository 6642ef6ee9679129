"""A Lightning data module base for torch-geometric datasets split into train/val/test."""
from __future__ import annotations

import lightning as L
from torch_geometric.loader import DataLoader


class GraphSplitDataModule(L.LightningDataModule):
    """Serves ``self._splits[{"train", "val", "test"}]`` (PyG datasets) with PyG's batching loader.

    Subclasses fill ``_splits`` in ``setup`` and set ``batch_size`` and ``num_workers``; training
    batches are shuffled, the others are not.
    """

    _splits: dict
    batch_size: int
    num_workers: int

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self._splits[split], batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
