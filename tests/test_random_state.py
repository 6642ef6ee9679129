"""Random states in checkpoints (:class:`steerable.tasks.trainer.RandomStateCheckpoint`): a resumed
run continues every global random stream (python, numpy, torch) where the interrupted run left it.
The two-process case is in ``test_ddp.py`` (slow)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")
from _rng_probe import Interrupt, RankRandomness
from _tiny import tiny_nbody_flags

from steerable.tasks.nbody.train import TASK, build_parser, resolve
from steerable.tasks.trainer import RandomStateCheckpoint

TINY = tiny_nbody_flags(n_train=20, equivariance_elements=1, no_progress=True)


def _draws() -> list[float]:
    return [random.random(), float(np.random.rand()), float(torch.rand(()))]


def test_resumed_run_continues_the_random_streams(tmp_path):
    """Before: the states were restored at the first epoch's start, after the training loader had
    made its iterator (which draws a seed from torch's generator): torch's draws of the resumed
    epoch differed from the uninterrupted run's."""

    def run(out: str, *extra: str, callbacks=()) -> None:
        args = [*TINY, "--data-dir", str(tmp_path / "data"), "--out-dir", str(tmp_path / out), *extra]
        TASK.run(resolve(build_parser().parse_args(args)), callbacks=list(callbacks))

    for name in ("whole", "part", "resumed"):
        (tmp_path / name).mkdir()
    run("whole", callbacks=[RankRandomness(tmp_path / "whole")])
    run("part", callbacks=[RankRandomness(tmp_path / "part"), Interrupt()])
    run(
        "part",
        "--resume",
        str(tmp_path / "part" / "checkpoints" / "last.ckpt"),
        callbacks=[RankRandomness(tmp_path / "resumed")],
    )
    whole = json.loads((tmp_path / "whole" / "rank0.json").read_text())
    resumed = json.loads((tmp_path / "resumed" / "rank0.json").read_text())
    assert list(resumed) == ["1"] and len(resumed["1"]) == 2  # two batches of the resumed epoch
    assert resumed["1"] == whole["1"]


def test_states_are_saved_per_rank_and_restored_on_load():
    callback = RandomStateCheckpoint()
    torch.manual_seed(3)
    saved = callback.state_dict()
    assert list(saved) == ["ranks"] and len(saved["ranks"]) == 1
    assert {"python", "numpy", "torch"} <= set(saved["ranks"][0])
    expected = _draws()
    _draws()  # the streams move on ...
    callback.load_state_dict(saved)  # ... and loading puts them back
    assert _draws() == expected
    # checkpoints written before (one state, no "ranks") load as rank 0's
    callback.load_state_dict(saved["ranks"][0])
    assert _draws() == expected


def test_a_checkpoint_of_another_process_count_warns():
    torch.manual_seed(4)
    state = RandomStateCheckpoint().state_dict()["ranks"][0]
    expected = _draws()
    with pytest.warns(UserWarning, match=r"resuming with 1 process\(es\) from a checkpoint of 2"):
        RandomStateCheckpoint().load_state_dict({"ranks": [state, state]})
    assert _draws() == expected  # this process (rank 0) restored entry 0
