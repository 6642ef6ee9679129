"""steerable: implicit steerable convolution kernels on any symmetry group and any backend.

>>> import steerable as st
>>> G = st.group("SO(3)")                     # doctest: +SKIP
>>> f = st.FieldType(G, [G.trivial_rep(), G.standard_rep()])   # doctest: +SKIP

Importing this package is cheap: no backend, torch-geometric or lightning is imported until used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first access)
_EXPORTS = {
    "Group": "steerable.core.group",
    "GroupElements": "steerable.core.group",
    "Rep": "steerable.core.representation",
    "FieldType": "steerable.core.representation",
    "KernelMLPSpec": "steerable.core.mlp",
    "RadialBasis": "steerable.core.radial",
    "ImplicitKernel": "steerable.nn",
    "GridConv": "steerable.nn",
    "PointConv": "steerable.nn",
    "Gate": "steerable.nn",
    "FieldLinear": "steerable.nn",
    "PointConvBlock": "steerable.nn",
    "MessageBlock": "steerable.nn",
    "FieldBatchNorm": "steerable.nn",
    "FieldDropout": "steerable.nn",
    "FieldNorm": "steerable.nn",
    "GlobalPool": "steerable.nn",
    "InvariantPool": "steerable.nn",
    "NormNonlinearity": "steerable.nn",
    "Sequential": "steerable.nn",
    "global_pool": "steerable.nn",
    "invariant_pool": "steerable.nn",
    "ShadowingWarning": "steerable.registry",
    "equivariance_error": "steerable.testing",
    "assert_equivariant": "steerable.testing",
    "Backend": "steerable.registry.backend",
    "GroupSpec": "steerable.registry.backend",
    "group": "steerable.registry",
    "list_backends": "steerable.registry",
    "list_groups": "steerable.registry",
    "register_plugin": "steerable.registry",
    "reset_registry": "steerable.registry",
    "hookimpl": "steerable.registry",
    "check_equivariance": "steerable.testing",
    "group_from_generators": "steerable.plugins.matrix_backend",
}

# subpackages reachable as attributes (``st.graph.radius_graph``, ``st.nn.Gate``), imported on first access
_SUBMODULES = ("core", "graph", "nn", "ops", "registry", "testing")

__all__ = sorted(_EXPORTS) + list(_SUBMODULES)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"steerable.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'steerable' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
