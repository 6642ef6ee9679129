"""A tensor product with shared weights as one matrix product of its operands' outer product.

With non-invariant attributes :class:`~.mlp.E3nnKernelMLP` has no scalar form, and its hidden and
output layers are e3nn tensor products ``TP(h, e)`` with shared ("internal") weights: per edge a
bilinear map of ``h`` ``(d1,)`` and ``e`` ``(d2,)``.  e3nn evaluates it path by path (a
Clebsch-Gordan contraction of ``(E, mul, 2l+1)`` tensors per path: many small ops).  Written as one
matrix,

    ``TP(h, e) = (e ⊗ h) @ A``,  ``A`` ``(d2 d1, d_out)``,
    ``A[(j, i), o] = sum_path W_path[u, v, w] K_path[i', j', k]``

(``(u, i')`` the copy and component of flat index ``i`` in the path's first input, likewise ``(v, j')``
and ``(w, k)``), it is one outer product and one product with a wide output, the fast shapes on a
CPU (``benchmarks/README.md``, "e3nn backend with vector attributes": 2-4x faster than e3nn's code
for the output layer at ``E = 2048``); :func:`steerable.ops.outer_matmul` forms the outer product a
block of edges at a time and does not keep it for backward (it was the layer's largest tensor,
``d2`` times the size of ``h``).  ``A`` is linear in the weights and made on every call by one
gather of them times fixed coefficients (``d2 d1 d_out`` numbers, most of them zero); autograd takes
the weights' gradient through the gather.  The arithmetic is that of a dense bilinear map (the
zeros of ``A`` included), so this pays where the second operand is short (``e = Y ⊕ a``: one copy
per degree), as here.

The coefficients ``K_path`` are read off the module itself, one path at a time, in float64, so
e3nn's normalisations come with them (:mod:`.paths`); the whole map is compared with the module's
at a random input.  The tests compare both forms (values and gradients, float64).
"""

from __future__ import annotations

from math import prod

import torch
from e3nn import o3

from steerable.ops.outer import outer_matmul

from .paths import all_path_coefficients, check_reproduces, path_slices, require_weighted_uvw, unreadable_path

__all__ = ["BilinearForm", "nonzero_entries"]

#: Smallest fraction of nonzero entries of ``A`` for which the bilinear form is used: measured at
#: ``E = 2048`` on one CPU thread (``benchmarks/README.md``), the output layer of a kernel between
#: degrees <= 1 (20 % nonzero) ran 4x faster forward and 2x faster forward+backward than e3nn's code,
#: that between degrees <= 2 (13 %) 1.75x faster forward but 1.1x slower forward+backward.  Against
#: :class:`~.shared_weight.SharedWeightForm` (used below the threshold): 1.6x / 1.2x faster at 20 %,
#: 1.4x / 2.4x slower at 13 %.
MIN_DENSITY = 0.15
#: Largest ``A`` (entries) for which the bilinear form is used: its index and coefficients take 16
#: bytes an entry, the matrix made on every call 4-8.
MAX_ENTRIES = 1 << 20


def nonzero_entries(tp: o3.TensorProduct, coefficients: list[torch.Tensor] | None = None) -> int:
    """The number of nonzero entries of ``A`` for a ``tp`` of weighted ``'uvw'`` paths: per path, the
    nonzero coefficients of ``K`` times its ``mul1 mul2 mul_out`` copies (paths never share entries).
    ``coefficients``: the paths' ``K`` if already read (else read here)."""
    ks = all_path_coefficients(tp) if coefficients is None else coefficients
    return sum(int((k != 0).sum()) * prod(ins.path_shape) for k, ins in zip(ks, tp.instructions, strict=True))


