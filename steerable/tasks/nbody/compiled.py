"""Training calls of a module through ``torch.compile``, every other call eager (``--compile``).

The N-body model runs on small tensors (batches of 100 systems of 5 particles: 2,000 edges), so
an eager training step is dominated by the cost of launching several thousand small operations and
their autograd bookkeeping; Inductor fuses them into a few generated loops (forward and backward).
Only the training graph is compiled (module in training mode, gradients enabled): validation,
testing and the equivariance measurement run eagerly, so one compilation serves the whole run.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["TrainingCompiler"]


class TrainingCompiler:
    """Calls ``module(*args)``, through ``torch.compile(module, **options)`` when it trains.

    ``compiler(module, *args)`` runs the compiled module when ``module.training`` and gradients are
    enabled, the module itself otherwise.  The compiled module is made on the first training call
    (compilation: minutes on one CPU thread for the N-body preset, cached on disk by Inductor
    for later runs), after one eager forward without gradients, and made again if a different
    module is passed.  Copies
    (``copy.deepcopy``, pickling) keep the options, not the compiled code: each copy compiles
    its own on its first training call.

    Args:
        options: keyword arguments of :func:`torch.compile`; default ``fullgraph=True`` (one
            graph, an error instead of a silent split) and ``dynamic=False`` (shapes are fixed
            per batch size; a new batch size compiles again).
    """

    def __init__(self, **options: Any) -> None:
        self.options = dict(fullgraph=True, dynamic=False) | options
        self._compiled: torch.nn.Module | None = None

    def __call__(self, module: torch.nn.Module, *args: Any) -> Any:
        if not (module.training and torch.is_grad_enabled()):
            return module(*args)
        if self._compiled is None or getattr(self._compiled, "_orig_mod", None) is not module:
            # one eager call first fills the model's lazy caches (constants cast to the input's
            # dtype): filled while tracing, they would change the module's state and the next
            # call would compile a second graph
            with torch.no_grad():
                module(*args)
            self._compiled = torch.compile(module, **self.options)
        return self._compiled(*args)

    def __deepcopy__(self, memo: dict[int, Any]) -> TrainingCompiler:
        return TrainingCompiler(**self.options)

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options, "_compiled": None}

    def __repr__(self) -> str:
        return f"TrainingCompiler({self.options})"
