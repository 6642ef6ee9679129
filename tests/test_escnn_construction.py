"""Issue 18 (construction): the escnn backend's fast first-use routes equal escnn's own, and the
first-use note.

* :func:`~steerable.plugins.escnn_backend.characters.tensor_product_irreps` (multiplicities from
  characters) returns, for every pair of low irreps, exactly the list of escnn's numerical search
  (``escnn.group.Group._tensor_product_irreps``: the same irreps, order and multiplicities), on every
  group where it is installed; the groups with escnn's analytic rules keep them.
* :func:`~steerable.plugins.escnn_backend.characters.build_regular_representation` gives escnn's
  regular representation: the same irreps and the same change-of-basis matrix (bit for bit: the
  same floating-point operations), and it is the one the groups use.
* the first-use note (:mod:`~steerable.plugins.escnn_backend.first_use`): printed for a slow group
  whose build is not recorded against this escnn cache, not printed once recorded, printed again
  (with one ``CacheWarning``) when the record is corrupted, and again for a new escnn cache folder.
* end to end, in subprocesses with a copy of escnn without its cache and an empty
  ``STEERABLE_CACHE``: the cold build prints the note, the second process (caches warm) does not,
  and both give the same kernel (values bit for bit) from the same seed: the round trip of the
  caches.

Equivariance of the groups' layers is checked by ``tests/test_escnn_backend.py`` and
``tests/test_schoenflies.py`` (their bounds unchanged); no test here measures time.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("escnn")

from escnn.group import Group

import steerable as st
from steerable.cache import CacheWarning
from steerable.plugins.escnn_backend import first_use
from steerable.plugins.escnn_backend.characters import build_regular_representation, tensor_product_irreps

ROOT = Path(__file__).resolve().parents[1]

#: groups where escnn would search tensor-product decompositions numerically (name, dim, irreps compared)
GENERIC = [
    ("D4", 3, 5),
    ("O(2)", 2, 4),
    ("O(2)", 3, 4),
    ("Dinf", 3, 4),
    ("Cinfh", 3, 5),
    ("Dinfh", 3, 6),
    ("Octa", 3, 5),
    ("FullOcta", 3, 4),
]


@pytest.mark.parametrize("name,dim,n_irreps", GENERIC, ids=[f"{n}-{d}" for n, d, _ in GENERIC])
def test_tensor_product_irreps_equal_escnn(name, dim, n_irreps):
    G = st.group(name, dim=dim, backend="escnn")
    H = G.native
    assert "_tensor_product_irreps" in H.__dict__, "the character route is not installed"
    ids = [r.native.id for r in G.irreps(max_frequency=2)][:n_irreps]
    for a, b in itertools.product(ids, repeat=2):
        ours = tensor_product_irreps(G, a, b)
        assert ours == Group._tensor_product_irreps(H, a, b), (a, b)
        assert H._tensor_product_irreps(a, b) == ours  # what escnn's layers now call


@pytest.mark.parametrize("name,dim", [("C8", 2), ("SO(2)", 3), ("SO(3)", 3), ("O(3)", 3), ("Ci", 3)])
def test_analytic_rules_kept(name, dim):
    """escnn's own analytic decompositions (cyclic, SO(2), SO(3), O(3)) are left alone."""
    H = st.group(name, dim=dim, backend="escnn").native
    assert "_tensor_product_irreps" not in H.__dict__


@pytest.mark.parametrize("name,dim", [("D4", 3), ("C8", 2), ("Cs", 3), ("Octa", 3), ("FullOcta", 3)])
def test_regular_representation_equals_escnn(name, dim):
    import escnn.group.representation as rep_module

    G = st.group(name, dim=dim, backend="escnn")
    H = G.native
    ref_irreps, ref_cob, ref_inv = rep_module.build_regular_representation(H)  # escnn's |H|^2 route
    irreps, cob, inv = build_regular_representation(H)
    assert [r.id for r in irreps] == [r.id for r in ref_irreps]
    assert np.array_equal(cob, ref_cob) and np.array_equal(inv, ref_inv)
    used = H.regular_representation  # what the dense pipeline's hidden fields use
    assert list(used.irreps) == [r.id for r in ref_irreps]
    assert np.array_equal(used.change_of_basis, ref_cob)
    assert rep_module.build_regular_representation is not build_regular_representation  # restored


# -- the first-use note ----------------------------------------------------------------------------
@pytest.fixture
def fake_caches(tmp_path, monkeypatch):
    """An escnn cache folder (with escnn's ``joblib`` subfolder) and an empty STEERABLE_CACHE."""
    escnn_cache = tmp_path / "escnn-cache"
    (escnn_cache / "joblib").mkdir(parents=True)
    monkeypatch.setattr(first_use, "escnn_cache_dir", lambda: escnn_cache)
    monkeypatch.setenv("STEERABLE_CACHE", str(tmp_path / "steerable"))
    monkeypatch.setattr(first_use, "_RECORDED", set())
    return escnn_cache


