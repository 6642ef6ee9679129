"""Field-wise layers (FieldNorm, FieldBatchNorm, FieldDropout, pooling, NormNonlinearity, Sequential).

Equivariance is checked on every backend (escnn, e3nn, matrix) with transformations built here from
the documented conventions: the channels of a feature transform by the block-diagonal
``ft.matrices(g)`` (whose standard blocks are checked against ``g.matrices``, the coordinate
matrices), point features ``(N, C)`` and grid features ``(B, C, X, Y[, Z])`` on axis 1, and for
grids of the planar groups C4 / D4 also the spatial action ``(g.f)(p) = rho(g) f(g^-1 p)``.
Bound: relative error ``<= 2e-14`` in float64; measured ``<= 1.4e-15`` (largest on e3nn, whose
representation matrices carry round-off of their own; ``<= 8e-16`` elsewhere), a margin of 14.
"""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import steerable as st
from steerable.nn.dropout import FieldDropout
from steerable.nn.nonlinearity import NormNonlinearity
from steerable.nn.norm import FieldBatchNorm, FieldNorm
from steerable.nn.pooling import GlobalPool, InvariantPool, global_pool, invariant_pool
from steerable.nn.sequential import Sequential

BOUND = 2e-14
GROUPS = [
    ("SO(3)", "escnn"),
    ("SO(3)", "e3nn"),
    ("O(3)", "e3nn"),
    ("C4", "escnn"),
    ("D4", "escnn"),
    ("m-3m", "matrix"),
    ("C4", "matrix"),
]


@pytest.fixture(scope="module", params=GROUPS, ids=[f"{n}-{b}" for n, b in GROUPS])
def field_type(request) -> st.FieldType:
    """Two scalars, every non-trivial irrep up to frequency 2, and the standard rep once more."""
    name, backend = request.param
    G = st.group(name, backend=backend)
    g = G.sample(4, generator=torch.Generator().manual_seed(0))
    # the convention the tests rely on: the standard rep's matrices are the coordinate matrices
    assert torch.allclose(G.standard_rep().matrices(g), g.matrices, atol=1e-14)
    reps = [G.trivial_rep()] * 2 + [r for r in G.irreps(2) if not r.is_trivial] + [G.standard_rep()]
    return st.FieldType(G, reps)


def act(ft: st.FieldType, g, x: torch.Tensor) -> torch.Tensor:
    """``rho(g)`` of one element on the channels (axis 1) of ``x``."""
    return torch.einsum("ij,nj...->ni...", ft.matrices(g)[0].to(x), x)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def elements(ft: st.FieldType, n: int = 3):
    G = ft.group
    return [G.sample(1, generator=torch.Generator().manual_seed(s)) for s in range(1, n + 1)]


