"""The conformance suite (steerable.testing.conformance) over every group family st.list_groups() reports.

Each family is instantiated with small parameters (``N = 4`` for ``C{N}``, ``D{N}``) on each of its
dimensions (FullIco, 19-78 s alone, is marked slow; every other case takes < 9 s); the toy plugin
(tests/toy) and the hexlattice example plugin (examples/plugins) are installed as fake distributions and
checked too.

Bounds on the relative equivariance error, per backend, set from the values measured here (default
settings of run_conformance, seed 0), with the margin stated:

* float64, exact backends (matrix, toy, e3nn, escnn's continuous groups): measured <= 5.8e-15, bound 5e-14
  (8x);
* float64, escnn's finite groups (numerical bases): measured <= 9.7e-8 (FullIco, slow: 1.7e-7), bound 5e-7
  (~3-5x);
* float32, every backend: measured <= 1.2e-6 (matrix m-3m grid conv), bound 5e-6 (~4x).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import install_fake_distribution

import steerable as st
from steerable.testing import ConventionError, check_equivariance
from steerable.testing.conformance import CHECKS, ConformanceError, run_conformance

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "examples" / "plugins" / "steerable_hexlattice"
F32_BOUND = 5e-6
SLOW = {("escnn", "FullIco")}  # 78 s with a cold escnn cache, 19 s warm (120 elements); every other case < 9 s


def bounds_for(group) -> dict[torch.dtype, float]:
    if group.backend == "escnn" and group.order is not None:
        f64 = 5e-7
    else:
        f64 = 5e-14
    return {torch.float64: f64, torch.float32: F32_BOUND}


def instance_name(display: str) -> str:
    """``"C{N}"`` -> ``"C4"``: a family's display name with small parameters filled in."""
    return re.sub(r"\{\w+\}", "4", display)


def _cases():
    cases = []
    for spec in st.list_groups():
        for dim in spec.dims:
            # the lie backend names SO(n), O(n) up to n = 16: its bases grow fast with n (SO(8): 6 s)
            # and O(p,q), SO(p,q), SO+(p,q), Lorentz (31 families up to R^5): tests/test_lorentz.py runs the suite on
            # SO+(1,3), O(1,3), O(1,2) by default, the others are slow
            indefinite = spec.backend == "lie" and ("," in spec.display or spec.display == "Lorentz")
            heavy = (spec.backend, spec.display) in SLOW or (spec.backend == "lie" and dim > 5) or indefinite
            marks = [pytest.mark.slow] if heavy else []
            cases.append(
                pytest.param(
                    spec.backend,
                    spec.display,
                    dim,
                    marks=marks,
                    id=f"{spec.backend}-{instance_name(spec.display)}-R{dim}",
                )
            )
    return cases


CASES = _cases()


@pytest.mark.parametrize("backend,display,dim", CASES)
def test_conformance(backend, display, dim):
    group = st.group(instance_name(display), dim=dim, backend=backend)
    report = run_conformance(group, bounds=bounds_for(group))  # raises ConformanceError listing failures
    assert [r.name for r in report.results] == list(CHECKS)
    ran = [r for r in report.results if r.passed is not None]
    assert all(r.passed for r in ran)
    skipped = {r.name for r in report.results if r.passed is None}
    assert skipped <= {"grid conv float64", "grid conv float32", "completeness"}, str(report)


@pytest.fixture
def plugin_groups(plugin_path, monkeypatch):
    """The toy plugin and the hexlattice example, installed as fake distributions."""
    install_fake_distribution(plugin_path, "steerable_toy", {"toy": "toy_c4"})
    install_fake_distribution(plugin_path, "steerable_hexlattice", {"hexlattice": "steerable_hexlattice"})
    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    yield
    sys.modules.pop("steerable_hexlattice", None)


def test_every_listed_family_is_covered(plugin_groups):
    """The parametrisation above is st.list_groups() itself; with the plugins, two more families appear."""
    listed = {(s.backend, s.display) for s in st.list_groups()}
    covered = {(b, d) for b, d, _ in (c.values for c in CASES)}
    assert listed - covered == {("toy", "ToyC4"), ("matrix", "HexLattice")}


@pytest.mark.parametrize("name", ["ToyC4", "HexLattice"])
def test_plugin_groups_conform(plugin_groups, name):
    group = st.group(name)
    report = run_conformance(group, bounds=bounds_for(group))
    assert not report.failures
    assert all(report[name].passed for name in ("completeness", "grid conv float64", "grid conv float32"))


# -- the suite catches what it must ------------------------------------------------------------
def _det_standard_d4():
    """D4 whose standard_rep is det(g) * g: a valid representation, but not the action on coordinates."""
    from steerable.plugins.matrix_backend import group_from_generators

    group = group_from_generators([[[0.0, -1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, -1.0]]], name="DetStandardD4")
    mats = group.elements().matrices
    bad = group.rep_from_elements(torch.linalg.det(mats)[:, None, None] * mats, "standard")
    group.standard_rep = lambda: bad  # the instance's method, before any layer is built
    return group


