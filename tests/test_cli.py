"""The ``steerable`` command line, on the toy plugin."""

from __future__ import annotations

import re

import pytest

from steerable.cli import main


def test_backends_and_groups(toy_group, capsys):
    assert main(["backends"]) == 0
    assert re.search(r"^toy\s+available; groups: ToyC4$", capsys.readouterr().out, re.M)
    assert main(["groups"]) == 0
    assert "ToyC4" in capsys.readouterr().out


def test_check_prints_small_errors(toy_group, capsys):
    assert main(["check", "ToyC4", "--backend", "toy"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("ToyC4"))
    errors = [float(v) for v in re.findall(r"\d\.\d\de[-+]\d\d", row)]
    assert len(errors) == 3 and max(errors) < 1e-10


def test_unknown_group_is_one_line_error(toy_group, capsys):
    assert main(["check", "SU(2)"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("steerable: error: unknown group 'SU(2)'")


def test_train_forwards_to_the_task_commands(capsys):
    """``steerable train TASK ...`` is ``python -m steerable.tasks TASK ...``: same help, same errors."""
    for task, flag in (("nbody", "--velocity-kernel"), ("qm9", "--cutoff"), ("modelnet", "--test-rotation")):
        with pytest.raises(SystemExit) as info:
            main(["train", task, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: python -m steerable.tasks {task}") and flag in out and "[default: " in out
    assert main(["train", "no-such-task"]) == 2
    assert "unknown task 'no-such-task'" in capsys.readouterr().err


def test_train_help_lists_the_tasks_and_what_full_costs(capsys):
    """Before: ``steerable train --help`` was 'unrecognized arguments: --help'."""
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for task in ("nbody", "qm9", "modelnet"):
        assert re.search(rf"^  {task}\s+Train and test", out, re.M), out
    assert "Without --preset a task runs its demo preset" in out and "--preset full" in out
    assert main(["train"]) == 2  # no task: the same list, on stderr
    assert "tasks:" in capsys.readouterr().err


def test_version(capsys):
    import steerable

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"steerable {steerable.__version__}"


def test_groups_have_a_header_and_mark_the_default_backend(capsys):
    import steerable as st

    assert main(["groups"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["group", "backend", "acts"] and lines[-1].startswith("* the default backend")
    marked = {line.split()[0]: line.split()[1][:-1] for line in lines[1:-1] if line.split()[1].endswith("*")}
    for name in ("SO(3)", "O(3)", "SO(2)"):  # the mark is the backend st.group picks for the name
        if name in marked:
            assert marked[name] == st.group(name).backend, (name, marked[name])
    rows = [line for line in lines[1:-1] if line.split()[0] == "SO(3)"]
    if len(rows) > 1:
        assert sum(row.split()[1].endswith("*") for row in rows) == 1  # one default per name


def test_missing_config_is_one_line_exit_2(capsys, tmp_path):
    assert main(["train", "nbody", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.yaml: no such file" in err[0] and "Traceback" not in err[0]


def test_offline_qm9_is_one_line_naming_root(capsys, tmp_path, monkeypatch):
    """Before: a traceback of the failed download."""
    pytest.importorskip("lightning")
    import urllib.error

    import torch_geometric.datasets.qm9 as pyg_qm9

    def offline(url, folder, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(pyg_qm9, "download_url", offline)
    assert main(["train", "qm9", "--root", str(tmp_path / "qm9"), "--out-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "download failed" in err[0] and "pass --root with a local copy" in err[0]