NOTE = "steerable: building escnn's bases for FullIco on R^3 (first use; done once: escnn caches them in"


def test_note_until_recorded(fake_caches, capsys):
    assert first_use.announce("FullIco", 3)
    err = capsys.readouterr().err
    assert err.startswith(NOTE) and str(fake_caches) in err and err.count("\n") == 1
    first_use.record("FullIco", 3)
    assert first_use.record_path("FullIco", 3).exists()
    assert not first_use.announce("FullIco", 3)
    assert capsys.readouterr().err == ""


def test_fast_group_gets_no_note(fake_caches, capsys):
    for name, dim in [("C8", 2), ("Dinfh", 3), ("SO(3)", 3)]:
        assert not first_use.announce(name, dim)
        first_use.record(name, dim)
        assert not first_use.record_path(name, dim).exists()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("content", [b"", b"{not json", b"[1, 2]", b'{"identity": {"escnn": "0"}}', b"\x00\xff"])
def test_corrupted_record_is_rewritten(fake_caches, capsys, content):
    first_use.record("FullIco", 3)
    path = first_use.record_path("FullIco", 3)
    path.write_bytes(content)
    with pytest.warns(CacheWarning, match="escnn first-use record"):
        assert first_use.announce("FullIco", 3)
    assert capsys.readouterr().err.startswith(NOTE)
    first_use._RECORDED.clear()  # a new process
    with pytest.warns(CacheWarning):
        first_use.record("FullIco", 3)
    json.loads(path.read_text())  # rewritten, valid
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not first_use.announce("FullIco", 3)


def test_new_escnn_cache_gets_the_note_again(fake_caches, capsys):
    first_use.record("FullIco", 3)
    assert not first_use.announce("FullIco", 3)
    # escnn's cache emptied and made anew (the new folder exists before the old one goes: a new inode)
    (fake_caches / "joblib.new").mkdir()
    shutil.rmtree(fake_caches / "joblib")
    (fake_caches / "joblib.new").rename(fake_caches / "joblib")
    with pytest.warns(CacheWarning, match="made for"):  # the record names the old folder: stale
        assert first_use.announce("FullIco", 3)
    shutil.rmtree(fake_caches / "joblib")  # nothing cached at all
    assert first_use.announce("FullIco", 3)
    assert capsys.readouterr().err.count(NOTE) == 2


# -- end to end: a fresh escnn cache, then a warm one -------------------------------------------------
CHILD = r"""
import sys, numpy as np, torch, steerable as st
from steerable.nn.kernel import ImplicitKernel
name, out = sys.argv[1], sys.argv[2]
G = st.group(name, backend="escnn")
f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])
torch.manual_seed(0)
kernel = ImplicitKernel(f, f, basis_size=None, max_radius=1.0).double()
pos = torch.randn(16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
with torch.no_grad():
    np.save(out, kernel(pos).numpy())
"""


@pytest.fixture(scope="module")
def fresh_escnn(tmp_path_factory):
    """A copy of the installed escnn package without its cache (escnn binds its cache folder to its
    package folder when imported: the copy first on ``PYTHONPATH`` has its own, empty one)."""
    import escnn

    site = tmp_path_factory.mktemp("fresh-escnn")
    ignore = shutil.ignore_patterns("_cache", "__pycache__")
    shutil.copytree(Path(escnn.__file__).parent, site / "escnn", ignore=ignore)
    return site


def _run(site: Path, steerable_cache: Path, name: str, out: Path) -> str:
    env = dict(os.environ, STEERABLE_CACHE=str(steerable_cache), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")])
    r = subprocess.run([sys.executable, "-c", CHILD, name, str(out)], env=env, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stderr


def _round_trip(fresh_escnn: Path, tmp_path: Path, name: str) -> None:
    cache = fresh_escnn / "escnn" / "group" / "_cache"
    shutil.rmtree(cache, ignore_errors=True)
    cold_err = _run(fresh_escnn, tmp_path / "st", name, tmp_path / "cold.npy")
    assert f"steerable: building escnn's bases for {name} on R^3" in cold_err
    assert str(cache) in cold_err  # the note says where escnn caches
    assert any((cache / "joblib").iterdir())  # escnn cached into the fresh copy, not the shared one
    warm_err = _run(fresh_escnn, tmp_path / "st", name, tmp_path / "warm.npy")
    assert "steerable: building" not in warm_err
    cold, warm = np.load(tmp_path / "cold.npy"), np.load(tmp_path / "warm.npy")
    assert cold.shape == warm.shape and np.abs(cold).max() > 0
    assert np.array_equal(cold, warm)


def test_round_trip_fresh_escnn_cache(fresh_escnn, tmp_path):
    _round_trip(fresh_escnn, tmp_path, "Octa")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["FullIco", "FullOcta"])
def test_round_trip_fresh_escnn_cache_slow_groups(fresh_escnn, tmp_path, name):
    _round_trip(fresh_escnn, tmp_path, name)
