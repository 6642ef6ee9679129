"""Packaging: the version is written once, the core needs only torch, numpy and pluggy, and without any
extra (no escnn, e3nn, torch-geometric or lightning) ``import steerable`` and the matrix backend work."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import steerable

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("escnn", "e3nn", "torch_geometric", "lightning", "pytorch_lightning")


def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def test_version_is_written_once_in_the_package():
    config = pyproject()
    project = config["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "steerable.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc)?\d*(\.dev\d+)?", steerable.__version__), steerable.__version__


def test_core_dependencies_are_torch_numpy_pluggy():
    project = pyproject()["project"]
    assert sorted(_requirement_name(r) for r in project["dependencies"]) == ["numpy", "pluggy", "torch"]
    extras = project["optional-dependencies"]
    assert "torch-geometric" in {_requirement_name(r) for r in extras["tasks"]}
    # numpy<2 is the limit of escnn's dependency lie_learn, so it belongs to the escnn extra only
    assert "numpy<2" in extras["escnn"]
    assert not any(r.replace(" ", "").startswith("numpy<2") for r in project["dependencies"])


def test_type_hints_are_shipped():
    assert (ROOT / "steerable" / "py.typed").is_file()


def test_core_and_matrix_backend_work_without_any_extra():
    # A fresh interpreter where every optional dependency fails to import, as after `pip install .`.
    script = textwrap.dedent(
        f"""
        import sys
        for name in {HEAVY!r}:
            sys.modules[name] = None  # `import name` now raises ImportError
        import torch
        import steerable as st
        from steerable.testing import check_equivariance

        status = {{b.name: b.available for b in st.list_backends()}}
        assert status == {{"escnn": False, "e3nn": False, "matrix": True, "lie": True}}, status
        G = st.group("D4")
        f = st.FieldType(G, [G.trivial_rep(), G.standard_rep(), G.regular_rep()])
        conv = st.PointConv(f, f, max_radius=3.0)  # the longest 6-NN edge of 30 normal points: ~2.2
        pos = torch.randn(30, 2)
        y = conv(torch.randn(30, f.size), pos, st.graph.knn_graph(pos, k=6))
        assert y.shape == (30, f.size)
        grid = st.GridConv(f, f, kernel_size=3, padding=1)
        assert grid(torch.randn(2, f.size, 8, 8)).shape == (2, f.size, 8, 8)
        print(check_equivariance(conv), check_equivariance(grid))
        print(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r} and sys.modules[m] is not None))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    errors, loaded = result.stdout.strip().splitlines()
    point_error, grid_error = map(float, errors.split())
    # matrix backend, float64: measured 1.3e-15..1.5e-15 (point), 7e-16..8e-16 (grid); bound 1e-13 (~70x margin)
    assert point_error < 1e-13 and grid_error < 1e-13, errors
    assert loaded == "[]"
