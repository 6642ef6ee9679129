"""The backend contract as code: KernelMLPSpec validation, spec.require, the KernelMLP protocols and
the float64 constants helper.  Runs without escnn or e3nn (toy and matrix backends); the escnn and
e3nn MLPs are checked against the protocols in their own test files.
"""

from __future__ import annotations

import copy
import io
import math
import pickle

import numpy as np
import pytest
import torch

import steerable as st
from steerable.core.constants import Float64Constants
from steerable.core.mlp import KernelMLP, KernelMLPSpec, StreamingKernelMLP
from steerable.core.representation import FieldType
from steerable.testing import mlp_equivariance_error


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERABLE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def D4():
    return st.group("D4", dim=2, backend="matrix")


def _blocks(G):
    return ((G.standard_rep(), G.trivial_rep()),)


# -- KernelMLPSpec validates its generic fields once ------------------------------------------------
@pytest.mark.parametrize(
    "field,value,error,message",
    [
        ("hidden_channels", 0, ValueError, r"hidden_channels must be an int >= 1, got 0"),
        ("hidden_channels", 2.0, ValueError, r"hidden_channels must be an int >= 1, got 2.0"),
        ("hidden_channels", True, ValueError, r"hidden_channels must be an int >= 1, got True"),
        ("hidden_layers", -1, ValueError, r"hidden_layers must be an int >= 0, got -1"),
        ("radial_features", 0, ValueError, r"radial_features must be an int >= 1, got 0"),
        ("max_radius", 0.0, ValueError, r"max_radius must be a finite number > 0, got 0.0"),
        ("max_radius", math.inf, ValueError, r"max_radius must be a finite number > 0, got inf"),
        ("max_radius", "1", ValueError, r"max_radius must be a finite number > 0, got '1'"),
        ("nonlinearity", None, TypeError, r"nonlinearity must be a str, got None"),
        ("options", [("band", 2)], TypeError, r"options must be a mapping"),
        ("options", {1: 2}, TypeError, r"option names must be str"),
        ("attr_type", 3, TypeError, r"attr_type must be a FieldType or None, got int"),
    ],
)
def test_spec_rejects_bad_generic_fields(D4, field, value, error, message):
    with pytest.raises(error, match="KernelMLPSpec: " + message):
        KernelMLPSpec(D4, _blocks(D4), **{field: value})


def test_spec_rejects_bad_blocks_and_groups(D4):
    with pytest.raises(TypeError, match="group must be a Group, got str"):
        KernelMLPSpec("D4", _blocks(D4))
    for blocks in ((), [], None):
        with pytest.raises(ValueError, match="blocks must be a non-empty sequence"):
            KernelMLPSpec(D4, blocks)
    with pytest.raises(ValueError, match=r"block 1 must be an \(out_rep, in_rep\) pair"):
        KernelMLPSpec(D4, (_blocks(D4)[0], (D4.standard_rep(),)))
    with pytest.raises(TypeError, match="block 0 input: expected a Rep, got int"):
        KernelMLPSpec(D4, ((D4.standard_rep(), 3),))
    C4 = st.group("C4", dim=2, backend="matrix")
    with pytest.raises(ValueError, match=r"block 0 output: standard\[2\] is a representation of C4"):
        KernelMLPSpec(D4, ((C4.standard_rep(), D4.trivial_rep()),))


def test_spec_normalises(D4):
    options = {"x": 1}
    spec = KernelMLPSpec(D4, [list(_blocks(D4)[0])], options=options, max_radius=2)
    assert spec.blocks == _blocks(D4) and isinstance(spec.blocks[0], tuple)
    assert spec.max_radius == 2.0 and isinstance(spec.max_radius, float)
    options["x"] = 2
    assert spec.options == {"x": 1}  # a copy: later edits of the caller's dict do not leak in
    assert spec.out_size == 2 and spec.attr_size == 0


# -- spec.require: what a backend supports ------------------------------------------------------------
def test_require_names_backend_value_and_what_is_supported(D4, toy_group):
    spec = KernelMLPSpec(D4, _blocks(D4), nonlinearity="fourier", options={"grid": 8, "colour": "red"})
    with pytest.raises(
        ValueError,
        match=r"^toy backend: nonlinearity='fourier' is not supported for D4 on R\^2 "
        r"\[matrix\]; supported: 'exact', 'gated'$",
    ):
        spec.require(backend="toy", nonlinearities=("exact", "gated"), options=("grid", "colour"))
    spec = KernelMLPSpec(D4, _blocks(D4), options={"grid": 8, "colour": "red"})
    unknown = r"^toy backend: unknown kernel MLP options \['colour'\]; supported: \['grid'\]$"
    with pytest.raises(ValueError, match=unknown):
        spec.require(backend="toy", options=("grid",))
    with pytest.raises(ValueError, match=r"unknown kernel MLP options \['colour', 'grid'\]; supported: none"):
        spec.require(backend="toy")
    with pytest.raises(ValueError, match="^toy backend: option 'colour' must be int, got 'red'$"):
        spec.require(backend="toy", options={"grid": int, "colour": int})
    bool_spec = KernelMLPSpec(D4, _blocks(D4), options={"grid": True})
    with pytest.raises(ValueError, match="option 'grid' must be int, got True"):
        bool_spec.require(backend="toy", options={"grid": int})
    bool_spec.require(backend="toy", options={"grid": (int, bool)})
    spec.require(backend="toy", options={"grid": int, "colour": str})  # supported: no error
    with pytest.raises(TypeError, match="toy backend: the kernel MLP needs a group of the toy backend"):
        spec.require(backend="toy", group_type=type(toy_group), options=("grid", "colour"))


