"""ModelNet task on generated primitive shapes written as OFF files in ModelNet's folder layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")

from steerable.tasks.modelnet.data import ModelNetDataModule, random_rotation, write_synthetic_modelnet
from steerable.tasks.modelnet.model import ModelNetNet


@pytest.fixture(scope="module")
def mn_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("modelnet")
    write_synthetic_modelnet(root, per_class=(12, 4), seed=0)
    return root


def test_loader_reads_off_layout(mn_root: Path) -> None:
    assert (mn_root / "raw" / "cube" / "train" / "cube_0001.off").exists()
    dm = ModelNetDataModule(str(mn_root), num_points=64, batch_size=5, val_fraction=0.2, rotation="so3")
    dm.prepare_data()
    dm.setup()
    assert dm.num_classes == 5
    assert [len(dm._splits[s]) for s in ("train", "val", "test")] == [48, 12, 20]
    b = next(iter(dm.train_dataloader()))
    assert b.pos.shape == (5 * 64, 3) and b.y.shape == (5,)
    for i in range(5):
        p = b.pos[b.batch == i]
        assert p.mean(0).abs().max() < 1e-5 and abs(float(p.norm(dim=1).max()) - 1.0) < 1e-5


def test_random_rotation_groups() -> None:
    Rz, R = random_rotation("z"), random_rotation("so3")
    for M in (Rz, R):
        assert torch.allclose(M @ M.T, torch.eye(3), atol=1e-5) and abs(float(torch.det(M)) - 1) < 1e-5
    assert torch.allclose(Rz[2], torch.tensor([0.0, 0.0, 1.0]))


@pytest.mark.parametrize(
    ("group", "mode", "reflect"), [("SO(2)", "z", False), ("SO(3)", "so3", False), ("O(3)", "so3", True)]
)
@torch.no_grad()
def test_invariance(group: str, mode: str, reflect: bool) -> None:
    torch.manual_seed(0)
    net = ModelNetNet(5, group=group, hidden_scalars=4, hidden_vectors=2, k=6, kernel_hidden=4).eval()
    pos = torch.randn(2 * 64, 3)
    batch = torch.arange(2).repeat_interleave(64)
    R = random_rotation(mode, torch.Generator().manual_seed(3))
    if reflect:
        R = -R
    ref = net(pos, batch)
    err = float((net(pos @ R.T + torch.tensor([0.3, -1.0, 2.0]), batch) - ref).abs().max() / ref.abs().max())
    print(group, err)
    assert err < 1e-4
    # the model does see the geometry (not vacuous): a non-rigid stretch changes the logits
    assert float((net(pos * torch.tensor([1.5, 1.0, 0.7]), batch) - ref).abs().max() / ref.abs().max()) > 1e-3


@torch.no_grad()
def test_so2_model_is_not_so3_invariant() -> None:
    """An SO(2)-about-z model does distinguish tilts of z (the group option matters)."""
    torch.manual_seed(0)
    net = ModelNetNet(5, group="SO(2)", hidden_scalars=4, hidden_vectors=2, k=6, kernel_hidden=4).eval()
    pos = torch.randn(64, 3) * torch.tensor([1.0, 0.5, 2.0])
    batch = torch.zeros(64, dtype=torch.long)
    R = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # 90 degrees about x
    ref = net(pos, batch)
    assert float((net(pos @ R.T, batch) - ref).abs().max() / ref.abs().max()) > 1e-3


@pytest.mark.slow
def test_short_training_beats_chance(mn_root: Path, tmp_path: Path) -> None:
    from steerable.tasks.modelnet.train import build_parser, resolve, run

    args = build_parser().parse_args(
        [
            "--preset",
            "demo",
            "--root",
            str(mn_root),
            "--out-dir",
            str(tmp_path),
            "--no-progress",
            "--test-rotation",
            "so3",
            "--val-fraction",
            "0.2",
        ]
    )
    res = run(resolve(args))
    assert res["test_acc"] >= 0.4, res  # 2x chance (0.2); SO(3)-invariant, so SO(3)-rotated test shapes are fine
    assert (tmp_path / "checkpoints" / "last.ckpt").exists() and (tmp_path / "results.json").exists()
