"""Steps for the retry tests: each run appends a line to a ledger file (what ran, in which
attempt), so that a test can count the runs of each step."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def _log(ledger: str, name: str) -> int:
    """Append this run to the ledger; how many runs of ``name`` it holds now."""
    attempt = os.environ.get("AIOBGPROC_ATTEMPT", "?")
    with open(ledger, "a") as handle:
        handle.write(f"{name} {attempt}\n")
    return sum(1 for line in Path(ledger).read_text().splitlines() if line.split()[0] == name)


def ok(data: dict[str, Any], ledger: str, name: str) -> dict[str, Any]:
    _log(ledger, name)
    return {**data, name: True}


def fail_first(data: dict[str, Any], ledger: str, name: str, times: int) -> dict[str, Any]:
    """Raises in its first ``times`` runs, then returns."""
    runs = _log(ledger, name)
    if runs <= times:
        raise RuntimeError(f"{name}: failing run {runs} of {times}")
    return {**data, name: runs}


def slow_first(data: dict[str, Any], ledger: str, name: str, times: int) -> dict[str, Any]:
    """Sleeps far past any test's timeout in its first ``times`` runs, then returns."""
    runs = _log(ledger, name)
    if runs <= times:
        time.sleep(60)
    return {**data, name: runs}
