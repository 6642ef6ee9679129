"""A steerable grid convolution on an image plus a vector field, and its equivariance error.

The layer maps a field ``trivial + standard`` (a scalar image and a vector field, 3 channels) to
``2 x trivial + standard`` with an implicit O(2) kernel sampled on a 7x7 pixel grid.  A grid is
only symmetric under the lattice symmetries of the group (90° turns and axis flips, found by
:func:`steerable.testing.lattice_elements`): for those, rotate-then-convolve equals
convolve-then-rotate up to float round-off, which this script prints and draws.  (Rotations by
other angles would need interpolating the image, which is not exact on any grid.)

    .venv/bin/python examples/02_grid_conv.py [--out DIR] [--quick] [--group D4]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import steerable as st
from steerable import viz
from steerable.testing import lattice_elements, transform_grid

BOUND = 1e-5  # float32 round-off with room to spare


def synthetic_field(size: int) -> torch.Tensor:
    """``(1, 3, size, size)``: an asymmetric scalar image and its gradient (a vector field).

    Spatial axis 0 is ``x``, axis 1 is ``y``; channel 0 is the scalar, channels 1, 2 hold
    ``(v_x, v_y)``.
    """
    c = torch.linspace(-1, 1, size)
    x, y = torch.meshgrid(c, c, indexing="ij")
    blob = lambda cx, cy, w: torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / w**2)  # noqa: E731
    # an "F"-like shape: no rotation or reflection maps it to itself
    scalar = blob(-0.4, 0.0, 0.25) + blob(-0.4, 0.5, 0.2) + blob(0.1, 0.55, 0.2) + 0.7 * blob(0.0, 0.05, 0.15)
    scalar = scalar + 0.3 * torch.sin(3 * x + 1.0) * torch.cos(2 * y)
    gx, gy = torch.gradient(scalar, spacing=(c, c))
    return torch.stack([scalar, 0.3 * gx, 0.3 * gy])[None]


def errors_per_element(conv: st.GridConv, x: torch.Tensor, elements: st.GroupElements) -> list[float]:
    """``|conv(g.x) - g.conv(x)| / |g.conv(x)|`` for each lattice element ``g``."""
    errors = []
    with torch.no_grad():
        y = conv(x)
        for k in range(len(elements)):
            g = elements[k]
            rotate_then_conv = conv(transform_grid(x, conv.in_type, g))
            conv_then_rotate = transform_grid(y, conv.out_type, g)
            errors.append(float((rotate_then_conv - conv_then_rotate).norm() / conv_then_rotate.norm()))
    return errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "output", help="folder for the PNGs")
    parser.add_argument("--quick", action="store_true", help="tiny setting (a few seconds), for tests")
    parser.add_argument("--group", default="O(2)", help="a group on R^2: O(2), SO(2), D4, C4, C8, ...")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Run the example; returns its verdict (``ok``), worst error, the objects it checked and its figures."""
    torch.manual_seed(0)
    size = 17 if args.quick else 49
    start = time.perf_counter()

    G = st.group(args.group, dim=2)
    scalar, vector = G.trivial_rep(), G.standard_rep()
    f_in = st.FieldType(G, [scalar, vector])
    f_out = st.FieldType(G, [scalar, scalar, vector])
    conv = st.GridConv(f_in, f_out, kernel_size=7, padding=3).eval()  # same-size output
    x = synthetic_field(size)

    elements = lattice_elements(G)  # the group elements that map the pixel grid to itself
    labels = viz.element_labels(elements)
    print(f"{G}: GridConv {f_in!r} -> {f_out!r}, image {tuple(x.shape)}")
    print(f"lattice symmetries used for the check: {', '.join(labels)}")
    errors32 = errors_per_element(conv, x, elements)
    errors64 = errors_per_element(conv.to(torch.float64), x.double(), elements)
    conv = conv.to(torch.float32)
    worst = max(errors32)
    status = "ok" if worst < BOUND else "FAIL"
    print(f"float64 worst rel. error {max(errors64):.2e}")
    print(
        f"check {G.name} grid conv lattice equivariance (float32): rel. error {worst:.2e} (bound {BOUND:.0e}) {status}"
    )

    figures: dict = {}  # file name -> matplotlib Figure, returned for inspection
    figures["02_grid_errors.png"] = viz.plot_equivariance_error(
        {"float32": errors32, "float64": errors64},
        elements,
        bound=BOUND,
        ylabel="relative error |conv(g.x) - g.conv(x)| / |g.conv(x)|",
        title=f"{G.name} GridConv: equivariance error per lattice symmetry g ({size}x{size} image)",
    )

    # the picture: rotate-then-convolve vs convolve-then-rotate for a 90° turn (or a flip)
    k = labels.index("rot 90°") if "rot 90°" in labels else (1 if len(labels) > 1 else 0)
    g = elements[k]
    with torch.no_grad():
        gx = transform_grid(x, f_in, g)
        a = conv(gx)[0]
        b = transform_grid(conv(x), f_out, g)[0]
    panels = [
        ("input x: scalar (colour), vector (arrows)", x[0, 0], x[0, 1:3]),
        (f"g.x, g = {labels[k]}", gx[0, 0], gx[0, 1:3]),
        ("conv(g.x): output scalar 0, vector", a[0], a[2:4]),
        ("g.conv(x)", b[0], b[2:4]),
        ("conv(g.x) - g.conv(x), on the output's scales", a[0] - b[0], a[2:4] - b[2:4]),
    ]
    shown = float((a - b).norm() / b.norm())
    # inputs share one scale, outputs and their difference another: round-off shows as (almost) nothing
    figures["02_grid_rotate_vs_conv.png"] = viz.plot_grid_fields(
        panels,
        stride=2 if args.quick else 3,
        scale_groups=[0, 0, 1, 1, 1],
        colorbar_label="scalar channel",
        title=f"{G.name} GridConv: convolving the turned input = turning the output "
        f"(g = {labels[k]}, rel. error {shown:.1e})",
    )
    figures["02_grid_filter.png"] = viz.plot_kernel(conv, sampled=True, title=f"{G.name} GridConv filter")
    for name, fig in figures.items():
        viz.save(fig, args.out / name)

    print(f"wrote PNGs to {args.out} in {time.perf_counter() - start:.1f}s")
    return {"ok": worst < BOUND, "worst": worst, "conv": conv, "x": x, "figures": figures}


def main(argv: list[str] | None = None) -> int:
    return 0 if run(parse_args(argv))["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
