"""Group theory and the backend contract: groups, representations, field types, the kernel-MLP
specification and radial features.

Nothing here imports a backend (escnn, e3nn), lightning or torch-geometric, nor any other part of
``steerable``: layers (:mod:`steerable.nn`), autograd ops (:mod:`steerable.ops`), the plugin registry
(:mod:`steerable.registry`) and the checks (:mod:`steerable.testing`) build on it.  The contract is
enforced by import-linter (``pyproject.toml``).
"""
