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
    "ImplicitKernel": "steerable.core.kernel",
    "GridConv": "steerable.core.grid_conv",
    "PointConv": "steerable.core.point_conv",
    "Gate": "steerable.core.layers",
    "FieldLinear": "steerable.core.layers",
    "PointConvBlock": "steerable.core.layers",
    "MessageBlock": "steerable.core.layers",
    "Backend": "steerable.core.backend",
    "GroupSpec": "steerable.core.backend",
    "group": "steerable.core.registry",
    "list_backends": "steerable.core.registry",
    "list_groups": "steerable.core.registry",
    "register_plugin": "steerable.core.registry",
    "reset_registry": "steerable.core.registry",
    "hookimpl": "steerable.core.registry",
    "check_equivariance": "steerable.core.testing",
    "group_from_generators": "steerable.plugins.matrix_backend",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'steerable' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
