"""Plugins: what they contribute (:class:`Backend`, :class:`GroupSpec`), the hooks they implement
(:mod:`steerable.registry.hookspec`) and the registry that discovers them and builds groups by name."""
from ._registry import (
    BACKEND_ENV,
    ENTRY_POINT_GROUP,
    PROJECT,
    BackendStatus,
    Registry,
    group,
    hookimpl,
    hookspec,
    list_backends,
    list_groups,
    register_plugin,
    reset_registry,
)
from .backend import Backend, GroupSpec, normalize_group_name

__all__ = [
    "BACKEND_ENV",
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "Backend",
    "BackendStatus",
    "GroupSpec",
    "Registry",
    "group",
    "hookimpl",
    "hookspec",
    "list_backends",
    "list_groups",
    "normalize_group_name",
    "register_plugin",
    "reset_registry",
]
