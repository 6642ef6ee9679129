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

With ``--baseline DIR`` each group is measured with the steerable tree ``DIR`` (e.g. an exported
older commit) and then with this one, interleaved, so that the two rows share the machine's load.

    .venv/bin/python benchmarks/construction.py [--fresh] [--baseline DIR] [--groups "FullIco:escnn" ...]
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
    "FullIco:escnn",
    "Ico:escnn",
    "FullOcta:escnn",
    "Octa:escnn",
    "Cs:escnn",
    "Ci:escnn",
    "Cinf:escnn",
    "Cinfv:escnn",
    "Dinf:escnn",
    "Cinfh:escnn",
    "Dinfh:escnn",
    "SO(3):escnn",
    "O(3):escnn",
    "SO(3):e3nn",
    "O(3):e3nn",
    "SO(3):lie",
    "O(3):lie",
    "432:matrix",
    "m-3m:matrix",
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
try:
    import escnn.group
    where = escnn.group.__cache_path__
except ImportError:
    where = None
print(json.dumps({"cold": cold, "warm": sorted(warm)[1], "escnn_cache": where}))
"""


ROOT = Path(__file__).resolve().parents[1]


class FreshCaches:
    """A temporary copy of the installed escnn package without its cache, and an empty steerable cache.

    ``env(root)`` gives the environment of a child that uses them (with the steerable tree ``root``
    first on the path); ``clear()`` empties both caches.
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

    def env(self, root: Path) -> dict[str, str]:
        env = child_env(root)
        env["PYTHONPATH"] = os.pathsep.join([str(self.root / "site"), env["PYTHONPATH"]])
        env["STEERABLE_CACHE"] = str(self.steerable_cache)
        return env

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def child_env(root: Path) -> dict[str, str]:
    """The environment of a child that imports steerable from the tree ``root``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH", "")])])
    return env


def run_child(name: str, backend: str, env: dict[str, str], root: Path) -> dict | str:
    """The child's measurement (``note``: whether it printed the first-use note), or its error.

    It runs in the folder ``root`` (``python -c`` puts the working directory first on the path)."""
    cmd = [sys.executable, "-c", CHILD, name, backend]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    if r.returncode != 0:
        return "failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:80]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["note"] = "steerable: building" in r.stderr
    return out


def measure(name: str, backend: str, root: Path, fresh: FreshCaches | None) -> str:
    """The table cells after ``| group | backend |`` for one steerable tree."""
    first = "-"
    if fresh is not None:
        fresh.clear()
        env = fresh.env(root)
        r = run_child(name, backend, env, root)
        if isinstance(r, str):
            return f"{r} | | |"
        if r["escnn_cache"] is not None:
            assert Path(r["escnn_cache"]).resolve() == fresh.escnn_cache.resolve(), r["escnn_cache"]
        first = f"{r['cold']:.3f}" + (" (note)" if r["note"] else "")
    else:
        env = child_env(root)
    r = run_child(name, backend, env, root)
    if isinstance(r, str):
        return f"{first} | {r} | |"
    return f"{first} | {r['cold']:.3f}" + (" (note)" if r["note"] else "") + f" | {r['warm']:.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", nargs="*", default=DEFAULT, help="NAME:BACKEND")
    ap.add_argument("--fresh", action="store_true", help="also time the first use with empty escnn/steerable caches")
    ap.add_argument("--baseline", type=Path, help="another steerable tree, measured before this one for each group")
    args = ap.parse_args()
    fresh = FreshCaches() if args.fresh else None
    trees = [("baseline", args.baseline.resolve()), ("this", ROOT)] if args.baseline else [("this", ROOT)]
    print("fields: 2 x (trivial + standard) in and out; PointConv for 3D groups, GridConv k=5 for 2D")
    print("(note): the child printed steerable's first-use note on stderr")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    tree_col = "| tree " if args.baseline else ""
    print(f"| group | backend {tree_col}| cold, fresh escnn cache s | cold process, warm cache s | warm s |")
    print("|---|---|" + ("---|" if args.baseline else "") + "---|---|---|")
    try:
        for spec in args.groups:
            name, backend = spec.rsplit(":", 1)
            for label, root in trees:
                tree = f"| {label} " if args.baseline else ""
                print(f"| {name} | {backend} {tree}| {measure(name, backend, root, fresh)}", flush=True)
    finally:
        if fresh is not None:
            fresh.remove()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
