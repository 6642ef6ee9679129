"""QM9 on real molecules, offline from the PyPI package ``qm9pack`` (installed by scripts/setup.sh's extras).

Conversion (atom counts, coordinates against the CSV text, target units), bonds perceived from the
geometry (known molecules; the degree of unsaturation of every formula), invariance of the model on real
molecules in float64, and a short training run that beats the mean predictor on held-out molecules.
"""

from __future__ import annotations

import csv
import importlib.util
import math
import re
from collections import Counter
from pathlib import Path

import pytest
import torch

pytest.importorskip("lightning")
if importlib.util.find_spec("qm9pack") is None:
    pytest.skip("qm9pack is not installed (pip install qm9pack, or the extra steerable[qm9])", allow_module_level=True)

from torch_geometric.data import Batch

from steerable.tasks.qm9.data import QM9DataModule
from steerable.tasks.qm9.model import QM9Net
from steerable.tasks.qm9.qm9pack_source import iter_rows, load_qm9pack, qm9pack_files

N = 1000  # the first 1,000 molecules: 1 s to convert
EV_PER_HARTREE = 27.211386246  # CODATA 2018, written here independently of the module under test
KCAL_PER_MOL_EV = 0.0433641  # 1 kcal/mol in eV


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qm9pack")


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    return list(iter_rows(N))


@pytest.fixture(scope="module")
def ds(root: Path):
    return load_qm9pack(root, N, progress=False)


def _numbers(text: str) -> list[float]:
    """Every number of a qm9pack list, read token by token (``*^`` Mathematica exponents, ``E`` ones)."""
    return [float(t.replace("*^", "e")) for t in re.findall(r"-?[0-9.]+(?:(?:\*\^|[eE])-?[0-9]+)?", text)]


def test_atom_counts_and_coordinates_round_trip(ds, rows) -> None:
    assert len(ds) == N
    for d, row in zip(ds, rows):
        counts = [int(c) for c in row["Stoichiometry"].strip("[]").split(",")]  # H, C, N, O, F
        assert d.num_nodes == int(row["N_atoms"]) == sum(counts)
        assert [int((d.z == a).sum()) for a in (1, 6, 7, 8, 9)] == counts
        xyz = torch.tensor(_numbers(row["XYZ_Ang"]), dtype=torch.float64).view(-1, 3)
        assert float((d.pos.double() - xyz).abs().max()) < 1e-6  # float32 rounding of |x| < 10 Angstrom: 5e-7
        assert int(d.idx) == int(row["Index"])
        assert torch.equal(d.x[:, :5].argmax(1), torch.searchsorted(torch.tensor([1, 6, 7, 8, 9]), d.z))
    text = "".join(r["XYZ_Ang"] for r in rows)
    assert "E-" in text and "0.," in text  # both number forms of qm9pack 1.0.3 are exercised (it has no "*^")


def test_target_units(root: Path, ds, rows) -> None:
    y = ds._data.y.double()
    homo = torch.tensor([float(r["HOMO_au"]) for r in rows], dtype=torch.float64) * EV_PER_HARTREE
    assert float((y[:, 2] - homo).abs().max()) < 1e-5  # eV, float32 rounding of ~7 eV
    # methane (GDB 1): U0_atom = -395.999 kcal/mol in the QM9 tables (MoleculeNet's qm9.csv, PyG's y[0, 12])
    assert abs(float(y[0, 12]) - (-395.999 * KCAL_PER_MOL_EV)) < 2e-3
    dm = QM9DataModule(str(root), target="homo", source="qm9pack", molecules=N, batch_size=64)
    dm.setup()
    meV = torch.cat([b.y_target for b in dm.train_dataloader()]).double()
    print(f"homo over {len(meV)} training molecules: mean {float(meV.mean()):.1f} meV, std {float(meV.std()):.1f}")
    # the first molecules are small ones: measured mean -6.77 eV, std 0.90 eV over these 764 (the whole set:
    # -6.54, 0.60, next test); a wrong unit (Hartree, eV, a factor 27.2 or 1000 off) lands far outside
    assert -7.0e3 < float(meV.mean()) < -6.5e3 and 700 < float(meV.std()) < 1100
    assert dm.unit == "meV" and abs(dm.mean - float(meV.mean())) < 1e-3


def test_whole_set_homo_statistics() -> None:
    """ε_HOMO over all 130,831 molecules straight from the CSV (about 5 s): mean -6.54 eV, std 0.60 eV."""
    csv.field_size_limit(1 << 28)
    values = []
    for path in qm9pack_files():
        with open(path, newline="") as fh:
            values += [float(r["HOMO_au"]) for r in csv.DictReader(fh)]
    h = torch.tensor(values, dtype=torch.float64) * EV_PER_HARTREE
    assert len(h) == 130_831
    assert abs(float(h.mean()) + 6.54) < 0.01 and abs(float(h.std()) - 0.60) < 0.01, (h.mean(), h.std())


