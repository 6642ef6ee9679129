"""Shared helpers for the benchmark scripts: interleaved timing, peak-memory measurement, tables.

Peak memory method (CPU): Linux keeps a per-process resident-set high-water mark (``VmHWM`` in
``/proc/self/status``) that can be reset by writing ``5`` to ``/proc/self/clear_refs``.  Before each
measured call we free what we can (``gc.collect()``, glibc ``malloc_trim(0)``), reset the mark, read
the current RSS, run the call once and report ``VmHWM - RSS_before``: the extra resident memory the
call needed at its peak (activations, per-edge kernels, autograd buffers, workspace).  torch's CPU
allocator hands large blocks straight to ``malloc``; :func:`ensure_malloc_env` re-executes the script
with ``MALLOC_MMAP_THRESHOLD_`` fixed at 64 KiB so that freed large blocks go back to the OS at once
and one method's freed memory cannot hide another method's peak.  Resolution is a page (4 KiB) but
the numbers are only meaningful above ~1 MB.
"""
from __future__ import annotations

import ctypes
import gc
import os
import statistics
import sys
import time
from typing import Callable, Sequence

import torch

_MALLOC_ENV = "MALLOC_MMAP_THRESHOLD_"


def ensure_malloc_env() -> None:
    """Re-execute the current script with a fixed glibc mmap threshold (see module docstring)."""
    if os.environ.get(_MALLOC_ENV) is None and sys.platform.startswith("linux"):
        env = dict(os.environ, **{_MALLOC_ENV: "65536"})
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


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
    """Extra resident memory (MiB) at the peak of one call of ``fn`` (see module docstring)."""
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


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int = 5, warmup: int = 1,
                     min_time: float = 0.05) -> dict[str, float]:
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
    return (f"torch {torch.__version__}, {os.cpu_count()} CPU cores visible, "
            f"torch threads {torch.get_num_threads()} (shared machine: timings are noisy)")
