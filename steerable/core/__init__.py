"""Group theory and the backend contract: groups, representations and field types (identified by
key, :mod:`.representation`), the kernel-MLP contract (:mod:`.mlp`: ``KernelMLPSpec`` and the
``KernelMLP`` protocols), float64 constants that survive dtype moves (:mod:`.constants`) and radial
features (:mod:`.radial`).

Nothing here imports a backend (escnn, e3nn), lightning or torch-geometric, nor any other part of
``steerable``: layers (:mod:`steerable.nn`), autograd ops (:mod:`steerable.ops`), the plugin registry
(:mod:`steerable.registry`) and the checks (:mod:`steerable.testing`) build on it.  The contract is
enforced by import-linter (``pyproject.toml``).
"""
