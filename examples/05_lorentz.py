"""A Lorentz-equivariant point model on particle 4-momenta, beside an unconstrained MLP of equal size.

Toy data (our own generator, :func:`make_events`): a parent particle of mass ``M ~ U[1, 3]`` at rest
decays isotropically into two daughters of masses ``M u1``, ``M u2`` (``u ~ U[0.1, 0.35]``); each
daughter decays isotropically, in its own rest frame, into two massless particles.  The four
momenta ``p = (E, px, py, pz)`` (time first: the group is ``O(1,3)`` with ``eta = diag(1, -1, -1, -1)``,
``p^T eta p = m^2``) are shuffled and the whole event is boosted by a random boost of rapidity
``U[0, 0.5]`` in a random direction.  Target: the parent mass ``M``, a Lorentz invariant
(``M^2 = q(sum_i p_i)``).

Models (about the same number of parameters):

* ``LorentzModel``: ``PointConv(scalar + vector -> hidden) -> Gate -> PointConv(hidden -> scalars)``,
  mean over the particles, ``Linear``.  Positions are the momenta (the kernel sees ``p_j - p_i``, whose
  invariant ``q(p_j - p_i) = -2 p_i . p_j`` for massless particles), node features ``(1, p_i)``, the
  complete graph of each event.  ``O(1,3)``-invariant by construction;
* ``MLP`` on the 16 flattened momenta.

Both are evaluated on the test set and on copies of it boosted further by rapidities up to 2 (each
event in a random direction): the equivariant model's error does not change, the baseline's grows.
The script prints the table, a check of the invariance of the predictions, and plots the errors.

    .venv/bin/python examples/05_lorentz.py [--out DIR] [--quick] [--steps N]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import steerable as st
from steerable import viz

#: float64 round-off of two layers on momenta boosted to rapidity 2.5 (measured ~1e-14), with room
BOUND = 1e-10
RAPIDITIES = (0.0, 0.5, 1.0, 1.5, 2.0)
N_PARTICLES = 4


# ----------------------------------------------------------------------------------- the toy physics
def _directions(n: int, gen: torch.Generator) -> torch.Tensor:
    """``(n, 3)`` isotropic unit vectors."""
    d = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return d / d.norm(dim=1, keepdim=True)


def boost_matrices(rapidity: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """``(n, 4, 4)`` pure boosts of the given rapidities ``(n,)`` along unit ``directions`` ``(n, 3)``:
    ``B = [[cosh, sinh n^T], [sinh n, I + (cosh - 1) n n^T]]`` (time first)."""
    c, s = torch.cosh(rapidity), torch.sinh(rapidity)
    out = torch.zeros(len(rapidity), 4, 4, dtype=torch.float64)
    out[:, 0, 0] = c
    out[:, 0, 1:] = out[:, 1:, 0] = s[:, None] * direction
    out[:, 1:, 1:] = (
        torch.eye(3, dtype=torch.float64) + (c - 1)[:, None, None] * direction[:, :, None] * direction[:, None, :]
    )
    return out


def _two_body(mass: torch.Tensor, m1: torch.Tensor, m2: torch.Tensor, gen: torch.Generator) -> tuple:
    """Momenta ``(n, 4)`` of the two products of an isotropic decay at rest of particles of mass ``mass``."""
    k = torch.sqrt((mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2)) / (2 * mass)
    d = _directions(len(mass), gen) * k[:, None]
    p1 = torch.cat([torch.sqrt(m1**2 + k**2)[:, None], d], 1)
    p2 = torch.cat([torch.sqrt(m2**2 + k**2)[:, None], -d], 1)
    return p1, p2


def _to_frame(p: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """``p`` (given in the rest frame of ``parent``) in the frame where ``parent`` has momentum ``parent``."""
    mass = torch.sqrt(parent[:, 0] ** 2 - (parent[:, 1:] ** 2).sum(1))
    speed = parent[:, 1:].norm(dim=1)
    rapidity = torch.asinh(speed / mass)
    direction = parent[:, 1:] / speed.clamp_min(1e-300)[:, None]
    return torch.einsum("nij,nj->ni", boost_matrices(rapidity, direction), p)


def make_events(n: int, gen: torch.Generator, max_rapidity: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """``(momenta (n, 4, 4) float64 [event, particle, (E, px, py, pz)], parent masses (n,))`` (module doc)."""
    mass = 1.0 + 2.0 * torch.rand(n, generator=gen, dtype=torch.float64)
    u = 0.1 + 0.25 * torch.rand(n, 2, generator=gen, dtype=torch.float64)
    d1, d2 = _two_body(mass, mass * u[:, 0], mass * u[:, 1], gen)
    zero = torch.zeros(n, dtype=torch.float64)
    particles = []
    for daughter, m in ((d1, mass * u[:, 0]), (d2, mass * u[:, 1])):
        for p in _two_body(m, zero, zero, gen):
            particles.append(_to_frame(p, daughter))
    momenta = torch.stack(particles, 1)
    order = torch.argsort(torch.rand(n, N_PARTICLES, generator=gen), dim=1)
    momenta = torch.take_along_dim(momenta, order[:, :, None], dim=1)
    rapidity = max_rapidity * torch.rand(n, generator=gen, dtype=torch.float64)
    return boost_events(momenta, boost_matrices(rapidity, _directions(n, gen))), mass


def boost_events(momenta: torch.Tensor, boosts: torch.Tensor) -> torch.Tensor:
    """Every particle of event ``e`` ``(n, P, 4)`` moved by ``boosts[e]`` ``(n, 4, 4)``."""
    return torch.einsum("nij,npj->npi", boosts, momenta)


def complete_graph(n_events: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``edge_index`` ``(2, n * P (P - 1))`` of the complete graph of each event (no self-loops), ``batch``."""
    src, dst = torch.meshgrid(torch.arange(N_PARTICLES), torch.arange(N_PARTICLES), indexing="ij")
    keep = src != dst
    one = torch.stack([src[keep], dst[keep]])
    offsets = (torch.arange(n_events) * N_PARTICLES).repeat_interleave(one.shape[1])
    return one.repeat(1, n_events) + offsets, torch.arange(n_events).repeat_interleave(N_PARTICLES)


