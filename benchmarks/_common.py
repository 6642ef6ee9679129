"""Shared helpers for the benchmark scripts: interleaved timing, peak-memory measurement, tables.

Peak memory method (CPU): Linux keeps a per-process resident-set high-water mark (``VmHWM`` in
``/proc/self/status``) that can be reset by writing ``5`` to ``/proc/self/clear_refs``.  Before each
measured call we free what we can (``gc.collect()``, glibc ``malloc_trim(0)``), reset the mark, read
the current RSS, run the call once and report ``VmHWM - RSS_before``: the extra resident memory the
call needed at its peak (activations, per-edge kernels, autograd buffers, workspace).  torch's CPU
allocator hands large blocks straight to ``malloc``; memory is measured in a child process started
with ``MALLOC_MMAP_THRESHOLD_`` fixed at 64 KiB, so that freed large blocks go back to the OS at once
and one method's freed memory cannot hide another method's peak.  That setting makes every large
allocation a fresh ``mmap`` (page faults) and would slow allocation-heavy code unrealistically, so
:func:`measure` times in the parent process, with glibc's default behaviour.  Resolution is a page
(4 KiB) but the numbers are only meaningful above ~1 MB.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import torch

_MALLOC_ENV = "MALLOC_MMAP_THRESHOLD_"
_MEMORY_OUT = "STEERABLE_BENCH_MEMORY_OUT"  # set in the memory child: where its results go


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def peak_memory_mib(fn: Callable[[], object]) -> float:
    """Extra resident memory (MiB) at the peak of one call of ``fn`` (see module docstring).

    ``fn`` runs once unmeasured first, so that one-time work (mode switches, caches) is excluded.
    """
    fn()
    _trim()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return float("nan")
    before = _status_kib("VmRSS")
    result = fn()
    peak = _status_kib("VmHWM")
    del result
    return max(peak - before, 0) / 1024.0


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1, min_time: float = 0.05
) -> dict[str, float]:
    """Median seconds per call for each function, measured round-robin so noise hits all alike.

    Each round runs every function once (or ``inner`` times, chosen so that one round of the
    fastest lasts at least ``min_time``) in turn; the median over ``repeats`` rounds is returned.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    inner: dict[str, int] = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        dt = max(time.perf_counter() - t0, 1e-6)
        inner[name] = max(1, int(min_time / dt))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / inner[name])
    return {name: statistics.median(v) for name, v in samples.items()}


def eval_step(run: Callable[..., torch.Tensor], mod: torch.nn.Module, *args: torch.Tensor) -> torch.Tensor:
    """``run(*args)`` under ``no_grad`` with ``mod`` in eval mode (switched only when needed: modules
    may cache or reset caches on switching)."""
    if mod.training:
        mod.eval()
    with torch.no_grad():
        return run(*args)


def train_step(run: Callable[..., torch.Tensor], mod: torch.nn.Module, *args: torch.Tensor) -> None:
    """One training step's work: ``mod`` in training mode, its gradients and those of the ``args``
    that need one cleared, ``run(*args).sum().backward()``."""
    if not mod.training:
        mod.train()
    mod.zero_grad(set_to_none=True)
    for a in args:
        if a.requires_grad:
            a.grad = None
    run(*args).sum().backward()


def cuda_peak_memory_mib(fn: Callable[[], object]) -> float:
    """Extra CUDA memory (MiB) allocated at the peak of one call of ``fn`` (after one unmeasured call)."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del result
    return max(peak - before, 0) / 2**20


def measure(
    cases: Sequence[tuple[dict[str, Callable[[], object]], dict]], memory: bool = True, device: str = "cpu"
) -> list[tuple[dict[str, float], dict[str, float]]]:
    """``(times, peak memories)`` of each case ``(functions, time_interleaved options)``.

    Times are measured here (CUDA functions must synchronise before returning).  CPU memories
    are measured in a child process that reruns the script (same arguments, output discarded)
    with the fixed mmap threshold and returns at this call (see module docstring); the script
    must build the same cases in the same order before calling this.  CUDA memories are the
    allocator's peak statistics, measured here after the timings.
    """
    if device.startswith("cuda"):
        times = [time_interleaved(fns, **options) for fns, options in cases]
        nan = float("nan")
        mems = [{m: (cuda_peak_memory_mib(fn) if memory else nan) for m, fn in fns.items()} for fns, _ in cases]
        return list(zip(times, mems))
    out_path = os.environ.get(_MEMORY_OUT)
    if out_path:  # the memory child
        mems = [{m: peak_memory_mib(fn) for m, fn in fns.items()} for fns, _ in cases]
        with open(out_path, "w") as fh:
            json.dump(mems, fh)
        sys.exit(0)
    times = [time_interleaved(fns, **options) for fns, options in cases]
    if not memory or not sys.platform.startswith("linux"):
        return [(t, {m: float("nan") for m in t}) for t in times]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "memory.json")
        env = dict(os.environ, **{_MALLOC_ENV: "65536", _MEMORY_OUT: path})
        subprocess.run([sys.executable, *sys.argv], env=env, check=True, stdout=subprocess.DEVNULL)
        with open(path) as fh:
            mems = json.load(fh)
    return list(zip(times, mems))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a GitHub-markdown table."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print(line(r))
    sys.stdout.flush()


def _fmt(c: object) -> str:
    if isinstance(c, float):
        if c != c:
            return "n/a"
        return f"{c:.3g}" if abs(c) < 1000 else f"{c:.0f}"
    return str(c)


def machine_line() -> str:
    """One line describing the machine and torch threads."""
    return (
        f"torch {torch.__version__}, {os.cpu_count()} CPU cores visible, "
        f"torch threads {torch.get_num_threads()} (shared machine: timings are noisy)"
    )
