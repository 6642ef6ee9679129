"""The README's python code runs as written, and the docstring examples in the package pass.

* The quick tour (between the ``quick-tour`` markers) is executed as one script: its own ``assert``s
  must hold, it must print the one line it promises, and the names it defines must have the shapes
  its comments state.
* Every other ``python`` block of the README must at least execute (define its functions without
  error); the two plugin examples are also checked for what they claim: the hook functions are
  pluggy hook implementations, and the hexagonal-lattice module is the shipped example package's code
  and its group is the symmetry group of the hexagonal lattice (checked against the lattice itself).
* Doctests: every module of ``steerable`` whose source contains ``>>>`` is imported and its examples
  run with :mod:`doctest` (``# doctest: +SKIP`` is honoured).
"""

from __future__ import annotations

import ast
import contextlib
import doctest
import importlib
import io
import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PACKAGE = ROOT / "steerable"
HEX_PLUGIN = ROOT / "examples" / "plugins" / "steerable_hexlattice" / "steerable_hexlattice.py"

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_text() -> str:
    return README.read_text(encoding="utf-8")


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```` ```python ```` fenced blocks, in order."""
    return _BLOCK.findall(text)


def quick_tour(text: str) -> str:
    """The one python block between ``<!-- quick-tour:start -->`` and ``<!-- quick-tour:end -->``."""
    start, end = text.find("<!-- quick-tour:start -->"), text.find("<!-- quick-tour:end -->")
    assert 0 <= start < end, "README.md: quick-tour markers missing or out of order"
    blocks = python_blocks(text[start:end])
    assert len(blocks) == 1, f"README.md: expected one python block in the quick tour, found {len(blocks)}"
    return blocks[0]


def run_block(code: str, label: str) -> dict:
    namespace: dict = {"__name__": f"readme_{label}"}
    exec(compile(code, f"README.md ({label})", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def tour():
    """Run the quick tour once; return its namespace and what it printed."""
    torch.manual_seed(0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        namespace = run_block(quick_tour(readme_text()), "quick tour")
    return namespace, out.getvalue()


def test_quick_tour_prints_its_equivariance_error(tour):
    namespace, printed = tour
    match = re.fullmatch(r"PointConv equivariance error: (\d\.?\d*e[-+]\d+)\n", printed)
    assert match, f"the quick tour printed {printed!r}, not one line 'PointConv equivariance error: <float>'"
    # float64, escnn SO(3): measured 2.5e-16..1e-15 over 9 runs; bound 1e-13 (the tour's own, ~100x margin)
    assert float(match[1]) < 1e-13
    assert f"{namespace['err']:.0e}" == match[1]


def test_quick_tour_names_have_the_stated_shapes(tour):
    ns, _ = tour
    n = ns["pos"].shape[0]
    assert ns["pos"].shape == (n, 3)
    assert ns["x"].shape == (n, 8) == (n, ns["f_in"].size)
    assert ns["y"].shape == (n, 6) == (n, ns["f_out"].size)
    edge_index = ns["edge_index"]
    assert edge_index.dtype == torch.long and edge_index.shape[0] == 2 and edge_index.shape[1] > 0
    # the comment says: row 0 sources j, row 1 targets i, within the radius r=1.0 of radius_graph
    src, dst = edge_index
    assert bool((src != dst).all())
    assert float((ns["pos"][src] - ns["pos"][dst]).norm(dim=1).max()) <= 1.0
    img = ns["img"]
    assert img.dim() == 4 and img.shape[1] == ns["f2"].size == 3


def test_quick_tour_leaves_conv_in_float32(tour):
    ns, _ = tour
    assert {p.dtype for p in ns["conv"].parameters()} == {torch.float32}


def test_every_readme_python_block_executes():
    blocks = python_blocks(readme_text())
    assert len(blocks) >= 3, "README.md: the quick tour and the two plugin examples were expected"
    tour_code = quick_tour(readme_text())
    for index, code in enumerate(blocks):
        if code == tour_code:
            continue  # run once, by the fixture above
        run_block(code, f"block {index}")


def test_readme_hook_example_defines_hook_implementations():
    blocks = [b for b in python_blocks(readme_text()) if "def steerable_backends" in b]
    assert len(blocks) == 1, "README.md: one block defining steerable_backends was expected"
    namespace = run_block(blocks[0], "hooks")
    for name in ("steerable_backends", "steerable_groups"):
        assert hasattr(namespace[name], "steerable_impl"), f"{name} in the README is not a @steerable.hookimpl"


def _body_without_docstring(tree: ast.Module) -> list[ast.stmt]:
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    return body


def test_readme_hexlattice_example_is_the_shipped_package_and_its_group_is_the_lattice_symmetry():
    blocks = [b for b in python_blocks(readme_text()) if "HexLattice" in b]
    assert len(blocks) == 1, "README.md: one block with the HexLattice plugin was expected"
    # "This whole third-party package": the README shows the module's code (compared as syntax trees,
    # so formatting does not matter).
    shown = [ast.dump(s) for s in _body_without_docstring(ast.parse(blocks[0]))]
    shipped = [ast.dump(s) for s in _body_without_docstring(ast.parse(HEX_PLUGIN.read_text(encoding="utf-8")))]
    assert shown == shipped, "README.md's HexLattice block differs from examples/plugins/steerable_hexlattice"

    namespace = run_block(blocks[0], "hexlattice")
    (spec,) = namespace["steerable_groups"]()
    matrices = spec.build(2).elements().matrices.to(torch.float64)
    assert matrices.shape == (12, 2, 2)
    # Each element maps the lattice basis a1 = (1, 0), a2 = (1/2, sqrt(3)/2) to integer combinations of
    # a1, a2 (a symmetry of the lattice), and the 12 are distinct: the full symmetry group 6mm.
    basis = torch.tensor([[1.0, 0.5], [0.0, 3**0.5 / 2]], dtype=torch.float64)  # columns a1, a2
    coeffs = torch.linalg.solve(basis, matrices @ basis)
    assert float((coeffs - coeffs.round()).abs().max()) < 1e-12
    assert len({tuple(c.round().long().flatten().tolist()) for c in coeffs}) == 12


# ---------------------------------------------------------------------------------------------- doctests
def modules_with_examples() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py" or ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_package_has_docstring_examples():
    assert "steerable" in modules_with_examples()  # steerable/__init__.py's examples


@pytest.mark.parametrize("module_name", modules_with_examples())
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in finder.find(module, module_name):
        runner.run(test, out=report.append)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, "".join(report)