# ----------------------------------------------------------------------------------- the models
class LorentzModel(torch.nn.Module):
    """``O(1,3)``-invariant regressor: ``forward(momenta (n, P, 4)) -> (n,)`` (module doc)."""

    def __init__(self, group: st.Group, n_scalars: int = 4, n_vectors: int = 2, **mlp) -> None:
        super().__init__()
        t, v = group.trivial_rep(), group.standard_rep()
        f_in = st.FieldType(group, [t, v])
        gated = st.FieldType(group, [t] * n_scalars + [v] * n_vectors)
        self.gate = st.Gate(gated)
        f_inv = st.FieldType(group, [t] * 4)
        self.conv1 = st.PointConv(f_in, self.gate.in_type, **mlp)
        self.conv2 = st.PointConv(gated, f_inv, **mlp)
        self.head = torch.nn.Linear(4, 1)

    def forward(self, momenta: torch.Tensor) -> torch.Tensor:
        n = momenta.shape[0]
        pos = momenta.reshape(-1, 4)
        edges, batch = complete_graph(n)
        h = torch.cat([pos.new_ones(len(pos), 1), pos], 1)
        h = self.conv2(self.gate(self.conv1(h, pos, edges)), pos, edges)
        pooled = h.new_zeros(n, h.shape[1]).index_add_(0, batch, h) / N_PARTICLES
        return self.head(pooled)[:, 0] + 2.0  # 2: the mean parent mass


