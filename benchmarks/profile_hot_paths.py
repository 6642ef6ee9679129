"""torch.profiler breakdown of one PointConv training step: kernel MLP, per-edge responses, mixing.

    .venv/bin/python benchmarks/profile_hot_paths.py [--backend escnn|e3nn] [--nodes 256 --k 8 --channels 16 --lmax 1]
                                                     [--basis-size 8 | 0 for dense kernels] [--device cuda]

Prints the top operators by self CPU time for one PointConv training step (forward + backward),
with ``record_function`` ranges around the kernel MLP, the per-edge responses (basis kernels applied
to the source features, or the dense kernel times the features) and the per-node mixing, and a
split of the step into: the contraction (message sums and mixing, forward and backward), the
kernel MLP (forward; its backward is in "the rest"), the envelope, and the rest (autograd, the
MLP's backward, input checks, indexing).  For the split the MLP's output is made whole inside
its range (a streaming MLP would otherwise make its last layer inside the message sums).
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile, record_function


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="escnn")
    ap.add_argument("--nodes", type=int, default=256)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--lmax", type=int, default=1)
    ap.add_argument("--basis-size", type=int, default=8, help="0: dense kernels")
    ap.add_argument("--rows", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=10, help="steps profiled (times are per step)")
    args = ap.parse_args()
    device = torch.device(args.device)
    import steerable as st

    G = st.group("SO(3)", backend=args.backend)
    f = st.FieldType(G, [G.irrep(l) for l in range(args.lmax + 1) for _ in range(args.channels)])
    conv = st.PointConv(f, f, max_radius=2.0, basis_size=args.basis_size or None).to(device)  # pos ~ N(0, 1/4)
    kern = conv.kernel

    def ranged(owner: object, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*a, **kw):
            with record_function(label):
                return inner(*a, **kw)

        setattr(owner, name, wrapper)

    ranged(kern.mlp, "forward", "## kernel MLP")
    if hasattr(kern, "_mlp_pieces"):  # whole, inside the range (see the module docstring)
        pieces = kern._mlp_pieces

        def whole(*a, **kw):
            with record_function("## kernel MLP"):
                return iter(list(pieces(*a, **kw)))

        kern._mlp_pieces = whole
    if hasattr(kern, "_envelope"):
        ranged(kern, "_envelope", "## envelope")
    ranged(kern, "message_and_aggregate", "## messages summed at targets (incl. MLP and mixing)")
    if hasattr(kern, "_mix"):  # shared basis: the per-node mixing of the summed responses
        ranged(kern, "_mix", "## mixing")
    n = args.nodes
    pos = torch.randn(n, 3, device=device) * 0.5
    ei = torch.stack([torch.randint(0, n, (n * args.k,)), torch.arange(n).repeat_interleave(args.k)]).to(device)
    x = torch.randn(n, f.size, device=device)
    for _ in range(2):
        conv(x, pos, ei).sum().backward()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities, profile_memory=True) as prof:
        for _ in range(args.steps):
            with record_function("## PointConv forward"):
                y = conv(x, pos, ei)
            with record_function("## PointConv backward"):
                y.sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
    layout = f"basis_size={args.basis_size}" if args.basis_size else "dense"
    print(
        f"PointConv {args.backend} d={f.size} E={ei.shape[1]} {layout} chunk={conv.chunk_size}: "
        f"{args.steps} training steps (ranges below: per step)"
    )
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=sort, row_limit=args.rows))
    keep = ("##", "_MessageSum")  # our ranges, and the message sums' autograd nodes (forward, backward)
    rf = {e.key: e.cpu_time_total / 1e3 / args.steps for e in prof.key_averages() if e.key.startswith(keep)}
    print("ranges (ms):", {k: round(v, 2) for k, v in rf.items()})
    step = rf.get("## PointConv forward", 0.0) + rf.get("## PointConv backward", 0.0)
    contraction = sum(rf.get(k, 0.0) for k in ("_MessageSum", "_MessageSumBackward", "## mixing"))
    mixing_bwd = sum(
        e.cpu_time_total / 1e3 / args.steps
        for e in prof.key_averages()
        if e.key.startswith("autograd::engine::evaluate_function: MmBackward")
    )
    parts = {
        "contraction (message sums fwd+bwd, mixing fwd)": contraction,
        "kernel MLP forward": rf.get("## kernel MLP", 0.0),
        "envelope forward": rf.get("## envelope", 0.0),
    }
    parts["rest (MLP, envelope and mixing backward, autograd, checks, indexing)"] = step - sum(parts.values())
    print(f"step {step:.2f} ms (CPU time under the profiler, which inflates small ops):")
    for k, v in parts.items():
        print(f"  {k}: {v:.2f} ms ({100 * v / step:.0f} %)")
    print(f"  (of the rest: every mm backward, MLP and mixing, {mixing_bwd:.2f} ms)")
    print(
        "(a kernel MLP that hands out its output in pieces, e.g. the escnn backend's, makes each piece while the "
        "messages are summed: its last layer is then inside the message range, not the kernel-MLP range)"
    )


if __name__ == "__main__":
    main()
