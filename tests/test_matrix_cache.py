"""The matrix backend's on-disk intertwiner cache: every bad file is detected and regenerated.

A cache file that is empty, truncated, garbage, of another problem, or a valid-looking basis with
one entry changed (checksum consistent or not) is a miss: one :class:`CacheWarning` line, the basis
is solved again (compared with an uncached solve) and the file rewritten.  Concurrent processes
computing the same bases never crash and never see a half-written file.
"""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

from steerable.cache import CacheWarning
from steerable.plugins.matrix_backend import group_from_generators, solver
from steerable.plugins.matrix_backend.group import tensor_product
from steerable.plugins.matrix_backend.pointgroups import rot_z


@pytest.fixture()
def problem(tmp_path, monkeypatch):
    """A 2-dimensional Hom space of C5 (standard x standard -> standard + trivial), cached in tmp_path."""
    monkeypatch.setenv("STEERABLE_CACHE", str(tmp_path))
    group = group_from_generators([rot_z(2 * math.pi / 5, 2)], name="C5-cache-corruption")
    rep_in = tensor_product(group.standard_rep(), group.standard_rep())
    rep_out = group.standard_rep() + group.trivial_rep()
    solver._MEMORY.clear()
    exact = solver.intertwiner_basis(rep_in, rep_out, use_cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # a first write of a missing file warns nothing
        assert solver.intertwiner_basis(rep_in, rep_out).shape == exact.shape == (2, 3, 4)
    solver._MEMORY.clear()
    return rep_in, rep_out, solver.cache_path(rep_in, rep_out), exact


def _valid_bytes(path) -> bytes:
    return path.read_bytes()


def _save_npy(path, basis):
    """The old cache format: the bare basis as ``.npy`` (no key, no checksum)."""
    with path.open("wb") as fh:
        np.save(fh, basis)


def _corrupt_entry_keep_checksum(path, key, basis):
    bad = basis.copy()
    bad[0, 1, 2] += 0.25  # right shape, finite: only the constraint check can tell
    solver._write(path, key, bad)


def _corrupt_entry_bytes(path, key, basis):
    """One float64 entry of the stored basis changed in place in the file (the checksum goes stale)."""
    raw = bytearray(path.read_bytes())
    needle = basis[0, 1, 2].tobytes()
    at = bytes(raw).find(needle)
    assert at > 0, "the basis entry was not found in the file"
    raw[at : at + 8] = np.float64(basis[0, 1, 2] + 0.25).tobytes()
    path.write_bytes(bytes(raw))


CASES = {
    "empty": (lambda p, k, b: p.write_bytes(b""), "EOFError|ValueError|BadZipFile"),
    "truncated": (lambda p, k, b: p.write_bytes(_valid_bytes(p)[: len(_valid_bytes(p)) // 2]), ""),
    "garbage": (lambda p, k, b: p.write_bytes(b"\x93NUMPY not really" * 20), ""),
    "plain npy": (lambda p, k, b: _save_npy(p, b), ""),
    "entry changed, checksum stale": (_corrupt_entry_bytes, "checksum|CRC"),
    "entry changed, checksum consistent": (_corrupt_entry_keep_checksum, "not orthonormal|intertwine"),
    "NaN": (lambda p, k, b: solver._write(p, k, np.where(b == b.flat[0], np.nan, b)), "non-finite"),
    "other problem": (lambda p, k, b: solver._write(p, "0" * 64, b), "another problem"),
    "a basis vector missing": (lambda p, k, b: solver._write(p, k, b[:1]), "expected float64"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_cache_file_is_detected_and_regenerated(problem, case):
    rep_in, rep_out, path, exact = problem
    spoil, reason = CASES[case]
    stored = np.load(path)["basis"]
    spoil(path, solver.problem_key(rep_in, rep_out), stored)
    with pytest.warns(CacheWarning, match=rf"intertwiner cache .*{path.name}.*({reason}).*regenerating") as record:
        basis = solver.intertwiner_basis(rep_in, rep_out)
    assert len([w for w in record if issubclass(w.category, CacheWarning)]) == 1
    assert len(str(record[0].message).splitlines()) == 1
    np.testing.assert_allclose(basis, exact, atol=1e-12)  # the solver's answer, not the file's
    solver._MEMORY.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # the rewritten file is valid
        np.testing.assert_array_equal(solver.intertwiner_basis(rep_in, rep_out), basis)
    assert not list(path.parent.glob("*.tmp")), "no temporary file is left behind"


def test_unwritable_cache_directory_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("STEERABLE_CACHE", str(blocker))
    group = group_from_generators([rot_z(2 * math.pi / 3, 2)], name="C3-unwritable")
    solver._MEMORY.clear()
    assert solver.intertwiner_basis(group.standard_rep(), group.standard_rep()).shape == (2, 2, 2)


WORKER = """
import math, sys, warnings
from steerable.cache import CacheWarning
warnings.simplefilter("error", CacheWarning)  # a half-written file seen by a reader would warn
from steerable.plugins.matrix_backend import group_from_generators, solver
from steerable.plugins.matrix_backend.group import tensor_product
from steerable.plugins.matrix_backend.pointgroups import rot_z
group = group_from_generators([rot_z(2 * math.pi / 6, 2)], name="C6-race")
reps = [group.trivial_rep(), group.standard_rep(), tensor_product(group.standard_rep(), group.standard_rep())]
for round in range(6):
    for a in reps:
        for b in reps:
            solver._MEMORY.clear()
            if round % 2:  # also race with files being deleted under the readers
                solver.cache_path(a, b).unlink(missing_ok=True)
            basis = solver.intertwiner_basis(a, b)
            solver.check_cached_basis(basis, a, b)
print("ok")
"""


def test_concurrent_writers_never_crash(tmp_path):
    env = {"STEERABLE_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHONPATH": ":".join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    assert len(list((tmp_path / "matrix").glob("hom-*.npz"))) == 9
    assert not list((tmp_path / "matrix").glob("*.tmp"))
