"""Graph building: the batched, vectorised ``steerable.graph`` against a per-graph Python loop.

``old`` is a reference kept in this script: the previous implementation's method, one ``cdist`` per
graph in a Python loop over the graphs of the batch.  ``new`` is :mod:`steerable.graph` (padded
batched ``cdist``; torch-cluster is used instead when installed: the line ``backend`` says which).
Both outputs are checked to give the same edge set before timing.  Configurations ``BxN``: ``B``
graphs of ``N`` random points in the unit cube (radius 0.5, ``k = 8``).

    .venv/bin/python benchmarks/graph_build.py                  # 128x30 and 1024x18, ~10 s
    .venv/bin/python benchmarks/graph_build.py --configs 64x100 --device cuda
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from _common import machine_line, print_table, time_interleaved

from steerable import graph


def _ranges(batch: torch.Tensor) -> list[tuple[int, int]]:
    ends = torch.cumsum(torch.bincount(batch), 0).tolist()
    return list(zip([0] + ends[:-1], ends))


def old_radius_graph(pos: torch.Tensor, r: float, batch: torch.Tensor) -> torch.Tensor:
    """Per-graph loop (the previous method): edges ``j -> i``, ``|pos_j - pos_i| <= r``, no loops."""
    out = []
    for s, e in _ranges(batch):
        d = torch.cdist(pos[s:e], pos[s:e])
        d.fill_diagonal_(float("inf"))
        ti, sj = (d <= r).nonzero(as_tuple=True)
        out.append(torch.stack([sj + s, ti + s]))
    return torch.cat(out, dim=1)


def old_knn_graph(pos: torch.Tensor, k: int, batch: torch.Tensor) -> torch.Tensor:
    """Per-graph loop (the previous method): each point's ``k`` nearest other points."""
    out = []
    for s, e in _ranges(batch):
        d = torch.cdist(pos[s:e], pos[s:e])
        d.fill_diagonal_(float("inf"))
        idx = torch.topk(d, min(k, e - s - 1), dim=1, largest=False).indices
        tgt = torch.arange(e - s, device=pos.device)[:, None].expand_as(idx)
        out.append(torch.stack([idx.reshape(-1) + s, tgt.reshape(-1) + s]))
    return torch.cat(out, dim=1)


def _edge_set(ei: torch.Tensor) -> set[tuple[int, int]]:
    return set(map(tuple, ei.t().tolist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="128x30,1024x18", help="comma-separated BxN (graphs x points)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(machine_line())
    print(f"backend: {'torch-cluster' if graph._cluster() is not None else 'pure torch (padded batched cdist)'}")
    rows = []
    for config in args.configs.split(","):
        b, n = (int(v) for v in config.split("x"))
        gen = torch.Generator().manual_seed(0)
        pos = torch.rand(b * n, 3, generator=gen).to(device)
        batch = torch.arange(b).repeat_interleave(n).to(device)
        cases = {
            "radius_graph": (old_radius_graph, graph.radius_graph, 0.5),
            "knn_graph": (old_knn_graph, graph.knn_graph, 8),
        }
        for name, (old_fn, new_fn, param) in cases.items():
            old, new = (functools.partial(f, pos, param, batch) for f in (old_fn, new_fn))
            if _edge_set(old()) != _edge_set(new()):
                raise SystemExit(f"{name} {config}: old and new edge sets differ")

            def timed(fn):
                return lambda: (fn(), sync())

            t = time_interleaved({"old": timed(old), "new": timed(new)}, repeats=args.repeats)
            rows.append([name, config, t["old"] * 1e3, t["new"] * 1e3, t["old"] / t["new"]])
    print_table(["function", "graphs x points", "old loop (ms)", "new (ms)", "speed-up"], rows)


if __name__ == "__main__":
    main()
