"""Before/after for the ImplicitKernel block reshape: ``flat[:, perm]`` (+ envelope, fan-in factor).

``legacy`` re-implements the original forward tail (advanced indexing, whose backward is an
accumulating ``index_put_``, then separate envelope and scale multiplications); ``current`` is
``ImplicitKernel.forward`` (gather with an inverse-permutation gather backward, scale applied in
place or folded into the ``(E, out)`` envelope).  Both run on the same layer and inputs,
interleaved; the kernel MLP is included in both (it is identical), so the difference is the reshape.
Also reports a whole PointConv training step with the legacy tail patched in vs the current one.

    .venv/bin/python benchmarks/kernel_reshape.py [--edges 4096 --channels 16 --lmax 1]
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import machine_line, print_table, time_interleaved  # noqa: E402

import torch  # noqa: E402


def legacy_forward(kern: torch.nn.Module, pos: torch.Tensor, attr: torch.Tensor | None = None) -> torch.Tensor:
    """The original ImplicitKernel forward tail (no input checks)."""
    flat = kern.mlp(pos, attr)
    kernel = flat[:, kern.perm].view(pos.shape[0], kern.out_type.size, kern.in_type.size)
    if kern.log_width is not None:
        inv_w2 = torch.exp(-2.0 * kern.log_width)[kern.field_of_channel].to(pos)
        envelope = torch.exp(-pos.pow(2).sum(-1, keepdim=True) * inv_w2)
        kernel = kernel * envelope[:, :, None]
    return kernel * kern.scale if kern.scale != 1.0 else kernel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="escnn")
    ap.add_argument("--edges", type=int, default=4096)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--lmax", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    import steerable as st

    G = st.group("SO(3)", backend=args.backend)
    f = st.FieldType(G, [G.irrep(l) for l in range(args.lmax + 1) for _ in range(args.channels)])
    pos = torch.randn(args.edges, 3) * 0.5
    print(machine_line())
    rows = []
    for env in (None, 1.0):
        kern = st.ImplicitKernel(f, f, envelope_width=env)
        with torch.no_grad():
            assert torch.allclose(legacy_forward(kern, pos), kern(pos), atol=1e-6)
        for mode in ("fwd", "fwd+bwd"):
            def step(fn: Callable, mode: str = mode, kern: torch.nn.Module = kern) -> None:
                if mode == "fwd":
                    with torch.no_grad():
                        fn(pos)
                else:
                    kern.zero_grad(set_to_none=True)
                    fn(pos).sum().backward()
            fns = {"legacy": lambda: step(lambda p: legacy_forward(kern, p)), "current": lambda: step(kern)}
            t = time_interleaved(fns, repeats=args.repeats)
            rows.append([f"ImplicitKernel envelope={env}", mode, t["legacy"] * 1e3, t["current"] * 1e3,
                         t["legacy"] / t["current"]])
    # whole PointConv training step
    conv = st.PointConv(f, f)
    n = max(args.edges // 8, 8)
    x, p = torch.randn(n, f.size), torch.randn(n, 3) * 0.5
    ei = torch.stack([torch.randint(0, n, (args.edges,)), torch.arange(n).repeat_interleave(8)[: args.edges]])
    current_forward = conv.kernel.forward

    def run(legacy: bool) -> None:
        conv.kernel.forward = (lambda q, a=None: legacy_forward(conv.kernel, q, a)) if legacy else current_forward
        conv.zero_grad(set_to_none=True)
        conv(x, p, ei).sum().backward()
        conv.kernel.forward = current_forward

    t = time_interleaved({"legacy": lambda: run(True), "current": lambda: run(False)}, repeats=args.repeats)
    rows.append([f"PointConv step N={n} E={args.edges}", "fwd+bwd", t["legacy"] * 1e3, t["current"] * 1e3,
                 t["legacy"] / t["current"]])
    print(f"SO(3) ({args.backend}) d = {f.size}, E = {args.edges}; median ms over interleaved rounds")
    print_table(["what", "mode", "legacy ms", "current ms", "speed-up"], rows)


if __name__ == "__main__":
    main()
