"""The ``steerable`` command line: what is installed, what each group offers, and quick checks.

steerable --version                the installed version
steerable backends [--load]        backends, whether they are installed (--load: whether they load,
                                   and why not), their groups
steerable groups                   group families with their dimensions and backends (* the default)
steerable check GROUP [--backend NAME] [--dim N] [--dtype float32|float64]
                                   build a kernel, point conv and grid conv; print their
                                   equivariance errors
steerable demo                     the check for a set of groups, as one table
steerable train TASK ...           train a task (``steerable train --help`` lists them; without
                                   --preset a task runs its few-minutes demo)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

DEMO_GROUPS = [
    ("C8", 2, None),
    ("D4", 2, None),
    ("SO(2)", 2, None),
    ("O(2)", 2, None),
    ("SO(3)", 3, None),
    ("O(3)", 3, None),
    ("Octa", 3, None),
    ("C4", 3, None),
    ("SO(3)", 3, "e3nn"),
    ("O(3)", 3, "e3nn"),
]


def _backends(args: argparse.Namespace) -> int:
    import steerable as st

    rows = st.list_backends(load=args.load)  # load=False: from the plugins' metadata, nothing heavy imported
    for row in rows:
        print(row)
    if any(not row.loaded for row in rows):
        print("(installed: the required modules are found; `steerable backends --load` imports each to check it works)")
    return 0


def _groups(_: argparse.Namespace) -> int:
    import steerable as st

    rows = st.list_backends(load=False)  # in order of preference (priority); cheap: nothing heavy imported
    rank = {row.name: i for i, row in enumerate(rows)}
    available = {row.name for row in rows if row.available}
    specs = st.list_groups()
    default: dict[str, str] = {}  # display name -> the backend st.group(name) picks
    for spec in sorted(specs, key=lambda sp: rank.get(sp.backend, len(rank))):
        if spec.backend in available:
            default.setdefault(spec.display, spec.backend)
    print(f"{'group':<12} {'backend':<9} {'acts on':<12} description")
    for spec in specs:
        dims = ", ".join(f"R^{d}" for d in spec.dims)
        mark = "*" if default.get(spec.display) == spec.backend else " "
        state = "" if spec.backend in available else " (backend unavailable)"
        print(f"{spec.display:<12} {spec.backend + mark:<9} {dims:<12} {spec.doc}{state}")
    print("* the default backend of the group (the preferred available one); another: st.group(name, backend=...)")
    return 0


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "float64": torch.float64}[name]


def _check_rows(groups, dtype) -> list[tuple[str, str, float, dict[str, float]]]:
    import steerable as st
    from steerable.testing import layer_report

    rows = []
    for name, dim, backend in groups:
        start = time.perf_counter()
        group = st.group(name, dim=dim, backend=backend)
        report = layer_report(group, dtype=dtype)
        rows.append((str(group), group.backend, time.perf_counter() - start, report))
    return rows


def _print_rows(rows, dtype) -> None:
    print(f"relative equivariance error ({dtype}), fields: trivial + standard + a higher irrep")
    print(f"{'group':<28} {'kernel':>10} {'point conv':>11} {'grid conv':>10} {'build+check':>12}")
    for label, _, seconds, report in rows:
        grid = report.get("grid conv")
        grid_text = f"{grid:10.2e}" if grid is not None else f"{'-':>10}"
        print(f"{label:<28} {report['kernel']:10.2e} {report['point conv']:11.2e} {grid_text} {seconds:11.1f}s")


def _check(args: argparse.Namespace) -> int:
    rows = _check_rows([(args.group, args.dim, args.backend)], _dtype(args.dtype))
    _print_rows(rows, args.dtype)
    return 0


def _demo(args: argparse.Namespace) -> int:
    import steerable as st

    available = {row.name for row in st.list_backends() if row.available}
    groups = [g for g in DEMO_GROUPS if (g[2] or "escnn") in available]
    _print_rows(_check_rows(groups, _dtype(args.dtype)), args.dtype)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from steerable import __version__

    parser = argparse.ArgumentParser(prog="steerable", description="Implicit steerable convolutions.")
    parser.add_argument("--version", action="version", version=f"steerable {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    backends = sub.add_parser("backends", help="list backends, their status and groups")
    backends.add_argument(
        "--load",
        action="store_true",
        help="import every backend to check that it works (seconds), not only that it is installed",
    )
    backends.set_defaults(run=_backends)
    sub.add_parser("groups", help="list group families").set_defaults(run=_groups)
    check = sub.add_parser("check", help="equivariance errors of layers for one group")
    check.add_argument("group", help='group name, e.g. "SO(3)", "C8", "O(2)"')
    check.add_argument("--backend", default=None, help="backend name (default: preferred available)")
    check.add_argument("--dim", type=int, default=None, help="dimension n of R^n (for names in 2D and 3D)")
    check.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    check.set_defaults(run=_check)
    demo = sub.add_parser("demo", help="check a set of groups and print a table")
    demo.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    demo.set_defaults(run=_demo)
    # listed for --help only: main() hands "train ..." to the task command line before parsing
    sub.add_parser(
        "train", help="train a task (steerable train --help lists them; TASK --help its options)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # everything after "train" is the task's (its --help too)
        from steerable.tasks.cli import main as task_main

        return int(task_main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, RuntimeError, TypeError) as exc:
        print(f"steerable: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
