"""Compatibility alias: the cache helpers moved to :mod:`steerable.cache`, shared by the tasks and the
matrix backend (plugins may not import the tasks)."""

from steerable.cache import CacheWarning, InvalidCache, atomic_write, digest, read_validated

__all__ = ["CacheWarning", "InvalidCache", "atomic_write", "read_validated", "digest"]
