"""Plugin discovery, validation and lookup of groups by name.

Writing a plugin
----------------
A plugin is a module listed in the ``steerable`` entry-point group of its distribution (the
built-ins are listed in ``pyproject.toml``), or any object passed to :func:`register_plugin`.  It
implements one or both hooks of :mod:`steerable.registry.hookspec`, marked ``@steerable.hookimpl``::

    # pyproject.toml:  [project.entry-points.steerable]
    #                  mybackend = "my_package.steerable_plugin"
    import steerable

    @steerable.hookimpl
    def steerable_backends():
        return [steerable.Backend(name="mybackend", priority=50, groups=[...], load=import_my_dependency)]

    @steerable.hookimpl
    def steerable_groups():
        return [steerable.GroupSpec(backend="matrix", display="Foo", pattern="FOO", dims=(3,), build=build_foo)]

Discovery happens on first use (``st.group``, ``st.list_backends``, ``st.list_groups``), not on
``import steerable``.  Built-in plugins (the entry points of the ``steerable`` distribution) are
registered first, then the others in the order of their entry-point names, then those of
:func:`register_plugin` in call order; for any name, the first registration wins (below).

What is checked
---------------
A plugin is *broken*, and none of its backends or groups is used, when its module fails to import,
it implements a hook that does not exist (pluggy's ``check_pending``: ``steerable_group`` for
``steerable_groups``), it defines a hook function without ``@steerable.hookimpl``, it implements no
hook, a hook raises, or a hook returns something else than a sequence of valid :class:`Backend` /
:class:`GroupSpec` objects (``5``, ``[None]``, strings, an invalid regular expression, empty
``dims``, a non-callable ``build``).  A broken plugin is a row of :func:`list_backends` with
``broken=True`` and the reason, and is named in the error for an unknown group; every other plugin
keeps working.  A backend whose ``load()`` raises is *unavailable* with the reason.

Nothing is shadowed silently: the first registration of a backend name, or of a group family of a
backend (same ``display`` name, or a ``pattern`` matching another family's name), wins; a later one
is ignored with a :class:`ShadowingWarning` naming both plugins.  Two backends offering the same
group name is normal: ``priority`` decides.  A ``build()`` that returns something else than a
:class:`~steerable.core.group.Group` acting on ``R^dim`` raises an error naming the plugin and the
family, and nothing is cached.

Backend choice for :func:`group`: the ``backend=`` argument, else the ``STEERABLE_BACKEND``
environment variable, else the available backend with the lowest ``priority`` that offers the
group (built-ins: escnn 10, e3nn 20, matrix 30).
"""

from __future__ import annotations

import difflib
import os
import re
import threading
import traceback
import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspec as _hookspec
from .backend import Backend, GroupSpec, describe, spelling_error
from .hookspec import HOOK_NAMES, PROJECT, hookimpl

if TYPE_CHECKING:  # imported in _build: the core imports torch, and listing needs no torch
    from ..core.group import Group

ENTRY_POINT_GROUP = "steerable"
BACKEND_ENV = "STEERABLE_BACKEND"

__all__ = [
    "BACKEND_ENV",
    "ENTRY_POINT_GROUP",
    "PROJECT",
    "BackendStatus",
    "Registry",
    "ShadowingWarning",
    "group",
    "hookimpl",
    "list_backends",
    "list_groups",
    "register_plugin",
    "reset_registry",
]


class ShadowingWarning(UserWarning):
    """A plugin registered a backend name, a group family or an entry-point name that an earlier
    plugin already registered; the earlier registration is kept and the later one ignored."""


class _BrokenPlugin(Exception):
    """Internal: why a plugin's hook results cannot be used."""


