"""Import time of ``steerable`` beyond torch's own import, each in fresh interpreters.

Runs ``python -c "import torch"`` and ``python -c "import torch, steerable"`` alternately
``--repeats`` times in fresh subprocesses (interleaved, so machine noise hits both alike) and
reports the medians and their difference; also checks that no backend (escnn, e3nn), torch_geometric
or lightning module got imported.

    .venv/bin/python benchmarks/import_time.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CHECK = (
    "import sys, torch, steerable; bad = [m for m in ('escnn', 'e3nn', 'torch_geometric', 'lightning', "
    "'steerable.plugins.escnn_backend', 'steerable.plugins.e3nn_backend') if m in sys.modules]; print(bad)"
)


def wall(code: str) -> float:
    """Wall time of a fresh interpreter running ``code``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    base, ours, bare = [], [], []
    for _ in range(args.repeats):
        bare.append(wall("pass"))
        base.append(wall("import torch"))
        ours.append(wall("import torch, steerable"))
    b, o, p = statistics.median(base), statistics.median(ours), statistics.median(bare)
    leaked = subprocess.run([sys.executable, "-c", CHECK], check=True, capture_output=True, text=True).stdout.strip()
    print(f"| interpreter only | {p:.3f} s |")
    print(f"| import torch | {b:.3f} s |")
    print(f"| import torch, steerable | {o:.3f} s |")
    print(f"| steerable beyond torch | {o - b:.3f} s (target < 0.5 s) |")
    print(f"heavy modules imported by `import steerable`: {leaked}")
    xt = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import torch; import steerable"], capture_output=True, text=True
    ).stderr.splitlines()
    print("\n".join(line for line in xt if "steerable" in line))


if __name__ == "__main__":
    main()
