"""A deliberately small plugin used by the core tests: the rotation group C4 on R^2.

It needs no backend library, so the core (registry, kernels, convolutions, checks) is tested even
where escnn and e3nn are absent.  Its kernel MLP is an ordinary MLP averaged over the group
(``f(x) = 1/|G| sum_h A(h)^{-1} m(h x)``), which is exactly equivariant and complete.
"""

from __future__ import annotations

import math

import torch

from steerable.core.group import Group, GroupElements
from steerable.core.mlp import KernelMLPSpec
from steerable.core.representation import Rep
from steerable.registry import hookimpl
from steerable.registry.backend import Backend, GroupSpec


def _rotation(k: torch.Tensor) -> torch.Tensor:
    angle = k.to(torch.float64) * (math.pi / 2)
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


class ToyRep(Rep):
    def __init__(self, group: ToyC4, name: str, size: int, frequency: int) -> None:
        self.group, self.name, self.size, self.frequency = group, name, size, frequency
        self.is_trivial = frequency == 0

    def matrices(self, elements: GroupElements) -> torch.Tensor:
        k = torch.as_tensor(elements.native)
        if self.size == 1:
            return torch.cos(k.to(torch.float64) * math.pi * self.frequency / 2).round()[:, None, None]
        return _rotation(k * self.frequency)


class _AveragedMLP(torch.nn.Module):
    def __init__(self, group: ToyC4, spec: KernelMLPSpec) -> None:
        super().__init__()
        self.spec, self.group = spec, group
        width = 8 * spec.hidden_channels
        self.net = torch.nn.Sequential(
            torch.nn.Linear(2 + spec.attr_size, width), torch.nn.SiLU(), torch.nn.Linear(width, spec.out_size)
        )
        elements = group.elements()
        from steerable.testing import block_matrices

        self.register_buffer("mats", elements.matrices.float(), persistent=False)
        self.register_buffer("acts", block_matrices(spec, elements).float(), persistent=False)
        attr_mats = spec.attr_type.matrices(elements) if spec.attr_type is not None else torch.zeros(4, 0, 0)
        self.register_buffer("attr_mats", attr_mats.float(), persistent=False)

    def forward(self, pos: torch.Tensor, attr: torch.Tensor | None) -> torch.Tensor:
        mats, acts, attr_mats = self.mats.to(pos), self.acts.to(pos), self.attr_mats.to(pos)
        total = 0
        for h in range(4):  # f(x, a) = 1/|G| sum_h A(h)^T m(h x, h a): exactly equivariant
            inputs = pos @ mats[h].T if attr is None else torch.cat([pos @ mats[h].T, attr @ attr_mats[h].T], -1)
            total = total + self.net(inputs) @ acts[h]
        return total / 4


class ToyC4(Group):
    name, dim, backend, order = "ToyC4", 2, "toy", 4

    def __init__(self) -> None:
        self._trivial = ToyRep(self, "trivial", 1, 0)
        self._standard = ToyRep(self, "standard", 2, 1)
        self.sign = ToyRep(self, "sign", 1, 2)

    def trivial_rep(self) -> Rep:
        return self._trivial

    def standard_rep(self) -> Rep:
        return self._standard

    def _make(self, k: torch.Tensor) -> GroupElements:
        return GroupElements(self, _rotation(k), native=k.long())

    def sample(self, n: int, generator: torch.Generator | None = None) -> GroupElements:
        return self._make(torch.randint(0, 4, (n,), generator=generator))

    def elements(self) -> GroupElements:
        return self._make(torch.arange(4))

    def elements_from_matrices(self, matrices: torch.Tensor) -> GroupElements:
        all_mats = _rotation(torch.arange(4))
        ks = []
        for mat in torch.as_tensor(matrices, dtype=torch.float64):
            hit = ((all_mats - mat).abs().amax((1, 2)) < 1e-6).nonzero()
            if len(hit) == 0:
                raise ValueError(f"{mat.tolist()} is not an element of ToyC4")
            ks.append(int(hit[0]))
        return self._make(torch.tensor(ks))

    def build_kernel_mlp(self, spec: KernelMLPSpec) -> torch.nn.Module:
        return _AveragedMLP(self, spec)


_GROUP: ToyC4 | None = None


def _build(dim: int) -> ToyC4:
    global _GROUP
    _GROUP = _GROUP or ToyC4()
    return _GROUP


@hookimpl
def steerable_backends():
    return [Backend(name="toy", priority=5, groups=[GroupSpec("toy", "ToyC4", "TOYC4", (2,), _build, "C4 for tests")])]