@dataclass
class BackendStatus:
    """One row of :func:`list_backends`: a backend, or a broken plugin (``broken=True``).

    ``loaded`` is ``False`` for a row of ``list_backends(load=False)`` whose backend was not loaded:
    then ``available`` only says that the modules it requires are installed (and ``reason`` names
    the missing ones); its ``load()`` runs on first use and may still fail.
    """

    name: str
    available: bool
    reason: str | None
    groups: list[str] = field(default_factory=list)
    plugin: str = ""
    broken: bool = False
    loaded: bool = True

    def __str__(self) -> str:
        if self.broken:
            return f"{self.name:<10} broken plugin: {self.reason}"
        if self.available and not self.loaded:
            state = "installed (not loaded yet)"
        else:
            state = "available" if self.available else f"unavailable: {self.reason}"
        return f"{self.name:<10} {state}; groups: {', '.join(self.groups) or '-'}"


@dataclass(frozen=True)
class _Family:
    spec: GroupSpec
    plugin: str


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_builtin(ep: EntryPoint) -> bool:
    """Declared by the ``steerable`` distribution itself (else, if unknown: a module inside the package)."""
    dist = getattr(ep, "dist", None)
    if dist is not None and getattr(dist, "name", None):
        return dist.name.lower().replace("_", "-") == PROJECT
    return ep.value.split(":")[0].startswith(f"{PROJECT}.")


