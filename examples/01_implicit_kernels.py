"""Implicit steerable kernels: build, fit, plot, and check K(g x) = rho_out(g) K(x) rho_in(g)^T.

An implicit kernel is an equivariant MLP of the relative position ``x``; its value ``K(x)`` is a
``(out_type.size, in_type.size)`` matrix.  This script builds two of them,

* O(2) on the plane, fields ``trivial + standard + irrep(1,2)`` -> ``trivial + standard``;
* SO(2) acting on R^3 (rotations about z), fields ``trivial + standard`` -> ``trivial + standard``,

fits each for a few steps to a random, *non*-equivariant target (the MLP can only learn the part
of the target the symmetry allows, so the constraint still holds after learning), prints the
relative error of the constraint over sampled group elements, and draws the kernel matrices over
the plane (for the 3D kernel: slices z = -0.5, 0, 0.5).

    .venv/bin/python examples/01_implicit_kernels.py [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

import steerable as st
from steerable import viz

BOUND = 1e-5  # float32 round-off with room to spare


def constraint_error(kernel: st.ImplicitKernel, elements: st.GroupElements, points: torch.Tensor) -> list[float]:
    """Per element: ``|K(g x) - rho_out(g) K(x) rho_in(g)^T| / |rho_out(g) K(x) rho_in(g)^T|``.

    ``points`` ``(N, n)``; the norms are over all points and matrix entries.  Written out here to
    show the constraint; :func:`steerable.check_equivariance` does the same for any layer.
    """
    dtype = points.dtype
    errors = []
    with torch.no_grad():
        base = kernel(points)  # (N, out, in)
        for k in range(len(elements)):
            g = elements[k]
            mat = g.matrices[0].to(dtype)  # (n, n), acts on column vectors
            rho_out = kernel.out_type.matrices(g)[0].to(dtype)
            rho_in = kernel.in_type.matrices(g)[0].to(dtype)
            moved = kernel(points @ mat.T)  # K(g x) for every point
            expected = rho_out @ base @ rho_in.T
            errors.append(float((moved - expected).norm() / expected.norm()))
    return errors


def fit(kernel: st.ImplicitKernel, steps: int, seed: int = 0) -> float:
    """A few Adam steps towards a smooth random target; returns the final loss.

    The target ``(A + B x_0) exp(-|x|^2)`` (``A``, ``B`` random matrices) is *not* steerable: the
    kernel can only approach its steerable part, and stays exactly steerable while learning.
    """
    gen = torch.Generator().manual_seed(seed)
    points = torch.randn(256, kernel.group.dim, generator=gen) * 0.6
    a, b = torch.randn(2, 1, kernel.out_type.size, kernel.in_type.size, generator=gen)
    bump = torch.exp(-points.pow(2).sum(-1))[:, None, None]
    target = (a + b * points[:, :1, None]) * bump
    opt = torch.optim.Adam(kernel.parameters(), lr=1e-2)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        opt.zero_grad()
        loss = (kernel(points) - target).pow(2).mean()
        loss.backward()
        opt.step()
    return float(loss.detach())


CONSTRAINT = "relative error |K(g.x) - rho_out(g) K(x) rho_in(g)^T| / |rho_out(g) K(x) rho_in(g)^T|"


def report(name: str, kernel: st.ImplicitKernel, n_elements: int, out: Path, tag: str, figures: dict) -> float:
    """Check the constraint on sampled elements, plot the errors (into ``figures``), return the worst one."""
    gen = torch.Generator().manual_seed(1)
    elements = kernel.group.sample(n_elements, generator=gen)
    points = torch.randn(200, kernel.group.dim, generator=gen) * 0.7
    errors = constraint_error(kernel, elements, points)
    worst = max(errors)
    status = "ok" if worst < BOUND else "FAIL"
    errors64 = constraint_error(copy.deepcopy(kernel).double(), elements, points.double())
    print(f"{name}: float64 rel. error {max(errors64):.2e} (the float32 error below is round-off)")
    print(
        f"check {name} steerability K(gx) = rho_out K(x) rho_in^T: rel. error {worst:.2e} (bound {BOUND:.0e}) {status}"
    )
    fig = viz.plot_equivariance_error(
        errors,
        elements,
        bound=BOUND,
        ylabel=CONSTRAINT,
        title=f"{name}: steerability constraint per sampled element g (float32, {len(points)} points x)",
    )
    figures[f"01_{tag}_errors.png"] = fig
    viz.save(fig, out / f"01_{tag}_errors.png")
    return worst


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "output", help="folder for the PNGs")
    parser.add_argument("--quick", action="store_true", help="tiny setting (a few seconds), for tests")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Run the example; returns its verdict (``ok``), worst error, the objects it checked and its figures."""
    torch.manual_seed(0)
    steps, n_elements, resolution = (5, 4, 17) if args.quick else (150, 12, 41)
    start = time.perf_counter()
    worst = 0.0
    figures: dict = {}  # file name -> matplotlib Figure, returned for inspection

    # O(2) on R^2: a scalar, a vector and a frequency-2 field in; a scalar and a vector out.
    G = st.group("O(2)")
    f_in = st.FieldType(G, [G.trivial_rep(), G.standard_rep(), G.irrep(1, 2)])
    f_out = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
    kernel = st.ImplicitKernel(f_in, f_out, max_radius=1.5)  # K(x): (3, 5) per point x in R^2
    loss = fit(kernel, steps)
    print(f"O(2) kernel {f_in!r} -> {f_out!r} [{G.backend}], fit loss after {steps} steps: {loss:.3f}")
    worst = max(worst, report("O(2) kernel", kernel, n_elements, args.out, "o2", figures))
    figures["01_o2_kernel.png"] = viz.plot_kernel(kernel, extent=1.5, resolution=resolution)
    viz.save(figures["01_o2_kernel.png"], args.out / "01_o2_kernel.png")

    # SO(2) about the z axis, acting on R^3: a 3D kernel, drawn as slices z = const.
    H = st.group("SO(2)", dim=3)
    f3 = st.FieldType(H, [H.trivial_rep(), H.standard_rep()])
    kernel3 = st.ImplicitKernel(f3, f3, max_radius=1.5)  # K(x): (4, 4) per point x in R^3
    loss = fit(kernel3, steps)
    print(f"SO(2) on R^3 kernel {f3!r} -> {f3!r} [{H.backend}], fit loss after {steps} steps: {loss:.3f}")
    worst = max(worst, report("SO(2)-on-R^3 kernel", kernel3, n_elements, args.out, "so2_3d", figures))
    for z in (0.0,) if args.quick else (-0.5, 0.0, 0.5):
        name = f"01_so2_3d_kernel_z{z:+.1f}.png"
        figures[name] = viz.plot_kernel(kernel3, extent=1.5, resolution=resolution, slice_at=z)
        viz.save(figures[name], args.out / name)

    print(f"wrote PNGs to {args.out} in {time.perf_counter() - start:.1f}s")
    return {"ok": worst < BOUND, "worst": worst, "kernels": [kernel, kernel3], "figures": figures}


def main(argv: list[str] | None = None) -> int:
    return 0 if run(parse_args(argv))["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
