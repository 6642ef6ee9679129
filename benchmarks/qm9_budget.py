"""QM9 learning curve at equal wall-clock budgets: our steerable network vs torch-geometric's SchNet and
DimeNet++ vs the mean.

Same data (the offline ``qm9pack`` source, the standard 100k/17,748/13,083 split of seed 42; a run with
training size ``n`` trains on the first ``n`` molecules of the standard training part and tests on the first
``--n-test`` of the standard test part), same target (standardised by the training mean and std), same
optimiser (AdamW, the learning rate cosine-annealed over the *time* budget, L1 loss), same batch size,
same CPU threads, same budget of training seconds per run (evaluation not counted).  The models of one
training size train *interleaved*, one optimiser step of each in turn, each timing only its own steps, so
that on a shared machine all see the same load.  The peers are torch-geometric's own models
(``_pyg_peers.py``), on our pure-torch graph code since torch-cluster and torch_sparse are not installed
here: ``SchNet`` (128 channels, 128 filters, 6 interactions, 5 Å cutoff: its QM9 setting) with its
interaction graph from :func:`steerable.graph.radius_graph`, and ``DimeNetPlusPlus`` in its published QM9
setting (hidden 128, output embedding 256, interaction embedding 64, basis embedding 8, 4 blocks, 7
spherical and 6 radial basis functions, 5 Å cutoff; ``_pyg_peers.DIMENET_PP_QM9``) with the same radius
graph and pure-torch angle triplets.  Ours is
:class:`~steerable.tasks.qm9.model.QM9Net` with O(3) implicit kernels conditioned on bond and atom
attributes (the implicit-kernel paper's best QM9 variant) on the bond graph, the kernels' radial range
``max_radius = --max-radius`` (2 Å: the longest QM9 bond is 1.15 x 2 x 0.76 = 1.75 Å; with
``--graph radius`` pass the cutoff).  Prints a Markdown table of ε_HOMO test MAE in meV (with epochs and
training molecules per second).

Run (about ``len(sizes) * len(models) * budget`` seconds plus conversion once)::

    OMP_NUM_THREADS=1 python benchmarks/qm9_budget.py --root data/qm9 --sizes 1000 5000 --budget 240 --threads 1

``--device cuda`` trains and tests on the GPU (each step's time includes moving its batch there and ends
with a synchronisation).  ``--source pyg`` reads PyG's format under ``--root`` instead of qm9pack, e.g.
the 2,000-molecule sample ``scripts/device_wheels.sh`` writes for the GPU machine (``.whl/data/qm9``: its
split has 1,528 training and 201 test molecules, so ``--sizes 1500 --n-test 200`` at most).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch
from _pyg_peers import DimeNetPPPeer, SchNetPeer

from steerable.tasks.optim import adam
from steerable.tasks.qm9.data import QM9DataModule
from steerable.tasks.qm9.model import QM9Net


def _ours(max_radius: float, graph: str) -> torch.nn.Module:
    return QM9Net(
        group="O(3)",
        backend="escnn",
        hidden_scalars=32,
        hidden_vectors=8,
        layers=6,
        kernel_hidden=16,
        radial_features=32,
        invariant_width=64,
        cutoff=max_radius,
        graph=graph,
        bond_attributes=True,
        atom_attributes=True,
    )


@torch.no_grad()
def _mae(model: torch.nn.Module, loader, mean: float, std: float, device: torch.device) -> float:
    model.eval()
    err, n = 0.0, 0
    for b in loader:
        b = b.to(device)
        err += float((model(b).double() * std + mean - b.y_target.double()).abs().sum())
        n += int(b.num_graphs)
    model.train()
    return err / n


class _Run:
    """One model's training: a step at a time (L1 on standardised targets, AdamW, the learning rate
    cosine-annealed over the time ``budget``), timing only its own steps."""

    def __init__(
        self,
        model: torch.nn.Module,
        dm: QM9DataModule,
        budget: float,
        lr: float,
        seed: int,
        device: torch.device | str = "cpu",
    ) -> None:
        from torch_geometric.loader import DataLoader

        self.device = torch.device(device)
        self.model, self.dm, self.budget, self.lr = model.to(self.device), dm, budget, lr
        self.opt = adam(model.parameters(), lr, decoupled=True)  # the task's optimiser, for every model
        self.loader = DataLoader(
            dm._splits["train"], batch_size=dm.batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
        )
        self.spent, self.steps, self.epochs = 0.0, 0, 0.0
        self._batches = iter(())
        self._k = 0

    @property
    def done(self) -> bool:
        return self.spent >= self.budget

    def step(self) -> None:
        b = next(self._batches, None)
        if b is None:  # a new epoch, in a fresh order
            self._batches, self._k = iter(self.loader), 0
            b = next(self._batches)
        self._k += 1
        t0 = time.perf_counter()
        b = b.to(self.device)
        for group in self.opt.param_groups:
            group["lr"] = 0.5 * self.lr * (1 + math.cos(math.pi * min(self.spent / self.budget, 1.0)))
        loss = torch.nn.functional.l1_loss(self.model(b), (b.y_target - self.dm.mean) / self.dm.std)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.spent += time.perf_counter() - t0
        self.steps += 1
        self.epochs = self.steps / len(self.loader)

    def result(self) -> dict[str, float]:
        from torch_geometric.loader import DataLoader

        test = DataLoader(self.dm._splits["test"], batch_size=128)
        return {
            "test_mae": _mae(self.model, test, self.dm.mean, self.dm.std, self.device),
            "epochs": self.epochs,
            "steps": self.steps,
            "mol_per_s": self.steps * self.dm.batch_size / max(self.spent, 1e-9),
        }


def train_interleaved(runs: list[_Run]) -> list[dict[str, float]]:
    """Train every run to its budget, one step of each in turn (so that all see the same load on a
    shared machine); their results (test MAE, epochs, steps, molecules per second)."""
    while not all(r.done for r in runs):
        for r in runs:
            if not r.done:
                r.step()
    return [r.result() for r in runs]


def train_for(
    model: torch.nn.Module,
    dm: QM9DataModule,
    budget: float,
    lr: float,
    seed: int,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Train ``model`` alone for ``budget`` seconds; its test MAE, epochs, steps and molecules per second."""
    torch.manual_seed(seed)
    return train_interleaved([_Run(model, dm, budget, lr, seed, device)])[0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="data/qm9")
    p.add_argument("--target", default="homo")
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000], help="training-set sizes")
    p.add_argument("--n-test", type=int, default=2000, help="test molecules (the start of the standard test part)")
    p.add_argument("--budget", type=float, default=300.0, help="training seconds per model and size")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--cutoff", type=float, default=5.0, help="SchNet's and DimeNet++'s cutoff (Å)")
    p.add_argument("--max-radius", type=float, default=2.0, help="our kernels' radial range and radius cutoff (Å)")
    p.add_argument("--graph", default="bond", choices=["bond", "radius"], help="our network's graph")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help='"cpu" (default) or "cuda"')
    p.add_argument("--source", default="qm9pack", choices=["qm9pack", "pyg"], help="the data under --root")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--models", nargs="+", default=["ours", "schnet", "dimenet++"], choices=["ours", "schnet", "dimenet++"]
    )
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    builders = {
        "ours": lambda: _ours(a.max_radius, a.graph),
        "schnet": lambda: SchNetPeer(a.cutoff),
        "dimenet++": lambda: DimeNetPPPeer(cutoff=a.cutoff),
    }
    rows = []
    for n in a.sizes:
        dm = QM9DataModule(a.root, target=a.target, source=a.source, sizes=(n, 0, a.n_test), batch_size=a.batch_size)
        dm.prepare_data()
        dm.setup()
        test_y = torch.cat([d.y_target for d in dm._splits["test"]]).double()
        row = {"n_train": n, "mean": float((test_y - dm.mean).abs().mean())}
        models, runs = {}, []
        for name in a.models:
            torch.manual_seed(a.seed)
            models[name] = builders[name]()
            runs.append(_Run(models[name], dm, a.budget, a.lr, a.seed, device))
        for name, r in zip(a.models, train_interleaved(runs)):
            params = sum(q.numel() for q in models[name].parameters())
            row[name] = r
            print(
                f"n_train {n} {name} ({params} parameters): test MAE {r['test_mae']:.1f} {dm.unit} after "
                f"{r['epochs']:.1f} epochs ({r['mol_per_s']:.0f} molecules/s)",
                flush=True,
            )
        rows.append(row)
    print(
        f"\n{a.target} test MAE ({dm.unit}) on {a.n_test} test molecules, {a.budget:.0f} s of training per run, "
        f"{a.threads} CPU thread(s)"
        + (f", on {torch.cuda.get_device_name(device)} (torch {torch.__version__})" if device.type == "cuda" else "")
        + "\n"
    )
    head = (
        "| training molecules | mean predictor | " + " | ".join(f"{m} (epochs, molecules/s)" for m in a.models) + " |"
    )
    print(head)
    print("|" + "---|" * (2 + len(a.models)))
    for row in rows:
        cells = [f"{row[m]['test_mae']:.1f} ({row[m]['epochs']:.1f}, {row[m]['mol_per_s']:.0f})" for m in a.models]
        print(f"| {row['n_train']} | {row['mean']:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
