#!/usr/bin/env bash
# Set up a fresh clone: system packages, a virtual environment in .venv, the package with its `dev` extra
# (every backend, the tasks, qm9pack for QM9 offline, pytest, ruff, mypy, import-linter, sphinx).
# Idempotent: a second run only checks what is there.  requirements/constraints.txt pins torch to the
# local CPU build (no multi-GB CUDA wheel is pulled in), numpy to 1.26.4 (escnn's dependency lie_learn
# needs numpy<2) and the dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# escnn's dependency py3nj compiles Fortran when no wheel fits.
if ! command -v gfortran >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "[setup] installing gfortran (apt)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gfortran >/dev/null
    else
        echo "[setup] warning: gfortran missing and cannot be installed here; escnn may fail to build" >&2
    fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
# Installing is quick when everything is present already; pip skips satisfied requirements.
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c requirements/constraints.txt torch==2.13.0 numpy==1.26.4
.venv/bin/python -m pip install -q -c requirements/constraints.txt -e ".[dev]"
echo "[setup] ready: $(.venv/bin/python -c 'import torch, steerable; print("torch", torch.__version__, "| steerable", steerable.__version__)')"
