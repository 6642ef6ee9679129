"""Tests of the N-body task: simulator, data files, model equivariance, Lightning training and resume."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny import tiny_nbody_flags

import steerable as st
from steerable.nn import FieldLinear, Gate
from steerable.tasks.cache import CacheWarning
from steerable.tasks.nbody.data import (
    NBodyDataset,
    load_npy_split,
    load_or_generate,
    write_npy_split,
)
from steerable.tasks.nbody.model import NBodyNet, build_nbody_net, equivariance_error, fully_connected_edges
from steerable.tasks.nbody.simulate import SimulationConfig, energy, simulate, total_momentum

SHORT = dataclasses.replace(SimulationConfig(), n_steps=1200)  # 11 frames


def _backend_or_skip(backend: str) -> None:
    status = {row.name: row for row in st.list_backends()}
    if backend not in status or not status[backend].available:
        pytest.skip(f"backend {backend} unavailable")


# -- simulator --------------------------------------------------------------------------------
def test_simulator_shapes_and_dtypes_match_benchmark_files():
    t = simulate(6, seed=1, config=SHORT)
    assert t.loc.shape == (6, SHORT.n_frames, 3, 5) == t.vel.shape
    assert SHORT.n_frames == 11 and SimulationConfig().n_frames == 49
    assert t.charges.shape == (6, 5, 1) and t.edges.shape == (6, 5, 5)
    assert t.loc.dtype == t.vel.dtype == t.charges.dtype == t.edges.dtype == np.float64
    assert set(np.unique(t.charges)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(t.edges, t.edges.transpose(0, 2, 1))
    np.testing.assert_array_equal(np.diagonal(t.edges, axis1=1, axis2=2), 1.0)
    assert t.clipped.shape == (6,) and t.clipped.dtype == bool
    assert np.isfinite(t.loc).all() and np.isfinite(t.vel).all()


def test_simulator_deterministic_and_prefix_stable():
    a = simulate(5, seed=7, config=SHORT)
    b = simulate(5, seed=7, config=SHORT, chunk_size=2)
    c = simulate(9, seed=7, config=SHORT)
    np.testing.assert_array_equal(a.loc, b.loc)
    np.testing.assert_array_equal(a.vel, b.vel)
    np.testing.assert_array_equal(a.loc, c.loc[:5])  # the first k do not depend on the split size
    d = simulate(5, seed=8, config=SHORT)
    assert not np.allclose(a.loc, d.loc)


def test_initial_velocity_norm_and_position_scale():
    cfg = dataclasses.replace(SimulationConfig(), n_steps=200, sample_freq=100)
    t = simulate(400, seed=3, config=cfg)
    # frame 0 is step 100: positions have moved by ~0.05, velocities nearly unchanged
    speeds = np.linalg.norm(t.vel[:, 0], axis=1)
    assert abs(np.median(speeds) - cfg.vel_norm) < 0.02
    assert abs(t.loc[:, 0].std() - cfg.loc_std) < 0.1


def test_momentum_conserved_without_clipping():
    cfg = dataclasses.replace(SimulationConfig(), n_steps=2000)
    t = simulate(64, seed=2, config=cfg)
    ok = ~t.clipped
    assert ok.sum() >= 16
    p = total_momentum(t.vel[ok])  # (T, frames, 3)
    assert np.abs(p - p[:, :1]).max() < 1e-10
    # clipped systems are the only ones allowed to change momentum
    if t.clipped.any():
        assert np.abs(total_momentum(t.vel[t.clipped]) - total_momentum(t.vel[t.clipped])[:, :1]).max() > 1e-10


def test_energy_drift_bounded_for_the_step_used():
    cfg = dataclasses.replace(SimulationConfig(), n_steps=2000)
    t = simulate(64, seed=4, config=cfg)
    ok = ~t.clipped
    e = energy(t.loc[ok], t.vel[ok], t.charges[ok])  # (T, frames)
    rel = np.abs(e - e[:, :1]).max(1) / (np.abs(e).mean(1) + 1e-3)
    # leapfrog with dt = 0.001: typical drift well below 1%, close encounters at most a few %
    assert np.median(rel) < 5e-3
    assert np.quantile(rel, 0.9) < 5e-2
    # and a 10x larger step drifts much more (the bound is a property of dt)
    coarse = dataclasses.replace(cfg, dt=0.01, n_steps=200, sample_freq=10)
    tc = simulate(64, seed=4, config=coarse)
    okc = ok & ~tc.clipped
    ec = energy(tc.loc[okc], tc.vel[okc], tc.charges[okc])
    relc = np.abs(ec - ec[:, :1]).max(1) / (np.abs(ec).mean(1) + 1e-3)
    assert np.median(relc) > 3 * np.median(rel[okc[ok]])


# -- data files -------------------------------------------------------------------------------
def test_npy_round_trip(tmp_path):
    t = simulate(4, seed=5, config=SHORT)
    paths = write_npy_split(tmp_path, "valid", t, suffix="_charged5_test")
    assert sorted(p.name for p in paths) == sorted(
        f"{k}_valid_charged5_test.npy" for k in ("loc", "vel", "edges", "charges")
    )
    assert np.load(tmp_path / "edges_valid_charged5_test.npy").shape == (4, 5, 5)
    for suffix in ("_charged5_test", None):
        back = load_npy_split(tmp_path, "valid", suffix)
        np.testing.assert_array_equal(back.loc, t.loc)
        np.testing.assert_array_equal(back.vel, t.vel)
        np.testing.assert_array_equal(back.charges, t.charges)
    assert len(load_npy_split(tmp_path, "valid", n_traj=2)) == 2
    with pytest.raises(FileNotFoundError):
        load_npy_split(tmp_path, "test")


def test_cache_generates_once_and_slices(tmp_path):
    a = load_or_generate(tmp_path, "test", 6, seed=11, config=SHORT, progress=False)
    assert a.seconds > 0 and len(list(tmp_path.glob("*.npz"))) == 1
    b = load_or_generate(tmp_path, "test", 4, seed=11, config=SHORT, progress=False)
    assert b.seconds == 0.0
    np.testing.assert_array_equal(a.loc[:4], b.loc)
    # a different configuration is not served from the stale cache
    other = dataclasses.replace(SHORT, loc_std=0.5)
    with pytest.warns(CacheWarning, match="written with other simulation settings; regenerating"):
        c = load_or_generate(tmp_path, "test", 4, seed=11, config=other, progress=False)
    assert c.seconds > 0 and not np.allclose(c.loc, b.loc)


def test_dataset_items_and_constant_velocity_baseline():
    t = simulate(3, seed=6, config=SimulationConfig())
    ds = NBodyDataset(t, 30, 40)
    pos, vel, q, target = ds[1]
    assert pos.shape == vel.shape == target.shape == (5, 3) and q.shape == (5, 1)
    assert pos.dtype == torch.float32
    np.testing.assert_allclose(pos.numpy(), t.loc[1, 30].T, rtol=1e-6)
    np.testing.assert_allclose(target.numpy(), t.loc[1, 40].T, rtol=1e-6)
    assert ds.horizon == pytest.approx(1.0)
    expected = ((t.loc[:, 30] + t.vel[:, 30] - t.loc[:, 40]) ** 2).mean()
    assert ds.constant_velocity_mse() == pytest.approx(expected, rel=1e-4)


def test_dataset_frame_shifts_keep_the_horizon_and_reject_pairs_outside_the_trajectory():
    t = simulate(3, seed=6, config=SimulationConfig())
    ds = NBodyDataset(t, 30, 40, shifts=range(-2, 3))
    assert len(ds) == 15 and ds.horizon == pytest.approx(1.0)
    for k, s in enumerate(range(-2, 3)):  # shift-major order, trajectories in order within a shift
        pos, vel, q, target = ds[3 * k + 2]
        np.testing.assert_allclose(pos.numpy(), t.loc[2, 30 + s].T, rtol=1e-6)
        np.testing.assert_allclose(vel.numpy(), t.vel[2, 30 + s].T, rtol=1e-6)
        np.testing.assert_allclose(target.numpy(), t.loc[2, 40 + s].T, rtol=1e-6)
        np.testing.assert_array_equal(q.numpy(), t.charges[2])
    with pytest.raises(ValueError, match=r"frame shifts \[9\] move the pair"):
        NBodyDataset(t, 30, 40, shifts=[0, 9])
    with pytest.raises(ValueError, match="shifts is empty"):
        NBodyDataset(t, 30, 40, shifts=[])


# -- model ------------------------------------------------------------------------------------
def test_fully_connected_edges():
    ei = fully_connected_edges(3, 5)
    assert ei.shape == (2, 60) and ei.dtype == torch.long
    assert (ei[0] != ei[1]).all()
    assert (ei[0] // 5 == ei[1] // 5).all()
    assert len({tuple(e) for e in ei.T.tolist()}) == 60


def _random_system(batch: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(batch, 5, 3, generator=g) * 1.5
    vel = torch.randn(batch, 5, 3, generator=g) * 0.5
    charges = torch.randint(0, 2, (batch, 5, 1), generator=g).float() * 2 - 1
    return pos, vel, charges


_ALL_OPTIONS = dict(
    node_conditioning=True,
    relative_velocity=True,
    position_updates=True,
    velocity_attribute=True,
    nonlinear_messages=True,
    galilean_inputs=True,
    velocity_kernel=True,
)


@pytest.mark.parametrize(
    "group,backend,options",
    [
        ("O(3)", "escnn", {}),
        ("SO(3)", "escnn", {}),
        ("O(3)", "e3nn", {}),
        ("SO(3)", "e3nn", {}),
        ("O(3)", "escnn", {"kernel_basis": 0}),  # dense kernels
        ("O(3)", "escnn", _ALL_OPTIONS),
        ("SO(3)", "e3nn", _ALL_OPTIONS),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, dict) else v,
)
def test_model_is_e3_equivariant_float32(group, backend, options):
    _backend_or_skip(backend)
    torch.manual_seed(0)
    model = build_nbody_net(
        group=group, backend=backend, hidden_scalars=4, hidden_vectors=4, layers=3, kernel_hidden=4, **options
    )
    pos, vel, charges = _random_system()
    G = model.G
    els = G.sample(4, generator=torch.Generator().manual_seed(1))
    errs = equivariance_error(model, pos, vel, charges, elements=els, generator=torch.Generator().manual_seed(2))
    assert errs["displacement"] <= 1e-4 and errs["position"] <= 1e-4, errs
    if group == "O(3)":
        mirrors = torch.stack(
            [-torch.eye(3, dtype=torch.float64), torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))]
        )
        errs = equivariance_error(model, pos, vel, charges, elements=G.elements_from_matrices(mirrors))
        assert errs["displacement"] <= 1e-4, errs
    # translations alone
    out = model(pos, vel, charges)
    shift = torch.tensor([0.7, -1.3, 2.1])
    assert torch.allclose(model(pos + shift, vel, charges), out + shift, atol=1e-4 * float(out.detach().abs().max()))
    # the output depends on the inputs (not a trivially equivariant constant)
    assert not torch.allclose(model(pos, -vel, charges), out)


@pytest.mark.parametrize("nonlinear_messages", [False, True])
def test_galilean_inputs_make_velocity_shifts_exact(nonlinear_messages):
    """With ``galilean_inputs`` a common velocity shift ``w`` moves every prediction by ``a w`` only."""
    _backend_or_skip("escnn")
    torch.manual_seed(0)
    model = build_nbody_net(
        group="O(3)",
        backend="escnn",
        hidden_scalars=4,
        hidden_vectors=4,
        kernel_hidden=4,
        relative_velocity=True,
        galilean_inputs=True,
        velocity_kernel=True,
        nonlinear_messages=nonlinear_messages,
    ).double()
    pos, vel, charges = (t.double() for t in _random_system())
    shift = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    with torch.no_grad():
        moved = model(pos, vel + shift, charges) - model(pos, vel, charges)
    assert torch.allclose(moved, (model.velocity_skip * shift).expand_as(moved), atol=1e-10)


def test_gate_and_self_linear_are_equivariant():
    _backend_or_skip("escnn")
    G = st.group("O(3)", backend="escnn")
    s, v = G.trivial_rep(), G.standard_rep()
    out_type = st.FieldType(G, [s, v, s, v, v])
    gate = Gate(out_type)
    assert gate.n_gates == 3 and gate.in_type.size == out_type.size + 3
    lin = FieldLinear(st.FieldType(G, [v, s, v]), gate.in_type)
    x = torch.randn(7, 7, dtype=torch.float64)
    els = G.sample(3, generator=torch.Generator().manual_seed(0))

    def f(t):
        return gate(lin.double()(t))

    for k in range(3):
        g = els[k]
        lhs = f(st.FieldType(G, [v, s, v]).transform(x, g))
        rhs = out_type.transform(f(x), g)
        assert torch.allclose(lhs, rhs, atol=1e-12)


# -- training through Lightning ---------------------------------------------------------------
def _metrics(out_dir: Path) -> list[dict[str, str]]:
    rows = []
    for path in sorted(out_dir.glob("csv/version_*/metrics.csv")):
        rows += list(csv.DictReader(path.open()))
    return rows


def _val_by_epoch(rows) -> dict[int, float]:
    return {int(r["epoch"]): float(r["val_mse"]) for r in rows if r.get("val_mse")}


def test_two_epoch_training_then_resume(tmp_path, capsys):
    _backend_or_skip("escnn")
    from steerable.tasks.nbody.train import build_parser, resolve, run

    out = tmp_path / "run"
    argv = tiny_nbody_flags(
        60, 30, 30, preset="demo", group="SO(3)", backend="escnn", hidden_scalars=4, hidden_vectors=4,
        kernel_hidden=4, lr="2e-3", data_dir=tmp_path / "data", out_dir=out, no_progress=True,
        equivariance_elements=2,
    )  # fmt: skip
    cfg = resolve(build_parser().parse_args(argv))
    first = run(cfg)
    assert first["epochs"] == 2 and first["global_step"] == 2 * 6
    rows = _metrics(out)
    val = _val_by_epoch(rows)
    assert val[1] < val[0]
    train = [float(r["train_mse_epoch"]) for r in rows if r.get("train_mse_epoch")]
    assert train[-1] < train[0]
    assert first["test_equiv_displacement"] < 1e-4
    printed = capsys.readouterr().out
    assert "test MSE" in printed and "constant velocity" in printed and "equivariance" in printed

    last = out / "checkpoints" / "last.ckpt"
    assert last.exists()
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 12
    cfg2 = resolve(build_parser().parse_args(argv + ["--epochs", "3", "--resume", str(last)]))
    second = run(cfg2)
    assert second["epochs"] == 3 and second["global_step"] == 3 * 6
    new_epochs = {int(r["epoch"]) for r in _metrics(out) if r.get("val_mse")} - set(val)
    assert new_epochs == {2}  # the resumed run trained epoch 2 only


def test_train_frame_shift_multiplies_the_training_samples_and_presets_set_it(tmp_path):
    _backend_or_skip("escnn")
    from steerable.tasks.nbody.train import build_parser, resolve, run

    assert resolve(build_parser().parse_args(["--preset", "full"]))["train_frame_shift"] == 5
    assert resolve(build_parser().parse_args(["--preset", "demo"]))["train_frame_shift"] == 0
    argv = tiny_nbody_flags(
        20, 10, 10, train_frame_shift=1, data_dir=tmp_path / "data", out_dir=tmp_path / "run", no_progress=True
    )
    result = run(resolve(build_parser().parse_args(argv)))
    assert result["global_step"] == 2 * (3 * 20 // 10)  # 2 epochs of 3 pairs per trajectory, batch 10
    bad = tiny_nbody_flags(train_frame_shift=9, frame_out=45, data_dir=tmp_path / "data", out_dir=tmp_path / "b")
    with pytest.raises(ValueError, match=r"lower the shift \(--train-frame-shift\)"):
        run(resolve(build_parser().parse_args(bad + ["--no-progress"])))


def test_ema_weights_are_validated_and_checkpointed(tmp_path):
    """--ema: Lightning's EMA callback runs, its averaged weights are what the checkpoint holds."""
    _backend_or_skip("escnn")
    from steerable.tasks.nbody.train import build_parser, resolve, run

    out = tmp_path / "run"
    argv = tiny_nbody_flags(
        epochs=1,
        preset="demo",
        group="SO(3)",
        data_dir=tmp_path / "data",
        out_dir=out,
        no_progress=True,
        equivariance_elements=1,
        ema=0.5,
    )  # fmt: skip  (--ema last: the check below replaces its value)
    result = run(resolve(build_parser().parse_args(argv)))
    assert result["epochs"] == 1 and math.isfinite(result["test_mse"])
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert any("EMAWeightAveraging" in key for key in ckpt["callbacks"])
    averaged, raw = ckpt["state_dict"], ckpt["current_model_state"]  # the average is the model saved
    assert any(not torch.equal(averaged[k], raw[k]) for k in averaged if averaged[k].is_floating_point())
    with pytest.raises(ValueError, match=r"--ema: ema must be in \(0, 1\)"):  # refused by the setting's check
        resolve(build_parser().parse_args(argv[:-1] + ["1.5"]))


