"""Plugin discovery and lookup of groups by name.

Plugins are Python modules listed in the ``steerable`` entry-point group (built-ins included, see
``pyproject.toml``).  Each implements one or both hooks below with ``@steerable.hookimpl``::

    @steerable.hookimpl
    def steerable_backends():
        return [Backend(name="mybackend", priority=50, groups=[...], load=import_my_dependency)]

    @steerable.hookimpl
    def steerable_groups():
        return [GroupSpec(backend="mybackend", display="Foo", pattern="FOO", dims=(3,), build=...)]

Discovery happens on first use, not on ``import steerable``.  A plugin whose module fails to import,
or whose backend's ``load()`` raises, is listed as unavailable with the reason; the others work.

Backend choice for :func:`group`: the ``backend=`` argument, else the ``STEERABLE_BACKEND``
environment variable, else the available backend with the lowest ``priority`` that offers the
group (built-ins: escnn 10, e3nn 20, matrix 30).
"""
from __future__ import annotations

import os
import threading
import traceback
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Sequence

import pluggy

from ..core.group import Group
from .backend import Backend, GroupSpec

PROJECT = "steerable"
ENTRY_POINT_GROUP = "steerable"
BACKEND_ENV = "STEERABLE_BACKEND"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class HookSpecs:
    """The hooks a ``steerable`` plugin may implement."""

    @hookspec
    def steerable_backends(self) -> Sequence[Backend]:
        """Backends this plugin offers."""

    @hookspec
    def steerable_groups(self) -> Sequence[GroupSpec]:
        """Extra group families, built by a backend this or another plugin offers."""


@dataclass
class BackendStatus:
    """One row of :func:`list_backends`."""

    name: str
    available: bool
    reason: str | None
    groups: list[str] = field(default_factory=list)
    plugin: str = ""

    def __str__(self) -> str:
        state = "available" if self.available else f"unavailable: {self.reason}"
        return f"{self.name:<10} {state}; groups: {', '.join(self.groups) or '-'}"


