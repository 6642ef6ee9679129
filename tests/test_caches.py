"""On-disk caches of the tasks: bad files are regenerated, concurrent writers never crash."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import warnings
from pathlib import Path

import numpy as np
import pytest

from steerable.cache import CacheWarning, atomic_write, read_validated
from steerable.tasks.nbody.data import cache_path, load_or_generate
from steerable.tasks.nbody.simulate import SimulationConfig

SHORT = dataclasses.replace(SimulationConfig(), n_steps=400)  # 3 frames: quick to simulate


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif how == "flipped":  # a valid archive whose numbers changed: only the checksum tells
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        arrays["loc"] = arrays["loc"].copy()
        arrays["loc"][0, 0, 0, 0] += 1.0
        np.savez(path, **arrays)
    elif how == "nan":  # NaN positions with a checksum that matches them: finiteness is checked
        from steerable.cache import digest

        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        arrays["loc"] = np.full_like(arrays["loc"], np.nan)
        arrays["checksum"] = np.array(digest([arrays[k] for k in ("loc", "vel", "charges", "clipped")]))
        np.savez(path, **arrays)
    elif how == "wrong_shape":
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        arrays["loc"] = arrays["loc"][..., :4]
        np.savez(path, **arrays)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "flipped", "nan", "wrong_shape"])
def test_bad_nbody_cache_is_regenerated_with_a_warning(tmp_path, how):
    ref = load_or_generate(tmp_path, "train", 4, seed=3, config=SHORT)
    path = cache_path(tmp_path, "train", 3)
    _corrupt(path, how)
    with pytest.warns(CacheWarning, match="N-body cache .*regenerating") as record:
        again = load_or_generate(tmp_path, "train", 4, seed=3, config=SHORT)
    ours = [w for w in record if issubclass(w.category, CacheWarning)]
    assert len(ours) == 1 and "\n" not in str(ours[0].message)
    assert again.seconds > 0  # simulated again, not served from the bad file
    np.testing.assert_array_equal(again.loc, ref.loc)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten file is good: read without a warning
        served = load_or_generate(tmp_path, "train", 4, seed=3, config=SHORT)
    assert served.seconds == 0.0
    np.testing.assert_array_equal(served.loc, ref.loc)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def _generate(args) -> str:
    folder, start = args
    start.wait()
    traj = load_or_generate(folder, "valid", 6, seed=5, config=SHORT)
    return str(float(traj.loc.sum()))


def test_concurrent_writers_never_crash_and_leave_a_valid_file(tmp_path):
    """Two processes generating the same split at once (as two ranks do), five times."""
    ctx = mp.get_context("fork")
    expected = None
    for trial in range(5):
        folder = tmp_path / f"t{trial}"
        with ctx.Manager() as manager:
            start = manager.Event()
            with ctx.Pool(2) as pool:
                pending = pool.map_async(_generate, [(folder, start)] * 2)
                start.set()
                sums = pending.get(timeout=120)
        assert len(set(sums)) == 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            traj = load_or_generate(folder, "valid", 6, seed=5, config=SHORT)
        assert traj.seconds == 0.0 and str(float(traj.loc.sum())) == sums[0]
        expected = expected or sums[0]
        assert sums[0] == expected
        assert sorted(p.name for p in folder.iterdir()) == [cache_path(folder, "valid", 5).name]


def test_atomic_write_gives_the_umask_mode_not_a_private_one(tmp_path):
    """A cache written for a group of users is readable by them: mode ``0o666 & ~umask``."""
    import os

    old = os.umask(0o027)
    try:
        path = atomic_write(tmp_path / "c.txt", lambda fh: fh.write("x"), mode="w")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.json"
    atomic_write(path, lambda fh: fh.write("old"), mode="w")

    def fail(fh):
        fh.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, fail, mode="w")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.json"]
    assert read_validated(tmp_path / "missing", lambda p: 1) is None


def test_a_file_removed_between_the_check_and_the_read_is_a_silent_miss(tmp_path):
    # the race a concurrent process can cause: the file exists at the check, gone when it is opened
    path = tmp_path / "f.npz"
    path.write_bytes(b"soon gone")

    def load(p: Path) -> int:
        p.unlink()
        return int(np.load(p)["x"])

    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert read_validated(path, load) is None


# -- QM9 statistics ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qm9_root(tmp_path_factory) -> Path:
    pytest.importorskip("lightning")
    from steerable.tasks.qm9.data import write_synthetic_qm9

    root = tmp_path_factory.mktemp("qm9")
    write_synthetic_qm9(root, n_molecules=30, seed=0)
    return root


@pytest.mark.parametrize(
    "content",
    [
        "",
        '{"mean": 1.0, "st',
        '{"mean": NaN, "std": 1.0, "key": KEY}',
        '{"mean": 3.0, "std": 2.0}',
        "[1, 2]",
        '{"mean": 1.0, "std": -1, "key": KEY}',
    ],
)
def test_bad_qm9_statistics_are_recomputed(qm9_root, content):
    from steerable.tasks.qm9.data import QM9DataModule

    dm = QM9DataModule(str(qm9_root), target="alpha")
    dm.setup()
    mean, std = dm.mean, dm.std
    stats = next((qm9_root / "processed").glob("stats_alpha_*.json"))
    key = json.loads(stats.read_text())["key"]
    stats.write_text(content.replace("KEY", json.dumps(key)))
    dm2 = QM9DataModule(str(qm9_root), target="alpha")
    with pytest.warns(CacheWarning, match="QM9 statistics cache"):
        dm2.setup()
    assert (dm2.mean, dm2.std) == (mean, std)
    assert json.loads(stats.read_text())["mean"] == mean  # rewritten
