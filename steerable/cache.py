"""On-disk caches that survive crashes, concurrent writers and corrupted files.

Two rules, shared by every on-disk cache of the library (the tasks' N-body splits and QM9 statistics,
the matrix backend's intertwiner bases); the module imports only the standard library, so any
layer (core, plugins, tasks) may use it (``steerable.tasks.cache`` is an alias of it):

* **atomic writes** (:func:`atomic_write`): the content goes to a temporary file with a unique name
  in the target's folder (``tempfile.NamedTemporaryFile(dir=..., delete=False)``), is flushed to
  disk, then renamed over the target with ``os.replace``.  A reader sees the old file or the new
  one, never a half-written one, and two processes writing the same cache at once each rename a
  complete file of their own (the last rename wins; both are valid).
* **validated reads** (:func:`read_validated`): a reader returns the cached value only when the
  file loads *and* passes the cache's own check (shapes, finiteness, the key of the generating
  settings, a checksum); anything else (missing, empty, truncated, garbage, NaN, stale) is a miss,
  with a one-line :class:`CacheWarning` naming the file and the reason when the file existed, and
  the caller regenerates and rewrites it.

:func:`digest` is a content checksum of arrays for caches that store one.  Nothing here imports
torch or lightning.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["CacheWarning", "InvalidCache", "atomic_write", "read_validated", "digest"]

T = TypeVar("T")


class CacheWarning(UserWarning):
    """A cache file was unreadable or failed its check and is regenerated."""


class InvalidCache(ValueError):
    """Raised by a cache's loader when a file loads but its content fails the check (the reason)."""


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` sets it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], *, mode: str = "wb") -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a unique temporary file, then it replaces ``path``.

    Args:
        path: the target file (its folder is created).
        write: called with the open temporary file (``mode``: ``"wb"`` or ``"w"``).
        mode: file mode of the temporary file.

    The temporary file lies in the target's folder (so the rename does not cross file systems),
    is ``fsync``-ed before the rename and removed if ``write`` raises.  The file gets the permissions
    of a plain ``open`` (``0o666`` less the umask), not the temporary file's private ``0o600``.
    Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
            # NamedTemporaryFile creates mode 0600; a cache shared by a group must get the umask's mode
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
        os.replace(fh.name, path)
    except BaseException:
        try:
            os.unlink(fh.name)
        except FileNotFoundError:
            pass
        raise
    return path


def read_validated(path: str | os.PathLike, load: Callable[[Path], T], *, what: str = "cache") -> T | None:
    """``load(path)``, or ``None`` when ``path`` is missing or fails to load or validate.

    ``load`` reads the file and checks its content, raising :class:`InvalidCache` (or any error of
    the reader: ``OSError``, ``ValueError``, ``KeyError``, ``EOFError``, ``zipfile.BadZipFile``, a
    JSON or pickle error) for a bad file.  A file that exists but is bad gives one
    :class:`CacheWarning` line: ``"{what} {path}: {reason}; regenerating"``.  A missing file is a
    silent miss (``load`` is not called), also one that another process removes between that check
    and the read (``FileNotFoundError`` from ``load``).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return load(path)
    except FileNotFoundError:  # removed by another process after the check: a plain miss, no warning
        return None
    except Exception as exc:  # any failure of reading or checking is a cache miss
        reason = " ".join(str(exc).split()) or type(exc).__name__
        warnings.warn(f"{what} {path}: {type(exc).__name__}: {reason}; regenerating", CacheWarning, stacklevel=2)
        return None


def digest(arrays: Iterable[Any]) -> str:
    """SHA-256 (hex) of the bytes, shapes and dtypes of ``arrays`` (numpy arrays), in order."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{tuple(a.shape)}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
