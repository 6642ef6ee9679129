"""Entry point of the task runners: ``python -m steerable.tasks TASK [options]`` (also ``steerable train``).

``main(["nbody", "--preset", "demo"])`` trains and tests the N-body task; ``main(["--help"])`` lists
the tasks.  Each task is a module exposing ``main(argv) -> int`` and its settings declaration
``SETTINGS``; tasks are run only when named, and nothing here imports lightning.

Without ``--preset`` a task runs its ``demo`` preset (a newcomer's first command finishes in
minutes); the benchmark runs are ``--preset full``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: task name -> module with ``main(argv)`` and ``SETTINGS``
TASKS: dict[str, str] = {
    "nbody": "steerable.tasks.nbody.train",
    "qm9": "steerable.tasks.qm9.train",
    "modelnet": "steerable.tasks.modelnet.train",
}
#: what ``--preset full`` costs, as measured (the README's results table)
FULL_COST = {
    "nbody": "about 25 minutes on one CPU core",
    "qm9": "hours; a GPU is advised",
    "modelnet": "hours; a GPU is advised",
}

_USAGE = "usage: python -m steerable.tasks TASK [options]   (or: steerable train TASK [options])"


def usage() -> str:
    """The task list: name, description, the cost of ``--preset full``."""
    lines = [_USAGE, "", "tasks:"]
    for name, module in TASKS.items():
        lines.append(f"  {name:<9} {importlib.import_module(module).SETTINGS.description}")
    lines += [
        "",
        "TASK --help lists the options of a task.  Without --preset a task runs its demo preset (minutes on",
        "a laptop CPU); --preset full is the benchmark run:",
    ]
    lines += [f"  {name:<9} {cost}" for name, cost in FULL_COST.items()]
    lines += ["Multi-process training: --accelerator cpu --devices 2 (gloo), or --devices N on GPUs (NCCL)."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run task ``argv[0]`` with the remaining arguments; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    task, rest = argv[0], argv[1:]
    if task not in TASKS:
        print(f"unknown task {task!r}; tasks: {', '.join(TASKS)} (python -m steerable.tasks --help)", file=sys.stderr)
        return 2
    return int(importlib.import_module(TASKS[task]).main(rest) or 0)