class BilinearForm(torch.nn.Module):
    """``tp(x1, x2)`` of an ``o3.TensorProduct`` with internal weights as ``(x2 ⊗ x1) @ A(tp.weight)``.

    Holds constants only (``index``, ``coefficient``: float64 buffers, to be tracked by the owner's
    :class:`~steerable.core.constants.Float64Constants`); ``forward(tp, x1, x2)`` takes the weights
    from ``tp`` and returns ``(E, tp.irreps_out.dim)`` for ``x1`` ``(E, d1)``, ``x2`` ``(E, d2)``.
    ``coefficients``: the paths' ``K`` if already read (:meth:`if_worthwhile` reads them to count the
    density), else read here.  Raises ``RuntimeError`` for a module it cannot read (external weights,
    a path other than ``'uvw'``).
    """

    def __init__(self, tp: o3.TensorProduct, coefficients: list[torch.Tensor] | None = None) -> None:
        super().__init__()
        if not tp.internal_weights:
            raise RuntimeError("BilinearForm: the tensor product must hold its own (shared) weights")
        require_weighted_uvw(tp, "BilinearForm")
        ks = all_path_coefficients(tp) if coefficients is None else coefficients  # (i', j', k) per path
        d1, d2, dout = tp.irreps_in1.dim, tp.irreps_in2.dim, tp.irreps_out.dim
        self.dims = (d1, d2)
        self.shape = (d2 * d1, dout)
        pad = tp.weight_numel  # the index of a zero appended to the weights
        index = torch.full((d2, d1, dout), pad, dtype=torch.long)
        coefficient = torch.zeros(d2, d1, dout, dtype=torch.float64)
        start = 0
        with torch.no_grad():
            for ins, k in zip(tp.instructions, ks, strict=True):
                mul1, mul2, mulo = ins.path_shape
                s1, s2, so = path_slices(tp, ins)
                a, b, c = k.shape
                # flat positions of (u, i'), (v, j'), (w, k) and the weight index of (u, v, w)
                rows1 = (s1.start + torch.arange(mul1)[:, None] * a + torch.arange(a)).view(mul1, 1, 1, a, 1, 1)
                rows2 = (s2.start + torch.arange(mul2)[:, None] * b + torch.arange(b)).view(1, mul2, 1, 1, b, 1)
                cols = (so.start + torch.arange(mulo)[:, None] * c + torch.arange(c)).view(1, 1, mulo, 1, 1, c)
                w_index = start + torch.arange(mul1 * mul2 * mulo).view(mul1, mul2, mulo, 1, 1, 1)
                shape = (mul1, mul2, mulo, a, b, c)
                at = (rows2.expand(shape), rows1.expand(shape), cols.expand(shape))
                if bool((index[at] != pad).any()):
                    raise RuntimeError(f"BilinearForm: two paths share the entries of {ins}")
                index[at] = w_index.expand(shape)
                coefficient[at] = k.view(1, 1, 1, a, b, c).expand(shape)
                start += mul1 * mul2 * mulo
        self.register_buffer("index", index.view(-1), persistent=False)
        self.register_buffer("coefficient", coefficient.view(-1), persistent=False)
        check_reproduces(tp, lambda x1, x2, weight: outer_matmul(x1, x2, self.matrix(weight)), "BilinearForm")

    @classmethod
    def if_worthwhile(cls, tp: o3.TensorProduct) -> BilinearForm | None:
        """The form of ``tp`` if it holds its weights and ``A`` is small and dense enough
        (:data:`MAX_ENTRIES`, :data:`MIN_DENSITY`), else ``None``."""
        entries = tp.irreps_in1.dim * tp.irreps_in2.dim * tp.irreps_out.dim
        if not tp.internal_weights or entries > MAX_ENTRIES:
            return None
        if unreadable_path(tp) is not None:
            return cls(tp)  # raises: a path it cannot read
        coefficients = all_path_coefficients(tp)
        if nonzero_entries(tp, coefficients) < MIN_DENSITY * entries:  # counted per path: no index built to be dropped
            return None
        return cls(tp, coefficients)

    @property
    def density(self) -> float:
        """The fraction of nonzero entries of ``A``."""
        return float((self.coefficient != 0).sum()) / max(self.coefficient.numel(), 1)

    def matrix(self, weight: torch.Tensor) -> torch.Tensor:
        """``A`` ``(d2 d1, d_out)`` for the flat weights ``weight`` ``(weight_numel,)``."""
        padded = torch.cat([weight, weight.new_zeros(1)])
        return (padded.index_select(0, self.index) * self.coefficient).view(self.shape)

    def forward(self, tp: o3.TensorProduct, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        n = x1.shape[0]
        if x1.ndim != 2 or x2.shape != (n, self.dims[1]) or x1.shape[1] != self.dims[0]:
            raise ValueError(f"BilinearForm: inputs {tuple(x1.shape)} and {tuple(x2.shape)} do not match {tp}")
        return outer_matmul(x1, x2, self.matrix(tp.weight))