def point_features(ft: st.FieldType, n: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, ft.size, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def grid_features(ft: st.FieldType, seed: int = 0) -> torch.Tensor:
    spatial = (5,) * ft.group.dim
    return torch.randn((2, ft.size) + spatial, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def rotate_grid(ft: st.FieldType, g, x: torch.Tensor) -> torch.Tensor:
    """``(g.f)(p) = rho(g) f(g^-1 p)`` on a centred square 2D grid (g a lattice symmetry)."""
    n = x.shape[-1]
    c = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    p = torch.stack(torch.meshgrid(c, c, indexing="ij"), -1)  # (n, n, 2) coordinates of each cell
    src = torch.einsum("ij,abj->abi", g.matrices[0].T, p)  # g^-1 p (orthogonal)
    idx = torch.round(src + (n - 1) / 2).long()
    assert torch.allclose(src + (n - 1) / 2, idx.double(), atol=1e-9)
    return act(ft, g, x[:, :, idx[..., 0], idx[..., 1]])


def check_layer(ft, layer, x, reseed: int | None = None) -> float:
    """Max relative error of ``layer(g x)`` vs ``g layer(x)`` over a few elements (fiber action)."""

    def run(inp):
        if reseed is not None:
            torch.manual_seed(reseed)
        return layer(inp)

    worst = 0.0
    for g in elements(ft):
        worst = max(worst, rel(run(act(ft, g, x)), act(ft, g, run(x))))
    return worst


def lattice_elements(G):
    return [G.elements()[i : i + 1] for i in range(len(G.elements()))]


# -- equivariance on every backend -----------------------------------------------------------------


def layers(ft):
    return {
        "FieldNorm": FieldNorm(ft),
        "FieldBatchNorm-train": FieldBatchNorm(ft),
        "NormNonlinearity-silu": NormNonlinearity(ft),
        "NormNonlinearity-relu": NormNonlinearity(ft, "relu"),
        "FieldDropout": FieldDropout(ft, 0.4),
    }


def _randomise(layer: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return layer.double()


def test_pointwise_layers_equivariant_on_points_and_grids(field_type) -> None:
    ft = field_type
    for name, layer in layers(ft).items():
        _randomise(layer)
        reseed = 3 if name == "FieldDropout" else None
        for x in (point_features(ft), grid_features(ft)):
            err = check_layer(ft, layer, x, reseed)
            assert err <= BOUND, (name, tuple(x.shape), err)
    bn = FieldBatchNorm(ft).double()
    for seed in range(3):
        bn(point_features(ft, 30, seed))
    bn.eval()
    assert check_layer(ft, _randomise(bn).eval(), point_features(ft)) <= BOUND


def test_layers_follow_the_spatial_action_on_planar_grids(field_type) -> None:
    ft = field_type
    if ft.group.dim != 2:
        pytest.skip("the spatial action is tested on the planar lattice groups")
    x = grid_features(ft)
    for name, layer in layers(ft).items():
        _randomise(layer)
        for g in lattice_elements(ft.group):
            if name == "FieldDropout":
                torch.manual_seed(4)
                out_g = layer(rotate_grid(ft, g, x))
                torch.manual_seed(4)
                ref = rotate_grid(ft, g, layer(x))
            else:
                out_g, ref = layer(rotate_grid(ft, g, x)), rotate_grid(ft, g, layer(x))
            assert rel(out_g, ref) <= BOUND, (name, rel(out_g, ref))
        pooled = GlobalPool(ft)(x)
        for g in lattice_elements(ft.group):
            assert rel(GlobalPool(ft)(rotate_grid(ft, g, x)), act(ft, g, pooled)) <= BOUND
            inv = InvariantPool(ft, "max")
            assert rel(inv(rotate_grid(ft, g, x)), inv(x)) <= BOUND


def test_pooling_equivariant_and_invariant(field_type) -> None:
    ft = field_type
    x = point_features(ft, 10)
    batch = torch.tensor([0, 0, 0, 2, 2, 3, 3, 3, 3, 3])
    for g in elements(ft):
        for reduce in ("sum", "mean"):
            pooled = global_pool(x, batch, 5, reduce)
            assert rel(global_pool(act(ft, g, x), batch, 5, reduce), act(ft, g, pooled)) <= BOUND
        for reduce in ("sum", "mean", "max"):
            inv = invariant_pool(x, ft, batch, 5, reduce)
            assert rel(invariant_pool(act(ft, g, x), ft, batch, 5, reduce), inv) <= BOUND
        for grid_x in (grid_features(ft),):
            assert rel(GlobalPool(ft, "mean")(act(ft, g, grid_x)), act(ft, g, GlobalPool(ft, "mean")(grid_x))) <= BOUND
            assert rel(InvariantPool(ft)(act(ft, g, grid_x)), InvariantPool(ft)(grid_x)) <= BOUND


# -- FieldNorm / FieldBatchNorm: what is normalised --------------------------------------------------


@pytest.fixture(scope="module")
def so3_type() -> st.FieldType:
    G = st.group("SO(3)", backend="e3nn")
    return st.FieldType(G, [G.trivial_rep()] * 3 + [G.standard_rep()] * 2 + [G.irreps(2)[2]])


def _nontrivial_norms_sq(ft, x):
    """(B, K, *s) squared norms of the non-trivial fields, computed from offsets here."""
    return torch.stack([x[:, o : o + r.size].pow(2).sum(1) for o, r in zip(ft.offsets, ft.reps) if not r.is_trivial], 1)


def test_field_norm_normalises_each_sample(so3_type) -> None:
    ft = so3_type
    layer = FieldNorm(ft, eps=1e-30).double()
    for x in (point_features(ft, 7) * 3 + 1, grid_features(ft) * 3 + 1):
        y = layer(x)
        t = y[:, ft.trivial_channels]
        assert torch.allclose(t.mean(1), torch.zeros(()).double(), atol=1e-12)
        assert torch.allclose(t.pow(2).mean(1), torch.ones(()).double(), atol=1e-12)
        assert torch.allclose(_nontrivial_norms_sq(ft, y).mean(1), torch.ones(()).double(), atol=1e-12)
        # a non-trivial field keeps its direction: it is only divided by an invariant
        ratio = y[:, 3:6] / x[:, 3:6]
        assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-12)


def test_field_batch_norm_statistics_and_running_stats(so3_type) -> None:
    ft = so3_type
    layer = FieldBatchNorm(ft, eps=1e-30, momentum=0.25).double()
    x = grid_features(ft) * 2 + 0.5
    y = layer(x)
    dims = (0, 2, 3, 4)
    t = y[:, ft.trivial_channels]
    assert torch.allclose(t.mean(dims), torch.zeros(3).double(), atol=1e-12)
    assert torch.allclose(t.var(dims, unbiased=False), torch.ones(3).double(), atol=1e-12)
    assert torch.allclose(_nontrivial_norms_sq(ft, y).mean((0, 2, 3, 4)), torch.ones(3).double(), atol=1e-12)
    # running statistics after one step: 0.75 * init + 0.25 * batch (unbiased variance for scalars)
    xt = x[:, ft.trivial_channels]
    n = xt.numel() // 3
    assert torch.allclose(layer.running_mean[:3], 0.25 * xt.mean(dims), atol=1e-12)
    assert torch.equal(layer.running_mean[3:], torch.zeros(3).double())
    assert torch.allclose(layer.running_var[:3], 0.75 + 0.25 * xt.var(dims, unbiased=True), atol=1e-12)
    assert torch.allclose(layer.running_var[3:], 0.75 + 0.25 * _nontrivial_norms_sq(ft, x).mean((0, 2, 3, 4)))
    assert n > 1 and int(layer.num_batches_tracked) == 1
    # eval uses them: (x - running_mean) / sqrt(running_var) per field
    layer.eval()
    x2 = point_features(ft, 5)
    scale = layer.running_var.rsqrt()[layer.field_of]
    shift = layer.running_mean[layer.field_of]
    assert torch.allclose(layer(x2), (x2 - shift) * scale, atol=1e-12)
    # without tracking, eval normalises with the batch's own statistics
    free = FieldBatchNorm(ft, eps=1e-30, track_running_stats=False).double().eval()
    assert free.running_mean is None and torch.allclose(free(x), y, atol=1e-12)
    cumulative = FieldBatchNorm(ft, momentum=None).double()
    cumulative(x)
    cumulative(2 * x)
    assert torch.allclose(cumulative.running_mean[:3], 1.5 * xt.mean(dims), atol=1e-12)


def test_field_batch_norm_needs_more_than_one_value(so3_type) -> None:
    with pytest.raises(ValueError, match="more than one value"):
        FieldBatchNorm(so3_type)(torch.randn(1, so3_type.size))


# -- FieldDropout -------------------------------------------------------------------------------------


def test_field_dropout_masks_whole_fields(so3_type) -> None:
    ft = so3_type
    layer = FieldDropout(ft, 0.3)
    x = torch.rand(4000, ft.size, dtype=torch.float64) + 0.5  # no zeros: the ratio shows the mask
    torch.manual_seed(0)
    out = layer(x)
    kept = 0
    for off, rep in zip(ft.offsets, ft.reps):
        block, src = out[:, off : off + rep.size], x[:, off : off + rep.size]
        alive = block[:, 0] != 0
        # all channels of a field together: zero, or the input scaled by 1 / (1 - p)
        assert torch.equal(block[~alive], torch.zeros_like(block[~alive]))
        assert torch.allclose(block[alive], src[alive] / 0.7, rtol=1e-15, atol=0)
        kept += int(alive.sum())
    frac = kept / (4000 * len(ft))
    assert abs(frac - 0.7) < 5 * (0.21 / (4000 * len(ft))) ** 0.5  # 5 sigma
    grid = grid_features(ft)
    torch.manual_seed(1)
    gr = FieldDropout(ft, 0.5)(grid) / grid
    assert torch.allclose(gr, gr[..., :1, :1, :1].expand_as(gr))  # one mask per sample, shared by the grid
    layer.eval()
    assert layer(x) is x
    assert torch.equal(FieldDropout(ft, 1.0)(x), torch.zeros_like(x))
    assert torch.equal(FieldDropout(ft, 0.0)(x), x)
    for bad in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="probability"):
            FieldDropout(ft, bad)


# -- pooling ------------------------------------------------------------------------------------------


def test_pooling_values_empty_graphs_and_num_graphs(so3_type) -> None:
    ft = so3_type
    x = point_features(ft, 9)
    batch = torch.tensor([0, 0, 1, 1, 1, 3, 3, 3, 3])  # graph 2 and 4 empty
    inv_rows = []
    for i in range(9):
        inv_rows.append(
            torch.stack([x[i, o] if r.is_trivial else x[i, o : o + r.size].norm() for o, r in zip(ft.offsets, ft.reps)])
        )
    inv = torch.stack(inv_rows)
    for reduce in ("sum", "mean", "max"):
        out = InvariantPool(ft, reduce)(x, batch, num_graphs=5)
        assert out.shape == (5, len(ft))
        for gid in range(5):
            rows = inv[batch == gid]
            ref = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.amax(0)}[reduce] if len(rows) else 0 * inv[0]
            assert torch.allclose(out[gid], ref, atol=1e-14), (reduce, gid)
    s = global_pool(x, batch, 5)
    assert torch.allclose(s[3], x[5:].sum(0)) and torch.equal(s[2], torch.zeros(ft.size).double())
    assert torch.allclose(global_pool(x, batch, reduce="mean")[1], x[2:5].mean(0))
    assert global_pool(x, batch).shape == (4, ft.size)  # num_graphs = batch.max() + 1
    assert torch.allclose(global_pool(x)[0], x.sum(0))
    grid = grid_features(ft)
    assert torch.allclose(global_pool(grid, reduce="mean"), grid.mean((2, 3, 4)))
    assert torch.allclose(InvariantPool(ft, "max")(grid)[:, 3], grid[:, 3:6].norm(dim=1).amax((1, 2, 3)))
    with pytest.raises(ValueError, match="not equivariant"):
        global_pool(x, batch, reduce="max")
    with pytest.raises(ValueError, match="batch must be"):
        global_pool(x, batch.float())
    with pytest.raises(ValueError, match="spatial axes"):
        global_pool(grid, torch.zeros(2, dtype=torch.long))
    empty = global_pool(x[:0], batch[:0], num_graphs=3)
    assert torch.equal(empty, torch.zeros(3, ft.size).double())