def test_tasks_cli_help_and_unknown(capsys):
    from steerable.tasks.cli import main

    assert main(["--help"]) == 0
    assert "nbody" in capsys.readouterr().out
    assert main(["no-such-task"]) == 2
    with pytest.raises(SystemExit):
        main(["nbody", "--help"])


def test_datamodule_reads_benchmark_npy_files(tmp_path):
    from steerable.tasks.nbody.lit import NBodyDataModule

    for split, seed in (("train", 1), ("valid", 2), ("test", 3)):
        write_npy_split(tmp_path, split, simulate(5, seed=seed, config=SHORT), suffix="_charged5_initvel1small")
    dm = NBodyDataModule(
        n_train=4, n_val=5, n_test=3, batch_size=2, npy_dir=str(tmp_path), frame_in=2, frame_out=7, progress=False
    )
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert [len(dm.datasets[s]) for s in ("train", "valid", "test")] == [4, 5, 3]
    ref = simulate(5, seed=3, config=SHORT)
    np.testing.assert_allclose(dm.datasets["test"].pos.numpy(), ref.loc[:3, 2].transpose(0, 2, 1), rtol=1e-6)
    np.testing.assert_allclose(dm.datasets["test"].target.numpy(), ref.loc[:3, 7].transpose(0, 2, 1), rtol=1e-6)
    assert dm.horizon == pytest.approx(0.5)
    pos, vel, q, target = next(iter(dm.train_dataloader()))
    assert pos.shape == (2, 5, 3) and q.shape == (2, 5, 1)


