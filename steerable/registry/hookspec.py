"""The hooks a ``steerable`` plugin may implement.

A plugin is a module (or any object) listed in the ``steerable`` entry-point group, or passed to
:func:`steerable.register_plugin`.  It implements one or both hooks below as plain functions of the
same name, marked with :data:`hookimpl`::

    import steerable

    @steerable.hookimpl
    def steerable_groups():
        return [steerable.GroupSpec(backend="matrix", display="Foo", pattern="FOO", dims=(2,), build=build_foo)]

The registry checks every plugin when it discovers it (see :mod:`steerable.registry`): a function
marked with :data:`hookimpl` whose name is not one of these hooks (``steerable_group``), a hook
function that is not marked, a hook that raises or a hook that returns something else than what is
documented below marks that plugin *broken*, with the reason, in :func:`steerable.list_backends`;
the other plugins keep working.  Neither hook takes arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .backend import Backend, GroupSpec

PROJECT = "steerable"

#: Marks the specifications below (for the registry's plugin manager only).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's implementation of a hook: ``@steerable.hookimpl`` (also ``steerable.registry.hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)

#: The names of the hooks, in the order the registry calls them for each plugin.
HOOK_NAMES = ("steerable_backends", "steerable_groups")


@hookspec
def steerable_backends() -> Sequence[Backend] | None:
    """Return the backends this plugin offers.

    Called once per plugin when the registry discovers plugins (on the first ``st.group``,
    ``st.list_backends`` or ``st.list_groups``, and again after :func:`steerable.register_plugin`).
    It must be cheap: no heavy import here, those belong in :attr:`Backend.load`.

    :return: a list or tuple of :class:`~steerable.registry.backend.Backend` (``None`` or an empty
        list: none).  Each backend's ``groups`` are the group families it builds; every one of them
        must name that backend as its ``backend``.

    What the registry does with it: each backend becomes a choice for ``st.group(..., backend=name)``
    and ``$STEERABLE_BACKEND``; among the available backends offering a requested group, the lowest
    ``priority`` wins.  ``load()`` is called once, on first need; if it raises, the backend is listed
    as unavailable with the exception as the reason.  A backend name that an earlier plugin already
    registered is not replaced: the first registration wins and a
    :class:`~steerable.registry.ShadowingWarning` names both plugins.  Anything but a sequence of
    valid ``Backend`` objects (``5``, ``[None]``, a string, a ``Backend`` whose ``priority`` is not
    an ``int``) marks the plugin broken and none of its backends or groups is used.

    Example::

        @steerable.hookimpl
        def steerable_backends():
            return [steerable.Backend(name="mybackend", priority=50, load=import_my_library,
                                      groups=[steerable.GroupSpec("mybackend", "Foo{N}", r"FOO(?P<N>\\d+)",
                                                                  dims=(3,), build=build_foo)])]
    """


@hookspec
def steerable_groups() -> Sequence[GroupSpec] | None:
    """Return extra group families, built by a backend this or another plugin offers.

    Called once per plugin at discovery, after :func:`steerable_backends` of the same plugin.  Use it
    to add a group to an existing backend (the ``matrix`` backend builds any finite group from
    generators) without writing a backend.

    :return: a list or tuple of :class:`~steerable.registry.backend.GroupSpec` (``None`` or an
        empty list: none).

    What the registry does with it: ``st.group(name)`` matches ``name`` against every family's
    ``pattern`` and calls the chosen family's ``build(dim, **params)``, which must return a
    :class:`steerable.core.group.Group` acting on ``R^dim`` (anything else raises an error naming
    the plugin and the family; nothing is cached).  A family whose ``backend`` no plugin offers is
    listed, and requesting it reports that backend as unavailable.  A family that repeats one of
    the same backend (the same ``display`` name, or a pattern matching the other's name) is not
    added: the first registration wins and a :class:`~steerable.registry.ShadowingWarning` names
    both plugins.  Two *backends* offering the same group name is normal (``priority`` decides).
    Anything but a sequence of valid ``GroupSpec`` objects (``[None]``, strings, an invalid regular
    expression, empty ``dims``, a ``build`` that is not callable) marks the plugin broken and none
    of its backends or groups is used.

    Example::

        @steerable.hookimpl
        def steerable_groups():
            return [steerable.GroupSpec(backend="matrix", display="HexLattice", pattern="HEXLATTICE",
                                        dims=(2,), build=build_hexlattice, doc="6mm, 12 elements")]
    """
