"""What a plugin contributes: backends and the groups they can build.

A plugin module (found through the ``steerable`` entry-point group) implements the hooks of
:mod:`steerable.registry`, returning :class:`Backend` and :class:`GroupSpec` objects.  Importing a
plugin module must stay cheap: heavy dependencies are imported in :meth:`Backend.load`, which the
registry calls once, reporting a failure as "unavailable" with its reason instead of raising.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..core.group import Group


def normalize_group_name(name: str) -> str:
    """Case- and punctuation-insensitive key: ``"SO(3)"``, ``"so3"`` and ``"SO_3"`` all give ``"SO3"``."""
    return re.sub(r"[\s()_\-]", "", name).upper()


@dataclass(frozen=True)
class GroupSpec:
    """A family of groups a backend can build.

    Attributes:
        backend: name of the backend that builds it.
        display: the documented name, e.g. ``"C{N}"`` or ``"SO(3)"``.
        pattern: regular expression matched (in full) against :func:`normalize_group_name` of the
            requested name; named groups (``(?P<N>\\d+)``) become integer keyword arguments.
        dims: the dimensions ``n`` it can act on; the first is the default when ``dim`` is omitted.
        build: ``build(dim, **params) -> Group``.
        doc: one line for listings.
    """

    backend: str
    display: str
    pattern: str
    dims: tuple[int, ...]
    build: Callable[..., Group]
    doc: str = ""

    def match(self, name: str) -> dict[str, int] | None:
        found = re.fullmatch(self.pattern, normalize_group_name(name))
        if found is None:
            return None
        return {key: int(value) for key, value in found.groupdict().items() if value is not None}


@dataclass
class Backend:
    """A backend: a name, a preference rank and a loader for its heavy dependencies.

    Attributes:
        name: the word users pass as ``backend=``.
        priority: lower is preferred when a group is offered by several backends.
        groups: the families of groups it builds (specs may also come from other plugins).
        load: imports the backend's dependencies; raises (ImportError or anything) if unusable.
        description: one line for listings.
    """

    name: str
    priority: int
    groups: Sequence[GroupSpec] = field(default_factory=tuple)
    load: Callable[[], None] = lambda: None
    description: str = ""
