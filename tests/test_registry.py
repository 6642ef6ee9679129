"""Plugin discovery, backend choice and error messages of the registry."""
from __future__ import annotations

import subprocess
import sys

import pytest

import steerable as st
from conftest import install_fake_distribution


def test_third_party_plugin_found_through_entry_point(toy_group):
    assert toy_group.name == "ToyC4" and toy_group.dim == 2 and toy_group.backend == "toy"
    rows = {row.name: row for row in st.list_backends()}
    assert rows["toy"].available and rows["toy"].reason is None
    assert rows["toy"].groups == ["ToyC4"]
    assert st.group("toy_c4") is toy_group  # names ignore case and punctuation; groups are cached


def test_unknown_group_lists_known_groups(toy_group):
    with pytest.raises(ValueError, match=r"unknown group 'SO\(4\)'.*ToyC4"):
        st.group("SO(4)")


def test_unknown_backend_lists_backends(toy_group):
    with pytest.raises(ValueError, match=r"unknown backend 'nope'.*known backends:.*toy"):
        st.group("ToyC4", backend="nope")


def test_wrong_dim_is_named(toy_group):
    with pytest.raises(ValueError, match=r"not on R\^3"):
        st.group("ToyC4", dim=3)


def test_backend_from_environment(toy_group, monkeypatch):
    monkeypatch.setenv("STEERABLE_BACKEND", "toy")
    assert st.group("ToyC4") is toy_group
    monkeypatch.setenv("STEERABLE_BACKEND", "missing")
    with pytest.raises(ValueError, match=r"unknown backend 'missing' \(from STEERABLE_BACKEND=\)"):
        st.group("ToyC4")


def test_broken_plugin_is_reported_and_isolated(plugin_path):
    (plugin_path / "broken_plugin.py").write_text("raise ImportError('needs a library that is not installed')\n")
    install_fake_distribution(plugin_path, "steerable_broken", {"broken": "broken_plugin"})
    install_fake_distribution(plugin_path, "steerable_toy", {"toy": "toy_c4"})
    rows = {row.name: row for row in st.list_backends()}
    assert not rows["broken"].available
    assert "needs a library that is not installed" in rows["broken"].reason
    assert st.group("ToyC4").name == "ToyC4"  # the other plugins keep working


def test_backend_whose_dependency_fails_is_unavailable_with_reason(plugin_path):
    (plugin_path / "broken_plugin.py").write_text(
        "import steerable as st\n"
        "from steerable.registry.backend import Backend, GroupSpec\n"
        "def _load():\n    import a_module_that_does_not_exist\n"
        "@st.hookimpl\n"
        "def steerable_backends():\n"
        "    return [Backend('lazy', 1, [GroupSpec('lazy', 'Lazy', 'LAZY', (2,), lambda dim: None)], _load)]\n"
    )
    install_fake_distribution(plugin_path, "steerable_lazy", {"lazy": "broken_plugin"})
    rows = {row.name: row for row in st.list_backends()}
    assert not rows["lazy"].available and "a_module_that_does_not_exist" in rows["lazy"].reason
    with pytest.raises(RuntimeError, match=r"only by unavailable backends.*a_module_that_does_not_exist"):
        st.group("Lazy")
    with pytest.raises(RuntimeError, match=r"backend 'lazy' is unavailable"):
        st.group("Lazy", backend="lazy")


def test_import_is_light():
    code = (
        "import sys, steerable, steerable.registry\n"
        "heavy = [m for m in ('escnn', 'e3nn', 'lightning', 'pytorch_lightning', 'torch_geometric') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