def test_invariant_pool_gradient_finite_at_zero_field(so3_type) -> None:
    ft = so3_type
    x = point_features(ft, 4)
    x[:, 3:6] = 0
    x.requires_grad_()
    InvariantPool(ft, "mean")(x).sum().backward()
    assert torch.isfinite(x.grad).all()


# -- NormNonlinearity ---------------------------------------------------------------------------------


def test_norm_nonlinearity_formula(so3_type) -> None:
    ft = so3_type
    layer = _randomise(NormNonlinearity(ft, "silu"))
    x = point_features(ft, 6)
    y = layer(x)
    b = layer.bias.detach()
    silu = torch.nn.functional.silu
    for k, (o, r) in enumerate(zip(ft.offsets, ft.reps)):
        f = x[:, o : o + r.size]
        if r.is_trivial:
            assert torch.allclose(y[:, o], silu(f[:, 0] + b[k]), atol=1e-14)
        else:
            n = f.norm(dim=1, keepdim=True)
            assert torch.allclose(y[:, o : o + r.size], f * (silu(n + b[k]) - silu(b[k])) / n, atol=1e-14)
    relu = NormNonlinearity(ft, "relu").double()
    with torch.no_grad():
        relu.bias.fill_(-1.0)
    short = torch.zeros(1, ft.size, dtype=torch.float64)
    short[0, 3:6] = torch.tensor([0.3, 0.4, 0.0])  # |f| = 0.5 < 1: zeroed
    short[0, 6:9] = torch.tensor([3.0, 0.0, 4.0])  # |f| = 5: shortened by 1
    out = relu(short)
    assert torch.equal(out[0, 3:6], torch.zeros(3).double())
    assert torch.allclose(out[0, 6:9], torch.tensor([2.4, 0.0, 3.2]).double(), atol=1e-15)