class MLP(torch.nn.Module):
    """Unconstrained baseline on the flattened momenta: ``(n, P, 4) -> (n,)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(4 * N_PARTICLES, width),
            torch.nn.SiLU(),
            torch.nn.Linear(width, width),
            torch.nn.SiLU(),
            torch.nn.Linear(width, 1),
        )

    def forward(self, momenta: torch.Tensor) -> torch.Tensor:
        return self.net(momenta.reshape(len(momenta), -1))[:, 0] + 2.0


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def matching_width(target: int) -> int:
    """The MLP width whose parameter count ``w^2 + (16 + 3) w + 1`` is closest to ``target``."""
    w = (-(4 * N_PARTICLES + 3) + math.sqrt((4 * N_PARTICLES + 3) ** 2 + 4 * (target - 1))) / 2
    return max(1, round(w))


def train(model: torch.nn.Module, steps: int, batch_size: int, seed: int) -> list[float]:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    model.train()
    for _ in range(steps):
        momenta, mass = make_events(batch_size, gen)
        loss = torch.nn.functional.mse_loss(model(momenta), mass)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def rmse(model: torch.nn.Module, momenta: torch.Tensor, mass: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(momenta) - mass).pow(2).mean().sqrt())


# ----------------------------------------------------------------------------------- the run
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "output", help="folder for the PNGs")
    parser.add_argument("--quick", action="store_true", help="tiny setting (a few seconds), for tests")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 600, quick: 40)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    """Run the example; returns its verdict (``ok``), the table, the objects it checked and its figures."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    steps = args.steps if args.steps is not None else (40 if args.quick else 600)
    batch_size, n_test = (16, 64) if args.quick else (32, 512)
    start = time.perf_counter()

    G = st.group("O(1,3)")
    model = LorentzModel(G, hidden_channels=4, hidden_layers=1, max_radius=3.0).double()
    baseline = MLP(matching_width(n_params(model))).double()
    print(
        f"{G}: LorentzModel with {n_params(model)} parameters, MLP with {n_params(baseline)}; "
        f"{steps} training steps of {batch_size} events x {N_PARTICLES} particles (rapidity <= 0.5)"
    )
    t0 = time.perf_counter()
    curves = {"LorentzModel": train(model, steps, batch_size, 1), "MLP": train(baseline, steps, batch_size, 1)}
    print(f"trained both in {time.perf_counter() - t0:.1f}s")
    model.eval(), baseline.eval()

    test_gen = torch.Generator().manual_seed(123)
    momenta, mass = make_events(n_test, test_gen)
    direction = _directions(n_test, test_gen)
    table = []
    worst = 0.0
    with torch.no_grad():
        base = model(momenta)
        for zeta in RAPIDITIES:
            boosted = boost_events(momenta, boost_matrices(torch.full((n_test,), zeta, dtype=torch.float64), direction))
            table.append((zeta, rmse(model, boosted, mass), rmse(baseline, boosted, mass)))
            worst = max(worst, float((model(boosted) - base).norm() / base.norm()))
    print("test RMSE of the parent mass (test events boosted further by rapidity zeta, random directions):")
    print(f"  {'zeta':>5}  {'LorentzModel':>12}  {'MLP':>10}")
    for zeta, ours, theirs in table:
        print(f"  {zeta:5.1f}  {ours:12.4f}  {theirs:10.4f}")
    status = "ok" if worst < BOUND else "FAIL"
    print(
        "check Lorentz model invariance of predictions f(B.p) = f(p) under boosts up to rapidity 2 (float64): "
        f"rel. error {worst:.2e} (bound {BOUND:.0e}) {status}"
    )

    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.4), layout="constrained")
    ax = fig.add_subplot()
    zetas = [row[0] for row in table]
    ax.plot(zetas, [row[1] for row in table], "o-", label=f"LorentzModel ({n_params(model)} params)")
    ax.plot(zetas, [row[2] for row in table], "s--", label=f"MLP ({n_params(baseline)} params)")
    ax.set_yscale("log")
    ax.set_xlabel("extra boost rapidity of the test events")
    ax.set_ylabel("test RMSE of the parent mass")
    ax.set_title(f"O(1,3): {n_test} test events, trained at rapidity <= 0.5", fontsize=9)
    ax.legend(fontsize=7)
    figures = {"05_lorentz_boosts.png": fig}
    fig = Figure(figsize=(5.5, 3.2), layout="constrained")
    ax = fig.add_subplot()
    for name, losses in curves.items():
        ax.plot(range(1, steps + 1), losses, label=name, linewidth=0.9)
    ax.set_yscale("log")
    ax.set_xlabel(f"training step ({batch_size} events each)")
    ax.set_ylabel("training MSE of the parent mass")
    ax.set_title("training loss", fontsize=9)
    ax.legend(fontsize=7)
    figures["05_lorentz_training.png"] = fig
    for name, f in figures.items():
        viz.save(f, args.out / name)
    print(f"wrote PNGs to {args.out} in {time.perf_counter() - start:.1f}s")
    return {
        "ok": worst < BOUND,
        "worst": worst,
        "table": table,
        "model": model,
        "baseline": baseline,
        "momenta": momenta,
        "mass": mass,
        "figures": figures,
    }


def main(argv: list[str] | None = None) -> int:
    return 0 if run(parse_args(argv))["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
