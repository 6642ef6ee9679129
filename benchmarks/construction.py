"""Layer construction time per group (backend basis + kernel MLP build), cold and warm.

cold: a fresh subprocess imports torch and steerable (not timed), then times the first
``st.group(...)`` + ``PointConv``/``GridConv`` construction (backend import, basis and MLP build;
escnn's on-disk cache left as it is).  warm: in the same subprocess, the same construction again.

    .venv/bin/python benchmarks/construction.py [--groups "SO(3):escnn" "C8:escnn" ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

DEFAULT = ["SO(3):escnn", "O(3):escnn", "SO(3):e3nn", "O(3):e3nn", "C8:escnn", "D4:escnn", "SO(2):escnn"]

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
print(json.dumps({"cold": cold, "warm": sorted(warm)[1]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", nargs="*", default=DEFAULT, help="NAME:BACKEND")
    args = ap.parse_args()
    print("fields: 2 x (trivial + standard) in and out; PointConv for 3D groups, GridConv k=5 for 2D")
    print("| group | backend | cold s | warm s |")
    print("|---|---|---|---|")
    for spec in args.groups:
        name, backend = spec.split(":")
        r = subprocess.run([sys.executable, "-c", CHILD, name, backend], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"| {name} | {backend} | failed: {r.stderr.strip().splitlines()[-1][:80]} | |")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"| {name} | {backend} | {d['cold']:.3f} | {d['warm']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
