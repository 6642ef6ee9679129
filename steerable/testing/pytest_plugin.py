"""pytest plugin: the conformance suite (:mod:`steerable.testing.conformance`) for groups named on the
command line, one test item per check::

    pytest -p steerable.testing.pytest_plugin --steerable-group HexLattice
    pytest -p steerable.testing.pytest_plugin --steerable-group C6 --steerable-group "SO(3)" \\
        --steerable-backend escnn --steerable-dim 3

Options: ``--steerable-group NAME`` (repeatable; what :func:`steerable.group` takes),
``--steerable-dim N`` and ``--steerable-backend NAME`` (for every named group).  The items are called
``steerable-conformance[NAME][CHECK]``; a failed check prints its value, bound and reason, a
skipped one (e.g. no grid convolution on R^4) its reason.  Other tests collected in the same run
are unaffected.  To run it from a plugin's own test suite instead, call
:func:`~steerable.testing.conformance.run_conformance` in a test.
"""

from __future__ import annotations

from typing import Any

import pytest

__all__ = ["ConformanceItem", "pytest_addoption", "pytest_collection_modifyitems"]


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("steerable", "steerable conformance suite")
    group.addoption(
        "--steerable-group",
        action="append",
        default=[],
        metavar="NAME",
        help="run the conformance suite on this group (repeatable)",
    )
    group.addoption("--steerable-dim", type=int, default=None, metavar="N", help="dimension n of R^n for the groups")
    group.addoption("--steerable-backend", default=None, metavar="NAME", help="backend building the groups")


class _Runner:
    """Builds the group and runs the suite once, on first use; items read their check's result."""

    def __init__(self, name: str, dim: int | None, backend: str | None) -> None:
        self.name, self.dim, self.backend = name, dim, backend
        self._report: Any = None

    def result(self, check: str) -> Any:
        if self._report is None:
            import steerable as st
            from steerable.testing.conformance import run_conformance

            group = st.group(self.name, dim=self.dim, backend=self.backend)
            self._report = run_conformance(group, raise_on_failure=False)
        return self._report[check]


class ConformanceItem(pytest.Item):
    """One conformance check of one group."""

    def __init__(self, *, runner: _Runner, check: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.runner, self.check = runner, check

    def runtest(self) -> None:
        from steerable.testing.conformance import ConformanceError

        result = self.runner.result(self.check)
        if result.passed is None:
            pytest.skip(result.detail)
        if not result.passed:
            raise ConformanceError(f"{self.runner.name}: {result}")

    def repr_failure(self, excinfo: Any, style: Any = None) -> Any:
        from steerable.testing.conformance import ConformanceError

        if isinstance(excinfo.value, ConformanceError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect the items
def pytest_collection_modifyitems(session: Any, config: Any, items: list) -> None:
    from steerable.testing.conformance import CHECKS

    for name in config.getoption("steerable_group"):
        runner = _Runner(name, config.getoption("steerable_dim"), config.getoption("steerable_backend"))
        for check in CHECKS:
            items.append(
                ConformanceItem.from_parent(
                    session, name=f"steerable-conformance[{name}][{check}]", runner=runner, check=check
                )
            )
