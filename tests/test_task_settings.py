"""Task settings: one declaration per task, from which flags, YAML keys, defaults, presets and help derive.

The expected settings below were written down from the code before the declarations existed (the
hand-written ``PRESETS`` / ``DEFAULTS`` / argparse of each task): every preset and every file in
``configs/`` must still resolve to them, and every flag of that code must still exist.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
from pathlib import Path

import pytest

from steerable.tasks.settings import Setting, TaskSettings, positive, run_section, section
from steerable.tasks.task import DRIVER_SETTINGS, Task

REPO = Path(__file__).resolve().parents[1]
TASKS = ("nbody", "qm9", "modelnet")

# -- settings of the code before the declarations (resolved with `--preset NAME`) ----------------------
NBODY_FULL = {
    "accelerator": "auto",
    "backend": "escnn",
    "batch_size": 100,
    "data_dir": "data/nbody",
    "devices": "auto",
    "ema": None,
    "envelope_width": None,
    "epochs": 24,  # 150 before issue 17's frame shift (session 8): 24 epochs of 11 pairs per trajectory
    "equivariance_batches": 2,
    "equivariance_elements": 4,
    "frame_in": 30,
    "frame_out": 40,
    "galilean_inputs": True,
    "group": "O(3)",
    "hidden_scalars": 8,
    "hidden_vectors": 8,
    "kernel_basis": 16,
    "kernel_hidden": 16,
    "kernel_layers": 1,
    "layers": 4,
    "lr": 0.002,
    "max_radius": 4.0,
    "model_seed": 0,
    "compile": False,  # added with --compile (issue 18): off by default, so runs resolve as before
    "n_test": 2000,
    "n_train": 3000,
    "n_val": 2000,
    "node_conditioning": False,
    "nonlinear_messages": True,
    "npy_dir": None,
    "npy_suffix": None,
    "num_threads": 1,
    "overwrite": False,
    "verbose": False,
    "out_dir": "runs/nbody_full",
    "position_updates": True,
    "preset": "full",
    "progress": True,
    "radial_features": 8,
    "relative_velocity": True,
    "resume": None,
    "seed": 43,
    "train_frame_shift": 5,  # added with issue 17 (session 8); 0 is the single pair of before
    "velocity_attribute": False,
    "velocity_kernel": True,
    "weight_decay": 0.0,
    "write_npy": None,
}
NBODY_DEMO = {
    **NBODY_FULL,
    "batch_size": 50,
    "epochs": 100,
    "galilean_inputs": False,
    "kernel_basis": 8,
    "kernel_hidden": 8,
    "layers": 3,
    "lr": 0.003,
    "n_test": 500,
    "n_train": 500,
    "n_val": 200,
    "nonlinear_messages": False,
    "out_dir": "runs/nbody_demo",
    "position_updates": False,
    "preset": "demo",
    "relative_velocity": False,
    "train_frame_shift": 0,
    "velocity_kernel": False,
}
QM9_FULL = {
    "accelerator": "auto",
    "backend": "escnn",
    "batch_size": 32,
    "cutoff": 2.0,
    "devices": "auto",
    "ema": None,
    "envelope_width": None,
    "epochs": 100,
    "graph": "bond",
    "group": "O(3)",
    "hidden_scalars": 64,
    "hidden_vectors": 16,
    "kernel_hidden": 32,
    "kernel_layers": 1,
    "layers": 6,
    "lr": 0.001,
    "model_seed": 0,
    "num_threads": 1,
    "overwrite": False,
    "verbose": False,
    "out_dir": "runs/qm9_full",
    "pool": "sum",
    "preset": "full",
    "progress": True,
    "radial_features": 32,
    "resume": None,
    "root": "data/qm9",
    "seed": 42,
    "sizes": None,
    "synthetic": None,
    "target": "U0",
    "weight_decay": 0.0,
    "source": "pyg",
    "molecules": None,
    "readout": "pooled",
    "layer": "conv",
    "bond_attributes": True,
    "atom_attributes": True,
    "invariant_width": 64,
}
QM9_DEMO = {
    **QM9_FULL,
    "batch_size": 16,
    "epochs": 5,
    "hidden_scalars": 8,
    "hidden_vectors": 4,
    "kernel_hidden": 8,
    "layers": 3,
    "out_dir": "runs/qm9_demo",
    "preset": "demo",
}
MODELNET_FULL = {
    "accelerator": "auto",
    "backend": "escnn",
    "batch_size": 32,
    "devices": "auto",
    "ema": None,
    "epochs": 200,
    "group": "SO(3)",
    "hidden_scalars": 64,
    "hidden_vectors": 16,
    "k": 16,
    "kernel_hidden": 32,
    "kernel_layers": 1,
    "lr": 0.001,
    "max_radius": 1.0,
    "model_seed": 0,
    "name": "40",
    "num_points": 1024,
    "num_threads": 1,
    "overwrite": False,
    "verbose": False,
    "out_dir": "runs/modelnet_full",
    "preset": "full",
    "progress": True,
    "radial_features": 8,
    "ratio": 0.25,
    "resume": None,
    "root": "data/modelnet40",
    "rotation": "none",
    "sampling": "fps",
    "seed": 0,
    "stages": 3,
    "synthetic": False,
    "test_rotation": "none",
    "val_fraction": 0.1,
    "weight_decay": 0.0,
}
MODELNET_DEMO = {
    **MODELNET_FULL,
    "batch_size": 8,
    "epochs": 25,
    "hidden_scalars": 8,
    "hidden_vectors": 4,
    "k": 8,
    "kernel_hidden": 8,
    "lr": 0.005,
    "num_points": 128,
    "out_dir": "runs/modelnet_demo",
    "preset": "demo",
    "stages": 2,
}
PRESETS = {
    "nbody": {"full": NBODY_FULL, "demo": NBODY_DEMO},
    "qm9": {"full": QM9_FULL, "demo": QM9_DEMO},
    "modelnet": {"full": MODELNET_FULL, "demo": MODELNET_DEMO},
}
#: `--config configs/<file>` (no other flag).  configs/nbody_demo.yaml resolved, before, to the demo sizes
#: with the *full* preset's model switches (the file's preset was applied on top of the default --preset full
#: instead of replacing it), contrary to its own comment "Same as `--preset demo`"; it is now the demo preset.
CONFIGS = {
    "nbody_demo.yaml": NBODY_DEMO,
    "nbody_full.yaml": NBODY_FULL,
    "qm9_demo.yaml": {
        **QM9_DEMO,
        "epochs": 8,
        "lr": 0.003,
        "root": "data/qm9_synthetic",
        "synthetic": 60,
        "target": "alpha",
    },
    "qm9_full.yaml": {**QM9_FULL, "out_dir": "runs/qm9_full_homo", "source": "qm9pack", "target": "homo"},
    "qm9_real_demo.yaml": {
        **QM9_DEMO,
        "source": "qm9pack",
        "molecules": 2000,
        "target": "homo",
        "epochs": 8,
        "lr": 0.003,
        "batch_size": 32,
        "hidden_scalars": 16,
        "hidden_vectors": 4,
        "kernel_hidden": 16,
        "out_dir": "runs/qm9_real_demo",
    },
    "modelnet_demo.yaml": {
        **MODELNET_DEMO,
        "root": "data/modelnet_synthetic",
        "synthetic": True,
        "test_rotation": "so3",
        "val_fraction": 0.2,
    },
    "modelnet_full.yaml": {**MODELNET_FULL, "out_dir": "runs/modelnet40_full_so3", "test_rotation": "so3"},
}
#: every option string of the parsers before the declarations
OLD_FLAGS = {
    "nbody": {
        "--accelerator",
        "--backend",
        "--batch-size",
        "--config",
        "--data-dir",
        "--devices",
        "--ema",
        "--envelope-width",
        "--epochs",
        "--equivariance-batches",
        "--equivariance-elements",
        "--frame-in",
        "--frame-out",
        "--galilean-inputs",
        "--group",
        "--help",
        "--hidden-scalars",
        "--hidden-vectors",
        "--kernel-basis",
        "--kernel-hidden",
        "--kernel-layers",
        "--layers",
        "--lr",
        "--max-radius",
        "--model-seed",
        "--n-test",
        "--n-train",
        "--n-val",
        "--no-galilean-inputs",
        "--no-node-conditioning",
        "--no-nonlinear-messages",
        "--no-position-updates",
        "--no-progress",
        "--no-relative-velocity",
        "--no-velocity-attribute",
        "--no-velocity-kernel",
        "--node-conditioning",
        "--nonlinear-messages",
        "--npy-dir",
        "--npy-suffix",
        "--num-threads",
        "--out-dir",
        "--position-updates",
        "--preset",
        "--radial-features",
        "--relative-velocity",
        "--resume",
        "--seed",
        "--velocity-attribute",
        "--velocity-kernel",
        "--weight-decay",
        "--write-npy",
        "-h",
    },
    "qm9": {
        "--accelerator",
        "--backend",
        "--batch-size",
        "--config",
        "--cutoff",
        "--devices",
        "--ema",
        "--envelope-width",
        "--epochs",
        "--graph",
        "--group",
        "--help",
        "--hidden-scalars",
        "--hidden-vectors",
        "--kernel-hidden",
        "--kernel-layers",
        "--layers",
        "--lr",
        "--model-seed",
        "--no-progress",
        "--num-threads",
        "--out-dir",
        "--pool",
        "--preset",
        "--radial-features",
        "--resume",
        "--root",
        "--seed",
        "--sizes",
        "--synthetic",
        "--target",
        "--weight-decay",
        "-h",
    },
    "modelnet": {
        "--accelerator",
        "--backend",
        "--batch-size",
        "--config",
        "--devices",
        "--ema",
        "--epochs",
        "--group",
        "--help",
        "--hidden-scalars",
        "--hidden-vectors",
        "--k",
        "--kernel-hidden",
        "--kernel-layers",
        "--lr",
        "--max-radius",
        "--model-seed",
        "--name",
        "--no-progress",
        "--num-points",
        "--num-threads",
        "--out-dir",
        "--preset",
        "--radial-features",
        "--ratio",
        "--resume",
        "--root",
        "--rotation",
        "--sampling",
        "--seed",
        "--stages",
        "--synthetic",
        "--test-rotation",
        "--val-fraction",
        "--weight-decay",
        "-h",
    },
}


def _train(task: str):
    return importlib.import_module(f"steerable.tasks.{task}.train")


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("preset", ["full", "demo"])
def test_presets_resolve_as_before(task, preset):
    t = _train(task)
    assert t.resolve(t.build_parser().parse_args(["--preset", preset])) == PRESETS[task][preset]
    assert t.SETTINGS.preset(preset) == PRESETS[task][preset]
    if preset == "demo":  # the default preset (issue 15: a newcomer's first run is the demo)
        assert t.resolve(t.build_parser().parse_args([])) == PRESETS[task][preset]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_files_resolve_as_before(name):
    t = _train(name.split("_")[0])
    path = str(REPO / "configs" / name)
    assert t.resolve(t.build_parser().parse_args(["--config", path])) == CONFIGS[name]
    # the file's preset replaces --preset, whichever was given
    for preset in ("demo", "full"):
        assert t.resolve(t.build_parser().parse_args(["--preset", preset, "--config", path])) == CONFIGS[name]


def test_config_files_cover_configs_folder():
    assert sorted(p.name for p in (REPO / "configs").glob("*.yaml")) == sorted(CONFIGS)


@pytest.mark.parametrize("task", TASKS)
def test_every_old_flag_still_parses(task):
    parser = _train(task).build_parser()
    flags = {s for a in parser._actions for s in a.option_strings}
    assert OLD_FLAGS[task] <= flags, sorted(OLD_FLAGS[task] - flags)


def test_flags_parse_to_the_values_of_before():
    """A few explicit flags per task, values as the hand-written parsers produced them."""
    nbody, qm9, modelnet = (_train(t) for t in TASKS)
    cfg = nbody.resolve(
        nbody.build_parser().parse_args(
            [
                "--preset",
                "demo",
                "--backend",
                "auto",
                "--no-progress",
                "--velocity-kernel",
                "--envelope-width",
                "0.5",
                "--devices",
                "1",
                "--kernel-basis",
                "0",
            ]
        )
    )
    assert cfg == {
        **NBODY_DEMO,
        "backend": None,
        "progress": False,
        "velocity_kernel": True,
        "envelope_width": 0.5,
        "devices": "1",
        "kernel_basis": 0,
    }
    cfg = qm9.resolve(
        qm9.build_parser().parse_args(
            ["--preset", "full", "--sizes", "10", "5", "5", "--graph", "bond", "--synthetic", "7"]
        )
    )
    assert cfg == {**QM9_FULL, "sizes": [10, 5, 5], "graph": "bond", "synthetic": 7}
    cfg = modelnet.resolve(
        modelnet.build_parser().parse_args(["--preset", "full", "--synthetic", "--name", "10", "--k", "4"])
    )
    assert cfg == {**MODELNET_FULL, "synthetic": True, "name": "10", "k": 4}
    with pytest.raises(SystemExit):
        modelnet.build_parser().parse_args(["--rotation", "x"])


# -- the declaration ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
def test_each_setting_is_declared_once_and_derives_flag_yaml_key_and_default(task, tmp_path):
    t = _train(task)
    S: TaskSettings = t.SETTINGS
    declared = [name for sec in S.sections for name in sec.settings]
    assert len(declared) == len(set(declared)) and list(S.settings) == declared
    # the parser holds exactly the derived flags: one per setting (two for a switch), --preset, --config, help
    expected = {"-h", "--help", "--preset", "--config"}
    for name, s in S.settings.items():
        expected.add(S.flag(name))
        if s.is_switch:
            expected.add("--no-" + name.replace("_", "-"))
    parser = S.build_parser()
    actions = {a.dest: a for a in parser._actions}
    assert {o for a in parser._actions for o in a.option_strings} == expected
    assert set(actions) == set(S.settings) | {"help", "preset", "config"}
    # every setting has a default, and a YAML key of its own name that sets it
    assert set(S.defaults) == set(S.settings)
    lines = ["preset: demo"]
    for name in S.settings:
        value = S.preset("demo")[name]
        lines.append(f"{name}: {_yaml(value)}")
    (tmp_path / "all.yaml").write_text("\n".join(lines) + "\n")
    cfg = t.resolve(t.build_parser().parse_args(["--config", str(tmp_path / "all.yaml")]))
    expected_cfg = S.preset("demo")
    if expected_cfg.get("backend") in ("auto", ""):
        expected_cfg["backend"] = None
    assert cfg == expected_cfg
    # presets only change declared settings, the driver's settings are declared
    assert all(set(p) <= set(S.settings) for p in S.presets.values())
    assert set(DRIVER_SETTINGS) <= set(S.settings)


def _yaml(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    return repr(value)


@pytest.mark.parametrize("task", TASKS)
def test_help_shows_help_text_and_default_of_every_flag(task, capsys):
    from steerable.tasks.cli import main

    t = _train(task)
    S = t.SETTINGS
    with pytest.raises(SystemExit) as exit_info:
        main([task, "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for name, s in S.settings.items():
        shown = " ".join(f"{s.help} [{S.default_text(name)}]".split())
        assert shown in out, (name, shown)
        assert re.search(r"default: \S", S.default_text(name))
    # the other preset's differing value is shown beside the default (the demo's)
    changed = next(iter(S.presets["demo"]))
    assert S.default_preset == "demo" and "--preset full: " in S.default_text(changed)
    for action in S.build_parser()._actions:
        assert action.help and (action.dest == "help" or "[default: " in action.help), action.option_strings


def test_sections_match_the_code_they_feed():
    """Each section's names are parameters of what it is passed to (no setting spelled again by hand)."""
    from steerable.tasks.modelnet.data import ModelNetDataModule
    from steerable.tasks.modelnet.model import ModelNetNet
    from steerable.tasks.nbody.lit import NBodyDataModule, NBodyModule
    from steerable.tasks.nbody.model import NBodyNet, build_nbody_net
    from steerable.tasks.qm9.data import QM9DataModule
    from steerable.tasks.qm9.model import QM9Net

    def params(fn):
        return set(inspect.signature(fn).parameters)

    nbody, qm9, modelnet = (_train(t).SETTINGS for t in TASKS)
    assert set(nbody.names("data")) <= params(NBodyDataModule)
    model, switches = set(nbody.names("model")), params(build_nbody_net) - {"options"}
    assert switches <= model and model - switches <= params(NBodyNet)  # the rest goes to NBodyNet by name
    assert set(nbody.names("evaluation")) <= params(NBodyModule)
    assert set(qm9.names("data")) <= params(QM9DataModule)
    assert set(qm9.names("model")) <= params(QM9Net)
    assert set(modelnet.names("data")) <= params(ModelNetDataModule)
    assert set(modelnet.names("model")) <= params(ModelNetNet)


