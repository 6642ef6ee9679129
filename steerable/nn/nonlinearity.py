"""Norm-based nonlinearity: each non-trivial field is rescaled by a function of its (invariant) norm."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..core.representation import FieldType
from ._fields import FieldLayer, safe_norm

__all__ = ["NormNonlinearity"]

Elementwise = Callable[[torch.Tensor], torch.Tensor]


def _silu_derivative(b: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(b)
    return s * (1 + b * (1 - s))


def _relu_derivative(b: torch.Tensor) -> torch.Tensor:
    return (b >= 0).to(b.dtype)  # from the right: norms are >= 0


def _tanh_derivative(b: torch.Tensor) -> torch.Tensor:
    return 1 - torch.tanh(b) ** 2


def _sigmoid_derivative(b: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(b)
    return s * (1 - s)


#: name -> (function, its derivative); module-level functions only, so that layers pickle
FUNCTIONS: dict[str, tuple[Elementwise, Elementwise]] = {
    "silu": (F.silu, _silu_derivative),
    "relu": (F.relu, _relu_derivative),
    "softplus": (F.softplus, torch.sigmoid),
    "tanh": (torch.tanh, _tanh_derivative),
    "sigmoid": (torch.sigmoid, _sigmoid_derivative),
}


class NormNonlinearity(FieldLayer):
    """Norm nonlinearity for any group: ``f -> f * s(|f|)`` on non-trivial fields, ``fn`` on trivial ones.

    For a non-trivial field ``f`` with norm ``n = |f|`` and a learnable bias ``b`` (one per field,
    init 0)::

        s(n) = (fn(n + b) - fn(b)) / n          (s(0) = fn'(b), its limit)

    i.e. the norm ``n`` is mapped to ``fn(n + b) - fn(b)`` and the direction kept.  Subtracting
    ``fn(b)`` is what makes the map continuous at ``f = 0`` (``fn(n + b) / n`` alone diverges there
    unless ``fn(b) = 0``).  For ``n < sqrt(machine eps)`` the limit ``fn'(b)`` is used (an error of
    order ``sqrt(eps)`` relative, there only), so values and gradients are finite at ``f = 0`` and
    the gradient there is exactly ``fn'(b) * identity``.  With ``relu`` and ``b < 0`` this is the
    classic norm-ReLU (fields shorter than ``-b`` are zeroed, longer ones shortened by ``-b``); with
    ``silu`` and ``b = 0`` it is ``f * sigmoid(|f|)``.  Since ``s`` depends only on the invariant
    norm, the map is equivariant.  Trivial fields ``x`` become ``fn(x + b)``.  (A custom ``fn`` must
    be made of module-level functions for the layer to pickle.)

    Args:
        field_type: layout of input and output.
        fn: ``"silu"``, ``"relu"``, ``"softplus"``, ``"tanh"``, ``"sigmoid"``, or a pair
            ``(function, derivative)`` of elementwise callables.
        bias: learn the biases ``b`` (else ``b = 0``).

    Channels on axis 1: ``(N, C)`` or ``(B, C, *spatial)``; shapes are preserved.
    """

    needs_invariant_norms = True  # [issue 16] refused on non-Euclidean groups

    def __init__(
        self,
        field_type: FieldType,
        fn: str | tuple[Elementwise, Elementwise] = "silu",
        bias: bool = True,
    ) -> None:
        super().__init__(field_type)
        if isinstance(fn, str):
            if fn not in FUNCTIONS:
                raise ValueError(
                    f"NormNonlinearity: unknown fn {fn!r}; known: {sorted(FUNCTIONS)}, or give a "
                    "(function, derivative) pair"
                )
            self.fn_name = fn
            self.fn, self.dfn = FUNCTIONS[fn]
        elif isinstance(fn, tuple) and len(fn) == 2 and all(callable(f) for f in fn):
            self.fn_name = getattr(fn[0], "__name__", "custom")
            self.fn, self.dfn = fn
        else:
            raise TypeError(f"NormNonlinearity: fn must be a name or a (function, derivative) pair, got {fn!r}")
        self.bias = torch.nn.Parameter(torch.zeros(self.num_fields)) if bias else None

    def reset_parameters(self) -> None:
        """Biases back to 0."""
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check(x)
        shape = (1, self.num_fields) + (1,) * (x.ndim - 2)
        b = (self.bias.to(x.dtype) if self.bias is not None else x.new_zeros(self.num_fields)).view(shape)
        n = safe_norm(self.sq_norms(x))  # (B, F, *s)
        small = n < torch.finfo(x.dtype).eps ** 0.5  # below: the direct quotient loses digits
        quotient = (self.fn(n + b) - self.fn(b)) / torch.where(small, torch.ones_like(n), n)
        scale = torch.where(small, self.dfn(b).expand_as(n), quotient)
        trivial = self.trivial.view(shape)
        # trivial fields (one channel each): fn(x + b)
        value = self.fn(self.to_channels(b.expand_as(n)) + x) if len(self.trivial_fields) else x
        gated = x * self.to_channels(scale)
        return torch.where(self.to_channels(trivial.expand_as(n)), value, gated)

    def describe(self) -> str:
        return f"fn={self.fn_name}, bias={self.bias is not None}"
