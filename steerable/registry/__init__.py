"""Plugins: what they contribute (:class:`Backend`, :class:`GroupSpec`), the hooks they implement
(:mod:`steerable.registry.hookspec`) and the registry that discovers them, checks them and builds
groups by name (:mod:`steerable.registry._registry`, whose docstring tells how to write a plugin)."""

from . import hookspec
from ._registry import (
    BACKEND_ENV,
    ENTRY_POINT_GROUP,
    PROJECT,
    BackendStatus,
    Registry,
    ShadowingWarning,
    group,
    list_backends,
    list_groups,
    register_plugin,
    reset_registry,
)
from .backend import Backend, GroupSpec, normalize_group_name
from .hookspec import HOOK_NAMES, hookimpl

__all__ = [
    "BACKEND_ENV",
    "ENTRY_POINT_GROUP",
    "HOOK_NAMES",
    "PROJECT",
    "Backend",
    "BackendStatus",
    "GroupSpec",
    "Registry",
    "ShadowingWarning",
    "group",
    "hookimpl",
    "hookspec",
    "list_backends",
    "list_groups",
    "normalize_group_name",
    "register_plugin",
    "reset_registry",
]