def test_datamodule_frame_shift_applies_to_training_only(tmp_path):
    from steerable.tasks.nbody.lit import NBodyDataModule

    for split, seed in (("train", 1), ("valid", 2), ("test", 3)):
        write_npy_split(tmp_path, split, simulate(5, seed=seed, config=SHORT), suffix="_x")
    dm = NBodyDataModule(
        n_train=4, n_val=5, n_test=3, npy_dir=str(tmp_path), frame_in=2, frame_out=7, train_frame_shift=1
    )
    dm.setup("fit")
    dm.setup("test")
    assert [len(dm.datasets[s]) for s in ("train", "valid", "test")] == [12, 5, 3]
    ref = simulate(5, seed=1, config=SHORT)
    np.testing.assert_allclose(dm.datasets["train"].pos[:4].numpy(), ref.loc[:4, 1].transpose(0, 2, 1), rtol=1e-6)
    np.testing.assert_allclose(dm.datasets["train"].target[8:].numpy(), ref.loc[:4, 8].transpose(0, 2, 1), rtol=1e-6)
    valid = simulate(5, seed=2, config=SHORT)
    np.testing.assert_allclose(dm.datasets["valid"].pos.numpy(), valid.loc[:5, 2].transpose(0, 2, 1), rtol=1e-6)


