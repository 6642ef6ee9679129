"""A steerable point convolution on a 2D point cloud, checked under rotations, reflections and shifts.

``PointConv`` evaluates its implicit kernel at every edge's relative position ``pos[j] - pos[i]``, so
unlike a grid it is equivariant to *every* element of a continuous group: moving the cloud by
``pos -> g pos + t`` and turning the input features by ``rho_in(g)`` turns the output by
``rho_out(g)``.  The script convolves a spiral-shaped cloud carrying a scalar and a vector field,
prints the relative error ``|conv(g.x, g.pos + t) - g.conv(x, pos)| / |g.conv(x, pos)|`` over
sampled elements of O(2), and draws the output vector field before and after a rotation.

    .venv/bin/python examples/03_point_conv.py [--out DIR] [--quick] [--group SO(2)]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import steerable as st
from steerable import viz

BOUND = 1e-5  # float32 round-off with room to spare


def spiral_cloud(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Points along a noisy spiral arm.

    Returns ``pos`` ``(n, 2)``, ``x`` ``(n, 3)`` (channel 0: a scalar, the distance along the arm;
    channels 1, 2: the unit tangent ``(t_x, t_y)`` of the arm) and a radius-graph ``edge_index``
    ``(2, E)`` (PyG convention: row 0 source ``j``, row 1 target ``i``).
    """
    gen = torch.Generator().manual_seed(seed)
    s = torch.linspace(0.15, 1.0, n)
    angle = 4.0 * s
    pos = torch.stack([s * torch.cos(angle), s * torch.sin(angle)], -1) + 0.03 * torch.randn(n, 2, generator=gen)
    pos = pos - pos.mean(0)
    tangent = torch.stack(
        [torch.cos(angle) - 4 * s * torch.sin(angle), torch.sin(angle) + 4 * s * torch.cos(angle)], -1
    )
    tangent = tangent / tangent.norm(dim=-1, keepdim=True)
    x = torch.cat([(s - s.mean())[:, None], tangent], -1)
    dist = torch.cdist(pos, pos)
    src, dst = torch.nonzero((dist < 0.35) & (dist > 0), as_tuple=True)
    return pos, x, torch.stack([src, dst])


def rotation(angle_deg: float) -> torch.Tensor:
    """``(1, 2, 2)`` float64 rotation matrix by ``angle_deg`` counter-clockwise."""
    a = math.radians(angle_deg)
    return torch.tensor([[[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]], dtype=torch.float64)


def moved_output(conv: st.PointConv, x, pos, edge_index, g: st.GroupElements, shift: torch.Tensor):
    """``(conv(g.x, g.pos + t), g.conv(x, pos), g.pos + t)`` for one element ``g``."""
    mat = g.matrices[0].to(pos.dtype)
    pos_g = pos @ mat.T + shift
    with torch.no_grad():
        a = conv(conv.in_type.transform(x, g), pos_g, edge_index)
        b = conv.out_type.transform(conv(x, pos, edge_index), g)
    return a, b, pos_g


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "output", help="folder for the PNGs")
    parser.add_argument("--quick", action="store_true", help="tiny setting (a few seconds), for tests")
    parser.add_argument("--group", default="O(2)", help="a group on R^2: O(2), SO(2), C8, D4, ...")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Run the example; returns its verdict (``ok``), worst error, the objects it checked and its figures."""
    torch.manual_seed(0)
    n_points, n_elements = (40, 6) if args.quick else (120, 16)
    start = time.perf_counter()

    G = st.group(args.group, dim=2)
    scalar, vector = G.trivial_rep(), G.standard_rep()
    f_in = st.FieldType(G, [scalar, vector])
    f_out = st.FieldType(G, [scalar, vector, vector])
    conv = st.PointConv(f_in, f_out, max_radius=0.35, envelope_width=0.35).eval()
    pos, x, edge_index = spiral_cloud(n_points)
    print(f"{G}: PointConv {f_in!r} -> {f_out!r}, {n_points} points, {edge_index.shape[1]} edges")

    gen = torch.Generator().manual_seed(1)
    elements = G.sample(n_elements, generator=gen)
    errors = []
    for k in range(len(elements)):
        shift = torch.randn(1, 2, generator=gen)
        a, b, _ = moved_output(conv, x, pos, edge_index, elements[k], shift)
        errors.append(float((a - b).norm() / b.norm()))
    worst = max(errors)
    status = "ok" if worst < BOUND else "FAIL"
    print(
        f"check {G.name} point conv equivariance (rotation/reflection + shift, float32): "
        f"rel. error {worst:.2e} (bound {BOUND:.0e}) {status}"
    )
    print(f"random-input check (steerable.check_equivariance, float64): {st.check_equivariance(conv):.2e}")
    conv = conv.to(torch.float32)
    figures: dict = {}  # file name -> matplotlib Figure, returned for inspection
    figures["03_point_errors.png"] = viz.plot_equivariance_error(
        errors,
        elements,
        bound=BOUND,
        ylabel="relative error |conv(g.x, g.pos + t) - g.conv(x, pos)| / |g.conv(x, pos)|",
        title=f"{G.name} PointConv: equivariance error per sampled element g, each with a random shift t",
    )

    # the picture: the output vector field (first output vector) before and after a 60° turn
    angle = 60.0
    g = G.elements_from_matrices(rotation(angle)) if G.order is None else elements[1]
    label = viz.element_labels(g)[0]
    shift = torch.tensor([[0.25, -0.15]])
    with torch.no_grad():
        y = conv(x, pos, edge_index)
    a, b, pos_g = moved_output(conv, x, pos, edge_index, g, shift)
    shown = float((a - b).norm() / b.norm())
    panels = [
        ("input x: scalar, unit tangent (arrows scaled)", pos, x[:, 0], x[:, 1:3] * y[:, 1:3].norm(dim=-1).max()),
        ("conv(x, pos): scalar 0, vector 1", pos, y[:, 0], y[:, 1:3]),
        (f"conv(g.x, g.pos + t), g = {label}", pos_g, a[:, 0], a[:, 1:3]),
        ("g.conv(x, pos), drawn at g.pos + t", pos_g, b[:, 0], b[:, 1:3]),
        ("conv(g.x, g.pos + t) - g.conv(x, pos)", pos_g, a[:, 0] - b[:, 0], a[:, 1:3] - b[:, 1:3]),
    ]
    figures["03_point_rotate_vs_conv.png"] = viz.plot_point_fields(
        panels,
        colorbar_label="scalar channel (one scale for all panels)",
        title=f"{G.name} PointConv: the output turns with the input (g = {label}, t = (0.25, -0.15), "
        f"rel. error {shown:.1e})",
    )
    figures["03_point_kernel.png"] = viz.plot_kernel(conv, extent=0.4, resolution=17 if args.quick else 33)
    for name, fig in figures.items():
        viz.save(fig, args.out / name)

    print(f"wrote PNGs to {args.out} in {time.perf_counter() - start:.1f}s")
    return {
        "ok": worst < BOUND,
        "worst": worst,
        "conv": conv,
        "x": x,
        "pos": pos,
        "edge_index": edge_index,
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> int:
    return 0 if run(parse_args(argv))["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
