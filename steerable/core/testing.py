"""Compatibility alias: the checks live in :mod:`steerable.testing`.

``from steerable.core.testing import check_equivariance`` keeps working (it is the path the README
used); new code imports :mod:`steerable.testing`.  This is the one module under ``core`` that
reaches above it, and only to re-export (import-linter's ``ignore_imports`` names it).
"""

from steerable.testing import *  # noqa: F403
from steerable.testing import __all__  # noqa: F401