# -- resolution errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text,match",
    [
        ("- 1\n- 2\n", "expected a mapping"),
        ("no_such_setting: 1\n", "unknown setting 'no_such_setting'"),
        ("preset: huge\n", "unknown preset 'huge'"),
        ("epochs: ten\n", "epochs must be int"),
        ("relative_velocity: 1\n", "relative_velocity must be bool"),
        ("lr: fast\n", "lr must be float"),
    ],
)
def test_bad_config_file_is_a_clear_error(tmp_path, text, match):
    t = _train("nbody")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        t.resolve(t.build_parser().parse_args(["--config", str(path)]))
    assert str(path) in str(info.value)


def test_bad_choice_and_list_in_config_file(tmp_path):
    qm9, modelnet = _train("qm9"), _train("modelnet")
    path = tmp_path / "c.yaml"
    path.write_text("graph: knn\n")
    with pytest.raises(ValueError, match=r"graph must be one of \['radius', 'bond'\]"):
        qm9.resolve(qm9.build_parser().parse_args(["--config", str(path)]))
    path.write_text("sizes: [10, 5]\n")
    with pytest.raises(ValueError, match="sizes must be a list of 3 values"):
        qm9.resolve(qm9.build_parser().parse_args(["--config", str(path)]))
    path.write_text("name: 10\n")  # an unquoted YAML number for a text setting is taken as its text
    assert modelnet.resolve(modelnet.build_parser().parse_args(["--config", str(path)]))["name"] == "10"


