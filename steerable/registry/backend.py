"""What a plugin contributes: backends and the groups they can build.

A plugin module (found through the ``steerable`` entry-point group) implements the hooks of
:mod:`steerable.registry.hookspec`, returning :class:`Backend` and :class:`GroupSpec` objects.  Importing a
plugin module must stay cheap: heavy dependencies are imported in :meth:`Backend.load`, which the
registry calls once, reporting a failure as "unavailable" with its reason instead of raising.

Both classes check their fields when built (and the registry checks them again when a hook returns
them): a wrong type raises ``TypeError``, a wrong value (an empty name, an invalid regular
expression, empty ``dims``) raises ``ValueError``, each naming the object and the field.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the core imports torch; listing backends and groups must not
    from ..core.group import Group


#: What group-name matching ignores (documented in :func:`steerable.group`): case, whitespace, round
#: brackets and underscores.  Nothing else is dropped: ``"C-4"`` is not ``"C4"`` (``-`` and ``/`` belong
#: to Hermann-Mauguin symbols such as ``"m-3m"``, matched as written by the matrix backend).
IGNORED_IN_NAMES = r"[\s()_]"


def normalize_group_name(name: str) -> str:
    """The key group patterns are matched against: ``name`` upper-cased, without whitespace, round
    brackets and underscores: ``"SO(3)"``, ``"so3"``, ``"SO_3"`` and ``"so (3)"`` all give ``"SO3"``;
    ``"C-4"`` gives ``"C-4"`` (no family matches it; :func:`steerable.group` suggests ``"C4"``)."""
    return re.sub(IGNORED_IN_NAMES, "", name).upper()


def spelling_error(name: str) -> str | None:
    """Why ``name`` is never a valid group name (empty, non-ASCII or control characters, unbalanced
    round brackets), or ``None``.  Catches spellings that matching would otherwise silently repair."""
    if not name.strip():
        return "the name is empty"
    bad = sorted({c for c in name if not (c.isascii() and (c.isprintable() or c in " \t"))})
    if bad:
        return f"it contains {', '.join(repr(c) for c in bad)}; group names are plain ASCII"
    depth = 0
    for c in name:
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth < 0 or depth > 1:
            break
    if depth != 0:
        return "its round brackets are unbalanced or nested"
    return None


def _canonical_int(text: str) -> bool:
    return text == str(int(text))


def describe(value: Any) -> str:
    """``repr`` of ``value`` (shortened) with its type, for error messages: ``5 (int)``."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _check_name(owner: str, attr: str, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{owner}: {attr} must be a str, got {describe(value)}")
    if not value.strip():
        raise ValueError(f"{owner}: {attr} must not be empty")


@dataclass(frozen=True)
class GroupSpec:
    """A family of groups a backend can build.

    Attributes:
        backend: name of the backend that builds it.
        display: the documented name, e.g. ``"C{N}"`` or ``"SO(3)"``; ``{...}`` marks a parameter.
        pattern: regular expression matched (in full) against :func:`normalize_group_name` of the
            requested name; named groups (``(?P<N>\\d+)``) become integer keyword arguments.
        dims: the dimensions ``n`` it can act on (positive ints, at least one); the first is the
            default when ``dim`` is omitted.  A list is stored as a tuple.
        build: ``build(dim, **params) -> Group``, a :class:`~steerable.core.group.Group` acting on
            ``R^dim`` (the registry checks both).
        doc: one line for listings.

    Raises:
        TypeError: a field of the wrong type (e.g. ``dims=[None]``, ``build="f"``).
        ValueError: an empty ``backend`` or ``display``, an invalid ``pattern``, empty ``dims`` or a
            dimension below 1.
    """

    backend: str
    display: str
    pattern: str
    dims: tuple[int, ...]
    build: Callable[..., Group]
    doc: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.dims, list):
            object.__setattr__(self, "dims", tuple(self.dims))
        self.check()

    def check(self) -> None:
        """Raise ``TypeError``/``ValueError`` naming the first invalid field (see the class docstring)."""
        _check_name("GroupSpec", "display", self.display)
        owner = f"GroupSpec {self.display!r}"
        _check_name(owner, "backend", self.backend)
        if not isinstance(self.pattern, str):
            raise TypeError(f"{owner}: pattern must be a str (a regular expression), got {describe(self.pattern)}")
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"{owner}: pattern {self.pattern!r} is not a valid regular expression ({exc})") from None
        if not isinstance(self.dims, tuple):
            raise TypeError(f"{owner}: dims must be a tuple of ints, got {describe(self.dims)}")
        if not self.dims:
            raise ValueError(f"{owner}: dims is empty; give the dimensions n of R^n it acts on, e.g. (2, 3)")
        for d in self.dims:
            if not isinstance(d, int) or isinstance(d, bool):
                raise TypeError(f"{owner}: dims must hold ints, got {describe(d)} in {self.dims!r}")
            if d < 1:
                raise ValueError(f"{owner}: dims must be positive, got {d} in {self.dims!r}")
        if not callable(self.build):
            raise TypeError(f"{owner}: build must be callable as build(dim, **params), got {describe(self.build)}")
        if not isinstance(self.doc, str):
            raise TypeError(f"{owner}: doc must be a str, got {describe(self.doc)}")

    def match(self, name: str) -> dict[str, int] | None:
        """The parameters (``{"N": 8}`` for ``"C8"``) if ``name`` belongs to this family, else ``None``."""
        return params_of(re.fullmatch(self.pattern, normalize_group_name(name)))

    def example_names(self) -> list[str]:
        """Concrete names of this family: ``display`` with each ``{...}`` replaced by a few integers."""
        if "{" not in self.display:
            return [self.display]
        return [re.sub(r"\{[^{}]*\}", str(n), self.display) for n in (1, 2, 3, 4, 5, 6, 8, 12)]


