"""Entry point of the task runners: ``python -m steerable.tasks TASK [options]``.

``main(["nbody", "--preset", "demo"])`` trains and tests the N-body task; ``main(["--help"])`` lists
the tasks.  Each task is a module exposing ``main(argv) -> int``; tasks are imported only when run,
so this module stays cheap (no lightning import).
"""
from __future__ import annotations

import importlib
import sys
from typing import Sequence

#: task name -> module with ``main(argv)``
TASKS: dict[str, str] = {
    "nbody": "steerable.tasks.nbody.train",
    "qm9": "steerable.tasks.qm9.train",
    "modelnet": "steerable.tasks.modelnet.train",
}

_USAGE = "usage: python -m steerable.tasks TASK [options]   (TASK: {}; TASK --help for its options)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run task ``argv[0]`` with the remaining arguments; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = _USAGE.format(", ".join(sorted(TASKS)))
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    task, rest = argv[0], argv[1:]
    if task not in TASKS:
        print(f"unknown task {task!r}\n{usage}", file=sys.stderr)
        return 2
    return int(importlib.import_module(TASKS[task]).main(rest) or 0)
