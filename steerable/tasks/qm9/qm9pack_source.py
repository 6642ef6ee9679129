"""QM9 offline from the PyPI package ``qm9pack``: its CSV rows as PyG ``Data`` objects, cached under a root.

``qm9pack`` (MIT) ships the 130,831 molecules PyG's ``QM9`` keeps (GDB-9 minus the 3,054 that failed the
consistency check), in GDB index order, with element lists, coordinates in Å (``XYZ_Ang``, numbers as
``2.2E-6`` or a bare ``0.``; Mathematica's ``1.2*^-6`` is accepted too) and the properties in the original
units (Hartree, Debye, bohr^3, bohr^2, GHz, cal/mol K).  :func:`row_to_data` builds the same fields PyG's
rdkit-free ``QM9`` builds:

* ``z (n,)`` atomic numbers, ``pos (n, 3)`` Å (float32),
* ``x (n, 11)``: one-hot H C N O F, atomic number, aromatic (0: Kekulé bonds), sp / sp2 / sp3 (from the
  bond orders: a triple bond or two double bonds -> sp, one double bond -> sp2, else sp3; H and F: sp3
  slot left 0, as H has none), number of bonded hydrogens,
* ``edge_index (2, 2E)`` both directions of every bond (:mod:`.bonds`, from the geometry), ``edge_attr
  (2E, 4)`` one-hot single / double / triple / aromatic,
* ``y (1, 19)`` in PyG's units: mu (D), alpha (bohr^3), homo, lumo, gap (eV), r2 (bohr^2), zpve, U0, U, H, G
  (eV), cv (cal/mol K), U0_atom, U_atom, H_atom, G_atom (eV; the energy minus the QM9 atom references
  :data:`ATOM_REFERENCES`, as in the QM9 paper's ``atomref`` table), A, B, C (GHz); 1 Hartree =
  :data:`HARTREE_EV` eV = 27,211.386 meV (CODATA 2018, the factor PyG uses),
* ``idx`` the GDB index (``dsgdb9nsd_<idx>.xyz``).

:func:`load_qm9pack` converts once (a progress bar) into ``<root>/qm9pack/qm9pack_<n>.pt`` (written
atomically; read back only when its key and checksum match) and returns an ``InMemoryDataset``.
"""

from __future__ import annotations

import ast
import csv
import importlib.metadata
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..cache import InvalidCache, atomic_write, digest, read_validated
from ..task import DataUnavailable
from .bonds import TOLERANCE, perceive_bonds

__all__ = [
    "HARTREE_EV",
    "ATOM_REFERENCES",
    "N_MOLECULES",
    "qm9pack_files",
    "iter_rows",
    "parse_literal",
    "row_to_data",
    "convert",
    "load_qm9pack",
]

#: eV per Hartree (CODATA 2018)
HARTREE_EV = 27.211386246
#: molecules in qm9pack (and in PyG's QM9)
N_MOLECULES = 130_831
#: B3LYP/6-31G(2df,p) energies of the free atoms in Hartree: (U0, U 298 K, H 298 K, G 298 K), QM9's atomref
ATOM_REFERENCES = {
    1: (-0.500273, -0.498857, -0.497912, -0.510927),
    6: (-37.846772, -37.845355, -37.844411, -37.861317),
    7: (-54.583861, -54.582445, -54.581501, -54.598897),
    8: (-75.064579, -75.063162, -75.062219, -75.079532),
    9: (-99.718730, -99.717314, -99.716370, -99.733544),
}
_SYMBOLS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
_ENERGIES = ("InternalEnergy_0K_au", "InternalEnergy_298K_au", "Enthalphy_298K_au", "GibbsFreeEnergy_298K_au")
_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_FORMAT = 1  # bump when the converted fields change: old caches are then regenerated


def qm9pack_files() -> list[Path]:
    """The three CSV files of the installed ``qm9pack`` (found without importing it, which needs pandas)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailable(
            "QM9 --source qm9pack: the package qm9pack is not installed; "
            "pip install qm9pack (or the extra: pip install 'steerable[qm9]')"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = [folder / p for p in _PARTS]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataUnavailable(f"QM9 --source qm9pack: the installed qm9pack lacks {', '.join(missing)}; reinstall it")
    return files


def iter_rows(limit: int | None = None) -> Iterator[dict[str, str]]:
    """qm9pack's rows (``csv.DictReader`` dicts of text) in GDB index order, the first ``limit`` if given."""
    csv.field_size_limit(1 << 28)
    n = 0
    for path in qm9pack_files():
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if limit is not None and n >= limit:
                    return
                n += 1
                yield row


def parse_literal(text: str):
    """A qm9pack list or number (``1.2*^-6`` Mathematica exponents, ``2.2E-6``, bare ``0.``) as Python values."""
    return ast.literal_eval(text.replace("*^", "e"))


def _float(text: str) -> float:
    return float(parse_literal(text))


