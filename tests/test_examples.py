"""Each example runs (``--quick``), its check passes, its PNGs are written, and the equivariance it claims
is recomputed here with steerable.testing's engine (verified matrices) on the example's own objects and
inputs, not read from what the example prints.

The examples run in-process (``run(parse_args([...]))``, what ``main`` does) so their objects can be
checked; ``test_example_as_a_script`` (slow) runs them as a user would.  Bounds on the recomputed
float32 errors, measured here: kernels <= 1.4e-7, grid conv 2.9e-7, point conv 3.5e-7, the O(3) model
8.8e-8; bound 2e-6 for each (a factor >= 5.7).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("escnn")  # the groups used here (O(2), SO(2) on R^3, D4, O(3)) come from the escnn backend

from steerable import viz
from steerable.testing import GridField, check_equivariance, equivariance_error

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# every example prints lines "check ...: rel. error 1.2e-07 (bound 1e-05) ok"
CHECK = re.compile(r"^check (?P<what>.+): rel\. error (?P<err>\S+) \(bound (?P<bound>\S+)\) (?P<status>\w+)$", re.M)
BOUND = 2e-6  # recomputed float32 errors (module doc)

PNGS = {
    "01_implicit_kernels.py": [
        "01_o2_kernel.png",
        "01_o2_errors.png",
        "01_so2_3d_kernel_z+0.0.png",
        "01_so2_3d_errors.png",
    ],
    "02_grid_conv.py": ["02_grid_errors.png", "02_grid_rotate_vs_conv.png", "02_grid_filter.png"],
    "03_point_conv.py": ["03_point_errors.png", "03_point_rotate_vs_conv.png", "03_point_kernel.png"],
    "04_o3_point_model.py": ["04_model_invariance.png", "04_model_training.png", "04_model_clouds.png"],
    "05_lorentz.py": ["05_lorentz_boosts.png", "05_lorentz_training.png"],
}
N_CHECKS = {"01_implicit_kernels.py": 2}


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name[:2]}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_quick(name: str, out: Path, capsys) -> tuple[dict, str]:
    module = load(name)
    result = module.run(module.parse_args(["--quick", "--out", str(out)]))
    printed = capsys.readouterr().out
    assert result["ok"], printed
    checks = list(CHECK.finditer(printed))
    assert len(checks) == N_CHECKS.get(name, 1) and all(c["status"] == "ok" for c in checks), printed
    for png in PNGS[name]:
        path = out / png
        assert path.exists() and path.stat().st_size > 5_000, f"{name} did not write {png}"
    return result, printed


# the quantity each example's error figure plots, as its y label must name it
ERROR_FIGURES = {
    "01_o2_errors.png": "|K(g.x) - rho_out(g) K(x) rho_in(g)^T| / |rho_out(g) K(x) rho_in(g)^T|",
    "01_so2_3d_errors.png": "|K(g.x) - rho_out(g) K(x) rho_in(g)^T| / |rho_out(g) K(x) rho_in(g)^T|",
    "02_grid_errors.png": "|conv(g.x) - g.conv(x)| / |g.conv(x)|",
    "03_point_errors.png": "|conv(g.x, g.pos + t) - g.conv(x, pos)| / |g.conv(x, pos)|",
    "04_model_invariance.png": "|f(g.x) - f(x)| / |f(x)|",  # invariant: not g.f(x)
}


def check_figures(name: str, result: dict) -> None:
    """Every figure the example wrote: no clipped text, labelled colour bars, error plots labelled with
    the quantity they plot (and no other formula in their titles), element names explained."""
    figures = result["figures"]
    assert set(PNGS[name]) <= set(figures), sorted(figures)
    for png, fig in figures.items():
        assert viz.figure_problems(fig) == [], (png, viz.figure_problems(fig))
        if png in ERROR_FIGURES:
            ax = fig.axes[0]
            assert ERROR_FIGURES[png] in ax.get_ylabel().replace("\n", " "), (png, ax.get_ylabel())
            assert "|" not in ax.get_title(), (png, ax.get_title())
            assert ax.get_xlabel().startswith("rot θ"), (png, ax.get_xlabel())


def test_01_kernels(tmp_path, capsys):
    result, _ = run_quick("01_implicit_kernels.py", tmp_path, capsys)
    check_figures("01_implicit_kernels.py", result)
    gen = torch.Generator().manual_seed(0)
    for kernel in result["kernels"]:  # the fitted kernels, float32 as the example leaves them
        assert next(kernel.parameters()).dtype == torch.float32
        assert check_equivariance(kernel, dtype=torch.float32, n_elements=6, generator=gen) < BOUND


def test_02_grid_conv(tmp_path, capsys):
    result, _ = run_quick("02_grid_conv.py", tmp_path, capsys)
    check_figures("02_grid_conv.py", result)
    # the difference panel conv(g.x) - g.conv(x) is drawn on the outputs' colour and arrow scales
    fig = result["figures"]["02_grid_rotate_vs_conv.png"]
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert len(panels) == 5 and "-" in panels[4].get_title()
    clims = [ax.images[0].get_clim() for ax in panels]
    scales = [next(c for c in ax.collections if type(c).__name__ == "Quiver").scale for ax in panels]
    assert clims[4] == clims[3] == clims[2] and scales[4] == scales[3] == scales[2]
    assert clims[0] == clims[1] and scales[0] == scales[1]
    assert clims[2][1] > 1e-2  # the outputs' own scale, not the difference's round-off (~1e-7)
    conv, x = result["conv"], result["x"]  # the example's image, on every lattice symmetry of O(2)
    error = equivariance_error(conv, (x,), (GridField(conv.in_type),), GridField(conv.out_type), dtype=torch.float32)
    assert error < BOUND


def test_03_point_conv(tmp_path, capsys):
    result, _ = run_quick("03_point_conv.py", tmp_path, capsys)
    check_figures("03_point_conv.py", result)
    fig = result["figures"]["03_point_rotate_vs_conv.png"]
    quivers = [c for ax in fig.axes for c in ax.collections if type(c).__name__ == "Quiver"]
    assert len(quivers) == 5 and len({q.scale for q in quivers}) == 1  # the difference panel included
    conv = result["conv"]
    args = (result["x"], result["pos"], result["edge_index"])  # the example's spiral cloud and its graph
    gen = torch.Generator().manual_seed(0)
    error = equivariance_error(
        conv, args, (conv.in_type, "points", None), conv.out_type, dtype=torch.float32, n_elements=6, generator=gen
    )
    assert error < BOUND


def test_04_o3_model(tmp_path, capsys):
    result, _ = run_quick("04_o3_point_model.py", tmp_path, capsys)
    check_figures("04_o3_point_model.py", result)
    xlabel = result["figures"]["04_model_invariance.png"].axes[0].get_xlabel().replace("\n", " ")
    assert "-rot θ: inversion" in xlabel  # "-rot 177°" is explained where it is shown
    model = result["model"]
    group = model.convs[0].group
    args = (result["pos"], result["edges"], result["batch"])  # the kNN graph is the same for a moved cloud
    gen = torch.Generator().manual_seed(0)
    error = equivariance_error(
        model, args, ("points", None, None), None, group=group, dtype=torch.float32, n_elements=6, generator=gen
    )
    assert error < BOUND
    assert model.training is False  # the example leaves it in eval mode; the check did not change it


def test_05_lorentz(tmp_path, capsys):
    """The Lorentz model's predictions are invariant (float64, recomputed with boosts and rotations built here
    from their definition, rapidity up to 2: measured 3e-16, bound 1e-12); its test error is the same on
    every boosted copy while the baseline's grows."""
    from _lie import boost, rotation

    result, _ = run_quick("05_lorentz.py", tmp_path, capsys)
    check_figures("05_lorentz.py", result)
    model, momenta = result["model"], result["momenta"]
    group = model.conv1.in_type.group
    assert group.name == "O(1,3)" and group.backend == "lie"
    mats = [
        boost(4, 0, 1, 2.0),
        rotation(4, 1, 2, 0.7) @ boost(4, 0, 3, -1.5),
        boost(4, 0, 2, 1.0) @ boost(4, 0, 1, 1.0),
    ]
    mats.append(torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=torch.float64)) @ mats[1])  # time reversal
    elements = group.elements_from_matrices(torch.stack(mats))
    n = momenta.shape[0]
    error = equivariance_error(
        lambda pos: model(pos.reshape(n, -1, 4)),
        (momenta.reshape(-1, 4),),
        ("points",),
        None,
        group=group,
        elements=elements,
        translate=False,
    )
    assert error < 1e-12
    ours = [row[1] for row in result["table"]]
    theirs = [row[2] for row in result["table"]]
    assert max(ours) - min(ours) <= 1e-9 * min(ours)
    assert theirs[-1] > 2 * theirs[0]


def test_examples_are_all_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py")) == sorted(PNGS)


@pytest.mark.slow  # the four runs take ~20 s together; the in-process tests above cover the same code
@pytest.mark.parametrize("name", sorted(PNGS))
def test_example_as_a_script(name: str, tmp_path: Path) -> None:
    env = dict(os.environ, MPLBACKEND="Agg")
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=EXAMPLES.parent,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout}\n{result.stderr[-3000:]}"
    assert len(CHECK.findall(result.stdout)) == N_CHECKS.get(name, 1), result.stdout
