"""A vectorised simulator of the charged-particle N-body system of the EGNN / SEGNN benchmark.

The system (Kipf et al. 2018, "charged particles"; made 3D and box-free by Satorras et al. 2021,
EGNN, and reused by Brandstetter et al. 2022, SEGNN) is reimplemented here from its description:

* ``n_particles = 5`` unit-mass particles in ``R^3``, no box (free space);
* charges ``q_i`` drawn independently and uniformly from ``{-1, +1}``;
* Coulomb interaction: the force on particle ``i`` is
  ``F_i = k * sum_{j != i} q_i q_j (x_i - x_j) / |x_i - x_j|^3`` with ``k = interaction_strength = 1``
  (like charges repel, opposite charges attract);
* every force component is clipped to ``[-max_force, max_force]`` with ``max_force = 0.1 / dt = 100``
  (componentwise, as in the original generator; this is the only non-physical, non-equivariant
  step, and it is active only in rare close encounters: :attr:`Trajectories.clipped` flags them);
* initial positions ``x_i(0) ~ N(0, loc_std^2 I)`` with ``loc_std = 1``; initial velocities with a
  uniformly random direction and fixed norm ``vel_norm = 0.5`` (a Gaussian vector rescaled);
* integration step ``dt = 0.001`` with the original's kick-drift ("symplectic Euler"/leapfrog)
  scheme: ``v += dt F(x_0)`` once, then for every step ``s = 1 .. n_steps - 1``:
  ``x += dt v``; record ``(x, v)`` when ``s % sample_freq == 0``; ``v += dt F(x)``;
* ``n_steps = 5000``, ``sample_freq = 100``: ``n_steps / sample_freq - 1 = 49`` frames; frame ``k``
  is integration step ``sample_freq * (k + 1)`` (time ``0.1 * (k + 1)``).  The benchmark's task maps
  frame 30 to frame 40, i.e. 1000 integration steps = 1.0 time unit.

The stored velocity of a frame is the one used for the drift of that step (half a step behind the
position, as in the original files).

Conventions (same as the benchmark's ``.npy`` files): ``loc`` and ``vel`` are
``(n_traj, n_frames, 3, n_particles)`` float64, ``charges`` ``(n_traj, n_particles, 1)``,
``edges = charges @ charges^T`` ``(n_traj, n_particles, n_particles)`` (diagonal ``q_i^2 = 1``).

Randomness: initial conditions come from ``numpy.random.Generator(PCG64(seed))``, drawn trajectory
by trajectory (charges, positions, velocity directions; :func:`initial_conditions`), so a seed fixes
a split and its first ``k`` trajectories do not depend on the split size; the integration is
deterministic and independent per trajectory (results do not depend on ``chunk_size``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["SimulationConfig", "Trajectories", "initial_conditions", "simulate", "energy", "total_momentum"]


@dataclass(frozen=True)
class SimulationConfig:
    """Every parameter of the simulation; the defaults are the benchmark's.

    Attributes:
        n_particles: particles per system (5).
        dim: space dimension (3).
        loc_std: standard deviation of the initial positions (1.0).
        vel_norm: norm of every initial velocity (0.5).
        interaction_strength: Coulomb constant ``k`` (1.0).
        dt: integration step (0.001).
        max_force: componentwise force clip (``0.1 / dt = 100``).
        n_steps: integration steps per trajectory (5000).
        sample_freq: steps between stored frames (100).
        charge_values: the charges, drawn uniformly (``(-1, +1)``).
    """

    n_particles: int = 5
    dim: int = 3
    loc_std: float = 1.0
    vel_norm: float = 0.5
    interaction_strength: float = 1.0
    dt: float = 0.001
    max_force: float = 100.0
    n_steps: int = 5000
    sample_freq: int = 100
    charge_values: tuple[float, ...] = (-1.0, 1.0)

    @property
    def n_frames(self) -> int:
        """Frames stored per trajectory: ``n_steps // sample_freq - 1`` (49)."""
        return self.n_steps // self.sample_freq - 1

    def frame_time(self, frame: int) -> float:
        """Simulation time of frame ``frame``: ``dt * sample_freq * (frame + 1)``."""
        return self.dt * self.sample_freq * (frame + 1)

    def horizon(self, frame_in: int, frame_out: int) -> float:
        """Time between two frames (``1.0`` for 30 -> 40)."""
        return self.dt * self.sample_freq * (frame_out - frame_in)


