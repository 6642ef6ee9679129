"""The contract between the core and a backend's equivariant MLP, written as types.

``Group.build_kernel_mlp(spec: KernelMLPSpec) -> KernelMLP``: the core describes what it needs in a
:class:`KernelMLPSpec` (validated once, here), the backend builds a module satisfying the
:class:`KernelMLP` protocol and, when it can produce its output one group of blocks at a time, the
:class:`StreamingKernelMLP` protocol too.  A backend states which nonlinearities and options it
understands with :meth:`KernelMLPSpec.require`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from .group import Group
from .representation import FieldType, Rep, transfer_rep


@runtime_checkable
class KernelMLP(Protocol):
    """What a backend's kernel MLP is: a ``torch.nn.Module`` called as ``mlp(pos, attr) -> out``.

    Shapes and layout:

    * ``pos``: ``(E, n)`` relative positions in the standard representation, coordinates
      ``(x, y[, z])``, in the module's floating dtype.
    * ``attr``: ``(E, spec.attr_size)`` attributes transforming under ``spec.attr_type``, or ``None``
      when ``spec.attr_type`` is ``None``.
    * ``out``: ``(E, spec.out_size)``, ``out_size = sum_b out_rep_b.size * in_rep_b.size`` over
      ``spec.blocks``: the blocks concatenated in the order of ``spec.blocks``, each a row-major
      flattened ``out_rep_b.size x in_rep_b.size`` matrix.

    Equivariance: block ``b`` transforms under ``kron(out_rep_b(g), in_rep_b(g))``,

        ``mlp(pos @ g.T, attr_type.transform(attr, g))[:, block b]
        = mlp(pos, attr)[:, block b] @ kron(out_rep_b(g), in_rep_b(g)).T``

    exactly (to floating-point round-off) with ``nonlinearity="exact"``; approximate options state
    their error.

    Completeness: over random initialisations the values of a block at a point ``x`` span the whole
    space the symmetry allows there (the maps commuting with the stabiliser of ``x``, and of the
    attributes).  A backend reaches this by embedding the position harmonically (spherical
    harmonics or ``cos kθ``, ``sin kθ`` up to the band limit each block needs), by tensor products,
    or by regular fields with pointwise nonlinearities.  :mod:`steerable.testing` checks both
    properties for any backend.

    Copies of the same ``(out_rep, in_rep)`` pair in ``spec.blocks`` are separate blocks with
    independent weights.  The module must survive ``.to(dtype)`` / ``.to(device)`` without losing
    accuracy (:class:`~steerable.core.constants.Float64Constants`) and round-trip its ``state_dict``.
    """

    spec: KernelMLPSpec

    def __call__(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...


@runtime_checkable
class StreamingKernelMLP(KernelMLP, Protocol):
    """A :class:`KernelMLP` that also hands out its output in consecutive column pieces.

    * ``piece_sizes``: widths of the pieces, in output order, summing to ``spec.out_size``; each
      piece holds whole blocks (a piece never splits a block).
    * ``pieces(pos, attr)``: an iterator of ``(E, piece_sizes[k])`` tensors whose concatenation
      along axis 1 equals ``mlp(pos, attr)``; each may be computed only when asked for.

    When the pieces line up with the kernel's representation pairs the core consumes them one at a
    time: no concatenated copy of the MLP's largest per-edge tensor, and each piece can be freed
    once used.  The core checks ``piece_sizes`` against its own layout and otherwise falls back to
    ``mlp(pos, attr)``.
    """

    @property
    def piece_sizes(self) -> Sequence[int]: ...

    def pieces(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> Iterator[torch.Tensor]: ...


def _positive_int(value: Any, what: str, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"KernelMLPSpec: {what} must be an int >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class KernelMLPSpec:
    """What an implicit kernel needs from a backend's MLP.

    Attributes:
        group: the symmetry group.
        blocks: ``(out_rep, in_rep)`` pairs, one output block each, in output order.  Copies of
            the same pair are separate blocks with independent weights.  The implicit kernel
            passes ``basis_size`` copies of each pair of representations (shared-basis layout) or
            one pair per (output field, input field), output fields outer (dense layout).
        attr_type: field type of the attributes fed beside the position, or ``None``.
        hidden_channels: width of each hidden layer, in multiplicities of the backend's hidden
            field (e.g. number of regular fields, or gated irreps per frequency).
        hidden_layers: number of hidden layers.
        radial_features: number of radial basis functions of ``|pos|`` fed to the MLP
            (:class:`steerable.core.radial.RadialBasis`).
        max_radius: length scale of the kernel, in the units of the positions: norms in
            ``[0, max_radius]`` are resolved (the radial basis spreads its centres over it, and a
            backend scales its other position features by it), so a kernel built for one scale
            and evaluated at ``max_radius * x`` equals the kernel built for ``max_radius = 1`` at
            ``x``.  Beyond ``max_radius`` the radial features decay to zero.  The layers always
            set it: :class:`~steerable.nn.PointConv` and a standalone
            :class:`~steerable.nn.ImplicitKernel` require it from the user (the cutoff of the
            graph), :class:`~steerable.nn.GridConv` derives it from its kernel grid; the default
            ``1.0`` here serves backends' tests of the contract in unit coordinates.
        nonlinearity: ``"exact"`` (default: gates, norms, or pointwise on regular fields) or a
            backend-specific approximate option such as ``"fourier"``.
        options: further backend-specific options (documented by each backend); the option
            ``origin_scale`` is read through :meth:`origin_scale`.

    Construction validates every generic field and raises a ``ValueError`` (``TypeError`` for
    objects of the wrong kind) naming the problem; representations of another backend's copy of
    ``group`` are replaced by ``group``'s own when portable (:func:`~steerable.core.representation.transfer_rep`)
    and refused otherwise.  Backends then only check what is theirs (:meth:`require`).
    """

    group: Group
    blocks: tuple[tuple[Rep, Rep], ...]
    attr_type: FieldType | None = None
    # Defaults: the size every task here trains with (one hidden layer); at these sizes a PointConv
    # training step costs less time and memory than escnn's analytic R3PointConv (benchmarks/README.md).
    hidden_channels: int = 8
    hidden_layers: int = 1
    radial_features: int = 8
    max_radius: float = 1.0
    nonlinearity: str = "exact"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731  (frozen)
        if not isinstance(self.group, Group):
            raise TypeError(f"KernelMLPSpec: group must be a Group, got {type(self.group).__name__}")
        blocks = tuple(self.blocks) if isinstance(self.blocks, (tuple, list)) else None
        if not blocks:
            raise ValueError(
                f"KernelMLPSpec: blocks must be a non-empty sequence of (out_rep, in_rep) pairs, got {self.blocks!r}"
            )
        checked = []
        for b, pair in enumerate(blocks):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"KernelMLPSpec: block {b} must be an (out_rep, in_rep) pair, got {pair!r}")
            checked.append(
                tuple(
                    transfer_rep(rep, self.group, f"KernelMLPSpec block {b} {side}")
                    for rep, side in zip(pair, ("output", "input"))
                )
            )
        set_("blocks", tuple(checked))
        if self.attr_type is not None:
            if not isinstance(self.attr_type, FieldType):
                raise TypeError(
                    f"KernelMLPSpec: attr_type must be a FieldType or None, got {type(self.attr_type).__name__}"
                )
            if self.attr_type.group.key != self.group.key:
                set_("attr_type", FieldType(self.group, self.attr_type.reps))  # portable reps only
        set_("hidden_channels", _positive_int(self.hidden_channels, "hidden_channels", 1))
        set_("hidden_layers", _positive_int(self.hidden_layers, "hidden_layers", 0))
        set_("radial_features", _positive_int(self.radial_features, "radial_features", 1))
        radius = self.max_radius
        number = isinstance(radius, (int, float)) and not isinstance(radius, bool)
        if not number or not (math.isfinite(radius) and radius > 0):
            raise ValueError(f"KernelMLPSpec: max_radius must be a finite number > 0, got {radius!r}")
        set_("max_radius", float(radius))
        if not isinstance(self.nonlinearity, str):
            raise TypeError(f"KernelMLPSpec: nonlinearity must be a str, got {self.nonlinearity!r}")
        if not isinstance(self.options, Mapping):
            raise TypeError(f"KernelMLPSpec: options must be a mapping of option names to values, got {self.options!r}")
        if not all(isinstance(k, str) for k in self.options):
            raise TypeError(f"KernelMLPSpec: option names must be str, got {sorted(map(repr, self.options))}")
        set_("options", dict(self.options))

    def require(
        self,
        *,
        backend: str,
        group_type: type | tuple[type, ...] | None = None,
        nonlinearities: Iterable[str] = ("exact",),
        options: Iterable[str] | Mapping[str, type | tuple[type, ...]] = (),
    ) -> None:
        """Raise a ``ValueError`` (``TypeError`` for the group) unless the backend supports this spec.

        Args:
            backend: the backend's name, used in the messages.
            group_type: the class(es) of the backend's groups, if the backend only works with them.
            nonlinearities: the values of :attr:`nonlinearity` the backend offers.
            options: the option names it understands, or a mapping of names to the type(s) their
                values must have (``bool`` is not accepted for ``int``).
        """
        if group_type is not None and not isinstance(self.group, group_type):
            raise TypeError(
                f"{backend} backend: the kernel MLP needs a group of the {backend} backend, got {self.group!r}"
            )
        offered = tuple(nonlinearities)
        if self.nonlinearity not in offered:
            raise ValueError(
                f"{backend} backend: nonlinearity={self.nonlinearity!r} is not supported for {self.group!r}; "
                f"supported: {', '.join(repr(n) for n in offered)}"
            )
        known = dict(options) if isinstance(options, Mapping) else {name: None for name in options}
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ValueError(
                f"{backend} backend: unknown kernel MLP options {unknown}; "
                f"supported: {sorted(known) if known else 'none'}"
            )
        for name, types in known.items():
            if types is None or name not in self.options:
                continue
            value = self.options[name]
            allowed = types if isinstance(types, tuple) else (types,)
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                names = " or ".join(t.__name__ for t in allowed)
                raise ValueError(f"{backend} backend: option {name!r} must be {names}, got {value!r}")

    def origin_scale(self, who: str = "KernelMLPSpec") -> float:
        """The softening length ``s`` of a harmonic embedding near the origin (``r_s = sqrt(|x|^2 + s^2)``).

        ``options["origin_scale"]`` when given, by default a tenth of the spacing of the radial
        basis centres, ``max_radius / (10 max(radial_features - 1, 1))``.  One rule for every
        backend that softens the origin (escnn, e3nn); it scales with ``max_radius`` like the rest
        of the kernel.  Softening shrinks the angular features of degree ``L`` by
        ``(|x| / r_s)^L``, so it blurs short edges: with half the spacing (the earlier default) the
        N-body demo's test MSE was 0.01127, with a tenth 0.01067 (a fiftieth: 0.01067 too).

        Args:
            who: the name the error message starts with (e.g. ``"e3nn backend"``).

        Raises:
            ValueError: the option is not a finite number > 0.
        """
        value = self.options.get("origin_scale")
        if value is None:
            return self.max_radius / (10 * max(self.radial_features - 1, 1))
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{who}: options['origin_scale'] must be a finite number > 0, got {value!r}")
        scale = float(value)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"{who}: options['origin_scale'] must be a finite number > 0, got {value!r}")
        return scale

    @property
    def out_size(self) -> int:
        return sum(o.size * i.size for o, i in self.blocks)

    @property
    def attr_size(self) -> int:
        return 0 if self.attr_type is None else self.attr_type.size
