"""The Manager's calls that talk to a running command, from any OS process: its stdin
(``send_input``, ``close_input``), signals, ``suspend`` and ``resume``.

Each is a request stored for the process's owner (store tables ``process_input`` and
``controls``), which carries it out (_run_controls). Input is acknowledged once stored; a
signal, suspend or resume once the owner has done it (or said why it could not).
"""

from __future__ import annotations

import signal as _signal
from typing import Any

from . import _clock
from ._changes import Changes
from ._scheduler import Scheduler
from ._spec import check_signal
from .errors import InvalidSpecError, InvalidStateError
from .models import LIVE_STATUSES, Status
from .store import ProcessRecord, Store

ANSWER_SECONDS = 30.0
"""How long a signal, suspend or resume waits for the owner to carry it out."""


class ProcessControls:
    """Mixed into Manager: it provides ``_store``, ``_scheduler``, ``_changes``, ``_record``
    and ``_wait_step``."""

    _store: Store
    _scheduler: Scheduler
    _changes: Changes

    async def _record(self, process_id: str, *, full: bool = True) -> ProcessRecord:
        raise NotImplementedError

    def _wait_step(self, record: ProcessRecord) -> float:
        raise NotImplementedError

    async def send_input(self, process_id: str, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` to the stdin of a command started with ``stdin=PIPE`` (queued or
        running): stored at once, written by whoever runs it, in the order sent."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidSpecError(f"input must be bytes, not {type(data).__name__}")
        await self._input(process_id, bytes(data))

    async def close_input(self, process_id: str) -> None:
        """Close the command's stdin once the input sent before is written (it reads EOF)."""
        await self._input(process_id, None)

    async def _input(self, process_id: str, data: bytes | None) -> None:
        record = await self._record(process_id)
        if record.kind != "command" or record.spec.get("stdin") != "pipe":
            raise InvalidStateError(
                f"process {process_id} was not started with stdin=PIPE: it takes no input"
            )
        if not await self._store.add_input(process_id, data):
            current = await self._record(process_id, full=False)
            if await self._store.input_closed(process_id):
                raise InvalidStateError(f"the input of process {process_id} is closed")
            raise InvalidStateError(
                f"process {process_id} is {current.status}: it takes input only while queued"
                " or running"
            )
        self._wake_owner(process_id)

    async def signal(self, process_id: str, signum: int, *, tree: bool = False) -> None:
        """Send ``signum`` to the running command (or step executor); ``tree=True``: to
        every process of its tree."""
        number = check_signal(signum, "signum")
        if number in (_signal.SIGSTOP, _signal.SIGCONT):
            raise InvalidSpecError(
                "stop and continue a process with suspend() and resume(): they keep its"
                " status and its timeout's clock right"
            )
        if not isinstance(tree, bool):
            raise InvalidSpecError(f"tree must be True or False, not {tree!r}")
        await self._control(process_id, "signal-tree" if tree else "signal", number, Status.RUNNING)

    async def suspend(self, process_id: str) -> None:
        """Stop (SIGSTOP) the whole tree of a running process: it is ``suspended``, and its
        timeout's clock stands still, until ``resume``."""
        await self._control(process_id, "suspend", None, Status.RUNNING)

    async def resume(self, process_id: str) -> None:
        """Continue (SIGCONT) the tree of a suspended process: it is ``running`` again."""
        await self._control(process_id, "resume", None, Status.SUSPENDED)

    async def _control(
        self, process_id: str, action: str, argument: int | None, status: Status
    ) -> None:
        record = await self._record(process_id, full=False)
        seq = None
        if record.status is status:
            seq = await self._store.add_control(
                process_id, record.claim_token, status, action, argument
            )
        if seq is None:
            current = await self._record(process_id, full=False)
            raise InvalidStateError(f"process {process_id} is {current.status}, not {status}")
        self._wake_owner(process_id)
        await self._answer(record, seq)

    def _wake_owner(self, process_id: str) -> None:
        # The owner here: no poll would show it our own write.
        run = self._scheduler.runs.get(process_id)
        if run is not None:
            run.controls.set()

    async def _answer(self, record: ProcessRecord, seq: int) -> None:
        """Wait until the owner carried out request ``seq``; InvalidStateError with its
        reason if it could not, or if the run ended first."""
        deadline = _clock.monotonic() + ANSWER_SECONDS
        while True:
            event = self._changes.event(record.id)
            # The process first, then the answer: its owner answers before it records the
            # end, so an end seen here means the answer read next is final.
            current = await self._record(record.id, full=False)
            answer = await self._store.control_result(seq)
            if answer is not None and answer[0]:
                if answer[1] is not None:
                    raise InvalidStateError(answer[1])
                return
            if current.status not in LIVE_STATUSES or current.claim_token != record.claim_token:
                raise InvalidStateError(f"process {record.id} is {current.status} now")
            remaining = deadline - _clock.monotonic()
            if remaining <= 0:
                raise InvalidStateError(
                    f"the manager running process {record.id} did not answer within"
                    f" {ANSWER_SECONDS:g} s"
                )
            await self._changes.wait(event, min(self._wait_step(current), remaining))


def signal_number(value: Any) -> int:
    """A signal given by name (``SIGUSR1``, ``USR1``, any case) or number, as its number."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        if int(text) not in {int(sig) for sig in _signal.valid_signals()}:
            raise InvalidSpecError(f"no signal number {text}")
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(_signal.Signals[name])
    except KeyError:
        raise InvalidSpecError(f"no signal named {value!r}") from None
