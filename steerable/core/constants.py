"""Fixed float64 tensors that survive ``.float()``, ``.double()``, ``.to(device)`` of their module.

A kernel MLP holds exact constants (changes of basis, group tables, Clebsch-Gordan coefficients).
Stored as ordinary buffers they would be rounded by ``.float()`` and stay rounded after a later
``.double()``, capping float64 equivariance near 1e-7.  :class:`Float64Constants` keeps them in
float64 on the CPU, *outside* every buffer, and hands out copies cast to the dtype and device of the
tensor they are used with:

>>> consts = Float64Constants(q=torch.eye(2, dtype=torch.float64))
>>> consts.get("q", torch.zeros(3, dtype=torch.float32)).dtype
torch.float32

The casts are cached per ``(name, dtype, device)`` and the cache is cleared whenever the module
holding the constants is moved or converted (``_apply``, which ``.to()``, ``.float()``, ``.cuda()``
... call on every submodule), so no copy on a device the model left stays alive.  The holder is a
``torch.nn.Module`` without parameters or buffers: it adds no ``state_dict`` keys, pickles and
deep-copies with its module.

Constants that a third-party submodule reads as its own buffers (e3nn's tensor products) cannot
live outside them; :meth:`Float64Constants.track_buffers` keeps float64 masters of such buffers and
:meth:`Float64Constants.restore_buffers` rewrites them from the masters in the buffers' current
dtype and device (call it after ``super()._apply`` and after loading a state dict).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["Float64Constants"]


class Float64Constants(torch.nn.Module):
    """Named float64 CPU tensors, cast on demand and cached per ``(name, dtype, device)``.

    Args:
        **tensors: initial constants (anything ``torch.as_tensor`` accepts; ``None`` is kept as
            ``None`` so that optional constants need no special case).
    """

    def __init__(self, **tensors: Any) -> None:
        super().__init__()
        self._values: dict[str, torch.Tensor | None] = {}
        self._cache: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}
        self._masters: dict[str, torch.Tensor] = {}
        for name, value in tensors.items():
            self.add(name, value)

    # -- constants outside the buffers -----------------------------------------------------------
    def add(self, name: str, value: Any) -> None:
        """Store ``value`` as float64 on the CPU under ``name`` (replacing any previous value)."""
        if value is None:
            self._values[name] = None
        else:
            tensor = value.detach() if isinstance(value, torch.Tensor) else torch.as_tensor(value)
            self._values[name] = tensor.to(device="cpu", dtype=torch.float64).clone()
        self._cache = {k: v for k, v in self._cache.items() if k[0] != name}

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __len__(self) -> int:
        return len(self._values)

    def master(self, name: str) -> torch.Tensor | None:
        """The float64 CPU value itself (do not modify it in place)."""
        return self._values[name]

    def get(self, name: str, like: torch.Tensor) -> torch.Tensor | None:
        """Constant ``name`` in ``like``'s dtype and device (cached until the module is moved)."""
        value = self._values[name]
        if value is None:
            return None
        key = (name, like.dtype, like.device)
        cast = self._cache.get(key)
        if cast is None:
            cast = self._cache[key] = value.to(dtype=like.dtype, device=like.device)
        return cast

    def clear_cache(self) -> None:
        self._cache = {}

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Float64Constants:
        # no parameters or buffers of its own: a move only invalidates the casts
        self.clear_cache()
        return self

    # -- masters of a third-party module's buffers ---------------------------------------------------
    def track_buffers(self, module: torch.nn.Module) -> None:
        """Keep float64 masters of every floating-point buffer of ``module`` (names as in
        ``module.named_buffers()``); take them while the buffers are still exact (built in float64)."""
        self._masters = {
            name: buf.detach().to(device="cpu", dtype=torch.float64).clone()
            for name, buf in module.named_buffers()
            if buf.is_floating_point()
        }

    @property
    def tracked(self) -> dict[str, torch.Tensor]:
        """The float64 masters taken by :meth:`track_buffers`, by buffer name."""
        return dict(self._masters)

    def restore_buffers(self, module: torch.nn.Module) -> None:
        """Rewrite each tracked buffer of ``module`` from its master, in the buffer's current dtype and device."""
        for name, master in self._masters.items():
            owner, _, leaf = name.rpartition(".")
            holder = module.get_submodule(owner) if owner else module
            current = holder._buffers[leaf]
            if current is not None:
                holder._buffers[leaf] = master.to(device=current.device, dtype=current.dtype, copy=True)

    def extra_repr(self) -> str:
        return f"{len(self._values)} constants, {len(self._masters)} tracked buffers"
