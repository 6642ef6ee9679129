"""Layer construction time per group (backend basis + kernel MLP build): cold and warm.

Each group is timed in fresh subprocesses that import torch and steerable (not timed), then time the
first ``st.group(...)`` + ``PointConv`` (3D groups) / ``GridConv`` (2D groups) construction: backend
import, bases, kernel MLP.

* ``cold, fresh escnn cache`` (``--fresh``): the first use on a new machine.  The child runs with
  a copy of the installed escnn package *without* its on-disk cache (escnn keeps its joblib cache
  inside its package folder, ``escnn.group.__cache_path__``, bound when escnn is imported, so the
  copy is put first on ``PYTHONPATH``) and ``STEERABLE_CACHE`` pointing at an empty folder.  Both
  are emptied before each group; the user's caches are neither read nor touched.
* ``cold process, warm cache``: a new process whose caches are warm.  With ``--fresh`` it reuses
  the temporary caches the fresh run just filled (the true second use); without it, the user's
  caches as they are.
* ``warm``: the same construction again in that second process (median of 3).

    .venv/bin/python benchmarks/construction.py [--fresh] [--groups "FullIco:escnn" "SO(3):e3nn" ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT = [
    "SO(3):escnn",
    "O(3):escnn",
    "SO(3):e3nn",
    "O(3):e3nn",
    "SO(3):lie",
    "O(3):lie",
    "432:matrix",
    "m-3m:matrix",
    "Octa:escnn",
    "FullOcta:escnn",
    "Ico:escnn",
    "FullIco:escnn",
    "Cs:escnn",
    "Ci:escnn",
    "Cinf:escnn",
    "Cinfv:escnn",
    "Dinf:escnn",
    "Cinfh:escnn",
    "Dinfh:escnn",
    "C8:escnn",
    "D4:escnn",
    "SO(2):escnn",
]

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
import torch, steerable as st
name, backend = sys.argv[1], sys.argv[2]
def build():
    G = st.group(name, backend=backend)
    reps = [G.trivial_rep(), G.standard_rep()] * 2
    f = st.FieldType(G, reps)
    return st.PointConv(f, f, max_radius=1.0) if G.dim == 3 else st.GridConv(f, f, kernel_size=5)
t0 = time.perf_counter(); build(); cold = time.perf_counter() - t0
warm = []
for _ in range(3):
    t0 = time.perf_counter(); build(); warm.append(time.perf_counter() - t0)
import escnn.group
print(json.dumps({"cold": cold, "warm": sorted(warm)[1], "escnn_cache": escnn.group.__cache_path__}))
"""


class FreshCaches:
    """A temporary copy of the installed escnn package without its cache, and an empty steerable cache.

    ``env()`` gives the environment of a child that uses them; ``clear()`` empties both caches.
    """

    def __init__(self) -> None:
        import escnn  # the installed package, copied without its cache and bytecode

        self.root = Path(tempfile.mkdtemp(prefix="steerable-construction-"))
        src = Path(escnn.__file__).parent
        shutil.copytree(src, self.root / "site" / "escnn", ignore=shutil.ignore_patterns("_cache", "__pycache__"))
        # a fresh install byte-compiles the package: do the same, so the cold time is escnn's work
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(self.root / "site")], check=True)
        self.escnn_cache = self.root / "site" / "escnn" / "group" / "_cache"
        self.steerable_cache = self.root / "steerable-cache"
        self.clear()

    def clear(self) -> None:
        for folder in (self.escnn_cache, self.steerable_cache):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.root / "site"), *filter(None, [env.get("PYTHONPATH", "")]), str(Path(__file__).parents[1])]
        )
        env["STEERABLE_CACHE"] = str(self.steerable_cache)
        return env

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def run_child(name: str, backend: str, env: dict[str, str] | None) -> dict | str:
    """The child's measurement, or the last line of its error."""
    r = subprocess.run([sys.executable, "-c", CHILD, name, backend], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return "failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:80]
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", nargs="*", default=DEFAULT, help="NAME:BACKEND")
    ap.add_argument("--fresh", action="store_true", help="also time the first use with empty escnn/steerable caches")
    args = ap.parse_args()
    fresh = FreshCaches() if args.fresh else None
    print("fields: 2 x (trivial + standard) in and out; PointConv for 3D groups, GridConv k=5 for 2D")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| group | backend | cold, fresh escnn cache s | cold process, warm cache s | warm s |")
    print("|---|---|---|---|---|")
    try:
        for spec in args.groups:
            name, backend = spec.rsplit(":", 1)
            first = "-"
            env = None
            if fresh is not None:
                fresh.clear()
                env = fresh.env()
                r = run_child(name, backend, env)
                if isinstance(r, str):
                    print(f"| {name} | {backend} | {r} | | |", flush=True)
                    continue
                assert Path(r["escnn_cache"]).resolve() == fresh.escnn_cache.resolve(), r["escnn_cache"]
                first = f"{r['cold']:.3f}"
            r = run_child(name, backend, env)
            if isinstance(r, str):
                print(f"| {name} | {backend} | {first} | {r} | |", flush=True)
                continue
            print(f"| {name} | {backend} | {first} | {r['cold']:.3f} | {r['warm']:.3f} |", flush=True)
    finally:
        if fresh is not None:
            fresh.remove()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
