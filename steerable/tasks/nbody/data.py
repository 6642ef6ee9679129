"""N-body data: cached generated splits, the benchmark's ``.npy`` files, and a torch ``Dataset``.

Splits and seeds (all documented defaults; see :mod:`.simulate` for the physics):

* ``train``: 3000 trajectories, seed ``seed + 0``; ``valid``: 2000, seed ``seed + 1``;
  ``test``: 2000, seed ``seed + 2``; ``seed = 43`` by default.
* Initial conditions are drawn per trajectory in order, so the first ``k`` trajectories of a split
  do not depend on how many were generated: a demo on 500 training trajectories uses the first 500
  of the full split.
* Each split is cached as one ``.npz`` file in ``data_dir``
  (``charged5_seed{seed}_{split}.npz``: ``loc``, ``vel``, ``charges``, ``clipped``, ``config``,
  ``checksum``);
  a cached file is reused when its simulation parameters match, it holds enough trajectories and
  passes its checks (shapes, finite values, a SHA-256 checksum), and is regenerated
  (deterministically, written atomically) otherwise.

The benchmark's files (``loc_{split}{suffix}.npy``, ``vel_...``, ``edges_...``, ``charges_...``;
``loc``/``vel`` ``(n_traj, n_frames, 3, 5)``, ``edges`` ``(n_traj, 5, 5)``, ``charges``
``(n_traj, 5, 1)``; ``split`` in ``train``, ``valid``, ``test``) are read by :func:`load_npy_split`
and written by :func:`write_npy_split`.

A sample is the state at frame ``frame_in`` (default 30) and the positions at ``frame_out``
(default 40): 1000 integration steps, ``horizon = 1.0`` time units.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from steerable.cache import InvalidCache, atomic_write, digest, read_validated

from .simulate import SimulationConfig, Trajectories, simulate

__all__ = [
    "SPLITS",
    "DEFAULT_SIZES",
    "DEFAULT_SEED",
    "split_seed",
    "load_or_generate",
    "load_npy_split",
    "write_npy_split",
    "NBodyDataset",
]

SPLITS = ("train", "valid", "test")
DEFAULT_SIZES = {"train": 3000, "valid": 2000, "test": 2000}
DEFAULT_SEED = 43


def split_seed(seed: int, split: str) -> int:
    """The seed of one split: ``seed + index`` with ``train, valid, test = 0, 1, 2``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return seed + SPLITS.index(split)


def _config_key(config: SimulationConfig) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def cache_path(data_dir: str | os.PathLike, split: str, seed: int) -> Path:
    """``data_dir/charged5_seed{seed}_{split}.npz``."""
    return Path(data_dir) / f"charged5_seed{seed}_{split}.npz"


def _read_cache(path: Path, key: str, n_traj: int, config: SimulationConfig) -> Trajectories:
    """The first ``n_traj`` trajectories of cache file ``path``; raises :class:`InvalidCache` (or a
    reader's error) unless it holds finite arrays of the expected shapes, the settings ``key`` and
    a matching checksum."""
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:  # our handle: closed on a bad file
        missing = {"loc", "vel", "charges", "clipped", "config", "checksum"} - set(f.files)
        if missing:
            raise InvalidCache(f"missing arrays {sorted(missing)}")
        if str(f["config"]) != key:
            raise InvalidCache("written with other simulation settings")
        loc, vel, charges, clipped = f["loc"], f["vel"], f["charges"], f["clipped"]
        checksum = str(f["checksum"])
    n, d = config.n_particles, config.dim
    T = loc.shape[0]
    if (
        loc.shape != (T, config.n_frames, d, n)
        or vel.shape != loc.shape
        or charges.shape != (T, n, 1)
        or clipped.shape != (T,)
    ):
        raise InvalidCache(f"unexpected shapes loc {loc.shape}, vel {vel.shape}, charges {charges.shape}")
    if digest((loc, vel, charges, clipped)) != checksum:
        raise InvalidCache("checksum mismatch")
    if not (np.isfinite(loc).all() and np.isfinite(vel).all() and np.isfinite(charges).all()):
        raise InvalidCache("non-finite values")
    if T < n_traj:  # valid, only too small: a miss without a warning
        raise _TooSmall(T)
    return Trajectories(loc[:n_traj], vel[:n_traj], charges[:n_traj], clipped[:n_traj], 0.0, config)


class _TooSmall(Exception):
    """The cache is valid but holds fewer trajectories than asked for."""


def load_or_generate(
    data_dir: str | os.PathLike,
    split: str,
    n_traj: int,
    seed: int = DEFAULT_SEED,
    config: SimulationConfig = SimulationConfig(),  # noqa: B008 (a frozen dataclass: never mutated)
    *,
    progress: bool = False,
) -> Trajectories:
    """The first ``n_traj`` trajectories of ``split``, from the cache or simulated (then cached).

    The cache file (:func:`cache_path`) is used only when it holds finite arrays of the expected
    shapes, the same simulation settings and a matching SHA-256 checksum (:mod:`..cache`); a bad
    file (empty, truncated, corrupted, NaN, stale) is regenerated with one :class:`~..cache.CacheWarning`
    line.  Files are written atomically under a unique temporary name, so processes generating the
    same split at once (e.g. the ranks of a multi-process run) never see a partial file.
    ``progress``: a progress bar over the simulation steps.

    Returns :class:`~.simulate.Trajectories` with ``seconds`` the simulation time (0 when loaded).
    """
    path = cache_path(data_dir, split, seed)
    key = _config_key(config)

    def load(p: Path) -> Trajectories | None:
        try:
            return _read_cache(p, key, n_traj, config)
        except _TooSmall:
            return None

    cached = read_validated(path, load, what="N-body cache")
    if cached is not None:
        return cached
    traj = simulate(n_traj, split_seed(seed, split), config, progress=progress, desc=f"simulating {split}")
    arrays = dict(loc=traj.loc, vel=traj.vel, charges=traj.charges, clipped=traj.clipped)
    checksum = digest(arrays.values())
    atomic_write(path, lambda fh: np.savez(fh, **arrays, config=np.array(key), checksum=np.array(checksum)))
    return traj