def test_the_matrix_backend_declares_its_support(D4):
    with pytest.raises(ValueError, match="matrix backend: nonlinearity='fourier' is not supported .*'exact'"):
        D4.build_kernel_mlp(KernelMLPSpec(D4, _blocks(D4), nonlinearity="fourier"))
    with pytest.raises(ValueError, match=r"matrix backend: unknown kernel MLP options \['band'\]; supported: none"):
        D4.build_kernel_mlp(KernelMLPSpec(D4, _blocks(D4), options={"band": 2}))


# -- the protocols --------------------------------------------------------------------------------------
def test_mlps_satisfy_the_protocol(D4, toy_group):
    for G in (D4, toy_group):
        mlp = G.build_kernel_mlp(KernelMLPSpec(G, _blocks(G), hidden_channels=2))
        assert isinstance(mlp, KernelMLP) and isinstance(mlp, torch.nn.Module)
        assert not isinstance(mlp, StreamingKernelMLP)  # no pieces: the core calls it whole
        assert mlp(torch.randn(3, 2), None).shape == (3, mlp.spec.out_size)
    assert not isinstance(torch.nn.Linear(2, 2), KernelMLP)  # no spec


# -- float64 constants ----------------------------------------------------------------------------------
def test_constants_survive_a_float32_round_trip():
    third = torch.tensor([1.0 / 3.0], dtype=torch.float64)

    class Holder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.constants = Float64Constants(third=third, nothing=None)
            self.register_buffer("as_buffer", third.clone())

    module = Holder().float().double()
    assert module.as_buffer.item() != third.item()  # what a buffer would suffer
    assert module.constants.get("third", torch.zeros(1, dtype=torch.float64)).item() == third.item()
    assert module.constants.get("third", torch.zeros(1)).dtype == torch.float32
    assert module.constants.get("nothing", torch.zeros(1)) is None
    assert "constants" not in "".join(module.state_dict())  # no state_dict keys
    assert set(module.state_dict()) == {"as_buffer"}


def test_constant_casts_are_dropped_when_the_module_moves():
    module = torch.nn.Sequential(torch.nn.Linear(2, 2))
    module.constants = Float64Constants(q=np.eye(2))
    like32 = torch.zeros(1)
    first = module.constants.get("q", like32)
    assert module.constants.get("q", like32) is first  # cached
    module.to("cpu")  # any move or conversion runs _apply on every submodule
    assert module.constants._cache == {}
    assert module.constants.get("q", like32) is not first
    module.double()
    assert module.constants._cache == {}


def test_constants_pickle_and_deepcopy():
    holder = torch.nn.Module()
    holder.constants = Float64Constants(q=torch.arange(4.0, dtype=torch.float64).reshape(2, 2))
    holder.constants.get("q", torch.zeros(1))
    for clone in (copy.deepcopy(holder), pickle.loads(pickle.dumps(holder))):
        np.testing.assert_array_equal(clone.constants.master("q").numpy(), [[0.0, 1.0], [2.0, 3.0]])
        assert clone.constants.get("q", torch.zeros(1, dtype=torch.float64)).dtype == torch.float64
    buffer = io.BytesIO()
    torch.save(holder, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(loaded.constants.master("q"), holder.constants.master("q"))


def test_tracked_buffers_are_restored_from_their_masters():
    module = torch.nn.Module()
    module.register_buffer("w", torch.tensor([1.0 / 3.0], dtype=torch.float64))
    module.constants = Float64Constants()
    module.constants.track_buffers(module)
    module.float()
    assert module.w.dtype == torch.float32
    module.double()
    assert module.w.item() != 1.0 / 3.0  # rounded by the float32 trip
    module.constants.restore_buffers(module)
    assert module.w.item() == 1.0 / 3.0 and module.w.dtype == torch.float64
    assert set(module.constants.tracked) == {"w"}


def test_matrix_mlp_keeps_float64_accuracy_after_float32(D4):
    """The group tables are Float64Constants: a float32 round trip leaves float64 round-off
    (measured 3.8e-16 before and after; bound 1e-14, 26x)."""
    field = FieldType(D4, [D4.trivial_rep(), D4.standard_rep(), D4.irreps()[-1]])
    spec = KernelMLPSpec(D4, tuple((o, i) for o in field.reps for i in field.reps), attr_type=field, hidden_channels=2)
    torch.manual_seed(0)
    mlp = D4.build_kernel_mlp(spec)
    for module in (mlp, mlp.float().double()):
        err = mlp_equivariance_error(module, spec, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        assert err <= 1e-14
    assert set(mlp.state_dict()) == set(D4.build_kernel_mlp(spec).state_dict())
    assert not any("constants" in k for k in mlp.state_dict())


def _caches(module: torch.nn.Module) -> list[dict]:
    return [m._cache for m in module.modules() if isinstance(m, Float64Constants)]


def test_matrix_mlp_serialises_and_drops_casts_on_moves(D4):
    spec = KernelMLPSpec(D4, ((D4.standard_rep(), D4.regular_rep()),), hidden_channels=2)
    torch.manual_seed(0)
    mlp = D4.build_kernel_mlp(spec).double()
    pos = torch.randn(5, 2, dtype=torch.float64)
    out = mlp(pos)
    assert any(_caches(mlp))  # casts made by the call
    for clone in (copy.deepcopy(mlp), pickle.loads(pickle.dumps(mlp))):
        torch.testing.assert_close(clone(pos), out, rtol=0, atol=0)
    fresh = D4.build_kernel_mlp(spec).double()
    fresh.load_state_dict(mlp.state_dict())
    torch.testing.assert_close(fresh(pos), out, rtol=0, atol=0)
    mlp.float()
    assert not any(_caches(mlp))  # a move or conversion drops every cast
