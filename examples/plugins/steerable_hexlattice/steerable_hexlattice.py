"""A third-party steerable plugin: the 12 symmetries of the hexagonal lattice (6mm) on R^2.

It adds a group, not a backend: the built-in ``matrix`` backend builds it from two generators.
Installed (``pip install .``), it is found through the ``steerable`` entry-point group only.
"""

import math

from steerable import GroupSpec, hookimpl


def build(dim: int):
    from steerable.plugins.matrix_backend import group_from_generators

    c, s = math.cos(math.pi / 3), math.sin(math.pi / 3)  # 60° rotation; mirror y -> -y
    return group_from_generators([[[c, -s], [s, c]], [[1.0, 0.0], [0.0, -1.0]]], name="HexLattice")


@hookimpl
def steerable_groups():
    return [
        GroupSpec(
            backend="matrix",
            display="HexLattice",
            pattern="HEXLATTICE",
            dims=(2,),
            build=build,
            doc="symmetries of the hexagonal lattice (6mm, 12 elements)",
        )
    ]
