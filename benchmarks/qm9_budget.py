"""QM9 learning curve at equal wall-clock budgets: our steerable network vs torch-geometric's SchNet vs the mean.

Same data (the offline ``qm9pack`` source, the standard 100k/17,748/13,083 split of seed 42; a run with
training size ``n`` trains on the first ``n`` molecules of the standard training part and tests on the first
``--n-test`` of the standard test part), same target (standardised by the training mean and std), same
optimiser (AdamW, the learning rate cosine-annealed over the *time* budget, L1 loss), same batch size,
same CPU threads, same budget of training seconds per run (evaluation not counted).  SchNet is
torch-geometric's own ``SchNet`` (128 channels, 128 filters, 6 interactions, 5 Å cutoff: its QM9 setting)
with its interaction graph built by our pure-torch :func:`steerable.graph.radius_graph` (torch-cluster is
not installed here).  Prints a Markdown table of ε_HOMO test MAE in meV.

Run (about ``len(sizes) * 2 * budget`` seconds plus conversion once)::

    OMP_NUM_THREADS=1 python benchmarks/qm9_budget.py --root data/qm9 --sizes 1000 5000 --budget 300
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from steerable.graph import radius_graph
from steerable.tasks.qm9.data import QM9DataModule
from steerable.tasks.qm9.model import QM9Net


class _TorchRadiusGraph(torch.nn.Module):
    """SchNet's interaction graph (edges within ``cutoff`` and their lengths) from our pure-torch builder."""

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff

    def forward(self, pos: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ei = radius_graph(pos, self.cutoff, batch)
        return ei, (pos[ei[0]] - pos[ei[1]]).norm(dim=-1)


class _SchNet(torch.nn.Module):
    """torch-geometric's ``SchNet`` on a PyG batch, ``(B,)`` standardised prediction."""

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        from torch_geometric.nn.models import SchNet

        self.net = SchNet(hidden_channels=128, num_filters=128, num_interactions=6, num_gaussians=50, cutoff=cutoff)
        self.net.interaction_graph = _TorchRadiusGraph(cutoff)

    def forward(self, batch) -> torch.Tensor:
        return self.net(batch.z, batch.pos, batch.batch).squeeze(-1)


def _ours(cutoff: float) -> torch.nn.Module:
    return QM9Net(
        group="O(3)",
        backend="escnn",
        hidden_scalars=32,
        hidden_vectors=8,
        layers=4,
        kernel_hidden=16,
        cutoff=cutoff,
        graph="radius",
    )


@torch.no_grad()
def _mae(model: torch.nn.Module, loader, mean: float, std: float) -> float:
    model.eval()
    err, n = 0.0, 0
    for b in loader:
        err += float((model(b).double() * std + mean - b.y_target.double()).abs().sum())
        n += int(b.num_graphs)
    model.train()
    return err / n


def train_for(model: torch.nn.Module, dm: QM9DataModule, budget: float, lr: float, seed: int) -> dict[str, float]:
    """Train ``model`` for ``budget`` seconds (L1 on standardised targets); its test MAE and epochs done."""
    from torch_geometric.loader import DataLoader

    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    train = dm._splits["train"]
    spent, epochs, steps = 0.0, 0.0, 0
    while spent < budget:
        loader = DataLoader(train, batch_size=dm.batch_size, shuffle=True, generator=g)
        for k, b in enumerate(loader):
            t0 = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * min(spent / budget, 1.0)))
            loss = torch.nn.functional.l1_loss(model(b), (b.y_target - dm.mean) / dm.std)
            opt.zero_grad()
            loss.backward()
            opt.step()
            spent += time.perf_counter() - t0
            steps += 1
            if spent >= budget:
                epochs += (k + 1) / len(loader)
                break
        else:
            epochs += 1
    test = DataLoader(dm._splits["test"], batch_size=128)
    return {
        "test_mae": _mae(model, test, dm.mean, dm.std),
        "epochs": epochs,
        "steps": steps,
        "mol_per_s": steps * dm.batch_size / spent,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="data/qm9")
    p.add_argument("--target", default="homo")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000], help="training-set sizes")
    p.add_argument("--n-test", type=int, default=2000, help="test molecules (the start of the standard test part)")
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per model and size")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--cutoff", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", nargs="+", default=["ours", "schnet"], choices=["ours", "schnet"])
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    builders = {"ours": lambda: _ours(a.cutoff), "schnet": lambda: _SchNet(a.cutoff)}
    rows = []
    for n in a.sizes:
        dm = QM9DataModule(a.root, target=a.target, source="qm9pack", sizes=(n, 0, a.n_test), batch_size=a.batch_size)
        dm.prepare_data()
        dm.setup()
        test_y = torch.cat([d.y_target for d in dm._splits["test"]]).double()
        row = {"n_train": n, "mean": float((test_y - dm.mean).abs().mean())}
        for name in a.models:
            torch.manual_seed(a.seed)
            model = builders[name]()
            r = train_for(model, dm, a.budget, a.lr, a.seed)
            params = sum(q.numel() for q in model.parameters())
            row[name] = r
            print(
                f"n_train {n} {name} ({params} parameters): test MAE {r['test_mae']:.1f} {dm.unit} after "
                f"{r['epochs']:.1f} epochs ({r['mol_per_s']:.0f} molecules/s)",
                flush=True,
            )
        rows.append(row)
    print(
        f"\n{a.target} test MAE ({dm.unit}) on {a.n_test} test molecules, {a.budget:.0f} s of training per run, "
        f"{a.threads} CPU thread(s)\n"
    )
    head = "| training molecules | mean predictor | " + " | ".join(f"{m} (epochs)" for m in a.models) + " |"
    print(head)
    print("|" + "---|" * (2 + len(a.models)))
    for row in rows:
        cells = [f"{row[m]['test_mae']:.1f} ({row[m]['epochs']:.1f})" for m in a.models]
        print(f"| {row['n_train']} | {row['mean']:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
