"""Shared fixtures: fake installed distributions, so entry-point discovery is tested for real."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import steerable
from steerable.registry import ENTRY_POINT_GROUP

TOY_DIR = Path(__file__).parent / "toy"


def install_fake_distribution(root: Path, name: str, entry_points: dict[str, str]) -> None:
    """Write ``<name>-0.0.dist-info`` under ``root`` declaring ``entry_points`` in the steerable group."""
    info = root / f"{name}-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{key} = {value}" for key, value in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    """A folder on ``sys.path`` where tests install fake distributions; the registry is reset around."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(TOY_DIR))
    steerable.reset_registry()
    yield tmp_path
    steerable.reset_registry()
    for mod in [m for m in sys.modules if m.startswith(("toy_c4", "broken_plugin"))]:
        sys.modules.pop(mod, None)


@pytest.fixture
def toy_group(plugin_path):
    """ToyC4 on R^2, discovered through an entry point of a fake distribution."""
    install_fake_distribution(plugin_path, "steerable_toy", {"toy": "toy_c4"})
    return steerable.group("ToyC4")
