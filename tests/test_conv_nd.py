"""``steerable.ops.conv.conv_nd``: the 4D and 5D convolutions against a direct sum over every tap, and
``GridConv`` on ``R^4`` / ``R^5`` equivariant under the lattice symmetries of SO(4), O(4), the Lorentz
group and SO(5)."""

from __future__ import annotations

import itertools

import pytest
import torch

import steerable as st
from steerable.ops.conv import conv_nd


def _reference_conv4d(x, weight, bias, stride, padding, dilation, groups):
    """Cross-correlation by its definition: a sum over the taps of shifted, strided input slices."""
    x = torch.nn.functional.pad(x, [p for p in reversed(padding) for _ in range(2)])
    k = weight.shape[2:]
    n_out = [(x.shape[2 + a] - dilation[a] * (k[a] - 1) - 1) // stride[a] + 1 for a in range(4)]
    c_in_g, c_out_g = weight.shape[1], weight.shape[0] // groups
    out = torch.zeros(x.shape[0], weight.shape[0], *n_out, dtype=x.dtype)
    for g in range(groups):
        xs = x[:, g * c_in_g : (g + 1) * c_in_g]
        ws = weight[g * c_out_g : (g + 1) * c_out_g]
        for tap in itertools.product(*(range(n) for n in k)):
            sl = [
                slice(tap[a] * dilation[a], tap[a] * dilation[a] + stride[a] * (n_out[a] - 1) + 1, stride[a])
                for a in range(4)
            ]
            patch = xs[(slice(None), slice(None), *sl)]  # (B, c_in_g, *n_out)
            out[:, g * c_out_g : (g + 1) * c_out_g] += torch.einsum("bc...,oc->bo...", patch, ws[(..., *tap)])
    if bias is not None:
        out += bias.view(1, -1, 1, 1, 1, 1)
    return out


@pytest.mark.parametrize(
    "stride,padding,dilation,groups",
    [
        ((1,) * 4, (0,) * 4, (1,) * 4, 1),
        ((2, 1, 1, 2), (1, 0, 2, 1), (1, 2, 1, 2), 1),
        ((1,) * 4, (1,) * 4, (1,) * 4, 2),
    ],
)
def test_conv4d_equals_its_definition_values_and_gradients(stride, padding, dilation, groups):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 7, 6, 7, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 4 // groups, 3, 2, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, generator=gen, dtype=torch.float64, requires_grad=True)
    ours = conv_nd(x, w, b, stride, padding, dilation, groups)
    ref = _reference_conv4d(x, w, b, stride, padding, dilation, groups)
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    up = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    grads = torch.autograd.grad((ours * up).sum(), (x, w, b))
    ref_grads = torch.autograd.grad((ref * up).sum(), (x, w, b))
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)


def test_conv5d_equals_its_definition():
    """Five axes: the recursion (5D -> 4D -> 3D) against the 4D definition summed over the fifth axis's taps."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 4, 5, 4, 5, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 2, 2, 3, 2, 3, 3, generator=gen, dtype=torch.float64)
    stride, padding, dilation = (1, 2, 1, 1, 2), (0, 1, 1, 0, 1), (1, 1, 2, 1, 1)
    ours = conv_nd(x, w, None, stride, padding, dilation)
    xp = torch.nn.functional.pad(x, (padding[4], padding[4]))
    n_out = (xp.shape[-1] - dilation[4] * (w.shape[-1] - 1) - 1) // stride[4] + 1
    ref = torch.stack(
        [
            sum(
                _reference_conv4d(
                    xp[..., o * stride[4] + j * dilation[4]], w[..., j], None, stride[:4], padding[:4], dilation[:4], 1
                )
                for j in range(w.shape[-1])
            )
            for o in range(n_out)
        ],
        dim=-1,
    )
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)


def test_conv_nd_refuses_other_dimensions():
    with pytest.raises(ValueError, match="2 or more spatial axes"):
        conv_nd(torch.zeros(1, 1, 3), torch.zeros(1, 1, 3), None, (1,), (0,), (1,))
    with pytest.raises(ValueError, match="2 or more spatial axes"):
        conv_nd(torch.zeros(1, 1, 3, 3, 3), torch.zeros(1, 1, 3, 3, 3, 3), None, (1,) * 4, (0,) * 4, (1,) * 4)


#: signed permutations of R^4 in each group: det +1 (SO(4)); all (O(4)); fixing the time axis and its
#: sign with det +1 (SO+(1,3): the rotations of the cube, 24); fixing the time axis (O(1,3): 2 x 48)
#: (T2, the torus of rotations in the (0,1) and (2,3) planes given by its Lie algebra: quarter turns
#: in each plane, 16; SO+(1,1) on R^2 from its boost generator: the identity alone)
LATTICE = {"SO(4)": 192, "O(4)": 384, "Lorentz": 24, "O(1,3)": 96, "SO(5)": 1920, "T2": 16, "SO+(1,1)x": 1}


def _named(name: str) -> st.Group:
    from _lie import boost_11, torus

    return {"T2": torus, "SO+(1,1)x": boost_11}.get(name, lambda: st.group(name))()


@pytest.mark.parametrize("name", list(LATTICE))
def test_grid_conv_beyond_r3_is_equivariant_under_the_lattice_symmetries(name):
    from steerable.nn.grid_action import lattice_elements

    G = _named(name)
    assert len(lattice_elements(G)) == LATTICE[name]
    v = G.standard_rep()
    f_in = st.FieldType(G, [G.trivial_rep(), v])
    f_out = st.FieldType(G, [v, G.trivial_rep()])
    torch.manual_seed(0)
    conv = st.GridConv(f_in, f_out, kernel_size=3, padding=1, hidden_channels=4).double()
    lattice = lattice_elements(G)
    some = lattice if G.dim < 5 else lattice[::97]  # R^5: 20 of the 1920 (every one costs a 3^5-tap conv)
    err = st.check_equivariance(conv, grid_size={2: 7, 4: 5, 5: 3}[G.dim], elements=some)
    assert err <= 1e-12, err  # exact up to rounding (measured <= 5.4e-16): lattice symmetries permute the grid


def test_grid_conv_on_r4_refuses_other_padding_modes():
    G = st.group("SO(4)")
    f = st.FieldType(G, [G.trivial_rep()])
    with pytest.raises(ValueError, match="R\\^4 supports padding_mode='zeros' only"):
        st.GridConv(f, f, kernel_size=3, padding=1, padding_mode="circular")
