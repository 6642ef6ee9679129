"""Flags of the smallest N-body runs the task tests make (a few seconds each)."""

from __future__ import annotations


def tiny_nbody_flags(n_train: int = 20, n_val: int = 10, n_test: int = 10, **extra: object) -> list[str]:
    """``--n-train N ... --equivariance-batches 1`` for a 2-epoch run of a 2-layer model with 2-field
    layers; ``extra`` adds ``--name value`` flags (``_`` becomes ``-``; ``True`` gives a bare switch)."""
    settings: dict[str, object] = dict(
        n_train=n_train, n_val=n_val, n_test=n_test, batch_size=10, epochs=2, layers=2,
        hidden_scalars=2, hidden_vectors=2, kernel_hidden=2, equivariance_batches=1, train_frame_shift=0,
    )  # fmt: skip
    settings.update(extra)
    flags: list[str] = []
    for name, value in settings.items():
        flags.append("--" + name.replace("_", "-"))
        if value is not True:
            flags.append(str(value))
    return flags
