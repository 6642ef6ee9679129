"""Write a random sample of QM9's real molecules as PyG's rdkit-free raw file, for machines without qm9pack.

The GPU machine has no network and no ``qm9pack`` (its wheel, 104 MB, is over what a call may carry),
so ``scripts/device_wheels.sh`` writes ``N`` molecules drawn uniformly (seeded) from the whole of
``qm9pack`` with this script into ``OUT/raw/qm9_v3.pt``: the format PyG's ``QM9`` reads without rdkit
(a ``torch.save``-d list of dicts with the fields of
:func:`steerable.tasks.qm9.qm9pack_source.row_to_data`), so that the QM9 task and
``benchmarks/qm9_budget.py`` read it with ``--source pyg --root OUT``.  A uniform sample keeps QM9's
distribution of molecule sizes (the first molecules of the data set, ``--molecules N``, are the smallest),
which is what training throughput depends on.  Needs ``qm9pack`` and torch-geometric where it runs::

    python scripts/qm9_subset.py OUT [--molecules 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from steerable.cache import atomic_write
from steerable.tasks.qm9.qm9pack_source import N_MOLECULES, iter_rows, row_to_data


def sample(n: int, seed: int) -> list[dict]:
    """``n`` molecules of qm9pack, drawn without replacement (``seed``), in GDB order, as raw-file records."""
    if not 0 < n <= N_MOLECULES:
        raise SystemExit(f"--molecules must be in 1..{N_MOLECULES}, got {n}")
    keep = set(torch.randperm(N_MOLECULES, generator=torch.Generator().manual_seed(seed))[:n].tolist())
    records = []
    for i, row in enumerate(iter_rows()):
        if i in keep:
            data, _ = row_to_data(row)
            records.append({k: v for k, v in data.to_dict().items()} | {"name": f"gdb_{int(data.idx)}"})
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="root folder: writes OUT/raw/qm9_v3.pt")
    p.add_argument("--molecules", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    records = sample(a.molecules, a.seed)
    path = atomic_write(a.out / "raw" / "qm9_v3.pt", lambda fh: torch.save(records, fh))
    atoms = sum(int(r["z"].numel()) for r in records) / len(records)
    print(f"wrote {len(records)} molecules ({atoms:.1f} atoms each on average) to {path}")


if __name__ == "__main__":
    main()
