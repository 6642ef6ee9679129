"""QM9 molecular property regression (PyG ``QM9``, steerable point convolutions)."""

from .train import main

__all__ = ["main"]