def _find(folder: Path, kind: str, split: str, suffix: str | None) -> Path:
    if suffix is not None:
        path = folder / f"{kind}_{split}{suffix}.npy"
        if not path.exists():
            raise FileNotFoundError(f"no {path}")
        return path
    hits = sorted(glob.glob(str(folder / f"{kind}_{split}*.npy")))
    if len(hits) != 1:
        raise FileNotFoundError(
            f"expected exactly one {kind}_{split}*.npy in {folder}, found {len(hits)}: {hits}; pass the suffix"
        )
    return Path(hits[0])


def load_npy_split(
    folder: str | os.PathLike, split: str, suffix: str | None = None, n_traj: int | None = None
) -> Trajectories:
    """Read the benchmark's ``loc/vel/charges_{split}{suffix}.npy`` (``edges`` is implied by charges).

    ``split`` is ``train``, ``valid`` or ``test``; ``suffix`` e.g. ``"_charged5_initvel1small"``; with
    ``suffix=None`` the single matching file per kind is used.  ``n_traj`` keeps the first ones
    (as EGNN keeps the first 3000 training trajectories).
    """
    folder = Path(folder)
    arrays = {}
    for kind in ("loc", "vel", "charges"):
        arrays[kind] = np.load(_find(folder, kind, split, suffix))
        if n_traj is not None:
            arrays[kind] = arrays[kind][:n_traj]
    loc, vel, charges = arrays["loc"], arrays["vel"], arrays["charges"]
    if loc.ndim != 4 or vel.shape != loc.shape or charges.shape != (loc.shape[0], loc.shape[3], 1):
        raise ValueError(
            f"unexpected shapes loc {loc.shape}, vel {vel.shape}, charges {charges.shape}; "
            "expected (T, F, 3, n), (T, F, 3, n), (T, n, 1)"
        )
    config = dataclasses.replace(SimulationConfig(), n_particles=loc.shape[3], dim=loc.shape[2])
    clipped = np.zeros(loc.shape[0], dtype=bool)  # unknown for external files
    return Trajectories(
        loc.astype(np.float64), vel.astype(np.float64), charges.astype(np.float64), clipped, 0.0, config
    )


def write_npy_split(
    folder: str | os.PathLike, split: str, traj: Trajectories, suffix: str = "_charged5_steerable"
) -> list[Path]:
    """Write ``traj`` as the benchmark's four ``.npy`` files; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for kind, arr in (("loc", traj.loc), ("vel", traj.vel), ("edges", traj.edges), ("charges", traj.charges)):
        path = folder / f"{kind}_{split}{suffix}.npy"
        np.save(path, arr)
        out.append(path)
    return out


class NBodyDataset(torch.utils.data.Dataset):
    """Samples ``(pos, vel, charges, target)`` for frame pairs of a set of trajectories.

    Item shapes (float32): ``pos`` ``(n, 3)`` at the input frame, ``vel`` ``(n, 3)`` at the input
    frame, ``charges`` ``(n, 1)``, ``target`` ``(n, 3)`` positions at the target frame.

    ``shifts`` lists offsets ``s``: every trajectory gives one sample per ``s``, the pair
    ``(frame_in + s, frame_out + s)`` (same horizon). The default ``(0,)`` is the benchmark's single
    pair; items are ordered shift by shift, trajectories in order within a shift.
    """

    def __init__(
        self, traj: Trajectories, frame_in: int = 30, frame_out: int = 40, shifts: Sequence[int] = (0,)
    ) -> None:
        n_frames = traj.loc.shape[1]
        if not 0 <= frame_in < frame_out < n_frames:
            raise ValueError(f"need 0 <= frame_in < frame_out < {n_frames}, got {frame_in}, {frame_out}")
        shifts = list(shifts)
        if not shifts:
            raise ValueError("shifts is empty: pass (0,) for the benchmark's frame pair")
        bad = [s for s in shifts if not 0 <= frame_in + s < frame_out + s < n_frames]
        if bad:
            raise ValueError(
                f"frame shifts {bad} move the pair ({frame_in}, {frame_out}) outside the {n_frames} stored "
                "frames: lower the shift (--train-frame-shift)"
            )

        def to(a: np.ndarray) -> torch.Tensor:  # (T, 3, n) -> (T, n, 3)
            return torch.from_numpy(np.ascontiguousarray(a.swapaxes(-1, -2))).float()

        self.pos = torch.cat([to(traj.loc[:, frame_in + s]) for s in shifts])
        self.vel = torch.cat([to(traj.vel[:, frame_in + s]) for s in shifts])
        self.target = torch.cat([to(traj.loc[:, frame_out + s]) for s in shifts])
        self.charges = torch.from_numpy(traj.charges).float().repeat(len(shifts), 1, 1)
        self.horizon = traj.config.horizon(frame_in, frame_out)

    def __len__(self) -> int:
        return self.pos.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.pos[index], self.vel[index], self.charges[index], self.target[index]

    def constant_velocity_mse(self) -> float:
        """MSE of ``pos + vel * horizon`` against the target (mean over systems, particles, axes)."""
        return float((self.pos + self.vel * self.horizon - self.target).pow(2).mean())
