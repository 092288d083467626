"""Frames between the manager and an executor, on a socket pair of their own.

A frame is a 4-byte big-endian length and a ``marshal`` payload (a tuple whose first item
names the message). marshal is built in, so the executor imports nothing to speak it; the
manager checks every value a step returns with strict JSON before storing it.

Manager → executor: ("job", {...}) — or ("go",) to an executor forked with its job —
sent once the executor's pid is recorded; ("ack",) after a step's "done" (but the last
step's: the executor then exits without waiting); ("exit",)
Executor → manager: ("start", index, name) for each step but the first (the manager
recorded that one with the pid), ("progress", fraction, message), ("done", index, output),
("interrupt", index, output), ("error", index, type, message, traceback)
"""

from __future__ import annotations

import marshal

TYPE_CHECKING = False  # typing costs ~10 ms of executor start-up
if TYPE_CHECKING:
    from typing import Any

HEADER = 4
MAX_FRAME = 1 << 30


def encode(message: tuple[Any, ...]) -> bytes:
    payload = marshal.dumps(message)
    return len(payload).to_bytes(HEADER, "big") + payload


def decode(payload: bytes) -> tuple[Any, ...]:
    message = marshal.loads(payload)
    if not isinstance(message, tuple) or not message or not isinstance(message[0], str):
        raise ValueError("malformed frame")
    return message
