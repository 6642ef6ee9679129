"""escnn's ``nn.Linear`` made fit for the kernel MLP's layers, which use it on plain tensors.

escnn's ``Linear`` has three habits that break saving, copying and multi-process training of a
model that contains it; :class:`PlainLinear` removes them:

* in eval mode it registers the expanded matrix and bias as *buffers* (``matrix``,
  ``expanded_bias``) and deletes them in train mode, so ``state_dict`` keys depend on the history of
  ``.train()`` / ``.eval()`` calls, and ``deepcopy`` in eval mode fails (the buffers are built with
  autograd on: not graph leaves).  Here nothing is registered by mode; :meth:`PlainLinear.expanded`
  keeps a cache outside the state dict, for inference on the CPU only (where checking it needs no
  host synchronisation).
* it shares one basis-expansion module per (representations, points) between every ``Linear``, so
  ``.double()`` on one model would change another's buffers: each layer gets private copies.
* it registers its basis-expansion submodules in the iteration order of a ``set`` of
  representations, which depends on Python's hash seed: two processes would list the same
  buffers in different orders (Lightning's DDP broadcasts buffers by position).  Here they are
  sorted by name.

The private basis modules also compare and hash by identity (escnn's compare their bases, so every
walk over a model's modules, e.g. ``zero_grad()``, hashed bases in Python and ran ``allclose`` on
the equal ones of different layers) and expand a block with one matrix product (escnn: an
``einsum``, a dozen small ops and autograd nodes per block per step): [issue 18].
"""

from __future__ import annotations

import copy
from typing import Any

import escnn.nn as enn
import torch
from escnn.nn.modules.basismanager.basisexpansion_blocks import BlocksBasisExpansion
from escnn.nn.modules.basismanager.basisexpansion_singleblock import SingleBlockBasisExpansion

from steerable.ops.transforms import compiling_or_transformed

#: escnn's eval-mode buffers, dropped from old state dicts when loading
_EVAL_BUFFERS = ("matrix", "expanded_bias")