def test_declaration_errors():
    ok = section("model", width=Setting(4, "fields"))
    run = run_section("runs/x")
    training = section("training", epochs=Setting(1, "epochs"), model_seed=Setting(0, "seed"))
    S = TaskSettings("toy", "a toy task", [ok, training, run], {"full": {}, "demo": {"width": 2}})
    assert S.preset("demo")["width"] == 2 and S.select(S.preset("full"), "model") == {"width": 4}
    with pytest.raises(ValueError, match="'width' is declared twice"):
        TaskSettings("toy", "", [ok, section("more", width=Setting(1, "again"))], {"demo": {}})
    with pytest.raises(ValueError, match="'preset' is reserved"):
        TaskSettings("toy", "", [section("x", preset=Setting("a", "no"))], {"demo": {}})
    with pytest.raises(ValueError, match="unknown setting 'depth'"):
        TaskSettings("toy", "", [ok], {"demo": {"depth": 3}})
    with pytest.raises(ValueError, match="width must be int"):
        TaskSettings("toy", "", [ok], {"demo": {"width": "wide"}})
    with pytest.raises(ValueError, match="default preset 'demo'"):
        TaskSettings("toy", "", [ok], {"full": {}})
    assert TaskSettings("toy", "", [ok], {"full": {}}, default_preset="full").default_preset == "full"
    with pytest.raises(ValueError, match="help text is required"):
        Setting(1, "")
    with pytest.raises(ValueError, match="a type is required"):
        Setting(None, "no type")
    with pytest.raises(ValueError, match="does not declare the driver's settings"):
        Task(TaskSettings("toy", "", [ok], {"demo": {}}), "val_loss", "min", *([lambda *a: None] * 4))
    with pytest.raises(KeyError, match="no section 'data'"):
        S.names("data")
    parsed = S.build_parser().parse_args(["--width", "7", "--no-progress"])
    assert isinstance(parsed, argparse.Namespace) and S.resolve(parsed)["width"] == 7
    assert S.resolve(parsed)["progress"] is False


