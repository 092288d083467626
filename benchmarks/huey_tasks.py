"""huey tasks for benchmarks/run.py (B3): the peer that aiobgproc is compared with.

The queue is a SqliteHuey on the file named by ``$AIOBGPROC_BENCH_HUEY_DB`` (both the
consumer and the enqueueing benchmark read it). Run the consumer as::

    AIOBGPROC_BENCH_HUEY_DB=/tmp/huey.db \\
        huey_consumer benchmarks.huey_tasks.huey -k process -w 2 -d 0.001 -m 0.01 -C -n -q

Defaults are kept (WAL, synchronous FULL), as in the figures of /work/shared/PERF.md.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

from huey import SqliteHuey  # type: ignore[import-untyped]

DB_VARIABLE = "AIOBGPROC_BENCH_HUEY_DB"

huey = SqliteHuey(
    "aiobgproc-bench",
    filename=os.environ.get(DB_VARIABLE)
    or os.path.join(tempfile.gettempdir(), "aiobgproc-bench-huey.db"),
)


@huey.task()  # type: ignore[untyped-decorator]
def noop(x: int) -> int:
    """The trivial function, run inside huey's warm workers."""
    return x + 1


@huey.task()  # type: ignore[untyped-decorator]
def spawn_true() -> int:
    """One fresh OS process per unit of work, as aiobgproc gives every process."""
    return subprocess.run(["/bin/true"], check=False).returncode