def test_config_file_and_flags_override_preset(tmp_path):
    from steerable.tasks.nbody.train import PRESETS, SETTINGS, build_parser, resolve

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("preset: demo\nn_train: 123\nbackend: e3nn\n")
    cfg = resolve(build_parser().parse_args(["--config", str(cfg_file), "--n-train", "77", "--group", "SO(3)"]))
    assert cfg["n_train"] == 77 and cfg["backend"] == "e3nn" and cfg["group"] == "SO(3)"
    assert cfg["epochs"] == PRESETS["demo"]["epochs"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("no_such_setting: 1\n")
    with pytest.raises(ValueError):
        resolve(build_parser().parse_args(["--config", str(bad)]))
    repo = Path(__file__).resolve().parents[1]
    for name in ("nbody_demo.yaml", "nbody_full.yaml"):
        from_file = resolve(build_parser().parse_args(["--config", str(repo / "configs" / name)]))
        # the file repeats its preset (with any --preset: the file's preset replaces it)
        assert from_file == SETTINGS.preset(from_file["preset"])
    # boolean model options: preset value, overridden by --flag / --no-flag
    assert resolve(build_parser().parse_args(["--preset", "full"]))["relative_velocity"] is True
    assert (
        resolve(build_parser().parse_args(["--preset", "full", "--no-relative-velocity"]))["relative_velocity"] is False
    )
    assert resolve(build_parser().parse_args(["--preset", "demo", "--node-conditioning"]))["node_conditioning"] is True


def test_cli_writes_benchmark_files(tmp_path):
    from steerable.tasks.cli import main

    out = tmp_path / "npy"
    args = [
        "nbody",
        "--write-npy",
        str(out),
        "--n-train",
        "3",
        "--n-val",
        "2",
        "--n-test",
        "2",
        "--data-dir",
        str(tmp_path / "cache"),
        "--no-progress",
    ]
    assert main(args) == 0
    assert len(list(out.glob("*.npy"))) == 12
    back = load_npy_split(out, "train")
    assert back.loc.shape == (3, 49, 3, 5)


@pytest.mark.slow
def test_demo_preset_beats_constant_velocity(tmp_path):
    """The documented demo (``python -m steerable.tasks nbody --preset demo``; ~2-3 min on 2 cores)."""
    _backend_or_skip("escnn")
    from steerable.tasks.nbody.train import build_parser, resolve, run

    argv = [
        "--preset",
        "demo",
        "--data-dir",
        str(tmp_path / "data"),
        "--out-dir",
        str(tmp_path / "run"),
        "--no-progress",
    ]
    result = run(resolve(build_parser().parse_args(argv)))
    assert result["test_mse"] < 0.5 * result["test_cv_mse"]
    assert result["test_equiv_displacement"] < 1e-4


# -- the parts of NBodyNet ------------------------------------------------------------------------
def test_presets_build_the_architecture_of_before():
    """Parameter counts of the preset models, measured with the NBodyNet of seven switches (escnn O(3))."""
    _backend_or_skip("escnn")
    from steerable.tasks.nbody.train import SETTINGS

    for preset, expected in (("full", 84024), ("demo", 8345)):
        model = build_nbody_net(**SETTINGS.select(SETTINGS.preset(preset), "model"))
        assert isinstance(model, NBodyNet)
        assert sum(p.numel() for p in model.parameters()) == expected, preset
    full = build_nbody_net(**SETTINGS.select(SETTINGS.preset("full"), "model"))
    assert [type(b).__name__ for b in full.blocks] == ["MessageBlock"] * 4
    assert full.velocity_kernels is not None and len(full.velocity_kernels) == 4
    assert full.position_update is not None and full.inputs.galilean
    demo = build_nbody_net(**SETTINGS.select(SETTINGS.preset("demo"), "model"))
    assert [type(b).__name__ for b in demo.blocks] == ["PointConvBlock"] * 3
    assert demo.velocity_kernels is None and demo.position_update is None
    with pytest.raises(ValueError, match="unknown layer_type 'dense'"):
        NBodyNet(layer_type="dense")


def test_edge_features_and_position_update_layout():
    _backend_or_skip("escnn")
    from steerable.tasks.nbody.model import EdgeFeatures, EdgeGeometry, PositionUpdate

    G = st.group("O(3)", backend="escnn")
    s, v = G.trivial_rep(), G.standard_rep()
    node_type = st.FieldType(G, [s] * 3 + [v])
    pos = torch.tensor([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    vel = torch.tensor([[1.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    edge_index = torch.tensor([[0, 1], [1, 0]])  # 0 -> 1 and 1 -> 0
    qq = torch.tensor([[-1.0], [-1.0]])
    v_ji = vel[edge_index[0]] - vel[edge_index[1]]
    geo = EdgeGeometry.at(pos, qq, v_ji, edge_index)
    # edge 0 -> 1: x_j - x_i = (-3, -4, 0), |.| = 5; v_j - v_i = (0, -2, -2): closing 8 / 5, speed sqrt(8)
    assert torch.allclose(geo.invariants[0], torch.tensor([-1.0, 5.0]))
    assert torch.allclose(geo.velocity_invariants[0], torch.tensor([1.6, 8**0.5]))
    h = torch.arange(12.0).reshape(2, 6)
    plain, full = EdgeFeatures(), EdgeFeatures(True, True, True)
    assert plain.field_type(G, node_type).size == 2 and torch.equal(
        plain(geo, h, node_type, edge_index), geo.invariants
    )
    attr = full(geo, h, node_type, edge_index)
    assert full.field_type(G, node_type).size == attr.shape[1] == 2 + 2 + 2 * 3 + 3
    # target's scalars, then the source's, then v_j - v_i
    assert torch.equal(attr[0, 4:10], torch.tensor([6.0, 7.0, 8.0, 0.0, 1.0, 2.0]))
    assert torch.equal(attr[0, 10:], v_ji[0])
    out = torch.arange(10.0).reshape(2, 5)
    features, moved = PositionUpdate(2)(out, pos[:, :3])
    assert torch.equal(features, out[:, :2]) and torch.equal(moved, pos + out[:, 2:])


def test_velocity_kernel_is_per_particle_and_equivariant():
    """``K_v(g v; q) rho(g) h = rho(g) K_v(v; q) h``, and each particle's output depends on its own inputs only."""
    _backend_or_skip("escnn")
    from steerable.tasks.nbody.model import VelocityKernel

    G = st.group("O(3)", backend="escnn")
    s, v = G.trivial_rep(), G.standard_rep()
    t_in, t_out = st.FieldType(G, [s, v, v]), st.FieldType(G, [s, s, v])
    torch.manual_seed(0)
    kv = VelocityKernel(t_in, t_out, dict(hidden_channels=4, radial_features=4, max_radius=3.0)).double()
    g = torch.Generator().manual_seed(0)
    h = torch.randn(6, t_in.size, generator=g, dtype=torch.float64)
    vel = torch.randn(6, 3, generator=g, dtype=torch.float64)
    q = torch.randint(0, 2, (6, 1), generator=g).double() * 2 - 1
    with torch.no_grad():
        out = kv(h, vel, q)
        perm = torch.tensor([3, 0, 5, 1, 4, 2])
        assert torch.allclose(kv(h[perm], vel[perm], q[perm]), out[perm], atol=1e-13)
        worst = 0.0
        for R in G.sample(3, generator=torch.Generator().manual_seed(1)).matrices:
            # the documented action: trivial fields unchanged, standard fields x -> R x
            rot_h = torch.cat([h[:, :1], h[:, 1:4] @ R.T, h[:, 4:] @ R.T], 1)
            expect = torch.cat([out[:, :2], out[:, 2:] @ R.T], 1)
            worst = max(worst, float((kv(rot_h, vel @ R.T, q) - expect).norm() / expect.norm()))
    # measured 3.3e-16 (float64, O(3) / escnn); bound 1e-13 leaves 300x for other platforms' round-off
    assert worst < 1e-13, worst
