"""Saving, copying and multi-process layout of models on every backend (issue 15, defect 6).

* ``state_dict`` keys do not depend on the train/eval history (escnn's ``Linear`` registered its
  expanded matrix as a buffer in eval mode and deleted it in train mode);
* models pickle (``pickle``, ``torch.save(model)``; also into another process) and deepcopy in
  train and eval mode (escnn's objects hold local functions; escnn's eval buffers were not graph
  leaves), with equal outputs;
* buffers and parameters are registered in the same order, with the same values, whatever
  Python's hash seed (escnn registered its basis modules in ``set`` order; Lightning's DDP
  broadcasts buffers by position).
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import steerable as st

pytest.importorskip("escnn")
pytest.importorskip("e3nn")

# (backend, group, dim): escnn's irrep-wise pipeline (SO(3)) and dense one (C4, regular fields)
BACKENDS = [("escnn", "SO(3)", 3), ("escnn", "C4", 2), ("e3nn", "O(3)", 3), ("matrix", "C4", 2)]
KINDS = ["point", "grid"]
CASES = [(b, n, d, k) for b, n, d in BACKENDS for k in KINDS]
IDS = [f"{b}-{n}-R{d}-{k}" for b, n, d, k in CASES]


def fields(backend: str, name: str, dim: int) -> st.FieldType:
    G = st.group(name, dim=dim, backend=backend)
    reps = [G.trivial_rep(), G.standard_rep()]
    if G.order is not None and hasattr(G, "regular_rep"):
        reps.append(G.regular_rep())
    return st.FieldType(G, reps)


def build(backend: str, name: str, dim: int, kind: str, seed: int = 0) -> torch.nn.Module:
    f = fields(backend, name, dim)
    torch.manual_seed(seed)
    return st.PointConv(f, f, max_radius=1.0) if kind == "point" else st.GridConv(f, f, 3)


def inputs(layer: torch.nn.Module, kind: str) -> tuple:
    g = torch.Generator().manual_seed(3)
    dim, size = layer.in_type.group.dim, layer.in_type.size
    if kind == "point":
        pos = torch.randn(6, dim, generator=g)
        edges = torch.tensor([[0, 1, 2, 3, 4, 5, 1, 3], [1, 2, 3, 4, 5, 0, 1, 0]])
        return torch.randn(6, size, generator=g), pos, edges
    return (torch.randn(2, size, *([5] * dim), generator=g),)


def output(layer: torch.nn.Module, args: tuple) -> torch.Tensor:
    with torch.no_grad():
        return layer(*args)


@pytest.mark.parametrize("backend,name,dim,kind", CASES, ids=IDS)
def test_state_dict_keys_do_not_depend_on_mode(backend, name, dim, kind):
    layer = build(backend, name, dim, kind)
    keys = list(layer.state_dict())
    layer.eval()
    assert list(layer.state_dict()) == keys
    layer.train()
    assert list(layer.state_dict()) == keys
    # saved after .eval(); .train(), loaded strictly into a fresh layer (of another seed), in either mode
    fresh = build(backend, name, dim, kind, seed=1)
    fresh.eval()
    fresh.load_state_dict(layer.state_dict(), strict=True)
    args = inputs(layer, kind)
    torch.testing.assert_close(output(fresh.train(), args), output(layer, args), rtol=0, atol=0)


@pytest.mark.parametrize("backend,name,dim,kind", CASES, ids=IDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_pickle_torch_save_and_deepcopy(backend, name, dim, kind, mode):
    layer = build(backend, name, dim, kind).train(mode == "train")
    args = inputs(layer, kind)
    want = output(layer, args)
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    copies = {
        "pickle": pickle.loads(pickle.dumps(layer)),
        "torch.save": torch.load(buffer, weights_only=False),
        "deepcopy": copy.deepcopy(layer),
    }
    for how, other in copies.items():
        assert type(other) is type(layer) and other.training == layer.training, how
        assert list(other.state_dict()) == list(layer.state_dict()), how
        torch.testing.assert_close(output(other, args), want, rtol=0, atol=0, msg=how)
    # the copies own their parameters
    clone = copies["deepcopy"]
    with torch.no_grad():
        for p in clone.parameters():
            p.add_(1.0)
    torch.testing.assert_close(output(layer, args), want, rtol=0, atol=0)
    assert not torch.equal(output(clone, args), want)


@pytest.mark.parametrize("backend,name,dim", BACKENDS, ids=[f"{b}-{n}" for b, n, _ in BACKENDS])
def test_copies_keep_dtype_and_frozen_parameters(backend, name, dim):
    layer = build(backend, name, dim, "point").double()
    frozen = [n for n, _ in layer.named_parameters()][::3]
    for n in frozen:
        layer.get_parameter(n).requires_grad_(False)
    args = tuple(a.double() if a.is_floating_point() else a for a in inputs(layer, "point"))
    for other in (pickle.loads(pickle.dumps(layer)), copy.deepcopy(layer)):
        assert all(p.dtype == torch.float64 for p in other.parameters())
        assert [n for n, p in other.named_parameters() if not p.requires_grad] == frozen
        torch.testing.assert_close(output(other, args), output(layer, args), rtol=0, atol=0)


def test_escnn_eval_state_dicts_of_escnn_linear_still_load():
    """State dicts saved by escnn's own ``Linear`` in eval mode carry ``matrix`` / ``expanded_bias``:
    they load strictly (those caches are dropped)."""
    layer = build("escnn", "SO(3)", 3, "point")
    state = layer.state_dict()
    linears = sorted({k.rsplit(".", 2)[0] for k in state if k.endswith(".linear.weights")})
    assert linears
    for prefix in linears:
        state[prefix + ".linear.matrix"] = torch.zeros(1)
        state[prefix + ".linear.expanded_bias"] = torch.zeros(1)
    build("escnn", "SO(3)", 3, "point", seed=1).load_state_dict(state, strict=True)


@pytest.mark.parametrize("name,dim", [("SO(3)", 3), ("C4", 2)])
def test_escnn_inference_cache_follows_the_parameters(name, dim):
    """In eval mode without gradients escnn's expanded matrices are cached: every way of changing a
    parameter (in place through ``.data``, ``load_state_dict(assign=True)``, replacing it) is seen;
    with gradients on, the parameters get gradients in eval mode too."""
    layer = build("escnn", name, dim, "point").eval()
    args = inputs(layer, "point")
    before = output(layer, args)
    linear = next(m for m in layer.modules() if type(m).__name__ == "PlainLinear")
    linear.weights.data.mul_(2.0)
    changed = output(layer, args)
    assert not torch.equal(changed, before)
    torch.testing.assert_close(changed, output(copy.deepcopy(layer).train(), args), rtol=1e-6, atol=1e-7)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    state[next(k for k in state if k.endswith("linear.weights"))].mul_(0.5)
    layer.load_state_dict(state, assign=True)
    torch.testing.assert_close(output(layer, args), before, rtol=1e-6, atol=1e-7)
    linear.weights = torch.nn.Parameter(linear.weights.detach() * 3.0)
    assert not torch.equal(output(layer, args), before)
    layer(*args).sum().backward()
    assert linear.weights.grad is not None and linear.weights.grad.abs().max() > 0


_CHILD = r"""
import hashlib, json, sys, warnings
import torch
sys.path.insert(0, sys.argv[3])
warnings.filterwarnings("ignore")
from test_persistence import BACKENDS, KINDS, build, inputs, output

