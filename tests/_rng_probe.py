"""A tiny N-body run whose ranks draw different amounts of global randomness, for the resume tests.

``python tests/_rng_probe.py PROBE_DIR [--interrupt] TASK_FLAGS...``: runs the N-body task with two
extra callbacks.  Every rank draws ``rank + 1`` numbers from each global generator (python, numpy,
torch) at the start of every training batch, as a rank-dependent augmentation would, and writes the
draws of each epoch to ``PROBE_DIR/rank{r}.json``; with ``--interrupt`` the run stops after its first
epoch, as a killed job would leave it.  Lightning's DDP starts the other ranks by running this
command again, so they get the same callbacks.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from steerable.tasks.nbody.train import TASK, build_parser, resolve


class RankRandomness(Callback):
    def __init__(self, probe_dir: Path) -> None:
        self.probe_dir = probe_dir
        self.draws: dict[int, list[list[float]]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        row: list[float] = []
        for _ in range(trainer.global_rank + 1):
            row += [random.random(), float(np.random.rand()), float(torch.rand(()))]
        self.draws.setdefault(trainer.current_epoch, []).append(row)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        path = self.probe_dir / f"rank{trainer.global_rank}.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        saved.update({str(k): v for k, v in self.draws.items()})
        path.write_text(json.dumps(saved))


class Interrupt(Callback):
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        trainer.should_stop = True


def main(argv: list[str]) -> None:
    probe_dir, rest = Path(argv[0]), argv[1:]
    callbacks: list[Callback] = [RankRandomness(probe_dir)]
    if "--interrupt" in rest:
        rest.remove("--interrupt")
        callbacks.append(Interrupt())
    probe_dir.mkdir(parents=True, exist_ok=True)
    TASK.run(resolve(build_parser().parse_args(rest)), callbacks=callbacks)


if __name__ == "__main__":
    main(sys.argv[1:])