@pytest.mark.parametrize("fn", ["silu", "relu", "softplus", "tanh", "sigmoid"])
def test_norm_nonlinearity_smooth_at_zero(so3_type, fn: str) -> None:
    ft = so3_type
    layer = NormNonlinearity(ft, fn).double()
    with torch.no_grad():
        layer.bias.copy_(torch.linspace(-0.7, 0.9, len(ft)))
    for dtype in (torch.float64, torch.float32):
        x = torch.zeros(3, ft.size, dtype=dtype, requires_grad=True)
        y = layer.to(dtype)(x)
        assert torch.isfinite(y).all()
        y.pow(2).sum().backward()
        assert torch.isfinite(x.grad).all()
    layer.double()
    # the gradient at f = 0 is fn'(b) * identity on each non-trivial field (finite differences agree)
    b = layer.bias.detach()[3].double()
    zero = torch.zeros(ft.size, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0], zero)
    h = 1e-6
    fd = float(layer.fn(b + h) - layer.fn(b)) / h
    assert torch.allclose(jac[3:6, 3:6], fd * torch.eye(3).double(), atol=1e-5)
    # continuous at 0: tiny fields give outputs of the limit's size
    tiny = zero.clone()
    tiny[3:6] = torch.tensor([1e-10, -2e-10, 0.5e-10])
    assert torch.allclose(layer(tiny[None])[0, 3:6], fd * tiny[3:6], rtol=1e-4, atol=1e-20)


