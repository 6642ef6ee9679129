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
    assert main(["check", "SO(4)"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("steerable: error: unknown group 'SO(4)'")


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
