"""A small O(3)-equivariant point-cloud classifier, trained for a few seconds on a toy task.

Task: tell a "cigar" (points stretched along one axis) from a "pancake" (points spread in a plane),
each shown in a random orientation (rotations *and* reflections: O(3)).  The model is

    PointConv(1 scalar -> hidden) -> Gate -> PointConv(hidden -> hidden) -> Gate
    -> PointConv(hidden -> invariant scalars) -> mean over points -> Linear -> 2 logits

where ``hidden`` holds scalars, vectors and one extra scalar per vector (its gate).  The *gate*
nonlinearity multiplies each vector field by ``sigmoid`` of its own invariant gate scalar and applies
SiLU to the other scalars: both are equivariant, so the whole model is O(3)-invariant by
construction.  The script prints the test accuracy and the invariance error of the predictions,
``|f(g.cloud) - f(cloud)| / |f(cloud)|`` over sampled ``g`` in O(3).

    .venv/bin/python examples/04_o3_point_model.py [--out DIR] [--quick] [--steps N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import steerable as st
from steerable import viz

BOUND = 1e-5  # float32 round-off through three layers, with room to spare


class PointModel(torch.nn.Module):
    """O(3)-invariant classifier of point clouds.

    ``forward(pos, edge_index, batch)``: ``pos`` ``(N, 3)`` points of all clouds, ``edge_index``
    ``(2, E)`` (PyG: row 0 source, row 1 target) within clouds, ``batch`` ``(N,)`` cloud index of each
    point -> logits ``(B, n_classes)``.
    """

    def __init__(self, group: st.Group, n_scalars: int = 4, n_vectors: int = 2, n_classes: int = 2, **mlp) -> None:
        super().__init__()
        t, v = group.trivial_rep(), group.standard_rep()
        f_in = st.FieldType(group, [t])
        gated = st.FieldType(group, [t] * n_scalars + [v] * n_vectors)  # after the gate
        self.gate = st.Gate(gated)  # SiLU on scalars, vector k times sigmoid(its gate)
        hidden = self.gate.in_type  # before the gate: ``gated`` + one invariant gate per vector
        f_inv = st.FieldType(group, [t] * 8)
        self.convs = torch.nn.ModuleList(
            [st.PointConv(f_in, hidden, **mlp), st.PointConv(gated, hidden, **mlp), st.PointConv(gated, f_inv, **mlp)]
        )
        self.head = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.SiLU(), torch.nn.Linear(16, n_classes))

    def forward(self, pos: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        h = pos.new_ones(pos.shape[0], 1)
        for k, conv in enumerate(self.convs):
            h = conv(h, pos, edge_index)
            if k < len(self.convs) - 1:
                h = self.gate(h)
        n_clouds = int(batch.max()) + 1
        pooled = h.new_zeros(n_clouds, h.shape[1]).index_add_(0, batch, h)
        pooled = pooled / torch.bincount(batch, minlength=n_clouds)[:, None].to(h)
        return self.head(pooled)


def make_clouds(n_clouds: int, n_points: int, group: st.Group, generator: torch.Generator):
    """Random cigars (label 0) and pancakes (label 1), each moved by a random element of ``group``.

    Returns ``pos`` ``(n_clouds * n_points, 3)``, ``labels`` ``(n_clouds,)`` and ``batch``
    ``(n_clouds * n_points,)``.  Both shapes have unit RMS radius, so size alone does not tell them apart.
    """
    labels = torch.randint(0, 2, (n_clouds,), generator=generator)
    scales = torch.where(labels[:, None] == 0, torch.tensor([1.0, 0.25, 0.25]), torch.tensor([1.0, 1.0, 0.25]))
    pos = torch.randn(n_clouds, n_points, 3, generator=generator) * scales[:, None, :]
    pos = pos - pos.mean(1, keepdim=True)
    pos = pos / pos.pow(2).sum(-1).mean(-1).sqrt()[:, None, None]
    mats = group.sample(n_clouds, generator=generator).matrices.to(pos.dtype)
    pos = torch.einsum("bij,bnj->bni", mats, pos)
    batch = torch.arange(n_clouds).repeat_interleave(n_points)
    return pos.reshape(-1, 3), labels, batch


def knn_edges(pos: torch.Tensor, batch: torch.Tensor, k: int) -> torch.Tensor:
    """``(2, N * k)`` edges from each point's ``k`` nearest neighbours (same cloud) to the point.

    Distances are invariant, so the graph of a rotated cloud is the same graph.
    """
    dist = torch.cdist(pos, pos)
    dist = dist.masked_fill(batch[:, None] != batch[None, :], float("inf"))
    dist.fill_diagonal_(float("inf"))
    neighbours = dist.topk(k, dim=1, largest=False).indices  # (N, k)
    dst = torch.arange(pos.shape[0]).repeat_interleave(k)
    return torch.stack([neighbours.reshape(-1), dst])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "output", help="folder for the PNGs")
    parser.add_argument("--quick", action="store_true", help="tiny setting (a few seconds), for tests")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 300, quick: 20)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--backend", default=None, help="backend for O(3): escnn (default) or e3nn")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Run the example; returns its verdict (``ok``), worst error, the objects it checked and its figures."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)  # small graphs: extra threads cost more than they give
    steps = args.steps if args.steps is not None else (20 if args.quick else 300)
    n_points, batch_size, n_test, k = (12, 8, 64, 6) if args.quick else (12, 16, 512, 6)
    start = time.perf_counter()

    G = st.group("O(3)", backend=args.backend)
    model = PointModel(G, hidden_channels=8, hidden_layers=1, max_radius=2.0)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"{G}: PointModel with {n_params} parameters, {steps} training steps of {batch_size} clouds x {n_points} points"
    )

    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    t0 = time.perf_counter()
    model.train()
    for _ in range(steps):
        pos, labels, batch = make_clouds(batch_size, n_points, G, gen)
        logits = model(pos, knn_edges(pos, batch, k), batch)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    train_s = time.perf_counter() - t0

    model.eval()
    test_gen = torch.Generator().manual_seed(123)
    pos, labels, batch = make_clouds(n_test, n_points, G, test_gen)
    edges = knn_edges(pos, batch, k)
    with torch.no_grad():
        logits = model(pos, edges, batch)
    accuracy = float((logits.argmax(1) == labels).float().mean())
    print(
        f"trained in {train_s:.1f}s, final loss {losses[-1]:.3f}; "
        f"test accuracy {accuracy:.3f} on {n_test} randomly oriented clouds"
    )

    # invariance: one element g moves every test cloud; the logits must not change
    elements = G.sample(6 if args.quick else 12, generator=test_gen)
    errors = []
    with torch.no_grad():
        for j in range(len(elements)):
            pos_g = pos @ elements[j].matrices[0].to(pos.dtype).T
            logits_g = model(pos_g, knn_edges(pos_g, batch, k), batch)
            errors.append(float((logits_g - logits).norm() / logits.norm()))
    worst = max(errors)
    status = "ok" if worst < BOUND else "FAIL"
    print(
        f"check O(3) model invariance of predictions f(g.x) = f(x) (float32): "
        f"rel. error {worst:.2e} (bound {BOUND:.0e}) {status}"
    )

    figures: dict = {}  # file name -> matplotlib Figure, returned for inspection
    figures["04_model_invariance.png"] = viz.plot_equivariance_error(
        errors,
        elements,
        bound=BOUND,
        ylabel="relative change of the logits |f(g.x) - f(x)| / |f(x)|",
        title=f"O(3) point model: invariance of the predictions per sampled g (float32, {n_test} test clouds)",
    )
    from matplotlib.figure import Figure  # the training curve, drawn directly with matplotlib

    fig = Figure(figsize=(5.5, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(range(1, steps + 1), losses, color="tab:blue", alpha=0.35, linewidth=0.8, label="per step")
    window = max(1, min(25, steps // 5))
    if window > 1:
        kernel = torch.ones(window) / window
        smooth = torch.nn.functional.conv1d(torch.tensor(losses)[None, None], kernel[None, None])[0, 0]
        ax.plot(range(window, steps + 1), smooth.tolist(), color="tab:blue", label=f"mean of {window} steps")
    ax.axhline(float(torch.log(torch.tensor(2.0))), color="grey", linestyle=":", label="chance (ln 2)")
    ax.set_xlabel(f"training step ({batch_size} clouds each)")
    ax.set_ylabel("cross-entropy loss (nats)")
    ax.set_title(f"training loss (test accuracy {accuracy:.2f} on {n_test} clouds)", fontsize=9)
    ax.legend(fontsize=7)
    figures["04_model_training.png"] = fig

    # two test clouds projected on the xy plane, coloured by the first invariant output of the last conv
    with torch.no_grad():
        h = pos.new_ones(pos.shape[0], 1)
        for j, conv in enumerate(model.convs):
            h = conv(h, pos, edges)
            h = model.gate(h) if j < len(model.convs) - 1 else h
    panels = []
    for label in (0, 1):
        cloud = int((labels == label).nonzero()[0])
        mask = batch == cloud
        panels.append((f"{'cigar' if label == 0 else 'pancake'} (xy projection)", pos[mask], h[mask, 0], None))
    figures["04_model_clouds.png"] = viz.plot_point_fields(
        panels,
        title="two test clouds, each point coloured by an invariant feature",
        colorbar_label="last conv, invariant channel 0",
    )
    for name, fig in figures.items():
        viz.save(fig, args.out / name)

    print(f"wrote PNGs to {args.out} in {time.perf_counter() - start:.1f}s")
    return {
        "ok": worst < BOUND,
        "worst": worst,
        "model": model,
        "pos": pos,
        "edges": edges,
        "batch": batch,
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> int:
    return 0 if run(parse_args(argv))["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
