"""Rebuild lie_learn's wheel against numpy 2, for the GPU machine (``scripts/device_wheels.sh`` runs it).

Why: the lie_learn 0.0.2 wheels on PyPI hold four Cython modules (``groups/SO3``,
``representations/SO3/irrep_bases``, ``representations/SO3/pinchon_hoggan/pinchon_hoggan``,
``spaces/spherical_quadrature``) that ``cimport numpy`` and were compiled against numpy 1.x headers
(their binaries name ``numpy.core._multiarray_umath`` and the build's ``numpy/core/include``).  Under
numpy 2 their import fails (seen on Python 3.12 with numpy 2.5.2: "numpy.core.multiarray failed to
import"), and escnn reaches one of them at import (``so3_utils`` -> ``wigner_d`` ->
``irrep_bases``).  The GPU machine has numpy 2.5 under its scipy, torch, jax and numba; carrying numpy
1.26 in front of it would swap numpy under all of them.  Extensions built against numpy 2 headers run
on numpy 2 (and on 1.x back to numpy's default target version), so this rebuilds the same ``.pyx``
sources (``language_level=2``: ``groups/SO3.pyx`` has a Python 2 ``print`` statement, so the
PyPI build must have used it too) against the numpy of the running interpreter and packs
the wheel again: same files, the ``.so`` files replaced, the stale generated ``.c`` files dropped,
``Requires-Dist: numpy <2`` made ``numpy``, build tag ``1`` (so the file name says it is not PyPI's).
A module whose source no longer compiles against numpy 2 is left out, with the reason printed: with
lie_learn 0.0.2 that is ``pinchon_hoggan.pyx`` (``np.int_t``; its ``np.int`` already failed under numpy
>= 1.24, and escnn does not use it).

Run with the Python the wheel is for (3.12 for the GPU machine), with ``cython``, ``numpy``,
``setuptools`` and ``wheel`` installed::

    python3.12 scripts/rebuild_lie_learn.py SRC.whl OUT_DIR

Prints the path of the new wheel and the newest glibc symbol version its modules need (the platform
tag is set from it, so that pip on an older system refuses it instead of failing at import).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path


def _build_extensions(root: Path) -> tuple[list[Path], dict[str, str]]:
    """Compile every ``.pyx`` under ``root`` in place, one at a time (module names from the paths).

    Returns the new ``.so`` files and, for each source that does not compile against this numpy, its
    module name and the compiler's first error line: such a module is left out (its old ``.so``
    could not load under numpy 2 either).
    """
    import os

    import numpy
    from Cython.Build import cythonize
    from Cython.Compiler.Errors import CompileError
    from setuptools import Extension, setup

    pyx = sorted(root.rglob("*.pyx"))
    if not pyx:
        raise SystemExit(f"no .pyx sources under {root}: not lie_learn's wheel?")
    for old in root.rglob("*.so"):
        old.unlink()
    skipped: dict[str, str] = {}
    scratch = tempfile.mkdtemp()  # setuptools' build folders, outside the wheel's tree
    cwd = Path.cwd()
    os.chdir(root)
    try:
        for p in pyx:
            name = ".".join(p.relative_to(root).with_suffix("").parts)
            p.with_suffix(".c").unlink(missing_ok=True)
            ext = Extension(
                name,
                [str(p.relative_to(root))],
                include_dirs=[numpy.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
            try:
                mods = cythonize([ext], quiet=True, compiler_directives={"language_level": 2})
            except CompileError:
                skipped[name] = "Cython could not compile it against this numpy (see the error above)"
                continue
            setup(
                name="lie_learn_rebuild",
                ext_modules=mods,
                script_args=["-q", "build_ext", "--inplace", "--build-temp", scratch, "--build-lib", scratch],
            )
    finally:
        os.chdir(cwd)
    for c in (p.with_suffix(".c") for p in pyx):
        c.unlink(missing_ok=True)  # generated on the way; not needed at run time
    return sorted(root.rglob("*.so")), skipped


def _max_glibc(libs: list[Path]) -> tuple[int, int]:
    """The newest ``GLIBC_x.y`` symbol version the shared objects need (``objdump -T``), at least 2.17
    (manylinux2014's, the oldest tag of PyPI's wheel)."""
    best = (2, 17)
    for lib in libs:
        out = subprocess.run(["objdump", "-T", str(lib)], capture_output=True, text=True, check=True).stdout
        for major, minor in re.findall(r"GLIBC_(\d+)\.(\d+)", out):
            best = max(best, (int(major), int(minor)))
    return best


def _edit_metadata(dist_info: Path, glibc: tuple[int, int]) -> None:
    meta = dist_info / "METADATA"
    text = meta.read_text()
    text = text.replace(
        'Requires-Dist: numpy <2 ; python_version >= "3.0"', 'Requires-Dist: numpy ; python_version >= "3.0"'
    )
    meta.write_text(text)
    wheel = dist_info / "WHEEL"
    lines = [ln for ln in wheel.read_text().splitlines() if ln.strip() and not ln.startswith("Tag:")]
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    lines.append(f"Tag: {py}-{py}-manylinux_{glibc[0]}_{glibc[1]}_x86_64")
    wheel.write_text("\n".join(lines) + "\n")


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    src, out = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "wheel", "unpack", "-d", tmp, str(src)], check=True, stdout=subprocess.DEVNULL
        )
        (root,) = Path(tmp).iterdir()
        built, skipped = _build_extensions(root)
        if not built:
            raise SystemExit("no module compiled")
        glibc = _max_glibc(built)
        (dist_info,) = root.glob("*.dist-info")
        _edit_metadata(dist_info, glibc)
        out.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "wheel", "pack", "--build-number", "1", "-d", str(out), str(root)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"wheel pack failed:\n{done.stderr}")
    import numpy

    print(done.stdout.strip())
    print(f"built against numpy {numpy.__version__}: {', '.join(p.name for p in built)}")
    print(f"newest glibc symbol needed: {glibc[0]}.{glibc[1]}")
    for name, why in skipped.items():
        print(f"left out {name}: {why}")


if __name__ == "__main__":
    main(sys.argv[1:])