def digest(t):
    return hashlib.sha1(t.detach().double().contiguous().numpy().tobytes()).hexdigest()[:12]

report = {"loaded": {}, "layout": {}}
if sys.argv[1] == "load":  # before building anything: unpickling must rebuild every escnn object
    for (b, n, d), kind in [(c, k) for c in BACKENDS for k in KINDS]:
        saved = torch.load(f"{sys.argv[2]}/{b}-{n}-{kind}.pt", weights_only=False)
        layer = saved["layer"]
        report["loaded"][f"{b}-{n}-{kind}"] = bool(torch.equal(output(layer, saved["args"]), saved["out"]))
for (b, n, d), kind in [(c, k) for c in BACKENDS for k in KINDS]:
    layer = build(b, n, d, kind)
    report["layout"][f"{b}-{n}-{kind}"] = [
        [name, digest(t)] for name, t in [*layer.named_buffers(), *layer.named_parameters()]
    ]
    if sys.argv[1] == "save":
        args = inputs(layer, kind)
        torch.save({"layer": layer, "args": args, "out": output(layer, args)}, f"{sys.argv[2]}/{b}-{n}-{kind}.pt")
print(json.dumps(report))
"""


def test_same_layout_in_every_process_and_torch_save_across_processes(tmp_path):
    """Two processes with different hash seeds build the same layers: the ordered buffer and
    parameter names and values agree; models saved by one with ``torch.save`` load in the other
    (before building anything there) and give the same outputs."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    here = str(Path(__file__).parent)
    reports = []
    for seed, step in (("1", "save"), ("2", "load")):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, str(script), step, str(tmp_path), here],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        reports.append(json.loads(run.stdout.strip().splitlines()[-1]))
    saved, loaded = reports
    for key, layout in saved["layout"].items():
        assert layout == loaded["layout"][key], f"{key}: buffer/parameter order or values depend on the hash seed"
    assert loaded["loaded"] and all(loaded["loaded"].values()), loaded["loaded"]
