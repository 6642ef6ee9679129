"""ModelNet data: torch-geometric's ``ModelNet`` reader, point sampling, normalisation, rotation augmentation.

On-disk layout (the standard archive unpacked as ``<root>/raw``): ``raw/<class>/{train,test}/<class>_*.off``.
PyG's ``ModelNet`` checks for the ModelNet10 class folders before deciding to download; :class:`LocalModelNet`
accepts whatever class folders ``raw/`` holds (so generated shapes and ModelNet40 both load offline) and
otherwise behaves exactly like PyG's class (download when ``raw/`` is empty, processed meshes cached in
``processed/{training,test}.pt``).  Points are sampled from the mesh surface at access time
(``SamplePoints``, area-weighted), then centred and scaled into the unit ball (:class:`CentreUnitBall`).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch_geometric.transforms as T
from torch_geometric.datasets import ModelNet

from ..graph_data import GraphSplitDataModule
from ..task import DataUnavailable

__all__ = [
    "LocalModelNet",
    "RandomRotation",
    "ModelNetDataModule",
    "write_synthetic_modelnet",
    "random_rotation",
    "CentreUnitBall",
]


class LocalModelNet(ModelNet):
    """PyG ``ModelNet`` that accepts any class folders present under ``raw/`` (sorted = label order)."""

    @property
    def raw_file_names(self) -> list[str]:
        raw = Path(self.root) / "raw"
        present = sorted(p.name for p in raw.iterdir() if p.is_dir()) if raw.is_dir() else []
        return present or super().raw_file_names


def random_rotation(mode: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """A ``(3, 3)`` random rotation: ``"z"`` (about the z axis), ``"so3"`` (Haar), ``"none"`` (identity)."""
    if mode == "none":
        return torch.eye(3)
    if mode == "z":
        a = float(torch.rand(1, generator=generator)) * 2 * math.pi
        c, s = math.cos(a), math.sin(a)
        return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    if mode == "so3":
        q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator))
        q = q * torch.sign(torch.diagonal(r))
        return q if torch.det(q) > 0 else -q
    raise ValueError(f"rotation mode must be none, z or so3, got {mode!r}")


class CentreUnitBall:
    """Transform: ``pos <- (pos - mean) / max_k |pos_k - mean|`` (rotation-equivariant, unlike
    PyG's ``NormalizeScale``, which divides by the largest *coordinate*)."""

    def __call__(self, data):
        c = data.pos - data.pos.mean(0, keepdim=True)
        data.pos = c / c.norm(dim=1).max().clamp_min(1e-12)
        return data


class RandomRotation:
    """Transform rotating ``data.pos`` ``(N, 3)`` by :func:`random_rotation` (``pos <- pos @ R^T``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __call__(self, data):
        if self.mode != "none":
            data.pos = data.pos @ random_rotation(self.mode).T
        return data


def write_synthetic_modelnet(root: str | Path, per_class: tuple[int, int] = (12, 4), seed: int = 0) -> list[str]:
    """Write primitive shapes as OFF meshes in ModelNet's layout ``root/raw/<class>/{train,test}/<class>_NNNN.off``.

    Classes: cube, tetrahedron, octahedron, prism (triangular), pyramid (square base); each instance is
    randomly scaled, anisotropically stretched by up to 15 % and rotated about z.  Returns the class names.
    """
    g = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple[list[list[float]], list[list[int]]]] = {
        "cube": (
            [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)],
            [
                [0, 1, 3],
                [0, 3, 2],
                [4, 6, 7],
                [4, 7, 5],
                [0, 4, 5],
                [0, 5, 1],
                [2, 3, 7],
                [2, 7, 6],
                [0, 2, 6],
                [0, 6, 4],
                [1, 5, 7],
                [1, 7, 3],
            ],
        ),
        "tetrahedron": (
            [[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]],
            [[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]],
        ),
        "octahedron": (
            [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
            [[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]],
        ),
        "prism": (
            [[1, 0, -1.5], [-0.5, 0.87, -1.5], [-0.5, -0.87, -1.5], [1, 0, 1.5], [-0.5, 0.87, 1.5], [-0.5, -0.87, 1.5]],
            [[0, 2, 1], [3, 4, 5], [0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4], [2, 0, 3], [2, 3, 5]],
        ),
        "pyramid": (
            [[1, 1, 0], [-1, 1, 0], [-1, -1, 0], [1, -1, 0], [0, 0, 1.6]],
            [[0, 2, 1], [0, 3, 2], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]],
        ),
    }
    raw = Path(root) / "raw"
    for name, (verts, faces) in shapes.items():
        v0 = torch.tensor(verts, dtype=torch.float)
        for split, count in (("train", per_class[0]), ("test", per_class[1])):
            folder = raw / name / split
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                stretch = 1 + 0.15 * (2 * torch.rand(3, generator=g) - 1)
                v = v0 * stretch * (0.5 + torch.rand(1, generator=g)) @ random_rotation("z", g).T
                lines = ["OFF", f"{len(v)} {len(faces)} 0"]
                lines += [" ".join(f"{c:.6f}" for c in row) for row in v.tolist()]
                lines += ["3 " + " ".join(map(str, f)) for f in faces]
                (folder / f"{name}_{k + 1:04d}.off").write_text("\n".join(lines) + "\n")
    return sorted(shapes)


class ModelNetDataModule(GraphSplitDataModule):
    """ModelNet10/40 point clouds: ``batch.pos`` ``(B * num_points, 3)``, ``batch.batch``, ``batch.y`` ``(B,)``.

    Args:
        root: dataset root (``raw/`` as in the archive; downloaded when missing and ``name`` given).
        name: ``"40"`` or ``"10"`` (download URL only).  num_points: points sampled per shape.
        rotation: train-time augmentation ``"none"``, ``"z"`` or ``"so3"``; ``test_rotation`` likewise for
            val/test (to evaluate invariance to unseen poses).
        val_fraction: part of the training set held out for validation (fixed ``seed``).
        shuffle_seed: seed of the training order (one per epoch).
    """

    def __init__(
        self,
        root: str = "data/modelnet40",
        name: str = "40",
        num_points: int = 1024,
        batch_size: int = 32,
        rotation: str = "none",
        test_rotation: str = "none",
        val_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
        shuffle_seed: int = 0,
    ) -> None:
        super().__init__()
        self.shuffle_seed = shuffle_seed
        self.root, self.name, self.num_points, self.batch_size = root, name, num_points, batch_size
        self.rotation, self.test_rotation, self.val_fraction, self.seed = rotation, test_rotation, val_fraction, seed
        self.num_workers = num_workers
        self.num_classes = 0
        self._splits: dict[str, object] = {}

    def _transform(self, rotation: str) -> T.Compose:
        return T.Compose([T.SamplePoints(self.num_points), CentreUnitBall(), RandomRotation(rotation)])

    def prepare_data(self) -> None:
        try:
            LocalModelNet(self.root, self.name, train=True)
        except Exception as exc:
            raw = Path(self.root) / "raw"
            if raw.is_dir() and any(raw.iterdir()):
                raise
            raise DataUnavailable(
                f"ModelNet{self.name}: no data in {self.root} and the download failed ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:200]}); pass --root with a local copy (ROOT/raw/<class>/"
                "{train,test}/*.off), or --synthetic for generated shapes"
            ) from exc

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        train = LocalModelNet(self.root, self.name, train=True, transform=self._transform(self.rotation))
        val = LocalModelNet(self.root, self.name, train=True, transform=self._transform(self.test_rotation))
        test = LocalModelNet(self.root, self.name, train=False, transform=self._transform(self.test_rotation))
        self.num_classes = int(train._data.y.max()) + 1
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))
        n_val = int(round(self.val_fraction * len(train)))
        self._splits = {"train": train[perm[n_val:]], "val": val[perm[:n_val]], "test": test}