def row_to_data(row: dict[str, str]):
    """One qm9pack row as a PyG ``Data`` (fields in the module docstring) and whether its bond orders are
    a complete neutral Kekulé structure."""
    from torch_geometric.data import Data

    symbols = parse_literal(row["Elements"])
    try:
        z = np.array([_SYMBOLS[s] for s in symbols], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"qm9pack row {row['Index']}: unknown element {exc.args[0]!r}") from None
    pos = np.array(parse_literal(row["XYZ_Ang"]), dtype=np.float64).reshape(-1, 3)
    if len(pos) != len(z) or len(z) != int(row["N_atoms"]):
        raise ValueError(
            f"qm9pack row {row['Index']}: {len(z)} elements, {len(pos)} positions, N_atoms {row['N_atoms']}"
        )
    pairs, orders, complete = perceive_bonds(z, pos, TOLERANCE)
    n = len(z)
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    both = np.concatenate([orders, orders])
    edge_attr = np.zeros((len(both), 4), dtype=np.float32)
    edge_attr[np.arange(len(both)), both - 1] = 1.0
    x = np.zeros((n, 11), dtype=np.float32)
    x[np.arange(n), [list(_SYMBOLS.values()).index(a) for a in z]] = 1.0
    x[:, 5] = z
    triple = np.bincount(src[both == 3], minlength=n)
    double = np.bincount(src[both == 2], minlength=n)
    heavy = z > 1
    x[:, 7] = heavy & ((triple > 0) | (double > 1))
    x[:, 8] = heavy & (triple == 0) & (double == 1)
    x[:, 9] = heavy & (triple == 0) & (double == 0)
    x[:, 10] = np.bincount(src[z[dst] == 1], minlength=n)
    energies = np.array([_float(row[k]) for k in _ENERGIES])
    references = np.array([ATOM_REFERENCES[int(a)] for a in z]).sum(0)
    y = np.array(
        [_float(row["Dipole_debye"]), _float(row["Polarizability_bohr3"])]
        + [_float(row[k]) * HARTREE_EV for k in ("HOMO_au", "LUMO_au", "HOMO_LUMO_gap_au")]
        + [_float(row["R2_bohr2"]), _float(row["ZPVE_au"]) * HARTREE_EV]
        + list(energies * HARTREE_EV)
        + [_float(row["Heatcapacity_Cv_cal_mol_K"])]
        + list((energies - references) * HARTREE_EV)
        + [_float(row[k]) for k in ("RotA_GHz", "RotB_GHz", "RotC_GHz")]
    )
    data = Data(
        x=torch.from_numpy(x),
        z=torch.from_numpy(z),
        pos=torch.from_numpy(pos.astype(np.float32)),
        edge_index=torch.from_numpy(np.stack([src, dst]).astype(np.int64)),
        edge_attr=torch.from_numpy(edge_attr),
        y=torch.from_numpy(y.astype(np.float32))[None],
        idx=torch.tensor([int(row["Index"])]),
    )
    return data, complete


def convert(limit: int | None = None, progress: bool | None = None) -> tuple[list, int]:
    """``(data list, number of molecules without a complete neutral Kekulé structure)`` of the first
    ``limit`` qm9pack rows (all if ``None``); ``progress``: a tqdm bar (``None``: only on a terminal)."""
    from tqdm.auto import tqdm

    total = N_MOLECULES if limit is None else min(limit, N_MOLECULES)
    out, incomplete = [], 0
    for row in tqdm(
        iter_rows(limit),
        total=total,
        desc="qm9pack -> PyG",
        unit="mol",
        disable=None if progress is None else not progress,
    ):
        d, complete = row_to_data(row)
        out.append(d)
        incomplete += not complete
    return out, incomplete


def _key(n: int | None) -> dict:
    try:
        version = importlib.metadata.version("qm9pack")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"format": _FORMAT, "qm9pack": version, "molecules": n, "tolerance": TOLERANCE}


def _checksum(store: dict) -> str:
    return digest(
        [store["data"][k].numpy() for k in sorted(store["data"])]
        + [store["slices"][k].numpy() for k in sorted(store["slices"])]
    )


def _read(path: Path, key: dict) -> dict:
    store = torch.load(path, weights_only=True)
    if not isinstance(store, dict) or store.get("key") != key:
        raise InvalidCache(f"written for other settings than {key}")
    if _checksum(store) != store.get("digest"):
        raise InvalidCache("checksum mismatch")
    if not bool(torch.isfinite(store["data"]["pos"]).all()):
        raise InvalidCache("non-finite positions")
    return store


def load_qm9pack(root: str | Path, limit: int | None = None, progress: bool | None = None):
    """qm9pack's first ``limit`` molecules (all if ``None``) as a PyG ``InMemoryDataset``, converted once and
    cached in ``<root>/qm9pack/`` (see the module docstring)."""
    from torch_geometric.data import Data, InMemoryDataset

    n = None if limit is None or limit >= N_MOLECULES else int(limit)
    path = Path(root) / "qm9pack" / f"qm9pack_{'all' if n is None else n}.pt"
    key = _key(n)
    store = read_validated(path, lambda p: _read(p, key), what="QM9 qm9pack cache")
    if store is None:
        data_list, incomplete = convert(n, progress)
        data, slices = InMemoryDataset.collate(data_list)
        store = {
            "key": key,
            "data": {k: v for k, v in data.to_dict().items()},
            "slices": dict(slices),
            "incomplete_bonds": incomplete,
        }
        store["digest"] = _checksum(store)
        atomic_write(path, lambda fh: torch.save(store, fh))
    ds = InMemoryDataset()
    ds._data, ds.slices = Data.from_dict(store["data"]), store["slices"]
    ds.incomplete_bonds = int(store["incomplete_bonds"])
    return ds
