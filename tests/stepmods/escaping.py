"""Steps that leave processes behind."""

from __future__ import annotations

import subprocess
from typing import Any


def leave_session_child(data: dict[str, Any]) -> dict[str, Any]:
    """Starts a child in a session of its own and returns without waiting for it."""
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    return {"child": child.pid}


def leave_group_child(data: dict[str, Any]) -> dict[str, Any]:
    """Starts a child in the executor's own session and returns without waiting for it."""
    child = subprocess.Popen(["sleep", "60"])
    return {"child": child.pid}


def leave_escaped_grandchild(data: dict[str, Any]) -> dict[str, Any]:
    """Runs a shell that starts a grandchild in a session of its own (ignoring SIGTERM) and
    exits: the grandchild is no child of the executor, and outside its session."""
    subprocess.run(["sh", "-c", data["script"], "outer", data["pidfile"]], check=True)
    with open(data["pidfile"], encoding="ascii") as handle:
        return {"grandchild": int(handle.read())}