def test_det_times_standard_is_caught():
    group = _det_standard_d4()
    with pytest.raises(ConformanceError, match=r"coordinate action .*FAIL.*det\(g\) \* g"):
        run_conformance(group)
    report = run_conformance(group, raise_on_failure=False)
    assert not report["coordinate action"].passed and "standard_rep().matrices(g) must equal g.matrices" in str(report)
    assert not report["kernel float64"].passed  # every equivariance check refuses the unverified matrices
    field = st.FieldType(group, [group.trivial_rep(), group.standard_rep()])
    with pytest.raises(ConventionError, match="standard_rep"):
        check_equivariance(st.PointConv(field, field, max_radius=1.0))


def test_a_non_homomorphism_is_caught(toy_group):
    """A representation whose matrices are orthogonal but do not compose is named."""
    from toy_c4 import ToyRep

    class Scrambled(ToyRep):
        def matrices(self, elements):
            k = torch.as_tensor(elements.native)
            return super().matrices(elements) * torch.where(k == 1, -1.0, 1.0).double()[:, None, None]  # rho(1)^2 ok

    bad = Scrambled(toy_group, "scrambled", 2, 1)
    field = st.FieldType(toy_group, [bad])
    with pytest.raises(ConventionError, match=r"representation scrambled\[2\] is not a homomorphism"):
        check_equivariance(st.PointConv(field, field, max_radius=1.0))


def test_a_broken_layer_fails_conformance(toy_group, monkeypatch):
    """A kernel MLP that is not equivariant fails the equivariance checks, with the values."""
    from toy_c4 import _AveragedMLP

    forward = _AveragedMLP.forward
    monkeypatch.setattr(_AveragedMLP, "forward", lambda self, pos, attr: forward(self, pos + 0.1, attr))
    report = run_conformance(toy_group, raise_on_failure=False, checks=["kernel", "point conv"])
    assert [r.name for r in report.failures] == [
        "kernel float64",
        "point conv float64",
        "kernel float32",
        "point conv float32",
    ]
    assert all(r.value > 1e-3 for r in report.failures)


def test_a_state_dict_that_does_not_load_fails(toy_group, monkeypatch):
    """``state_dict`` fails when loading leaves the fresh layer's weights as they were."""
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", lambda self, state, strict=True: None)
    report = run_conformance(toy_group, raise_on_failure=False, checks=["state_dict"])
    (failure,) = report.failures
    assert "kernel: outputs differ by" in failure.detail and "point conv: outputs differ by" in failure.detail


def test_unknown_check_is_named(toy_group):
    with pytest.raises(ValueError, match="unknown checks"):
        run_conformance(toy_group, checks=["kernal"])


DET_PLUGIN = """
import torch
from steerable import GroupSpec, hookimpl


def build(dim):
    from steerable.plugins.matrix_backend import group_from_generators

    group = group_from_generators([[[0.0, -1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, -1.0]]], name="DetD4")
    mats = group.elements().matrices
    bad = group.rep_from_elements(torch.linalg.det(mats)[:, None, None] * mats, "standard")
    group.standard_rep = lambda: bad
    return group


@hookimpl
def steerable_groups():
    return [GroupSpec(backend="matrix", display="DetD4", pattern="DETD4", dims=(2,), build=build)]
"""


def test_pytest_plugin(tmp_path):
    """``pytest -p steerable.testing.pytest_plugin --steerable-group NAME``: one item per check, failures named."""
    import os
    import subprocess

    (tmp_path / "det_plugin.py").write_text(DET_PLUGIN)
    install_fake_distribution(tmp_path, "det_plugin", {"det": "det_plugin"})
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "steerable.testing.pytest_plugin",
            "--steerable-group",
            "4mm",
            "--steerable-group",
            "DetD4",
            "--steerable-dim",
            "2",
            "-q",
            "-rfE",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=run_dir,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert failed and all("[DetD4]" in line for line in failed), out  # every check of 4mm passes
    assert "FAILED ::steerable-conformance[DetD4][coordinate action]" in out and "det(g) * g" in out, out


def test_an_incomplete_kernel_fails_completeness(toy_group, monkeypatch):
    """Zeroing every MLP output block but the first keeps the kernel equivariant but not complete."""
    from toy_c4 import _AveragedMLP

    forward = _AveragedMLP.forward

    def first_block_only(self, pos, attr):
        out = forward(self, pos, attr)
        ro, ri = self.spec.blocks[0]
        return torch.cat([out[:, : ro.size * ri.size], torch.zeros_like(out[:, ro.size * ri.size :])], 1)

    monkeypatch.setattr(_AveragedMLP, "forward", first_block_only)
    report = run_conformance(toy_group, raise_on_failure=False, checks=["kernel", "completeness"])
    assert report["kernel float64"].passed  # still equivariant ...
    result = report["completeness"]
    assert result.passed is False and result.value < result.bound, str(report)  # ... but not complete
