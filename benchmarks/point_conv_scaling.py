"""PointConv scaling: time and peak memory as the number of edges grows by 10x steps.

Our PointConv keeps, per edge, the kernel MLP's activations, the basis kernels and the responses
(default shared-basis layout; with ``--basis-size 0``, dense ``d_out x d_in`` kernels).  Edges are
processed in chunks of ``chunk_size`` (automatic: about 16M kept values, measured for the layer at
construction) and checkpointed per chunk in training, so peak memory should stay bounded by the
chunk, not grow with the edge count.  For contrast the same layer is run with ``chunk_size = E``
(one chunk: everything kept), skipped where its predicted footprint (2x the measured values per edge,
fp32) exceeds ``--unchunked-cap-gib`` (default 1 GiB; the whole script stays far below 4 GiB).

    .venv/bin/python benchmarks/point_conv_scaling.py                      # E = 1e3 .. 1e5, ~1 min
    .venv/bin/python benchmarks/point_conv_scaling.py --max-edges 1000000  # add 1e6 (minutes)
    .venv/bin/python benchmarks/point_conv_scaling.py --min-edges 10000000 --max-edges 10000000  # 1e7 only
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from _common import machine_line, measure, print_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="escnn")
    ap.add_argument("--channels", type=int, default=8, help="copies of each irrep")
    ap.add_argument("--lmax", type=int, default=1)
    ap.add_argument("--max-edges", type=int, default=100_000)
    ap.add_argument("--min-edges", type=int, default=1000, help="first edge count (then x10 up to --max-edges)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--unchunked-cap-gib", type=float, default=1.0)
    ap.add_argument("--basis-size", type=int, default=8, help="0: dense kernels")
    args = ap.parse_args()

    import steerable as st
    from steerable.nn.point_conv import saved_values_per_edge

    G = st.group("SO(3)", backend=args.backend)
    f = st.FieldType(G, [G.irrep(l) for l in range(args.lmax + 1) for _ in range(args.channels)])
    conv = st.PointConv(f, f, max_radius=2.0, basis_size=args.basis_size or None)  # pos ~ N(0, 1/4)
    d = f.size
    per_edge = saved_values_per_edge(conv.kernel, fused=True)  # what sets the automatic chunk
    print(machine_line())
    layout = f"basis_size={args.basis_size}" if args.basis_size else "dense kernels"
    print(
        f"SO(3) ({args.backend}), d_in = d_out = {d}, {layout}, {per_edge:.0f} values kept per edge, "
        f"automatic chunk_size = {conv.chunk_size} edges; N = E / 16 nodes, 16 neighbours each"
    )
    print(
        "time = median over interleaved rounds; mem = peak extra RSS of one call (MiB); "
        "E*d*d*4 = size of all per-edge kernels in fp32"
    )
    rows, cases, labels = [], [], []
    e = args.min_edges
    while e <= args.max_edges:
        n = max(e // 16, 16)
        g = torch.Generator().manual_seed(0)
        pos = torch.randn(n, 3, generator=g) * 0.5
        ei = torch.stack([torch.randint(0, n, (e,), generator=g), torch.randint(0, n, (e,), generator=g)])
        x = torch.randn(n, d, generator=g)
        full_mib = e * d * d * 4 / 2**20
        variants = {"chunked (auto)": conv.chunk_size}
        if 2 * e * per_edge * 4 / 2**30 <= args.unchunked_cap_gib:
            variants["one chunk (E)"] = max(e, 1)
        for mode in ("fwd", "fwd+bwd"):
            fns: dict[str, Callable[[], object]] = {}
            for name, chunk in variants.items():
                fns[name] = lambda chunk=chunk, mode=mode, x=x, pos=pos, ei=ei: _run(conv, chunk, mode, x, pos, ei)
            reps = args.repeats if e < 1_000_000 else 1
            cases.append((fns, {"repeats": reps, "warmup": 1 if e < 1_000_000 else 0, "min_time": 0.0}))
            labels.append((e, mode, full_mib))
        e *= 10
    for (e, mode, full_mib), (times, mems) in zip(labels, measure(cases)):
        for name in times:
            rows.append([e, mode, name, times[name], mems[name], full_mib])
    print_table(["edges", "mode", "variant", "time s", "mem MiB", "E*d*d*4 MiB"], rows)


def _run(conv: torch.nn.Module, chunk: int, mode: str, x: torch.Tensor, pos: torch.Tensor, ei: torch.Tensor) -> None:
    saved = conv.chunk_size
    conv.chunk_size = chunk
    try:
        if mode == "fwd":
            conv.eval()
            with torch.no_grad():
                conv(x, pos, ei)
        else:
            conv.train()
            conv.zero_grad(set_to_none=True)
            conv(x, pos, ei).sum().backward()
    finally:
        conv.chunk_size = saved


if __name__ == "__main__":
    main()
