"""Plugin discovery, backend choice and error messages of the registry."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import install_fake_distribution

import steerable as st


def test_third_party_plugin_found_through_entry_point(toy_group):
    assert toy_group.name == "ToyC4" and toy_group.dim == 2 and toy_group.backend == "toy"
    rows = {row.name: row for row in st.list_backends()}
    assert rows["toy"].available and rows["toy"].reason is None
    assert rows["toy"].groups == ["ToyC4"]
    assert st.group("toy_c4") is toy_group  # names ignore case and punctuation; groups are cached


def test_unknown_group_lists_known_groups(toy_group):
    with pytest.raises(ValueError, match=r"unknown group 'SU\(2\)'.*ToyC4"):
        st.group("SU(2)")


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
        "heavy = [m for m in ('escnn', 'e3nn', 'lightning', 'pytorch_lightning', 'torch_geometric')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# -- spellings of group names: what matching ignores, and what it refuses ------------------------------
@pytest.mark.parametrize("name", ["c8", "C 8", "C_8", "c(8)", " C8 "])
def test_documented_spellings_are_accepted(name):
    assert st.group(name, backend="matrix") is st.group("C8", backend="matrix")


@pytest.mark.parametrize(
    "name, suggestion",
    [
        ("C-4", "C4"),  # '-' was stripped silently: C-4 became C4
        ("C04", "C4"),  # a leading zero was read as 4
        ("SO-3", "SO(3)"),
        ("(-3m)", "-3m"),  # brackets are no part of a Hermann-Mauguin symbol
        ("S0(3)", "SO(3)"),  # a typo: the closest known names
    ],
)
def test_other_spellings_are_refused_with_a_suggestion(name, suggestion):
    pattern = rf"unknown group '{re.escape(name)}' \(did you mean [^)]*'{re.escape(suggestion)}'"
    with pytest.raises(ValueError, match=pattern):
        st.group(name)


@pytest.mark.parametrize(
    "name, problem",
    [
        ("SO(3", "unbalanced"),
        ("SO((3))", "nested"),
        ("C\u0664", "plain ASCII"),
        ("C4\x00", "plain ASCII"),
        ("", "empty"),
        ("  ", "empty"),
    ],
)
def test_names_that_are_never_valid_say_why(name, problem):
    with pytest.raises(ValueError, match=rf"group name .*{problem}"):
        st.group(name)


def test_unbalanced_bracket_suggests_the_known_name():
    with pytest.raises(
        ValueError,
        match=r"'SO\(3': its round brackets are unbalanced or nested "
        r"\(did you mean 'SO\(3\)'",
    ):
        st.group("SO(3")


@pytest.mark.parametrize(
    "name, expected, dim",
    [
        ("m-3m", "m-3m", 3),
        ("M-3M", "m-3m", 3),
        ("m3m", "m-3m", 3),
        ("-43m", "-43m", 3),
        ("-1", "-1", 3),
        ("1", "1", 3),
        ("-3 m", "-3m", 3),
        ("3m", "3m", 3),
        ("2/m", "2/m", 3),
        ("4mm", "4mm", 2),
    ],
)
def test_hermann_mauguin_symbols_keep_their_minus_signs(name, expected, dim):
    group = st.group(name, dim=dim, backend="matrix")
    assert group.name == expected
