"""The registry isolates bad plugins: hooks returning garbage, misspelled or unmarked hooks, shadowing
of existing backends and group families, and ``build()`` results that are not groups.

Every fake plugin is a module in a temporary folder, installed as a fake distribution whose
``steerable`` entry point names it (``conftest.install_fake_distribution``): discovery runs for real.
"""

from __future__ import annotations

import sys
import textwrap
import warnings

import pytest
from conftest import install_fake_distribution

import steerable as st
from steerable.cli import main
from steerable.registry import Backend, GroupSpec, ShadowingWarning, hookimpl

HEADER = """\
import steerable
from steerable.registry import Backend, GroupSpec, hookimpl
"""


def _baseline() -> tuple[dict[str, bool], list[tuple[str, str]]]:
    """What a registry with the built-ins and the toy plugin only reports: backends and group families."""
    rows = {row.name: row.available for row in st.list_backends() if not row.broken}
    return rows, [(spec.backend, spec.display) for spec in st.list_groups()]


@pytest.fixture
def install(plugin_path):
    """``install(entry_name, source)``: a plugin module from ``source``, installed with the toy plugin."""
    install_fake_distribution(plugin_path, "steerable_toy", {"toy": "toy_c4"})
    baseline = _baseline()
    st.reset_registry()
    modules = []

    def install_plugin(entry_name: str, source: str) -> None:
        module = f"fake_plugin_{entry_name}"
        (plugin_path / f"{module}.py").write_text(HEADER + textwrap.dedent(source))
        install_fake_distribution(plugin_path, f"steerable_{entry_name}", {entry_name: module})
        modules.append(module)
        st.reset_registry()

    install_plugin.baseline = baseline
    yield install_plugin
    for module in modules:
        sys.modules.pop(module, None)


def _assert_others_work(baseline) -> None:
    """The built-ins and the toy plugin are all there (available as before) and build their groups."""
    backends, families = _baseline()
    assert backends.items() >= baseline[0].items() and set(families) >= set(baseline[1])
    assert st.group("ToyC4").backend == "toy"
    assert st.group("m-3m").order == 48  # the matrix backend needs no library: always available
    if any(spec.display == "SO(3)" and baseline[0].get(spec.backend) for spec in st.list_groups()):
        assert st.group("SO(3)").name == "SO(3)"


def _broken(name: str) -> st.registry.BackendStatus:
    rows = {row.name: row for row in st.list_backends()}
    assert name in rows, f"no row for plugin {name!r}: {sorted(rows)}"
    row = rows[name]
    assert row.broken and not row.available and row.plugin == name
    return row


