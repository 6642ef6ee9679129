"""A third-party plugin (examples/plugins/steerable_hexlattice) adds a group with no change to the core.

It is made discoverable without pip: a ``*.dist-info`` folder with ``METADATA`` and
``entry_points.txt`` in a temporary directory on ``sys.path``, exactly what ``pip install`` writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import steerable as st
from steerable.testing import check_equivariance, lattice_elements

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "steerable_hexlattice"


@pytest.fixture
def hexlattice(tmp_path, monkeypatch):
    info = tmp_path / "steerable_hexlattice-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: steerable-hexlattice\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[steerable]\nhexlattice = steerable_hexlattice\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))  # the module's source, as an installed copy would be
    st.reset_registry()
    yield st.group("HexLattice")
    st.reset_registry()
    sys.modules.pop("steerable_hexlattice", None)


def test_discovered_through_entry_point(hexlattice):
    group = hexlattice
    assert (group.name, group.dim, group.order, group.backend) == ("HexLattice", 2, 12, "matrix")
    spec = [s for s in st.list_groups() if s.display == "HexLattice"]
    assert len(spec) == 1 and spec[0].backend == "matrix"
    assert "hexlattice" not in {b.plugin for b in st.list_backends() if not b.available}
    assert len(PLUGIN_DIR.joinpath("steerable_hexlattice.py").read_text().splitlines()) <= 30  # ruff-formatted


def test_layers_equivariant(hexlattice):
    """Bounds: measured 4.6e-15 (point, all 12 elements), 1.1e-15 / 2.9e-7 (grid, float64 / float32); bounds
    5e-14 and 2e-6 (>= 7x).  The full conformance suite runs on it in tests/test_conformance.py."""
    group = hexlattice
    irreps = group.irreps()
    field = st.FieldType(group, [group.trivial_rep(), group.standard_rep(), irreps[-1], irreps[1]])
    torch.manual_seed(0)
    point = st.PointConv(field, field, edge_attr=1, hidden_channels=2, max_radius=1.0)
    assert check_equivariance(point, elements=group.elements(), n_points=10) < 5e-14
    grid = st.GridConv(field, field, 5, padding=2, hidden_channels=2)
    els = lattice_elements(group)  # 1, -1 and the two axis mirrors: the grid's symmetries in 6mm
    assert len(els) == 4
    assert check_equivariance(grid, elements=els, grid_size=7) < 5e-14
    assert check_equivariance(grid, elements=els, grid_size=7, dtype=torch.float32) < 2e-6
