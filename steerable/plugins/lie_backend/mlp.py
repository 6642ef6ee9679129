"""The lie backend's kernel MLP: equivariant polynomials of the position times learned invariant functions.

``mlp(pos (E, n), attr (E, a) | None) -> (E, D)`` per :mod:`steerable.core.mlp`.  Block ``b`` (pair
``(out, in)``) transforms under ``W_b = out ⊗ in^*`` (``= out ⊗ in`` for a group acting orthogonally):

1. **Polynomial embedding**: ``v_k(x) = `` the coordinates of ``(x / max_radius)^{⊗k}`` in the
   symmetric-power basis (``sqrt(N_I) x^I``, :mod:`.reps`), for ``k = 0 .. K_b``, ``K_b = out.degree +
   in.degree`` (or ``options["degree"]``).  ``v_k(g x) = Sym^k(g) v_k(x)`` exactly.
2. **Equivariant linear maps** ``B_{b,k,j} in Hom_G(Sym^k V, W_b)`` from the solver (:mod:`.solver`),
   giving the equivariant polynomial features ``f_{b,m}(x) = B_{b,m} v(x)``.  Every equivariant
   polynomial map of degree ``<= K_b`` is a combination of them; at a point ``x0`` they span every
   vector of ``W_b`` fixed by the stabiliser of ``x0`` once ``K_b`` reaches the highest component of
   ``W_b`` with such a vector (the tensor degree does, for the groups served here): the kernel is complete.
3. **Invariant gates**: ``out_b = sum_m c_{b,m}(u) f_{b,m}(x)``, the coefficients ``c`` an ordinary MLP
   (``Linear -> SiLU``, ``hidden_layers`` hidden layers of width ``8 * hidden_channels``) of invariant
   features ``u``: Gaussian bumps of each invariant quadratic ``q_j = x^T Q_j x / max_radius^2``
   (``Q_j`` an orthonormal basis of the group's invariant symmetric forms, each signed to have a
   non-negative inner product with ``eta``; ``|x|^2`` for SO(n), O(n), ``x^T eta x`` for O(p,q): positive
   on timelike, negative on spacelike, zero on lightlike vectors),
   ``radial_features`` bumps centred on ``[0, 1]``, the ``q_j`` themselves, the trivial attribute
   channels and the invariant quadratics of the other attribute fields.  Everything is a polynomial in
   ``x`` times smooth functions of ``x^T Q x``: smooth at 0, no division by ``|x|``.

A block with no equivariant polynomial (e.g. ``trivial <- ∧²`` for SO(4): no vector of ``∧²V`` is
fixed by the stabiliser ``SO(3)`` of a point) is identically zero, as the constraint demands.
Non-trivial attributes enter through their invariants only (equivariant, not complete with respect to
the joint stabiliser of position and attributes).  Constant tables are float64
(:class:`~steerable.core.constants.Float64Constants`).  Options: ``degree`` (int >= 0): the polynomial
degree of every block instead of ``K_b``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from steerable.core.constants import Float64Constants
from steerable.core.mlp import KernelMLPSpec

from .group import LieGroup
from .reps import LieRep, multiset_count, symmetric_multisets
from .solver import intertwiner_basis


def _skip_degree(group: LieGroup, target: LieRep, k: int) -> bool:
    """True when ``-I`` is in the group and acts on ``target`` by a sign other than ``(-1)^k`` (no map)."""
    minus = -np.eye(group.dim)[None]
    try:
        group.elements_from_matrices(torch.from_numpy(minus))
    except ValueError:
        return False
    rho = target.on_matrices(minus)[0]
    sign = round(float(rho[0, 0]))
    return bool(np.allclose(rho, sign * np.eye(target.size), atol=1e-9)) and sign != (-1) ** k


class PolynomialKernelMLP(torch.nn.Module):
    """Exact, complete kernel MLP of a :class:`~.group.LieGroup` (see the module docstring)."""

    def __init__(self, spec: KernelMLPSpec) -> None:
        super().__init__()
        spec.require(backend="lie", group_type=LieGroup, nonlinearities=("exact",), options={"degree": int})
        group: LieGroup = spec.group  # type: ignore[assignment]
        self.spec, self.group = spec, group
        n, std = group.dim, group.standard_rep()
        forced = spec.options.get("degree")
        if forced is not None and forced < 0:
            raise ValueError(f"lie backend: option 'degree' must be >= 0, got {forced}")
        # -- one set of polynomial features per distinct (out, in) pair -----------------------------
        pair_index: dict[tuple, int] = {}
        pair_tables: list[torch.Tensor] = []
        self.pair_degree: list[int] = []
        self.block_pair: list[int] = []
        self.block_terms: list[int] = []
        for out_rep, in_rep in spec.blocks:
            key = (out_rep.key, in_rep.key)
            if key not in pair_index:
                target = out_rep * in_rep.dual()
                degree = forced if forced is not None else out_rep.degree + in_rep.degree
                parts = []
                for k in range(degree + 1):
                    sym = std.symmetric_power(k)
                    if _skip_degree(group, target, k):
                        basis = np.zeros((0, target.size, sym.size))
                    else:
                        basis = intertwiner_basis(sym, target)  # (m, D, S_k)
                    padded = np.zeros((len(basis), target.size, _features(n, degree)))
                    off = _features(n, k - 1)
                    padded[:, :, off : off + sym.size] = basis
                    parts.append(padded)
                table = np.concatenate(parts)  # no rows: the symmetry forces this block to zero
                pair_index[key] = len(pair_tables)
                pair_tables.append(torch.from_numpy(table))
                self.pair_degree.append(degree)
            self.block_pair.append(pair_index[key])
            self.block_terms.append(pair_tables[pair_index[key]].shape[0])
        self.max_degree = max(self.pair_degree)
        # monomial index tables of v_k, k = 1 .. K, and their sqrt(N_I) scales
        monomials, scales = [], []
        for k in range(1, self.max_degree + 1):
            sets = symmetric_multisets(n, k)
            monomials.append(torch.tensor(sets, dtype=torch.long).reshape(len(sets), k))
            scales.append(torch.tensor([math.sqrt(multiset_count(s)) for s in sets], dtype=torch.float64))
        self._monomials = monomials
        # -- invariant features ----------------------------------------------------------------------
        # scaled so that |x|^2 appears with coefficient 1 for SO(n), O(n)
        # (for O(p,q) the one form is eta itself, signed like the group's eta: q > 0 on timelike vectors)
        sym_forms = _symmetric_span(group.invariant_bilinear_forms()) * math.sqrt(n)
        eta = group.quadratic_form().numpy()
        sym_forms = sym_forms * np.where(np.einsum("bij,ij->b", sym_forms, eta) < 0, -1.0, 1.0)[:, None, None]
        attr_forms, self.attr_fields = [], []
        if spec.attr_type is not None:
            for off, rep in zip(spec.attr_type.offsets, spec.attr_type.reps):
                if rep.is_trivial:
                    self.attr_fields.append((off, 1, -1))
                    continue
                q = _symmetric_span(intertwiner_basis(rep * rep, group.trivial_rep()).reshape(-1, rep.size, rep.size))
                self.attr_fields.append((off, rep.size, len(attr_forms)))
                attr_forms.append(torch.from_numpy(np.ascontiguousarray(q)))
        n_attr = sum(1 if idx < 0 else attr_forms[idx].shape[0] for _, _, idx in self.attr_fields)
        r = spec.radial_features
        n_inv = len(sym_forms) * (r + 1) + n_attr
        width = 8 * spec.hidden_channels
        layers: list[torch.nn.Module] = []
        size = n_inv
        for _ in range(spec.hidden_layers + 1):
            layers += [torch.nn.Linear(size, width), torch.nn.SiLU()]
            size = width
        self.invariant_mlp = torch.nn.Sequential(*layers)
        terms = sum(self.block_terms)
        self.head = torch.nn.Linear(width, max(terms, 1))  # one unused column when every block is zero
        torch.nn.init.normal_(self.head.weight, std=1.0 / math.sqrt(width))
        torch.nn.init.normal_(self.head.bias, std=1.0)
        self.constants = Float64Constants(
            forms=torch.from_numpy(np.ascontiguousarray(sym_forms)),
            centres=torch.linspace(0.0, 1.0, r, dtype=torch.float64),
            **{f"scale{k}": s for k, s in enumerate(scales, start=1)},
            **{f"pair{p}": t for p, t in enumerate(pair_tables)},
            **{f"attr{a}": q for a, q in enumerate(attr_forms)},
        )
        self._width = 1.0 / max(r - 1, 1)

    def _polynomials(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[v_0 (E, 1), v_1 (E, n), ..., v_K]`` of the scaled positions ``x``."""
        out = [torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)]
        for k, index in enumerate(self._monomials, start=1):
            scale = self.constants.get(f"scale{k}", x)
            out.append(x[:, index.to(x.device)].prod(dim=-1) * scale)
        return out

    def _invariants(self, x: torch.Tensor, attr: torch.Tensor | None) -> torch.Tensor:
        c = self.constants
        q = torch.einsum("ei,bij,ej->eb", x, c.get("forms", x), x)  # (E, b)
        bumps = torch.exp(-0.5 * ((q[:, :, None] - c.get("centres", x)) / self._width) ** 2)
        parts = [q, bumps.reshape(x.shape[0], -1)]
        if self.attr_fields:
            if attr is None:
                raise ValueError("lie backend kernel MLP: attributes are required (spec.attr_type is set)")
            for off, size, idx in self.attr_fields:
                a = attr[:, off : off + size]
                parts.append(a if idx < 0 else torch.einsum("ei,bij,ej->eb", a, c.get(f"attr{idx}", x), a))
        return torch.cat(parts, dim=-1)

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
        x = pos / self.spec.max_radius
        coeff = self.head(self.invariant_mlp(self._invariants(x, attr)))  # (E, sum_b m_b)
        poly = torch.cat(self._polynomials(x), dim=-1)  # (E, S_total)
        features: dict[int, torch.Tensor] = {}
        outs, start = [], 0
        for pair, terms in zip(self.block_pair, self.block_terms):
            if pair not in features:
                table = self.constants.get(f"pair{pair}", pos)  # (m, D, S_pair)
                features[pair] = torch.einsum("mds,es->emd", table, poly[:, : table.shape[-1]])
            outs.append(torch.einsum("em,emd->ed", coeff[:, start : start + terms], features[pair]))
            start += terms
        return torch.cat(outs, dim=-1)

    def extra_repr(self) -> str:
        return (
            f"{self.group.name}: degrees {sorted(set(self.pair_degree))}, terms {sum(self.block_terms)}, "
            f"blocks={len(self.spec.blocks)}"
        )


def _symmetric_span(forms: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``(b, d, d)`` of the symmetric parts of ``forms`` ``(m, d, d)``."""
    d = forms.shape[-1]
    sym = 0.5 * (forms + np.swapaxes(forms, 1, 2)).reshape(len(forms), -1)
    if len(sym) == 0:
        return np.zeros((0, d, d))
    u, s, vt = np.linalg.svd(sym, full_matrices=False)
    return np.ascontiguousarray(vt[s > 1e-9 * max(s[0], 1.0)].reshape(-1, d, d))


def _features(n: int, k: int) -> int:
    """``sum_{j <= k} dim Sym^j(R^n)`` (0 for ``k < 0``): the width of ``v_0 .. v_k`` side by side."""
    return sum(math.comb(n + j - 1, j) for j in range(k + 1)) if k >= 0 else 0