def params_of(found: re.Match | None) -> dict[str, int] | None:
    """The integer parameters of a pattern match, or ``None`` when there is no match or a parameter
    is not written canonically (``"C04"``: a leading zero is refused, not read as 4)."""
    if found is None:
        return None
    values = {key: value for key, value in found.groupdict().items() if value is not None}
    if not all(_canonical_int(value) for value in values.values()):
        return None
    return {key: int(value) for key, value in values.items()}


@dataclass
class Backend:
    """A backend: a name, a preference rank and a loader for its heavy dependencies.

    Attributes:
        name: the word users pass as ``backend=`` (and in ``$STEERABLE_BACKEND``).
        priority: an ``int``; lower is preferred when a group is offered by several backends.
        groups: the families of groups it builds, each with ``backend == name`` (specs may also
            come from other plugins, through ``steerable_groups``); stored as a tuple.
        load: imports the backend's dependencies; raises (ImportError or anything) if unusable.
            Called once, on demand: by the first :func:`steerable.group` that picks this backend,
            or by ``list_backends()`` (``load=True``, the default).
        description: one line for listings.
        requires: top-level module names the backend needs (``("escnn",)``), stored as a tuple.
            Listings (``list_backends(load=False)``, ``steerable backends``/``groups``) check them
            with :func:`importlib.util.find_spec`, which imports nothing, instead of calling
            ``load``; a backend that declares none is loaded to be listed (keep its ``load`` cheap,
            or declare what it needs).

    Raises:
        TypeError: a field of the wrong type (``priority="high"``, ``groups=[None]``, ``requires="escnn"``).
        ValueError: an empty ``name``, a group spec naming another backend, or a ``requires`` entry
            that is not a top-level module name (``"escnn.nn"``: finding it would import ``escnn``).
    """

    name: str
    priority: int
    groups: Sequence[GroupSpec] = field(default_factory=tuple)
    load: Callable[[], None] = lambda: None
    description: str = ""
    requires: Sequence[str] = ()

    def __post_init__(self) -> None:
        if isinstance(self.groups, list):
            self.groups = tuple(self.groups)
        if isinstance(self.requires, list):
            self.requires = tuple(self.requires)
        self.check()

    def check(self) -> None:
        """Raise ``TypeError``/``ValueError`` naming the first invalid field (see the class docstring)."""
        _check_name("Backend", "name", self.name)
        owner = f"Backend {self.name!r}"
        if not isinstance(self.priority, int) or isinstance(self.priority, bool):
            raise TypeError(f"{owner}: priority must be an int, got {describe(self.priority)}")
        if not isinstance(self.groups, (tuple, list)):
            raise TypeError(f"{owner}: groups must be a list of GroupSpec, got {describe(self.groups)}")
        for spec in self.groups:
            if not isinstance(spec, GroupSpec):
                raise TypeError(f"{owner}: groups must hold GroupSpec objects, got {describe(spec)}")
            spec.check()
            if spec.backend != self.name:
                raise ValueError(
                    f"{owner}: its group {spec.display!r} names backend {spec.backend!r}; "
                    f"groups of another backend belong in the steerable_groups hook"
                )
        if not callable(self.load):
            raise TypeError(f"{owner}: load must be callable, got {describe(self.load)}")
        if not isinstance(self.description, str):
            raise TypeError(f"{owner}: description must be a str, got {describe(self.description)}")
        if not isinstance(self.requires, tuple):
            raise TypeError(f"{owner}: requires must be a tuple of module names, got {describe(self.requires)}")
        for module in self.requires:
            if not isinstance(module, str):
                raise TypeError(f"{owner}: requires must hold module names (str), got {describe(module)}")
            if not module.isidentifier():
                raise ValueError(
                    f"{owner}: requires entry {module!r} is not a top-level module name "
                    f"(like 'escnn'; a dotted name would be imported to be found)"
                )

    def missing_requirements(self) -> list[str]:
        """The modules of :attr:`requires` that cannot be found (:func:`importlib.util.find_spec`;
        nothing is imported)."""
        missing = []
        for module in self.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(module)
        return missing
