"""Steps that fail: raise, return what cannot be stored, or kill their own executor."""

from __future__ import annotations

import os
import signal
import time
from typing import Any


class BoomError(Exception):
    pass


def raise_value_error(data: dict[str, Any]) -> dict[str, Any]:
    raise ValueError(f"bad input: {data.get('n')}")


class Explode:
    def execute(self, data: dict[str, Any]) -> dict[str, Any]:
        raise BoomError("kaboom")


class Opaque:
    pass


def return_set(data: dict[str, Any]) -> dict[str, Any]:
    return {"items": {1, 2}}


def return_object(data: dict[str, Any]) -> dict[str, Any]:
    return {"thing": Opaque()}


def return_nan(data: dict[str, Any]) -> dict[str, Any]:
    return {"value": float("nan")}


def return_infinity(data: dict[str, Any]) -> dict[str, Any]:
    return {"value": float("inf")}


def return_list(data: dict[str, Any]) -> Any:
    return [1, 2]


def return_string(data: dict[str, Any]) -> Any:
    return "done"


def return_int(data: dict[str, Any]) -> Any:
    return 42


def exit_7(data: dict[str, Any]) -> dict[str, Any]:
    os._exit(7)


def kill_self(data: dict[str, Any]) -> dict[str, Any]:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: SIGKILL cannot be caught")


def garble_channel(data: dict[str, Any]) -> dict[str, Any]:
    """Write a frame the manager cannot decode to the executor's channel (its one socket),
    then linger: the manager must end the run, not wait on it."""
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:"):
            os.write(int(name), b"\x00\x00\x00\x05garbl")
    time.sleep(60)
    return data