def test_norm_nonlinearity_rejects_unknown_fn(so3_type) -> None:
    with pytest.raises(ValueError, match="unknown fn 'gelu'"):
        NormNonlinearity(so3_type, "gelu")
    with pytest.raises(TypeError, match="pair"):
        NormNonlinearity(so3_type, torch.tanh)


# -- Sequential -----------------------------------------------------------------------------------------


def test_sequential_checks_types_between_layers(so3_type) -> None:
    ft = so3_type
    G = ft.group
    gate = st.Gate(ft)  # in_type: ft + one gate scalar per non-trivial field
    seq = Sequential(FieldNorm(gate.in_type), gate, NormNonlinearity(ft), FieldDropout(ft, 0.1))
    assert seq.in_type == gate.in_type and seq.out_type == ft
    with pytest.raises(ValueError) as err:
        Sequential(FieldNorm(ft), gate)
    msg = str(err.value)
    assert "layer 1 (Gate)" in msg and "layer 0 (FieldNorm)" in msg
    assert repr(gate.in_type) in msg and repr(ft) in msg
    other = st.FieldType(G, [G.trivial_rep()])
    with pytest.raises(ValueError, match=r"layer 2 \(NormNonlinearity\).*layer 0 \(FieldNorm\)"):
        Sequential(FieldNorm(ft), torch.tanh, NormNonlinearity(other))  # untyped layers pass the type on
    untyped = Sequential(torch.tanh, FieldNorm(ft))
    assert untyped.in_type == ft and untyped.out_type == ft
    assert Sequential(torch.tanh).in_type is None
    with pytest.raises(TypeError, match="layer 1 is a int"):
        Sequential(FieldNorm(ft), 3)


def _double(x: torch.Tensor) -> torch.Tensor:
    return 2 * x


def test_sequential_passes_extra_arguments_to_point_layers_only(so3_type) -> None:
    ft = so3_type
    seen = []

    def point_fn(x, pos, edge_index):
        seen.append((pos.shape, edge_index.shape))
        return x

    seq = Sequential(FieldNorm(ft), point_fn, _double, NormNonlinearity(ft))
    x = point_features(ft, 5)
    pos, ei = torch.randn(5, 3), torch.zeros(2, 0, dtype=torch.long)
    out = seq.double()(x, pos, ei, None)  # edge_attr not accepted by point_fn: it gets the first two
    assert seen == [((5, 3), (2, 0))]
    ref = NormNonlinearity(ft).double()(2 * FieldNorm(ft).double()(x))
    assert torch.allclose(out, ref)


@pytest.mark.parametrize("group", [("SO(3)", "e3nn"), ("C4", "escnn"), ("C4", "matrix")])
def test_sequential_point_model_equivariant(group) -> None:
    G = st.group(group[0], backend=group[1])
    ft = st.FieldType(G, [G.trivial_rep()] * 2 + [G.standard_rep()] * 2)
    torch.manual_seed(0)
    seq = Sequential(
        st.PointConv(ft, ft, max_radius=1.0),
        FieldNorm(ft),
        NormNonlinearity(ft),
        FieldDropout(ft, 0.2),
        st.PointConv(ft, ft, max_radius=1.0),
        FieldBatchNorm(ft),
    ).double()
    seq.train()
    n = 10
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, ft.size, dtype=torch.float64, generator=gen)
    pos = torch.randn(n, G.dim, dtype=torch.float64, generator=gen)
    ei = st.graph.radius_graph(pos, 1.5)
    for g in elements(ft, 2):
        torch.manual_seed(2)
        out = seq(x, pos, ei)
        torch.manual_seed(2)
        out_g = seq(act(ft, g, x), pos @ g.matrices[0].T, ei)
        assert rel(out_g, act(ft, g, out)) <= BOUND  # measured <= 1.6e-15 with the point convolutions