class PlainLinear(enn.Linear):
    """escnn ``nn.Linear(in_type, out_type, bias)`` without mode-dependent buffers, with private
    basis modules registered in sorted order (see the module docstring).

    :meth:`expanded` gives the ``(out, in)`` matrix and the bias; ``forward`` takes and returns an
    escnn ``GeometricTensor`` like escnn's.  ``state_dict`` keys are the same in every mode; state
    dicts saved by escnn's ``Linear`` in eval mode (with ``matrix`` / ``expanded_bias``) still load.
    """

    def __init__(self, in_type: Any, out_type: Any, bias: bool = True) -> None:
        super().__init__(in_type, out_type, bias=bias)
        for name in _EVAL_BUFFERS:  # escnn registers them at construction too (zeros)
            self._buffers.pop(name, None)
            self.__dict__.pop(name, None)
        _private_sorted_basis(self)
        self._expansion: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None

    def train(self, mode: bool = True) -> PlainLinear:
        return torch.nn.Module.train(self, mode)  # not escnn's: no buffers by mode

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> PlainLinear:
        self._expansion = None  # .to(), .double(): the cached tensors would be of the old kind
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in _EVAL_BUFFERS:
            state_dict.pop(prefix + name, None)
        self._expansion = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def expanded(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The expanded ``(out, in)`` matrix and ``(out,)`` bias (``None`` without bias).

        Recomputed on every call whenever autograd may need it (training mode, or gradients on
        and a parameter that requires them), under ``torch.compile`` and for parameters off the
        CPU.  Otherwise (inference on the CPU) it is cached and recomputed when a parameter's value
        changed.  Values are compared, not version counters or storage pointers: an in-place edit
        through ``.data`` (Lightning's ``EMAWeightAveraging`` swaps weights with ``p.data.copy_``)
        changes neither, and a cache keyed on them would silently return the old matrix.  On the
        CPU the comparison reads host memory (no synchronisation).  On an accelerator it would be
        one host synchronisation per layer per call, stalling the CPU until the device's queue
        drains; recomputing instead costs the expansion's few asynchronous kernels (as in
        training), and nothing can go stale.  ``load_state_dict`` (also with ``assign=True``),
        replaced parameters and ``p.data = ...`` are followed, as ``self.weights`` / ``self.bias``
        are read anew on every call.
        """
        params = [self.weights] + ([self.bias] if self.bias is not None else [])
        needs_graph = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        on_host = all(p.device.type == "cpu" for p in params)
        if self.training or needs_graph or not on_host or compiling_or_transformed():
            return self.expand_parameters()
        values = torch.cat([p.detach().reshape(-1) for p in params])
        cache = self._expansion
        if cache is None or cache[0].dtype != values.dtype or not torch.equal(cache[0], values):
            with torch.no_grad():
                matrix, bias = self.expand_parameters()
            cache = self._expansion = (values.clone(), matrix, bias)
        return cache[1], cache[2]

    def forward(self, input: Any) -> Any:
        """escnn ``GeometricTensor`` of ``in_type`` ``(E, in)`` -> one of ``out_type`` ``(E, out)``."""
        if input.type != self.in_type:
            raise ValueError(f"PlainLinear: input of type {input.type}, expected {self.in_type}")
        matrix, bias = self.expanded()
        return enn.GeometricTensor(torch.nn.functional.linear(input.tensor, matrix, bias), self.out_type, input.coords)


class _PrivateBlockExpansion(SingleBlockBasisExpansion):
    """A layer's own copy of escnn's block expansion: equal only to itself, and the expansion
    ``sum_b weights[k, b] basis[b, ...]`` as one matrix product.

    ``weights`` ``(k, b)``, ``sampled_basis`` ``(b, out, in, points)`` -> ``(k, out, in, points)``.
    """

    __hash__ = object.__hash__
    __eq__ = object.__eq__

    def forward(self, weights: torch.Tensor) -> torch.Tensor:
        basis = self.sampled_basis
        return (weights @ basis.reshape(basis.shape[0], -1)).view(weights.shape[0], *basis.shape[1:])


class _PrivateBlocks(BlocksBasisExpansion):
    """A layer's escnn ``BlocksBasisExpansion``, equal only to itself (escnn's hashes its bases)."""

    __hash__ = object.__hash__
    __eq__ = object.__eq__


def _private_sorted_basis(linear: torch.nn.Module) -> None:
    """Give ``linear`` private copies of escnn's cached basis-expansion modules, and register the
    block expansions of every ``BlocksBasisExpansion`` in sorted order.

    escnn caches one ``SingleBlockBasisExpansion`` module per (basis, points) and shares it between
    every ``Linear`` built with the same representations, so ``.double()`` or ``.to(device)`` on one
    model would silently change the buffers of another (and of layers built later: escnn's own
    ``Linear.double()`` leaves float64 bases in its cache).  A shallow copy with its own buffer dict,
    in the dtype and device of the layer's weights, keeps the (read-only) sampled basis tensors
    shared until one model converts them.
    """
    for owner in linear.modules():
        if owner is linear:
            continue
        for name, child in list(owner._modules.items()):
            if child is not None and type(child).__name__ == "SingleBlockBasisExpansion":
                private = copy.copy(child)
                private.__class__ = _PrivateBlockExpansion
                # in the layer's dtype: another model's .double() converts escnn's shared module
                private._buffers = {k: _like(v, linear.weights) for k, v in child._buffers.items()}
                private._parameters = dict(child._parameters)
                private._modules = dict(child._modules)
                owner._modules[name] = private
        if type(owner).__name__ == "BlocksBasisExpansion":
            owner.__class__ = _PrivateBlocks
            owner._modules = dict(sorted(owner._modules.items()))
            _int_slice_bounds(owner)


def _like(buffer: torch.Tensor | None, param: torch.Tensor) -> torch.Tensor | None:
    """``buffer`` with the dtype (if floating) and device of ``param``."""
    if buffer is None:
        return None
    return buffer.to(device=param.device, dtype=param.dtype if buffer.is_floating_point() else buffer.dtype)


def _int_slice_bounds(expansion: torch.nn.Module) -> None:
    """Store the slice bounds of a ``BlocksBasisExpansion``'s contiguous blocks as Python ints.

    escnn keeps ``[start, stop, length]`` of each contiguous block as 0-d tensors (plain attributes,
    not buffers) and slices the filter with them: under ``torch.compile`` Dynamo reads them as
    data-dependent sizes, which Inductor fails to lower.  The values are fixed by the field types;
    ints give the same slices with static shapes.  Non-contiguous blocks keep their index buffers
    (advanced indexing compiles).
    """
    for pair, contiguous in expansion._contiguous.items():
        if not contiguous:
            continue
        escaped = expansion._escape_pair(pair)
        for side in ("in", "out"):
            name = f"{side}_indices_{escaped}"
            bounds = getattr(expansion, name)
            setattr(expansion, name, [int(b) for b in bounds])