@dataclass
class Trajectories:
    """Simulated trajectories in the benchmark's layout (see module docstring).

    Attributes:
        loc: ``(n_traj, n_frames, dim, n_particles)`` float64 positions.
        vel: ``(n_traj, n_frames, dim, n_particles)`` float64 velocities.
        charges: ``(n_traj, n_particles, 1)`` float64 charges.
        clipped: ``(n_traj,)`` bool, ``True`` where a force component was clipped at some step.
        seconds: wall time of the simulation.
    """

    loc: np.ndarray
    vel: np.ndarray
    charges: np.ndarray
    clipped: np.ndarray
    seconds: float = 0.0
    config: SimulationConfig = field(default_factory=SimulationConfig)

    @property
    def edges(self) -> np.ndarray:
        """``(n_traj, n, n)`` charge products ``q_i q_j`` (the benchmark's ``edges`` file)."""
        return self.charges @ self.charges.transpose(0, 2, 1)

    def __len__(self) -> int:
        return self.loc.shape[0]


def initial_conditions(
    n_traj: int, seed: int, config: SimulationConfig = SimulationConfig()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Charges ``(T, n, 1)``, positions and velocities ``(T, n, dim)`` of ``n_traj`` systems.

    Drawn trajectory by trajectory from ``numpy.random.Generator(PCG64(seed))`` (charges, positions,
    velocity directions), so the first ``k`` systems do not depend on ``n_traj``.
    """
    n, d = config.n_particles, config.dim
    rng = np.random.Generator(np.random.PCG64(seed))
    values = np.asarray(config.charge_values, dtype=np.float64)
    charges = np.empty((n_traj, n, 1))
    loc0 = np.empty((n_traj, n, d))
    vel0 = np.empty((n_traj, n, d))
    for t in range(n_traj):
        charges[t, :, 0] = values[rng.integers(0, len(values), size=n)]
        loc0[t] = rng.standard_normal((n, d)) * config.loc_std
        vel0[t] = rng.standard_normal((n, d))
    vel0 *= config.vel_norm / np.linalg.norm(vel0, axis=-1, keepdims=True)
    return charges, loc0, vel0


def _forces(
    pos: torch.Tensor, qq: torch.Tensor, pairs: list[tuple[int, int]], k: float, max_force: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped Coulomb forces at ``pos``.

    Layout is trajectory-last for contiguous vector ops: ``pos`` ``(n, dim, B)``, ``qq`` ``(P, B)``
    pair charge products for ``pairs`` ``[(i, j), ...]`` (``i < j``).  Pair ``p`` contributes
    ``f_p = k q_i q_j (x_i - x_j) / r^3`` to ``i`` and ``-f_p`` to ``j``, so unclipped forces sum to
    zero up to round-off.  Returns the clipped forces ``(n, dim, B)`` and a ``(B,)`` bool of
    systems where clipping was active.
    """
    force = torch.zeros_like(pos)
    for p, (i, j) in enumerate(pairs):
        diff = pos[i] - pos[j]  # (dim, B)
        s = diff.square().sum(0).rsqrt_()
        s = s * s * s * qq[p]
        if k != 1.0:
            s = s * k
        f = diff * s
        force[i] += f
        force[j] -= f
    clipped = force.abs().amax((0, 1)) > max_force
    return force.clamp_(-max_force, max_force), clipped


def simulate(
    n_traj: int,
    seed: int,
    config: SimulationConfig = SimulationConfig(),
    *,
    progress: bool = False,
    desc: str = "simulating",
    chunk_size: int = 8192,
    num_threads: int | None = 1,
) -> Trajectories:
    """Simulate ``n_traj`` independent systems, vectorised over trajectories (torch, float64, CPU).

    Args:
        n_traj: number of trajectories.
        seed: seed of the initial conditions (see module docstring); same seed, same output.
        config: simulation parameters.
        progress: show a tqdm progress bar over integration steps.
        desc: progress bar label.
        chunk_size: trajectories integrated at once (bounds memory; results do not depend on it).
        num_threads: torch intra-op threads during the simulation (restored afterwards); ``1`` is
            the fastest on a shared 2-core machine (the ops are small), ``None`` keeps the setting.

    Returns:
        :class:`Trajectories` in the benchmark's layout.
    """
    if n_traj < 1:
        raise ValueError(f"simulate: n_traj must be positive, got {n_traj}")
    if config.n_steps % config.sample_freq != 0 or config.n_frames < 1:
        raise ValueError("simulate: n_steps must be a multiple of sample_freq with at least 2 samples")
    n, d = config.n_particles, config.dim
    charges, loc0, vel0 = initial_conditions(n_traj, seed, config)

    loc_out = np.empty((n_traj, config.n_frames, d, n))
    vel_out = np.empty((n_traj, config.n_frames, d, n))
    clipped_out = np.zeros(n_traj, dtype=bool)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    start_time = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_traj * config.n_steps, desc=desc, unit="step", unit_scale=True, leave=False)
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        with torch.inference_mode():
            for start in range(0, n_traj, chunk_size):
                stop = min(start + chunk_size, n_traj)
                # trajectory-last layout (n, dim, B)
                pos = torch.from_numpy(loc0[start:stop]).permute(1, 2, 0).contiguous()
                vel = torch.from_numpy(vel0[start:stop]).permute(1, 2, 0).contiguous()
                q = torch.from_numpy(charges[start:stop, :, 0]).T  # (n, B)
                qq = torch.stack([q[i] * q[j] for i, j in pairs])  # (P, B)
                args = (qq, pairs, config.interaction_strength, config.max_force)
                force, clipped = _forces(pos, *args)
                vel.add_(force, alpha=config.dt)
                frames_pos, frames_vel = [], []
                for step in range(1, config.n_steps):
                    pos.add_(vel, alpha=config.dt)
                    if step % config.sample_freq == 0:
                        frames_pos.append(pos.clone())
                        frames_vel.append(vel.clone())
                    force, c = _forces(pos, *args)
                    clipped |= c
                    vel.add_(force, alpha=config.dt)
                    if bar is not None and step % 100 == 0:
                        bar.update((stop - start) * 100)
                # (F, n, dim, B) -> (B, F, dim, n)
                loc_out[start:stop] = torch.stack(frames_pos).permute(3, 0, 2, 1).numpy()
                vel_out[start:stop] = torch.stack(frames_vel).permute(3, 0, 2, 1).numpy()
                clipped_out[start:stop] = clipped.numpy()
    finally:
        torch.set_num_threads(old_threads)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start_time
    return Trajectories(loc_out, vel_out, charges, clipped_out, seconds, config)


def total_momentum(vel: np.ndarray) -> np.ndarray:
    """Total momentum (unit masses) ``(..., dim)`` of velocities ``(..., dim, n_particles)``."""
    return vel.sum(-1)


def energy(loc: np.ndarray, vel: np.ndarray, charges: np.ndarray, interaction_strength: float = 1.0) -> np.ndarray:
    """Total energy ``sum_i |v_i|^2 / 2 + k sum_{i<j} q_i q_j / r_ij``.

    Shapes: ``loc``, ``vel`` ``(n_traj, n_frames, dim, n)``; ``charges`` ``(n_traj, n, 1)``;
    returns ``(n_traj, n_frames)``.
    """
    kinetic = 0.5 * (vel**2).sum((-1, -2))
    n = loc.shape[-1]
    iu, ju = np.triu_indices(n, 1)
    r = np.linalg.norm(loc[..., iu] - loc[..., ju], axis=-2)  # (n_traj, n_frames, P)
    qq = (charges[:, iu, 0] * charges[:, ju, 0])[:, None, :]
    return kinetic + interaction_strength * (qq / r).sum(-1)
