"""Named fault points for crash tests (like DBOS's debug triggers).

With ``AIOBGPROC_FAULT=<point>`` in a manager's environment, the manager SIGKILLs itself when
it reaches that point, so tests can crash it at the worst moments:

- ``after_claim``: a process was claimed (committed) but nothing was spawned yet;
- ``after_spawn``: the executor runs but its pid is not recorded yet;
- ``before_step_commit``: a step finished but its output is not committed yet;
- ``in_proceed``: inside proceed's transaction, before it commits.

Unset (always, outside tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "AIOBGPROC_FAULT"


def fault(point: str) -> None:
    if os.environ.get(VARIABLE) == point:
        os.kill(os.getpid(), signal.SIGKILL)
