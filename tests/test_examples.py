"""Each example runs (``--quick``) as a user would run it: exit code 0, errors below their bounds, PNGs written."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("escnn")  # the groups used here (O(2), SO(2) on R^3, D4, O(3)) come from the escnn backend

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# every example prints lines "check ...: rel. error 1.2e-07 (bound 1e-05) ok"
CHECK = re.compile(r"^check (?P<what>.+): rel\. error (?P<err>\S+) \(bound (?P<bound>\S+)\) (?P<status>\w+)$", re.M)
HARD_CAP = 1e-4  # an example may not loosen its own bound past this

CASES = {
    "01_implicit_kernels.py": (2, ["01_o2_kernel.png", "01_o2_errors.png", "01_so2_3d_kernel_z+0.0.png", "01_so2_3d_errors.png"]),
    "02_grid_conv.py": (1, ["02_grid_errors.png", "02_grid_rotate_vs_conv.png", "02_grid_filter.png"]),
    "03_point_conv.py": (1, ["03_point_errors.png", "03_point_rotate_vs_conv.png", "03_point_kernel.png"]),
    "04_o3_point_model.py": (1, ["04_model_invariance.png", "04_model_training.png", "04_model_clouds.png"]),
}
SLOW: set[str] = set()  # all four --quick runs took 18 s together here (4-5 s each); mark any that grows


def run_example(name: str, out: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=EXAMPLES.parent,
    )


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES]
)
def test_example_quick(name: str, tmp_path: Path) -> None:
    n_checks, pngs = CASES[name]
    result = run_example(name, tmp_path)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    checks = list(CHECK.finditer(result.stdout))
    assert len(checks) == n_checks, f"{name}: expected {n_checks} check lines in\n{result.stdout}"
    for match in checks:
        err, bound = float(match["err"]), float(match["bound"])
        assert bound <= HARD_CAP, match.group(0)
        assert err < bound and match["status"] == "ok", match.group(0)
    for png in pngs:
        path = tmp_path / png
        assert path.exists() and path.stat().st_size > 5_000, f"{name} did not write {png}"


def test_examples_are_all_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py")) == sorted(CASES)
