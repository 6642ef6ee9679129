"""Pictures of steerable kernels, fields and equivariance errors (optional: needs ``matplotlib``).

Install with ``pip install steerable[viz]``.  ``matplotlib`` is imported lazily inside the
functions, so ``import steerable.viz`` is cheap and works without it.  Figures are built with the
object-oriented API (:class:`matplotlib.figure.Figure`, no ``pyplot``): no GUI backend or global
state is touched; show one in a notebook by leaving it as a cell's value, or write it with
:func:`save`.

Conventions (the library's, see ``README.md``):

* Coordinates are ``(x, y[, z])``; a grid tensor's spatial axis ``k`` holds coordinate ``k``.  Images
  are drawn with ``x`` to the right and ``y`` up (``imshow(values.T, origin="lower")``).
* Kernels are ``K(x)`` of shape ``(out_type.size, in_type.size)``; :func:`plot_kernel` draws one
  panel per entry ``K[o, i]``, output channels as rows and input channels as columns, on one shared,
  symmetric colour scale.
* Errors are relative: ``|f(g.x) - g.f(x)| / |g.f(x)|``, as in :mod:`steerable.testing`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .core.group import GroupElements
from .core.representation import FieldType
from .nn.grid_conv import GridConv
from .nn.kernel import ImplicitKernel
from .testing import layer_equivariance_errors

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_AXIS_NAMES = "xyz"
_MAX_FIGURE_INCHES = 18.0


def _figure(width: float, height: float) -> Figure:
    """A fresh matplotlib Figure (no pyplot), capped at a sane size."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("steerable.viz needs matplotlib: pip install 'steerable[viz]'") from exc
    scale = min(1.0, _MAX_FIGURE_INCHES / max(width, height))
    return Figure(figsize=(width * scale, height * scale), layout="constrained")


def _extent(layer: torch.nn.Module, kernel: ImplicitKernel, extent: float | None) -> float:
    """The half-width of the square a kernel is drawn on: ``extent`` if given (a positive number),
    else ``1`` for a ``GridConv`` (grid units) and the kernel's ``max_radius`` otherwise."""
    if extent is None:
        return 1.0 if isinstance(layer, GridConv) else float(kernel.max_radius)
    if isinstance(extent, bool) or not (isinstance(extent, (int, float)) and math.isfinite(extent) and extent > 0):
        raise ValueError(f"extent must be a finite number > 0 or None, got {extent!r}")
    return float(extent)


def _as_kernel(module: torch.nn.Module) -> ImplicitKernel:
    if isinstance(module, ImplicitKernel):
        return module
    kernel = getattr(module, "kernel", None)
    if isinstance(kernel, ImplicitKernel):
        return kernel
    raise TypeError(f"expected an ImplicitKernel or a layer holding one (.kernel), got {type(module).__name__}")


def channel_labels(field_type: FieldType) -> list[str]:
    """One short label per channel of ``field_type``: ``"0:trivial"``, ``"1:standard.x"``, ...

    The number is the field's index in the :class:`FieldType`; the suffix names the component
    (``x``, ``y``, ``z`` for the standard representation, an index otherwise).
    """
    labels = []
    for index, rep in enumerate(field_type.reps):
        if rep.size == 1:
            labels.append(f"{index}:{rep.name}")
            continue
        standard = rep.name == "standard" and rep.size <= 3
        for c in range(rep.size):
            labels.append(f"{index}:{rep.name}.{_AXIS_NAMES[c] if standard else c}")
    return labels


def _short(field_type: FieldType) -> str:
    """``"2xtrivial + standard"``: a compact name for titles."""
    return " + ".join(rep.name if count == 1 else f"{count}x{rep.name}" for rep, count in field_type.runs())


