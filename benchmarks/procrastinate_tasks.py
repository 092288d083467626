"""procrastinate tasks for benchmarks/run.py (B3 on PostgreSQL): the peer that aiobgproc's
PostgreSQL store is compared with.

The App's PsycopgConnector connects to the URL in ``$AIOBGPROC_BENCH_PROCRASTINATE_URL``
(libpq's defaults when unset); both the worker and the deferring benchmark read it. run.py
creates a database of its own for it, applies procrastinate's schema there, and runs::

    AIOBGPROC_BENCH_PROCRASTINATE_URL=postgresql://postgres@127.0.0.1:5432/DB \\
        procrastinate --app benchmarks.procrastinate_tasks.app worker \\
        --concurrency 2 --fetch-job-polling-interval 0.01
"""

from __future__ import annotations

import os
import subprocess
from typing import Final

# The ignores keep `mypy --strict` passing where procrastinate is not installed (it is no
# dependency of aiobgproc's); where it is, its own types are checked.
from procrastinate import App, PsycopgConnector  # type: ignore[import-not-found, unused-ignore]

URL_VARIABLE: Final = "AIOBGPROC_BENCH_PROCRASTINATE_URL"
DATABASE_URL: Final = os.environ.get(URL_VARIABLE, "")
"""The URL this module's App was made for (read once, at import)."""

app = App(connector=PsycopgConnector(conninfo=DATABASE_URL))


@app.task(name="noop")  # type: ignore[untyped-decorator, unused-ignore]
async def noop(x: int) -> int:
    """The trivial function, run inside the warm worker's event loop (procrastinate's
    fastest kind of task: a sync one would take a thread hop)."""
    return x + 1


@app.task(name="spawn_true")  # type: ignore[untyped-decorator, unused-ignore]
def spawn_true() -> int:
    """One fresh OS process per unit of work, as aiobgproc gives every process (a sync task:
    procrastinate runs it in a thread, so ``--concurrency`` of them run at once)."""
    return subprocess.run(["/bin/true"], check=False).returncode