class Registry:
    """Holds the plugin manager, the discovered backends and the built groups."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._pm: pluggy.PluginManager | None = None
        self._broken: dict[str, str] = {}  # entry-point name -> why its module failed to import
        self._backends: dict[str, tuple[Backend, str]] = {}  # name -> (backend, plugin name)
        self._specs: list[GroupSpec] = []
        self._load_errors: dict[str, str | None] = {}  # backend name -> None (ok) or reason
        self._groups: dict[tuple, Group] = {}

    # -- discovery -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything; the next lookup discovers plugins again."""
        with self._lock:
            self.__init__()

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Register a plugin object or module directly (besides entry points)."""
        with self._lock:
            pm = self._manager()
            pm.register(plugin, name=name)
            self._collect()

    def _manager(self) -> pluggy.PluginManager:
        if self._pm is None:
            pm = pluggy.PluginManager(PROJECT)
            pm.add_hookspecs(HookSpecs)
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if pm.has_plugin(ep.name) or ep.name in self._broken:
                    continue
                try:
                    pm.register(ep.load(), name=ep.name)
                except Exception as exc:  # a broken plugin must not break the others
                    self._broken[ep.name] = f"{type(exc).__name__}: {exc}"
            self._pm = pm
            self._collect()
        return self._pm

    def _collect(self) -> None:
        pm = self._pm
        assert pm is not None
        self._backends, self._specs = {}, []
        for impl in pm.hook.steerable_backends.get_hookimpls():
            try:
                offered = impl.function()
            except Exception as exc:
                self._broken[impl.plugin_name] = f"steerable_backends() raised {type(exc).__name__}: {exc}"
                continue
            for backend in offered or ():
                self._backends[backend.name] = (backend, impl.plugin_name)
                self._specs.extend(backend.groups)
        for impl in pm.hook.steerable_groups.get_hookimpls():
            try:
                self._specs.extend(impl.function() or ())
            except Exception as exc:
                self._broken[impl.plugin_name] = f"steerable_groups() raised {type(exc).__name__}: {exc}"

    # -- backends --------------------------------------------------------------------------
    def _load(self, name: str) -> str | None:
        """Load backend ``name`` once; return ``None`` if usable, else the reason it is not."""
        if name not in self._load_errors:
            backend, _ = self._backends[name]
            try:
                backend.load()
                self._load_errors[name] = None
            except Exception as exc:
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self._load_errors[name] = detail
        return self._load_errors[name]

    def list_backends(self) -> list[BackendStatus]:
        """Every known backend (and every plugin that failed to import), with its status."""
        with self._lock:
            self._manager()
            rows = []
            for name, (backend, plugin) in sorted(self._backends.items(), key=lambda kv: kv[1][0].priority):
                reason = self._load(name)
                groups = [s.display for s in self._specs if s.backend == name]
                rows.append(BackendStatus(name, reason is None, reason, groups, plugin))
            for plugin, reason in sorted(self._broken.items()):
                rows.append(BackendStatus(plugin, False, f"plugin failed to load: {reason}", [], plugin))
            return rows

    def list_groups(self) -> list[GroupSpec]:
        """Every registered group family, of available and unavailable backends alike."""
        with self._lock:
            self._manager()
            return list(self._specs)

    def _known(self) -> str:
        names = sorted(self._backends) + [f"{p} (broken plugin)" for p in sorted(self._broken)]
        return ", ".join(names) or "none"

    # -- groups ----------------------------------------------------------------------------
    def group(self, name: str, dim: int | None = None, backend: str | None = None, **params: Any) -> Group:
        """Build (or fetch from the cache) group ``name`` acting on ``R^dim``; see :func:`group`."""
        if not isinstance(name, str):
            raise TypeError(f"group name must be a string, got {name!r}")
        with self._lock:
            self._manager()
            source = "backend="
            if backend is None and os.environ.get(BACKEND_ENV):
                backend, source = os.environ[BACKEND_ENV], f"{BACKEND_ENV}="
            if backend is not None and backend not in self._backends:
                raise ValueError(f"unknown backend {backend!r} (from {source}); known backends: {self._known()}")

            matches = [(spec, found) for spec in self._specs if (found := spec.match(name)) is not None]
            if not matches:
                raise ValueError(f"unknown group {name!r}; known groups: {self._catalogue()}")
            if dim is not None:
                in_dim = [(s, f) for s, f in matches if dim in s.dims]
                if not in_dim:
                    dims = sorted({d for s, _ in matches for d in s.dims})
                    raise ValueError(f"group {name!r} acts on R^n for n in {dims}, not on R^{dim}")
                matches = in_dim
            if backend is not None:
                offered = [(s, f) for s, f in matches if s.backend == backend]
                if not offered:
                    others = sorted({s.backend for s, _ in matches})
                    raise ValueError(
                        f"backend {backend!r} (from {source}) does not offer group {name!r}"
                        + (f" on R^{dim}" if dim else "") + f"; offered by: {', '.join(others)}"
                    )
                reason = self._load(backend)
                if reason is not None:
                    raise RuntimeError(f"backend {backend!r} is unavailable: {reason}")
                matches = offered
            else:
                usable = [(s, f) for s, f in matches if self._load(s.backend) is None]
                if not usable:
                    why = "; ".join(f"{s.backend}: {self._load(s.backend)}" for s, _ in matches)
                    raise RuntimeError(f"group {name!r} is offered only by unavailable backends ({why})")
                matches = sorted(usable, key=lambda m: self._backends[m[0].backend][0].priority)

            spec, found = matches[0]
            dim = spec.dims[0] if dim is None else dim
            clash = set(found) & set(params)
            if clash:
                raise ValueError(f"group {name!r}: parameter(s) {sorted(clash)} given twice")
            key = (spec.backend, spec.display, dim, tuple(sorted({**found, **params}.items())))
            if key not in self._groups:
                self._groups[key] = spec.build(dim, **found, **params)
            return self._groups[key]

    def _catalogue(self) -> str:
        by_backend: dict[str, list[str]] = {}
        for spec in self._specs:
            dims = "/".join(f"R^{d}" for d in spec.dims)
            by_backend.setdefault(spec.backend, []).append(f"{spec.display} ({dims})")
        return "; ".join(f"{b}: {', '.join(g)}" for b, g in by_backend.items()) or "none registered"


_registry = Registry()


def list_backends() -> list[BackendStatus]:
    """Name, availability (with the reason if not) and group families of every backend."""
    return _registry.list_backends()


def list_groups() -> list[GroupSpec]:
    """Every registered group family: ``display`` name, ``backend``, ``dims`` and ``doc``."""
    return _registry.list_groups()


def group(name: str, dim: int | None = None, backend: str | None = None, **params: Any) -> Group:
    """The group called ``name`` (e.g. ``"SO(3)"``, ``"C8"``, ``"O(2)"``) acting on ``R^dim``.

    Args:
        name: the group's name; matching ignores case, spaces, brackets and underscores.
        dim: the dimension of the space acted on; checked against the group, and choosing between
            ``R^2`` and ``R^3`` for names that exist in both (``"C4"`` defaults to ``R^2``).
        backend: which backend builds it; default: ``$STEERABLE_BACKEND``, else the preferred
            available backend offering the group.
        **params: further group parameters understood by the backend.

    Raises:
        ValueError: unknown group or backend (the message lists what exists), or a wrong ``dim``.
        RuntimeError: the chosen backend is installed but unusable (the message says why).
    """
    return _registry.group(name, dim=dim, backend=backend, **params)


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register a plugin module or object without an entry point."""
    _registry.register(plugin, name=name)


def reset_registry() -> None:
    """Forget discovered plugins and built groups (mostly for tests)."""
    _registry.reset()