def _bond_table(d) -> Counter:
    """``{(element pair, order): count}`` of a converted molecule, each bond once."""
    sym = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}
    out: Counter = Counter()
    for (i, j), attr in zip(d.edge_index.t().tolist(), d.edge_attr):
        if i < j:
            pair = "".join(sorted((sym[int(d.z[i])], sym[int(d.z[j])])))
            out[pair, int(attr.argmax()) + 1] += 1
    return out


@pytest.mark.parametrize(
    "gdb, expected",
    [
        (1, {("CH", 1): 4}),  # methane
        (3, {("HO", 1): 2}),  # water
        (5, {("CH", 1): 1, ("CN", 3): 1}),  # hydrogen cyanide
        (14, {("CC", 1): 1, ("CO", 1): 1, ("CH", 1): 5, ("HO", 1): 1}),  # ethanol
        (214, {("CC", 1): 3, ("CC", 2): 3, ("CH", 1): 6}),  # benzene (Kekulé)
    ],
)
def test_bonds_of_known_molecules(ds, rows, gdb: int, expected: dict) -> None:
    k = [int(r["Index"]) for r in rows].index(gdb)
    assert _bond_table(ds[k]) == Counter(expected), rows[k]["SMILES"]
    assert torch.equal(ds[k].edge_attr.sum(1), torch.ones(ds[k].edge_index.shape[1]))  # one-hot


def test_bonds_match_every_formula(ds, rows) -> None:
    """Rings + multiple-bond orders = the degree of unsaturation of the formula, for every molecule whose
    bonds complete the neutral valences; the bond graph is connected; few molecules are charge-separated."""
    bad = []
    for d, row in zip(ds, rows):
        h, c, n, o, f = (int(v) for v in row["Stoichiometry"].strip("[]").split(","))
        dou = c - (h + f) / 2 + n / 2 + 1
        e = d.edge_index.shape[1] // 2
        orders = d.edge_attr.argmax(1) + 1
        pi = int((orders - 1).sum()) // 2
        rings = e - d.num_nodes + 1
        adj = torch.zeros(d.num_nodes, d.num_nodes, dtype=torch.bool)
        adj[d.edge_index[0], d.edge_index[1]] = True
        reach = torch.eye(d.num_nodes, dtype=torch.bool)[0]
        for _ in range(d.num_nodes):
            reach = reach | (adj[reach].any(0))
        valence = torch.tensor([{1: 1, 6: 4, 7: 3, 8: 2, 9: 1}[int(a)] for a in d.z])
        full = torch.equal(torch.zeros(d.num_nodes, dtype=orders.dtype).index_add_(0, d.edge_index[0], orders), valence)
        assert bool(reach.all()), row["SMILES"]
        if full:
            assert rings + pi == dou, (row["SMILES"], rings, pi, dou)
        else:
            bad.append(row["SMILES"])
    print(f"{len(bad)} of {N} molecules without a neutral Kekule structure, e.g. {bad[:4]}")
    assert len(bad) < 0.02 * N
    assert all("+" in s or "-" in s or "[" in s for s in bad) or len(bad) <= 5, bad


def _orthogonal(det: float, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))
    return q if float(torch.det(q)) * det > 0 else -q


@pytest.mark.parametrize(
    "group, graph, options",
    [
        ("O(3)", "radius", {"cutoff": 5.0}),
        ("O(3)", "bond", {"cutoff": 2.0}),  # the task's default: bond and atom attributes, 2 Å kernels
        ("SO(3)", "radius", {"cutoff": 5.0}),
        ("O(3)", "bond", {"layer": "message", "readout": "atom", "pool": "mean", "radial_features": 32}),
        ("O(3)", "radius", {"atom_attributes": False, "bond_attributes": False}),
    ],
)
@torch.no_grad()
def test_invariance_on_real_molecules(ds, group: str, graph: str, options: dict) -> None:
    torch.manual_seed(0)
    net = QM9Net(group=group, hidden_scalars=6, hidden_vectors=3, layers=3, kernel_hidden=8, graph=graph, **options)
    for p in net.head[-1].parameters():  # the head starts at zero; any weights show the invariance
        torch.nn.init.normal_(p)
    net = net.double()
    net.eval()
    data = [ds[i] for i in range(N - 16, N)]  # 16 real molecules of 14-19 atoms
    for d in data:
        d.pos = d.pos.double()
    batch = Batch.from_data_list(data)
    ref = net(batch)
    scale = float(ref.abs().max())
    errs = {}
    maps = [("rotation", _orthogonal(1.0, 3))] + ([("reflection", _orthogonal(-1.0, 4))] if group == "O(3)" else [])
    for name, R in maps:
        moved = batch.clone()
        moved.pos = batch.pos @ R.T + torch.tensor([3.0, -2.0, 0.5], dtype=torch.float64)
        errs[name] = float((net(moved) - ref).abs().max()) / scale
    shifted = batch.clone()
    shifted.pos = batch.pos + torch.tensor([10.0, 0.0, -4.0], dtype=torch.float64)
    errs["translation"] = float((net(shifted) - ref).abs().max()) / scale
    permuted = []
    for k, d in enumerate(data):
        p = torch.randperm(d.num_nodes, generator=torch.Generator().manual_seed(k))
        e = d.clone()
        e.pos, e.z, e.x = d.pos[p], d.z[p], d.x[p]
        e.edge_index = torch.argsort(p)[d.edge_index]
        permuted.append(e)
    errs["permutation"] = float((net(Batch.from_data_list(permuted)) - ref).abs().max()) / scale
    bent = batch.clone()
    bent.pos = batch.pos * torch.tensor([1.3, 1.0, 0.7], dtype=torch.float64)
    change = float((net(bent) - ref).abs().max()) / scale
    print(group, graph, options, errs, "deformation", change)
    # not vacuous: a non-rigid map changes the prediction (measured >= 9e-4 at init, 12 orders above
    # the invariance errors)
    assert change > 1e-4
    # measured ~1e-15 (float64 round-off); bound 1e-12, well under the 1e-6 of the issue
    assert all(v < 1e-12 for v in errs.values()), errs