# -- value checks (issue 15) -------------------------------------------------------------------------------
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(
    "flag,value,match",
    [
        ("--epochs", "-1", "--epochs: epochs must be positive, got -1"),
        ("--batch-size", "0", "--batch-size: batch_size must be positive, got 0"),
        ("--lr", "0", "--lr: lr must be positive"),
        ("--ema", "1.5", r"--ema: ema must be in \(0, 1\), got 1.5"),
    ],
)
def test_bad_values_are_one_line_errors_before_anything_is_built(task, flag, value, match, tmp_path, capsys):
    """Before: --epochs -1 trained forever, --batch-size 0 failed after the model summary."""
    t = _train(task)
    out = tmp_path / "run"
    assert t.main([flag, value, "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(match, err[0]), err
    assert not out.exists()  # nothing was built or written


def test_checks_apply_to_config_files_and_presets(tmp_path):
    t = _train("nbody")
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 0\n")
    with pytest.raises(ValueError, match=f"{path}: epochs must be positive, got 0"):
        t.resolve(t.build_parser().parse_args(["--config", str(path)]))
    with pytest.raises(ValueError, match="toy preset 'demo': width must be positive"):
        TaskSettings("toy", "", [section("m", width=Setting(4, "fields", check=positive))], {"demo": {"width": 0}})
    with pytest.raises(FileNotFoundError, match="--config missing.yaml: no such file"):
        t.resolve(t.build_parser().parse_args(["--config", "missing.yaml"]))
    path.write_text("epochs: [1\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        t.resolve(t.build_parser().parse_args(["--config", str(path)]))
