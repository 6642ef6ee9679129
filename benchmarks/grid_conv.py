"""GridConv benchmark: ours vs escnn ``R2Conv``/``R3Conv`` (same field types) vs plain ``Conv2d``/``Conv3d``.

2D: C_N with regular fields (escnn ``gspaces.rot2dOnR2(N)``).  3D: SO(3) with copies of the irreps
of degree 0 and 1 (escnn ``gspaces.rot3dOnR3()``).  Plain torch conv: same channel counts and
kernel size, the floor.  Modes: ``train`` = forward + backward of ``y.sum()`` (the filter is
re-sampled from the MLP every call; the input needs no gradient, as for a network's first layer),
``train-dx`` (with ``--dx``) = the same with the input's gradient too (any later layer: the
convolution's backward does twice the work, the filter's is unchanged), ``eval`` = forward under
``no_grad`` in eval mode (our filter is cached; the script verifies that the kernel MLP is not
called again in eval mode).

    .venv/bin/python benchmarks/grid_conv.py           # default sizes, ~1 min
    .venv/bin/python benchmarks/grid_conv.py --large   # bigger images / channels
    .venv/bin/python benchmarks/grid_conv.py --clock cpu  # CPU time of this thread, not wall time
    .venv/bin/python benchmarks/grid_conv.py --cases 3D --repeats 25  # the 3D case, more rounds

``--clock cpu`` times with ``time.thread_time`` (the CPU time of the calling thread) instead of
``time.perf_counter``: on a machine shared with other jobs, wall time also counts the time the
thread waited for a core, which moves single ratios by +-30 % between runs; CPU time does not (it
still sees the other jobs through shared caches).  With ``OMP_NUM_THREADS=1`` every op runs on the
calling thread, so its CPU time is the work done.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types
import warnings
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common
import torch
from _common import eval_step, machine_line, measure, print_table, train_step


def build_2d(n_rot: int, fields: int, ks: int) -> dict[str, tuple[torch.nn.Module, Callable]]:
    """(module, run) for ours, escnn and torch on C_N regular fields in 2D."""
    from escnn import gspaces
    from escnn import nn as enn

    import steerable as st

    G = st.group(f"C{n_rot}", backend="escnn")
    f = st.FieldType(G, [G.regular_rep()] * fields)
    ours = st.GridConv(f, f, kernel_size=ks, padding=ks // 2)
    gs = gspaces.rot2dOnR2(n_rot)
    ef = enn.FieldType(gs, [gs.regular_repr] * fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        esc = enn.R2Conv(ef, ef, kernel_size=ks, padding=ks // 2)
    plain = torch.nn.Conv2d(f.size, f.size, ks, padding=ks // 2)
    return {
        "ours": (ours, ours),
        "escnn": (esc, lambda x: esc(enn.GeometricTensor(x, ef)).tensor),
        "torch": (plain, plain),
    }


def build_3d(copies: int, ks: int) -> dict[str, tuple[torch.nn.Module, Callable]]:
    """(module, run) for ours, escnn and torch on SO(3) fields ``copies x (l=0 + l=1)`` in 3D."""
    from escnn import gspaces
    from escnn import nn as enn

    import steerable as st

    G = st.group("SO(3)", backend="escnn")
    f = st.FieldType(G, [G.irrep(0)] * copies + [G.irrep(1)] * copies)
    ours = st.GridConv(f, f, kernel_size=ks, padding=ks // 2)
    gs = gspaces.rot3dOnR3()
    ef = enn.FieldType(gs, [gs.irrep(0)] * copies + [gs.irrep(1)] * copies)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        esc = enn.R3Conv(ef, ef, kernel_size=ks, padding=ks // 2)
    plain = torch.nn.Conv3d(f.size, f.size, ks, padding=ks // 2)
    return {
        "ours": (ours, ours),
        "escnn": (esc, lambda x: esc(enn.GeometricTensor(x, ef)).tensor),
        "torch": (plain, plain),
    }


def count_mlp_calls_in_eval(conv: torch.nn.Module, x: torch.Tensor, calls: int = 3) -> int:
    """How many times the kernel MLP runs over ``calls`` eval-mode forwards after the first one."""
    conv.eval()
    with torch.no_grad():
        conv(x)
        counter = {"n": 0}
        handle = conv.kernel.mlp.register_forward_hook(lambda *a: counter.__setitem__("n", counter["n"] + 1))
        for _ in range(calls):
            conv(x)
        handle.remove()
    return counter["n"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--dx", action="store_true", help="also time training with the input's gradient")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="time.perf_counter or time.thread_time")
    ap.add_argument("--cases", default="", help="only the cases whose name contains this text (e.g. '3D')")
    args = ap.parse_args()
    if args.clock == "cpu":
        if torch.get_num_threads() != 1:
            raise SystemExit("--clock cpu counts the calling thread only: run with OMP_NUM_THREADS=1")
        _common.time = types.SimpleNamespace(perf_counter=time.thread_time)  # the clock of time_interleaved
    if args.large:
        cases = [
            ("2D C8", lambda: build_2d(8, 8, 5), (16, 64, 128, 128)),
            ("2D C8", lambda: build_2d(8, 16, 7), (8, 128, 64, 64)),
            ("3D SO(3)", lambda: build_3d(8, 5), (4, 32, 32, 32, 32)),
        ]
    else:
        cases = [
            ("2D C8 k5", lambda: build_2d(8, 4, 5), (8, 32, 64, 64)),
            ("2D C4 k3", lambda: build_2d(4, 8, 3), (8, 32, 64, 64)),
            ("3D SO(3) k5", lambda: build_3d(4, 5), (2, 16, 16, 16, 16)),
        ]
    cases = [case for case in cases if args.cases in case[0]]
    if not cases:
        raise SystemExit(f"--cases {args.cases!r}: no case name contains it")
    print(machine_line())
    print(
        f"time = median over interleaved rounds (ms, {args.clock} clock); mem = peak extra RSS of one call (MiB); "
        "ratio = time / plain torch conv time"
    )
    timed, labels = [], []
    for name, build, shape in cases:
        mods = build()
        x = torch.randn(*shape)
        calls = count_mlp_calls_in_eval(mods["ours"][0], x)
        print(f"{name}: kernel MLP calls in 3 eval forwards after the first = {calls} (cached filter)")
        inputs = {"train": x, "train-dx": x.clone().requires_grad_(), "eval": x}
        for mode in ("train", "train-dx", "eval") if args.dx else ("train", "eval"):
            step, xm = (eval_step if mode == "eval" else train_step), inputs[mode]
            fns = {m: (lambda run=run, mod=mod, step=step, x=xm: step(run, mod, x)) for m, (mod, run) in mods.items()}
            timed.append((fns, {"repeats": args.repeats}))
            labels.append((f"{name} x={tuple(shape)}", mode))
    rows = []
    for (label, mode), (times, mems) in zip(labels, measure(timed, memory=not args.no_memory)):
        for m in times:
            rows.append([label, mode, m, times[m] * 1e3, mems[m], times[m] / times["torch"]])
    print_table(["case", "mode", "method", "time ms", "mem MiB", "ratio vs torch"], rows)


if __name__ == "__main__":
    main()
