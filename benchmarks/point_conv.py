"""PointConv benchmark: ours (escnn and e3nn backends) vs escnn ``R3PointConv`` vs an e3nn convolution.

Field types: ``C`` copies of every SO(3) irrep of degree ``0..L`` (size ``C (L+1)^2``), same for
input and output.  Graph: ``N`` random points, ``k`` random in-neighbours per node (``E = N k``).
Baselines, built with the same field types:

* ``escnn``: ``escnn.nn.R3PointConv`` on ``gspaces.rot3dOnR3()`` (analytic basis, default rings).
* ``e3nn``: spherical harmonics of the edge up to ``2L`` (so that every ``l_out x l_in`` block is
  reachable, like our kernels), ``o3.FullyConnectedTensorProduct(irreps, sh, irreps,
  shared_weights=False)`` with per-edge weights from a radial MLP ``[8, 16, weight_numel]`` on a
  Gaussian basis of the edge length, messages summed with ``index_add_``: the pattern of e3nn's
  documentation examples.

Reported per configuration and mode (``fwd`` = forward under ``no_grad`` in eval mode, ``fwd+bwd``
= training-mode forward + backward of ``y.sum()``): median time over interleaved rounds, peak extra
RSS of one call (see ``benchmarks/_common.py``), and the ratio to the fastest baseline.

**The limit** (columns ``GFLOP/s`` and ``% mm``): every row also shows the floating-point work of
the contraction no implementation of this layer can avoid, divided by its time, and that rate as a
fraction of the machine's matrix-multiply throughput measured in the same run.  With ``n_l = C``
fields of degree ``l`` (size ``|l| = 2l + 1``) on both sides, ``M`` basis kernels per pair of
degrees (``basis_size``, 8 by default), ``E = N k`` edges and ``N`` targets, one forward is

* the basis kernels applied to the source features, ``2 E M sum_{o,i} |o| |i| n_i``
  (per edge, per pair of degrees: an ``(M |o|) x |i|`` matrix times an ``|i| x n_i`` one), plus
* the mixing of the summed responses to the output fields, ``2 N M sum_{o,i} |o| n_i n_o``
  (per target, per pair: ``|o| x (M n_i)`` times ``(M n_i) x n_o``);

``fwd+bwd`` (``x`` needs no gradient) adds the gradient of the per-edge kernels (once more the
first term) and those of the mixing weights and of the summed responses (twice the second):
``2 x first + 3 x second``.  With ``basis_size=None`` (dense kernels) the work is ``2 E d_out d_in``
forward, twice that for ``fwd+bwd``.  The kernel MLP is not counted (its size is a modelling
choice).  The same work is used for every method of a configuration (the baselines compute more,
e.g. escnn's full ``d_out x d_in`` kernel per edge), so the columns compare like with like.  The
matmul throughput (``mm GFLOP/s`` in the second table) is the median of interleaved rounds of
``torch.mm`` of an ``(E, d) x (d, d)`` product (the layer's width on every edge, a well-shaped
GEMM of the graph's size) on the same device and thread count.

    .venv/bin/python benchmarks/point_conv.py                 # default sizes, ~1-2 min
    .venv/bin/python benchmarks/point_conv.py --large         # bigger graphs / channels
    .venv/bin/python benchmarks/point_conv.py --configs 500x16x16x1 --repeats 7
    python benchmarks/point_conv.py --device cuda --methods ours-e3nn,e3nn   # on a GPU (mem: CUDA peak)
    .venv/bin/python benchmarks/point_conv.py --clock cpu     # CPU time of this thread, not wall time
    python benchmarks/point_conv.py --device cuda --compile reduce-overhead --compile-methods ours-escnn,e3nn

**Compiled variants** (``--compile MODE``): each method in ``--compile-methods`` (default: all
selected) is also measured through ``torch.compile(run, mode=MODE, fullgraph=True)`` as the row
``METHOD+MODE`` (e.g. ``ours-escnn+reduce-overhead``: CUDA graphs on a GPU, removing the launch
overhead; Inductor alone on the CPU), interleaved with the eager rows.  Each variant is compiled in
both modes (eval without gradients, training with backward) before timing; the compile seconds are
printed.  A method that fails with ``fullgraph=True`` is compiled again with graph breaks allowed
(row ``METHOD+MODE(split)``); one that fails again is left out; either way the reason is printed.
Compiled rows count as baselines when their method is one.  On the CPU the memory child (see
``_common.py``) compiles again: use ``--no-memory`` there to save the time.

``--clock cpu`` (CPU only, with ``OMP_NUM_THREADS=1``) times with ``time.thread_time``, as
``grid_conv.py --clock cpu``: on a machine shared with other jobs wall time also counts the time
the thread waited for a core; CPU time does not (it still sees the other jobs through caches).
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
from _common import eval_step, machine_line, measure, print_table, time_interleaved, train_step

DEFAULT = ["256x8x8x1", "256x8x16x1", "256x8x8x2", "256x16x16x1"]
LARGE = ["1000x16x16x1", "1000x16x32x1", "1000x16x16x2", "2000x32x16x1", "1000x16x32x2"]


def make_graph(n: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random points in a unit-ish ball and ``k`` random sources per target (no self loops needed)."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g) * 0.5
    src = torch.randint(0, n, (n * k,), generator=g)
    dst = torch.arange(n).repeat_interleave(k)
    return pos, torch.stack([src, dst])


def build_ours(
    backend: str, c: int, lmax: int, edge_attr: int | None = None, **kernel
) -> tuple[torch.nn.Module, Callable]:
    """Our PointConv with C copies of each irrep up to lmax, on the given backend, and ``(conv, run)``
    with ``run(x, pos, edge_index)``; ``edge_attr``: the degree of one edge attribute (then call
    ``conv`` with it), or ``None``."""
    import steerable as st

    G = st.group("SO(3)", backend=backend)
    f = st.FieldType(G, [G.irrep(l) for l in range(lmax + 1) for _ in range(c)])
    if edge_attr is not None:
        kernel = {"edge_attr": st.FieldType(G, [G.irrep(edge_attr)]), **kernel}
    conv = st.PointConv(f, f, **{"max_radius": 2.0, **kernel})  # the graph's scale (make_graph), as e3nn's
    return conv, lambda x, pos, ei: conv(x, pos, ei)


def parse_kernel_options(text: str) -> dict:
    """``"basis_size=4,hidden_layers=1"`` -> keyword arguments of PointConv (``none`` -> None)."""
    out: dict = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=")
        out[key] = None if value.lower() == "none" else int(value)
    return out


def build_escnn(c: int, lmax: int) -> Callable:
    """escnn's R3PointConv with the same field types (its own irrep basis)."""
    from escnn import gspaces
    from escnn import nn as enn

    gs = gspaces.rot3dOnR3()
    f = enn.FieldType(gs, [gs.irrep(l) for l in range(lmax + 1) for _ in range(c)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        conv = enn.R3PointConv(f, f, width=1.0, n_rings=3)

    def run(x: torch.Tensor, pos: torch.Tensor, ei: torch.Tensor) -> torch.Tensor:
        return conv(enn.GeometricTensor(x, f, coords=pos), ei).tensor

    return conv, run


class E3nnConv(torch.nn.Module):
    """Point convolution in the style of e3nn's examples: SH(edge) ⊗ x with radial-MLP weights."""

    def __init__(self, c: int, lmax: int, n_basis: int = 8, max_radius: float = 2.0) -> None:
        super().__init__()
        from e3nn import o3
        from e3nn.nn import FullyConnectedNet

        self.irreps = o3.Irreps("+".join(f"{c}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1)))
        self.irreps_sh = o3.Irreps.spherical_harmonics(2 * lmax)
        self.tp = o3.FullyConnectedTensorProduct(self.irreps, self.irreps_sh, self.irreps, shared_weights=False)
        self.fc = FullyConnectedNet([n_basis, 16, self.tp.weight_numel], torch.relu)
        self.n_basis, self.max_radius = n_basis, max_radius
        # the harmonics' degrees as plain ints for forward: Dynamo cannot guard on e3nn's Irreps (torch.compile)
        self.sh_degrees = [ir.l for _, ir in self.irreps_sh]

    def forward(self, x: torch.Tensor, pos: torch.Tensor, ei: torch.Tensor) -> torch.Tensor:
        from e3nn import o3
        from e3nn.math import soft_one_hot_linspace

        src, dst = ei
        vec = pos[src] - pos[dst]
        sh = o3.spherical_harmonics(self.sh_degrees, vec, normalize=True, normalization="component")
        emb = (
            soft_one_hot_linspace(
                vec.norm(dim=1), 0.0, self.max_radius, self.n_basis, basis="smooth_finite", cutoff=True
            )
            * self.n_basis**0.5
        )
        msg = self.tp(x[src], sh, self.fc(emb))
        return x.new_zeros(x.shape[0], msg.shape[1]).index_add_(0, dst, msg)


def build_e3nn(c: int, lmax: int) -> Callable:
    """The e3nn baseline as (module, callable)."""
    conv = E3nnConv(c, lmax)
    return conv, lambda x, pos, ei: conv(x, pos, ei)


def degree_counts(c: int, lmax: int) -> list[tuple[int, int]]:
    """``(representation size, field count)`` of each degree of the benchmark's field type."""
    return [(2 * l + 1, c) for l in range(lmax + 1)]


def contraction_flops(n: int, k: int, c: int, lmax: int, basis_size: int | None, mode: str) -> float:
    """Floating-point work of the unavoidable contraction (module docstring, "The limit")."""
    edges, degrees = n * k, degree_counts(c, lmax)
    if basis_size is None:
        d = sum(size * count for size, count in degrees)
        fwd = 2.0 * edges * d * d
        return fwd if mode == "fwd" else 2 * fwd
    M = basis_size
    messages = sum(2.0 * edges * M * so * si * ni for so, _ in degrees for si, ni in degrees)
    mixing = sum(2.0 * n * M * so * ni * no for so, no in degrees for _, ni in degrees)
    return messages + mixing if mode == "fwd" else 2 * messages + 3 * mixing


def matmul_gflops(edges: int, d: int, device: torch.device, repeats: int) -> float:
    """GFLOP/s of ``torch.mm`` of ``(edges, d) x (d, d)`` on ``device`` (median of interleaved rounds)."""
    a = torch.randn(edges, d, device=device)
    b = torch.randn(d, d, device=device)
    t = time_interleaved({"mm": lambda: _synchronised(torch.mm(a, b))}, repeats=repeats)["mm"]
    return 2.0 * edges * d * d / t / 1e9


def compile_variant(
    run: Callable,
    mod: torch.nn.Module,
    args: tuple,
    mode: str,
    backend: str | Callable = "inductor",
    log: Callable = print,
) -> tuple[str, Callable] | None:
    """``(suffix, compiled run)`` of ``torch.compile(run, mode=mode, fullgraph=True)``, or ``None``.

    The compiled callable is run once in each timed mode (``eval_step`` and ``train_step`` on ``args`` =
    ``(x, pos, edge_index)``), so that compilation happens here and not in the timings.  If that
    fails, it is compiled again with graph breaks allowed (suffix ``"+MODE(split)"``), and if that
    fails too ``None`` is returned; each failure's reason and the compile seconds go to ``log``.
    ``backend`` is :func:`torch.compile`'s (``"inductor"``; the tests use a cheaper one).
    """
    options = {"mode": mode} if backend == "inductor" else {}
    for fullgraph in (True, False):
        compiled = torch.compile(run, fullgraph=fullgraph, backend=backend, **options)

        def fn(*a, compiled=compiled):
            # a new step for CUDA graphs (reduce-overhead): the previous call's outputs may be overwritten
            torch.compiler.cudagraph_mark_step_begin()
            return compiled(*a)

        t0 = time.perf_counter()
        try:
            for step in (eval_step, train_step):
                _synchronised(step(fn, mod, *args))
        except Exception as exc:  # any compiler failure: report it, try the next way
            log(f"  torch.compile(mode={mode!r}, fullgraph={fullgraph}) failed: {_reason(exc)}")
            continue
        suffix = f"+{mode}" + ("" if fullgraph else "(split)")
        log(f"  compiled{suffix}: {time.perf_counter() - t0:.1f} s (both modes)")
        return suffix, fn
    return None


def parse(cfg: str) -> tuple[int, int, int, int]:
    """``NxKxCxL`` -> (nodes, neighbours, channels per degree, max degree)."""
    n, k, c, l = (int(v) for v in cfg.split("x"))
    return n, k, c, l


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="*", help="NxKxCxL (nodes x neighbours x copies per degree x max degree)")
    ap.add_argument("--large", action="store_true", help="bigger configurations (several minutes)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument(
        "--methods",
        default="ours-escnn,ours-e3nn,escnn,e3nn",
        help="any of ours-escnn, ours-escnn-dense (basis_size=None), ours-e3nn, escnn, e3nn",
    )
    ap.add_argument("--kernel", default="", help='PointConv options of "ours", e.g. "basis_size=4,hidden_layers=1"')
    ap.add_argument("--device", default="cpu", help='"cpu" (default) or "cuda": then mem = peak CUDA allocation')
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="time.perf_counter or time.thread_time")
    ap.add_argument(
        "--compile",
        metavar="MODE",
        help='also time each method through torch.compile(mode=MODE, fullgraph=True), e.g. "reduce-overhead"',
    )
    ap.add_argument("--compile-methods", help="the methods to compile (default: all of --methods)")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.clock == "cpu":
        if torch.get_num_threads() != 1 or device.type != "cpu":
            raise SystemExit("--clock cpu counts the calling thread only: run on the CPU with OMP_NUM_THREADS=1")
        _common.time = types.SimpleNamespace(perf_counter=time.thread_time)  # the clock of time_interleaved
    configs = args.configs or (LARGE if args.large else DEFAULT)
    methods = args.methods.split(",")
    to_compile = args.compile_methods.split(",") if args.compile_methods else methods
    if args.compile and not set(to_compile) <= set(methods):
        raise SystemExit(f"--compile-methods {sorted(set(to_compile) - set(methods))} are not in --methods")
    kernel = parse_kernel_options(args.kernel)
    builders = {
        "ours-escnn": lambda c, l: build_ours("escnn", c, l, **kernel),
        "ours-escnn-dense": lambda c, l: build_ours("escnn", c, l, **{**kernel, "basis_size": None}),
        "ours-e3nn": lambda c, l: build_ours("e3nn", c, l, **kernel),
        "escnn": build_escnn,
        "e3nn": build_e3nn,
    }
    print(machine_line())
    print(f"ours: PointConv defaults{' + ' + args.kernel if args.kernel else ''}")
    memory = "peak extra CUDA allocation" if device.type == "cuda" else "peak extra RSS"
    print(
        f"device {device}; time = median over interleaved rounds (ms, {args.clock} clock); "
        f"mem = {memory} of one call (MiB); "
        "ratio = time / fastest baseline time"
    )
    cases, labels, work, peaks = [], [], [], []
    basis_size = kernel["basis_size"] if "basis_size" in kernel else _default_basis_size()
    for cfg in configs:
        n, k, c, lmax = parse(cfg)
        pos, ei = (t.to(device) for t in make_graph(n, k))
        mods = {m: builders[m](c, lmax) for m in methods}
        for mod, _ in mods.values():
            mod.to(device)
        size = c * (lmax + 1) ** 2
        x = torch.randn(n, size, device=device)
        if args.compile:
            _raise_recompile_limit()
            print(f"compiling for N={n} k={k} C={c} L={lmax}:", flush=True)
            for m in to_compile:
                mod, run = mods[m]
                got = compile_variant(
                    run, mod, (x, pos, ei), args.compile, log=lambda s, m=m: print(f"{m}: {s.strip()}")
                )
                if got is not None:
                    mods[m + got[0]] = (mod, got[1])
        for mode in ("fwd", "fwd+bwd"):
            step = eval_step if mode == "fwd" else train_step
            fns = {
                m: (lambda run=run, mod=mod, step=step, x=x, pos=pos, ei=ei: _synchronised(step(run, mod, x, pos, ei)))
                for m, (mod, run) in mods.items()
            }
            cases.append((fns, {"repeats": args.repeats}))
            labels.append((f"N={n} k={k} C={c} L={lmax} (d={size})", mode))
            work.append(contraction_flops(n, k, c, lmax, basis_size, mode))
    rows = []
    results = measure(cases, memory=not args.no_memory, device=args.device)
    for cfg in configs:  # after the methods' timings, in the same process and conditions
        n, k, c, lmax = parse(cfg)
        size = c * (lmax + 1) ** 2
        peaks.append((f"N={n} k={k} C={c} L={lmax} (d={size})", f"({n * k}, {size}) x ({size}, {size})"))
        peaks[-1] += (matmul_gflops(n * k, size, device, args.repeats),)
    peak_of = {label: gflops for label, _, gflops in peaks}
    for (label, mode), (times, mems), flops in zip(labels, results, work):
        baselines = [m for m in times if not m.startswith("ours")]
        best = min(times[b] for b in baselines) if baselines else float("nan")
        for m in times:  # the methods, then their compiled variants of this configuration
            rate = flops / times[m] / 1e9
            rows.append([label, mode, m, times[m] * 1e3, mems[m], times[m] / best, rate, 100 * rate / peak_of[label]])
    print_table(["config", "mode", "method", "time ms", "mem MiB", "ratio", "GFLOP/s", "% mm"], rows)
    print()
    print(f"contraction work (MFLOP, basis_size={basis_size}; module docstring) and matmul throughput of this run:")
    mflop = {(label, mode): f / 1e6 for (label, mode), f in zip(labels, work)}
    print_table(
        ["config", "fwd MFLOP", "fwd+bwd MFLOP", "mm shape", "mm GFLOP/s"],
        [[label, mflop[label, "fwd"], mflop[label, "fwd+bwd"], shape, g] for label, shape, g in peaks],
    )


def _reason(exc: BaseException) -> str:
    """``Type: first line`` of an exception and of its causes (a compiler's wrapper names the real error there)."""
    parts = []
    while exc is not None and len(parts) < 3:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        parts.append(f"{type(exc).__name__}: {first}")
        exc = exc.__cause__ or getattr(exc, "inner_exception", None)  # Dynamo keeps a backend's error there
    return " <- ".join(parts)


def _raise_recompile_limit(limit: int = 256) -> None:
    """Let Dynamo keep many compiled versions of one function: the builders' ``run`` lambdas share their code
    object across configurations and methods, two versions (eval and training) each."""
    for name in ("recompile_limit", "cache_size_limit"):  # the name of torch >= 2.6, the older one
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(limit, getattr(torch._dynamo.config, name)))


def _default_basis_size() -> int:
    from steerable.nn.kernel import ImplicitKernel

    return ImplicitKernel.BASIS_SIZE


def _synchronised(result: object) -> object:
    """Wait for queued CUDA work, so that timings include it (no-op on the CPU)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return result


if __name__ == "__main__":
    main()