# -- common layer behaviour: reset_parameters, repr, pickling ---------------------------------------------


def test_reset_parameters_repr_and_pickling(so3_type) -> None:
    ft = so3_type
    made = [
        FieldNorm(ft),
        FieldBatchNorm(ft),
        FieldDropout(ft, 0.1),
        NormNonlinearity(ft),
        GlobalPool(ft),
        InvariantPool(ft, "mean"),
    ]
    for layer in made:
        fresh = copy.deepcopy(layer.state_dict())
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(1.0)
        if isinstance(layer, FieldBatchNorm):
            layer(torch.randn(8, ft.size))
        layer.reset_parameters()
        after = layer.state_dict()
        assert after.keys() == fresh.keys() and all(torch.equal(after[k], fresh[k]) for k in fresh), layer
        text = repr(layer)
        n_weights = sum(p.numel() for p in layer.parameters())
        assert "\n" not in text and text.startswith(type(layer).__name__ + "(" + repr(ft))
        assert text.endswith(f"| {n_weights} weights)")
        clone = pickle.loads(pickle.dumps(layer))
        assert repr(clone) == text and copy.deepcopy(layer.eval()).state_dict().keys() == fresh.keys()
    assert "9 weights" in repr(FieldNorm(ft)) and "0 weights" in repr(FieldDropout(ft))  # 6 scales + 3 biases
    seq = Sequential(FieldNorm(ft), NormNonlinearity(ft))
    assert repr(seq).splitlines()[0] == f"Sequential({ft!r} -> {ft!r} | {6 + 3 + 6} weights)"
    pickle.loads(pickle.dumps(seq))
    seq.reset_parameters()


def test_bad_inputs_are_named(so3_type) -> None:
    ft = so3_type
    for layer in (FieldNorm(ft), FieldDropout(ft), NormNonlinearity(ft), InvariantPool(ft)):
        with pytest.raises(ValueError, match=f"expected {ft.size} channels on axis 1"):
            layer(torch.randn(4, ft.size + 1))
        with pytest.raises(ValueError, match="axis 1"):
            layer(torch.randn(ft.size))
        with pytest.raises(TypeError, match="floating"):
            layer(torch.ones(4, ft.size, dtype=torch.long))
    with pytest.raises(TypeError, match="expected a FieldType"):
        FieldNorm(3)
    with pytest.raises(ValueError, match="eps"):
        FieldNorm(ft, eps=0)


def test_forward_paths_need_no_host_synchronisation(so3_type) -> None:
    """On the meta device any read of a value (``.item()``, ``bool(tensor)``) raises; with
    ``num_graphs`` given the pooling needs none, without it the count is read (documented)."""
    ft = so3_type
    batch = torch.zeros(10, dtype=torch.long, device="meta")
    x = torch.randn(10, ft.size, device="meta")
    for layer in (
        FieldNorm(ft),
        FieldBatchNorm(ft),
        FieldBatchNorm(ft, momentum=None),
        FieldDropout(ft),
        NormNonlinearity(ft),
    ):
        layer.to("meta")
        assert layer(x).shape == x.shape
        assert layer.eval()(x).shape == x.shape
    assert InvariantPool(ft, "max").to("meta")(x, batch, num_graphs=3).shape == (3, len(ft))
    assert global_pool(x, batch, num_graphs=3, reduce="mean").shape == (3, ft.size)
    with pytest.raises(RuntimeError, match="meta"):
        global_pool(x, batch)


def test_sequential_of_new_layers_captures_as_one_graph(so3_type) -> None:
    """``torch.compile(fullgraph=True)`` (graph capture only: the eager backend) has no graph break."""
    ft = so3_type
    seq = Sequential(FieldNorm(ft), NormNonlinearity(ft), FieldDropout(ft, 0.2), FieldBatchNorm(ft))
    compiled = torch.compile(seq, fullgraph=True, backend="eager")
    x = torch.randn(6, ft.size)
    torch.manual_seed(0)
    out = compiled(x)
    torch.manual_seed(0)
    assert torch.allclose(out, seq(x), atol=1e-6)
    pool = torch.compile(InvariantPool(ft, "mean"), fullgraph=True, backend="eager")
    assert pool(x, torch.tensor([0, 0, 1, 1, 1, 3]), 4).shape == (4, len(ft))
