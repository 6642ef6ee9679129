"""Cheap listing: backends declare the modules they need (``Backend.requires``), listings check them
with ``importlib.util.find_spec`` (nothing imported) and ``load()`` runs on first use only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import install_fake_distribution

import steerable as st
from steerable.registry import Backend, GroupSpec

PLUGIN = """
import steerable as st
from steerable.registry.backend import Backend, GroupSpec
LOADS = []
def _load(name):
    def load():
        LOADS.append(name)
        if name == 'fails':
            raise ImportError('fails: its library is broken')
    return load
def _build(dim):
    from steerable.plugins.matrix_backend.pointgroups import build_cyclic
    return build_cyclic(dim, N=3)
@st.hookimpl
def steerable_backends():
    return [
        Backend('fast', 1, [GroupSpec('fast', 'Lazy3', 'LAZY3', (2,), _build)], _load('fast'), requires=('json',)),
        Backend('slow', 2, [GroupSpec('slow', 'Lazy3', 'LAZY3', (2,), _build)], _load('slow'), requires=['json']),
        Backend('absent', 3, [GroupSpec('absent', 'Lazy3', 'LAZY3', (2,), _build)], _load('absent'),
                requires=('json', 'a_module_that_does_not_exist')),
        Backend('fails', 4, [GroupSpec('fails', 'Lazy3', 'LAZY3', (2,), _build)], _load('fails'), requires=('json',)),
    ]
"""


@pytest.fixture
def lazy(plugin_path):
    (plugin_path / "broken_plugin.py").write_text(PLUGIN)  # the fixture unloads modules of this name
    install_fake_distribution(plugin_path, "steerable_lazy", {"lazy": "broken_plugin"})
    import broken_plugin

    return broken_plugin.LOADS


def test_listing_without_load_imports_nothing_and_names_what_is_missing(lazy):
    rows = {row.name: row for row in st.list_backends(load=False)}
    assert lazy == []  # no load() was called
    assert rows["fast"].available and not rows["fast"].loaded and rows["fast"].reason is None
    assert "installed (not loaded yet)" in str(rows["fast"])
    assert not rows["absent"].available
    assert rows["absent"].reason == "requires a_module_that_does_not_exist, not installed"
    assert rows["fails"].available and not rows["fails"].loaded  # installed; that it fails shows on load
    assert rows["matrix"].loaded and rows["matrix"].available  # declares no requirements: loaded to be listed


def test_group_loads_only_the_preferred_backend_then_listing_reports_it(lazy):
    group = st.group("Lazy3")
    assert group.order == 3 and lazy == ["fast"]  # 'slow' (priority 2) was not loaded
    rows = {row.name: row for row in st.list_backends(load=False)}
    assert rows["fast"].loaded and rows["fast"].available and not rows["slow"].loaded
    assert lazy == ["fast"]


def test_default_listing_loads_every_backend(lazy):
    rows = {row.name: row for row in st.list_backends()}
    assert sorted(lazy) == ["absent", "fails", "fast", "slow"] and all(r.loaded for r in rows.values())
    assert not rows["fails"].available and "its library is broken" in rows["fails"].reason
    with pytest.raises(RuntimeError, match="backend 'fails' is unavailable.*its library is broken"):
        st.group("Lazy3", backend="fails")


@pytest.mark.parametrize(
    "requires, error, message",
    [
        ("escnn", TypeError, "requires must be a tuple"),
        ((5,), TypeError, "module names"),
        (("escnn.nn",), ValueError, "not a top-level module name"),
        (("",), ValueError, "not a top-level module name"),
    ],
)
def test_bad_requires_are_refused(requires, error, message):
    spec = GroupSpec("x", "X", "X", (2,), lambda dim: None)
    with pytest.raises(error, match=message):
        Backend("x", 1, [spec], requires=requires)


LISTING = """
import contextlib, io, json, sys
from steerable.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    assert main([sys.argv[1]]) == 0
print(json.dumps({"heavy": sorted(m for m in ("escnn", "e3nn", "torch", "lightning") if m in sys.modules),
                  "lines": len(out.getvalue().splitlines())}))
"""


@pytest.mark.parametrize("command", ["groups", "backends"])
def test_cli_listing_imports_no_backend_library(command):
    """``steerable groups`` / ``backends`` list from metadata: escnn, e3nn (and torch) stay unimported."""
    done = subprocess.run(
        [sys.executable, "-c", LISTING, command],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": ":".join(sys.path), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [] and result["lines"] >= 3
