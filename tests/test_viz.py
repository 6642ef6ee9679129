"""steerable.viz: kernels, fields and error plots written as PNGs with real content (Agg, no GUI)."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("escnn")  # the groups used here (O(2), SO(2) on R^3, D4, O(3)) come from the escnn backend
import matplotlib

matplotlib.use("Agg")
from matplotlib.image import imread

import steerable as st
from steerable import viz
from steerable.testing import lattice_elements

MIN_BYTES = 5_000


def assert_png(path) -> None:
    """The file exists, is not tiny, and its pixels are not all the same."""
    assert path.exists(), path
    assert path.stat().st_size > MIN_BYTES, f"{path} is only {path.stat().st_size} bytes"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert float(image[..., :3].std()) > 0.01, f"{path} looks blank"


@pytest.fixture(scope="module")
def o2():
    return st.group("O(2)")


@pytest.fixture(scope="module")
def o2_kernel(o2):
    torch.manual_seed(0)
    field = st.FieldType(o2, [o2.trivial_rep(), o2.standard_rep()])
    return st.ImplicitKernel(field, field, hidden_channels=4, hidden_layers=1, max_radius=1.0)


def rot(deg: float, dim: int = 2) -> torch.Tensor:
    a = math.radians(deg)
    mat = torch.eye(dim, dtype=torch.float64)
    mat[:2, :2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    return mat


def test_kernel_on_plane_convention_and_steerability(o2, o2_kernel):
    axis, values = viz.kernel_on_plane(o2_kernel, extent=1.0, resolution=9)
    assert axis.shape == (9,) and values.shape == (9, 9, 3, 3) and values.dtype == torch.float64
    # values[i, j] = K(x = axis[i], y = axis[j])
    with torch.no_grad():
        direct = o2_kernel(torch.tensor([[float(axis[2]), float(axis[7])]]))[0]
    assert torch.allclose(values[2, 7], direct.double(), atol=1e-6)
    # a 90° turn maps the sampled square onto itself: K(g p) = rho_out(g) K(p) rho_in(g)^T
    g = o2.elements_from_matrices(rot(90)[None])
    rho = o2_kernel.out_type.matrices(g)[0]
    n = len(axis)
    for i, j in [(1, 3), (6, 2), (0, 8)]:
        # g (x_i, y_j) = (-y_j, x_i) = (axis[n-1-j], axis[i])
        assert torch.allclose(values[n - 1 - j, i], rho @ values[i, j] @ rho.T, atol=1e-5)


def test_kernel_on_plane_3d_slice():
    group = st.group("SO(2)", dim=3)
    field = st.FieldType(group, [group.trivial_rep(), group.standard_rep()])
    kernel = st.ImplicitKernel(field, field, hidden_channels=4, hidden_layers=1, max_radius=1.0)
    axis, values = viz.kernel_on_plane(kernel, resolution=5, plane=(0, 2), slice_at=0.3)
    assert values.shape == (5, 5, 4, 4)
    with torch.no_grad():
        direct = kernel(torch.tensor([[float(axis[1]), 0.3, float(axis[4])]]))[0]
    assert torch.allclose(values[1, 4], direct.double(), atol=1e-6)
    with pytest.raises(ValueError, match="plane"):
        viz.kernel_on_plane(kernel, plane=(1, 1))


def test_plot_kernel_png(o2_kernel, tmp_path):
    path = viz.save(viz.plot_kernel(o2_kernel, resolution=15), tmp_path / "deep" / "kernel.png")
    assert path == tmp_path / "deep" / "kernel.png"
    assert_png(path)


def test_plot_kernel_3d_slice_and_sampled_grid_filter(tmp_path):
    group = st.group("SO(2)", dim=3)
    field = st.FieldType(group, [group.trivial_rep(), group.standard_rep()])
    conv = st.GridConv(field, field, kernel_size=5, padding=2, hidden_channels=4, hidden_layers=1)
    assert_png(viz.save(viz.plot_kernel(conv, resolution=11, slice_at=0.5), tmp_path / "slice.png"))
    assert_png(viz.save(viz.plot_kernel(conv, sampled=True), tmp_path / "filter.png"))
    with pytest.raises(TypeError, match="GridConv"):
        viz.plot_kernel(conv.kernel, sampled=True)
    with pytest.raises(TypeError, match="ImplicitKernel"):
        viz.plot_kernel(torch.nn.Linear(2, 2))


def test_element_labels(o2):
    els = o2.elements_from_matrices(
        torch.stack([rot(0), rot(90), torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))])
    )
    assert viz.element_labels(els) == ["rot 0°", "rot 90°", "ref 0°"]
    o3 = st.group("O(3)")
    mats = torch.stack(
        [
            rot(90, 3),
            -torch.eye(3, dtype=torch.float64),
            torch.diag(torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)),
        ]
    )
    assert viz.element_labels(o3.elements_from_matrices(mats)) == ["rot 90° z", "-rot 0°", "rot 180° z"]


class _Weighted(torch.nn.Module):
    """``y = w x`` with ``w(p) = 1 + p_x^2 / 2`` (centred pixel coordinates): a scalar layer on the grid
    invariant under the elements that keep the axes (identity, the two axis flips, the half turn) and
    not under those that swap them (quarter turns, diagonal mirrors), which turn ``w`` into
    ``1 + p_y^2 / 2``."""

    def __init__(self, field, size: int) -> None:
        super().__init__()
        self.in_type = self.out_type = field
        self.attr_type = None
        centred = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        self.register_buffer("w", (1 + centred**2 / 2)[:, None].expand(size, size).clone())

    def forward(self, x, attr=None):
        return x * self.w.to(x)


def test_element_errors_per_element():
    """Zero for exactly the elements that keep the axes, O(1) for the others, in the order given."""
    group = st.group("D4")
    els = lattice_elements(group)
    errors = viz.element_errors(_Weighted(st.FieldType(group, [group.trivial_rep()]), 7), els, seed=3, grid_size=7)
    assert len(errors) == len(els) == 8
    keeps_axes = els.matrices[:, 0, 0].abs() > 0.5
    assert int(keeps_axes.sum()) == 4
    for err, keep in zip(errors, keeps_axes.tolist()):
        assert (err < 1e-15) if keep else (err > 0.1), (errors, keeps_axes)
    assert errors == viz.element_errors(
        _Weighted(st.FieldType(group, [group.trivial_rep()]), 7), els, seed=3, grid_size=7
    )  # seeded: the same inputs every call


def test_plot_equivariance_error_png(o2, tmp_path):
    els = o2.sample(5, generator=torch.Generator().manual_seed(0))
    fig = viz.plot_equivariance_error([1e-7, 2e-7, 0.0, 5e-8, 3e-7], els, bound=1e-5)
    assert_png(viz.save(fig, tmp_path / "errors.png"))
    fig = viz.plot_equivariance_error({"float32": [1e-7, 2e-7], "float64": [1e-16, 3e-16]}, ["a", "b"], log=True)
    assert_png(viz.save(fig, tmp_path / "series.png"))
    with pytest.raises(ValueError, match="labels"):
        viz.plot_equivariance_error([1.0, 2.0], ["only one"])
    with pytest.raises(ValueError, match="length"):
        viz.plot_equivariance_error({"a": [1.0], "b": [1.0, 2.0]})


def test_plot_fields_png(tmp_path):
    c = torch.linspace(-1, 1, 12)
    x, y = torch.meshgrid(c, c, indexing="ij")
    scalar = torch.exp(-((x - 0.3) ** 2) - 2 * y**2)
    vectors = torch.stack([-y, x])
    fig = viz.plot_grid_fields([("a", scalar, vectors), ("b", -scalar, None)], title="grid")
    assert_png(viz.save(fig, tmp_path / "grid.png"))
    pos = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    fig = viz.plot_point_fields([("p", pos, pos[:, 0], pos.flip(1)), ("q", pos * 0.5, None, None)])
    assert_png(viz.save(fig, tmp_path / "points.png"))


# -- what a reader sees: scales, colour bars, clipping, labels -----------------------------------
def _bad_figure(title: str, label_bar: bool):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(torch.arange(16.0).reshape(4, 4).numpy())
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="value" if label_bar else None)
    return fig


def test_figure_problems_finds_clipped_titles_and_unlabelled_colour_bars():
    """The checker the tests below rely on reports each defect it claims to find, and nothing on a clean figure."""
    assert viz.figure_problems(_bad_figure("short", label_bar=True)) == []
    long = "a title far too long for a three inch figure, clipped at both sides when saved"
    problems = viz.figure_problems(_bad_figure(long, label_bar=True))
    assert any("reaches outside" in p and long in p for p in problems), problems
    problems = viz.figure_problems(_bad_figure("short", label_bar=False))
    assert problems == ["the colour bar of 'short' has no label"]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2), layout="constrained")
    fig.add_subplot().scatter([0, 1], [0, 1], c=[0.0, 1.0])
    assert viz.figure_problems(fig) == ["the colours of '' have no labelled colour bar"]


def _grid_signal(size: int = 12):
    c = torch.linspace(-1, 1, size, dtype=torch.float64)
    x, y = torch.meshgrid(c, c, indexing="ij")
    return torch.exp(-((x - 0.3) ** 2) - 2 * y**2), torch.stack([-y, x])


def _quivers(fig):
    return [q for ax in fig.axes for q in ax.collections if type(q).__name__ == "Quiver"]


def test_grid_difference_panel_is_drawn_on_the_signals_scale():
    """Round-off of 1e-7 in a difference panel stays invisible: same clim and quiver scale as the signal it
    subtracts, so its arrows are ~1e-7 of a stride long (before: each panel auto-scaled, round-off became
    full-length arrows and a saturated image)."""
    scalar, vectors = _grid_signal()
    noise = 1e-7 * torch.randn(3, 12, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    panels = [
        ("signal", scalar, vectors),
        ("turned", scalar.flip(0), vectors.flip(1)),
        ("difference", noise[0], noise[1:]),
    ]
    fig = viz.plot_grid_fields(panels, stride=2, scale_groups=[0, 0, 0], colorbar_label="scalar")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 3
    assert images[2].get_clim() == images[0].get_clim() == (-float(scalar.max()), float(scalar.max()))
    q_signal, _, q_diff = _quivers(fig)
    assert q_diff.scale == q_signal.scale
    # the longest signal arrow is drawn 0.9 * stride pixels long; a 1e-7 arrow 1e-7 / |v|max of that
    longest = float(vectors.norm(dim=0).max())
    assert q_signal.scale == pytest.approx(longest / (0.9 * 2), rel=1e-12)
    diff_len = float(noise[1:].norm(dim=0).max()) / q_diff.scale
    assert diff_len < 1e-5, diff_len
    assert viz.figure_problems(fig) == []
    # separate groups: the inputs and the outputs each get their own scale and their own labelled colour bar
    fig = viz.plot_grid_fields([("in", scalar, vectors), ("out", 3 * scalar, 3 * vectors)], scale_groups=[0, 1])
    q_in, q_out = _quivers(fig)
    assert q_out.scale == pytest.approx(3 * q_in.scale)
    assert viz.figure_problems(fig) == []
    with pytest.raises(ValueError, match="one group per panel"):
        viz.plot_grid_fields(panels, scale_groups=[0, 1])
    with pytest.raises(ValueError, match="not both"):
        viz.plot_grid_fields(panels, share_scale=True, scale_groups=[0, 0, 0])


def test_point_fields_share_one_scale_and_wrap_long_titles():
    pos = torch.randn(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    vec = pos.flip(1)
    label = "input: scalar (colour) + unit tangent (drawn scaled), a label longer than its panel"
    fig = viz.plot_point_fields([(label, pos, pos[:, 0], vec), ("difference", pos, 1e-7 * pos[:, 0], 1e-7 * vec)])
    q_signal, q_diff = _quivers(fig)
    assert q_signal.scale == q_diff.scale
    scatters = [c for ax in fig.axes for c in ax.collections if type(c).__name__ == "PathCollection"]
    assert len({s.get_clim() for s in scatters}) == 1
    assert viz.figure_problems(fig) == []  # the long panel title is wrapped, not clipped; the colour bar labelled


def test_error_plot_labels_name_the_quantity_and_the_element_notation():
    o3 = st.group("O(3)")
    els = o3.sample(4, generator=torch.Generator().manual_seed(0))
    quantity = "relative change |f(g.x) - f(x)| / |f(x)|"
    fig = viz.plot_equivariance_error([1e-7] * 4, els, bound=1e-5, ylabel=quantity, title="invariance per g")
    ax = fig.axes[0]
    assert ax.get_ylabel().replace("\n", " ") == quantity
    assert "|" not in ax.get_title()  # the formula is in the y label only, so the two cannot disagree
    assert "-rot θ: inversion" in ax.get_xlabel().replace("\n", " ")  # what "-rot 177°" means
    assert viz.figure_problems(fig) == []
    o2 = st.group("O(2)")
    xlabel = viz.plot_equivariance_error([1.0], o2.sample(1)).axes[0].get_xlabel()
    assert xlabel.startswith("rot θ: rotation by θ")
    assert viz.plot_equivariance_error([1.0], ["a"]).axes[0].get_xlabel() == "group element"
    proper = st.group("SO(3)").sample(3)
    assert "-rot" not in viz.element_notation(proper)


def test_kernel_figures_say_the_extent_and_label_the_colour_bar(o2_kernel):
    fig = viz.plot_kernel(o2_kernel, extent=1.5, resolution=9)
    assert "x, y in [-1.5, 1.5]" in fig.get_suptitle()
    assert viz.figure_problems(fig) == []


def test_default_extent_is_the_kernels_reach(o2):
    """A point kernel is drawn out to its max_radius, a GridConv's on its taps' span [-1, 1]."""
    field = st.FieldType(o2, [o2.trivial_rep(), o2.standard_rep()])
    wide = st.ImplicitKernel(field, field, hidden_channels=4, hidden_layers=1, max_radius=2.5)
    axis, _ = viz.kernel_on_plane(wide, resolution=5)
    assert axis.tolist() == pytest.approx([-2.5, -1.25, 0.0, 1.25, 2.5])
    conv = st.GridConv(field, field, kernel_size=3, padding=1, hidden_channels=4, hidden_layers=1)
    axis, _ = viz.kernel_on_plane(conv, resolution=3)
    assert axis.tolist() == pytest.approx([-1.0, 0.0, 1.0])
    assert "x, y in [-2.5, 2.5]" in viz.plot_kernel(wide, resolution=5).get_suptitle()
    for bad in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="extent"):
            viz.kernel_on_plane(wide, extent=bad)