def _source(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{ep.value}" + (f" from distribution {dist.name}" if dist is not None else "")


def _safe_match(spec: GroupSpec, name: str) -> bool:
    try:
        return spec.match(name) is not None
    except Exception:
        return False


def _clash(old: GroupSpec, new: GroupSpec) -> str | None:
    """How family ``new`` collides with ``old`` of the same backend, or ``None``."""
    if old.display == new.display:
        return "has the same name as"
    for name in old.example_names():
        if _safe_match(new, name):
            return f"has a pattern matching {name!r}, a name of"
    for name in new.example_names():
        if _safe_match(old, name):
            return f"has the name {name!r}, matched by the pattern of"
    return None


def _checked(hook: str, result: Any, cls: type[Backend] | type[GroupSpec]) -> list:
    """The items of ``hook``'s ``result``, each a valid ``cls``; else raise :class:`_BrokenPlugin`."""
    if result is None:
        return []
    expected = f"expected a list of steerable.{cls.__name__}"
    if isinstance(result, (str, bytes)) or not hasattr(result, "__iter__"):
        raise _BrokenPlugin(f"{hook}() returned {describe(result)}; {expected}")
    try:
        items = list(result)
    except Exception as exc:
        raise _BrokenPlugin(f"{hook}() returned {describe(result)}, which cannot be iterated ({exc})") from None
    for i, item in enumerate(items):
        if not isinstance(item, cls):
            raise _BrokenPlugin(f"{hook}() returned {describe(result)}: item {i} is {describe(item)}; {expected}")
        try:
            item.check()
        except (TypeError, ValueError) as exc:
            raise _BrokenPlugin(f"{hook}() returned an invalid {cls.__name__}: {exc}") from None
    return items


def _fill_display(display: str, params: dict[str, int]) -> str:
    """A family's display name with its parameters filled in: ``"C{N}"``, ``{"N": 4}`` -> ``"C4"``."""

    def value(m: re.Match[str]) -> str:
        return str(params.get(m.group(1), m.group(0)))

    return re.sub(r"\{(\w+)\}", value, display)


class Registry:
    """Holds the plugin manager, the discovered backends and group families, and the built groups."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._clear()

    def _clear(self) -> None:
        self._pm: pluggy.PluginManager | None = None
        self._broken: dict[str, str] = {}  # plugin name -> why none of its contributions is used
        self._sources: dict[str, str] = {}  # plugin name -> where it came from (for messages)
        self._backends: dict[str, tuple[Backend, str]] = {}  # name -> (backend, plugin name)
        self._families: list[_Family] = []
        self._load_errors: dict[str, str | None] = {}  # backend name -> None (ok) or reason
        self._groups: dict[tuple, Group] = {}
        self._reported: set[str] = set()  # shadowing warnings already given

    # -- discovery -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything; the next lookup discovers plugins again."""
        with self._lock:
            self._clear()

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Register a plugin object or module directly (besides entry points), checked like the others.

        Raises:
            ValueError: the plugin, or another with the same ``name``, is already registered.
        """
        with self._lock:
            pm = self._manager()
            name = name or pm.get_canonical_name(plugin)
            if not pm.has_plugin(name):  # a new registration replaces a failed import of that name
                self._broken.pop(name, None)
            self._register(pm, plugin, name)  # raises ValueError if the name or the object is registered
            self._sources[name] = f"register_plugin({describe(plugin)})"
            self._check_pending(pm)
            self._collect(pm)

    def _manager(self) -> pluggy.PluginManager:
        if self._pm is None:
            pm = pluggy.PluginManager(PROJECT)
            pm.add_hookspecs(_hookspec)
            eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (not _is_builtin(ep), ep.name))
            for ep in eps:
                if ep.name in self._sources:
                    if self._sources[ep.name] != _source(ep):
                        self._warn(
                            f"entry point {ep.name!r} = {_source(ep)} is ignored: plugin name {ep.name!r} "
                            f"is already taken by {self._sources[ep.name]}"
                        )
                    continue
                self._sources[ep.name] = _source(ep)
                try:
                    plugin = ep.load()
                except Exception as exc:  # a broken plugin must not break the others
                    detail = _one_line("".join(traceback.format_exception_only(type(exc), exc)))
                    self._broken[ep.name] = f"failed to import {ep.value}: {detail}"
                    continue
                if plugin is None:
                    self._broken[ep.name] = f"entry point {ep.value} is None"
                    continue
                other = pm.get_name(plugin)
                if other is not None:
                    self._warn(
                        f"entry point {ep.name!r} = {_source(ep)} is ignored: the same object is already "
                        f"registered as plugin {self._label(other)}"
                    )
                    continue
                self._register(pm, plugin, ep.name)
            self._check_pending(pm)
            self._collect(pm)
            self._pm = pm
        return self._pm

    def _register(self, pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
        try:
            pm.register(plugin, name=name)
        except pluggy.PluginValidationError as exc:  # e.g. a hook implementation with arguments
            self._broken[name] = _one_line(str(exc))

    def _check_pending(self, pm: pluggy.PluginManager) -> None:
        """Run pluggy's ``check_pending``; a plugin implementing an unknown hook is unregistered, broken."""
        while True:
            try:
                pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = pm.get_name(exc.plugin) or describe(exc.plugin)
                unknown = [
                    hook
                    for hook, caller in vars(pm.hook).items()
                    if not hook.startswith("_")
                    and not caller.has_spec()
                    and any(impl.plugin is exc.plugin for impl in caller.get_hookimpls())
                ]
                hints = []
                for hook in unknown:
                    close = difflib.get_close_matches(hook, HOOK_NAMES, n=1)
                    hints.append(f"{hook!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
                self._broken[name] = f"unknown hook {', '.join(hints)}; the hooks are {', '.join(HOOK_NAMES)}"
                pm.unregister(exc.plugin)

    def _results(self, pm: pluggy.PluginManager, name: str, plugin: Any) -> tuple[list[Backend], list[GroupSpec]]:
        """Call plugin ``name``'s hooks and check what they return; raise :class:`_BrokenPlugin` if unusable."""
        results: dict[str, list] = {}
        implemented = False
        for hook, cls in zip(HOOK_NAMES, (Backend, GroupSpec)):
            impls = [impl for impl in getattr(pm.hook, hook).get_hookimpls() if impl.plugin_name == name]
            if not impls:
                if callable(getattr(plugin, hook, None)):
                    raise _BrokenPlugin(f"{hook} is defined but not marked with @steerable.hookimpl")
                results[hook] = []
                continue
            implemented = True
            items = []
            for impl in impls:
                try:
                    result = impl.function()
                except Exception as exc:
                    raise _BrokenPlugin(f"{hook}() raised {type(exc).__name__}: {_one_line(str(exc))}") from None
                items += _checked(hook, result, cls)
            results[hook] = items
        if not implemented:
            raise _BrokenPlugin(f"implements none of the hooks {', '.join(HOOK_NAMES)} (marked @steerable.hookimpl)")
        return results["steerable_backends"], results["steerable_groups"]

    def _collect(self, pm: pluggy.PluginManager) -> None:
        """Rebuild the backends and families from the registered plugins, first registration first."""
        backends: dict[str, tuple[Backend, str]] = {}
        families: list[_Family] = []
        for name, plugin in pm.list_name_plugin():
            if name in self._broken or plugin is None:
                continue
            try:
                offered, extra = self._results(pm, name, plugin)
            except _BrokenPlugin as exc:
                self._broken[name] = str(exc)
                continue
            for backend in offered:
                if backend.name in backends:
                    first = backends[backend.name][1]
                    self._warn(
                        f"plugin {self._label(name)} registers backend {backend.name!r}, already registered "
                        f"by plugin {self._label(first)}; the first registration is kept, this one ignored"
                    )
                    continue
                backends[backend.name] = (backend, name)
                for spec in backend.groups:
                    self._add_family(families, _Family(spec, name))
            for spec in extra:
                self._add_family(families, _Family(spec, name))
        self._backends, self._families = backends, families

    def _add_family(self, families: list[_Family], new: _Family) -> None:
        for old in families:
            if old.spec.backend != new.spec.backend:
                continue
            how = _clash(old.spec, new.spec)
            if how is not None:
                self._warn(
                    f"plugin {self._label(new.plugin)} registers group {new.spec.display!r} for backend "
                    f"{new.spec.backend!r}, which {how} the group {old.spec.display!r} registered by plugin "
                    f"{self._label(old.plugin)}; the first registration is kept, this one ignored"
                )
                return
        families.append(new)

    def _label(self, plugin: str) -> str:
        source = self._sources.get(plugin)
        return f"{plugin!r} ({source})" if source else repr(plugin)

    def _warn(self, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            warnings.warn(message, ShadowingWarning, stacklevel=4)

    # -- backends --------------------------------------------------------------------------
    def _load(self, name: str) -> str | None:
        """Load backend ``name`` once; return ``None`` if usable, else the reason it is not."""
        if name not in self._backends:
            return f"no plugin offers backend {name!r}"
        if name not in self._load_errors:
            backend, _ = self._backends[name]
            try:
                backend.load()
                self._load_errors[name] = None
            except Exception as exc:
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                self._load_errors[name] = detail
        return self._load_errors[name]

    def list_backends(self, load: bool = True) -> list[BackendStatus]:
        """Every known backend, then every broken plugin; see :func:`list_backends`."""
        with self._lock:
            self._manager()
            rows = []
            for name, (backend, plugin) in sorted(self._backends.items(), key=lambda kv: kv[1][0].priority):
                groups = [f.spec.display for f in self._families if f.spec.backend == name]
                if load or name in self._load_errors or not backend.requires:
                    reason = self._load(name)
                    rows.append(BackendStatus(name, reason is None, reason, groups, plugin))
                    continue
                missing = backend.missing_requirements()
                reason = f"requires {', '.join(missing)}, not installed" if missing else None
                rows.append(BackendStatus(name, not missing, reason, groups, plugin, loaded=False))
            for plugin, reason in sorted(self._broken.items()):
                rows.append(BackendStatus(plugin, False, reason, [], plugin, broken=True))
            return rows

    def list_groups(self) -> list[GroupSpec]:
        """Every registered group family, of available and unavailable backends alike."""
        with self._lock:
            self._manager()
            return [f.spec for f in self._families]

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
            problem = spelling_error(name)
            if problem is not None:
                raise ValueError(f"group name {name!r}: {problem}{self._did_you_mean(name)}")
            source = "backend="
            if backend is None and os.environ.get(BACKEND_ENV):
                backend, source = os.environ[BACKEND_ENV], f"{BACKEND_ENV}="
            if backend is not None and backend not in self._backends:
                raise ValueError(f"unknown backend {backend!r} (from {source}); known backends: {self._known()}")

            matches, failures = [], []
            for family in self._families:
                try:
                    found = family.spec.match(name)
                except Exception as exc:  # only names this family's pattern matches are affected
                    failures.append(
                        f"plugin {family.plugin!r}: group {family.spec.display!r} failed to match "
                        f"{name!r} ({type(exc).__name__}: {_one_line(str(exc))})"
                    )
                    continue
                if found is not None:
                    matches.append((family, found))
            if not matches:
                if failures:
                    raise ValueError(f"group {name!r}: " + "; ".join(failures))
                raise ValueError(
                    f"unknown group {name!r}{self._did_you_mean(name)}; names ignore case, spaces, round "
                    f"brackets and underscores, nothing else; known groups: {self._catalogue()}"
                    f"{self._broken_note()}"
                )
            if dim is not None:
                in_dim = [(f, p) for f, p in matches if dim in f.spec.dims]
                if not in_dim:
                    dims = sorted({d for f, _ in matches for d in f.spec.dims})
                    raise ValueError(f"group {name!r} acts on R^n for n in {dims}, not on R^{dim}")
                matches = in_dim
            if backend is not None:
                offered = [(f, p) for f, p in matches if f.spec.backend == backend]
                if not offered:
                    others = sorted({f.spec.backend for f, _ in matches})
                    raise ValueError(
                        f"backend {backend!r} (from {source}) does not offer group {name!r}"
                        + (f" on R^{dim}" if dim else "")
                        + f"; offered by: {', '.join(others)}"
                    )
                reason = self._load(backend)
                if reason is not None:
                    raise RuntimeError(f"backend {backend!r} is unavailable: {reason}")
                matches = offered
            else:
                # preferred first; a backend is loaded only when no preferred one is usable
                ranked = sorted(matches, key=lambda m: self._backends[m[0].spec.backend][0].priority)
                usable = next(((f, p) for f, p in ranked if self._load(f.spec.backend) is None), None)
                if usable is None:
                    why = "; ".join(f"{f.spec.backend}: {self._load(f.spec.backend)}" for f, _ in matches)
                    raise RuntimeError(f"group {name!r} is offered only by unavailable backends ({why})")
                matches = [usable]
            family, found = matches[0]
            dim = family.spec.dims[0] if dim is None else dim
            clash = set(found) & set(params)
            if clash:
                raise ValueError(f"group {name!r}: parameter(s) {sorted(clash)} given twice")
            key = (family.spec.backend, family.spec.display, dim, tuple(sorted({**found, **params}.items())))
            if key not in self._groups:
                self._groups[key] = self._build(family, dim, {**found, **params})
            return self._groups[key]

    def _build(self, family: _Family, dim: int, params: dict[str, Any]) -> Group:
        """``family.spec.build(dim, **params)``, checked to be a :class:`Group` acting on ``R^dim``."""
        from ..core.group import Group

        built = family.spec.build(dim, **params)
        spec = family.spec
        call = ", ".join([f"dim={dim}"] + [f"{k}={v!r}" for k, v in params.items()])
        where = f"plugin {family.plugin!r}, group {spec.display!r} of backend {spec.backend!r}: build({call})"
        if not isinstance(built, Group):
            raise TypeError(f"{where} returned {describe(built)}, not a steerable.core.group.Group")
        built_dim = getattr(built, "dim", None)
        if built_dim != dim:
            raise ValueError(
                f"{where} returned the group {getattr(built, 'name', '?')!r} acting on R^{built_dim}, not on R^{dim}"
            )
        return built

    def _did_you_mean(self, name: str) -> str:
        """``" (did you mean 'C4'?)"`` for a near miss (``"C-4"``, ``"SO(3"``, ``"C04"``, ``"S0(3)"``), else ``""``."""
        loose = re.sub(r"(?<!\d)0+(?=\d)", "", re.sub(r"[^A-Za-z0-9/+-]", "", name))
        tries = [loose, loose.replace("-", ""), loose.replace("-", "").replace("/", "")]
        found: list[str] = []
        for attempt in tries:
            for family in self._families:
                try:
                    params = family.spec.match(attempt)
                except Exception:
                    continue
                if params is not None:
                    found.append(_fill_display(family.spec.display, params))
            if found:
                break
        if not found:
            names = {n: n for f in self._families for n in f.spec.example_names()}
            found = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
        found = [f for f in dict.fromkeys(found) if f != name]
        return f" (did you mean {' or '.join(repr(f) for f in found[:3])}?)" if found else ""

    def _catalogue(self) -> str:
        by_backend: dict[str, list[str]] = {}
        for family in self._families:
            dims = "/".join(f"R^{d}" for d in family.spec.dims)
            by_backend.setdefault(family.spec.backend, []).append(f"{family.spec.display} ({dims})")
        return "; ".join(f"{b}: {', '.join(g)}" for b, g in by_backend.items()) or "none registered"

    def _broken_note(self) -> str:
        if not self._broken:
            return ""
        return "; broken plugins (none of their groups is registered): " + "; ".join(
            f"{plugin}: {reason}" for plugin, reason in sorted(self._broken.items())
        )


_registry = Registry()


def list_backends(load: bool = True) -> list[BackendStatus]:
    """Name, availability (with the reason if not) and group families of every backend, in order of
    preference, then one row per broken plugin (``broken=True``, ``available=False``, the reason).

    Args:
        load: ``True`` (the default, the behaviour of earlier versions): every backend is loaded
            (its dependencies imported: seconds for escnn and e3nn), so ``available`` says that it
            works.  ``False``: cheap, nothing heavy is imported: a backend that declares
            :attr:`Backend.requires` and was not loaded yet is listed with ``loaded=False`` and
            ``available`` meaning "its modules are installed" (found with
            :func:`importlib.util.find_spec`); already loaded backends, and those declaring no
            requirements, are loaded as with ``True``.  The command line's ``backends`` and
            ``groups`` use ``False``.
    """
    return _registry.list_backends(load=load)


def list_groups() -> list[GroupSpec]:
    """Every registered group family: ``display`` name, ``backend``, ``dims`` and ``doc``."""
    return _registry.list_groups()


def group(name: str, dim: int | None = None, backend: str | None = None, **params: Any) -> Group:
    """The group called ``name`` (e.g. ``"SO(3)"``, ``"C8"``, ``"O(2)"``) acting on ``R^dim``.

    Args:
        name: the group's name.  Matching ignores case, whitespace, round brackets and underscores
            (``"SO(3)"``, ``"so3"``, ``"SO_3"``, ``"so (3)"``) and nothing else: ``"C-4"``, ``"C04"``,
            ``"SO(3"``, ``"(-3m)"`` or non-ASCII characters are refused with a suggestion of the
            known name.  Hermann–Mauguin symbols of the matrix backend keep their ``-`` and ``/``
            (``"m-3m"``, ``"-43m"``, ``"2/m"``; case and spaces ignored).
        dim: the dimension of the space acted on; checked against the group, and choosing between
            ``R^2`` and ``R^3`` for names that exist in both (``"C4"`` defaults to ``R^2``).
        backend: which backend builds it; default: ``$STEERABLE_BACKEND``, else the preferred
            available backend offering the group.
        **params: further group parameters understood by the backend.

    Raises:
        ValueError: unknown group or backend (the message lists what exists, and the broken
            plugins, and a suggestion for a near miss), a name that is never valid (empty,
            non-ASCII, unbalanced brackets), or a wrong
            ``dim``; a plugin's ``build`` returning a group on another ``R^n``.
        TypeError: a plugin's ``build`` returning something else than a ``Group`` (named in the message).
        RuntimeError: the chosen backend is installed but unusable (the message says why).
    """
    return _registry.group(name, dim=dim, backend=backend, **params)


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register a plugin module or object without an entry point; it is checked like the others
    (a bad one is listed as broken by :func:`list_backends`, not raised)."""
    _registry.register(plugin, name=name)


def reset_registry() -> None:
    """Forget discovered plugins and built groups (mostly for tests)."""
    _registry.reset()