SPEC = "GroupSpec('toy', 'Bad', 'BAD', (2,), lambda dim: None)"
GARBAGE = {
    # name: (hook, body of the hook, fragment of the reason)
    "int": ("steerable_backends", "return 5", "steerable_backends() returned 5 (int); expected a list"),
    "none_item": (
        "steerable_groups",
        "return [None]",
        "item 0 is None (NoneType); expected a list of steerable.GroupSpec",
    ),
    "string": ("steerable_groups", "return 'SO3'", "returned 'SO3' (str); expected a list"),
    "strings": ("steerable_backends", "return ['escnn', 'matrix']", "item 0 is 'escnn' (str)"),
    "single_spec": ("steerable_groups", f"return {SPEC}", "(GroupSpec); expected a list of steerable.GroupSpec"),
    "bad_regex": (
        "steerable_groups",
        "return [GroupSpec('toy', 'Bad', 'BAD(', (2,), print)]",
        "pattern 'BAD(' is not a valid regular expression",
    ),
    "bad_regex_after": (
        "steerable_groups",
        f"spec = {SPEC}\nobject.__setattr__(spec, 'pattern', '[A-')\nreturn [spec]",
        "returned an invalid GroupSpec: GroupSpec 'Bad': pattern '[A-' is not a valid",
    ),
    "empty_dims": ("steerable_groups", "return [GroupSpec('toy', 'Bad', 'BAD', (), print)]", "dims is empty"),
    "dims_after": (
        "steerable_groups",
        f"spec = {SPEC}\nobject.__setattr__(spec, 'dims', ('2',))\nreturn [spec]",
        "dims must hold ints, got '2' (str)",
    ),
    "build_not_callable": (
        "steerable_groups",
        "return [GroupSpec('toy', 'Bad', 'BAD', (2,), 'build')]",
        "build must be callable",
    ),
    "backend_name": ("steerable_backends", "return [Backend(3, 1)]", "name must be a str, got 3 (int)"),
    "priority_after": (
        "steerable_backends",
        "b = Backend('fresh', 1)\nb.priority = 'high'\nreturn [b]",
        "returned an invalid Backend: Backend 'fresh': priority must be an int, got 'high' (str)",
    ),
    "priority_bool": ("steerable_backends", "return [Backend('fresh', True)]", "priority must be an int"),
    "foreign_spec": (
        "steerable_backends",
        f"return [Backend('fresh', 1, [{SPEC}])]",
        "its group 'Bad' names backend 'toy'",
    ),
    "raises": ("steerable_groups", "raise KeyError('oops')", "steerable_groups() raised KeyError: 'oops'"),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_garbage_returning_plugin_is_isolated_and_named(install, kind):
    hook, body, reason = GARBAGE[kind]
    # the same plugin also offers a valid backend: none of a broken plugin's contributions is used
    other, other_body = (
        ("steerable_groups", "return []")
        if hook == "steerable_backends"
        else ("steerable_backends", "return [Backend('valid_part', 1)]")
    )
    install(
        "bad",
        "".join(
            f"@hookimpl\ndef {name}():\n" + textwrap.indent(text, "    ") + "\n\n"
            for name, text in ((hook, body), (other, other_body))
        ),
    )
    row = _broken("bad")
    assert reason in row.reason
    _assert_others_work(install.baseline)
    assert "valid_part" not in {r.name for r in st.list_backends()}
    with pytest.raises(ValueError, match=r"unknown group 'Bad'.*ToyC4.*broken plugins.*bad: ") as err:
        st.group("Bad")
    assert reason in str(err.value)


def test_broken_plugin_in_cli_listing(install, capsys):
    install("bad", "@hookimpl\ndef steerable_groups():\n    return [None]\n")
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert any(
        line.startswith("bad") and "broken plugin: steerable_groups() returned [None]" in line
        for line in out.splitlines()
    ), out
    assert main(["check", "Bad"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken plugins" in err[0] and "bad: steerable_groups()" in err[0]


def test_misspelled_hook_is_reported(install):
    install(
        "typo",
        """
        @hookimpl
        def steerable_group():
            return [GroupSpec('toy', 'Typo', 'TYPO', (2,), lambda dim: None)]
    """,
    )
    row = _broken("typo")
    assert "unknown hook 'steerable_group' (did you mean 'steerable_groups'?)" in row.reason
    _assert_others_work(install.baseline)


@pytest.mark.parametrize(
    "source, reason",
    [
        (
            "def steerable_groups():\n    return []\n",
            "steerable_groups is defined but not marked with @steerable.hookimpl",
        ),
        ("def helper():\n    return 1\n", "implements none of the hooks"),
        (
            "@hookimpl\ndef steerable_groups(config):\n    return []\n",
            "hookimpl definition: steerable_groups(config) Argument(s) {'config'} are declared in the hookimpl",
        ),
    ],
)
def test_unmarked_missing_or_misdeclared_hook_is_reported(install, source, reason):
    install("odd", source)
    assert reason in _broken("odd").reason
    _assert_others_work(install.baseline)


def test_module_that_fails_to_import_names_the_module(install):
    install("crash", "raise RuntimeError('half-installed')\n")
    row = _broken("crash")
    assert "failed to import fake_plugin_crash: RuntimeError: half-installed" in row.reason
    _assert_others_work(install.baseline)


# -- shadowing ------------------------------------------------------------------------------------
def _shadow_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, ShadowingWarning)]


def test_backend_name_of_builtin_is_not_shadowed(install):
    # "aaa" sorts before every built-in entry point name; built-ins are registered first anyway
    install(
        "aaa",
        """
        @hookimpl
        def steerable_backends():
            return [Backend('matrix', 0, [GroupSpec('matrix', 'Evil', 'EVIL', (3,), lambda dim: None)])]
    """,
    )
    with pytest.warns(ShadowingWarning) as record:
        rows = {row.name: row for row in st.list_backends()}
    (message,) = _shadow_warnings(record)
    assert "plugin 'aaa' (fake_plugin_aaa from distribution steerable_aaa) registers backend 'matrix'" in message
    assert "already registered by plugin 'matrix' (steerable.plugins.matrix_backend" in message
    assert rows["matrix"].plugin == "matrix" and "Evil" not in rows["matrix"].groups
    assert st.group("m-3m").backend == "matrix"
    with pytest.raises(ValueError, match="unknown group 'Evil'"):
        st.group("Evil")


def test_backend_name_of_third_party_is_not_shadowed(install):
    install(
        "zz_shadow",
        """
        @hookimpl
        def steerable_backends():
            return [Backend('toy', 0, [GroupSpec('toy', 'Shadow', 'SHADOW', (2,), lambda dim: None)])]
    """,
    )
    shadow = r"plugin 'zz_shadow' .*backend 'toy', already registered by plugin 'toy'"
    with pytest.warns(ShadowingWarning, match=shadow):
        group = st.group("ToyC4")
    assert type(group).__module__ == "toy_c4"
    assert [r.plugin for r in st.list_backends() if r.name == "toy"] == ["toy"]


@pytest.mark.parametrize(
    "spec, how, first",
    [
        ("GroupSpec('matrix', 'm-3m', 'CUBE', (3,), build)", "has the same name as the group 'm-3m'", "matrix"),
        (
            "GroupSpec('toy', 'MyC4', 'TOYC4', (2,), build)",
            "has a pattern matching 'ToyC4', a name of the group 'ToyC4'",
            "toy",
        ),
        (
            "GroupSpec('matrix', 'C4 again', 'C4', (2,), build)",
            "has a pattern matching 'C4', a name of the group 'C{N}'",
            "matrix",
        ),
        (
            "GroupSpec('escnn', 'Cyc{N}', r'C(?P<N>\\d+)', (2,), build)",
            "has a pattern matching 'C1', a name of the group 'C{N}'",
            "escnn",
        ),
        (
            "GroupSpec('escnn', 'C7', 'CSEVEN', (2,), build)",
            "has the name 'C7', matched by the pattern of the group 'C{N}'",
            "escnn",
        ),
    ],
)
def test_group_family_is_not_shadowed(install, spec, how, first):
    install(
        "zz_dup",
        f"""
        def build(dim, **params):
            raise AssertionError('the shadowing family must never be built')

        @hookimpl
        def steerable_groups():
            return [{spec}]
    """,
    )
    with pytest.warns(ShadowingWarning) as record:
        groups = st.list_groups()
    (message,) = _shadow_warnings(record)
    assert "plugin 'zz_dup' (fake_plugin_zz_dup from distribution steerable_zz_dup) registers group" in message
    assert how in message and f"registered by plugin '{first}'" in message
    assert "the first registration is kept" in message
    assert len(groups) == len(install.baseline[1])
    _assert_others_work(install.baseline)


def test_same_group_name_on_two_backends_is_not_reported(install):
    install(
        "other",
        """
        import toy_c4

        @hookimpl
        def steerable_backends():
            return [Backend('other', 1, [GroupSpec('other', 'ToyC4', 'TOYC4', (2,), lambda dim: toy_c4.ToyC4())])]
    """,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShadowingWarning)
        preferred = st.group("ToyC4")  # priority 1 beats the toy backend's 5
        assert st.group("ToyC4", backend="toy") is not preferred
    assert {s.backend for s in st.list_groups() if s.display == "ToyC4"} == {"toy", "other"}


def test_builtins_shadow_nothing(plugin_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShadowingWarning)
        assert len(st.list_groups()) > 40


def test_entry_point_name_taken_by_builtin_is_reported(install, plugin_path):
    module = "fake_plugin_impostor"
    (plugin_path / f"{module}.py").write_text(HEADER + "@hookimpl\ndef steerable_backends():\n    return []\n")
    install_fake_distribution(plugin_path, "steerable_impostor", {"matrix": module})
    st.reset_registry()
    try:
        with pytest.warns(
            ShadowingWarning,
            match=r"entry point 'matrix' = fake_plugin_impostor from distribution "
            r"steerable_impostor is ignored: plugin name 'matrix' is already "
            r"taken by steerable.plugins.matrix_backend",
        ):
            assert st.group("m-3m").backend == "matrix"
        assert module not in sys.modules  # never imported
    finally:
        sys.modules.pop(module, None)


def test_same_module_under_a_second_entry_point_name_is_reported(plugin_path):
    install_fake_distribution(plugin_path, "steerable_again", {"aaa_matrix": "steerable.plugins.matrix_backend"})
    with pytest.warns(
        ShadowingWarning,
        match=r"entry point 'aaa_matrix' = steerable.plugins.matrix_backend from "
        r"distribution steerable_again is ignored: the same object is already "
        r"registered as plugin 'matrix'",
    ):
        rows = {row.name: row for row in st.list_backends()}
    assert rows["matrix"].plugin == "matrix" and "aaa_matrix" not in rows


def test_entry_point_of_none_is_broken(plugin_path):
    (plugin_path / "fake_plugin_none.py").write_text("PLUGIN = None\n")
    install_fake_distribution(plugin_path, "steerable_none", {"nothing": "fake_plugin_none:PLUGIN"})
    try:
        assert "entry point fake_plugin_none:PLUGIN is None" in _broken("nothing").reason
        assert st.group("m-3m").order == 48
    finally:
        sys.modules.pop("fake_plugin_none", None)


def test_shadowing_is_warned_once(install):
    install("zz_shadow", "@hookimpl\ndef steerable_backends():\n    return [Backend('toy', 0)]\n")
    with pytest.warns(ShadowingWarning) as record:
        st.list_backends()
        st.register_plugin(type("Extra", (), {"steerable_groups": hookimpl(lambda self: [])})(), name="extra")
        st.group("ToyC4")
    assert len(_shadow_warnings(record)) == 1


# -- build() results ------------------------------------------------------------------------------
def test_build_returning_a_non_group_is_reported_and_not_cached(install):
    install(
        "badbuild",
        """
        import toy_c4

        calls = []

        def build(dim):
            calls.append(dim)
            return 'not a group' if len(calls) == 1 else toy_c4.ToyC4()

        @hookimpl
        def steerable_backends():
            return [Backend('badbuild', 1, [GroupSpec('badbuild', 'Flaky', 'FLAKY', (2,), build)])]
    """,
    )
    with pytest.raises(
        TypeError,
        match=r"plugin 'badbuild', group 'Flaky' of backend 'badbuild': build\(dim=2\) "
        r"returned 'not a group' \(str\), not a steerable.core.group.Group",
    ):
        st.group("Flaky")
    assert st.group("Flaky").name == "ToyC4"  # the bad result was not cached: built again, now valid
    assert sys.modules["fake_plugin_badbuild"].calls == [2, 2]
    _assert_others_work(install.baseline)


def test_build_returning_a_group_on_another_space_is_reported(install):
    install(
        "wrongdim",
        """
        import toy_c4

        @hookimpl
        def steerable_groups():
            return [GroupSpec('toy', 'Toy3D{N}', r'TOYTHREE(?P<N>\\d+)', (3,), lambda dim, N: toy_c4.ToyC4())]
    """,
    )
    for _ in range(2):
        with pytest.raises(
            ValueError,
            match=r"plugin 'wrongdim', group 'Toy3D\{N\}' of backend 'toy': build\(dim=3, "
            r"N=4\) returned the group 'ToyC4' acting on R\^2, not on R\^3",
        ):
            st.group("ToyThree4")
    _assert_others_work(install.baseline)


def test_pattern_whose_parameter_is_not_an_integer_affects_only_its_names(install):
    install(
        "weird",
        """
        @hookimpl
        def steerable_groups():
            return [GroupSpec('toy', 'Weird{N}', r'WEIRD(?P<N>[A-Z]+)', (2,), lambda dim, N: None)]
    """,
    )
    with pytest.raises(ValueError, match=r"group 'WeirdAB': plugin 'weird': group 'Weird\{N\}' failed to match"):
        st.group("WeirdAB")
    _assert_others_work(install.baseline)


def test_register_plugin_with_garbage_is_broken_not_raised(plugin_path):
    class Garbage:
        @hookimpl
        def steerable_backends(self):
            return [None]

    st.register_plugin(Garbage(), name="garbage")
    assert "item 0 is None" in _broken("garbage").reason
    assert st.group("m-3m").order == 48


def test_spec_and_backend_check_their_fields():
    with pytest.raises(ValueError, match=r"GroupSpec 'X': pattern 'X\[' is not a valid regular expression"):
        GroupSpec("b", "X", "X[", (2,), print)
    with pytest.raises(TypeError, match=r"GroupSpec 'X': dims must be a tuple of ints, got 2 \(int\)"):
        GroupSpec("b", "X", "X", 2, print)
    with pytest.raises(ValueError, match=r"GroupSpec 'X': dims must be positive, got 0"):
        GroupSpec("b", "X", "X", (0,), print)
    with pytest.raises(ValueError, match=r"GroupSpec: display must not be empty"):
        GroupSpec("b", " ", "X", (2,), print)
    assert GroupSpec("b", "X", "X", [2, 3], print).dims == (2, 3)
    with pytest.raises(TypeError, match=r"Backend 'b': load must be callable, got 'numpy' \(str\)"):
        Backend("b", 1, load="numpy")
    with pytest.raises(TypeError, match=r"Backend 'b': groups must hold GroupSpec objects, got 'C4' \(str\)"):
        Backend("b", 1, groups=["C4"])
    assert isinstance(Backend("b", 1, groups=[GroupSpec("b", "X", "X", (2,), print)]).groups, tuple)


def test_hookspecs_are_the_documented_hooks():
    from steerable.registry import HOOK_NAMES, hookspec

    marked = sorted(name for name, obj in vars(hookspec).items() if hasattr(obj, "steerable_spec"))
    assert marked == sorted(HOOK_NAMES)
    for name in HOOK_NAMES:
        doc = getattr(hookspec, name).__doc__
        assert ":return:" in doc and "What the registry does with it" in doc and "Example::" in doc
    assert st.hookimpl is hookspec.hookimpl and st.registry.hookimpl is hookspec.hookimpl
