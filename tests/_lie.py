"""Transformations and representation matrices built from the documented conventions, for the lie-backend
tests (never taken from the backend): rotations, boosts, reflections, minors, duals."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch


def J(n: int, i: int, j: int) -> np.ndarray:
    """The rotation generator in the (i, j) plane: ``E_ij - E_ji``."""
    m = np.zeros((n, n))
    m[i, j], m[j, i] = 1.0, -1.0
    return m


def eta(p: int, q: int) -> torch.Tensor:
    """``diag(+1 (p times), -1 (q times))``: the form ``O(p,q)`` preserves (the issue's convention)."""
    return torch.diag(torch.tensor([1.0] * p + [-1.0] * q, dtype=torch.float64))


def rotation(n: int, i: int, j: int, angle: float) -> torch.Tensor:
    """Rotation by ``angle`` in the (i, j) plane: ``e_i -> cos e_i + sin e_j``."""
    g = torch.eye(n, dtype=torch.float64)
    c, s = math.cos(angle), math.sin(angle)
    g[i, i], g[i, j], g[j, i], g[j, j] = c, -s, s, c
    return g


def boost(n: int, i: int, j: int, rapidity: float) -> torch.Tensor:
    """Boost of rapidity ``rapidity`` mixing coordinate ``i`` (positive in eta) with ``j`` (negative):
    ``[[cosh, sinh], [sinh, cosh]]`` in the (i, j) plane."""
    g = torch.eye(n, dtype=torch.float64)
    c, s = math.cosh(rapidity), math.sinh(rapidity)
    g[i, i], g[i, j], g[j, i], g[j, j] = c, s, s, c
    return g


def flip(n: int, *axes: int) -> torch.Tensor:
    """The reflection negating the given coordinates."""
    d = torch.ones(n, dtype=torch.float64)
    d[list(axes)] = -1.0
    return torch.diag(d)


def minors(g: torch.Tensor, k: int) -> torch.Tensor:
    """``(N, C(n,k), C(n,k))``: entry ``(I, J)`` = ``det g[I, J]``, ``I``, ``J`` increasing, lexicographic."""
    combos = list(itertools.combinations(range(g.shape[-1]), k))
    out = torch.empty(g.shape[0], len(combos), len(combos), dtype=g.dtype)
    for a, rows in enumerate(combos):
        for b, cols in enumerate(combos):
            out[:, a, b] = torch.linalg.det(g[:, list(rows)][:, :, list(cols)])
    return out


def convention(kind: str, g: torch.Tensor) -> torch.Tensor:
    """The documented matrices of a representation named ``kind`` on elements ``g`` ``(N, n, n)``."""
    if kind == "s":
        return torch.ones(g.shape[0], 1, 1, dtype=g.dtype)
    if kind == "v":
        return g
    if kind == "dual":
        return torch.linalg.inv(g).mT
    if kind == "det":
        return torch.linalg.det(g)[:, None, None]
    if kind.startswith("ext"):
        return minors(g, int(kind[3:]))
    raise KeyError(kind)


def field_matrices(kinds: list[str], g: torch.Tensor) -> torch.Tensor:
    """Block-diagonal ``(N, C, C)``: the conventions of ``kinds`` in order."""
    return torch.stack([torch.block_diag(*[convention(k, g[i : i + 1])[0] for k in kinds]) for i in range(len(g))])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# -- what both lie-backend test files build from those conventions -------------------------------
KINDS = ("s", "v", "dual", "det", "ext2", "ext3")


def backend_rep(G, kind: str):
    """The backend's representation of ``kind`` (a key of :func:`convention`) of group ``G``."""
    v = G.standard_rep()
    named = {"s": G.trivial_rep(), "v": v, "dual": v.dual(), "det": G.det_rep()}
    return named.get(kind) or v.exterior_power(int(kind[3:]))


def field_type(G, kinds: list[str]):
    """``FieldType`` of ``G`` with one field per kind."""
    import steerable as st

    return st.FieldType(G, [backend_rep(G, k) for k in kinds])


def kind_of(G, rep) -> str:
    """The kind of the backend representation ``rep``."""
    for kind in KINDS:
        if backend_rep(G, kind).key == rep.key:
            return kind
    raise KeyError(rep)


def layer_equivariance_error(G, kinds_in: list[str], kinds_out: list[str], g: torch.Tensor, dtype) -> float:
    """The largest relative equivariance error of an ``ImplicitKernel``, its MLP and a ``PointConv``
    of ``G`` (fields of ``kinds_in`` -> ``kinds_out``, in ``dtype``) under the elements ``g``
    ``(n, d, d)``, every expected value built in float64 from :func:`convention`:
    ``K(g x) = rho_out(g) K(x) rho_in(g)^-1``; MLP block ``b`` moves by ``kron(out_b(g), in_b(g)^-T)``;
    ``conv(rho_in(g) x, g pos + t) = rho_out(g) conv(x, pos)``.  Outputs must not vanish."""
    import steerable as st

    fin, fout = field_type(G, kinds_in), field_type(G, kinds_out)
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    kernel = st.ImplicitKernel(fin, fout, hidden_channels=2, max_radius=1.0).to(dtype)
    conv = st.PointConv(fin, fout, hidden_channels=2, max_radius=1.0).to(dtype)
    mlp = kernel.mlp
    rin, rout = field_matrices(kinds_in, g), field_matrices(kinds_out, g)
    pos = (torch.randn(6, G.dim, generator=gen, dtype=torch.float64) * 0.6).to(dtype)
    n_nodes = 7
    nodes = torch.randn(n_nodes, G.dim, generator=gen, dtype=torch.float64).to(dtype)
    x = torch.randn(n_nodes, fin.size, generator=gen, dtype=torch.float64).to(dtype)
    edges = torch.tensor([(i, j) for i in range(n_nodes) for j in range(n_nodes) if i != j]).T
    worst = 0.0
    with torch.no_grad():
        k0, y0, m0 = kernel(pos), conv(x, nodes, edges), mlp(pos)
        assert float(y0.abs().max()) > 0 and float(k0.abs().max()) > 0
        for i in range(len(g)):
            gi = g[i].to(dtype)
            errs = [rel(kernel(pos @ gi.T), (rout[i] @ k0.double() @ torch.linalg.inv(rin[i])).to(dtype))]
            start, outs = 0, []
            for ro, ri in mlp.spec.blocks:
                a, b = convention(kind_of(G, ro), g[i : i + 1])[0], convention(kind_of(G, ri), g[i : i + 1])[0]
                size = ro.size * ri.size
                outs.append(m0[:, start : start + size].double() @ torch.kron(a, torch.linalg.inv(b).T).T)
                start += size
            errs.append(rel(mlp(pos @ gi.T), torch.cat(outs, -1).to(dtype)))
            t = torch.randn(G.dim, generator=gen, dtype=torch.float64).to(dtype)
            moved = conv(x @ rin[i].T.to(dtype), nodes @ gi.T + t, edges)
            errs.append(rel(moved, (y0.double() @ rout[i].T).to(dtype)))
            worst = max(worst, *errs)
    return worst


@pytest.fixture(scope="module", autouse=True)
def lie_registered(tmp_path_factory):
    """The lie backend (registered by entry point once the package is reinstalled), a private cache;
    a test module imports it to use it for all its tests."""
    import steerable as st
    from steerable.plugins import lie_backend

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STEERABLE_CACHE", str(tmp_path_factory.mktemp("lie-cache")))
        if "lie" not in [b.name for b in st.list_backends()]:
            st.register_plugin(lie_backend, name="lie")
        yield


def torus():
    """The torus ``T2`` on ``R^4`` given by its Lie algebra: rotations in the (0,1) and (2,3) planes."""
    import steerable as st

    return st.group_from_generators([], lie_algebra=[J(4, 0, 1), J(4, 2, 3)], dim=4, name="T2")


def boost_11():
    """``SO+(1,1)`` on ``R^2`` given only by its Lie algebra (the boost generator)."""
    import steerable as st

    return st.group_from_generators([], lie_algebra=[np.array([[0.0, 1.0], [1.0, 0.0]])], dim=2, name="SO+(1,1)x")
