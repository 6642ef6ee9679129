"""The matrix backend's kernel MLP: regular fields with pointwise nonlinearities (exact and complete).

``mlp(pos (E, n), attr (E, a) | None) -> (E, D)`` per :mod:`steerable.core.mlp`.  Three stages:

1. **Orbit lift** into ``C`` copies of the regular representation: ``z_h = phi(h^-1 pos,
   rbf(|pos|), rho_attr(h^-1) attr)`` for every ``h in G``, with ``phi`` an ordinary MLP
   (``Linear -> SiLU``) shared by all ``h``.  Replacing ``pos`` by ``g pos`` (and ``attr`` by
   ``g attr``) gives ``z'_h = z_{g^-1 h}``: the left regular action, exactly (a permutation).
   Unlike an equivariant *linear* input layer it produces every irrep of ``G`` (a generic function
   on the orbit), which is what makes the kernel complete.
2. ``hidden_layers`` **group convolutions** ``y_h = b + sum_u W_u z_{h u}`` (``W_u`` a ``C x C``
   matrix per group element; this is the whole of ``Hom_G(C reg, C reg)``, ``|G| C^2``
   parameters), each followed by a pointwise SiLU (exact on permutation representations).
3. **Output intertwiner** ``out_b = sum_h rho_b(h) sum_c z_h^c v_b^c`` with ``rho_b =
   out_b ⊗ in_b`` and learned ``v_b^c in R^{d_b}``: the whole of ``Hom_G(C reg, rho_b)`` (``C d_b``
   parameters; equal to the dimension the numerical solver finds, checked in the tests) in closed
   form, so nothing of size ``|G| d_b`` has to be solved for large blocks.

Cost per edge: ``|G| (n + a + R) C`` for the lift, ``(|G| C)^2`` per hidden layer, ``|G| C D``
for the output.  Group tables are kept in float64 (:class:`~steerable.core.constants.Float64Constants`).
Options (``spec.options``): none; ``spec.nonlinearity`` must be ``"exact"``.
"""

from __future__ import annotations

import math

import torch

from steerable.core.constants import Float64Constants
from steerable.core.mlp import KernelMLPSpec
from steerable.core.radial import RadialBasis
from steerable.core.representation import tensor_matrices

from .group import MatrixGroup

_FOURIER = 16  # random Fourier features of the moved position


class _GroupConv(torch.nn.Module):
    """``y_h = b + sum_u W_u z_{hu}`` on ``(E, |G|, C_in) -> (E, |G|, C_out)``."""

    def __init__(self, group: MatrixGroup, c_in: int, c_out: int) -> None:
        super().__init__()
        n = group.order
        self.weight = torch.nn.Parameter(torch.randn(n, c_in, c_out) / math.sqrt(n * c_in))
        self.bias = torch.nn.Parameter(torch.zeros(c_out))  # constant over h: invariant
        # Full matrix entry (h, k) uses W_{h^-1 k}: index[h, k] = h^-1 k.
        self.register_buffer("index", torch.from_numpy(group.mult[group.inverse]), persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, c_in, c_out = self.weight.shape
        full = self.weight[self.index]  # (h, k, C_in, C_out)
        full = full.permute(1, 2, 0, 3).reshape(n * c_in, n * c_out)
        return (z.reshape(z.shape[0], n * c_in) @ full).view(-1, n, c_out) + self.bias


class RegularKernelMLP(torch.nn.Module):
    """Exact, complete kernel MLP of a finite :class:`~.group.MatrixGroup` (see module docstring)."""

    def __init__(self, spec: KernelMLPSpec) -> None:
        super().__init__()
        spec.require(backend="matrix", group_type=MatrixGroup, nonlinearities=("exact",), options=())
        group = spec.group
        self.spec, self.group = spec, group
        n, c = group.order, spec.hidden_channels
        self.radial = RadialBasis(spec.radial_features, spec.max_radius)
        # Fixed random Fourier features of h^-1 pos: far from polynomial at the kernel's scale, so
        # the lifted function on the orbit has O(1) components in every irrep, also in those that
        # first appear at high polynomial degree (e.g. degree 9 for one 1D irrep of m-3m).
        gen = torch.Generator().manual_seed(0)
        freqs = torch.randn(_FOURIER, group.dim, generator=gen, dtype=torch.float64) * (math.pi / spec.max_radius)
        self.lift = torch.nn.Linear(group.dim + 2 * _FOURIER + spec.attr_size + spec.radial_features, c)
        self.hidden = torch.nn.ModuleList(_GroupConv(group, c, c) for _ in range(spec.hidden_layers))
        self.act = torch.nn.SiLU()
        # Output: one (C, d_b) parameter per block, tables rho_b(h) (|G|, d_b, d_b).
        self.out_weights = torch.nn.ParameterList()
        tables = []
        cache: dict[tuple[tuple, tuple], torch.Tensor] = {}
        elements = group.elements()
        for ro, ri in spec.blocks:
            key = (ro.key, ri.key)
            if key not in cache:  # (|G|, d_b, d_b) in element order: kron(out(h), in(h))
                cache[key] = tensor_matrices(ro.matrices(elements), ri.matrices(elements))
            tables.append(cache[key])
            d = ro.size * ri.size
            self.out_weights.append(torch.nn.Parameter(torch.randn(c, d) / math.sqrt(n * c)))
        # Group tables in float64 outside the buffers (.float() would round them), cast on use.
        attr_inv = None
        if spec.attr_type is not None:
            attr_inv = spec.attr_type.matrices(elements)[torch.from_numpy(group.inverse)]
        self.constants = Float64Constants(
            pos_inv=torch.from_numpy(group._elements[group.inverse]),  # (|G|, n, n): h^-1
            attr_inv=attr_inv,
            freqs=freqs,
            **{f"out{b}": table for b, table in enumerate(tables)},
        )

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        c = self.constants
        pos_inv, attr_inv, freqs = c.get("pos_inv", pos), c.get("attr_inv", pos), c.get("freqs", pos)
        out_tables = [c.get(f"out{b}", pos) for b in range(len(self.out_weights))]
        e, n = pos.shape[0], self.group.order
        moved = torch.einsum("hij,ej->ehi", pos_inv, pos)  # h^-1 pos
        phase = moved @ freqs.T
        parts = [moved / self.spec.max_radius, torch.sin(phase), torch.cos(phase)]
        if attr_inv is not None:
            if attr is None:
                raise ValueError("matrix backend kernel MLP: attributes are required")
            parts.append(torch.einsum("hij,ej->ehi", attr_inv, attr))
        radial = self.radial(pos.norm(dim=-1))  # invariant
        parts.append(radial[:, None, :].expand(e, n, radial.shape[-1]))
        z = self.act(self.lift(torch.cat(parts, dim=-1)))  # (E, |G|, C)
        for layer in self.hidden:
            z = self.act(layer(z))
        # M_b[h, c, i] = sum_j rho_b(h)[i, j] v_b[c, j]; out_b = sum_{h, c} z[h, c] M_b[h, c, i].
        # All blocks side by side: one (|G| C, D) matrix, one matmul.
        mats = [
            torch.einsum("hij,cj->hci", t, w).reshape(-1, t.shape[-1]) for w, t in zip(self.out_weights, out_tables)
        ]
        return z.reshape(e, -1) @ torch.cat(mats, dim=-1)

    def extra_repr(self) -> str:
        return (
            f"{self.group.name}: |G|={self.group.order}, channels={self.spec.hidden_channels}, "
            f"blocks={len(self.spec.blocks)}"
        )
