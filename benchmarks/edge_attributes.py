"""PointConv with edge attributes: the cost of an invariant and of a vector attribute, per backend.

    OMP_NUM_THREADS=1 python benchmarks/edge_attributes.py [--configs 256x8x8x1 ...] [--clock cpu]

Field types and graphs as in ``point_conv.py`` (``C`` copies of every SO(3) irrep up to ``L``, ``N``
random points, ``k`` random sources each).  Per configuration the layer runs with no attribute, a
scalar one (degree 0: one random number per edge) and a vector one (degree 1: one random vector
per edge, e.g. a relative velocity).  Methods, built with the same seed:

* ``ours-escnn``: the default backend;
* ``ours-e3nn``: the e3nn backend as shipped.  With a vector attribute its kernel MLP has no scalar
  form and runs e3nn's modules through faster forms of the same maps (the first tensor product
  through its path values, ``edge_weighted.py``; the shared-weight ones as one matrix product where
  that pays, ``bilinear.py``, else per output irrep, ``shared_weight.py``);
* ``ours-e3nn-modules``: the same MLP with those forms off (``mlp.use_forms = False``): e3nn's code
  alone, the reference the forms are tested against.

Reported per row: median time over interleaved rounds, peak extra RSS of one call
(``_common.py``), the time over ``ours-e3nn-modules``'s and over ``ours-escnn``'s in the same row
group.  Without a vector attribute the forms are not used (the scalar form runs), so the first two
e3nn columns should agree there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common
import torch
from _common import eval_step, machine_line, measure, print_table, train_step
from point_conv import build_ours, make_graph, parse

DEFAULT = ["256x8x8x1", "256x8x8x2"]
ATTRIBUTES = {"none": None, "scalar": 0, "vector": 1}  # the attribute's degree


def build(backend: str, c: int, lmax: int, attribute: int | None, forms: bool = True) -> torch.nn.Module:
    """Our PointConv with one edge attribute of degree ``attribute`` (or none); ``forms``: the e3nn
    MLP's faster forms on (as shipped) or off."""
    from steerable.plugins.e3nn_backend.mlp import E3nnKernelMLP

    torch.manual_seed(0)
    conv, _ = build_ours(backend, c, lmax, edge_attr=attribute)
    mlps = [m for m in conv.modules() if isinstance(m, E3nnKernelMLP)]
    if backend == "e3nn" and not mlps:
        raise SystemExit("edge_attributes.py: no E3nnKernelMLP found in the e3nn backend's PointConv")
    for mlp in mlps:
        mlp.use_forms = forms
    return conv


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="*", default=DEFAULT, help="NxKxCxL as in point_conv.py")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="time.perf_counter or time.thread_time")
    args = ap.parse_args()
    if args.clock == "cpu":
        if torch.get_num_threads() != 1:
            raise SystemExit("--clock cpu counts the calling thread only: run with OMP_NUM_THREADS=1")
        _common.time = types.SimpleNamespace(perf_counter=time.thread_time)
    print(machine_line())
    print(f"time = median over interleaved rounds (ms, {args.clock} clock); mem = peak extra RSS of one call (MiB)")
    methods = {
        "ours-escnn": lambda c, l, a: build("escnn", c, l, a),
        "ours-e3nn": lambda c, l, a: build("e3nn", c, l, a),
        "ours-e3nn-modules": lambda c, l, a: build("e3nn", c, l, a, forms=False),
    }
    cases, labels = [], []
    for cfg in args.configs:
        n, k, c, lmax = parse(cfg)
        pos, ei = make_graph(n, k)
        x = torch.randn(n, c * (lmax + 1) ** 2, generator=torch.Generator().manual_seed(1))
        for name, attribute in ATTRIBUTES.items():
            gen = torch.Generator().manual_seed(2)
            attr = None if attribute is None else torch.randn(n * k, 2 * attribute + 1, generator=gen)
            mods = {m: make(c, lmax, attribute) for m, make in methods.items()}
            for mode, step in (("fwd", eval_step), ("fwd+bwd", train_step)):
                fns = {
                    m: (
                        lambda mod=mod, step=step, attr=attr, x=x, pos=pos, ei=ei: step(
                            lambda x, p, e: mod(x, p, e, attr), mod, x, pos, ei
                        )
                    )
                    for m, mod in mods.items()
                }
                cases.append((fns, {"repeats": args.repeats}))
                labels.append((f"N={n} k={k} C={c} L={lmax} (d={c * (lmax + 1) ** 2})", name, mode))
    rows = []
    for (label, name, mode), (times, mems) in zip(labels, measure(cases, memory=not args.no_memory), strict=True):
        for m, t in times.items():
            rows.append(
                [label, name, mode, m, t * 1e3, mems[m], t / times["ours-e3nn-modules"], t / times["ours-escnn"]]
            )
    print_table(["config", "attribute", "mode", "method", "time ms", "mem MiB", "/ modules", "/ escnn"], rows)


if __name__ == "__main__":
    main()
