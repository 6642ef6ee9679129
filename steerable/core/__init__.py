"""Backend-agnostic core: groups, representations, implicit kernels, convolutions, registry.

Nothing here imports escnn, e3nn or lightning (DESIGN.md, seam 1).
"""
