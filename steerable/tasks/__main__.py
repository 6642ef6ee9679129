"""``python -m steerable.tasks TASK ...``: see :mod:`steerable.tasks.cli`."""

from steerable.tasks.cli import main

raise SystemExit(main())
