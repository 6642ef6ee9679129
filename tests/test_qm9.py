"""QM9 task on a tiny generated QM9-format dataset (PyG's rdkit-free raw file)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")
from torch_geometric.data import Batch

from steerable.tasks.qm9.data import QM9DataModule, split_sizes, write_synthetic_qm9
from steerable.tasks.qm9.model import QM9Net


@pytest.fixture(scope="module")
def qm9_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("qm9")
    write_synthetic_qm9(root, n_molecules=40, seed=0)
    return root


def test_loader_units_split_and_stats(qm9_root: Path) -> None:
    dm = QM9DataModule(str(qm9_root), target="gap", batch_size=8)
    dm.prepare_data()
    dm.setup()
    assert [len(dm._splits[s]) for s in ("train", "val", "test")] == list(split_sizes(40, None))
    b = next(iter(dm.test_dataloader()))
    assert torch.allclose(b.y_target, b.y[:, 4] * 1000.0)  # eV -> meV
    assert (qm9_root / "processed" / f"stats_gap_42_{len(dm._splits['train'])}_40.json").exists()
    y = torch.stack([d.y_target for d in dm._splits["train"]]).flatten()
    assert abs(dm.mean - float(y.mean())) < 1e-3 * max(1.0, abs(dm.mean))
    assert split_sizes(130_831, None) == (100_000, 17_748, 13_083)
    with pytest.raises(ValueError, match="VAL 20 exceeds"):
        split_sizes(40, (10, 20, 5))


def test_sizes_are_nested_prefixes_of_the_standard_parts() -> None:
    from steerable.tasks.qm9.data import split_indices

    full = split_indices(130_831, None, 42)
    assert [len(full[s]) for s in ("train", "val", "test")] == [100_000, 17_748, 13_083]
    assert len(torch.cat(list(full.values())).unique()) == 130_831
    small = split_indices(130_831, (1000, 200, 300), 42)
    for s in ("train", "val", "test"):  # a reduced budget tests on molecules of the standard test part
        assert torch.equal(small[s], full[s][: len(small[s])])


def test_radius_graph_edges_carry_bond_types(qm9_root: Path) -> None:
    from steerable.tasks.qm9.model import edge_features

    dm = QM9DataModule(str(qm9_root), target="U0", batch_size=4)
    dm.setup()
    batch = Batch.from_data_list([dm._splits["train"][i] for i in range(4)])
    ei, ea = edge_features(batch, "radius", 10.0)
    assert ea.shape == (ei.shape[1], 6)
    bonded = ea[:, :4].sum(1) == 1
    assert int(bonded.sum()) == batch.edge_index.shape[1]  # every bond found exactly once
    assert torch.allclose(ea[:, 4], 1.0 - ea[:, :4].sum(1))
    assert torch.allclose(ea[:, 5], (batch.pos[ei[0]] - batch.pos[ei[1]]).norm(dim=1))


def _rotation(reflect: bool) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(7)))
    if (torch.det(q) > 0) == reflect:
        q = -q
    return q


@pytest.mark.parametrize("graph", ["radius", "bond"])
@torch.no_grad()
def test_invariance(qm9_root: Path, graph: str) -> None:
    dm = QM9DataModule(str(qm9_root), target="U0", batch_size=4)
    dm.setup()
    torch.manual_seed(0)
    net = QM9Net(hidden_scalars=6, hidden_vectors=3, layers=3, kernel_hidden=8, graph=graph).eval()
    for p in net.head[-1].parameters():  # the head starts at zero; any weights show the invariance
        torch.nn.init.normal_(p)
    data = [dm._splits["train"][i] for i in range(4)]
    batch = Batch.from_data_list(data)
    ref = net(batch)
    errs = {}
    for name, R in (("rotation", _rotation(False)), ("reflection", _rotation(True))):
        moved = Batch.from_data_list([d.clone() for d in data])
        moved.pos = batch.pos @ R.T + torch.tensor([1.0, -2.0, 0.5])
        errs[name] = float((net(moved) - ref).abs().max() / ref.abs().max())
    # permutation of the atoms of each molecule (bonds relabelled accordingly)
    permuted = []
    for d in data:
        p = torch.randperm(d.num_nodes, generator=torch.Generator().manual_seed(1))
        inv = torch.argsort(p)
        e = d.clone()
        e.pos, e.z, e.x = d.pos[p], d.z[p], d.x[p]
        e.edge_index = inv[d.edge_index]
        permuted.append(e)
    errs["permutation"] = float((net(Batch.from_data_list(permuted)) - ref).abs().max() / ref.abs().max())
    print(graph, errs)
    # sanity: a non-rigid deformation does change the prediction (the test is not vacuous)
    bent = Batch.from_data_list([d.clone() for d in data])
    bent.pos = batch.pos * torch.tensor([1.3, 1.0, 0.8])
    assert float((net(bent) - ref).abs().max() / ref.abs().max()) > 1e-3
    assert all(v < 1e-4 for v in errs.values()), errs


@pytest.mark.slow
def test_short_training_decreases_loss(qm9_root: Path, tmp_path: Path) -> None:
    from steerable.tasks.qm9.train import build_parser, resolve, run

    common = ["--preset", "demo", "--root", str(qm9_root), "--target", "alpha", "--hidden-scalars", "8"]
    common += ["--hidden-vectors", "2", "--layers", "2", "--kernel-hidden", "8", "--out-dir", str(tmp_path)]
    common += ["--no-progress", "--batch-size", "8"]
    args = build_parser().parse_args(common + ["--epochs", "8", "--lr", "3e-3"])
    res = run(resolve(args))
    import csv

    rows = list(csv.DictReader(open(next(tmp_path.glob("csv/version_*/metrics.csv")))))
    val = [float(r["val_loss"]) for r in rows if r.get("val_loss")]
    assert val[-1] < val[0], val
    assert (tmp_path / "checkpoints" / "last.ckpt").exists() and (tmp_path / "results.json").exists()
    # resume continues from the last checkpoint
    args2 = build_parser().parse_args(
        common + ["--epochs", "9", "--resume", str(tmp_path / "checkpoints" / "last.ckpt")]
    )
    res2 = run(resolve(args2))
    assert res2["global_step"] > res["global_step"]


def test_prediction_starts_at_the_training_mean_and_bad_options_are_named(qm9_root: Path) -> None:
    dm = QM9DataModule(str(qm9_root), target="U0", batch_size=4)
    dm.setup()
    batch = Batch.from_data_list([dm._splits["train"][i] for i in range(4)])
    net = QM9Net(hidden_scalars=6, hidden_vectors=3, layers=3, kernel_hidden=8, graph="bond")
    # the head's last layer starts at zero: the standardised prediction 0 is the training mean
    assert torch.equal(net(batch), torch.zeros(4))
    for name, value in (("layer", "dense"), ("readout", "max"), ("pool", "max")):
        with pytest.raises(ValueError, match=f"{name} must be"):
            QM9Net(hidden_scalars=6, hidden_vectors=3, layers=3, kernel_hidden=8, **{name: value})
