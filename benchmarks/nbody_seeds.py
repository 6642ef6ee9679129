"""N-body test MSE over model seeds: one training run per seed, then the mean and the spread.

    python benchmarks/nbody_seeds.py [--seeds 0 1 2] [--jobs 2] [--root runs/nbody_seeds]
                                     [-- FLAGS OF python -m steerable.tasks nbody]

e.g. ``python benchmarks/nbody_seeds.py --jobs 2 -- --preset full --compile``.  Each seed runs
``python -m steerable.tasks nbody FLAGS --model-seed S --out-dir ROOT/<tag>/seed<S>`` as its own
process with one thread (``OMP_NUM_THREADS=1``), ``--jobs`` of them at a time; ``<tag>`` is a short
digest of FLAGS (written beside the runs as ``flags.json``), so runs of other flags never mix.  A
seed whose folder already holds a ``results.json`` of a finished run is reused, not retrained
(delete the folder to rerun it).  The table prints each seed's test MSE, best validation MSE and
training time, then the mean, the sample standard deviation and the range, beside the published
figures of the benchmark (EGNN's setting; on the original generator's data, ours on our
simulator's).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from steerable.tasks.curves import read_curves

PUBLISHED = (("Multivector Neurons (mean of 3 runs)", 0.0035), ("SEGNN", 0.0043), ("EGNN", 0.0071))


def tag(flags: list[str]) -> str:
    """A stable short name for a list of task flags."""
    return hashlib.sha256(json.dumps(flags).encode()).hexdigest()[:10]


def best_val(run: Path) -> float | None:
    """Lowest ``val_mse`` of a run's CSV logs (``None`` when there is none)."""
    values = [v for v in read_curves(run / "csv").get("val_mse", []) if v is not None]
    return min(values) if values else None


def train(flags: list[str], seed: int, run: Path) -> dict:
    """Train one seed in its own process (or reuse its finished run); returns its ``results.json``."""
    done = run / "results.json"
    if done.is_file():
        results = json.loads(done.read_text())
        results["reused"] = True
        return results
    cmd = [sys.executable, "-m", "steerable.tasks", "nbody", *flags, "--model-seed", str(seed)]
    cmd += ["--out-dir", str(run), "--no-verbose"]
    run.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    with (run / "log.txt").open("w") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code != 0 or not done.is_file():
        raise RuntimeError(f"seed {seed} failed (exit {code}); its log: {run / 'log.txt'}")
    results = json.loads(done.read_text())
    results["reused"] = False
    results["wall_seconds"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="model seeds (--model-seed)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, one thread each")
    p.add_argument("--root", default="runs/nbody_seeds", help="folder of the runs")
    args = p.parse_args(argv[:split])
    flags = argv[split + 1 :]
    if "--model-seed" in flags or "--out-dir" in flags:
        p.error("--model-seed and --out-dir are set per seed by this script; leave them out of FLAGS")
    if len(set(args.seeds)) != len(args.seeds) or args.jobs < 1:
        p.error("--seeds must be distinct and --jobs at least 1")
    root = Path(args.root) / tag(flags)
    root.mkdir(parents=True, exist_ok=True)
    (root / "flags.json").write_text(json.dumps(flags))
    print(f"flags: {' '.join(flags) or '(defaults)'}\nruns:  {root}/seed<S>", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda s: train(flags, s, root / f"seed{s}"), args.seeds))

    print("\n| seed | test MSE | best val MSE | train s | |\n|---|---|---|---|---|")
    for seed, r in zip(args.seeds, results):
        val = best_val(root / f"seed{seed}")
        shown = "n/a" if val is None else f"{val:.6f}"
        note = "reused" if r["reused"] else ""
        print(f"| {seed} | {r['test_mse']:.6f} | {shown} | {r['train_seconds']:.0f} | {note} |")
    mse = [r["test_mse"] for r in results]
    std = statistics.stdev(mse) if len(mse) > 1 else float("nan")
    print(f"\nmean {statistics.fmean(mse):.6f}, sample std {std:.6f}, range {min(mse):.6f} - {max(mse):.6f}")
    print("published: " + ", ".join(f"{name} {value}" for name, value in PUBLISHED))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