def test_atom_attributes_are_the_types_of_both_ends(ds) -> None:
    from steerable.tasks.qm9.model import attribute_count, edge_features

    batch = Batch.from_data_list([ds[i] for i in range(48)])  # formaldehyde (5) has a double bond
    onehot = (batch.z[:, None] == torch.tensor([1, 6, 7, 8, 9])).float()  # H C N O F, written here
    for graph in ("bond", "radius"):
        ei, ea = edge_features(batch, graph, 5.0, bond_attributes=True, atom_attributes=True)
        assert ea.shape == (ei.shape[1], attribute_count(True, True)) == (ei.shape[1], 16)
        assert torch.equal(ea[:, 6:11], onehot[ei[0]]) and torch.equal(ea[:, 11:16], onehot[ei[1]])
        assert torch.allclose(ea[:, 5], (batch.pos[ei[0]] - batch.pos[ei[1]]).norm(dim=1))
        assert torch.equal(ea[:, :5].sum(1), torch.ones(ei.shape[1]))  # one bond type (or "none") per edge
    # the bond graph's edges are bonds: none of them carries "none"
    ei, ea = edge_features(batch, "bond", 2.0)
    assert not ea[:, 4].any() and int(ea[:, 1].sum()) > 0  # and some double bonds among them
    ei, ea = edge_features(batch, "radius", 5.0, bond_attributes=False, atom_attributes=False)
    assert ea.shape == (ei.shape[1], 1)


def test_short_training_beats_the_mean_predictor(root: Path, ds, tmp_path: Path) -> None:
    from steerable.tasks.qm9.train import build_parser, resolve, run

    args = build_parser().parse_args(
        [
            "--preset",
            "demo",
            "--source",
            "qm9pack",
            "--root",
            str(root),
            "--molecules",
            str(N),
            "--target",
            "homo",
            "--epochs",
            "6",
            "--lr",
            "3e-3",
            "--batch-size",
            "32",
            "--hidden-scalars",
            "16",
            "--hidden-vectors",
            "4",
            "--layers",
            "3",
            "--kernel-hidden",
            "16",
            "--out-dir",
            str(tmp_path),
            "--no-progress",
        ]
    )
    res = run(resolve(args))
    dm = QM9DataModule(str(root), target="homo", source="qm9pack", molecules=N)
    dm.setup()
    test_y = torch.cat([d.y_target for d in dm._splits["test"]]).double()
    mean_mae = float((test_y - dm.mean).abs().mean())
    print(f"test MAE {res['test_mae']:.1f} meV vs mean predictor {mean_mae:.1f} meV, {res['train_seconds']:.1f} s")
    assert res["source"] == "qm9pack" and res["unit"] == "meV"
    # measured 321 vs 592 meV (ratio 0.54) in 23 s on one loaded CPU thread (bond graph, bond and atom
    # attributes; 462 meV, ratio 0.78, with the earlier radius-graph model); bound 0.7
    assert res["test_mae"] < 0.7 * mean_mae, (res["test_mae"], mean_mae)
    assert math.isfinite(res["test_mae"])


def test_failed_download_points_to_qm9pack(capsys, tmp_path: Path, monkeypatch) -> None:
    import urllib.error

    import torch_geometric.datasets.qm9 as pyg_qm9

    from steerable.cli import main

    def offline(url, folder, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(pyg_qm9, "download_url", offline)
    assert main(["train", "qm9", "--root", str(tmp_path / "qm9"), "--out-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--source qm9pack" in err[0], err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--synthetic", "10"], "use it with --source pyg"),
        (["--molecules", str(N), "--sizes", "800", "10", "10"], "TRAIN 800 exceeds"),
    ],
)
def test_bad_qm9pack_settings_are_one_line(capsys, root: Path, ds, tmp_path: Path, flags, message) -> None:
    from steerable.cli import main

    argv = ["train", "qm9", "--source", "qm9pack", "--root", str(root), "--out-dir", str(tmp_path / "run"), *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