def _wrap(text: str, width_inches: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width_inches`` at ``fontsize`` points (about 0.55 em a character).

    Constrained layout does not shrink a title wider than its panel; wrapping keeps it inside the figure.
    """
    chars = max(8, int(width_inches * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars, break_long_words=False)) or text


# -- kernels -------------------------------------------------------------------------------------
def kernel_on_plane(
    kernel: torch.nn.Module,
    *,
    extent: float | None = None,
    resolution: int = 41,
    plane: tuple[int, int] = (0, 1),
    slice_at: float = 0.0,
    attr: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample an implicit kernel on a square of a coordinate plane.

    Args:
        kernel: an :class:`ImplicitKernel`, or a layer holding one as ``.kernel`` (``GridConv``,
            ``PointConv``).
        extent: the square is ``[-extent, extent]^2``; by default the kernel's reach: ``1`` for a
            ``GridConv`` (its taps span ``[-1, 1]`` per axis), else the kernel's ``max_radius``.
        resolution: samples per side.
        plane: the two coordinates spanning the plane, e.g. ``(0, 1)`` for the ``xy`` plane.
        slice_at: value of the remaining coordinate (3D only), e.g. ``z = slice_at``.
        attr: ``(attr_type.size,)`` attributes, the same for every sample, if the kernel takes any.

    Returns:
        ``axis`` ``(resolution,)`` sample coordinates along each side and ``values``
        ``(resolution, resolution, out, in)`` float64, with ``values[i, j] = K(p)`` where
        ``p[plane[0]] = axis[i]``, ``p[plane[1]] = axis[j]`` and the other coordinate ``= slice_at``.
    """
    module = _as_kernel(kernel)
    dim = module.group.dim
    extent = _extent(kernel, module, extent)
    if len(plane) != 2 or plane[0] == plane[1] or not all(0 <= a < dim for a in plane):
        raise ValueError(f"plane must name two different coordinates of R^{dim}, got {plane}")
    axis = torch.linspace(-extent, extent, resolution, dtype=torch.float64)
    u, v = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.full((resolution * resolution, dim), float(slice_at), dtype=torch.float64)
    points[:, plane[0]] = u.reshape(-1)
    points[:, plane[1]] = v.reshape(-1)
    param = next(module.parameters(), None)
    dtype = param.dtype if param is not None else torch.get_default_dtype()
    batch_attr = None
    if attr is not None:
        batch_attr = attr.reshape(1, -1).to(dtype).expand(points.shape[0], -1)
    with torch.no_grad():
        values = module(points.to(dtype), batch_attr)
    return axis, values.to(torch.float64).reshape(resolution, resolution, *values.shape[1:])


def plot_kernel(
    kernel: torch.nn.Module,
    *,
    extent: float | None = None,
    resolution: int = 41,
    plane: tuple[int, int] = (0, 1),
    slice_at: float = 0.0,
    attr: torch.Tensor | None = None,
    sampled: bool = False,
    title: str | None = None,
    cmap: str = "RdBu_r",
    panel_inches: float = 1.3,
) -> Figure:
    """Draw every entry ``K[o, i]`` of a kernel over a plane (2D) or a plane slice (3D).

    Rows are output channels, columns input channels (labels from :func:`channel_labels`); all
    panels share one symmetric colour scale, so zero is white and blocks can be compared.

    Args:
        kernel: an :class:`ImplicitKernel` or a layer holding one (``GridConv``, ``PointConv``).
        extent, resolution, plane, slice_at, attr: see :func:`kernel_on_plane`.
        sampled: for a ``GridConv``, draw the filter actually used by the convolution
            (``kernel_size`` pixels per side; in 3D the central slice across the remaining axis)
            instead of the continuous kernel.
        title: figure title; a default names the group, fields and slice.
        cmap: a diverging matplotlib colour map.
        panel_inches: size of one panel.

    Returns:
        the :class:`matplotlib.figure.Figure`.
    """
    module = _as_kernel(kernel)
    dim = module.group.dim
    if sampled:
        if not isinstance(kernel, GridConv):
            raise TypeError("plot_kernel(sampled=True) needs a GridConv")
        if attr is not None:
            raise ValueError("plot_kernel(sampled=True) does not take attributes")
        with torch.no_grad():
            weight = kernel.filter().to(torch.float64)  # (out, in, k, ..., k)
        if dim == 3:
            other = ({0, 1, 2} - set(plane)).pop()
            weight = weight.select(2 + other, kernel.kernel_size // 2)
            if plane[0] > plane[1]:
                weight = weight.transpose(2, 3)
        elif plane == (1, 0):
            weight = weight.transpose(2, 3)
        values = weight.permute(2, 3, 0, 1)  # (k, k, out, in)
        extent = 1.0  # the taps' span
    else:
        extent = _extent(kernel, module, extent)
        _, values = kernel_on_plane(
            module, extent=extent, resolution=resolution, plane=plane, slice_at=slice_at, attr=attr
        )
    n_out, n_in = values.shape[2], values.shape[3]
    rows, cols = channel_labels(module.out_type), channel_labels(module.in_type)
    vmax = float(values.abs().max()) or 1.0

    fig = _figure(panel_inches * n_in + 1.2, panel_inches * n_out + 0.8)
    axes = fig.subplots(n_out, n_in, squeeze=False, sharex=True, sharey=True)
    image = None
    for o in range(n_out):
        for i in range(n_in):
            ax = axes[o][i]
            image = ax.imshow(
                values[:, :, o, i].T.numpy(),
                origin="lower",
                extent=(-extent, extent, -extent, extent),
                cmap=cmap,
                vmin=-vmax,
                vmax=vmax,
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if o == 0:
                ax.set_title(cols[i], fontsize=7)
            if i == 0:
                ax.set_ylabel(rows[o], fontsize=7)
    u, v = _AXIS_NAMES[plane[0]], _AXIS_NAMES[plane[1]]
    label = "filter weight W[out, in, pixel]" if sampled else f"kernel entry K({u}, {v})[out, in]"
    fig.colorbar(image, ax=axes, shrink=0.8, label=label)
    where = f"{u} right, {v} up"
    if sampled:
        k = values.shape[0]
        where = f"{k}x{k} pixels, " + where
    else:
        where = f"{u}, {v} in [{-extent:g}, {extent:g}], " + where
    if dim == 3:
        other = ({0, 1, 2} - set(plane)).pop()
        where += f", {_AXIS_NAMES[other]} = {'0 (central pixel)' if sampled else f'{slice_at:g}'}"
    if title is None:
        title = f"{module.group.name} kernel on R^{dim}: {_short(module.in_type)} -> {_short(module.out_type)}"
    width = panel_inches * n_in + 1.2
    layout = _wrap(f"rows: output channel, columns: input channel; {where}", width, 8)
    fig.suptitle(_wrap(title, width, 9) + "\n" + layout, fontsize=9)
    return fig


# -- equivariance errors -------------------------------------------------------------------------
def element_labels(elements: GroupElements) -> list[str]:
    """Short names of group elements from their matrices.

    2D: ``"rot 90°"`` for a rotation by 90°, ``"ref 45°"`` for the reflection across the line at
    45°.  3D: ``"rot 120°"`` (with the axis when it is a coordinate axis, ``"rot 90° z"``) and
    ``"-rot ..."`` for ``-R`` (elements with determinant -1, i.e. inversion times a rotation);
    :func:`element_notation` gives the sentence explaining these names, for an axis label.
    """
    labels = []
    for mat in elements.matrices.to(torch.float64):
        det = float(torch.linalg.det(mat))
        if mat.shape[0] == 2:
            angle = math.degrees(math.atan2(float(mat[1, 0]), float(mat[0, 0])))
            if det > 0:
                labels.append(f"rot {angle % 360:.0f}°")
            else:
                labels.append(f"ref {(angle / 2) % 180:.0f}°")
            continue
        if mat.shape[0] != 3:
            labels.append(f"det {det:+.0f}")
            continue
        rot = mat if det > 0 else -mat
        cos = max(-1.0, min(1.0, (float(torch.trace(rot)) - 1) / 2))
        angle = math.degrees(math.acos(cos))
        skew = torch.stack([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
        if angle > 179.5:  # half turn: the axis is the eigenvector of eigenvalue 1
            sym = (rot + torch.eye(3, dtype=rot.dtype)) / 2
            skew = sym[int(sym.diagonal().argmax())]
        axis = ""
        if angle > 0.5 and skew.norm() > 0:
            unit = skew / skew.norm()
            k = int(unit.abs().argmax())
            if float(unit.abs()[k]) > 1 - 1e-6:
                axis = f" {'-' if unit[k] < 0 and angle < 179.5 else ''}{_AXIS_NAMES[k]}"
        labels.append(f"{'' if det > 0 else '-'}rot {angle:.0f}°{axis}")
    return labels


def element_notation(elements: GroupElements) -> str:
    """One line explaining the names :func:`element_labels` gives to ``elements`` (for an axis label)."""
    dim = elements.matrices.shape[-1]
    improper = bool((torch.linalg.det(elements.matrices.to(torch.float64)) < 0).any())
    if dim == 2:
        text = "rot θ: rotation by θ"
        return text + ("; ref θ: reflection across the line at angle θ" if improper else "")
    if dim == 3:
        text = "rot θ [axis]: rotation by θ about its axis (named when it is x, y or z)"
        return text + ("; -rot θ: inversion x -> -x after a rotation by θ (det -1)" if improper else "")
    return "det ±1: determinant of the element's matrix"


def element_errors(module: torch.nn.Module, elements: GroupElements, *, seed: int = 0, **check_kwargs) -> list[float]:
    """Relative equivariance error of ``module`` for each element separately.

    The per-element errors of :func:`steerable.testing.check_equivariance` (one set of random
    inputs drawn from ``seed``, shared by every element, so the errors are comparable); ``module``
    is not changed.  ``check_kwargs`` are passed on (``dtype``, ``grid_size``, ``n_points``, ...).
    Returns ``len(elements)`` floats, in the order of ``elements``.
    """
    generator = torch.Generator().manual_seed(seed)
    return layer_equivariance_errors(module, elements=elements, generator=generator, **check_kwargs)


def plot_equivariance_error(
    errors: Sequence[float] | Mapping[str, Sequence[float]],
    labels: Sequence[str] | GroupElements | None = None,
    *,
    bound: float | None = None,
    title: str = "equivariance error per group element",
    ylabel: str = "relative error |f(g.x) - g.f(x)| / |g.f(x)|",
    xlabel: str | None = None,
    log: bool = True,
    ax: Axes | None = None,
) -> Figure:
    """Bar plot of errors over group elements.

    Args:
        errors: one error per element, or several series ``{name: errors}`` (e.g. float32 and
            float64) drawn as grouped bars; every series has one value per element.
        labels: names of the elements (or the :class:`GroupElements`, named by
            :func:`element_labels`); default ``g0, g1, ...``.
        bound: draw a dashed horizontal line at this tolerance.
        title, ylabel: texts; ``ylabel`` names the quantity plotted (change it with the quantity, e.g.
            ``|f(g.x) - f(x)| / |f(x)|`` for an invariant model); keep formulas out of ``title``.
        xlabel: the x axis label; default: the notation of the element names (:func:`element_notation`)
            when ``labels`` are :class:`GroupElements`, else ``"group element"``.
        log: logarithmic error axis (zeros are drawn at the bottom of the axis).
        ax: draw into this axes instead of a new figure.

    Returns:
        the figure holding the plot.
    """
    series = dict(errors) if isinstance(errors, Mapping) else {"error": list(errors)}
    if not series:
        raise ValueError("plot_equivariance_error: no errors given")
    lengths = {len(v) for v in series.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError(f"plot_equivariance_error: every series needs the same, non-zero length, got {lengths}")
    n = lengths.pop()
    if isinstance(labels, GroupElements):
        xlabel = element_notation(labels) if xlabel is None else xlabel
        labels = element_labels(labels)
    xlabel = "group element" if xlabel is None else xlabel
    labels = list(labels) if labels is not None else [f"g{k}" for k in range(n)]
    if len(labels) != n:
        raise ValueError(f"plot_equivariance_error: {n} errors but {len(labels)} labels")

    fig_width = max(5.5, 0.45 * n * max(1, len(series)) + 2.0)
    if ax is None:
        fig = _figure(fig_width, 3.8)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
        fig_width = ax.get_position().width * fig.get_figwidth()
    positive = [float(e) for v in series.values() for e in v if float(e) > 0]
    floor = min(positive) / 10 if positive else 1e-18
    width = 0.8 / len(series)
    for s, (name, values) in enumerate(series.items()):
        heights = [max(float(e), floor) if log else float(e) for e in values]
        offsets = [k - 0.4 + width * (s + 0.5) for k in range(n)]
        ax.bar(offsets, heights, width=width, label=name, bottom=floor if log else 0.0)
    if bound is not None:
        ax.axhline(bound, color="black", linestyle="--", linewidth=1, label=f"bound {bound:g}")
    if log:
        ax.set_yscale("log")
    ax.set_xticks(range(n))
    ax.set_xticklabels(labels, rotation=45 if n > 6 else 0, ha="right" if n > 6 else "center", fontsize=7)
    ax.set_ylabel(_wrap(ylabel, 3.2, 8), fontsize=8)
    ax.set_xlabel(_wrap(xlabel, fig_width - 1.0, 7), fontsize=7)
    ax.set_title(_wrap(title, fig_width - 1.0, 9), fontsize=9)
    if len(series) > 1 or bound is not None:
        ax.legend(fontsize=7)
    return fig


# -- fields --------------------------------------------------------------------------------------
def _scale_groups(n: int, share_scale: bool, scale_groups: Sequence[int] | None) -> list[int]:
    if scale_groups is None:
        return [0] * n if share_scale else list(range(n))
    if share_scale:
        raise ValueError("give share_scale or scale_groups, not both")
    groups = list(scale_groups)
    if len(groups) != n:
        raise ValueError(f"scale_groups needs one group per panel: {n} panels, {len(groups)} groups")
    return groups


def plot_grid_fields(
    panels: Sequence[tuple[str, torch.Tensor, torch.Tensor | None]],
    *,
    stride: int = 2,
    share_scale: bool = False,
    scale_groups: Sequence[int] | None = None,
    colorbar_label: str = "scalar (colour)",
    title: str | None = None,
    panel_inches: float = 2.8,
) -> Figure:
    """Draw 2D grid fields side by side: a scalar image with an optional vector field on top.

    Panels of one *scale group* share their colour scale (symmetric, zero is white) and their arrow
    scale, set by the largest value in the group, with one colour bar per run of adjacent panels of
    the group and an arrow key (an arrow of the group's largest length, labelled with it).  Put a
    difference panel in the group of the fields it subtracts: round-off then shows as white and as
    arrows too short to see, instead of being blown up to the panel's own range.

    Args:
        panels: ``(label, scalar, vectors)`` per panel; ``scalar`` ``(X, Y)`` (spatial axis 0 is
            ``x``, drawn to the right), ``vectors`` ``(2, X, Y)`` holding ``(v_x, v_y)`` or ``None``.
        stride: draw every ``stride``-th arrow along each axis.
        share_scale: one scale group for all panels (same as ``scale_groups=[0] * len(panels)``).
        scale_groups: one group id per panel (default: each panel its own scale).
        colorbar_label: label of every colour bar (what the colour is).
        title: figure title.
        panel_inches: size of one panel.
    """
    if not panels:
        raise ValueError("plot_grid_fields: no panels given")
    if not (isinstance(stride, int) and stride >= 1):
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    groups = _scale_groups(len(panels), share_scale, scale_groups)
    scalars = [p[1].detach().to(torch.float64).cpu() for p in panels]
    vectors_all = [None if p[2] is None else p[2].detach().to(torch.float64).cpu() for p in panels]
    colour_max: dict[int, float] = {}
    arrow_max: dict[int, float] = {}
    for group, scalar, vectors in zip(groups, scalars, vectors_all):
        colour_max[group] = max(colour_max.get(group, 0.0), float(scalar.abs().max()))
        if vectors is not None:
            arrow_max[group] = max(arrow_max.get(group, 0.0), float(vectors.norm(dim=0).max()))

    fig = _figure(panel_inches * len(panels) + 0.5, panel_inches + 1.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    keyed: set[int] = set()
    for k, (ax, (label, _, _), scalar, vectors) in enumerate(zip(axes, panels, scalars, vectors_all)):
        group = groups[k]
        vmax = colour_max[group] or 1.0
        nx, ny = scalar.shape
        image = ax.imshow(
            scalar.T.numpy(),
            origin="lower",
            cmap="RdBu_r",
            vmin=-vmax,
            vmax=vmax,
            extent=(-0.5, nx - 0.5, -0.5, ny - 0.5),
            interpolation="nearest",
        )
        last_of_group = k == len(panels) - 1 or groups[k + 1] != group
        if last_of_group:  # one colour bar per run of panels of the group
            first = k
            while first > 0 and groups[first - 1] == group:
                first -= 1
            fig.colorbar(image, ax=list(axes[first : k + 1]), shrink=0.75, label=colorbar_label)
        if vectors is not None:
            xs, ys = torch.meshgrid(torch.arange(nx), torch.arange(ny), indexing="ij")
            sl = (slice(None, None, stride), slice(None, None, stride))
            # the group's longest vector is drawn 0.9 * stride pixels long
            scale = (arrow_max[group] or 1.0) / (0.9 * stride)
            quiver = ax.quiver(
                xs[sl].numpy(),
                ys[sl].numpy(),
                vectors[0][sl].numpy(),
                vectors[1][sl].numpy(),
                angles="xy",
                scale_units="xy",
                scale=scale,
                color="black",
                width=0.006,
            )
            if group not in keyed and arrow_max[group] > 0:
                keyed.add(group)
                tip = 0.03 + 0.9 * stride / nx  # labelpos "E" puts the arrow's tip at X: its tail stays inside
                ax.quiverkey(
                    quiver,
                    tip,
                    -0.07,
                    arrow_max[group],
                    f"arrow: |v| = {arrow_max[group]:.2g}",
                    labelpos="E",
                    coordinates="axes",
                    fontproperties={"size": 7},
                )
        ax.set_title(_wrap(label, panel_inches, 8), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(_wrap(title, panel_inches * len(panels), 9), fontsize=9)
    return fig


def plot_point_fields(
    panels: Sequence[tuple[str, torch.Tensor, torch.Tensor | None, torch.Tensor | None]],
    *,
    title: str | None = None,
    panel_inches: float = 3.0,
    arrow_scale: float | None = None,
    colorbar_label: str = "scalar (colour)",
) -> Figure:
    """Draw point clouds side by side: points coloured by a scalar, with arrows for a vector field.

    Every panel shares one colour scale (symmetric, zero is white), one arrow scale and the same
    view, so a difference panel shows round-off as white points without visible arrows.  An arrow key
    on the first panel with arrows gives the arrow scale.

    Args:
        panels: ``(label, pos, scalar, vectors)`` per panel; ``pos`` ``(N, 2)`` or ``(N, 3)`` (3D
            clouds are drawn projected on the ``xy`` plane), ``scalar`` ``(N,)`` or ``None``,
            ``vectors`` ``(N, 2 or 3)`` (first two components drawn) or ``None``.
        title: figure title.
        panel_inches: size of one panel.
        arrow_scale: quiver ``scale`` (vector units per unit of ``pos``); the same for every panel
            so arrow lengths compare; default: the longest vector is drawn 1/12 of the view wide.
        colorbar_label: label of the colour bar (what the colour is).
    """
    if not panels:
        raise ValueError("plot_point_fields: no panels given")
    fig = _figure(panel_inches * len(panels) + 0.5, panel_inches + 1.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    scalars = [p[2] for p in panels if p[2] is not None]
    vmax = max((float(s.abs().max()) for s in scalars), default=1.0) or 1.0
    vectors_all = [p[3] for p in panels if p[3] is not None]
    longest = max((float(v[:, :2].norm(dim=-1).max()) for v in vectors_all), default=0.0)
    reach = max(float(p[1][:, :2].abs().max()) for p in panels) * 1.15 or 1.0
    if arrow_scale is None:
        arrow_scale = longest / (reach / 6) if longest > 0 else 1.0
    points = None
    keyed = False
    for ax, (label, pos, scalar, vectors) in zip(axes, panels):
        pos = pos.detach().to(torch.float64).cpu()
        if scalar is not None:
            colour = scalar.detach().to(torch.float64).cpu().numpy()
            points = ax.scatter(
                pos[:, 0].numpy(),
                pos[:, 1].numpy(),
                c=colour,
                cmap="RdBu_r",
                vmin=-vmax,
                vmax=vmax,
                s=16,
                edgecolors="grey",
                linewidths=0.3,
            )
        else:
            ax.scatter(pos[:, 0].numpy(), pos[:, 1].numpy(), c="grey", s=14)
        if vectors is not None:
            vectors = vectors.detach().to(torch.float64).cpu()
            quiver = ax.quiver(
                pos[:, 0].numpy(),
                pos[:, 1].numpy(),
                vectors[:, 0].numpy(),
                vectors[:, 1].numpy(),
                angles="xy",
                scale_units="xy",
                scale=arrow_scale,
                color="black",
                width=0.005,
            )
            if not keyed and longest > 0:
                keyed = True
                tip = 0.03 + longest / arrow_scale / (2 * reach)  # the key's arrow, in axes widths, its tip at X
                ax.quiverkey(
                    quiver,
                    tip,
                    -0.07,
                    longest,
                    f"arrow: |v| = {longest:.2g}",
                    labelpos="E",
                    coordinates="axes",
                    fontproperties={"size": 7},
                )
        ax.set_xlim(-reach, reach)
        ax.set_ylim(-reach, reach)
        ax.set_aspect("equal")
        ax.set_title(_wrap(label, panel_inches, 8), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if points is not None:
        fig.colorbar(points, ax=list(axes), shrink=0.75, label=colorbar_label)
    if title:
        fig.suptitle(_wrap(title, panel_inches * len(panels), 9), fontsize=9)
    return fig


# -- checks --------------------------------------------------------------------------------------
def figure_problems(fig: Figure, *, tolerance_px: float = 1.0) -> list[str]:
    """What a reader would find wrong with ``fig``'s layout; empty when nothing.

    Lays the figure out (as saving does) and reports

    * every title, axis label, tick label, legend or other artist reaching outside the figure
      (clipped when written), and
    * every colour-mapped image or scatter without a colour bar, or whose colour bar has no label.

    Returns one sentence per problem.
    """
    problems = []
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure: lay it out as an Agg file would be
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    inside = fig.bbox.padded(tolerance_px)
    for ax in fig.axes:
        for text in [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]:
            if text.get_visible() and text.get_text():
                box = text.get_window_extent(renderer)
                if not (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1):
                    problems.append(f"text {text.get_text()!r} reaches outside the figure")
    for text in fig.texts:
        if text.get_visible() and text.get_text():
            box = text.get_window_extent(renderer)
            if not (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1):
                problems.append(f"figure text {text.get_text()!r} reaches outside the figure")
    whole = fig.get_tightbbox(renderer)  # inches: every artist, tick labels and legends included
    if whole is not None:
        pad = tolerance_px / fig.dpi
        w, h = fig.get_size_inches()
        if whole.x0 < -pad or whole.y0 < -pad or whole.x1 > w + pad or whole.y1 > h + pad:
            problems.append(
                f"the drawing ({whole.x0:.2f}, {whole.y0:.2f})-({whole.x1:.2f}, {whole.y1:.2f}) in "
                f"reaches outside the {w:.2f} x {h:.2f} in figure"
            )
    mapped = [
        m
        for ax in fig.axes
        for m in [*ax.images, *ax.collections]
        if m.get_array() is not None and type(m).__name__ != "Quiver"
    ]  # colour-mapped, not arrows
    bar_axes = {m.colorbar.ax for m in mapped if m.colorbar is not None}
    mapped = [m for m in mapped if m.axes not in bar_axes]  # the colour bars' own colour strips
    scale = lambda m: (m.get_cmap().name, *m.get_clim())  # noqa: E731
    labelled = set()
    for m in mapped:
        if m.colorbar is not None:
            if m.colorbar.ax.get_ylabel() or m.colorbar.ax.get_xlabel():
                labelled.add(scale(m))
            else:
                problems.append(f"the colour bar of {m.axes.get_title()!r} has no label")
    for m in mapped:  # a panel without its own bar must share the colours of a labelled one
        if m.colorbar is None and scale(m) not in labelled:
            problems.append(f"the colours of {m.axes.get_title()!r} have no labelled colour bar")
    return problems


# -- files ---------------------------------------------------------------------------------------
def save(fig: Figure, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (PNG unless the suffix says otherwise), creating parent folders.

    Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


# -- training runs -------------------------------------------------------------------------------
def plot_learning_curves(curves: Mapping[str, Sequence[float | None]], *, title: str | None = None) -> Figure:
    """Training and validation metrics per epoch: one panel per metric, ``train_X`` and ``val_X`` together.

    Args:
        curves: ``{"epoch": [0, 1, ...], "train_mse": [...], "val_mse": [...], ...}``, one value per
            epoch (``None`` where an epoch has none), as :func:`steerable.tasks.curves.read_curves`
            returns them.  Names without a ``train_`` / ``val_`` prefix get a panel of their own.
        title: the figure's title.

    A metric ``X_<base>`` (e.g. ``val_cv_mse``, a baseline) is drawn dashed in the panel of
    ``<base>``.  A panel's y axis is logarithmic when all its values are positive and span more than
    a factor of 5 (losses); otherwise linear (accuracies).  Returns the figure (write it with :func:`save`).
    """
    if "epoch" not in curves:
        raise ValueError("plot_learning_curves: curves need an 'epoch' list")
    epochs = list(curves["epoch"])
    panels: dict[str, list[str]] = {}
    for name in curves:
        if name == "epoch":
            continue
        if len(curves[name]) != len(epochs):
            raise ValueError(f"plot_learning_curves: {name!r} has {len(curves[name])} values for {len(epochs)} epochs")
        base = name.split("_", 1)[1] if name.startswith(("train_", "val_")) else name
        panels.setdefault(base, []).append(name)
    if not panels:
        raise ValueError("plot_learning_curves: no metric to plot")
    for base in list(panels):  # a variant "X_<base>" (e.g. a baseline's cv_mse) joins the panel of <base>
        host = next((other for other in panels if other != base and base.endswith("_" + other)), None)
        if host is not None:
            panels[host] += panels.pop(base)
    for names in panels.values():
        names.sort(key=lambda n: (not n.startswith("train_"), len(n)))  # train, val, then variants
    fig = _figure(4.2 * len(panels), 3.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (base, names) in zip(axes, panels.items()):
        values = []
        for name in names:
            pairs = [(e, v) for e, v in zip(epochs, curves[name]) if v is not None and math.isfinite(v)]
            if pairs:
                xs, ys = zip(*pairs)
                variant = name.split("_", 1)[-1] != base
                label = name.split("_", 1)[0] if not variant else name.replace("_", " ", 1)
                ax.plot(
                    xs,
                    ys,
                    marker="o" if len(xs) < 30 else None,
                    markersize=3,
                    label=label,
                    linestyle="--" if variant else "-",
                )
                values += ys
        if values and min(values) > 0 and max(values) / min(values) > 5:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(base)
        ax.grid(alpha=0.3)
        if values:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
