"""A one-line note before escnn's slow first-use computations, and the record that they are done.

escnn computes irreps, restrictions and Clebsch-Gordan coefficients of a group numerically the first
time they are needed and keeps them in its own on-disk cache, inside its package folder
(``escnn.group.__cache_path__``).  For the groups in :data:`SLOW_FIRST_USE` this first build took
more than a few seconds on a fresh machine (measured with ``benchmarks/construction.py --fresh``),
so :func:`announce` prints, before the group is built::

    steerable: building escnn's bases for FullIco on R^3 (first use; done once: escnn caches them in <path>)

on stderr (the library's other notes, :class:`~steerable.cache.CacheWarning`, are warnings; a
progress line is not a warning), unless :func:`record` has noted that this group's first kernel MLP
was built against this escnn cache.  The record is a small JSON file under
``$STEERABLE_CACHE/escnn`` (default ``~/.cache/steerable/escnn``), written atomically and read
validated (:mod:`steerable.cache`): a corrupted or foreign file is a miss (one
:class:`~steerable.cache.CacheWarning`), the note is printed and the file rewritten.  The record
names escnn's version, the folder of escnn's cache and the identity (device and inode) of that
folder, so a new or emptied escnn cache (a fresh install, a deleted ``_cache``) gets the note again.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from steerable.cache import InvalidCache, atomic_write, read_validated

__all__ = ["SLOW_FIRST_USE", "announce", "escnn_cache_dir", "record", "record_path"]

#: groups whose first build on an empty escnn cache still took more than a few seconds beyond a
#: warm-cache build (``benchmarks/construction.py --fresh``: escnn generates the icosahedral and
#: octahedral irreps from their generators and restricts the harmonics to them numerically); the
#: axial and planar groups took a few seconds more at most and get no note
SLOW_FIRST_USE = frozenset((name, 3) for name in ("Octa", "FullOcta", "Ico", "FullIco"))

#: format of the record files (bump when their content changes)
RECORD_VERSION = 1


def escnn_cache_dir() -> Path:
    """The folder of escnn's on-disk cache (``escnn.group.__cache_path__``)."""
    import escnn.group

    return Path(escnn.group.__cache_path__)


def _steerable_dir() -> Path:
    root = os.environ.get("STEERABLE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "steerable")
    return Path(root) / "escnn"


def _identity() -> dict[str, Any]:
    """What the record must match: escnn's version and the identity of its cache folder."""
    import escnn

    folder = escnn_cache_dir()
    joblib = folder / "joblib"
    st = joblib.stat() if joblib.exists() else None
    return {
        "version": RECORD_VERSION,
        "escnn": getattr(escnn, "__version__", "?"),
        "cache": str(folder.resolve()),
        "cache_id": [st.st_dev, st.st_ino] if st is not None else None,
    }


def record_path(name: str, dim: int) -> Path:
    """The record file of group ``name`` on ``R^dim``."""
    safe = "".join(c if c.isalnum() else "_" for c in name)
    return _steerable_dir() / f"built-{safe}-{dim}.json"


def _load(path: Path, expected: dict[str, Any]) -> bool:
    with open(path) as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise InvalidCache("not a JSON object")
    if data.get("identity") != expected:
        raise InvalidCache(f"made for {data.get('identity')}, not {expected}")
    return True


def _recorded(name: str, dim: int) -> bool:
    identity = _identity()
    if identity["cache_id"] is None:  # escnn has cached nothing yet
        return False
    path = record_path(name, dim)
    return bool(read_validated(path, lambda p: _load(p, identity), what="escnn first-use record"))


def announce(name: str, dim: int) -> bool:
    """Print the first-use note for group ``name`` on ``R^dim`` when it is slow to build and not
    recorded as built against this escnn cache; returns whether the note was printed."""
    if (name, dim) not in SLOW_FIRST_USE or _recorded(name, dim):
        return False
    print(
        f"steerable: building escnn's bases for {name} on R^{dim} (first use; done once: escnn caches them in "
        f"{escnn_cache_dir()})",
        file=sys.stderr,
        flush=True,
    )
    return True


#: (name, dim, identity) recorded by this process (later builds skip reading the file)
_RECORDED: set[tuple] = set()


def record(name: str, dim: int) -> None:
    """Note that group ``name`` on ``R^dim`` has built a kernel MLP against this escnn cache (an
    unwritable cache folder is skipped: the note is then printed again next time)."""
    if (name, dim) not in SLOW_FIRST_USE:
        return
    identity = _identity()
    key = (name, dim, json.dumps(identity, sort_keys=True))
    if key in _RECORDED:
        return
    _RECORDED.add(key)
    path = record_path(name, dim)
    if identity["cache_id"] is None or read_validated(
        path, lambda p: _load(p, identity), what="escnn first-use record"
    ):
        return
    try:
        atomic_write(path, lambda fh: json.dump({"group": name, "dim": dim, "identity": identity}, fh), mode="w")
    except OSError:
        pass
