"""ModelNet point-cloud classification (PyG ``ModelNet`` reader, steerable point convolutions)."""

from .train import main

__all__ = ["main"]
