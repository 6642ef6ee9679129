"""Per-edge cost of the lie backend against the escnn backend on a group both serve (issue 16).

The lie backend solves its kernel constraints numerically and uses an exact polynomial kernel MLP;
escnn solves SO(3)/O(3) analytically.  Both build the same ``PointConv`` (fields ``a x (s + v)`` on
both sides, the same kernel MLP widths and basis size), timed forward and forward+backward on one
random graph, interleaved (:func:`_common.time_interleaved`), per edge.

    .venv/bin/python benchmarks/lie_vs_escnn.py [--groups "SO(3)" "O(3)"] [--edges 20000] [--copies 1 4]
"""

from __future__ import annotations

import argparse

import torch
from _common import machine_line, print_table, time_interleaved

import steerable as st


def _conv(name: str, backend: str, copies: int) -> st.PointConv:
    G = st.group(name, backend=backend)
    f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()] * copies)
    torch.manual_seed(0)
    return st.PointConv(f, f, max_radius=1.0, hidden_channels=16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", nargs="*", default=["SO(3)", "O(3)"])
    ap.add_argument("--edges", type=int, default=20000)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--copies", type=int, nargs="*", default=[1, 4], help="a: fields a x (s + v)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line())
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(args.nodes, 3, generator=gen) * 0.5
    edges = torch.randint(0, args.nodes, (2, args.edges), generator=gen)
    rows = []
    for name in args.groups:
        for copies in args.copies:
            convs = {b: _conv(name, b, copies) for b in ("escnn", "lie")}
            x = torch.randn(args.nodes, convs["escnn"].in_type.size, generator=gen)
            xg = x.clone().requires_grad_()

            def forward(conv, x=x):
                with torch.no_grad():
                    conv(x, pos, edges)

            def train(conv, xg=xg):
                conv(xg, pos, edges).square().sum().backward()

            fns = {}
            for b, conv in convs.items():
                fns[f"{b} fwd"] = lambda conv=conv: forward(conv)
                fns[f"{b} fwd+bwd"] = lambda conv=conv: train(conv)
            t = time_interleaved(fns, repeats=5)
            per = lambda s: s / args.edges * 1e9  # noqa: E731 (ns per edge)
            for kind in ("fwd", "fwd+bwd"):
                rows.append(
                    [
                        name,
                        f"{copies}x(s+v)",
                        kind,
                        per(t[f"escnn {kind}"]),
                        per(t[f"lie {kind}"]),
                        t[f"lie {kind}"] / t[f"escnn {kind}"],
                    ]
                )
    print_table(["group", "fields", "pass", "escnn ns/edge", "lie ns/edge", "lie / escnn"], rows)


if __name__ == "__main__":
    main()
