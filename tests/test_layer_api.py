"""Printing and re-initialisation of the layers (issue 15), on every backend.

``repr`` is one line per layer (blocks: one more per child) naming the field types and the weight
count (computed here from ``parameters()``), never the backend's internals.  ``reset_parameters()``
re-initialises in place as at construction: under the seed the layer was built with it gives back
exactly the construction's weights (hence their statistics), whatever was trained into them.
"""

from __future__ import annotations

import pytest
import torch
from _groups import GROUPS, PLANAR, make_fields, make_group

import steerable as st
from steerable.nn import InvariantBias
from steerable.nn.kernel import ImplicitKernel


def _runs(field_type: st.FieldType) -> str:
    return "+".join(f"{n}x{rep.name}" for rep, n in field_type.runs())


def _factories(G, f_in, f_out):
    """One constructor per layer kind."""
    factories = {
        "kernel_shared": lambda: ImplicitKernel(f_in, f_out, 1, max_radius=1.0),
        "kernel_dense": lambda: ImplicitKernel(f_in, f_out, basis_size=None, max_radius=1.0),
        "point_conv": lambda: st.PointConv(f_in, f_out, edge_attr=2, max_radius=1.0),
        "point_conv_dense": lambda: st.PointConv(f_in, f_out, basis_size=None, bias=False, max_radius=1.0),
        "gate": lambda: st.Gate(f_out),
        "bias": lambda: InvariantBias(f_out),
        "point_block": lambda: st.PointConvBlock(f_in, f_out, True, {}, max_radius=1.0),
        "message_block": lambda: st.MessageBlock(f_in, f_out, f_in, True, dict(basis_size=None), max_radius=1.0),
    }
    if G.dim == 2:
        factories["grid_conv"] = lambda: st.GridConv(f_in, f_out, 3, padding=1, stride=2)
    return factories


def _layers(G, f_in, f_out):
    return {name: make() for name, make in _factories(G, f_in, f_out).items()}


BLOCKS = ("point_block", "message_block")


@pytest.mark.parametrize("group_name", GROUPS)
def test_repr_is_one_line_with_types_and_weights(request, group_name):
    G = make_group(group_name, request)
    f_in, f_out = make_fields(G)
    for name, layer in _layers(G, f_in, f_out).items():
        text = repr(layer)
        lines = text.splitlines()
        n_weights = sum(p.numel() for p in layer.parameters())
        assert f"{n_weights} weights" in lines[0], (name, text)
        if name in BLOCKS:
            assert len(lines) == len(list(layer.children())) + 2, text  # header, one per child, ")"
            for line, child in zip(lines[1:], layer.children()):
                assert f"{sum(p.numel() for p in child.parameters())} weights" in line, line
        else:
            assert len(lines) == 1, (name, text)
        if name == "bias":
            assert f"of {f_out.size} channels" in text
            continue
        in_type = layer.in_type
        assert f"{_runs(in_type)} -> {_runs(layer.out_type)}" in lines[0], (name, text)
        assert f"{G.name}[{G.backend}]" in lines[0]
        assert "Parameter" not in text and "Sequential" not in text  # no backend internals


@pytest.mark.parametrize("group_name", GROUPS)
def test_repr_names_the_layout(request, group_name):
    G = make_group(group_name, request)
    f_in, f_out = make_fields(G)
    layers = _layers(G, f_in, f_out)
    assert "basis_size=8" in repr(layers["point_conv"]) and "dense" in repr(layers["point_conv_dense"])
    assert "attr=1xtrivial" in repr(layers["kernel_shared"])
    assert "gates=1" in repr(layers["gate"])
    if "grid_conv" in layers:
        assert "kernel_size=3, stride=2, padding=1" in repr(layers["grid_conv"])


def _own_parameters(layer: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The parameters ``reset_parameters`` re-initialises (``FieldLinear`` only once it offers it)."""
    skip = [n for n, m in layer.named_modules() if not hasattr(m, "reset_parameters") and isinstance(m, st.FieldLinear)]
    return {n: p for n, p in layer.named_parameters() if not any(n.startswith(s + ".") for s in skip)}


@pytest.mark.parametrize("group_name", GROUPS)
def test_reset_parameters_reinitialises_as_at_construction(request, group_name):
    G = make_group(group_name, request)
    f_in, f_out = make_fields(G)
    torch.manual_seed(3)
    layers = _layers(G, f_in, f_out)
    for name, layer in layers.items():
        params = _own_parameters(layer)
        # build the same layer again under a known seed, keep its weights, then "train" it
        torch.manual_seed(11)
        fresh = _factories(G, f_in, f_out)[name]()
        initial = {n: p.detach().clone() for n, p in _own_parameters(fresh).items()}
        gain = getattr(getattr(fresh, "kernel", fresh), "gain", None)
        gain = gain.clone() if gain is not None else None
        with torch.no_grad():
            for p in fresh.parameters():
                p.add_(torch.randn_like(p) + 1.0)
        trained = {n: p.detach().clone() for n, p in _own_parameters(fresh).items()}
        torch.manual_seed(11)
        fresh.reset_parameters()
        after = _own_parameters(fresh)
        assert params.keys() == after.keys()
        for n, p in after.items():
            assert not torch.equal(p, trained[n]), (name, n)
            torch.testing.assert_close(p, initial[n], rtol=0, atol=0, msg=f"{name}: {n}")
        if gain is not None:
            assert torch.equal(getattr(fresh, "kernel", fresh).gain, gain)
    assert any(sum(p.numel() for p in _own_parameters(layer).values()) for layer in layers.values())


@pytest.mark.parametrize("group_name", PLANAR)
def test_grid_conv_reset_refreshes_its_filter_cache(request, group_name):
    G = make_group(group_name, request)
    f_in, f_out = make_fields(G)
    conv = st.GridConv(f_in, f_out, 3, padding=1).eval()
    img = torch.randn(1, f_in.size, 5, 5)
    with torch.no_grad():
        before = conv(img)
        conv.reset_parameters()
        after = conv(img)
        assert not torch.equal(before, after)
        torch.testing.assert_close(after, torch.nn.functional.conv2d(img, conv.filter(), conv.bias.vector(), padding=1))
